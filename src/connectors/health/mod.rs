//! The health of each connection (one side of a pair): fed by a cheap authenticated
//! probe call, made at start and again when due, and by the outcome of every real
//! call; shown by `/ready`, `GET /api/connections`, `/api/stats` and `tandem status`.
//!
//! While a connection is out of service (down, unauthorised, misconfigured) its calls
//! are held: they wait for it to come back, and after [`HELD_AT_MOST`] they fail
//! without calling, so the change is retried later. The probe is then the one call
//! that goes out, and its success brings the connection back for everyone at once
//! (see `registry.rs` for when probes are made, `tracker.rs` for the rules).
//!
//! At start, before anything is known, the first call goes alone as a trial and the
//! others wait: answered, it shows the connection working and costs no probe; failed
//! in any way, its change is postponed like the others and a probe decides. So a wrong
//! base URL or a refused credential fails no change at start.

pub mod hint;
pub mod registry;
pub mod tracker;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use tokio::sync::{watch, Notify};
use tokio::time::Instant;

pub use hint::{advise, Advice, AuthForm, SystemKind};
pub use registry::{Connection, Connections};
pub use tracker::{
    At, CallCounts, CallOutcome, ConnectionState, ProbeFailure, ProbeRecord, ProbeReport,
    ProbeStep, Snapshot,
};

use tracker::Tracker;

/// How long a call waits for its connection to come back before it fails without
/// calling (and its change is retried later). Long enough for a short outage to pass
/// unnoticed by the change; short enough that a long one does not hold every worker.
pub const HELD_AT_MOST: Duration = Duration::from_secs(20);

/// How long a change sent back for a retry is counted as waiting on a connection, in
/// case its retry is taken by another process (the longest backoff, and some).
const WAITING_AT_MOST: Duration = Duration::from_secs(10 * 60);

const TRIAL_NONE: u8 = 0;
const TRIAL_OUT: u8 = 1;
const TRIAL_FAILED: u8 = 2;

/// How a call may go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// The connection is in service.
    Go,
    /// Its state is not known yet: this call goes alone, and its failure (of any kind)
    /// asks for a probe instead of failing its change.
    Trial,
}

/// A budget the service says is spent: which limit, and for how long yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spent {
    pub limit: &'static str,
    pub left: std::time::Duration,
}

/// What a connection's health reads of the rate gate its calls pass. The gate
/// belongs to the HTTP client, which builds on this module; it reports through this
/// trait so that the dependency points one way.
pub trait GateWatch: Send + Sync {
    /// Calls and batches waiting at the gate now: work under way.
    fn waiting(&self) -> usize;
    /// The budget the service said is spent, while it lasts.
    fn spent(&self) -> Option<Spent>;
}

pub struct ConnectionHealth {
    tracker: Mutex<Tracker>,
    state: watch::Sender<ConnectionState>,
    /// Wakes the prober: the connection went down, or a call was refused its
    /// credentials.
    wake: Notify,
    held: AtomicUsize,
    /// Real calls under way (waiting for the gate, or sent and not answered yet).
    under_way: AtomicUsize,
    gate: OnceLock<Arc<dyn GateWatch>>,
    /// Whether a prober keeps this connection's state: only then do calls wait while it
    /// is unknown (a connector used on its own, as in tests, has none).
    probed: AtomicBool,
    /// The first call while the state is unknown: none yet, out, or failed.
    trial: AtomicU8,
    /// Changes this process sent back to the bus after a failure on this connection,
    /// not yet handled again: event id -> when.
    retrying: Mutex<HashMap<String, Instant>>,
    /// Calls left today for the account, as the service last reported them
    /// (`u64::MAX`: not reported).
    day_remaining: AtomicU64,
}

/// The account's budget with the service, as far as this process knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Budget {
    /// Calls left today, as the service last reported them.
    pub day_remaining: Option<u64>,
    /// A spent budget: which limit, and until when no call goes out.
    pub spent: Option<(&'static str, chrono::DateTime<chrono::Utc>)>,
}

impl Default for ConnectionHealth {
    fn default() -> Self {
        Self {
            tracker: Mutex::new(Tracker::new(At::now())),
            state: watch::channel(ConnectionState::Unknown).0,
            wake: Notify::new(),
            held: AtomicUsize::new(0),
            under_way: AtomicUsize::new(0),
            gate: OnceLock::new(),
            probed: AtomicBool::new(false),
            trial: AtomicU8::new(TRIAL_NONE),
            day_remaining: AtomicU64::new(u64::MAX),
            retrying: Mutex::new(HashMap::new()),
        }
    }
}

