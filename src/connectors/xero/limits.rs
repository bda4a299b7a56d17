//! What Xero's published schema (`specs/xero_accounting.yaml`) allows in the fields
//! Tandem writes: the longest text of each, and the currency codes.
//!
//! A table rather than the spec read at start or by a build script: the spec is 25,000
//! lines of YAML and the engine needs a dozen numbers and one list from it. The tests
//! below read the spec and fail when the table and the spec disagree, or when a field
//! the connector writes has a limit the table does not hold.

/// The most characters (Unicode scalar values, as JSON Schema's `maxLength` counts)
/// Xero takes in one property.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MaxLength {
    /// The spec's schema (`components/schemas/<schema>`).
    pub schema: &'static str,
    pub property: &'static str,
    /// What a person calls it.
    pub what: &'static str,
    pub max: usize,
}

const fn limit(
    schema: &'static str,
    property: &'static str,
    what: &'static str,
    max: usize,
) -> MaxLength {
    MaxLength {
        schema,
        property,
        what,
        max,
    }
}

pub const CONTACT_NAME: MaxLength = limit("Contact", "Name", "contact name", 255);
/// The origin stamp: the CRM id a contact came from.
pub const CONTACT_NUMBER: MaxLength = limit("Contact", "ContactNumber", "contact number", 50);
pub const EMAIL_ADDRESS: MaxLength = limit("Contact", "EmailAddress", "e-mail address", 255);
pub const TAX_NUMBER: MaxLength = limit("Contact", "TaxNumber", "tax number", 50);
pub const PHONE_NUMBER: MaxLength = limit("Phone", "PhoneNumber", "phone number", 50);
pub const ADDRESS_LINE1: MaxLength = limit("Address", "AddressLine1", "address line 1", 500);
pub const ADDRESS_LINE2: MaxLength = limit("Address", "AddressLine2", "address line 2", 500);
pub const ADDRESS_LINE3: MaxLength = limit("Address", "AddressLine3", "address line 3", 500);
pub const ADDRESS_LINE4: MaxLength = limit("Address", "AddressLine4", "address line 4", 500);
pub const CITY: MaxLength = limit("Address", "City", "city", 255);
pub const REGION: MaxLength = limit("Address", "Region", "region", 255);
pub const POSTAL_CODE: MaxLength = limit("Address", "PostalCode", "postal code", 50);
pub const COUNTRY: MaxLength = limit("Address", "Country", "country", 50);
pub const INVOICE_NUMBER: MaxLength = limit("Invoice", "InvoiceNumber", "invoice number", 255);

/// Every limit, by schema and property.
pub const MAX_LENGTHS: &[MaxLength] = &[
    CONTACT_NAME,
    CONTACT_NUMBER,
    EMAIL_ADDRESS,
    TAX_NUMBER,
    PHONE_NUMBER,
    ADDRESS_LINE1,
    ADDRESS_LINE2,
    ADDRESS_LINE3,
    ADDRESS_LINE4,
    CITY,
    REGION,
    POSTAL_CODE,
    COUNTRY,
    INVOICE_NUMBER,
];

/// The limit of `property` in `schema`, if Xero publishes one.
pub fn max_length(schema: &str, property: &str) -> Option<&'static MaxLength> {
    MAX_LENGTHS
        .iter()
        .find(|l| l.schema == schema && l.property == property)
}

