//! Each body checked against what Xero publishes it takes (`limits.rs`, from the
//! spec), before it is sent. Xero refuses a contact name longer than 255 characters,
//! and once a whole batch call went out to learn that; worse, some values it would
//! misread rather than refuse. A body that does not fit is the change's failure, with
//! a reason naming the field, the rule and the length, never the text itself: the
//! sync log keeps the record's fields already, and a reason is shown in more places
//! (lists of failures, logs, the dashboard).

use std::str::FromStr as _;

use rust_decimal::Decimal;
use serde_json::{Map, Value};

use super::limits::{self, CURRENCY_CODES, CURRENCY_PROPERTIES, DATE_PROPERTIES};
use super::Kind;
use crate::connectors::unread::shown;

/// The schema of each object a body nests, by the property that holds it.
const NESTED: &[(&str, &str)] = &[
    ("Contact", "Contact"),
    ("Phones", "Phone"),
    ("Addresses", "Address"),
    ("LineItems", "LineItem"),
];

/// Why Xero would refuse or misread `body`, a Contact or an Invoice as sent.
pub(crate) fn check(kind: Kind, body: &Map<String, Value>) -> Result<(), String> {
    let schema = match kind {
        Kind::Contacts => "Contact",
        Kind::Invoices => "Invoice",
    };
    check_object(schema, body)?;
    if kind == Kind::Invoices {
        check_total(body)?;
    }
    Ok(())
}

fn check_object(schema: &str, body: &Map<String, Value>) -> Result<(), String> {
    for (property, value) in body {
        if let Some((_, inner)) = NESTED.iter().find(|(p, _)| p == property) {
            let objects = match value {
                Value::Array(items) => items.iter().collect(),
                other => vec![other],
            };
            for object in objects.into_iter().filter_map(Value::as_object) {
                check_object(inner, object)?;
            }
            continue;
        }
        let Some(text) = value.as_str() else {
            continue;
        };
        check_text(schema, property, text)?;
    }
    Ok(())
}

fn check_text(schema: &str, property: &str, text: &str) -> Result<(), String> {
    let key = (schema, property);
    if let Some(limit) = limits::max_length(schema, property) {
        let length = text.chars().count();
        if length > limit.max {
            return Err(format!(
                "Xero refuses a {} longer than {} characters ({schema}.{property}): the \
                 CRM's is {length} characters",
                limit.what, limit.max
            ));
        }
    }
    // An empty code leaves the contact's default currency unset.
    let currency = CURRENCY_PROPERTIES.contains(&key) && !text.is_empty();
    if currency && !CURRENCY_CODES.contains(&text) {
        return Err(format!(
            "Xero takes only the currency codes it lists ({schema}.{property}, \
             CurrencyCode): {} is not one of them",
            shown(text)
        ));
    }
    if DATE_PROPERTIES.contains(&key) && !is_day(text) {
        return Err(format!(
            "Xero reads {schema}.{property} as a date, YYYY-MM-DD: {} is not one",
            shown(text)
        ));
    }
    if schema == "Contact" && property == "ContactID" && !is_xero_id(text) {
        return Err(format!(
            "Xero ids are UUIDs: the invoice's contact id {} is not one",
            shown(text)
        ));
    }
    Ok(())
}

/// A calendar day as `YYYY-MM-DD`: four digits of year (0001 to 9999, all the form
/// holds), a month and a day that exist.
pub(crate) fn is_day(text: &str) -> bool {
    text.len() == 10
        && text.as_bytes()[..4].iter().all(u8::is_ascii_digit)
        && !text.starts_with("0000")
        && chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d").is_ok()
}

/// A Xero id as the spec's `format: uuid` writes it: 36 characters, hyphenated.
pub(crate) fn is_xero_id(id: &str) -> bool {
    id.len() == 36 && uuid::Uuid::try_parse(id).is_ok()
}

