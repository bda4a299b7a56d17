//! What Xero publishes it takes (`specs/xero_accounting.yaml`) in the fields the
//! simulator stores, enforced as Xero enforces it: a value over a limit, or a currency
//! code Xero does not list, is a validation error and nothing is written. The table
//! is the simulator's own, apart from the engine's, so a check the engine forgot shows
//! as Xero's refusal; `tests/it/xero_spec_validator.rs` holds it to the spec.

use serde_json::{Map, Value};

/// `(schema, property, most characters)`, from the spec's `maxLength`.
pub const MAX_LENGTHS: &[(&str, &str, usize)] = &[
    ("Contact", "Name", 255),
    ("Contact", "ContactNumber", 50),
    ("Contact", "EmailAddress", 255),
    ("Contact", "TaxNumber", 50),
    ("Phone", "PhoneNumber", 50),
    ("Phone", "PhoneAreaCode", 10),
    ("Phone", "PhoneCountryCode", 20),
    ("Address", "AddressLine1", 500),
    ("Address", "AddressLine2", 500),
    ("Address", "AddressLine3", 500),
    ("Address", "AddressLine4", 500),
    ("Address", "City", 255),
    ("Address", "Region", 255),
    ("Address", "PostalCode", 50),
    ("Address", "Country", 50),
    ("Address", "AttentionTo", 255),
    ("Invoice", "InvoiceNumber", 255),
];

/// `components/schemas/CurrencyCode`.
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

/// The objects a sent item nests, by the property that holds them.
const NESTED: &[(&str, &str)] = &[("Phones", "Phone"), ("Addresses", "Address")];

/// One message for each property of `item` (a `schema` object as sent, with its
/// phones and addresses) longer than Xero takes.
pub(crate) fn too_long(schema: &str, item: &Map<String, Value>) -> Vec<String> {
    let mut errors = Vec::new();
    for (property, value) in item {
        if let Some((_, inner)) = NESTED.iter().find(|(p, _)| p == property) {
            for nested in value.as_array().into_iter().flatten() {
                if let Some(nested) = nested.as_object() {
                    errors.extend(too_long(inner, nested));
                }
            }
            continue;
        }
        let Some(text) = value.as_str() else { continue };
        let limit = MAX_LENGTHS
            .iter()
            .find(|(s, p, _)| *s == schema && p == property);
        if let Some((_, _, max)) = limit {
            if text.trim().chars().count() > *max {
                errors.push(format!(
                    "{property} must not be more than {max} characters long."
                ));
            }
        }
    }
    errors
}

/// The message for a currency code Xero does not list, if `code` is one.
pub(crate) fn unknown_currency(property: &str, code: &str) -> Option<String> {
    let known = CURRENCY_CODES
        .iter()
        .any(|c| c.eq_ignore_ascii_case(code.trim()));
    (!known).then(|| format!("{property} {code} is not a valid currency code."))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn each_limit_refuses_one_character_more() {
        for (schema, property, max) in MAX_LENGTHS {
            let at_most = json!({ *property: "é".repeat(*max) });
            let over = json!({ *property: "é".repeat(max + 1) });
            let wrap = |leaf: Value| match *schema {
                "Phone" => json!({"Phones": [leaf]}),
                "Address" => json!({"Addresses": [leaf]}),
                _ => leaf,
            };
            let top = if *schema == "Invoice" {
                "Invoice"
            } else {
                "Contact"
            };
            let sent = |v: Value| wrap(v).as_object().cloned().unwrap_or_default();
            assert!(
                too_long(top, &sent(at_most)).is_empty(),
                "{schema}.{property}"
            );
            assert_eq!(too_long(top, &sent(over)).len(), 1, "{schema}.{property}");
        }
    }

    #[test]
    fn a_contact_or_invoice_over_a_limit_is_refused_and_nothing_is_written() {
        let mut store = crate::xero::state::Store::default();
        let long = json!({"Name": "n".repeat(256), "EmailAddress": "a@b.co"});
        let errors = crate::xero::contact_writes::upsert(&mut store, &long).expect_err("refused");
        assert_eq!(
            errors,
            vec!["Name must not be more than 255 characters long."]
        );
        let postal = json!({"Name": "Ada", "Addresses": [{"PostalCode": "9".repeat(51)}]});
        assert!(crate::xero::contact_writes::upsert(&mut store, &postal).is_err());
        let currency = json!({"Name": "Ada", "DefaultCurrency": "EURO"});
        assert!(crate::xero::contact_writes::upsert(&mut store, &currency).is_err());
        assert!(store.contacts.is_empty());
        let fits = json!({"Name": "n".repeat(255), "DefaultCurrency": "eur"});
        assert!(crate::xero::contact_writes::upsert(&mut store, &fits).is_ok());
    }

    #[test]
    fn currencies_are_the_listed_ones() {
        assert_eq!(unknown_currency("CurrencyCode", "nzd"), None);
        assert!(unknown_currency("CurrencyCode", "EURO").is_some());
    }
}
