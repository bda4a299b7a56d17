//! The edit journal: what people and API calls did on each side, field by field, with
//! nothing journaled for an edit that changed nothing; over HTTP for the API calls and
//! the `GET /sim/journal` control route.

use std::collections::BTreeMap;
use std::str::FromStr as _;
use std::sync::Arc;

use rust_decimal::Decimal;
use serde_json::{json, Value};
use sim::hubspot::{HubSpotSettings, HubSpotSim};
use sim::xero::{XeroSettings, XeroSim};
use sim::{
    Action, Actor, CustomerEdit, CustomerSeed, JournalEntry, Knobs, Side, SimConfig, Simulators,
};
use tokio_util::sync::CancellationToken;

fn ada() -> CustomerSeed {
    CustomerSeed {
        name: "Ada Lovelace".into(),
        email: "ada@example.com".into(),
        phone: Some("+44 1".into()),
    }
}

fn changed(pairs: &[(&str, Option<&str>)]) -> BTreeMap<String, Option<String>> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.map(str::to_string)))
        .collect()
}

fn phone(number: &str) -> CustomerEdit {
    CustomerEdit {
        name: None,
        phone: Some(number.into()),
    }
}

#[test]
fn a_person_edit_in_the_crm_journals_exactly_the_changed_field() {
    let sim = HubSpotSim::new(HubSpotSettings::default(), Arc::new(Knobs::default()));
    let id = sim.person_creates_customer(&ada());
    sim.person_edits_customer(
        &id,
        &CustomerEdit {
            name: Some("Ada King".into()),
            phone: None,
        },
    );

    let journal = sim.journal();
    assert_eq!(journal.len(), 2, "{journal:#?}");
    let created = &journal[0];
    assert_eq!(
        (created.side, created.actor, created.action),
        (Side::Crm, Actor::Person, Action::Create)
    );
    assert_eq!(
        created.changed,
        changed(&[
            ("name", Some("Ada Lovelace")),
            ("email", Some("ada@example.com")),
            ("phone", Some("+44 1")),
        ])
    );
    let edited = &journal[1];
    assert_eq!(
        (edited.actor, edited.action),
        (Actor::Person, Action::Update)
    );
    assert_eq!(
        (edited.entity.as_str(), edited.id.as_str()),
        ("customer", id.as_str())
    );
    // The last name changed, so the canonical name did; nothing else did.
    assert_eq!(edited.changed, changed(&[("name", Some("Ada King"))]));
    assert!(edited.seq > created.seq);
    let view = sim
        .customers()
        .into_iter()
        .find(|c| c.id == id)
        .expect("customer");
    assert_eq!(edited.version_ms, view.updated_ms);
    assert!(edited.at.is_some() && edited.at_ms > 0);
}

#[test]
fn a_person_edit_in_finance_journals_exactly_the_changed_field() {
    let sim = XeroSim::new(XeroSettings::default(), Arc::new(Knobs::default()));
    let id = sim.person_creates_contact(&ada());
    sim.person_edits_contact(&id, &phone("+44 2"));
    sim.person_archives_contact(&id);

    let journal = sim.journal();
    assert_eq!(journal.len(), 3, "{journal:#?}");
    assert!(journal
        .iter()
        .all(|e| e.side == Side::Finance && e.actor == Actor::Person));
    assert_eq!(journal[0].action, Action::Create);
    assert_eq!(journal[1].action, Action::Update);
    assert_eq!(journal[1].changed, changed(&[("phone", Some("+44 2"))]));
    assert_eq!(journal[2].action, Action::Archive);
    assert!(journal[2].changed.is_empty());
    let view = sim
        .customers()
        .into_iter()
        .find(|c| c.id == id)
        .expect("contact");
    assert_eq!(journal[2].version_ms, view.updated_ms);
}

#[test]
fn an_edit_that_changes_nothing_is_not_journaled() {
    let crm = HubSpotSim::new(HubSpotSettings::default(), Arc::new(Knobs::default()));
    let finance = XeroSim::new(XeroSettings::default(), Arc::new(Knobs::default()));
    let crm_id = crm.person_creates_customer(&ada());
    let finance_id = finance.person_creates_contact(&ada());
    let same = CustomerEdit {
        name: Some("Ada Lovelace".into()),
        phone: Some("+44 1".into()),
    };
    crm.person_edits_customer(&crm_id, &same);
    finance.person_edits_contact(&finance_id, &same);
    crm.person_archives_customer(&crm_id);
    crm.person_archives_customer(&crm_id);
    crm.person_edits_customer(&crm_id, &phone("+44 3"));

    assert_eq!(finance.journal().len(), 1);
    let actions: Vec<Action> = crm.journal().iter().map(|e| e.action).collect();
    // Archiving twice archives once; an archived customer is not edited.
    assert_eq!(actions, vec![Action::Create, Action::Archive]);
}

