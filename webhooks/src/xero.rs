//! Xero: `x-xero-signature` is base64(HMAC-SHA256(raw body)) keyed with the webhook
//! key's UTF-8 bytes (not base64-decoded). No timestamp: replays are caught by delivery
//! de-duplication. Payloads batch `events`; an empty batch is the intent-to-receive
//! handshake, answered 200 when signed correctly and 401 otherwise.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde::Deserialize;

use super::change::{parse_json, ChangeKind, ParseError, WebhookChange};
use super::{hmacs, matches_any, quoted, VerifyError, WebhookSecret};

pub const SIGNATURE_HEADER: &str = "x-xero-signature";

pub fn verify(
    body: &[u8],
    signature: Option<&str>,
    secrets: &[WebhookSecret],
) -> Result<(), VerifyError> {
    let keys: Vec<&[u8]> = secrets
        .iter()
        .filter(|s| !s.is_empty())
        .map(WebhookSecret::bytes)
        .collect();
    if keys.is_empty() {
        return Err(VerifyError::NoSecret);
    }
    let signature = signature.ok_or(VerifyError::MissingHeader(SIGNATURE_HEADER))?;
    let offered = STANDARD
        .decode(signature.trim())
        .map_err(|_| VerifyError::MalformedHeader(SIGNATURE_HEADER))?;
    if matches_any(&hmacs(&keys, &[body]), &offered) {
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
            // The id goes into API paths (`/Contacts/{id}`); Xero documents it as a
            // UUID, and nothing else is taken.
            if !is_uuid(&event.resource_id) {
                return Err(ParseError::Invalid(format!(
                    "resourceId {} is not a UUID",
                    quoted(&event.resource_id)
                )));
            }
            // Xero's examples carry no zone suffix; the time is UTC.
            let occurred_at = parse_utc_millis(&event.event_date_utc).ok_or_else(|| {
                ParseError::Invalid(format!(
                    "eventDateUtc {} is not a date-time",
                    quoted(&event.event_date_utc)
                ))
            })?;
            let kind = match event.event_type.to_ascii_uppercase().as_str() {
                "CREATE" | "UPDATE" => ChangeKind::Upsert,
                "DELETE" => ChangeKind::Delete,
                _ => {
                    return Err(ParseError::Invalid(format!(
                        "unknown eventType {}",
                        quoted(&event.event_type)
                    )))
                }
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
                // Xero does not say who made a change.
                by_this_app: false,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(XeroDelivery::Changes(changes))
}

/// `8-4-4-4-12` hexadecimal digits, either case.
fn is_uuid(value: &str) -> bool {
    let groups: Vec<&str> = value.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(group, len)| group.len() == len && group.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Parses `2024-06-21T01:15:39.902` (fraction of 1 to 9 digits or none, an optional
/// `Z`) into Unix milliseconds. Every field is digits of a fixed width and is checked
/// against the calendar, so no input can overflow the arithmetic below.
fn parse_utc_millis(value: &str) -> Option<i64> {
    let value = value.strip_suffix('Z').unwrap_or(value);
    let (date, time) = value.split_once('T')?;
    let [year, month, day] = fixed_fields(date, '-', [4, 2, 2])?;
    let (clock, fraction) = match time.split_once('.') {
        Some((clock, fraction)) => (clock, Some(fraction)),
        None => (time, None),
    };
    let [hour, minute, second] = fixed_fields(clock, ':', [2, 2, 2])?;
    let millis = match fraction {
        None => 0,
        Some(digits) => {
            if !(1..=9).contains(&digits.len()) || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            // Pad to three digits, keep the first three: ".9" is 900 ms, ".9021" 902.
            format!("{:0<3}", &digits[..digits.len().min(3)])
                .parse::<i64>()
                .ok()?
        }
    };
    if !(1..=9999).contains(&year)
        || !(1..=12).contains(&month)
        || !(1..=days_in_month(year, month)).contains(&day)
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

/// The numbers of `text` split on `separator`, each of exactly the given width in
/// ASCII digits.
fn fixed_fields<const N: usize>(
    text: &str,
    separator: char,
    widths: [usize; N],
) -> Option<[i64; N]> {
    let mut parts = text.split(separator);
    let mut fields = [0i64; N];
    for (field, width) in fields.iter_mut().zip(widths) {
        let part = parts.next()?;
        if part.len() != width || !part.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        *field = part.parse().ok()?;
    }
    parts.next().is_none().then_some(fields)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
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
    use proptest::prelude::*;

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
        assert_eq!(
            parse_utc_millis("2024-06-21T01:15:39.9020000"),
            Some(1_718_932_539_902)
        );
        assert_eq!(
            parse_utc_millis("2024-06-21T01:15:39"),
            Some(1_718_932_539_000)
        );
        assert_eq!(
            parse_utc_millis("2024-02-29T00:00:00"),
            Some(1_709_164_800_000)
        );
        assert_eq!(
            parse_utc_millis("0001-01-01T00:00:00"),
            Some(-62_135_596_800_000)
        );
        assert_eq!(
            parse_utc_millis("9999-12-31T23:59:59.999"),
            Some(253_402_300_799_999)
        );
    }

    #[test]
    fn anything_but_a_calendar_date_time_is_refused() {
        for bad in [
            "yesterday",
            "",
            "T",
            "2024-06-21",
            "2024-06-21T",
            "2023-02-29T00:00:00",
            "2024-04-31T00:00:00",
            "2024-13-01T00:00:00",
            "2024-00-01T00:00:00",
            "0000-01-01T00:00:00",
            "2024-06-21T24:00:00",
            "2024-06-21T-1:00:00",
            "2024-06-21T01:-5:00",
            "+024-06-21T01:15:39",
            "9223372036854775807-01-01T00:00:00",
            "2024-06-21T01:15:39.",
            "2024-06-21T01:15:39.1234567890",
            "2024-06-21T01:15:39.éé",
            "2024-06-21T01:15:39.9é",
            "2024-06-21T01:15:39:00",
            "2024-06-21T01:15:39ZZ",
            "２０２４-06-21T01:15:39",
            // Found by fuzzing the earlier parser: a negative second overflowed.
            "20252-2-02T00:44:-922337203685477580.309829",
            "2024-02-02T00:44:-922337203685477580.309829",
        ] {
            assert_eq!(parse_utc_millis(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn resource_ids_are_uuids() {
        assert!(is_uuid("717f2bfc-c6d4-41fd-b238-3f2f0c0cf777"));
        assert!(is_uuid("717F2BFC-C6D4-41FD-B238-3F2F0C0CF777"));
        for bad in [
            "",
            "c1",
            "717f2bfc-c6d4-41fd-b238-3f2f0c0cf77",
            "717f2bfc-c6d4-41fd-b238-3f2f0c0cf7777",
            "717f2bfc-c6d4-41fd-b238-3f2f0c0cf77g",
            "717f2bfcc6d441fdb2383f2f0c0cf777",
            "../../Invoices/717f2bfc-c6d4-41fd",
            "717f2bfc-c6d4-41fd-b238-3f2f0c0cf777/x",
        ] {
            assert!(!is_uuid(bad), "{bad:?}");
        }
    }

    proptest! {
        #[test]
        fn every_valid_date_time_round_trips(
            year in 1i64..=9999,
            month in 1i64..=12,
            day in 1i64..=31,
            hour in 0i64..=23,
            minute in 0i64..=59,
            second in 0i64..=59,
            millis in 0i64..=999,
        ) {
            let text = format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}.{millis:03}");
            let parsed = parse_utc_millis(&text);
            if day > days_in_month(year, month) {
                prop_assert_eq!(parsed, None);
            } else {
                let midnight = parse_utc_millis(&format!("{year:04}-{month:02}-{day:02}T00:00:00"));
                prop_assert_eq!(
                    parsed,
                    midnight.map(|m| m + ((hour * 60 + minute) * 60 + second) * 1000 + millis)
                );
            }
        }

        #[test]
        fn the_next_calendar_day_is_one_day_later(
            year in 1i64..=9998,
            month in 1i64..=12,
            day in 1i64..=31,
        ) {
            prop_assume!(day <= days_in_month(year, month));
            let next = if day < days_in_month(year, month) {
                (year, month, day + 1)
            } else if month < 12 {
                (year, month + 1, 1)
            } else {
                (year + 1, 1, 1)
            };
            prop_assert_eq!(
                days_from_civil(next.0, next.1, next.2),
                days_from_civil(year, month, day) + 1
            );
        }

        #[test]
        fn any_text_is_judged_without_panicking(text in "\\PC{0,40}") {
            if let Some(millis) = parse_utc_millis(&text) {
                prop_assert!((-62_135_596_800_000..=253_402_300_800_999).contains(&millis));
            }
        }
    }
}
