//! `POST /webhooks/{pair}/{system}`: signed webhooks in, change events out.
//!
//! The signature is checked on the raw body before anything else (see
//! [`webhooks::endpoint`]: one value per signature header, a timestamp within five
//! minutes either way, HubSpot's signed URL rebuilt from `webhooks.public_base_url`).
//! Then every change must name the pair's own Xero organisation or HubSpot portal. A
//! delivery is answered 200 (with an empty body, as Xero requires) only after its
//! events were confirmed by the broker, so a sender retries on any failure and nothing
//! is lost. Every refusal (too large, unsigned, stale, malformed, another account's,
//! unknown pair) is answered `{"error": "..."}` and publishes and stores nothing.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use chrono::{TimeZone, Utc};
use moka::future::Cache;
use poem::error::ReadBodyError;
use poem::http::StatusCode;
use poem::web::{Data, Path};
use poem::{handler, Body, Request, Response};
use serde_json::json;
use webhooks::endpoint::{self, Signing};
use webhooks::standard::StandardSecret;
use webhooks::xero::XeroDelivery;
use webhooks::{hubspot, xero, ChangeKind as WebhookKind, Tenant, WebhookChange, WebhookSecret};

use crate::bus::{Bus, BusMessage, Lane};
use crate::config::{ConnectionSettings, PairSettings, Settings, WebhookSigning};
use crate::domain::{ChangeEvent, ChangeKind, EntityType, PairId, System, Trigger};
use crate::store::Store;

use super::receipts::ReceiptDesk;

/// How many recently taken deliveries are remembered in memory, and for how long. The
/// store's receipts are the authority; this only spares them the query for the
/// redeliveries that come soon (a sender's retry, a duplicated delivery). A larger
/// memory is not worth keeping: 100,000 entries held about 8 MiB after a busy minute.
const SEEN_CAPACITY: u64 = 10_000;
const SEEN_FOR: Duration = Duration::from_secs(3600);

/// Where one pair's webhooks from one system come in.
struct Endpoint {
    signing: Signing,
    /// The account every change of a delivery must name. `None` (a side that takes no
    /// webhooks) holds every change as foreign.
    tenant: Option<Tenant>,
    receipts: ReceiptDesk,
}

/// Everything the receiver needs: the endpoints of the settings file's pairs, built
/// at start, and those of the pairs made through the admin API, opened and closed
/// while the process runs.
pub struct WebhookIntake {
    endpoints: RwLock<HashMap<(PairId, System), Arc<Endpoint>>>,
    bus: Arc<dyn Bus>,
    store: Arc<dyn Store>,
    /// Deliveries already taken, in front of the store's receipts.
    seen: Cache<String, ()>,
    max_body_bytes: usize,
    /// `webhooks.public_base_url`: HubSpot's v3 signature covers the URL it called.
    public_base_url: Option<String>,
}

impl WebhookIntake {
    /// Must be called within the Tokio runtime (receipts are batched by a task).
    pub fn new(settings: &Settings, bus: Arc<dyn Bus>, store: Arc<dyn Store>) -> Self {
        let intake = Self {
            endpoints: RwLock::new(HashMap::new()),
            bus,
            store,
            seen: Cache::builder()
                .max_capacity(SEEN_CAPACITY)
                .time_to_live(SEEN_FOR)
                .build(),
            max_body_bytes: settings.webhooks.max_body_bytes,
            public_base_url: settings.webhooks.public_base_url.clone(),
        };
        for (name, pair) in &settings.pairs {
            intake.open_pair(name, pair);
        }
        intake
    }

    /// Takes the pair's webhooks from now on (in place of its endpoints, if it had
    /// some). Must be called within the Tokio runtime.
    pub fn open_pair(&self, name: &str, pair: &PairSettings) {
        let base = self.public_base_url.as_deref();
        let mut endpoints = self.endpoints.write().unwrap_or_else(|p| p.into_inner());
        for (system, connection) in [(System::Crm, &pair.crm), (System::Finance, &pair.finance)] {
            let pair = PairId::new(name);
            let receipts = ReceiptDesk::new(self.store.clone(), pair.clone(), system);
            endpoints.insert(
                (pair, system),
                Arc::new(Endpoint {
                    signing: signing(system, connection.as_ref(), base),
                    tenant: connection.as_ref().and_then(|c| tenant(system, c)),
                    receipts,
                }),
            );
        }
    }

    /// A removed pair's deliveries are answered 404 from now on.
    pub fn close_pair(&self, pair: &PairId) {
        self.endpoints
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|(p, _), _| p != pair);
    }

    fn endpoint(&self, pair: &PairId, system: System) -> Option<Arc<Endpoint>> {
        self.endpoints
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&(pair.clone(), system))
            .cloned()
    }
}

