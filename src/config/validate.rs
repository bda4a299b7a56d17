//! Validation of the whole of the settings, with errors that name the key and say how
//! to set it.

use std::fmt;
use std::net::SocketAddr;

use super::{ConnectionSettings, ConnectorKind, Settings};

/// An invalid setting: which key, and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingsError {
    pub key: String,
    pub problem: String,
}

impl SettingsError {
    pub fn new(key: impl Into<String>, problem: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            problem: problem.into(),
        }
    }

    pub(super) fn from_figment(err: figment::Error) -> Self {
        let key = err.path.join(".");
        let problem = err.kind.to_string();
        Self::new(if key.is_empty() { "(settings)" } else { &key }, problem)
    }

    /// The environment variable that sets this key.
    pub fn env_var(&self) -> String {
        if self.key.starts_with("TANDEM_") {
            return self.key.clone();
        }
        format!("TANDEM_{}", self.key.replace('.', "__").to_uppercase())
    }
}

impl fmt::Display for SettingsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.starts_with("TANDEM_") {
            write!(f, "invalid setting `{}`: {}", self.key, self.problem)
        } else {
            write!(
                f,
                "invalid setting `{}` ({}): {}",
                self.key,
                self.env_var(),
                self.problem
            )
        }
    }
}

impl std::error::Error for SettingsError {}

impl Settings {
    /// Checks the settings as a whole; the first problem found is returned.
    pub fn validate(&self) -> Result<(), SettingsError> {
        validate_database_url(&self.database_url)?;
        validate_amqp_url(&self.amqp_url)?;
        let listen: SocketAddr = self.listen.parse().map_err(|_| {
            SettingsError::new(
                "listen",
                format!("`{}` is not an address such as 127.0.0.1:8080", self.listen),
            )
        })?;
        match &self.admin_token {
            Some(token) if token.expose().len() < 16 => {
                return Err(SettingsError::new(
                    "admin_token",
                    "must be at least 16 characters (generate one with `openssl rand -hex 32`)",
                ))
            }
            None if !listen.ip().is_loopback() => {
                return Err(SettingsError::new(
                    "admin_token",
                    format!(
                        "required when listening on {listen}, which is not a loopback address: \
                         the admin API would be open to the network"
                    ),
                ))
            }
            _ => {}
        }
        validate_secrets_keys(self)?;
        validate_bus(self)?;
        if !(1..=1024).contains(&self.orchestrator.workers) {
            return Err(SettingsError::new(
                "orchestrator.workers",
                "must be between 1 and 1024",
            ));
        }
        if self
            .orchestrator
            .workers_per_pair
            .is_some_and(|share| !(1..=self.orchestrator.workers).contains(&share))
        {
            return Err(SettingsError::new(
                "orchestrator.workers_per_pair",
                "must be between 1 and orchestrator.workers",
            ));
        }
        if self.orchestrator.settle_ms > 60_000 {
            return Err(SettingsError::new(
                "orchestrator.settle_ms",
                "must be at most 60000 (a minute)",
            ));
        }
        if self.webhooks.max_body_bytes == 0 {
            return Err(SettingsError::new(
                "webhooks.max_body_bytes",
                "must be more than 0",
            ));
        }
        let http = &self.http;
        for (key, value, max) in [
            (
                "http.max_connections",
                http.max_connections as u64,
                1_000_000,
            ),
            (
                "http.header_read_timeout_secs",
                http.header_read_timeout_secs,
                3600,
            ),
            (
                "http.body_read_timeout_secs",
                http.body_read_timeout_secs,
                3600,
            ),
            ("http.max_body_bytes", http.max_body_bytes as u64, 1 << 30),
        ] {
            if value == 0 || value > max {
                return Err(SettingsError::new(
                    key,
                    format!("must be between 1 and {max}"),
                ));
            }
        }
        if let Some(base) = &self.webhooks.public_base_url {
            validate_public_base_url(base)?;
        }
        for (name, pair) in &self.pairs {
            let key = format!("pairs.{name}");
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
            {
                return Err(SettingsError::new(
                    &key,
                    "a pair name may hold only a-z, 0-9, `-` and `_` (it appears in webhook URLs)",
                ));
            }
            let crm = pair
                .crm
                .as_ref()
                .ok_or_else(|| missing_connection(&key, "crm"))?;
            let finance = pair
                .finance
                .as_ref()
                .ok_or_else(|| missing_connection(&key, "finance"))?;
            for (entity, overrides) in &pair.fields {
                crate::domain::FieldMapping::with_overrides(*entity, overrides).map_err(
                    |problem| SettingsError::new(format!("{key}.fields.{entity}"), problem),
                )?;
            }
            validate_connection(&format!("{key}.crm"), crm, ConnectorKind::Hubspot)?;
            validate_connection(&format!("{key}.finance"), finance, ConnectorKind::Xero)?;
            let base = self.webhooks.public_base_url.as_deref();
            super::webhook_intake::validate(name, "crm", crm, base)?;
            super::webhook_intake::validate(name, "finance", finance, base)?;
        }
        Ok(())
    }
}

fn missing_connection(pair_key: &str, side: &str) -> SettingsError {
    SettingsError::new(
        format!("{pair_key}.{side}"),
        format!("the pair has no {side} connection: add a `[{pair_key}.{side}]` table with at least `kind` and `base_url`"),
    )
}

