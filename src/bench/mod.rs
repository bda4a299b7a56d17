//! `tandem bench`: figures anyone can reproduce with one command. The scenarios: webhook
//! ingest, the rate-limited backfill, end-to-end sync under load (`e2e`), API economy
//! and memory. The last three run the engine as a child process against the simulators
//! over HTTP (see `engine.rs` and `rig.rs`).

pub mod args;
pub mod backfill;
pub mod cpu;
pub mod e2e;
pub mod economy;
pub mod engine;
pub mod in_process;
pub mod ingest;
pub mod memory;
pub mod neighbour;
pub mod rig;

use std::time::Duration;

use serde::Serialize;

pub use args::BenchArgs;

/// Latency percentiles of a set of samples.
#[derive(Debug, Clone, Serialize)]
pub struct Latency {
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl Latency {
    pub fn of(samples: &mut [Duration]) -> Self {
        samples.sort();
        let at = |q: f64| -> f64 {
            if samples.is_empty() {
                return 0.0;
            }
            let index = ((samples.len() as f64 - 1.0) * q).round() as usize;
            samples[index].as_secs_f64() * 1000.0
        };
        Self {
            p50_ms: at(0.50),
            p99_ms: at(0.99),
            max_ms: at(1.0),
        }
    }
}

pub const SCENARIOS: [&str; 6] = [
    "ingest",
    "backfill",
    "e2e",
    "economy",
    "memory",
    "neighbour",
];

/// `tandem bench`: runs the scenarios, prints a table, writes JSON.
pub async fn run(settings: &crate::config::Settings, args: &BenchArgs) -> anyhow::Result<()> {
    if args.engine_child {
        return engine::serve_with_lifted_limits(settings.clone()).await;
    }
    if let Some(wrapper) = &args.engine_wrapper {
        engine::wrap_engine_in(wrapper);
    }
    for scenario in &args.scenarios {
        if !SCENARIOS.contains(&scenario.as_str()) {
            anyhow::bail!(
                "no scenario `{scenario}`; the scenarios are {}",
                SCENARIOS.join(", ")
            );
        }
    }
    for scenario in &args.scenarios {
        match scenario.as_str() {
            "ingest" => run_ingest(settings, args).await?,
            "backfill" => run_backfill(settings, args).await?,
            "e2e" => run_e2e(settings, args).await?,
            "economy" => run_economy(settings, args).await?,
            "neighbour" => run_neighbour(settings, args).await?,
            _ => run_memory(settings, args).await?,
        }
    }
    Ok(())
}

fn write_json(args: &BenchArgs, scenario: &str, document: serde_json::Value) -> anyhow::Result<()> {
    use anyhow::Context as _;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    let path = args.out.join(format!(
        "{scenario}-{}.json",
        chrono::Utc::now().format("%Y%m%dT%H%M%SZ")
    ));
    std::fs::write(&path, serde_json::to_vec_pretty(&document)?)
        .with_context(|| format!("cannot write {}", path.display()))?;
    println!("results written to {}", path.display());
    Ok(())
}

async fn run_ingest(settings: &crate::config::Settings, args: &BenchArgs) -> anyhow::Result<()> {
    println!(
        "webhook ingest: signed Xero deliveries over HTTP into {} and {}",
        crate::service::redact_url(&settings.database_url),
        crate::service::redact_url(&settings.amqp_url)
    );
    let report = ingest::run(settings, &args.concurrency, args.seconds).await?;
    println!(
        "{:>11} {:>11} {:>8} {:>13} {:>9} {:>9} {:>13} {:>8}",
        "concurrency",
        "deliveries",
        "failed",
        "deliveries/s",
        "p50 ms",
        "p99 ms",
        "bare mq/s",
        "ratio"
    );
    for step in &report.steps {
        println!(
            "{:>11} {:>11} {:>8} {:>13.0} {:>9.2} {:>9.2} {:>13.0} {:>8.2}",
            step.concurrency,
            step.deliveries,
            step.failed,
            step.per_second,
            step.latency.p50_ms,
            step.latency.p99_ms,
            step.bare_rabbitmq_per_second,
            step.ratio_to_bare
        );
    }
    println!(
        "bare mq/s: as many publishers as senders, each waiting for its confirm; ratio: deliveries/s over bare mq/s (goal >= 0.7)"
    );
    println!(
        "bare RabbitMQ publish with confirms: {:.0}/s one at a time, {:.0}/s with 100 in flight",
        report.rabbitmq_confirm_one_at_a_time_per_second,
        report.rabbitmq_confirm_100_in_flight_per_second
    );
    write_json(
        args,
        "ingest",
        serde_json::json!({
            "scenario": "webhook_ingest",
            "at": chrono::Utc::now(),
            "seconds_per_step": args.seconds,
            "database": crate::service::redact_url(&settings.database_url),
            "bus": crate::service::redact_url(&settings.amqp_url),
            "report": report,
        }),
    )
}

async fn run_backfill(settings: &crate::config::Settings, args: &BenchArgs) -> anyhow::Result<()> {
    println!(
        "rate-limited backfill: {} CRM customers into an empty simulated Xero (60 calls a minute, 5 at once), through {} and {}",
        args.customers,
        crate::service::redact_url(&settings.database_url),
        crate::service::redact_url(&settings.amqp_url)
    );
    let r = backfill::run(settings, args.customers).await?;
    println!(
        "{:>9} {:>8} {:>9} {:>8} {:>6} {:>6} {:>8} {:>6} {:>10} {:>5}",
        "customers",
        "created",
        "seconds",
        "least s",
        "ratio",
        "calls",
        "creates",
        "finds",
        "items/put",
        "429s"
    );
    println!(
        "{:>9} {:>8} {:>9.1} {:>8.0} {:>6.2} {:>6} {:>8} {:>6} {:>10.1} {:>5}",
        r.customers,
        r.created_in_xero,
        r.seconds,
        r.least_seconds,
        r.ratio_to_least,
        r.xero_calls,
        r.xero_creates,
        r.xero_lookups,
        r.mean_items_per_create,
        r.xero_calls_refused_429
    );
    println!(
        "goal (within 1.2x the least time, at most 1% of calls refused): {}",
        if r.goal_met { "met" } else { "missed" }
    );
    write_json(
        args,
        "backfill",
        serde_json::json!({
            "scenario": "rate_limited_backfill",
            "at": chrono::Utc::now(),
            "database": crate::service::redact_url(&settings.database_url),
            "bus": crate::service::redact_url(&settings.amqp_url),
            "report": r,
        }),
    )
}

async fn run_neighbour(settings: &crate::config::Settings, args: &BenchArgs) -> anyhow::Result<()> {
    println!(
        "neighbour: pair B's edit latency while pair A is quiet, backfills {} customers, and edits 50 a second; both pairs on one engine, real Xero limits, through {} and {}",
        args.customers,
        crate::service::redact_url(&settings.database_url),
        crate::service::redact_url(&settings.amqp_url)
    );
    let r = neighbour::run(settings, args.customers).await?;
    println!(
        "{:<22} {:>6} {:>8} {:>9} {:>9} {:>9}",
        "B's edits", "edits", "missing", "p50 ms", "p99 ms", "max ms"
    );
    for (name, phase) in [
        ("A quiet", &r.b_quiet),
        ("during A's backfill", &r.b_during_backfill),
        ("during A's burst", &r.b_during_burst),
    ] {
        println!(
            "{:<22} {:>6} {:>8} {:>9.0} {:>9.0} {:>9.0}",
            name,
            phase.edits,
            phase.missing,
            phase.latency.p50_ms,
            phase.latency.p99_ms,
            phase.latency.max_ms
        );
    }
    println!(
        "B's p99 over its quiet p99: {:.2} during A's backfill, {:.2} during A's burst ({} edits)",
        r.p99_ratio_backfill, r.p99_ratio_burst, r.a_burst_edits
    );
    println!(
        "A's backfill: {:.1} s, least {:.0} s, ratio {:.2}; workers {} ({} at most per pair)",
        r.a_backfill_seconds,
        r.a_backfill_least_seconds,
        r.a_backfill_ratio,
        r.workers,
        r.workers_per_pair
    );
    println!(
        "goal (B's p99 within 2x quiet, nothing missing, A's backfill within 1.2x): {}",
        met(r.goal_met)
    );
    write_json(
        args,
        "neighbour",
        serde_json::json!({
            "scenario": "neighbour",
            "at": chrono::Utc::now(),
            "database": crate::service::redact_url(&settings.database_url),
            "bus": crate::service::redact_url(&settings.amqp_url),
            "report": r,
        }),
    )
}

fn met(goal: bool) -> &'static str {
    if goal {
        "met"
    } else {
        "missed"
    }
}

