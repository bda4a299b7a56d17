//! Step one: load what the store knows of the record, then lock it and read it.
//!
//! The link comes first, in one query by the record's id on its side. An echo of
//! Tandem's own write is recognised from it alone, before any lock and without reading
//! the record: the announcement said Tandem's app made the change (HubSpot names the
//! app), or its time is exactly the version Tandem's own write produced on that side
//! (kept only when the system's answer showed the record as written, so a person's edit
//! folded into that version is never mistaken for the echo).
//!
//! Otherwise the record's lock is taken (one statement, which also answers whether the
//! link moved on since it was loaded), the record is read from its system, and the
//! link's held clashes are read only when it has any.

use std::collections::BTreeMap;
use std::time::Instant;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::super::runtime::SyncError;
use super::Change;
use crate::connectors::ExternalRecord;
use crate::domain::{
    ChangeEvent, ChangeKind, HeldClash, LinkSnapshot, PersonDecision, SourceRecord, Trigger,
};
use crate::store::{ConflictStatus, EntityLink, EntityLock, LinkKey, Store};

/// How many times the lock is moved to a record's canonical key before giving up; it
/// moves at most once or twice while a create is completing.
const LOCK_MOVES: usize = 4;

pub(super) enum Loaded {
    /// The echo of Tandem's own write, recognised without a lock or a read.
    Echo {
        link: Box<EntityLink>,
        why: &'static str,
    },
    /// Locked and read: ready to decide.
    Ready(Box<Ready>),
}

pub(super) struct Ready {
    pub lock: EntityLock,
    pub link: Option<EntityLink>,
    pub source: SourceRecord,
    /// When the source was read: a write back to it is checked if that was long ago.
    pub source_read_at: Instant,
    /// The link as the decision sees it (with its held clashes and decisions).
    pub snapshot: Option<LinkSnapshot>,
    pub active: ActiveClashes,
}

/// The ids of a link's held and decided conflicts, by field: what a sync updates in
/// place or withdraws.
#[derive(Default)]
pub(super) struct ActiveClashes {
    pub ids: BTreeMap<String, Uuid>,
}

pub(super) async fn load(cx: &Change<'_>) -> Result<Loaded, SyncError> {
    let event = cx.event;
    let own = cx
        .store
        .find_link(&event.pair, event.entity, event.system, &event.external_id)
        .await?;
    if let Some(link) = own {
        if let Some(why) = known_echo(event, &link) {
            return Ok(Loaded::Echo {
                link: Box::new(link),
                why,
            });
        }
        return Ok(Loaded::Ready(Box::new(locked(cx, Some(link)).await?)));
    }
    Ok(Loaded::Ready(Box::new(locked(cx, None).await?)))
}

/// Why `event` is the echo of Tandem's own write, told from the link alone; `None`
/// when that needs a read. A change a person or a job asked for, a delete, and a link
/// with clashes held (a decision may be waiting) always read.
fn known_echo(event: &ChangeEvent, link: &EntityLink) -> Option<&'static str> {
    let announced = matches!(event.trigger, Trigger::Webhook | Trigger::Poll);
    if !announced || event.kind != ChangeKind::Upsert || link.active_conflicts > 0 {
        return None;
    }
    if link.id_on(event.system) != Some(event.external_id.as_str()) {
        return None;
    }
    if event.by_tandem {
        return Some("echo of Tandem's own write, as the announcement says");
    }
    let written = instant(link.echo_on(event.system)?)?;
    (written.timestamp_millis() == event.occurred_at.timestamp_millis())
        .then_some("echo of Tandem's own write: the version it wrote")
}

