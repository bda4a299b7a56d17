//! Xero's webhook events and deliveries: one event per changed record, batched by the
//! outbox into `{"events", "firstEventSequence", "lastEventSequence", "entropy"}` and
//! signed `x-xero-signature: base64(HMAC-SHA256(key as UTF-8, exact body bytes))`.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use hmac::{Hmac, Mac as _};
use rand::Rng as _;
use serde_json::{json, Value};
use sha2::Sha256;

use super::dates;
use super::state::{Category, Change};
use crate::outbox::{Delivery, Render};

pub(crate) const SIGNATURE_HEADER: &str = "x-xero-signature";

/// The event a change raises.
pub(crate) fn event(change: &Change, tenant_id: &str) -> Value {
    let (resource, category) = match change.category {
        Category::Contact => ("Contacts", "CONTACT"),
        Category::Invoice => ("Invoices", "INVOICE"),
    };
    json!({
        "resourceUrl": format!("https://api.xero.com/api.xro/2.0/{resource}/{}", change.id),
        "resourceId": change.id,
        "eventDateUtc": dates::event_date(change.at_ms),
        "eventType": if change.created { "CREATE" } else { "UPDATE" },
        "eventCategory": category,
        "tenantId": tenant_id,
        "tenantType": "ORGANISATION",
    })
}

pub(crate) fn sign(key: &str, body: &[u8]) -> String {
    // HMAC accepts keys of any length, so this cannot fail; an empty MAC would only
    // make the delivery fail verification, never the simulator.
    match Hmac::<Sha256>::new_from_slice(key.as_bytes()) {
        Ok(mut mac) => {
            mac.update(body);
            STANDARD.encode(mac.finalize().into_bytes())
        }
        Err(_) => String::new(),
    }
}

fn entropy() -> String {
    let mut rng = rand::thread_rng();
    (0..20)
        .map(|_| char::from(rng.gen_range(b'A'..=b'Z')))
        .collect()
}

/// The outbox's render closure: numbers events in sequence across deliveries and
/// signs each body with `key`.
pub(crate) fn render(key: String) -> Box<Render> {
    let sequence = Arc::new(AtomicI64::new(0));
    Box::new(move |_url: &str, events: Vec<Value>| {
        let count = events.len() as i64;
        let last = sequence.fetch_add(count, Ordering::SeqCst) + count;
        let first = if count == 0 { 0 } else { last - count + 1 };
        let last = if count == 0 { 0 } else { last };
        let body = json!({
            "events": events,
            "firstEventSequence": first,
            "lastEventSequence": last,
            "entropy": entropy(),
        });
        let body = serde_json::to_vec(&body).unwrap_or_default();
        let signature = sign(&key, &body);
        Delivery {
            body,
            headers: vec![(SIGNATURE_HEADER.to_string(), signature)],
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_like_the_documented_check_value() {
        let body = br#"{"events":[],"lastEventSequence":0,"firstEventSequence":0,"entropy":"S0m3r4Nd0mt3xt"}"#;
        assert_eq!(
            sign("test-webhook-key", body),
            "qAYGQdoiCV3g0uAzbvP5M/6dDgNoDUK8EQfOLs1aIws="
        );
    }

    #[test]
    fn numbers_batches_in_sequence() {
        let render = render("k".into());
        let first: Value =
            serde_json::from_slice(&render("u", vec![json!({}), json!({})]).body).expect("json");
        let second: Value =
            serde_json::from_slice(&render("u", vec![json!({})]).body).expect("json");
        assert_eq!(first["firstEventSequence"], 1);
        assert_eq!(first["lastEventSequence"], 2);
        assert_eq!(second["firstEventSequence"], 3);
        assert_eq!(second["entropy"].as_str().map(str::len), Some(20));
    }
}