fn print_steps(steps: &[&e2e::LoadStep]) {
    println!(
        "{:>8} {:>9} {:>11} {:>8} {:>8} {:>8} {:>8} {:>7} {:>7} {:>9} {:>28} {:>8}",
        "offered",
        "made/s",
        "completed/s",
        "p50 ms",
        "p99 ms",
        "max ms",
        "missing",
        "drain s",
        "writes",
        "peak MiB",
        "cores eng/sims/pg/mq/other",
        "kept up"
    );
    for s in steps {
        println!(
            "{:>8.0} {:>9.0} {:>11.0} {:>8.1} {:>8.1} {:>8.1} {:>8} {:>7.1} {:>7.2} {:>9.1} {:>28} {:>8}",
            s.offered_rate,
            s.offered_per_second,
            s.completed_per_second,
            s.latency.p50_ms,
            s.latency.p99_ms,
            s.latency.max_ms,
            s.not_arrived,
            s.drain_seconds,
            s.writes_per_change,
            s.peak_rss_mib,
            format!(
                "{:.2}/{:.2}/{:.2}/{:.2}/{:.2}",
                s.cpu.engine_cores,
                s.cpu.bench_cores,
                s.cpu.postgres_cores,
                s.cpu.rabbitmq_cores,
                s.cpu.other_cores
            ),
            if s.kept_up { "yes" } else { "no" }
        );
    }
    for s in steps {
        println!(
            "  at {:.0}/s the simulators answered HubSpot {} calls (p50 {:.1} ms, p99 {:.1} ms), Xero {} calls (p50 {:.1} ms, p99 {:.1} ms)",
            s.offered_rate,
            s.hubspot_calls.calls,
            s.hubspot_calls.p50_ms,
            s.hubspot_calls.p99_ms,
            s.xero_calls.calls,
            s.xero_calls.p50_ms,
            s.xero_calls.p99_ms
        );
    }
}

