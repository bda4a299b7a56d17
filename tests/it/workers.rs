//! The worker pool over both bus backends: graceful shutdown acknowledges only what was
//! finished, retries come back, and undecodable messages are parked.

use crate::support;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{TimeZone, Utc};
use tandem::backlog::{Backlog, Place};
use tandem::bus::memory::MemoryBus;
use tandem::bus::rabbitmq::RabbitBus;
use tandem::bus::{Bus, BusConfig, BusMessage, Consumer, Lane};
use tandem::domain::{ChangeEvent, ChangeKind, EntityType, PairId, System, Trigger};
use tandem::orchestrator::{ChangeHandler, HandleOutcome, WorkerPool};
use tokio::sync::{mpsc, Semaphore};
use tokio_util::sync::CancellationToken;

fn change(id: &str) -> BusMessage {
    BusMessage::ChangeV1(ChangeEvent {
        event_id: format!("evt-{id}"),
        pair: PairId::new("acme"),
        system: System::Crm,
        entity: EntityType::Customer,
        external_id: id.to_string(),
        kind: ChangeKind::Upsert,
        occurred_at: Utc
            .with_ymd_and_hms(2026, 11, 23, 9, 30, 0)
            .single()
            .expect("valid time"),
        trigger: Trigger::Webhook,
        job_id: None,
        transaction_id: None,
        by_tandem: false,
    })
}

/// A handler that reports each start and waits for a permit before it finishes.
struct GatedHandler {
    started: mpsc::UnboundedSender<String>,
    finished: mpsc::UnboundedSender<String>,
    gate: Arc<Semaphore>,
}

#[async_trait]
impl ChangeHandler for GatedHandler {
    async fn handle(&self, event: ChangeEvent, _attempt: u32) -> HandleOutcome {
        let _ = self.started.send(event.external_id.clone());
        let permit = self.gate.acquire().await;
        drop(permit);
        let _ = self.finished.send(event.external_id);
        HandleOutcome::Done
    }
}

struct Backend {
    bus: Arc<dyn Bus>,
    rabbit: Option<Arc<RabbitBus>>,
    prefix: String,
}

impl Backend {
    fn config(url: &str) -> BusConfig {
        BusConfig {
            retry_tiers: vec![Duration::from_millis(200)],
            ..BusConfig::new(url, support::unique("tandem_workers"))
        }
    }

    async fn rabbitmq() -> Self {
        let url = support::amqp_url();
        let config = Self::config(&url);
        let prefix = config.prefix.clone();
        let bus = Arc::new(RabbitBus::connect(config).await.unwrap_or_else(|err| {
            panic!(
                "RabbitMQ is not reachable at {url}: {err}; {}",
                support::START_RABBITMQ
            )
        }));
        Self {
            bus: bus.clone(),
            rabbit: Some(bus),
            prefix,
        }
    }

    fn memory() -> Self {
        let config = Self::config("memory");
        let prefix = config.prefix.clone();
        Self {
            bus: Arc::new(MemoryBus::new(config)),
            rabbit: None,
            prefix,
        }
    }

    async fn finish(self) {
        if let Some(rabbit) = self.rabbit {
            rabbit.delete_topology().await.expect("delete test queues");
        }
    }
}

/// Collects what a consumer yields until it has been quiet for `quiet`.
async fn drain(consumer: &mut Box<dyn Consumer>, quiet: Duration) -> Vec<(String, u32)> {
    let mut seen = Vec::new();
    while let Ok(Some(delivery)) = tokio::time::timeout(quiet, consumer.next()).await {
        let BusMessage::ChangeV1(event) = delivery.message().expect("decodes");
        seen.push((event.external_id, delivery.attempt));
        delivery.ack().await.expect("ack");
    }
    seen.sort();
    seen
}

