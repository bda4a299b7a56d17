//! How much bulk work (a resync, a replay) the process has under way, and how much of
//! it sits in batches waiting to be cut.
//!
//! A half-full bulk batch is worth holding while bulk changes are under way elsewhere
//! (waiting for a lock, inside another batch call) or wait in a batch of an earlier
//! [`Stage`] (a change reads before it looks up, and looks up before it writes): they
//! may still join it. Changes waiting in a batch of the same or a later stage will not,
//! so two half-full batches never hold for each other.
//!
//! Process-wide on purpose: the changes that feed one connection's batches are handled
//! by the orchestrator's workers, which know nothing of connections.

use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::Notify;

static UNDER_WAY: AtomicUsize = AtomicUsize::new(0);
static PARKED: [AtomicUsize; 3] = [
    AtomicUsize::new(0),
    AtomicUsize::new(0),
    AtomicUsize::new(0),
];
static CHANGED: Notify = Notify::const_new();

/// Where in a change's handling a batch call comes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stage {
    /// Reading records by id.
    Read = 0,
    /// Looking records up by a natural key or a stamp.
    Find = 1,
    /// Creating or updating records.
    Write = 2,
}

/// One bulk change being handled, from its start to its outcome.
#[derive(Debug)]
pub struct BulkChange(());

impl BulkChange {
    pub fn begin() -> Self {
        UNDER_WAY.fetch_add(1, Ordering::SeqCst);
        CHANGED.notify_waiters();
        Self(())
    }
}

impl Drop for BulkChange {
    fn drop(&mut self) {
        UNDER_WAY.fetch_sub(1, Ordering::SeqCst);
        CHANGED.notify_waiters();
    }
}

/// One bulk item waiting in a batch of `Stage` that has not been sent.
#[derive(Debug)]
pub(super) struct Parked(Stage);

impl Parked {
    pub(super) fn new(stage: Stage) -> Self {
        PARKED[stage as usize].fetch_add(1, Ordering::SeqCst);
        CHANGED.notify_waiters();
        Self(stage)
    }
}

impl Drop for Parked {
    fn drop(&mut self) {
        PARKED[self.0 as usize].fetch_sub(1, Ordering::SeqCst);
        CHANGED.notify_waiters();
    }
}

/// Whether some bulk change may still reach a batch of `stage`: under way somewhere
/// other than a waiting batch, or waiting in a batch of an earlier stage.
pub(super) fn on_its_way(stage: Stage) -> bool {
    let parked = PARKED.each_ref().map(|p| p.load(Ordering::SeqCst));
    UNDER_WAY.load(Ordering::SeqCst) > parked.iter().sum::<usize>()
        || parked[..stage as usize].iter().any(|&p| p > 0)
}

/// Returns when the counts have changed, or at once when nothing is on its way to a
/// batch of `stage`.
pub(super) async fn changed(stage: Stage) {
    let changed = CHANGED.notified();
    tokio::pin!(changed);
    changed.as_mut().enable();
    if !on_its_way(stage) {
        return;
    }
    changed.await;
}
