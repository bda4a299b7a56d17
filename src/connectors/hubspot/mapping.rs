//! HubSpot's objects (contacts or companies, deals with line items) to canonical
//! records and back. Every HubSpot property value is a string.

use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde_json::{json, Map, Value};

use super::history::FieldHistory;
use crate::connectors::unread::{parse_decimal, Place, Unread};
use crate::connectors::ExternalRecord;
use crate::domain::{Address, Customer, FieldMap, Invoice, InvoiceStatus, LineItem};

/// Which HubSpot object a customer is, a setting per pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CustomerObject {
    #[default]
    Contacts,
    Companies,
}

impl CustomerObject {
    pub fn path(self) -> &'static str {
        match self {
            CustomerObject::Contacts => "contacts",
            CustomerObject::Companies => "companies",
        }
    }

    /// One of them, as a person says it.
    pub fn singular(self) -> &'static str {
        match self {
            CustomerObject::Contacts => "contact",
            CustomerObject::Companies => "company",
        }
    }

    fn email_property(self) -> &'static str {
        match self {
            CustomerObject::Contacts => "email",
            CustomerObject::Companies => "tandem_email",
        }
    }

    /// The properties read for a customer.
    pub fn properties(self) -> &'static [&'static str] {
        match self {
            CustomerObject::Contacts => &[
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
            CustomerObject::Companies => &[
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
        }
    }

    /// The property a natural-key look-up searches, and the canonical field it holds.
    pub fn natural_key(self) -> (&'static str, &'static str) {
        (self.email_property(), "email")
    }
}

/// The properties that hold canonical customer `field` (as `customer_properties`
/// writes them); none for a field HubSpot does not hold.
pub fn customer_field_properties(kind: CustomerObject, field: &str) -> &'static [&'static str] {
    use CustomerObject::{Companies, Contacts};
    match (kind, field) {
        (Contacts, "name") => &["firstname", "lastname"],
        (Companies, "name") => &["name"],
        (Contacts, "email") => &["email"],
        (Companies, "email") => &["tandem_email"],
        (_, "phone") => &["phone"],
        (_, "tax_number") => &["tandem_tax_number"],
        (_, "currency") => &["tandem_currency"],
        (Contacts, "address") => &["address", "city", "state", "zip", "country"],
        (Companies, "address") => &["address", "address2", "city", "state", "zip", "country"],
        _ => &[],
    }
}

/// The deal property of each canonical invoice field the deal holds itself (the
/// customer and line items are associations).
const DEAL_FIELDS: &[(&str, &[&str])] = &[
    ("number", &["tandem_invoice_number"]),
    ("issue_date", &["closedate"]),
    ("due_date", &["tandem_due_date"]),
    ("currency", &["deal_currency_code"]),
    ("subtotal", &["tandem_subtotal"]),
    ("tax_total", &["tandem_tax_total"]),
    ("total", &["amount"]),
    ("amount_paid", &["tandem_amount_paid"]),
    ("amount_due", &["tandem_amount_due"]),
    ("status", &["tandem_invoice_status"]),
];

/// The properties that hold canonical invoice `field`; none for an association.
pub fn deal_field_properties(field: &str) -> &'static [&'static str] {
    DEAL_FIELDS
        .iter()
        .find(|(f, _)| *f == field)
        .map_or(&[], |(_, properties)| properties)
}

pub const DEAL_PROPERTIES: &[&str] = &[
    "dealname",
    "dealstage",
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
];

pub const LINE_ITEM_PROPERTIES: &[&str] = &["name", "quantity", "price", "tandem_tax_amount"];

/// The deal stage that makes a deal an invoice.
pub const WON: &str = "closedwon";

