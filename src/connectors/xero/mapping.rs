//! Xero's native shapes (Contact, ACCREC Invoice) to canonical records and back.
//!
//! The origin stamp lives in `ContactNumber` and the invoice's `Reference`, so the
//! canonical invoice `reference` has no place in Xero and is neither read nor written.

use chrono::{DateTime, NaiveDate, TimeZone as _, Utc};
use rust_decimal::prelude::ToPrimitive as _;
use rust_decimal::Decimal;
use serde_json::{json, Map, Value};

use crate::connectors::unread::{parse_decimal, shown, Place, Unread};
use crate::connectors::ExternalRecord;
use crate::domain::{Address, Customer, FieldMap, Invoice, InvoiceStatus, LineItem};

fn text(value: &Value, key: &str) -> Option<String> {
    value
        .get(key)
        .and_then(Value::as_str)
        .map(str::to_string)
        .filter(|s| !s.trim().is_empty())
}

/// A number or a date as the text it is (Xero answers numbers as JSON numbers).
fn raw(value: &Value, key: &str) -> Option<String> {
    match value.get(key)? {
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) if !s.trim().is_empty() => Some(s.clone()),
        _ => None,
    }
}

/// `/Date(1700000000000+0000)/` to Unix milliseconds.
pub fn ms_date(value: &str) -> Option<i64> {
    let inner = value.strip_prefix("/Date(")?.strip_suffix(")/")?;
    let end = inner[1..]
        .find(['+', '-'])
        .map(|i| i + 1)
        .unwrap_or(inner.len());
    inner[..end].parse().ok()
}

/// The record's `UpdatedDateUTC` as an RFC 3339 version.
pub fn version(value: &Value) -> Option<String> {
    let ms = ms_date(value.get("UpdatedDateUTC")?.as_str()?)?;
    Utc.timestamp_millis_opt(ms)
        .single()
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
}

/// `If-Modified-Since` in the form the spec shows.
pub fn modified_since(since: DateTime<Utc>) -> String {
    since.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// `YYYY-MM-DD`, `YYYY-MM-DDThh:mm:ss` or `/Date(…)/`.
fn date(raw: &str) -> Option<NaiveDate> {
    if let Some(ms) = ms_date(raw) {
        return Utc
            .timestamp_millis_opt(ms)
            .single()
            .map(|t| t.date_naive());
    }
    let (day, time) = raw.split_at_checked(10).unwrap_or((raw, ""));
    let time_reads = time.is_empty()
        || chrono::NaiveTime::parse_from_str(time.strip_prefix('T')?, "%H:%M:%S%.f").is_ok();
    NaiveDate::parse_from_str(day, "%Y-%m-%d")
        .ok()
        .filter(|_| time_reads && day.len() == 10)
}

pub fn contact_to_record(contact: &Value) -> Option<ExternalRecord> {
    let id = text(contact, "ContactID")?;
    let archived = contact.get("ContactStatus").and_then(Value::as_str) == Some("ARCHIVED");
    let phone = contact
        .get("Phones")
        .and_then(Value::as_array)
        .and_then(|phones| {
            phones
                .iter()
                .find(|p| p.get("PhoneType").and_then(Value::as_str) == Some("DEFAULT"))
        })
        .and_then(|p| text(p, "PhoneNumber"));
    let address = contact
        .get("Addresses")
        .and_then(Value::as_array)
        .and_then(|all| {
            all.iter()
                .find(|a| a.get("AddressType").and_then(Value::as_str) == Some("STREET"))
        })
        .map(|a| Address {
            line1: text(a, "AddressLine1"),
            line2: text(a, "AddressLine2"),
            city: text(a, "City"),
            region: text(a, "Region"),
            postal_code: text(a, "PostalCode"),
            country: text(a, "Country"),
        });
    let customer = Customer {
        name: text(contact, "Name"),
        email: text(contact, "EmailAddress"),
        phone,
        tax_number: text(contact, "TaxNumber"),
        address,
        currency: text(contact, "DefaultCurrency"),
        archived,
    };
    Some(ExternalRecord {
        id,
        fields: (!archived).then(|| customer.fields()),
        version: version(contact),
        stamp: text(contact, "ContactNumber"),
        field_versions: Default::default(),
    })
}

fn status_of(raw: &str) -> Option<InvoiceStatus> {
    match raw {
        "DRAFT" => Some(InvoiceStatus::Draft),
        "SUBMITTED" => Some(InvoiceStatus::Submitted),
        "AUTHORISED" => Some(InvoiceStatus::Authorised),
        "PAID" => Some(InvoiceStatus::Paid),
        "VOIDED" => Some(InvoiceStatus::Voided),
        _ => None,
    }
}

fn status_text(status: InvoiceStatus) -> &'static str {
    match status {
        InvoiceStatus::Draft => "DRAFT",
        InvoiceStatus::Submitted => "SUBMITTED",
        InvoiceStatus::Authorised => "AUTHORISED",
        InvoiceStatus::Paid => "PAID",
        InvoiceStatus::Voided => "VOIDED",
    }
}

