//! What waits inside this process, and for what. A change taken from the bus waits for
//! a worker, then perhaps for its record's lock and for its connection's rate budget,
//! before and between the calls that do the work. The broker's queue depth sees none
//! of that: without these figures a backlog held in the process reads as an empty
//! queue.
//!
//! Each change holds a [`Ticket`] from the moment it is taken until it is answered; the
//! code that makes it wait marks the wait with [`waiting`], which finds the change's
//! ticket through a task-local, so the store and the connectors need not know about
//! tickets. This module depends on nothing else in the crate.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use serde::Serialize;

/// What a change in the process is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// Taken from the bus, waiting for a worker.
    Slot,
    /// Waiting for its record's lock (another change of the same record is running).
    Lock,
    /// Waiting for its connection's rate budget.
    Rate,
    /// Working: reading, deciding, writing.
    Running,
}

impl Stage {
    pub const ALL: [Stage; 4] = [Stage::Slot, Stage::Lock, Stage::Rate, Stage::Running];

    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Slot => "slot",
            Stage::Lock => "lock",
            Stage::Rate => "rate",
            Stage::Running => "running",
        }
    }
}

/// Where a change belongs: its pair and the lane it came on.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Place {
    pub pair: String,
    pub lane: &'static str,
}

/// The figures of one pair and lane.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Figures {
    pub slot: u64,
    pub lock: u64,
    pub rate: u64,
    pub running: u64,
    /// When the oldest change here was first published (Unix ms).
    pub oldest_published_ms: Option<u64>,
}

impl Figures {
    /// Changes waiting (not working).
    pub fn waiting(&self) -> u64 {
        self.slot + self.lock + self.rate
    }

    fn count(&mut self, stage: Stage) -> &mut u64 {
        match stage {
            Stage::Slot => &mut self.slot,
            Stage::Lock => &mut self.lock,
            Stage::Rate => &mut self.rate,
            Stage::Running => &mut self.running,
        }
    }
}

#[derive(Default)]
struct Entry {
    stages: HashMap<Stage, u64>,
    /// Publish times of the changes here, with how many share each.
    published: BTreeMap<u64, u64>,
}

/// Every change in this process, by pair and lane.
#[derive(Clone, Default)]
pub struct Backlog {
    inner: Arc<Mutex<HashMap<Place, Entry>>>,
}

impl Backlog {
    /// Registers a change just taken from the bus; it waits for a worker.
    pub fn take(&self, place: Place, published_ms: u64) -> Ticket {
        {
            let mut inner = self.lock();
            let entry = inner.entry(place.clone()).or_default();
            *entry.stages.entry(Stage::Slot).or_default() += 1;
            *entry.published.entry(published_ms).or_default() += 1;
        }
        Ticket {
            state: Arc::new(Mutex::new(TicketState {
                backlog: self.clone(),
                place,
                published_ms,
                stage: Stage::Slot,
            })),
        }
    }

    /// The figures now, by pair and lane.
    pub fn figures(&self) -> BTreeMap<Place, Figures> {
        self.lock()
            .iter()
            .map(|(place, entry)| {
                let mut figures = Figures {
                    oldest_published_ms: entry.published.keys().next().copied(),
                    ..Figures::default()
                };
                for (stage, n) in &entry.stages {
                    *figures.count(*stage) += n;
                }
                (place.clone(), figures)
            })
            .filter(|(_, f)| f.waiting() + f.running > 0)
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Place, Entry>> {
        // The counts stay consistent whatever panicked while holding the lock.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn move_stage(&self, place: &Place, from: Stage, to: Stage) {
        let mut inner = self.lock();
        if let Some(entry) = inner.get_mut(place) {
            if let Some(n) = entry.stages.get_mut(&from) {
                *n = n.saturating_sub(1);
            }
            *entry.stages.entry(to).or_default() += 1;
        }
    }

    fn leave(&self, place: &Place, stage: Stage, published_ms: u64) {
        let mut inner = self.lock();
        let Some(entry) = inner.get_mut(place) else {
            return;
        };
        if let Some(n) = entry.stages.get_mut(&stage) {
            *n = n.saturating_sub(1);
        }
        if let Some(n) = entry.published.get_mut(&published_ms) {
            *n -= 1;
            if *n == 0 {
                entry.published.remove(&published_ms);
            }
        }
        if entry.published.is_empty() {
            inner.remove(place);
        }
    }
}

struct TicketState {
    backlog: Backlog,
    place: Place,
    published_ms: u64,
    stage: Stage,
}

/// One change's place in the backlog, from when it is taken until it is answered (the
/// last clone dropped).
#[derive(Clone)]
pub struct Ticket {
    state: Arc<Mutex<TicketState>>,
}

impl Ticket {
    /// Moves the change to `stage`; answers the stage it was in.
    pub fn enter(&self, stage: Stage) -> Stage {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let before = state.stage;
        if before != stage {
            state.backlog.move_stage(&state.place, before, stage);
            state.stage = stage;
        }
        before
    }

    /// Runs `work` with this ticket as the task's current change, so that [`waiting`]
    /// inside it marks this change's waits.
    pub async fn scope<F: std::future::Future>(self, work: F) -> F::Output {
        CURRENT.scope(self, work).await
    }
}

impl Drop for TicketState {
    fn drop(&mut self) {
        // The last clone of the ticket is gone: the change left the process.
        self.backlog
            .leave(&self.place, self.stage, self.published_ms);
    }
}

tokio::task_local! {
    static CURRENT: Ticket;
}

/// Marks the current change as waiting at `stage` until the guard is dropped, when it
/// goes back to what it was doing. Outside a change (a poller's call, say) it marks
/// nothing.
pub fn waiting(stage: Stage) -> Option<Waiting> {
    CURRENT
        .try_with(|ticket| {
            let before = ticket.enter(stage);
            Waiting {
                ticket: ticket.clone(),
                before,
            }
        })
        .ok()
}

/// A wait in progress; see [`waiting`].
pub struct Waiting {
    ticket: Ticket,
    before: Stage,
}

impl Drop for Waiting {
    fn drop(&mut self) {
        self.ticket.enter(self.before);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn place(pair: &str) -> Place {
        Place {
            pair: pair.into(),
            lane: "live",
        }
    }

    #[tokio::test]
    async fn a_change_is_counted_where_it_waits_and_leaves_when_answered() {
        let backlog = Backlog::default();
        let ticket = backlog.take(place("a"), 1_000);
        let other = backlog.take(place("a"), 2_000);
        let figures = backlog.figures()[&place("a")].clone();
        assert_eq!(
            (figures.slot, figures.oldest_published_ms),
            (2, Some(1_000))
        );
        ticket.enter(Stage::Running);
        let seen = ticket
            .clone()
            .scope(async {
                let _rate = waiting(Stage::Rate).expect("inside a change");
                backlog.figures()[&place("a")].clone()
            })
            .await;
        assert_eq!((seen.slot, seen.rate, seen.running), (1, 1, 0));
        let after = backlog.figures()[&place("a")].clone();
        assert_eq!((after.rate, after.running), (0, 1), "back to running");
        drop(ticket);
        let left = backlog.figures()[&place("a")].clone();
        assert_eq!(
            (left.slot, left.running, left.oldest_published_ms),
            (1, 0, Some(2_000))
        );
        drop(other);
        assert!(backlog.figures().is_empty());
        assert!(
            waiting(Stage::Lock).is_none(),
            "outside a change nothing is marked"
        );
    }
}
