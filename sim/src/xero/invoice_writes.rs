//! Creating, updating and paying an invoice, with Xero's rules on which status may
//! change into which and which invoices are locked against edits.

use rust_decimal::Decimal;
use serde_json::Value;

use super::dates;
use super::fields::{read_decimal, read_text};
use super::invoices::{Amounts, Invoice, Line, Status};
use super::schema;
use super::state::{Category, Change, Store};

fn read_lines(sent: &Value, existing: &[Line], errors: &mut Vec<String>) -> Vec<Line> {
    let Some(items) = sent.as_array() else {
        errors.push("LineItems must be a list.".into());
        return Vec::new();
    };
    let mut lines = Vec::new();
    for item in items {
        let Some(item) = item.as_object() else {
            errors.push("A line item must be a JSON object.".into());
            continue;
        };
        let mut decimal = |key: &str, default: Decimal| match item.get(key) {
            None | Some(Value::Null) => default,
            Some(v) => read_decimal(v).unwrap_or_else(|| {
                errors.push(format!("{key} must be a number."));
                default
            }),
        };
        let quantity = decimal("Quantity", Decimal::ONE);
        let unit_amount = decimal("UnitAmount", Decimal::ZERO);
        let tax_amount = decimal("TaxAmount", Decimal::ZERO);
        // A sent LineItemID keeps its line's identity; anything else is a new line.
        let id = read_text(item, "LineItemID")
            .flatten()
            .filter(|id| existing.iter().any(|l| l.id.eq_ignore_ascii_case(id)))
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        lines.push(Line {
            id,
            description: read_text(item, "Description").flatten(),
            quantity,
            unit_amount,
            tax_amount,
            account_code: read_text(item, "AccountCode").flatten(),
        });
    }
    lines
}

fn transition(from: Status, to: Status, amount_paid: Decimal) -> Result<(), String> {
    use Status::*;
    let allowed = match (from, to) {
        _ if from == to => true,
        (Draft, Submitted | Authorised | Deleted) => true,
        (Submitted, Draft | Authorised | Deleted) => true,
        (Authorised, Voided) => amount_paid.is_zero(),
        _ => false,
    };
    if allowed {
        return Ok(());
    }
    Err(match (from, to) {
        (Authorised, Voided) => {
            "This document cannot be edited as it has a payment or credit note allocated to it"
                .to_string()
        }
        (_, Paid) => "Invoice status cannot be set to PAID; record a payment instead.".into(),
        _ => "Invoice not of valid status for modification".to_string(),
    })
}

