//! Resync and replay: a person asks for records to be looked at again. Both answer at
//! once with a job id, publish on the bulk lane (so live changes are never stuck
//! behind them), and count progress in the job as the orchestrator handles each event.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

use crate::bus::{Bus, BusMessage, Lane};
use crate::connectors::health::Connections;
use crate::connectors::Connector;
use crate::domain::{ChangeEvent, ChangeKind, EntityType, PairId, System, Trigger};
use crate::store::{Job, JobCounter, JobKind, JobStatus, Store, StoreError, SyncLogFilter};

/// Which records a resync covers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResyncScope {
    Ids(Vec<String>),
    ModifiedBetween {
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    },
    Everything,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResyncRequest {
    pub pair: PairId,
    pub system: System,
    pub entity: EntityType,
    pub scope: ResyncScope,
}

#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error("no pair named `{0}` in the settings")]
    UnknownPair(PairId),
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Ids the system cannot hold (a Xero id that is not a UUID) refuse the whole request,
/// naming them: each would otherwise fail later, one by one, or be sent where Xero
/// reads it as something else.
fn refuse_foreign_ids(
    connector: &dyn Connector,
    entity: EntityType,
    ids: &[String],
) -> Result<(), JobError> {
    const NAMED: usize = 5;
    let refused: Vec<String> = ids
        .iter()
        .filter_map(|id| connector.check_id(entity, id).err())
        .collect();
    if refused.is_empty() {
        return Ok(());
    }
    let more = match refused.len().saturating_sub(NAMED) {
        0 => String::new(),
        n => format!("; and {n} more"),
    };
    Err(JobError::Invalid(format!(
        "`ids`: {}{more}",
        refused[..refused.len().min(NAMED)].join("; ")
    )))
}

/// Events are published in chunks this size, with their confirms in flight together.
const CHUNK: usize = 500;

pub struct JobRunner {
    store: Arc<dyn Store>,
    bus: Arc<dyn Bus>,
    connectors: HashMap<(PairId, System), Arc<dyn Connector>>,
    /// The process's connections, with those of the pairs made through the admin API.
    connections: Option<Arc<Connections>>,
}

impl JobRunner {
    pub fn new(
        store: Arc<dyn Store>,
        bus: Arc<dyn Bus>,
        connectors: HashMap<(PairId, System), Arc<dyn Connector>>,
    ) -> Self {
        Self {
            store,
            bus,
            connectors,
            connections: None,
        }
    }

    /// Also resyncs and replays the pairs whose connections are added here while the
    /// process runs (those made through the admin API).
    pub fn with_connections(mut self, connections: Arc<Connections>) -> Self {
        self.connections = Some(connections);
        self
    }

    fn connector(&self, pair: &PairId, system: System) -> Option<Arc<dyn Connector>> {
        self.connectors
            .get(&(pair.clone(), system))
            .cloned()
            .or_else(|| {
                let connections = self.connections.as_ref()?;
                Some(connections.find(pair, system)?.connector.clone())
            })
    }

    fn knows(&self, pair: &PairId) -> bool {
        self.connectors.keys().any(|(p, _)| p == pair)
            || self.connections.as_ref().is_some_and(|c| c.has_pair(pair))
    }

    /// Records the job and starts it in the background; returns its id at once.
    pub async fn start_resync(self: &Arc<Self>, request: ResyncRequest) -> Result<Uuid, JobError> {
        let Some(connector) = self.connector(&request.pair, request.system) else {
            return Err(JobError::UnknownPair(request.pair));
        };
        if let ResyncScope::Ids(ids) = &request.scope {
            refuse_foreign_ids(connector.as_ref(), request.entity, ids)?;
        }
        match &request.scope {
            ResyncScope::Ids(ids) if ids.is_empty() => {
                return Err(JobError::Invalid("`ids` is empty".into()))
            }
            ResyncScope::ModifiedBetween { from, to } if from >= to => {
                return Err(JobError::Invalid(
                    "`modified_from` must be before `modified_to`".into(),
                ))
            }
            _ => {}
        }
        let params = serde_json::to_value(&request).unwrap_or_default();
        let job = self.store.create_job(JobKind::Resync, params).await?;
        let runner = self.clone();
        tokio::spawn(async move {
            if let Err(err) = runner.run_resync(job.id, request).await {
                tracing::error!(job = %job.id, error = %err, "resync failed");
                let _ = runner
                    .store
                    .set_job_status(job.id, JobStatus::Failed, Some(err.to_string()))
                    .await;
            }
        });
        Ok(job.id)
    }