pub fn invoice_to_record(invoice: &Value) -> Option<ExternalRecord> {
    let id = text(invoice, "InvoiceID")?;
    let raw_status = invoice.get("Status").and_then(Value::as_str).unwrap_or("");
    let archived = raw_status == "DELETED";
    // What does not read is carried as text, for the writer to refuse (`unread.rs`).
    let mut unread = Unread::default();
    let lines = invoice.get("LineItems").and_then(Value::as_array);
    let mut line_items = Vec::new();
    for (i, l) in lines.into_iter().flatten().enumerate() {
        let mut number =
            |field, key| unread.read(Place::Line(i, field), raw(l, key), parse_decimal);
        line_items.push(LineItem {
            description: text(l, "Description"),
            quantity: number("quantity", "Quantity").unwrap_or(Decimal::ONE),
            unit_amount: number("unit_amount", "UnitAmount").unwrap_or_default(),
            tax_amount: number("tax_amount", "TaxAmount").filter(|t| !t.is_zero()),
        });
    }
    let mut number =
        |field, key| unread.read(Place::Field(field), raw(invoice, key), parse_decimal);
    let subtotal = number("subtotal", "SubTotal");
    let tax_total = number("tax_total", "TotalTax");
    let total = number("total", "Total");
    let amount_paid = number("amount_paid", "AmountPaid");
    let amount_due = number("amount_due", "AmountDue");
    let issue_date = unread.read(Place::Field("issue_date"), raw(invoice, "Date"), date);
    let due_date = unread.read(Place::Field("due_date"), raw(invoice, "DueDate"), date);
    let canonical = Invoice {
        number: text(invoice, "InvoiceNumber"),
        customer: invoice.get("Contact").and_then(|c| text(c, "ContactID")),
        issue_date,
        due_date,
        currency: text(invoice, "CurrencyCode"),
        line_items,
        subtotal,
        tax_total,
        total,
        amount_paid,
        amount_due,
        status: status_of(raw_status),
        reference: None,
    };
    let fields = (!archived).then(|| {
        let mut fields = canonical.fields();
        unread.carry(&mut fields);
        fields
    });
    Some(ExternalRecord {
        id,
        fields,
        version: version(invoice),
        stamp: text(invoice, "Reference"),
        field_versions: Default::default(),
    })
}