impl ConnectionHealth {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    fn tracker(&self) -> std::sync::MutexGuard<'_, Tracker> {
        self.tracker.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn state(&self) -> ConnectionState {
        *self.state.borrow()
    }

    /// Counts one call; `error` is what a person reads, without secrets.
    pub fn record_call(&self, outcome: CallOutcome, error: Option<&str>) {
        let mut tracker = self.tracker();
        let before = tracker.state();
        tracker.call(outcome, error, At::now());
        let after = tracker.state();
        drop(tracker);
        self.publish(before, after);
        if outcome == CallOutcome::Unauthorised {
            self.wake.notify_one();
        }
    }

    pub fn record_probe(&self, report: ProbeReport) {
        let mut tracker = self.tracker();
        let before = tracker.state();
        tracker.probe(report, At::now());
        let after = tracker.state();
        drop(tracker);
        self.publish(before, after);
    }

    fn publish(&self, before: ConnectionState, after: ConnectionState) {
        if before == after {
            return;
        }
        self.state.send_replace(after);
        if after == ConnectionState::Down {
            // The first probe is due a moment after the connection went down.
            self.wake.notify_one();
        }
    }

    pub fn snapshot(&self) -> Snapshot {
        self.tracker().snapshot(At::now())
    }

    /// When the next probe is due.
    pub(crate) fn probe_due(&self) -> Instant {
        self.tracker().probe_due(At::now())
    }

    /// Waits until a probe may be due earlier than it was.
    pub(crate) async fn woken(&self) {
        self.wake.notified().await;
    }

    /// Something that may have mended it changed (new credentials): probe at once.
    pub fn probe_soon(&self) {
        self.tracker().ask_probe();
        self.wake.notify_one();
    }

    /// A prober keeps this connection's state from now on.
    pub(crate) fn expect_probes(&self) {
        self.probed.store(true, Ordering::SeqCst);
    }

    /// Whether a call must wait in `state`.
    fn holds(&self, state: ConnectionState) -> bool {
        state.out_of_service()
            || (state == ConnectionState::Unknown && self.probed.load(Ordering::SeqCst))
    }

    /// Returns at once while the connection is in service, or as the trial call of an
    /// unknown one; otherwise waits, at most `within`, for it to come back. `Err` with
    /// the state it stayed in.
    pub async fn wait_in_service(&self, within: Duration) -> Result<Admission, ConnectionState> {
        let mut state = self.state.subscribe();
        let now = *state.borrow_and_update();
        if !self.holds(now) {
            return Ok(Admission::Go);
        }
        if now == ConnectionState::Unknown && self.take_trial() {
            return Ok(Admission::Trial);
        }
        self.held.fetch_add(1, Ordering::SeqCst);
        crate::metrics::connection_call_held();
        let back = tokio::time::timeout(within, state.wait_for(|s| !self.holds(*s))).await;
        self.held.fetch_sub(1, Ordering::SeqCst);
        match back {
            Ok(Ok(_)) => Ok(Admission::Go),
            _ => Err(self.state()),
        }
    }

    fn take_trial(&self) -> bool {
        self.trial
            .compare_exchange(TRIAL_NONE, TRIAL_OUT, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
    }

    /// The trial call failed: no other goes until a probe says how the connection is.
    pub(crate) fn trial_failed(&self) {
        self.trial.store(TRIAL_FAILED, Ordering::SeqCst);
        self.tracker().ask_probe();
        self.wake.notify_one();
    }

    /// Whether the next probe must be made even while calls are under way.
    pub(crate) fn probe_urgent(&self) -> bool {
        self.tracker().probe_urgent()
    }

    /// Calls waiting now for this connection to come back.
    pub fn held(&self) -> usize {
        self.held.load(Ordering::SeqCst)
    }

    /// Counts a real call as under way until the guard is dropped: while calls are
    /// under way, a connection in service is not probed, since their answers will say
    /// how it is (and under Xero's 60 a minute, a probe would take one of their slots).
    pub(crate) fn call_under_way(&self) -> UnderWay<'_> {
        self.under_way.fetch_add(1, Ordering::SeqCst);
        UnderWay(self)
    }

    /// Real calls under way, and batches waiting at the connection's gate for their
    /// call.
    pub(crate) fn calls_under_way(&self) -> usize {
        let waiting = self.gate.get().map_or(0, |gate| gate.waiting());
        self.under_way.load(Ordering::SeqCst) + waiting
    }

    /// The service reported how many calls the account has left today.
    pub(crate) fn day_remaining(&self, remaining: u64) {
        self.day_remaining.store(remaining, Ordering::Relaxed);
    }

