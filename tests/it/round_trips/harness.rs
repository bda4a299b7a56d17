//! The orchestrator under the wire counter: what one change of a kind costs.

use crate::support::{self, pg_wire::PgWire, pg_wire::WireReport};
use tandem::store::{LinkStore, SyncLogStore};

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::json;
use tandem::bus::memory::MemoryBus;
use tandem::bus::{Bus, BusConfig, BusMessage, Lane};
use tandem::connectors::memory::InMemorySystem;
use tandem::connectors::Connector;
use tandem::domain::{
    ChangeEvent, ChangeKind, EntityType, FieldMap, PairId, SyncPolicy, System, Trigger,
};
use tandem::orchestrator::{Orchestrator, PairRuntime, WorkerPool};
use tandem::store::{self, Outcome, Store, SyncLogFilter};
use tokio_util::sync::CancellationToken;

fn acme() -> PairId {
    PairId::new("acme")
}

/// What one kind of change cost.
pub struct Measured {
    pub kind: &'static str,
    pub budget: usize,
    pub report: WireReport,
}

impl Measured {
    pub fn over_budget(&self) -> bool {
        self.report.waited() > self.budget
    }
}

/// One orchestrator with one worker over in-memory CRM and finance systems and the
/// in-process bus, its store behind the wire counter; the test reads the store through
/// a connection of its own, which the counter does not see.
pub struct Harness {
    wire: PgWire,
    pub observer: store::SeaStore,
    bus: Arc<MemoryBus>,
    pub crm: Arc<InMemorySystem>,
    finance: Arc<InMemorySystem>,
    shutdown: CancellationToken,
    pool: tokio::task::JoinHandle<()>,
    _db: support::TestDatabase,
}

impl Harness {
    pub async fn start() -> Self {
        let db = support::TestDatabase::create().await;
        let wire = PgWire::start().await;
        let observer = store::connect(&db.url).await.expect("connect");
        observer.migrate().await.expect("migrate");
        let counted: Arc<dyn Store> =
            Arc::new(store::connect(&wire.url(&db.url)).await.expect("connect"));
        let crm = Arc::new(InMemorySystem::with_latency(
            System::Crm,
            Duration::from_millis(1),
        ));
        let finance = Arc::new(InMemorySystem::with_latency(
            System::Finance,
            Duration::from_millis(1),
        ));
        let policies = EntityType::ALL
            .into_iter()
            .map(|entity| (entity, SyncPolicy::defaults(entity)))
            .collect();
        let runtime = PairRuntime {
            crm: crm.clone() as Arc<dyn Connector>,
            finance: finance.clone() as Arc<dyn Connector>,
            policies,
        };
        let orchestrator = Arc::new(Orchestrator::new(
            counted,
            HashMap::from([(acme(), runtime)]),
            4,
        ));
        let bus = Arc::new(MemoryBus::new(BusConfig::new("memory", "round_trips")));
        let workers = WorkerPool::new(bus.clone(), orchestrator, 1, Duration::from_secs(10));
        let shutdown = CancellationToken::new();
        let stop = shutdown.clone();
        let pool = tokio::spawn(async move {
            workers.run(stop).await.expect("worker pool");
        });
        Self {
            wire,
            observer,
            bus,
            crm,
            finance,
            shutdown,
            pool,
            _db: db,
        }
    }

    fn system(&self, system: System) -> &InMemorySystem {
        match system {
            System::Crm => &self.crm,
            System::Finance => &self.finance,
        }
    }

    /// Announces a change of a record now, as a person's edit is announced, and waits
    /// until it is handled; returns its outcome.
    pub async fn sync(&self, system: System, id: &str) -> Outcome {
        self.sync_at(system, id, Utc::now()).await
    }

    /// Announces a change of a record as of `at` and waits until it is handled: its
    /// sync log holds one more final entry. Returns that entry's outcome.
    pub async fn sync_at(&self, system: System, id: &str, at: DateTime<Utc>) -> Outcome {
        let before = self.finals(system, id).await.len();
        let event = ChangeEvent {
            event_id: uuid::Uuid::now_v7().to_string(),
            pair: acme(),
            system,
            entity: EntityType::Customer,
            external_id: id.to_string(),
            kind: ChangeKind::Upsert,
            occurred_at: at,
            trigger: Trigger::Webhook,
            job_id: None,
            transaction_id: None,
            by_tandem: false,
        };
        self.bus
            .publish(Lane::Live, &BusMessage::ChangeV1(event))
            .await
            .expect("published");
        let outcome = Arc::new(std::sync::Mutex::new(None));
        let seen = outcome.clone();
        support::eventually(
            Duration::from_secs(30),
            &format!("the change of {system} {id} handled"),
            || {
                let seen = seen.clone();
                async move {
                    let finals = self.finals(system, id).await;
                    let done = finals.len() > before;
                    *seen.lock().expect("lock") = finals.last().copied();
                    done
                }
            },
        )
        .await;
        let outcome = *outcome.lock().expect("lock");
        outcome.expect("an outcome")
    }

