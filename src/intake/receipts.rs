//! Group commit of webhook receipts: deliveries that arrive while a commit is in
//! flight have their receipts recorded together, in the next statement.
//!
//! A delivery's receipts must be committed before its events are published and it is
//! answered; under load a commit per delivery (a statement and a WAL flush each) is
//! what the intake waits for. Together, one commit serves many deliveries. A delivery
//! never waits for company: a batch leaves as soon as a commit slot is free, so only
//! deliveries that would have queued for the database anyway share a statement.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use crate::connectors::http::Coalescer;
use crate::domain::{PairId, System};
use crate::store::ReceiptStore;

/// Deliveries in one statement at most (each usually carries a few keys).
const MAX_DELIVERIES: usize = 64;
/// Statements in flight at once per pair and system.
const IN_FLIGHT: usize = 2;

/// The keys of one delivery taken now, or why none could be recorded.
type Taken = Result<Vec<String>, String>;

/// Records the receipts of one pair's deliveries from one system.
pub struct ReceiptDesk {
    batches: Coalescer<Vec<String>, Taken>,
}

impl ReceiptDesk {
    /// Must be called within the Tokio runtime: the batching runs as a task.
    pub fn new(store: Arc<dyn ReceiptStore>, pair: PairId, system: System) -> Self {
        let batches = Coalescer::new(
            MAX_DELIVERIES,
            Duration::ZERO,
            IN_FLIGHT,
            move |deliveries| {
                let (store, pair) = (store.clone(), pair.clone());
                async move { record_together(store.as_ref(), &pair, system, deliveries).await }
            },
        );
        Self { batches }
    }

    /// Records a delivery's receipts; the keys taken now. A key received before, or
    /// taken by another delivery in the same statement, is not among them.
    pub async fn record(&self, keys: Vec<String>) -> Taken {
        self.batches
            .submit(keys)
            .await
            .unwrap_or_else(|| Err("the intake is stopping".into()))
    }
}

async fn record_together(
    store: &dyn ReceiptStore,
    pair: &PairId,
    system: System,
    deliveries: Vec<Vec<String>>,
) -> Vec<Taken> {
    let keys: Vec<String> = deliveries.iter().flatten().cloned().collect();
    match store.record_receipts(pair, system, &keys).await {
        Ok(inserted) => {
            // Each key inserted now goes to the first delivery that carried it: the
            // same delivery sent twice at once is published once.
            let mut unclaimed: HashSet<String> = inserted.into_iter().collect();
            deliveries
                .into_iter()
                .map(|keys| Ok(keys.into_iter().filter(|k| unclaimed.remove(k)).collect()))
                .collect()
        }
        Err(err) => {
            let message = format!("the store is unavailable: {err}");
            deliveries.iter().map(|_| Err(message.clone())).collect()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn each_key_is_taken_once_by_the_first_delivery_that_carries_it() {
        let store = crate::store::connect("sqlite::memory:")
            .await
            .expect("store");
        store.migrate().await.expect("migrate");
        let pair = PairId::new("acme");
        let keys = |ks: &[&str]| ks.iter().map(|k| k.to_string()).collect::<Vec<_>>();
        store
            .record_receipts(&pair, System::Finance, &keys(&["seen"]))
            .await
            .expect("earlier delivery");
        let taken = record_together(
            &store,
            &pair,
            System::Finance,
            vec![keys(&["a", "b"]), keys(&["b", "c", "seen"]), keys(&["a"])],
        )
        .await;
        assert_eq!(
            taken,
            vec![Ok(keys(&["a", "b"])), Ok(keys(&["c"])), Ok(keys(&[]))]
        );
    }
}
