//! The engine under test as a child process: this executable started again with
//! generated settings (a `tandem.toml` named by `TANDEM_CONFIG`), so that its resident
//! memory can be read from `/proc/<pid>/status` and the figures are the engine's alone,
//! while the simulators and the simulated people stay in the bench process.
//!
//! The simulators' rate limits are switched off for the load scenarios, and so must the
//! engine's own rate gates be, or they would hold a tenant to Xero's 60 calls a minute
//! whatever the simulator allows. Production settings cannot raise the published
//! limits, so with [`ConnectorLimits::Lifted`] the child is `tandem bench
//! --engine-child`, which is `tandem serve` with wider limits handed to the connectors
//! (the same `WiringOptions` the backfill uses); with [`ConnectorLimits::Published`]
//! it is plain `tandem serve`.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde::Serialize;
use tokio::process::{Child, Command};
use tokio_util::sync::CancellationToken;

use crate::config::{ConnectionSettings, PairSettings, Settings};
use crate::connectors::hubspot::HubSpotLimits;
use crate::connectors::xero::XeroLimits;
use crate::wiring::WiringOptions;

/// Which rate limits the engine's connectors keep to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum ConnectorLimits {
    /// Wide enough never to bind: the engine's own speed is measured.
    Lifted,
    /// The services' published limits (Xero 60 calls a minute, HubSpot 100 in 10 s).
    Published,
}

impl ConnectorLimits {
    pub fn as_str(self) -> &'static str {
        match self {
            ConnectorLimits::Lifted => "lifted",
            ConnectorLimits::Published => "published",
        }
    }
}

static WRAPPER: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();

static RUN_KEY: std::sync::OnceLock<crate::secret::Secret> = std::sync::OnceLock::new();

/// `settings` with a key for the credentials when they name none: the bench and the
/// torture run drive pairs of their own on the database the settings name, and every
/// engine they start in one run (an engine restarted mid-run too) must read what the
/// others sealed, so the key is made once per run.
pub fn with_run_key(mut settings: Settings) -> anyhow::Result<Settings> {
    if settings.secrets_key.is_none() {
        let key = match RUN_KEY.get() {
            Some(key) => key.clone(),
            None => {
                let made = crate::seal::SecretsKey::generate()?;
                RUN_KEY
                    .get_or_init(|| crate::secret::Secret::new(made.to_base64().as_str()))
                    .clone()
            }
        };
        settings.secrets_key = Some(key);
    }
    Ok(settings)
}

/// Engine children start under `wrapper` (a profiler's command line, split on spaces).
pub fn wrap_engine_in(wrapper: &str) {
    let _ = WRAPPER.set(wrapper.split_whitespace().map(String::from).collect());
}

/// `tandem bench --engine-child`: `tandem serve` whose connectors keep to limits no
/// load here reaches.
pub async fn serve_with_lifted_limits(settings: Settings) -> anyhow::Result<()> {
    let options = WiringOptions {
        xero_limits: Some(XeroLimits {
            per_minute: 10_000_000,
            at_once: 64,
            per_day: 1_000_000_000,
        }),
        hubspot_limits: Some(HubSpotLimits {
            per_ten_seconds: 10_000_000,
            searches_per_second: 10_000,
        }),
        ..Default::default()
    };
    crate::service::serve_with(
        settings,
        crate::service::ServeArgs::default(),
        crate::service::shutdown_on_signals(),
        options,
    )
    .await
}

/// The engine settings a scenario ran with, printed and written to the JSON.
#[derive(Debug, Clone, Serialize)]
pub struct EngineSettings {
    /// How the child was started.
    pub command: String,
    pub connector_limits: ConnectorLimits,
    pub workers: usize,
    /// PostgreSQL connections the store may open (derived from the workers).
    pub database_pool: u32,
    /// Unacknowledged messages each consumer holds, as the bus derives it.
    pub bus_prefetch: u16,
    pub batch_window_ms: u64,
    /// 0: webhooks only.
    pub poll_interval_secs: u64,
    pub database: String,
    pub bus: String,
    /// Where the child's log went.
    pub log: String,
}

