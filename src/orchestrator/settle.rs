//! Settling: a record edited several times in quick succession is written to the other
//! side at most twice per window: at once for the first change, and once more when the
//! window ends, with whatever the record holds by then.
//!
//! Every change event makes the orchestrator fetch the record and write it when it
//! differs. Without settling, ten edits 100 ms apart would each find a newer value and
//! write it: ten writes for one person's typing, each spending the rate limit. A change
//! of a record whose last writing sync began less than `window` ago waits for the
//! window's end; then the first of the waiting changes writes the record's last value
//! and the others find nothing new. A sync that wrote nothing (an echo, a duplicate)
//! holds no later change back.
//!
//! The window is kept per process: with several processes, one record's changes may be
//! taken by different processes, and each settles on its own.

use std::time::Duration;

use moka::future::Cache;
use tokio::time::Instant;

use crate::domain::ChangeEvent;

/// Records that began syncing within the window, by record.
pub struct Settling {
    window: Duration,
    began: Cache<String, Instant>,
}

/// One record's turn, handed back when its sync is done.
pub struct Turn {
    key: String,
    began: Instant,
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
        }
    }

    /// Waits until the event's record may sync, and marks its sync as begun.
    pub async fn turn(&self, event: &ChangeEvent) -> Option<Turn> {
        if self.window.is_zero() {
            return None;
        }
        let key = format!(
            "{}/{}/{}/{}",
            event.pair, event.entity, event.system, event.external_id
        );
        if let Some(began) = self.began.get(&key).await {
            let until = began + self.window;
            if until > Instant::now() {
                tokio::time::sleep_until(until).await;
            }
        }
        let began = Instant::now();
        self.began.insert(key.clone(), began).await;
        Some(Turn { key, began })
    }

    /// Ends a turn. One that wrote nothing releases its mark, unless a later turn of the
    /// same record has begun since.
    pub async fn finish(&self, turn: Option<Turn>, wrote: bool) {
        let Some(turn) = turn else { return };
        if !wrote && self.began.get(&turn.key).await == Some(turn.began) {
            self.began.invalidate(&turn.key).await;
        }
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
        assert!(settling.turn(&event("1")).await.is_none());
        let start = Instant::now();
        assert!(settling.turn(&event("1")).await.is_none());
        assert_eq!(start.elapsed(), Duration::ZERO);
    }
}
