//! The RabbitMQ bus (lapin): durable, for production.
//!
//! Topology, declared idempotently on every (re)connect:
//! - `{prefix}.events`, a durable topic exchange;
//! - `{prefix}.{lane}.{pair}`, a quorum queue per pair and lane, bound to it by
//!   `{lane}.{pair}`. Each is consumed with its own prefetch, so one pair's backlog is
//!   never in front of another pair's changes (see docs/architecture.md, "Fair shares");
//! - `{prefix}.delay.{ms}`, one queue per delay tier with `x-message-ttl`, fed by a
//!   fanout exchange of the same name, that dead-letters to `{prefix}.events` with the
//!   message's own routing key, so a retry goes back to its pair and lane. A
//!   per-message TTL in one queue would wait behind the head of the queue; fixed tiers
//!   never do;
//! - `{prefix}.parked`, for messages that used their attempts or cannot be decoded;
//! - `{prefix}.live` and `{prefix}.bulk`, the one queue per lane of earlier versions,
//!   still declared and consumed so that what they hold after an upgrade is not lost.
//!
//! Attempts are counted in a header: RabbitMQ 3.10 quorum queues only count deliveries
//! when `x-delivery-limit` is set, and a count of redeliveries is not a count of retries.

use std::time::Duration;

use async_trait::async_trait;
use futures::future::join_all;
use futures::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, ExchangeDeclareOptions, ExchangeDeleteOptions, QueueBindOptions,
    QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::publisher_confirm::Confirmation;
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::uri::AMQPUri;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use tokio::sync::{watch, Mutex};

use super::{
    now_ms, Bus, BusConfig, BusError, BusMessage, Consumer, Delivery, DeliveryHandle, Lane,
    Outgoing, RetryOutcome,
};

const HEADER_ATTEMPT: &str = "x-tandem-attempt";
const HEADER_LAST_ERROR: &str = "x-tandem-last-error";
const HEADER_NOT_BEFORE: &str = "x-tandem-not-before";
const HEADER_LANE: &str = "x-tandem-lane";
const HEADER_PUBLISHED: &str = "x-tandem-published-ms";
/// How long to wait for the broker to connect or to confirm before calling it down.
const BROKER_TIMEOUT: Duration = Duration::from_secs(10);

/// Queue and exchange names under one prefix.
#[derive(Debug, Clone)]
struct Names {
    prefix: String,
}

impl Names {
    fn exchange(&self) -> String {
        format!("{}.events", self.prefix)
    }

    fn work(&self, lane: Lane) -> String {
        format!("{}.{}", self.prefix, lane.as_str())
    }

    /// A pair's queue in a lane.
    fn pair_queue(&self, lane: Lane, pair: &str) -> String {
        format!("{}.{}.{}", self.prefix, lane.as_str(), pair)
    }

    /// The routing key that reaches a pair's queue in a lane.
    fn pair_key(lane: Lane, pair: &str) -> String {
        format!("{}.{}", lane.as_str(), pair)
    }

    /// A delay tier's queue, and the fanout exchange that feeds it.
    fn delay(&self, tier: Duration) -> String {
        format!("{}.delay.{}", self.prefix, tier.as_millis())
    }

    /// The per-lane delay queues of earlier versions, only deleted now.
    fn retry(&self, lane: Lane, tier: Duration) -> String {
        format!(
            "{}.retry.{}.{}",
            self.prefix,
            lane.as_str(),
            tier.as_millis()
        )
    }

    fn parked(&self) -> String {
        format!("{}.parked", self.prefix)
    }
}

struct Link {
    connection: std::sync::Arc<Connection>,
    channel: Channel,
}

impl Link {
    fn is_open(&self) -> bool {
        self.connection.status().connected() && self.channel.status().connected()
    }
}

pub struct RabbitBus {
    config: BusConfig,
    names: Names,
    publisher: Mutex<Option<Link>>,
    /// The pairs whose queues are declared; consumers start consuming a pair's queue
    /// when it joins.
    pairs: Arc<watch::Sender<BTreeSet<String>>>,
}