/// Both simulators over HTTP, with a HubSpot token and a Xero access token.
struct Trial {
    sims: Arc<Simulators>,
    http: reqwest::Client,
    xero_access: String,
    _stop: tokio_util::sync::DropGuard,
}

impl Trial {
    async fn start() -> Self {
        let stop = CancellationToken::new();
        let sims = Simulators::start_local(SimConfig::default(), stop.clone())
            .await
            .expect("simulators start");
        let http = reqwest::Client::new();
        let settings = sims.xero.settings();
        let grant: Value = http
            .post(sims.xero_token_url())
            .basic_auth(&settings.client_id, Some(&settings.client_secret))
            .form(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", settings.refresh_token.as_str()),
            ])
            .send()
            .await
            .expect("token call")
            .json()
            .await
            .expect("token json");
        let xero_access = grant["access_token"]
            .as_str()
            .expect("access token")
            .to_string();
        Self {
            sims,
            http,
            xero_access,
            _stop: stop.drop_guard(),
        }
    }

    async fn hubspot(&self, path: &str, body: Value) -> (u16, Value) {
        let answer = self
            .http
            .post(format!("{}{path}", self.sims.hubspot_url))
            .bearer_auth(&self.sims.hubspot.settings().private_app_token)
            .json(&body)
            .send()
            .await
            .expect("hubspot call");
        let status = answer.status().as_u16();
        (status, answer.json().await.expect("hubspot json"))
    }

    async fn xero(&self, method: reqwest::Method, path: &str, body: Value) -> (u16, Value) {
        let answer = self
            .http
            .request(method, format!("{}{path}", self.sims.xero_api_url()))
            .bearer_auth(&self.xero_access)
            .header("xero-tenant-id", &self.sims.xero.settings().tenant_id)
            .header("accept", "application/json")
            .json(&body)
            .send()
            .await
            .expect("xero call");
        let status = answer.status().as_u16();
        (status, answer.json().await.expect("xero json"))
    }
}

fn api_entries(journal: &[JournalEntry], side: Side) -> Vec<&JournalEntry> {
    journal
        .iter()
        .filter(|e| e.side == side && e.actor == Actor::Api)
        .collect()
}

