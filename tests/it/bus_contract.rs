//! The bus contract, run against RabbitMQ and against the in-process bus.

use crate::support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use tandem::bus::memory::MemoryBus;
use tandem::bus::rabbitmq::RabbitBus;
use tandem::bus::{Bus, BusConfig, BusMessage, Consumer, Delivery, Lane, RetryOutcome};
use tandem::domain::{ChangeEvent, ChangeKind, EntityType, PairId, System, Trigger};

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

fn test_config(url: &str) -> BusConfig {
    BusConfig {
        max_attempts: 3,
        retry_tiers: vec![Duration::from_millis(300), Duration::from_secs(1)],
        ..BusConfig::new(url, support::unique("tandem_test"))
    }
}

/// A backend under test, cleaned up when the test ends.
struct Backend {
    bus: Arc<dyn Bus>,
    rabbit: Option<Arc<RabbitBus>>,
}

impl Backend {
    async fn rabbitmq() -> Self {
        let url = support::amqp_url();
        let bus = RabbitBus::connect(test_config(&url))
            .await
            .unwrap_or_else(|err| {
                panic!(
                    "RabbitMQ is not reachable at {url}: {err}; {}",
                    support::START_RABBITMQ
                )
            });
        let bus = Arc::new(bus);
        Self {
            bus: bus.clone(),
            rabbit: Some(bus),
        }
    }

    fn memory() -> Self {
        Self {
            bus: Arc::new(MemoryBus::new(test_config("memory"))),
            rabbit: None,
        }
    }

    async fn finish(self) {
        if let Some(rabbit) = self.rabbit {
            rabbit.delete_topology().await.expect("delete test queues");
        }
    }
}

async fn next(consumer: &mut Box<dyn Consumer>) -> Delivery {
    tokio::time::timeout(Duration::from_secs(10), consumer.next())
        .await
        .expect("a delivery within 10s")
        .expect("the bus is open")
}

async fn publish_then_consume_and_ack(bus: Arc<dyn Bus>) {
    let messages: Vec<_> = (0..3).map(|i| change(&format!("c{i}"))).collect();
    bus.publish(Lane::Live, &messages[0])
        .await
        .expect("confirmed");
    bus.publish_batch(Lane::Live, &messages[1..])
        .await
        .expect("confirmed");
    let mut consumer = bus.consume(Lane::Live).await.expect("consume");
    let mut received = Vec::new();
    for _ in 0..3 {
        let delivery = next(&mut consumer).await;
        assert_eq!(delivery.attempt, 1);
        received.push(delivery.message().expect("decodes"));
        delivery.ack().await.expect("ack");
    }
    received.sort_by_key(|m| format!("{m:?}"));
    assert_eq!(received, messages);
    support::eventually(Duration::from_secs(5), "live lane empty after acks", || {
        let bus = bus.clone();
        async move { bus.depth(Lane::Live).await.ok() == Some(0) }
    })
    .await;
}

async fn retry_is_redelivered_after_its_delay(bus: Arc<dyn Bus>) {
    bus.publish(Lane::Live, &change("r1"))
        .await
        .expect("confirmed");
    let mut consumer = bus.consume(Lane::Live).await.expect("consume");
    let first = next(&mut consumer).await;
    let delay = Duration::from_millis(800);
    let retried_at = Instant::now();
    let outcome = first
        .retry(delay, "HTTP 503 from Xero")
        .await
        .expect("retry");
    assert_eq!(outcome, RetryOutcome::Scheduled);
    let second = next(&mut consumer).await;
    let waited = retried_at.elapsed();
    assert!(
        waited >= delay,
        "redelivered after {waited:?}, before its delay of {delay:?}"
    );
    assert_eq!(second.attempt, 2);
    assert_eq!(second.last_error.as_deref(), Some("HTTP 503 from Xero"));
    assert_eq!(second.message().expect("decodes"), change("r1"));
    second.ack().await.expect("ack");
}

async fn exhausted_attempts_are_parked_with_the_last_error(bus: Arc<dyn Bus>) {
    bus.publish(Lane::Live, &change("p1"))
        .await
        .expect("confirmed");
    let mut consumer = bus.consume(Lane::Live).await.expect("consume");
    for attempt in 1..=3 {
        let delivery = next(&mut consumer).await;
        assert_eq!(delivery.attempt, attempt);
        let outcome = delivery
            .retry(Duration::from_millis(10), &format!("failure {attempt}"))
            .await
            .expect("retry");
        let expected = if attempt < 3 {
            RetryOutcome::Scheduled
        } else {
            RetryOutcome::Parked
        };
        assert_eq!(outcome, expected, "after attempt {attempt}");
    }
    let mut parked = bus.consume_parked().await.expect("consume parked");
    let delivery = next(&mut parked).await;
    assert_eq!(delivery.last_error.as_deref(), Some("failure 3"));
    assert_eq!(delivery.attempt, 3);
    assert_eq!(delivery.message().expect("decodes"), change("p1"));
    delivery.ack().await.expect("ack");
    assert_eq!(
        bus.depth(Lane::Live).await.expect("depth"),
        0,
        "nothing left in the lane"
    );
}

