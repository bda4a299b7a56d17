//! Step three: perform the decision. The calls to the systems, each with an
//! idempotency key (the same change always gets the same key, so a retry cannot write
//! twice), then the link as it stands once both records are in step, the log entry
//! and the clashes to record: everything [`super::commit`] writes in one go.

use chrono::Utc;
use serde_json::{json, Value};
use uuid::Uuid;

use super::super::runtime::SyncError;
use super::load::ActiveClashes;
use super::{Change, Decided};
use crate::connectors::{ExternalRecord, ReadAt, Written};
use crate::domain::{
    apply, idempotency_key, settle, Changes, Checksum, ClashResolution, FieldMap, Held,
    RecordLabel, SkipReason, SourceRecord, SyncDecision, System, TargetFound, TargetRecord,
};
use crate::store::{
    ConflictState, ConflictWrite, Direction, EntityLink, LinkState, NewSyncLogEntry, Outcome,
    SyncStatus,
};

/// What a change did, ready to commit.
pub(super) struct Executed {
    /// The link as it now stands; `None` when there is none or nothing changed in it.
    pub link: Option<EntityLink>,
    pub log: NewSyncLogEntry,
    pub conflicts: Vec<ConflictWrite>,
    pub withdrawn: Vec<Uuid>,
    pub hold_delete: bool,
}

/// A record as it stands after Tandem's writes: what the link is settled from.
struct After {
    id: String,
    fields: FieldMap,
    version: Option<String>,
    /// `Some` when Tandem wrote the record in this change: the exact version of the
    /// write when the system's answer showed the record as written (its echo can then
    /// be known without a read), else `None`.
    written: Option<Option<String>>,
}

impl After {
    fn read(id: &str, fields: &FieldMap, version: Option<&String>) -> Self {
        Self {
            id: id.to_string(),
            fields: fields.clone(),
            version: version.cloned(),
            written: None,
        }
    }
}

