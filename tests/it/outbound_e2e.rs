//! Values the other side would refuse or misread, end to end over real HTTP with the
//! simulators on PostgreSQL and RabbitMQ: a CRM customer whose name is longer than
//! Xero takes, and a won deal whose second line item's quantity is `abc`, each end
//! `failed` in `/api/failures` with the field and the rule named, and nothing is
//! written to Xero for them, while a valid customer created at the same moment syncs.
//! The simulated Xero refuses a name over 255 characters itself, so without the
//! engine's own check the failure would name Xero's words and a write would show.
//! A resync naming a Xero id that is not a UUID is refused before anything runs, and
//! the Xero connector on its own sends no id that is not one, and no value over a
//! limit, recording no request at all for them.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use sim::{CustomerSeed, SimConfig, Simulators};
use tandem::config::Settings;
use tandem::connectors::http::RequestRecorder;
use tandem::connectors::{Connector, ConnectorError};
use tandem::domain::{EntityType, FieldMap, PairId, System};
use tandem::store::{self, Store};
use tandem::wiring::{self, WiringOptions};
use tokio_util::sync::CancellationToken;

use crate::support::eventually;
use crate::sync_e2e::{Backend, World, ADMIN, PAIR};

const WITHIN: Duration = Duration::from_secs(60);

async fn failures(world: &World) -> Vec<Value> {
    let answer: Value = world
        .http
        .get(format!("{}/api/failures", world.base))
        .bearer_auth(ADMIN)
        .send()
        .await
        .expect("admin API answers")
        .json()
        .await
        .expect("JSON");
    answer.as_array().cloned().unwrap_or_default()
}

/// Waits until `/api/failures` lists the record with this CRM id as `failed`.
async fn failed(world: &World, crm_id: &str) -> Value {
    let seen = std::sync::Mutex::new(Value::Null);
    eventually(WITHIN, &format!("{crm_id} failed"), || async {
        let found = failures(world)
            .await
            .into_iter()
            .find(|f| f["crm_id"] == crm_id && f["sync_status"] == "failed");
        let done = found.is_some();
        *seen.lock().expect("lock") = found.unwrap_or(Value::Null);
        done
    })
    .await;
    seen.into_inner().expect("lock")
}

/// Whether any write to Xero carried the record Tandem would have stamped `stamp`.
fn written_to_xero(world: &World, stamp: &str) -> bool {
    world.recorder.sent().into_iter().any(|r| {
        r.system == System::Finance
            && r.method != "GET"
            && r.body.as_ref().is_some_and(|body| {
                ["Contacts", "Invoices"].iter().any(|collection| {
                    body[collection].as_array().is_some_and(|items| {
                        items
                            .iter()
                            .any(|i| i["ContactNumber"] == stamp || i["Reference"] == stamp)
                    })
                })
            })
    })
}

