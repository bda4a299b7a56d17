//! Values the other side would refuse or misread, end to end over real HTTP with the
//! simulators on PostgreSQL and RabbitMQ: a CRM customer whose name is longer than
//! Xero takes, and a won deal whose second line item's quantity is `abc`, each end
//! `failed` in `/api/failures` with the field and the rule named, and nothing is
//! written to Xero for them, while a valid customer created at the same moment syncs.
//! The simulated Xero refuses a name over 255 characters itself, so without the
//! engine's own check the failure would name Xero's words and a write would show.
//! A resync naming a Xero id that is not a UUID is refused before anything runs.

use std::time::Duration;

use serde_json::{json, Value};
use sim::{CustomerSeed, SimConfig};

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
        r.system == tandem::domain::System::Finance
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