async fn shutdown_acknowledges_only_finished_changes(bus: Arc<dyn Bus>) {
    let ids: Vec<String> = (1..=6).map(|i| format!("c{i}")).collect();
    let messages: Vec<_> = ids.iter().map(|id| change(id)).collect();
    bus.publish_batch(Lane::Live, &messages)
        .await
        .expect("confirmed");

    let (started_tx, mut started) = mpsc::unbounded_channel();
    let (finished_tx, mut finished) = mpsc::unbounded_channel();
    let gate = Arc::new(Semaphore::new(0));
    let handler = Arc::new(GatedHandler {
        started: started_tx,
        finished: finished_tx,
        gate: gate.clone(),
    });
    let shutdown = CancellationToken::new();
    let pool = WorkerPool::new(bus.clone(), handler, 2, Duration::from_secs(10));
    let running = tokio::spawn(pool.run(shutdown.clone()));

    // Two workers pick up two changes and are mid-work when the stop signal comes.
    let mut in_flight = vec![
        started.recv().await.expect("first start"),
        started.recv().await.expect("second start"),
    ];
    shutdown.cancel();
    gate.add_permits(100);
    running.await.expect("pool task").expect("pool ran");
    let mut done = Vec::new();
    while let Ok(id) = finished.try_recv() {
        done.push(id);
    }
    in_flight.sort();
    done.sort();
    assert_eq!(
        done, in_flight,
        "the changes in flight at the signal were finished"
    );
    assert!(
        started.try_recv().is_err(),
        "no new change was taken after the signal"
    );

    // Exactly the unfinished four are still waiting, never acknowledged.
    let mut consumer = bus.consume(Lane::Live).await.expect("consume");
    let remaining = drain(&mut consumer, Duration::from_secs(2)).await;
    let mut expected: Vec<_> = ids
        .iter()
        .filter(|id| !done.contains(id))
        .map(|id| (id.clone(), 1))
        .collect();
    expected.sort();
    assert_eq!(remaining, expected);
}

async fn work_past_the_grace_period_is_delivered_again(bus: Arc<dyn Bus>) {
    bus.publish(Lane::Live, &change("slow"))
        .await
        .expect("confirmed");
    let (started_tx, mut started) = mpsc::unbounded_channel();
    let (finished_tx, _finished) = mpsc::unbounded_channel();
    let handler = Arc::new(GatedHandler {
        started: started_tx,
        finished: finished_tx,
        gate: Arc::new(Semaphore::new(0)),
    });
    let shutdown = CancellationToken::new();
    let pool = WorkerPool::new(bus.clone(), handler, 1, Duration::from_millis(200));
    let running = tokio::spawn(pool.run(shutdown.clone()));
    started.recv().await.expect("started");
    shutdown.cancel();
    running.await.expect("pool task").expect("pool ran");
    let mut consumer = bus.consume(Lane::Live).await.expect("consume");
    let again = drain(&mut consumer, Duration::from_secs(2)).await;
    assert_eq!(
        again,
        vec![("slow".to_string(), 1)],
        "abandoned, not acknowledged"
    );
}

/// Fails the first attempt of every change, then finishes it.
struct FlakyHandler {
    attempts: mpsc::UnboundedSender<(String, u32)>,
}

#[async_trait]
impl ChangeHandler for FlakyHandler {
    async fn handle(&self, event: ChangeEvent, attempt: u32) -> HandleOutcome {
        let _ = self.attempts.send((event.external_id, attempt));
        if attempt == 1 {
            HandleOutcome::Retry {
                delay: Duration::from_millis(100),
                error: "HTTP 503".into(),
            }
        } else {
            HandleOutcome::Done
        }
    }
}

async fn a_retried_change_comes_back_with_its_attempt(bus: Arc<dyn Bus>) {
    bus.publish(Lane::Live, &change("r1"))
        .await
        .expect("confirmed");
    let (tx, mut attempts) = mpsc::unbounded_channel();
    let shutdown = CancellationToken::new();
    let pool = WorkerPool::new(
        bus.clone(),
        Arc::new(FlakyHandler { attempts: tx }),
        2,
        Duration::from_secs(5),
    );
    let running = tokio::spawn(pool.run(shutdown.clone()));
    assert_eq!(attempts.recv().await, Some(("r1".into(), 1)));
    assert_eq!(attempts.recv().await, Some(("r1".into(), 2)));
    shutdown.cancel();
    running.await.expect("pool task").expect("pool ran");
}

