//! Failures a person can see and act on, over real HTTP with the simulators: a record
//! whose change failed is listed in `/api/failures` by the record's name and e-mail
//! from its first failed attempt, can be found by its e-mail, and is retried from
//! there.

use std::time::Duration;

use serde_json::Value;
use sim::{CustomerSeed, SimConfig};

use crate::support::eventually;
use crate::sync_e2e::{Backend, World, ADMIN};

const WITHIN: Duration = Duration::from_secs(30);

async fn get(world: &World, path: &str) -> (u16, Value) {
    let answer = world
        .http
        .get(format!("{}{path}", world.base))
        .bearer_auth(ADMIN)
        .send()
        .await
        .expect("admin API answers");
    let status = answer.status().as_u16();
    (status, answer.json().await.unwrap_or(Value::Null))
}

/// Waits until `/api/failures` lists a record with this e-mail; answers its entry.
async fn listed(world: &World, email: &str) -> Value {
    let seen = std::sync::Mutex::new(Value::Null);
    eventually(
        WITHIN,
        &format!("{email} listed among the failures"),
        || async {
            let (_, failures) = get(world, "/api/failures").await;
            let found = failures
                .as_array()
                .and_then(|all| all.iter().find(|f| f["email"] == email).cloned());
            let listed = found.is_some();
            *seen.lock().expect("lock") = found.unwrap_or(Value::Null);
            listed
        },
    )
    .await;
    seen.into_inner().expect("lock")
}

async fn a_refused_create_is_listed_by_name_and_found_by_email(backend: Backend) {
    let mut world = World::start_with_pair(backend, SimConfig::default(), |_| {}).await;
    // Xero refuses a contact whose e-mail is not an address.
    let refused = CustomerSeed {
        name: "Grace Refused".into(),
        email: "grace-at-example".into(),
        phone: None,
    };
    let crm_id = world.sims.hubspot.person_creates_customer(&refused);
    let failure = listed(&world, "grace-at-example").await;
    assert_eq!(failure["name"], "Grace Refused", "{failure}");
    assert_eq!(failure["crm_id"], crm_id.as_str(), "{failure}");
    assert_eq!(
        failure["sync_status"], "failed",
        "a validation error is not retried: {failure}"
    );
    assert!(
        failure["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("Email")),
        "the refusal's own words: {failure}"
    );
    assert!(failure["attempts"].as_u64() >= Some(1), "{failure}");

    // Found by its e-mail in any case, and by part of its name.
    for query in ["GRACE-AT-EXAMPLE", "race Ref"] {
        let (status, found) = get(&world, &format!("/api/records?q={query}")).await;
        assert_eq!(status, 200, "{found}");
        assert!(
            found.as_array().is_some_and(|all| all
                .iter()
                .any(|r| r["crm_id"] == crm_id.as_str() && r["name"] == "Grace Refused")),
            "{query}: {found}"
        );
    }
    let (status, answer) = get(&world, "/api/records?q=x").await;
    assert_eq!(status, 400, "a one-letter look-up is refused: {answer}");
    assert!(answer["error"].as_str().is_some_and(|e| e.contains("`q`")));

    // Retried from the list: it fails again, and is still listed with more attempts.
    let link_id = failure["id"].as_str().expect("link id").to_string();
    let retried = world
        .http
        .post(format!("{}/api/failures/retry", world.base))
        .bearer_auth(ADMIN)
        .json(&serde_json::json!({"link_id": link_id}))
        .send()
        .await
        .expect("retry answers");
    assert_eq!(retried.status().as_u16(), 200);
    let history = format!("/api/records/acme/customer/crm/{crm_id}");
    eventually(WITHIN, "the retried change failed again", || async {
        let (_, record) = get(&world, &history).await;
        let failed = record["history"]
            .as_array()
            .map_or(0, |h| h.iter().filter(|e| e["outcome"] == "failed").count());
        failed >= 2
    })
    .await;
    let again = listed(&world, "grace-at-example").await;
    assert_ne!(
        again["last_transaction_id"], failure["last_transaction_id"],
        "the record names the retry's transaction: {again}"
    );
    world.stop_engine().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_refused_create_is_listed_by_name_on_postgres_and_rabbitmq() {
    a_refused_create_is_listed_by_name_and_found_by_email(Backend::Production).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_refused_create_is_listed_by_name_on_the_embedded_default() {
    a_refused_create_is_listed_by_name_and_found_by_email(Backend::Embedded).await;
}
