//! The neighbour: two pairs on one engine, each with its own simulated HubSpot portal and
//! Xero organisation (real limits enforced). Pair B's people edit a few customers
//! steadily; its edit latency is measured while pair A is quiet, during A's
//! 3,000-customer backfill (a resync, its echoes coming back by webhook) and during a
//! burst of A's people editing 50 customers a second. One busy organisation must not
//! stall the other: B's p99 under A's load stays within twice its quiet p99, and A's
//! backfill still runs near the least time its own Xero limit allows.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde::Serialize;
use sim::{Actor, CustomerEdit, CustomerSeed, SimConfig, Simulators};
use tokio_util::sync::CancellationToken;

use super::in_process::InProcessEngine;
use super::Latency;
use crate::config::Settings;

/// Pair B's customers and its people's pace: an edit costs B about two Xero calls (the
/// write and its echo's read), so one every 3 s keeps B within its own 60 a minute and
/// its latency is the engine's, not its own limit's.
const B_CUSTOMERS: usize = 20;
const B_EDIT_EVERY: Duration = Duration::from_secs(3);
/// How long B is measured alone and during A's burst.
const PHASE: Duration = Duration::from_secs(60);
const A_BURST_PER_SECOND: f64 = 50.0;
/// Items per Xero batch call and calls a minute, for A's least backfill time.
const BATCH: usize = 50;
const PER_MINUTE: usize = 60;