    /// The account's budget: the day's remaining calls as reported, and a spent
    /// limit with its end.
    pub fn budget(&self) -> Budget {
        let reported = self.day_remaining.load(Ordering::Relaxed);
        let spent = self.gate.get().and_then(|gate| gate.spent()).map(|spent| {
            let left = chrono::Duration::from_std(spent.left).unwrap_or(chrono::Duration::zero());
            (spent.limit, chrono::Utc::now() + left)
        });
        Budget {
            day_remaining: (reported != u64::MAX).then_some(reported),
            spent,
        }
    }

    /// The gate this connection's calls pass, whose waiting batches are work under way.
    pub(crate) fn watch_gate(&self, gate: Arc<dyn GateWatch>) {
        let _ = self.gate.set(gate);
    }

    fn retrying(&self) -> std::sync::MutexGuard<'_, HashMap<String, Instant>> {
        self.retrying.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A change was sent back for a retry after this connection failed it.
    pub fn change_sent_back(&self, event_id: &str) {
        let now = Instant::now();
        let mut retrying = self.retrying();
        retrying.retain(|_, at| now.duration_since(*at) < WAITING_AT_MOST);
        retrying.insert(event_id.to_string(), now);
    }

    /// A change is being handled again.
    pub fn change_came_back(&self, event_id: &str) {
        self.retrying().remove(event_id);
    }

    /// Changes this process sent back after a failure on this connection and has not
    /// handled again yet.
    pub fn changes_waiting(&self) -> usize {
        let now = Instant::now();
        self.retrying()
            .values()
            .filter(|at| now.duration_since(**at) < WAITING_AT_MOST)
            .count()
    }
}

pub(crate) struct UnderWay<'a>(&'a ConnectionHealth);

impl Drop for UnderWay<'_> {
    fn drop(&mut self) {
        self.0.under_way.fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn down() -> ProbeReport {
        ProbeReport::failed(
            "http://x/Organisation",
            ProbeFailure {
                state: ConnectionState::Down,
                step: ProbeStep::Call,
                status: Some(503),
                error: "HTTP 503".into(),
            },
        )
    }

    #[tokio::test]
    async fn held_calls_go_when_a_probe_succeeds() {
        let health = ConnectionHealth::new();
        assert_eq!(
            health.wait_in_service(Duration::ZERO).await,
            Ok(Admission::Go)
        );
        health.record_probe(down());
        let waiting = {
            let health = health.clone();
            tokio::spawn(async move { health.wait_in_service(Duration::from_secs(30)).await })
        };
        while health.held() == 0 {
            tokio::task::yield_now().await;
        }
        health.record_probe(ProbeReport::ok("http://x/Organisation"));
        assert_eq!(waiting.await.expect("joined"), Ok(Admission::Go));
        assert_eq!(health.held(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn while_unknown_one_call_goes_alone_when_probes_are_coming() {
        let health = ConnectionHealth::new();
        assert_eq!(
            health.wait_in_service(Duration::ZERO).await,
            Ok(Admission::Go),
            "no prober: nothing to wait for"
        );
        health.expect_probes();
        assert_eq!(
            health.wait_in_service(Duration::ZERO).await,
            Ok(Admission::Trial)
        );
        assert_eq!(
            health.wait_in_service(Duration::from_secs(1)).await,
            Err(ConnectionState::Unknown),
            "the others wait for the trial"
        );
        health.record_call(CallOutcome::Ok, None);
        assert_eq!(
            health.wait_in_service(Duration::ZERO).await,
            Ok(Admission::Go)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_trial_asks_for_a_probe_and_lets_no_other_call_go() {
        let health = ConnectionHealth::new();
        health.expect_probes();
        assert_eq!(
            health.wait_in_service(Duration::ZERO).await,
            Ok(Admission::Trial)
        );
        health.record_call(CallOutcome::Rejected, Some("HTTP 404 from GET /Contacts"));
        health.trial_failed();
        assert!(health.probe_urgent());
        assert_eq!(
            health.wait_in_service(Duration::from_secs(1)).await,
            Err(ConnectionState::Unknown)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn held_calls_give_up_after_their_wait() {
        let health = ConnectionHealth::new();
        health.record_probe(down());
        assert_eq!(
            health.wait_in_service(Duration::from_secs(5)).await,
            Err(ConnectionState::Down)
        );
    }

    #[test]
    fn changes_waiting_are_counted_until_they_come_back() {
        let health = ConnectionHealth::new();
        health.change_sent_back("e1");
        health.change_sent_back("e2");
        health.change_sent_back("e1");
        assert_eq!(health.changes_waiting(), 2);
        health.change_came_back("e1");
        assert_eq!(health.changes_waiting(), 1);
    }
}
