//! Canonical records as field maps: the shape the decision works on, whatever the
//! entity. Each field holds normalised JSON, so equal content is equal bytes.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

/// A record's fields by canonical name. Absent fields are left out, never `null`, so
/// "empty" has one representation.
pub type FieldMap = BTreeMap<String, Value>;

/// Serialises a canonical struct into a field map, dropping absent values.
pub fn to_fields<T: Serialize>(record: &T) -> FieldMap {
    match serde_json::to_value(record) {
        Ok(Value::Object(map)) => map.into_iter().filter(|(_, v)| !is_absent(v)).collect(),
        _ => FieldMap::new(),
    }
}

/// `null`, an empty string, an empty list and an empty object all mean "not set".
pub fn is_absent(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Array(items) => items.is_empty(),
        Value::Object(map) => map.is_empty(),
        _ => false,
    }
}

/// Trims a string and turns an empty one into `None`.
pub fn clean(value: Option<String>) -> Option<String> {
    value
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}
