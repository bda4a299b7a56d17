//! The in-process bus: the embedded default. Same contract as RabbitMQ but **not
//! durable**: what is queued lives in this process's memory and is lost with it.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::Notify;

use super::{
    Bus, BusConfig, BusError, BusMessage, Consumer, Delivery, DeliveryHandle, Lane, Outgoing,
    RetryOutcome,
};

/// A lane: a queue per pair, taken from in turn, as RabbitMQ's queue per pair and lane
/// are, so one pair's backlog does not hold another's changes back.
#[derive(Default)]
struct Queue {
    items: Mutex<PairLine>,
    ready: Notify,
}

#[derive(Default)]
struct PairLine {
    queues: HashMap<String, VecDeque<Outgoing>>,
    /// Pairs with messages, in the order their turn comes.
    turns: VecDeque<String>,
    len: usize,
}

impl PairLine {
    fn queue(&mut self, pair: &str) -> &mut VecDeque<Outgoing> {
        if !self.queues.contains_key(pair) {
            self.turns.push_back(pair.to_string());
        }
        self.len += 1;
        self.queues.entry(pair.to_string()).or_default()
    }

    fn pop(&mut self) -> Option<(String, Outgoing)> {
        let pair = self.turns.pop_front()?;
        let queue = self.queues.get_mut(&pair)?;
        let item = queue.pop_front()?;
        self.len -= 1;
        if queue.is_empty() {
            self.queues.remove(&pair);
        } else {
            self.turns.push_back(pair.clone());
        }
        Some((pair, item))
    }
}

impl Queue {
    fn push_back(&self, pair: &str, item: Outgoing) {
        self.lock().queue(pair).push_back(item);
        self.ready.notify_one();
    }

    fn push_front(&self, pair: &str, item: Outgoing) {
        self.lock().queue(pair).push_front(item);
        self.ready.notify_one();
    }

    fn pop(&self) -> Option<(String, Outgoing)> {
        self.lock().pop()
    }

    fn len(&self) -> usize {
        self.lock().len
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, PairLine> {
        // A poisoned lock only means a panic elsewhere while pushing; the queue itself
        // is still consistent.
        self.items
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

pub struct MemoryBus {
    config: BusConfig,
    live: Arc<Queue>,
    bulk: Arc<Queue>,
    parked: Arc<Queue>,
}

impl MemoryBus {
    pub fn new(config: BusConfig) -> Self {
        Self {
            config,
            live: Arc::default(),
            bulk: Arc::default(),
            parked: Arc::default(),
        }
    }

    fn queue(&self, lane: Lane) -> &Arc<Queue> {
        match lane {
            Lane::Live => &self.live,
            Lane::Bulk => &self.bulk,
        }
    }

    fn consumer(&self, queue: Arc<Queue>, parked: bool) -> Box<dyn Consumer> {
        Box::new(MemoryConsumer {
            queue,
            parked_queue: self.parked.clone(),
            max_attempts: if parked {
                u32::MAX
            } else {
                self.config.max_attempts
            },
        })
    }
}

fn fresh(message: &BusMessage, lane: Lane) -> Outgoing {
    Outgoing {
        payload: message.encode(),
        attempt: 1,
        last_error: None,
        not_before_ms: 0,
        lane,
        published_ms: super::now_ms(),
    }
}

#[async_trait]
impl Bus for MemoryBus {
    async fn publish(&self, lane: Lane, message: &BusMessage) -> Result<(), BusError> {
        self.queue(lane)
            .push_back(message.pair().as_str(), fresh(message, lane));
        Ok(())
    }

    async fn publish_batch(&self, lane: Lane, messages: &[BusMessage]) -> Result<(), BusError> {
        for message in messages {
            self.queue(lane)
                .push_back(message.pair().as_str(), fresh(message, lane));
        }
        Ok(())
    }

    async fn consume(&self, lane: Lane) -> Result<Box<dyn Consumer>, BusError> {
        Ok(self.consumer(self.queue(lane).clone(), false))
    }

    async fn add_pair(&self, _pair: &str) -> Result<(), BusError> {
        // Every pair's line is made by its first message.
        Ok(())
    }

    async fn consume_parked(&self) -> Result<Box<dyn Consumer>, BusError> {
        Ok(self.consumer(self.parked.clone(), true))
    }

    async fn ping(&self) -> Result<(), BusError> {
        Ok(())
    }

    async fn depth(&self, lane: Lane) -> Result<u64, BusError> {
        Ok(self.queue(lane).len() as u64)
    }

    async fn pair_depths(&self, lane: Lane) -> Result<BTreeMap<String, u64>, BusError> {
        let line = self.queue(lane).lock();
        Ok(line
            .queues
            .iter()
            .map(|(pair, queue)| (pair.clone(), queue.len() as u64))
            .collect())
    }

    fn name(&self) -> &'static str {
        "in-process bus"
    }
}

struct MemoryConsumer {
    queue: Arc<Queue>,
    parked_queue: Arc<Queue>,
    max_attempts: u32,
}

#[async_trait]
impl Consumer for MemoryConsumer {
    async fn next(&mut self) -> Option<Delivery> {
        loop {
            if let Some((pair, item)) = self.queue.pop() {
                let handle = MemoryDelivery {
                    pair,
                    item: item.clone(),
                    queue: self.queue.clone(),
                    parked: self.parked_queue.clone(),
                    max_attempts: self.max_attempts,
                };
                return Some(Delivery::new(
                    item.payload,
                    item.attempt,
                    item.last_error,
                    item.lane,
                    item.published_ms,
                    Box::new(handle),
                ));
            }
            self.queue.ready.notified().await;
        }
    }
}

struct MemoryDelivery {
    pair: String,
    item: Outgoing,
    queue: Arc<Queue>,
    parked: Arc<Queue>,
    max_attempts: u32,
}

#[async_trait]
impl DeliveryHandle for MemoryDelivery {
    async fn ack(self: Box<Self>) -> Result<(), BusError> {
        Ok(())
    }

    async fn retry(
        self: Box<Self>,
        outgoing: Outgoing,
        delay: Duration,
    ) -> Result<RetryOutcome, BusError> {
        if outgoing.attempt > self.max_attempts {
            self.parked.push_back(
                &self.pair,
                Outgoing {
                    attempt: outgoing.attempt - 1,
                    ..outgoing
                },
            );
            return Ok(RetryOutcome::Parked);
        }
        let queue = self.queue.clone();
        let pair = self.pair;
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            queue.push_back(&pair, outgoing);
        });
        Ok(RetryOutcome::Scheduled)
    }

    async fn park(self: Box<Self>, outgoing: Outgoing) -> Result<(), BusError> {
        self.parked.push_back(&self.pair, outgoing);
        Ok(())
    }

    fn release(self: Box<Self>) {
        self.queue.push_front(&self.pair, self.item);
    }
}
