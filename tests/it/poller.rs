//! The poller against a simulated source (the in-memory system), with the real store
//! and bus: PostgreSQL and RabbitMQ, and SQLite with the in-process bus.

use crate::support;
use tandem::store::{CursorStore, LinkStore};

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::json;
use tandem::bus::memory::MemoryBus;
use tandem::bus::rabbitmq::RabbitBus;
use tandem::bus::{Bus, BusConfig, BusError, BusMessage, Consumer, Lane};
use tandem::connectors::memory::InMemorySystem;
use tandem::connectors::{ChangePage, Connector, ConnectorError, ExternalRecord, Written};
use tandem::domain::{source_checksum, EntityType, FieldMap, PairId, SyncPolicy, System};
use tandem::intake::{PollReport, PollTarget, Poller};
use tandem::store::{self, EntityLink, SeaStore, Store};
use tokio_util::sync::CancellationToken;

fn customer(n: u32) -> FieldMap {
    [("name".to_string(), json!(format!("Customer {n}")))]
        .into_iter()
        .collect()
}

/// A source whose search lags: the first listing leaves out one record, as a search
/// index does for a record committed while the listing ran.
struct LaggingSource {
    inner: Arc<InMemorySystem>,
    hidden: String,
    lagged: AtomicBool,
}

#[async_trait]
impl Connector for LaggingSource {
    fn system(&self) -> System {
        self.inner.system()
    }
    async fn probe(&self) -> tandem::connectors::health::ProbeReport {
        self.inner.probe().await
    }
    async fn get(
        &self,
        entity: EntityType,
        id: &str,
    ) -> Result<Option<ExternalRecord>, ConnectorError> {
        self.inner.get(entity, id).await
    }
    async fn list_changed(
        &self,
        entity: EntityType,
        since: Option<DateTime<Utc>>,
        page: Option<&str>,
    ) -> Result<ChangePage, ConnectorError> {
        let mut listed = self.inner.list_changed(entity, since, page).await?;
        if !self.lagged.swap(true, Ordering::SeqCst) {
            listed.records.retain(|r| r.id != self.hidden);
        }
        Ok(listed)
    }
    async fn create(
        &self,
        entity: EntityType,
        fields: &FieldMap,
        stamp: &str,
        key: &str,
    ) -> Result<Written, ConnectorError> {
        self.inner.create(entity, fields, stamp, key).await
    }
    async fn update(
        &self,
        entity: EntityType,
        id: &str,
        fields: &FieldMap,
        key: &str,
    ) -> Result<Written, ConnectorError> {
        self.inner.update(entity, id, fields, key).await
    }
    async fn archive(
        &self,
        entity: EntityType,
        id: &str,
        key: &str,
    ) -> Result<Written, ConnectorError> {
        self.inner.archive(entity, id, key).await
    }
    async fn find_by_stamp(
        &self,
        entity: EntityType,
        stamp: &str,
    ) -> Result<Option<ExternalRecord>, ConnectorError> {
        self.inner.find_by_stamp(entity, stamp).await
    }
    async fn find_by_natural_key(
        &self,
        entity: EntityType,
        fields: &FieldMap,
    ) -> Result<Option<ExternalRecord>, ConnectorError> {
        self.inner.find_by_natural_key(entity, fields).await
    }
}

/// A bus whose broker can be switched off: publishes are refused while it is.
struct SwitchedBus {
    inner: Arc<dyn Bus>,
    down: AtomicBool,
}

impl SwitchedBus {
    fn check(&self) -> Result<(), BusError> {
        if self.down.load(Ordering::SeqCst) {
            Err(BusError::Unavailable("stopped for the test".into()))
        } else {
            Ok(())
        }
    }
}

