//! The store's own record types: what the engine reads and writes, free of sea-orm.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::domain::{
    ChangeEvent, Checksum, Choice, EntityType, LinkSnapshot, PairId, RecordLabel, System, Trigger,
};
use crate::secret::Secret;

macro_rules! string_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident => $text:literal),* $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($variant),* }

        impl $name {
            /// Every value, as written.
            pub const WORDS: &'static [&'static str] = &[$($text),*];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),* }
            }
        }

        impl std::str::FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok($name::$variant),)*
                    other => Err(format!("unknown {} `{other}`", stringify!($name))),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

string_enum!(
    /// Where a link stands, as a person would ask "is this record in sync?".
    SyncStatus { Pending => "pending", Synced => "synced", Retrying => "retrying", Failed => "failed", Blocked => "blocked", Conflict => "conflict" }
);

string_enum!(
    /// The life of a link: `Creating` while a create into the other system is in flight.
    LinkState { Active => "active", Creating => "creating", Archived => "archived" }
);

string_enum!(
    Direction { CrmToFinance => "crm_to_finance", FinanceToCrm => "finance_to_crm" }
);

string_enum!(
    /// What happened to one change, as recorded in the sync log.
    Outcome {
        Received => "received",
        Created => "created",
        Updated => "updated",
        Linked => "linked",
        Archived => "archived",
        HeldForApproval => "held_for_approval",
        Skipped => "skipped",
        Blocked => "blocked",
        Conflict => "conflict",
        Retrying => "retrying",
        Failed => "failed",
        Parked => "parked",
    }
);

string_enum!(JobKind { Resync => "resync", Replay => "replay" });

string_enum!(JobStatus { Queued => "queued", Listing => "listing", Running => "running", Done => "done", Failed => "failed" });

string_enum!(JobCounter { Queued => "queued", Published => "published", Synced => "synced", Failed => "failed", Skipped => "skipped" });

string_enum!(
    /// Where a clash stands: held for a person, decided by one and waiting for the
    /// record's next sync, applied, or ended before anyone decided.
    ConflictStatus { Open => "open", Decided => "decided", Resolved => "resolved", Withdrawn => "withdrawn" }
);

string_enum!(
    /// Who resolved a clash.
    DecidedBy { Policy => "policy", Person => "person" }
);

string_enum!(DeleteStatus { Pending => "pending", Approved => "approved", Rejected => "rejected" });

impl Direction {
    /// The direction of a change that starts in `source`.
    pub fn from_source(source: System) -> Self {
        match source {
            System::Crm => Direction::CrmToFinance,
            System::Finance => Direction::FinanceToCrm,
        }
    }
}

/// One record in the CRM linked to one in the finance system.
#[derive(Debug, Clone, PartialEq)]
pub struct EntityLink {
    pub id: Uuid,
    pub pair: PairId,
    pub entity: EntityType,
    pub crm_id: Option<String>,
    pub finance_id: Option<String>,
    pub state: LinkState,
    pub sync_status: SyncStatus,
    pub crm_checksum: Option<String>,
    pub finance_checksum: Option<String>,
    pub crm_version: Option<String>,
    pub finance_version: Option<String>,
    pub base_snapshot: Option<Value>,
    pub last_transaction_id: Option<Uuid>,
    pub last_synced_at: Option<DateTime<Utc>>,
    pub last_direction: Option<Direction>,
    pub last_error: Option<String>,
    pub archived_at: Option<DateTime<Utc>>,
    pub deleted_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// What a person recognises the record by.
    pub label: RecordLabel,
    /// Failed attempts of the change under way; 0 once it synced.
    pub attempts: u32,
    /// When the next attempt of a retrying change is due.
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// The revision the link was loaded at (0 for a link not stored yet); a save
    /// fails with `Concurrent` when the stored one moved on meanwhile.
    pub revision: i64,
    /// Conflicts of this link held for a person or decided and not yet applied: a
    /// sync reads their rows only when there are any.
    pub active_conflicts: u32,
    /// The exact version of Tandem's own last write on the CRM side, when the CRM's
    /// answer showed the record as written: an event of that version is its echo.
    pub echo_crm: Option<String>,
    /// The same on the finance side.
    pub echo_finance: Option<String>,
}

/// A record by its id on one side: what finds its link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkKey {
    pub pair: PairId,
    pub entity: EntityType,
    pub system: System,
    pub external_id: String,
}

