//! A bounded pool of workers over the bus's two lanes.
//!
//! Deliveries are taken from the bus as they come (the bus's prefetch bounds how many)
//! into a queue per pair and lane, where the backlog counts them as waiting for a
//! worker. A free worker takes the next change: live before bulk, and within a lane
//! the pairs in turn, so one pair's backlog does not hold another's changes back once
//! they are in the process. On shutdown the pool stops taking deliveries, lets
//! in-flight changes finish within a grace period, and returns; queued changes and a
//! change still running after that are abandoned unacknowledged, so the broker
//! delivers them again. Nothing is acknowledged that was not finished.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument as _;

use crate::backlog::{Backlog, Place, Stage, Ticket};
use crate::bus::{Bus, BusError, BusMessage, Delivery, Lane, RetryOutcome};
use crate::domain::ChangeEvent;

/// What became of one change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandleOutcome {
    /// Finished (synced, skipped, or recorded as failed): acknowledge it.
    Done,
    /// A passing failure: deliver it again after `delay`.
    Retry { delay: Duration, error: String },
    /// Not tried: a system it needs is out of service. Deliver it again after
    /// `delay` without counting an attempt.
    Postpone { delay: Duration, reason: String },
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
    backlog: Backlog,
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
            backlog: Backlog::default(),
        }
    }

    /// Counts this pool's changes in `backlog` (the one `/api/queue` reads).
    pub fn with_backlog(mut self, backlog: Backlog) -> Self {
        self.backlog = backlog;
        self
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
        let mut waiting = Waiting::default();
        let in_flight = TaskTracker::new();
        let abandon = CancellationToken::new();
        let stop_watching = CancellationToken::new();
        let watcher = tokio::spawn(super::idle::give_back_when_idle(
            in_flight.clone(),
            stop_watching.clone(),
            super::idle::return_free_memory,
        ));
        let mut paused = self.control.paused.subscribe();
        loop {
            let dispatching = !waiting.is_empty() && !*paused.borrow_and_update();
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                // A pause or resume takes effect before the next change starts.
                _ = paused.changed() => continue,
                slot = slots.clone().acquire_owned(), if dispatching => {
                    let Ok(slot) = slot else { break };
                    let Some((delivery, event, ticket)) = waiting.next() else {
                        continue;
                    };
                    ticket.enter(Stage::Running);
                    let handler = self.handler.clone();
                    let abandon = abandon.clone();
                    in_flight.spawn(async move {
                        tokio::select! {
                            // Dropping the delivery unanswered hands it back to the broker.
                            _ = abandon.cancelled() => {}
                            _ = ticket.scope(process(delivery, event, handler.as_ref())) => {}
                        }
                        drop(slot);
                    });
                }
                Some(delivery) = live.next() => self.take(delivery, &mut waiting).await,
                Some(delivery) = bulk.next() => self.take(delivery, &mut waiting).await,
                else => break,
            }
        }
        // Changes taken but not started go back to the broker unanswered.
        drop(waiting);
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

    /// Queues a delivery for its pair and lane; one that cannot be read is parked.
    async fn take(&self, delivery: Delivery, waiting: &mut Waiting) {
        crate::metrics::delivered(delivery.lane.as_str(), delivery.published_ms);
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
        let place = Place {
            pair: event.pair.to_string(),
            lane: delivery.lane.as_str(),
        };
        let published_ms = delivery
            .published_ms
            .unwrap_or_else(|| u64::try_from(chrono::Utc::now().timestamp_millis()).unwrap_or(0));
        let ticket = self.backlog.take(place, published_ms);
        waiting.push(delivery, event, ticket);
    }
}

/// Changes taken from the bus and not started: a queue per pair in each lane.
#[derive(Default)]
struct Waiting {
    live: PairQueues,
    bulk: PairQueues,
}

impl Waiting {
    fn push(&mut self, delivery: Delivery, event: ChangeEvent, ticket: Ticket) {
        let queues = match delivery.lane {
            Lane::Live => &mut self.live,
            Lane::Bulk => &mut self.bulk,
        };
        queues.push(event.pair.to_string(), (delivery, event, ticket));
    }

    fn is_empty(&self) -> bool {
        self.live.is_empty() && self.bulk.is_empty()
    }

    /// Live work of any pair before bulk work of any.
    fn next(&mut self) -> Option<(Delivery, ChangeEvent, Ticket)> {
        self.live.next().or_else(|| self.bulk.next())
    }
}

/// One lane's queues, one per pair, taken from in turn.
#[derive(Default)]
struct PairQueues {
    queues: BTreeMap<String, VecDeque<(Delivery, ChangeEvent, Ticket)>>,
    /// Pairs with work, in the order their turn comes.
    turns: VecDeque<String>,
}

impl PairQueues {
    fn push(&mut self, pair: String, item: (Delivery, ChangeEvent, Ticket)) {
        let queue = self.queues.entry(pair.clone()).or_default();
        if queue.is_empty() {
            self.turns.push_back(pair);
        }
        queue.push_back(item);
    }

    fn is_empty(&self) -> bool {
        self.turns.is_empty()
    }

    /// The next change of the pair whose turn it is; the pair goes to the back of the
    /// line if it has more.
    fn next(&mut self) -> Option<(Delivery, ChangeEvent, Ticket)> {
        let pair = self.turns.pop_front()?;
        let queue = self.queues.get_mut(&pair)?;
        let item = queue.pop_front();
        if queue.is_empty() {
            self.queues.remove(&pair);
        } else {
            self.turns.push_back(pair);
        }
        item
    }
}

async fn process(delivery: Delivery, event: ChangeEvent, handler: &dyn ChangeHandler) {
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
        HandleOutcome::Postpone { delay, reason } => {
            let postponed = delivery.postpone(delay, &reason).await;
            if postponed.is_ok() {
                tracing::info!(delay_ms = delay.as_millis() as u64, %reason, "postponed");
            }
            postponed
        }
        HandleOutcome::Park { reason } => delivery.park(&reason).await,
    };
    if let Err(err) = answered {
        // The broker connection broke after the work was done: the change comes again
        // and the sync core finds nothing new to do.
        tracing::warn!(error = %err, "cannot answer the delivery; it will be delivered again");
    }
}
