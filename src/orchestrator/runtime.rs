//! What the orchestrator's parts share: a pair's connections and policies, and the one
//! error a change's handling can end in.

use std::collections::HashMap;
use std::sync::Arc;

use crate::connectors::{Connector, ConnectorError};
use crate::domain::{EntityType, PairId, SyncPolicy, System};
use crate::store::StoreError;

/// The pairs a running engine syncs, shared with what adds, pauses or removes one
/// while it runs (pairs made through the admin API).
#[derive(Clone, Default)]
pub struct PairTable(Arc<std::sync::RwLock<PairSet>>);

#[derive(Default)]
struct PairSet {
    running: HashMap<PairId, Arc<PairRuntime>>,
    /// Pairs whose changes wait, and why.
    paused: HashMap<PairId, String>,
}

impl PairTable {
    pub fn new(pairs: HashMap<PairId, PairRuntime>) -> Self {
        let running = pairs.into_iter().map(|(k, v)| (k, Arc::new(v))).collect();
        Self(Arc::new(std::sync::RwLock::new(PairSet {
            running,
            paused: HashMap::new(),
        })))
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, PairSet> {
        self.0.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, PairSet> {
        self.0.write().unwrap_or_else(|p| p.into_inner())
    }

    pub fn get(&self, pair: &PairId) -> Option<Arc<PairRuntime>> {
        self.read().running.get(pair).cloned()
    }

    /// Why `pair`'s changes wait, when it is paused.
    pub fn paused(&self, pair: &PairId) -> Option<String> {
        self.read().paused.get(pair).cloned()
    }

    pub fn run(&self, pair: PairId, runtime: PairRuntime) {
        let mut set = self.write();
        set.paused.remove(&pair);
        set.running.insert(pair, Arc::new(runtime));
    }

    /// Its changes wait (they are postponed, not failed) until it runs again.
    pub fn pause(&self, pair: PairId, reason: String) {
        let mut set = self.write();
        set.running.remove(&pair);
        set.paused.insert(pair, reason);
    }

    /// Forgets it: its changes are set aside for a person, as those of an unknown pair.
    pub fn remove(&self, pair: &PairId) {
        let mut set = self.write();
        set.running.remove(pair);
        set.paused.remove(pair);
    }

    pub fn is_empty(&self) -> bool {
        let set = self.read();
        set.running.is_empty() && set.paused.is_empty()
    }
}

/// One pair's connections and policies.
pub struct PairRuntime {
    pub crm: Arc<dyn Connector>,
    pub finance: Arc<dyn Connector>,
    pub policies: HashMap<EntityType, SyncPolicy>,
}

impl PairRuntime {
    pub fn connector(&self, system: System) -> &Arc<dyn Connector> {
        match system {
            System::Crm => &self.crm,
            System::Finance => &self.finance,
        }
    }

    /// The pair's policy for `entity`, the defaults when it has none of its own.
    pub fn policy(&self, entity: EntityType) -> SyncPolicy {
        self.policies
            .get(&entity)
            .cloned()
            .unwrap_or_else(|| SyncPolicy::defaults(entity))
    }
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum SyncError {
    #[error(transparent)]
    Connector(#[from] ConnectorError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl SyncError {
    pub(crate) fn corrupt(what: &str) -> Self {
        SyncError::Store(StoreError::Corrupt(what.to_string()))
    }
}