#[async_trait]
impl Bus for SwitchedBus {
    async fn publish(&self, lane: Lane, message: &BusMessage) -> Result<(), BusError> {
        self.check()?;
        self.inner.publish(lane, message).await
    }
    async fn publish_batch(&self, lane: Lane, messages: &[BusMessage]) -> Result<(), BusError> {
        self.check()?;
        self.inner.publish_batch(lane, messages).await
    }
    async fn consume(&self, lane: Lane) -> Result<Box<dyn Consumer>, BusError> {
        self.inner.consume(lane).await
    }
    async fn add_pair(&self, pair: &str) -> Result<(), BusError> {
        self.inner.add_pair(pair).await
    }
    async fn consume_parked(&self) -> Result<Box<dyn Consumer>, BusError> {
        self.inner.consume_parked().await
    }
    async fn ping(&self) -> Result<(), BusError> {
        self.check()
    }
    async fn depth(&self, lane: Lane) -> Result<u64, BusError> {
        self.inner.depth(lane).await
    }
    async fn pair_depths(
        &self,
        lane: Lane,
    ) -> Result<std::collections::BTreeMap<String, u64>, BusError> {
        self.inner.pair_depths(lane).await
    }
    fn name(&self) -> &'static str {
        "switched"
    }
}

struct Setup {
    store: Arc<SeaStore>,
    url: String,
    bus: Arc<dyn Bus>,
    rabbit: Option<Arc<RabbitBus>>,
    _pg: Option<support::TestDatabase>,
    _sqlite: Option<support::TestSqlite>,
}

impl Setup {
    async fn postgres_rabbitmq() -> Self {
        let db = support::TestDatabase::create().await;
        let store = Arc::new(store::connect(&db.url).await.expect("connect"));
        store.migrate().await.expect("migrate");
        let url = support::amqp_url();
        let rabbit = Arc::new(
            RabbitBus::connect(BusConfig::new(&url, support::unique("tandem_poll")))
                .await
                .unwrap_or_else(|err| {
                    panic!(
                        "RabbitMQ is not reachable at {url}: {err}; {}",
                        support::START_RABBITMQ
                    )
                }),
        );
        Self {
            store,
            url: db.url.clone(),
            bus: rabbit.clone(),
            rabbit: Some(rabbit),
            _pg: Some(db),
            _sqlite: None,
        }
    }

    async fn sqlite_memory() -> Self {
        let db = support::TestSqlite::create();
        let store = Arc::new(store::connect(&db.url).await.expect("connect"));
        store.migrate().await.expect("migrate");
        Self {
            store,
            url: db.url.clone(),
            bus: Arc::new(MemoryBus::new(BusConfig::new("memory", "test"))),
            rabbit: None,
            _pg: None,
            _sqlite: Some(db),
        }
    }

    fn target(&self, connector: Arc<dyn Connector>, interval: Duration) -> PollTarget {
        PollTarget {
            pair: PairId::new("acme"),
            system: System::Crm,
            entity: EntityType::Customer,
            connector,
            interval,
            overlap: Duration::from_secs(30),
            policy: SyncPolicy::defaults(EntityType::Customer),
        }
    }

    async fn published(&self, consumer: &mut Box<dyn Consumer>, within: Duration) -> Vec<String> {
        let mut ids = Vec::new();
        while let Ok(Some(delivery)) = tokio::time::timeout(within, consumer.next()).await {
            let BusMessage::ChangeV1(event) = delivery.message().expect("decodes");
            ids.push(event.external_id);
            delivery.ack().await.expect("ack");
        }
        ids.sort();
        ids
    }

    async fn finish(self) {
        if let Some(rabbit) = self.rabbit {
            rabbit.delete_topology().await.expect("delete test queues");
        }
    }
}

