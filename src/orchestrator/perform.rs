//! Performing a sync decision: the writes to each system, then the link, the log entry
//! and any conflicts or held deletes in one store transaction.

use std::collections::BTreeMap;
use std::time::Instant;

use chrono::Utc;
use serde_json::{json, Value};
use uuid::Uuid;

use super::sync::{Fetched, PairRuntime, SyncError};
use crate::connectors::{ExternalRecord, Written};
use crate::domain::{
    apply, decide, decide_without_target, idempotency_key, settle, ChangeEvent, Changes, Checksum,
    ClashResolution, DecisionInput, FieldMap, Held, HeldClash, LinkSnapshot, PersonDecision,
    RecordLabel, SkipReason, SourceRecord, SyncDecision, SyncPolicy, System, TargetFound,
    TargetRecord, Trigger,
};
use crate::store::{
    ConflictState, ConflictStatus, ConflictWrite, Direction, EntityLink, LinkState,
    NewSyncLogEntry, Outcome, Store, SyncCommit, SyncStatus,
};

pub(super) struct SyncContext<'a> {
    pub store: &'a dyn Store,
    pub pair: &'a PairRuntime,
    pub policy: &'a SyncPolicy,
    pub event: &'a ChangeEvent,
    pub attempt: u32,
    pub transaction_id: Uuid,
}

pub(super) struct Performed {
    pub log: NewSyncLogEntry,
}

/// A record as it stands after Tandem's writes: what the link is settled from.
struct After {
    id: String,
    fields: FieldMap,
    version: Option<String>,
}

