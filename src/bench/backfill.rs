//! The rate-limited backfill: customers that exist only in the CRM are brought into an
//! empty Xero through a resync of everything, with the simulated Xero enforcing its
//! real limits (60 calls in any minute, 5 at once). The figure that matters is the
//! time against the least time the limit allows: the calls the backfill needs when
//! every call carries a full batch of 50 (one look-up by e-mail and one create per
//! customer), spread over Xero's rolling minute.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde::Serialize;
use sim::{CustomerSeed, SimConfig, Simulators};
use tokio_util::sync::CancellationToken;

use crate::config::Settings;
use crate::domain::System;

/// Items per Xero batch call.
const BATCH: usize = 50;
const PER_MINUTE: usize = 60;
/// Enough changes in flight that, while Xero's minute is spent, a whole minute's worth
/// of full batches waits ready for the next one (256 left the second minute half
/// spent on rounds of the pipeline: 126.9 s instead of 66.7 s).
const BACKFILL_WORKERS: usize = 1024;

#[derive(Debug, Clone, Serialize)]
pub struct BackfillReport {
    pub customers: usize,
    pub created_in_xero: usize,
    pub seconds: f64,
    /// The least time Xero's limit allows for the calls a backfill needs with full
    /// batches: `ceil(customers / 50)` look-ups and as many creates, at most 60 in any
    /// rolling minute.
    pub least_seconds: f64,
    pub ratio_to_least: f64,
    pub xero_calls: usize,
    pub xero_calls_refused_429: usize,
    pub share_refused_429: f64,
    pub xero_creates: usize,
    pub xero_lookups: usize,
    pub xero_other_calls: usize,
    pub mean_items_per_create: f64,
    /// Items each create carried, in the order sent: where a batch left half full.
    pub items_per_create: Vec<usize>,
    /// Terms each look-up carried, in the order sent.
    pub terms_per_lookup: Vec<usize>,
    /// Seconds from the resync's start to each Xero call: how the minute was spent.
    pub call_offsets_seconds: Vec<f64>,
    pub workers: usize,
    /// Within 1.2 times the least time, with at most 1% of calls refused.
    pub goal_met: bool,
}

/// The least time `calls` take when at most `per_minute` may start in any rolling
/// minute: each full minute's worth after the first waits a minute.
pub fn least_seconds(calls: usize, per_minute: usize) -> f64 {
    if calls == 0 {
        return 0.0;
    }
    ((calls - 1) / per_minute.max(1)) as f64 * 60.0
}

pub async fn run(settings: &Settings, customers: usize) -> anyhow::Result<BackfillReport> {
    let stop_sims = CancellationToken::new();
    let sims = Simulators::start_local(SimConfig::default(), stop_sims.clone())
        .await
        .context("cannot start the simulators")?;
    for n in 0..customers {
        sims.hubspot.person_creates_customer(&CustomerSeed {
            name: format!("Backfill Customer {n}"),
            email: format!("backfill.{n}@example.com"),
            phone: Some(format!("+1 555 {n:07}")),
        });
    }
    let pair = format!(
        "backfill_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    let mut settings = settings.clone();
    settings.pairs.clear();
    // Polling and webhooks off: the resync is the only source of work.
    settings
        .pairs
        .insert(pair.clone(), crate::demo::pair_for(&sims, 0));
    settings.bus.prefix = format!("tandem_bench_{}", uuid::Uuid::new_v4().simple());
    settings.orchestrator.workers = BACKFILL_WORKERS;
    // One pair alone: it may use every worker.
    settings.orchestrator.workers_per_pair = Some(BACKFILL_WORKERS);
    let workers = settings.orchestrator.workers;
    let engine = super::in_process::InProcessEngine::start(settings).await?;
    let recorder = engine.recorder.clone();
    let started = Instant::now();
    engine.resync_customers(&pair, "crm").await?;
    let deadline = started + Duration::from_secs(600);
    let created = loop {
        let created = super::stamped_contacts(&sims);
        if created >= customers || Instant::now() > deadline {
            break created;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let seconds = started.elapsed().as_secs_f64();
    engine.stop().await;
    stop_sims.cancel();

    let calls = sims.xero.calls();
    let call_offsets_seconds = calls
        .iter()
        .map(|c| (c.at.saturating_duration_since(started).as_secs_f64() * 10.0).round() / 10.0)
        .collect();
    let refused = sims.xero.refused_429();
    let sent: Vec<_> = recorder
        .take()
        .into_iter()
        .filter(|r| r.system == System::Finance)
        .collect();
    let creates: Vec<_> = sent.iter().filter(|r| r.method == "PUT").collect();
    let terms_per_lookup: Vec<usize> = sent
        .iter()
        .filter(|r| r.method == "GET")
        .filter_map(|r| r.query.iter().find(|(k, _)| k == "where"))
        .map(|(_, clause)| clause.matches(" OR ").count() + 1)
        .collect();
    let lookups = terms_per_lookup.len();
    let items_per_create: Vec<usize> = creates
        .iter()
        .filter_map(|r| r.body.as_ref()?.get("Contacts")?.as_array().map(Vec::len))
        .collect();
    let items: usize = items_per_create.iter().sum();
    let needed = 2 * customers.div_ceil(BATCH);
    let least = least_seconds(needed, PER_MINUTE).max(1.0);
    let share = if calls.is_empty() {
        0.0
    } else {
        refused as f64 / calls.len() as f64
    };
    let ratio = seconds / least;
    Ok(BackfillReport {
        customers,
        created_in_xero: created,
        seconds,
        least_seconds: least,
        ratio_to_least: ratio,
        xero_calls: calls.len(),
        xero_calls_refused_429: refused,
        share_refused_429: share,
        xero_creates: creates.len(),
        xero_lookups: lookups,
        xero_other_calls: sent.len().saturating_sub(creates.len() + lookups),
        mean_items_per_create: if creates.is_empty() {
            0.0
        } else {
            items as f64 / creates.len() as f64
        },
        items_per_create,
        terms_per_lookup,
        call_offsets_seconds,
        workers,
        goal_met: created == customers && ratio <= 1.2 && share <= 0.01,
    })
}

#[cfg(test)]
mod tests {
    use super::least_seconds;

    #[test]
    fn the_least_time_counts_whole_minutes_after_the_first() {
        assert_eq!(least_seconds(60, 60), 0.0);
        assert_eq!(least_seconds(61, 60), 60.0);
        assert_eq!(least_seconds(120, 60), 60.0);
        assert_eq!(least_seconds(121, 60), 120.0);
    }
}
