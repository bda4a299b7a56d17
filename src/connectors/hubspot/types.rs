//! The type of each HubSpot property Tandem writes, as `mapping.rs` maps canonical
//! fields onto them, and the check of a value against it before it is sent. HubSpot
//! refuses a number property that is not a number and an option its enumeration does
//! not have, and refuses or misreads a date it cannot parse; a value Xero held that
//! Tandem could not read (`unread.rs`) is stopped here rather than written.
//!
//! Every other property Tandem writes is text, which takes any value.

use serde_json::{Map, Value};

use super::mapping::day;
use crate::connectors::unread::{parse_decimal, shown};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PropertyType {
    Text,
    Number,
    /// A calendar day: `YYYY-MM-DD`, or midnight UTC in Unix milliseconds.
    Date,
    /// An ISO 8601 date or date-time, or Unix milliseconds.
    DateTime,
    /// One of the property's options, by internal value.
    Enumeration(&'static [&'static str]),
}

/// The options of `tandem_invoice_status`: the canonical statuses.
const INVOICE_STATUSES: &[&str] = &["draft", "submitted", "authorised", "paid", "voided"];

const TYPES: &[(&str, PropertyType)] = &[
    // deals
    ("amount", PropertyType::Number),
    ("tandem_subtotal", PropertyType::Number),
    ("tandem_tax_total", PropertyType::Number),
    ("tandem_amount_paid", PropertyType::Number),
    ("tandem_amount_due", PropertyType::Number),
    ("closedate", PropertyType::DateTime),
    ("tandem_due_date", PropertyType::Date),
    (
        "tandem_invoice_status",
        PropertyType::Enumeration(INVOICE_STATUSES),
    ),
    // line items
    ("quantity", PropertyType::Number),
    ("price", PropertyType::Number),
    ("tandem_tax_amount", PropertyType::Number),
];

pub fn type_of(property: &str) -> PropertyType {
    TYPES
        .iter()
        .find(|(name, _)| *name == property)
        .map_or(PropertyType::Text, |(_, kind)| *kind)
}

fn fits(kind: PropertyType, text: &str) -> Result<(), String> {
    let reads = match kind {
        PropertyType::Text => true,
        PropertyType::Number => parse_decimal(text).is_some(),
        PropertyType::Date => {
            day(text).is_some() && (text.len() == 10 || text.bytes().all(|b| b.is_ascii_digit()))
        }
        PropertyType::DateTime => day(text).is_some(),
        PropertyType::Enumeration(options) => options.contains(&text),
    };
    if reads {
        return Ok(());
    }
    Err(match kind {
        PropertyType::Number => format!("is a number: {} is not one", shown(text)),
        PropertyType::Date => format!("is a date, YYYY-MM-DD: {} is not one", shown(text)),
        PropertyType::DateTime => format!("is a date: {} is not one", shown(text)),
        PropertyType::Enumeration(options) => format!(
            "takes one of {}: {} is not one of them",
            options.join(", "),
            shown(text)
        ),
        PropertyType::Text => String::new(),
    })
}

/// Why HubSpot would refuse or misread `properties` of `object` (`deal`, `line item
/// 2`, ...). An empty value clears a property of any type.
pub fn check(object: &str, properties: &Map<String, Value>) -> Result<(), String> {
    for (property, value) in properties {
        let Some(text) = value.as_str().filter(|t| !t.is_empty()) else {
            continue;
        };
        fits(type_of(property), text)
            .map_err(|why| format!("HubSpot's {object} property `{property}` {why}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn one(property: &str, value: &str) -> Result<(), String> {
        let properties = json!({ property: value });
        check("deal", properties.as_object().expect("an object"))
    }

    #[test]
    fn numbers_must_be_numbers() {
        for property in [
            "amount",
            "tandem_subtotal",
            "quantity",
            "price",
            "tandem_tax_amount",
        ] {
            assert_eq!(one(property, "12.50"), Ok(()), "{property}");
            assert_eq!(one(property, "-1"), Ok(()), "{property}");
            for bad in ["abc", "NaN", "Infinity", "1,5"] {
                let why = one(property, bad).expect_err(bad);
                assert!(why.contains(property) && why.contains(bad), "{why}");
            }
        }
    }

    #[test]
    fn dates_must_be_dates() {
        assert_eq!(one("tandem_due_date", "2026-11-30"), Ok(()));
        assert_eq!(one("closedate", "2026-11-30T10:00:00.000Z"), Ok(()));
        assert_eq!(one("closedate", "2026-11-30"), Ok(()));
        for bad in ["30/11/2026", "2026-02-30", "2026-11-30T10:00:00.000Z"] {
            let why = one("tandem_due_date", bad).expect_err(bad);
            assert!(
                why.contains("tandem_due_date") && why.contains("YYYY-MM-DD"),
                "{why}"
            );
        }
        assert!(one("closedate", "soon").is_err());
    }

    #[test]
    fn an_enumeration_takes_its_options_only() {
        assert_eq!(one("tandem_invoice_status", "paid"), Ok(()));
        let why = one("tandem_invoice_status", "PAID-ish").expect_err("not an option");
        assert!(why.contains("draft, submitted"), "{why}");
    }

    #[test]
    fn text_and_clearing_take_anything() {
        assert_eq!(one("dealname", "anything at all"), Ok(()));
        assert_eq!(
            one("amount", ""),
            Ok(()),
            "an empty value clears the property"
        );
    }
}