macro_rules! on_both_buses {
    ($($name:ident),* $(,)?) => {
        mod rabbitmq {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let backend = super::Backend::rabbitmq().await;
                    super::$name(backend.bus.clone()).await;
                    backend.finish().await;
                }
            )*
        }
        mod memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let backend = super::Backend::memory();
                    super::$name(backend.bus.clone()).await;
                    backend.finish().await;
                }
            )*
        }
    };
}

fn change_of(pair: &str, id: &str) -> BusMessage {
    let BusMessage::ChangeV1(mut event) = change(id);
    event.pair = PairId::new(pair);
    BusMessage::ChangeV1(event)
}

/// What waits inside the process is counted where it waits: one worker busy, the rest
/// waiting for it, by pair, with the oldest's age; all gone once answered.
async fn changes_waiting_inside_the_process_are_counted(bus: Arc<dyn Bus>) {
    let messages: Vec<_> = (1..=5)
        .map(|i| change_of("acme", &format!("w{i}")))
        .collect();
    bus.publish_batch(Lane::Live, &messages)
        .await
        .expect("confirmed");
    let (started_tx, mut started) = mpsc::unbounded_channel();
    let (finished_tx, mut finished) = mpsc::unbounded_channel();
    let gate = Arc::new(Semaphore::new(0));
    let handler = Arc::new(GatedHandler {
        started: started_tx,
        finished: finished_tx,
        gate: gate.clone(),
    });
    let backlog = Backlog::default();
    let shutdown = CancellationToken::new();
    let pool = WorkerPool::new(bus.clone(), handler, 1, Duration::from_secs(5))
        .with_backlog(backlog.clone());
    let running = tokio::spawn(pool.run(shutdown.clone()));
    started.recv().await.expect("one started");
    let place = Place {
        pair: "acme".into(),
        lane: "live",
    };
    support::eventually(
        Duration::from_secs(10),
        "four waiting for the worker",
        || {
            let figures = backlog.figures();
            async move {
                figures
                    .get(&place_of("acme"))
                    .is_some_and(|f| f.slot == 4 && f.running == 1)
            }
        },
    )
    .await;
    assert!(backlog.figures()[&place].oldest_published_ms.is_some());
    gate.add_permits(5);
    for _ in 0..5 {
        finished.recv().await.expect("finished");
    }
    support::eventually(
        Duration::from_secs(10),
        "nothing left in the process",
        || {
            let empty = backlog.figures().is_empty();
            async move { empty }
        },
    )
    .await;
    shutdown.cancel();
    running.await.expect("pool task").expect("pool ran");
}

fn place_of(pair: &str) -> Place {
    Place {
        pair: pair.into(),
        lane: "live",
    }
}

/// One pair floods the live lane; another pair's single change, queued after all of
/// them, is taken within a few turns, not after the flood.
async fn a_flooding_pair_does_not_hold_back_another(bus: Arc<dyn Bus>) {
    let mut messages: Vec<_> = (1..=1_000)
        .map(|i| change_of("busy", &format!("b{i}")))
        .collect();
    messages.push(change_of("quiet", "q1"));
    bus.publish_batch(Lane::Live, &messages)
        .await
        .expect("confirmed");
    let (started_tx, mut started) = mpsc::unbounded_channel();
    let (finished_tx, _finished) = mpsc::unbounded_channel();
    let gate = Arc::new(Semaphore::new(0));
    let handler = Arc::new(GatedHandler {
        started: started_tx,
        finished: finished_tx,
        gate: gate.clone(),
    });
    let backlog = Backlog::default();
    let shutdown = CancellationToken::new();
    let pool = WorkerPool::new(bus.clone(), handler, 1, Duration::from_secs(5))
        .with_backlog(backlog.clone());
    let running = tokio::spawn(pool.run(shutdown.clone()));
    // Let the worker take deliveries in while the first change holds it.
    started.recv().await.expect("first started");
    support::eventually(Duration::from_secs(10), "both pairs in the process", || {
        let figures = backlog.figures();
        async move { figures.contains_key(&place_of("quiet")) }
    })
    .await;
    let mut order = Vec::new();
    for _ in 0..3 {
        gate.add_permits(1);
        order.push(started.recv().await.expect("next started"));
    }
    assert!(
        order.iter().any(|id| id == "q1"),
        "the quiet pair's change came within three turns: {order:?}"
    );
    gate.add_permits(1_000);
    shutdown.cancel();
    running.await.expect("pool task").expect("pool ran");
}

