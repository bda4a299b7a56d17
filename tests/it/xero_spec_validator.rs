//! The Xero spec validator (tests/support/xero_spec.rs) accepts the requests Tandem
//! sends and names what is wrong with requests that do not conform.

use crate::support::xero_spec;

use serde_json::{json, Value};
use tandem::connectors::http::SentRequest;
use tandem::connectors::xero::mapping;
use tandem::domain::FieldMap;
use xero_spec::XeroSpec;

const TENANT: &str = "3f0b1c5e-1a2b-4c3d-8e9f-001122334455";
const CONTACT_ID: &str = "430fa14a-f945-44d3-9f97-5df5e28441b8";
const INVOICE_ID: &str = "4f7a1c2e-3b4d-4e5f-8a9b-0c1d2e3f4a5b";

fn request(method: &str, path: &str) -> SentRequest {
    SentRequest {
        system: tandem::domain::System::Finance,
        method: method.into(),
        path: path.into(),
        query: Vec::new(),
        headers: vec![
            ("xero-tenant-id".into(), TENANT.into()),
            ("accept".into(), "application/json".into()),
            ("authorization".into(), "Bearer ***".into()),
        ],
        body: None,
    }
}

fn write(method: &str, path: &str, body: Value) -> SentRequest {
    let mut r = request(method, path);
    r.query.push(("summarizeErrors".into(), "false".into()));
    r.headers.push(("Idempotency-Key".into(), "a".repeat(64)));
    r.body = Some(body);
    r
}

fn contact() -> Value {
    json!({
        "Name": "Ada Lovelace",
        "EmailAddress": "ada@example.com",
        "ContactNumber": "crm-9",
        "Phones": [{"PhoneType": "DEFAULT", "PhoneNumber": "+44 20 7946 0000"}],
        "Addresses": [{
            "AddressType": "STREET",
            "AddressLine1": "12 St James's Square",
            "AddressLine2": "",
            "City": "London",
            "Region": "",
            "PostalCode": "SW1Y 4JH",
            "Country": "GB"
        }]
    })
}

fn contact_create(contact: Value) -> SentRequest {
    write("PUT", "/Contacts", json!({ "Contacts": [contact] }))
}

fn invoice() -> Value {
    json!({
        "Type": "ACCREC",
        "Status": "DRAFT",
        "Contact": {"ContactID": CONTACT_ID},
        "Date": "2026-11-23",
        "DueDate": "2026-12-23",
        "LineAmountTypes": "Exclusive",
        "LineItems": [{
            "Description": "Consulting",
            "Quantity": 2.0,
            "UnitAmount": 150.5,
            "AccountCode": "200",
            "TaxAmount": 60.2
        }],
        "Reference": "crm-deal-7"
    })
}

#[track_caller]
fn assert_clean(spec: &XeroSpec, r: &SentRequest) {
    let problems = spec.problems(r);
    assert!(
        problems.is_empty(),
        "expected no problems, got {problems:#?}"
    );
}

/// The problems, asserting there is at least one that contains every `needle`.
#[track_caller]
fn assert_problem(spec: &XeroSpec, r: &SentRequest, needles: &[&str]) -> Vec<String> {
    let problems = spec.problems(r);
    assert!(
        problems
            .iter()
            .any(|p| needles.iter().all(|n| p.contains(n))),
        "expected a problem mentioning {needles:?}, got {problems:#?}"
    );
    problems
}

#[test]
fn a_valid_contact_create_conforms() {
    let spec = XeroSpec::load();
    assert_clean(&spec, &contact_create(contact()));
}

#[test]
fn an_unknown_contact_property_is_named() {
    let spec = XeroSpec::load();
    let mut c = contact();
    c["Nmae"] = json!("Ada");
    let problems = assert_problem(
        &spec,
        &contact_create(c),
        &["PUT /Contacts", "body.Contacts[0].Nmae", "Contact"],
    );
    assert_eq!(problems.len(), 1, "{problems:#?}");
}

