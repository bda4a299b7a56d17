//! Batching: single requests (reads, finds, creates, updates) that arrive within a
//! short window for the same connection and entity type leave as one batch call, and
//! each caller gets its own item's outcome.
//!
//! A batch is cut when it is full, or when its window has passed, a flight slot is
//! free and the connection's rate gate would let a call through: while the connection
//! is busy, batches keep filling instead of leaving half empty.
//!
//! A batch of bulk work only (a resync, a replay) has a longer window: it is cut
//! half full only after no item joined for [`BULK_QUIET`] (at most [`BULK_MAX_WAIT`]
//! after its first). Its items are not waited on by anyone, and under a tight limit
//! (Xero's 60 calls a minute) every call that leaves half full costs the backfill
//! time. Once the gate is open, a half-full bulk batch is also held (at most
//! [`BULK_MAX_HOLD`]) while bulk changes are on their way to it (see [`bulk`]). A live
//! item in the batch brings its deadline back to the live window, and the batch call is
//! made at live priority.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, Semaphore};
use tokio::time::Instant;

use super::bulk::{self, Parked, Stage};
use super::gate::{current_priority, with_priority, Priority, RateGate};

/// How long a batch of bulk work waits for one more item before leaving half full.
pub const BULK_QUIET: Duration = Duration::from_millis(500);
/// The longest a batch of bulk work waits to fill.
pub const BULK_MAX_WAIT: Duration = Duration::from_secs(2);
/// The longest a half-full batch of bulk work, its gate open, is held for the bulk
/// changes still on their way to it.
pub const BULK_MAX_HOLD: Duration = Duration::from_secs(10);

struct Job<I, O> {
    item: I,
    priority: Priority,
    answer: oneshot::Sender<O>,
    /// Counted as bulk work waiting in a batch until the batch is sent.
    _parked: Option<Parked>,
}

impl<I, O> Job<I, O> {
    fn live(&self) -> bool {
        self.priority == Priority::Live
    }
}

pub struct Coalescer<I, O> {
    tx: mpsc::UnboundedSender<Job<I, O>>,
    stage: Stage,
}

