//! The state of one connection, derived from what its calls and its probes came to.
//!
//! Pure: every method is told when things happened, so the rules are tested without a
//! clock or a network. A status comes from evidence, never from settings: until a
//! call or a probe has been made the state is `unknown`.
//!
//! - `down`: the last [`DOWN_AFTER`] calls all failed as unavailable (5xx, timeout, no
//!   connection), or the probe failed that way (a probe is made a few seconds after a
//!   failed call that no answered call followed, so a quiet connection is found out);
//! - `unauthorised`, `misconfigured`: only a probe says so (a 401 or 403 after a
//!   refresh, a token endpoint that refuses; a 404 on the probe's known endpoint, or
//!   nothing listening at the base URL): a real call's 403 may concern one object
//!   type alone, so it asks for a probe instead of deciding;
//! - `degraded`: some calls failed within the last minute since the connection was
//!   last found working;
//! - `healthy` otherwise.
//!
//! Out of service (`down`, `unauthorised`, `misconfigured`) ends only when a probe
//! succeeds: calls are held meanwhile, so no real call could show it.

use std::collections::VecDeque;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::time::Instant;

/// How far back the call counts shown to a person go.
pub const RECENT: Duration = Duration::from_secs(5 * 60);
/// Failures within this make a working connection `degraded`.
pub const DEGRADED_WITHIN: Duration = Duration::from_secs(60);
/// Consecutive unavailable answers that make a connection `down`. One failing read
/// already costs three (the client tries twice more); five in a row with nothing
/// answered in between is an outage, not a hiccup.
pub const DOWN_AFTER: u32 = 5;
/// How often a working connection is probed when no call showed it working.
pub const PROBE_EVERY: Duration = Duration::from_secs(30);
/// The longest wait between probes of a connection that is down.
pub const DOWN_PROBE_AT_MOST: Duration = Duration::from_secs(10);
/// A real call's authorisation failure asks for a probe, at most this often.
const AUTH_PROBE_AT_MOST: Duration = Duration::from_secs(5);
/// An unavailable answer with no call answered after it asks for a probe this much
/// later: with little traffic, five failures in a row may be long in coming.
const QUIET_FAILURE_PROBE_AFTER: Duration = Duration::from_secs(5);
/// The first probe waits this long after start for a real call to show the state
/// first: work that starts with the process then spends no call on a probe (under
/// Xero's 60 a minute, one call too many can cost a backfill a minute).
pub const START_GRACE: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConnectionState {
    Unknown,
    Healthy,
    Degraded,
    Down,
    Unauthorised,
    Misconfigured,
}

impl ConnectionState {
    pub fn as_str(self) -> &'static str {
        match self {
            ConnectionState::Unknown => "unknown",
            ConnectionState::Healthy => "healthy",
            ConnectionState::Degraded => "degraded",
            ConnectionState::Down => "down",
            ConnectionState::Unauthorised => "unauthorised",
            ConnectionState::Misconfigured => "misconfigured",
        }
    }

    /// Calls wait for it to come back (or are retried later without calling).
    pub fn out_of_service(self) -> bool {
        matches!(
            self,
            ConnectionState::Down | ConnectionState::Unauthorised | ConnectionState::Misconfigured
        )
    }
}

impl std::fmt::Display for ConnectionState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What one call came to, as the health of its connection counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallOutcome {
    /// Answered (2xx, 207, a 404 read as "no such record").
    Ok,
    /// Answered with a refusal of this request (400, 404, 409, 422): the system works.
    Rejected,
    /// 429: the budget, not the system.
    Refused,
    /// 5xx, a timeout, no connection.
    Unavailable,
    /// 401 after a refresh, 403, a token endpoint that refuses.
    Unauthorised,
}

/// When something happened: the instant for windows and waits, the time to show.
#[derive(Debug, Clone, Copy)]
pub struct At {
    pub instant: Instant,
    pub time: DateTime<Utc>,
}

impl At {
    pub fn now() -> Self {
        Self {
            instant: Instant::now(),
            time: Utc::now(),
        }
    }