#[test]
fn an_unknown_property_nested_in_an_address_is_named() {
    let spec = XeroSpec::load();
    let mut c = contact();
    c["Addresses"][0]["Town"] = json!("London");
    assert_problem(
        &spec,
        &contact_create(c),
        &["body.Contacts[0].Addresses[0].Town", "Address"],
    );
}

#[test]
fn a_bad_enum_value_is_named() {
    let spec = XeroSpec::load();
    let mut c = contact();
    c["Phones"][0]["PhoneType"] = json!("CELL");
    assert_problem(
        &spec,
        &contact_create(c),
        &["body.Contacts[0].Phones[0].PhoneType", "CELL", "MOBILE"],
    );
}

#[test]
fn a_wrong_type_is_named() {
    let spec = XeroSpec::load();
    let mut c = contact();
    c["Phones"] = json!({"PhoneType": "DEFAULT"});
    assert_problem(&spec, &contact_create(c), &["Phones", "array"]);
    let mut i = invoice();
    i["LineItems"][0]["Quantity"] = json!("2");
    assert_problem(
        &spec,
        &write("PUT", "/Invoices", json!({ "Invoices": [i] })),
        &["LineItems[0].Quantity", "number"],
    );
}

#[test]
fn an_undeclared_query_parameter_is_named() {
    let spec = XeroSpec::load();
    let mut r = contact_create(contact());
    r.query.push(("dryRun".into(), "true".into()));
    assert_problem(&spec, &r, &["PUT /Contacts", "query parameter `dryRun`"]);
}

#[test]
fn a_missing_tenant_header_is_named() {
    let spec = XeroSpec::load();
    let mut r = contact_create(contact());
    r.headers.retain(|(n, _)| n != "xero-tenant-id");
    let problems = assert_problem(&spec, &r, &["PUT /Contacts", "xero-tenant-id", "missing"]);
    assert_eq!(problems.len(), 1, "{problems:#?}");
}

#[test]
fn a_page_that_is_not_a_number_is_named() {
    let spec = XeroSpec::load();
    let mut r = request("GET", "/Contacts");
    r.query.push(("page".into(), "abc".into()));
    assert_problem(
        &spec,
        &r,
        &["GET /Contacts", "query parameter `page`", "abc", "integer"],
    );
}

#[test]
fn a_valid_invoice_create_conforms() {
    let spec = XeroSpec::load();
    assert_clean(
        &spec,
        &write("PUT", "/Invoices", json!({ "Invoices": [invoice()] })),
    );
}

#[test]
fn a_read_by_ids_and_a_change_listing_conform() {
    let spec = XeroSpec::load();
    let mut r = request("GET", "/Contacts");
    r.query = vec![
        ("IDs".into(), format!("{CONTACT_ID},{INVOICE_ID}")),
        ("includeArchived".into(), "true".into()),
        ("page".into(), "1".into()),
    ];
    r.headers.push((
        "If-Modified-Since".into(),
        "2026-11-23T09:30:00.000Z".into(),
    ));
    assert_clean(&spec, &r);

    let mut changes = request("GET", "/Invoices");
    changes.query = vec![
        ("page".into(), "2".into()),
        ("pageSize".into(), "100".into()),
        ("includeArchived".into(), "true".into()),
        ("order".into(), "UpdatedDateUTC ASC".into()),
    ];
    assert_clean(&spec, &changes);

    let mut find = request("GET", "/Contacts");
    find.query = vec![
        (
            "where".into(),
            r#"ContactNumber=="S1" OR EmailAddress=="a@b.c""#.into(),
        ),
        ("includeArchived".into(), "true".into()),
        ("page".into(), "1".into()),
    ];
    assert_clean(&spec, &find);
}

#[test]
fn bad_parameter_values_are_named() {
    let spec = XeroSpec::load();
    let mut r = request("GET", "/Contacts");
    r.query = vec![
        ("IDs".into(), format!("{CONTACT_ID},not-a-uuid")),
        ("includeArchived".into(), "yes".into()),
    ];
    r.headers
        .push(("If-Modified-Since".into(), "yesterday".into()));
    let problems = spec.problems(&r);
    assert_eq!(problems.len(), 3, "{problems:#?}");
    assert!(problems.iter().any(|p| p.contains("`IDs` item 1")));
    assert!(problems.iter().any(|p| p.contains("includeArchived")));
    assert!(problems
        .iter()
        .any(|p| p.contains("If-Modified-Since") && p.contains("date-time")));
}