/// A pair whose changes all wait (for its rate budget, say) holds only its share of
/// the workers: another pair's change starts while every one of them still waits.
async fn a_pair_holding_its_share_leaves_workers_for_another(bus: Arc<dyn Bus>) {
    let mut messages: Vec<_> = (1..=50)
        .map(|i| change_of("throttled", &format!("t{i}")))
        .collect();
    bus.publish_batch(Lane::Live, &messages)
        .await
        .expect("confirmed");
    let (started_tx, mut started) = mpsc::unbounded_channel();
    let (finished_tx, _finished) = mpsc::unbounded_channel();
    let gate = Arc::new(Semaphore::new(0));
    let handler = Arc::new(GatedHandler {
        started: started_tx,
        finished: finished_tx,
        gate: gate.clone(),
    });
    let backlog = Backlog::default();
    let shutdown = CancellationToken::new();
    let pool = WorkerPool::new(bus.clone(), handler, 4, Duration::from_secs(5))
        .with_pair_share(3)
        .with_backlog(backlog.clone());
    let running = tokio::spawn(pool.run(shutdown.clone()));
    for _ in 0..3 {
        started
            .recv()
            .await
            .expect("the throttled pair's share started");
    }
    support::eventually(
        Duration::from_secs(10),
        "the rest of the throttled pair waiting for a worker",
        || {
            let figures = backlog.figures();
            async move {
                figures
                    .get(&place_of("throttled"))
                    .is_some_and(|f| f.running == 3 && f.slot > 0)
            }
        },
    )
    .await;
    messages = vec![change_of("other", "o1")];
    bus.publish_batch(Lane::Live, &messages)
        .await
        .expect("confirmed");
    let next = tokio::time::timeout(Duration::from_secs(10), started.recv())
        .await
        .expect("the other pair's change starts while the throttled pair's all wait");
    assert_eq!(next.as_deref(), Some("o1"));
    gate.add_permits(1_000);
    shutdown.cancel();
    running.await.expect("pool task").expect("pool ran");
}

on_both_buses!(
    shutdown_acknowledges_only_finished_changes,
    work_past_the_grace_period_is_delivered_again,
    a_retried_change_comes_back_with_its_attempt,
    changes_waiting_inside_the_process_are_counted,
    a_flooding_pair_does_not_hold_back_another,
    a_pair_holding_its_share_leaves_workers_for_another,
);

/// A message no version of Tandem can read is parked with the reason, not retried
/// forever and not dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rabbitmq_undecodable_message_is_parked() {
    use lapin::options::BasicPublishOptions;
    let backend = Backend::rabbitmq().await;
    let connection =
        lapin::Connection::connect(&support::amqp_url(), lapin::ConnectionProperties::default())
            .await
            .expect("connect");
    let channel = connection.create_channel().await.expect("channel");
    channel
        .basic_publish(
            &format!("{}.events", backend.prefix),
            "live",
            BasicPublishOptions::default(),
            br#"{"type":"change.v9","what":"from the future"}"#,
            lapin::BasicProperties::default(),
        )
        .await
        .expect("publish")
        .await
        .expect("sent");
    let (tx, _attempts) = mpsc::unbounded_channel();
    let shutdown = CancellationToken::new();
    let pool = WorkerPool::new(
        backend.bus.clone(),
        Arc::new(FlakyHandler { attempts: tx }),
        1,
        Duration::from_secs(5),
    );
    let running = tokio::spawn(pool.run(shutdown.clone()));
    let mut parked = backend.bus.consume_parked().await.expect("consume parked");
    let delivery = tokio::time::timeout(Duration::from_secs(10), parked.next())
        .await
        .expect("parked within 10s")
        .expect("open");
    assert!(
        delivery
            .last_error
            .as_deref()
            .unwrap_or_default()
            .contains("cannot decode"),
        "{:?}",
        delivery.last_error
    );
    delivery.ack().await.expect("ack");
    shutdown.cancel();
    running.await.expect("pool task").expect("pool ran");
    let _ = connection.close(200, "done").await;
    backend.finish().await;
}