async fn resync(world: &World, ids: &[&str]) -> (u16, Value) {
    let answer = world
        .http
        .post(format!("{}/api/resync", world.base))
        .bearer_auth(ADMIN)
        .json(&json!({"pair": PAIR, "system": "finance", "entity": "customer", "ids": ids}))
        .send()
        .await
        .expect("resync answers");
    let status = answer.status().as_u16();
    (status, answer.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn values_xero_would_refuse_fail_with_their_rule_and_the_rest_syncs() {
    let mut world = World::start_with_pair(Backend::Production, SimConfig::default(), |_| {}).await;
    // First and last name, joined: 300 characters.
    let long_name = format!("Longname {}", "x".repeat(291));
    assert_eq!(long_name.chars().count(), 300);
    let seed = |name: &str, email: &str| CustomerSeed {
        name: name.into(),
        email: email.into(),
        phone: None,
    };
    let hubspot = &world.sims.hubspot;
    let long = hubspot.person_creates_customer(&seed(&long_name, "long@example.com"));
    let valid = hubspot.person_creates_customer(&seed("Valid Person", "valid@example.com"));
    let buyer = hubspot.person_creates_customer(&seed("Deal Buyer", "buyer@example.com"));
    let deal = hubspot.person_wins_deal_as_typed(
        &buyer,
        "Typed by hand",
        &[
            ("Consulting".into(), "2".into(), "100".into()),
            ("Travel".into(), "abc".into(), "50".into()),
        ],
    );

    let sims = world.sims.clone();
    let (v, b) = (valid.clone(), buyer.clone());
    world
        .until("the valid customers in Xero", move |_| {
            let stamps: Vec<String> = sims
                .xero
                .customers()
                .into_iter()
                .filter_map(|c| c.stamp)
                .collect();
            stamps.contains(&v) && stamps.contains(&b)
        })
        .await;

    let name_failure = failed(&world, &long).await;
    let error = name_failure["last_error"].as_str().unwrap_or_default();
    for needle in [
        "Contact.Name",
        "longer than 255 characters",
        "the CRM's is 300 characters",
    ] {
        assert!(error.contains(needle), "`{needle}` in: {name_failure}");
    }
    assert!(
        !error.contains("xxxxxxxxxx"),
        "the name itself is not in the reason: {error}"
    );

    let deal_failure = failed(&world, &deal).await;
    let error = deal_failure["last_error"].as_str().unwrap_or_default();
    assert!(
        error.contains("invoice line item 2: quantity `abc` is not a number"),
        "{deal_failure}"
    );

    for stamp in [&long, &deal] {
        assert!(
            !written_to_xero(&world, stamp),
            "nothing was written to Xero for {stamp}"
        );
    }
    assert!(!world
        .sims
        .xero
        .customers()
        .iter()
        .any(|c| c.stamp.as_deref() == Some(long.as_str())));
    assert!(world.sims.xero.invoices().is_empty(), "no invoice was made");
    let listed: Vec<String> = failures(&world)
        .await
        .iter()
        .filter_map(|f| f["crm_id"].as_str().map(str::to_string))
        .collect();
    assert!(
        !listed.contains(&valid) && !listed.contains(&buyer),
        "only the two failed: {listed:?}"
    );

    // A resync naming a Xero id that is not one is refused, naming it.
    let (status, answer) = resync(&world, &["not-a-uuid"]).await;
    assert_eq!(status, 400, "{answer}");
    let error = answer["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("`not-a-uuid`") && error.contains("UUID"),
        "{answer}"
    );
    let synced = world
        .sims
        .xero
        .customers()
        .into_iter()
        .find(|c| c.stamp.as_deref() == Some(valid.as_str()))
        .expect("the valid customer");
    let (status, answer) = resync(&world, &[synced.id.as_str()]).await;
    assert_eq!(status, 202, "a real Xero id is taken: {answer}");

    // Every request that did go to Xero conforms to its published spec.
    world.assert_xero_requests_conform();
    world.stop_engine().await;
}

/// The pair's Xero connector, wired from settings as `tandem serve` wires it, against
/// the simulated Xero, with every request it sends recorded.
struct XeroSide {
    finance: Arc<dyn Connector>,
    recorder: Arc<RequestRecorder>,
    stop: CancellationToken,
    _sims: Arc<Simulators>,
}

impl Drop for XeroSide {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn xero_side() -> XeroSide {
    let stop = CancellationToken::new();
    let sims = Simulators::start_local(SimConfig::default(), stop.clone())
        .await
        .expect("simulators start");
    let mut settings = Settings::default();
    settings
        .pairs
        .insert(PAIR.into(), tandem::demo::pair_for(&sims, 0));
    // OAuth keeps the rotated refresh token in the store, sealed.
    let key = tandem::seal::SecretsKey::generate().expect("key");
    let store = store::connect("sqlite::memory:")
        .await
        .expect("store")
        .with_keyring(Some(tandem::seal::Keyring::new(key, [])));
    store.migrate().await.expect("migrated");
    let store: Arc<dyn Store> = Arc::new(store);
    let recorder = Arc::new(RequestRecorder::default());
    let options = WiringOptions {
        recorder: Some(recorder.clone()),
        ..Default::default()
    };
    let wired = wiring::from_settings_with(&settings, store, &options);
    let finance = wired
        .connectors
        .get(&(PairId::new(PAIR), System::Finance))
        .expect("the Xero connector")
        .clone();
    XeroSide {
        finance,
        recorder,
        stop,
        _sims: sims,
    }
}

fn fields(value: Value) -> FieldMap {
    serde_json::from_value(value).expect("a field map")
}

fn unsendable(result: Result<impl std::fmt::Debug, ConnectorError>, needles: &[&str]) {
    match result {
        Err(ConnectorError::Unsendable { system, message }) => {
            assert_eq!(system, System::Finance);
            for needle in needles {
                assert!(message.contains(needle), "`{needle}` in: {message}");
            }
        }
        other => panic!("refused before any call, not {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_xero_connector_refuses_what_xero_would_before_any_call() {
    let x = xero_side().await;
    let finance = x.finance.as_ref();
    let contact_id = "430fa14a-f945-44d3-9f97-5df5e28441b8";

    // Ids that are not UUIDs go nowhere: not in IDs=, not in a body.
    unsendable(
        finance.get(EntityType::Customer, "crm-7").await,
        &["`crm-7`", "ContactID"],
    );
    let rename = fields(json!({"name": "Ada"}));
    unsendable(
        finance
            .update(EntityType::Customer, "crm-7", &rename, "k1")
            .await,
        &["`crm-7`"],
    );
    unsendable(
        finance.archive(EntityType::Invoice, "INV-1", "k2").await,
        &["`INV-1`", "InvoiceID"],
    );
    assert!(finance.check_id(EntityType::Customer, "crm-7").is_err());
    assert_eq!(finance.check_id(EntityType::Customer, contact_id), Ok(()));

    // Values over Xero's limits, or that do not read, go nowhere either.
    let long = fields(json!({"name": "n".repeat(256), "email": "n@example.com"}));
    unsendable(
        finance
            .create(EntityType::Customer, &long, "crm-1", "k3")
            .await,
        &["Contact.Name", "255", "is 256 characters"],
    );
    let stamp = "s".repeat(51);
    let ok_name = fields(json!({"name": "Ada"}));
    unsendable(
        finance
            .create(EntityType::Customer, &ok_name, &stamp, "k4")
            .await,
        &["Contact.ContactNumber", "is 51 characters"],
    );
    let typed = fields(json!({
        "customer": contact_id,
        "currency": "NZD",
        "line_items": [{"quantity": "1", "unit_amount": "5"}, {"quantity": "abc", "unit_amount": "5"}],
    }));
    unsendable(
        finance
            .create(EntityType::Invoice, &typed, "deal-1", "k5")
            .await,
        &["invoice line item 2: quantity `abc` is not a number"],
    );
    let sent: Vec<_> = x
        .recorder
        .take()
        .into_iter()
        .filter(|r| r.system == System::Finance)
        .collect();
    assert!(sent.is_empty(), "nothing went to Xero: {sent:?}");

    // The same connector writes what fits.
    let written = finance
        .create(EntityType::Customer, &ok_name, "crm-2", "k6")
        .await
        .expect("a contact that fits is created");
    assert_eq!(
        finance.check_id(EntityType::Customer, &written.record.id),
        Ok(())
    );
}
