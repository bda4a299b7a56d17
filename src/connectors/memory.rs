//! An in-memory system behind the [`Connector`] trait, for tests and trials.
//!
//! It keeps versions like a real API (a fresh updated-at on every write), honours
//! idempotency keys, can be told to fail the way real APIs fail (timeouts, 5xx, 429
//! with Retry-After, validation 400, a timeout after the write was applied), can have
//! its probe fail on demand, and notices when two calls work on one record at the same
//! time.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::json;

use super::health::{ProbeFailure, ProbeReport};
use super::{
    natural_keys, ChangePage, Connector, ConnectorError, Exchange, ExternalRecord, ReadAt, Written,
};
use crate::domain::{apply, EntityType, FieldMap, System};

/// A failure to inject into the next matching call.
#[derive(Debug, Clone, PartialEq)]
pub enum Failure {
    Timeout,
    ServerError,
    RateLimited(Duration),
    Rejected(String),
    /// The write is applied, then the answer is lost: the caller sees a timeout.
    TimeoutAfterApply,
}

/// Which calls a failure applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Get,
    Create,
    Update,
    Archive,
    AnyWrite,
}

/// One call the system received, for tests to count and time.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    pub operation: Operation,
    pub entity: EntityType,
    pub id: String,
    pub at: Instant,
}

#[derive(Debug, Clone)]
struct Stored {
    fields: FieldMap,
    version: DateTime<Utc>,
    stamp: Option<String>,
    archived: bool,
}

#[derive(Default)]
struct State {
    records: HashMap<(EntityType, String), Stored>,
    idempotent: HashMap<String, Written>,
    failures: VecDeque<(Operation, Failure)>,
    calls: Vec<Call>,
    next_id: u64,
    clock: Option<DateTime<Utc>>,
    /// A person's edit that lands just before Tandem's next write of that record: the
    /// race between Tandem's read and its write.
    edit_before_write: Option<(EntityType, String, FieldMap)>,
    probe_failure: Option<ProbeFailure>,
    probes: usize,
}

pub struct InMemorySystem {
    system: System,
    state: Mutex<State>,
    in_use: Mutex<HashSet<(EntityType, String)>>,
    concurrent: AtomicUsize,
    latency: Duration,
}

impl InMemorySystem {
    pub fn new(system: System) -> Self {
        Self::with_latency(system, Duration::from_millis(1))
    }

