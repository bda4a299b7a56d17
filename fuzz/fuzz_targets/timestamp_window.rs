//! The freshness window and the timestamp parser on any text and any clock, checked
//! against the same rule computed in i128, where nothing can overflow.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use webhooks::{freshness, VerifyError};

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    text: &'a str,
    sent_at: i64,
    now: i64,
    tolerance: u64,
}

fuzz_target!(|input: Input<'_>| {
    match freshness::parse(input.text, "x-timestamp") {
        Ok(value) => {
            let digits = input.text.trim();
            assert!(!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()));
            assert_eq!(digits.parse::<i128>().ok(), Some(i128::from(value)));
        }
        Err(err) => assert_eq!(err, VerifyError::MalformedHeader("x-timestamp")),
    }
    let distance = i128::from(input.now) - i128::from(input.sent_at);
    let expected = if distance.unsigned_abs() <= u128::from(input.tolerance) {
        Ok(())
    } else if distance > 0 {
        Err(VerifyError::StaleTimestamp)
    } else {
        Err(VerifyError::FutureTimestamp)
    };
    assert_eq!(
        freshness::check(input.sent_at, input.now, input.tolerance),
        expected
    );
});
