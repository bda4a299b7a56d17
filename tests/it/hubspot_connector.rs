//! The HubSpot connector against the simulated HubSpot over real HTTP: the per-field
//! change times it reads from HubSpot's property history (`ExternalRecord::
//! field_versions`), on single reads and on reads batched together, and the requests
//! that cost.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use rust_decimal::Decimal;
use serde_json::{json, Value};
use sim::{CustomerEdit, CustomerSeed, SimConfig, Simulators};
use tandem::config::{PairSettings, Settings};
use tandem::connectors::http::{RequestRecorder, SentRequest};
use tandem::connectors::{Connector, ConnectorError, ExternalRecord};
use tandem::domain::{ConflictPolicy, EntityType, FieldMap, Flow, PairId, System};
use tandem::secret::Secret;
use tandem::store::{self, Store};
use tandem::wiring::{self, WiringOptions};
use tokio_util::sync::CancellationToken;

const PAIR: &str = "acme";

struct World {
    sims: Arc<Simulators>,
    crm: Arc<dyn Connector>,
    recorder: Arc<RequestRecorder>,
    stop: CancellationToken,
}

impl Drop for World {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl World {
    /// The simulators and the pair's HubSpot connector, wired from settings as
    /// `tandem serve` wires it; `adjust` changes the pair's settings first.
    async fn start(adjust: impl FnOnce(&mut PairSettings)) -> Self {
        let stop = CancellationToken::new();
        let sims = Simulators::start_local(SimConfig::default(), stop.clone())
            .await
            .expect("simulators start");
        let mut pair = tandem::demo::pair_for(&sims, 0);
        if let Some(crm) = pair.crm.as_mut() {
            // The private-app token: no OAuth refresh, so the store is never used.
            crm.access_token = Some(Secret::new(
                sims.hubspot.settings().private_app_token.clone(),
            ));
            // Wide enough that reads made together share one batch call.
            crm.batch_window_ms = 100;
        }
        adjust(&mut pair);
        let mut settings = Settings::default();
        settings.pairs.insert(PAIR.into(), pair);
        let store: Arc<dyn Store> =
            Arc::new(store::connect("sqlite::memory:").await.expect("store"));
        let recorder = Arc::new(RequestRecorder::default());
        let options = WiringOptions {
            recorder: Some(recorder.clone()),
            ..Default::default()
        };
        let wired = wiring::from_settings_with(&settings, store, &options);
        let crm = wired
            .connectors
            .get(&(PairId::new(PAIR), System::Crm))
            .expect("the HubSpot connector")
            .clone();
        Self {
            sims,
            crm,
            recorder,
            stop,
        }
    }

    fn creates(&self, name: &str, email: &str, phone: &str) -> String {
        self.sims.hubspot.person_creates_customer(&CustomerSeed {
            name: name.into(),
            email: email.into(),
            phone: Some(phone.into()),
        })
    }

    /// A person's edit, and the `hs_lastmodifieddate` it gave the customer. The pause
    /// keeps edits at distinct milliseconds.
    async fn edits(&self, id: &str, edit: CustomerEdit) -> String {
        tokio::time::sleep(Duration::from_millis(5)).await;
        self.sims.hubspot.person_edits_customer(id, &edit);
        self.updated(id)
    }

    fn updated(&self, id: &str) -> String {
        let customer = self
            .sims
            .hubspot
            .customers()
            .into_iter()
            .find(|c| c.id == id)
            .expect("customer");
        at(customer.updated_ms)
    }