    /// Every call takes at least `latency`, so overlapping calls on one record overlap
    /// for long enough to be noticed.
    pub fn with_latency(system: System, latency: Duration) -> Self {
        Self {
            system,
            state: Mutex::default(),
            in_use: Mutex::default(),
            concurrent: AtomicUsize::new(0),
            latency,
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A person creates a record in this system; returns its id.
    pub fn person_creates(&self, entity: EntityType, fields: FieldMap) -> String {
        let mut state = self.state();
        let id = next_id(&mut state, self.system);
        let version = tick(&mut state);
        state.records.insert(
            (entity, id.clone()),
            Stored {
                fields,
                version,
                stamp: None,
                archived: false,
            },
        );
        id
    }

    /// A person edits fields of a record (`null` clears one).
    pub fn person_edits(&self, entity: EntityType, id: &str, changes: &FieldMap) {
        let mut state = self.state();
        let version = tick(&mut state);
        if let Some(stored) = state.records.get_mut(&(entity, id.to_string())) {
            stored.fields = apply(&stored.fields, changes);
            stored.version = version;
        }
    }

    /// A person archives a record.
    /// A person edits the record just before Tandem's next write of it reaches the
    /// system, after Tandem read it.
    pub fn person_edits_before_next_write(&self, entity: EntityType, id: &str, changes: FieldMap) {
        self.state().edit_before_write = Some((entity, id.to_string(), changes));
    }

    /// Lands the edit planned for this write, if any.
    fn land_planned_edit(&self, entity: EntityType, id: &str) {
        let mut state = self.state();
        let planned = match &state.edit_before_write {
            Some((e, i, _)) if *e == entity && i == id => state.edit_before_write.take(),
            _ => None,
        };
        if let Some((_, _, changes)) = planned {
            let version = tick(&mut state);
            if let Some(stored) = state.records.get_mut(&(entity, id.to_string())) {
                stored.fields = apply(&stored.fields, &changes);
                stored.version = version;
            }
        }
    }

    pub fn person_archives(&self, entity: EntityType, id: &str) {
        let mut state = self.state();
        let version = tick(&mut state);
        if let Some(stored) = state.records.get_mut(&(entity, id.to_string())) {
            stored.archived = true;
            stored.version = version;
        }
    }

    /// The record's version, as `get` reports it.
    fn version_of(&self, entity: EntityType, id: &str) -> Option<String> {
        self.state()
            .records
            .get(&(entity, id.to_string()))
            .map(|stored| {
                stored
                    .version
                    .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
            })
    }

    /// The record as the system holds it now, archived or not.
    pub fn record(&self, entity: EntityType, id: &str) -> Option<(FieldMap, bool, Option<String>)> {
        self.state()
            .records
            .get(&(entity, id.to_string()))
            .map(|s| (s.fields.clone(), s.archived, s.stamp.clone()))
    }

    /// Every record of an entity type: id, fields, archived.
    pub fn records(&self, entity: EntityType) -> Vec<(String, FieldMap, bool)> {
        let mut records: Vec<_> = self
            .state()
            .records
            .iter()
            .filter(|((e, _), _)| *e == entity)
            .map(|((_, id), s)| (id.clone(), s.fields.clone(), s.archived))
            .collect();
        records.sort_by(|a, b| a.0.cmp(&b.0));
        records
    }

    /// Makes the next call of `operation` fail with `failure`.
    pub fn fail_next(&self, operation: Operation, failure: Failure) {
        self.state().failures.push_back((operation, failure));
    }

    pub fn calls(&self) -> Vec<Call> {
        self.state().calls.clone()
    }

    /// Every probe fails with `failure` from now on, until it is set back to `None`.
    pub fn set_probe_failure(&self, failure: Option<ProbeFailure>) {
        self.state().probe_failure = failure;
    }

    /// Probes made so far.
    pub fn probes(&self) -> usize {
        self.state().probes
    }

    /// Writes that reached the system (including ones whose answer was lost).
    pub fn writes(&self) -> usize {
        self.state()
            .calls
            .iter()
            .filter(|c| {
                matches!(
                    c.operation,
                    Operation::Create | Operation::Update | Operation::Archive
                )
            })
            .count()
    }

    /// How many times two calls worked on one record at once.
    pub fn concurrent_accesses(&self) -> usize {
        self.concurrent.load(Ordering::SeqCst)
    }

    /// Marks a record busy for the length of a call, counting overlaps.
    async fn hold(&self, entity: EntityType, key: &str) -> Busy<'_> {
        let key = (entity, key.to_string());
        let fresh = self
            .in_use
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key.clone());
        if !fresh {
            self.concurrent.fetch_add(1, Ordering::SeqCst);
        }
        tokio::time::sleep(self.latency).await;
        Busy {
            system: self,
            key,
            release: fresh,
        }
    }

    fn begin(
        &self,
        operation: Operation,
        entity: EntityType,
        id: &str,
    ) -> Result<Option<Failure>, ConnectorError> {
        let mut state = self.state();
        state.calls.push(Call {
            operation,
            entity,
            id: id.to_string(),
            at: Instant::now(),
        });
        let position = state.failures.iter().position(|(op, _)| {
            *op == operation || (*op == Operation::AnyWrite && operation != Operation::Get)
        });
        let Some(failure) = position
            .and_then(|p| state.failures.remove(p))
            .map(|(_, f)| f)
        else {
            return Ok(None);
        };
        let system = self.system;
        let exchange = |status: u16, body: serde_json::Value| Exchange {
            request: Some(json!({"operation": format!("{operation:?}"), "id": id})),
            response: Some(body),
            status: Some(status),
        };
        match failure {
            Failure::Timeout => Err(ConnectorError::Timeout { system }),
            Failure::ServerError => Err(ConnectorError::Unavailable {
                system,
                status: 503,
                exchange: exchange(503, json!({"error": "Service Unavailable"})),
            }),
            Failure::RateLimited(retry_after) => Err(ConnectorError::RateLimited {
                system,
                retry_after,
                exchange: exchange(
                    429,
                    json!({"error": "rate limit", "retry_after_secs": retry_after.as_secs()}),
                ),
            }),
            Failure::Rejected(message) => Err(ConnectorError::Rejected {
                system,
                status: 400,
                message: message.clone(),
                exchange: exchange(400, json!({"error": message})),
            }),
            Failure::TimeoutAfterApply => Ok(Some(Failure::TimeoutAfterApply)),
        }
    }

