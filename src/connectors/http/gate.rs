//! The rate gate of one connection, shared by every worker of a process: sliding
//! windows (calls in any N seconds), a cap on calls at once, a pause that a 429's
//! `Retry-After` (or a limit header at zero) imposes on everyone, and live changes
//! served before bulk work.
//!
//! Sliding windows rather than a token bucket: the services count calls in rolling
//! windows, and a bucket that refills while the window still holds old calls lets a
//! burst through that the service refuses.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::connectors::health::GateWatch;
pub use crate::connectors::health::Spent;

use super::turns::{Turn, Turns};

/// Which work a call serves. Live changes (webhooks, polls) go before bulk work
/// (resyncs, replays, backfills) when both wait for the same connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Priority {
    #[default]
    Live,
    Bulk,
}

tokio::task_local! {
    static PRIORITY: Priority;
}

/// Runs `future` with every call it makes counted at `priority`.
pub async fn with_priority<F: std::future::Future>(priority: Priority, future: F) -> F::Output {
    PRIORITY.scope(priority, future).await
}

/// The priority of the change being handled on this task (live when none was set).
pub fn current_priority() -> Priority {
    PRIORITY.try_with(|p| *p).unwrap_or_default()
}

/// At most `max` calls in any `per`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub max: usize,
    pub per: Duration,
}

/// Calls in flight are counted against windows from when they were sent; the service
/// counts them from when they arrived. This margin covers the difference.
const SKEW: Duration = Duration::from_millis(150);

/// A steady pace within the windows for live work: `per_second` on average, `burst` at
/// once. Spent at the start of a window, a budget leaves nothing for the live changes
/// that come later in it; paced, a connection's batches fill while they wait, so each
/// call carries more. Bulk work (a resync, a backfill) is held to the windows only: it
/// is a job someone asked to finish, its batches wait to fill on their own, and it
/// yields to live work waiting for a slot.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pace {
    pub per_second: f64,
    pub burst: f64,
}

/// A pause at least this long is a spent budget, not a breather: calls do not wait
/// it out (a change would sit unacknowledged for hours) but fail at once, and their
/// changes come back when it ends.
pub const LONG_PAUSE: Duration = Duration::from_secs(5 * 60);

#[derive(Debug)]
struct State {
    sent: Vec<VecDeque<Instant>>,
    paused_until: Option<Instant>,
    /// The limit a long pause is for (`daily`), while it lasts.
    spent: Option<(&'static str, Instant)>,
    tokens: f64,
    refilled: Instant,
    turns: Turns,
}

#[derive(Debug)]
pub struct RateGate {
    windows: Vec<Window>,
    pace: Option<Pace>,
    state: Mutex<State>,
    at_once: Arc<Semaphore>,
    live_waiting: AtomicUsize,
    changed: Notify,
    waits: AtomicU64,
}

/// Held for the length of one call.
#[derive(Debug)]
pub struct GatePermit {
    _at_once: OwnedSemaphorePermit,
}

impl RateGate {
    pub fn new(windows: Vec<Window>, at_once: usize) -> Arc<Self> {
        Self::paced(windows, None, at_once)
    }

