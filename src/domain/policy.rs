//! A pair's policies: who wins a true conflict, and what a delete does.

use serde::{Deserialize, Serialize};

use super::ids::{EntityType, System};
use super::mapping::FieldMapping;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConflictPolicy {
    /// The later edit wins; a tie goes to the source of truth.
    #[default]
    LastWriteWins,
    CrmWins,
    FinanceWins,
    /// Park the record for a person.
    Manual,
}

impl ConflictPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            ConflictPolicy::LastWriteWins => "last_write_wins",
            ConflictPolicy::CrmWins => "crm_wins",
            ConflictPolicy::FinanceWins => "finance_wins",
            ConflictPolicy::Manual => "manual",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeletePolicy {
    /// Archive the other side's record (never hard-delete).
    #[default]
    Archive,
    /// Hold the archive for a person to approve.
    Approve,
    /// Leave the other side alone (still recorded).
    Ignore,
}

impl DeletePolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            DeletePolicy::Archive => "archive",
            DeletePolicy::Approve => "approve",
            DeletePolicy::Ignore => "ignore",
        }
    }
}

/// Everything the decision needs to know about one pair and entity type.
#[derive(Debug, Clone)]
pub struct SyncPolicy {
    pub entity: EntityType,
    pub mapping: FieldMapping,
    pub conflicts: ConflictPolicy,
    /// Who wins a tie under `last_write_wins`. Finance by default: its records are
    /// the books.
    pub source_of_truth: System,
    pub deletes: DeletePolicy,
}

impl SyncPolicy {
    pub fn defaults(entity: EntityType) -> Self {
        Self {
            entity,
            mapping: FieldMapping::defaults(entity),
            conflicts: ConflictPolicy::default(),
            source_of_truth: System::Finance,
            deletes: DeletePolicy::default(),
        }
    }
}
