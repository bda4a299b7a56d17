//! Process metrics in Prometheus text format, served at `/metrics`.
//!
//! Counters live in one process-wide registry (as the Prometheus client libraries
//! keep a default registry), so intake and the orchestrator count without threading a
//! handle through every call. Gauges that the store or the bus know (queue depth, open
//! conflicts, failed records) are read when scraped.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{LazyLock, Mutex};
use std::time::Duration;

/// Upper bounds of the sync-duration histogram buckets, in seconds.
const BUCKETS: [f64; 10] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];

/// Label names and values of one series.
type Labels = Vec<(&'static str, String)>;

#[derive(Default)]
struct Registry {
    /// (metric, labels) -> value.
    counters: BTreeMap<(&'static str, Labels), u64>,
    durations: BTreeMap<String, Histogram>,
    /// Per lane, when the message a worker took last was first published (Unix ms).
    last_taken_published_ms: BTreeMap<&'static str, u64>,
}

#[derive(Default, Clone)]
struct Histogram {
    buckets: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

static REGISTRY: LazyLock<Mutex<Registry>> = LazyLock::new(Mutex::default);

fn registry() -> std::sync::MutexGuard<'static, Registry> {
    REGISTRY
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn count(metric: &'static str, labels: Labels, by: u64) {
    *registry().counters.entry((metric, labels)).or_default() += by;
}

/// A worker took a message of `lane` first published at `published_ms`.
pub fn delivered(lane: &'static str, published_ms: Option<u64>) {
    if let Some(at) = published_ms {
        registry().last_taken_published_ms.insert(lane, at);
    }
}

/// The age of the oldest message waiting in `lane`, in seconds, when it can be told:
/// none when the lane is empty; otherwise at most the age of the message a worker
/// took last (a lane is first in, first out, so what waits was published after it).
pub fn oldest_age_seconds(lane: &'static str, depth: u64, now_ms: u64) -> Option<f64> {
    if depth == 0 {
        return Some(0.0);
    }
    let at = *registry().last_taken_published_ms.get(lane)?;
    Some(now_ms.saturating_sub(at) as f64 / 1000.0)
}

/// A change event was taken in (published to the bus).
pub fn event_received(pair: &str, system: &str, trigger: &str, by: u64) {
    count(
        "tandem_events_received_total",
        vec![
            ("pair", pair.into()),
            ("system", system.into()),
            ("trigger", trigger.into()),
        ],
        by,
    );
}

/// A signed webhook delivery was refused because it named a Xero organisation or a
/// HubSpot portal other than the one its pair is connected to.
pub fn webhook_foreign_tenant(pair: &str, system: &str) {
    count(
        "tandem_webhooks_foreign_tenant_total",
        vec![("pair", pair.into()), ("system", system.into())],
        1,
    );
}

/// A change was handled, with its outcome and how long it took.
pub fn sync_finished(outcome: &str, took: Duration) {
    count(
        "tandem_sync_outcomes_total",
        vec![("outcome", outcome.into())],
        1,
    );
    let mut registry = registry();
    let histogram = registry.durations.entry(outcome.to_string()).or_default();
    let seconds = took.as_secs_f64();
    for (bucket, bound) in histogram.buckets.iter_mut().zip(BUCKETS) {
        if seconds <= bound {
            *bucket += 1;
        }
    }
    histogram.count += 1;
    histogram.sum += seconds;
}

/// A call to a system, by its HTTP status (0 when no answer came).
pub fn system_call(system: &str, status: u16) {
    count(
        "tandem_system_calls_total",
        vec![("system", system.into()), ("status", status.to_string())],
        1,
    );
}

/// A wait a system asked for (429 with Retry-After).
pub fn rate_limit_wait(system: &str) {
    count(
        "tandem_rate_limit_waits_total",
        vec![("system", system.into())],
        1,
    );
}

/// Gauges read at scrape time.
pub struct Gauges {
    pub queue_depth: Vec<(&'static str, u64)>,
    pub oldest_age_seconds: Vec<(&'static str, f64)>,
    pub open_conflicts: u64,
    pub failed_records: u64,
}

fn labels(labels: &[(&'static str, String)]) -> String {
    if labels.is_empty() {
        return String::new();
    }
    let inner: Vec<String> = labels
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\"")))
        .collect();
    format!("{{{}}}", inner.join(","))
}

const HELP: [(&str, &str); 5] = [
    (
        "tandem_events_received_total",
        "Change events taken in, by pair, system and trigger.",
    ),
    (
        "tandem_webhooks_foreign_tenant_total",
        "Signed webhook deliveries refused for naming another organisation or portal than their pair's.",
    ),
    ("tandem_sync_outcomes_total", "Changes handled, by outcome."),
    (
        "tandem_system_calls_total",
        "Calls to each system, by HTTP status.",
    ),
    (
        "tandem_rate_limit_waits_total",
        "Waits a system asked for with 429 and Retry-After.",
    ),
];

/// The whole exposition.
pub fn render(gauges: &Gauges) -> String {
    let registry = registry();
    let mut out = String::new();
    for (metric, help) in HELP {
        let _ = writeln!(out, "# HELP {metric} {help}\n# TYPE {metric} counter");
        for ((name, label_set), value) in
            registry.counters.iter().filter(|((n, _), _)| *n == metric)
        {
            let _ = writeln!(out, "{name}{} {value}", labels(label_set));
        }
    }
    let _ = writeln!(out, "# HELP tandem_sync_duration_seconds Time to handle one change, by outcome.\n# TYPE tandem_sync_duration_seconds histogram");
    for (outcome, histogram) in &registry.durations {
        for (bound, bucket) in BUCKETS.iter().zip(histogram.buckets) {
            let _ = writeln!(out, "tandem_sync_duration_seconds_bucket{{outcome=\"{outcome}\",le=\"{bound}\"}} {bucket}");
        }
        let _ = writeln!(
            out,
            "tandem_sync_duration_seconds_bucket{{outcome=\"{outcome}\",le=\"+Inf\"}} {}",
            histogram.count
        );
        let _ = writeln!(
            out,
            "tandem_sync_duration_seconds_sum{{outcome=\"{outcome}\"}} {}",
            histogram.sum
        );
        let _ = writeln!(
            out,
            "tandem_sync_duration_seconds_count{{outcome=\"{outcome}\"}} {}",
            histogram.count
        );
    }
    let _ = writeln!(
        out,
        "# HELP tandem_queue_depth Messages waiting in each lane.\n# TYPE tandem_queue_depth gauge"
    );
    for (lane, depth) in &gauges.queue_depth {
        let _ = writeln!(out, "tandem_queue_depth{{lane=\"{lane}\"}} {depth}");
    }
    let _ = writeln!(
        out,
        "# HELP tandem_queue_oldest_age_seconds Age of the oldest message waiting in each lane (at most).\n# TYPE tandem_queue_oldest_age_seconds gauge"
    );
    for (lane, age) in &gauges.oldest_age_seconds {
        let _ = writeln!(
            out,
            "tandem_queue_oldest_age_seconds{{lane=\"{lane}\"}} {age:.3}"
        );
    }
    let _ = writeln!(out, "# HELP tandem_open_conflicts Conflicts waiting for a person.\n# TYPE tandem_open_conflicts gauge\ntandem_open_conflicts {}", gauges.open_conflicts);
    let _ = writeln!(out, "# HELP tandem_failed_records Records whose last sync failed.\n# TYPE tandem_failed_records gauge\ntandem_failed_records {}", gauges.failed_records);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_age_is_bounded_by_the_last_message_taken() {
        assert_eq!(oldest_age_seconds("lane-a", 0, 9_000), Some(0.0), "empty");
        assert_eq!(
            oldest_age_seconds("lane-a", 3, 9_000),
            None,
            "nothing taken yet"
        );
        delivered("lane-a", Some(4_000));
        assert_eq!(oldest_age_seconds("lane-a", 3, 9_000), Some(5.0));
        delivered("lane-a", None);
        assert_eq!(
            oldest_age_seconds("lane-a", 3, 9_000),
            Some(5.0),
            "unknown times do not reset it"
        );
    }
}
