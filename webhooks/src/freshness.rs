//! The freshness window of a signed timestamp: a delivery is taken only when the time
//! it was signed at lies within a tolerance of now, in the past (a captured request
//! replayed later) and in the future (a timestamp set ahead so that a captured request
//! stays replayable for longer).
//!
//! Timestamps come from the sender, so every value an `i64` can hold must be judged
//! without overflow: the distance is taken with `abs_diff`, which is exact over the
//! whole range.

use super::VerifyError;

/// Where a timestamp lies relative to now and the tolerance.
pub fn check(sent_at: i64, now: i64, tolerance: u64) -> Result<(), VerifyError> {
    if sent_at.abs_diff(now) <= tolerance {
        Ok(())
    } else if sent_at < now {
        Err(VerifyError::StaleTimestamp)
    } else {
        Err(VerifyError::FutureTimestamp)
    }
}

/// A timestamp header's value: decimal digits only (no sign, no spaces inside, no
/// exponent), at most what an `i64` holds. Anything else is malformed, so a value
/// that parses is one the sender could have signed verbatim.
pub fn parse(value: &str, header: &'static str) -> Result<i64, VerifyError> {
    let digits = value.trim();
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(VerifyError::MalformedHeader(header));
    }
    digits
        .parse::<i64>()
        .map_err(|_| VerifyError::MalformedHeader(header))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const HEADER: &str = "x-timestamp";

    /// The rule, computed in a wider type that cannot overflow.
    fn expected(sent_at: i64, now: i64, tolerance: u64) -> Result<(), VerifyError> {
        let distance = i128::from(now) - i128::from(sent_at);
        if distance.unsigned_abs() <= u128::from(tolerance) {
            Ok(())
        } else if distance > 0 {
            Err(VerifyError::StaleTimestamp)
        } else {
            Err(VerifyError::FutureTimestamp)
        }
    }

    #[test]
    fn the_edges_of_i64_neither_panic_nor_wrap() {
        let now = 1_764_000_000_000;
        for (sent_at, verdict) in [
            (i64::MIN, Err(VerifyError::StaleTimestamp)),
            (i64::MIN + 1, Err(VerifyError::StaleTimestamp)),
            (i64::MAX, Err(VerifyError::FutureTimestamp)),
            (0, Err(VerifyError::StaleTimestamp)),
            (now - 300_000, Ok(())),
            (now - 300_001, Err(VerifyError::StaleTimestamp)),
            (now + 300_000, Ok(())),
            (now + 300_001, Err(VerifyError::FutureTimestamp)),
        ] {
            assert_eq!(check(sent_at, now, 300_000), verdict, "sent at {sent_at}");
        }
        // Now itself at the edges: a clock that reads nonsense still judges soundly.
        assert_eq!(
            check(i64::MAX, i64::MIN, 300_000),
            Err(VerifyError::FutureTimestamp)
        );
        assert_eq!(
            check(i64::MIN, i64::MAX, 300_000),
            Err(VerifyError::StaleTimestamp)
        );
        assert_eq!(check(i64::MIN, i64::MIN, 0), Ok(()));
        assert_eq!(check(i64::MAX, i64::MIN, u64::MAX), Ok(()));
    }

    #[test]
    fn only_plain_digits_within_i64_parse() {
        assert_eq!(parse("1764000000000", HEADER), Ok(1_764_000_000_000));
        assert_eq!(parse(" 15000000 ", HEADER), Ok(15_000_000));
        assert_eq!(parse("9223372036854775807", HEADER), Ok(i64::MAX));
        assert_eq!(parse("0009", HEADER), Ok(9));
        for bad in [
            "",
            " ",
            "9223372036854775808",
            "99999999999999999999999",
            "-1",
            "+1",
            "1e3",
            "1.5",
            "0x10",
            "1 2",
            "١٢٣",
            "12\u{0}",
        ] {
            assert_eq!(
                parse(bad, HEADER),
                Err(VerifyError::MalformedHeader(HEADER)),
                "{bad:?}"
            );
        }
    }

    proptest! {
        #[test]
        fn the_window_is_exact_over_the_whole_range(
            sent_at in any::<i64>(),
            now in any::<i64>(),
            tolerance in any::<u64>(),
        ) {
            prop_assert_eq!(check(sent_at, now, tolerance), expected(sent_at, now, tolerance));
        }

        #[test]
        fn the_window_is_exact_near_now(
            now in any::<i64>(),
            offset in -1_000_000i64..=1_000_000,
            tolerance in 0u64..=600_000,
        ) {
            let sent_at = now.saturating_add(offset);
            prop_assert_eq!(check(sent_at, now, tolerance), expected(sent_at, now, tolerance));
        }

        #[test]
        fn a_timestamp_is_taken_in_both_directions_alike(
            now in any::<i64>(),
            distance in 0u64..=u64::MAX,
            tolerance in any::<u64>(),
        ) {
            // Whenever both readings exist, a timestamp `distance` ahead is judged
            // as one `distance` behind: taken alike, refused alike.
            if let (Some(ahead), Some(behind)) = (
                now.checked_add_unsigned(distance),
                now.checked_sub_unsigned(distance),
            ) {
                prop_assert_eq!(
                    check(ahead, now, tolerance).is_ok(),
                    check(behind, now, tolerance).is_ok()
                );
            }
        }

        #[test]
        fn every_i64_at_or_above_zero_round_trips(value in 0i64..=i64::MAX) {
            prop_assert_eq!(parse(&value.to_string(), HEADER), Ok(value));
        }

        #[test]
        fn any_text_parses_only_as_its_own_digits(text in "\\PC{0,24}") {
            match parse(&text, HEADER) {
                Ok(value) => {
                    let digits = text.trim();
                    prop_assert!(digits.bytes().all(|b| b.is_ascii_digit()));
                    prop_assert_eq!(digits.trim_start_matches('0').parse::<i64>().unwrap_or(0), value);
                }
                Err(err) => prop_assert_eq!(err, VerifyError::MalformedHeader(HEADER)),
            }
        }

        #[test]
        fn negative_and_signed_values_are_malformed(value in any::<i64>()) {
            let signed = if value < 0 { value.to_string() } else { format!("+{value}") };
            prop_assert_eq!(parse(&signed, HEADER), Err(VerifyError::MalformedHeader(HEADER)));
        }
    }
}
