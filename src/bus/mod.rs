//! The bus that carries change events from intake to the orchestrator.
//!
//! Two backends behind one trait: RabbitMQ ([`rabbitmq`]), durable, for production; and
//! in-process ([`memory`]) for the embedded default, which is **not durable**: a crash
//! loses whatever was queued (the poller finds those changes again on its next round).
//!
//! Delivery is at least once. A publish returns `Ok` only once the broker confirmed it.
//! A consumer acknowledges a delivery when its work is done; a delivery dropped without
//! acknowledgement, or held by a consumer that dies, is delivered again.

pub mod memory;
pub mod rabbitmq;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::domain::ChangeEvent;

/// What travels on the bus: a versioned, tagged envelope, so a newer process can add a
/// variant without an older one misreading it (it parks what it cannot decode).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum BusMessage {
    #[serde(rename = "change.v1")]
    ChangeV1(ChangeEvent),
}

impl BusMessage {
    pub fn encode(&self) -> Vec<u8> {
        // Serialising plain data with string keys cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// The pair the message belongs to: the bus keeps a queue per pair.
    pub fn pair(&self) -> &crate::domain::PairId {
        match self {
            BusMessage::ChangeV1(event) => &event.pair,
        }
    }

    pub fn decode(payload: &[u8]) -> Result<Self, BusError> {
        serde_json::from_slice(payload).map_err(|err| BusError::Decode(err.to_string()))
    }
}

/// Live changes (webhooks, polls) and bulk work (resync, replay) travel apart, so a
/// large resync never holds up a change a person just made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Lane {
    Live,
    Bulk,
}

impl Lane {
    pub const ALL: [Lane; 2] = [Lane::Live, Lane::Bulk];

    pub fn as_str(self) -> &'static str {
        match self {
            Lane::Live => "live",
            Lane::Bulk => "bulk",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("the broker is unavailable: {0}")]
    Unavailable(String),
    #[error("the broker did not confirm the publish: {0}")]
    NotConfirmed(String),
    #[error("cannot decode the message: {0}")]
    Decode(String),
    #[error("the bus is closed")]
    Closed,
}

/// Settings of the bus, from `[bus]` and `amqp_url`.
#[derive(Debug, Clone)]
pub struct BusConfig {
    /// `amqp://...`, or `memory` for the in-process bus.
    pub url: String,
    pub prefix: String,
    pub prefetch: u16,
    pub max_attempts: u32,
    /// Delays a retry can wait for; a retry waits in the shortest tier not shorter than
    /// its delay.
    pub retry_tiers: Vec<Duration>,
    /// The pairs whose queues are declared and consumed from the start; a pair whose
    /// change is published later joins then.
    pub pairs: Vec<String>,
}

impl BusConfig {
    pub fn new(url: impl Into<String>, prefix: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            prefix: prefix.into(),
            prefetch: 64,
            max_attempts: 8,
            retry_tiers: [1, 5, 30, 120, 600].map(Duration::from_secs).to_vec(),
            pairs: Vec::new(),
        }
    }

    pub fn from_settings(settings: &crate::config::Settings) -> Self {
        // A worker can only work on a message it holds: fewer held than a pair's share
        // of the workers would leave workers idle behind a full queue.
        let share = u16::try_from(settings.orchestrator.pair_share()).unwrap_or(u16::MAX);
        Self {
            prefetch: settings.bus.prefetch.max(share),
            max_attempts: settings.bus.max_attempts,
            pairs: settings.pairs.keys().cloned().collect(),
            ..Self::new(settings.amqp_url.clone(), settings.bus.prefix.clone())
        }
    }

    /// The tier a retry waits in: the shortest not shorter than `delay`, or the longest.
    pub fn tier_for(&self, delay: Duration) -> Duration {
        self.retry_tiers
            .iter()
            .copied()
            .find(|tier| *tier >= delay)
            .or_else(|| self.retry_tiers.last().copied())
            .unwrap_or(delay)
    }
}

/// The producer and consumer sides of the bus.
#[async_trait]
pub trait Bus: Send + Sync {
    /// Publishes one message; `Ok` only after the broker confirmed it.
    async fn publish(&self, lane: Lane, message: &BusMessage) -> Result<(), BusError>;

    /// Publishes many messages with their confirms in flight together; `Ok` only when
    /// every one was confirmed. On `Err`, some may have been published: callers treat
    /// the whole batch as not done and publish it again (consumers tolerate duplicates).
    async fn publish_batch(&self, lane: Lane, messages: &[BusMessage]) -> Result<(), BusError>;

    /// Starts consuming a lane: every pair's queue in it, and the queue of each pair
    /// that joins later (by [`Bus::add_pair`] or a publish of its change).
    async fn consume(&self, lane: Lane) -> Result<Box<dyn Consumer>, BusError>;

    /// Declares a pair's queues and has this process's consumers take from them: for a
    /// pair added while running, which another process may publish to first.
    async fn add_pair(&self, pair: &str) -> Result<(), BusError>;

    /// Starts consuming the parked messages, for a person (or a test) to inspect.
    async fn consume_parked(&self) -> Result<Box<dyn Consumer>, BusError>;

    /// Whether the broker answers, for readiness.
    async fn ping(&self) -> Result<(), BusError>;

    /// Messages waiting in a lane (not counting those out for delivery).
    async fn depth(&self, lane: Lane) -> Result<u64, BusError>;

    /// Messages waiting in a lane, by pair.
    async fn pair_depths(
        &self,
        lane: Lane,
    ) -> Result<std::collections::BTreeMap<String, u64>, BusError>;

