//! Xero's native shapes (Contact, ACCREC Invoice) to canonical records and back.
//!
//! The origin stamp lives in `ContactNumber` and the invoice's `Reference`, so the
//! canonical invoice `reference` has no place in Xero and is neither read nor written.

use chrono::{DateTime, NaiveDate, TimeZone as _, Utc};
use rust_decimal::Decimal;
use serde_json::{json, Map, Value};

use crate::connectors::ExternalRecord;
use crate::domain::{Address, Customer, FieldMap, Invoice, InvoiceStatus, LineItem};

fn text(value: &Value, key: &str) -> Option<String> {
    value
        .get(key)
        .and_then(Value::as_str)
        .map(str::to_string)
        .filter(|s| !s.trim().is_empty())
}

fn number(value: &Value, key: &str) -> Option<Decimal> {
    match value.get(key)? {
        Value::Number(n) => n.to_string().parse().ok(),
        Value::String(s) => s.parse().ok(),
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

/// `YYYY-MM-DD`, `YYYY-MM-DDT00:00:00` or `/Date(…)/`.
fn date(value: &Value, key: &str) -> Option<NaiveDate> {
    let raw = value.get(key)?.as_str()?;
    if let Some(ms) = ms_date(raw) {
        return Utc
            .timestamp_millis_opt(ms)
            .single()
            .map(|t| t.date_naive());
    }
    NaiveDate::parse_from_str(raw.get(..10)?, "%Y-%m-%d").ok()
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
    let line_items = invoice
        .get("LineItems")
        .and_then(Value::as_array)
        .map(|lines| {
            lines
                .iter()
                .map(|l| LineItem {
                    description: text(l, "Description"),
                    quantity: number(l, "Quantity").unwrap_or(Decimal::ONE),
                    unit_amount: number(l, "UnitAmount").unwrap_or_default(),
                    tax_amount: number(l, "TaxAmount").filter(|t| !t.is_zero()),
                })
                .collect()
        })
        .unwrap_or_default();
    let canonical = Invoice {
        number: text(invoice, "InvoiceNumber"),
        customer: invoice.get("Contact").and_then(|c| text(c, "ContactID")),
        issue_date: date(invoice, "Date"),
        due_date: date(invoice, "DueDate"),
        currency: text(invoice, "CurrencyCode"),
        line_items,
        subtotal: number(invoice, "SubTotal"),
        tax_total: number(invoice, "TotalTax"),
        total: number(invoice, "Total"),
        amount_paid: number(invoice, "AmountPaid"),
        amount_due: number(invoice, "AmountDue"),
        status: status_of(raw_status),
        reference: None,
    };
    Some(ExternalRecord {
        id,
        fields: (!archived).then(|| canonical.fields()),
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

fn decimal(value: &Value) -> Option<f64> {
    match value {
        Value::String(s) => s.parse().ok(),
        Value::Number(n) => n.as_f64(),
        _ => None,
    }
}

/// The Invoice fields that carry `fields`. Totals, payments and status are Xero's
/// own: they flow from Xero, never to it, except a status a person chose to sync.
pub fn invoice_body(fields: &FieldMap) -> Map<String, Value> {
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
                let lines: Vec<Value> = value
                    .as_array()
                    .map(|lines| {
                        lines
                            .iter()
                            .map(|l| {
                                let mut line = json!({
                                    "Description": l.get("description").map(as_text).unwrap_or_default(),
                                    "Quantity": l.get("quantity").and_then(decimal).unwrap_or(1.0),
                                    "UnitAmount": l.get("unit_amount").and_then(decimal).unwrap_or(0.0),
                                    "AccountCode": "200",
                                });
                                if let Some(tax) = l.get("tax_amount").and_then(decimal) {
                                    line["TaxAmount"] = json!(tax);
                                }
                                line
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                body.insert("LineItems".into(), Value::Array(lines));
                body.insert("LineAmountTypes".into(), json!("Exclusive"));
            }
            "status" => {
                if let Ok(status) = serde_json::from_value::<InvoiceStatus>(value.clone()) {
                    body.insert("Status".into(), json!(status_text(status)));
                }
            }
            _ => {}
        }
    }
    body
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
}