pub(super) async fn execute(
    cx: &Change<'_>,
    source: &SourceRecord,
    source_read: &ReadAt,
    link: Option<EntityLink>,
    decided: Decided,
    active: &ActiveClashes,
) -> Result<Executed, SyncError> {
    let event = cx.event;
    let side = event.system;
    let other = side.opposite();
    let Decided {
        decision,
        target,
        target_read_at,
    } = decided;
    let reads = Reads {
        source: source_read.clone(),
        target: ReadAt {
            version: target.as_ref().and_then(|(t, _)| t.version.clone()),
            at: target_read_at,
        },
    };
    tracing::info!(decision = ?decision_name(&decision), "decided");
    // An echo belongs to the write that caused it: it is logged under that write's
    // transaction, so a record's history reads as one chain.
    let transaction_id = match (&decision, link.as_ref()) {
        (SyncDecision::Skip(SkipReason::Echo), Some(link)) => {
            link.last_transaction_id.unwrap_or(cx.transaction_id)
        }
        _ => cx.transaction_id,
    };
    let mut log = NewSyncLogEntry::for_event(transaction_id, event, Outcome::Skipped);
    log.attempt = cx.attempt;
    log.source_snapshot = source.fields.as_ref().map(to_json);
    log.target_before = target.as_ref().map(|(t, _)| to_json(&t.fields));
    let mut executed = Executed {
        link: None,
        log,
        conflicts: Vec::new(),
        withdrawn: Vec::new(),
        hold_delete: false,
    };
    let log = &mut executed.log;
    let source_after = |fields: &FieldMap| After::read(&source.id, fields, source.version.as_ref());
    let target_record = || target.as_ref().map(|(t, _)| t).ok_or_else(missing_target);
    // The log names the link even when the change leaves it as it was.
    let loaded_id = link.as_ref().map(|l| l.id);
    let mut row = link;

    match decision {
        SyncDecision::Skip(reason) => {
            log.detail = Some(skip_detail(reason).to_string());
            // Both sides already agree: the link learns both as they are. Any other
            // skip (an echo, a duplicate) leaves the link as it was: nothing to save.
            match (reason, row.as_mut(), &target, &source.fields) {
                (SkipReason::NothingToSync, Some(r), Some((t, _)), Some(fields)) => {
                    settle_row(cx, r, &source_after(fields), &after_of_target(t), &[]);
                }
                _ => row = None,
            }
        }
        SyncDecision::Create { fields, stamp } => {
            let mut r = match row.take() {
                Some(r) => r,
                None => {
                    // Claim the record before creating, so a crash after the create
                    // leaves a link that the origin stamp can repair.
                    let mut claim =
                        EntityLink::new(event.pair.clone(), event.entity, side, &source.id);
                    // A create that keeps failing is listed with the record's name.
                    claim.label = RecordLabel::of(event.entity, &fields);
                    cx.store.insert_link(&claim).await?;
                    claim
                }
            };
            let key = key_for(cx, source, "create", &fields);
            let written = cx
                .pair
                .connector(other)
                .create(event.entity, &fields, &stamp, &key)
                .await?;
            record_exchange(log, &written);
            set_id(&mut r, other, &written.record.id);
            let target_after = after_of_create(cx, &written.record, &fields);
            log.target_after = Some(to_json(&target_after.fields));
            let mut src = source_after(source.fields.as_ref().unwrap_or(&fields));
            // What the other side owns and set as it created the record (an invoice's
            // status and totals, from finance) goes back in the same step; otherwise
            // the source would lack it until the next change on either side.
            let back = owned_by(cx, other, &target_after.fields, &src.fields);
            if !back.is_empty() {
                let key = key_for(cx, source, "update-source", &back);
                let written = cx
                    .pair
                    .connector(side)
                    .update_unless_changed(event.entity, &source.id, &back, &key, &reads.source)
                    .await?;
                src = after_of_update(cx, &src, &back, &written.record);
            }
            settle_row(cx, &mut r, &src, &target_after, &[]);
            log.outcome = Outcome::Created;
            row = Some(r);
        }
        SyncDecision::Link {
            target_id,
            found,
            changes,
        } => {
            let mut r = row.take().unwrap_or_else(|| {
                EntityLink::new(event.pair.clone(), event.entity, side, &source.id)
            });
            set_id(&mut r, side, &source.id);
            set_id(&mut r, other, &target_id);
            let (src, dst) =
                write_changes(cx, source, target_record()?, &changes, &reads, log).await?;
            log.target_after = Some(to_json(&dst.fields));
            settle_row(cx, &mut r, &src, &dst, &held_fields(&changes));
            (executed.conflicts, executed.withdrawn) = record_clashes(cx, &changes, active);
            log.outcome = Outcome::Linked;
            log.detail = Some(
                match found {
                    TargetFound::ByStamp => "matched by origin stamp",
                    TargetFound::ByNaturalKey => "matched by natural key",
                    TargetFound::Linked => "completed a link whose create was in flight",
                }
                .to_string(),
            );
            row = Some(r);
        }
        SyncDecision::Update { changes } => {
            let mut r = row.take().ok_or_else(missing_link)?;
            let (src, dst) =
                write_changes(cx, source, target_record()?, &changes, &reads, log).await?;
            log.target_after = Some(to_json(&dst.fields));
            settle_row(cx, &mut r, &src, &dst, &held_fields(&changes));
            (executed.conflicts, executed.withdrawn) = record_clashes(cx, &changes, active);
            log.outcome = match (changes.is_empty(), changes.held().next()) {
                (false, _) => Outcome::Updated,
                (true, Some(_)) => Outcome::Conflict,
                (true, None) => Outcome::Skipped,
            };
            log.detail = clash_detail(&changes);
            row = Some(r);
        }
        SyncDecision::Archive => {
            let mut r = row.take().ok_or_else(missing_link)?;
            if let Some(target_id) = r.id_on(other).map(str::to_string) {
                let key = key_for(cx, source, "archive", &FieldMap::new());
                let written = cx
                    .pair
                    .connector(other)
                    .archive(event.entity, &target_id, &key)
                    .await?;
                record_exchange(log, &written);
            }
            r.state = LinkState::Archived;
            r.archived_at = Some(Utc::now());
            mark(cx, &mut r, SyncStatus::Synced, None);
            log.outcome = Outcome::Archived;
            row = Some(r);
        }
        SyncDecision::HoldDelete => {
            executed.hold_delete = true;
            log.outcome = Outcome::HeldForApproval;
            log.detail = Some(format!(
                "deleted in {side}; the archive in {other} waits for a person to approve it"
            ));
            // The link is not saved: the held delete is recorded against it.
            executed.link = row.clone();
            row = None;
        }
        SyncDecision::Block { reason, to_source } => {
            let mut r = row.take().ok_or_else(missing_link)?;
            if !to_source.is_empty() {
                let key = key_for(cx, source, "update-source", &to_source);
                let written = cx
                    .pair
                    .connector(side)
                    .update_unless_changed(
                        event.entity,
                        &source.id,
                        &to_source,
                        &key,
                        &reads.source,
                    )
                    .await?;
                record_exchange(log, &written);
            }
            mark(cx, &mut r, SyncStatus::Blocked, Some(reason.clone()));
            log.outcome = Outcome::Blocked;
            log.detail = Some(reason);
            row = Some(r);
        }
        SyncDecision::Conflict { changes } => {
            let mut r = row.take().ok_or_else(missing_link)?;
            let fields = source.fields.as_ref().ok_or_else(missing_target)?;
            settle_row(
                cx,
                &mut r,
                &source_after(fields),
                &after_of_target(target_record()?),
                &held_fields(&changes),
            );
            (executed.conflicts, executed.withdrawn) = record_clashes(cx, &changes, active);
            log.outcome = Outcome::Conflict;
            log.detail = clash_detail(&changes);
            row = Some(r);
        }
    }
    if row.is_some() {
        executed.link = row;
    }
    executed.log.link_id = executed.link.as_ref().map(|r| r.id).or(loaded_id);
    Ok(executed)
}

