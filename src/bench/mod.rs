//! `tandem bench`: figures anyone can reproduce with one command. This build carries
//! the webhook ingest scenario; the end-to-end, backfill, API-economy and memory
//! scenarios arrive with the connectors and simulators.

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
    use anyhow::Context as _;
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
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    let path = args.out.join(format!(
        "ingest-{}.json",
        chrono::Utc::now().format("%Y%m%dT%H%M%SZ")
    ));
    let document = serde_json::json!({
        "scenario": "webhook_ingest",
        "at": chrono::Utc::now(),
        "seconds_per_step": args.seconds,
        "database": crate::service::redact_url(&settings.database_url),
        "bus": crate::service::redact_url(&settings.amqp_url),
        "report": report,
    });
    std::fs::write(&path, serde_json::to_vec_pretty(&document)?)
        .with_context(|| format!("cannot write {}", path.display()))?;
    println!("results written to {}", path.display());
    Ok(())
}