    /// `by` later (tests).
    pub fn after(self, by: Duration) -> Self {
        Self {
            instant: self.instant + by,
            time: self.time + chrono::Duration::from_std(by).unwrap_or_default(),
        }
    }
}

/// Where a probe failed: getting a token, or the call itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeStep {
    Token,
    Call,
}

/// A failed probe: what it says about the connection and what a person reads.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeFailure {
    /// `Down`, `Unauthorised` or `Misconfigured`.
    pub state: ConnectionState,
    pub step: ProbeStep,
    /// The HTTP status, when an answer came.
    pub status: Option<u16>,
    /// What went wrong, without secrets.
    pub error: String,
}

/// One probe: the URL it asked (`https://…/api.xro/2.0/Organisation`) and how it went.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeReport {
    pub target: String,
    pub failure: Option<ProbeFailure>,
}

impl ProbeReport {
    pub fn ok(target: impl Into<String>) -> Self {
        Self {
            target: target.into(),
            failure: None,
        }
    }

    pub fn failed(target: impl Into<String>, failure: ProbeFailure) -> Self {
        Self {
            target: target.into(),
            failure: Some(failure),
        }
    }
}

/// The last probe, as shown.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeRecord {
    pub at: DateTime<Utc>,
    pub report: ProbeReport,
}

/// Calls over the last [`RECENT`], by what they came to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CallCounts {
    pub ok: u64,
    pub rejected: u64,
    pub failed: u64,
    pub refused: u64,
}

/// A connection's health as shown.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub state: ConnectionState,
    pub since: DateTime<Utc>,
    /// The most recent error, whatever the state now, and when it happened.
    pub last_error: Option<(DateTime<Utc>, String)>,
    /// The probe failure behind an out-of-service state; `None` when calls made it
    /// `down` or when it is in service.
    pub fault: Option<ProbeFailure>,
    pub last_probe: Option<ProbeRecord>,
    pub recent: CallCounts,
}

#[derive(Debug)]
pub struct Tracker {
    created: Instant,
    state: ConnectionState,
    since: DateTime<Utc>,
    last_error: Option<(DateTime<Utc>, String)>,
    fault: Option<ProbeFailure>,
    /// Consecutive unavailable answers, and when the first of them came.
    run: u32,
    run_since: Option<DateTime<Utc>>,
    recent: VecDeque<(Instant, CallOutcome)>,
    /// When the connection was last found working after being out of service;
    /// failures before it no longer degrade it.
    recovered: Option<Instant>,
    last_probe: Option<(Instant, ProbeRecord)>,
    /// Probes failed in a row, for the backoff while down.
    failed_probes: u32,
    out_of_service_at: Option<Instant>,
    last_ok: Option<Instant>,
    probe_asked: bool,
    /// The first unavailable answer since a call was last answered.
    failing_since: Option<Instant>,
}

impl Tracker {
    pub fn new(at: At) -> Self {
        Self {
            created: at.instant,
            state: ConnectionState::Unknown,
            since: at.time,
            last_error: None,
            fault: None,
            run: 0,
            run_since: None,
            recent: VecDeque::new(),
            recovered: None,
            last_probe: None,
            failed_probes: 0,
            out_of_service_at: None,
            last_ok: None,
            probe_asked: false,
            failing_since: None,
        }
    }

    pub fn state(&self) -> ConnectionState {
        self.state
    }

    /// Counts a call. Whether a probe should be made at once (a real call's
    /// authorisation failure) is kept for [`Self::probe_due`].
    pub fn call(&mut self, outcome: CallOutcome, error: Option<&str>, at: At) {
        self.recent.push_back((at.instant, outcome));
        if let Some(error) = error {
            self.last_error = Some((at.time, error.to_string()));
        }
        match outcome {
            CallOutcome::Ok | CallOutcome::Rejected => {
                self.run = 0;
                self.run_since = None;
                self.last_ok = Some(at.instant);
                self.failing_since = None;
            }
            CallOutcome::Refused => {}
            CallOutcome::Unavailable => {
                self.run += 1;
                self.run_since.get_or_insert(at.time);
                self.failing_since.get_or_insert(at.instant);
                if self.run >= DOWN_AFTER && !self.state.out_of_service() {
                    let since = self.run_since.unwrap_or(at.time);
                    self.enter(ConnectionState::Down, since, at);
                    self.fault = None;
                }
            }
            CallOutcome::Unauthorised => self.probe_asked = true,
        }
        self.derive(at);
    }