/// Writes the changes both ways; returns each record as it now stands.
/// When each side was read: a write goes out only over the version read (checked by
/// the connector when the read is old).
struct Reads {
    source: ReadAt,
    target: ReadAt,
}

async fn write_changes(
    cx: &Change<'_>,
    source: &SourceRecord,
    target: &TargetRecord,
    changes: &Changes,
    reads: &Reads,
    log: &mut NewSyncLogEntry,
) -> Result<(After, After), SyncError> {
    let entity = cx.event.entity;
    let side = source.system;
    let mut dst = after_of_target(target);
    let mut src = After::read(
        &source.id,
        source.fields.as_ref().unwrap_or(&FieldMap::new()),
        source.version.as_ref(),
    );
    if !changes.to_target.is_empty() {
        let key = key_for(cx, source, "update-target", &changes.to_target);
        let written = cx
            .pair
            .connector(side.opposite())
            .update_unless_changed(entity, &target.id, &changes.to_target, &key, &reads.target)
            .await?;
        record_exchange(log, &written);
        dst = after_of_update(cx, &dst, &changes.to_target, &written.record);
    }
    if !changes.to_source.is_empty() {
        let key = key_for(cx, source, "update-source", &changes.to_source);
        let written = cx
            .pair
            .connector(side)
            .update_unless_changed(entity, &source.id, &changes.to_source, &key, &reads.source)
            .await?;
        if changes.to_target.is_empty() {
            record_exchange(log, &written);
        }
        src = after_of_update(cx, &src, &changes.to_source, &written.record);
    }
    Ok((src, dst))
}

/// A record after Tandem wrote `writes` to it: what it held with the writes applied,
/// at the version the system answered.
fn after_of_update(
    cx: &Change<'_>,
    before: &After,
    writes: &FieldMap,
    answer: &ExternalRecord,
) -> After {
    let fields = apply(&before.fields, writes);
    After {
        id: before.id.clone(),
        written: Some(echo_version(cx, &fields, answer)),
        fields,
        version: answer.version.clone(),
    }
}

fn after_of_create(cx: &Change<'_>, answer: &ExternalRecord, sent: &FieldMap) -> After {
    let fields = answer.fields.clone().unwrap_or_else(|| sent.clone());
    After {
        id: answer.id.clone(),
        written: Some(echo_version(cx, sent, answer)),
        fields,
        version: answer.version.clone(),
    }
}