/// The status of a link whose change failed, written alone: a failure is recorded
/// outside the record's lock, so it must not overwrite what a concurrent sync of the
/// same record saved (checksums, base, versions).
#[derive(Debug, Clone, PartialEq)]
pub struct LinkStatusChange {
    pub link_id: Uuid,
    /// `Retrying` or `Failed`.
    pub status: SyncStatus,
    pub error: String,
    pub attempts: u32,
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// The failed change's transaction, for the record's history.
    pub transaction_id: Uuid,
}

impl EntityLink {
    /// A link for a record seen so far on one side only.
    pub fn new(
        pair: PairId,
        entity: EntityType,
        system: System,
        external_id: impl Into<String>,
    ) -> Self {
        let now = Utc::now();
        let external_id = Some(external_id.into());
        let (crm_id, finance_id) = match system {
            System::Crm => (external_id, None),
            System::Finance => (None, external_id),
        };
        Self {
            id: Uuid::now_v7(),
            pair,
            entity,
            crm_id,
            finance_id,
            state: LinkState::Creating,
            sync_status: SyncStatus::Pending,
            crm_checksum: None,
            finance_checksum: None,
            crm_version: None,
            finance_version: None,
            base_snapshot: None,
            last_transaction_id: None,
            last_synced_at: None,
            last_direction: None,
            last_error: None,
            label: RecordLabel::default(),
            attempts: 0,
            next_attempt_at: None,
            revision: 0,
            active_conflicts: 0,
            echo_crm: None,
            echo_finance: None,
            archived_at: None,
            deleted_at: None,
            created_at: now,
            updated_at: now,
        }
    }

    pub fn id_on(&self, system: System) -> Option<&str> {
        match system {
            System::Crm => self.crm_id.as_deref(),
            System::Finance => self.finance_id.as_deref(),
        }
    }

    /// The exact version of Tandem's own last write on `system`, if known.
    pub fn echo_on(&self, system: System) -> Option<&str> {
        match system {
            System::Crm => self.echo_crm.as_deref(),
            System::Finance => self.echo_finance.as_deref(),
        }
    }

    /// What the sync decision knows of the link from its row alone (no conflict
    /// resolutions or approved deletes: those are read separately).
    pub fn snapshot(&self) -> LinkSnapshot {
        LinkSnapshot {
            crm_id: self.crm_id.clone(),
            finance_id: self.finance_id.clone(),
            crm_checksum: self.crm_checksum.clone().map(Checksum),
            finance_checksum: self.finance_checksum.clone().map(Checksum),
            crm_version: self.crm_version.clone(),
            finance_version: self.finance_version.clone(),
            base: self
                .base_snapshot
                .as_ref()
                .and_then(|b| serde_json::from_value(b.clone()).ok()),
            archived: self.state == LinkState::Archived,
            ..LinkSnapshot::default()
        }
    }
}

/// A sync log entry to append.
#[derive(Debug, Clone, PartialEq)]
pub struct NewSyncLogEntry {
    pub transaction_id: Uuid,
    pub link_id: Option<Uuid>,
    pub pair: PairId,
    pub entity: EntityType,
    pub source_system: System,
    pub external_id: String,
    pub direction: Option<Direction>,
    pub trigger: Trigger,
    pub outcome: Outcome,
    pub detail: Option<String>,
    pub source_snapshot: Option<Value>,
    pub target_before: Option<Value>,
    pub target_after: Option<Value>,
    pub request: Option<Value>,
    pub response: Option<Value>,
    pub status_code: Option<u16>,
    pub error: Option<String>,
    pub attempt: u32,
    pub duration_ms: u64,
}

impl NewSyncLogEntry {
    /// An entry about the record a change event names.
    pub fn for_event(transaction_id: Uuid, event: &ChangeEvent, outcome: Outcome) -> Self {
        Self::new(
            transaction_id,
            event.pair.clone(),
            event.entity,
            event.system,
            &event.external_id,
            event.trigger,
            outcome,
        )
    }

    /// An entry with only the essentials set; fill in the rest as needed.
    pub fn new(
        transaction_id: Uuid,
        pair: PairId,
        entity: EntityType,
        source_system: System,
        external_id: impl Into<String>,
        trigger: Trigger,
        outcome: Outcome,
    ) -> Self {
        Self {
            transaction_id,
            link_id: None,
            pair,
            entity,
            source_system,
            external_id: external_id.into(),
            direction: Some(Direction::from_source(source_system)),
            trigger,
            outcome,
            detail: None,
            source_snapshot: None,
            target_before: None,
            target_after: None,
            request: None,
            response: None,
            status_code: None,
            error: None,
            attempt: 1,
            duration_ms: 0,
        }
    }
}