fn as_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// The Contact fields that carry `fields` (a `null` clears the field).
pub fn contact_body(fields: &FieldMap) -> Map<String, Value> {
    let mut body = Map::new();
    for (field, value) in fields {
        match field.as_str() {
            "name" => {
                body.insert("Name".into(), json!(as_text(value)));
            }
            "email" => {
                body.insert("EmailAddress".into(), json!(as_text(value)));
            }
            "tax_number" => {
                body.insert("TaxNumber".into(), json!(as_text(value)));
            }
            "currency" if !value.is_null() => {
                body.insert("DefaultCurrency".into(), json!(as_text(value)));
            }
            "phone" => {
                body.insert(
                    "Phones".into(),
                    json!([{"PhoneType": "DEFAULT", "PhoneNumber": as_text(value)}]),
                );
            }
            "address" => {
                let part = |k: &str| value.get(k).map(as_text).unwrap_or_default();
                body.insert(
                    "Addresses".into(),
                    json!([{
                        "AddressType": "STREET",
                        "AddressLine1": part("line1"),
                        "AddressLine2": part("line2"),
                        "City": part("city"),
                        "Region": part("region"),
                        "PostalCode": part("postal_code"),
                        "Country": part("country"),
                    }]),
                );
            }
            _ => {}
        }
    }
    body
}

/// A canonical amount as Xero's JSON number. Absent is `default`; text that is not a
/// finite number is refused, never sent as a guess (`abc` once went as 1, `NaN` as 0).
fn amount(value: Option<&Value>, default: Option<Decimal>) -> Result<Option<f64>, String> {
    let parsed = match value {
        None | Some(Value::Null) => default,
        Some(Value::String(s)) if s.trim().is_empty() => default,
        Some(Value::String(s)) => Some(parse_decimal(s).ok_or_else(|| shown(s))?),
        Some(Value::Number(n)) => Some(parse_decimal(&n.to_string()).ok_or_else(|| n.to_string())?),
        Some(other) => return Err(shown(&other.to_string())),
    };
    Ok(parsed.and_then(|d| d.to_f64()))
}

fn line_body(index: usize, line: &Value) -> Result<Value, String> {
    let number = |field: &str, what: &str, default: Option<Decimal>| {
        amount(line.get(field), default).map_err(|raw| {
            format!(
                "invoice line item {}: {what} {raw} is not a number",
                index + 1
            )
        })
    };
    // A line without a quantity is one of it, and without a price costs nothing: the
    // canonical line always has both, so these defaults cover hand-made field maps.
    let mut body = json!({
        "Description": line.get("description").map(as_text).unwrap_or_default(),
        "Quantity": number("quantity", "quantity", Some(Decimal::ONE))?,
        "UnitAmount": number("unit_amount", "unit price", Some(Decimal::ZERO))?,
        "AccountCode": "200",
    });
    if let Some(tax) = number("tax_amount", "tax amount", None)? {
        body["TaxAmount"] = json!(tax);
    }
    Ok(body)
}