impl EngineSettings {
    pub fn line(&self) -> String {
        format!(
            "engine: `{}` as a child process, connector limits {}, {} workers, database pool {}, prefetch {}, batch window {} ms, {}, {} and {}; log in {}",
            self.command,
            self.connector_limits.as_str(),
            self.workers,
            self.database_pool,
            self.bus_prefetch,
            self.batch_window_ms,
            if self.poll_interval_secs == 0 {
                "webhooks only (polling off)".to_string()
            } else {
                format!("polling every {} s", self.poll_interval_secs)
            },
            self.database,
            self.bus,
            self.log
        )
    }
}

/// A running engine child process; killed if dropped before [`EngineChild::stop`].
pub struct EngineChild {
    child: Child,
    pub pid: u32,
    /// `http://127.0.0.1:<port>`.
    pub base_url: String,
    pub admin_token: String,
    pub settings: EngineSettings,
    config: PathBuf,
    log: PathBuf,
}

impl EngineChild {
    /// Starts `tandem` with `settings` (its `listen` and `admin_token` are chosen here)
    /// and waits until it answers `/health`.
    pub async fn start(settings: Settings, limits: ConnectorLimits) -> anyhow::Result<Self> {
        let mut settings = with_run_key(settings)?;
        // Port 0: the engine binds a port the OS picks and prints it (read from the log
        // in `wait_until_up`), so no other process can take it in between.
        settings.listen = "127.0.0.1:0".into();
        // The simulators call the engine directly, at the address it binds (port 0 in
        // the public base URL stands for the port bound).
        settings
            .webhooks
            .public_base_url
            .get_or_insert_with(|| "http://127.0.0.1:0".into());
        let token = format!("{}", uuid::Uuid::new_v4().simple());
        settings.admin_token = Some(crate::secret::Secret::new(token.clone()));
        settings.validate().context("the engine's settings")?;

        let stem = format!("tandem-bench-{}", &settings.bus.prefix);
        let config = std::env::temp_dir().join(format!("{stem}.toml"));
        let log = std::env::temp_dir().join(format!("{stem}.log"));
        std::fs::write(&config, settings_toml(&settings)?)
            .with_context(|| format!("cannot write {}", config.display()))?;
        let log_file = std::fs::File::create(&log)
            .with_context(|| format!("cannot create {}", log.display()))?;

        let args: &[&str] = match limits {
            ConnectorLimits::Lifted => &["bench", "--engine-child"],
            ConnectorLimits::Published => &["serve"],
        };
        let exe = std::env::current_exe().context("cannot find this executable")?;
        // A profiler in front of the engine (`--engine-wrapper`).
        let mut wrapper = WRAPPER.get().into_iter().flatten();
        let mut command = match wrapper.next() {
            Some(program) => {
                let mut command = Command::new(program);
                command.args(wrapper).arg(&exe);
                command
            }
            None => Command::new(&exe),
        };
        // Every setting comes from the generated file; the log filter passes through.
        for (key, _) in std::env::vars_os() {
            let key = key.to_string_lossy().to_string();
            if key.starts_with("TANDEM_") && key != "TANDEM_LOG" {
                command.env_remove(&key);
            }
        }
        command
            .args(args)
            .env("TANDEM_CONFIG", &config)
            .stdin(std::process::Stdio::null())
            .stdout(log_file.try_clone()?)
            .stderr(log_file)
            .kill_on_drop(true);
        let child = command
            .spawn()
            .with_context(|| format!("cannot start {}", exe.display()))?;
        let pid = child.id().context("the engine exited at once")?;
        let pair = settings.pairs.values().next();
        let connection = pair.and_then(|p| p.crm.as_ref());
        let engine_settings = EngineSettings {
            command: format!("tandem {}", args.join(" ")),
            connector_limits: limits,
            workers: settings.orchestrator.workers,
            database_pool: crate::store::pool_size(
                &settings.database_url,
                settings.orchestrator.workers,
            ),
            bus_prefetch: crate::bus::BusConfig::from_settings(&settings).prefetch,
            batch_window_ms: connection.map_or(0, |c| c.batch_window_ms),
            poll_interval_secs: pair.map_or(0, |p| p.poll_interval_secs),
            database: crate::service::redact_url(&settings.database_url),
            bus: crate::service::redact_url(&settings.amqp_url),
            log: log.display().to_string(),
        };
        let mut engine = Self {
            child,
            pid,
            base_url: String::new(),
            admin_token: token,
            settings: engine_settings,
            config,
            log,
        };
        engine.wait_until_up(Duration::from_secs(60)).await?;
        Ok(engine)
    }

