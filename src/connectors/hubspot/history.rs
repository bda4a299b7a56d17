//! When each canonical field last changed, read from HubSpot's property history.
//!
//! A record's `hs_lastmodifieddate` moves with any edit, so under `last_write_wins` it
//! cannot tell which of two clashing edits to one field came later when another field
//! changed after. HubSpot keeps each property's past values, and reads answer them on
//! request:
//!
//! - `GET /crm/v3/objects/{type}/{id}?propertiesWithHistory=a,b` (a comma list, as
//!   `properties`) and `POST /crm/v3/objects/{type}/batch/read` with
//!   `"propertiesWithHistory": ["a", "b"]` in the body
//!   (<https://developers.hubspot.com/docs/api-reference/2026-03/crm/objects/objects/get-object>,
//!   <https://developers.hubspot.com/docs/api-reference/latest/crm/objects/objects/batch/get-objects>).
//!   Properties the object does not have are ignored.
//! - The answer adds `"propertiesWithHistory": {"<property>": [{"value", "timestamp",
//!   "sourceType", "sourceId", "updatedByUserId"?}, …]}` (an answer is quoted in
//!   HubSpot/hubspot-api-nodejs#154), newest value first in the answers we have seen
//!   recorded. Only the newest time is used here, taken as the latest of all listed,
//!   so the order does not matter.
//! - Asking for history lowers what one batch read may take from 100 inputs to 50:
//!   more answers 400 "The maximum number of inputs supported in a batch request for
//!   property histories is 50" (activepieces/activepieces#9359,
//!   PipedreamHQ/pipedream#8462).
//! - Search answers no history (HubSpot/hubspot-api-python#244), and write answers
//!   carry none: records listed by the poller, found by a look-up or returned by a write
//!   have no field times, and a field without one falls back to the record's version.
//!
//! History payloads are large, so only the properties behind the fields that need a
//! time are asked for: those that sync both ways under `last_write_wins` (`wiring.rs`).

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::Value;

use super::batch::MAX_ITEMS;
use super::mapping::{customer_field_properties, deal_field_properties, CustomerObject};

/// The inputs a batch read may name when it asks for history.
pub const MAX_ITEMS_WITH_HISTORY: usize = 50;

/// The canonical fields whose change times a read asks for, each with the HubSpot
/// properties behind it (a contact's name is `firstname` and `lastname`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FieldHistory {
    fields: Vec<(String, &'static [&'static str])>,
}

impl FieldHistory {
    /// For customers held as `kind`. Fields HubSpot holds no property for are left
    /// out.
    pub fn customers(kind: CustomerObject, fields: &[String]) -> Self {
        Self::of(fields, |field| customer_field_properties(kind, field))
    }

    /// For invoices (deals). The customer and line items are associations, which
    /// have no property history: they are left out.
    pub fn deals(fields: &[String]) -> Self {
        Self::of(fields, deal_field_properties)
    }

    fn of(fields: &[String], properties: impl Fn(&str) -> &'static [&'static str]) -> Self {
        Self {
            fields: fields
                .iter()
                .map(|field| (field.clone(), properties(field)))
                .filter(|(_, properties)| !properties.is_empty())
                .collect(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// The properties to ask history for, each once.
    pub fn properties(&self) -> Vec<&'static str> {
        let mut out: Vec<&'static str> = Vec::new();
        for property in self.fields.iter().flat_map(|(_, p)| p.iter()) {
            if !out.contains(property) {
                out.push(property);
            }
        }
        out
    }

    /// How many objects one batch read may ask for.
    pub fn batch_limit(&self) -> usize {
        if self.is_empty() {
            MAX_ITEMS
        } else {
            MAX_ITEMS_WITH_HISTORY
        }
    }

    /// Each field's latest change in `object`'s `propertiesWithHistory`, RFC 3339 with
    /// milliseconds: the latest of its properties' (a contact's name changed when
    /// either its first or its last name did). A field none of whose properties has a
    /// history is left out.
    pub fn versions(&self, object: &Value) -> BTreeMap<String, String> {
        let Some(history) = object
            .get("propertiesWithHistory")
            .and_then(Value::as_object)
        else {
            return BTreeMap::new();
        };
        self.fields
            .iter()
            .filter_map(|(field, properties)| {
                let latest = properties
                    .iter()
                    .filter_map(|p| history.get(*p).and_then(Value::as_array))
                    .flatten()
                    .filter_map(|entry| entry.get("timestamp").and_then(time))
                    .max()?;
                Some((
                    field.clone(),
                    latest.to_rfc3339_opts(SecondsFormat::Millis, true),
                ))
            })
            .collect()
    }
}

/// A history timestamp: RFC 3339, or unix milliseconds as older APIs wrote them.
fn time(value: &Value) -> Option<DateTime<Utc>> {
    match value {
        Value::String(text) => DateTime::parse_from_rfc3339(text)
            .ok()
            .map(|t| t.with_timezone(&Utc))
            .or_else(|| DateTime::from_timestamp_millis(text.parse().ok()?)),
        Value::Number(ms) => DateTime::from_timestamp_millis(ms.as_i64()?),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn fields(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| n.to_string()).collect()
    }

    #[test]
    fn a_contact_name_changed_when_either_part_did() {
        let history = FieldHistory::customers(
            CustomerObject::Contacts,
            &fields(&["name", "email", "phone"]),
        );
        assert_eq!(
            history.properties(),
            vec!["firstname", "lastname", "email", "phone"]
        );
        assert_eq!(history.batch_limit(), 50);
        let object = json!({"id": "1", "propertiesWithHistory": {
            "firstname": [{"value": "Ada", "timestamp": "2026-01-01T10:00:00.000Z", "sourceType": "CRM_UI"}],
            "lastname": [
                {"value": "King", "timestamp": "2026-01-03T10:00:00.5Z", "sourceType": "INTEGRATION"},
                {"value": "Lovelace", "timestamp": "2026-01-01T10:00:00.000Z", "sourceType": "CRM_UI"},
            ],
            "phone": [{"value": "+44 1", "timestamp": "2026-01-02T11:00:00+01:00", "sourceType": "CRM_UI"}],
        }});
        let versions = history.versions(&object);
        assert_eq!(versions["name"], "2026-01-03T10:00:00.500Z");
        assert_eq!(versions["phone"], "2026-01-02T10:00:00.000Z");
        // No history for the e-mail: no time, the record's version stands in.
        assert!(!versions.contains_key("email"));
        assert!(history.versions(&json!({"id": "1"})).is_empty());
    }

    #[test]
    fn only_fields_with_properties_are_timed() {
        let deals = FieldHistory::deals(&fields(&["customer", "line_items", "due_date"]));
        assert_eq!(deals.properties(), vec!["tandem_due_date"]);
        assert!(FieldHistory::deals(&fields(&["customer"])).is_empty());
        assert_eq!(FieldHistory::deals(&[]).batch_limit(), 100);
        let companies =
            FieldHistory::customers(CustomerObject::Companies, &fields(&["name", "email"]));
        assert_eq!(companies.properties(), vec!["name", "tandem_email"]);
    }
}
