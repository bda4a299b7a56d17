//! Times and lengths of time: a window such as `24h`, an RFC 3339 time, and a span
//! from one time to another. Every value is bounded before any arithmetic, so no
//! input can overflow a duration or a date.

use chrono::{DateTime, Duration, Utc};

use crate::limits::STATS_WINDOW_DAYS;
use crate::Refusal;

/// The earliest time a parameter may name: no record of Tandem's is older.
pub const EARLIEST: &str = "2000-01-01T00:00:00Z";
/// The latest time a parameter may name.
pub const LATEST: &str = "2100-01-01T00:00:00Z";

fn bound(text: &str) -> DateTime<Utc> {
    // Both bounds are constants above, which parse.
    text.parse().unwrap_or(DateTime::UNIX_EPOCH)
}

/// A length of time such as `90m`, `24h` or `7d`: ASCII digits, then `m`, `h` or `d`,
/// from one minute to [`STATS_WINDOW_DAYS`] days.
pub fn window(text: &str) -> Result<Duration, Refusal> {
    let refused = || {
        Refusal::new(
            format!("a window from 1m to {STATS_WINDOW_DAYS}d, such as 90m, 24h or 7d"),
            text,
        )
    };
    // The unit is the last character, not byte: `1é` must not be cut inside the `é`.
    let mut chars = text.chars();
    let Some(unit) = chars.next_back() else {
        return Err(refused());
    };
    let digits = chars.as_str();
    // Six digits are more minutes than the longest window, and cannot overflow.
    if digits.is_empty() || digits.len() > 6 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(refused());
    }
    let n: u64 = digits.parse().map_err(|_| refused())?;
    let minutes = match unit {
        'm' => n,
        'h' => n * 60,
        'd' => n * 24 * 60,
        _ => return Err(refused()),
    };
    if minutes == 0 || minutes > STATS_WINDOW_DAYS * 24 * 60 {
        return Err(refused());
    }
    i64::try_from(minutes)
        .map(Duration::minutes)
        .map_err(|_| refused())
}

/// An RFC 3339 time (`2026-12-01T00:00:00Z`, any offset) from [`EARLIEST`] to
/// [`LATEST`].
pub fn instant(text: &str) -> Result<DateTime<Utc>, Refusal> {
    let refused = || {
        Refusal::new(
            format!("an RFC 3339 time such as 2026-12-01T00:00:00Z, from {EARLIEST} to {LATEST}"),
            text,
        )
    };
    // The longest RFC 3339 time with nanoseconds and an offset is 35 characters.
    if text.len() > 40 {
        return Err(refused());
    }
    let time: DateTime<Utc> = text.parse().map_err(|_| refused())?;
    if time < bound(EARLIEST) || time > bound(LATEST) {
        return Err(refused());
    }
    Ok(time)
}

/// A time span, `from` before `to`, at most `max_days` long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
}

/// Checks that `from` comes before `to` and that they are at most `max_days` apart;
/// both are already within [`EARLIEST`] and [`LATEST`], so the difference cannot
/// overflow.
pub fn span(from: DateTime<Utc>, to: DateTime<Utc>, max_days: i64) -> Result<Span, Refusal> {
    let shown = format!("{} to {}", from.to_rfc3339(), to.to_rfc3339());
    if from >= to {
        return Err(Refusal::new("a start before the end", &shown));
    }
    if to - from > Duration::days(max_days) {
        return Err(Refusal::new(
            format!("at most {max_days} days long"),
            &shown,
        ));
    }
    Ok(Span { from, to })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn windows_that_would_overflow_or_are_not_ascii_are_refused() {
        for text in [
            "",
            "h",
            "0h",
            "91d",
            "2161h",
            "129601m",
            "9223372036854775807d",
            "-1h",
            "1٣h",
            "1é",
            "1 h",
            "+1h",
            "1H",
            "24hh",
        ] {
            assert!(window(text).is_err(), "{text:?} was read");
        }
        assert_eq!(window("90d"), Ok(Duration::days(90)));
        assert_eq!(window("1m"), Ok(Duration::minutes(1)));
    }

    #[test]
    fn times_outside_the_range_are_refused() {
        for text in [
            "0001-01-01T00:00:00Z",
            "9999-12-31T23:59:59Z",
            "2026-13-01T00:00:00Z",
            "now",
        ] {
            let refusal = instant(text).unwrap_err();
            assert!(refusal.allowed.contains(EARLIEST), "{refusal}");
        }
        assert!(instant("2026-12-01T01:00:00+01:00").is_ok());
    }

    #[test]
    fn a_span_is_ordered_and_bounded() {
        let at = |t: &str| instant(t).unwrap();
        assert!(span(at("2026-01-01T00:00:00Z"), at("2026-01-01T00:00:00Z"), 31).is_err());
        assert!(span(at("2026-01-01T00:00:00Z"), at("2026-03-01T00:00:00Z"), 31).is_err());
        assert!(span(at("2026-01-01T00:00:00Z"), at("2026-02-01T00:00:00Z"), 31).is_ok());
    }

    proptest! {
        #[test]
        fn a_window_is_read_exactly_when_it_is_in_range(n in 0u64..10_000_000, unit in "[mhdsx]") {
            let minutes = match unit.as_str() { "m" => Some(n), "h" => Some(n * 60), "d" => Some(n * 1440), _ => None };
            let read = window(&format!("{n}{unit}"));
            let expected = minutes.filter(|m| (1..=STATS_WINDOW_DAYS * 1440).contains(m));
            prop_assert_eq!(read.ok(), expected.map(|m| Duration::minutes(m as i64)));
        }

        #[test]
        fn any_text_is_a_bounded_window_or_refused(text in "\\PC{0,12}") {
            if let Ok(length) = window(&text) {
                prop_assert!(length >= Duration::minutes(1) && length <= Duration::days(90));
            }
        }

        #[test]
        fn an_accepted_time_is_in_range(secs in i64::MIN / 1000..i64::MAX / 1000) {
            if let Some(time) = DateTime::<Utc>::from_timestamp(secs, 0) {
                let read = instant(&time.to_rfc3339());
                let in_range = time >= bound(EARLIEST) && time <= bound(LATEST);
                prop_assert_eq!(read.is_ok(), in_range);
            }
        }
    }
}