    /// A probe is wanted now (the first call of the connection failed).
    pub fn ask_probe(&mut self) {
        self.probe_asked = true;
    }

    /// Whether the next probe must be made even while calls are under way: it is
    /// asked for, or the connection is out of service (its calls are held).
    pub fn probe_urgent(&self) -> bool {
        self.probe_asked || self.state.out_of_service()
    }

    /// Takes a probe's result: success brings the connection back into service.
    pub fn probe(&mut self, report: ProbeReport, at: At) {
        match &report.failure {
            None => {
                self.failed_probes = 0;
                self.last_ok = Some(at.instant);
                if self.state.out_of_service() {
                    self.recovered = Some(at.instant);
                    self.run = 0;
                    self.run_since = None;
                    self.fault = None;
                }
                if self.state.out_of_service() || self.state == ConnectionState::Unknown {
                    self.enter(ConnectionState::Healthy, at.time, at);
                }
            }
            Some(failure) => {
                self.failed_probes += 1;
                self.last_error = Some((at.time, failure.error.clone()));
                self.fault = Some(failure.clone());
                if self.state != failure.state {
                    let since = match failure.state {
                        // Down since the first of the failures that led here.
                        ConnectionState::Down => self.run_since.unwrap_or(at.time),
                        _ => at.time,
                    };
                    self.enter(failure.state, since, at);
                }
            }
        }
        self.probe_asked = false;
        self.failing_since = None;
        self.last_probe = Some((
            at.instant,
            ProbeRecord {
                at: at.time,
                report,
            },
        ));
        self.derive(at);
    }

    fn enter(&mut self, state: ConnectionState, since: DateTime<Utc>, at: At) {
        if state.out_of_service() && !self.state.out_of_service() {
            self.out_of_service_at = Some(at.instant);
        }
        self.state = state;
        self.since = since;
    }

    /// In service, the state follows the calls: `degraded` while some failed within
    /// the last minute (since it last came back), else `healthy`.
    fn derive(&mut self, at: At) {
        let horizon = at.instant.checked_sub(RECENT).unwrap_or(at.instant);
        while self.recent.front().is_some_and(|(t, _)| *t < horizon) {
            self.recent.pop_front();
        }
        if self.state.out_of_service() {
            return;
        }
        // Only an answered call (or a probe) says a connection works: a refusal may be
        // a wrong base URL's 404.
        if self.state == ConnectionState::Unknown
            && !self.recent.iter().any(|(_, o)| *o == CallOutcome::Ok)
        {
            return;
        }
        let window = at
            .instant
            .checked_sub(DEGRADED_WITHIN)
            .unwrap_or(at.instant);
        let from = self.recovered.map_or(window, |r| r.max(window));
        let failing = self.recent.iter().any(|(t, outcome)| {
            *t >= from
                && matches!(
                    outcome,
                    CallOutcome::Unavailable | CallOutcome::Unauthorised
                )
        });
        let state = if failing {
            ConnectionState::Degraded
        } else {
            ConnectionState::Healthy
        };
        if state != self.state {
            self.enter(state, at.time, at);
        }
    }

    pub fn snapshot(&mut self, at: At) -> Snapshot {
        self.derive(at);
        let mut recent = CallCounts::default();
        for (_, outcome) in &self.recent {
            match outcome {
                CallOutcome::Ok => recent.ok += 1,
                CallOutcome::Rejected => recent.rejected += 1,
                CallOutcome::Refused => recent.refused += 1,
                CallOutcome::Unavailable | CallOutcome::Unauthorised => recent.failed += 1,
            }
        }
        Snapshot {
            state: self.state,
            since: self.since,
            last_error: self.last_error.clone(),
            fault: self.fault.clone().filter(|_| self.state.out_of_service()),
            last_probe: self.last_probe.as_ref().map(|(_, r)| r.clone()),
            recent,
        }
    }