fn instant(version: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(version)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// Locks the record under its canonical key (the id of the record its link started
/// from), so that events from both sides of one link, and the echo of a create still in
/// flight, are handled one at a time; then reads it. The key can only be known for
/// sure after reading (a record Tandem created names its origin); when it differs from
/// the one locked, the lock moves.
async fn locked(cx: &Change<'_>, mut link: Option<EntityLink>) -> Result<Ready, SyncError> {
    let event = cx.event;
    let own = LinkKey {
        pair: event.pair.clone(),
        entity: event.entity,
        system: event.system,
        external_id: event.external_id.clone(),
    };
    let mut key = canonical_key(event, link.as_ref(), None);
    for _ in 0..LOCK_MOVES {
        let waiting = crate::backlog::waiting(crate::backlog::Stage::Lock);
        let (lock, revision) = cx.store.lock_record(&key, Some(&own)).await?;
        drop(waiting);
        // Another change saved the record's link (or made one) between loading it and
        // taking the lock: load it again.
        if revision != link.as_ref().map(|l| l.revision) {
            link = cx
                .store
                .find_link(&event.pair, event.entity, event.system, &event.external_id)
                .await?;
        }
        let source_read_at = Instant::now();
        let source = match cx
            .pair
            .connector(event.system)
            .get(event.entity, &event.external_id)
            .await
        {
            Ok(source) => source,
            Err(err) => {
                lock.release().await?;
                return Err(err.into());
            }
        };
        // A record Tandem created names its origin: its link may not know it yet.
        if link.is_none() {
            if let Some(stamp) = source.as_ref().and_then(|s| s.stamp.as_deref()) {
                link = cx
                    .store
                    .find_link(&event.pair, event.entity, event.system.opposite(), stamp)
                    .await?;
            }
        }
        let canonical = canonical_key(event, link.as_ref(), source.as_ref());
        if canonical == key {
            let source = source_record(event, source);
            let (snapshot, active) = match &link {
                Some(link) => {
                    let (snapshot, active) = snapshot_of(cx.store, link, &source).await?;
                    (Some(snapshot), active)
                }
                None => (None, ActiveClashes::default()),
            };
            return Ok(Ready {
                lock,
                link,
                source,
                source_read_at,
                snapshot,
                active,
            });
        }
        lock.release().await?;
        key = canonical;
    }
    Err(SyncError::corrupt(&format!(
        "the lock for {} {} {} kept moving",
        event.entity, event.system, event.external_id
    )))
}

fn source_record(event: &ChangeEvent, fetched: Option<ExternalRecord>) -> SourceRecord {
    let (fields, version, stamp, field_versions) = match fetched {
        Some(record) => (
            record.fields,
            record.version,
            record.stamp,
            record.field_versions,
        ),
        None => (None, None, None, BTreeMap::new()),
    };
    SourceRecord {
        system: event.system,
        id: event.external_id.clone(),
        fields,
        version,
        stamp,
        field_versions,
    }
}

/// The link as the decision sees it: its row, and only when it has any, the clashes
/// held for a person and the decisions waiting; for a delete, whether a person
/// approved it since the last sync.
async fn snapshot_of(
    store: &dyn Store,
    link: &EntityLink,
    source: &SourceRecord,
) -> Result<(LinkSnapshot, ActiveClashes), SyncError> {
    let mut snapshot = link.snapshot();
    let mut active = ActiveClashes::default();
    if link.active_conflicts > 0 {
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
    }
    if source.fields.is_none() {
        // An approval counts for the delete it was held for: a sync in between (the
        // record restored and synced again) makes it older than the link's last sync.
        let since_sync = |at: Option<DateTime<Utc>>| match (at, link.last_synced_at) {
            (Some(at), Some(synced)) => at > synced,
            (Some(_), None) => true,
            (None, _) => false,
        };
        snapshot.delete_approved =
            store.deletes_of(link.id).await?.iter().any(|d| {
                d.status == crate::store::DeleteStatus::Approved && since_sync(d.decided_at)
            });
    }
    Ok((snapshot, active))
}

/// The lock key of a record: its pair and type, and the id of the record its link
/// started from (the CRM side when known).
pub(super) fn canonical_key(
    event: &ChangeEvent,
    link: Option<&EntityLink>,
    source: Option<&ExternalRecord>,
) -> String {
    let origin = match link {
        Some(link) => match (&link.crm_id, &link.finance_id) {
            (Some(crm), _) => format!("crm:{crm}"),
            (None, Some(finance)) => format!("finance:{finance}"),
            (None, None) => format!("{}:{}", event.system, event.external_id),
        },
        None => match source.and_then(|s| s.stamp.as_deref()) {
            Some(stamp) => format!("{}:{stamp}", event.system.opposite()),
            None => format!("{}:{}", event.system, event.external_id),
        },
    };
    format!("{}/{}/{origin}", event.pair, event.entity)
}