    /// The final outcomes (not retries) logged for a record, oldest first.
    async fn finals(&self, system: System, id: &str) -> Vec<Outcome> {
        let logs = self
            .observer
            .query_logs(&SyncLogFilter {
                pair: Some(acme()),
                entity: Some(EntityType::Customer),
                system: Some(system),
                limit: 1000,
                ..Default::default()
            })
            .await
            .expect("logs");
        logs.iter()
            .rev()
            .filter(|l| {
                l.entry.external_id == id
                    && !matches!(l.entry.outcome, Outcome::Retrying | Outcome::Received)
            })
            .map(|l| l.entry.outcome)
            .collect()
    }

    /// A customer created in the CRM and synced; returns both ids.
    pub async fn synced_customer(&self, n: usize) -> (String, String) {
        let crm_id = self.crm.person_creates(EntityType::Customer, person(n));
        assert_eq!(self.sync(System::Crm, &crm_id).await, Outcome::Created);
        let link = self
            .observer
            .find_link(&acme(), EntityType::Customer, System::Crm, &crm_id)
            .await
            .expect("find")
            .expect("linked");
        let finance_id = link.finance_id.expect("finance id");
        assert_eq!(
            self.sync(System::Finance, &finance_id).await,
            Outcome::Skipped
        );
        (crm_id, finance_id)
    }

    /// The time a system announces a record's last change with: its version (Xero's
    /// webhooks and both pollers carry the record's modification time).
    pub async fn version_of(&self, system: System, id: &str) -> DateTime<Utc> {
        let record = self
            .system(system)
            .get(EntityType::Customer, id)
            .await
            .expect("read")
            .expect("exists");
        let version = record.version.expect("a version");
        DateTime::parse_from_rfc3339(&version)
            .expect("an RFC 3339 version")
            .with_timezone(&Utc)
    }

    pub fn edit(&self, system: System, id: &str, field: &str, value: &str) {
        let changes: FieldMap = [(field.to_string(), json!(value))].into_iter().collect();
        self.system(system)
            .person_edits(EntityType::Customer, id, &changes);
    }

    /// What the change `make` prepares costs once announced, measured after the same
    /// kind of change on other customers warmed every pooled connection's statements.
    pub async fn measure<'a, F, Fut>(
        &'a self,
        kind: &'static str,
        budget: usize,
        make: F,
    ) -> Measured
    where
        F: Fn(usize) -> Fut,
        Fut: std::future::Future<Output = Announced> + 'a,
    {
        for round in 0..WARM_UP_ROUNDS {
            let change = make(round).await;
            let outcome = self.sync_at(change.system, &change.id, change.at).await;
            assert_eq!(outcome, change.expected, "{kind}, warming up");
        }
        let change = make(WARM_UP_ROUNDS).await;
        self.wire.take().await;
        let outcome = self.sync_at(change.system, &change.id, change.at).await;
        let report = self.wire.take().await;
        assert_eq!(outcome, change.expected, "{kind}: {report}");
        Measured {
            kind,
            budget,
            report,
        }
    }

    pub async fn finish(self) {
        self.shutdown.cancel();
        self.pool.await.expect("worker pool");
    }
}

/// A change as its system announces it, and the outcome it should have.
pub struct Announced {
    pub system: System,
    pub id: String,
    /// The time the announcement carries.
    pub at: DateTime<Utc>,
    pub expected: Outcome,
}

impl Announced {
    /// Announced now, as a person's edit is.
    pub fn now(system: System, id: &str, expected: Outcome) -> Self {
        Self {
            system,
            id: id.to_string(),
            at: Utc::now(),
            expected,
        }
    }
}

/// Changes of the same kind made before the measured one: each pooled connection the
/// worker touched has then prepared the statements of that kind.
pub const WARM_UP_ROUNDS: usize = 4;

pub fn person(n: usize) -> FieldMap {
    [
        ("name".to_string(), json!(format!("Person {n}"))),
        ("email".to_string(), json!(format!("person{n}@example.com"))),
    ]
    .into_iter()
    .collect()
}
