//! The sync core end to end: in-memory CRM and finance systems, the orchestrator's
//! workers, and the real store and bus: PostgreSQL and RabbitMQ with two orchestrators
//! sharing them, and SQLite with the in-process bus.

use crate::support;
use tandem::store::{ConflictStore, LinkStore, SyncLogStore};

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use serde_json::{json, Value};
use tandem::bus::memory::MemoryBus;
use tandem::bus::rabbitmq::RabbitBus;
use tandem::bus::{Bus, BusConfig, BusMessage, Lane};
use tandem::connectors::memory::{Failure, InMemorySystem, Operation};
use tandem::connectors::Connector;
use tandem::domain::{
    ChangeEvent, ChangeKind, Choice, ConflictPolicy, DeletePolicy, EntityType, FieldMap, PairId,
    SyncPolicy, System, Trigger,
};
use tandem::orchestrator::{Orchestrator, PairRuntime, WorkerPool};
use tandem::store::{self, Outcome, SeaStore, Store, SyncLogFilter, SyncStatus};
use tokio_util::sync::CancellationToken;

fn fields(pairs: &[(&str, Value)]) -> FieldMap {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

fn person(n: usize) -> FieldMap {
    fields(&[
        ("name", json!(format!("Person {n}"))),
        ("email", json!(format!("person{n}@example.com"))),
    ])
}

fn acme() -> PairId {
    PairId::new("acme")
}

struct Options {
    orchestrators: usize,
    workers: usize,
    max_attempts: u32,
    conflicts: ConflictPolicy,
    deletes: DeletePolicy,
    latency: Duration,
    settle: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            orchestrators: 2,
            workers: 4,
            max_attempts: 4,
            conflicts: ConflictPolicy::LastWriteWins,
            deletes: DeletePolicy::Archive,
            latency: Duration::from_millis(1),
            settle: Duration::ZERO,
        }
    }
}

/// Two in-memory systems and running orchestrators over a real store and bus.
struct Harness {
    store: Arc<SeaStore>,
    bus: Arc<dyn Bus>,
    crm: Arc<InMemorySystem>,
    finance: Arc<InMemorySystem>,
    shutdown: CancellationToken,
    pools: Vec<tokio::task::JoinHandle<()>>,
    rabbit: Option<Arc<RabbitBus>>,
    _pg: Option<support::TestDatabase>,
    _sqlite: Option<support::TestSqlite>,
}

impl Harness {
    async fn postgres_rabbitmq(options: Options) -> Self {
        let db = support::TestDatabase::create().await;
        let url = support::amqp_url();
        let config = BusConfig {
            retry_tiers: vec![
                Duration::from_millis(100),
                Duration::from_secs(1),
                Duration::from_secs(3),
            ],
            ..BusConfig::new(&url, support::unique("tandem_sync"))
        };
        let rabbit = Arc::new(RabbitBus::connect(config).await.unwrap_or_else(|err| {
            panic!(
                "RabbitMQ is not reachable at {url}: {err}; {}",
                support::START_RABBITMQ
            )
        }));
        let mut harness = Self::assemble(&db.url, rabbit.clone(), &options).await;
        harness.rabbit = Some(rabbit);
        harness._pg = Some(db);
        harness
    }

    async fn sqlite_memory(options: Options) -> Self {
        let db = support::TestSqlite::create();
        let config = BusConfig {
            retry_tiers: vec![
                Duration::from_millis(100),
                Duration::from_secs(1),
                Duration::from_secs(3),
            ],
            ..BusConfig::new("memory", "test")
        };
        let mut harness = Self::assemble(&db.url, Arc::new(MemoryBus::new(config)), &options).await;
        harness._sqlite = Some(db);
        harness
    }

    async fn assemble(database_url: &str, bus: Arc<dyn Bus>, options: &Options) -> Self {
        let store = Arc::new(store::connect(database_url).await.expect("connect"));
        store.migrate().await.expect("migrate");
        let crm = Arc::new(InMemorySystem::with_latency(System::Crm, options.latency));
        let finance = Arc::new(InMemorySystem::with_latency(
            System::Finance,
            options.latency,
        ));
        let shutdown = CancellationToken::new();
        let mut pools = Vec::new();
        for _ in 0..options.orchestrators {
            // Each orchestrator has its own store connections, as a separate process would.
            let own_store: Arc<dyn Store> = if database_url.starts_with("postgres") {
                Arc::new(store::connect(database_url).await.expect("connect"))
            } else {
                store.clone()
            };
            let mut policies = HashMap::new();
            for entity in EntityType::ALL {
                let mut policy = SyncPolicy::defaults(entity);
                policy.conflicts = options.conflicts;
                policy.deletes = options.deletes;
                policies.insert(entity, policy);
            }
            let runtime = PairRuntime {
                crm: crm.clone() as Arc<dyn Connector>,
                finance: finance.clone() as Arc<dyn Connector>,
                policies,
            };
            let orchestrator = Arc::new(
                Orchestrator::new(
                    own_store,
                    HashMap::from([(acme(), runtime)]),
                    options.max_attempts,
                )
                .with_settling(options.settle),
            );
            let pool = WorkerPool::new(
                bus.clone(),
                orchestrator,
                options.workers,
                Duration::from_secs(10),
            );
            let stop = shutdown.clone();
            pools.push(tokio::spawn(async move {
                pool.run(stop).await.expect("worker pool");
            }));
        }
        Self {
            store,
            bus,
            crm,
            finance,
            shutdown,
            pools,
            rabbit: None,
            _pg: None,
            _sqlite: None,
        }
    }