/// A sync log entry as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct SyncLogEntry {
    pub id: Uuid,
    pub created_at: DateTime<Utc>,
    pub entry: NewSyncLogEntry,
}

/// Which sync log entries to list; every filter is optional.
#[derive(Debug, Clone, Default)]
pub struct SyncLogFilter {
    pub pair: Option<PairId>,
    pub entity: Option<EntityType>,
    pub system: Option<System>,
    pub outcome: Option<Outcome>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    pub limit: u64,
    pub offset: u64,
}

/// What one orchestrator step writes, all in one transaction: the link as it now
/// stands, the log entry that says why, and any conflicts or held deletes it found.
#[derive(Debug, Clone)]
pub struct SyncCommit {
    pub link: Option<EntityLink>,
    pub log: NewSyncLogEntry,
    pub conflicts: Vec<ConflictWrite>,
    /// Held or decided conflicts that ended without being applied.
    pub withdrawn: Vec<Uuid>,
    /// A failed change's link status, when `link` is not saved whole.
    pub link_status: Option<LinkStatusChange>,
    pub hold_delete: bool,
    /// What announced the change (a webhook's own words), logged just before `log`.
    pub announced: Option<NewSyncLogEntry>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    pub id: Uuid,
    pub kind: JobKind,
    pub params: Value,
    pub status: JobStatus,
    pub queued: i64,
    pub published: i64,
    pub synced: i64,
    pub failed: i64,
    pub skipped: i64,
    pub error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

/// OAuth tokens of one connection.
#[derive(Debug, Clone)]
pub struct Credential {
    pub access_token: Option<Secret>,
    pub refresh_token: Option<Secret>,
    pub expires_at: Option<DateTime<Utc>>,
    pub rotated_at: Option<DateTime<Utc>>,
}

/// Counts for the operator's figures.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RecordCounts {
    pub links: std::collections::BTreeMap<SyncStatus, u64>,
    pub open_conflicts: u64,
}

/// A clash to record as a sync commits.
#[derive(Debug, Clone, PartialEq)]
pub struct ConflictWrite {
    /// The field's conflict that is held or decided on the link, updated in place; a
    /// new row when `None`.
    pub existing: Option<Uuid>,
    pub field: String,
    pub crm_value: Option<Value>,
    pub finance_value: Option<Value>,
    pub base_value: Option<Value>,
    pub policy: String,
    pub state: ConflictState,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConflictState {
    /// Held for a person, with the values it holds now.
    Held,
    /// The policy kept this side's value, at once.
    ResolvedByPolicy(System),
    /// A person's decision was written to both sides.
    Applied,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Conflict {
    pub id: Uuid,
    pub link_id: Uuid,
    pub pair: PairId,
    pub entity: EntityType,
    pub field: String,
    pub crm_value: Option<Value>,
    pub finance_value: Option<Value>,
    pub base_value: Option<Value>,
    pub policy: String,
    pub resolution: Option<String>,
    pub resolved_value: Option<Value>,
    pub status: ConflictStatus,
    pub transaction_id: Uuid,
    pub created_at: DateTime<Utc>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub decided_by: Option<DecidedBy>,
    pub applied_at: Option<DateTime<Utc>>,
}

impl Conflict {
    /// The person's choice, once one was made.
    pub fn choice(&self) -> Option<Choice> {
        if self.decided_by != Some(DecidedBy::Person) {
            return None;
        }
        match self.resolution.as_deref()? {
            "value" => Some(Choice::Value(self.resolved_value.clone())),
            side => side.parse::<System>().ok().map(Choice::Keep),
        }
    }
}

/// How a person's choice is stored: the `resolution` column and the value it keeps.
pub fn stored_choice(choice: &Choice) -> (&'static str, Option<Value>) {
    match choice {
        Choice::Keep(side) => (side.as_str(), None),
        Choice::Value(value) => ("value", value.clone()),
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct PendingDelete {
    pub id: Uuid,
    pub link_id: Uuid,
    pub pair: PairId,
    pub entity: EntityType,
    pub source_system: System,
    pub external_id: String,
    pub status: DeleteStatus,
    pub created_at: DateTime<Utc>,
    pub decided_at: Option<DateTime<Utc>>,
}
