//! `POST /webhooks/{pair}/{system}`: signed webhooks in, change events out.
//!
//! The signature is checked on the raw body before anything else. A delivery is
//! answered 200 (with an empty body, as Xero requires) only after its events were
//! confirmed by the broker, so a sender retries on any failure and nothing is lost.
//! Every refusal (too large, unsigned, stale, malformed, unknown pair) publishes and
//! stores nothing.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use moka::future::Cache;
use poem::error::ReadBodyError;
use poem::http::StatusCode;
use poem::web::{Data, Path};
use poem::{handler, Body, Request, Response};
use serde_json::json;
use webhooks::xero::XeroDelivery;
use webhooks::{hubspot, xero, ChangeKind as WebhookKind, WebhookChange, WebhookSecret};

use crate::bus::{Bus, BusMessage, Lane};
use crate::config::Settings;
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
    secrets: Vec<WebhookSecret>,
    receipts: ReceiptDesk,
}

/// Everything the receiver needs, built once from settings.
pub struct WebhookIntake {
    endpoints: HashMap<(PairId, System), Endpoint>,
    bus: Arc<dyn Bus>,
    store: Arc<dyn Store>,
    /// Deliveries already taken, in front of the store's receipts.
    seen: Cache<String, ()>,
    max_body_bytes: usize,
    public_base_url: Option<String>,
}

impl WebhookIntake {
    /// Must be called within the Tokio runtime (receipts are batched by a task).
    pub fn new(settings: &Settings, bus: Arc<dyn Bus>, store: Arc<dyn Store>) -> Self {
        let mut endpoints = HashMap::new();
        for (name, pair) in &settings.pairs {
            for (system, connection) in [(System::Crm, &pair.crm), (System::Finance, &pair.finance)]
            {
                let keys = connection
                    .iter()
                    .flat_map(|c| c.webhook_secrets.iter())
                    .map(|s| WebhookSecret::new(s.expose().as_bytes().to_vec()))
                    .collect();
                let pair = PairId::new(name.clone());
                let receipts = ReceiptDesk::new(store.clone(), pair.clone(), system);
                endpoints.insert(
                    (pair, system),
                    Endpoint {
                        secrets: keys,
                        receipts,
                    },
                );
            }
        }
        Self {
            endpoints,
            bus,
            store,
            seen: Cache::builder()
                .max_capacity(SEEN_CAPACITY)
                .time_to_live(SEEN_FOR)
                .build(),
            max_body_bytes: settings.webhooks.max_body_bytes,
            public_base_url: settings.webhooks.public_base_url.clone(),
        }
    }

    /// The URL the sender called, as HubSpot signs it.
    fn called_url(&self, request: &Request) -> String {
        let path_and_query = request
            .original_uri()
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .unwrap_or_default();
        match &self.public_base_url {
            Some(base) => format!("{}{path_and_query}", base.trim_end_matches('/')),
            None => {
                let host = request.header("host").unwrap_or("localhost");
                format!("http://{host}{path_and_query}")
            }
        }
    }
}

fn refuse(status: StatusCode, message: impl Into<String>) -> Response {
    let message = message.into();
    tracing::info!(status = status.as_u16(), reason = %message, "webhook refused");
    Response::builder()
        .status(status)
        .content_type("application/json")
        .body(json!({"error": message}).to_string())
}

#[handler]
pub async fn receive(
    request: &Request,
    Path((pair, system)): Path<(String, String)>,
    body: Body,
    intake: Data<&Arc<WebhookIntake>>,
) -> Response {
    let intake = *intake;
    let Ok(system) = system.parse::<System>() else {
        return refuse(
            StatusCode::NOT_FOUND,
            format!("unknown system `{system}`: use `crm` or `finance`"),
        );
    };
    let pair = PairId::new(pair);
    let Some(endpoint) = intake.endpoints.get(&(pair.clone(), system)) else {
        return refuse(StatusCode::NOT_FOUND, format!("no pair named `{pair}`"));
    };
    let secrets = &endpoint.secrets;
    let body = match body.into_bytes_limit(intake.max_body_bytes).await {
        Ok(body) => body,
        Err(ReadBodyError::PayloadTooLarge) => {
            return refuse(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("the body is larger than {} bytes", intake.max_body_bytes),
            )
        }
        Err(err) => {
            return refuse(
                StatusCode::BAD_REQUEST,
                format!("cannot read the body: {err}"),
            )
        }
    };
    let verified = match system {
        System::Finance => xero::verify(&body, request.header(xero::SIGNATURE_HEADER), secrets),
        System::Crm => {
            let url = intake.called_url(request);
            let signed = hubspot::SignedRequest {
                method: request.method().as_str(),
                uri: &url,
                body: &body,
            };
            let headers = hubspot::SignatureHeaders {
                v3_signature: request.header(hubspot::SIGNATURE_V3_HEADER),
                v3_timestamp: request.header(hubspot::TIMESTAMP_HEADER),
                signature: request.header(hubspot::SIGNATURE_HEADER),
                version: request.header(hubspot::VERSION_HEADER),
            };
            hubspot::verify(signed, headers, secrets, Utc::now().timestamp_millis())
        }
    };
    if let Err(err) = verified {
        return refuse(StatusCode::UNAUTHORIZED, err.to_string());
    }
    let changes = match system {
        System::Finance => match xero::parse(&body) {
            Ok(XeroDelivery::IntentToReceive) => return accepted(),
            Ok(XeroDelivery::Changes(changes)) => changes,
            Err(err) => return refuse(StatusCode::BAD_REQUEST, err.to_string()),
        },
        System::Crm => match hubspot::parse(&body) {
            Ok(changes) => changes,
            Err(err) => return refuse(StatusCode::BAD_REQUEST, err.to_string()),
        },
    };
    match take(intake, &endpoint.receipts, &pair, system, changes).await {
        Ok(published) => {
            tracing::info!(%pair, %system, published, "webhook taken");
            accepted()
        }
        Err(message) => refuse(StatusCode::SERVICE_UNAVAILABLE, message),
    }
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
    })
}