impl<I, O> Coalescer<I, O>
where
    I: Send + 'static,
    O: Send + 'static,
{
    /// `flush` gets up to `max` items and answers one outcome per item, in order; at
    /// most `in_flight` flushes run at once.
    pub fn new<F, Fut>(max: usize, window: Duration, in_flight: usize, flush: F) -> Self
    where
        F: Fn(Vec<I>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Vec<O>> + Send + 'static,
    {
        Self::gated(max, window, in_flight, None, Stage::Write, flush)
    }

    /// As `new`, and a batch also waits (filling) until `gate` would let a call through.
    /// `stage` says where in a change's handling its calls come.
    pub fn gated<F, Fut>(
        max: usize,
        window: Duration,
        in_flight: usize,
        gate: Option<Arc<RateGate>>,
        stage: Stage,
        flush: F,
    ) -> Self
    where
        F: Fn(Vec<I>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Vec<O>> + Send + 'static,
    {
        let (tx, rx) = mpsc::unbounded_channel();
        let limits = Limits {
            max: max.max(1),
            window,
            in_flight: in_flight.max(1),
            gate,
            stage,
        };
        tokio::spawn(run(rx, limits, Arc::new(flush)));
        Self { tx, stage }
    }

    /// Submits one item, at the priority of the change being handled, and waits for
    /// its outcome. `None` when the batch it was in never answered (the process is
    /// stopping).
    pub async fn submit(&self, item: I) -> Option<O> {
        let (answer, rx) = oneshot::channel();
        let priority = current_priority();
        let job = Job {
            item,
            priority,
            answer,
            _parked: (priority == Priority::Bulk).then(|| Parked::new(self.stage)),
        };
        self.tx.send(job).ok()?;
        // The change waits for its batch's call, which waits for the rate budget.
        let _waiting = crate::backlog::waiting(crate::backlog::Stage::Rate);
        rx.await.ok()
    }
}

struct Limits {
    max: usize,
    window: Duration,
    in_flight: usize,
    gate: Option<Arc<RateGate>>,
    stage: Stage,
}

async fn run<I, O, F, Fut>(
    mut rx: mpsc::UnboundedReceiver<Job<I, O>>,
    limits: Limits,
    flush: Arc<F>,
) where
    I: Send + 'static,
    O: Send + 'static,
    F: Fn(Vec<I>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Vec<O>> + Send + 'static,
{
    let Limits {
        max,
        window,
        in_flight,
        gate,
        stage,
    } = limits;
    let slots = Arc::new(Semaphore::new(in_flight));
    while let Some(first) = rx.recv().await {
        let started = Instant::now();
        let mut last = started;
        let mut batch = vec![first];
        let mut open = true;
        while batch.len() < max {
            let deadline = if batch.iter().any(Job::live) {
                started + window
            } else {
                (last + window.max(BULK_QUIET)).min(started + BULK_MAX_WAIT.max(window))
            };
            if deadline <= Instant::now() {
                // Past the window already (a zero window): take what is queued without
                // waiting on a timer, whose millisecond ticks would add one to each call.
                take_queued(&mut rx, &mut batch, max, &mut open);
                break;
            }
            tokio::select! {
                took = take_next(&mut rx, &mut batch, &mut open) => if took {
                    last = Instant::now();
                } else {
                    break;
                },
                _ = tokio::time::sleep_until(deadline) => break,
            }
        }
        // Keep filling while every flight slot is taken.
        let permit = loop {
            if batch.len() >= max || !open {
                match slots.clone().acquire_owned().await {
                    Ok(permit) => break permit,
                    Err(_) => return,
                }
            }
            tokio::select! {
                permit = slots.clone().acquire_owned() => match permit {
                    Ok(permit) => break permit,
                    Err(_) => return,
                },
                _ = take_next(&mut rx, &mut batch, &mut open) => {}
            }
        };
        if let Some(gate) = &gate {
            let held_until = Instant::now() + BULK_MAX_HOLD;
            loop {
                // Keep filling until the gate would let the call through.
                loop {
                    let priority = batch_priority(&batch);
                    if batch.len() >= max || !open {
                        gate.ready(priority, batch.len(), started).await;
                        break;
                    }
                    tokio::select! {
                        // Made again with each item taken, so it bids the batch's size.
                        _ = gate.ready(priority, batch.len(), started) => break,
                        _ = take_next(&mut rx, &mut batch, &mut open) => {}
                    }
                }
                let live = batch.iter().any(Job::live);
                if batch.len() >= max || !open || live {
                    break;
                }
                // A bulk batch still half full when the gate opens: while the gate was
                // closed the work feeding it was stuck too, so quiet then meant
                // nothing. Give it BULK_QUIET of open gate to fill.
                if fill_for(&mut rx, &mut batch, max, BULK_QUIET, &mut open).await {
                    continue;
                }
                // Quiet, but bulk changes are still on their way (reading the other
                // side, inside a call whose answer sets them free): the remainder that
                // full batches left over joins the next ones instead of costing a call
                // of its own (under 60 calls a minute, one call too many costs a minute).
                if !hold_for_more(&mut rx, &mut batch, stage, held_until, &mut open).await {
                    break;
                }
            }
        }
        let priority = batch_priority(&batch);
        tracing::debug!(
            items = batch.len(),
            max,
            ?priority,
            waited_ms = started.elapsed().as_millis() as u64,
            "batch call"
        );
        let flush = flush.clone();
        tokio::spawn(with_priority(priority, async move {
            let (items, answers): (Vec<I>, Vec<oneshot::Sender<O>>) =
                batch.into_iter().map(|job| (job.item, job.answer)).unzip();
            let outcomes = flush(items).await;
            for (answer, outcome) in answers.into_iter().zip(outcomes) {
                let _ = answer.send(outcome);
            }
            drop(permit);
        }));
        if !open {
            return;
        }
    }
}

/// Live when any item is live: the batch call serves a live change.
fn batch_priority<I, O>(batch: &[Job<I, O>]) -> Priority {
    if batch.iter().any(Job::live) {
        Priority::Live
    } else {
        Priority::Bulk
    }
}

/// Waits, while bulk changes are on their way and `until` has not come, for an item
/// (added to `batch`) or for nothing to be on its way any more; whether to go on
/// filling.
async fn hold_for_more<I, O>(
    rx: &mut mpsc::UnboundedReceiver<Job<I, O>>,
    batch: &mut Vec<Job<I, O>>,
    stage: Stage,
    until: Instant,
    open: &mut bool,
) -> bool {
    if !bulk::on_its_way(stage) || Instant::now() >= until {
        return false;
    }
    loop {
        tokio::select! {
            took = take_next(rx, batch, open) => return took,
            // What the last answers set free may still come, within the quiet time.
            _ = bulk::changed(stage) => if !bulk::on_its_way(stage) {
                return true;
            },
            _ = tokio::time::sleep_until(until) => return false,
        }
    }
}

/// Takes the next item into `batch`; false once the channel has closed (`open` is
/// cleared then). Safe to drop unfinished: an item received is pushed in the same poll.
async fn take_next<I, O>(
    rx: &mut mpsc::UnboundedReceiver<Job<I, O>>,
    batch: &mut Vec<Job<I, O>>,
    open: &mut bool,
) -> bool {
    match rx.recv().await {
        Some(item) => {
            batch.push(item);
            true
        }
        None => {
            *open = false;
            false
        }
    }
}

/// Adds the items already queued to `batch`, up to `max`.
fn take_queued<I, O>(
    rx: &mut mpsc::UnboundedReceiver<Job<I, O>>,
    batch: &mut Vec<Job<I, O>>,
    max: usize,
    open: &mut bool,
) {
    while batch.len() < max {
        match rx.try_recv() {
            Ok(item) => batch.push(item),
            Err(mpsc::error::TryRecvError::Empty) => break,
            Err(mpsc::error::TryRecvError::Disconnected) => {
                *open = false;
                break;
            }
        }
    }
}

/// Adds items to `batch` until it is full or none came for `quiet`; whether any came.
async fn fill_for<I, O>(
    rx: &mut mpsc::UnboundedReceiver<Job<I, O>>,
    batch: &mut Vec<Job<I, O>>,
    max: usize,
    quiet: Duration,
    open: &mut bool,
) -> bool {
    let mut added = false;
    while batch.len() < max {
        tokio::select! {
            took = take_next(rx, batch, open) => if took {
                added = true;
            } else {
                break;
            },
            _ = tokio::time::sleep(quiet) => break,
        }
    }
    added
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;

    use super::*;
    use crate::connectors::http::BulkChange;

    type Sizes = Arc<Mutex<Vec<usize>>>;

    /// A gated coalescer of `stage` that records the size of each batch call.
    fn recording(stage: Stage) -> (Arc<Coalescer<u32, u32>>, Sizes) {
        let sizes = Sizes::default();
        let seen = sizes.clone();
        let coalescer = Coalescer::gated(
            50,
            Duration::from_millis(20),
            1,
            Some(RateGate::unlimited()),
            stage,
            move |items: Vec<u32>| {
                seen.lock().unwrap().push(items.len());
                async move { items }
            },
        );
        (Arc::new(coalescer), sizes)
    }

    /// One bulk change: it begins at once, and submits `item` after `delay`.
    fn bulk_change(
        coalescer: &Arc<Coalescer<u32, u32>>,
        item: u32,
        delay: Duration,
    ) -> tokio::task::JoinHandle<Option<u32>> {
        let c = coalescer.clone();
        let change = BulkChange::begin();
        tokio::spawn(with_priority(Priority::Bulk, async move {
            let _change = change;
            tokio::time::sleep(delay).await;
            c.submit(item).await
        }))
    }

    #[tokio::test(start_paused = true)]
    async fn a_half_full_bulk_batch_waits_for_a_change_still_on_its_way() {
        let (finds, sizes) = recording(Stage::Find);
        let mut changes: Vec<_> = (0..24)
            .map(|i| bulk_change(&finds, i, Duration::ZERO))
            .collect();
        // Still reading the other side, well past the quiet time.
        changes.push(bulk_change(&finds, 24, BULK_QUIET * 6));
        for (i, change) in changes.into_iter().enumerate() {
            assert_eq!(change.await.unwrap(), Some(i as u32));
        }
        assert_eq!(*sizes.lock().unwrap(), vec![25], "one call for all 25");
    }

    #[tokio::test(start_paused = true)]
    async fn a_batch_of_an_earlier_stage_feeds_a_later_one_before_it_leaves() {
        let (reads, read_sizes) = recording(Stage::Read);
        let (finds, find_sizes) = recording(Stage::Find);
        // Five changes wait in a half-full look-up; ten more are reading, and look
        // up what they read.
        let mut changes: Vec<_> = (0..5)
            .map(|i| bulk_change(&finds, i, Duration::ZERO))
            .collect();
        for i in 5..15u32 {
            let (reads, finds) = (reads.clone(), finds.clone());
            let change = BulkChange::begin();
            changes.push(tokio::spawn(with_priority(Priority::Bulk, async move {
                let _change = change;
                let read = reads.submit(i).await?;
                finds.submit(read).await
            })));
        }
        for change in changes {
            assert!(change.await.unwrap().is_some());
        }
        assert_eq!(*read_sizes.lock().unwrap(), vec![10]);
        assert_eq!(*find_sizes.lock().unwrap(), vec![15], "the look-up waited");
    }

    #[tokio::test(start_paused = true)]
    async fn half_full_batches_of_one_stage_do_not_wait_for_each_other() {
        let (creates, create_sizes) = recording(Stage::Write);
        let (updates, update_sizes) = recording(Stage::Write);
        let started = Instant::now();
        let changes: Vec<_> = (0..3)
            .map(|i| bulk_change(&creates, i, Duration::ZERO))
            .chain((3..5).map(|i| bulk_change(&updates, i, Duration::ZERO)))
            .collect();
        for change in changes {
            assert!(change.await.unwrap().is_some());
        }
        assert!(
            started.elapsed() < BULK_MAX_HOLD,
            "held for each other: {:?}",
            started.elapsed()
        );
        assert_eq!(*create_sizes.lock().unwrap(), vec![3]);
        assert_eq!(*update_sizes.lock().unwrap(), vec![2]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_half_full_bulk_batch_is_held_no_longer_than_the_limit() {
        let (finds, sizes) = recording(Stage::Find);
        let waiting = bulk_change(&finds, 1, Duration::ZERO);
        // A change under way that never comes here.
        let _elsewhere = BulkChange::begin();
        let started = Instant::now();
        assert_eq!(waiting.await.unwrap(), Some(1));
        let held = started.elapsed();
        assert!(
            held >= BULK_MAX_HOLD && held < BULK_MAX_HOLD + BULK_MAX_WAIT,
            "held {held:?}"
        );
        assert_eq!(*sizes.lock().unwrap(), vec![1]);
    }

    #[tokio::test]
    async fn items_within_the_window_leave_together_and_each_gets_its_own_outcome() {
        let calls = Arc::new(AtomicUsize::new(0));
        let counted = calls.clone();
        let coalescer = Arc::new(Coalescer::new(
            50,
            Duration::from_millis(30),
            1,
            move |items: Vec<u32>| {
                counted.fetch_add(1, Ordering::SeqCst);
                async move { items.into_iter().map(|i| i * 10).collect() }
            },
        ));
        let mut handles = Vec::new();
        for i in 0..20u32 {
            let c = coalescer.clone();
            handles.push(tokio::spawn(async move { c.submit(i).await }));
        }
        for (i, handle) in handles.into_iter().enumerate() {
            assert_eq!(handle.await.unwrap(), Some(i as u32 * 10));
        }
        assert_eq!(
            calls.load(Ordering::SeqCst),
            1,
            "one batch call for all twenty"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn bulk_items_wait_for_company_and_a_live_one_brings_the_batch_forward() {
        let sizes = Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = sizes.clone();
        let coalescer = Arc::new(Coalescer::new(
            50,
            Duration::from_millis(20),
            1,
            move |items: Vec<u32>| {
                seen.lock().unwrap().push((items.len(), current_priority()));
                async move { items }
            },
        ));
        // Bulk items 100 ms apart: each comes within the quiet time, so one batch.
        let mut handles = Vec::new();
        for i in 0..5u32 {
            let c = coalescer.clone();
            handles.push(tokio::spawn(with_priority(Priority::Bulk, async move {
                let _change = BulkChange::begin();
                c.submit(i).await
            })));
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        for handle in handles {
            assert!(handle.await.unwrap().is_some());
        }
        // A live item joining bulk ones leaves within the live window.
        let bulk = {
            let c = coalescer.clone();
            tokio::spawn(with_priority(Priority::Bulk, async move {
                let _change = BulkChange::begin();
                c.submit(9).await
            }))
        };
        tokio::task::yield_now().await;
        let asked = Instant::now();
        assert_eq!(coalescer.submit(10).await, Some(10));
        assert!(
            asked.elapsed() < BULK_QUIET,
            "the live item waited like bulk"
        );
        assert_eq!(bulk.await.unwrap(), Some(9));
        assert_eq!(
            *sizes.lock().unwrap(),
            vec![(5, Priority::Bulk), (2, Priority::Live)]
        );
    }

    #[tokio::test]
    async fn a_full_batch_leaves_at_once() {
        let coalescer = Coalescer::new(
            2,
            Duration::from_secs(3600),
            1,
            |items: Vec<u8>| async move { items },
        );
        let (a, b) = tokio::join!(coalescer.submit(1), coalescer.submit(2));
        assert_eq!((a, b), (Some(1), Some(2)));
    }
}