    /// Which backend this is, for logs and readiness: `rabbitmq` or `in-process bus`.
    fn name(&self) -> &'static str;
}

/// A stream of deliveries from one lane.
#[async_trait]
pub trait Consumer: Send {
    /// The next delivery; waits for one (and, on RabbitMQ, through reconnects). `None`
    /// once the bus is closed.
    async fn next(&mut self) -> Option<Delivery>;
}

/// One delivered message. Acknowledge it, retry it later, or park it; dropping it
/// without any of these hands it back to be delivered again.
pub struct Delivery {
    pub payload: Vec<u8>,
    /// 1 on the first delivery, counting retries.
    pub attempt: u32,
    /// The error that made the previous attempt retry, or that parked it.
    pub last_error: Option<String>,
    pub lane: Lane,
    /// Unix milliseconds of its first publish, when the backend knows it.
    pub published_ms: Option<u64>,
    handle: Option<Box<dyn DeliveryHandle>>,
}

/// What `retry` did with a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryOutcome {
    /// It will be delivered again after the delay.
    Scheduled,
    /// It had used its attempts and was parked for a person.
    Parked,
}

impl Delivery {
    pub(crate) fn new(
        payload: Vec<u8>,
        attempt: u32,
        last_error: Option<String>,
        lane: Lane,
        published_ms: u64,
        handle: Box<dyn DeliveryHandle>,
    ) -> Self {
        Self {
            payload,
            attempt,
            last_error,
            lane,
            published_ms: (published_ms > 0).then_some(published_ms),
            handle: Some(handle),
        }
    }

    pub fn message(&self) -> Result<BusMessage, BusError> {
        BusMessage::decode(&self.payload)
    }

    /// The work is done: the message will not be delivered again.
    pub async fn ack(mut self) -> Result<(), BusError> {
        match self.handle.take() {
            Some(handle) => handle.ack().await,
            None => Ok(()),
        }
    }

    /// Deliver again not before `delay`, or park it when its attempts are used up.
    pub async fn retry(mut self, delay: Duration, error: &str) -> Result<RetryOutcome, BusError> {
        let Some(handle) = self.handle.take() else {
            return Ok(RetryOutcome::Scheduled);
        };
        let outgoing = Outgoing {
            payload: std::mem::take(&mut self.payload),
            attempt: self.attempt + 1,
            last_error: Some(error.to_string()),
            not_before_ms: now_ms() + delay.as_millis() as u64,
            lane: self.lane,
            published_ms: self.published_ms.unwrap_or(0),
        };
        handle.retry(outgoing, delay).await
    }

    /// Deliver again not before `delay`, as the same attempt: the change waited on
    /// something outside it (a system out of service) and did not fail itself, so an
    /// outage, however long, does not use up its attempts and park it.
    pub async fn postpone(mut self, delay: Duration, reason: &str) -> Result<(), BusError> {
        let Some(handle) = self.handle.take() else {
            return Ok(());
        };
        let outgoing = Outgoing {
            payload: std::mem::take(&mut self.payload),
            attempt: self.attempt,
            last_error: Some(reason.to_string()),
            not_before_ms: now_ms() + delay.as_millis() as u64,
            lane: self.lane,
            published_ms: self.published_ms.unwrap_or(0),
        };
        // Within its attempts, a retry of the same attempt is always scheduled.
        handle.retry(outgoing, delay).await.map(|_| ())
    }

    /// Set aside for a person: it will not be delivered to the lane again.
    pub async fn park(mut self, reason: &str) -> Result<(), BusError> {
        let Some(handle) = self.handle.take() else {
            return Ok(());
        };
        let outgoing = Outgoing {
            payload: std::mem::take(&mut self.payload),
            attempt: self.attempt,
            last_error: Some(reason.to_string()),
            not_before_ms: 0,
            lane: self.lane,
            published_ms: self.published_ms.unwrap_or(0),
        };
        handle.park(outgoing).await
    }
}

impl Drop for Delivery {
    fn drop(&mut self) {
        if let Some(handle) = self.handle.take() {
            handle.release();
        }
    }
}

/// A message as it is sent back to the broker by a retry or a park.
#[derive(Debug, Clone)]
pub(crate) struct Outgoing {
    pub payload: Vec<u8>,
    pub attempt: u32,
    pub last_error: Option<String>,
    /// Unix milliseconds before which it must not be handled (0: any time).
    pub not_before_ms: u64,
    /// The lane it belongs to (a parked message remembers where it came from).
    pub lane: Lane,
    /// Unix milliseconds of the first publish (0: unknown); kept through retries.
    pub published_ms: u64,
}

/// The backend's side of a delivery.
#[async_trait]
pub(crate) trait DeliveryHandle: Send {
    async fn ack(self: Box<Self>) -> Result<(), BusError>;
    async fn retry(
        self: Box<Self>,
        outgoing: Outgoing,
        delay: Duration,
    ) -> Result<RetryOutcome, BusError>;
    async fn park(self: Box<Self>, outgoing: Outgoing) -> Result<(), BusError>;
    /// Dropped unanswered: deliver it again.
    fn release(self: Box<Self>);
}

pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Connects the bus the settings name.
pub async fn connect(config: &BusConfig) -> Result<Arc<dyn Bus>, BusError> {
    if config.url == "memory" {
        Ok(Arc::new(memory::MemoryBus::new(config.clone())))
    } else {
        Ok(Arc::new(
            rabbitmq::RabbitBus::connect(config.clone()).await?,
        ))
    }
}
