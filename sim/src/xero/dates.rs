//! Xero's date formats: `/Date(<ms>+0000)/` for timestamps, `YYYY-MM-DDT00:00:00` for
//! calendar dates, `If-Modified-Since` in whatever ISO 8601 / HTTP form a client sends,
//! and the webhook's `eventDateUtc` (UTC without a zone suffix).

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone as _, Utc};

/// Unix milliseconds now.
pub(crate) fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

/// The next `UpdatedDateUTC` of a record last stamped `previous`: never earlier than
/// now and always after the previous stamp, so a poller ordering by it never sees a
/// change slip in behind one it already read.
pub(crate) fn next_stamp(previous: Option<i64>) -> i64 {
    let now = now_ms();
    match previous {
        Some(last) => now.max(last + 1),
        None => now,
    }
}

/// `/Date(1700000000000+0000)/`, as Xero's JSON answers timestamps.
pub(crate) fn xero_timestamp(ms: i64) -> String {
    format!("/Date({ms}+0000)/")
}

/// `2026-11-23T10:15:39.902`: UTC without a zone suffix, as Xero's webhooks write it.
pub(crate) fn event_date(ms: i64) -> String {
    match Utc.timestamp_millis_opt(ms).single() {
        Some(t) => t.format("%Y-%m-%dT%H:%M:%S%.3f").to_string(),
        None => String::new(),
    }
}

/// A calendar date as the simulator answers it: `YYYY-MM-DDT00:00:00`.
pub(crate) fn day(date: NaiveDate) -> String {
    format!("{}T00:00:00", date.format("%Y-%m-%d"))
}

/// A calendar date as clients send it: `YYYY-MM-DD`, `YYYY-MM-DDTHH:MM:SS[.fff]`
/// (the time is dropped) or `/Date(<ms>[+hhmm])/`.
pub(crate) fn parse_day(value: &str) -> Option<NaiveDate> {
    let value = value.trim();
    if let Some(ms) = parse_xero_timestamp(value) {
        return Utc
            .timestamp_millis_opt(ms)
            .single()
            .map(|t| t.date_naive());
    }
    let date_part = value.split('T').next().unwrap_or(value);
    NaiveDate::parse_from_str(date_part, "%Y-%m-%d").ok()
}

/// `/Date(1700000000000+0000)/` or `/Date(1700000000000)/` into Unix milliseconds.
pub(crate) fn parse_xero_timestamp(value: &str) -> Option<i64> {
    let inner = value.strip_prefix("/Date(")?.strip_suffix(")/")?;
    // The offset only says which zone the writer was in; the milliseconds are UTC.
    let digits_end = inner
        .char_indices()
        .skip(1)
        .find(|(_, c)| *c == '+' || *c == '-')
        .map_or(inner.len(), |(i, _)| i);
    inner[..digits_end].parse().ok()
}

/// An `If-Modified-Since` value into Unix milliseconds. Xero's SDKs send ISO 8601
/// without an offset (meaning UTC); others send RFC 3339 with one, or an HTTP date.
pub(crate) fn parse_since(value: &str) -> Option<i64> {
    let value = value.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(value) {
        return Some(t.timestamp_millis());
    }
    // RFC 3339 demands seconds and a `T`; be lenient about both.
    for format in [
        "%Y-%m-%dT%H:%M:%S%.f%:z",
        "%Y-%m-%dT%H:%M:%S%.f%z",
        "%Y-%m-%dT%H:%M%:z",
        "%Y-%m-%d %H:%M:%S%.f%:z",
    ] {
        if let Ok(t) = DateTime::parse_from_str(value, format) {
            return Some(t.timestamp_millis());
        }
    }
    let naive = value.trim_end_matches('Z');
    for format in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M:%S%.f",
    ] {
        if let Ok(t) = NaiveDateTime::parse_from_str(naive, format) {
            return Some(t.and_utc().timestamp_millis());
        }
    }
    if let Ok(d) = NaiveDate::parse_from_str(naive, "%Y-%m-%d") {
        return d
            .and_hms_opt(0, 0, 0)
            .map(|t| t.and_utc().timestamp_millis());
    }
    if let Ok(t) = DateTime::parse_from_rfc2822(value) {
        return Some(t.timestamp_millis());
    }
    parse_xero_timestamp(value)
}

/// The expiry moment in the words of Xero's 401 answer.
pub(crate) fn expiry_words(at: DateTime<Utc>) -> String {
    at.format("%m/%d/%Y %H:%M:%S").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_parses() {
        assert_eq!(
            xero_timestamp(1_700_000_000_000),
            "/Date(1700000000000+0000)/"
        );
        assert_eq!(
            parse_xero_timestamp("/Date(1700000000000+0000)/"),
            Some(1_700_000_000_000)
        );
        assert_eq!(
            parse_xero_timestamp("/Date(1700000000000)/"),
            Some(1_700_000_000_000)
        );
        assert_eq!(event_date(1_718_932_539_902), "2024-06-21T01:15:39.902");
        let d = parse_day("2024-06-21").expect("date");
        assert_eq!(day(d), "2024-06-21T00:00:00");
        assert_eq!(parse_day("2024-06-21T00:00:00"), Some(d));
        assert_eq!(
            parse_since("2024-06-21T01:15:39.902"),
            Some(1_718_932_539_902)
        );
        assert_eq!(
            parse_since("2024-06-21T01:15:39.902Z"),
            Some(1_718_932_539_902)
        );
        assert_eq!(
            parse_since("2024-06-21T03:15:39.902+02:00"),
            Some(1_718_932_539_902)
        );
        assert_eq!(
            parse_since("Fri, 21 Jun 2024 01:15:39 GMT"),
            Some(1_718_932_539_000)
        );
        assert_eq!(parse_since("nonsense"), None);
    }

    #[test]
    fn stamps_always_move_forward() {
        let far = now_ms() + 10_000;
        assert_eq!(next_stamp(Some(far)), far + 1);
        assert!(next_stamp(None) >= now_ms() - 1000);
    }
}
