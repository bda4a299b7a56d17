//! HubSpot's webhook events (`contact.creation`, `deal.propertyChange`, ...) and the
//! v3-signed deliveries that carry them to the configured URL.

use std::sync::atomic::{AtomicU64, Ordering};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

pub(crate) use super::source::Source;
use super::state::{now_ms, Kind};
use crate::outbox::Delivery;

/// What happened to an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    Creation,
    PropertyChange,
    Deletion,
}

impl Action {
    fn name(self) -> &'static str {
        match self {
            Self::Creation => "creation",
            Self::PropertyChange => "propertyChange",
            Self::Deletion => "deletion",
        }
    }
}

/// Builds events with the account's fixed fields and a running `eventId`.
#[derive(Debug)]
pub(crate) struct EventMaker {
    portal_id: u64,
    app_id: u64,
    next_event_id: AtomicU64,
}

impl EventMaker {
    pub(crate) fn new(portal_id: u64, app_id: u64) -> Self {
        Self {
            portal_id,
            app_id,
            next_event_id: AtomicU64::new(1),
        }
    }

    /// The event for one change, or `None` for kinds HubSpot raises none for (line items).
    pub(crate) fn event(
        &self,
        kind: Kind,
        object_id: u64,
        action: Action,
        property: Option<(&str, &str)>,
        source: Source,
    ) -> Option<Value> {
        let kind_number = match kind {
            Kind::Contact => 1,
            Kind::Company => 2,
            Kind::Deal => 3,
            Kind::LineItem => return None,
        };
        let action_number = match action {
            Action::Creation => 1,
            Action::PropertyChange => 2,
            Action::Deletion => 3,
        };
        // One subscription per type, as an app configures them once.
        let subscription_id = 480_000 + kind_number * 10 + action_number;
        let (change_source, source_id) = source.names(self.app_id);
        let mut event = json!({
            "eventId": self.next_event_id.fetch_add(1, Ordering::Relaxed),
            "subscriptionId": subscription_id,
            "portalId": self.portal_id,
            "appId": self.app_id,
            "occurredAt": now_ms(),
            "subscriptionType": format!("{}.{}", kind.singular(), action.name()),
            "attemptNumber": 0,
            "objectId": object_id,
            "changeSource": change_source,
            "sourceId": source_id,
        });
        if action == Action::Creation {
            event["changeFlag"] = json!("NEW");
        }
        if let Some((name, value)) = property {
            event["propertyName"] = json!(name);
            event["propertyValue"] = json!(value);
        }
        Some(event)
    }
}

/// The outbox's render function: the events as one JSON array, signed v3 with the
/// app's client secret over the exact URL and body bytes sent.
pub(crate) fn renderer(
    client_secret: String,
) -> impl Fn(&str, Vec<Value>) -> Delivery + Send + Sync {
    move |url: &str, events: Vec<Value>| {
        let body = serde_json::to_vec(&Value::Array(events)).unwrap_or_else(|_| b"[]".to_vec());
        let timestamp = now_ms().to_string();
        let signature = sign_v3(&client_secret, "POST", url, &body, &timestamp);
        Delivery {
            body,
            headers: vec![
                ("X-HubSpot-Signature-v3".to_string(), signature),
                ("X-HubSpot-Request-Timestamp".to_string(), timestamp),
                ("X-HubSpot-Signature-Version".to_string(), "v3".to_string()),
            ],
        }
    }
}

/// base64(HMAC-SHA256(secret, method + url + body + timestamp)).
pub(crate) fn sign_v3(
    secret: &str,
    method: &str,
    url: &str,
    body: &[u8],
    timestamp: &str,
) -> String {
    // HMAC takes a key of any length, so this never fails; an empty signature would
    // only make the receiver refuse the delivery.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
        return String::new();
    };
    mac.update(method.as_bytes());
    mac.update(url.as_bytes());
    mac.update(body);
    mac.update(timestamp.as_bytes());
    STANDARD.encode(mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// HubSpot's own SDK vector (`hubspot-signature-vectors.json`).
    #[test]
    fn signs_the_published_vector() {
        let signature = sign_v3(
            "yyyyyyyy-yyyy-yyyy-yyyy-yyyyyyyyyyyy",
            "POST",
            "https://www.example.com/webhook_uri",
            b"{'example_field':'example_value'}",
            "15000000",
        );
        assert_eq!(signature, "HPW73RUtKmcYoEDADG0s6MmGFWUzWJKAW07r8RDgcQw=");
    }

    #[test]
    fn line_items_raise_nothing() {
        let maker = EventMaker::new(1, 2);
        assert!(maker
            .event(Kind::LineItem, 5, Action::Creation, None, Source::Person)
            .is_none());
        let event = maker
            .event(
                Kind::Deal,
                5,
                Action::PropertyChange,
                Some(("amount", "10")),
                Source::Integration,
            )
            .expect("event");
        assert_eq!(event["subscriptionType"], "deal.propertyChange");
        assert_eq!(event["changeSource"], "INTEGRATION");
        assert_eq!(event["propertyValue"], "10");
    }
}