pub fn prop(object: &Value, name: &str) -> Option<String> {
    object
        .get("properties")?
        .get(name)?
        .as_str()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// A HubSpot date or date-time property as a day: `YYYY-MM-DD`, an ISO 8601 date-time
/// (its day as written), or Unix milliseconds (midnight UTC for a date property).
pub fn day(raw: &str) -> Option<NaiveDate> {
    if !raw.is_empty() && raw.bytes().all(|b| b.is_ascii_digit()) {
        let ms = raw.parse::<i64>().ok()?;
        return chrono::DateTime::from_timestamp_millis(ms).map(|t| t.date_naive());
    }
    let (date, time) = raw.split_at_checked(10)?;
    let time_reads = time.is_empty() || chrono::DateTime::parse_from_rfc3339(raw).is_ok();
    NaiveDate::parse_from_str(date, "%Y-%m-%d")
        .ok()
        .filter(|_| time_reads)
}

/// The object's last change, RFC 3339.
pub fn version(object: &Value) -> Option<String> {
    prop(object, "hs_lastmodifieddate")
        .or_else(|| object.get("updatedAt")?.as_str().map(str::to_string))
}

pub fn is_archived(object: &Value) -> bool {
    object.get("archived").and_then(Value::as_bool) == Some(true)
}

pub fn id_of(object: &Value) -> Option<String> {
    match object.get("id")? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// A contact or company as a canonical customer, with the change times `history`
/// finds in the object's `propertiesWithHistory`.
pub fn customer_to_record(
    kind: CustomerObject,
    object: &Value,
    history: &FieldHistory,
) -> Option<ExternalRecord> {
    let id = id_of(object)?;
    let archived = is_archived(object);
    let name = match kind {
        CustomerObject::Contacts => {
            let parts: Vec<String> = [prop(object, "firstname"), prop(object, "lastname")]
                .into_iter()
                .flatten()
                .collect();
            (!parts.is_empty()).then(|| parts.join(" "))
        }
        CustomerObject::Companies => prop(object, "name"),
    };
    let customer = Customer {
        name,
        email: prop(object, kind.email_property()),
        phone: prop(object, "phone"),
        tax_number: prop(object, "tandem_tax_number"),
        address: Some(Address {
            line1: prop(object, "address"),
            line2: prop(object, "address2"),
            city: prop(object, "city"),
            region: prop(object, "state"),
            postal_code: prop(object, "zip"),
            country: prop(object, "country"),
        }),
        currency: prop(object, "tandem_currency"),
        archived,
    };
    Some(ExternalRecord {
        id,
        fields: (!archived).then(|| customer.fields()),
        version: version(object),
        stamp: prop(object, "tandem_origin_id"),
        field_versions: history.versions(object),
    })
}

fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// The customer properties that carry `fields` (an empty string clears one).
pub fn customer_properties(kind: CustomerObject, fields: &FieldMap) -> Map<String, Value> {
    let mut out = Map::new();
    for (field, value) in fields {
        match field.as_str() {
            "name" => match kind {
                CustomerObject::Contacts => {
                    let name = text(value);
                    let (first, last) = name.split_once(' ').unwrap_or((name.as_str(), ""));
                    out.insert("firstname".into(), json!(first));
                    out.insert("lastname".into(), json!(last));
                }
                CustomerObject::Companies => {
                    out.insert("name".into(), json!(text(value)));
                }
            },
            "email" => {
                out.insert(kind.email_property().into(), json!(text(value)));
            }
            "phone" => {
                out.insert("phone".into(), json!(text(value)));
            }
            "tax_number" => {
                out.insert("tandem_tax_number".into(), json!(text(value)));
            }
            "currency" => {
                out.insert("tandem_currency".into(), json!(text(value)));
            }
            "address" => {
                let part = |k: &str| value.get(k).map(text).unwrap_or_default();
                out.insert("address".into(), json!(part("line1")));
                if kind == CustomerObject::Companies {
                    out.insert("address2".into(), json!(part("line2")));
                }
                out.insert("city".into(), json!(part("city")));
                out.insert("state".into(), json!(part("region")));
                out.insert("zip".into(), json!(part("postal_code")));
                out.insert("country".into(), json!(part("country")));
            }
            _ => {}
        }
    }
    out
}

fn status_of(raw: &str) -> Option<InvoiceStatus> {
    serde_json::from_value(json!(raw.to_lowercase())).ok()
}

/// Each line item as a canonical line; what does not read is kept in `unread`.
fn line_items(lines: &[Value], unread: &mut Unread) -> Vec<LineItem> {
    let mut items = Vec::with_capacity(lines.len());
    for (i, l) in lines.iter().enumerate() {
        let mut number =
            |field, property| unread.read(Place::Line(i, field), prop(l, property), parse_decimal);
        // HubSpot's own defaults for a line without them: one of it, at no price.
        items.push(LineItem {
            description: prop(l, "name"),
            quantity: number("quantity", "quantity").unwrap_or(Decimal::ONE),
            unit_amount: number("unit_amount", "price").unwrap_or_default(),
            tax_amount: number("tax_amount", "tandem_tax_amount").filter(|t| !t.is_zero()),
        });
    }
    items
}

/// A deal, its customer's id and its line items, as a canonical invoice, with the
/// change times `history` finds in the deal's `propertiesWithHistory`. A deal that is
/// not won is not an invoice (yet): it reads as absent.
pub fn deal_to_record(
    deal: &Value,
    customer: Option<String>,
    lines: &[Value],
    history: &FieldHistory,
) -> Option<ExternalRecord> {
    let id = id_of(deal)?;
    let won = prop(deal, "dealstage").as_deref() == Some(WON);
    let live = won && !is_archived(deal);
    // What does not read is carried as text, for the writer to refuse (`unread.rs`).
    let mut unread = Unread::default();
    let line_items = line_items(lines, &mut unread);
    let mut number =
        |field, property| unread.read(Place::Field(field), prop(deal, property), parse_decimal);
    let subtotal = number("subtotal", "tandem_subtotal");
    let tax_total = number("tax_total", "tandem_tax_total");
    let total = number("total", "amount");
    let amount_paid = number("amount_paid", "tandem_amount_paid");
    let amount_due = number("amount_due", "tandem_amount_due");
    let mut read = |field, property, parse: fn(&str) -> Option<_>| {
        unread.read(Place::Field(field), prop(deal, property), parse)
    };
    let issue_date = read("issue_date", "closedate", day);
    let due_date = read("due_date", "tandem_due_date", day);
    let status = unread.read(
        Place::Field("status"),
        prop(deal, "tandem_invoice_status"),
        status_of,
    );
    let invoice = Invoice {
        number: prop(deal, "tandem_invoice_number"),
        customer,
        issue_date,
        due_date,
        currency: prop(deal, "deal_currency_code"),
        line_items,
        subtotal,
        tax_total,
        total,
        amount_paid,
        amount_due,
        status,
        reference: None,
    };
    let fields = live.then(|| {
        let mut fields = invoice.fields();
        unread.carry(&mut fields);
        fields
    });
    Some(ExternalRecord {
        id,
        fields,
        version: version(deal),
        stamp: prop(deal, "tandem_origin_id"),
        field_versions: history.versions(deal),
    })
}

/// The deal properties that carry `fields`. The customer and line items are
/// associations, written apart.
pub fn deal_properties(fields: &FieldMap) -> Map<String, Value> {
    let mut out = Map::new();
    for (field, properties) in DEAL_FIELDS {
        if let Some(value) = fields.get(*field) {
            for property in *properties {
                out.insert((*property).into(), json!(text(value)));
            }
        }
    }
    out
}

/// Line items as HubSpot properties.
pub fn line_item_properties(fields: &FieldMap) -> Vec<Map<String, Value>> {
    fields
        .get("line_items")
        .and_then(Value::as_array)
        .map(|lines| {
            lines
                .iter()
                .map(|l| {
                    let mut p = Map::new();
                    p.insert(
                        "name".into(),
                        json!(l.get("description").map(text).unwrap_or_default()),
                    );
                    p.insert(
                        "quantity".into(),
                        json!(l.get("quantity").map(text).unwrap_or_else(|| "1".into())),
                    );
                    p.insert(
                        "price".into(),
                        json!(l.get("unit_amount").map(text).unwrap_or_else(|| "0".into())),
                    );
                    if let Some(tax) = l.get("tax_amount") {
                        p.insert("tandem_tax_amount".into(), json!(text(tax)));
                    }
                    p
                })
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_contact_name_splits_and_joins() {
        let mut fields = FieldMap::new();
        fields.insert("name".into(), json!("Ada King Lovelace"));
        let props = customer_properties(CustomerObject::Contacts, &fields);
        assert_eq!(props["firstname"], json!("Ada"));
        assert_eq!(props["lastname"], json!("King Lovelace"));
        let object = json!({"id": "7", "properties": props, "archived": false});
        let record =
            customer_to_record(CustomerObject::Contacts, &object, &FieldHistory::default())
                .expect("record");
        assert_eq!(
            record.fields.expect("live")["name"],
            json!("Ada King Lovelace")
        );
    }

    #[test]
    fn only_a_won_deal_is_an_invoice() {
        let open = json!({"id": "1", "properties": {"dealstage": "appointmentscheduled"}});
        assert_eq!(
            deal_to_record(&open, None, &[], &FieldHistory::default())
                .expect("record")
                .fields,
            None
        );
        let won = json!({"id": "1", "properties": {"dealstage": "closedwon", "amount": "150.50",
            "closedate": "2026-11-23T10:00:00.000Z", "tandem_invoice_status": "paid"}});
        let line = json!({"id": "9", "properties": {"name": "Consulting", "quantity": "2", "price": "75.25"}});
        let fields = deal_to_record(&won, Some("7".into()), &[line], &FieldHistory::default())
            .expect("record")
            .fields
            .expect("won");
        assert_eq!(fields["total"], json!("150.5"));
        assert_eq!(fields["status"], json!("paid"));
        assert_eq!(fields["customer"], json!("7"));
        assert_eq!(fields["issue_date"], json!("2026-11-23"));
        assert_eq!(fields["line_items"][0]["unit_amount"], json!("75.25"));
    }

    fn won_deal(properties: Value, lines: &[Value]) -> FieldMap {
        let mut deal = json!({"id": "1", "properties": {"dealstage": "closedwon"}});
        for (k, v) in properties.as_object().expect("an object") {
            deal["properties"][k] = v.clone();
        }
        deal_to_record(&deal, Some("7".into()), lines, &FieldHistory::default())
            .expect("record")
            .fields
            .expect("won")
    }

    fn line(quantity: &str, price: &str) -> Value {
        json!({"id": "9", "properties": {"name": "Consulting", "quantity": quantity, "price": price}})
    }

    #[test]
    fn a_quantity_or_price_that_is_not_a_number_is_carried_not_guessed() {
        let fields = won_deal(json!({}), &[line("2", "10"), line("abc", "NaN")]);
        assert_eq!(fields["line_items"][0]["quantity"], json!("2"));
        assert_eq!(fields["line_items"][1]["quantity"], json!("abc"), "not 1");
        assert_eq!(
            fields["line_items"][1]["unit_amount"],
            json!("NaN"),
            "not 0"
        );
        // The writer refuses it, naming the line and the field.
        let why = crate::connectors::xero::mapping::invoice_body(&fields).expect_err("refused");
        assert_eq!(why, "invoice line item 2: quantity `abc` is not a number");
        let fields = won_deal(json!({}), &[line("1", "Infinity")]);
        let why = crate::connectors::xero::mapping::invoice_body(&fields).expect_err("refused");
        assert_eq!(
            why,
            "invoice line item 1: unit price `Infinity` is not a number"
        );
    }

    #[test]
    fn a_date_or_status_that_does_not_read_is_carried_not_dropped() {
        let fields = won_deal(
            json!({"closedate": "31/12/2026", "tandem_due_date": "2026-02-30",
                   "tandem_invoice_status": "won", "amount": "lots"}),
            &[],
        );
        assert_eq!(fields["issue_date"], json!("31/12/2026"));
        assert_eq!(fields["due_date"], json!("2026-02-30"));
        assert_eq!(fields["status"], json!("won"));
        assert_eq!(fields["total"], json!("lots"));
    }

    #[test]
    fn hubspot_dates_read_in_each_form_it_writes() {
        let d = NaiveDate::from_ymd_opt(2026, 11, 23);
        assert_eq!(day("2026-11-23"), d);
        assert_eq!(day("2026-11-23T10:00:00.000Z"), d);
        assert_eq!(day("2026-11-23T23:30:00+02:00"), d, "the day as written");
        assert_eq!(day("1795392000000"), d, "midnight UTC in milliseconds");
        for bad in [
            "2026-11-23garbage",
            "23/11/2026",
            "2026-11-31",
            "",
            "soon",
            "2026-11-2",
        ] {
            assert_eq!(day(bad), None, "{bad}");
        }
    }
}