    fn system(&self, system: System) -> &InMemorySystem {
        match system {
            System::Crm => &self.crm,
            System::Finance => &self.finance,
        }
    }

    async fn announce(&self, system: System, entity: EntityType, id: &str) {
        let event = ChangeEvent {
            event_id: uuid::Uuid::now_v7().to_string(),
            pair: acme(),
            system,
            entity,
            external_id: id.to_string(),
            kind: ChangeKind::Upsert,
            occurred_at: Utc::now(),
            trigger: Trigger::Webhook,
            job_id: None,
            transaction_id: None,
            by_tandem: false,
        };
        self.bus
            .publish(Lane::Live, &BusMessage::ChangeV1(event))
            .await
            .expect("published");
    }

    /// Waits until the sync log holds `count` final entries (not retries) for a record.
    async fn handled(
        &self,
        system: System,
        entity: EntityType,
        id: &str,
        count: usize,
    ) -> Vec<Outcome> {
        let store = self.store.clone();
        let id = id.to_string();
        let outcomes = Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = outcomes.clone();
        support::eventually(
            Duration::from_secs(30),
            &format!("{count} outcome(s) for {system} {id}"),
            || {
                let store = store.clone();
                let id = id.clone();
                let seen = seen.clone();
                async move {
                    let logs = store
                        .query_logs(&SyncLogFilter {
                            pair: Some(acme()),
                            entity: Some(entity),
                            system: Some(system),
                            limit: 1000,
                            ..Default::default()
                        })
                        .await
                        .expect("logs");
                    let finals: Vec<Outcome> = logs
                        .iter()
                        .rev()
                        .filter(|l| {
                            l.entry.external_id == id
                                && !matches!(l.entry.outcome, Outcome::Retrying | Outcome::Received)
                        })
                        .map(|l| l.entry.outcome)
                        .collect();
                    let done = finals.len() >= count;
                    *seen.lock().expect("lock") = finals;
                    done
                }
            },
        )
        .await;
        let outcomes = outcomes.lock().expect("lock").clone();
        outcomes
    }

    async fn link_of(&self, system: System, entity: EntityType, id: &str) -> store::EntityLink {
        self.store
            .find_link(&acme(), entity, system, id)
            .await
            .expect("find")
            .expect("linked")
    }

    /// Creates a customer in the CRM and lets Tandem sync it; returns both ids.
    async fn synced_customer(&self, n: usize) -> (String, String) {
        let crm_id = self.crm.person_creates(EntityType::Customer, person(n));
        self.announce(System::Crm, EntityType::Customer, &crm_id)
            .await;
        self.handled(System::Crm, EntityType::Customer, &crm_id, 1)
            .await;
        let link = self
            .link_of(System::Crm, EntityType::Customer, &crm_id)
            .await;
        (crm_id, link.finance_id.expect("finance id"))
    }

    async fn finish(self) {
        self.shutdown.cancel();
        for pool in self.pools {
            pool.await.expect("pool");
        }
        if let Some(rabbit) = self.rabbit {
            rabbit.delete_topology().await.expect("delete test queues");
        }
    }
}

async fn a_crm_customer_gives_one_finance_customer_and_its_echo_no_write(h: &Harness) {
    let crm_id = h.crm.person_creates(EntityType::Customer, person(1));
    h.announce(System::Crm, EntityType::Customer, &crm_id).await;
    assert_eq!(
        h.handled(System::Crm, EntityType::Customer, &crm_id, 1)
            .await,
        vec![Outcome::Created]
    );
    let finance = h.finance.records(EntityType::Customer);
    assert_eq!(finance.len(), 1, "exactly one customer in finance");
    let (finance_id, fields, _) = &finance[0];
    assert_eq!(fields, &person(1));
    assert_eq!(
        h.finance
            .record(EntityType::Customer, finance_id)
            .and_then(|r| r.2)
            .as_deref(),
        Some(crm_id.as_str()),
        "origin stamp"
    );
    let writes = (h.crm.writes(), h.finance.writes());
    let crm_reads = || {
        h.crm
            .calls()
            .iter()
            .filter(|c| c.operation == Operation::Get)
            .count()
    };
    let reads = crm_reads();
    // Finance announces the record Tandem wrote.
    h.announce(System::Finance, EntityType::Customer, finance_id)
        .await;
    assert_eq!(
        h.handled(System::Finance, EntityType::Customer, finance_id, 1)
            .await,
        vec![Outcome::Skipped]
    );
    assert_eq!(
        (h.crm.writes(), h.finance.writes()),
        writes,
        "the echo wrote nothing"
    );
    assert_eq!(crm_reads(), reads, "the echo did not read the CRM");
    assert_eq!(
        h.link_of(System::Crm, EntityType::Customer, &crm_id)
            .await
            .sync_status,
        SyncStatus::Synced
    );
}

