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

/// The delay before a change that waited on a system out of service comes back: about
/// as long as the system has been out (at least 15 s, at most 5 minutes), half of it
/// jittered, so a long outage costs each waiting change few deliveries and the changes
/// do not all come back in one wave.
pub fn postponement(out_for: Duration) -> Duration {
    let base = out_for.clamp(Duration::from_secs(15), CAP);
    let half = base / 2;
    half + Duration::from_millis(rand::thread_rng().gen_range(0..=half.as_millis() as u64))
}

/// How long a change waits for a spent budget that is renewed in `retry_after`: a
/// little past it, spread so the changes that waited do not all come back at once.
pub fn until_renewed(retry_after: Duration) -> Duration {
    let spread = (retry_after / 100).min(Duration::from_secs(60));
    retry_after + Duration::from_millis(rand::thread_rng().gen_range(0..=spread.as_millis() as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spent_budget_waits_past_its_renewal_and_not_much_longer() {
        for _ in 0..50 {
            let hours = Duration::from_secs(5 * 3600);
            let wait = until_renewed(hours);
            assert!(
                wait >= hours && wait <= hours + Duration::from_secs(60),
                "{wait:?}"
            );
            let minutes = Duration::from_secs(600);
            let wait = until_renewed(minutes);
            assert!(
                wait >= minutes && wait <= minutes + Duration::from_secs(6),
                "{wait:?}"
            );
        }
    }

    #[test]
    fn a_longer_outage_postpones_longer_within_bounds() {
        for _ in 0..50 {
            let soon = postponement(Duration::ZERO);
            assert!(soon >= Duration::from_millis(7_500) && soon <= Duration::from_secs(15));
            let long = postponement(Duration::from_secs(3600));
            assert!(long >= CAP / 2 && long <= CAP);
        }
    }

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