async fn run_e2e(settings: &crate::config::Settings, args: &BenchArgs) -> anyhow::Result<()> {
    println!(
        "end-to-end sync: {} customers on both sides, people editing names and phones at {}/s then rising steps, {} s each; {}",
        args.customers, args.rate, args.seconds, e2e::SIMULATORS
    );
    let r = e2e::run(
        settings,
        &e2e::E2eOptions {
            customers: args.customers,
            workers: args.workers.unwrap_or(settings.orchestrator.workers),
            seconds: args.seconds,
            fixed_rate: args.rate,
            rates: args.rates.clone(),
            limits: args.engine_limits,
        },
    )
    .await?;
    println!("fixed load (latency from a person's edit to Tandem's write on the other side):");
    print_steps(&[&r.fixed]);
    println!(
        "  CRM -> Xero p50 {:.1} ms p99 {:.1} ms; Xero -> CRM p50 {:.1} ms p99 {:.1} ms",
        r.fixed.latency_crm_to_finance.p50_ms,
        r.fixed.latency_crm_to_finance.p99_ms,
        r.fixed.latency_finance_to_crm.p50_ms,
        r.fixed.latency_finance_to_crm.p99_ms
    );
    if let Some(b) = &r.breakdown {
        println!(
            "  where a change's time goes (p50 / p99 ms over {} changes): edit -> receipt {:.0} / {:.0}, receipt -> decision {:.0} / {:.0}, decision -> write {:.0} / {:.0}, write -> commit {:.0} / {:.0}",
            b.changes,
            b.edit_to_receipt_ms.p50,
            b.edit_to_receipt_ms.p99,
            b.receipt_to_decision_ms.p50,
            b.receipt_to_decision_ms.p99,
            b.decision_to_write_ms.p50,
            b.decision_to_write_ms.p99,
            b.write_to_commit_ms.p50,
            b.write_to_commit_ms.p99
        );
    }
    println!(
        "goal at {}/s (p50 <= 50 ms, p99 <= 500 ms): {}",
        args.rate,
        met(r.fixed_goal_met)
    );
    println!("rising load (kept up: completed >= 95% of offered, all arrived, p99 <= 3 s):");
    print_steps(&r.steps.iter().collect::<Vec<_>>());
    println!(
        "highest sustained: {:.0} changes/s; goal (>= 1,000/s): {}",
        r.highest_sustained_per_second,
        met(r.sustained_goal_met)
    );
    write_json(
        args,
        "e2e",
        serde_json::json!({
            "scenario": "end_to_end_sync",
            "at": chrono::Utc::now(),
            "report": r,
        }),
    )
}

