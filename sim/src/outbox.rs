//! Webhook deliveries from a simulated service to a configured URL, misbehaving the
//! way real senders do when the knobs say so: duplicated, reordered or dropped
//! deliveries. A delivery answered with anything but 2xx is retried a few times, as
//! the real services retry.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::knobs::{roll, Knobs};

/// One signed HTTP delivery, ready to send.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub body: Vec<u8>,
    pub headers: Vec<(String, String)>,
}

/// Turns a batch of events into a signed delivery for `url`.
pub type Render = dyn Fn(&str, Vec<Value>) -> Delivery + Send + Sync;

#[derive(Debug, Default, Clone, Serialize, PartialEq, Eq)]
pub struct OutboxStats {
    pub events: u64,
    pub deliveries: u64,
    pub delivered: u64,
    pub duplicated: u64,
    pub reordered: u64,
    pub dropped: u64,
    pub failed: u64,
}

#[derive(Default)]
struct Counters {
    events: AtomicU64,
    deliveries: AtomicU64,
    delivered: AtomicU64,
    duplicated: AtomicU64,
    reordered: AtomicU64,
    dropped: AtomicU64,
    failed: AtomicU64,
}

pub struct Outbox {
    knobs: Arc<Knobs>,
    render: Box<Render>,
    max_batch: usize,
    target: Mutex<Option<String>>,
    pending: Mutex<Vec<Value>>,
    held_back: Mutex<Option<Delivery>>,
    http: reqwest::Client,
    counters: Counters,
}

/// How often pending events leave as one delivery.
const FLUSH_EVERY: Duration = Duration::from_millis(50);
const ATTEMPTS: u32 = 5;

impl Outbox {
    /// An outbox that sends up to `max_batch` events per delivery. Nothing is sent
    /// until a target is set; events raised before are kept.
    pub fn new(knobs: Arc<Knobs>, max_batch: usize, render: Box<Render>) -> Arc<Self> {
        Arc::new(Self {
            knobs,
            render,
            max_batch: max_batch.max(1),
            target: Mutex::new(None),
            pending: Mutex::default(),
            held_back: Mutex::default(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()
                .unwrap_or_default(),
            counters: Counters::default(),
        })
    }

    pub fn set_target(&self, url: Option<String>) {
        *self.target.lock().unwrap_or_else(|p| p.into_inner()) = url;
    }

    pub fn target(&self) -> Option<String> {
        self.target
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Queues one event for the next delivery.
    pub fn push(&self, event: Value) {
        self.counters.events.fetch_add(1, Ordering::Relaxed);
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(event);
    }

    pub fn stats(&self) -> OutboxStats {
        let c = &self.counters;
        OutboxStats {
            events: c.events.load(Ordering::Relaxed),
            deliveries: c.deliveries.load(Ordering::Relaxed),
            delivered: c.delivered.load(Ordering::Relaxed),
            duplicated: c.duplicated.load(Ordering::Relaxed),
            reordered: c.reordered.load(Ordering::Relaxed),
            dropped: c.dropped.load(Ordering::Relaxed),
            failed: c.failed.load(Ordering::Relaxed),
        }
    }

    /// Sends pending events until `stop` is cancelled.
    pub async fn run(self: Arc<Self>, stop: CancellationToken) {
        let mut tick = tokio::time::interval(FLUSH_EVERY);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tick.tick() => self.flush().await,
            }
        }
    }

    /// Sends what is pending now, in deliveries of up to `max_batch` events.
    pub async fn flush(&self) {
        let Some(url) = self.target() else { return };
        let events = std::mem::take(&mut *self.pending.lock().unwrap_or_else(|p| p.into_inner()));
        let mut sends = Vec::new();
        for chunk in events.chunks(self.max_batch) {
            self.counters.deliveries.fetch_add(1, Ordering::Relaxed);
            let delivery = (self.render)(&url, chunk.to_vec());
            let knobs = self.knobs.get();
            if roll(knobs.webhook_drop_rate) {
                self.counters.dropped.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            if roll(knobs.webhook_reorder_rate) {
                // Held back: it goes out after the next delivery.
                let previous = self
                    .held_back
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .replace(delivery);
                self.counters.reordered.fetch_add(1, Ordering::Relaxed);
                sends.extend(previous);
                continue;
            }
            sends.push(delivery.clone());
            if roll(knobs.webhook_duplicate_rate) {
                self.counters.duplicated.fetch_add(1, Ordering::Relaxed);
                sends.push(delivery);
            }
            let held = self
                .held_back
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take();
            sends.extend(held);
        }
        // One after another, so the order the knobs chose is the order sent.
        for delivery in sends {
            self.send(&url, delivery).await;
        }
    }

    async fn send(&self, url: &str, delivery: Delivery) {
        for attempt in 0..ATTEMPTS {
            let mut request = self.http.post(url).body(delivery.body.clone());
            request = request.header("content-type", "application/json");
            for (name, value) in &delivery.headers {
                request = request.header(name, value);
            }
            match request.send().await {
                Ok(answer) if answer.status().is_success() => {
                    self.counters.delivered.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                Ok(answer) => {
                    tracing::debug!(status = %answer.status(), attempt, "webhook refused; retrying")
                }
                Err(err) => {
                    tracing::debug!(error = %err, attempt, "webhook not delivered; retrying")
                }
            }
            tokio::time::sleep(Duration::from_millis(200 * 2u64.pow(attempt))).await;
        }
        self.counters.failed.fetch_add(1, Ordering::Relaxed);
    }
}