async fn one_event_delivered_three_times_writes_once(h: &Harness) {
    let crm_id = h.crm.person_creates(EntityType::Customer, person(2));
    for _ in 0..3 {
        h.announce(System::Crm, EntityType::Customer, &crm_id).await;
    }
    let outcomes = h
        .handled(System::Crm, EntityType::Customer, &crm_id, 3)
        .await;
    assert_eq!(
        outcomes.iter().filter(|o| **o == Outcome::Created).count(),
        1,
        "{outcomes:?}"
    );
    assert_eq!(h.finance.writes(), 1);
    assert_eq!(h.finance.records(EntityType::Customer).len(), 1);
}

async fn events_for_one_record_are_handled_one_at_a_time(h: &Harness) {
    let (crm_id, finance_id) = h.synced_customer(3).await;
    for round in 0..5 {
        h.crm.person_edits(
            EntityType::Customer,
            &crm_id,
            &fields(&[("phone", json!(format!("+44 {round}")))]),
        );
        h.announce(System::Crm, EntityType::Customer, &crm_id).await;
        h.announce(System::Finance, EntityType::Customer, &finance_id)
            .await;
        h.announce(System::Crm, EntityType::Customer, &crm_id).await;
    }
    h.handled(System::Crm, EntityType::Customer, &crm_id, 11)
        .await;
    h.handled(System::Finance, EntityType::Customer, &finance_id, 5)
        .await;
    assert_eq!(
        h.crm.concurrent_accesses(),
        0,
        "two workers touched one CRM record at once"
    );
    assert_eq!(
        h.finance.concurrent_accesses(),
        0,
        "two workers touched one finance record at once"
    );
    let finance_record = h
        .finance
        .record(EntityType::Customer, &finance_id)
        .expect("exists")
        .0;
    assert_eq!(finance_record.get("phone"), Some(&json!("+44 4")));
}

