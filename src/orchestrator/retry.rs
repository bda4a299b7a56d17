//! When to try a failed change again: exponential backoff with full jitter, never
//! sooner than the system's own `Retry-After`.

use std::time::Duration;

use rand::Rng;

const BASE: Duration = Duration::from_secs(1);
const CAP: Duration = Duration::from_secs(300);

/// The delay before attempt `attempt + 1`. Full jitter spreads retries of many changes
/// that failed together (an outage) instead of sending them back in one wave.
pub fn backoff(attempt: u32, retry_after: Option<Duration>) -> Duration {
    let ceiling = BASE
        .saturating_mul(1u32 << attempt.saturating_sub(1).min(16))
        .min(CAP);
    let jittered =
        Duration::from_millis(rand::thread_rng().gen_range(0..=ceiling.as_millis() as u64));
    match retry_after {
        Some(floor) => jittered.max(floor),
        None => jittered,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_within_its_ceiling_and_respects_retry_after() {
        for attempt in 1..12 {
            let ceiling = BASE.saturating_mul(1 << (attempt - 1)).min(CAP);
            for _ in 0..50 {
                assert!(backoff(attempt, None) <= ceiling);
                assert!(backoff(attempt, Some(Duration::from_secs(2))) >= Duration::from_secs(2));
            }
        }
    }
}
