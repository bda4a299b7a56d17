//! Change events: hints that a record may have changed, never the record itself.
//!
//! The orchestrator always fetches the current record from its source, so duplicated,
//! reordered and stale events are harmless: the later ones find nothing new to do.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::ids::{EntityType, PairId, System};

/// "Record `external_id` of `entity` in `system` of `pair` may have changed."
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeEvent {
    /// Deterministic where the source allows it (a webhook delivery key, or system,
    /// entity, id and version for a poll), so the same change seen twice de-duplicates.
    pub event_id: String,
    pub pair: PairId,
    pub system: System,
    pub entity: EntityType,
    pub external_id: String,
    pub kind: ChangeKind,
    pub occurred_at: DateTime<Utc>,
    pub trigger: Trigger,
    /// The resync or replay job this event belongs to, for its progress counts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<Uuid>,
    /// The transaction this change belongs to, when one was already chosen (a retry of
    /// a logged attempt); the orchestrator picks one otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transaction_id: Option<Uuid>,
    /// The announcement said Tandem's own app made this change (HubSpot names the app
    /// that made a change): the echo of Tandem's write, known without reading it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub by_tandem: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    Upsert,
    Delete,
}

/// What made Tandem look at a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    Webhook,
    Poll,
    Manual,
    Replay,
    Retry,
}

impl Trigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Webhook => "webhook",
            Trigger::Poll => "poll",
            Trigger::Manual => "manual",
            Trigger::Replay => "replay",
            Trigger::Retry => "retry",
        }
    }
}
