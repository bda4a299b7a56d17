//! The simulated HubSpot account's records: contacts, companies, deals and line items
//! in memory, their properties, associations and timestamps, and the validation rules
//! a write must pass. Everything here runs under the simulator's one state lock.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use serde_json::{json, Map, Value};

use super::source::Source;

/// The object types the simulator holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Kind {
    Contact,
    Company,
    Deal,
    LineItem,
}

pub(crate) const KINDS: [Kind; 4] = [Kind::Contact, Kind::Company, Kind::Deal, Kind::LineItem];

/// Properties HubSpot keeps itself on every object; read-only, always answered.
pub(crate) const DEFAULT_PROPERTIES: [&str; 3] =
    ["hs_object_id", "createdate", "hs_lastmodifieddate"];

/// How many values of one property the simulator keeps in its history; older values
/// are dropped. HubSpot keeps a bounded history too (the stored documentation does not
/// say how long), so a client may never assume it sees every past value.
pub(crate) const HISTORY_KEPT: usize = 20;

/// Properties whose filter values may be unix milliseconds or RFC 3339.
const DATE_PROPERTIES: [&str; 4] = [
    "createdate",
    "hs_lastmodifieddate",
    "closedate",
    "tandem_due_date",
];

impl Kind {
    /// The `{type}` path segment.
    pub(crate) fn from_path(segment: &str) -> Option<Self> {
        match segment {
            "contacts" => Some(Self::Contact),
            "companies" => Some(Self::Company),
            "deals" => Some(Self::Deal),
            "line_items" => Some(Self::LineItem),
            _ => None,
        }
    }

    pub(crate) fn plural(self) -> &'static str {
        match self {
            Self::Contact => "contacts",
            Self::Company => "companies",
            Self::Deal => "deals",
            Self::LineItem => "line_items",
        }
    }

    /// As association type names and webhook subscription types spell it.
    pub(crate) fn singular(self) -> &'static str {
        match self {
            Self::Contact => "contact",
            Self::Company => "company",
            Self::Deal => "deal",
            Self::LineItem => "line_item",
        }
    }

    /// As HubSpot names it in batch error messages (`Could not get some CONTACT objects`).
    pub(crate) fn upper(self) -> &'static str {
        match self {
            Self::Contact => "CONTACT",
            Self::Company => "COMPANY",
            Self::Deal => "DEAL",
            Self::LineItem => "LINE_ITEM",
        }
    }

    fn index(self) -> usize {
        match self {
            Self::Contact => 0,
            Self::Company => 1,
            Self::Deal => 2,
            Self::LineItem => 3,
        }
    }

    /// The properties a client may write: those `docs/api-subsets.md` lists, plus
    /// `pipeline` for deals (HubSpot's own companion of `dealstage`).
    pub(crate) fn writable(self) -> &'static [&'static str] {
        match self {
            Self::Contact => &[
                "email",
                "firstname",
                "lastname",
                "phone",
                "address",
                "city",
                "state",
                "zip",
                "country",
                "tandem_tax_number",
                "tandem_currency",
                "tandem_origin_id",
            ],
            Self::Company => &[
                "name",
                "tandem_email",
                "phone",
                "address",
                "address2",
                "city",
                "state",
                "zip",
                "country",
                "tandem_tax_number",
                "tandem_currency",
                "tandem_origin_id",
            ],
            Self::Deal => &[
                "dealname",
                "dealstage",
                "pipeline",
                "amount",
                "deal_currency_code",
                "closedate",
                "tandem_invoice_number",
                "tandem_due_date",
                "tandem_invoice_status",
                "tandem_amount_paid",
                "tandem_amount_due",
                "tandem_subtotal",
                "tandem_tax_total",
                "tandem_origin_id",
            ],
            Self::LineItem => &["name", "quantity", "price", "tandem_tax_amount"],
        }
    }

    /// What a read without `properties` answers besides the default three, as HubSpot
    /// answers a small default set rather than everything.
    pub(crate) fn shown_by_default(self) -> &'static [&'static str] {
        match self {
            Self::Contact => &["email", "firstname", "lastname"],
            Self::Company => &["name"],
            Self::Deal => &["dealname", "amount", "dealstage", "pipeline", "closedate"],
            Self::LineItem => &["name", "quantity", "price"],
        }
    }

    /// The kind an association of type id `type_id` from `self` points at.
    pub(crate) fn association_target(self, type_id: i64) -> Option<Kind> {
        match (self, type_id) {
            (Self::Deal, 3) => Some(Self::Contact),
            (Self::Deal, 5) => Some(Self::Company),
            (Self::Deal, 19) => Some(Self::LineItem),
            (Self::LineItem, 20) => Some(Self::Deal),
            (Self::Contact, 4) => Some(Self::Deal),
            (Self::Company, 6) => Some(Self::Deal),
            (Self::Contact, 1) => Some(Self::Company),
            (Self::Company, 2) => Some(Self::Contact),
            _ => None,
        }
    }
}

