//! The orchestrator's handling of one change as a worker gives it: its priority and
//! settling, the pipeline ([`super::pipeline`]) that syncs it, and what becomes of a
//! failure: retried with backoff (visible at once as `retrying`), or recorded as failed.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tracing::Instrument as _;
use uuid::Uuid;

use super::pipeline::{self, Change};
use super::retry::{backoff, postponement, until_renewed};
use super::runtime::{PairRuntime, PairTable, SyncError};
use super::settle::{Settling, Turn};
use super::workers::{ChangeHandler, HandleOutcome};
use crate::connectors::health::Connections;
use crate::connectors::http::{with_priority, BulkChange, Priority};
use crate::connectors::ConnectorError;
use crate::domain::{ChangeEvent, PairId, System, Trigger};
use crate::store::{
    JobCounter, LinkStatusChange, NewSyncLogEntry, Outcome, Store, StoreError, SyncStatus,
};

/// How long a change of a paused pair waits before it is looked at again.
const PAUSED_RETRY: Duration = Duration::from_secs(30);

pub struct Orchestrator {
    store: Arc<dyn Store>,
    pairs: PairTable,
    max_attempts: u32,
    settling: Settling,
    /// The connections' health, told which changes wait on them.
    connections: Arc<Connections>,
}

impl Orchestrator {
    pub fn new(
        store: Arc<dyn Store>,
        pairs: HashMap<PairId, PairRuntime>,
        max_attempts: u32,
    ) -> Self {
        Self {
            store,
            pairs: PairTable::new(pairs),
            max_attempts: max_attempts.max(1),
            settling: Settling::new(Duration::ZERO),
            connections: Arc::default(),
        }
    }

    /// Syncs the pairs of `table`, which may change while it runs.
    pub fn with_pair_table(mut self, table: PairTable) -> Self {
        self.pairs = table;
        self
    }

    /// Counts, on each connection's health, the changes sent back for a retry after
    /// it failed them (`GET /api/connections`).
    pub fn with_connections(mut self, connections: Arc<Connections>) -> Self {
        self.connections = connections;
        self
    }

    /// A change goes back for a retry: it waits on the connection that failed it.
    fn sent_back(&self, event: &ChangeEvent, error: &SyncError) {
        if let SyncError::Connector(err) = error {
            if let Some(connection) = self.connections.find(&event.pair, err.system()) {
                connection.health.change_sent_back(&event.event_id);
            }
        }
    }

    /// A change is being handled again: it waits on no connection meanwhile.
    fn came_back(&self, event: &ChangeEvent) {
        for system in [System::Crm, System::Finance] {
            if let Some(connection) = self.connections.find(&event.pair, system) {
                connection.health.change_came_back(&event.event_id);
            }
        }
    }

    /// Live changes of a record that began writing less than `window` ago wait for the
    /// window's end (see [`Settling`]); zero, the default here, never waits.
    pub fn with_settling(mut self, window: Duration) -> Self {
        self.settling = Settling::new(window);
        self
    }

    async fn sync(
        &self,
        pair: &PairRuntime,
        event: &ChangeEvent,
        attempt: u32,
        transaction_id: Uuid,
    ) -> Result<Outcome, SyncError> {
        let policy = pair.policy(event.entity);
        let change = Change {
            store: self.store.as_ref(),
            pair,
            policy: &policy,
            event,
            attempt,
            transaction_id,
        };
        let outcome = pipeline::run(&change).await?;
        if let Some(job) = event.job_id {
            let counter = if outcome == Outcome::Skipped {
                JobCounter::Skipped
            } else {
                JobCounter::Synced
            };
            self.store.add_to_job(job, counter, 1).await?;
        }
        Ok(outcome)
    }

    /// A change covered by a sync that waits for the record to settle is logged, so
    /// the record's history says where the change went.
    async fn record_covered(&self, event: &ChangeEvent, transaction_id: Uuid, due: Duration) {
        let mut entry = NewSyncLogEntry::for_event(transaction_id, event, Outcome::Skipped);
        entry.detail = Some(format!(
            "settling: the record changed again within the window; its next sync, due in \
             {} ms, reads it after this change",
            due.as_millis()
        ));
        if let Err(err) = self.store.append_log(entry).await {
            tracing::warn!(error = %err, "cannot record a settled change in the sync log");
        }
    }