impl RabbitBus {
    /// Connects and declares the topology; fails if the broker cannot be reached now.
    /// Later losses of the connection are repaired on the next use.
    pub async fn connect(config: BusConfig) -> Result<Self, BusError> {
        let names = Names {
            prefix: config.prefix.clone(),
        };
        let pairs: BTreeSet<String> = config.pairs.iter().cloned().collect();
        let link = open(&config, &names, &pairs).await?;
        Ok(Self {
            config,
            names,
            publisher: Mutex::new(Some(link)),
            pairs: Arc::new(watch::Sender::new(pairs)),
        })
    }

    /// Declares the queues of pairs not declared yet, so a change of a pair added while
    /// running is routed, and tells the consumers.
    async fn declare_pairs<'a>(
        &self,
        channel: &Channel,
        pairs: impl Iterator<Item = &'a str>,
    ) -> Result<(), BusError> {
        let new: BTreeSet<String> = {
            let known = self.pairs.borrow();
            pairs
                .filter(|pair| !known.contains(*pair))
                .map(str::to_string)
                .collect()
        };
        for pair in &new {
            declare_pair(channel, &self.names, pair).await?;
        }
        if !new.is_empty() {
            self.pairs.send_modify(|known| known.extend(new));
        }
        Ok(())
    }

    /// Deletes every exchange and queue under this bus's prefix: for tests, and for
    /// taking a deployment down for good.
    pub async fn delete_topology(&self) -> Result<(), BusError> {
        let channel = self.channel().await?;
        let mut queues = vec![self.names.parked()];
        for lane in Lane::ALL {
            queues.push(self.names.work(lane));
            for tier in &self.config.retry_tiers {
                queues.push(self.names.retry(lane, *tier));
            }
            for pair in self.pairs.borrow().iter() {
                queues.push(self.names.pair_queue(lane, pair));
            }
        }
        for tier in &self.config.retry_tiers {
            queues.push(self.names.delay(*tier));
            channel
                .exchange_delete(&self.names.delay(*tier), ExchangeDeleteOptions::default())
                .await
                .map_err(unavailable)?;
        }
        for queue in queues {
            channel
                .queue_delete(&queue, QueueDeleteOptions::default())
                .await
                .map_err(unavailable)?;
        }
        channel
            .exchange_delete(&self.names.exchange(), ExchangeDeleteOptions::default())
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    /// The publishing channel, reconnecting when the last one was lost.
    async fn channel(&self) -> Result<Channel, BusError> {
        let mut publisher = self.publisher.lock().await;
        if let Some(link) = publisher.as_ref().filter(|link| link.is_open()) {
            return Ok(link.channel.clone());
        }
        *publisher = None;
        let pairs = self.pairs.borrow().clone();
        let link = open(&self.config, &self.names, &pairs).await?;
        tracing::info!(prefix = %self.names.prefix, "connected to RabbitMQ");
        let channel = link.channel.clone();
        *publisher = Some(link);
        Ok(channel)
    }

    /// Consumes `queue`, and with `pairs` the queue of each pair in `lane` as pairs join.
    fn consumer(
        &self,
        queue: String,
        lane: Lane,
        pairs: Option<watch::Receiver<BTreeSet<String>>>,
        max_attempts: u32,
    ) -> Box<dyn Consumer> {
        let mut consuming = ConsumerLoop {
            config: self.config.clone(),
            names: self.names.clone(),
            queue,
            lane,
            pairs,
            max_attempts,
            link: None,
            backoff: Duration::from_millis(100),
        };
        // The loop that connects, consumes and reconnects runs on its own task and
        // hands deliveries over a channel, so a caller that stops waiting (a `select!`
        // taking another lane) never cancels a connection half made.
        let (deliveries, received) = tokio::sync::mpsc::channel(1);
        let task = tokio::spawn(async move {
            while let Some(delivery) = consuming.next_delivery().await {
                if deliveries.send(delivery).await.is_err() {
                    break;
                }
            }
        });
        Box::new(RabbitConsumer { received, task })
    }
}

#[async_trait]
impl Bus for RabbitBus {
    async fn publish(&self, lane: Lane, message: &BusMessage) -> Result<(), BusError> {
        self.publish_batch(lane, std::slice::from_ref(message))
            .await
    }

