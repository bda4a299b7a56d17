//! Assembles the engine from settings and runs it: `tandem serve`, `tandem migrate`.
//!
//! One `CancellationToken` is cancelled on SIGINT or SIGTERM; every component watches
//! it, stops taking new work and lets what is in flight finish, so a stopped process
//! loses nothing: what it had not acknowledged is redelivered.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use poem::listener::{Acceptor, Listener, TcpListener};

use crate::api::guard::HttpLimits;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::api::{self, HttpState, ReadinessProbe};
pub mod args;

pub use crate::cause::innermost_cause;
pub use crate::config::redact_url;
use crate::config::Settings;
pub use crate::credential_store::open_store;
use crate::store::{SeaStore, Store};
pub use args::ServeArgs;

/// How often a process looks for pairs another process made, paused or removed.
const FOLLOW_PAIRS_EVERY: Duration = Duration::from_secs(15);

/// A token cancelled on the first SIGINT or SIGTERM.
pub fn shutdown_on_signals() -> CancellationToken {
    let token = CancellationToken::new();
    let cancel = token.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("stop signal received: finishing in-flight work");
        cancel.cancel();
    });
    token
}

#[cfg(unix)]
async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(term) => term,
        Err(err) => {
            tracing::warn!(error = %err, "cannot listen for SIGTERM; only Ctrl-C stops Tandem");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

#[cfg(not(unix))]
async fn wait_for_signal() {
    let _ = tokio::signal::ctrl_c().await;
}

/// A summary of the settings for `tandem config`, secrets hidden.
pub fn describe(settings: &Settings) -> String {
    let mut out = String::new();
    let hidden = |set: bool| if set { "(set, hidden)" } else { "(not set)" };
    let _ = writeln!(out, "database_url = {}", redact_url(&settings.database_url));
    let _ = writeln!(out, "amqp_url = {}", redact_url(&settings.amqp_url));
    let _ = writeln!(out, "listen = {}", settings.listen);
    let _ = writeln!(
        out,
        "admin_token = {}",
        hidden(settings.admin_token.is_some())
    );
    let key_ids = |keys: &[crate::secret::Secret]| {
        keys.iter()
            .map(|key| match crate::seal::SecretsKey::parse(key.expose()) {
                Ok(key) => format!("id {}", key.id()),
                Err(_) => "(not a key)".to_string(),
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    let _ = match &settings.secrets_key {
        Some(key) => writeln!(out, "secrets_key = {}", key_ids(std::slice::from_ref(key))),
        None => writeln!(out, "secrets_key = (not set)"),
    };
    if !settings.secrets_old_keys.is_empty() {
        let _ = writeln!(
            out,
            "secrets_old_keys = {}",
            key_ids(&settings.secrets_old_keys)
        );
    }
    let _ = writeln!(
        out,
        "orchestrator.workers = {}",
        settings.orchestrator.workers
    );
    let _ = writeln!(out, "bus.prefix = {}", settings.bus.prefix);
    let _ = writeln!(
        out,
        "webhooks.public_base_url = {}",
        settings
            .webhooks
            .public_base_url
            .as_deref()
            .unwrap_or("(not set)")
    );
    let http = &settings.http;
    let _ = writeln!(
        out,
        "http: at most {} connections, headers within {}s, bodies within {}s, admin bodies up to {} bytes",
        http.max_connections,
        http.header_read_timeout_secs,
        http.body_read_timeout_secs,
        http.max_body_bytes
    );
    for (name, pair) in &settings.pairs {
        let _ = writeln!(
            out,
            "pair {name}: enabled = {}, poll every {}s",
            pair.enabled, pair.poll_interval_secs
        );
        for (side, connection) in [("crm", &pair.crm), ("finance", &pair.finance)] {
            if let Some(c) = connection {
                let _ = writeln!(
                    out,
                    "  {side}: {} at {}, webhook secrets: {}{}",
                    c.kind.as_str(),
                    c.base_url,
                    c.webhook_secrets.len(),
                    webhook_intake(c)
                );
            }
        }
    }
    out
}

/// Who signs a side's webhooks and whose they must be, for `tandem config`.
fn webhook_intake(c: &crate::config::ConnectionSettings) -> String {
    if c.webhook_secrets.is_empty() {
        return String::new();
    }
    let signer = match (c.webhook_signing, c.kind) {
        (crate::config::WebhookSigning::StandardWebhooks, _) => {
            "Standard Webhooks (relay)".to_string()
        }
        (_, crate::config::ConnectorKind::Xero) => "Xero".to_string(),
        (_, crate::config::ConnectorKind::Hubspot) => {
            let v = c.hubspot_versions();
            let names: Vec<&str> = [(v.v3, "v3"), (v.v2, "v2"), (v.v1, "v1")]
                .into_iter()
                .filter_map(|(on, name)| on.then_some(name))
                .collect();
            format!("HubSpot {}", names.join("+"))
        }
    };
    let account = match (c.kind, c.portal_id, c.tenant_id.as_deref()) {
        (crate::config::ConnectorKind::Hubspot, Some(portal), _) => format!("portal {portal}"),
        (crate::config::ConnectorKind::Xero, _, Some(tenant)) => format!("organisation {tenant}"),
        _ => "no account".to_string(),
    };
    format!(", signed by {signer}, held to {account}")
}

/// The settings with the bound port in `webhooks.public_base_url` when that says port
/// 0: a process listening on a port the OS picks (local runs, tests, the demo) can name
/// its own address in configuration without knowing the port ahead. The URL still
/// comes from configuration, never from a request.
fn with_bound_port(settings: &Settings, addr: SocketAddr) -> Settings {
    let mut settings = settings.clone();
    for url in [
        &mut settings.webhooks.public_base_url,
        &mut settings.connect.callback_url,
    ] {
        if let Some(parsed) = url.as_deref().and_then(|u| reqwest::Url::parse(u).ok()) {
            let mut parsed = parsed;
            if parsed.port() == Some(0) && parsed.set_port(Some(addr.port())).is_ok() {
                *url = Some(parsed.as_str().trim_end_matches('/').to_string());
            }
        }
    }
    settings
}

/// Binds the HTTP listener; returns the acceptor and the address actually bound (the
/// port is chosen by the OS when the setting asks for port 0).
pub(crate) async fn bind(listen: &str) -> anyhow::Result<(impl Acceptor, SocketAddr)> {
    let acceptor = TcpListener::bind(listen.to_string())
        .into_acceptor()
        .await
        .map_err(|err| cannot_listen(listen, &err))?;
    let addr = acceptor
        .local_addr()
        .into_iter()
        .find_map(|addr| addr.as_socket_addr().copied())
        .context("the listener has no socket address")?;
    Ok((acceptor, addr))
}

/// Why the HTTP address cannot be taken, and what to do about it: a port in use is the
/// usual first stumble (a second `tandem demo`, another server on 8080).
fn cannot_listen(listen: &str, err: &std::io::Error) -> anyhow::Error {
    let why = match err.kind() {
        std::io::ErrorKind::AddrInUse => "the address is in use".to_string(),
        std::io::ErrorKind::AddrNotAvailable => {
            "the address is not one of this machine's".to_string()
        }
        std::io::ErrorKind::PermissionDenied => {
            "permission denied (ports below 1024 need privileges)".to_string()
        }
        _ => err.to_string(),
    };
    anyhow::anyhow!(
        "cannot listen on {listen}: {why}; set TANDEM_LISTEN or --listen to another address"
    )
}

const LISTENING: &str = "listening on ";

/// The base URL in the `listening on` line of a server's output, once it is there.
pub fn listening_url(output: &str) -> Option<&str> {
    output
        .lines()
        .find_map(|line| line.strip_prefix(LISTENING))
        .map(str::trim)
}

/// Tells whoever started the server where it listens: the address on
/// `options.listening` for a server run in-process; otherwise, when the OS chose the
/// port (`listen = "127.0.0.1:0"`), a `listening on http://<address>` line on stdout for
/// a script or a parent process to read.
fn report_listening(listen: &str, addr: SocketAddr, options: &crate::wiring::WiringOptions) {
    if let Some(listening) = &options.listening {
        let _ = listening.send(addr);
    } else if listen.ends_with(":0") {
        println!("{LISTENING}http://{addr}");
    }
}

/// Runs the HTTP server until `shutdown` is cancelled, then stops accepting and gives
/// open requests a moment to finish.
async fn run_http(
    acceptor: impl Acceptor + 'static,
    state: HttpState,
    limits: HttpLimits,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let routes = api::routes(state, &limits);
    api::guard::listener::serve(acceptor, routes, &limits, shutdown, Duration::from_secs(10))
        .await
        .context("the HTTP server failed")
}

pub(crate) fn spawn_http(
    tracker: &TaskTracker,
    acceptor: impl Acceptor + 'static,
    state: HttpState,
    limits: HttpLimits,
    shutdown: CancellationToken,
) {
    let stop_all = shutdown.clone();
    tracker.spawn(async move {
        if let Err(err) = run_http(acceptor, state, limits, shutdown).await {
            tracing::error!(error = format!("{err:#}"), "HTTP server stopped");
            stop_all.cancel();
        }
    });
}

/// `tandem migrate`: applies pending migrations and exits.
pub async fn migrate(settings: &Settings) -> anyhow::Result<()> {
    open_store(settings).await?;
    tracing::info!(database = %redact_url(&settings.database_url), "migrations applied");
    Ok(())
}

/// `tandem serve`: runs until `shutdown` is cancelled, then stops taking work, lets
/// in-flight work finish and returns.
pub async fn serve(
    settings: Settings,
    args: ServeArgs,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    serve_with(
        settings,
        args,
        shutdown,
        crate::wiring::WiringOptions::default(),
    )
    .await
}

/// `serve` with connector options (a request recorder, other limits) for tests and
/// benchmarks.
pub async fn serve_with(
    settings: Settings,
    args: ServeArgs,
    shutdown: CancellationToken,
    options: crate::wiring::WiringOptions,
) -> anyhow::Result<()> {
    // The address first: a port in use is the commonest start-up mistake, and it is
    // reported before anything waits on the database or the broker.
    let http = if args.no_http {
        None
    } else {
        Some(bind(&settings.listen).await?)
    };
    let store = crate::credential_store::open_engine_store(&settings).await?;
    let bus = crate::bus::connect(&crate::bus::BusConfig::from_settings(&settings))
        .await
        .with_context(|| format!("cannot reach the bus at {}", redact_url(&settings.amqp_url)))?;
    let mut wiring = crate::wiring::from_settings_with(&settings, store.clone(), &options);
    let connections = Arc::new(std::mem::take(&mut wiring.connections));
    let queue = crate::orchestrator::QueueControl::default();
    let backlog = crate::backlog::Backlog::default();
    let tracker = TaskTracker::new();
    // Every process probes its connections, so its `/ready` and admin API tell the
    // truth; a connection busy with calls that answer is not probed at all.
    connections.spawn_probes(&tracker, &shutdown);
    let settings = match &http {
        Some((_, addr)) => with_bound_port(&settings, *addr),
        None => settings,
    };
    let file_pairs: Vec<String> = settings.pairs.keys().cloned().collect();
    let table = crate::orchestrator::PairTable::new(std::mem::take(&mut wiring.pairs));
    // With apps to connect accounts, the workers run even before a pair can sync: a
    // settings pair without credentials then has its changes postponed, never parked.
    let connect_configured = settings.connect.hubspot.is_some() && settings.connect.xero.is_some();
    if connect_configured {
        for name in settings
            .pairs
            .iter()
            .filter(|(_, p)| p.enabled)
            .map(|(n, _)| n)
        {
            let id = crate::domain::PairId::new(name.clone());
            if table.get(&id).is_none() {
                table.pause(
                    id,
                    format!("pair `{name}` has no credentials for both sides: its changes wait"),
                );
            }
        }
    }
    let poller =
        (!args.no_poller).then(|| Arc::new(crate::intake::Poller::new(store.clone(), bus.clone())));
    // Webhooks come in where HTTP is served; pairs made while it runs open their
    // endpoints here too.
    let intake = http.is_some().then(|| {
        Arc::new(crate::intake::WebhookIntake::new(
            &settings,
            bus.clone(),
            store.clone(),
        ))
    });
    let host = (!args.no_workers).then(|| {
        Arc::new(
            crate::connect::PairHost::new(
                table.clone(),
                bus.clone(),
                store.clone(),
                poller.clone(),
                tracker.clone(),
                shutdown.clone(),
                options.clone(),
            )
            .with_connections(connections.clone()),
        )
    });
    let connect = Arc::new(
        crate::connect::Connect::new(
            &settings.connect,
            file_pairs.clone(),
            store.clone(),
            store.clone(),
            host.clone(),
        )
        .with_intake(intake.clone()),
    );
    if host.is_some() || intake.is_some() {
        let started = connect
            .run_stored_pairs()
            .await
            .map_err(|e| anyhow::anyhow!("cannot start the pairs made through the API: {e}"))?;
        if started > 0 {
            tracing::info!(pairs = started, "pairs made through the API started");
        }
        // Pairs made, paused or removed through another process are followed here.
        let connect = connect.clone();
        let stop = shutdown.clone();
        tracker.spawn(async move {
            let mut every = tokio::time::interval(FOLLOW_PAIRS_EVERY);
            every.tick().await;
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = every.tick() => {}
                }
                if let Err(err) = connect.follow_store().await {
                    tracing::warn!(error = %err, "cannot read the pairs made through the API");
                }
            }
        });
    }
    if let (Some((acceptor, addr)), Some(intake)) = (http, intake) {
        tracing::info!(%addr, dashboard = %format!("http://{addr}/"), "listening");
        report_listening(&settings.listen, addr, &options);
        let settings = &settings;
        let probes: Vec<Arc<dyn ReadinessProbe>> = vec![
            Arc::new(StoreProbe(store.clone())),
            Arc::new(BusProbe(bus.clone())),
        ];
        let jobs = Arc::new(
            crate::intake::jobs::JobRunner::new(
                store.clone(),
                bus.clone(),
                wiring.connectors.clone(),
            )
            .with_connections(connections.clone()),
        );
        let admin = crate::api::admin::AdminState {
            store: store.clone(),
            bus: bus.clone(),
            jobs,
            queue: queue.clone(),
            backlog: backlog.clone(),
            connections: connections.clone(),
            connect: Some(connect.clone()),
            file_pairs,
            public_base_url: settings.webhooks.public_base_url.clone(),
        };
        let state = HttpState {
            probes,
            intake,
            admin,
            admin_token: admin_token(settings),
        };
        spawn_http(
            &tracker,
            acceptor,
            state,
            HttpLimits::of(settings),
            shutdown.clone(),
        );
    }
    if !args.no_workers {
        if table.is_empty() && !connect_configured {
            // Acknowledging changes that no connector can sync would lose them.
            tracing::warn!("no pair has connectors for both sides: change events stay queued");
        } else {
            let orchestrator = Arc::new(
                crate::orchestrator::Orchestrator::new(
                    store.clone(),
                    Default::default(),
                    settings.bus.max_attempts,
                )
                .with_pair_table(table.clone())
                .with_settling(Duration::from_millis(settings.orchestrator.settle_ms))
                .with_connections(connections.clone()),
            );
            let pool = crate::orchestrator::WorkerPool::new(
                bus.clone(),
                orchestrator,
                settings.orchestrator.workers,
                Duration::from_secs(settings.orchestrator.shutdown_grace_secs),
            )
            .with_pair_share(settings.orchestrator.pair_share())
            .with_control(queue)
            .with_backlog(backlog);
            let stop = shutdown.clone();
            tracker.spawn(async move {
                if let Err(err) = pool.run(stop.clone()).await {
                    tracing::error!(error = %err, "the orchestrator stopped");
                    stop.cancel();
                }
            });
        }
    }
    if let Some(poller) = poller {
        if !wiring.poll_targets.is_empty() {
            tracker.spawn(poller.run(wiring.poll_targets, shutdown.clone()));
        }
    }
    tracker.close();
    shutdown.cancelled().await;
    tracker.wait().await;
    Ok(())
}

/// The admin token from settings; on a loopback address without one, a fresh token for
/// this run, printed once to the terminal (never to the log).
fn admin_token(settings: &Settings) -> crate::secret::Secret {
    settings.admin_token.clone().unwrap_or_else(|| {
        let token = fresh_admin_token();
        eprintln!(
            "admin token for this run (the dashboard and `tandem status` etc. need it as \
             TANDEM_ADMIN_TOKEN; set TANDEM_ADMIN_TOKEN before start to choose one): {token}"
        );
        crate::secret::Secret::new(token)
    })
}

/// A random admin token (two v4 UUIDs in hex) for a run started without one.
pub(crate) fn fresh_admin_token() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

struct StoreProbe(Arc<SeaStore>);

#[async_trait::async_trait]
impl ReadinessProbe for StoreProbe {
    fn name(&self) -> &'static str {
        "database"
    }

    async fn check(&self) -> Result<(), String> {
        self.0.ping().await.map_err(|err| err.to_string())
    }
}

struct BusProbe(Arc<dyn crate::bus::Bus>);

#[async_trait::async_trait]
impl ReadinessProbe for BusProbe {
    fn name(&self) -> &'static str {
        self.0.name()
    }

    async fn check(&self) -> Result<(), String> {
        self.0.ping().await.map_err(|err| err.to_string())
    }
}
