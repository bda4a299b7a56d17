//! Xero: `x-xero-signature` is base64(HMAC-SHA256(raw body)) keyed with the webhook
//! key's UTF-8 bytes (not base64-decoded). No timestamp: replays are caught by delivery
//! de-duplication. Payloads batch `events`; an empty batch is the intent-to-receive
//! handshake, answered 200 when signed correctly and 401 otherwise.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde::Deserialize;

use super::change::{parse_json, ChangeKind, ParseError, WebhookChange};
use super::{any_hmac_matches, VerifyError, WebhookSecret};

pub const SIGNATURE_HEADER: &str = "x-xero-signature";

pub fn verify(
    body: &[u8],
    signature: Option<&str>,
    secrets: &[WebhookSecret],
) -> Result<(), VerifyError> {
    let keys: Vec<Vec<u8>> = secrets
        .iter()
        .filter(|s| !s.is_empty())
        .map(|s| s.bytes().to_vec())
        .collect();
    if keys.is_empty() {
        return Err(VerifyError::NoSecret);
    }
    let signature = signature.ok_or(VerifyError::MissingHeader(SIGNATURE_HEADER))?;
    let expected = STANDARD
        .decode(signature.trim())
        .map_err(|_| VerifyError::MalformedHeader(SIGNATURE_HEADER))?;
    if any_hmac_matches(&keys, &[body], &expected) {
        Ok(())
    } else {
        Err(VerifyError::BadSignature)
    }
}

/// A parsed Xero delivery.
#[derive(Debug, Clone, PartialEq)]
pub enum XeroDelivery {
    /// The intent-to-receive handshake: no events.
    IntentToReceive,
    Changes(Vec<WebhookChange>),
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Payload {
    events: Vec<Event>,
    first_event_sequence: i64,
    last_event_sequence: i64,
    entropy: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Event {
    resource_id: String,
    event_date_utc: String,
    event_type: String,
    event_category: String,
    tenant_id: String,
}

pub fn parse(body: &[u8]) -> Result<XeroDelivery, ParseError> {
    let payload: Payload = parse_json(body)?;
    if payload.events.is_empty() {
        return Ok(XeroDelivery::IntentToReceive);
    }
    let changes = payload
        .events
        .into_iter()
        .enumerate()
        .map(|(index, event)| {
            // Xero's examples carry no zone suffix; the time is UTC.
            let occurred_at = parse_utc_millis(&event.event_date_utc).ok_or_else(|| {
                ParseError::Invalid(format!(
                    "eventDateUtc `{}` is not a date-time",
                    event.event_date_utc
                ))
            })?;
            let kind = match event.event_type.to_ascii_uppercase().as_str() {
                "CREATE" | "UPDATE" => ChangeKind::Upsert,
                "DELETE" => ChangeKind::Delete,
                other => return Err(ParseError::Invalid(format!("unknown eventType `{other}`"))),
            };
            Ok(WebhookChange {
                object_type: event.event_category.to_ascii_uppercase(),
                object_id: event.resource_id.clone(),
                kind,
                occurred_at,
                // Sequence numbers identify the batch; the position, resource and time
                // make each event of it distinct.
                delivery_key: format!(
                    "xero:{}:{}-{}:{}:{}:{}:{}",
                    event.tenant_id,
                    payload.first_event_sequence,
                    payload.last_event_sequence,
                    index,
                    event.resource_id,
                    event.event_date_utc,
                    payload.entropy
                ),
                tenant: Some(event.tenant_id),
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(XeroDelivery::Changes(changes))
}

/// Parses `2024-06-21T01:15:39.902`, with or without a `Z`, into Unix milliseconds.
fn parse_utc_millis(value: &str) -> Option<i64> {
    let trimmed = value.trim_end_matches('Z');
    let (date, time) = trimmed.split_once('T')?;
    let mut date_parts = date.split('-').map(|p| p.parse::<i64>());
    let (year, month, day) = (
        date_parts.next()?.ok()?,
        date_parts.next()?.ok()?,
        date_parts.next()?.ok()?,
    );
    let (clock, fraction) = time.split_once('.').unwrap_or((time, "0"));
    let mut clock_parts = clock.split(':').map(|p| p.parse::<i64>());
    let (hour, minute, second) = (
        clock_parts.next()?.ok()?,
        clock_parts.next()?.ok()?,
        clock_parts.next()?.ok()?,
    );
    let millis: i64 = format!("{fraction:0<3}")[..3].parse().ok()?;
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    Some(
        ((days_from_civil(year, month, day) * 24 + hour) * 60 + minute) * 60_000
            + second * 1000
            + millis,
    )
}

/// Days since 1970-01-01 (Howard Hinnant's algorithm), so this crate needs no clock
/// or calendar dependency.
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_without_a_zone_are_utc() {
        assert_eq!(parse_utc_millis("1970-01-01T00:00:01.5"), Some(1500));
        assert_eq!(
            parse_utc_millis("2024-06-21T01:15:39.902"),
            Some(1_718_932_539_902)
        );
        assert_eq!(
            parse_utc_millis("2024-06-21T01:15:39.902Z"),
            Some(1_718_932_539_902)
        );
        assert_eq!(parse_utc_millis("yesterday"), None);
    }
}
