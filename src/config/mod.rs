//! Settings: compiled-in defaults, then `tandem.toml` (path in `TANDEM_CONFIG`), then
//! `TANDEM_*` environment variables, then validation of the whole.
//!
//! Nested keys use `__` in environment variables: `[pairs.acme.finance] webhook_key`
//! is `TANDEM_PAIRS__ACME__FINANCE__WEBHOOK_KEY`. Any key can instead be read from a
//! file by adding `_file` (`TANDEM_ADMIN_TOKEN_FILE=/run/secrets/admin_token`), which
//! is how container secrets are usually mounted.

mod load;
mod validate;
mod webhook_intake;

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::domain::{
    ConflictPolicy, DeletePolicy, EntityType, FieldMapping, Flow, SyncPolicy, System,
};
use crate::secret::Secret;

pub use load::{load, load_from, SettingsSource};
pub use validate::SettingsError;

/// The whole of Tandem's settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// `postgres://...` in production; `sqlite://tandem.db?mode=rwc` is the embedded
    /// default.
    pub database_url: String,
    /// `amqp://...` for RabbitMQ; `memory` for the in-process bus (not durable).
    pub amqp_url: String,
    /// Address of the HTTP server (webhooks, admin API, dashboard, health).
    pub listen: String,
    /// Bearer token for the admin API. Required when `listen` is not a loopback address.
    pub admin_token: Option<Secret>,
    /// The key that encrypts the OAuth tokens kept in the store: 32 random bytes as
    /// base64 or hex (`openssl rand -base64 32`). Required on PostgreSQL when a pair
    /// uses OAuth; on a SQLite file, a key file beside the database is made on first
    /// start when it is not set (see `crate::credential_store::keyring_for`).
    pub secrets_key: Option<Secret>,
    /// Keys that sealed credentials before `secrets_key` did, still accepted for reading
    /// while the store is sealed again under `secrets_key` (key rotation). A list, or one
    /// string of keys separated by commas or whitespace (for `secrets_old_keys_file`).
    #[serde(deserialize_with = "key_list")]
    pub secrets_old_keys: Vec<Secret>,
    /// `text` or `json` log lines.
    pub log_format: LogFormat,
    pub bus: BusSettings,
    pub orchestrator: OrchestratorSettings,
    pub webhooks: WebhookSettings,
    /// The apps through which accounts are connected in the browser (OAuth
    /// authorization-code flow): `[connect]`, `[connect.hubspot]`, `[connect.xero]`.
    pub connect: ConnectSettings,
    pub http: HttpSettings,
    /// The pairs that sync, by name: `[pairs.acme]`.
    pub pairs: BTreeMap<String, PairSettings>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            database_url: "sqlite://tandem.db?mode=rwc".into(),
            amqp_url: "memory".into(),
            listen: "127.0.0.1:8080".into(),
            admin_token: None,
            secrets_key: None,
            secrets_old_keys: Vec::new(),
            log_format: LogFormat::Text,
            bus: BusSettings::default(),
            orchestrator: OrchestratorSettings::default(),
            webhooks: WebhookSettings::default(),
            connect: ConnectSettings::default(),
            http: HttpSettings::default(),
            pairs: BTreeMap::new(),
        }
    }
}

