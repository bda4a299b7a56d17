//! Whose turn it is at a rate gate when several batches wait for the next call.
//!
//! Under a tight limit (Xero's 60 calls a minute) every kind of batch call (reads,
//! look-ups, creates, updates, of contacts and of invoices) waits at the same gate.
//! Taken in turn, each kind gets the same number of calls whatever its share of the
//! work: the busiest kind falls behind while quiet kinds spend calls on two or three
//! items. So the next call goes to the batch carrying the most, live before bulk; a
//! batch passed over for [`PASSED_OVER`] goes first (oldest first), so a quiet kind
//! still gets a call within a few seconds.

use std::time::Duration;

use tokio::time::Instant;

use super::gate::Priority;

/// How long a waiting batch may be passed over for fuller ones.
pub const PASSED_OVER: Duration = Duration::from_secs(5);
/// How long a turn given is kept for its call: the winner's call takes the slot within
/// moments, and no other batch is cut meanwhile to wait behind it.
pub const PROMISE: Duration = Duration::from_millis(250);

#[derive(Debug, Clone, Copy)]
struct Claim {
    id: u64,
    priority: Priority,
    items: usize,
    since: Instant,
}

impl Claim {
    /// Orders claims: the greater goes first.
    fn rank(&self, now: Instant) -> (bool, bool, i128, usize) {
        let live = self.priority == Priority::Live;
        let waited = now.saturating_duration_since(self.since);
        let overdue = waited >= PASSED_OVER;
        // Overdue claims go oldest first; the others fullest first, then oldest.
        let age = waited.as_millis() as i128;
        if overdue {
            (live, true, age, self.items)
        } else {
            (live, false, self.items as i128, age as usize)
        }
    }
}

/// The batches waiting for the gate, and the turn last given.
#[derive(Debug, Default)]
pub struct Turns {
    claims: Vec<Claim>,
    next_id: u64,
    promised_until: Option<Instant>,
}

/// What a waiting batch learns when the gate would let a call through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Turn {
    /// Go: the call is this batch's.
    Yours,
    /// Another batch was just given the turn; wait until its call took the slot.
    Promised { until: Instant },
    /// Another batch carries more (or has waited longer).
    Theirs,
}

impl Turns {
    /// Registers a batch of `items` waiting since `since`; its id.
    pub fn claim(&mut self, priority: Priority, items: usize, since: Instant) -> u64 {
        self.next_id += 1;
        self.claims.push(Claim {
            id: self.next_id,
            priority,
            items,
            since,
        });
        self.next_id
    }

    /// Batches waiting for a call.
    pub fn waiting(&self) -> usize {
        self.claims.len()
    }

    pub fn withdraw(&mut self, id: u64) {
        self.claims.retain(|c| c.id != id);
    }

    /// Whether claim `id` may take the call the gate would let through now; if so it
    /// is withdrawn and the turn promised to it. `live_can_go` is false when only bulk
    /// work may call now (live work is paced, bulk is not): live claims are passed by.
    pub fn take(&mut self, id: u64, now: Instant, live_can_go: bool) -> Turn {
        if let Some(until) = self.promised_until.filter(|u| *u > now) {
            return Turn::Promised { until };
        }
        self.promised_until = None;
        let best = self
            .claims
            .iter()
            .filter(|c| live_can_go || c.priority != Priority::Live)
            .max_by_key(|c| c.rank(now))
            .map(|c| c.id);
        if best != Some(id) {
            return Turn::Theirs;
        }
        self.withdraw(id);
        self.promised_until = Some(now + PROMISE);
        Turn::Yours
    }

    /// A call took a slot: the turn given, if any, was used.
    pub fn used(&mut self) {
        self.promised_until = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fullest_live_batch_goes_first() {
        let mut turns = Turns::default();
        let now = Instant::now();
        let bulk = turns.claim(Priority::Bulk, 50, now);
        let small = turns.claim(Priority::Live, 3, now);
        let full = turns.claim(Priority::Live, 40, now);
        assert_eq!(turns.take(small, now, true), Turn::Theirs);
        assert_eq!(
            turns.take(bulk, now, true),
            Turn::Theirs,
            "live before bulk"
        );
        assert_eq!(turns.take(full, now, true), Turn::Yours);
        // Until that call takes its slot, nobody else is let through.
        assert!(matches!(
            turns.take(small, now, true),
            Turn::Promised { .. }
        ));
        turns.used();
        assert_eq!(turns.take(small, now, true), Turn::Yours);
        turns.used();
        assert_eq!(turns.take(bulk, now, true), Turn::Yours);
    }

    #[test]
    fn bulk_takes_a_call_that_live_work_may_not_make_yet() {
        let mut turns = Turns::default();
        let now = Instant::now();
        let live = turns.claim(Priority::Live, 50, now);
        let bulk = turns.claim(Priority::Bulk, 5, now);
        assert_eq!(turns.take(bulk, now, false), Turn::Yours);
        turns.used();
        assert_eq!(turns.take(live, now, true), Turn::Yours);
    }

    #[test]
    fn a_batch_passed_over_long_enough_goes_before_fuller_ones() {
        let mut turns = Turns::default();
        let now = Instant::now();
        let old = turns.claim(Priority::Live, 2, now - PASSED_OVER);
        let full = turns.claim(Priority::Live, 50, now);
        assert_eq!(turns.take(full, now, true), Turn::Theirs);
        assert_eq!(turns.take(old, now, true), Turn::Yours);
    }

    #[test]
    fn an_unused_turn_lapses() {
        let mut turns = Turns::default();
        let now = Instant::now();
        let first = turns.claim(Priority::Live, 10, now);
        let second = turns.claim(Priority::Live, 5, now);
        assert_eq!(turns.take(first, now, true), Turn::Yours);
        assert!(matches!(
            turns.take(second, now, true),
            Turn::Promised { .. }
        ));
        assert_eq!(turns.take(second, now + PROMISE, true), Turn::Yours);
    }
}
