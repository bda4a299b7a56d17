//! Process metrics in the Prometheus text format, served at `/metrics`.
//!
//! Built on `prometheus-client`, the Prometheus project's own Rust client, rather than
//! on the `metrics` facade with `metrics-exporter-prometheus`: its families are typed
//! (each label set is a struct, so a label cannot be misspelt at one call site), and its
//! `Registry` is a plain value, where the facade records into one global recorder that a
//! process may install only once. A test can therefore keep a [`Metrics`] of its own and
//! read exact figures, whatever else the process is doing.
//!
//! The engine itself counts into one process-wide [`Metrics`] through the free functions
//! below, so intake, the connectors' API client and the orchestrator count without a
//! handle threaded through their constructors. Two engines started in one process (some
//! tests do) therefore add into the same figures: `tandem serve` runs one engine per
//! process, the test runner (nextest) runs each test in a process of its own, and a test
//! that checks exact figures runs its engine as a child process. A registry per engine
//! would be a [`Metrics`] handed to each of those parts when the engine is built.
//!
//! Gauges that the store or the bus know (queue depth, open conflicts, failed records)
//! are read when scraped: see [`Gauges`].

mod scrape;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

pub use scrape::{Gauges, CONTENT_TYPE};

/// Why the HTTP listener refused a connection or a request (the `reason` label of
/// `tandem_http_refusals_total`). A client that never finishes its headers is closed by
/// hyper's own deadline, which reports nothing, so it is not among them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HttpRefusal {
    /// More connections were open than `http.max_connections`.
    TooManyConnections,
    /// The declared or the read body was over its limit (413).
    BodyTooLarge,
    /// The body did not arrive within its deadline (408).
    BodyTooSlow,
}

impl HttpRefusal {
    fn label(self) -> &'static str {
        match self {
            Self::TooManyConnections => "too_many_connections",
            Self::BodyTooLarge => "body_too_large",
            Self::BodyTooSlow => "body_too_slow",
        }
    }
}

/// Upper bounds of the sync-duration histogram buckets, in seconds.
pub const DURATION_BUCKETS: [f64; 10] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];

