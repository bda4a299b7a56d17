//! Counts, ids, names, text and words.

use crate::limits::{PAIR_NAME_CHARS, RECORD_ID_CHARS, SEARCH_CHARS};
use crate::Refusal;

/// A whole number from `min` to `max`, written in ASCII digits only (no sign, space,
/// or exponent), so that `+5`, ` 5` and `5e2` are refused rather than read
/// differently by different layers.
pub fn count(text: &str, min: u64, max: u64) -> Result<u64, Refusal> {
    let refused = || Refusal::new(format!("a whole number from {min} to {max}"), text);
    // 20 digits hold every u64; a longer run of digits is out of range whatever it is.
    if text.is_empty() || text.len() > 20 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(refused());
    }
    match text.parse::<u64>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(refused()),
    }
}

/// An id of a record in one of the systems: 1 to 255 characters, none of them a control
/// character (a NUL, a newline, DEL, ...), which no system's ids hold and which the
/// database or a log line would misread.
pub fn record_id(text: &str) -> Result<&str, Refusal> {
    let chars = text.chars().count();
    if chars == 0 || chars > RECORD_ID_CHARS || text.chars().any(char::is_control) {
        return Err(Refusal::new(
            format!("an id of 1 to {RECORD_ID_CHARS} characters without control characters"),
            text,
        ));
    }
    Ok(text)
}

/// A pair's name as the settings allow it: a-z, 0-9, `-` and `_`, at most 64.
pub fn pair_name(text: &str) -> Result<&str, Refusal> {
    let ok = !text.is_empty()
        && text.len() <= PAIR_NAME_CHARS
        && text
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if ok {
        Ok(text)
    } else {
        Err(Refusal::new(
            format!("a pair name: 1 to {PAIR_NAME_CHARS} of a-z, 0-9, `-` and `_`"),
            text,
        ))
    }
}

/// What a person types to find a record: 2 to 200 characters once trimmed, no
/// control characters.
pub fn search_text(text: &str) -> Result<&str, Refusal> {
    let trimmed = text.trim();
    let chars = trimmed.chars().count();
    let (min, max) = SEARCH_CHARS;
    if chars < min || chars > max || trimmed.chars().any(char::is_control) {
        return Err(Refusal::new(
            format!("{min} to {max} characters without control characters"),
            text,
        ));
    }
    Ok(trimmed)
}

/// One of a fixed list of words (`customer`, `invoice`), exactly as listed.
pub fn word<'a>(text: &str, words: &[&'a str]) -> Result<&'a str, Refusal> {
    words
        .iter()
        .find(|w| **w == text)
        .copied()
        .ok_or_else(|| Refusal::new(format!("one of {}", words.join(", ")), text))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_count_outside_its_range_names_the_range() {
        let refusal = count("501", 1, 500).unwrap_err();
        assert_eq!(
            refusal.to_string(),
            "must be a whole number from 1 to 500; got `501`"
        );
        for text in [
            "",
            "+5",
            " 5",
            "5 ",
            "-1",
            "5e2",
            "0x10",
            "18446744073709551616",
            "٣",
        ] {
            assert!(count(text, 0, u64::MAX).is_err(), "{text:?} was read");
        }
        assert_eq!(count("00042", 1, 500), Ok(42));
    }

    #[test]
    fn ids_with_control_characters_are_refused() {
        for id in ["a\0b", "a\nb", "\u{7f}", "\u{85}x", "", &"x".repeat(256)] {
            assert!(record_id(id).is_err(), "{id:?} was read");
        }
        assert_eq!(record_id("Ünïcode id 42"), Ok("Ünïcode id 42"));
    }

    proptest! {
        #[test]
        fn a_count_is_read_exactly_when_it_is_in_range(n: u64, min: u64, max: u64) {
            let read = count(&n.to_string(), min, max);
            prop_assert_eq!(read.is_ok(), (min..=max).contains(&n));
            if let Ok(value) = read {
                prop_assert_eq!(value, n);
            }
        }

        #[test]
        fn any_text_is_either_a_count_in_range_or_refused(text in ".{0,30}", max in 0u64..1000) {
            match count(&text, 1, max) {
                Ok(n) => prop_assert!((1..=max).contains(&n)),
                Err(refusal) => {
                    prop_assert!(refusal.allowed.contains(&max.to_string()));
                    prop_assert!(!refusal.got.chars().any(char::is_control));
                }
            }
        }

        #[test]
        fn an_accepted_id_has_no_control_character(text in "\\PC{0,3}[\\x00-\\x1f\\x7f]?\\PC{0,3}") {
            match record_id(&text) {
                Ok(id) => prop_assert!(!id.chars().any(char::is_control) && !id.is_empty()),
                Err(refusal) => prop_assert!(refusal.got.chars().count() <= crate::SHOWN + 1),
            }
        }

        #[test]
        fn a_refusal_never_repeats_more_than_it_may(text in ".{0,200}") {
            let refusal = Refusal::new("x", &text);
            prop_assert!(!refusal.got.chars().any(char::is_control));
        }

        #[test]
        fn an_accepted_pair_name_could_be_configured(text in "[a-z0-9_\\-\\x00 A-Z]{0,70}") {
            if let Ok(name) = pair_name(&text) {
                prop_assert!(name.len() <= 64 && !name.is_empty());
                prop_assert!(name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_'));
            }
        }
    }
}