/// Xero refuses an invoice (as opposed to a credit note) whose total is below zero.
/// Lines are sent tax exclusive: the total is the line amounts plus their tax.
fn check_total(body: &Map<String, Value>) -> Result<(), String> {
    let Some(lines) = body.get("LineItems").and_then(Value::as_array) else {
        return Ok(());
    };
    let amount = |line: &Value, key: &str| {
        line.get(key)
            .and_then(Value::as_f64)
            .and_then(|n| Decimal::from_str(&n.to_string()).ok())
            .unwrap_or_default()
    };
    let total: Decimal = lines
        .iter()
        .map(|l| amount(l, "Quantity") * amount(l, "UnitAmount") + amount(l, "TaxAmount"))
        .sum();
    if total < Decimal::ZERO {
        return Err(format!(
            "Xero refuses an invoice whose total is below zero (a credit note is another \
             document): the CRM's line items come to {}",
            total.normalize()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::connectors::xero::limits::MAX_LENGTHS;
    use crate::connectors::xero::mapping::{contact_body, invoice_body};
    use crate::domain::FieldMap;

    fn fields(value: Value) -> FieldMap {
        value
            .as_object()
            .expect("an object")
            .clone()
            .into_iter()
            .collect()
    }

    fn contact(value: Value) -> Result<(), String> {
        check(Kind::Contacts, &contact_body(&fields(value)))
    }

    fn invoice(value: Value) -> Result<(), String> {
        check(Kind::Invoices, &invoice_body(&fields(value))?)
    }

    /// A body holding `text` in the property a limit is about.
    fn body_with(schema: &str, property: &str, text: &str) -> Map<String, Value> {
        let leaf = json!({ property: text });
        let body = match schema {
            "Contact" | "Invoice" => leaf,
            "Phone" => json!({"Phones": [leaf]}),
            "Address" => json!({"Addresses": [leaf]}),
            other => panic!("no body for {other}"),
        };
        body.as_object().expect("an object").clone()
    }

    #[test]
    fn each_published_length_is_the_most_xero_gets() {
        for limit in MAX_LENGTHS {
            let kind = if limit.schema == "Invoice" {
                Kind::Invoices
            } else {
                Kind::Contacts
            };
            // Multi-byte letters count as one each, as JSON Schema counts.
            let at_most = "é".repeat(limit.max);
            let body = body_with(limit.schema, limit.property, &at_most);
            assert_eq!(check(kind, &body), Ok(()), "{limit:?}");
            let over = "é".repeat(limit.max + 1);
            let why = check(kind, &body_with(limit.schema, limit.property, &over))
                .expect_err("one more is refused");
            let field = format!("{}.{}", limit.schema, limit.property);
            assert!(why.contains(&field), "{why}");
            assert!(
                why.contains(&format!("longer than {} characters", limit.max)),
                "{why}"
            );
            assert!(
                why.contains(&format!("is {} characters", limit.max + 1)),
                "{why}"
            );
            assert!(!why.contains("éé"), "the text itself is not shown: {why}");
        }
    }

    #[test]
    fn a_long_name_fails_with_the_rule_and_its_length() {
        let why =
            contact(json!({"name": "n".repeat(300), "email": "a@b.co"})).expect_err("refused");
        assert_eq!(
            why,
            "Xero refuses a contact name longer than 255 characters (Contact.Name): the \
             CRM's is 300 characters"
        );
        let address = json!({"address": {"postal_code": "9".repeat(51), "city": "Wellington"}});
        let why = contact(address).expect_err("refused");
        assert!(why.contains("Address.PostalCode"), "{why}");
    }

    #[test]
    fn a_currency_must_be_one_xero_lists() {
        assert_eq!(contact(json!({"currency": "NZD"})), Ok(()));
        let unset = json!({"DefaultCurrency": ""});
        assert_eq!(
            check(Kind::Contacts, unset.as_object().expect("an object")),
            Ok(())
        );
        let why = contact(json!({"currency": "EURO"})).expect_err("refused");
        assert!(
            why.contains("Contact.DefaultCurrency") && why.contains("`EURO`"),
            "{why}"
        );
        let why = invoice(json!({"currency": "XBT"})).expect_err("refused");
        assert!(why.contains("Invoice.CurrencyCode"), "{why}");
    }

    #[test]
    fn dates_are_days_xero_can_read() {
        assert_eq!(invoice(json!({"issue_date": "2026-11-23"})), Ok(()));
        for bad in [
            "2026-02-30",
            "23/11/2026",
            "+10000-01-01",
            "0000-01-01",
            "2026-11-23T00",
        ] {
            let why = invoice(json!({"due_date": bad})).expect_err(bad);
            assert!(
                why.contains("Invoice.DueDate") && why.contains(bad),
                "{why}"
            );
        }
    }

    #[test]
    fn numbers_that_are_not_numbers_are_refused_not_guessed() {
        let line = |q: &str, p: &str| {
            json!({"line_items": [
                {"description": "ok", "quantity": "1", "unit_amount": "1"},
                {"description": "bad", "quantity": q, "unit_amount": p},
            ]})
        };
        assert_eq!(invoice(line("2", "10.5")), Ok(()));
        assert_eq!(
            invoice(line("abc", "10")),
            Err("invoice line item 2: quantity `abc` is not a number".into())
        );
        for price in ["NaN", "Infinity", "-inf", "1,5", ""] {
            let result = invoice(line("1", price));
            if price.is_empty() {
                assert_eq!(result, Ok(()), "an empty price is no price");
            } else {
                let why = result.expect_err(price);
                assert!(why.contains("unit price") && why.contains(price), "{why}");
            }
        }
        let why = invoice(
            json!({"line_items": [{"quantity": "1", "unit_amount": "1", "tax_amount": "x"}]}),
        )
        .expect_err("tax");
        assert!(why.contains("line item 1: tax amount `x`"), "{why}");
    }

    #[test]
    fn an_invoice_below_zero_is_refused_and_a_credit_line_is_not() {
        let lines = |q: &str| {
            json!({"line_items": [
                {"quantity": "1", "unit_amount": "100"},
                {"quantity": q, "unit_amount": "50"},
            ]})
        };
        assert_eq!(invoice(lines("-1")), Ok(()), "a discount line is fine");
        let why = invoice(lines("-3")).expect_err("below zero");
        assert!(why.contains("below zero") && why.contains("-50"), "{why}");
    }

    #[test]
    fn a_status_xero_does_not_have_is_refused() {
        assert_eq!(invoice(json!({"status": "authorised"})), Ok(()));
        let why = invoice(json!({"status": "won"})).expect_err("refused");
        assert!(why.contains("status `won`"), "{why}");
    }

    #[test]
    fn an_invoices_contact_is_named_by_a_uuid() {
        let id = "297c2dc5-cc47-4afd-8ec8-74990b8761e9";
        assert_eq!(invoice(json!({"customer": id})), Ok(()));
        let why = invoice(json!({"customer": "crm-42"})).expect_err("refused");
        assert!(why.contains("`crm-42`") && why.contains("UUID"), "{why}");
        assert!(is_xero_id(id));
        for bad in [
            "",
            "297c2dc5cc474afd8ec874990b8761e9",
            "{297c2dc5-cc47-4afd-8ec8-74990b8761e9}",
            "x",
        ] {
            assert!(!is_xero_id(bad), "{bad}");
        }
    }
}
