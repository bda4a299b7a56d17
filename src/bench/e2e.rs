//! End-to-end sync under load: simulated people edit names and phones on both sides at
//! an offered rate, and the figure is the time from a person's edit to Tandem's write of
//! that value on the other side, read from the simulators' journals. First a fixed load
//! (500 changes a second by default), then rising steps until the backlog no longer
//! stays bounded.
//!
//! The simulators run without their rate limits (one Xero tenant allows 60 calls a
//! minute, far below these rates), and so do the engine's connectors unless asked
//! otherwise: what is measured is the engine, PostgreSQL and RabbitMQ.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use sea_orm::{ConnectionTrait as _, Statement};
use serde::Serialize;
use sim::{Actor, JournalEntry, Side};

use super::cpu::{CpuSnapshot, CpuUse};
use super::engine::{mib, ConnectorLimits, EngineSettings, RssSampler};
use super::rig::{other, Arrival, RigOptions, SyncRig};
use super::Latency;
use crate::config::Settings;

/// How long a step's backlog may take to drain before what is left counts as lost.
const DRAIN: Duration = Duration::from_secs(30);
/// A step keeps up when it completes this share of what was offered...
const KEPT_UP: f64 = 0.95;
/// ...with the 99th percentile under this.
const P99_BOUND: Duration = Duration::from_secs(3);

pub struct E2eOptions {
    pub customers: usize,
    pub workers: usize,
    pub seconds: u64,
    pub fixed_rate: f64,
    pub rates: Vec<f64>,
    pub limits: ConnectorLimits,
}

#[derive(Debug, Clone, Serialize)]
pub struct LoadStep {
    /// Changes a second asked for.
    pub offered_rate: f64,
    pub edits: u64,
    /// Changes a second actually made.
    pub offered_per_second: f64,
    /// Changes a second written on the other side during the step.
    pub completed_per_second: f64,
    /// Changes written on the other side by the end of the drain.
    pub arrived: usize,
    /// Changes never written within the drain (superseded or lost).
    pub not_arrived: usize,
    pub drain_seconds: f64,
    /// From a person's edit to the write of its value on the other side.
    pub latency: Latency,
    pub latency_crm_to_finance: Latency,
    pub latency_finance_to_crm: Latency,
    /// Every API write Tandem made during the step, per change offered.
    pub writes_per_change: f64,
    pub peak_rss_mib: f64,
    pub cpu: CpuUse,
    /// The API calls the simulators answered during the step.
    pub hubspot_calls: CallSummary,
    pub xero_calls: CallSummary,
    /// Completed at least 95% of what was offered, with p99 under 3 s.
    pub kept_up: bool,
}

/// API calls one simulator answered in a span: how many, how long each took to answer,
/// and how many of each kind (method and path, ids left out).
#[derive(Debug, Clone, Default, Serialize)]
pub struct CallSummary {
    pub calls: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub kinds: BTreeMap<String, usize>,
}

impl CallSummary {
    fn of<'a>(calls: impl Iterator<Item = (&'a str, &'a str, Instant, Instant)>) -> Self {
        let mut kinds = BTreeMap::new();
        let mut took = Vec::new();
        for (method, path, at, finished) in calls {
            let path: Vec<&str> = path
                .split('/')
                .map(|part| {
                    if part.chars().filter(char::is_ascii_digit).count() >= 4 {
                        ":id"
                    } else {
                        part
                    }
                })
                .collect();
            *kinds
                .entry(format!("{method} {}", path.join("/")))
                .or_default() += 1;
            took.push(finished.saturating_duration_since(at));
        }
        let latency = Latency::of(&mut took);
        Self {
            calls: took.len(),
            p50_ms: latency.p50_ms,
            p99_ms: latency.p99_ms,
            kinds,
        }
    }
}

/// Where the time of one change goes, medians (and p99) over the fixed step, from the
/// journals' wall clock and the engine's own records in PostgreSQL.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Breakdown {
    pub changes: usize,
    /// Person's edit -> webhook receipt stored: the simulator's outbox (flushes every
    /// 50 ms), the HTTP delivery, signature check and receipt insert.
    pub edit_to_receipt_ms: Stage,
    /// Receipt -> the sync's decision starts: publish with confirm, RabbitMQ, waiting
    /// for a worker, the per-record lock, fetching the source record (a batched read)
    /// and the link look-ups.
    pub receipt_to_decision_ms: Stage,
    /// Decision starts -> the value is written on the other side: the decision and the
    /// batched write.
    pub decision_to_write_ms: Stage,
    /// Write -> the link and sync log committed (the worker is still busy).
    pub write_to_commit_ms: Stage,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Stage {
    pub p50: f64,
    pub p99: f64,
}

