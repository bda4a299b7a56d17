//! Creating or updating a contact from a sent item with Xero's validation (a name,
//! unique among active contacts; a plausible e-mail; the published lengths and currency
//! codes, `schema.rs`).

use serde_json::{Map, Value};

use super::contacts::{merge_by_type, Contact, ADDRESS_FIELDS, PHONE_FIELDS};
use super::dates;
use super::fields::{looks_like_email, read_text};
use super::schema;
use super::state::{Category, Change, Store};

/// Keeps the known fields of a phone or address, with its type defaulted.
fn whitelist(
    sent: &Value,
    fields: &[&str],
    type_key: &str,
    default_type: &str,
) -> Option<Map<String, Value>> {
    let sent = sent.as_object()?;
    let mut out = Map::new();
    for field in fields {
        if let Some(Some(text)) = read_text(sent, field) {
            out.insert((*field).to_string(), Value::String(text));
        }
    }
    if !out.contains_key(type_key) {
        out.insert(type_key.to_string(), default_type.into());
    }
    Some(out)
}

fn name_taken_message(name: &str) -> String {
    format!(
        "The contact name {name} is already assigned to another contact. The contact name must be unique across all active contacts."
    )
}

/// Creates (no `ContactID`) or updates (with one) a contact in `store`. Answers the
/// contact's index and the change, if anything changed; or the validation messages,
/// in which case nothing changed.
pub(crate) fn upsert(
    store: &mut Store,
    item: &Value,
) -> Result<(usize, Option<Change>), Vec<String>> {
    let Some(sent) = item.as_object() else {
        return Err(vec!["A contact must be a JSON object.".into()]);
    };
    let existing = match read_text(sent, "ContactID").flatten() {
        Some(id) => match store.contact_index(&id) {
            Some(index) => Some(index),
            None => {
                return Err(vec![format!(
                    "Contact with ContactID {id} could not be found."
                )])
            }
        },
        None => None,
    };
    let mut errors = schema::too_long("Contact", sent);
    let mut contact = match existing {
        Some(index) => store.contacts[index].clone(),
        None => Contact::new(String::new()),
    };
    match read_text(sent, "Name") {
        Some(Some(name)) => contact.name = name,
        Some(None) => errors.push("The contact name must be specified.".to_string()),
        None if existing.is_none() => {
            errors.push("The contact name must be specified.".to_string())
        }
        None => {}
    }
    if let Some(v) = read_text(sent, "ContactNumber") {
        contact.number = v;
    }
    if let Some(v) = read_text(sent, "EmailAddress") {
        if let Some(email) = &v {
            if !looks_like_email(email) {
                errors.push("Email address must be valid.".to_string());
            }
        }
        contact.email = v;
    }
    if let Some(v) = read_text(sent, "TaxNumber") {
        contact.tax_number = v;
    }
    if let Some(v) = read_text(sent, "DefaultCurrency") {
        if let Some(unknown) = v
            .as_deref()
            .and_then(|c| schema::unknown_currency("DefaultCurrency", c))
        {
            errors.push(unknown);
        }
        contact.currency = v.map(|c| c.to_ascii_uppercase());
    }
    if let Some(status) = read_text(sent, "ContactStatus").flatten() {
        match status.to_ascii_uppercase().as_str() {
            "ACTIVE" => contact.archived = false,
            "ARCHIVED" => contact.archived = true,
            other => errors.push(format!("ContactStatus {other} is not valid.")),
        }
    }
    if let Some(phones) = sent.get("Phones").and_then(Value::as_array) {
        for phone in phones {
            match whitelist(phone, PHONE_FIELDS, "PhoneType", "DEFAULT") {
                Some(p) => merge_by_type(&mut contact.phones, p, "PhoneType"),
                None => errors.push("A phone must be a JSON object.".into()),
            }
        }
    }
    if let Some(addresses) = sent.get("Addresses").and_then(Value::as_array) {
        for address in addresses {
            match whitelist(address, ADDRESS_FIELDS, "AddressType", "STREET") {
                Some(a) => merge_by_type(&mut contact.addresses, a, "AddressType"),
                None => errors.push("An address must be a JSON object.".into()),
            }
        }
    }
    // Uniqueness is checked when this contact would be active under a name it did not
    // already hold while active, so records that predate a clash stay editable.
    let was_active_same_name = existing.is_some_and(|i| {
        let before = &store.contacts[i];
        !before.archived && before.name.eq_ignore_ascii_case(&contact.name)
    });
    if !contact.archived && !contact.name.is_empty() && !was_active_same_name {
        let clash = store.contacts.iter().any(|other| {
            other.id != contact.id
                && !other.archived
                && other.name.trim().eq_ignore_ascii_case(contact.name.trim())
        });
        if clash {
            errors.push(name_taken_message(&contact.name));
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    match existing {
        Some(index) => {
            if store.contacts[index] == contact {
                return Ok((index, None));
            }
            contact.updated_ms = dates::next_stamp(Some(contact.updated_ms));
            let change = Change::new(Category::Contact, &contact.id, false, contact.updated_ms);
            store.contacts[index] = contact;
            Ok((index, Some(change)))
        }
        None => {
            contact.updated_ms = dates::next_stamp(None);
            let change = Change::new(Category::Contact, &contact.id, true, contact.updated_ms);
            store.contacts.push(contact);
            Ok((store.contacts.len() - 1, Some(change)))
        }
    }
}