/// Reads a list of keys given as a list or as one string (an environment variable or a
/// file holds one string).
fn key_list<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Vec<Secret>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Keys {
        List(Vec<Secret>),
        Text(String),
    }
    Ok(match Keys::deserialize(deserializer)? {
        Keys::List(keys) => keys,
        Keys::Text(text) => text
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|key| !key.is_empty())
            .map(Secret::new)
            .collect(),
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BusSettings {
    /// Prefix of every exchange and queue name, so several deployments (or test runs)
    /// can share one broker.
    pub prefix: String,
    /// Unacknowledged messages a consumer (one per lane) may hold at once; never
    /// fewer than `orchestrator.workers`.
    pub prefetch: u16,
    /// Deliveries of one message before it is parked for a person.
    pub max_attempts: u32,
}

impl Default for BusSettings {
    fn default() -> Self {
        Self {
            prefix: "tandem".into(),
            prefetch: 64,
            max_attempts: 8,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OrchestratorSettings {
    /// Changes handled at once by one process. A change waiting for its batch call
    /// holds no database connection, and batch calls carry what is waiting, so many
    /// workers mean fuller batches under a tight rate limit. Under Xero's 60 calls a
    /// minute a change waits seconds for its calls, and the changes a busy pair offers
    /// in those seconds must all be in flight to share them: with 256 the full torture
    /// profile fell behind its edits.
    pub workers: usize,
    /// The most of those workers one pair may hold, however deep its backlog: the rest
    /// stay free for other pairs' changes. When several pairs have work, each holds at
    /// most an equal part. Unset: three quarters of `workers`.
    pub workers_per_pair: Option<usize>,
    /// How long in-flight work may take to finish after a stop signal.
    pub shutdown_grace_secs: u64,
    /// A record that began writing less than this ago waits for the rest of it before
    /// it syncs again, so a burst of edits costs two writes, not one per edit. 0 = off.
    pub settle_ms: u64,
}

impl OrchestratorSettings {
    /// The most workers one pair may hold.
    pub fn pair_share(&self) -> usize {
        self.workers_per_pair
            .unwrap_or(self.workers * 3 / 4)
            .clamp(1, self.workers.max(1))
    }
}

impl Default for OrchestratorSettings {
    fn default() -> Self {
        Self {
            workers: 1024,
            workers_per_pair: None,
            shutdown_grace_secs: 30,
            settle_ms: 1000,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebhookSettings {
    /// Largest webhook body accepted; larger ones get 413 and change nothing.
    pub max_body_bytes: usize,
    /// The public URL senders call (`https://sync.example.com`, with a path prefix if
    /// a proxy strips one). HubSpot's v3 (and v2) signatures cover the full URL it
    /// called, which Tandem rebuilds from this and the requested path; it is never
    /// taken from the request's `Host` header, which the sender chooses. Required when
    /// any pair takes HubSpot v2 or v3 signatures.
    pub public_base_url: Option<String>,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        Self {
            max_body_bytes: 1024 * 1024,
            public_base_url: None,
        }
    }
}

/// Connecting accounts in the browser: Tandem's callback URL and the app registered
/// with each service.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConnectSettings {
    /// The redirect URI registered with both apps, ending in `/connect/callback`
    /// (`https://sync.example.com/connect/callback`). A port of 0 is replaced by the
    /// port bound, for local runs.
    pub callback_url: Option<String>,
    pub hubspot: Option<AppSettings>,
    pub xero: Option<AppSettings>,
}

/// An OAuth app registered with a service. The URLs default to the service's own;
/// `tandem sim` and the tests point them at the simulators.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppSettings {
    pub client_id: String,
    /// Also readable from a file: `TANDEM_CONNECT__XERO__CLIENT_SECRET_FILE`.
    pub client_secret: Secret,
    pub authorize_url: Option<String>,
    pub token_url: Option<String>,
    /// The API's base URL.
    pub api_base_url: Option<String>,
    /// Xero: where the organisations a grant reaches are listed (`/connections`).
    pub connections_url: Option<String>,
    /// HubSpot: token metadata (`/oauth/v3/token/introspect`).
    pub introspect_url: Option<String>,
    /// Xero: where a disconnect revokes the grant (`/connect/revocation`).
    pub revocation_url: Option<String>,
    /// The scopes asked for, separated by spaces; the defaults cover what Tandem syncs.
    pub scopes: Option<String>,
    /// The secret that signs this app's webhooks: HubSpot signs with the client secret
    /// (left unset), Xero with the webhook key shown in its app's Webhooks page.
    pub webhook_key: Option<Secret>,
}

/// How the HTTP listener (webhooks, admin API, dashboard, health) protects itself from
/// slow, large or too many requests.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpSettings {
    /// Connections open at once; one more is answered 503 and closed.
    pub max_connections: usize,
    /// Time a client has to send a request's headers (and an idle kept-alive
    /// connection to start its next request) before the connection is closed.
    pub header_read_timeout_secs: u64,
    /// Time a client has to send a request's whole body; a slower one gets 408.
    pub body_read_timeout_secs: u64,
    /// Largest body of a request other than a webhook (the admin API); larger ones get
    /// 413, before the body is read when `Content-Length` says so.
    pub max_body_bytes: usize,
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            max_connections: 1024,
            header_read_timeout_secs: 10,
            body_read_timeout_secs: 30,
            max_body_bytes: 1024 * 1024,
        }
    }
}

/// One CRM connection and one finance connection that sync with each other.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PairSettings {
    #[serde(default = "default_true")]
    pub enabled: bool,
    pub crm: Option<ConnectionSettings>,
    pub finance: Option<ConnectionSettings>,
    /// Seconds between polls of each entity type on each side; 0 turns polling off.
    #[serde(default = "default_poll_interval")]
    pub poll_interval_secs: u64,
    /// How far each poll looks back before its cursor, so a record written while the
    /// previous poll ran is never missed.
    #[serde(default = "default_poll_overlap")]
    pub poll_overlap_secs: u64,
    /// Who wins a field changed on both sides.
    #[serde(default)]
    pub conflict_policy: ConflictPolicy,
    /// Who wins a tie under `last_write_wins`.
    #[serde(default = "default_source_of_truth")]
    pub source_of_truth: System,
    /// What a delete or archive on one side does to the other.
    #[serde(default)]
    pub deletes: DeletePolicy,
    /// Per entity type, fields whose direction differs from the default:
    /// `[pairs.acme.fields.customer] phone = "crm_to_finance"`.
    #[serde(default)]
    pub fields: BTreeMap<EntityType, BTreeMap<String, Flow>>,
}

