//! HubSpot request signatures (v1, v2, v3) and webhook payloads.
//!
//! - v3: `X-HubSpot-Signature-v3` = base64(HMAC-SHA256(client secret, method + URI +
//!   body + timestamp)), timestamp from `X-HubSpot-Request-Timestamp` (Unix ms), refused
//!   when more than 5 minutes old.
//! - v2: `X-HubSpot-Signature` = hex(SHA-256(client secret + method + URI + body)).
//! - v1: `X-HubSpot-Signature` = hex(SHA-256(client secret + body)).
//!
//! v1 and v2 are plain hashes, compared in constant time as well.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle_compare::equal;

use super::change::{parse_json, ChangeKind, ParseError, WebhookChange};
use super::{any_hmac_matches, VerifyError, WebhookSecret};

pub const SIGNATURE_V3_HEADER: &str = "x-hubspot-signature-v3";
pub const TIMESTAMP_HEADER: &str = "x-hubspot-request-timestamp";
pub const SIGNATURE_HEADER: &str = "x-hubspot-signature";
pub const VERSION_HEADER: &str = "x-hubspot-signature-version";

/// How old a v3 timestamp may be.
pub const MAX_AGE_MS: i64 = 300_000;

/// The parts of a request that HubSpot signs.
#[derive(Debug, Clone, Copy)]
pub struct SignedRequest<'a> {
    pub method: &'a str,
    /// The full URL HubSpot called: scheme, host, path and query.
    pub uri: &'a str,
    pub body: &'a [u8],
}

/// The signature headers of a request.
#[derive(Debug, Clone, Copy, Default)]
pub struct SignatureHeaders<'a> {
    pub v3_signature: Option<&'a str>,
    pub v3_timestamp: Option<&'a str>,
    pub signature: Option<&'a str>,
    pub version: Option<&'a str>,
}

/// Verifies whichever scheme the request carries, v3 first. `now_ms` is the current
/// Unix time in milliseconds.
pub fn verify(
    request: SignedRequest<'_>,
    headers: SignatureHeaders<'_>,
    secrets: &[WebhookSecret],
    now_ms: i64,
) -> Result<(), VerifyError> {
    if secrets.iter().all(WebhookSecret::is_empty) {
        return Err(VerifyError::NoSecret);
    }
    if let Some(signature) = headers.v3_signature {
        let timestamp = headers
            .v3_timestamp
            .ok_or(VerifyError::MissingHeader(TIMESTAMP_HEADER))?;
        return verify_v3(request, signature, timestamp, secrets, Some(now_ms));
    }
    let signature = headers
        .signature
        .ok_or(VerifyError::MissingHeader(SIGNATURE_HEADER))?;
    match headers.version.unwrap_or("v1") {
        "v1" => verify_hash(secrets, &[request.body], signature),
        "v2" => verify_hash(
            secrets,
            &[
                request.method.as_bytes(),
                request.uri.as_bytes(),
                request.body,
            ],
            signature,
        ),
        other => Err(VerifyError::UnsupportedVersion(other.to_string())),
    }
}

/// v3 alone. `now_ms: None` skips the age check, for checking published vectors whose
/// timestamps are long past.
pub fn verify_v3(
    request: SignedRequest<'_>,
    signature: &str,
    timestamp: &str,
    secrets: &[WebhookSecret],
    now_ms: Option<i64>,
) -> Result<(), VerifyError> {
    let sent_at: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| VerifyError::MalformedHeader(TIMESTAMP_HEADER))?;
    if let Some(now) = now_ms {
        if now - sent_at > MAX_AGE_MS {
            return Err(VerifyError::StaleTimestamp);
        }
    }
    let expected = STANDARD
        .decode(signature.trim())
        .map_err(|_| VerifyError::MalformedHeader(SIGNATURE_V3_HEADER))?;
    let keys: Vec<Vec<u8>> = secrets
        .iter()
        .filter(|s| !s.is_empty())
        .map(|s| s.bytes().to_vec())
        .collect();
    let message = [
        request.method.as_bytes(),
        request.uri.as_bytes(),
        request.body,
        timestamp.trim().as_bytes(),
    ];
    if any_hmac_matches(&keys, &message, &expected) {
        Ok(())
    } else {
        Err(VerifyError::BadSignature)
    }
}

fn verify_hash(
    secrets: &[WebhookSecret],
    parts: &[&[u8]],
    signature: &str,
) -> Result<(), VerifyError> {
    let expected = hex::decode(signature.trim())
        .map_err(|_| VerifyError::MalformedHeader(SIGNATURE_HEADER))?;
    let matches = secrets.iter().filter(|s| !s.is_empty()).any(|secret| {
        let mut hash = Sha256::new();
        hash.update(secret.bytes());
        for part in parts {
            hash.update(part);
        }
        equal(&hash.finalize(), &expected)
    });
    if matches {
        Ok(())
    } else {
        Err(VerifyError::BadSignature)
    }
}

/// Constant-time comparison for the plain-hash schemes.
mod subtle_compare {
    pub fn equal(a: &[u8], b: &[u8]) -> bool {
        if a.len() != b.len() {
            return false;
        }
        a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Event {
    event_id: i64,
    subscription_id: i64,
    portal_id: i64,
    occurred_at: i64,
    subscription_type: String,
    object_id: i64,
    #[serde(default)]
    property_name: Option<String>,
    #[serde(default)]
    property_value: Option<String>,
}

/// Parses HubSpot's JSON array of events. `eventId` is documented as not unique, so
/// the delivery key combines it with the subscription, portal, object, time, type and
/// changed property: the same event redelivered gets the same key, two different
/// events never share one.
pub fn parse(body: &[u8]) -> Result<Vec<WebhookChange>, ParseError> {
    let events: Vec<Event> = parse_json(body)?;
    events
        .into_iter()
        .map(|event| {
            let (object_type, action) =
                event.subscription_type.split_once('.').ok_or_else(|| {
                    ParseError::Invalid(format!(
                        "subscriptionType `{}` has no `object.action` form",
                        event.subscription_type
                    ))
                })?;
            let kind = match action {
                "deletion" | "privacyDeletion" => ChangeKind::Delete,
                _ => ChangeKind::Upsert,
            };
            let mut property = Sha256::new();
            property.update(event.property_name.as_deref().unwrap_or_default());
            property.update([0]);
            property.update(event.property_value.as_deref().unwrap_or_default());
            Ok(WebhookChange {
                object_type: object_type.to_string(),
                object_id: event.object_id.to_string(),
                kind,
                occurred_at: event.occurred_at,
                delivery_key: format!(
                    "hubspot:{}:{}:{}:{}:{}:{}:{}",
                    event.portal_id,
                    event.subscription_id,
                    event.event_id,
                    event.subscription_type,
                    event.object_id,
                    event.occurred_at,
                    &hex::encode(property.finalize())[..16]
                ),
                tenant: Some(event.portal_id.to_string()),
            })
        })
        .collect()
}
