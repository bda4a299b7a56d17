//! `tandem bench`: figures anyone can reproduce with one command. This build carries
//! the webhook ingest and the rate-limited backfill scenarios; end-to-end load, API
//! economy and memory are still to come.

pub mod backfill;
pub mod ingest;

use std::time::Duration;

use serde::Serialize;

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

/// `tandem bench`: runs the scenarios, prints a table, writes JSON.
pub async fn run(
    settings: &crate::config::Settings,
    args: &crate::cli::BenchArgs,
) -> anyhow::Result<()> {
    for scenario in &args.scenarios {
        match scenario.as_str() {
            "ingest" => run_ingest(settings, args).await?,
            "backfill" => run_backfill(settings, args).await?,
            other => anyhow::bail!("no scenario `{other}`; the scenarios are ingest, backfill"),
        }
    }
    Ok(())
}

fn write_json(
    args: &crate::cli::BenchArgs,
    scenario: &str,
    document: serde_json::Value,
) -> anyhow::Result<()> {
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

async fn run_ingest(
    settings: &crate::config::Settings,
    args: &crate::cli::BenchArgs,
) -> anyhow::Result<()> {
    println!(
        "webhook ingest: signed Xero deliveries over HTTP into {} and {}",
        crate::service::redact_url(&settings.database_url),
        crate::service::redact_url(&settings.amqp_url)
    );
    let report = ingest::run(settings, &args.concurrency, args.seconds).await?;
    println!(
        "{:>11} {:>11} {:>8} {:>13} {:>9} {:>9}",
        "concurrency", "deliveries", "failed", "deliveries/s", "p50 ms", "p99 ms"
    );
    for step in &report.steps {
        println!(
            "{:>11} {:>11} {:>8} {:>13.0} {:>9.2} {:>9.2}",
            step.concurrency,
            step.deliveries,
            step.failed,
            step.per_second,
            step.latency.p50_ms,
            step.latency.p99_ms
        );
    }
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

async fn run_backfill(
    settings: &crate::config::Settings,
    args: &crate::cli::BenchArgs,
) -> anyhow::Result<()> {
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
