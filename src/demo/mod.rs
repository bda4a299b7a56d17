//! `tandem demo` and `tandem sim`: the whole product on one machine, against simulated
//! HubSpot and Xero.
//!
//! The demo runs the engine on the embedded default (a fresh SQLite file, the
//! in-process bus), seeds both simulated services, lets simulated people edit both
//! sides, and prints a status line now and then from the simulators' inspection. Its
//! connections are ordinary settings pointing at the simulators, so a trial of a real
//! deployment only changes the base URLs and credentials.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use sim::{SimConfig, Simulators};
use tokio_util::sync::CancellationToken;

pub mod args;

pub use args::{DemoArgs, SimArgs};

use crate::config::{ConnectionSettings, ConnectorKind, PairSettings, Settings};
use crate::domain::System;
use crate::secret::Secret;
use crate::service::ServeArgs;

/// How long people wait for the first sync before they start editing anyway.
const FIRST_SYNC_WAIT: Duration = Duration::from_secs(120);

/// The pair the demo syncs.
pub const DEMO_PAIR: &str = "demo";

/// A pair whose two connections point at running simulators, with OAuth credentials
/// the simulators issue tokens for.
/// The apps of the simulated HubSpot and Xero, whose consent pages and token endpoints
/// play the services' own: accounts connect through them as through the real ones.
pub fn connect_for(sims: &Simulators, callback_url: &str) -> crate::config::ConnectSettings {
    let hubspot = sims.hubspot.settings();
    let xero = sims.xero.settings();
    crate::config::ConnectSettings {
        callback_url: Some(callback_url.to_string()),
        hubspot: Some(crate::config::AppSettings {
            client_id: hubspot.client_id.clone(),
            client_secret: Secret::new(hubspot.client_secret.clone()),
            authorize_url: Some(format!("{}/oauth/authorize", sims.hubspot_url)),
            token_url: Some(format!("{}/oauth/v3/token", sims.hubspot_url)),
            api_base_url: Some(sims.hubspot_url.clone()),
            connections_url: None,
            introspect_url: Some(format!("{}/oauth/v3/token/introspect", sims.hubspot_url)),
            revocation_url: None,
            scopes: None,
            webhook_key: None,
        }),
        xero: Some(crate::config::AppSettings {
            client_id: xero.client_id.clone(),
            client_secret: Secret::new(xero.client_secret.clone()),
            authorize_url: Some(format!("{}/identity/connect/authorize", sims.xero_url)),
            token_url: Some(sims.xero_token_url()),
            api_base_url: Some(sims.xero_api_url()),
            connections_url: Some(format!("{}/connections", sims.xero_url)),
            introspect_url: None,
            revocation_url: Some(format!("{}/connect/revocation", sims.xero_url)),
            scopes: None,
            webhook_key: Some(Secret::new(xero.webhook_key.clone())),
        }),
    }
}

pub fn pair_for(sims: &Simulators, poll_interval_secs: u64) -> PairSettings {
    let hubspot = sims.hubspot.settings();
    let xero = sims.xero.settings();
    let crm = ConnectionSettings {
        kind: ConnectorKind::Hubspot,
        base_url: sims.hubspot_url.clone(),
        token_url: None,
        access_token: None,
        client_id: Some(hubspot.client_id.clone()),
        client_secret: Some(Secret::new(hubspot.client_secret.clone())),
        refresh_token: Some(Secret::new(hubspot.refresh_token.clone())),
        tenant_id: None,
        webhook_secrets: vec![Secret::new(hubspot.client_secret.clone())],
        webhook_signing: Default::default(),
        signature_versions: None,
        portal_id: Some(hubspot.portal_id),
        customer_object: Default::default(),
        batch_window_ms: 20,
        rate_limit_share: 1.0,
    };
    let finance = ConnectionSettings {
        kind: ConnectorKind::Xero,
        base_url: sims.xero_api_url(),
        token_url: Some(sims.xero_token_url()),
        access_token: None,
        client_id: Some(xero.client_id.clone()),
        client_secret: Some(Secret::new(xero.client_secret.clone())),
        refresh_token: Some(Secret::new(xero.refresh_token.clone())),
        tenant_id: Some(xero.tenant_id.clone()),
        webhook_secrets: vec![Secret::new(xero.webhook_key.clone())],
        webhook_signing: Default::default(),
        signature_versions: None,
        portal_id: None,
        customer_object: Default::default(),
        batch_window_ms: 20,
        rate_limit_share: 1.0,
    };
    PairSettings {
        enabled: true,
        crm: Some(crm),
        finance: Some(finance),
        poll_interval_secs,
        poll_overlap_secs: poll_interval_secs.min(30),
        conflict_policy: Default::default(),
        source_of_truth: System::Finance,
        deletes: Default::default(),
        fields: Default::default(),
    }
}

