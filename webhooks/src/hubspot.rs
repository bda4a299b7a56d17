//! HubSpot request signatures (v1, v2, v3) and webhook payloads.
//!
//! - v3: `X-HubSpot-Signature-v3` = base64(HMAC-SHA256(client secret, method + URI +
//!   body + timestamp)), timestamp from `X-HubSpot-Request-Timestamp` (Unix ms). HubSpot
//!   documents refusing one more than 5 minutes old; a timestamp more than 5 minutes
//!   ahead is refused too, or a sender could sign one far in the future and replay it
//!   for as long as it likes.
//! - v2: `X-HubSpot-Signature` = hex(SHA-256(client secret + method + URI + body)).
//! - v1: `X-HubSpot-Signature` = hex(SHA-256(client secret + body)).
//!
//! v1 and v2 carry no timestamp: a request captured once can be replayed forever, and
//! since HubSpot sends them beside v3, whoever captured a request can strip its v3
//! headers and present the legacy ones. So they are refused unless an endpoint opts in
//! ([`Versions`]). They are plain hashes, compared in constant time as well.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::change::{parse_json, ChangeKind, ParseError, WebhookChange};
use super::{freshness, hmacs, matches_any, quoted, VerifyError, WebhookSecret};

pub const SIGNATURE_V3_HEADER: &str = "x-hubspot-signature-v3";
pub const TIMESTAMP_HEADER: &str = "x-hubspot-request-timestamp";
pub const SIGNATURE_HEADER: &str = "x-hubspot-signature";
pub const VERSION_HEADER: &str = "x-hubspot-signature-version";

/// How far a v3 timestamp may be from now, either way (HubSpot's SDKs: 300000 ms).
pub const TOLERANCE_MS: u64 = 300_000;

const V1_REFUSED: &str = "HubSpot signature v1 is not accepted for this pair: it has no \
     timestamp, so a captured request could be replayed forever; send v3";
const V2_REFUSED: &str = "HubSpot signature v2 is not accepted for this pair: it has no \
     timestamp, so a captured request could be replayed forever; send v3";
const V3_REFUSED: &str = "HubSpot signature v3 is not accepted for this pair";

/// The parts of a request that HubSpot signs.
#[derive(Debug, Clone, Copy)]
pub struct SignedRequest<'a> {
    pub method: &'a str,
    /// The full URL HubSpot called: scheme, host, path and query. It must come from
    /// configuration, never from the request's `Host` header, which the sender sets.
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

/// Which signature versions an endpoint takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Versions {
    pub v1: bool,
    pub v2: bool,
    pub v3: bool,
}

impl Versions {
    /// The default: v3 alone, the only version with a timestamp.
    pub const V3_ONLY: Self = Self {
        v1: false,
        v2: false,
        v3: true,
    };

    /// Whether any accepted version signs the URL (v2 and v3 do).
    pub fn signs_url(self) -> bool {
        self.v2 || self.v3
    }
}

impl Default for Versions {
    fn default() -> Self {
        Self::V3_ONLY
    }
}

/// Verifies a request that must carry a v3 signature. `now_ms` is the current Unix
/// time in milliseconds.
pub fn verify(
    request: SignedRequest<'_>,
    headers: SignatureHeaders<'_>,
    secrets: &[WebhookSecret],
    now_ms: i64,
) -> Result<(), VerifyError> {
    verify_accepting(request, headers, secrets, now_ms, Versions::V3_ONLY)
}