fn validate_database_url(url: &str) -> Result<(), SettingsError> {
    let bad = |why: &str| SettingsError::new("database_url", why.to_string());
    if url.starts_with("sqlite:") {
        return Ok(());
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let parsed = reqwest::Url::parse(url)
            .map_err(|err| bad(&format!("not a valid PostgreSQL URL ({err})")))?;
        if parsed.host_str().is_none_or(str::is_empty) && !url.contains("host=") {
            return Err(bad("the PostgreSQL URL names no host"));
        }
        return Ok(());
    }
    Err(bad(
        "expected `postgres://user@host:5432/db` or `sqlite://path/to/tandem.db?mode=rwc`",
    ))
}

fn validate_amqp_url(url: &str) -> Result<(), SettingsError> {
    if url == "memory" {
        return Ok(());
    }
    if url.starts_with("amqp://") || url.starts_with("amqps://") {
        reqwest::Url::parse(url).map_err(|err| {
            SettingsError::new("amqp_url", format!("not a valid AMQP URL ({err})"))
        })?;
        return Ok(());
    }
    Err(SettingsError::new(
        "amqp_url",
        "expected `amqp://user:password@host:5672/%2f`, or `memory` for the in-process bus",
    ))
}

fn validate_secrets_keys(settings: &Settings) -> Result<(), SettingsError> {
    use crate::seal::SecretsKey;
    if let Some(key) = &settings.secrets_key {
        SecretsKey::parse(key.expose())
            .map_err(|err| SettingsError::new("secrets_key", err.to_string()))?;
    }
    let older = &settings.secrets_old_keys;
    for (n, key) in older.iter().enumerate() {
        SecretsKey::parse(key.expose()).map_err(|err| {
            SettingsError::new(
                "secrets_old_keys",
                format!("key {} of {}: {err}", n + 1, older.len()),
            )
        })?;
    }
    if settings.secrets_key.is_none() && !older.is_empty() {
        return Err(SettingsError::new(
            "secrets_old_keys",
            "older keys are only read alongside a current key: set TANDEM_SECRETS_KEY to the \
             key new credentials are sealed with",
        ));
    }
    Ok(())
}

/// Where HubSpot's signed URLs are rebuilt from: an http(s) URL with a host, and
/// nothing a signed URL could not begin with.
fn validate_public_base_url(base: &str) -> Result<(), SettingsError> {
    let bad = |why: String| SettingsError::new("webhooks.public_base_url", why);
    let url =
        reqwest::Url::parse(base).map_err(|err| bad(format!("`{base}` is not a URL ({err})")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(bad(format!(
            "`{base}` is not an http(s) URL with a host, such as `https://sync.example.com`"
        )));
    }
    if url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() {
        return Err(bad(
            "the public base URL may hold a scheme, a host, a port and a path prefix, \
             nothing more"
                .into(),
        ));
    }
    Ok(())
}

fn validate_bus(settings: &Settings) -> Result<(), SettingsError> {
    let bus = &settings.bus;
    if bus.prefix.is_empty()
        || !bus
            .prefix
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(SettingsError::new(
            "bus.prefix",
            "must be non-empty and hold only letters, digits, `-`, `_` and `.`",
        ));
    }
    if bus.prefetch == 0 {
        return Err(SettingsError::new("bus.prefetch", "must be more than 0"));
    }
    if bus.max_attempts == 0 {
        return Err(SettingsError::new("bus.max_attempts", "must be at least 1"));
    }
    Ok(())
}

fn validate_connection(
    key: &str,
    connection: &ConnectionSettings,
    expected: ConnectorKind,
) -> Result<(), SettingsError> {
    if connection.kind != expected {
        return Err(SettingsError::new(
            format!("{key}.kind"),
            format!(
                "`{}` is not supported on this side yet; use `{}`",
                connection.kind.as_str(),
                expected.as_str()
            ),
        ));
    }
    let url_ok = reqwest::Url::parse(&connection.base_url)
        .map(|url| matches!(url.scheme(), "http" | "https") && url.host_str().is_some())
        .unwrap_or(false);
    if !url_ok {
        return Err(SettingsError::new(
            format!("{key}.base_url"),
            format!("`{}` is not an http(s) URL", connection.base_url),
        ));
    }
    if connection.webhook_secrets.iter().any(|s| s.is_empty()) {
        return Err(SettingsError::new(
            format!("{key}.webhook_secrets"),
            "an empty secret would accept forged webhooks; remove it",
        ));
    }
    if !(connection.rate_limit_share > 0.0 && connection.rate_limit_share <= 1.0) {
        return Err(SettingsError::new(
            format!("{key}.rate_limit_share"),
            "must be more than 0 and at most 1 (this process's part of the service's limit)",
        ));
    }
    if expected == ConnectorKind::Xero
        && connection.customer_object != crate::config::CustomerObjectSetting::Contacts
    {
        return Err(SettingsError::new(
            format!("{key}.customer_object"),
            "only a HubSpot connection chooses between contacts and companies; remove it here",
        ));
    }
    if expected == ConnectorKind::Xero && connection.tenant_id.as_deref().is_none_or(str::is_empty)
    {
        return Err(SettingsError::new(
            format!("{key}.tenant_id"),
            "Xero needs the organisation's tenant id (sent as `xero-tenant-id` on every call)",
        ));
    }
    Ok(())
}