    async fn record_failure(
        &self,
        event: &ChangeEvent,
        attempt: u32,
        transaction_id: Uuid,
        error: &SyncError,
        failure: Failure,
        started: Instant,
    ) {
        let (outcome, retry_in) = match failure {
            Failure::Retrying { delay } => (Outcome::Retrying, Some(delay)),
            Failure::Spent => (Outcome::Failed, None),
        };
        let link = self
            .store
            .find_link(&event.pair, event.entity, event.system, &event.external_id)
            .await
            .ok()
            .flatten();
        let mut entry = NewSyncLogEntry::for_event(transaction_id, event, outcome);
        entry.link_id = link.as_ref().map(|l| l.id);
        entry.attempt = attempt;
        entry.error = Some(error.to_string());
        entry.duration_ms = started.elapsed().as_millis() as u64;
        if let SyncError::Connector(err) = error {
            if let Some(exchange) = err.exchange() {
                entry.request = exchange.request.clone();
                entry.response = exchange.response.clone();
                entry.status_code = exchange.status;
            }
        }
        let final_failure = outcome == Outcome::Failed;
        // Visible from the first failed attempt: the record's status says it is
        // retrying (and when), or that its attempts are spent.
        let link_status = link.map(|l| LinkStatusChange {
            link_id: l.id,
            status: if final_failure {
                SyncStatus::Failed
            } else {
                SyncStatus::Retrying
            },
            error: error.to_string(),
            attempts: attempt,
            next_attempt_at: retry_in
                .and_then(|delay| chrono::Duration::from_std(delay).ok())
                .map(|delay| chrono::Utc::now() + delay),
            transaction_id,
        });
        let commit = crate::store::SyncCommit {
            link: None,
            log: entry,
            conflicts: vec![],
            withdrawn: vec![],
            link_status,
            hold_delete: false,
            announced: None,
        };
        if let Err(err) = self.store.commit_sync(commit).await {
            tracing::error!(error = %err, "cannot record the failure in the sync log");
        }
        if final_failure {
            if let Some(job) = event.job_id {
                let _ = self.store.add_to_job(job, JobCounter::Failed, 1).await;
            }
        }
    }
}

/// Why a change that failed is synced again at once (once): the link changed
/// meanwhile (another change linked or saved it), or a record changed after it was read
/// and nothing was written. A fresh read decides it.
fn sync_again_because(err: &SyncError) -> Option<String> {
    match err {
        SyncError::Store(StoreError::AlreadyLinked(detail) | StoreError::Concurrent(detail)) => {
            Some(detail.clone())
        }
        SyncError::Connector(changed @ crate::connectors::ConnectorError::Changed { .. }) => {
            Some(changed.to_string())
        }
        _ => None,
    }
}

/// How a change that failed stands.
enum Failure {
    /// It is tried again after `delay`.
    Retrying { delay: Duration },
    /// Its attempts are spent, or it cannot succeed without a person.
    Spent,
}