/// Where Tandem takes a pair's webhooks, for the simulators' outboxes.
pub fn webhook_urls(base: &str, pair: &str) -> (String, String) {
    use crate::intake::webhook_url;
    (
        webhook_url(base, pair, System::Crm),
        webhook_url(base, pair, System::Finance),
    )
}

/// Waits until the server at `base` answers `/health`.
pub async fn wait_until_up(base: &str, within: Duration) -> anyhow::Result<()> {
    let http = reqwest::Client::new();
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let up = http
            .get(format!("{base}/health"))
            .timeout(Duration::from_secs(1))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        if up {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            anyhow::bail!("Tandem did not answer at {base} within {within:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `tandem demo`.
pub async fn run(mut settings: Settings, args: DemoArgs) -> anyhow::Result<()> {
    let shutdown = crate::service::shutdown_on_signals();
    let database = std::env::temp_dir().join(format!("tandem-demo-{}.db", std::process::id()));
    settings.database_url = format!("sqlite://{}?mode=rwc", database.display());
    settings.amqp_url = "memory".into();
    // The demo's database is thrown away when it stops, so its credentials are sealed
    // under a key that lives only in this process: nothing to set up, and no key file
    // left behind in the temporary directory.
    if settings.secrets_key.is_none() {
        let key = crate::seal::SecretsKey::generate()?;
        settings.secrets_key = Some(Secret::new(key.to_base64().as_str()));
    }
    // The token is chosen here rather than by the engine so that the banner shows it
    // beside the dashboard's address.
    let admin_token = match &settings.admin_token {
        Some(_) => "the one in the settings (TANDEM_ADMIN_TOKEN)".to_string(),
        None => {
            let token = crate::service::fresh_admin_token();
            settings.admin_token = Some(Secret::new(token.as_str()));
            token
        }
    };
    // Batch calls carry as many changes as are in flight: on the embedded store, with
    // nothing else to share, the demo keeps many.
    settings.orchestrator.workers = settings.orchestrator.workers.max(128);
    // The demo's store and bus are thrown away when it stops, so work still waiting for
    // Xero's rate limit is not worth waiting for: Ctrl-C stops within seconds.
    settings.orchestrator.shutdown_grace_secs = settings.orchestrator.shutdown_grace_secs.min(2);
    // The simulators outlive the engine, so in-flight syncs finish against them. They
    // take ports the OS picks, so they never collide with `--listen` or each other.
    let stop_sims = CancellationToken::new();
    let sims = Simulators::start_local(SimConfig::default(), stop_sims.clone())
        .await
        .context("cannot start the simulators")?;
    settings.pairs.clear();
    settings.pairs.insert(DEMO_PAIR.into(), pair_for(&sims, 15));
    let base = format!("http://{}", settings.listen);
    // The simulators call Tandem directly, at the address it listens on.
    settings
        .webhooks
        .public_base_url
        .get_or_insert_with(|| base.clone());
    settings.connect = connect_for(&sims, &format!("{base}/connect/callback"));
    settings.validate().context("the demo's settings")?;
    sims.people
        .seed(&sims.hubspot, &sims.xero, args.customers, args.shared);

    let (engine, addr) = match start_engine(settings, shutdown.clone()).await {
        Ok(started) => started,
        Err(err) => {
            stop_sims.cancel();
            remove_database(&database);
            return Err(err);
        }
    };
    let base = format!("http://{addr}");
    println!("Tandem demo");
    println!(
        "  simulated HubSpot: {}   simulated Xero: {}",
        sims.hubspot_url, sims.xero_url
    );
    println!(
        "  seeded {} customers on each side, {} of them the same people; simulated people make {} a second",
        args.customers,
        args.shared,
        plural(args.edits_per_second, "edit")
    );
    println!("  dashboard: {base}/   admin token: {admin_token}");
    println!(
        "  inspection: {}/sim/inspect   stop: Ctrl-C",
        sims.hubspot_url
    );
    println!(
        "  from another terminal: TANDEM_URL={base} TANDEM_ADMIN_TOKEN=<the token> tandem status"
    );

    wait_until_up(&base, Duration::from_secs(30)).await?;
    let (crm_url, finance_url) = webhook_urls(&base, DEMO_PAIR);
    sims.send_webhooks_to(Some(crm_url), Some(finance_url));
    let people = {
        let (sims, stop) = (sims.clone(), shutdown.clone());
        tokio::spawn(async move {
            // The first sync goes first; then people start editing both sides.
            let started = tokio::time::Instant::now();
            while !sims.inspect().in_step && started.elapsed() < FIRST_SYNC_WAIT {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_millis(250)) => {}
                }
            }
            let seen = sims.inspect();
            println!(
                "first sync {} after {}s: {} customers paired, {} agree; simulated people start editing",
                if seen.in_step { "done" } else { "still running" },
                started.elapsed().as_secs(),
                seen.customers.paired,
                seen.customers.agree,
            );
            sims.people
                .run(&sims.hubspot, &sims.xero, args.edits_per_second, stop)
                .await
        })
    };
    report(
        &sims,
        Duration::from_secs(args.status_every.max(1)),
        shutdown.clone(),
    )
    .await;
    let _ = people.await;
    let result = engine.await.context("the engine task failed")?;
    stop_sims.cancel();
    remove_database(&database);
    result?;
    println!("demo stopped");
    Ok(())
}

/// Removes the demo's SQLite file with the write-ahead log and shared-memory files that
/// WAL mode keeps beside it.
fn remove_database(database: &std::path::Path) {
    for suffix in ["", "-wal", "-shm"] {
        let mut path = database.as_os_str().to_owned();
        path.push(suffix);
        let _ = std::fs::remove_file(path);
    }
}

type EngineTask = tokio::task::JoinHandle<anyhow::Result<()>>;

/// Starts the engine and waits until it listens, so the banner can name the address it
/// really got (`--listen 127.0.0.1:0` lets the OS choose) and a start that fails (the
/// port in use) is reported at once rather than after waiting for it to answer.
async fn start_engine(
    settings: Settings,
    shutdown: CancellationToken,
) -> anyhow::Result<(EngineTask, std::net::SocketAddr)> {
    let (listening, mut bound) = tokio::sync::mpsc::unbounded_channel();
    let options = crate::wiring::WiringOptions {
        listening: Some(listening),
        ..Default::default()
    };
    let mut engine = tokio::spawn(crate::service::serve_with(
        settings,
        ServeArgs::default(),
        shutdown,
        options,
    ));
    tokio::select! {
        addr = bound.recv() => match addr {
            Some(addr) => Ok((engine, addr)),
            // The sender went with the options: the engine stopped before it listened.
            None => Err(stopped_before_listening(engine.await)),
        },
        ended = &mut engine => Err(stopped_before_listening(ended)),
    }
}

fn stopped_before_listening(
    ended: Result<anyhow::Result<()>, tokio::task::JoinError>,
) -> anyhow::Error {
    match ended {
        Ok(Err(err)) => err,
        Ok(Ok(())) => anyhow::anyhow!("the engine stopped before it listened"),
        Err(err) => anyhow::Error::new(err).context("the engine task failed"),
    }
}

/// A status line every `every`, until `stop`.
async fn report(sims: &Arc<Simulators>, every: Duration, stop: CancellationToken) {
    let started = tokio::time::Instant::now();
    let mut tick = tokio::time::interval(every);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let seen = sims.inspect();
        let people = sims.people.counts();
        let c = &seen.customers;
        let i = &seen.invoices;
        // Answered 5xx: an outage shows here, where 429s are only the budget.
        let hubspot_calls = sims.hubspot.calls();
        let hubspot_failed = hubspot_calls.iter().filter(|c| c.status >= 500).count();
        let xero_calls = sims.xero.calls();
        let xero_failed = xero_calls.iter().filter(|c| c.status >= 500).count();
        println!(
            "[{:>4}s] customers: {} in CRM, {} in Xero, {} paired ({} agree, {} only in CRM, {} only in Xero) | invoices: {} won deals, {} in Xero, {} agree | people: {} CRM edits, {} Xero edits, {} deals won, {} paid | API calls: HubSpot {} ({} refused, {} failed), Xero {} ({} refused, {} failed) | {}",
            started.elapsed().as_secs(),
            c.crm, c.finance, c.paired, c.agree, c.only_crm, c.only_finance,
            i.crm, i.finance, i.agree,
            people.crm_edits, people.finance_edits, people.deals_won, people.invoices_paid,
            hubspot_calls.len(), sims.hubspot.refused_429(), hubspot_failed,
            xero_calls.len(), sims.xero.refused_429(), xero_failed,
            if seen.in_step { "both sides agree" } else { "catching up" },
        );
    }
}