    pub fn paced(windows: Vec<Window>, pace: Option<Pace>, at_once: usize) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(State {
                sent: windows.iter().map(|_| VecDeque::new()).collect(),
                paused_until: None,
                spent: None,
                tokens: pace.map_or(0.0, |p| p.burst),
                refilled: Instant::now(),
                turns: Turns::default(),
            }),
            windows,
            pace,
            at_once: Arc::new(Semaphore::new(at_once.max(1))),
            live_waiting: AtomicUsize::new(0),
            changed: Notify::new(),
            waits: AtomicU64::new(0),
        })
    }

    /// No limit at all (tests, and systems without published limits).
    pub fn unlimited() -> Arc<Self> {
        Self::new(Vec::new(), 1024)
    }

    /// Waits until a call may be sent at `priority`, and counts it.
    pub async fn acquire(&self, priority: Priority) -> GatePermit {
        let _live = (priority == Priority::Live).then(|| LiveWaiting::new(self));
        let _waiting = crate::backlog::waiting(crate::backlog::Stage::Rate);
        let permit = loop {
            // Bulk work yields the next free slot to live work waiting for it.
            if priority == Priority::Bulk && self.live_waiting.load(Ordering::SeqCst) > 0 {
                self.wait(Duration::from_millis(50)).await;
                continue;
            }
            let Ok(permit) = self.at_once.clone().acquire_owned().await else {
                // The semaphore is never closed; wait and try again if it were.
                self.wait(Duration::from_millis(50)).await;
                continue;
            };
            match self.slot(true, priority) {
                None => break permit,
                Some(wait) => {
                    drop(permit);
                    self.waits.fetch_add(1, Ordering::Relaxed);
                    self.wait(wait).await;
                }
            }
        };
        GatePermit { _at_once: permit }
    }

    /// Waits until a call at `priority` could be sent now and it is this batch's turn
    /// (see [`super::turns`]), without counting one: a batch of `items`, started at
    /// `since`, waits here, still filling, and leaves as full as the budget makes it.
    /// The batch's call should take its slot at once.
    pub async fn ready(&self, priority: Priority, items: usize, since: Instant) {
        let mut claim = Claim::new(self, priority, items, since);
        loop {
            // A spent budget is not waited out here: the batch's call fails at once.
            if self.spent().is_some() {
                return;
            }
            if let Some(wait) = self.slot(false, priority) {
                self.wait(wait).await;
                continue;
            }
            let now = Instant::now();
            let live_can_go =
                priority == Priority::Live || self.slot(false, Priority::Live).is_none();
            let turn = self.lock().turns.take(claim.id, now, live_can_go);
            match turn {
                Turn::Yours => {
                    claim.given();
                    return;
                }
                Turn::Promised { until } => self.wait(until - now).await,
                // The batch whose turn it is wakes with this one; look again soon.
                Turn::Theirs => self.wait(Duration::from_millis(20)).await,
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counts a call in every window (when `take`), or says how long until one would be
    /// allowed.
    fn slot(&self, take: bool, priority: Priority) -> Option<Duration> {
        let paced = self.pace.filter(|_| priority == Priority::Live);
        let now = Instant::now();
        let mut state = self.lock();
        if let Some(until) = state.paused_until {
            if until > now {
                return Some(until - now);
            }
            state.paused_until = None;
        }
        let mut wait = Duration::ZERO;
        for (window, sent) in self.windows.iter().zip(state.sent.iter_mut()) {
            let span = window.per + SKEW;
            while sent.front().is_some_and(|t| now.duration_since(*t) >= span) {
                sent.pop_front();
            }
            if sent.len() >= window.max {
                let oldest = sent.front().copied().unwrap_or(now);
                wait = wait.max(span.saturating_sub(now.duration_since(oldest)));
            }
        }
        if let Some(pace) = paced {
            let elapsed = now.duration_since(state.refilled).as_secs_f64();
            state.tokens = (state.tokens + elapsed * pace.per_second).min(pace.burst);
            state.refilled = now;
            if state.tokens < 1.0 {
                let short = (1.0 - state.tokens) / pace.per_second.max(f64::MIN_POSITIVE);
                wait = wait.max(Duration::from_secs_f64(short.min(3600.0)));
            }
        }
        if wait > Duration::ZERO {
            return Some(wait);
        }
        if !take {
            return None;
        }
        if paced.is_some() {
            state.tokens -= 1.0;
        }
        for sent in state.sent.iter_mut() {
            sent.push_back(now);
        }
        state.turns.used();
        drop(state);
        // Batches waiting behind the turn just used look again.
        self.changed.notify_waiters();
        None
    }

    async fn wait(&self, at_most: Duration) {
        let _ = tokio::time::timeout(at_most, self.changed.notified()).await;
    }

    /// No call leaves before `delay` has passed (a 429's `Retry-After`, or a limit
    /// header that reached zero).
    pub fn pause_for(&self, delay: Duration) {
        let until = Instant::now() + delay;
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.paused_until = Some(state.paused_until.map_or(until, |u| u.max(until)));
        drop(state);
        self.changed.notify_waiters();
    }

    /// No call leaves before `delay` has passed because the service's `limit` is
    /// spent (its daily budget); see [`RateGate::spent`].
    pub fn pause_for_limit(&self, delay: Duration, limit: &'static str) {
        let until = Instant::now() + delay;
        self.lock().spent = Some((limit, until));
        self.pause_for(delay);
    }

    /// The budget the service said is spent, while more than [`LONG_PAUSE`] of it is
    /// left: calls fail at once rather than wait.
    pub fn spent(&self) -> Option<Spent> {
        let now = Instant::now();
        let mut state = self.lock();
        match state.spent {
            Some((limit, until)) if until > now + LONG_PAUSE => Some(Spent {
                limit,
                left: until - now,
            }),
            Some((_, until)) if until <= now => {
                state.spent = None;
                None
            }
            _ => None,
        }
    }

    /// Calls and batches waiting for a slot now (live calls at `acquire`, batches at
    /// `ready`).
    pub fn waiting(&self) -> usize {
        self.live_waiting.load(Ordering::SeqCst) + self.lock().turns.waiting()
    }

    /// How many times a call had to wait for a window or a pause.
    pub fn waits(&self) -> u64 {
        self.waits.load(Ordering::Relaxed)
    }
}

/// A batch's place among those waiting for the gate, withdrawn when it stops waiting.
struct Claim<'a> {
    gate: &'a RateGate,
    id: u64,
    withdrawn: bool,
}

impl<'a> Claim<'a> {
    fn new(gate: &'a RateGate, priority: Priority, items: usize, since: Instant) -> Self {
        let id = gate.lock().turns.claim(priority, items, since);
        Self {
            gate,
            id,
            withdrawn: false,
        }
    }

    /// The turn was given to it (which withdrew it).
    fn given(&mut self) {
        self.withdrawn = true;
    }
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        if !self.withdrawn {
            self.gate.lock().turns.withdraw(self.id);
        }
    }
}