    fn external(id: &str, stored: &Stored) -> ExternalRecord {
        ExternalRecord {
            id: id.to_string(),
            fields: (!stored.archived).then(|| stored.fields.clone()),
            version: Some(
                stored
                    .version
                    .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            ),
            stamp: stored.stamp.clone(),
            field_versions: Default::default(),
        }
    }

    fn written(&self, operation: Operation, id: &str, stored: &Stored, sent: &FieldMap) -> Written {
        Written {
            record: Self::external(id, stored),
            exchange: Exchange {
                request: Some(
                    json!({"operation": format!("{operation:?}"), "id": id, "fields": sent}),
                ),
                response: Some(json!({"id": id, "version": stored.version.to_rfc3339()})),
                status: Some(200),
            },
        }
    }

    fn finish(
        &self,
        outcome: Option<Failure>,
        written: Written,
    ) -> Result<Written, ConnectorError> {
        match outcome {
            Some(Failure::TimeoutAfterApply) => Err(ConnectorError::Timeout {
                system: self.system,
            }),
            _ => Ok(written),
        }
    }
}

struct Busy<'a> {
    system: &'a InMemorySystem,
    key: (EntityType, String),
    release: bool,
}

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        if self.release {
            self.system
                .in_use
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&self.key);
        }
    }
}

fn next_id(state: &mut State, system: System) -> String {
    state.next_id += 1;
    let prefix = match system {
        System::Crm => "crm",
        System::Finance => "fin",
    };
    format!("{prefix}-{}", state.next_id)
}

/// Every write gets a later version than the one before, a millisecond apart.
fn tick(state: &mut State) -> DateTime<Utc> {
    let next = match state.clock {
        Some(last) => (last + chrono::Duration::milliseconds(1)).max(Utc::now()),
        None => Utc::now(),
    };
    state.clock = Some(next);
    next
}

#[async_trait]
impl Connector for InMemorySystem {
    fn system(&self) -> System {
        self.system
    }

    async fn probe(&self) -> ProbeReport {
        let target = format!("memory://{}", self.system);
        let mut state = self.state();
        state.probes += 1;
        match state.probe_failure.clone() {
            Some(failure) => ProbeReport::failed(target, failure),
            None => ProbeReport::ok(target),
        }
    }

    async fn get(
        &self,
        entity: EntityType,
        id: &str,
    ) -> Result<Option<ExternalRecord>, ConnectorError> {
        let _busy = self.hold(entity, id).await;
        self.begin(Operation::Get, entity, id)?;
        Ok(self
            .state()
            .records
            .get(&(entity, id.to_string()))
            .map(|s| Self::external(id, s)))
    }

    async fn list_changed(
        &self,
        entity: EntityType,
        since: Option<DateTime<Utc>>,
        _page: Option<&str>,
    ) -> Result<ChangePage, ConnectorError> {
        let state = self.state();
        let mut records: Vec<_> = state
            .records
            .iter()
            .filter(|((e, _), s)| *e == entity && since.is_none_or(|t| s.version >= t))
            .map(|((_, id), s)| (s.version, Self::external(id, s)))
            .collect();
        records.sort_by_key(|(version, _)| *version);
        Ok(ChangePage {
            records: records.into_iter().map(|(_, r)| r).collect(),
            next: None,
        })
    }