    async fn wait_until_up(&mut self, within: Duration) -> anyhow::Result<()> {
        let http = reqwest::Client::new();
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait()? {
                anyhow::bail!(
                    "the engine exited ({status}) before it answered:\n{}",
                    self.log_tail()
                );
            }
            if self.base_url.is_empty() {
                let output = std::fs::read_to_string(&self.log).unwrap_or_default();
                if let Some(url) = crate::service::listening_url(&output) {
                    self.base_url = url.to_string();
                }
            }
            let up = !self.base_url.is_empty()
                && http
                    .get(format!("{}/health", self.base_url))
                    .timeout(Duration::from_secs(1))
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success());
            if up {
                return Ok(());
            }
            if Instant::now() > deadline {
                anyhow::bail!(
                    "the engine did not answer within {within:?}:\n{}",
                    self.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The last lines the engine wrote, for error messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let from = lines.len().saturating_sub(20);
        format!("({})\n{}", self.log.display(), lines[from..].join("\n"))
    }

    /// Resident memory now, in bytes.
    pub fn rss_bytes(&self) -> Option<u64> {
        rss_bytes(self.pid)
    }

    /// Messages waiting in the engine's two lanes (live + bulk).
    pub async fn queue_depth(&self, http: &reqwest::Client) -> anyhow::Result<u64> {
        let answer: serde_json::Value = http
            .get(format!("{}/api/queue", self.base_url))
            .bearer_auth(&self.admin_token)
            .timeout(Duration::from_secs(5))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let depth = |key: &str| answer.get(key).and_then(|v| v.as_u64()).unwrap_or(0);
        Ok(depth("live_depth") + depth("bulk_depth"))
    }

    /// The engine's `/metrics` exposition.
    pub async fn metrics(&self, http: &reqwest::Client) -> anyhow::Result<String> {
        Ok(http
            .get(format!("{}/metrics", self.base_url))
            .bearer_auth(&self.admin_token)
            .timeout(Duration::from_secs(5))
            .send()
            .await?
            .text()
            .await?)
    }

    /// Changes taken in (webhooks, polls, jobs) and not yet finished, from `/metrics`:
    /// every change taken in ends in one outcome other than `retrying`. The queue depth
    /// alone misses what workers hold.
    pub async fn unfinished(&self, http: &reqwest::Client) -> anyhow::Result<i64> {
        Ok(unfinished(&self.metrics(http).await?))
    }

    /// SIGKILL, as a crash would: nothing finishes, nothing is cleaned up.
    pub async fn kill(mut self) {
        let _ = self.child.kill().await;
        let _ = std::fs::remove_file(&self.config);
    }

    /// SIGTERM, then up to 30 s for in-flight work to finish; killed after that.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status()
            .await;
        let exited = tokio::time::timeout(Duration::from_secs(30), self.child.wait()).await;
        if exited.is_err() {
            let _ = self.child.kill().await;
        }
        let _ = std::fs::remove_file(&self.config);
        match exited {
            Ok(Ok(status)) if status.success() => Ok(()),
            _ => anyhow::bail!("the engine did not stop cleanly:\n{}", self.log_tail()),
        }
    }
}