/// Ten edits of one record 100 ms apart, each announced: the first is written at once,
/// the rest wait for the settling window and go as one write of the last value.
async fn ten_quick_edits_of_one_record_write_at_most_twice(h: &Harness) {
    let (crm_id, finance_id) = h.synced_customer(12).await;
    let before = h.finance.writes();
    for edit in 0..10 {
        h.crm.person_edits(
            EntityType::Customer,
            &crm_id,
            &fields(&[("phone", json!(format!("+44 20 7946 00{edit:02}")))]),
        );
        h.announce(System::Crm, EntityType::Customer, &crm_id).await;
        // A person typing: the edits are spread over a second, not sent at once.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    h.handled(System::Crm, EntityType::Customer, &crm_id, 11)
        .await;
    let writes = h.finance.writes() - before;
    assert!(
        (1..=2).contains(&writes),
        "{writes} writes for ten quick edits"
    );
    let finance_record = h
        .finance
        .record(EntityType::Customer, &finance_id)
        .expect("exists")
        .0;
    assert_eq!(
        finance_record.get("phone"),
        Some(&json!("+44 20 7946 0009")),
        "the last edit arrived"
    );
}

async fn a_crash_after_the_create_is_repaired_from_the_stamp(h: &Harness) {
    // The create reaches finance but its answer is lost, as in a crash or a timeout
    // between "created" and "link saved".
    h.finance
        .fail_next(Operation::Create, Failure::TimeoutAfterApply);
    let crm_id = h.crm.person_creates(EntityType::Customer, person(4));
    h.announce(System::Crm, EntityType::Customer, &crm_id).await;
    let outcomes = h
        .handled(System::Crm, EntityType::Customer, &crm_id, 1)
        .await;
    assert_eq!(
        outcomes,
        vec![Outcome::Linked],
        "repaired by linking, not created again"
    );
    assert_eq!(
        h.finance.records(EntityType::Customer).len(),
        1,
        "no duplicate in finance"
    );
    let link = h.link_of(System::Crm, EntityType::Customer, &crm_id).await;
    assert_eq!(
        link.finance_id,
        Some(h.finance.records(EntityType::Customer)[0].0.clone())
    );
}

async fn first_sync_of_two_populated_systems_creates_no_duplicates(h: &Harness) {
    // 500 customers on each side; 100 of them are the same people by e-mail.
    let mut crm_ids = Vec::new();
    let mut finance_ids = Vec::new();
    for n in 0..500 {
        crm_ids.push(h.crm.person_creates(EntityType::Customer, person(n)));
        finance_ids.push(
            h.finance
                .person_creates(EntityType::Customer, person(n + 400)),
        );
    }
    let events: Vec<_> = crm_ids
        .iter()
        .map(|id| (System::Crm, id))
        .chain(finance_ids.iter().map(|id| (System::Finance, id)))
        .map(|(system, id)| {
            BusMessage::ChangeV1(ChangeEvent {
                event_id: format!("{system}-{id}"),
                pair: acme(),
                system,
                entity: EntityType::Customer,
                external_id: id.clone(),
                kind: ChangeKind::Upsert,
                occurred_at: Utc::now(),
                trigger: Trigger::Manual,
                job_id: None,
                transaction_id: None,
                by_tandem: false,
            })
        })
        .collect();
    h.bus
        .publish_batch(Lane::Bulk, &events)
        .await
        .expect("published");
    let store = h.store.clone();
    support::eventually(Duration::from_secs(120), "1000 changes handled", || {
        let store = store.clone();
        async move {
            let counts = store
                .count_outcomes_since(Utc::now() - chrono::Duration::hours(1))
                .await
                .expect("counts");
            counts
                .iter()
                .filter(|(o, _)| !matches!(o, Outcome::Retrying | Outcome::Received))
                .map(|(_, n)| *n)
                .sum::<u64>()
                >= 1000
        }
    })
    .await;
    let counts = h
        .store
        .count_outcomes_since(Utc::now() - chrono::Duration::hours(1))
        .await
        .expect("counts");
    assert_eq!(counts.get(&Outcome::Linked), Some(&100), "{counts:?}");
    assert_eq!(counts.get(&Outcome::Created), Some(&800), "{counts:?}");
    // Both sides' changes of one shared person may race to link it: the loser syncs
    // again at once instead of failing an attempt.
    assert_eq!(counts.get(&Outcome::Retrying), None, "{counts:?}");
    for system in [System::Crm, System::Finance] {
        let records = h.system(system).records(EntityType::Customer);
        let emails: BTreeSet<_> = records
            .iter()
            .map(|(_, f, _)| f.get("email").map(|e| e.to_string()))
            .collect();
        assert_eq!(records.len(), 900, "{system}: 900 customers");
        assert_eq!(emails.len(), 900, "{system}: no duplicate e-mail");
    }
}

async fn edits_to_different_fields_on_both_sides_both_survive(h: &Harness) {
    let (crm_id, finance_id) = h.synced_customer(5).await;
    h.crm.person_edits(
        EntityType::Customer,
        &crm_id,
        &fields(&[("phone", json!("+44 555"))]),
    );
    h.finance.person_edits(
        EntityType::Customer,
        &finance_id,
        &fields(&[("name", json!("Person Five"))]),
    );
    h.announce(System::Crm, EntityType::Customer, &crm_id).await;
    h.handled(System::Crm, EntityType::Customer, &crm_id, 2)
        .await;
    h.announce(System::Finance, EntityType::Customer, &finance_id)
        .await;
    h.handled(System::Finance, EntityType::Customer, &finance_id, 1)
        .await;
    for (system, id) in [(System::Crm, &crm_id), (System::Finance, &finance_id)] {
        let record = h
            .system(system)
            .record(EntityType::Customer, id)
            .expect("exists")
            .0;
        assert_eq!(record.get("phone"), Some(&json!("+44 555")), "{system}");
        assert_eq!(record.get("name"), Some(&json!("Person Five")), "{system}");
    }
}

async fn the_same_field_edited_on_both_sides_follows_the_policy(h: &Harness) {
    let (crm_id, finance_id) = h.synced_customer(6).await;
    h.crm.person_edits(
        EntityType::Customer,
        &crm_id,
        &fields(&[("phone", json!("crm"))]),
    );
    h.finance.person_edits(
        EntityType::Customer,
        &finance_id,
        &fields(&[("phone", json!("finance"))]),
    );
    h.announce(System::Crm, EntityType::Customer, &crm_id).await;
    let outcomes = h
        .handled(System::Crm, EntityType::Customer, &crm_id, 2)
        .await;
    let conflicts = h.store.open_conflicts(10).await.expect("conflicts");
    let link = h.link_of(System::Crm, EntityType::Customer, &crm_id).await;
    if outcomes[1] == Outcome::Conflict {
        // manual: parked with both values, nothing written.
        assert_eq!(link.sync_status, SyncStatus::Conflict);
        assert_eq!(conflicts.len(), 1);
        assert_eq!(
            (
                conflicts[0].crm_value.clone(),
                conflicts[0].finance_value.clone()
            ),
            (Some(json!("crm")), Some(json!("finance")))
        );
    } else {
        // last write wins: finance edited last.
        assert_eq!(outcomes[1], Outcome::Updated);
        for (system, id) in [(System::Crm, &crm_id), (System::Finance, &finance_id)] {
            let record = h
                .system(system)
                .record(EntityType::Customer, id)
                .expect("exists")
                .0;
            assert_eq!(record.get("phone"), Some(&json!("finance")), "{system}");
        }
        let history = h
            .store
            .record_history(&acme(), EntityType::Customer, System::Crm, &crm_id, 10)
            .await
            .expect("history");
        assert!(
            history.iter().any(|h| h
                .entry
                .detail
                .as_deref()
                .unwrap_or_default()
                .contains("conflicting")),
            "{history:?}"
        );
    }
}

/// One person's edit of a customer's phone on one side.
fn edit_phone(h: &Harness, system: System, id: &str, phone: &str) {
    h.system(system).person_edits(
        EntityType::Customer,
        id,
        &fields(&[("phone", json!(phone))]),
    );
}

fn phone_on(h: &Harness, system: System, id: &str) -> Option<Value> {
    h.system(system)
        .record(EntityType::Customer, id)
        .expect("exists")
        .0
        .get("phone")
        .cloned()
}

/// Final outcomes handled so far for each side of one customer, to wait for the next.
struct Handled {
    crm: usize,
    finance: usize,
}

impl Handled {
    async fn next(&mut self, h: &Harness, system: System, id: &str) -> Outcome {
        let count = match system {
            System::Crm => &mut self.crm,
            System::Finance => &mut self.finance,
        };
        *count += 1;
        h.announce(system, EntityType::Customer, id).await;
        h.handled(system, EntityType::Customer, id, *count).await[*count - 1]
    }
}

/// The same field clashes again and again on one link, the newer edit alternating
/// between the sides and the change announced by either side: every clash keeps the
/// newer edit, and the echoes of Tandem's writes change nothing.
async fn every_clash_of_one_field_keeps_the_newer_edit(h: &Harness) {
    let (crm_id, finance_id) = h.synced_customer(21).await;
    let ids = |system: System| match system {
        System::Crm => crm_id.as_str(),
        System::Finance => finance_id.as_str(),
    };
    let mut handled = Handled { crm: 1, finance: 0 };
    let rounds = [
        (System::Crm, System::Finance, System::Crm),
        (System::Finance, System::Crm, System::Crm),
        (System::Crm, System::Finance, System::Finance),
        (System::Finance, System::Crm, System::Finance),
        (System::Finance, System::Crm, System::Crm),
        (System::Crm, System::Finance, System::Crm),
    ];
    for (round, (older, newer, announcer)) in rounds.into_iter().enumerate() {
        let (old_value, new_value) = (format!("old {round}"), format!("new {round}"));
        edit_phone(h, older, ids(older), &old_value);
        // Each system stamps its changes to the millisecond, and a tie goes to the
        // source of truth: let a moment pass so "newer" is newer in both clocks.
        tokio::time::sleep(Duration::from_millis(3)).await;
        edit_phone(h, newer, ids(newer), &new_value);
        let outcome = handled.next(h, announcer, ids(announcer)).await;
        assert_eq!(outcome, Outcome::Updated, "round {round}");
        // Both sides announce what Tandem wrote: echoes, skipped.
        for system in [System::Crm, System::Finance] {
            handled.next(h, system, ids(system)).await;
        }
        for system in [System::Crm, System::Finance] {
            assert_eq!(
                phone_on(h, system, ids(system)),
                Some(json!(new_value)),
                "round {round}: {newer} edited last, so {system} holds its value"
            );
        }
    }
    let conflicts = h
        .store
        .conflicts_of(
            h.link_of(System::Crm, EntityType::Customer, &crm_id)
                .await
                .id,
        )
        .await
        .expect("conflicts");
    assert_eq!(
        conflicts.len(),
        rounds.len(),
        "one conflict recorded per clash"
    );
}

/// Under `manual`, every clash of a field is held for a person, however many clashes
/// that field had before: one conflict per clash (whichever side announces it), the
/// newer edit never overwritten, and other fields keep flowing meanwhile.
async fn under_manual_every_clash_is_held_until_a_person_decides(h: &Harness) {
    let (crm_id, finance_id) = h.synced_customer(22).await;
    let mut handled = Handled { crm: 1, finance: 0 };
    for round in 0..3 {
        let (crm_value, finance_value) = (format!("crm {round}"), format!("finance {round}"));
        // The newer edit alternates between the sides.
        let (first, second) = if round % 2 == 0 {
            (
                (System::Crm, &crm_id, &crm_value),
                (System::Finance, &finance_id, &finance_value),
            )
        } else {
            (
                (System::Finance, &finance_id, &finance_value),
                (System::Crm, &crm_id, &crm_value),
            )
        };
        edit_phone(h, first.0, first.1, first.2);
        tokio::time::sleep(Duration::from_millis(3)).await;
        edit_phone(h, second.0, second.1, second.2);
        assert_eq!(
            handled.next(h, System::Crm, &crm_id).await,
            Outcome::Conflict,
            "round {round}"
        );
        handled.next(h, System::Finance, &finance_id).await;
        let open = h.store.open_conflicts(10).await.expect("conflicts");
        assert_eq!(
            open.len(),
            1,
            "round {round}: one clash, one conflict: {open:?}"
        );
        assert_eq!(
            (open[0].crm_value.clone(), open[0].finance_value.clone()),
            (Some(json!(crm_value)), Some(json!(finance_value))),
            "round {round}"
        );
        assert_eq!(phone_on(h, System::Crm, &crm_id), Some(json!(crm_value)));
        assert_eq!(
            phone_on(h, System::Finance, &finance_id),
            Some(json!(finance_value))
        );
        // A person keeps the side that edited first.
        let keep = if round % 2 == 0 {
            System::Crm
        } else {
            System::Finance
        };
        h.store
            .resolve_conflict(open[0].id, &Choice::Keep(keep))
            .await
            .expect("resolve");
        handled.next(h, System::Crm, &crm_id).await;
        let kept = if round % 2 == 0 {
            crm_value
        } else {
            finance_value
        };
        for (system, id) in [(System::Crm, &crm_id), (System::Finance, &finance_id)] {
            assert_eq!(
                phone_on(h, system, id),
                Some(json!(kept)),
                "round {round}: {system}"
            );
        }
        assert!(h
            .store
            .open_conflicts(10)
            .await
            .expect("conflicts")
            .is_empty());
        // Tandem's writes come back as echoes.
        handled.next(h, System::Crm, &crm_id).await;
        handled.next(h, System::Finance, &finance_id).await;
    }
}

/// A person's edit that lands in finance after Tandem read the record and before its
/// write arrives is not overwritten: the write is held back, the change decided again
/// from a fresh read, and the newer edit (the person's) is on both sides.
async fn an_edit_between_tandems_read_and_write_is_not_overwritten(h: &Harness) {
    let (crm_id, finance_id) = h.synced_customer(23).await;
    edit_phone(h, System::Crm, &crm_id, "crm phone");
    tokio::time::sleep(Duration::from_millis(3)).await;
    h.finance.person_edits_before_next_write(
        EntityType::Customer,
        &finance_id,
        fields(&[("phone", json!("finance phone, typed last"))]),
    );
    let mut handled = Handled { crm: 1, finance: 0 };
    handled.next(h, System::Crm, &crm_id).await;
    for (system, id) in [(System::Crm, &crm_id), (System::Finance, &finance_id)] {
        assert_eq!(
            phone_on(h, system, id),
            Some(json!("finance phone, typed last")),
            "{system}: the newest edit is kept"
        );
    }
}

fn invoice(status: &str, amount: &str) -> FieldMap {
    fields(&[
        ("number", json!("INV-001")),
        (
            "line_items",
            json!([{"description": "Consulting", "quantity": "1", "unit_amount": amount}]),
        ),
        ("status", json!(status)),
    ])
}

async fn a_locked_invoice_is_blocked_and_payment_flows_back(h: &Harness) {
    let deal = h
        .crm
        .person_creates(EntityType::Invoice, invoice("draft", "100"));
    h.announce(System::Crm, EntityType::Invoice, &deal).await;
    h.handled(System::Crm, EntityType::Invoice, &deal, 1).await;
    let finance_id = h
        .link_of(System::Crm, EntityType::Invoice, &deal)
        .await
        .finance_id
        .expect("finance id");
    // The accountant authorises it; then someone edits the deal in the CRM.
    h.finance.person_edits(
        EntityType::Invoice,
        &finance_id,
        &fields(&[("status", json!("authorised"))]),
    );
    h.crm.person_edits(
        EntityType::Invoice,
        &deal,
        &fields(&[(
            "line_items",
            json!([{"description": "Consulting", "quantity": "2", "unit_amount": "100"}]),
        )]),
    );
    let finance_writes = h.finance.writes();
    h.announce(System::Crm, EntityType::Invoice, &deal).await;
    h.handled(System::Crm, EntityType::Invoice, &deal, 2).await;
    let link = h.link_of(System::Crm, EntityType::Invoice, &deal).await;
    assert_eq!(link.sync_status, SyncStatus::Blocked);
    assert!(
        link.last_error
            .as_deref()
            .unwrap_or_default()
            .contains("authorised"),
        "{:?}",
        link.last_error
    );
    assert_eq!(
        h.finance.writes(),
        finance_writes,
        "nothing written to the locked invoice"
    );
    // Paid in finance: the CRM shows it.
    h.finance.person_edits(
        EntityType::Invoice,
        &finance_id,
        &fields(&[("status", json!("paid"))]),
    );
    h.announce(System::Finance, EntityType::Invoice, &finance_id)
        .await;
    h.handled(System::Finance, EntityType::Invoice, &finance_id, 1)
        .await;
    let crm_side = h.crm.record(EntityType::Invoice, &deal).expect("exists").0;
    assert_eq!(crm_side.get("status"), Some(&json!("paid")));
}

async fn an_archive_follows_the_delete_policy(h: &Harness, deletes: DeletePolicy) {
    let (crm_id, finance_id) = h.synced_customer(7).await;
    h.crm.person_archives(EntityType::Customer, &crm_id);
    h.announce(System::Crm, EntityType::Customer, &crm_id).await;
    let outcomes = h
        .handled(System::Crm, EntityType::Customer, &crm_id, 2)
        .await;
    let archived_in_finance = h
        .finance
        .record(EntityType::Customer, &finance_id)
        .expect("exists")
        .1;
    match deletes {
        DeletePolicy::Archive => {
            assert_eq!(outcomes[1], Outcome::Archived);
            assert!(archived_in_finance);
        }
        DeletePolicy::Approve => {
            assert_eq!(outcomes[1], Outcome::HeldForApproval);
            assert!(!archived_in_finance);
            assert_eq!(h.store.pending_deletes(10).await.expect("deletes").len(), 1);
        }
        DeletePolicy::Ignore => {
            assert_eq!(outcomes[1], Outcome::Skipped);
            assert!(!archived_in_finance);
        }
    }
}

async fn a_429_waits_for_retry_after_and_still_syncs(h: &Harness) {
    h.finance.fail_next(
        Operation::Create,
        Failure::RateLimited(Duration::from_secs(2)),
    );
    let crm_id = h.crm.person_creates(EntityType::Customer, person(8));
    h.announce(System::Crm, EntityType::Customer, &crm_id).await;
    assert_eq!(
        h.handled(System::Crm, EntityType::Customer, &crm_id, 1)
            .await,
        vec![Outcome::Created]
    );
    let calls: Vec<_> = h
        .finance
        .calls()
        .into_iter()
        .filter(|c| c.operation == Operation::Create)
        .collect();
    assert_eq!(calls.len(), 2, "the refused call and the one that worked");
    let waited = calls[1].at.duration_since(calls[0].at);
    assert!(
        waited >= Duration::from_secs(2),
        "called again after {waited:?}, before Retry-After"
    );
}

async fn a_400_fails_with_request_and_response_recorded(h: &Harness) {
    h.finance.fail_next(
        Operation::Create,
        Failure::Rejected("ContactName is required".into()),
    );
    let crm_id = h.crm.person_creates(EntityType::Customer, person(9));
    h.announce(System::Crm, EntityType::Customer, &crm_id).await;
    assert_eq!(
        h.handled(System::Crm, EntityType::Customer, &crm_id, 1)
            .await,
        vec![Outcome::Failed]
    );
    let link = h.link_of(System::Crm, EntityType::Customer, &crm_id).await;
    assert_eq!(link.sync_status, SyncStatus::Failed);
    let history = h
        .store
        .record_history(&acme(), EntityType::Customer, System::Crm, &crm_id, 10)
        .await
        .expect("history");
    let failure = &history[0].entry;
    assert_eq!(failure.status_code, Some(400));
    assert!(
        failure.request.is_some() && failure.response.is_some(),
        "{failure:?}"
    );
    assert!(failure
        .error
        .as_deref()
        .unwrap_or_default()
        .contains("ContactName is required"));
}

async fn the_last_failed_attempt_is_parked(h: &Harness) {
    for _ in 0..2 {
        h.finance.fail_next(Operation::Create, Failure::ServerError);
    }
    let crm_id = h.crm.person_creates(EntityType::Customer, person(10));
    h.announce(System::Crm, EntityType::Customer, &crm_id).await;
    assert_eq!(
        h.handled(System::Crm, EntityType::Customer, &crm_id, 1)
            .await,
        vec![Outcome::Failed]
    );
    let mut parked = h.bus.consume_parked().await.expect("parked");
    let delivery = tokio::time::timeout(Duration::from_secs(10), parked.next())
        .await
        .expect("parked in time")
        .expect("open");
    assert!(
        delivery
            .last_error
            .as_deref()
            .unwrap_or_default()
            .contains("503"),
        "{:?}",
        delivery.last_error
    );
    delivery.ack().await.expect("ack");
    assert_eq!(
        h.link_of(System::Crm, EntityType::Customer, &crm_id)
            .await
            .sync_status,
        SyncStatus::Failed
    );
}

macro_rules! on_both_setups {
    ($($name:ident => $options:expr),* $(,)?) => {
        mod postgres_rabbitmq {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let h = Harness::postgres_rabbitmq($options).await;
                    super::$name(&h).await;
                    h.finish().await;
                }
            )*
        }
        mod sqlite_memory {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let h = Harness::sqlite_memory($options).await;
                    super::$name(&h).await;
                    h.finish().await;
                }
            )*
        }
    };
}