    async fn create(
        &self,
        entity: EntityType,
        fields: &FieldMap,
        stamp: &str,
        key: &str,
    ) -> Result<Written, ConnectorError> {
        let _busy = self.hold(entity, &format!("stamp:{stamp}")).await;
        let failure = self.begin(Operation::Create, entity, stamp)?;
        let mut state = self.state();
        if let Some(previous) = state.idempotent.get(key) {
            return Ok(previous.clone());
        }
        let id = next_id(&mut state, self.system);
        let version = tick(&mut state);
        let stored = Stored {
            fields: apply(&FieldMap::new(), fields),
            version,
            stamp: Some(stamp.to_string()),
            archived: false,
        };
        let written = self.written(Operation::Create, &id, &stored, fields);
        state.records.insert((entity, id), stored);
        state.idempotent.insert(key.to_string(), written.clone());
        drop(state);
        self.finish(failure, written)
    }

    async fn update(
        &self,
        entity: EntityType,
        id: &str,
        fields: &FieldMap,
        key: &str,
    ) -> Result<Written, ConnectorError> {
        let _busy = self.hold(entity, id).await;
        self.land_planned_edit(entity, id);
        let failure = self.begin(Operation::Update, entity, id)?;
        let mut state = self.state();
        if let Some(previous) = state.idempotent.get(key) {
            return Ok(previous.clone());
        }
        let version = tick(&mut state);
        let Some(stored) = state.records.get_mut(&(entity, id.to_string())) else {
            return Err(ConnectorError::Rejected {
                system: self.system,
                status: 404,
                message: format!("{entity} {id} not found"),
                exchange: Exchange::default(),
            });
        };
        stored.fields = apply(&stored.fields, fields);
        stored.version = version;
        let stored = stored.clone();
        let written = self.written(Operation::Update, id, &stored, fields);
        state.idempotent.insert(key.to_string(), written.clone());
        drop(state);
        self.finish(failure, written)
    }

    /// An in-memory record can be checked at no cost: always, to the millisecond.
    async fn update_unless_changed(
        &self,
        entity: EntityType,
        id: &str,
        fields: &FieldMap,
        key: &str,
        read: &ReadAt,
    ) -> Result<Written, ConnectorError> {
        self.land_planned_edit(entity, id);
        let current = self.version_of(entity, id);
        let unchanged = read.version.is_none() || read.unchanged(current.as_deref());
        if !unchanged && !self.state().idempotent.contains_key(key) {
            return Err(ConnectorError::Changed {
                system: self.system,
                id: id.to_string(),
            });
        }
        self.update(entity, id, fields, key).await
    }

    async fn archive(
        &self,
        entity: EntityType,
        id: &str,
        key: &str,
    ) -> Result<Written, ConnectorError> {
        let _busy = self.hold(entity, id).await;
        let failure = self.begin(Operation::Archive, entity, id)?;
        let mut state = self.state();
        let version = tick(&mut state);
        let Some(stored) = state.records.get_mut(&(entity, id.to_string())) else {
            return Err(ConnectorError::Rejected {
                system: self.system,
                status: 404,
                message: format!("{entity} {id} not found"),
                exchange: Exchange::default(),
            });
        };
        stored.archived = true;
        stored.version = version;
        let stored = stored.clone();
        let written = self.written(Operation::Archive, id, &stored, &FieldMap::new());
        state.idempotent.insert(key.to_string(), written.clone());
        drop(state);
        self.finish(failure, written)
    }

    async fn find_by_stamp(
        &self,
        entity: EntityType,
        stamp: &str,
    ) -> Result<Option<ExternalRecord>, ConnectorError> {
        let state = self.state();
        Ok(state
            .records
            .iter()
            .find(|((e, _), s)| *e == entity && s.stamp.as_deref() == Some(stamp))
            .map(|((_, id), s)| Self::external(id, s)))
    }

    async fn find_by_natural_key(
        &self,
        entity: EntityType,
        fields: &FieldMap,
    ) -> Result<Option<ExternalRecord>, ConnectorError> {
        let state = self.state();
        for key in natural_keys(entity) {
            let Some(wanted) = fields.get(*key) else {
                continue;
            };
            let found = state
                .records
                .iter()
                .filter(|((e, _), s)| *e == entity && !s.archived)
                .find(|(_, s)| s.fields.get(*key) == Some(wanted));
            if let Some(((_, id), s)) = found {
                return Ok(Some(Self::external(id, s)));
            }
        }
        Ok(None)
    }
}
