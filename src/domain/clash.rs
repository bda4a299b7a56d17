//! Clashes: a field that both sides changed to different values since the last sync,
//! and how each one is resolved.
//!
//! A resolution is a fact about one clash. The policy's is made and applied at once and
//! is never read back. A person's applies to the values it was made for, once, and is
//! then consumed; if either side changed the field since, it no longer fits, and the
//! new clash is handled afresh. Nothing here compares the times resolutions were stored
//! with the time of a sync: which clash a decision belongs to is told by its values.
//!
//! "Newer" under `last_write_wins` is the later change time of the field on each side:
//! the per-field time where the system reports one (HubSpot's property history), else
//! the record's own updated-at (Xero's `UpdatedDateUTC`). See `docs/conflicts.md`.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::ids::System;
use super::policy::{ConflictPolicy, SyncPolicy};

/// A field both sides changed to different values since the last sync.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldConflict {
    pub field: String,
    pub crm_value: Option<Value>,
    pub finance_value: Option<Value>,
    pub base_value: Option<Value>,
    pub resolution: ClashResolution,
}

impl FieldConflict {
    /// The side whose value was kept, when one side's was.
    pub fn winner(&self) -> Option<System> {
        match &self.resolution {
            ClashResolution::Policy(side) | ClashResolution::Person(Choice::Keep(side)) => {
                Some(*side)
            }
            ClashResolution::Person(Choice::Value(_)) | ClashResolution::Held => None,
        }
    }

    pub fn is_held(&self) -> bool {
        self.resolution == ClashResolution::Held
    }
}

/// How one clash was resolved.
#[derive(Debug, Clone, PartialEq)]
pub enum ClashResolution {
    /// The pair's policy kept this side's value, at once.
    Policy(System),
    /// A person's decision for exactly these values, applied now.
    Person(Choice),
    /// Held for a person (the `manual` policy): neither side is written.
    Held,
}

/// What a person chose for a clash.
#[derive(Debug, Clone, PartialEq)]
pub enum Choice {
    /// Keep this side's value.
    Keep(System),
    /// Write this value to both sides (`None` clears the field).
    Value(Option<Value>),
}

/// A clash held for a person, with the values it holds now.
#[derive(Debug, Clone, PartialEq)]
pub struct HeldClash {
    pub crm_value: Option<Value>,
    pub finance_value: Option<Value>,
}

/// A person's decision not yet applied, with the values it was made for.
#[derive(Debug, Clone, PartialEq)]
pub struct PersonDecision {
    pub crm_value: Option<Value>,
    pub finance_value: Option<Value>,
    pub choice: Choice,
}

impl PersonDecision {
    /// Whether it was made for a clash between exactly these values.
    pub fn fits(&self, crm_value: Option<&Value>, finance_value: Option<&Value>) -> bool {
        self.crm_value.as_ref() == crm_value && self.finance_value.as_ref() == finance_value
    }
}

/// One side's record, as far as a clash needs it: when it last changed.
#[derive(Debug, Clone, Copy)]
pub struct ChangeTimes<'a> {
    pub system: System,
    /// The record's own updated-at.
    pub version: Option<&'a str>,
    /// Per-field change times, where the system reports them.
    pub field_versions: &'a BTreeMap<String, String>,
}

impl ChangeTimes<'_> {
    /// When this side's value of `field` last changed, as well as the system tells.
    pub fn changed_at(&self, field: &str) -> Option<DateTime<Utc>> {
        self.field_versions
            .get(field)
            .and_then(|at| instant(Some(at)))
            .or_else(|| instant(self.version))
    }
}

/// The policy's resolution of a clash of `field` between `a` and `b`: the side it
/// keeps, or held for a person.
pub fn by_policy(
    field: &str,
    a: ChangeTimes<'_>,
    b: ChangeTimes<'_>,
    policy: &SyncPolicy,
) -> ClashResolution {
    match policy.conflicts {
        ConflictPolicy::CrmWins => ClashResolution::Policy(System::Crm),
        ConflictPolicy::FinanceWins => ClashResolution::Policy(System::Finance),
        ConflictPolicy::Manual => ClashResolution::Held,
        ConflictPolicy::LastWriteWins => {
            ClashResolution::Policy(newer(field, a, b).unwrap_or(policy.source_of_truth))
        }
    }
}

/// The side whose change of `field` is strictly later; `None` on a tie or when a time
/// is unknown (the source of truth then wins).
pub fn newer(field: &str, a: ChangeTimes<'_>, b: ChangeTimes<'_>) -> Option<System> {
    match (a.changed_at(field), b.changed_at(field)) {
        (Some(at_a), Some(at_b)) if at_a > at_b => Some(a.system),
        (Some(at_a), Some(at_b)) if at_b > at_a => Some(b.system),
        _ => None,
    }
}

pub(super) fn instant(version: Option<&str>) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(version?)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}