pub(super) async fn perform(
    cx: &SyncContext<'_>,
    fetched: Fetched,
) -> Result<Performed, SyncError> {
    let started = Instant::now();
    let event = cx.event;
    let side = event.system;
    let other = side.opposite();
    let source = SourceRecord {
        system: side,
        id: event.external_id.clone(),
        fields: fetched.source.as_ref().and_then(|s| s.fields.clone()),
        version: fetched.source.as_ref().and_then(|s| s.version.clone()),
        stamp: fetched.source.as_ref().and_then(|s| s.stamp.clone()),
        field_versions: fetched
            .source
            .as_ref()
            .map(|s| s.field_versions.clone())
            .unwrap_or_default(),
    };
    let (snapshot, active) = match &fetched.link {
        Some(link) => {
            let (snapshot, active) = snapshot_of(cx.store, link).await?;
            (Some(snapshot), active)
        }
        None => (None, ActiveClashes::default()),
    };
    // An echo, a stale version or a delete is decided without reading the other side.
    let early = decide_without_target(&source, snapshot.as_ref(), cx.policy);
    let target = match early {
        Some(_) => None,
        None => find_target(cx, &source, fetched.link.as_ref()).await?,
    };
    let decision = early.unwrap_or_else(|| {
        decide(DecisionInput {
            source: &source,
            link: snapshot.as_ref(),
            target: target.as_ref().map(|(t, found)| (t, *found)),
            policy: cx.policy,
        })
    });
    tracing::info!(decision = ?decision_name(&decision), "decided");

    // An echo belongs to the write that caused it: it is logged under that write's
    // transaction, so a record's history reads as one chain.
    let transaction_id = match (&decision, fetched.link.as_ref()) {
        (SyncDecision::Skip(SkipReason::Echo), Some(link)) => {
            link.last_transaction_id.unwrap_or(cx.transaction_id)
        }
        _ => cx.transaction_id,
    };
    let mut log = NewSyncLogEntry::for_event(transaction_id, event, Outcome::Skipped);
    log.attempt = cx.attempt;
    log.source_snapshot = source.fields.as_ref().map(to_json);
    log.target_before = target.as_ref().map(|(t, _)| to_json(&t.fields));
    let mut row = fetched.link.clone();
    let mut conflicts = Vec::new();
    let mut withdrawn = Vec::new();
    let mut hold_delete = false;
    let mut link_unchanged = false;
    let source_after = |fields: &FieldMap| After {
        id: source.id.clone(),
        fields: fields.clone(),
        version: source.version.clone(),
    };

    match decision {
        SyncDecision::Skip(reason) => {
            log.detail = Some(skip_detail(reason).to_string());
            if let (SkipReason::NothingToSync, Some(r), Some((t, _)), Some(fields)) =
                (reason, row.as_mut(), &target, &source.fields)
            {
                settle_row(cx, r, &source_after(fields), &after_of_target(t), &[]);
            } else {
                link_unchanged = true;
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
            let key = key_for(cx, &source, "create", &fields);
            let written = cx
                .pair
                .connector(other)
                .create(event.entity, &fields, &stamp, &key)
                .await?;
            record_exchange(&mut log, &written);
            set_id(&mut r, other, &written.record.id);
            let target_after = after_of_written(&written.record, &fields);
            log.target_after = Some(to_json(&target_after.fields));
            let mut src = source_after(source.fields.as_ref().unwrap_or(&fields));
            // What the other side owns and set as it created the record (an invoice's
            // status and totals, from finance) goes back in the same step; otherwise
            // the source would lack it until the next change on either side.
            let back = owned_by(cx, other, &target_after.fields, &src.fields);
            if !back.is_empty() {
                let key = key_for(cx, &source, "update-source", &back);
                let written = cx
                    .pair
                    .connector(side)
                    .update(event.entity, &source.id, &back, &key)
                    .await?;
                src = After {
                    id: source.id.clone(),
                    fields: apply(&src.fields, &back),
                    version: written.record.version,
                };
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
            let target_record = target.as_ref().map(|(t, _)| t).ok_or_else(missing_target)?;
            let (src, dst) = write_changes(cx, &source, target_record, &changes, &mut log).await?;
            log.target_after = Some(to_json(&dst.fields));
            settle_row(cx, &mut r, &src, &dst, &held_fields(&changes));
            (conflicts, withdrawn) = record_clashes(cx, &changes, &active);
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
            let target_record = target.as_ref().map(|(t, _)| t).ok_or_else(missing_target)?;
            let (src, dst) = write_changes(cx, &source, target_record, &changes, &mut log).await?;
            log.target_after = Some(to_json(&dst.fields));
            settle_row(cx, &mut r, &src, &dst, &held_fields(&changes));
            (conflicts, withdrawn) = record_clashes(cx, &changes, &active);
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
                let key = key_for(cx, &source, "archive", &FieldMap::new());
                let written = cx
                    .pair
                    .connector(other)
                    .archive(event.entity, &target_id, &key)
                    .await?;
                record_exchange(&mut log, &written);
            }
            r.state = LinkState::Archived;
            r.archived_at = Some(Utc::now());
            r.sync_status = SyncStatus::Synced;
            r.last_error = None;
            r.attempts = 0;
            r.next_attempt_at = None;
            r.last_transaction_id = Some(cx.transaction_id);
            log.outcome = Outcome::Archived;
            row = Some(r);
        }
        SyncDecision::HoldDelete => {
            hold_delete = true;
            log.outcome = Outcome::HeldForApproval;
            log.detail = Some(format!(
                "deleted in {side}; the archive in {other} waits for a person to approve it"
            ));
        }
        SyncDecision::Block { reason, to_source } => {
            let mut r = row.take().ok_or_else(missing_link)?;
            if !to_source.is_empty() {
                let key = key_for(cx, &source, "update-source", &to_source);
                let written = cx
                    .pair
                    .connector(side)
                    .update(event.entity, &source.id, &to_source, &key)
                    .await?;
                record_exchange(&mut log, &written);
            }
            r.sync_status = SyncStatus::Blocked;
            r.last_error = Some(reason.clone());
            r.attempts = 0;
            r.next_attempt_at = None;
            r.last_transaction_id = Some(cx.transaction_id);
            log.outcome = Outcome::Blocked;
            log.detail = Some(reason);
            row = Some(r);
        }
        SyncDecision::Conflict { changes } => {
            let mut r = row.take().ok_or_else(missing_link)?;
            let target_record = target.as_ref().map(|(t, _)| t).ok_or_else(missing_target)?;
            let fields = source.fields.as_ref().ok_or_else(missing_target)?;
            settle_row(
                cx,
                &mut r,
                &source_after(fields),
                &after_of_target(target_record),
                &held_fields(&changes),
            );
            (conflicts, withdrawn) = record_clashes(cx, &changes, &active);
            log.outcome = Outcome::Conflict;
            log.detail = clash_detail(&changes);
            row = Some(r);
        }
    }
    log.link_id = row.as_ref().map(|r| r.id);
    log.duration_ms = started.elapsed().as_millis() as u64;
    let announced = announced(event).map(|detail| {
        let mut received = NewSyncLogEntry::for_event(transaction_id, event, Outcome::Received);
        received.link_id = log.link_id;
        received.detail = Some(detail);
        received
    });
    cx.store
        .commit_sync(SyncCommit {
            // A skip that left the link as it was (an echo, a duplicate) has nothing
            // to save: under load every change is followed by the echo of its write.
            link: row.filter(|_| !link_unchanged),
            log: log.clone(),
            conflicts,
            withdrawn,
            link_status: None,
            hold_delete,
            announced,
        })
        .await?;
    Ok(Performed { log })
}

/// The record on the other side: through the link, else by origin stamp, else by
/// natural key (unless that record is already linked to another).
async fn find_target(
    cx: &SyncContext<'_>,
    source: &SourceRecord,
    link: Option<&EntityLink>,
) -> Result<Option<(TargetRecord, TargetFound)>, SyncError> {
    let other = source.system.opposite();
    let connector = cx.pair.connector(other);
    let entity = cx.event.entity;
    if let Some(id) = link.and_then(|l| l.id_on(other)) {
        return Ok(connector
            .get(entity, id)
            .await?
            .and_then(as_target)
            .map(|t| (t, TargetFound::Linked)));
    }
    // Tandem claims a link before it creates, so a record stamped with this source's
    // id can exist only when a link does (a create in flight, or cut off by a crash).
    let stamp = link.map(|_| source.id.as_str());
    let (by_stamp, by_natural_key) = connector
        .find_match(entity, stamp, source.fields.as_ref())
        .await?;
    if let Some(found) = by_stamp.and_then(as_target) {
        return Ok(Some((found, TargetFound::ByStamp)));
    }
    if let Some(found) = by_natural_key.and_then(as_target) {
        let taken = cx
            .store
            .find_link(&cx.event.pair, entity, other, &found.id)
            .await?;
        if taken.is_none() {
            return Ok(Some((found, TargetFound::ByNaturalKey)));
        }
    }
    Ok(None)
}

fn as_target(record: ExternalRecord) -> Option<TargetRecord> {
    Some(TargetRecord {
        id: record.id,
        fields: record.fields?,
        version: record.version,
        field_versions: record.field_versions,
    })
}

/// Writes the changes both ways; returns each record as it now stands.
async fn write_changes(
    cx: &SyncContext<'_>,
    source: &SourceRecord,
    target: &TargetRecord,
    changes: &Changes,
    log: &mut NewSyncLogEntry,
) -> Result<(After, After), SyncError> {
    let entity = cx.event.entity;
    let side = source.system;
    let source_fields = source.fields.clone().unwrap_or_default();
    let mut dst = After {
        id: target.id.clone(),
        fields: target.fields.clone(),
        version: target.version.clone(),
    };
    let mut src = After {
        id: source.id.clone(),
        fields: source_fields,
        version: source.version.clone(),
    };
    if !changes.to_target.is_empty() {
        let key = key_for(cx, source, "update-target", &changes.to_target);
        let written = cx
            .pair
            .connector(side.opposite())
            .update(entity, &target.id, &changes.to_target, &key)
            .await?;
        record_exchange(log, &written);
        dst = After {
            id: target.id.clone(),
            fields: apply(&dst.fields, &changes.to_target),
            version: written.record.version,
        };
    }
    if !changes.to_source.is_empty() {
        let key = key_for(cx, source, "update-source", &changes.to_source);
        let written = cx
            .pair
            .connector(side)
            .update(entity, &source.id, &changes.to_source, &key)
            .await?;
        if changes.to_target.is_empty() {
            record_exchange(log, &written);
        }
        src = After {
            id: source.id.clone(),
            fields: apply(&src.fields, &changes.to_source),
            version: written.record.version,
        };
    }
    Ok((src, dst))
}

/// The fields only `owner` writes whose value there differs from `other_fields`.
fn owned_by(
    cx: &SyncContext<'_>,
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
    After {
        id: target.id.clone(),
        fields: target.fields.clone(),
        version: target.version.clone(),
    }
}

fn after_of_written(record: &ExternalRecord, sent: &FieldMap) -> After {
    After {
        id: record.id.clone(),
        fields: record.fields.clone().unwrap_or_else(|| sent.clone()),
        version: record.version.clone(),
    }
}

/// The link as it stands once both records are in step, but for the fields `held`
/// for a person: those keep the base from before their clash.
fn settle_row(
    cx: &SyncContext<'_>,
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
    if row.state == LinkState::Creating {
        row.state = LinkState::Active;
    }
    if held.is_empty() {
        row.sync_status = SyncStatus::Synced;
        row.last_error = None;
    } else {
        row.sync_status = SyncStatus::Conflict;
        row.last_error = Some(format!(
            "{} changed on both sides; waiting for a person ({} field(s))",
            held.join(", "),
            held.len()
        ));
    }
    row.last_transaction_id = Some(cx.transaction_id);
    row.last_synced_at = Some(Utc::now());
    row.last_direction = Some(Direction::from_source(side));
    row.attempts = 0;
    row.next_attempt_at = None;
    row.label =
        RecordLabel::of(row.entity, &crm.fields).or(RecordLabel::of(row.entity, &finance.fields));
}

/// The ids of a link's held and decided conflicts, by field: what a sync updates in
/// place or withdraws.
#[derive(Default)]
struct ActiveClashes {
    ids: BTreeMap<String, Uuid>,
}

/// The link as the decision sees it: its row, the clashes held for a person, the
/// decisions waiting to be applied, and an approved delete.
async fn snapshot_of(
    store: &dyn Store,
    link: &EntityLink,
) -> Result<(LinkSnapshot, ActiveClashes), SyncError> {
    let mut snapshot = link.snapshot();
    let mut active = ActiveClashes::default();
    for conflict in store.active_conflicts(link.id).await? {
        active.ids.insert(conflict.field.clone(), conflict.id);
        match (conflict.status, conflict.choice()) {
            (ConflictStatus::Decided, Some(choice)) => {
                snapshot.decided.insert(
                    conflict.field,
                    PersonDecision {
                        crm_value: conflict.crm_value,
                        finance_value: conflict.finance_value,
                        choice,
                    },
                );
            }
            _ => {
                snapshot.held.insert(
                    conflict.field,
                    HeldClash {
                        crm_value: conflict.crm_value,
                        finance_value: conflict.finance_value,
                    },
                );
            }
        }
    }
    // An approval counts for the delete it was held for: a sync in between (the record
    // restored and synced again) makes it older than the link's last sync.
    let since_sync = |at: Option<chrono::DateTime<Utc>>| match (at, link.last_synced_at) {
        (Some(at), Some(synced)) => at > synced,
        (Some(_), None) => true,
        (None, _) => false,
    };
    snapshot.delete_approved = store
        .deletes_of(link.id)
        .await?
        .iter()
        .any(|d| d.status == crate::store::DeleteStatus::Approved && since_sync(d.decided_at));
    Ok((snapshot, active))
}

fn set_id(row: &mut EntityLink, system: System, id: &str) {
    match system {
        System::Crm => row.crm_id = Some(id.to_string()),
        System::Finance => row.finance_id = Some(id.to_string()),
    }
}

/// The same change always gets the same key (so a retry cannot write twice); a
/// different change, or the same content after a newer edit, gets another.
fn key_for(
    cx: &SyncContext<'_>,
    source: &SourceRecord,
    operation: &str,
    content: &FieldMap,
) -> String {
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
    cx: &SyncContext<'_>,
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

/// How the change was announced, for the head of its chain in the record's history.
fn announced(event: &ChangeEvent) -> Option<String> {
    let at = event
        .occurred_at
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    match event.trigger {
        Trigger::Webhook => Some(format!(
            "webhook from {} received: changed at {at}",
            event.system
        )),
        Trigger::Poll => Some(format!(
            "found by polling {}: changed at {at}",
            event.system
        )),
        Trigger::Manual | Trigger::Replay | Trigger::Retry => None,
    }
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
    SyncError::Store(crate::store::StoreError::Corrupt(
        "the decision needs a target record that was not fetched".into(),
    ))
}

fn missing_link() -> SyncError {
    SyncError::Store(crate::store::StoreError::Corrupt(
        "the decision needs a link that does not exist".into(),
    ))
}