#[tokio::test]
async fn api_batches_journal_one_entry_per_item_that_changed_something() {
    let t = Trial::start().await;
    let sims = &t.sims;
    let a = sims.hubspot.person_creates_customer(&ada());
    let b = sims.hubspot.person_creates_customer(&CustomerSeed {
        name: "Grace Hopper".into(),
        email: "grace@example.com".into(),
        phone: None,
    });
    let (status, body) = t
        .hubspot(
            "/crm/v3/objects/contacts/batch/update",
            json!({"inputs": [
                {"id": a, "properties": {"phone": "+44 9", "tandem_origin_id": "F-1"}},
                // Already so: no edit.
                {"id": b, "properties": {"firstname": "Grace"}},
                {"id": "424242", "properties": {"phone": "1"}},
            ]}),
        )
        .await;
    assert_eq!(status, 207, "{body}");

    let contact = sims.xero.person_creates_contact(&ada());
    let (status, body) = t
        .xero(
            reqwest::Method::POST,
            "/Contacts?summarizeErrors=false",
            json!({"Contacts": [
                {"ContactID": contact, "Name": "Ada King"},
                // The same contact again: its own entry, against the item before it.
                {"ContactID": contact, "Name": "Ada King", "ContactNumber": a},
                {"ContactID": contact, "Name": "Ada King"},
            ]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = t
        .xero(
            reqwest::Method::PUT,
            "/Invoices?summarizeErrors=false",
            json!({"Invoices": [{
                "Type": "ACCREC", "Status": "AUTHORISED", "Reference": "D-7",
                "Contact": {"ContactID": contact}, "Date": "2026-11-01",
                "LineAmountTypes": "Exclusive",
                "LineItems": [{"Description": "Work", "Quantity": 2, "UnitAmount": 50,
                               "TaxAmount": 10, "AccountCode": "200"}],
            }]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let invoice = body["Invoices"][0]["InvoiceID"]
        .as_str()
        .expect("invoice id")
        .to_string();
    sims.xero
        .person_pays_invoice(&invoice, Decimal::from_str("110").expect("amount"))
        .expect("paid");

    let journal = sims.journal();
    let crm = api_entries(&journal, Side::Crm);
    assert_eq!(crm.len(), 1, "{crm:#?}");
    assert_eq!(
        (crm[0].id.as_str(), crm[0].action),
        (a.as_str(), Action::Update)
    );
    assert_eq!(
        crm[0].changed,
        changed(&[("phone", Some("+44 9")), ("stamp", Some("F-1"))])
    );

    let finance = api_entries(&journal, Side::Finance);
    assert_eq!(finance.len(), 3, "{finance:#?}");
    assert_eq!(finance[0].changed, changed(&[("name", Some("Ada King"))]));
    assert_eq!(finance[1].changed, changed(&[("stamp", Some(a.as_str()))]));
    assert!(finance[1].version_ms > finance[0].version_ms);
    assert_eq!(
        (finance[2].entity.as_str(), finance[2].action),
        ("invoice", Action::Create)
    );
    assert_eq!(
        finance[2].changed,
        changed(&[
            ("number", Some("INV-0001")),
            ("customer", Some(contact.as_str())),
            ("status", Some("authorised")),
            ("total", Some("110")),
            ("amount_paid", Some("0")),
            ("stamp", Some("D-7")),
        ])
    );
    let paid = journal
        .iter()
        .rfind(|e| e.side == Side::Finance && e.actor == Actor::Person)
        .expect("the payment");
    assert_eq!(paid.id, invoice);
    assert_eq!(
        paid.changed,
        changed(&[("status", Some("paid")), ("amount_paid", Some("110"))])
    );

    // Sorted by wall clock, then side, then each side's order.
    assert!(journal.windows(2).all(|w| w[0].at_ms <= w[1].at_ms));
}

#[tokio::test]
async fn a_refused_batch_journals_nothing() {
    let t = Trial::start().await;
    let contact = t.sims.xero.person_creates_contact(&ada());
    // Errors summarised (the default): one bad item refuses the whole batch.
    let (status, _) = t
        .xero(
            reqwest::Method::POST,
            "/Contacts",
            json!({"Contacts": [
                {"ContactID": contact, "Name": "Ada King"},
                {"ContactID": contact, "EmailAddress": "not-an-email"},
            ]}),
        )
        .await;
    assert_eq!(status, 400);
    assert!(api_entries(&t.sims.journal(), Side::Finance).is_empty());
}

#[tokio::test]
async fn the_control_route_answers_the_journal() {
    let t = Trial::start().await;
    let crm_id = t.sims.hubspot.person_creates_customer(&ada());
    let finance_id = t.sims.xero.person_creates_contact(&ada());
    t.sims
        .xero
        .person_edits_contact(&finance_id, &phone("+44 5"));

    for base in [&t.sims.hubspot_url, &t.sims.xero_url] {
        let answer = t
            .http
            .get(format!("{base}/sim/journal"))
            .send()
            .await
            .expect("journal call");
        assert_eq!(answer.status().as_u16(), 200);
        let raw: Value = answer.json().await.expect("json");
        assert_eq!(raw[0]["actor"], "person");
        assert!(raw[0]["changed"].is_object());
        let entries: Vec<JournalEntry> = serde_json::from_value(raw).expect("entries");
        let seen: Vec<(Side, String, Action)> = entries
            .iter()
            .map(|e| (e.side, e.id.clone(), e.action))
            .collect();
        let expected = [
            (Side::Crm, crm_id.clone(), Action::Create),
            (Side::Finance, finance_id.clone(), Action::Create),
            (Side::Finance, finance_id.clone(), Action::Update),
        ];
        assert_eq!(seen.len(), 3);
        for item in &expected {
            assert!(seen.contains(item), "{item:?} missing from {seen:?}");
        }
        // Over the wire, there is no in-process instant.
        assert!(entries.iter().all(|e| e.at.is_none()));
    }
}