fn default_source_of_truth() -> System {
    System::Finance
}

impl PairSettings {
    /// The sync policy for one entity type. The mapping was validated at load, so an
    /// invalid override cannot reach here; it falls back to the defaults if it did.
    pub fn policy(&self, entity: EntityType) -> SyncPolicy {
        let mapping = self
            .fields
            .get(&entity)
            .and_then(|overrides| FieldMapping::with_overrides(entity, overrides).ok())
            .unwrap_or_else(|| FieldMapping::defaults(entity));
        SyncPolicy {
            entity,
            mapping,
            conflicts: self.conflict_policy,
            source_of_truth: self.source_of_truth,
            deletes: self.deletes,
        }
    }
}

fn default_true() -> bool {
    true
}

fn default_poll_interval() -> u64 {
    60
}

fn default_poll_overlap() -> u64 {
    30
}

/// Which service a connection talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConnectorKind {
    Hubspot,
    Xero,
}

impl ConnectorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ConnectorKind::Hubspot => "hubspot",
            ConnectorKind::Xero => "xero",
        }
    }
}

/// How to reach one system of a pair.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectionSettings {
    pub kind: ConnectorKind,
    /// The API's base URL: the real service in production, `tandem sim` in trials.
    pub base_url: String,
    /// OAuth2 token endpoint; defaults to the service's own.
    pub token_url: Option<String>,
    /// A HubSpot private-app token (no OAuth refresh needed).
    pub access_token: Option<Secret>,
    pub client_id: Option<String>,
    pub client_secret: Option<Secret>,
    /// The first refresh token; rotated ones are kept in the store.
    pub refresh_token: Option<Secret>,
    /// Xero organisation (`xero-tenant-id` on every call).
    pub tenant_id: Option<String>,
    /// Webhook signing secrets; several are accepted at once so keys can be rotated.
    /// None: the side takes no webhooks (it is polled).
    #[serde(default)]
    pub webhook_secrets: Vec<Secret>,
    /// Who signs this side's webhooks: `native` (HubSpot or Xero itself, the default)
    /// or `standard_webhooks`: a relay in front of Tandem (a webhook gateway fanning one
    /// app's deliveries out to several consumers) forwards their bodies unchanged and
    /// signs them with Standard Webhooks. `webhook_secrets` are then the relay's
    /// `whsec_…` secrets. The body is still HubSpot's or Xero's, held to `portal_id` or
    /// `tenant_id` like any other delivery.
    #[serde(default)]
    pub webhook_signing: WebhookSigning,
    /// HubSpot: the signature versions taken, `["v3"]` when unset. v1 and v2 carry no
    /// timestamp, so a request captured once (from a log, a proxy, a debugging tool)
    /// can be replayed for ever; and since HubSpot sends them beside v3, whoever holds
    /// a captured request can strip its v3 headers and present the legacy ones. Add
    /// `"v1"` or `"v2"` only for an app that cannot send v3, knowing that risk.
    pub signature_versions: Option<Vec<HubspotSignatureVersion>>,
    /// HubSpot: the account's hub id (in HubSpot's account menu, and the `portalId`
    /// of every webhook). A public app's client secret signs the deliveries of every
    /// portal that installed it, so each delivery must name this portal or it is
    /// refused. Required when the connection takes webhooks.
    pub portal_id: Option<u64>,
    /// HubSpot: whether customers are `contacts` (the default) or `companies`.
    #[serde(default)]
    pub customer_object: CustomerObjectSetting,
    /// How long a single read or write waits for others to share its batch call.
    #[serde(default = "default_batch_window_ms")]
    pub batch_window_ms: u64,
    /// This process's part of the service's rate limit (0 < share <= 1): with three
    /// processes running workers for the pair, 0.33 each keeps them under the limit
    /// together.
    #[serde(default = "default_rate_limit_share")]
    pub rate_limit_share: f64,
}

