//! Clashes through the simulators over real HTTP, with the whole engine, on PostgreSQL
//! and RabbitMQ, and on SQLite with the in-process bus: one customer's phone clashes
//! three times, the newer edit alternating between the sides. After each clash the
//! value oracle (`tandem::torture::check`) judges the simulators' journal: under
//! `last_write_wins` the newer edit is on both sides; under `manual` the clash is held
//! with both values until a person decides, and then the decision is on both sides.

use std::time::Duration;

use serde_json::{json, Value};
use sim::{CustomerEdit, CustomerSeed, SimConfig};
use tandem::domain::{ConflictPolicy, EntityType, System};
use tandem::torture::check::{check, EndState, HeldConflict, Limits, LinkPair, PersonDecision};

use crate::support::eventually;
use crate::sync_e2e::{Backend, World, ADMIN};

const WITHIN: Duration = Duration::from_secs(60);

fn ada() -> CustomerSeed {
    CustomerSeed {
        name: "Ada Lovelace".into(),
        email: "ada.clash@example.com".into(),
        phone: Some("+44 1".into()),
    }
}

/// The world with one customer made in the CRM and linked to the one Tandem made in
/// Xero; answers both ids.
async fn linked_customer(world: &World) -> (String, String) {
    let crm_id = world.sims.hubspot.person_creates_customer(&ada());
    world
        .until("the customer linked and in step", |s| {
            s.in_step && s.customers.paired == 1
        })
        .await;
    let finance_id = world
        .sims
        .xero
        .customers()
        .into_iter()
        .find(|c| c.email.as_deref() == Some("ada.clash@example.com"))
        .expect("in Xero")
        .id;
    (crm_id, finance_id)
}

fn edit_phone(world: &World, system: System, id: &str, phone: &str) {
    let edit = CustomerEdit {
        phone: Some(phone.into()),
        ..Default::default()
    };
    match system {
        System::Crm => world.sims.hubspot.person_edits_customer(id, &edit),
        System::Finance => world.sims.xero.person_edits_contact(id, &edit),
    }
}

/// Both people save the phone: `older` first, `newer` a few milliseconds later (each
/// system stamps its changes to the millisecond; a tie would go to finance).
async fn clash(world: &World, ids: &(String, String), newer: System, round: usize) -> String {
    let id = |system: System| match system {
        System::Crm => ids.0.as_str(),
        System::Finance => ids.1.as_str(),
    };
    let older = newer.opposite();
    edit_phone(world, older, id(older), &format!("+1 {round}00 older"));
    tokio::time::sleep(Duration::from_millis(5)).await;
    let newest = format!("+1 {round}00 newer");
    edit_phone(world, newer, id(newer), &newest);
    newest
}

/// What the oracle says of the one link's fields now.
fn judge(
    world: &World,
    ids: &(String, String),
    policy: ConflictPolicy,
    decisions: &[PersonDecision],
    held: &[HeldConflict],
) -> tandem::torture::check::CheckReport {
    let state = EndState {
        crm_customers: world.sims.hubspot.customers(),
        finance_customers: world.sims.xero.customers(),
        journal: world.sims.journal(),
        links: vec![LinkPair {
            entity: EntityType::Customer,
            crm_id: ids.0.clone(),
            finance_id: ids.1.clone(),
        }],
        edits_stopped_at_ms: chrono::Utc::now().timestamp_millis(),
        policy,
        decisions: decisions.to_vec(),
        held: held.to_vec(),
        crm_field_times: true,
        ..EndState::default()
    };
    check(
        &state,
        &Limits {
            max_write_ratio: 10.0,
            settle_seconds: 600,
        },
    )
}

fn phones(world: &World, ids: &(String, String)) -> (Option<String>, Option<String>) {
    let crm = world.sims.hubspot.customers();
    let finance = world.sims.xero.customers();
    (
        crm.iter()
            .find(|c| c.id == ids.0)
            .and_then(|c| c.phone.clone()),
        finance
            .iter()
            .find(|c| c.id == ids.1)
            .and_then(|c| c.phone.clone()),
    )
}

async fn every_clash_keeps_the_newest_edit(backend: Backend) {
    let mut world = World::start_with_pair(backend, SimConfig::default(), |pair| {
        pair.conflict_policy = ConflictPolicy::LastWriteWins;
    })
    .await;
    let ids = linked_customer(&world).await;
    for (round, newer) in [System::Finance, System::Crm, System::Finance, System::Crm]
        .into_iter()
        .enumerate()
    {
        let newest = clash(&world, &ids, newer, round).await;
        let expected = Some(newest.clone());
        world
            .until(&format!("round {round}: in step"), |s| s.in_step)
            .await;
        let report = judge(&world, &ids, ConflictPolicy::LastWriteWins, &[], &[]);
        let lost = report.result("lost_edits").expect("lost_edits");
        assert!(
            lost.passed,
            "round {round} ({newer} newer): {report}\n{:?}",
            lost.examples
        );
        assert_eq!(
            phones(&world, &ids),
            (expected.clone(), expected),
            "round {round}"
        );
    }
    world.stop_engine().await;
}

async fn open_conflicts(world: &World) -> Vec<Value> {
    world
        .http
        .get(format!("{}/api/conflicts?status=open", world.base))
        .bearer_auth(ADMIN)
        .send()
        .await
        .expect("admin API answers")
        .json()
        .await
        .expect("JSON")
}