/// A person keeps the CRM's value of a parked conflict: both sides get it.
async fn a_resolved_conflict_is_applied(h: &Harness) {
    let (crm_id, finance_id) = h.synced_customer(11).await;
    h.crm.person_edits(
        EntityType::Customer,
        &crm_id,
        &fields(&[("phone", json!("crm"))]),
    );
    h.finance.person_edits(
        EntityType::Customer,
        &finance_id,
        &fields(&[("phone", json!("finance"))]),
    );
    h.announce(System::Crm, EntityType::Customer, &crm_id).await;
    assert_eq!(
        h.handled(System::Crm, EntityType::Customer, &crm_id, 2)
            .await[1],
        Outcome::Conflict
    );
    let open = h.store.open_conflicts(10).await.expect("conflicts");
    h.store
        .resolve_conflict(open[0].id, &Choice::Keep(System::Crm))
        .await
        .expect("resolve");
    h.announce(System::Crm, EntityType::Customer, &crm_id).await;
    assert_eq!(
        h.handled(System::Crm, EntityType::Customer, &crm_id, 3)
            .await[2],
        Outcome::Updated
    );
    for (system, id) in [(System::Crm, &crm_id), (System::Finance, &finance_id)] {
        let record = h
            .system(system)
            .record(EntityType::Customer, id)
            .expect("exists")
            .0;
        assert_eq!(record.get("phone"), Some(&json!("crm")), "{system}");
    }
    assert_eq!(
        h.link_of(System::Crm, EntityType::Customer, &crm_id)
            .await
            .sync_status,
        SyncStatus::Synced
    );
}