    async fn publish_batch(&self, lane: Lane, messages: &[BusMessage]) -> Result<(), BusError> {
        let channel = self.channel().await?;
        self.declare_pairs(&channel, messages.iter().map(|m| m.pair().as_str()))
            .await?;
        let exchange = self.names.exchange();
        let mut pending = Vec::with_capacity(messages.len());
        for message in messages {
            let fresh = Outgoing {
                payload: message.encode(),
                attempt: 1,
                last_error: None,
                not_before_ms: 0,
                lane,
                published_ms: now_ms(),
            };
            let key = Names::pair_key(lane, message.pair().as_str());
            pending.push(send(&channel, &exchange, &key, &fresh).await);
        }
        let mut first_error = None;
        for outcome in join_all(pending.into_iter().map(|sent| async move {
            match sent {
                Ok(confirm) => confirm.await,
                Err(err) => Err(err),
            }
        }))
        .await
        {
            if let Err(err) = outcome {
                first_error.get_or_insert(err);
            }
        }
        match first_error {
            None => Ok(()),
            Some(err) => {
                // The channel may be broken; the next publish opens a fresh one.
                *self.publisher.lock().await = None;
                Err(err)
            }
        }
    }

    async fn consume(&self, lane: Lane) -> Result<Box<dyn Consumer>, BusError> {
        Ok(self.consumer(
            self.names.work(lane),
            lane,
            Some(self.pairs.subscribe()),
            self.config.max_attempts,
        ))
    }

    async fn add_pair(&self, pair: &str) -> Result<(), BusError> {
        let channel = self.channel().await?;
        self.declare_pairs(&channel, std::iter::once(pair)).await
    }

    async fn consume_parked(&self) -> Result<Box<dyn Consumer>, BusError> {
        Ok(self.consumer(self.names.parked(), Lane::Live, None, u32::MAX))
    }

    async fn ping(&self) -> Result<(), BusError> {
        let channel = self.channel().await?;
        channel
            .exchange_declare(
                &self.names.exchange(),
                ExchangeKind::Topic,
                ExchangeDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .map_err(unavailable)
    }

    async fn depth(&self, lane: Lane) -> Result<u64, BusError> {
        let by_pair = self.pair_depths(lane).await?;
        let channel = self.channel().await?;
        let legacy = message_count(&channel, &self.names.work(lane)).await?;
        Ok(legacy + by_pair.values().sum::<u64>())
    }

    async fn pair_depths(&self, lane: Lane) -> Result<BTreeMap<String, u64>, BusError> {
        let channel = self.channel().await?;
        let pairs = self.pairs.borrow().clone();
        let mut depths = BTreeMap::new();
        for pair in pairs {
            let queue = self.names.pair_queue(lane, &pair);
            depths.insert(pair, message_count(&channel, &queue).await?);
        }
        Ok(depths)
    }

    fn name(&self) -> &'static str {
        "rabbitmq"
    }
}