impl Stage {
    fn of(mut values: Vec<f64>) -> Self {
        values.sort_by(f64::total_cmp);
        let at = |q: f64| {
            if values.is_empty() {
                return 0.0;
            }
            values[((values.len() as f64 - 1.0) * q).round() as usize]
        };
        Self {
            p50: at(0.5),
            p99: at(0.99),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct E2eReport {
    pub engine: EngineSettings,
    pub simulators: &'static str,
    pub customers: usize,
    pub first_sync_seconds: f64,
    pub seconds_per_step: u64,
    pub fixed: LoadStep,
    /// p50 at most 50 ms and p99 at most 500 ms at the fixed load.
    pub fixed_goal_met: bool,
    pub breakdown: Option<Breakdown>,
    pub steps: Vec<LoadStep>,
    /// The highest offered rate that kept up.
    pub highest_sustained_per_second: f64,
    /// At least 1,000 changes a second kept up.
    pub sustained_goal_met: bool,
}

pub const SIMULATORS: &str =
    "simulated HubSpot and Xero over HTTP, rate limits off (enforce_limits = false)";

pub async fn run(settings: &Settings, options: &E2eOptions) -> anyhow::Result<E2eReport> {
    let rig = SyncRig::start(
        settings,
        RigOptions {
            name: "e2e",
            customers: options.customers,
            workers: options.workers,
            poll_interval_secs: 0,
            limits: options.limits,
            webhook_base: None,
        },
    )
    .await?;
    let result = measure(&rig, options).await;
    rig.stop().await?;
    result
}

async fn measure(rig: &SyncRig, options: &E2eOptions) -> anyhow::Result<E2eReport> {
    println!("{}", rig.engine.settings.line());
    let first_sync = rig.link_all(Duration::from_secs(600)).await?;
    println!(
        "first sync: {} customers linked in {:.1} s",
        rig.records.len(),
        first_sync.as_secs_f64()
    );
    let sampler = RssSampler::start(rig.engine.pid);
    let length = Duration::from_secs(options.seconds.max(1));
    let mut serial = 0;
    let fixed = step(rig, &sampler, options.fixed_rate, length, &mut serial).await?;
    let breakdown = match breakdown(rig, &fixed.1).await {
        Ok(found) => found,
        Err(err) => {
            tracing::warn!(error = format!("{err:#}"), "no breakdown of the fixed step");
            None
        }
    };
    let fixed = fixed.0;
    let mut steps = Vec::new();
    for &rate in &options.rates {
        let (found, _) = step(rig, &sampler, rate, length, &mut serial).await?;
        let kept_up = found.kept_up;
        steps.push(found);
        if !kept_up {
            break;
        }
    }
    let highest = steps
        .iter()
        .filter(|s| s.kept_up)
        .map(|s| s.offered_per_second)
        .fold(0.0, f64::max);
    Ok(E2eReport {
        engine: rig.engine.settings.clone(),
        simulators: SIMULATORS,
        customers: rig.records.len(),
        first_sync_seconds: first_sync.as_secs_f64(),
        seconds_per_step: options.seconds,
        fixed_goal_met: fixed.latency.p50_ms <= 50.0
            && fixed.latency.p99_ms <= 500.0
            && fixed.kept_up,
        fixed,
        breakdown,
        steps,
        highest_sustained_per_second: highest,
        sustained_goal_met: highest >= 1000.0 * KEPT_UP,
    })
}

/// The span a step's edits were made in, for the breakdown.
pub struct StepSpan {
    from: Instant,
    to: Instant,
}

/// One step: offer `rate` for `length`, drain, settle.
pub async fn step(
    rig: &SyncRig,
    sampler: &RssSampler,
    rate: f64,
    length: Duration,
    serial: &mut u64,
) -> anyhow::Result<(LoadStep, StepSpan)> {
    let before = CpuSnapshot::take(rig.engine.pid);
    let offered = rig.offer(rate, length, serial).await;
    let cpu = before.until(&CpuSnapshot::take(rig.engine.pid));
    let (arrivals, drained) = rig.drain(offered.started, offered.ended, DRAIN).await;
    let peak = sampler.peak(offered.started, Instant::now());
    let journal = rig.sims.journal();
    let writes = journal
        .iter()
        .filter(|e| e.actor == Actor::Api)
        .filter(|e| {
            e.at.is_some_and(|at| at >= offered.started && at < offered.ended)
        })
        .count();
    let within = |at: Instant| at >= offered.started && at < offered.ended;
    let hubspot = rig.sims.hubspot.calls();
    let xero = rig.sims.xero.calls();
    let calls = (
        CallSummary::of(
            hubspot
                .iter()
                .filter(|c| within(c.at))
                .map(|c| (c.method.as_str(), c.path.as_str(), c.at, c.finished)),
        ),
        CallSummary::of(
            xero.iter()
                .filter(|c| within(c.at))
                .map(|c| (c.method.as_str(), c.path.as_str(), c.at, c.finished)),
        ),
    );
    let found = summarize(rate, &offered, &arrivals, drained, writes, peak, cpu, calls);
    rig.settle(Duration::from_secs(1), Duration::from_secs(120))
        .await?;
    println!(
        "  offered {:.0}/s: completed {:.0}/s, p50 {:.1} ms, p99 {:.1} ms, {} not arrived{}",
        found.offered_per_second,
        found.completed_per_second,
        found.latency.p50_ms,
        found.latency.p99_ms,
        found.not_arrived,
        if found.kept_up {
            ""
        } else {
            ": did not keep up"
        }
    );
    Ok((
        found,
        StepSpan {
            from: offered.started,
            to: offered.ended,
        },
    ))
}

#[allow(clippy::too_many_arguments)]
fn summarize(
    rate: f64,
    offered: &super::rig::Offered,
    arrivals: &[Arrival],
    drained: Duration,
    writes: usize,
    peak_rss: u64,
    cpu: CpuUse,
    (hubspot_calls, xero_calls): (CallSummary, CallSummary),
) -> LoadStep {
    let seconds = offered.seconds().max(1e-3);
    let completed = arrivals
        .iter()
        .filter(|a| a.written_at.is_some_and(|w| w <= offered.ended))
        .count();
    let latencies = |side: Option<Side>| {
        let mut samples: Vec<Duration> = arrivals
            .iter()
            .filter(|a| side.is_none_or(|s| a.side == s))
            .filter_map(Arrival::latency)
            .collect();
        Latency::of(&mut samples)
    };
    let arrived = arrivals.iter().filter(|a| a.written_at.is_some()).count();
    let latency = latencies(None);
    let offered_per_second = offered.edits as f64 / seconds;
    let completed_per_second = completed as f64 / seconds;
    LoadStep {
        offered_rate: rate,
        edits: offered.edits,
        offered_per_second,
        completed_per_second,
        arrived,
        not_arrived: arrivals.len() - arrived,
        drain_seconds: drained.as_secs_f64(),
        latency_crm_to_finance: latencies(Some(Side::Crm)),
        latency_finance_to_crm: latencies(Some(Side::Finance)),
        kept_up: completed_per_second >= KEPT_UP * offered_per_second
            && latency.p99_ms <= P99_BOUND.as_secs_f64() * 1000.0
            && arrived == arrivals.len(),
        latency,
        writes_per_change: writes as f64 / offered.edits.max(1) as f64,
        peak_rss_mib: mib(peak_rss),
        cpu,
        hubspot_calls,
        xero_calls,
    }
}

/// The object id a webhook receipt's delivery key names (see `webhooks::hubspot` and
/// `webhooks::xero`).
fn receipt_object(system: &str, key: &str) -> Option<String> {
    let parts: Vec<&str> = key.split(':').collect();
    match system {
        "crm" => parts.get(5),
        _ => parts.get(4),
    }
    .map(|s| s.to_string())
}

/// Joins each change of the fixed step with the engine's receipt and sync log rows
/// (PostgreSQL only); `None` on another store.
async fn breakdown(rig: &SyncRig, span: &StepSpan) -> anyhow::Result<Option<Breakdown>> {
    let url = &rig.settings().database_url;
    if !url.starts_with("postgres") {
        return Ok(None);
    }
    let db = sea_orm::Database::connect(url).await?;
    let backend = db.get_database_backend();
    let pair = &rig.pair;
    let receipts = db
        .query_all(Statement::from_string(
            backend,
            format!(
                "SELECT system, delivery_key, (EXTRACT(EPOCH FROM received_at) * 1000)::float8 AS ms \
                 FROM webhook_receipt WHERE pair = '{pair}'"
            ),
        ))
        .await?;
    let logs = db
        .query_all(Statement::from_string(
            backend,
            format!(
                "SELECT source_system, external_id, duration_ms, \
                 (EXTRACT(EPOCH FROM created_at) * 1000)::float8 AS ms \
                 FROM sync_log WHERE pair = '{pair}' AND outcome = 'updated'"
            ),
        ))
        .await?;
    let _ = db.close().await;
    let mut received: HashMap<(String, String), Vec<f64>> = HashMap::new();
    for row in receipts {
        let (Ok(system), Ok(key), Ok(ms)) = (
            row.try_get::<String>("", "system"),
            row.try_get::<String>("", "delivery_key"),
            row.try_get::<f64>("", "ms"),
        ) else {
            continue;
        };
        if let Some(object) = receipt_object(&system, &key) {
            received.entry((system, object)).or_default().push(ms);
        }
    }
    let mut committed: HashMap<(String, String), Vec<(f64, f64)>> = HashMap::new();
    for row in logs {
        let (Ok(system), Ok(id), Ok(duration), Ok(ms)) = (
            row.try_get::<String>("", "source_system"),
            row.try_get::<String>("", "external_id"),
            row.try_get::<i64>("", "duration_ms"),
            row.try_get::<f64>("", "ms"),
        ) else {
            continue;
        };
        committed
            .entry((system, id))
            .or_default()
            .push((ms - duration as f64, ms));
    }
    for list in received.values_mut() {
        list.sort_by(f64::total_cmp);
    }
    for list in committed.values_mut() {
        list.sort_by(|a, b| a.0.total_cmp(&b.0));
    }
    let journal = rig.sims.journal();
    let mut writes: HashMap<(Side, &str), Vec<&JournalEntry>> = HashMap::new();
    for entry in journal.iter().filter(|e| e.actor == Actor::Api) {
        writes
            .entry((entry.side, &entry.id))
            .or_default()
            .push(entry);
    }
    let side_name = |side: Side| match side {
        Side::Crm => "crm",
        Side::Finance => "finance",
    };
    let (mut a, mut b, mut c, mut d) = (vec![], vec![], vec![], vec![]);
    for edit in journal.iter().filter(|e| {
        e.actor == Actor::Person
            && e.at.is_some_and(|at| at >= span.from && at < span.to)
            && e.action == sim::Action::Update
    }) {
        let Some(there) = rig.counterpart(edit.side, &edit.id) else {
            continue;
        };
        let edit_ms = edit.at_ms as f64;
        let Some(write) = writes
            .get(&(other(edit.side), there.as_str()))
            .into_iter()
            .flatten()
            .find(|w| {
                w.at_ms >= edit.at_ms
                    && edit
                        .changed
                        .iter()
                        .all(|(f, v)| w.changed.get(f) == Some(v))
            })
        else {
            continue;
        };
        let write_ms = write.at_ms as f64;
        let key = (side_name(edit.side).to_string(), edit.id.clone());
        let Some(receipt) = received
            .get(&key)
            .and_then(|list| list.iter().find(|ms| **ms >= edit_ms - 1.0))
        else {
            continue;
        };
        let Some((start, commit)) = committed
            .get(&key)
            .and_then(|list| list.iter().find(|(_, commit)| *commit >= write_ms - 1.0))
        else {
            continue;
        };
        a.push(receipt - edit_ms);
        b.push(start - receipt);
        c.push(write_ms - start);
        d.push(commit - write_ms);
    }
    Ok(Some(Breakdown {
        changes: a.len(),
        edit_to_receipt_ms: Stage::of(a),
        receipt_to_decision_ms: Stage::of(b),
        decision_to_write_ms: Stage::of(c),
        write_to_commit_ms: Stage::of(d),
    }))
}
