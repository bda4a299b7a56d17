//! A bounded pool of workers over the bus's two lanes.
//!
//! Live changes are taken before bulk work whenever both wait. On shutdown the pool
//! stops taking deliveries, lets in-flight changes finish within a grace period, and
//! returns; a change still running after that is abandoned unacknowledged, so the
//! broker delivers it again. Nothing is acknowledged that was not finished.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument as _;

use crate::bus::{Bus, BusError, BusMessage, Delivery, Lane, RetryOutcome};
use crate::domain::ChangeEvent;

/// What became of one change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandleOutcome {
    /// Finished (synced, skipped, or recorded as failed): acknowledge it.
    Done,
    /// A passing failure: deliver it again after `delay`.
    Retry { delay: Duration, error: String },
    /// Cannot be handled without a person: set it aside.
    Park { reason: String },
}

/// Handles one change event; the sync core implements it.
#[async_trait]
pub trait ChangeHandler: Send + Sync + 'static {
    /// `attempt` is 1 on the first delivery.
    async fn handle(&self, event: ChangeEvent, attempt: u32) -> HandleOutcome;
}

/// Pauses and resumes this process's workers (a person investigating, a system's
/// maintenance window). Paused workers take no new change; what is queued waits.
#[derive(Clone)]
pub struct QueueControl {
    paused: Arc<tokio::sync::watch::Sender<bool>>,
}

impl Default for QueueControl {
    fn default() -> Self {
        Self {
            paused: Arc::new(tokio::sync::watch::channel(false).0),
        }
    }
}

impl QueueControl {
    pub fn pause(&self) {
        self.paused.send_replace(true);
    }

    pub fn resume(&self) {
        self.paused.send_replace(false);
    }

    pub fn is_paused(&self) -> bool {
        *self.paused.borrow()
    }
}

pub struct WorkerPool {
    bus: Arc<dyn Bus>,
    handler: Arc<dyn ChangeHandler>,
    workers: usize,
    grace: Duration,
    control: QueueControl,
}

impl WorkerPool {
    pub fn new(
        bus: Arc<dyn Bus>,
        handler: Arc<dyn ChangeHandler>,
        workers: usize,
        grace: Duration,
    ) -> Self {
        Self {
            bus,
            handler,
            workers: workers.max(1),
            grace,
            control: QueueControl::default(),
        }
    }

    /// Lets `control` pause and resume this pool.
    pub fn with_control(mut self, control: QueueControl) -> Self {
        self.control = control;
        self
    }

    /// Runs until `shutdown` is cancelled, then drains as described above.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), BusError> {
        let mut live = self.bus.consume(Lane::Live).await?;
        let mut bulk = self.bus.consume(Lane::Bulk).await?;
        let slots = Arc::new(Semaphore::new(self.workers));
        let in_flight = TaskTracker::new();
        let abandon = CancellationToken::new();
        let stop_watching = CancellationToken::new();
        let watcher = tokio::spawn(super::idle::give_back_when_idle(
            in_flight.clone(),
            stop_watching.clone(),
            super::idle::return_free_memory,
        ));
        let mut paused = self.control.paused.subscribe();
        'taking: loop {
            while *paused.borrow_and_update() {
                tokio::select! {
                    _ = shutdown.cancelled() => break 'taking,
                    _ = paused.changed() => {}
                }
            }
            let slot = tokio::select! {
                _ = shutdown.cancelled() => break,
                slot = slots.clone().acquire_owned() => match slot {
                    Ok(slot) => slot,
                    Err(_) => break,
                },
            };
            let delivery = tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                // A pause while waiting takes effect before the next delivery.
                _ = paused.changed() => continue 'taking,
                Some(delivery) = live.next() => delivery,
                Some(delivery) = bulk.next() => delivery,
                else => break,
            };
            crate::metrics::delivered(delivery.lane.as_str(), delivery.published_ms);
            let handler = self.handler.clone();
            let abandon = abandon.clone();
            in_flight.spawn(async move {
                tokio::select! {
                    // Dropping the delivery unanswered hands it back to the broker.
                    _ = abandon.cancelled() => {}
                    _ = process(delivery, handler.as_ref()) => {}
                }
                drop(slot);
            });
        }
        stop_watching.cancel();
        let _ = watcher.await;
        in_flight.close();
        if tokio::time::timeout(self.grace, in_flight.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                unfinished = in_flight.len(),
                grace_secs = self.grace.as_secs(),
                "changes did not finish within the grace period; they will be delivered again"
            );
            abandon.cancel();
            in_flight.wait().await;
        }
        Ok(())
    }
}

async fn process(delivery: Delivery, handler: &dyn ChangeHandler) {
    let event = match delivery.message() {
        Ok(BusMessage::ChangeV1(event)) => event,
        Err(err) => {
            tracing::error!(error = %err, "parking a message that cannot be decoded");
            if let Err(err) = delivery.park(&err.to_string()).await {
                tracing::warn!(error = %err, "cannot park; it will be delivered again");
            }
            return;
        }
    };
    let span = tracing::info_span!(
        "change",
        event_id = %event.event_id,
        pair = %event.pair,
        system = %event.system,
        entity = %event.entity,
        external_id = %event.external_id,
        attempt = delivery.attempt,
        lane = delivery.lane.as_str(),
    );
    handle_and_answer(delivery, event, handler)
        .instrument(span)
        .await;
}

async fn handle_and_answer(delivery: Delivery, event: ChangeEvent, handler: &dyn ChangeHandler) {
    let outcome = handler.handle(event, delivery.attempt).await;
    let answered = match outcome {
        HandleOutcome::Done => delivery.ack().await,
        HandleOutcome::Retry { delay, error } => match delivery.retry(delay, &error).await {
            Ok(RetryOutcome::Scheduled) => {
                tracing::info!(delay_ms = delay.as_millis() as u64, %error, "retrying later");
                Ok(())
            }
            Ok(RetryOutcome::Parked) => {
                tracing::warn!(%error, "attempts used up; parked");
                Ok(())
            }
            Err(err) => Err(err),
        },
        HandleOutcome::Park { reason } => delivery.park(&reason).await,
    };
    if let Err(err) = answered {
        // The broker connection broke after the work was done: the change comes again
        // and the sync core finds nothing new to do.
        tracing::warn!(error = %err, "cannot answer the delivery; it will be delivered again");
    }
}
