//! `tandem torture`: convergence under chaos. [`run`] drives the engine, the
//! simulators and the chaos; [`check`] judges the end state.

pub mod check;
pub mod clash;
pub mod profile;
pub mod run;

pub mod args;

use crate::config::Settings;
pub use args::TortureArgs;

/// `tandem torture`: runs the profile, prints the checker's report, writes JSON to
/// `bench/results/`; `Ok(false)` when a check failed.
pub async fn torture(settings: &Settings, args: &TortureArgs) -> anyhow::Result<bool> {
    use anyhow::Context as _;
    let mut profile = profile::Profile::named(&args.profile)?;
    if args.no_restarts {
        profile.rabbitmq_restarts = 0;
        profile.postgres_restarts = 0;
    }
    let edits = if profile.hot_customers > 0 {
        format!(
            "{} customers edited again and again ({} acts, {}% of them clashes), conflicts {}",
            profile.hot_customers,
            profile.clash_acts,
            (profile.clash_share * 100.0).round(),
            profile.conflicts.as_str()
        )
    } else {
        format!(
            "{}% of customers edited, {}% on both sides at once",
            (profile.edited_share * 100.0).round(),
            (profile.both_sides_share * 100.0).round()
        )
    };
    println!(
        "torture ({}): {} customers, {} invoices, {edits}, {} s of edits; {} SIGKILLs, {} RabbitMQ and {} PostgreSQL restarts; simulators answer {}% 5xx and {}% 429, duplicate 10%, reorder 10% and drop 5% of webhooks",
        profile.name,
        profile.customers,
        profile.invoices,
        profile.edit_seconds,
        profile.kills,
        profile.rabbitmq_restarts,
        profile.postgres_restarts,
        (profile.error_rate * 100.0).round(),
        (profile.rate_limit_rate * 100.0).round(),
    );
    let restarts = run::RestartCommands {
        rabbitmq: args.restart_rabbitmq.clone(),
        postgres: args.restart_postgres.clone(),
    };
    let (facts, report) = run::run(settings, profile, &restarts).await?;
    println!("{report}");
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    let path = args.out.join(format!(
        "torture-{}-{}.json",
        facts.profile.name,
        chrono::Utc::now().format("%Y%m%dT%H%M%SZ")
    ));
    let document = serde_json::json!({
        "scenario": "torture",
        "at": chrono::Utc::now(),
        "database": crate::service::redact_url(&settings.database_url),
        "bus": crate::service::redact_url(&settings.amqp_url),
        "restart_commands": restarts,
        "run": facts,
        "report": report,
    });
    std::fs::write(&path, serde_json::to_vec_pretty(&document)?)
        .with_context(|| format!("cannot write {}", path.display()))?;
    println!("results written to {}", path.display());
    Ok(report.passed)
}
