//! One scrape: the counters as they stand, then the gauges read for this scrape.
//!
//! The gauges go into a registry made for the one scrape, so a lane that cannot be read
//! this time is left out instead of showing the figure an earlier scrape read.

use prometheus_client::encoding::{prometheus_text, EncodeLabelSet};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

use super::Metrics;

/// The `Content-Type` of the Prometheus text format, version 0.0.4.
pub const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

/// Gauges read at scrape time.
pub struct Gauges {
    pub queue_depth: Vec<(&'static str, u64)>,
    pub oldest_age_seconds: Vec<(&'static str, f64)>,
    pub open_conflicts: u64,
    pub failed_records: u64,
    pub retrying_records: u64,
    /// Changes in this process by lane, pair and what they do (`slot`, `lock`, `rate`
    /// waiting; `running`).
    pub in_process: Vec<(&'static str, String, &'static str, u64)>,
    /// Messages waiting in the broker by lane and pair.
    pub pair_depth: Vec<(&'static str, String, u64)>,
    /// Calls left today by pair and side, as each service last reported them.
    pub day_remaining: Vec<(String, &'static str, u64)>,
    /// Seconds until a spent budget renews, by pair and side (only while spent).
    pub budget_spent_seconds: Vec<(String, &'static str, u64)>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SideLabels {
    pair: String,
    system: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PairLabels {
    lane: &'static str,
    pair: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LaneLabels {
    lane: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct InProcessLabels {
    lane: &'static str,
    pair: String,
    stage: &'static str,
}

impl Gauges {
    fn registry(&self) -> Registry {
        let depth = Family::<LaneLabels, Gauge<u64, AtomicU64>>::default();
        for (lane, value) in &self.queue_depth {
            depth.get_or_create(&LaneLabels { lane }).set(*value);
        }
        let age = Family::<LaneLabels, Gauge<f64, AtomicU64>>::default();
        for (lane, value) in &self.oldest_age_seconds {
            age.get_or_create(&LaneLabels { lane }).set(*value);
        }
        let open_conflicts = Gauge::<u64, AtomicU64>::default();
        open_conflicts.set(self.open_conflicts);
        let failed_records = Gauge::<u64, AtomicU64>::default();
        failed_records.set(self.failed_records);
        let retrying_records = Gauge::<u64, AtomicU64>::default();
        retrying_records.set(self.retrying_records);
        let in_process = Family::<InProcessLabels, Gauge<u64, AtomicU64>>::default();
        for (lane, pair, stage, value) in &self.in_process {
            in_process
                .get_or_create(&InProcessLabels {
                    lane,
                    pair: pair.clone(),
                    stage,
                })
                .set(*value);
        }
        let pair_depth = Family::<PairLabels, Gauge<u64, AtomicU64>>::default();
        for (lane, pair, value) in &self.pair_depth {
            pair_depth
                .get_or_create(&PairLabels {
                    lane,
                    pair: pair.clone(),
                })
                .set(*value);
        }
        let side_gauge = |values: &[(String, &'static str, u64)]| {
            let family = Family::<SideLabels, Gauge<u64, AtomicU64>>::default();
            for (pair, system, value) in values {
                family
                    .get_or_create(&SideLabels {
                        pair: pair.clone(),
                        system,
                    })
                    .set(*value);
            }
            family
        };
        let day_remaining = side_gauge(&self.day_remaining);
        let budget_spent = side_gauge(&self.budget_spent_seconds);

        let mut registry = Registry::default();
        registry.register(
            "tandem_connection_day_remaining",
            "Calls left today for each side's account, as the service last reported them",
            day_remaining,
        );
        registry.register(
            "tandem_connection_budget_spent_seconds",
            "Seconds until a spent budget (the day's calls) renews; only while spent",
            budget_spent,
        );
        registry.register("tandem_queue_depth", "Messages waiting in each lane", depth);
        registry.register(
            "tandem_queue_pair_depth",
            "Messages waiting in the broker, by lane and pair (each pair has its own queue)",
            pair_depth,
        );
        registry.register(
            "tandem_queue_oldest_age_seconds",
            "Age of the oldest message waiting in each lane (at most)",
            age,
        );
        registry.register(
            "tandem_open_conflicts",
            "Conflicts waiting for a person",
            open_conflicts,
        );
        registry.register(
            "tandem_failed_records",
            "Records whose last sync failed",
            failed_records,
        );
        registry.register(
            "tandem_retrying_records",
            "Records whose change failed and is tried again",
            retrying_records,
        );
        registry.register(
            "tandem_queue_in_process",
            "Changes inside this process by lane, pair and stage: waiting for a worker (slot), its record's lock (lock) or its connection's rate budget (rate), or running",
            in_process,
        );
        registry
    }
}

impl Metrics {
    /// The whole exposition: this registry's counters and histogram, then `gauges`.
    pub fn render(&self, gauges: &Gauges) -> String {
        let mut out = String::new();
        // Encoding into a `String` cannot fail: the writer never refuses, and every
        // label value here is a string or an integer.
        let _ = prometheus_text::encode(&mut out, &self.registry);
        let _ = prometheus_text::encode(&mut out, &gauges.registry());
        out
    }
}