/// A person approves a held delete: the other side's record is archived.
async fn an_approved_delete_is_applied(h: &Harness) {
    let (crm_id, finance_id) = h.synced_customer(12).await;
    h.crm.person_archives(EntityType::Customer, &crm_id);
    h.announce(System::Crm, EntityType::Customer, &crm_id).await;
    assert_eq!(
        h.handled(System::Crm, EntityType::Customer, &crm_id, 2)
            .await[1],
        Outcome::HeldForApproval
    );
    let held = h.store.pending_deletes(10).await.expect("deletes");
    h.store
        .decide_delete(held[0].id, true)
        .await
        .expect("approve");
    h.announce(System::Crm, EntityType::Customer, &crm_id).await;
    assert_eq!(
        h.handled(System::Crm, EntityType::Customer, &crm_id, 3)
            .await[2],
        Outcome::Archived
    );
    assert!(
        h.finance
            .record(EntityType::Customer, &finance_id)
            .expect("exists")
            .1,
        "archived in finance"
    );
}

async fn archive_policy(h: &Harness) {
    an_archive_follows_the_delete_policy(h, DeletePolicy::Archive).await;
}

async fn approve_policy(h: &Harness) {
    an_archive_follows_the_delete_policy(h, DeletePolicy::Approve).await;
}

