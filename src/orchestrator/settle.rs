//! Settling: a record edited several times in quick succession is written to the other
//! side at most twice per window: at once for the first change, and once more when the
//! window ends, with whatever the record holds by then.
//!
//! Every change event makes the orchestrator fetch the record and write it when it
//! differs. Without settling, ten edits 100 ms apart would each find a newer value and
//! write it: ten writes for one person's typing, each spending the rate limit. A change
//! of a record whose last writing sync began less than `window` ago waits for the
//! window's end and then writes the record's last value. Only one change per record
//! waits: a change arriving while another waits is covered by that one's sync (which
//! fetches the record after it) and is done at once, so a burst does not hold a worker
//! per event. A sync that wrote nothing (an echo, a duplicate) holds no later change
//! back.
//!
//! The window is kept per process: with several processes, one record's changes may be
//! taken by different processes, and each settles on its own.

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::Duration;

use moka::future::Cache;
use tokio::time::Instant;

use crate::domain::ChangeEvent;

/// Records that began syncing within the window, by record.
pub struct Settling {
    window: Duration,
    began: Cache<String, Instant>,
    /// Records with a change waiting for the window's end.
    waiting: Mutex<HashSet<String>>,
}

/// What a change does about settling.
pub enum Turn {
    /// Settling is off: sync at once.
    Free,
    /// Sync now; hand the turn back when done.
    Taken { key: String, began: Instant },
    /// Another change of the record waits for the window's end, and its sync will read
    /// the record after this change: nothing to do. The window ends in `due`.
    Covered { due: Duration },
}

impl Settling {
    /// `window` zero turns settling off.
    pub fn new(window: Duration) -> Self {
        Self {
            window,
            began: Cache::builder()
                .max_capacity(100_000)
                .time_to_live(window.max(Duration::from_millis(1)))
                .build(),
            waiting: Mutex::new(HashSet::new()),
        }
    }

    /// Waits until the event's record may sync and marks its sync as begun, or tells
    /// that a waiting change covers this one.
    pub async fn turn(&self, event: &ChangeEvent) -> Turn {
        if self.window.is_zero() {
            return Turn::Free;
        }
        let key = format!(
            "{}/{}/{}/{}",
            event.pair, event.entity, event.system, event.external_id
        );
        if let Some(began) = self.began.get(&key).await {
            let until = began + self.window;
            let now = Instant::now();
            if until > now {
                if !self.waiting().insert(key.clone()) {
                    return Turn::Covered { due: until - now };
                }
                tokio::time::sleep_until(until).await;
                self.waiting().remove(&key);
            }
        }
        let began = Instant::now();
        self.began.insert(key.clone(), began).await;
        Turn::Taken { key, began }
    }

    /// Ends a turn. One that wrote nothing releases its mark, unless a later turn of the
    /// same record has begun since.
    pub async fn finish(&self, turn: Turn, wrote: bool) {
        let Turn::Taken { key, began } = turn else {
            return;
        };
        if !wrote && self.began.get(&key).await == Some(began) {
            self.began.invalidate(&key).await;
        }
    }

    fn waiting(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        // A panic while holding this lock leaves a consistent set: use it as it is.
        self.waiting.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;
    use crate::domain::{ChangeKind, EntityType, PairId, System, Trigger};

    fn event(id: &str) -> ChangeEvent {
        ChangeEvent {
            event_id: format!("e-{id}"),
            pair: PairId::new("acme"),
            system: System::Crm,
            entity: EntityType::Customer,
            external_id: id.into(),
            kind: ChangeKind::Upsert,
            occurred_at: Utc::now(),
            trigger: Trigger::Webhook,
            job_id: None,
            transaction_id: None,
            by_tandem: false,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_second_change_within_the_window_waits_for_its_end() {
        let settling = Settling::new(Duration::from_secs(1));
        let start = Instant::now();
        let first = settling.turn(&event("1")).await;
        assert_eq!(
            start.elapsed(),
            Duration::ZERO,
            "the first change goes at once"
        );
        settling.finish(first, true).await;
        tokio::time::advance(Duration::from_millis(100)).await;
        let second = settling.turn(&event("1")).await;
        assert_eq!(start.elapsed(), Duration::from_secs(1));
        settling.finish(second, true).await;
        // Another record is not held back by this one.
        let other_start = Instant::now();
        let _ = settling.turn(&event("2")).await;
        assert_eq!(other_start.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn a_change_arriving_while_another_waits_is_covered_at_once() {
        let settling = std::sync::Arc::new(Settling::new(Duration::from_secs(1)));
        let first = settling.turn(&event("1")).await;
        settling.finish(first, true).await;
        tokio::time::advance(Duration::from_millis(100)).await;
        let waiter = {
            let settling = settling.clone();
            tokio::spawn(async move { settling.turn(&event("1")).await })
        };
        tokio::task::yield_now().await;
        let start = Instant::now();
        match settling.turn(&event("1")).await {
            Turn::Covered { due } => assert_eq!(due, Duration::from_millis(900)),
            _ => panic!("the third change should be covered by the waiting second"),
        }
        assert_eq!(
            start.elapsed(),
            Duration::ZERO,
            "covered changes do not wait"
        );
        assert!(matches!(waiter.await.unwrap(), Turn::Taken { .. }));
        assert_eq!(start.elapsed(), Duration::from_millis(900));
    }

    #[tokio::test(start_paused = true)]
    async fn a_sync_that_wrote_nothing_holds_nothing_back() {
        let settling = Settling::new(Duration::from_secs(1));
        let echo = settling.turn(&event("1")).await;
        settling.finish(echo, false).await;
        let start = Instant::now();
        let _ = settling.turn(&event("1")).await;
        assert_eq!(start.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn a_zero_window_never_waits() {
        let settling = Settling::new(Duration::ZERO);
        assert!(matches!(settling.turn(&event("1")).await, Turn::Free));
        let start = Instant::now();
        assert!(matches!(settling.turn(&event("1")).await, Turn::Free));
        assert_eq!(start.elapsed(), Duration::ZERO);
    }
}