/// Messages ready in a queue, from a passive declare.
async fn message_count(channel: &Channel, queue: &str) -> Result<u64, BusError> {
    let queue = channel
        .queue_declare(
            queue,
            QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .map_err(unavailable)?;
    Ok(u64::from(queue.message_count()))
}

fn unavailable(err: lapin::Error) -> BusError {
    BusError::Unavailable(err.to_string())
}

/// Change events are a few hundred bytes, but lapin keeps a send and a receive buffer
/// of 32 frames of the negotiated size per connection: at RabbitMQ's default 128 KiB
/// that is 8 MiB a connection, most of an idle engine's memory. A URL that names its
/// own `frame_max` keeps it.
const FRAME_MAX: u32 = 16_384;

fn broker_uri(url: &str) -> Result<AMQPUri, BusError> {
    let mut uri: AMQPUri = url.parse().map_err(|err: String| {
        // The parser quotes a bad URL whole, password included.
        let reason = if err.contains(url) {
            "it cannot be parsed".to_string()
        } else {
            err
        };
        BusError::Unavailable(format!("the AMQP URL is not valid: {reason}"))
    })?;
    if uri.query.frame_max.is_none() {
        uri.query.frame_max = Some(FRAME_MAX);
    }
    Ok(uri)
}

async fn open(
    config: &BusConfig,
    names: &Names,
    pairs: &BTreeSet<String>,
) -> Result<Link, BusError> {
    let connect = Connection::connect_uri(
        broker_uri(&config.url)?,
        ConnectionProperties::default().with_connection_name("tandem".into()),
    );
    let connection = tokio::time::timeout(BROKER_TIMEOUT, connect)
        .await
        .map_err(|_| BusError::Unavailable("no answer from RabbitMQ".into()))?
        .map_err(unavailable)?;
    let channel = connection.create_channel().await.map_err(unavailable)?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .map_err(unavailable)?;
    declare_topology(&channel, config, names).await?;
    for pair in pairs {
        declare_pair(&channel, names, pair).await?;
    }
    Ok(Link {
        connection: std::sync::Arc::new(connection),
        channel,
    })
}

async fn declare_topology(
    channel: &Channel,
    config: &BusConfig,
    names: &Names,
) -> Result<(), BusError> {
    let durable = QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    channel
        .exchange_declare(
            &names.exchange(),
            ExchangeKind::Topic,
            ExchangeDeclareOptions {
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .map_err(unavailable)?;
    let quorum = quorum();
    for lane in Lane::ALL {
        channel
            .queue_declare(&names.work(lane), durable, quorum.clone())
            .await
            .map_err(unavailable)?;
        channel
            .queue_bind(
                &names.work(lane),
                &names.exchange(),
                lane.as_str(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(unavailable)?;
    }
    for tier in &config.retry_tiers {
        let delay = names.delay(*tier);
        channel
            .exchange_declare(
                &delay,
                ExchangeKind::Fanout,
                ExchangeDeclareOptions {
                    durable: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .map_err(unavailable)?;
        let mut args = FieldTable::default();
        args.insert(
            "x-message-ttl".into(),
            AMQPValue::LongLongInt(tier.as_millis() as i64),
        );
        // No dead-letter routing key: the message keeps its own, `{lane}.{pair}`.
        args.insert(
            "x-dead-letter-exchange".into(),
            AMQPValue::LongString(names.exchange().into()),
        );
        channel
            .queue_declare(&delay, durable, args)
            .await
            .map_err(unavailable)?;
        channel
            .queue_bind(
                &delay,
                &delay,
                "",
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(unavailable)?;
    }
    channel
        .queue_declare(&names.parked(), durable, quorum)
        .await
        .map_err(unavailable)?;
    Ok(())
}

fn quorum() -> FieldTable {
    let mut args = FieldTable::default();
    args.insert(
        "x-queue-type".into(),
        AMQPValue::LongString("quorum".into()),
    );
    args
}

/// Declares a pair's queue in each lane and binds it to the exchange.
async fn declare_pair(channel: &Channel, names: &Names, pair: &str) -> Result<(), BusError> {
    for lane in Lane::ALL {
        let queue = names.pair_queue(lane, pair);
        channel
            .queue_declare(
                &queue,
                QueueDeclareOptions {
                    durable: true,
                    ..Default::default()
                },
                quorum(),
            )
            .await
            .map_err(unavailable)?;
        channel
            .queue_bind(
                &queue,
                &names.exchange(),
                &Names::pair_key(lane, pair),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(unavailable)?;
    }
    Ok(())
}

/// Where a message goes back to after a delay: its pair's queue in its lane, or, when
/// it cannot be read, the lane's own queue (where it is parked).
fn return_key(outgoing: &Outgoing) -> String {
    match BusMessage::decode(&outgoing.payload) {
        Ok(message) => Names::pair_key(outgoing.lane, message.pair().as_str()),
        Err(_) => outgoing.lane.as_str().to_string(),
    }
}

/// Sends a message to wait in a delay tier, confirmed.
async fn send_delayed(
    channel: &Channel,
    names: &Names,
    tier: Duration,
    message: &Outgoing,
) -> Result<(), BusError> {
    send(channel, &names.delay(tier), &return_key(message), message)
        .await?
        .await
}

/// Sends one message; the returned future resolves once the broker confirmed it.
async fn send(
    channel: &Channel,
    exchange: &str,
    routing_key: &str,
    message: &Outgoing,
) -> Result<impl std::future::Future<Output = Result<(), BusError>>, BusError> {
    let mut headers = FieldTable::default();
    headers.insert(
        HEADER_ATTEMPT.into(),
        AMQPValue::LongLongInt(i64::from(message.attempt)),
    );
    if let Some(error) = &message.last_error {
        headers.insert(
            HEADER_LAST_ERROR.into(),
            AMQPValue::LongString(error.as_str().into()),
        );
    }
    if message.not_before_ms > 0 {
        headers.insert(
            HEADER_NOT_BEFORE.into(),
            AMQPValue::LongLongInt(message.not_before_ms as i64),
        );
    }
    headers.insert(
        HEADER_LANE.into(),
        AMQPValue::LongString(message.lane.as_str().into()),
    );
    if message.published_ms > 0 {
        headers.insert(
            HEADER_PUBLISHED.into(),
            AMQPValue::LongLongInt(message.published_ms as i64),
        );
    }
    let properties = BasicProperties::default()
        .with_delivery_mode(2)
        .with_content_type(ShortString::from("application/json"))
        .with_headers(headers);
    let confirm = channel
        .basic_publish(
            exchange,
            routing_key,
            BasicPublishOptions {
                mandatory: true,
                ..Default::default()
            },
            &message.payload,
            properties,
        )
        .await
        .map_err(|err| BusError::NotConfirmed(err.to_string()))?;
    Ok(async move {
        let confirmation = tokio::time::timeout(BROKER_TIMEOUT, confirm)
            .await
            .map_err(|_| BusError::NotConfirmed("no confirm from RabbitMQ in time".into()))?
            .map_err(|err| BusError::NotConfirmed(err.to_string()))?;
        match confirmation {
            Confirmation::Ack(None) => Ok(()),
            Confirmation::Ack(Some(_)) => Err(BusError::NotConfirmed(
                "the message could not be routed to a queue".into(),
            )),
            Confirmation::Nack(_) => Err(BusError::NotConfirmed(
                "the broker refused the message".into(),
            )),
            Confirmation::NotRequested => Err(BusError::NotConfirmed(
                "the channel is not in confirm mode".into(),
            )),
        }
    })
}

async fn send_confirmed(
    channel: &Channel,
    routing_key: &str,
    message: &Outgoing,
) -> Result<(), BusError> {
    send(channel, "", routing_key, message).await?.await
}

fn header<'a>(properties: &'a BasicProperties, key: &str) -> Option<&'a AMQPValue> {
    properties.headers().as_ref()?.inner().get(key)
}

fn header_u64(properties: &BasicProperties, key: &str) -> Option<u64> {
    match header(properties, key)? {
        AMQPValue::LongLongInt(v) => u64::try_from(*v).ok(),
        AMQPValue::LongInt(v) => u64::try_from(*v).ok(),
        AMQPValue::LongUInt(v) => Some(u64::from(*v)),
        AMQPValue::ShortInt(v) => u64::try_from(*v).ok(),
        AMQPValue::ShortUInt(v) => Some(u64::from(*v)),
        _ => None,
    }
}

fn header_string(properties: &BasicProperties, key: &str) -> Option<String> {
    match header(properties, key)? {
        AMQPValue::LongString(value) => {
            Some(String::from_utf8_lossy(value.as_bytes()).into_owned())
        }
        AMQPValue::ShortString(value) => Some(value.as_str().to_string()),
        _ => None,
    }
}

struct ConsumerLink {
    link: Link,
    /// Every queue consumed, merged; each yields in turn when several have deliveries.
    stream: futures::stream::SelectAll<lapin::Consumer>,
    consuming: BTreeSet<String>,
}

impl Drop for ConsumerLink {
    /// A consumer that goes away closes its connection, so the broker hands whatever it
    /// had not acknowledged to another consumer at once.
    fn drop(&mut self) {
        let connection = self.link.connection.clone();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let _ = connection.close(200, "consumer stopped").await;
            });
        }
    }
}

/// The consuming side handed to callers: deliveries from the loop's task.
struct RabbitConsumer {
    received: tokio::sync::mpsc::Receiver<Delivery>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for RabbitConsumer {
    /// Stopping the loop drops its connection, and the broker redelivers what it held.
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[async_trait]
impl Consumer for RabbitConsumer {
    async fn next(&mut self) -> Option<Delivery> {
        self.received.recv().await
    }
}

/// Connects, consumes its queues, and reconnects after the broker restarts.
struct ConsumerLoop {
    config: BusConfig,
    names: Names,
    queue: String,
    lane: Lane,
    /// The pairs whose queues in `lane` are consumed too, as they join.
    pairs: Option<watch::Receiver<BTreeSet<String>>>,
    max_attempts: u32,
    link: Option<ConsumerLink>,
    backoff: Duration,
}

impl ConsumerLoop {
    /// The queues to consume now.
    fn queues(&self) -> BTreeSet<String> {
        let mut queues = BTreeSet::from([self.queue.clone()]);
        if let Some(pairs) = &self.pairs {
            for pair in pairs.borrow().iter() {
                queues.insert(self.names.pair_queue(self.lane, pair));
            }
        }
        queues
    }

    async fn open(&self) -> Result<ConsumerLink, BusError> {
        let pairs = self
            .pairs
            .as_ref()
            .map(|pairs| pairs.borrow().clone())
            .unwrap_or_default();
        let link = open(&self.config, &self.names, &pairs).await?;
        // Not global: each queue's consumer holds up to `prefetch` of its own, so a deep
        // queue cannot take the whole allowance.
        link.channel
            .basic_qos(self.config.prefetch, BasicQosOptions::default())
            .await
            .map_err(unavailable)?;
        let mut consumer = ConsumerLink {
            link,
            stream: futures::stream::SelectAll::new(),
            consuming: BTreeSet::new(),
        };
        for queue in self.queues() {
            consume_queue(&mut consumer, &queue).await?;
        }
        Ok(consumer)
    }

    /// Starts consuming the queues of pairs that joined since.
    async fn follow_pairs(&mut self) -> Result<(), BusError> {
        let queues = self.queues();
        let Some(link) = self.link.as_mut() else {
            return Ok(());
        };
        for pair in self
            .pairs
            .as_ref()
            .map(|p| p.borrow().clone())
            .unwrap_or_default()
        {
            declare_pair(&link.link.channel, &self.names, &pair).await?;
        }
        for queue in queues {
            if !link.consuming.contains(&queue) {
                consume_queue(link, &queue).await?;
            }
        }
        Ok(())
    }

    /// Sends a message that arrived before its time back to wait, without counting an
    /// attempt. This happens when a retry asked for longer than the longest tier.
    async fn delay_again(
        &self,
        delivery: &lapin::message::Delivery,
        outgoing: &Outgoing,
    ) -> Result<(), BusError> {
        let Some(link) = &self.link else {
            return Err(BusError::Closed);
        };
        let remaining = Duration::from_millis(outgoing.not_before_ms.saturating_sub(now_ms()));
        let tier = self.config.tier_for(remaining);
        send_delayed(&link.link.channel, &self.names, tier, outgoing).await?;
        delivery
            .acker
            .ack(BasicAckOptions::default())
            .await
            .map_err(unavailable)
    }
}

impl ConsumerLoop {
    async fn next_delivery(&mut self) -> Option<Delivery> {
        loop {
            if self.link.is_none() {
                match self.open().await {
                    Ok(link) => {
                        self.link = Some(link);
                        self.backoff = Duration::from_millis(100);
                    }
                    Err(err) => {
                        tracing::warn!(queue = %self.queue, error = %err, retry_in_ms = self.backoff.as_millis() as u64, "cannot consume; retrying");
                        tokio::time::sleep(self.backoff).await;
                        self.backoff = (self.backoff * 2).min(Duration::from_secs(5));
                        continue;
                    }
                }
            }
            let link = self.link.as_mut()?;
            let joined = async {
                match self.pairs.as_mut() {
                    Some(pairs) => pairs.changed().await.is_ok(),
                    None => std::future::pending().await,
                }
            };
            let next = tokio::select! {
                next = link.stream.next() => next,
                still_watched = joined => {
                    if !still_watched {
                        // The bus is gone: no more pairs will join.
                        self.pairs = None;
                    } else if let Err(err) = self.follow_pairs().await {
                        tracing::warn!(queue = %self.queue, error = %err, "cannot consume a new pair's queue; reconnecting");
                        self.link = None;
                    }
                    continue;
                }
            };
            let delivery = match next {
                Some(Ok(delivery)) => delivery,
                Some(Err(err)) => {
                    tracing::warn!(queue = %self.queue, error = %err, "lost the broker; reconnecting");
                    self.link = None;
                    continue;
                }
                None => {
                    tracing::warn!(queue = %self.queue, "the broker ended the consumer; reconnecting");
                    self.link = None;
                    continue;
                }
            };
            let properties = &delivery.properties;
            let lane = match header_string(properties, HEADER_LANE).as_deref() {
                Some("bulk") => Lane::Bulk,
                Some(_) => Lane::Live,
                None => self.lane,
            };
            let outgoing = Outgoing {
                payload: delivery.data.clone(),
                attempt: header_u64(properties, HEADER_ATTEMPT).unwrap_or(1).max(1) as u32,
                last_error: header_string(properties, HEADER_LAST_ERROR),
                not_before_ms: header_u64(properties, HEADER_NOT_BEFORE).unwrap_or(0),
                lane,
                published_ms: header_u64(properties, HEADER_PUBLISHED).unwrap_or(0),
            };
            if outgoing.not_before_ms > now_ms() + 50 {
                if let Err(err) = self.delay_again(&delivery, &outgoing).await {
                    tracing::warn!(error = %err, "cannot send an early retry back to wait; it will be redelivered");
                    self.link = None;
                }
                continue;
            }
            let channel = self.link.as_ref()?.link.channel.clone();
            let handle = RabbitDelivery {
                channel,
                acker: delivery.acker,
                names: self.names.clone(),
                config: self.config.clone(),
                max_attempts: self.max_attempts,
            };
            return Some(Delivery::new(
                outgoing.payload,
                outgoing.attempt,
                outgoing.last_error,
                lane,
                outgoing.published_ms,
                Box::new(handle),
            ));
        }
    }
}

/// Starts consuming `queue` on the link's channel.
async fn consume_queue(link: &mut ConsumerLink, queue: &str) -> Result<(), BusError> {
    let tag = format!("tandem-{}", uuid::Uuid::new_v4());
    let stream = link
        .link
        .channel
        .basic_consume(
            queue,
            &tag,
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(unavailable)?;
    link.stream.push(stream);
    link.consuming.insert(queue.to_string());
    Ok(())
}

struct RabbitDelivery {
    channel: Channel,
    acker: lapin::acker::Acker,
    names: Names,
    config: BusConfig,
    max_attempts: u32,
}

impl RabbitDelivery {
    /// Hands the original back to its queue after a failed retry or park, so it is not
    /// lost; a broken channel hands it back by itself.
    async fn requeue(&self) {
        let _ = self
            .acker
            .nack(BasicNackOptions {
                requeue: true,
                ..Default::default()
            })
            .await;
    }

    async fn park_now(&self, outgoing: &Outgoing) -> Result<(), BusError> {
        if let Err(err) = send_confirmed(&self.channel, &self.names.parked(), outgoing).await {
            self.requeue().await;
            return Err(err);
        }
        self.acker
            .ack(BasicAckOptions::default())
            .await
            .map_err(unavailable)
    }
}

#[async_trait]
impl DeliveryHandle for RabbitDelivery {
    async fn ack(self: Box<Self>) -> Result<(), BusError> {
        self.acker
            .ack(BasicAckOptions::default())
            .await
            .map_err(unavailable)
    }

    async fn retry(
        self: Box<Self>,
        outgoing: Outgoing,
        delay: Duration,
    ) -> Result<RetryOutcome, BusError> {
        if outgoing.attempt > self.max_attempts {
            let parked = Outgoing {
                attempt: outgoing.attempt - 1,
                ..outgoing
            };
            self.park_now(&parked).await?;
            return Ok(RetryOutcome::Parked);
        }
        let tier = self.config.tier_for(delay);
        if let Err(err) = send_delayed(&self.channel, &self.names, tier, &outgoing).await {
            self.requeue().await;
            return Err(err);
        }
        self.acker
            .ack(BasicAckOptions::default())
            .await
            .map_err(unavailable)?;
        Ok(RetryOutcome::Scheduled)
    }

    async fn park(self: Box<Self>, outgoing: Outgoing) -> Result<(), BusError> {
        self.park_now(&outgoing).await
    }

    fn release(self: Box<Self>) {
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move { self.requeue().await });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_small_unless_the_url_names_their_size() {
        let uri = broker_uri("amqp://guest:guest@127.0.0.1:5672/%2f").unwrap();
        assert_eq!(uri.query.frame_max, Some(FRAME_MAX));
        let uri = broker_uri("amqp://guest:guest@127.0.0.1:5672/%2f?frame_max=131072").unwrap();
        assert_eq!(uri.query.frame_max, Some(131_072));
    }

    #[test]
    fn a_bad_url_is_refused_without_repeating_its_password() {
        let err = broker_uri("amqp://guest:s3cret@127.0.0.1:5672/%2f?frame_max=lots")
            .unwrap_err()
            .to_string();
        assert!(err.contains("AMQP URL is not valid"), "{err}");
        assert!(!err.contains("s3cret"), "{err}");
    }
}