/// One object.
#[derive(Debug, Clone)]
pub(crate) struct Record {
    pub kind: Kind,
    pub id: u64,
    /// Only properties with a value; a cleared one is removed.
    pub props: BTreeMap<String, String>,
    pub created_ms: i64,
    pub updated_ms: i64,
    pub archived_ms: Option<i64>,
    /// Each property's past values, oldest first, at most [`HISTORY_KEPT`] of each.
    pub history: BTreeMap<String, Vec<PastValue>>,
}

/// One value a property held: set at `at_ms` (the object's `hs_lastmodifieddate` by
/// that write) by a person in the UI or by an app through the API.
#[derive(Debug, Clone)]
pub(crate) struct PastValue {
    /// `""` when the write cleared the property.
    pub value: String,
    pub at_ms: i64,
    pub source: Source,
}

impl Record {
    pub(crate) fn archived(&self) -> bool {
        self.archived_ms.is_some()
    }

    /// A property's value, the default ones included.
    pub(crate) fn value(&self, name: &str) -> Option<String> {
        match name {
            "hs_object_id" => Some(self.id.to_string()),
            "createdate" => Some(rfc3339(self.created_ms)),
            "hs_lastmodifieddate" => Some(rfc3339(self.updated_ms)),
            _ => self.props.get(name).cloned(),
        }
    }

    /// Moves `hs_lastmodifieddate` on, strictly past its last value even when the
    /// clock has not moved, so "changed since" polling never misses a change.
    pub(crate) fn touch(&mut self) {
        self.updated_ms = now_ms().max(self.updated_ms + 1);
    }

    /// Adds the `changed` properties (name, new value) to their history at the
    /// object's `updated_ms`: called once a write has moved it on (`touch`), so a
    /// value's time is the `hs_lastmodifieddate` the write gave the object.
    pub(crate) fn remember(&mut self, changed: &[(String, String)], source: Source) {
        for (name, value) in changed {
            let past = self.history.entry(name.clone()).or_default();
            past.push(PastValue {
                value: value.clone(),
                at_ms: self.updated_ms,
                source,
            });
            if past.len() > HISTORY_KEPT {
                past.drain(..past.len() - HISTORY_KEPT);
            }
        }
    }
}

/// One property write: `None` clears it.
pub(crate) type PropertyWrite = (String, Option<String>);

/// Why one input (or one call) failed; turned into HubSpot's error JSON.
#[derive(Debug, Clone)]
pub(crate) struct ItemError {
    pub status: u16,
    pub category: &'static str,
    pub message: String,
}

impl ItemError {
    pub(crate) fn new(status: u16, category: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            category,
            message: message.into(),
        }
    }

    pub(crate) fn not_found() -> Self {
        Self::new(
            404,
            "OBJECT_NOT_FOUND",
            "Object not found. objectId are usually numeric.",
        )
    }

    /// A `Property values were not valid` error listing one bad property.
    fn invalid_property(name: &str, error: &str, message: &str) -> Self {
        let detail = json!([{
            "isValid": false,
            "message": message,
            "error": error,
            "name": name,
        }]);
        Self::new(
            400,
            "VALIDATION_ERROR",
            format!("Property values were not valid: {detail}"),
        )
    }

    pub(crate) fn body(&self) -> Value {
        json!({"status": "error", "message": self.message, "category": self.category})
    }
}

