//! The sync decision: a pure function from what was fetched and what was last synced to
//! what to do. No I/O, so every rule is tested without a database, a broker or a network.
//!
//! Echoes of Tandem's own writes are recognised in three layers, none of which may drop
//! a real edit:
//! 1. content: the fetched record's checksum equals the one stored after the last sync;
//! 2. origin stamp: a record Tandem created carries the id it was created from, so its
//!    echo links instead of creating again (also after a crash before the link was saved);
//! 3. per-side version: a fetched record older than the version already synced is stale.
//!    An equal version falls through to the content check, so an edit made in the same
//!    tick as Tandem's write is still seen. There is no time-window gate.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::checksum::Checksum;
use super::ids::{EntityType, PairId, System};
use super::invoice::Invoice;
use super::policy::{ConflictPolicy, DeletePolicy, SyncPolicy};
use super::record::FieldMap;

/// The record whose change is being handled, as fetched from its system just now.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceRecord {
    pub system: System,
    pub id: String,
    /// `None` when the record was deleted or archived at the source.
    pub fields: Option<FieldMap>,
    /// The system's own updated-at.
    pub version: Option<String>,
    /// The origin stamp it carries: the id of the record in the other system that
    /// Tandem created it from.
    pub stamp: Option<String>,
}

/// A record on the other side, as fetched just now.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetRecord {
    pub id: String,
    pub fields: FieldMap,
    pub version: Option<String>,
}

/// How the target record was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetFound {
    /// Through the link.
    Linked,
    /// It carries Tandem's stamp naming the source record.
    ByStamp,
    /// Its natural key (e-mail, tax number, invoice number) matches.
    ByNaturalKey,
}

/// What was stored about a pair of records after their last sync.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LinkSnapshot {
    pub crm_id: Option<String>,
    pub finance_id: Option<String>,
    pub crm_checksum: Option<Checksum>,
    pub finance_checksum: Option<Checksum>,
    pub crm_version: Option<String>,
    pub finance_version: Option<String>,
    /// The canonical record as of the last sync, the base of three-way merges.
    pub base: Option<FieldMap>,
    pub archived: bool,
    /// Conflicting fields a person decided since the last sync: which side wins.
    pub resolutions: BTreeMap<String, System>,
    /// A person approved the held delete since the last sync.
    pub delete_approved: bool,
}

impl LinkSnapshot {
    pub fn id_on(&self, system: System) -> Option<&str> {
        match system {
            System::Crm => self.crm_id.as_deref(),
            System::Finance => self.finance_id.as_deref(),
        }
    }

    pub fn checksum_on(&self, system: System) -> Option<&Checksum> {
        match system {
            System::Crm => self.crm_checksum.as_ref(),
            System::Finance => self.finance_checksum.as_ref(),
        }
    }