impl ConnectionSettings {
    /// Whether the connection refreshes OAuth tokens, which are then kept (sealed) in
    /// the store; a fixed `access_token` is used as it is and never stored.
    pub fn uses_oauth(&self) -> bool {
        self.access_token.as_ref().is_none_or(Secret::is_empty)
            && self.client_id.is_some()
            && self.client_secret.is_some()
    }
}

fn default_rate_limit_share() -> f64 {
    1.0
}

fn default_batch_window_ms() -> u64 {
    20
}

/// Who signs a side's webhooks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WebhookSigning {
    /// HubSpot's signatures or Xero's, by the service itself.
    #[default]
    Native,
    /// Standard Webhooks (`webhook-id`, `webhook-timestamp`, `webhook-signature`), by
    /// a relay that forwards the service's deliveries.
    StandardWebhooks,
}

impl WebhookSigning {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Native => "native",
            Self::StandardWebhooks => "standard_webhooks",
        }
    }
}

/// A HubSpot request-signature version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HubspotSignatureVersion {
    V1,
    V2,
    V3,
}

impl HubspotSignatureVersion {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::V1 => "v1",
            Self::V2 => "v2",
            Self::V3 => "v3",
        }
    }
}

impl ConnectionSettings {
    /// The HubSpot signature versions this side takes.
    pub fn hubspot_versions(&self) -> webhooks::hubspot::Versions {
        match &self.signature_versions {
            None => webhooks::hubspot::Versions::V3_ONLY,
            Some(versions) => webhooks::hubspot::Versions {
                v1: versions.contains(&HubspotSignatureVersion::V1),
                v2: versions.contains(&HubspotSignatureVersion::V2),
                v3: versions.contains(&HubspotSignatureVersion::V3),
            },
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CustomerObjectSetting {
    #[default]
    Contacts,
    Companies,
}

#[cfg(test)]
mod tests;

/// A URL with any password replaced, for logs and `tandem config`.
pub fn redact_url(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        _ => url.to_string(),
    }
}