async fn run_economy(settings: &crate::config::Settings, args: &BenchArgs) -> anyhow::Result<()> {
    println!(
        "API economy: Tandem's writes counted in the simulators' journals; {}",
        e2e::SIMULATORS
    );
    let r = economy::run(
        settings,
        &economy::EconomyOptions {
            customers: args.customers.min(200),
            workers: args.workers.unwrap_or(settings.orchestrator.workers),
            limits: args.engine_limits,
        },
    )
    .await?;
    println!("{:<27} {:>6} {:>6}  what", "check", "writes", "result");
    for c in &r.checks {
        println!(
            "{:<27} {:>6} {:>6}  {}; expected {}",
            c.name,
            c.writes,
            if c.passed { "pass" } else { "FAIL" },
            c.setup,
            c.expected
        );
    }
    println!(
        "reads per echo (Xero, the first check's writes there): {:.2}; goal 0",
        r.xero_reads_per_echo
    );
    write_json(
        args,
        "economy",
        serde_json::json!({
            "scenario": "api_economy",
            "at": chrono::Utc::now(),
            "report": r,
        }),
    )
}

async fn run_memory(settings: &crate::config::Settings, args: &BenchArgs) -> anyhow::Result<()> {
    println!(
        "memory: the engine child's VmRSS every {} ms; {} customers, then {}/s for {} s; {}",
        engine::RssSampler::EVERY.as_millis(),
        args.customers,
        args.rate,
        args.seconds,
        e2e::SIMULATORS
    );
    let r = memory::run(
        settings,
        &memory::MemoryOptions {
            customers: args.customers,
            workers: args.workers.unwrap_or(settings.orchestrator.workers),
            seconds: args.seconds,
            rate: args.rate,
            limits: args.engine_limits,
        },
    )
    .await?;
    println!(
        "{:>16} {:>20} {:>15} {:>15} {:>8}",
        "idle start MiB", "idle first sync MiB", "peak load MiB", "idle after MiB", "samples"
    );
    println!(
        "{:>16.1} {:>20.1} {:>15.1} {:>15.1} {:>8}",
        r.idle_after_start_mib,
        r.idle_after_first_sync_mib,
        r.peak_under_load_mib,
        r.idle_after_load_mib,
        r.samples
    );
    println!(
        "goals: idle <= 40 MB (38.1 MiB) {}; peak under {}/s <= 150 MB (143.1 MiB) {}",
        met(r.idle_goal_met),
        args.rate,
        met(r.peak_goal_met)
    );
    write_json(
        args,
        "memory",
        serde_json::json!({
            "scenario": "memory",
            "at": chrono::Utc::now(),
            "report": r,
        }),
    )
}

/// Xero contacts Tandem created or linked (they carry its origin stamp): how far a
/// backfill has come.
fn stamped_contacts(sims: &sim::Simulators) -> usize {
    sims.xero
        .customers()
        .iter()
        .filter(|c| c.stamp.is_some())
        .count()
}
