//! One change through four steps that read as such:
//!
//! 1. **load** ([`load`]): the record's link in one query, and from it alone the echo
//!    of Tandem's own write; otherwise the record's lock (whose statement also says
//!    whether the link moved on meanwhile), the record itself, and the link's held
//!    clashes only when it has any;
//! 2. **decide**: the pure domain ([`crate::domain::decide`]), after reading the other
//!    side's record only when the decision needs it;
//! 3. **execute** ([`execute`]): the calls to the systems, each with its idempotency
//!    key;
//! 4. **commit** ([`commit`]): one transaction writes the link (at the revision it was
//!    loaded at), the log, the clashes, and ends the lock.
//!
//! On PostgreSQL an update of a linked record costs seven round trips, and its echo
//! two; `tests/it/round_trips.rs` holds each kind of change to its budget.

mod commit;
mod execute;
mod load;

use std::time::Instant;

use uuid::Uuid;

use super::runtime::{PairRuntime, SyncError};
use crate::connectors::{ExternalRecord, ReadAt};
use crate::domain::{
    decide as decide_pure, decide_without_target, ChangeEvent, DecisionInput, LinkSnapshot,
    SourceRecord, SyncDecision, SyncPolicy, TargetFound, TargetRecord,
};
use crate::store::{EntityLink, Outcome, Store};

/// One change being handled.
pub(super) struct Change<'a> {
    pub store: &'a dyn Store,
    pub pair: &'a PairRuntime,
    pub policy: &'a SyncPolicy,
    pub event: &'a ChangeEvent,
    pub attempt: u32,
    pub transaction_id: Uuid,
}

/// Loads, decides, executes and commits one change; answers its outcome.
pub(super) async fn run(cx: &Change<'_>) -> Result<Outcome, SyncError> {
    let started = Instant::now();
    let ready = match load::load(cx).await? {
        load::Loaded::Echo { link, why } => return commit::echo(cx, &link, why, started).await,
        load::Loaded::Ready(ready) => ready,
    };
    let load::Ready {
        lock,
        link,
        source,
        source_read_at,
        snapshot,
        active,
    } = *ready;
    let decided = decide(cx, &source, link.as_ref(), snapshot.as_ref()).await;
    let executed = match decided {
        Ok(decided) => {
            let source_read = ReadAt {
                version: source.version.clone(),
                at: source_read_at,
            };
            execute::execute(cx, &source, &source_read, link, decided, &active).await
        }
        Err(err) => Err(err),
    };
    match executed {
        Ok(executed) => commit::commit(cx, executed, lock, started).await,
        Err(err) => {
            lock.release().await?;
            Err(err)
        }
    }
}

/// The decision, and the other side's record when reading it was needed.
pub(super) struct Decided {
    pub decision: SyncDecision,
    pub target: Option<(TargetRecord, TargetFound)>,
    /// When the other side's record was read.
    pub target_read_at: Instant,
}

/// An echo, a stale version or a delete is decided without reading the other side;
/// anything else reads it (through the link, else by origin stamp, else by natural key)
/// and runs the whole decision.
async fn decide(
    cx: &Change<'_>,
    source: &SourceRecord,
    link: Option<&EntityLink>,
    snapshot: Option<&LinkSnapshot>,
) -> Result<Decided, SyncError> {
    let target_read_at = Instant::now();
    if let Some(decision) = decide_without_target(source, snapshot, cx.policy) {
        return Ok(Decided {
            decision,
            target: None,
            target_read_at,
        });
    }
    let target = find_target(cx, source, link).await?;
    let decision = decide_pure(DecisionInput {
        source,
        link: snapshot,
        target: target.as_ref().map(|(t, found)| (t, *found)),
        policy: cx.policy,
    });
    Ok(Decided {
        decision,
        target,
        target_read_at,
    })
}

/// The record on the other side: through the link, else by origin stamp, else by
/// natural key (unless that record is already linked to another).
async fn find_target(
    cx: &Change<'_>,
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