/// How a side's deliveries are signed. Settings were validated at load, so a secret
/// that does not parse cannot reach here; one that did would be left out, never
/// replaced by something weaker.
fn signing(
    system: System,
    connection: Option<&ConnectionSettings>,
    public_base_url: Option<&str>,
) -> Signing {
    let Some(connection) = connection else {
        return Signing::Xero { keys: Vec::new() };
    };
    let secrets = connection.webhook_secrets.iter().map(|s| s.expose());
    match (connection.webhook_signing, system) {
        (WebhookSigning::StandardWebhooks, _) => Signing::Standard {
            secrets: secrets
                .filter_map(|s| StandardSecret::parse(s).ok())
                .collect(),
        },
        (WebhookSigning::Native, System::Finance) => Signing::Xero {
            keys: secrets.map(WebhookSecret::from).collect(),
        },
        (WebhookSigning::Native, System::Crm) => Signing::hubspot(
            secrets.map(WebhookSecret::from).collect(),
            connection.hubspot_versions(),
            public_base_url,
        ),
    }
}

/// The account a side is connected to: its Xero organisation or HubSpot portal.
fn tenant(system: System, connection: &ConnectionSettings) -> Option<Tenant> {
    match system {
        System::Finance => connection.tenant_id.clone().map(Tenant::XeroOrganisation),
        System::Crm => connection.portal_id.map(Tenant::HubspotPortal),
    }
}

/// Why a delivery was not taken: its status, and what the sender is told.
struct Refusal {
    status: StatusCode,
    message: String,
}

impl Refusal {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    /// `{"error": "..."}`, as every refusal is answered.
    fn into_response(self) -> Response {
        Response::builder()
            .status(self.status)
            .content_type("application/json")
            .body(json!({"error": self.message}).to_string())
    }
}

#[handler]
pub async fn receive(
    request: &Request,
    Path((pair, system)): Path<(String, String)>,
    body: Body,
    intake: Data<&Arc<WebhookIntake>>,
) -> Response {
    match take_delivery(*intake, request, &pair, &system, body).await {
        Ok(()) => accepted(),
        Err(refusal) => {
            // `?` escapes what the sender put in the path or the body, so it cannot
            // forge a log line.
            tracing::info!(
                pair = ?pair,
                system = ?system,
                status = refusal.status.as_u16(),
                reason = ?refusal.message,
                "webhook refused"
            );
            refusal.into_response()
        }
    }
}

async fn take_delivery(
    intake: &WebhookIntake,
    request: &Request,
    pair: &str,
    system: &str,
    body: Body,
) -> Result<(), Refusal> {
    let Ok(system) = system.parse::<System>() else {
        return Err(Refusal::new(
            StatusCode::NOT_FOUND,
            format!("unknown system {system:?}: use `crm` or `finance`"),
        ));
    };
    let pair = PairId::new(pair);
    let Some(endpoint) = intake.endpoint(&pair, system) else {
        return Err(Refusal::new(
            StatusCode::NOT_FOUND,
            format!("no pair named {:?}", pair.as_str()),
        ));
    };
    let body = match body.into_bytes_limit(intake.max_body_bytes).await {
        Ok(body) => body,
        Err(ReadBodyError::PayloadTooLarge) => {
            return Err(Refusal::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("the body is larger than {} bytes", intake.max_body_bytes),
            ))
        }
        Err(_) => {
            return Err(Refusal::new(
                StatusCode::BAD_REQUEST,
                "the body could not be read",
            ))
        }
    };
    let headers: Vec<(&str, &[u8])> = request
        .headers()
        .iter()
        .map(|(name, value)| (name.as_str(), value.as_bytes()))
        .collect();
    let signed = endpoint::Request {
        method: request.method().as_str(),
        path_and_query: request
            .original_uri()
            .path_and_query()
            .map_or("/", |p| p.as_str()),
        headers: &headers,
        body: &body,
    };
    endpoint
        .signing
        .verify(&signed, Utc::now().timestamp_millis())
        .map_err(|err| Refusal::new(StatusCode::UNAUTHORIZED, err.to_string()))?;
    let changes = match system {
        System::Finance => match xero::parse(&body) {
            Ok(XeroDelivery::IntentToReceive) => return Ok(()),
            Ok(XeroDelivery::Changes(changes)) => changes,
            Err(err) => return Err(Refusal::new(StatusCode::BAD_REQUEST, err.to_string())),
        },
        System::Crm => hubspot::parse(&body)
            .map_err(|err| Refusal::new(StatusCode::BAD_REQUEST, err.to_string()))?,
    };
    hold_to_tenant(endpoint.tenant.as_ref(), &pair, system, &changes)?;
    match take(intake, &endpoint.receipts, &pair, system, changes).await {
        Ok(published) => {
            tracing::info!(%pair, %system, published, "webhook taken");
            Ok(())
        }
        Err(detail) => {
            // The detail names the store or the broker; the sender only needs to know
            // that a retry will be taken.
            tracing::error!(%pair, %system, error = %detail, "webhook not taken");
            Err(Refusal::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "the delivery could not be queued; nothing was taken, retry later",
            ))
        }
    }
}