#[test]
fn an_unknown_path_or_method_is_named() {
    let spec = XeroSpec::load();
    assert_problem(
        &spec,
        &request("GET", "/Customers"),
        &["GET /Customers", "no path"],
    );
    assert_problem(
        &spec,
        &write(
            "PUT",
            &format!("/Contacts/{CONTACT_ID}"),
            json!({"Contacts": []}),
        ),
        &["PUT /Contacts/", "no PUT operation", "GET", "POST"],
    );
}

#[test]
fn a_path_template_matches_any_segment() {
    let spec = XeroSpec::load();
    assert_clean(&spec, &request("GET", &format!("/Invoices/{INVOICE_ID}")));
    let update = write(
        "POST",
        &format!("/Contacts/{CONTACT_ID}"),
        json!({"Contacts": [{"ContactID": CONTACT_ID, "Name": "Ada"}]}),
    );
    let mut update = update;
    update.query.clear();
    assert_clean(&spec, &update);
}

#[test]
fn header_rules() {
    let spec = XeroSpec::load();
    let mut long_key = contact_create(contact());
    long_key.headers.retain(|(n, _)| n != "Idempotency-Key");
    long_key
        .headers
        .push(("Idempotency-Key".into(), "k".repeat(129)));
    assert_problem(&spec, &long_key, &["Idempotency-Key", "129", "128"]);

    let mut extra = request("GET", "/Contacts");
    extra.headers.push(("X-Request-Id".into(), "1".into()));
    assert_problem(&spec, &extra, &["GET /Contacts", "header `X-Request-Id`"]);

    // If-Modified-Since is declared on GET /Contacts, not on PUT.
    let mut wrong_place = contact_create(contact());
    wrong_place
        .headers
        .push(("If-Modified-Since".into(), "2026-11-23T09:30:00Z".into()));
    assert_problem(&spec, &wrong_place, &["PUT /Contacts", "If-Modified-Since"]);
}

#[test]
fn read_only_properties_and_bad_dates_are_named() {
    let spec = XeroSpec::load();
    let mut i = invoice();
    i["SubTotal"] = json!(301.0);
    i["Date"] = json!("23/11/2026");
    let r = write("PUT", "/Invoices", json!({ "Invoices": [i] }));
    let problems = spec.problems(&r);
    assert!(
        problems
            .iter()
            .any(|p| p.contains("body.Invoices[0].SubTotal") && p.contains("read-only")),
        "{problems:#?}"
    );
    assert!(
        problems
            .iter()
            .any(|p| p.contains("body.Invoices[0].Date") && p.contains("23/11/2026")),
        "{problems:#?}"
    );

    let mut c = contact();
    c["UpdatedDateUTC"] = json!("/Date(1700000000000+0000)/");
    assert_problem(
        &spec,
        &contact_create(c),
        &["body.Contacts[0].UpdatedDateUTC", "read-only"],
    );
}

#[test]
fn xero_date_forms_are_accepted() {
    let spec = XeroSpec::load();
    for date in [
        "2026-11-23",
        "2026-11-23T00:00:00",
        "/Date(1700000000000+0000)/",
        "/Date(1700000000000)/",
    ] {
        let mut i = invoice();
        i["DueDate"] = json!(date);
        assert_clean(
            &spec,
            &write("POST", "/Invoices", json!({ "Invoices": [i] })),
        );
    }
}

#[test]
fn bodies_where_none_belongs_are_named() {
    let spec = XeroSpec::load();
    let mut get = request("GET", "/Contacts");
    get.body = Some(json!({"Contacts": []}));
    assert_problem(&spec, &get, &["GET /Contacts", "body"]);

    let mut delete = request("DELETE", "/Items/00000000-0000-0000-0000-000000000000");
    delete.body = Some(json!({}));
    assert_problem(&spec, &delete, &["DELETE /Items/", "takes none"]);

    let mut missing = write("PUT", "/Contacts", json!({}));
    missing.body = None;
    assert_problem(
        &spec,
        &missing,
        &["PUT /Contacts", "requires a request body"],
    );
}

