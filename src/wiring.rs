//! From settings to running parts: each pair's connectors, the orchestrator's pairs,
//! and the poller's cursors.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crate::config::{
    ConnectionSettings, ConnectorKind, CustomerObjectSetting, PairSettings, Settings,
};
use crate::connectors::health::{AuthForm, Connection, ConnectionHealth, Connections, SystemKind};
use crate::connectors::http::{
    ClientAuth, OAuthSettings, OAuthTokens, RequestRecorder, StaticToken, TokenSource,
};
use crate::connectors::hubspot::mapping::CustomerObject;
use crate::connectors::hubspot::{HubSpotConnector, HubSpotLimits, HubSpotParts, TimedFields};
use crate::connectors::xero::{XeroConnector, XeroLimits, XeroParts};
use crate::connectors::Connector;
use crate::domain::{ConflictPolicy, EntityType, PairId, System};
use crate::intake::PollTarget;
use crate::orchestrator::{LinkedReferences, PairRuntime};
use crate::store::Store;

/// The parts of a process that depend on connectors.
#[derive(Default)]
pub struct Wiring {
    pub connectors: HashMap<(PairId, System), Arc<dyn Connector>>,
    /// Pairs with both connectors, as the orchestrator runs them.
    pub pairs: HashMap<PairId, PairRuntime>,
    pub poll_targets: Vec<PollTarget>,
    /// Every connector with its health, for the probes and the admin API.
    pub connections: Connections,
}

/// Options that tests and benchmarks set; production uses the defaults.
#[derive(Default, Clone)]
pub struct WiringOptions {
    /// Collects every request the connectors send.
    pub recorder: Option<Arc<RequestRecorder>>,
    /// Replaces the services' published limits (benchmarks of a smaller budget).
    pub xero_limits: Option<XeroLimits>,
    pub hubspot_limits: Option<HubSpotLimits>,
    /// Receives the address the HTTP server bound, so a server started in-process on
    /// port 0 can be reached without guessing a free port beforehand.
    pub listening: Option<tokio::sync::mpsc::UnboundedSender<std::net::SocketAddr>>,
}

/// How long one API call may take before it counts as a timeout.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(CALL_TIMEOUT)
        .connect_timeout(Duration::from_secs(10))
        .pool_max_idle_per_host(32)
        .build()
        .unwrap_or_default()
}

/// The connection's tokens: a fixed token when one is set, else OAuth2 refresh.
/// `None` when the settings hold neither (the pair's webhooks are then only queued).
fn token_source(
    owner: &str,
    system: System,
    settings: &ConnectionSettings,
    store: &Arc<dyn Store>,
    http: &reqwest::Client,
) -> Option<Arc<dyn TokenSource>> {
    if let Some(token) = settings.access_token.clone().filter(|t| !t.is_empty()) {
        return Some(Arc::new(StaticToken(token)));
    }
    let (Some(client_id), Some(client_secret)) =
        (settings.client_id.clone(), settings.client_secret.clone())
    else {
        return None;
    };
    let (token_url, client_auth) = match settings.kind {
        ConnectorKind::Xero => (
            settings
                .token_url
                .clone()
                .unwrap_or_else(|| crate::connectors::xero::TOKEN_URL.to_string()),
            ClientAuth::Basic,
        ),
        ConnectorKind::Hubspot => (
            settings.token_url.clone().unwrap_or_else(|| {
                format!("{}/oauth/v1/token", settings.base_url.trim_end_matches('/'))
            }),
            ClientAuth::Form,
        ),
    };
    Some(Arc::new(OAuthTokens::new(
        OAuthSettings {
            pair: PairId::new(owner),
            system,
            token_url,
            client_id,
            client_secret,
            first_refresh_token: settings.refresh_token.clone(),
            client_auth,
        },
        store.clone(),
        http.clone(),
    )))
}

/// The fields of `entity` whose change times decide a clash: those that sync both
/// ways, when the later change wins (`last_write_wins`). No other policy reads them,
/// and one-way fields never clash.
fn timed_fields(pair: &PairSettings, entity: EntityType) -> Vec<String> {
    let policy = pair.policy(entity);
    if policy.conflicts != ConflictPolicy::LastWriteWins {
        return Vec::new();
    }
    let from_finance: Vec<&str> = policy.mapping.fields_from(System::Finance).collect();
    policy
        .mapping
        .fields_from(System::Crm)
        .filter(|field| from_finance.contains(field))
        .map(str::to_string)
        .collect()
}