    pub fn version_on(&self, system: System) -> Option<&str> {
        match system {
            System::Crm => self.crm_version.as_deref(),
            System::Finance => self.finance_version.as_deref(),
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct DecisionInput<'a> {
    pub source: &'a SourceRecord,
    pub link: Option<&'a LinkSnapshot>,
    /// The record on the other side: the linked one, else one found by stamp, else one
    /// found by natural key; the caller looks in that order before deciding.
    pub target: Option<(&'a TargetRecord, TargetFound)>,
    pub policy: &'a SyncPolicy,
}

/// A field both sides changed to different values since the last sync.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldConflict {
    pub field: String,
    pub crm_value: Option<Value>,
    pub finance_value: Option<Value>,
    pub base_value: Option<Value>,
    /// The side whose value was kept; `None` while a person has to choose.
    pub winner: Option<System>,
}

/// Field values to write to each side. A `null` value clears the field.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Changes {
    pub to_target: FieldMap,
    pub to_source: FieldMap,
    /// True conflicts the policy resolved, recorded with both values.
    pub conflicts: Vec<FieldConflict>,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        self.to_target.is_empty() && self.to_source.is_empty()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipReason {
    /// The content equals what was last synced from this side: Tandem's own echo, or a
    /// duplicate event.
    Echo,
    /// Older than the version already synced.
    Stale,
    /// Changed, but nothing that syncs differs between the two sides.
    NothingToSync,
    /// Deleted at the source and never linked.
    NotLinked,
    AlreadyArchived,
    DeletesIgnored,
}

#[derive(Debug, Clone, PartialEq)]
pub enum SyncDecision {
    Skip(SkipReason),
    /// Create the record on the other side, carrying the origin stamp.
    Create {
        fields: FieldMap,
        stamp: String,
    },
    /// Pair the source with an existing record on the other side, then write `changes`.
    Link {
        target_id: String,
        found: TargetFound,
        changes: Changes,
    },
    Update {
        changes: Changes,
    },
    /// Archive the linked record on the other side.
    Archive,
    /// Hold the archive for a person to approve.
    HoldDelete,
    /// Nothing is written to the other side; `to_source` may still be written back.
    Block {
        reason: String,
        to_source: FieldMap,
    },
    /// Park for a person: both sides changed these fields and the policy is manual.
    Conflict {
        conflicts: Vec<FieldConflict>,
    },
}

impl SyncDecision {
    /// Whether performing it writes to either system.
    pub fn writes(&self) -> bool {
        match self {
            SyncDecision::Skip(_) | SyncDecision::HoldDelete | SyncDecision::Conflict { .. } => {
                false
            }
            SyncDecision::Block { to_source, .. } => !to_source.is_empty(),
            SyncDecision::Link { changes, .. } => !changes.is_empty(),
            SyncDecision::Update { .. } | SyncDecision::Create { .. } | SyncDecision::Archive => {
                true
            }
        }
    }
}

/// What [`decide`] concludes from the source and its link alone, before the other
/// side is read: a delete, the echo of the last sync, or a version older than the one
/// synced. `None` when the decision needs the other side's record.
///
/// Under load every write is followed by its echo; deciding it here saves a read of
/// the other system, and on a rate-limited one (Xero's 60 calls a minute) that read is
/// the budget live changes wait for.
pub fn decide_without_target(
    source: &SourceRecord,
    link: Option<&LinkSnapshot>,
    policy: &SyncPolicy,
) -> Option<SyncDecision> {
    let side = source.system;
    let Some(fields) = &source.fields else {
        return Some(decide_delete(link, policy));
    };
    let link = link.filter(|l| l.id_on(side) == Some(source.id.as_str()))?;
    if let (Some(seen), Some(now)) = (link.version_on(side), source.version.as_deref()) {
        if is_older(now, seen) {
            return Some(SyncDecision::Skip(SkipReason::Stale));
        }
    }
    (link.checksum_on(side) == Some(&source_checksum(fields, side, policy)))
        .then_some(SyncDecision::Skip(SkipReason::Echo))
}

/// Decides what to do with one change. See the module documentation for the rules.
pub fn decide(input: DecisionInput<'_>) -> SyncDecision {
    let DecisionInput {
        source,
        link,
        target,
        policy,
    } = input;
    let side = source.system;
    if let Some(decided) = decide_without_target(source, link, policy) {
        return decided;
    }
    let Some(fields) = &source.fields else {
        return decide_delete(link, policy);
    };

    match (link, target) {
        // The link's other side is known and was fetched: merge.
        (Some(link), Some((target, TargetFound::Linked))) if link.id_on(side).is_some() => {
            let changes = merge(
                source,
                fields,
                target,
                link.base.as_ref(),
                Some(&link.resolutions),
                policy,
            );
            finish_update(changes, target, side, policy)
        }
        // A record created by Tandem whose link does not know its id yet: its echo
        // arriving before the link was saved, or a crash in between. Repair the link.
        (Some(link), Some((target, found))) if link.id_on(side).is_none() => {
            let changes = merge(
                source,
                fields,
                target,
                link.base.as_ref(),
                Some(&link.resolutions),
                policy,
            );
            link_decision(target, found, changes, side, policy)
        }
        // Linked, but the other side's record is gone (a create still in flight, or a
        // person deleted it): never guess; recreate only for a create in flight.
        (Some(link), None) => match link.id_on(side.opposite()) {
            None => create(fields, source, policy),
            Some(gone) => SyncDecision::Block {
                reason: format!(
                    "the linked {} record `{gone}` in {} was not found",
                    policy.entity,
                    side.opposite()
                ),
                to_source: FieldMap::new(),
            },
        },
        // First sight, with a match: link instead of creating a duplicate.
        (None, Some((target, found))) | (Some(_), Some((target, found))) => {
            let changes = merge(source, fields, target, None, None, policy);
            link_decision(target, found, changes, side, policy)
        }
        (None, None) => create(fields, source, policy),
    }
}

fn decide_delete(link: Option<&LinkSnapshot>, policy: &SyncPolicy) -> SyncDecision {
    match link {
        None => SyncDecision::Skip(SkipReason::NotLinked),
        Some(link) if link.archived => SyncDecision::Skip(SkipReason::AlreadyArchived),
        Some(link) => match policy.deletes {
            DeletePolicy::Archive => SyncDecision::Archive,
            DeletePolicy::Approve if link.delete_approved => SyncDecision::Archive,
            DeletePolicy::Approve => SyncDecision::HoldDelete,
            DeletePolicy::Ignore => SyncDecision::Skip(SkipReason::DeletesIgnored),
        },
    }
}

fn create(fields: &FieldMap, source: &SourceRecord, policy: &SyncPolicy) -> SyncDecision {
    let fields = policy
        .mapping
        .fields_from(source.system)
        .filter_map(|f| fields.get(f).map(|v| (f.to_string(), v.clone())))
        .collect();
    SyncDecision::Create {
        fields,
        stamp: source.id.clone(),
    }
}

fn link_decision(
    target: &TargetRecord,
    found: TargetFound,
    changes: Changes,
    side: System,
    policy: &SyncPolicy,
) -> SyncDecision {
    if let Some(conflicts) = unresolved(&changes) {
        return SyncDecision::Conflict { conflicts };
    }
    if let Some(reason) = locked(target, &changes, side, policy) {
        return SyncDecision::Block {
            reason,
            to_source: changes.to_source,
        };
    }
    SyncDecision::Link {
        target_id: target.id.clone(),
        found,
        changes,
    }
}

fn finish_update(
    changes: Changes,
    target: &TargetRecord,
    side: System,
    policy: &SyncPolicy,
) -> SyncDecision {
    if let Some(conflicts) = unresolved(&changes) {
        return SyncDecision::Conflict { conflicts };
    }
    if let Some(reason) = locked(target, &changes, side, policy) {
        return SyncDecision::Block {
            reason,
            to_source: changes.to_source,
        };
    }
    if changes.is_empty() && changes.conflicts.is_empty() {
        return SyncDecision::Skip(SkipReason::NothingToSync);
    }
    SyncDecision::Update { changes }
}

/// Conflicts that neither the policy nor a person has decided.
fn unresolved(changes: &Changes) -> Option<Vec<FieldConflict>> {
    let open: Vec<_> = changes
        .conflicts
        .iter()
        .filter(|c| c.winner.is_none())
        .cloned()
        .collect();
    (!open.is_empty()).then_some(open)
}

/// A locked finance document is never overwritten: accounting rules. Writes back to
/// the CRM (status, payments) are not held up by it.
fn locked(
    target: &TargetRecord,
    changes: &Changes,
    side: System,
    policy: &SyncPolicy,
) -> Option<String> {
    let writes_finance_invoice = policy.entity == EntityType::Invoice
        && side == System::Crm
        && !changes.to_target.is_empty();
    (writes_finance_invoice && Invoice::fields_locked(&target.fields)).then(|| {
        let status = target.fields.get("status").and_then(Value::as_str).unwrap_or("locked");
        format!("the finance invoice is {status}: a locked document is not overwritten; change it in the finance system")
    })
}

/// The checksum of what a side contributes: the fields that flow from it.
pub fn source_checksum(fields: &FieldMap, side: System, policy: &SyncPolicy) -> Checksum {
    Checksum::of(fields, policy.mapping.fields_from(side))
}

/// Field by field against the base: a field changed on one side takes that side; a
/// field changed on both to different values is a true conflict for the policy. With
/// no base (first sight), every difference counts as changed on both sides.
fn merge(
    source: &SourceRecord,
    fields: &FieldMap,
    target: &TargetRecord,
    base: Option<&FieldMap>,
    resolutions: Option<&BTreeMap<String, System>>,
    policy: &SyncPolicy,
) -> Changes {
    let side = source.system;
    let mut changes = Changes::default();
    for field in policy.mapping.synced_fields() {
        let flow = policy.mapping.flow(field);
        let (s, t) = (fields.get(field), target.fields.get(field));
        if s == t {
            continue;
        }
        let from_source = flow.flows_from(side);
        let from_target = flow.flows_from(side.opposite());
        match (from_source, from_target) {
            // One-way fields mirror their owner.
            (true, false) => put(&mut changes.to_target, field, s),
            (false, true) => put(&mut changes.to_source, field, t),
            (true, true) => {
                let b = base.and_then(|b| b.get(field));
                let source_changed = base.is_none() || s != b;
                let target_changed = base.is_none() || t != b;
                match (source_changed, target_changed) {
                    (true, false) => put(&mut changes.to_target, field, s),
                    (false, true) => put(&mut changes.to_source, field, t),
                    _ => {
                        let decided = resolutions.and_then(|r| r.get(field)).copied();
                        let winner = decided.or_else(|| conflict_winner(source, target, policy));
                        let (crm_value, finance_value) = match side {
                            System::Crm => (s.cloned(), t.cloned()),
                            System::Finance => (t.cloned(), s.cloned()),
                        };
                        changes.conflicts.push(FieldConflict {
                            field: field.to_string(),
                            crm_value,
                            finance_value,
                            base_value: b.cloned(),
                            winner,
                        });
                        match winner {
                            Some(w) if w == side => put(&mut changes.to_target, field, s),
                            Some(_) => put(&mut changes.to_source, field, t),
                            None => {}
                        }
                    }
                }
            }
            (false, false) => {}
        }
    }
    changes
}

fn put(map: &mut FieldMap, field: &str, value: Option<&Value>) {
    map.insert(field.to_string(), value.cloned().unwrap_or(Value::Null));
}

fn conflict_winner(
    source: &SourceRecord,
    target: &TargetRecord,
    policy: &SyncPolicy,
) -> Option<System> {
    let side = source.system;
    match policy.conflicts {
        ConflictPolicy::CrmWins => Some(System::Crm),
        ConflictPolicy::FinanceWins => Some(System::Finance),
        ConflictPolicy::Manual => None,
        ConflictPolicy::LastWriteWins => {
            let (s, t) = (
                instant(source.version.as_deref()),
                instant(target.version.as_deref()),
            );
            match (s, t) {
                (Some(s), Some(t)) if s > t => Some(side),
                (Some(s), Some(t)) if t > s => Some(side.opposite()),
                _ => Some(policy.source_of_truth),
            }
        }
    }
}

fn instant(version: Option<&str>) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(version?)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// Whether `now` is strictly older than `seen`, both versions of one system.
fn is_older(now: &str, seen: &str) -> bool {
    match (instant(Some(now)), instant(Some(seen))) {
        (Some(now), Some(seen)) => now < seen,
        _ => match (now.parse::<u64>(), seen.parse::<u64>()) {
            (Ok(now), Ok(seen)) => now < seen,
            _ => false,
        },
    }
}

/// What the link holds after the two records were brought in step: each side's
/// checksum and version, and the base for the next merge.
pub fn settle(
    policy: &SyncPolicy,
    crm: (&str, &FieldMap, Option<&str>),
    finance: (&str, &FieldMap, Option<&str>),
) -> LinkSnapshot {
    let base = policy
        .mapping
        .synced_fields()
        .filter_map(|field| {
            let owner = if policy.mapping.flow(field).flows_from(System::Crm) {
                crm.1
            } else {
                finance.1
            };
            owner.get(field).map(|v| (field.to_string(), v.clone()))
        })
        .collect();
    LinkSnapshot {
        crm_id: Some(crm.0.to_string()),
        finance_id: Some(finance.0.to_string()),
        crm_checksum: Some(source_checksum(crm.1, System::Crm, policy)),
        finance_checksum: Some(source_checksum(finance.1, System::Finance, policy)),
        crm_version: crm.2.map(str::to_string),
        finance_version: finance.2.map(str::to_string),
        base: Some(base),
        archived: false,
        resolutions: BTreeMap::new(),
        delete_approved: false,
    }
}

/// Applies written values to a field map the way a system stores them: `null` clears.
pub fn apply(fields: &FieldMap, writes: &FieldMap) -> FieldMap {
    let mut out = fields.clone();
    for (field, value) in writes {
        if value.is_null() {
            out.remove(field);
        } else {
            out.insert(field.clone(), value.clone());
        }
    }
    out
}

/// The `Idempotency-Key` for writing one change: the same on every retry of the same
/// change, different for a different change, at most 128 characters.
pub fn idempotency_key(
    pair: &PairId,
    entity: EntityType,
    source: System,
    source_id: &str,
    content: &Checksum,
) -> String {
    let digest =
        Sha256::digest(format!("{pair}\n{entity}\n{source}\n{source_id}\n{content}").as_bytes());
    format!("tandem-{}", hex::encode(digest))
}