#[async_trait]
impl ChangeHandler for Orchestrator {
    async fn handle(&self, event: ChangeEvent, attempt: u32) -> HandleOutcome {
        let Some(pair) = self.pairs.get(&event.pair) else {
            if let Some(reason) = self.pairs.paused(&event.pair) {
                return HandleOutcome::Postpone {
                    delay: PAUSED_RETRY,
                    reason,
                };
            }
            return HandleOutcome::Park {
                reason: format!("no pair named `{}` in the settings", event.pair),
            };
        };
        let transaction_id = event.transaction_id.unwrap_or_else(Uuid::now_v7);
        if attempt > 1 {
            self.came_back(&event);
        }
        let span = tracing::info_span!("sync", transaction_id = %transaction_id);
        let started = Instant::now();
        let priority = match event.trigger {
            Trigger::Manual | Trigger::Replay => Priority::Bulk,
            Trigger::Webhook | Trigger::Poll | Trigger::Retry => Priority::Live,
        };
        let work = async {
            // Counted while it runs: half-full bulk batches wait for the bulk work on
            // its way to them.
            let _bulk = (priority == Priority::Bulk).then(BulkChange::begin);
            // Bulk work (a resync, a replay) reads each record once anyway.
            let turn = match priority {
                Priority::Live => self.settling.turn(&event).await,
                Priority::Bulk => Turn::Free,
            };
            if let Turn::Covered { due } = turn {
                self.record_covered(&event, transaction_id, due).await;
                crate::metrics::sync_finished(Outcome::Skipped.as_str(), started.elapsed());
                return HandleOutcome::Done;
            }
            let mut result = self.sync(&pair, &event, attempt, transaction_id).await;
            if let Some(detail) = result.as_ref().err().and_then(sync_again_because) {
                // The other side's change of the same new person linked the two records
                // first (until a link names both, each side locks its own record), or
                // another change saved the link between loading and locking it. Syncing
                // again reads the link as it is now and waits for its lock.
                tracing::debug!(%detail, "the link changed meanwhile; syncing again");
                result = self.sync(&pair, &event, attempt, transaction_id).await;
            }
            let wrote = matches!(&result, Ok(outcome) if *outcome != Outcome::Skipped);
            self.settling.finish(turn, wrote).await;
            match result {
                Ok(outcome) => {
                    crate::metrics::sync_finished(outcome.as_str(), started.elapsed());
                    HandleOutcome::Done
                }
                Err(err) => {
                    // Not called, or refused the credentials (the connection is now
                    // held as unauthorised): the change waits for the connection
                    // without using up an attempt, and lands once it is reconnected.
                    // A spent budget (the day's calls) waits for its renewal.
                    let waits_for = match &err {
                        SyncError::Connector(ConnectorError::OutOfService { out_for, .. }) => Some(postponement(*out_for)),
                        SyncError::Connector(e) if e.credentials_refused() => Some(postponement(Duration::ZERO)),
                        SyncError::Connector(ConnectorError::OverBudget { retry_after, .. }) => Some(until_renewed(*retry_after)),
                        _ => None,
                    };
                    if let Some(delay) = waits_for {
                        tracing::info!(error = %err, delay_ms = delay.as_millis() as u64, "waiting for the connection");
                        self.record_failure(&event, attempt, transaction_id, &err, Failure::Retrying { delay }, started).await;
                        self.sent_back(&event, &err);
                        crate::metrics::sync_finished(Outcome::Retrying.as_str(), started.elapsed());
                        return HandleOutcome::Postpone { delay, reason: err.to_string() };
                    }
                    let retryable = match &err {
                        SyncError::Connector(err) => err.is_retryable(),
                        SyncError::Store(_) => true,
                    };
                    if retryable && attempt < self.max_attempts {
                        let retry_after = match &err {
                            SyncError::Connector(err) => err.retry_after(),
                            SyncError::Store(_) => None,
                        };
                        let delay = backoff(attempt, retry_after);
                        tracing::warn!(error = %err, delay_ms = delay.as_millis() as u64, "retrying");
                        self.record_failure(&event, attempt, transaction_id, &err, Failure::Retrying { delay }, started).await;
                        self.sent_back(&event, &err);
                        crate::metrics::sync_finished(Outcome::Retrying.as_str(), started.elapsed());
                        HandleOutcome::Retry { delay, error: err.to_string() }
                    } else {
                        tracing::error!(error = %err, attempt, "sync failed");
                        self.record_failure(&event, attempt, transaction_id, &err, Failure::Spent, started).await;
                        crate::metrics::sync_finished(Outcome::Failed.as_str(), started.elapsed());
                        if retryable {
                            HandleOutcome::Park { reason: format!("attempts used up: {err}") }
                        } else {
                            HandleOutcome::Done
                        }
                    }
                }
            }
        }
        .instrument(span);
        with_priority(priority, work).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{ChangeKind, EntityType};

    fn event(pair: &str) -> ChangeEvent {
        ChangeEvent {
            event_id: format!("test:{pair}"),
            pair: PairId::new(pair),
            system: System::Crm,
            entity: EntityType::Customer,
            external_id: "1".into(),
            kind: ChangeKind::Upsert,
            occurred_at: chrono::Utc::now(),
            trigger: Trigger::Webhook,
            job_id: None,
            transaction_id: None,
            by_tandem: false,
        }
    }

    #[tokio::test]
    async fn a_paused_pair_s_change_waits_and_an_unknown_pair_s_is_set_aside() {
        let store: Arc<dyn Store> = Arc::new(
            crate::store::connect("sqlite::memory:")
                .await
                .expect("store"),
        );
        let table = PairTable::default();
        table.pause(PairId::new("acme"), "pair `acme` is paused".into());
        let orchestrator =
            Orchestrator::new(store, HashMap::new(), 3).with_pair_table(table.clone());
        match orchestrator.handle(event("acme"), 1).await {
            HandleOutcome::Postpone { reason, .. } => assert!(reason.contains("paused")),
            other => panic!("a paused pair's change must wait: {other:?}"),
        }
        assert!(matches!(
            orchestrator.handle(event("other"), 1).await,
            HandleOutcome::Park { .. }
        ));
        table.remove(&PairId::new("acme"));
        assert!(matches!(
            orchestrator.handle(event("acme"), 1).await,
            HandleOutcome::Park { .. }
        ));
    }
}
