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

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;
use sha2::{Digest, Sha256};

use super::checksum::Checksum;
use super::clash::{
    by_policy, instant, ChangeTimes, Choice, ClashResolution, FieldConflict, HeldClash,
    PersonDecision,
};
use super::ids::{EntityType, PairId, System};
use super::invoice::Invoice;
use super::policy::{DeletePolicy, SyncPolicy};
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
    /// When each field last changed, where the system reports per-field times.
    pub field_versions: BTreeMap<String, String>,
}

impl SourceRecord {
    fn times(&self) -> ChangeTimes<'_> {
        ChangeTimes {
            system: self.system,
            version: self.version.as_deref(),
            field_versions: &self.field_versions,
        }
    }
}

/// A record on the other side, as fetched just now.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetRecord {
    pub id: String,
    pub fields: FieldMap,
    pub version: Option<String>,
    /// When each field last changed, where the system reports per-field times.
    pub field_versions: BTreeMap<String, String>,
}

impl TargetRecord {
    fn times(&self, system: System) -> ChangeTimes<'_> {
        ChangeTimes {
            system,
            version: self.version.as_deref(),
            field_versions: &self.field_versions,
        }
    }
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
    /// Clashes held for a person, by field: neither side's value is written.
    pub held: BTreeMap<String, HeldClash>,
    /// A person's decisions waiting to be applied, by field.
    pub decided: BTreeMap<String, PersonDecision>,
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

/// Field values to write to each side. A `null` value clears the field.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Changes {
    pub to_target: FieldMap,
    pub to_source: FieldMap,
    /// Every clash of this sync with both values and how it was resolved: by the
    /// policy, by a person's decision that fits it, or held for a person.
    pub conflicts: Vec<FieldConflict>,
    /// Fields whose held clash or pending decision ended without being applied: the
    /// sides came to agree, only one side still differs from the base, or a decision
    /// no longer fits the values.
    pub withdrawn: Vec<String>,
}

impl Changes {
    /// Whether nothing is written to either side.
    pub fn is_empty(&self) -> bool {
        self.to_target.is_empty() && self.to_source.is_empty()
    }

    /// The fields held for a person after this sync.
    pub fn held(&self) -> impl Iterator<Item = &str> {
        self.conflicts
            .iter()
            .filter(|c| c.is_held())
            .map(|c| c.field.as_str())
    }

    /// Whether performing it records anything about clashes.
    pub fn touches_clashes(&self) -> bool {
        !self.conflicts.is_empty() || !self.withdrawn.is_empty()
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
    /// Write `changes`; clashes held among them wait for a person while the rest flows.
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
    /// Nothing to write: every difference is a clash held for a person (new, or
    /// still held with the values in `changes`).
    Conflict {
        changes: Changes,
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
    // A person's decision waits to be applied: that needs the other side, whatever
    // this side did.
    if !link.decided.is_empty() {
        return None;
    }
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
            let changes = merge(source, fields, target, Some(link), policy);
            finish_update(changes, target, side, policy)
        }
        // A record created by Tandem whose link does not know its id yet: its echo
        // arriving before the link was saved, or a crash in between. Repair the link.
        (Some(link), Some((target, found))) if link.id_on(side).is_none() => {
            let changes = merge(source, fields, target, Some(link), policy);
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
            let changes = merge(source, fields, target, None, policy);
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

/// Linking pairs the records even while clashes are held: the clashes need the link
/// to be held on, and the fields that do not clash flow.
fn link_decision(
    target: &TargetRecord,
    found: TargetFound,
    changes: Changes,
    side: System,
    policy: &SyncPolicy,
) -> SyncDecision {
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
    if let Some(reason) = locked(target, &changes, side, policy) {
        return SyncDecision::Block {
            reason,
            to_source: changes.to_source,
        };
    }
    if !changes.is_empty() {
        return SyncDecision::Update { changes };
    }
    let only_held = changes.conflicts.iter().all(FieldConflict::is_held);
    match (
        changes.touches_clashes(),
        only_held && !changes.conflicts.is_empty(),
    ) {
        (false, _) => SyncDecision::Skip(SkipReason::NothingToSync),
        (true, true) => SyncDecision::Conflict { changes },
        // A clash ended, or a decision applied without a write: recorded as such.
        (true, false) => SyncDecision::Update { changes },
    }
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
/// field changed on both to different values is a clash, resolved by a person's
/// decision made for exactly these values, else by the policy (or held for a person).
/// With no base (first sight), every difference counts as changed on both sides.
fn merge(
    source: &SourceRecord,
    fields: &FieldMap,
    target: &TargetRecord,
    link: Option<&LinkSnapshot>,
    policy: &SyncPolicy,
) -> Changes {
    let side = source.system;
    let base = link.and_then(|l| l.base.as_ref());
    let mut changes = Changes::default();
    let mut clashing = BTreeSet::new();
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
                        clashing.insert(field);
                        let (crm, finance) = match side {
                            System::Crm => (s, t),
                            System::Finance => (t, s),
                        };
                        let decided = link.and_then(|l| l.decided.get(field));
                        let resolution = match decided {
                            Some(decision) if decision.fits(crm, finance) => {
                                ClashResolution::Person(decision.choice.clone())
                            }
                            _ => by_policy(
                                field,
                                source.times(),
                                target.times(side.opposite()),
                                policy,
                            ),
                        };
                        apply_resolution(&mut changes, field, side, s, t, &resolution);
                        changes.conflicts.push(FieldConflict {
                            field: field.to_string(),
                            crm_value: crm.cloned(),
                            finance_value: finance.cloned(),
                            base_value: b.cloned(),
                            resolution,
                        });
                    }
                }
            }
            (false, false) => {}
        }
    }
    if let Some(link) = link {
        changes.withdrawn = withdrawn(link, &clashing, &changes.conflicts);
    }
    changes
}

