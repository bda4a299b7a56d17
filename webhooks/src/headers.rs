//! Reading the headers a signature depends on. A header that carries a signature, a
//! timestamp or a delivery id must appear once: with two, a proxy in front of Tandem
//! and Tandem itself may each read a different one, and a sender could offer a valid
//! value beside a forged one to see which is judged.

use super::VerifyError;

/// The one value of header `name`, given every value the request carried for it
/// (names compared case-insensitively by the caller, as HTTP requires). `None` when
/// absent; an error when it appears more than once or is not printable ASCII.
pub fn single<'a, I>(name: &'static str, values: I) -> Result<Option<&'a str>, VerifyError>
where
    I: IntoIterator<Item = &'a [u8]>,
{
    let mut values = values.into_iter();
    let Some(first) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(VerifyError::DuplicateHeader(name));
    }
    // Signatures, timestamps and ids are ASCII; anything else is not what a sender
    // signed, and refusing it here keeps odd bytes out of every later step.
    if !first
        .iter()
        .all(|b| matches!(b, b' ' | b'\t' | 0x21..=0x7e))
    {
        return Err(VerifyError::MalformedHeader(name));
    }
    std::str::from_utf8(first)
        .map(Some)
        .map_err(|_| VerifyError::MalformedHeader(name))
}

/// Every header of a request as (name, value) pairs, for looking up a name in it.
pub fn values_of<'a>(
    headers: &'a [(&'a str, &'a [u8])],
    name: &'a str,
) -> impl Iterator<Item = &'a [u8]> + 'a {
    headers
        .iter()
        .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| *v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const NAME: &str = "x-signature";

    #[test]
    fn absent_one_or_several() {
        assert_eq!(single(NAME, std::iter::empty()), Ok(None));
        assert_eq!(single(NAME, [&b"abc="[..]]), Ok(Some("abc=")));
        assert_eq!(
            single(NAME, [&b"abc="[..], &b"abc="[..]]),
            Err(VerifyError::DuplicateHeader(NAME)),
            "even two equal values: the rule is about the request, not the values"
        );
        assert_eq!(
            single(NAME, [&b""[..], &b"abc="[..]]),
            Err(VerifyError::DuplicateHeader(NAME))
        );
        assert_eq!(
            single(NAME, [&b"caf\xc3\xa9"[..]]),
            Err(VerifyError::MalformedHeader(NAME))
        );
        assert_eq!(
            single(NAME, [&b"a\x00b"[..]]),
            Err(VerifyError::MalformedHeader(NAME))
        );
    }

    #[test]
    fn names_match_case_insensitively() {
        let headers: Vec<(&str, &[u8])> = vec![
            ("X-Signature", b"one"),
            ("content-type", b"application/json"),
            ("x-SIGNATURE", b"two"),
        ];
        assert_eq!(
            single(NAME, values_of(&headers, NAME)),
            Err(VerifyError::DuplicateHeader(NAME))
        );
        assert_eq!(
            single("content-type", values_of(&headers, "Content-Type")),
            Ok(Some("application/json"))
        );
    }

    proptest! {
        #[test]
        fn more_than_one_value_is_always_refused(
            values in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 2..6)
        ) {
            let refs: Vec<&[u8]> = values.iter().map(Vec::as_slice).collect();
            prop_assert_eq!(single(NAME, refs), Err(VerifyError::DuplicateHeader(NAME)));
        }

        #[test]
        fn one_value_is_taken_exactly_when_printable(value in proptest::collection::vec(any::<u8>(), 0..60)) {
            let printable = value.iter().all(|b| *b == b' ' || *b == b'\t' || (0x21..=0x7e).contains(b));
            match single(NAME, [value.as_slice()]) {
                Ok(Some(text)) => {
                    prop_assert!(printable);
                    prop_assert_eq!(text.as_bytes(), value.as_slice());
                }
                Ok(None) => prop_assert!(false, "one value read as none"),
                Err(err) => {
                    prop_assert!(!printable);
                    prop_assert_eq!(err, VerifyError::MalformedHeader(NAME));
                }
            }
        }
    }
}