    /// The batch reads sent to HubSpot since the last call.
    fn batch_reads(&self, path: &str) -> Vec<SentRequest> {
        self.recorder
            .take()
            .into_iter()
            .filter(|r| r.system == System::Crm && r.path == path)
            .collect()
    }
}

/// As HubSpot writes a time: RFC 3339 with milliseconds and `Z`.
fn at(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .expect("time")
        .to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn phone(number: &str) -> CustomerEdit {
    CustomerEdit {
        name: None,
        phone: Some(number.into()),
    }
}

fn name(name: &str) -> CustomerEdit {
    CustomerEdit {
        name: Some(name.into()),
        phone: None,
    }
}

fn names(body: &Value, key: &str) -> Vec<String> {
    body[key]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

fn versions(record: &ExternalRecord) -> &BTreeMap<String, String> {
    &record.field_versions
}

#[tokio::test]
async fn field_versions_say_which_field_changed_last() {
    let w = World::start(|_| {}).await;
    let id = w.creates("Ada Lovelace", "ada@example.com", "+44 1");
    let created = w.updated(&id);
    let t1 = w.edits(&id, phone("+44 2")).await;
    let t2 = w.edits(&id, name("Ada King")).await;
    assert!(created < t1 && t1 < t2);
    w.recorder.take();

    let record = w
        .crm
        .get(EntityType::Customer, &id)
        .await
        .expect("read")
        .expect("found");
    // The record moved on at the name's edit; the phone changed before it.
    assert_eq!(record.version.as_deref(), Some(t2.as_str()));
    assert_eq!(versions(&record).get("phone"), Some(&t1), "{record:?}");
    assert_eq!(versions(&record).get("name"), Some(&t2));
    assert_eq!(versions(&record).get("email"), Some(&created));
    // Never set: no time, the record's version stands in for it.
    assert_eq!(versions(&record).get("tax_number"), None);
    let fields = record.fields.expect("live");
    assert_eq!(fields["name"], "Ada King");
    assert_eq!(fields["phone"], "+44 2");

    // One call, asking history for exactly the properties behind the two-way fields.
    let reads = w.batch_reads("/crm/v3/objects/contacts/batch/read");
    assert_eq!(reads.len(), 1, "{reads:?}");
    let body = reads[0].body.clone().expect("body");
    let mut asked = names(&body, "propertiesWithHistory");
    asked.sort();
    assert_eq!(
        asked,
        vec![
            "address",
            "city",
            "country",
            "email",
            "firstname",
            "lastname",
            "phone",
            "state",
            "tandem_currency",
            "tandem_tax_number",
            "zip",
        ]
    );
    // A name edited through the API moves only that field on.
    let written = w
        .crm
        .update(
            EntityType::Customer,
            &id,
            &FieldMap::from([("name".to_string(), json!("Ada Byron"))]),
            "key-1",
        )
        .await
        .expect("update");
    let t3 = written.record.version.clone().expect("version");
    let record = w
        .crm
        .get(EntityType::Customer, &id)
        .await
        .expect("read")
        .expect("found");
    assert_eq!(versions(&record).get("name"), Some(&t3));
    assert_eq!(versions(&record).get("phone"), Some(&t1));
}

#[tokio::test]
async fn batched_reads_fill_field_versions_fifty_at_a_time() {
    let w = World::start(|_| {}).await;
    let ids: Vec<String> = (0..60)
        .map(|n| w.creates(&format!("P{n} Person"), &format!("p{n}@example.com"), "+1"))
        .collect();
    let mut phoned = BTreeMap::new();
    for id in ids.iter().step_by(7) {
        phoned.insert(id.clone(), w.edits(id, phone("+2")).await);
    }
    w.recorder.take();

    let reads = futures::future::join_all(
        ids.iter()
            .map(|id| w.crm.get(EntityType::Customer, id.as_str())),
    )
    .await;
    for (id, read) in ids.iter().zip(reads) {
        let record = read.expect("read").expect("found");
        let created = versions(&record).get("email").expect("email time").clone();
        assert_eq!(versions(&record).get("name"), Some(&created));
        match phoned.get(id) {
            Some(t1) => {
                assert_eq!(versions(&record).get("phone"), Some(t1));
                assert_eq!(record.version.as_ref(), Some(t1));
                assert!(created < *t1);
            }
            None => assert_eq!(versions(&record).get("phone"), Some(&created)),
        }
    }
    // HubSpot takes at most 50 inputs in a batch read that asks for history: the sixty
    // reads made together cost two calls.
    let calls = w.batch_reads("/crm/v3/objects/contacts/batch/read");
    let sizes: Vec<usize> = calls
        .iter()
        .map(|c| {
            let body = c.body.as_ref().expect("body");
            assert!(!names(body, "propertiesWithHistory").is_empty());
            body["inputs"].as_array().map_or(0, Vec::len)
        })
        .collect();
    assert_eq!(sizes.iter().sum::<usize>(), 60, "{sizes:?}");
    assert!(sizes.iter().all(|n| *n <= 50), "{sizes:?}");
    assert_eq!(calls.len(), 2, "{sizes:?}");
}

#[tokio::test]
async fn history_is_asked_only_for_what_can_clash() {
    // Invoices: no field flows both ways by default, so deals are read without
    // history, a hundred at a time.
    let w = World::start(|_| {}).await;
    let customer = w.creates("Ada Lovelace", "ada@example.com", "+44 1");
    let deal = w.sims.hubspot.person_wins_deal(
        &customer,
        "Consulting",
        &[("Advice".into(), Decimal::ONE, Decimal::TEN)],
    );
    w.recorder.take();
    let invoice = w
        .crm
        .get(EntityType::Invoice, &deal)
        .await
        .expect("read")
        .expect("found");
    assert!(invoice.field_versions.is_empty());
    let reads = w.batch_reads("/crm/v3/objects/deals/batch/read");
    assert_eq!(reads.len(), 1);
    assert!(reads[0].body.as_ref().expect("body")["propertiesWithHistory"].is_null());
    drop(w);

    // A pair that lets the issue date flow both ways times it on deal reads.
    let w = World::start(|pair| {
        pair.fields.insert(
            EntityType::Invoice,
            BTreeMap::from([("issue_date".to_string(), Flow::Both)]),
        );
    })
    .await;
    let customer = w.creates("Ada Lovelace", "ada@example.com", "+44 1");
    let deal = w.sims.hubspot.person_wins_deal(
        &customer,
        "Consulting",
        &[("Advice".into(), Decimal::ONE, Decimal::TEN)],
    );
    w.recorder.take();
    let invoice = w
        .crm
        .get(EntityType::Invoice, &deal)
        .await
        .expect("read")
        .expect("found");
    assert_eq!(
        invoice.field_versions.keys().collect::<Vec<_>>(),
        vec!["issue_date"]
    );
    assert_eq!(
        invoice.field_versions.get("issue_date"),
        invoice.version.as_ref()
    );
    let reads = w.batch_reads("/crm/v3/objects/deals/batch/read");
    assert_eq!(
        names(
            reads[0].body.as_ref().expect("body"),
            "propertiesWithHistory"
        ),
        vec!["closedate"]
    );
    drop(w);

    // Under a policy other than last_write_wins no time decides anything: none asked.
    let w = World::start(|pair| pair.conflict_policy = ConflictPolicy::CrmWins).await;
    let id = w.creates("Ada Lovelace", "ada@example.com", "+44 1");
    w.recorder.take();
    let record = w
        .crm
        .get(EntityType::Customer, &id)
        .await
        .expect("read")
        .expect("found");
    assert!(record.field_versions.is_empty());
    let reads = w.batch_reads("/crm/v3/objects/contacts/batch/read");
    assert!(reads[0].body.as_ref().expect("body")["propertiesWithHistory"].is_null());
}

/// A value whose HubSpot property type would refuse it (a total Xero held that Tandem
/// could not read, a status HubSpot's options lack) is refused before any call.
#[tokio::test]
async fn a_value_hubspot_would_refuse_is_not_sent() {
    let w = World::start(|_| {}).await;
    let customer = w.creates("Ada Lovelace", "ada@example.com", "+44 1");
    let line = ("Consulting".to_string(), Decimal::ONE, Decimal::TEN);
    let deal = w
        .sims
        .hubspot
        .person_wins_deal(&customer, "Consulting", &[line]);
    w.recorder.take();
    for (field, value, property) in [
        ("total", "lots", "`amount`"),
        ("status", "won", "`tandem_invoice_status`"),
        ("due_date", "31/12/2026", "`tandem_due_date`"),
    ] {
        let mut fields = FieldMap::new();
        fields.insert(field.into(), json!(value));
        let refused = w.crm.update(EntityType::Invoice, &deal, &fields, "k").await;
        match refused {
            Err(ConnectorError::Unsendable { message, .. }) => {
                assert!(message.contains(property), "{message}");
                assert!(message.contains(&format!("`{value}`")), "{message}");
            }
            other => panic!("{field}: refused before any call, not {other:?}"),
        }
    }
    assert!(w.recorder.take().is_empty(), "nothing went to HubSpot");
    let mut fields = FieldMap::new();
    fields.insert("total".into(), json!("12.5"));
    w.crm
        .update(EntityType::Invoice, &deal, &fields, "k2")
        .await
        .expect("a number is written");
}