#[derive(Debug)]
pub(crate) struct State {
    next_id: u64,
    records: [BTreeMap<u64, Record>; 4],
    /// Associations, stored both ways so either end finds the other.
    links: BTreeSet<(u64, u64)>,
}

impl Default for State {
    fn default() -> Self {
        Self {
            // Real ids are long numbers; starting high keeps clients from assuming small ones.
            next_id: 10_001,
            records: Default::default(),
            links: BTreeSet::new(),
        }
    }
}

impl State {
    pub(crate) fn records(&self, kind: Kind) -> &BTreeMap<u64, Record> {
        &self.records[kind.index()]
    }

    pub(crate) fn get(&self, kind: Kind, id: &str) -> Option<&Record> {
        let id: u64 = id.trim().parse().ok()?;
        self.records[kind.index()].get(&id)
    }

    pub(crate) fn get_mut(&mut self, kind: Kind, id: &str) -> Option<&mut Record> {
        let id: u64 = id.trim().parse().ok()?;
        self.records[kind.index()].get_mut(&id)
    }

    /// Finds an object of any kind by id (ids are unique across kinds).
    pub(crate) fn find(&self, id: &str) -> Option<&Record> {
        KINDS.iter().find_map(|kind| self.get(*kind, id))
    }

    /// Inserts a new object with `props` already validated, written by `source`;
    /// returns its id. Each initial value starts its property's history.
    pub(crate) fn insert(
        &mut self,
        kind: Kind,
        props: BTreeMap<String, String>,
        source: Source,
    ) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        let now = now_ms();
        let initial: Vec<(String, String)> = props
            .iter()
            .map(|(name, value)| (name.clone(), value.clone()))
            .collect();
        let mut record = Record {
            kind,
            id,
            props,
            created_ms: now,
            updated_ms: now,
            archived_ms: None,
            history: BTreeMap::new(),
        };
        record.remember(&initial, source);
        self.records[kind.index()].insert(id, record);
        id
    }

    pub(crate) fn link(&mut self, a: u64, b: u64) {
        self.links.insert((a, b));
        self.links.insert((b, a));
    }

    /// Live objects of `kind` associated with `id`, in id order.
    pub(crate) fn linked(&self, id: u64, kind: Kind) -> Vec<u64> {
        self.links
            .range((id, 0)..=(id, u64::MAX))
            .map(|(_, other)| *other)
            .filter(|other| {
                self.records[kind.index()]
                    .get(other)
                    .is_some_and(|r| !r.archived())
            })
            .collect()
    }

    /// Checks a write's property names and values for `kind`; `own_id` is the object
    /// being updated (so its own email is no conflict). Read-only default properties
    /// are accepted and ignored, as HubSpot ignores them.
    pub(crate) fn check_write(
        &self,
        kind: Kind,
        writes: &[PropertyWrite],
        own_id: Option<u64>,
    ) -> Result<(), ItemError> {
        for (name, value) in writes {
            if DEFAULT_PROPERTIES.contains(&name.as_str()) {
                continue;
            }
            if !kind.writable().contains(&name.as_str()) {
                return Err(ItemError::invalid_property(
                    name,
                    "PROPERTY_DOESNT_EXIST",
                    &format!("Property \"{name}\" does not exist"),
                ));
            }
            if kind == Kind::Contact && name == "email" {
                if let Some(email) = value {
                    if !looks_like_email(email) {
                        return Err(ItemError::invalid_property(
                            "email",
                            "INVALID_EMAIL",
                            &format!("Email address {email} is invalid"),
                        ));
                    }
                    if let Some(existing) = self.live_contact_with_email(email, own_id) {
                        return Err(ItemError::new(
                            409,
                            "CONFLICT",
                            format!("Contact already exists. Existing ID: {existing}"),
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    fn live_contact_with_email(&self, email: &str, except: Option<u64>) -> Option<u64> {
        self.records[Kind::Contact.index()]
            .values()
            .find(|r| {
                !r.archived()
                    && Some(r.id) != except
                    && r.props
                        .get("email")
                        .is_some_and(|e| e.eq_ignore_ascii_case(email))
            })
            .map(|r| r.id)
    }

    /// Renders an object as HubSpot answers it. `shown`: which properties (the default
    /// three are always added); `associations`: which associated kinds to list.
    pub(crate) fn render(&self, record: &Record, shown: Shown<'_>, associations: &[Kind]) -> Value {
        let mut props = Map::new();
        let names: Vec<&str> = match shown {
            Shown::All => record.props.keys().map(String::as_str).collect(),
            Shown::Defaults => record.kind.shown_by_default().to_vec(),
            Shown::Only(names) => names.iter().map(String::as_str).collect(),
        };
        for name in names.into_iter().chain(DEFAULT_PROPERTIES) {
            props.insert(
                name.to_string(),
                record.value(name).map_or(Value::Null, Value::String),
            );
        }
        let mut object = json!({
            "id": record.id.to_string(),
            "properties": props,
            "createdAt": rfc3339(record.created_ms),
            "updatedAt": rfc3339(record.updated_ms),
            "archived": record.archived(),
        });
        if let Some(at) = record.archived_ms {
            object["archivedAt"] = Value::String(rfc3339(at));
        }
        let mut linked = Map::new();
        for kind in associations {
            let results: Vec<Value> = self
                .linked(record.id, *kind)
                .into_iter()
                .map(|other| {
                    json!({
                        "id": other.to_string(),
                        "type": format!("{}_to_{}", record.kind.singular(), kind.singular()),
                    })
                })
                .collect();
            // HubSpot leaves out the kinds with nothing associated.
            if !results.is_empty() {
                linked.insert(kind.plural().to_string(), json!({ "results": results }));
            }
        }
        if !linked.is_empty() {
            object["associations"] = Value::Object(linked);
        }
        object
    }
}

impl State {
    /// An object's `propertiesWithHistory`: for each of `names` that has held a value,
    /// its values newest first, each with when and by whom it was set. Names the
    /// object never had are left out, as HubSpot ignores properties not present on the
    /// object. `app_id` names the app behind API writes.
    pub(crate) fn render_history(record: &Record, names: &[String], app_id: u64) -> Value {
        let mut history = Map::new();
        for name in names {
            let Some(past) = record.history.get(name) else {
                continue;
            };
            let values: Vec<Value> = past
                .iter()
                .rev()
                .map(|v| {
                    let (source_type, source_id) = v.source.names(app_id);
                    let mut entry = json!({
                        "value": v.value,
                        "timestamp": rfc3339(v.at_ms),
                        "sourceType": source_type,
                        "sourceId": source_id,
                    });
                    // HubSpot names the user only for a person's edit.
                    if v.source == Source::Person {
                        entry["updatedByUserId"] = json!(super::source::UI_USER_ID);
                    }
                    entry
                })
                .collect();
            history.insert(name.clone(), Value::Array(values));
        }
        Value::Object(history)
    }
}

/// Which properties an answer shows.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Shown<'a> {
    /// Every property with a value (write answers).
    All,
    /// The kind's small default set (reads that named none).
    Defaults,
    /// Those named, null when unset.
    Only(&'a [String]),
}

/// Reads a `properties` object of a write: strings as they are, numbers and booleans
/// as text, `""` and null clear the property.
pub(crate) fn parse_properties(value: Option<&Value>) -> Result<Vec<PropertyWrite>, ItemError> {
    let Some(value) = value else {
        return Ok(Vec::new());
    };
    let Some(map) = value.as_object() else {
        return Err(ItemError::new(
            400,
            "VALIDATION_ERROR",
            "Invalid input JSON: `properties` must be an object",
        ));
    };
    Ok(map
        .iter()
        .map(|(name, value)| {
            let text = match value {
                Value::Null => None,
                Value::String(s) if s.is_empty() => None,
                Value::String(s) => Some(s.clone()),
                other => Some(other.to_string()),
            };
            (name.clone(), text)
        })
        .collect())
}

/// Applies checked writes; returns the properties that really changed, with their new
/// value (`""` when cleared). Default properties are skipped.
pub(crate) fn apply(record: &mut Record, writes: &[PropertyWrite]) -> Vec<(String, String)> {
    let mut changed = Vec::new();
    for (name, value) in writes {
        if DEFAULT_PROPERTIES.contains(&name.as_str()) {
            continue;
        }
        let before = record.props.get(name).cloned();
        if before.as_ref() == value.as_ref() {
            continue;
        }
        match value {
            Some(v) => {
                record.props.insert(name.clone(), v.clone());
            }
            None => {
                record.props.remove(name);
            }
        }
        changed.push((name.clone(), value.clone().unwrap_or_default()));
    }
    changed
}

/// The writes turned into the property map of a new object.
pub(crate) fn initial_props(writes: &[PropertyWrite]) -> BTreeMap<String, String> {
    writes
        .iter()
        .filter(|(name, _)| !DEFAULT_PROPERTIES.contains(&name.as_str()))
        .filter_map(|(name, value)| value.clone().map(|v| (name.clone(), v)))
        .collect()
}

/// Good enough to tell `a@b.c` from `not-an-email`: one `@`, something before it, a
/// dotted domain after it, no spaces.
pub(crate) fn looks_like_email(email: &str) -> bool {
    let Some((local, domain)) = email.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && !domain.contains('@')
        && !email.chars().any(char::is_whitespace)
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains("..")
}

pub(crate) fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

/// RFC 3339 with milliseconds and `Z`, as HubSpot writes every timestamp.
pub(crate) fn rfc3339(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Unix ms from `1700000000000`, RFC 3339 or `YYYY-MM-DD`.
pub(crate) fn parse_date_ms(text: &str) -> Option<i64> {
    let text = text.trim();
    if let Ok(ms) = text.parse::<i64>() {
        return Some(ms);
    }
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Some(at.timestamp_millis());
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|d| d.and_utc().timestamp_millis())
}

/// A property value as search compares and sorts it: dates and numbers by number,
/// text without regard to case.
#[derive(Debug, Clone, PartialEq, PartialOrd)]
pub(crate) enum SortKey {
    Number(f64),
    Text(String),
}

pub(crate) fn sort_key(property: &str, value: &str) -> SortKey {
    if DATE_PROPERTIES.contains(&property) {
        if let Some(ms) = parse_date_ms(value) {
            return SortKey::Number(ms as f64);
        }
    }
    match value.trim().parse::<f64>() {
        Ok(number) if number.is_finite() => SortKey::Number(number),
        _ => SortKey::Text(value.to_lowercase()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails() {
        assert!(looks_like_email("a@b.co"));
        assert!(!looks_like_email("not-an-email"));
        assert!(!looks_like_email("a@b"));
        assert!(!looks_like_email("a b@c.d"));
    }

    #[test]
    fn dates_parse_every_way() {
        let ms = 1_700_000_000_123;
        assert_eq!(parse_date_ms(&ms.to_string()), Some(ms));
        assert_eq!(parse_date_ms(&rfc3339(ms)), Some(ms));
        assert!(parse_date_ms("2024-05-01").is_some());
    }

    #[test]
    fn touch_is_strictly_increasing() {
        let mut state = State::default();
        let id = state.insert(Kind::Contact, BTreeMap::new(), Source::Person);
        let record = state
            .get_mut(Kind::Contact, &id.to_string())
            .expect("record");
        let mut last = record.updated_ms;
        for _ in 0..50 {
            record.touch();
            assert!(record.updated_ms > last);
            last = record.updated_ms;
        }
    }
}