/// `components/schemas/CurrencyCode`: the codes Xero takes as a contact's
/// `DefaultCurrency` and an invoice's `CurrencyCode`, in the spec's order.
pub const CURRENCY_CODES: &[&str] = &[
    "AED", "AFN", "ALL", "AMD", "ANG", "AOA", "ARS", "AUD", "AWG", "AZN", "BAM", "BBD", "BDT",
    "BGN", "BHD", "BIF", "BMD", "BND", "BOB", "BRL", "BSD", "BTN", "BWP", "BYN", "BYR", "BZD",
    "CAD", "CDF", "CHF", "CLF", "CLP", "CNY", "COP", "CRC", "CUC", "CUP", "CVE", "CZK", "DJF",
    "DKK", "DOP", "DZD", "EEK", "EGP", "ERN", "ETB", "EUR", "FJD", "FKP", "GBP", "GEL", "GHS",
    "GIP", "GMD", "GNF", "GTQ", "GYD", "HKD", "HNL", "HRK", "HTG", "HUF", "IDR", "ILS", "INR",
    "IQD", "IRR", "ISK", "JMD", "JOD", "JPY", "KES", "KGS", "KHR", "KMF", "KPW", "KRW", "KWD",
    "KYD", "KZT", "LAK", "LBP", "LKR", "LRD", "LSL", "LTL", "LVL", "LYD", "MAD", "MDL", "MGA",
    "MKD", "MMK", "MNT", "MOP", "MRO", "MRU", "MUR", "MVR", "MWK", "MXN", "MXV", "MYR", "MZN",
    "NAD", "NGN", "NIO", "NOK", "NPR", "NZD", "OMR", "PAB", "PEN", "PGK", "PHP", "PKR", "PLN",
    "PYG", "QAR", "RON", "RSD", "RUB", "RWF", "SAR", "SBD", "SCR", "SDG", "SEK", "SGD", "SHP",
    "SKK", "SLE", "SLL", "SOS", "SRD", "STD", "STN", "SVC", "SYP", "SZL", "THB", "TJS", "TMT",
    "TND", "TOP", "TRY", "TTD", "TWD", "TZS", "UAH", "UGX", "USD", "UYU", "UZS", "VEF", "VES",
    "VND", "VUV", "WST", "XAF", "XCD", "XOF", "XPF", "YER", "ZAR", "ZMW", "ZMK", "ZWD",
];

/// The properties the connector writes whose schema is `CurrencyCode`.
pub const CURRENCY_PROPERTIES: &[(&str, &str)] =
    &[("Contact", "DefaultCurrency"), ("Invoice", "CurrencyCode")];

/// The properties the connector writes that the spec marks `x-is-msdate`; Tandem
/// sends them as `YYYY-MM-DD`, the form the spec's descriptions give.
pub const DATE_PROPERTIES: &[(&str, &str)] = &[("Invoice", "Date"), ("Invoice", "DueDate")];