    /// When the next probe is due. Down: soon and then less often (1 s, 2 s, 4 s … at
    /// most [`DOWN_PROBE_AT_MOST`]), the one call that goes out while calls are held.
    /// Unauthorised or misconfigured: every [`PROBE_EVERY`]; a person has to act.
    /// Working: [`PROBE_EVERY`] after it was last seen working, by a probe or by a
    /// call, so a busy connection spends none of its budget on probes.
    pub fn probe_due(&self, at: At) -> Instant {
        let last_probe = self.last_probe.as_ref().map(|(t, _)| *t);
        if self.probe_asked {
            return last_probe.map_or(at.instant, |t| t + AUTH_PROBE_AT_MOST);
        }
        match self.state {
            ConnectionState::Unknown if last_probe.is_none() => self.created + START_GRACE,
            ConnectionState::Down => {
                let backoff =
                    Duration::from_secs(1u64 << self.failed_probes.min(5)).min(DOWN_PROBE_AT_MOST);
                let from = match (last_probe, self.out_of_service_at) {
                    (Some(p), Some(d)) => p.max(d),
                    (p, d) => p.or(d).unwrap_or(at.instant),
                };
                from + backoff
            }
            ConnectionState::Unauthorised | ConnectionState::Misconfigured => {
                last_probe.unwrap_or(at.instant) + PROBE_EVERY
            }
            _ => {
                let seen = match (last_probe, self.last_ok) {
                    (Some(p), Some(o)) => p.max(o),
                    (p, o) => p.or(o).unwrap_or(at.instant),
                };
                let due = seen + PROBE_EVERY;
                match self.failing_since {
                    Some(failing) => due.min(failing + QUIET_FAILURE_PROBE_AFTER),
                    None => due,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unavailable() -> ProbeFailure {
        ProbeFailure {
            state: ConnectionState::Down,
            step: ProbeStep::Call,
            status: Some(503),
            error: "HTTP 503".into(),
        }
    }

    #[test]
    fn unknown_until_a_call_or_a_probe() {
        let at = At::now();
        let mut tracker = Tracker::new(at);
        assert_eq!(tracker.snapshot(at).state, ConnectionState::Unknown);
        assert_eq!(
            tracker.probe_due(at),
            at.instant + START_GRACE,
            "probed soon unless a call shows the state first"
        );
        tracker.call(CallOutcome::Rejected, Some("HTTP 404"), at);
        assert_eq!(
            tracker.snapshot(at).state,
            ConnectionState::Unknown,
            "a refusal is no proof"
        );
        tracker.probe(ProbeReport::ok("GET /Organisation"), at);
        assert_eq!(tracker.snapshot(at).state, ConnectionState::Healthy);
    }

    #[test]
    fn consecutive_unavailable_calls_make_it_down_since_the_first() {
        let start = At::now();
        let mut tracker = Tracker::new(start);
        tracker.call(CallOutcome::Ok, None, start);
        for n in 0..DOWN_AFTER {
            let at = start.after(Duration::from_secs(1 + n as u64));
            assert!(!tracker.state().out_of_service(), "not yet at {n}");
            tracker.call(CallOutcome::Unavailable, Some("HTTP 503"), at);
        }
        let seen = tracker.snapshot(start.after(Duration::from_secs(10)));
        assert_eq!(seen.state, ConnectionState::Down);
        assert_eq!(seen.since, start.after(Duration::from_secs(1)).time);
        assert_eq!(seen.last_error.map(|(_, e)| e), Some("HTTP 503".into()));
        assert_eq!(seen.recent.failed, DOWN_AFTER as u64);
    }

    #[test]
    fn an_answer_between_failures_keeps_it_degraded_not_down() {
        let at = At::now();
        let mut tracker = Tracker::new(at);
        for _ in 0..3 {
            tracker.call(CallOutcome::Unavailable, Some("HTTP 502"), at);
            tracker.call(CallOutcome::Ok, None, at);
        }
        assert_eq!(tracker.snapshot(at).state, ConnectionState::Degraded);
        let later = at.after(DEGRADED_WITHIN + Duration::from_secs(1));
        assert_eq!(tracker.snapshot(later).state, ConnectionState::Healthy);
    }

    #[test]
    fn only_a_probe_brings_it_back() {
        let at = At::now();
        let mut tracker = Tracker::new(at);
        for _ in 0..DOWN_AFTER {
            tracker.call(CallOutcome::Unavailable, Some("HTTP 503"), at);
        }
        tracker.call(CallOutcome::Ok, None, at.after(Duration::from_secs(1)));
        assert_eq!(
            tracker.state(),
            ConnectionState::Down,
            "a straggler's answer"
        );
        let back = at.after(Duration::from_secs(2));
        tracker.probe(ProbeReport::ok("GET /Organisation"), back);
        let seen = tracker.snapshot(back);
        assert_eq!(
            seen.state,
            ConnectionState::Healthy,
            "the outage's failures are over"
        );
        assert_eq!(seen.since, back.time);
    }

    #[test]
    fn probe_failures_say_which_state_and_keep_their_fault() {
        let at = At::now();
        let mut tracker = Tracker::new(at);
        let failure = ProbeFailure {
            state: ConnectionState::Misconfigured,
            step: ProbeStep::Call,
            status: Some(404),
            error: "HTTP 404 from /Organisation".into(),
        };
        tracker.probe(
            ProbeReport::failed("GET /Organisation", failure.clone()),
            at,
        );
        let seen = tracker.snapshot(at);
        assert_eq!(seen.state, ConnectionState::Misconfigured);
        assert_eq!(seen.fault, Some(failure));
        assert!(tracker.state().out_of_service());
        assert_eq!(tracker.probe_due(at), at.instant + PROBE_EVERY);
    }

    #[test]
    fn a_down_connection_is_probed_soon_then_less_often() {
        let at = At::now();
        let mut tracker = Tracker::new(at);
        tracker.probe(ProbeReport::failed("GET /x", unavailable()), at);
        assert_eq!(tracker.probe_due(at), at.instant + Duration::from_secs(2));
        for _ in 0..6 {
            tracker.probe(ProbeReport::failed("GET /x", unavailable()), at);
        }
        assert_eq!(tracker.probe_due(at), at.instant + DOWN_PROBE_AT_MOST);
    }

    #[test]
    fn a_busy_working_connection_is_not_probed() {
        let at = At::now();
        let mut tracker = Tracker::new(at);
        tracker.probe(ProbeReport::ok("GET /x"), at);
        let later = at.after(Duration::from_secs(25));
        tracker.call(CallOutcome::Ok, None, later);
        assert_eq!(tracker.probe_due(later), later.instant + PROBE_EVERY);
    }

    #[test]
    fn a_failure_nothing_answered_after_asks_for_a_probe_soon() {
        let at = At::now();
        let mut tracker = Tracker::new(at);
        tracker.probe(ProbeReport::ok("GET /x"), at);
        let failed = at.after(Duration::from_secs(1));
        tracker.call(CallOutcome::Unavailable, Some("HTTP 503"), failed);
        assert_eq!(
            tracker.probe_due(failed),
            failed.instant + QUIET_FAILURE_PROBE_AFTER
        );
        let answered = at.after(Duration::from_secs(2));
        tracker.call(CallOutcome::Ok, None, answered);
        assert_eq!(tracker.probe_due(answered), answered.instant + PROBE_EVERY);
    }

    #[test]
    fn a_real_calls_refusal_asks_for_a_probe_without_deciding() {
        let at = At::now();
        let mut tracker = Tracker::new(at);
        tracker.probe(ProbeReport::ok("GET /x"), at);
        let later = at.after(Duration::from_secs(10));
        tracker.call(CallOutcome::Unauthorised, Some("HTTP 403"), later);
        assert_eq!(tracker.state(), ConnectionState::Degraded);
        assert_eq!(tracker.probe_due(later), at.instant + AUTH_PROBE_AT_MOST);
    }
}
