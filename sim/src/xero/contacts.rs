//! Contacts: the record and its JSON (`contact_writes.rs` creates and updates them).

use serde_json::{Map, Value};

use super::dates;
use super::fields::put_opt;
use crate::view::CustomerView;

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Contact {
    pub id: String,
    pub number: Option<String>,
    pub archived: bool,
    pub name: String,
    pub email: Option<String>,
    pub tax_number: Option<String>,
    pub currency: Option<String>,
    /// `{PhoneType, PhoneNumber, ...}` objects, one per type.
    pub phones: Vec<Map<String, Value>>,
    /// `{AddressType, AddressLine1, ...}` objects, one per type.
    pub addresses: Vec<Map<String, Value>>,
    pub updated_ms: i64,
}

pub(super) const PHONE_FIELDS: &[&str] = &[
    "PhoneType",
    "PhoneNumber",
    "PhoneAreaCode",
    "PhoneCountryCode",
];
pub(super) const ADDRESS_FIELDS: &[&str] = &[
    "AddressType",
    "AddressLine1",
    "AddressLine2",
    "AddressLine3",
    "AddressLine4",
    "City",
    "Region",
    "PostalCode",
    "Country",
    "AttentionTo",
];

impl Contact {
    pub(crate) fn new(name: String) -> Self {
        Self {
            id: uuid::Uuid::new_v4().to_string(),
            number: None,
            archived: false,
            name,
            email: None,
            tax_number: None,
            currency: None,
            phones: Vec::new(),
            addresses: Vec::new(),
            updated_ms: 0,
        }
    }

    pub(crate) fn status(&self) -> &'static str {
        if self.archived {
            "ARCHIVED"
        } else {
            "ACTIVE"
        }
    }

    /// The number people see first: the DEFAULT phone, else any.
    pub(crate) fn phone(&self) -> Option<String> {
        let number = |p: &Map<String, Value>| {
            p.get("PhoneNumber")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
        };
        self.phones
            .iter()
            .find(|p| p.get("PhoneType").and_then(Value::as_str) == Some("DEFAULT"))
            .and_then(number)
            .or_else(|| self.phones.iter().find_map(number))
    }

    /// Sets (or with `None` clears) the DEFAULT phone number.
    pub(crate) fn set_phone(&mut self, number: Option<String>) {
        let mut phone = Map::new();
        phone.insert("PhoneType".into(), "DEFAULT".into());
        phone.insert("PhoneNumber".into(), number.unwrap_or_default().into());
        merge_by_type(&mut self.phones, phone, "PhoneType");
    }

    /// The contact as a customer; the stamp is its ContactNumber.
    pub(crate) fn view(&self) -> CustomerView {
        CustomerView {
            id: self.id.clone(),
            stamp: self.number.clone(),
            name: Some(self.name.clone()),
            email: self.email.clone(),
            phone: self.phone(),
            archived: self.archived,
            updated_ms: self.updated_ms,
        }
    }

    pub(crate) fn to_json(&self) -> Value {
        let mut o = Map::new();
        o.insert("ContactID".into(), self.id.clone().into());
        put_opt(&mut o, "ContactNumber", &self.number);
        o.insert("ContactStatus".into(), self.status().into());
        o.insert("Name".into(), self.name.clone().into());
        put_opt(&mut o, "EmailAddress", &self.email);
        put_opt(&mut o, "TaxNumber", &self.tax_number);
        put_opt(&mut o, "DefaultCurrency", &self.currency);
        o.insert(
            "Phones".into(),
            Value::Array(self.phones.iter().cloned().map(Value::Object).collect()),
        );
        o.insert(
            "Addresses".into(),
            Value::Array(self.addresses.iter().cloned().map(Value::Object).collect()),
        );
        o.insert(
            "UpdatedDateUTC".into(),
            dates::xero_timestamp(self.updated_ms).into(),
        );
        o.insert("IsCustomer".into(), true.into());
        Value::Object(o)
    }
}

/// Replaces the entry of the same type, as Xero does when a write sends one phone or
/// address: the others stay.
pub(super) fn merge_by_type(
    list: &mut Vec<Map<String, Value>>,
    entry: Map<String, Value>,
    type_key: &str,
) {
    let kind = entry.get(type_key).cloned();
    match list.iter_mut().find(|e| e.get(type_key) == kind.as_ref()) {
        Some(existing) => *existing = entry,
        None => list.push(entry),
    }
}