/// The properties the connector writes that the spec marks `format: uuid`.
pub const UUID_PROPERTIES: &[(&str, &str)] = &[("Contact", "ContactID"), ("Invoice", "InvoiceID")];

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use serde_json::{json, Value};

    use super::*;
    use crate::connectors::xero::mapping::{contact_body, invoice_body};
    use crate::domain::FieldMap;

    const SPEC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/specs/xero_accounting.yaml");

    fn spec() -> Value {
        let text = std::fs::read_to_string(SPEC).expect("the vendored Xero spec");
        serde_yaml::from_str(&text).expect("the Xero spec is YAML")
    }

    fn schema<'a>(spec: &'a Value, name: &str) -> &'a Value {
        &spec["components"]["schemas"][name]
    }

    #[test]
    fn each_max_length_is_the_specs() {
        let spec = spec();
        for limit in MAX_LENGTHS {
            let published = schema(&spec, limit.schema)["properties"][limit.property]["maxLength"]
                .as_u64()
                .unwrap_or_else(|| panic!("{}.{} has no maxLength", limit.schema, limit.property));
            assert_eq!(
                limit.max as u64, published,
                "{}.{}: the table says {}, the spec {published}",
                limit.schema, limit.property, limit.max
            );
        }
    }

    #[test]
    fn the_currency_codes_are_the_specs() {
        let spec = spec();
        let published: Vec<&str> = schema(&spec, "CurrencyCode")["enum"]
            .as_array()
            .expect("CurrencyCode is an enum")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert_eq!(CURRENCY_CODES, published.as_slice());
    }

    /// Each property of a body the connector builds, with the schema it belongs to.
    fn written(
        spec: &Value,
        schema_name: &str,
        body: &Value,
        out: &mut BTreeSet<(String, String)>,
    ) {
        let Some(object) = body.as_object() else {
            return;
        };
        let properties = &schema(spec, schema_name)["properties"];
        for (property, value) in object {
            out.insert((schema_name.to_string(), property.clone()));
            let declared = &properties[property.as_str()];
            let reference = declared["$ref"]
                .as_str()
                .or_else(|| declared["items"]["$ref"].as_str());
            let Some(inner) = reference.and_then(|r| r.rsplit('/').next()) else {
                continue;
            };
            match value {
                Value::Array(items) => items.iter().for_each(|i| written(spec, inner, i, out)),
                other => written(spec, inner, other, out),
            }
        }
    }

    fn everything_written() -> BTreeSet<(String, String)> {
        let mut customer = FieldMap::new();
        for field in ["name", "email", "tax_number", "currency", "phone"] {
            customer.insert(field.into(), json!("X"));
        }
        customer.insert("currency".into(), json!("NZD"));
        customer.insert(
            "address".into(),
            json!({"line1": "1", "line2": "2", "city": "c", "region": "r", "postal_code": "p", "country": "NZ"}),
        );
        let mut contact = Value::Object(contact_body(&customer));
        contact["ContactNumber"] = json!("stamp");
        contact["ContactID"] = json!("00000000-0000-0000-0000-000000000000");
        let mut invoice = FieldMap::new();
        invoice.insert("number".into(), json!("INV-1"));
        invoice.insert(
            "customer".into(),
            json!("00000000-0000-0000-0000-000000000000"),
        );
        invoice.insert("issue_date".into(), json!("2026-11-23"));
        invoice.insert("due_date".into(), json!("2026-12-23"));
        invoice.insert("currency".into(), json!("NZD"));
        invoice.insert("status".into(), json!("draft"));
        invoice.insert(
            "line_items".into(),
            json!([{"description": "d", "quantity": "1", "unit_amount": "2", "tax_amount": "0.3"}]),
        );
        let mut invoice = Value::Object(invoice_body(&invoice).expect("an invoice body"));
        invoice["Reference"] = json!("stamp");
        invoice["InvoiceID"] = json!("00000000-0000-0000-0000-000000000000");
        let spec = spec();
        let mut out = BTreeSet::new();
        written(&spec, "Contact", &contact, &mut out);
        written(&spec, "Invoice", &invoice, &mut out);
        out
    }

    /// A field the connector starts writing with a limit in the spec fails here until
    /// the table (and so the outbound check) knows it.
    #[test]
    fn every_limit_on_what_the_connector_writes_is_in_the_table() {
        let spec = spec();
        let written = everything_written();
        assert!(written.contains(&("Address".into(), "PostalCode".into())));
        for (schema_name, property) in &written {
            let declared = &schema(&spec, schema_name)["properties"][property.as_str()];
            let key = (schema_name.as_str(), property.as_str());
            if declared["maxLength"].is_u64() {
                assert!(
                    max_length(schema_name, property).is_some(),
                    "{schema_name}.{property} has a maxLength the table lacks"
                );
            }
            if declared["$ref"].as_str() == Some("#/components/schemas/CurrencyCode") {
                assert!(
                    CURRENCY_PROPERTIES.contains(&key),
                    "{key:?} is a currency code"
                );
            }
            if declared["x-is-msdate"].as_bool() == Some(true) {
                assert!(DATE_PROPERTIES.contains(&key), "{key:?} is a date");
            }
            if declared["format"].as_str() == Some("uuid") {
                assert!(UUID_PROPERTIES.contains(&key), "{key:?} is a UUID");
            }
        }
    }
}