// Label sets, in the order the labels are written: the exposition keeps the order the
// hand-written registry had, so dashboards and the bench's parser read the same lines.

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EventLabels {
    pair: String,
    system: String,
    trigger: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    system: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SystemLabels {
    system: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PairSystemLabels {
    pair: String,
    system: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProbeLabels {
    pair: String,
    system: String,
    state: String,
}

fn duration_histogram() -> Histogram {
    Histogram::new(DURATION_BUCKETS)
}

/// The counters and the histogram of one registry.
pub struct Metrics {
    registry: Registry,
    events_received: Family<EventLabels, Counter>,
    sync_outcomes: Family<OutcomeLabels, Counter>,
    system_calls: Family<CallLabels, Counter>,
    rate_limit_waits: Family<SystemLabels, Counter>,
    daily_limit_refusals: Family<SystemLabels, Counter>,
    foreign_tenant: Family<PairSystemLabels, Counter>,
    connection_probes: Family<ProbeLabels, Counter>,
    http_refusals: Family<ReasonLabels, Counter>,
    calls_held: Counter,
    sync_duration: Family<OutcomeLabels, Histogram, fn() -> Histogram>,
    /// Per lane, when the message a worker took last was first published (Unix ms).
    /// Not exposed itself: it bounds the oldest waiting message's age at scrape time.
    last_taken_published_ms: Mutex<HashMap<&'static str, u64>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A registry with every family registered. Counter names are given without
    /// `_total`: the encoder adds it (and refuses a name that already has it), so the
    /// series are exposed as `tandem_events_received_total` and so on, as before. The
    /// encoder also ends each help text with a full stop.
    pub fn new() -> Self {
        let events_received = Family::default();
        let sync_outcomes = Family::default();
        let system_calls = Family::default();
        let rate_limit_waits = Family::default();
        let daily_limit_refusals = Family::default();
        let foreign_tenant = Family::default();
        let connection_probes = Family::default();
        let http_refusals = Family::default();
        let calls_held = Counter::default();
        let sync_duration = Family::new_with_constructor(duration_histogram as fn() -> Histogram);
        let mut registry = Registry::default();
        registry.register(
            "tandem_events_received",
            "Change events taken in, by pair, system and trigger",
            events_received.clone(),
        );
        registry.register(
            "tandem_sync_outcomes",
            "Changes handled, by outcome",
            sync_outcomes.clone(),
        );
        registry.register(
            "tandem_system_calls",
            "Calls to each system, by HTTP status",
            system_calls.clone(),
        );
        registry.register(
            "tandem_rate_limit_waits",
            "Waits a system asked for with 429 and Retry-After",
            rate_limit_waits.clone(),
        );
        registry.register(
            "tandem_daily_limit_refusals",
            "429s for an account's daily limit: its changes wait for the budget to renew",
            daily_limit_refusals.clone(),
        );
        registry.register(
            "tandem_webhooks_foreign_tenant",
            "Signed webhook deliveries refused for naming another organisation or portal than their pair's",
            foreign_tenant.clone(),
        );
        registry.register(
            "tandem_connection_probes",
            "Probes of each connection, by the state they found",
            connection_probes.clone(),
        );
        registry.register(
            "tandem_http_refusals",
            "Requests and connections the HTTP listener refused before a handler saw them, by reason",
            http_refusals.clone(),
        );
        registry.register(
            "tandem_connection_calls_held",
            "Calls held because their connection was out of service",
            calls_held.clone(),
        );
        registry.register(
            "tandem_sync_duration_seconds",
            "Time to handle one change, by outcome",
            sync_duration.clone(),
        );
        Self {
            registry,
            events_received,
            sync_outcomes,
            system_calls,
            rate_limit_waits,
            daily_limit_refusals,
            foreign_tenant,
            connection_probes,
            http_refusals,
            calls_held,
            sync_duration,
            last_taken_published_ms: Mutex::default(),
        }
    }

    /// `by` change events were taken in (published to the bus).
    pub fn event_received(&self, pair: &str, system: &str, trigger: &str, by: u64) {
        let labels = EventLabels {
            pair: pair.into(),
            system: system.into(),
            trigger: trigger.into(),
        };
        self.events_received.get_or_create(&labels).inc_by(by);
    }

    /// A change was handled, with its outcome and how long it took.
    pub fn sync_finished(&self, outcome: &str, took: Duration) {
        let labels = OutcomeLabels {
            outcome: outcome.into(),
        };
        self.sync_outcomes.get_or_create(&labels).inc();
        self.sync_duration
            .get_or_create(&labels)
            .observe(took.as_secs_f64());
    }

    /// A call to a system, by its HTTP status (0 when no answer came).
    pub fn system_call(&self, system: &str, status: u16) {
        let labels = CallLabels {
            system: system.into(),
            status,
        };
        self.system_calls.get_or_create(&labels).inc();
    }

    /// A wait a system asked for (429 with Retry-After).
    pub fn rate_limit_wait(&self, system: &str) {
        let labels = SystemLabels {
            system: system.into(),
        };
        self.rate_limit_waits.get_or_create(&labels).inc();
    }

    pub fn daily_limit_refusal(&self, system: &str) {
        let labels = SystemLabels {
            system: system.into(),
        };
        self.daily_limit_refusals.get_or_create(&labels).inc();
    }

    /// A signed delivery was refused for naming an organisation or portal other than
    /// the one its pair is connected to.
    pub fn webhook_foreign_tenant(&self, pair: &str, system: &str) {
        let labels = PairSystemLabels {
            pair: pair.into(),
            system: system.into(),
        };
        self.foreign_tenant.get_or_create(&labels).inc();
    }

    /// A probe of a connection, by the state it found.
    pub fn connection_probe(&self, pair: &str, system: &str, state: &str) {
        let labels = ProbeLabels {
            pair: pair.into(),
            system: system.into(),
            state: state.into(),
        };
        self.connection_probes.get_or_create(&labels).inc();
    }

    /// The HTTP listener refused a connection or a request before any handler saw it.
    pub fn http_refused(&self, reason: HttpRefusal) {
        let labels = ReasonLabels {
            reason: reason.label().into(),
        };
        self.http_refusals.get_or_create(&labels).inc();
    }

    /// A call held because its connection was out of service.
    pub fn connection_call_held(&self) {
        self.calls_held.inc();
    }

    /// A worker took a message of `lane` first published at `published_ms`.
    pub fn delivered(&self, lane: &'static str, published_ms: Option<u64>) {
        if let Some(at) = published_ms {
            self.last_taken().insert(lane, at);
        }
    }

    /// The age of the oldest message waiting in `lane`, in seconds, when it can be told:
    /// none when the lane is empty; otherwise at most the age of the message a worker
    /// took last (a lane is first in, first out, so what waits was published after it).
    pub fn oldest_age_seconds(&self, lane: &'static str, depth: u64, now_ms: u64) -> Option<f64> {
        if depth == 0 {
            return Some(0.0);
        }
        let at = *self.last_taken().get(lane)?;
        Some(now_ms.saturating_sub(at) as f64 / 1000.0)
    }

    fn last_taken(&self) -> std::sync::MutexGuard<'_, HashMap<&'static str, u64>> {
        self.last_taken_published_ms
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

static PROCESS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

/// The metrics this process's engine counts into and `/metrics` exposes.
pub fn process() -> &'static Metrics {
    &PROCESS
}

/// See [`Metrics::event_received`].
pub fn event_received(pair: &str, system: &str, trigger: &str, by: u64) {
    PROCESS.event_received(pair, system, trigger, by);
}

/// See [`Metrics::sync_finished`].
pub fn sync_finished(outcome: &str, took: Duration) {
    PROCESS.sync_finished(outcome, took);
}

/// See [`Metrics::system_call`].
pub fn system_call(system: &str, status: u16) {
    PROCESS.system_call(system, status);
}

/// See [`Metrics::rate_limit_wait`].
pub fn rate_limit_wait(system: &str) {
    PROCESS.rate_limit_wait(system);
}

/// See [`Metrics::daily_limit_refusal`].
pub fn daily_limit_refusal(system: &str) {
    PROCESS.daily_limit_refusal(system);
}

/// See [`Metrics::webhook_foreign_tenant`].
pub fn webhook_foreign_tenant(pair: &str, system: &str) {
    process().webhook_foreign_tenant(pair, system);
}

/// See [`Metrics::connection_probe`].
pub fn connection_probe(pair: &str, system: &str, state: &str) {
    process().connection_probe(pair, system, state);
}

/// See [`Metrics::http_refused`].
pub fn http_refused(reason: HttpRefusal) {
    process().http_refused(reason);
}

/// See [`Metrics::connection_call_held`].
pub fn connection_call_held() {
    process().connection_call_held();
}

/// See [`Metrics::delivered`].
pub fn delivered(lane: &'static str, published_ms: Option<u64>) {
    PROCESS.delivered(lane, published_ms);
}

/// See [`Metrics::oldest_age_seconds`].
pub fn oldest_age_seconds(lane: &'static str, depth: u64, now_ms: u64) -> Option<f64> {
    PROCESS.oldest_age_seconds(lane, depth, now_ms)
}

/// The process's whole exposition, with `gauges` read for this scrape.
pub fn render(gauges: &Gauges) -> String {
    PROCESS.render(gauges)
}
