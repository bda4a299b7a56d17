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
//! time. A live item in the batch brings its deadline back to the live window, and the
//! batch call is made at live priority.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, Semaphore};
use tokio::time::Instant;

use super::gate::{current_priority, with_priority, Priority, RateGate};

/// How long a batch of bulk work waits for one more item before leaving half full.
pub const BULK_QUIET: Duration = Duration::from_millis(500);
/// The longest a batch of bulk work waits to fill.
pub const BULK_MAX_WAIT: Duration = Duration::from_secs(2);

type Job<I, O> = (I, Priority, oneshot::Sender<O>);

pub struct Coalescer<I, O> {
    tx: mpsc::UnboundedSender<Job<I, O>>,
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
        Self::gated(max, window, in_flight, None, flush)
    }

    /// As `new`, and a batch also waits (filling) until `gate` would let a call through.
    pub fn gated<F, Fut>(
        max: usize,
        window: Duration,
        in_flight: usize,
        gate: Option<Arc<RateGate>>,
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
        };
        tokio::spawn(run(rx, limits, Arc::new(flush)));
        Self { tx }
    }

    /// Submits one item, at the priority of the change being handled, and waits for
    /// its outcome. `None` when the batch it was in never answered (the process is
    /// stopping).
    pub async fn submit(&self, item: I) -> Option<O> {
        let (tx, rx) = oneshot::channel();
        self.tx.send((item, current_priority(), tx)).ok()?;
        rx.await.ok()
    }
}

struct Limits {
    max: usize,
    window: Duration,
    in_flight: usize,
    gate: Option<Arc<RateGate>>,
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
    } = limits;
    let slots = Arc::new(Semaphore::new(in_flight));
    while let Some(first) = rx.recv().await {
        let started = Instant::now();
        let mut last = started;
        let mut batch = vec![first];
        let mut open = true;
        while batch.len() < max {
            let deadline = if batch.iter().any(|(_, p, _)| *p == Priority::Live) {
                started + window
            } else {
                (last + window.max(BULK_QUIET)).min(started + BULK_MAX_WAIT.max(window))
            };
            tokio::select! {
                item = rx.recv() => match item {
                    Some(item) => {
                        batch.push(item);
                        last = Instant::now();
                    }
                    None => { open = false; break }
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
                item = rx.recv() => match item {
                    Some(item) => batch.push(item),
                    None => open = false,
                },
            }
        };
        if let Some(gate) = &gate {
            loop {
                // Keep filling until the gate would let the call through.
                loop {
                    let priority = batch_priority(&batch);
                    if batch.len() >= max || !open {
                        gate.ready(priority).await;
                        break;
                    }
                    tokio::select! {
                        _ = gate.ready(priority) => break,
                        item = rx.recv() => match item {
                            Some(item) => batch.push(item),
                            None => open = false,
                        },
                    }
                }
                let live = batch.iter().any(|(_, p, _)| *p == Priority::Live);
                if batch.len() >= max || !open || live {
                    break;
                }
                // A bulk batch still half full when the gate opens: while the gate was
                // closed the work feeding it was stuck too, so quiet then meant
                // nothing. Give it BULK_QUIET of open gate to fill.
                if !fill_for(&mut rx, &mut batch, max, BULK_QUIET, &mut open).await {
                    break;
                }
            }
        }
        let flush = flush.clone();
        let priority = batch_priority(&batch);
        tokio::spawn(with_priority(priority, async move {
            let (items, answers): (Vec<I>, Vec<oneshot::Sender<O>>) = batch
                .into_iter()
                .map(|(item, _, answer)| (item, answer))
                .unzip();
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
    if batch.iter().any(|(_, p, _)| *p == Priority::Live) {
        Priority::Live
    } else {
        Priority::Bulk
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
            item = rx.recv() => match item {
                Some(item) => {
                    batch.push(item);
                    added = true;
                }
                None => {
                    *open = false;
                    break;
                }
            },
            _ = tokio::time::sleep(quiet) => break,
        }
    }
    added
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

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
            tokio::spawn(with_priority(
                Priority::Bulk,
                async move { c.submit(9).await },
            ))
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