#[derive(Debug, Clone, Serialize)]
pub struct Phase {
    pub edits: usize,
    /// Edits that had not reached Xero 30 s after the phase.
    pub missing: usize,
    pub latency: Latency,
    /// Every latency, in milliseconds, in the order the edits were made: a p99 of a few
    /// dozen edits is their slowest, and this shows whether it stood alone.
    pub samples_ms: Vec<u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct NeighbourReport {
    pub a_customers: usize,
    pub b_quiet: Phase,
    pub b_during_backfill: Phase,
    pub b_during_burst: Phase,
    pub a_backfill_seconds: f64,
    pub a_backfill_least_seconds: f64,
    pub a_backfill_ratio: f64,
    pub a_burst_edits: usize,
    /// B's p99 during A's backfill and burst over its quiet p99.
    pub p99_ratio_backfill: f64,
    pub p99_ratio_burst: f64,
    pub workers: usize,
    pub workers_per_pair: usize,
    /// Both ratios within 2, no edit of B missing, A's backfill within 1.2x its least
    /// time.
    pub goal_met: bool,
}

/// One of B's edits: the CRM record, the phone it got, and when.
struct Edit {
    crm_id: String,
    phone: String,
    at: Instant,
}

pub async fn run(settings: &Settings, a_customers: usize) -> anyhow::Result<NeighbourReport> {
    let stop_sims = CancellationToken::new();
    let start_sims = || async {
        Simulators::start_local(SimConfig::default(), stop_sims.clone())
            .await
            .context("cannot start the simulators")
    };
    let (sims_a, sims_b) = (Arc::new(start_sims().await?), Arc::new(start_sims().await?));
    let a_records: Vec<String> = (0..a_customers)
        .map(|n| {
            sims_a.hubspot.person_creates_customer(&CustomerSeed {
                name: format!("Neighbour A {n}"),
                email: format!("neighbour.a.{n}@example.com"),
                phone: Some(format!("+1 555 {n:07}")),
            })
        })
        .collect();
    let b_records: Vec<String> = (0..B_CUSTOMERS)
        .map(|n| {
            sims_b.hubspot.person_creates_customer(&CustomerSeed {
                name: format!("Neighbour B {n}"),
                email: format!("neighbour.b.{n}@example.com"),
                phone: Some(format!("+1 556 {n:07}")),
            })
        })
        .collect();

    let tag = &uuid::Uuid::new_v4().simple().to_string()[..8];
    let (pair_a, pair_b) = (format!("busy_{tag}"), format!("quiet_{tag}"));
    let mut settings = settings.clone();
    settings.pairs.clear();
    settings
        .pairs
        .insert(pair_a.clone(), crate::demo::pair_for(&sims_a, 0));
    settings
        .pairs
        .insert(pair_b.clone(), crate::demo::pair_for(&sims_b, 0));
    settings.bus.prefix = format!("tandem_bench_neighbour_{tag}");
    let (workers, workers_per_pair) = (
        settings.orchestrator.workers,
        settings.orchestrator.pair_share(),
    );
    let engine = InProcessEngine::start(settings.clone()).await?;

    // A's seeds are its backfill's work, not webhooks: they are dropped on the way.
    sims_a.knobs.update(|k| k.webhook_drop_rate = 1.0);
    let (crm_a, finance_a) = crate::demo::webhook_urls(&engine.base, &pair_a);
    sims_a.send_webhooks_to(Some(crm_a), Some(finance_a));
    wait_for(Duration::from_secs(30), "A's seed webhooks dropped", || {
        let stats = sims_a.hubspot.outbox().stats();
        stats.dropped * 100 >= a_customers as u64
    })
    .await?;
    sims_a.knobs.update(|k| k.webhook_drop_rate = 0.0);

    // B's seeds reach Xero by webhook, and link.
    let (crm_b, finance_b) = crate::demo::webhook_urls(&engine.base, &pair_b);
    sims_b.send_webhooks_to(Some(crm_b), Some(finance_b));
    wait_for(Duration::from_secs(60), "B's customers linked", || {
        super::stamped_contacts(&sims_b) >= B_CUSTOMERS
    })
    .await?;

    let mut serial = 0u64;
    let quiet = b_edits_for(&sims_b, &b_records, &mut serial, PHASE).await;
    let b_quiet = phase(&sims_b, quiet).await;

    let started = Instant::now();
    engine.resync_customers(&pair_a, "crm").await?;
    let backfill_done = CancellationToken::new();
    let watcher = {
        let (sims_a, done) = (sims_a.clone(), backfill_done.clone());
        tokio::spawn(async move {
            let deadline = Instant::now() + Duration::from_secs(600);
            while super::stamped_contacts(&sims_a) < a_customers && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            done.cancel();
            started.elapsed()
        })
    };
    let during_backfill = b_edits_until(&sims_b, &b_records, &mut serial, &backfill_done).await;
    let backfill_took = watcher.await.context("the backfill watcher")?;
    anyhow::ensure!(
        super::stamped_contacts(&sims_a) >= a_customers,
        "A's backfill did not finish within 600 s"
    );
    let b_during_backfill = phase(&sims_b, during_backfill).await;

    let burst_done = CancellationToken::new();
    let burst = {
        let (sims_a, done) = (sims_a.clone(), burst_done.clone());
        let records = a_records.clone();
        tokio::spawn(async move { a_burst(&sims_a, &records, &done).await })
    };
    let during_burst = b_edits_for(&sims_b, &b_records, &mut serial, PHASE).await;
    burst_done.cancel();
    let a_burst_edits = burst.await.context("A's burst")?;
    let b_during_burst = phase(&sims_b, during_burst).await;

    engine.stop().await;
    stop_sims.cancel();

    let least =
        super::backfill::least_seconds(2 * a_customers.div_ceil(BATCH), PER_MINUTE).max(1.0);
    let a_backfill_seconds = backfill_took.as_secs_f64();
    let ratio = |p: &Phase| p.latency.p99_ms / b_quiet.latency.p99_ms.max(1.0);
    let (p99_ratio_backfill, p99_ratio_burst) = (ratio(&b_during_backfill), ratio(&b_during_burst));
    let missing = b_quiet.missing + b_during_backfill.missing + b_during_burst.missing;
    Ok(NeighbourReport {
        a_customers,
        a_backfill_seconds,
        a_backfill_least_seconds: least,
        a_backfill_ratio: a_backfill_seconds / least,
        a_burst_edits,
        p99_ratio_backfill,
        p99_ratio_burst,
        workers,
        workers_per_pair,
        goal_met: p99_ratio_backfill <= 2.0
            && p99_ratio_burst <= 2.0
            && missing == 0
            && a_backfill_seconds / least <= 1.2,
        b_quiet,
        b_during_backfill,
        b_during_burst,
    })
}

async fn wait_for(within: Duration, what: &str, done: impl Fn() -> bool) -> anyhow::Result<()> {
    let deadline = Instant::now() + within;
    while !done() {
        anyhow::ensure!(Instant::now() < deadline, "not within {within:?}: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

/// One edit of B's: the next customer in turn gets a phone never used before.
fn b_edit(sims: &Simulators, records: &[String], serial: &mut u64) -> Edit {
    let crm_id = records[*serial as usize % records.len()].clone();
    let phone = format!("+1 557 {:09}", *serial);
    *serial += 1;
    let at = Instant::now();
    sims.hubspot.person_edits_customer(
        &crm_id,
        &CustomerEdit {
            phone: Some(phone.clone()),
            ..Default::default()
        },
    );
    Edit { crm_id, phone, at }
}

async fn b_edits_for(
    sims: &Simulators,
    records: &[String],
    serial: &mut u64,
    length: Duration,
) -> Vec<Edit> {
    let done = CancellationToken::new();
    let timer = {
        let done = done.clone();
        tokio::spawn(async move {
            tokio::time::sleep(length).await;
            done.cancel();
        })
    };
    let edits = b_edits_until(sims, records, serial, &done).await;
    let _ = timer.await;
    edits
}

async fn b_edits_until(
    sims: &Simulators,
    records: &[String],
    serial: &mut u64,
    done: &CancellationToken,
) -> Vec<Edit> {
    let mut edits = Vec::new();
    let mut tick = tokio::time::interval(B_EDIT_EVERY);
    loop {
        tokio::select! {
            _ = done.cancelled() => return edits,
            _ = tick.tick() => edits.push(b_edit(sims, records, serial)),
        }
    }
}

/// A's people edit its customers' phones at [`A_BURST_PER_SECOND`] until `done`.
async fn a_burst(sims: &Simulators, records: &[String], done: &CancellationToken) -> usize {
    let started = Instant::now();
    let mut made = 0usize;
    while !done.is_cancelled() {
        let due = (started.elapsed().as_secs_f64() * A_BURST_PER_SECOND) as usize;
        while made < due {
            sims.hubspot.person_edits_customer(
                &records[made % records.len()],
                &CustomerEdit {
                    phone: Some(format!("+1 558 {made:09}")),
                    ..Default::default()
                },
            );
            made += 1;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    made
}

/// Waits (at most 30 s) for `edits` to reach Xero, then measures each one's latency:
/// from the person's edit in HubSpot to Tandem's write of that phone in Xero, as the
/// simulated Xero's journal timed it.
async fn phase(sims: &Simulators, edits: Vec<Edit>) -> Phase {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let arrived = arrivals(sims, &edits);
        if arrived.iter().all(Option::is_some) || Instant::now() >= deadline {
            let mut samples: Vec<Duration> = arrived.iter().flatten().copied().collect();
            let samples_ms = samples.iter().map(|d| d.as_millis() as u64).collect();
            return Phase {
                edits: edits.len(),
                missing: arrived.iter().filter(|a| a.is_none()).count(),
                latency: Latency::of(&mut samples),
                samples_ms,
            };
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn arrivals(sims: &Simulators, edits: &[Edit]) -> Vec<Option<Duration>> {
    let by_stamp: HashMap<String, String> = sims
        .xero
        .customers()
        .into_iter()
        .filter_map(|c| Some((c.stamp?, c.id)))
        .collect();
    let journal = sims.xero.journal();
    edits
        .iter()
        .map(|edit| {
            let xero_id = by_stamp.get(&edit.crm_id)?;
            journal
                .iter()
                .filter(|w| w.actor == Actor::Api && &w.id == xero_id)
                .filter(|w| w.changed.get("phone") == Some(&Some(edit.phone.clone())))
                .filter_map(|w| w.at)
                .find(|at| *at >= edit.at)
                .map(|at| at.duration_since(edit.at))
        })
        .collect()
}