/// Verifies whichever scheme the request carries, v3 first, taking only the versions
/// in `accepted`.
pub fn verify_accepting(
    request: SignedRequest<'_>,
    headers: SignatureHeaders<'_>,
    secrets: &[WebhookSecret],
    now_ms: i64,
    accepted: Versions,
) -> Result<(), VerifyError> {
    if secrets.iter().all(WebhookSecret::is_empty) {
        return Err(VerifyError::NoSecret);
    }
    if let Some(signature) = headers.v3_signature {
        if !accepted.v3 {
            return Err(VerifyError::NotAccepted(V3_REFUSED));
        }
        let timestamp = headers
            .v3_timestamp
            .ok_or(VerifyError::MissingHeader(TIMESTAMP_HEADER))?;
        return verify_v3(request, signature, timestamp, secrets, Some(now_ms));
    }
    let Some(signature) = headers.signature else {
        return Err(VerifyError::MissingHeader(if accepted.v3 {
            SIGNATURE_V3_HEADER
        } else {
            SIGNATURE_HEADER
        }));
    };
    // HubSpot's oldest requests carry no version header: they are v1.
    let version = headers.version.map(str::trim).unwrap_or("v1");
    if version.eq_ignore_ascii_case("v1") {
        if !accepted.v1 {
            return Err(VerifyError::NotAccepted(V1_REFUSED));
        }
        verify_hash(secrets, &[request.body], signature)
    } else if version.eq_ignore_ascii_case("v2") {
        if !accepted.v2 {
            return Err(VerifyError::NotAccepted(V2_REFUSED));
        }
        let parts = [
            request.method.as_bytes(),
            request.uri.as_bytes(),
            request.body,
        ];
        verify_hash(secrets, &parts, signature)
    } else if version.eq_ignore_ascii_case("v3") {
        Err(VerifyError::MissingHeader(SIGNATURE_V3_HEADER))
    } else {
        Err(VerifyError::UnsupportedVersion(quoted(version)))
    }
}

/// v3 alone. `now_ms: None` skips the window, for checking published vectors whose
/// timestamps are long past.
pub fn verify_v3(
    request: SignedRequest<'_>,
    signature: &str,
    timestamp: &str,
    secrets: &[WebhookSecret],
    now_ms: Option<i64>,
) -> Result<(), VerifyError> {
    let sent_at = freshness::parse(timestamp, TIMESTAMP_HEADER)?;
    if let Some(now) = now_ms {
        freshness::check(sent_at, now, TOLERANCE_MS)?;
    }
    let offered = STANDARD
        .decode(signature.trim())
        .map_err(|_| VerifyError::MalformedHeader(SIGNATURE_V3_HEADER))?;
    let keys: Vec<&[u8]> = secrets
        .iter()
        .filter(|s| !s.is_empty())
        .map(WebhookSecret::bytes)
        .collect();
    // The timestamp as sent: it passed `freshness::parse`, so it is digits only.
    let message = [
        request.method.as_bytes(),
        request.uri.as_bytes(),
        request.body,
        timestamp.trim().as_bytes(),
    ];
    if matches_any(&hmacs(&keys, &message), &offered) {
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
    let offered = hex::decode(signature.trim())
        .map_err(|_| VerifyError::MalformedHeader(SIGNATURE_HEADER))?;
    let matches = secrets
        .iter()
        .filter(|s| !s.is_empty())
        .fold(false, |found, secret| {
            let mut hash = Sha256::new();
            hash.update(secret.bytes());
            for part in parts {
                hash.update(part);
            }
            found | bool::from(hash.finalize().as_slice().ct_eq(&offered))
        });
    if matches {
        Ok(())
    } else {
        Err(VerifyError::BadSignature)
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
    #[serde(default)]
    app_id: Option<i64>,
    #[serde(default)]
    change_source: Option<String>,
    #[serde(default)]
    source_id: Option<String>,
}

impl Event {
    /// Whether the app this delivery is for made the change: HubSpot names an app's own
    /// changes with an integration `changeSource` and the app's id as `sourceId`.
    fn by_this_app(&self) -> bool {
        let integration = matches!(self.change_source.as_deref(), Some("INTEGRATION" | "API"));
        match (self.app_id, self.source_id.as_deref()) {
            (Some(app), Some(source)) => integration && source.trim() == app.to_string(),
            _ => false,
        }
    }
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
                        "subscriptionType {} has no `object.action` form",
                        quoted(&event.subscription_type)
                    ))
                })?;
            let kind = match action {
                "deletion" | "privacyDeletion" => ChangeKind::Delete,
                _ => ChangeKind::Upsert,
            };
            let by_this_app = event.by_this_app();
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
                by_this_app,
            })
        })
        .collect()
}