/// Creates (no `InvoiceID`) or updates (with one) an invoice in `store`. Answers its
/// index and the change, if anything changed; or the validation messages, in which
/// case nothing changed.
pub(crate) fn upsert(
    store: &mut Store,
    item: &Value,
) -> Result<(usize, Option<Change>), Vec<String>> {
    let Some(sent) = item.as_object() else {
        return Err(vec!["An invoice must be a JSON object.".into()]);
    };
    let existing = match read_text(sent, "InvoiceID").flatten() {
        Some(id) => match store.invoice_index(&id) {
            Some(index) => Some(index),
            None => {
                return Err(vec![format!(
                    "Invoice with InvoiceID {id} could not be found."
                )])
            }
        },
        None => None,
    };
    let mut errors = schema::too_long("Invoice", sent);
    match read_text(sent, "Type").flatten() {
        Some(t) if t.eq_ignore_ascii_case("ACCREC") => {}
        Some(t) => errors.push(format!(
            "Invoice Type {t} is not supported; only ACCREC (sales) invoices are."
        )),
        None if existing.is_none() => errors.push("Invoice Type must be specified.".into()),
        None => {}
    }
    let sent_contact = match sent.get("Contact") {
        None | Some(Value::Null) => None,
        Some(Value::Object(c)) => match read_text(c, "ContactID").flatten() {
            Some(id) => match store.contact_index(&id) {
                Some(i) => Some(store.contacts[i].id.clone()),
                None => {
                    errors.push(format!(
                        "The contact with ContactID {id} could not be found."
                    ));
                    None
                }
            },
            None => {
                errors.push("A Contact must be specified for this type of transaction".into());
                None
            }
        },
        Some(_) => {
            errors.push("Contact must be a JSON object.".into());
            None
        }
    };
    if existing.is_none() && sent_contact.is_none() && errors.is_empty() {
        errors.push("A Contact must be specified for this type of transaction".into());
    }
    let mut read_date = |key: &str| match read_text(sent, key) {
        None => None,
        Some(None) => Some(None),
        Some(Some(text)) => match dates::parse_day(&text) {
            Some(d) => Some(Some(d)),
            None => {
                errors.push(format!("{key} {text} is not a valid date."));
                None
            }
        },
    };
    let sent_date = read_date("Date");
    let sent_due = read_date("DueDate");
    let sent_status = match read_text(sent, "Status").flatten() {
        Some(text) => match Status::parse(&text) {
            Some(s) => Some(s),
            None => {
                errors.push(format!("Status {text} is not valid."));
                None
            }
        },
        None => None,
    };
    let sent_amounts = match read_text(sent, "LineAmountTypes").flatten() {
        Some(text) => match Amounts::parse(&text) {
            Some(a) => Some(a),
            None => {
                errors.push(format!("LineAmountTypes {text} is not valid."));
                None
            }
        },
        None => None,
    };

    let before = existing.map(|i| store.invoices[i].clone());
    let mut invoice = match &before {
        Some(b) => b.clone(),
        None => {
            let contact_id = sent_contact.clone().unwrap_or_default();
            let currency = store
                .contact_index(&contact_id)
                .and_then(|i| store.contacts[i].currency.clone())
                .unwrap_or_else(|| "USD".to_string());
            Invoice {
                id: uuid::Uuid::new_v4().to_string(),
                number: String::new(),
                reference: None,
                contact_id,
                date: chrono::Utc::now().date_naive(),
                due_date: None,
                currency,
                status: Status::Draft,
                amounts: Amounts::Exclusive,
                lines: Vec::new(),
                amount_paid: Decimal::ZERO,
                updated_ms: 0,
            }
        }
    };
    if let Some(c) = sent_contact {
        invoice.contact_id = c;
    }
    if let Some(Some(d)) = sent_date {
        invoice.date = d;
    }
    if let Some(d) = sent_due {
        invoice.due_date = d;
    }
    if let Some(c) = read_text(sent, "CurrencyCode").flatten() {
        if let Some(unknown) = schema::unknown_currency("CurrencyCode", &c) {
            errors.push(unknown);
        }
        invoice.currency = c.to_ascii_uppercase();
    }
    if let Some(r) = read_text(sent, "Reference") {
        invoice.reference = r;
    }
    if let Some(a) = sent_amounts {
        invoice.amounts = a;
    }
    if let Some(lines) = sent.get("LineItems") {
        let lines = read_lines(lines, &invoice.lines, &mut errors);
        let same = lines.len() == invoice.lines.len()
            && lines
                .iter()
                .zip(&invoice.lines)
                .all(|(a, b)| a.content() == b.content());
        if !same {
            invoice.lines = lines;
        }
    }
    let sent_number = read_text(sent, "InvoiceNumber").flatten();
    if let Some(n) = &sent_number {
        invoice.number = n.clone();
    }

    if let Some(before) = &before {
        let content_changed = invoice.contact_id != before.contact_id
            || invoice.date != before.date
            || invoice.due_date != before.due_date
            || invoice.currency != before.currency
            || invoice.reference != before.reference
            || invoice.number != before.number
            || invoice.amounts != before.amounts
            || invoice.lines != before.lines;
        if content_changed && before.status.locked() {
            errors.push(if before.amount_paid > Decimal::ZERO {
                "This document cannot be edited as it has a payment or credit note allocated to it"
                    .to_string()
            } else {
                "Invoice not of valid status for modification".to_string()
            });
        }
        if let Some(to) = sent_status {
            if let Err(e) = transition(before.status, to, before.amount_paid) {
                errors.push(e);
            } else {
                invoice.status = to;
            }
        }
    } else if let Some(to) = sent_status {
        match to {
            Status::Draft | Status::Submitted | Status::Authorised => invoice.status = to,
            _ => errors.push(format!(
                "A new invoice cannot be created with Status {}.",
                to.as_str()
            )),
        }
    }
    if !invoice.number.is_empty() {
        let clash = store.invoices.iter().any(|other| {
            other.id != invoice.id && other.number.eq_ignore_ascii_case(&invoice.number)
        });
        if clash {
            errors.push("Invoice # must be unique.".into());
        }
    }
    if invoice.totals().total < Decimal::ZERO {
        errors.push("The Total for this document must be greater than or equal to zero.".into());
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    if invoice.number.is_empty() {
        invoice.number = store.next_invoice_number();
    }
    match existing {
        Some(index) => {
            if store.invoices[index] == invoice {
                return Ok((index, None));
            }
            invoice.updated_ms = dates::next_stamp(Some(invoice.updated_ms));
            let change = Change::new(Category::Invoice, &invoice.id, false, invoice.updated_ms);
            store.invoices[index] = invoice;
            Ok((index, Some(change)))
        }
        None => {
            invoice.updated_ms = dates::next_stamp(None);
            let change = Change::new(Category::Invoice, &invoice.id, true, invoice.updated_ms);
            store.invoices.push(invoice);
            Ok((store.invoices.len() - 1, Some(change)))
        }
    }
}

/// Records a payment against an AUTHORISED invoice; PAID when nothing is left due.
pub(crate) fn pay(store: &mut Store, index: usize, amount: Decimal) -> Result<Change, String> {
    let invoice = &mut store.invoices[index];
    if invoice.status != Status::Authorised {
        return Err("Payments can only be made against Authorised documents".into());
    }
    if amount <= Decimal::ZERO {
        return Err("Payment amount must be greater than zero".into());
    }
    if amount > invoice.amount_due() {
        return Err("Payment amount exceeds the amount outstanding on this document".into());
    }
    invoice.amount_paid += amount;
    if invoice.amount_due().is_zero() {
        invoice.status = Status::Paid;
    }
    invoice.updated_ms = dates::next_stamp(Some(invoice.updated_ms));
    Ok(Change::new(
        Category::Invoice,
        &invoice.id,
        false,
        invoice.updated_ms,
    ))
}