/// The connector's own archive and update shapes (see `src/connectors/xero/mod.rs`).
#[test]
fn archive_and_update_shapes_conform() {
    let spec = XeroSpec::load();
    assert_clean(
        &spec,
        &write(
            "POST",
            "/Contacts",
            json!({"Contacts": [{"ContactStatus": "ARCHIVED", "ContactID": CONTACT_ID}]}),
        ),
    );
    assert_clean(
        &spec,
        &write(
            "POST",
            "/Invoices",
            json!({"Invoices": [{"Status": "DELETED", "InvoiceID": INVOICE_ID}]}),
        ),
    );
}

/// What `mapping::contact_body` / `invoice_body` build from full canonical records.
#[test]
fn the_connector_mapping_bodies_conform() {
    let spec = XeroSpec::load();
    let customer: FieldMap = serde_json::from_value(json!({
        "name": "Ada Lovelace",
        "email": "ada@example.com",
        "phone": "+44 1",
        "tax_number": "GB123",
        "currency": "GBP",
        "address": {"line1": "1 Road", "city": "London", "country": "GB"}
    }))
    .expect("field map");
    let mut body = mapping::contact_body(&customer);
    body.insert("ContactNumber".into(), json!("crm-1"));
    assert_clean(
        &spec,
        &write(
            "PUT",
            "/Contacts",
            json!({"Contacts": [Value::Object(body)]}),
        ),
    );

    let invoice: FieldMap = serde_json::from_value(json!({
        "number": "INV-1",
        "customer": CONTACT_ID,
        "issue_date": "2026-11-23",
        "due_date": "2026-12-23",
        "currency": "GBP",
        "status": "draft",
        "line_items": [{"description": "x", "quantity": "2", "unit_amount": "10.5", "tax_amount": "4.2"}]
    }))
    .expect("field map");
    let mut body = mapping::invoice_body(&invoice).expect("an invoice body");
    body.insert("Reference".into(), json!("crm-2"));
    body.insert("Type".into(), json!("ACCREC"));
    assert_clean(
        &spec,
        &write(
            "PUT",
            "/Invoices",
            json!({"Invoices": [Value::Object(body)]}),
        ),
    );
}

#[test]
fn loading_is_shared_and_quick_after_the_first() {
    let first = std::time::Instant::now();
    let _ = XeroSpec::load();
    let _ = first.elapsed();
    let again = std::time::Instant::now();
    let _ = XeroSpec::load();
    assert!(again.elapsed() < std::time::Duration::from_millis(50));
}

/// The simulated Xero enforces the spec's own limits and currency codes: its table
/// is kept apart from the engine's (so a check the engine forgot shows as Xero's
/// refusal) and held to the spec here.
#[test]
fn the_simulators_limits_are_the_specs() {
    let spec = XeroSpec::load();
    for (schema, property, max) in sim::xero::schema::MAX_LENGTHS {
        let published = spec.schema(schema)["properties"][*property]["maxLength"].as_u64();
        assert_eq!(published, Some(*max as u64), "{schema}.{property}");
    }
    let codes: Vec<&str> = spec.schema("CurrencyCode")["enum"]
        .as_array()
        .expect("CurrencyCode is an enum")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(sim::xero::schema::CURRENCY_CODES, codes.as_slice());
}

/// What the engine refuses to send, the spec would name too: the outbound check and
/// the spec agree on a name one character too long.
#[test]
fn a_name_over_the_limit_is_a_problem_for_the_spec_too() {
    let spec = XeroSpec::load();
    let mut long = contact();
    long["Name"] = json!("n".repeat(256));
    assert_problem(
        &spec,
        &contact_create(long),
        &["Name", "256 characters; at most 255"],
    );
}
