//! What the orchestrator's parts share: a pair's connections and policies, and the one
//! error a change's handling can end in.

use std::collections::HashMap;
use std::sync::Arc;

use crate::connectors::{Connector, ConnectorError};
use crate::domain::{EntityType, SyncPolicy, System};
use crate::store::StoreError;

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