async fn a_record_written_during_a_poll_is_found_by_the_next(s: &Setup) {
    let source = Arc::new(InMemorySystem::new(System::Crm));
    let early = source.person_creates(EntityType::Customer, customer(1));
    let late = source.person_creates(EntityType::Customer, customer(2));
    // The first listing misses the earlier record; the cursor moves past it.
    let lagging: Arc<dyn Connector> = Arc::new(LaggingSource {
        inner: source.clone(),
        hidden: early.clone(),
        lagged: AtomicBool::new(false),
    });
    let poller = Poller::new(s.store.clone() as Arc<dyn Store>, s.bus.clone());
    let target = s.target(lagging, Duration::from_secs(60));
    assert_eq!(
        poller.poll_once(&target).await.expect("poll"),
        PollReport::Polled { published: 1 }
    );
    assert_eq!(
        poller.poll_once(&target).await.expect("poll"),
        PollReport::Polled { published: 1 },
        "the overlap finds it"
    );
    let mut consumer = s.bus.consume(Lane::Live).await.expect("consume");
    let mut expected = vec![early, late];
    expected.sort();
    assert_eq!(
        s.published(&mut consumer, Duration::from_secs(2)).await,
        expected
    );
    // Overlapping polls with nothing new publish nothing again.
    assert_eq!(
        poller.poll_once(&target).await.expect("poll"),
        PollReport::Polled { published: 0 }
    );
}

async fn a_change_whose_webhook_was_dropped_is_found_within_one_interval(s: &Setup) {
    let source = Arc::new(InMemorySystem::new(System::Crm));
    let id = source.person_creates(EntityType::Customer, customer(1));
    let poller = Arc::new(Poller::new(
        s.store.clone() as Arc<dyn Store>,
        s.bus.clone(),
    ));
    let interval = Duration::from_millis(300);
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(
        poller
            .clone()
            .run(vec![s.target(source.clone(), interval)], shutdown.clone()),
    );
    let mut consumer = s.bus.consume(Lane::Live).await.expect("consume");
    assert_eq!(
        s.published(&mut consumer, interval * 2).await,
        vec![id.clone()],
        "first poll"
    );
    // An edit whose webhook never arrives.
    source.person_edits(EntityType::Customer, &id, &customer(9));
    let delivery = tokio::time::timeout(interval * 2, consumer.next())
        .await
        .expect("found within one interval")
        .expect("open");
    let BusMessage::ChangeV1(event) = delivery.message().expect("decodes");
    assert_eq!(event.external_id, id);
    delivery.ack().await.expect("ack");
    shutdown.cancel();
    running.await.expect("poller");
}

async fn the_cursor_moves_only_after_every_publish_was_confirmed(s: &Setup) {
    let source = Arc::new(InMemorySystem::new(System::Crm));
    let id = source.person_creates(EntityType::Customer, customer(1));
    let bus = Arc::new(SwitchedBus {
        inner: s.bus.clone(),
        down: AtomicBool::new(true),
    });
    let poller = Poller::new(s.store.clone() as Arc<dyn Store>, bus.clone());
    let target = s.target(source.clone(), Duration::from_secs(60));
    assert!(
        poller.poll_once(&target).await.is_err(),
        "a refused publish is an error"
    );
    assert_eq!(
        s.store
            .cursor(&target.pair, target.system, target.entity)
            .await
            .expect("cursor"),
        None,
        "the cursor did not move"
    );
    // The broker is back: the next round publishes the change; nothing was lost.
    bus.down.store(false, Ordering::SeqCst);
    assert_eq!(
        poller.poll_once(&target).await.expect("poll"),
        PollReport::Polled { published: 1 }
    );
    assert!(s
        .store
        .cursor(&target.pair, target.system, target.entity)
        .await
        .expect("cursor")
        .is_some());
    let mut consumer = s.bus.consume(Lane::Live).await.expect("consume");
    assert_eq!(
        s.published(&mut consumer, Duration::from_secs(2)).await,
        vec![id]
    );
}