/// The version of a write whose echo is known without a read: only when the system's
/// answer holds every synced field as Tandem expected it. A person's edit that landed
/// between Tandem's read and its write shows in the answer, and then the echo is read
/// (and the edit found).
fn echo_version(cx: &Change<'_>, expected: &FieldMap, answer: &ExternalRecord) -> Option<String> {
    let answered = answer.fields.as_ref()?;
    // An empty value and no value say the same.
    let there = |map: &FieldMap, field: &str| {
        map.get(field)
            .filter(|v| !crate::domain::record::is_absent(v))
            .cloned()
    };
    let same = cx
        .policy
        .mapping
        .synced_fields()
        .all(|field| there(answered, field) == there(expected, field));
    same.then(|| answer.version.clone()).flatten()
}

/// The fields only `owner` writes whose value there differs from `other_fields`.
fn owned_by(
    cx: &Change<'_>,
    owner: System,
    owner_fields: &FieldMap,
    other_fields: &FieldMap,
) -> FieldMap {
    let mapping = &cx.policy.mapping;
    mapping
        .synced_fields()
        .filter(|field| {
            let flow = mapping.flow(field);
            flow.flows_from(owner) && !flow.flows_from(owner.opposite())
        })
        .filter_map(|field| {
            // Null and missing say the same: nothing there.
            let value = owner_fields.get(field).filter(|v| !v.is_null())?;
            let there = other_fields.get(field).filter(|v| !v.is_null());
            (there != Some(value)).then(|| (field.to_string(), value.clone()))
        })
        .collect()
}

fn after_of_target(target: &TargetRecord) -> After {
    After::read(&target.id, &target.fields, target.version.as_ref())
}

/// The link as it stands once both records are in step, but for the fields `held`
/// for a person: those keep the base from before their clash.
fn settle_row(
    cx: &Change<'_>,
    row: &mut EntityLink,
    source: &After,
    target: &After,
    held: &[&str],
) {
    let side = cx.event.system;
    let (crm, finance) = match side {
        System::Crm => (source, target),
        System::Finance => (target, source),
    };
    let before = row.snapshot().base;
    let settled = settle(
        cx.policy,
        (&crm.id, &crm.fields, crm.version.as_deref()),
        (&finance.id, &finance.fields, finance.version.as_deref()),
        Held {
            fields: held,
            base: before.as_ref(),
        },
    );
    row.crm_id = settled.crm_id;
    row.finance_id = settled.finance_id;
    row.crm_checksum = settled.crm_checksum.map(|c| c.0);
    row.finance_checksum = settled.finance_checksum.map(|c| c.0);
    row.crm_version = settled.crm_version;
    row.finance_version = settled.finance_version;
    row.base_snapshot = settled.base.as_ref().map(to_json);
    if let Some(echo) = &crm.written {
        row.echo_crm = echo.clone();
    }
    if let Some(echo) = &finance.written {
        row.echo_finance = echo.clone();
    }
    if row.state == LinkState::Creating {
        row.state = LinkState::Active;
    }
    row.active_conflicts = u32::try_from(held.len()).unwrap_or(u32::MAX);
    if held.is_empty() {
        mark(cx, row, SyncStatus::Synced, None);
    } else {
        let error = format!(
            "{} changed on both sides; waiting for a person ({} field(s))",
            held.join(", "),
            held.len()
        );
        mark(cx, row, SyncStatus::Conflict, Some(error));
    }
    row.last_synced_at = Some(Utc::now());
    row.last_direction = Some(Direction::from_source(side));
    row.label =
        RecordLabel::of(row.entity, &crm.fields).or(RecordLabel::of(row.entity, &finance.fields));
}

/// The link's status after this change, with no attempts left pending.
fn mark(cx: &Change<'_>, row: &mut EntityLink, status: SyncStatus, error: Option<String>) {
    row.sync_status = status;
    row.last_error = error;
    row.attempts = 0;
    row.next_attempt_at = None;
    row.last_transaction_id = Some(cx.transaction_id);
}

fn set_id(row: &mut EntityLink, system: System, id: &str) {
    match system {
        System::Crm => row.crm_id = Some(id.to_string()),
        System::Finance => row.finance_id = Some(id.to_string()),
    }
}

/// The same change always gets the same key (so a retry cannot write twice); a
/// different change, or the same content after a newer edit, gets another.
fn key_for(cx: &Change<'_>, source: &SourceRecord, operation: &str, content: &FieldMap) -> String {
    let mut keyed = content.clone();
    keyed.insert("_operation".into(), json!(operation));
    keyed.insert("_version".into(), json!(source.version));
    let names: Vec<String> = keyed.keys().cloned().collect();
    let checksum = Checksum::of(&keyed, names.iter().map(String::as_str));
    idempotency_key(
        &cx.event.pair,
        cx.event.entity,
        source.system,
        &source.id,
        &checksum,
    )
}