/// The Invoice fields that carry `fields`. Totals, payments and status are Xero's
/// own: they flow from Xero, never to it, except a status a person chose to sync.
/// A value Xero would misread (a quantity that is not a number, a status it does not
/// have) is the reason the body cannot be made.
pub fn invoice_body(fields: &FieldMap) -> Result<Map<String, Value>, String> {
    let mut body = Map::new();
    for (field, value) in fields {
        match field.as_str() {
            "number" if !value.is_null() => {
                body.insert("InvoiceNumber".into(), json!(as_text(value)));
            }
            // An invoice always has a contact: a cleared customer is left as it is.
            "customer" if !value.is_null() => {
                body.insert("Contact".into(), json!({"ContactID": as_text(value)}));
            }
            // Xero cannot clear an invoice's dates: a cleared one is left as it is.
            "issue_date" if !value.is_null() => {
                body.insert("Date".into(), json!(as_text(value)));
            }
            // Xero cannot clear an invoice's dates: a cleared one is left as it is.
            "due_date" if !value.is_null() => {
                body.insert("DueDate".into(), json!(as_text(value)));
            }
            "currency" if !value.is_null() => {
                body.insert("CurrencyCode".into(), json!(as_text(value)));
            }
            "line_items" => {
                let lines = value
                    .as_array()
                    .into_iter()
                    .flatten()
                    .enumerate()
                    .map(|(i, l)| line_body(i, l))
                    .collect::<Result<Vec<Value>, String>>()?;
                body.insert("LineItems".into(), Value::Array(lines));
                body.insert("LineAmountTypes".into(), json!("Exclusive"));
            }
            "status" if !value.is_null() => {
                let status =
                    serde_json::from_value::<InvoiceStatus>(value.clone()).map_err(|_| {
                        format!(
                            "invoice status {} is not one Xero has (draft, submitted, \
                             authorised, paid, voided)",
                            shown(&as_text(value))
                        )
                    })?;
                body.insert("Status".into(), json!(status_text(status)));
            }
            _ => {}
        }
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_xero_dates() {
        assert_eq!(ms_date("/Date(1550793549320+0000)/"), Some(1550793549320));
        assert_eq!(ms_date("/Date(1550793549392)/"), Some(1550793549392));
        let v = json!({"UpdatedDateUTC": "/Date(1700000000123+0000)/"});
        assert_eq!(version(&v).as_deref(), Some("2023-11-14T22:13:20.123Z"));
    }

    #[test]
    fn a_contact_round_trips_through_canonical_fields() {
        let contact = json!({
            "ContactID": "c1", "ContactNumber": "crm-9", "ContactStatus": "ACTIVE",
            "Name": "Ada Lovelace", "EmailAddress": "Ada@Example.com",
            "Phones": [{"PhoneType": "DEFAULT", "PhoneNumber": "+44 1"}],
            "Addresses": [{"AddressType": "STREET", "City": "London", "Country": "gb"}],
            "UpdatedDateUTC": "/Date(1700000000000+0000)/"
        });
        let record = contact_to_record(&contact).expect("record");
        assert_eq!(record.stamp.as_deref(), Some("crm-9"));
        let fields = record.fields.expect("active");
        assert_eq!(fields["email"], json!("ada@example.com"));
        assert_eq!(fields["address"]["country"], json!("GB"));
        let body = contact_body(&fields);
        assert_eq!(body["Phones"][0]["PhoneNumber"], json!("+44 1"));
        assert_eq!(body["Addresses"][0]["City"], json!("London"));
    }

    #[test]
    fn a_deleted_invoice_reads_as_archived_and_money_is_exact() {
        let invoice = json!({"InvoiceID": "i1", "Status": "DELETED", "Total": 10.5});
        assert_eq!(invoice_to_record(&invoice).expect("record").fields, None);
        let paid = json!({"InvoiceID": "i2", "Status": "PAID", "Total": 10.50, "AmountPaid": 10.5,
            "Contact": {"ContactID": "c1"}, "Date": "2026-11-23T00:00:00"});
        let fields = invoice_to_record(&paid)
            .expect("record")
            .fields
            .expect("live");
        assert_eq!(fields["status"], json!("paid"));
        assert_eq!(fields["total"], json!("10.5"));
        assert_eq!(fields["customer"], json!("c1"));
        assert_eq!(fields["issue_date"], json!("2026-11-23"));
    }

    #[test]
    fn a_xero_value_that_does_not_read_is_carried_not_dropped() {
        let invoice = json!({"InvoiceID": "i3", "Status": "DRAFT",
            "Date": "2026-11-23T00:00:00", "DueDate": "someday",
            "LineItems": [{"Description": "x", "Quantity": "lots", "UnitAmount": 5}]});
        let fields = invoice_to_record(&invoice)
            .expect("record")
            .fields
            .expect("live");
        assert_eq!(fields["issue_date"], json!("2026-11-23"));
        assert_eq!(fields["due_date"], json!("someday"));
        assert_eq!(fields["line_items"][0]["quantity"], json!("lots"));
        assert_eq!(fields["line_items"][0]["unit_amount"], json!("5"));
        assert_eq!(
            date("/Date(1795392000000+0000)/"),
            NaiveDate::from_ymd_opt(2026, 11, 23)
        );
        assert_eq!(date("2026-11-23T10:61:00"), None);
    }
}
