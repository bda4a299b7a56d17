//! Any text as each kind of admin parameter: every rule answers a value within its
//! range or a refusal that names the range and repeats the input only escaped and
//! shortened; never a panic (a non-ASCII unit, a number beyond `i64`, a year 1 to 9999
//! once crashed or slipped through handlers).
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use params::limits::{OFFSET, PAIR_NAME_CHARS, RECORD_ID_CHARS, REPLAY_DAYS, STATS_WINDOW_DAYS};

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    text: &'a str,
    other: &'a str,
    max: u64,
}

fn refused_cleanly(refusal: &params::Refusal) {
    assert!(!refusal.got.chars().any(char::is_control), "{refusal:?}");
    assert!(refusal.got.chars().count() <= params::SHOWN * 10 + 1, "{refusal:?}");
    assert!(!refusal.allowed.is_empty());
}

fuzz_target!(|input: Input<'_>| {
    let text = input.text;
    match params::count(text, 1, input.max) {
        Ok(n) => {
            assert!((1..=input.max).contains(&n));
            assert!(text.bytes().all(|b| b.is_ascii_digit()));
        }
        Err(refusal) => refused_cleanly(&refusal),
    }
    if let Ok(n) = params::count(text, 0, OFFSET) {
        assert!(n <= OFFSET);
    }
    match params::window(text) {
        Ok(length) => {
            assert!(length >= chrono::Duration::minutes(1));
            assert!(length <= chrono::Duration::days(STATS_WINDOW_DAYS as i64));
        }
        Err(refusal) => refused_cleanly(&refusal),
    }
    let earliest: chrono::DateTime<chrono::Utc> = params::EARLIEST.parse().unwrap();
    let latest: chrono::DateTime<chrono::Utc> = params::LATEST.parse().unwrap();
    let from = params::instant(text);
    let to = params::instant(input.other);
    for time in [&from, &to] {
        match time {
            Ok(time) => assert!(*time >= earliest && *time <= latest),
            Err(refusal) => refused_cleanly(refusal),
        }
    }
    if let (Ok(from), Ok(to)) = (from, to) {
        match params::span(from, to, REPLAY_DAYS) {
            Ok(span) => {
                assert!(span.from < span.to);
                assert!(span.to - span.from <= chrono::Duration::days(REPLAY_DAYS));
            }
            Err(refusal) => refused_cleanly(&refusal),
        }
    }
    match params::record_id(text) {
        Ok(id) => {
            assert!(!id.is_empty() && id.chars().count() <= RECORD_ID_CHARS);
            assert!(!id.chars().any(char::is_control));
        }
        Err(refusal) => refused_cleanly(&refusal),
    }
    match params::pair_name(text) {
        Ok(name) => {
            assert!(!name.is_empty() && name.len() <= PAIR_NAME_CHARS);
            assert!(name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_'));
        }
        Err(refusal) => refused_cleanly(&refusal),
    }
    match params::search_text(text) {
        Ok(found) => assert!(!found.chars().any(char::is_control) && found.chars().count() >= 2),
        Err(refusal) => refused_cleanly(&refusal),
    }
    match params::word(text, &["customer", "invoice"]) {
        Ok(word) => assert_eq!(word, text),
        Err(refusal) => refused_cleanly(&refusal),
    }
});