/// Changes received and not finished, from a `/metrics` exposition.
fn unfinished(exposition: &str) -> i64 {
    let mut received = 0.0;
    let mut finished = 0.0;
    for line in exposition.lines() {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let Ok(value) = value.parse::<f64>() else {
            continue;
        };
        if series.starts_with("tandem_events_received_total") {
            received += value;
        } else if series.starts_with("tandem_sync_outcomes_total")
            && !series.contains("outcome=\"retrying\"")
        {
            finished += value;
        }
    }
    (received - finished) as i64
}

/// `VmRSS` of process `pid`, in bytes.
pub fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

pub fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// Samples a process's resident memory every 100 ms until dropped.
pub struct RssSampler {
    samples: Arc<Mutex<Vec<(Instant, u64)>>>,
    stop: CancellationToken,
}

impl RssSampler {
    pub const EVERY: Duration = Duration::from_millis(100);

    pub fn start(pid: u32) -> Self {
        let samples = Arc::new(Mutex::new(Vec::new()));
        let stop = CancellationToken::new();
        let (into, until) = (samples.clone(), stop.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Self::EVERY);
            loop {
                tokio::select! {
                    _ = until.cancelled() => return,
                    _ = tick.tick() => {}
                }
                let Some(rss) = rss_bytes(pid) else { return };
                into.lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push((Instant::now(), rss));
            }
        });
        Self { samples, stop }
    }

    /// The highest sample taken between `from` and `to`, in bytes.
    pub fn peak(&self, from: Instant, to: Instant) -> u64 {
        self.samples
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|(at, _)| *at >= from && *at <= to)
            .map(|(_, rss)| *rss)
            .max()
            .unwrap_or(0)
    }

    pub fn count(&self) -> usize {
        self.samples.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

impl Drop for RssSampler {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// The settings file the child reads: what the bench decided, nothing from this
/// process's environment. Policies and field mappings are left at their defaults.
pub fn settings_toml(settings: &Settings) -> anyhow::Result<String> {
    use toml::{Table, Value};
    let mut root = Table::new();
    let text = |s: &str| Value::String(s.to_string());
    root.insert("database_url".into(), text(&settings.database_url));
    root.insert("amqp_url".into(), text(&settings.amqp_url));
    root.insert("listen".into(), text(&settings.listen));
    if let Some(token) = &settings.admin_token {
        root.insert("admin_token".into(), text(token.expose()));
    }
    if let Some(key) = &settings.secrets_key {
        root.insert("secrets_key".into(), text(key.expose()));
    }
    if !settings.secrets_old_keys.is_empty() {
        let keys = settings.secrets_old_keys.iter().map(|k| text(k.expose()));
        root.insert("secrets_old_keys".into(), Value::Array(keys.collect()));
    }
    let mut bus = Table::new();
    bus.insert("prefix".into(), text(&settings.bus.prefix));
    bus.insert(
        "prefetch".into(),
        Value::Integer(settings.bus.prefetch.into()),
    );
    bus.insert(
        "max_attempts".into(),
        Value::Integer(settings.bus.max_attempts.into()),
    );
    root.insert("bus".into(), Value::Table(bus));
    let mut orchestrator = Table::new();
    orchestrator.insert(
        "workers".into(),
        Value::Integer(settings.orchestrator.workers as i64),
    );
    orchestrator.insert(
        "shutdown_grace_secs".into(),
        Value::Integer(settings.orchestrator.shutdown_grace_secs as i64),
    );
    root.insert("orchestrator".into(), Value::Table(orchestrator));
    let mut webhooks = Table::new();
    webhooks.insert(
        "max_body_bytes".into(),
        Value::Integer(settings.webhooks.max_body_bytes as i64),
    );
    if let Some(base) = &settings.webhooks.public_base_url {
        webhooks.insert("public_base_url".into(), text(base));
    }
    root.insert("webhooks".into(), Value::Table(webhooks));
    let mut pairs = Table::new();
    for (name, pair) in &settings.pairs {
        pairs.insert(name.clone(), Value::Table(pair_table(pair)));
    }
    root.insert("pairs".into(), Value::Table(pairs));
    Ok(toml::to_string(&root)?)
}

fn pair_table(pair: &PairSettings) -> toml::Table {
    use toml::Value;
    let mut table = toml::Table::new();
    table.insert("enabled".into(), Value::Boolean(pair.enabled));
    table.insert(
        "poll_interval_secs".into(),
        Value::Integer(pair.poll_interval_secs as i64),
    );
    table.insert(
        "poll_overlap_secs".into(),
        Value::Integer(pair.poll_overlap_secs as i64),
    );
    table.insert(
        "source_of_truth".into(),
        Value::String(pair.source_of_truth.as_str().into()),
    );
    // The policies too: a child that fell back to the defaults would run a different
    // trial than the one asked for.
    table.insert(
        "conflict_policy".into(),
        Value::String(pair.conflict_policy.as_str().into()),
    );
    table.insert(
        "deletes".into(),
        Value::String(pair.deletes.as_str().into()),
    );
    let mut fields = toml::Table::new();
    for (entity, flows) in &pair.fields {
        let flows = flows
            .iter()
            .map(|(field, flow)| (field.clone(), Value::String(flow.as_str().into())))
            .collect();
        fields.insert(entity.as_str().into(), Value::Table(flows));
    }
    if !fields.is_empty() {
        table.insert("fields".into(), Value::Table(fields));
    }
    for (side, connection) in [("crm", &pair.crm), ("finance", &pair.finance)] {
        if let Some(connection) = connection {
            table.insert(side.into(), Value::Table(connection_table(connection)));
        }
    }
    table
}

fn connection_table(c: &ConnectionSettings) -> toml::Table {
    use toml::Value;
    let mut table = toml::Table::new();
    let text = |s: &str| Value::String(s.to_string());
    table.insert("kind".into(), text(c.kind.as_str()));
    table.insert("base_url".into(), text(&c.base_url));
    for (key, value) in [
        ("token_url", c.token_url.as_deref()),
        ("client_id", c.client_id.as_deref()),
        ("tenant_id", c.tenant_id.as_deref()),
        ("access_token", c.access_token.as_ref().map(|s| s.expose())),
        (
            "client_secret",
            c.client_secret.as_ref().map(|s| s.expose()),
        ),
        (
            "refresh_token",
            c.refresh_token.as_ref().map(|s| s.expose()),
        ),
    ] {
        if let Some(value) = value {
            table.insert(key.into(), text(value));
        }
    }
    table.insert(
        "webhook_secrets".into(),
        Value::Array(c.webhook_secrets.iter().map(|s| text(s.expose())).collect()),
    );
    table.insert("webhook_signing".into(), text(c.webhook_signing.as_str()));
    if let Some(versions) = &c.signature_versions {
        table.insert(
            "signature_versions".into(),
            Value::Array(versions.iter().map(|v| text(v.as_str())).collect()),
        );
    }
    if let Some(portal) = c.portal_id {
        // TOML integers are i64; a hub id beyond that is not one HubSpot issues.
        table.insert(
            "portal_id".into(),
            Value::Integer(i64::try_from(portal).unwrap_or(i64::MAX)),
        );
    }
    table.insert(
        "customer_object".into(),
        text(match c.customer_object {
            crate::config::CustomerObjectSetting::Contacts => "contacts",
            crate::config::CustomerObjectSetting::Companies => "companies",
        }),
    );
    table.insert(
        "batch_window_ms".into(),
        Value::Integer(c.batch_window_ms as i64),
    );
    table.insert("rate_limit_share".into(), Value::Float(c.rate_limit_share));
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unfinished_changes_are_those_received_without_a_final_outcome() {
        let exposition = "# HELP x\n\
            tandem_events_received_total{pair=\"p\",system=\"crm\",trigger=\"webhook\"} 7\n\
            tandem_events_received_total{pair=\"p\",system=\"finance\",trigger=\"poll\"} 3\n\
            tandem_sync_outcomes_total{outcome=\"skipped\"} 4\n\
            tandem_sync_outcomes_total{outcome=\"retrying\"} 2\n\
            tandem_sync_outcomes_total{outcome=\"updated\"} 5\n\
            tandem_sync_duration_seconds_count{outcome=\"updated\"} 5\n";
        assert_eq!(unfinished(exposition), 1);
    }

    #[test]
    fn the_generated_settings_load_back_as_they_were() {
        let mut settings = Settings {
            listen: "127.0.0.1:18080".into(),
            admin_token: Some(crate::secret::Secret::new("a-token-of-enough-length")),
            ..Default::default()
        };
        settings.orchestrator.workers = 48;
        settings.bus.prefix = "bench_x".into();
        let settings = with_run_key(settings).expect("a run key");
        let run_key = settings.secrets_key.clone();
        assert_eq!(
            with_run_key(Settings::default())
                .expect("again")
                .secrets_key,
            run_key,
            "every engine of a run seals with one key"
        );
        let mut settings = settings;
        settings.webhooks.public_base_url = Some("http://127.0.0.1:18080".into());
        let connection = |kind| ConnectionSettings {
            kind,
            base_url: "http://127.0.0.1:9".into(),
            token_url: Some("http://127.0.0.1:9/token".into()),
            access_token: None,
            client_id: Some("id".into()),
            client_secret: Some(crate::secret::Secret::new("se\"cret")),
            refresh_token: Some(crate::secret::Secret::new("refresh")),
            tenant_id: Some("tenant".into()),
            webhook_secrets: vec![crate::secret::Secret::new("key")],
            webhook_signing: Default::default(),
            signature_versions: None,
            portal_id: (kind == crate::config::ConnectorKind::Hubspot).then_some(62515),
            customer_object: Default::default(),
            batch_window_ms: 20,
            rate_limit_share: 1.0,
        };
        settings.pairs.insert(
            "bench".into(),
            PairSettings {
                enabled: true,
                crm: Some(connection(crate::config::ConnectorKind::Hubspot)),
                finance: Some(connection(crate::config::ConnectorKind::Xero)),
                poll_interval_secs: 0,
                poll_overlap_secs: 0,
                conflict_policy: crate::domain::ConflictPolicy::Manual,
                source_of_truth: crate::domain::System::Finance,
                deletes: crate::domain::DeletePolicy::Approve,
                fields: [(
                    crate::domain::EntityType::Customer,
                    [("phone".to_string(), crate::domain::Flow::CrmToFinance)].into(),
                )]
                .into(),
            },
        );
        let file = std::env::temp_dir().join(format!("{}.toml", uuid::Uuid::new_v4().simple()));
        std::fs::write(&file, settings_toml(&settings).expect("toml")).expect("write");
        let loaded = crate::config::load_from(Some(&file), figment::Figment::new()).expect("loads");
        let _ = std::fs::remove_file(&file);
        assert_eq!(loaded.orchestrator.workers, 48);
        assert_eq!(loaded.listen, "127.0.0.1:18080");
        let pair = &loaded.pairs["bench"];
        assert_eq!(pair.poll_interval_secs, 0);
        let finance = pair.finance.as_ref().expect("finance");
        assert_eq!(
            finance
                .client_secret
                .as_ref()
                .map(|s| s.expose().to_string()),
            Some("se\"cret".to_string())
        );
        assert_eq!(finance.tenant_id.as_deref(), Some("tenant"));
        assert_eq!(
            loaded.secrets_key, run_key,
            "the child seals with the run's key"
        );
        assert_eq!(pair.crm.as_ref().and_then(|c| c.portal_id), Some(62515));
        assert_eq!(
            (pair.conflict_policy, pair.deletes),
            (
                crate::domain::ConflictPolicy::Manual,
                crate::domain::DeletePolicy::Approve
            ),
            "the child runs the pair's policies"
        );
        assert_eq!(
            pair.fields[&crate::domain::EntityType::Customer]["phone"],
            crate::domain::Flow::CrmToFinance
        );
    }
}
