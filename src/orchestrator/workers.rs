//! A bounded pool of workers over the bus's two lanes, shared fairly between pairs.
//!
//! Deliveries are taken from the bus as they come (the bus keeps a queue per pair and
//! lane, and its prefetch bounds how many of each it hands over) into a queue per pair
//! and lane, where the backlog counts them as waiting for a worker. A free worker takes
//! the next change: live before bulk, and within a lane the pairs in turn. No pair holds
//! more than its share of the workers: at most `per_pair`, and an equal part of them
//! when several pairs have work. A change waiting for its pair's rate budget keeps its
//! worker (its batch call needs it in flight), so the share is what keeps one busy or
//! throttled organisation from holding the workers every other pair needs.
//!
//! On shutdown the pool stops taking deliveries, lets in-flight changes finish within
//! a grace period, and returns; queued changes and a change still running after that
//! are abandoned unacknowledged, so the broker delivers them again. Nothing is
//! acknowledged that was not finished.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
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
    per_pair: usize,
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
        let workers = workers.max(1);
        Self {
            bus,
            handler,
            workers,
            per_pair: workers,
            grace,
            control: QueueControl::default(),
            backlog: Backlog::default(),
        }
    }

    /// The most workers one pair may hold at once, however much it has waiting.
    pub fn with_pair_share(mut self, per_pair: usize) -> Self {
        self.per_pair = per_pair.clamp(1, self.workers);
        self
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
        let mut waiting = Waiting::default();
        let mut shares = Shares::new(self.workers, self.per_pair);
        let (finished_tx, mut finished) = tokio::sync::mpsc::unbounded_channel::<String>();
        let in_flight = TaskTracker::new();
        let abandon = CancellationToken::new();
        let stop_watching = CancellationToken::new();
        let watcher = tokio::spawn(super::idle::give_back_when_idle(
            in_flight.clone(),
            stop_watching.clone(),
            super::idle::return_free_memory,
        ));
        let mut paused = self.control.paused.subscribe();
        let (mut live_open, mut bulk_open) = (true, true);
        loop {
            // Start every change a worker is free for, before waiting for anything.
            if !*paused.borrow_and_update() {
                while let Some((delivery, event, ticket)) = waiting.next(&shares) {
                    let pair = event.pair.to_string();
                    shares.start(&pair);
                    ticket.enter(Stage::Running);
                    let handler = self.handler.clone();
                    let abandon = abandon.clone();
                    let finished = finished_tx.clone();
                    in_flight.spawn(async move {
                        tokio::select! {
                            // Dropping the delivery unanswered hands it back to the broker.
                            _ = abandon.cancelled() => {}
                            _ = ticket.scope(process(delivery, event, handler.as_ref())) => {}
                        }
                        let _ = finished.send(pair);
                    });
                }
            }
            // Deliveries are taken before finished work is counted, so a pair's changes
            // are all in their queues when the next one is chosen.
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                // A pause or resume takes effect before the next change starts.
                _ = paused.changed() => {}
                delivery = live.next(), if live_open => match delivery {
                    Some(delivery) => self.take(delivery, &mut waiting, &mut shares).await,
                    None => live_open = false,
                },
                delivery = bulk.next(), if bulk_open => match delivery {
                    Some(delivery) => self.take(delivery, &mut waiting, &mut shares).await,
                    None => bulk_open = false,
                },
                Some(pair) = finished.recv() => shares.finish(&pair, waiting.has(&pair)),
            }
            if !live_open && !bulk_open {
                // The bus is closed: nothing more will come.
                break;
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
    async fn take(&self, delivery: Delivery, waiting: &mut Waiting, shares: &mut Shares) {
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
        shares.has_work(&event.pair.to_string());
        waiting.push(delivery, event, ticket);
    }
}

/// Changes taken from the bus and not started: a queue per pair in each lane.
#[derive(Default)]
struct Waiting {
    live: PairQueues,
    bulk: PairQueues,
}

type Waiter = (Delivery, ChangeEvent, Ticket);

impl Waiting {
    fn push(&mut self, delivery: Delivery, event: ChangeEvent, ticket: Ticket) {
        let queues = match delivery.lane {
            Lane::Live => &mut self.live,
            Lane::Bulk => &mut self.bulk,
        };
        queues.push(event.pair.to_string(), (delivery, event, ticket));
    }

    fn has(&self, pair: &str) -> bool {
        self.live.queues.contains_key(pair) || self.bulk.queues.contains_key(pair)
    }

    /// Live work of any pair before bulk work of any, from a pair within its share.
    fn next(&mut self, shares: &Shares) -> Option<Waiter> {
        if !shares.free() {
            return None;
        }
        self.live
            .next(|pair| shares.allows(pair))
            .or_else(|| self.bulk.next(|pair| shares.allows(pair)))
    }
}

/// One lane's queues, one per pair, taken from in turn.
#[derive(Default)]
struct PairQueues {
    queues: BTreeMap<String, VecDeque<Waiter>>,
    /// Pairs with work, in the order their turn comes.
    turns: VecDeque<String>,
}

impl PairQueues {
    fn push(&mut self, pair: String, item: Waiter) {
        let queue = self.queues.entry(pair.clone()).or_default();
        if queue.is_empty() {
            self.turns.push_back(pair);
        }
        queue.push_back(item);
    }

    /// The next change of the first pair in turn that `may_start` allows; that pair goes
    /// to the back of the line if it has more, and the pairs passed over keep their
    /// places.
    fn next(&mut self, may_start: impl Fn(&str) -> bool) -> Option<Waiter> {
        let position = self.turns.iter().position(|pair| may_start(pair))?;
        let pair = self.turns.remove(position)?;
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

/// How many workers each pair holds, and how many it may.
struct Shares {
    workers: usize,
    per_pair: usize,
    running: usize,
    /// Workers held by each pair with work in flight or waiting.
    held: BTreeMap<String, usize>,
}

impl Shares {
    fn new(workers: usize, per_pair: usize) -> Self {
        Self {
            workers,
            per_pair,
            running: 0,
            held: BTreeMap::new(),
        }
    }

    fn free(&self) -> bool {
        self.running < self.workers
    }

    /// A pair may start one more change while it holds fewer than its share: `per_pair`,
    /// or an equal part of the workers when more pairs than that allows have work.
    fn allows(&self, pair: &str) -> bool {
        let pairs = self.held.len().max(1);
        let equal = self.workers.div_ceil(pairs);
        let held = self.held.get(pair).copied().unwrap_or(0);
        held < self.per_pair.min(equal).max(1)
    }

    /// A change of `pair` was taken: the pair counts among those with work.
    fn has_work(&mut self, pair: &str) {
        if !self.held.contains_key(pair) {
            self.held.insert(pair.to_string(), 0);
        }
    }

    fn start(&mut self, pair: &str) {
        self.running += 1;
        *self.held.entry(pair.to_string()).or_default() += 1;
    }

    fn finish(&mut self, pair: &str, more_waiting: bool) {
        self.running = self.running.saturating_sub(1);
        if let Some(held) = self.held.get_mut(pair) {
            *held = held.saturating_sub(1);
            if *held == 0 && !more_waiting {
                self.held.remove(pair);
            }
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_busy_pair_leaves_room_for_another() {
        let mut shares = Shares::new(8, 6);
        shares.has_work("a");
        for _ in 0..6 {
            assert!(shares.allows("a"));
            shares.start("a");
        }
        assert!(!shares.allows("a"), "a pair holds at most its share");
        shares.has_work("b");
        assert!(
            shares.allows("b"),
            "another pair finds a free worker at once"
        );
        shares.start("b");
        shares.finish("a", true);
        assert!(!shares.allows("a"), "two pairs with work get half each: 4");
        shares.finish("a", true);
        shares.finish("a", true);
        assert!(shares.allows("a"));
    }

    #[test]
    fn a_pair_is_forgotten_once_it_has_nothing_left() {
        let mut shares = Shares::new(4, 4);
        shares.has_work("a");
        shares.start("a");
        shares.has_work("b");
        shares.start("b");
        shares.finish("b", false);
        assert!(!shares.held.contains_key("b"));
        assert!(shares.allows("a"));
        shares.start("a");
        shares.start("a");
        shares.start("a");
        assert!(!shares.free());
    }
}