struct LiveWaiting<'a>(&'a RateGate);

impl<'a> LiveWaiting<'a> {
    fn new(gate: &'a RateGate) -> Self {
        gate.live_waiting.fetch_add(1, Ordering::SeqCst);
        Self(gate)
    }
}

impl Drop for LiveWaiting<'_> {
    fn drop(&mut self) {
        self.0.live_waiting.fetch_sub(1, Ordering::SeqCst);
        self.0.changed.notify_waiters();
    }
}

/// The connection's health reads the gate through the trait it declares, so health
/// sits below the HTTP client and knows nothing of it.
impl GateWatch for RateGate {
    fn waiting(&self) -> usize {
        RateGate::waiting(self)
    }

    fn spent(&self) -> Option<Spent> {
        RateGate::spent(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_long_pause_for_a_named_limit_is_a_spent_budget() {
        let gate = RateGate::unlimited();
        gate.pause_for(Duration::from_secs(3600));
        assert_eq!(
            gate.spent(),
            None,
            "a breather is waited out, not a spent budget"
        );
        gate.pause_for_limit(Duration::from_secs(60), "daily");
        assert_eq!(
            gate.spent(),
            None,
            "a day renewed within minutes is waited out"
        );
        gate.pause_for_limit(Duration::from_secs(6 * 3600), "daily");
        let spent = gate.spent().expect("spent");
        assert_eq!(spent.limit, "daily");
        assert!(spent.left > Duration::from_secs(6 * 3600 - 5));
    }

    #[tokio::test(start_paused = true)]
    async fn no_more_than_the_window_allows() {
        let gate = RateGate::new(
            vec![Window {
                max: 3,
                per: Duration::from_secs(10),
            }],
            10,
        );
        let start = Instant::now();
        for _ in 0..3 {
            drop(gate.acquire(Priority::Live).await);
        }
        assert!(start.elapsed() < Duration::from_millis(1));
        drop(gate.acquire(Priority::Live).await);
        assert!(
            start.elapsed() >= Duration::from_secs(10),
            "the fourth waits for the window"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_paced_gate_spreads_calls_after_its_burst() {
        let gate = RateGate::paced(
            vec![],
            Some(Pace {
                per_second: 1.0,
                burst: 2.0,
            }),
            10,
        );
        let start = Instant::now();
        for _ in 0..4 {
            drop(gate.acquire(Priority::Live).await);
        }
        let elapsed = start.elapsed();
        assert!(
            elapsed >= Duration::from_millis(1990) && elapsed < Duration::from_millis(2500),
            "two at once, then one a second: {elapsed:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_pause_holds_every_call() {
        let gate = RateGate::unlimited();
        gate.pause_for(Duration::from_secs(2));
        let start = Instant::now();
        drop(gate.acquire(Priority::Bulk).await);
        assert!(start.elapsed() >= Duration::from_secs(2));
    }

    #[tokio::test(start_paused = true)]
    async fn the_fuller_batch_takes_the_next_call() {
        let gate = RateGate::new(
            vec![Window {
                max: 1,
                per: Duration::from_secs(1),
            }],
            10,
        );
        drop(gate.acquire(Priority::Live).await);
        let order = Arc::new(Mutex::new(Vec::new()));
        let since = Instant::now();
        let batch = |name: &'static str, items: usize| {
            let (gate, order) = (gate.clone(), order.clone());
            tokio::spawn(async move {
                gate.ready(Priority::Live, items, since).await;
                drop(gate.acquire(Priority::Live).await);
                order
                    .lock()
                    .unwrap()
                    .push((name, since.elapsed().as_secs()));
            })
        };
        // The small batch waits first; the fuller one still goes before it.
        let small = batch("small", 2);
        tokio::task::yield_now().await;
        let full = batch("full", 40);
        small.await.unwrap();
        full.await.unwrap();
        assert_eq!(*order.lock().unwrap(), vec![("full", 1), ("small", 2)]);
    }

    #[tokio::test(start_paused = true)]
    async fn live_goes_before_bulk() {
        let gate = RateGate::new(
            vec![Window {
                max: 1,
                per: Duration::from_secs(1),
            }],
            1,
        );
        drop(gate.acquire(Priority::Live).await);
        let order = Arc::new(Mutex::new(Vec::new()));
        let bulk = {
            let (gate, order) = (gate.clone(), order.clone());
            tokio::spawn(async move {
                drop(gate.acquire(Priority::Bulk).await);
                order.lock().unwrap().push("bulk");
            })
        };
        tokio::task::yield_now().await;
        let live = {
            let (gate, order) = (gate.clone(), order.clone());
            tokio::spawn(async move {
                drop(gate.acquire(Priority::Live).await);
                order.lock().unwrap().push("live");
            })
        };
        live.await.unwrap();
        bulk.await.unwrap();
        assert_eq!(*order.lock().unwrap(), vec!["live", "bulk"]);
    }
}