fn record_exchange(log: &mut NewSyncLogEntry, written: &Written) {
    log.request = written.exchange.request.clone();
    log.response = written.exchange.response.clone();
    log.status_code = written.exchange.status;
}

/// What a sync records about its clashes: each clash (a field's held or decided row
/// updated in place, else a new row), and the ids of those that ended unapplied.
fn record_clashes(
    cx: &Change<'_>,
    changes: &Changes,
    active: &ActiveClashes,
) -> (Vec<ConflictWrite>, Vec<Uuid>) {
    let withdrawn: Vec<Uuid> = changes
        .withdrawn
        .iter()
        .filter_map(|field| active.ids.get(field).copied())
        .collect();
    let writes = changes
        .conflicts
        .iter()
        .map(|c| ConflictWrite {
            existing: active
                .ids
                .get(&c.field)
                .copied()
                .filter(|_| !changes.withdrawn.contains(&c.field)),
            field: c.field.clone(),
            crm_value: c.crm_value.clone(),
            finance_value: c.finance_value.clone(),
            base_value: c.base_value.clone(),
            policy: cx.policy.conflicts.as_str().to_string(),
            state: match c.resolution {
                ClashResolution::Held => ConflictState::Held,
                ClashResolution::Policy(side) => ConflictState::ResolvedByPolicy(side),
                ClashResolution::Person(_) => ConflictState::Applied,
            },
        })
        .collect();
    (writes, withdrawn)
}

fn held_fields(changes: &Changes) -> Vec<&str> {
    changes.held().collect()
}

/// What a sync did about clashes, for the log.
fn clash_detail(changes: &Changes) -> Option<String> {
    let count = |f: fn(&ClashResolution) -> bool| {
        changes
            .conflicts
            .iter()
            .filter(|c| f(&c.resolution))
            .count()
    };
    let by_policy = count(|r| matches!(r, ClashResolution::Policy(_)));
    let by_person = count(|r| matches!(r, ClashResolution::Person(_)));
    let held: Vec<&str> = changes.held().collect();
    let mut parts = Vec::new();
    if by_policy > 0 {
        parts.push(format!(
            "{by_policy} conflicting field(s) resolved by the policy"
        ));
    }
    if by_person > 0 {
        parts.push(format!("{by_person} person's decision(s) applied"));
    }
    if !held.is_empty() {
        parts.push(format!(
            "{} changed on both sides, held for a person",
            held.join(", ")
        ));
    }
    if !changes.withdrawn.is_empty() {
        parts.push(format!(
            "the clash on {} ended before anyone decided",
            changes.withdrawn.join(", ")
        ));
    }
    (!parts.is_empty()).then(|| parts.join("; "))
}

fn to_json(fields: &FieldMap) -> Value {
    Value::Object(fields.clone().into_iter().collect())
}

fn skip_detail(reason: SkipReason) -> &'static str {
    match reason {
        SkipReason::Echo => "echo of the last sync: content unchanged",
        SkipReason::Stale => "stale: older than the version already synced",
        SkipReason::NothingToSync => "both sides already agree",
        SkipReason::NotLinked => "deleted before it was ever synced",
        SkipReason::AlreadyArchived => "already archived on the other side",
        SkipReason::DeletesIgnored => "the pair ignores deletes",
    }
}

fn decision_name(decision: &SyncDecision) -> &'static str {
    match decision {
        SyncDecision::Skip(_) => "skip",
        SyncDecision::Create { .. } => "create",
        SyncDecision::Link { .. } => "link",
        SyncDecision::Update { .. } => "update",
        SyncDecision::Archive => "archive",
        SyncDecision::HoldDelete => "hold_delete",
        SyncDecision::Block { .. } => "block",
        SyncDecision::Conflict { .. } => "conflict",
    }
}

fn missing_target() -> SyncError {
    SyncError::corrupt("the decision needs a target record that was not fetched")
}

fn missing_link() -> SyncError {
    SyncError::corrupt("the decision needs a link that does not exist")
}