/// Refuses a delivery any of whose changes names another account than the pair's.
///
/// 403: the sender is known (the signature holds) but this endpoint is not where that
/// account's changes go. HubSpot does not retry a 403; Xero retries any refusal for
/// at most 24 hours and then disables the subscription, which shows the mistake in
/// its developer portal. Nothing of the delivery is taken, so the pair never fetches a
/// record id from another account in its own.
fn hold_to_tenant(
    tenant: Option<&Tenant>,
    pair: &PairId,
    system: System,
    changes: &[WebhookChange],
) -> Result<(), Refusal> {
    let foreign = match tenant {
        Some(tenant) => tenant.check(changes).err(),
        None if changes.is_empty() => None,
        None => Some(webhooks::tenant::ForeignChanges {
            first_named: changes.iter().find_map(|c| c.tenant.clone()),
            count: changes.len(),
            of: changes.len(),
        }),
    };
    let Some(foreign) = foreign else {
        return Ok(());
    };
    crate::metrics::webhook_foreign_tenant(pair.as_str(), system.as_str());
    let named: Option<String> = foreign
        .first_named
        .as_deref()
        .map(|named| named.chars().take(64).collect());
    tracing::warn!(
        %pair,
        %system,
        named = ?named,
        foreign = foreign.count,
        of = foreign.of,
        "webhook refused: it names another account than the pair's"
    );
    let account = match system {
        System::Finance => "Xero organisation (tenantId)",
        System::Crm => "HubSpot portal (portalId)",
    };
    Err(Refusal::new(
        StatusCode::FORBIDDEN,
        format!(
            "the delivery names a {account} that pair `{pair}` is not connected to; \
             nothing was taken"
        ),
    ))
}

/// 200 with an empty body and no cookies, as Xero requires.
fn accepted() -> Response {
    Response::builder().status(StatusCode::OK).finish()
}

/// De-duplicates the delivery's changes and publishes the new ones; on a publish
/// failure forgets their receipts, so the sender's retry is taken. A delivery's
/// receipts are recorded in one statement, with those of the deliveries that came
/// meanwhile.
async fn take(
    intake: &WebhookIntake,
    receipts: &ReceiptDesk,
    pair: &PairId,
    system: System,
    changes: Vec<WebhookChange>,
) -> Result<usize, String> {
    let mut candidates: Vec<(String, ChangeEvent)> = Vec::new();
    for change in changes {
        let Some(event) = to_event(pair, system, &change) else {
            continue;
        };
        let cache_key = format!("{pair}/{system}/{}", change.delivery_key);
        if intake.seen.contains_key(&cache_key) {
            continue;
        }
        candidates.push((cache_key, event));
    }
    if candidates.is_empty() {
        return Ok(0);
    }
    let keys: Vec<String> = candidates.iter().map(|(_, e)| e.event_id.clone()).collect();
    let new: HashSet<String> = receipts.record(keys).await?.into_iter().collect();
    let mut fresh = Vec::new();
    let mut published = HashSet::new();
    for (cache_key, event) in candidates {
        // A key announced twice in one delivery is published once.
        if new.contains(&event.event_id) && published.insert(event.event_id.clone()) {
            fresh.push((cache_key, event));
        } else {
            intake.seen.insert(cache_key, ()).await;
        }
    }
    let messages: Vec<_> = fresh
        .iter()
        .map(|(_, e)| BusMessage::ChangeV1(e.clone()))
        .collect();
    if !messages.is_empty() {
        if let Err(err) = intake.bus.publish_batch(Lane::Live, &messages).await {
            let taken: Vec<String> = fresh.iter().map(|(_, e)| e.event_id.clone()).collect();
            if let Err(err) = intake.store.forget_receipts(pair, system, &taken).await {
                tracing::error!(error = %err, "cannot forget receipts; the sender's retry may be dropped");
            }
            return Err(format!("the bus is unavailable: {err}"));
        }
    }
    for (cache_key, _) in &fresh {
        intake.seen.insert(cache_key.clone(), ()).await;
    }
    crate::metrics::event_received(
        pair.as_str(),
        system.as_str(),
        "webhook",
        fresh.len() as u64,
    );
    Ok(fresh.len())
}

/// Maps an announced change to a change event, or `None` for object types Tandem does
/// not sync.
fn to_event(pair: &PairId, system: System, change: &WebhookChange) -> Option<ChangeEvent> {
    let entity = match (system, change.object_type.as_str()) {
        (System::Finance, "CONTACT") => EntityType::Customer,
        (System::Finance, "INVOICE") => EntityType::Invoice,
        (System::Crm, "company" | "contact") => EntityType::Customer,
        (System::Crm, "deal") => EntityType::Invoice,
        _ => return None,
    };
    Some(ChangeEvent {
        event_id: change.delivery_key.clone(),
        pair: pair.clone(),
        system,
        entity,
        external_id: change.object_id.clone(),
        kind: match change.kind {
            WebhookKind::Upsert => ChangeKind::Upsert,
            WebhookKind::Delete => ChangeKind::Delete,
        },
        occurred_at: Utc
            .timestamp_millis_opt(change.occurred_at)
            .single()
            .unwrap_or_else(Utc::now),
        trigger: Trigger::Webhook,
        job_id: None,
        transaction_id: None,
        by_tandem: change.by_this_app,
    })
}