/// The connector for one side of a pair and its health, when its settings hold
/// credentials.
fn connector(
    pair: &str,
    owner: &str,
    system: System,
    settings: &ConnectionSettings,
    timed: &TimedFields,
    store: &Arc<dyn Store>,
    options: &WiringOptions,
) -> Option<(Arc<dyn Connector>, Arc<ConnectionHealth>)> {
    let http = http_client();
    let Some(auth) = token_source(owner, system, settings, store, &http) else {
        tracing::warn!(
            pair,
            %system,
            "no credentials (access_token, or client_id + client_secret + refresh_token): the pair's webhooks are taken and queued, not synced"
        );
        return None;
    };
    let batch_window = Duration::from_millis(settings.batch_window_ms);
    let share = |n: usize| ((n as f64 * settings.rate_limit_share).floor() as usize).max(1);
    Some(match settings.kind {
        ConnectorKind::Xero => {
            let xero = XeroConnector::new(XeroParts {
                base_url: settings.base_url.clone(),
                tenant_id: settings.tenant_id.clone().unwrap_or_default(),
                auth,
                http,
                limits: {
                    let limits = options.xero_limits.unwrap_or_default();
                    XeroLimits {
                        per_minute: share(limits.per_minute),
                        at_once: share(limits.at_once),
                        per_day: share(limits.per_day),
                    }
                },
                batch_window,
                recorder: options.recorder.clone(),
            });
            let health = xero.health().clone();
            (Arc::new(xero), health)
        }
        ConnectorKind::Hubspot => {
            let hubspot = HubSpotConnector::new(HubSpotParts {
                base_url: settings.base_url.clone(),
                auth,
                http,
                customers: match settings.customer_object {
                    CustomerObjectSetting::Contacts => CustomerObject::Contacts,
                    CustomerObjectSetting::Companies => CustomerObject::Companies,
                },
                timed_fields: timed.clone(),
                limits: {
                    let limits = options.hubspot_limits.unwrap_or_default();
                    HubSpotLimits {
                        per_ten_seconds: share(limits.per_ten_seconds),
                        searches_per_second: share(limits.searches_per_second),
                    }
                },
                batch_window,
                recorder: options.recorder.clone(),
            });
            let health = hubspot.health().clone();
            (Arc::new(hubspot), health)
        }
    })
}

/// How a connection's settings authenticate it.
fn auth_form(settings: &ConnectionSettings) -> AuthForm {
    if settings
        .access_token
        .as_ref()
        .is_some_and(|t| !t.is_empty())
    {
        AuthForm::AccessToken
    } else {
        AuthForm::OAuth
    }
}

fn kind(settings: &ConnectionSettings) -> SystemKind {
    match settings.kind {
        ConnectorKind::Xero => SystemKind::Xero,
        ConnectorKind::Hubspot => SystemKind::HubSpot,
    }
}

pub fn from_settings(settings: &Settings, store: Arc<dyn Store>) -> Wiring {
    from_settings_with(settings, store, &WiringOptions::default())
}

pub fn from_settings_with(
    settings: &Settings,
    store: Arc<dyn Store>,
    options: &WiringOptions,
) -> Wiring {
    let mut wiring = Wiring::default();
    for (name, pair) in settings.pairs.iter().filter(|(_, p)| p.enabled) {
        wire_pair(&mut wiring, name, pair, &|_| name.clone(), &store, options);
    }
    wiring
}

/// Adds one pair's connectors, health, poll targets and (with both sides) its runtime
/// to `wiring`. `owner` names, per side, whose stored credential the side uses: the
/// pair's own for a pair from settings, the account's for a pair made through the API.
pub fn wire_pair(
    wiring: &mut Wiring,
    name: &str,
    pair: &PairSettings,
    owner: &dyn Fn(System) -> String,
    store: &Arc<dyn Store>,
    options: &WiringOptions,
) {
    let id = PairId::new(name);
    let timed = TimedFields {
        customer: timed_fields(pair, EntityType::Customer),
        invoice: timed_fields(pair, EntityType::Invoice),
    };
    let side = |system: System, settings: Option<&ConnectionSettings>| {
        let settings = settings?;
        let (connector, health) = connector(
            name,
            &owner(system),
            system,
            settings,
            &timed,
            store,
            options,
        )?;
        wiring.connections.add(Connection {
            pair: id.clone(),
            system,
            kind: kind(settings),
            base_url: settings.base_url.clone(),
            auth: auth_form(settings),
            connector: connector.clone(),
            health,
        });
        Some(connector)
    };
    let crm = side(System::Crm, pair.crm.as_ref());
    let finance = side(System::Finance, pair.finance.as_ref());
    for (system, connector) in [(System::Crm, &crm), (System::Finance, &finance)] {
        let Some(connector) = connector else { continue };
        wiring
            .connectors
            .insert((id.clone(), system), connector.clone());
        if pair.poll_interval_secs > 0 {
            for entity in EntityType::ALL {
                wiring.poll_targets.push(PollTarget {
                    pair: id.clone(),
                    system,
                    entity,
                    connector: connector.clone(),
                    interval: Duration::from_secs(pair.poll_interval_secs),
                    overlap: Duration::from_secs(pair.poll_overlap_secs),
                    policy: pair.policy(entity),
                });
            }
        }
    }
    if let (Some(crm), Some(finance)) = (crm, finance) {
        let policies = EntityType::ALL
            .into_iter()
            .map(|e| (e, pair.policy(e)))
            .collect();
        wiring.pairs.insert(
            id.clone(),
            PairRuntime {
                crm: LinkedReferences::wrap(crm, store.clone(), id.clone()),
                finance: LinkedReferences::wrap(finance, store.clone(), id),
                policies,
            },
        );
    }
}
