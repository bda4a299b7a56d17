//! Batching: single requests (reads, finds, creates, updates) that arrive within a
//! short window for the same connection and entity type leave as one batch call, and
//! each caller gets its own item's outcome.
//!
//! A batch is cut when it is full, or when its window has passed, a flight slot is
//! free and the connection's rate gate would let a call through: while the connection
//! is busy, batches keep filling instead of leaving half empty.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, Semaphore};

use super::gate::RateGate;

type Job<I, O> = (I, oneshot::Sender<O>);

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

    /// Submits one item and waits for its outcome. `None` when the batch it was in
    /// never answered (the process is stopping).
    pub async fn submit(&self, item: I) -> Option<O> {
        let (tx, rx) = oneshot::channel();
        self.tx.send((item, tx)).ok()?;
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
        let mut batch = vec![first];
        let deadline = tokio::time::Instant::now() + window;
        let mut open = true;
        while batch.len() < max {
            tokio::select! {
                item = rx.recv() => match item {
                    Some(item) => batch.push(item),
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
            // Keep filling until the gate would let the call through.
            loop {
                if batch.len() >= max || !open {
                    gate.ready().await;
                    break;
                }
                tokio::select! {
                    _ = gate.ready() => break,
                    item = rx.recv() => match item {
                        Some(item) => batch.push(item),
                        None => open = false,
                    },
                }
            }
        }
        let flush = flush.clone();
        tokio::spawn(async move {
            let (items, answers): (Vec<I>, Vec<oneshot::Sender<O>>) = batch.into_iter().unzip();
            let outcomes = flush(items).await;
            for (answer, outcome) in answers.into_iter().zip(outcomes) {
                let _ = answer.send(outcome);
            }
            drop(permit);
        });
        if !open {
            return;
        }
    }
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
