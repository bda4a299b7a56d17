//! Reading fields out of the JSON clients send and writing decimals back as JSON
//! numbers (the workspace's `rust_decimal` serialises to strings, Xero answers numbers).

use std::str::FromStr as _;

use rust_decimal::prelude::ToPrimitive as _;
use rust_decimal::Decimal;
use serde_json::{Map, Value};

/// A decimal as a JSON number: whole values as integers, others through `f64`, whose
/// shortest form prints money amounts exactly (`123.45`).
pub(crate) fn number(value: Decimal) -> Value {
    let value = value.normalize();
    if value.fract().is_zero() {
        if let Some(whole) = value.to_i64() {
            return Value::from(whole);
        }
    }
    value
        .to_f64()
        .and_then(serde_json::Number::from_f64)
        .map_or(Value::Null, Value::Number)
}

/// A decimal sent as a JSON number or a string.
pub(crate) fn read_decimal(value: &Value) -> Option<Decimal> {
    let text = match value {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.trim().to_string(),
        _ => return None,
    };
    Decimal::from_str(&text)
        .or_else(|_| Decimal::from_scientific(&text))
        .ok()
}

/// A text field: `None` when absent (leave it alone), `Some(None)` when null or empty
/// (clear it), `Some(Some(text))` otherwise. Numbers are taken as their text.
pub(crate) fn read_text(item: &Map<String, Value>, key: &str) -> Option<Option<String>> {
    match item.get(key)? {
        Value::Null => Some(None),
        Value::String(s) if s.trim().is_empty() => Some(None),
        Value::String(s) => Some(Some(s.trim().to_string())),
        Value::Number(n) => Some(Some(n.to_string())),
        Value::Bool(b) => Some(Some(b.to_string())),
        _ => Some(None),
    }
}

/// Puts `value` under `key` when there is one; Xero leaves empty fields out.
pub(crate) fn put_opt(object: &mut Map<String, Value>, key: &str, value: &Option<String>) {
    if let Some(v) = value {
        object.insert(key.to_string(), Value::String(v.clone()));
    }
}

/// A loose e-mail check, as strict as Xero's: one `@`, something before it, a dotted
/// domain after it, no spaces.
pub(crate) fn looks_like_email(value: &str) -> bool {
    let Some((local, domain)) = value.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && !domain.contains('@')
        && !value.chars().any(char::is_whitespace)
        && domain.split('.').count() >= 2
        && domain.split('.').all(|part| !part.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn numbers_round_trip() {
        assert_eq!(number(Decimal::new(12345, 2)), json!(123.45));
        assert_eq!(number(Decimal::new(10000, 2)), json!(100));
        assert_eq!(read_decimal(&json!(123.45)), Some(Decimal::new(12345, 2)));
        assert_eq!(read_decimal(&json!("7.5")), Some(Decimal::new(75, 1)));
        assert_eq!(read_decimal(&json!(true)), None);
    }

    #[test]
    fn emails() {
        assert!(looks_like_email("a@b.co"));
        assert!(!looks_like_email("not-an-email"));
        assert!(!looks_like_email("a@b"));
        assert!(!looks_like_email("a b@c.d"));
        assert!(!looks_like_email("@c.d"));
    }
}