/// `tandem sim`: the simulators alone, for pointing a trial deployment at.
pub async fn simulators(args: SimArgs) -> anyhow::Result<()> {
    let shutdown = crate::service::shutdown_on_signals();
    let sims = Simulators::start(
        SimConfig::default(),
        &args.hubspot_listen,
        &args.xero_listen,
        shutdown.clone(),
    )
    .await?;
    sims.send_webhooks_to(
        args.crm_webhook_url.clone(),
        args.finance_webhook_url.clone(),
    );
    sims.people
        .seed(&sims.hubspot, &sims.xero, args.customers, args.shared);
    let hubspot = sims.hubspot.settings();
    let xero = sims.xero.settings();
    println!(
        "simulated HubSpot on {}, simulated Xero on {}",
        sims.hubspot_url, sims.xero_url
    );
    println!("point a pair at them (tandem.toml):\n");
    println!(
        "[webhooks]\npublic_base_url = \"http://127.0.0.1:8080\"   # where the simulators reach Tandem\n\n[pairs.trial.crm]\nkind = \"hubspot\"\nbase_url = \"{}\"\nclient_id = \"{}\"\nclient_secret = \"{}\"\nrefresh_token = \"{}\"\nwebhook_secrets = [\"{}\"]\nportal_id = {}\n",
        sims.hubspot_url, hubspot.client_id, hubspot.client_secret, hubspot.refresh_token, hubspot.client_secret, hubspot.portal_id
    );
    println!(
        "[pairs.trial.finance]\nkind = \"xero\"\nbase_url = \"{}\"\ntoken_url = \"{}\"\ntenant_id = \"{}\"\nclient_id = \"{}\"\nclient_secret = \"{}\"\nrefresh_token = \"{}\"\nwebhook_secrets = [\"{}\"]\n",
        sims.xero_api_url(), sims.xero_token_url(), xero.tenant_id, xero.client_id, xero.client_secret, xero.refresh_token, xero.webhook_key
    );
    println!(
        "webhooks go to {} and {} (set with --crm-webhook-url / --finance-webhook-url, or POST /sim/webhooks)",
        args.crm_webhook_url.as_deref().unwrap_or("(nowhere yet)"),
        args.finance_webhook_url.as_deref().unwrap_or("(nowhere yet)")
    );
    println!(
        "inspection: {}/sim/inspect   knobs: {}/sim/knobs   stop: Ctrl-C",
        sims.hubspot_url, sims.hubspot_url
    );
    let people = {
        let (sims, stop) = (sims.clone(), shutdown.clone());
        tokio::spawn(async move {
            sims.people
                .run(&sims.hubspot, &sims.xero, args.edits_per_second, stop)
                .await
        })
    };
    shutdown.cancelled().await;
    let _ = people.await;
    Ok(())
}

/// "1 edit", "2 edits", "0.5 edits".
fn plural(count: impl std::fmt::Display, noun: &str) -> String {
    let count = count.to_string();
    if count == "1" {
        format!("1 {noun}")
    } else {
        format!("{count} {noun}s")
    }
}

#[cfg(test)]
mod tests {
    use super::plural;

    #[test]
    fn one_edit_is_singular_and_others_plural() {
        assert_eq!(plural(1, "edit"), "1 edit");
        assert_eq!(plural(2, "edit"), "2 edits");
        assert_eq!(plural(0.5, "edit"), "0.5 edits");
    }
}