/// `tandem …` against the running engine; answers what it printed, failing on an error.
fn cli(world: &World, args: &[&str]) -> String {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_tandem"))
        .args(args)
        .args(["--url", &world.base])
        .env("TANDEM_ADMIN_TOKEN", ADMIN)
        .env_remove("TANDEM_CONFIG")
        .current_dir(std::env::temp_dir())
        .output()
        .expect("tandem runs");
    let printed = String::from_utf8_lossy(&output.stdout).to_string();
    assert!(
        output.status.success(),
        "tandem {args:?}: {printed}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    printed
}

/// Waits until this round's clash is held for a person; answers the open conflicts.
async fn held_clash(world: &World, round: usize) -> Vec<Value> {
    let seen = std::sync::Mutex::new(Vec::new());
    let prefix = format!("+1 {round}00");
    eventually(
        WITHIN,
        &format!("round {round}: the clash held"),
        || async {
            let open = open_conflicts(world).await;
            let held = open.len() == 1
                && [&open[0]["crm_value"], &open[0]["finance_value"]]
                    .iter()
                    .all(|v| v.as_str().is_some_and(|p| p.starts_with(&prefix)));
            *seen.lock().expect("lock") = open;
            held
        },
    )
    .await;
    seen.into_inner().expect("lock")
}

async fn under_manual_every_clash_waits_for_a_person(backend: Backend) {
    let mut world = World::start_with_pair(backend, SimConfig::default(), |pair| {
        pair.conflict_policy = ConflictPolicy::Manual;
    })
    .await;
    let ids = linked_customer(&world).await;
    let mut decisions = Vec::new();
    for (round, newer) in [System::Finance, System::Crm, System::Finance]
        .into_iter()
        .enumerate()
    {
        let newest = clash(&world, &ids, newer, round).await;
        let older = format!("+1 {round}00 older");
        let open = held_clash(&world, round).await;
        assert_eq!(open.len(), 1, "round {round}: one clash, one conflict");
        // Held: each side keeps its own value; nothing was overwritten.
        let (crm, finance) = phones(&world, &ids);
        let (crm_expected, finance_expected) = match newer {
            System::Crm => (newest.clone(), older.clone()),
            System::Finance => (older.clone(), newest.clone()),
        };
        assert_eq!(
            (crm.as_deref(), finance.as_deref()),
            (Some(crm_expected.as_str()), Some(finance_expected.as_str())),
            "round {round}: held, nothing written"
        );
        // The oracle: held with both sides' values, nothing lost; the sides differ.
        let held = HeldConflict {
            crm_id: ids.0.clone(),
            finance_id: ids.1.clone(),
            field: "phone".into(),
            crm_value: open[0]["crm_value"].as_str().map(str::to_string),
            finance_value: open[0]["finance_value"].as_str().map(str::to_string),
        };
        let report = judge(&world, &ids, ConflictPolicy::Manual, &decisions, &[held]);
        assert!(
            report.result("lost_edits").expect("lost_edits").passed,
            "round {round}: {report}"
        );
        assert_eq!(report.figures.oracle.held, 1, "round {round}");
        assert!(!report.result("equal").expect("equal").passed);
        // The person keeps the older edit: only a person's decision can.
        let keep = newer.opposite();
        let id = open[0]["id"].as_str().expect("id");
        if round == 1 {
            // The same decision from the command line.
            let listed = cli(&world, &["conflicts"]);
            assert!(
                listed.contains(id) && listed.contains("held for a person"),
                "{listed}"
            );
            let said = cli(
                &world,
                &["conflicts", "resolve", id, "--keep", keep.as_str()],
            );
            assert!(
                said.contains(&format!("decided: kept {keep} (person)")),
                "{said}"
            );
        } else {
            let answer: Value = world
                .http
                .post(format!("{}/api/conflicts/{id}/resolve", world.base))
                .bearer_auth(ADMIN)
                .json(&json!({"keep": keep.as_str()}))
                .send()
                .await
                .expect("resolve answers")
                .json()
                .await
                .expect("JSON");
            assert_eq!(answer["status"], "decided", "{answer}");
            assert_eq!(answer["decided_by"], "person", "{answer}");
        }
        decisions.push(PersonDecision {
            crm_id: ids.0.clone(),
            finance_id: ids.1.clone(),
            field: "phone".into(),
            value: Some(older.clone()),
            at_ms: chrono::Utc::now().timestamp_millis(),
        });
        world
            .until(&format!("round {round}: the decision applied"), |s| {
                s.in_step
            })
            .await;
        let report = judge(&world, &ids, ConflictPolicy::Manual, &decisions, &[]);
        assert!(report.passed, "round {round}: {report}");
        assert_eq!(
            phones(&world, &ids),
            (Some(older.clone()), Some(older)),
            "round {round}"
        );
        assert!(open_conflicts(&world).await.is_empty());
    }
    world.stop_engine().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn repeated_clashes_keep_the_newest_edit_on_postgres_and_rabbitmq() {
    every_clash_keeps_the_newest_edit(Backend::Production).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn repeated_clashes_keep_the_newest_edit_on_the_embedded_default() {
    every_clash_keeps_the_newest_edit(Backend::Embedded).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn under_manual_every_clash_waits_for_a_person_on_postgres_and_rabbitmq() {
    under_manual_every_clash_waits_for_a_person(Backend::Production).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn under_manual_every_clash_waits_for_a_person_on_the_embedded_default() {
    under_manual_every_clash_waits_for_a_person(Backend::Embedded).await;
}