/// Writes what a clash's resolution keeps: the kept side's value to the other side,
/// or a person's own value to both.
fn apply_resolution(
    changes: &mut Changes,
    field: &str,
    side: System,
    s: Option<&Value>,
    t: Option<&Value>,
    resolution: &ClashResolution,
) {
    match resolution {
        ClashResolution::Policy(winner) | ClashResolution::Person(Choice::Keep(winner)) => {
            if *winner == side {
                put(&mut changes.to_target, field, s);
            } else {
                put(&mut changes.to_source, field, t);
            }
        }
        ClashResolution::Person(Choice::Value(value)) => {
            if value.as_ref() != t {
                put(&mut changes.to_target, field, value.as_ref());
            }
            if value.as_ref() != s {
                put(&mut changes.to_source, field, value.as_ref());
            }
        }
        ClashResolution::Held => {}
    }
}

/// The held clashes and pending decisions that end now without being applied: their
/// field no longer clashes, or a decision does not fit the clash it has now.
fn withdrawn(
    link: &LinkSnapshot,
    clashing: &BTreeSet<&str>,
    conflicts: &[FieldConflict],
) -> Vec<String> {
    let applied = |field: &str| {
        conflicts
            .iter()
            .any(|c| c.field == field && matches!(c.resolution, ClashResolution::Person(_)))
    };
    let held = link.held.keys().filter(|f| !clashing.contains(f.as_str()));
    let decided = link.decided.keys().filter(|f| !applied(f));
    held.chain(decided).cloned().collect()
}

fn put(map: &mut FieldMap, field: &str, value: Option<&Value>) {
    map.insert(field.to_string(), value.cloned().unwrap_or(Value::Null));
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
/// checksum and version, and the base for the next merge. A field held for a person
/// keeps its base from before the clash, so the clash is seen again at every sync
/// until it is resolved.
pub fn settle(
    policy: &SyncPolicy,
    crm: (&str, &FieldMap, Option<&str>),
    finance: (&str, &FieldMap, Option<&str>),
    held: Held<'_>,
) -> LinkSnapshot {
    let base = policy
        .mapping
        .synced_fields()
        .filter_map(|field| {
            if held.fields.contains(&field) {
                let before = held.base.and_then(|b| b.get(field))?;
                return Some((field.to_string(), before.clone()));
            }
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
        held: BTreeMap::new(),
        decided: BTreeMap::new(),
        delete_approved: false,
    }
}

/// The fields held for a person as a link settles, and the base they keep.
#[derive(Debug, Clone, Copy, Default)]
pub struct Held<'a> {
    pub fields: &'a [&'a str],
    pub base: Option<&'a FieldMap>,
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