async fn a_listed_record_its_link_already_holds_is_not_published(s: &Setup) {
    let source = Arc::new(InMemorySystem::new(System::Crm));
    let synced = source.person_creates(EntityType::Customer, customer(1));
    let edited_since = source.person_creates(EntityType::Customer, customer(2));
    let unlinked = source.person_creates(EntityType::Customer, customer(3));
    let target = s.target(source.clone(), Duration::from_secs(60));
    // Links as a sync leaves them: `synced` holds its content as listed, the other
    // holds what it was before a person edited it.
    for (id, held) in [(&synced, customer(1)), (&edited_since, customer(20))] {
        let listed = source
            .get(EntityType::Customer, id)
            .await
            .expect("get")
            .expect("there");
        let mut link = EntityLink::new(target.pair.clone(), EntityType::Customer, System::Crm, id);
        link.finance_id = Some(format!("F-{id}"));
        link.crm_checksum = Some(source_checksum(&held, System::Crm, &target.policy).0);
        link.crm_version = listed.version;
        s.store.insert_link(&link).await.expect("link");
    }
    let poller = Poller::new(s.store.clone() as Arc<dyn Store>, s.bus.clone());
    assert_eq!(
        poller.poll_once(&target).await.expect("poll"),
        PollReport::Polled { published: 2 }
    );
    let mut consumer = s.bus.consume(Lane::Live).await.expect("consume");
    let mut expected = vec![edited_since, unlinked];
    expected.sort();
    assert_eq!(
        s.published(&mut consumer, Duration::from_secs(2)).await,
        expected
    );
    // A person edits the synced record, its webhook is dropped: the poll publishes it.
    source.person_edits(EntityType::Customer, &synced, &customer(9));
    assert_eq!(
        poller.poll_once(&target).await.expect("poll"),
        PollReport::Polled { published: 1 }
    );
    assert_eq!(
        s.published(&mut consumer, Duration::from_secs(2)).await,
        vec![synced]
    );
}

macro_rules! on_both_setups {
    ($($name:ident),* $(,)?) => {
        mod postgres_rabbitmq {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let s = super::Setup::postgres_rabbitmq().await;
                    super::$name(&s).await;
                    s.finish().await;
                }
            )*
        }
        mod sqlite_memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let s = super::Setup::sqlite_memory().await;
                    super::$name(&s).await;
                    s.finish().await;
                }
            )*
        }
    };
}

on_both_setups!(
    a_record_written_during_a_poll_is_found_by_the_next,
    a_change_whose_webhook_was_dropped_is_found_within_one_interval,
    the_cursor_moves_only_after_every_publish_was_confirmed,
    a_listed_record_its_link_already_holds_is_not_published,
);

/// Two serving processes on one database: only one polls a given cursor.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_do_not_both_poll_one_cursor() {
    let s = Setup::postgres_rabbitmq().await;
    let source = Arc::new(InMemorySystem::new(System::Crm));
    source.person_creates(EntityType::Customer, customer(1));
    let first = Poller::new(s.store.clone() as Arc<dyn Store>, s.bus.clone());
    let second_store: Arc<dyn Store> = Arc::new(store::connect(&s.url).await.expect("connect"));
    let second = Poller::new(second_store, s.bus.clone());
    let target = s.target(source, Duration::from_secs(60));
    let (a, b) = tokio::join!(first.poll_once(&target), second.poll_once(&target));
    let mut reports = vec![a.expect("poll"), b.expect("poll")];
    reports.sort_by_key(|r| format!("{r:?}"));
    assert_eq!(
        reports,
        vec![
            PollReport::LeasedElsewhere,
            PollReport::Polled { published: 1 }
        ]
    );
    // The holder keeps it on its next round; the other is still refused.
    let (a, b) = (
        first.poll_once(&target).await.expect("poll"),
        second.poll_once(&target).await.expect("poll"),
    );
    assert!(
        matches!(
            (a, b),
            (PollReport::Polled { .. }, PollReport::LeasedElsewhere)
                | (PollReport::LeasedElsewhere, PollReport::Polled { .. })
        ),
        "{a:?} {b:?}"
    );
    s.finish().await;
}