    /// Publishes the records to resync. A listing publishes page by page as it reads,
    /// so workers start on the first page while later ones are still being listed
    /// (a backfill's first batch calls do not wait for the whole listing); the job is
    /// `listing` until the last page is out, so it cannot look done before then.
    async fn run_resync(&self, job: Uuid, request: ResyncRequest) -> Result<(), String> {
        let event = |id: String| ChangeEvent {
            event_id: format!("resync:{job}:{id}"),
            pair: request.pair.clone(),
            system: request.system,
            entity: request.entity,
            external_id: id,
            kind: ChangeKind::Upsert,
            occurred_at: Utc::now(),
            trigger: Trigger::Manual,
            job_id: Some(job),
            transaction_id: None,
            by_tandem: false,
        };
        let (from, to) = match &request.scope {
            ResyncScope::Ids(ids) => {
                self.set_status(job, JobStatus::Running).await?;
                let ids: BTreeSet<String> = ids.iter().cloned().collect();
                let events: Vec<_> = ids.into_iter().map(event).collect();
                if events.is_empty() {
                    return self.set_status(job, JobStatus::Done).await;
                }
                return self.publish(job, events).await;
            }
            ResyncScope::ModifiedBetween { from, to } => (Some(*from), Some(*to)),
            ResyncScope::Everything => (None, None),
        };
        self.set_status(job, JobStatus::Listing).await?;
        let connector = self
            .connector(&request.pair, request.system)
            .ok_or_else(|| format!("no connector for {} {}", request.pair, request.system))?;
        // A record changed while the listing runs can appear on two pages.
        let mut seen = BTreeSet::new();
        let mut page: Option<String> = None;
        loop {
            let listed = connector
                .list_changed(request.entity, from, page.as_deref())
                .await
                .map_err(|e| e.to_string())?;
            let events: Vec<_> = listed
                .records
                .into_iter()
                .filter(|record| {
                    let version = record
                        .version
                        .as_deref()
                        .and_then(|v| DateTime::parse_from_rfc3339(v).ok());
                    to.is_none_or(|to| version.is_none_or(|v| v.with_timezone(&Utc) <= to))
                })
                .filter(|record| seen.insert(record.id.clone()))
                .map(|record| event(record.id))
                .collect();
            self.publish(job, events).await?;
            match listed.next {
                Some(next) => page = Some(next),
                None => break,
            }
        }
        if seen.is_empty() {
            return self.set_status(job, JobStatus::Done).await;
        }
        self.set_status(job, JobStatus::Running).await
    }

    async fn set_status(&self, job: Uuid, status: JobStatus) -> Result<(), String> {
        self.store
            .set_job_status(job, status, None)
            .await
            .map_err(|e| e.to_string())
    }

    /// Publishes on the bulk lane in chunks, counting as it goes.
    async fn publish(&self, job: Uuid, events: Vec<ChangeEvent>) -> Result<(), String> {
        if events.is_empty() {
            return Ok(());
        }
        self.store
            .add_to_job(job, JobCounter::Queued, events.len() as i64)
            .await
            .map_err(|e| e.to_string())?;
        for chunk in events.chunks(CHUNK) {
            let messages: Vec<_> = chunk.iter().cloned().map(BusMessage::ChangeV1).collect();
            self.bus
                .publish_batch(Lane::Bulk, &messages)
                .await
                .map_err(|e| e.to_string())?;
            for event in chunk {
                crate::metrics::event_received(
                    event.pair.as_str(),
                    event.system.as_str(),
                    event.trigger.as_str(),
                    1,
                );
            }
            self.store
                .add_to_job(job, JobCounter::Published, chunk.len() as i64)
                .await
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    /// Re-publishes, once per record, every change recorded in the sync log between
    /// `from` and `to`.
    pub async fn start_replay(
        self: &Arc<Self>,
        pair: Option<PairId>,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Uuid, JobError> {
        if from >= to {
            return Err(JobError::Invalid("`from` must be before `to`".into()));
        }
        if let Some(pair) = &pair {
            if !self.knows(pair) {
                return Err(JobError::UnknownPair(pair.clone()));
            }
        }
        let job = self
            .store
            .create_job(
                JobKind::Replay,
                json!({"pair": pair, "from": from, "to": to}),
            )
            .await?;
        let runner = self.clone();
        tokio::spawn(async move {
            if let Err(err) = runner.run_replay(job.id, pair, from, to).await {
                let _ = runner
                    .store
                    .set_job_status(job.id, JobStatus::Failed, Some(err))
                    .await;
            }
        });
        Ok(job.id)
    }

    async fn run_replay(
        &self,
        job: Uuid,
        pair: Option<PairId>,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<(), String> {
        self.store
            .set_job_status(job, JobStatus::Running, None)
            .await
            .map_err(|e| e.to_string())?;
        let mut seen = BTreeSet::new();
        let mut events = Vec::new();
        let mut offset = 0;
        loop {
            let filter = SyncLogFilter {
                pair: pair.clone(),
                since: Some(from),
                until: Some(to),
                limit: 1000,
                offset,
                ..Default::default()
            };
            let entries = self
                .store
                .query_logs(&filter)
                .await
                .map_err(|e| e.to_string())?;
            let done = entries.len() < 1000;
            offset += entries.len() as u64;
            for entry in entries.into_iter().map(|e| e.entry) {
                let key = (
                    entry.pair.clone(),
                    entry.entity,
                    entry.source_system,
                    entry.external_id.clone(),
                );
                if seen.insert(key) {
                    events.push(ChangeEvent {
                        event_id: format!(
                            "replay:{job}:{}:{}:{}",
                            entry.source_system, entry.entity, entry.external_id
                        ),
                        pair: entry.pair,
                        system: entry.source_system,
                        entity: entry.entity,
                        external_id: entry.external_id,
                        kind: ChangeKind::Upsert,
                        occurred_at: Utc::now(),
                        trigger: Trigger::Replay,
                        job_id: Some(job),
                        transaction_id: None,
                        by_tandem: false,
                    });
                }
            }
            if done {
                break;
            }
        }
        if events.is_empty() {
            return self.set_status(job, JobStatus::Done).await;
        }
        self.publish(job, events).await
    }
}

/// A job as a person reads it: once every event it published was handled, it is done.
pub async fn progress(store: &dyn Store, id: Uuid) -> Result<Option<Job>, StoreError> {
    let Some(mut job) = store.job(id).await? else {
        return Ok(None);
    };
    let handled = job.synced + job.failed + job.skipped;
    if job.status == JobStatus::Running
        && job.queued > 0
        && job.published == job.queued
        && handled >= job.queued
    {
        store.set_job_status(id, JobStatus::Done, None).await?;
        job = store.job(id).await?.unwrap_or(job);
    }
    Ok(Some(job))
}