/// A change postponed while a system is out of service keeps its attempt, however
/// often: an outage does not park it.
async fn postponing_uses_up_no_attempt(bus: Arc<dyn Bus>) {
    bus.publish(Lane::Live, &change("w1"))
        .await
        .expect("confirmed");
    let mut consumer = bus.consume(Lane::Live).await.expect("consume");
    // Three attempts at most (test_config): five postponements park nothing.
    for _ in 0..5 {
        let delivery = next(&mut consumer).await;
        assert_eq!(delivery.attempt, 1);
        delivery
            .postpone(Duration::from_millis(10), "xero is down")
            .await
            .expect("postpone");
    }
    let delivery = next(&mut consumer).await;
    assert_eq!(delivery.attempt, 1);
    assert_eq!(delivery.last_error.as_deref(), Some("xero is down"));
    delivery.ack().await.expect("ack");
}

async fn parking_keeps_the_reason(bus: Arc<dyn Bus>) {
    bus.publish(Lane::Bulk, &change("k1"))
        .await
        .expect("confirmed");
    let mut consumer = bus.consume(Lane::Bulk).await.expect("consume");
    next(&mut consumer)
        .await
        .park("cannot decode: unknown variant")
        .await
        .expect("park");
    let mut parked = bus.consume_parked().await.expect("consume parked");
    let delivery = next(&mut parked).await;
    assert_eq!(
        delivery.last_error.as_deref(),
        Some("cannot decode: unknown variant")
    );
    assert_eq!(delivery.lane, Lane::Bulk);
    delivery.ack().await.expect("ack");
}

async fn a_dropped_delivery_is_delivered_again(bus: Arc<dyn Bus>) {
    bus.publish(Lane::Live, &change("d1"))
        .await
        .expect("confirmed");
    let mut consumer = bus.consume(Lane::Live).await.expect("consume");
    let first = next(&mut consumer).await;
    drop(first);
    let again = next(&mut consumer).await;
    assert_eq!(again.message().expect("decodes"), change("d1"));
    again.ack().await.expect("ack");
}

async fn lanes_are_separate(bus: Arc<dyn Bus>) {
    bus.publish(Lane::Bulk, &change("b1"))
        .await
        .expect("confirmed");
    support::eventually(Duration::from_secs(5), "bulk depth 1", || {
        let bus = bus.clone();
        async move { bus.depth(Lane::Bulk).await.ok() == Some(1) }
    })
    .await;
    assert_eq!(bus.depth(Lane::Live).await.expect("depth"), 0);
    let mut bulk = bus.consume(Lane::Bulk).await.expect("consume");
    let delivery = next(&mut bulk).await;
    assert_eq!(delivery.lane, Lane::Bulk);
    delivery.ack().await.expect("ack");
}

macro_rules! contract {
    ($($name:ident),* $(,)?) => {
        mod rabbitmq {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let backend = Backend::rabbitmq().await;
                    super::$name(backend.bus.clone()).await;
                    backend.finish().await;
                }
            )*
        }
        mod memory {
            use super::*;
            $(
                #[tokio::test]
                async fn $name() {
                    let backend = Backend::memory();
                    super::$name(backend.bus.clone()).await;
                    backend.finish().await;
                }
            )*
        }
    };
}

contract!(
    publish_then_consume_and_ack,
    retry_is_redelivered_after_its_delay,
    exhausted_attempts_are_parked_with_the_last_error,
    postponing_uses_up_no_attempt,
    parking_keeps_the_reason,
    a_dropped_delivery_is_delivered_again,
    lanes_are_separate,
);

/// A consumer process that dies holding an unacknowledged message: the broker hands
/// the message to the next consumer. (In-process, a dead consumer is a dead process.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rabbitmq_consumer_that_dies_before_acking_leaves_the_message() {
    let backend = Backend::rabbitmq().await;
    let bus = backend.bus.clone();
    bus.publish(Lane::Live, &change("x1"))
        .await
        .expect("confirmed");
    let mut doomed = bus.consume(Lane::Live).await.expect("consume");
    let held = next(&mut doomed).await;
    // Neither acknowledged nor handed back: only the consumer's death can return it.
    std::mem::forget(held);
    drop(doomed);
    let mut survivor = bus.consume(Lane::Live).await.expect("consume");
    let delivery = next(&mut survivor).await;
    assert_eq!(delivery.message().expect("decodes"), change("x1"));
    delivery.ack().await.expect("ack");
    backend.finish().await;
}