async fn ignore_policy(h: &Harness) {
    an_archive_follows_the_delete_policy(h, DeletePolicy::Ignore).await;
}

async fn manual_conflict(h: &Harness) {
    the_same_field_edited_on_both_sides_follows_the_policy(h).await;
}

on_both_setups!(
    a_crm_customer_gives_one_finance_customer_and_its_echo_no_write => Options::default(),
    one_event_delivered_three_times_writes_once => Options::default(),
    events_for_one_record_are_handled_one_at_a_time => Options { workers: 8, latency: Duration::from_millis(15), ..Options::default() },
    a_crash_after_the_create_is_repaired_from_the_stamp => Options::default(),
    // Settling is kept per process: one orchestrator, as the benchmark's engine.
    ten_quick_edits_of_one_record_write_at_most_twice => Options { orchestrators: 1, settle: Duration::from_secs(1), ..Options::default() },
    first_sync_of_two_populated_systems_creates_no_duplicates => Options { workers: 8, ..Options::default() },
    edits_to_different_fields_on_both_sides_both_survive => Options::default(),
    the_same_field_edited_on_both_sides_follows_the_policy => Options::default(),
    manual_conflict => Options { conflicts: ConflictPolicy::Manual, ..Options::default() },
    every_clash_of_one_field_keeps_the_newer_edit => Options::default(),
    an_edit_between_tandems_read_and_write_is_not_overwritten => Options::default(),
    under_manual_every_clash_is_held_until_a_person_decides => Options { conflicts: ConflictPolicy::Manual, ..Options::default() },
    a_resolved_conflict_is_applied => Options { conflicts: ConflictPolicy::Manual, ..Options::default() },
    an_approved_delete_is_applied => Options { deletes: DeletePolicy::Approve, ..Options::default() },
    a_locked_invoice_is_blocked_and_payment_flows_back => Options::default(),
    archive_policy => Options { deletes: DeletePolicy::Archive, ..Options::default() },
    approve_policy => Options { deletes: DeletePolicy::Approve, ..Options::default() },
    ignore_policy => Options { deletes: DeletePolicy::Ignore, ..Options::default() },
    a_429_waits_for_retry_after_and_still_syncs => Options::default(),
    a_400_fails_with_request_and_response_recorded => Options::default(),
    the_last_failed_attempt_is_parked => Options { max_attempts: 2, ..Options::default() },
);
