//! Step four: write what the change did in one go: the link (at the revision it was
//! loaded at), the log entries (how the change was announced, and what was done), the
//! clashes, a held delete, and the end of the record's lock, in one transaction. A
//! skip that left the link as it was only logs: one statement.

use std::time::Instant;

use super::super::runtime::SyncError;
use super::execute::Executed;
use super::Change;
use crate::domain::{ChangeEvent, Trigger};
use crate::store::{EntityLink, EntityLock, NewSyncLogEntry, Outcome, SyncCommit};

pub(super) async fn commit(
    cx: &Change<'_>,
    executed: Executed,
    lock: EntityLock,
    started: Instant,
) -> Result<Outcome, SyncError> {
    let Executed {
        link,
        mut log,
        conflicts,
        withdrawn,
        hold_delete,
    } = executed;
    log.duration_ms = started.elapsed().as_millis() as u64;
    let outcome = log.outcome;
    let announced = announcement(cx.event, log.transaction_id, log.link_id);
    cx.store
        .commit_and_release(
            SyncCommit {
                link,
                log,
                conflicts,
                withdrawn,
                link_status: None,
                hold_delete,
                announced,
            },
            lock,
        )
        .await?;
    Ok(outcome)
}

/// The echo of Tandem's own write, known from the link alone: logged under the write's
/// transaction (a record's history reads as one chain), with no lock taken and nothing
/// read.
pub(super) async fn echo(
    cx: &Change<'_>,
    link: &EntityLink,
    why: &str,
    started: Instant,
) -> Result<Outcome, SyncError> {
    let transaction_id = link.last_transaction_id.unwrap_or(cx.transaction_id);
    let mut log = NewSyncLogEntry::for_event(transaction_id, cx.event, Outcome::Skipped);
    log.attempt = cx.attempt;
    log.link_id = Some(link.id);
    log.detail = Some(why.to_string());
    log.duration_ms = started.elapsed().as_millis() as u64;
    let logs: Vec<NewSyncLogEntry> = announcement(cx.event, transaction_id, Some(link.id))
        .into_iter()
        .chain([log])
        .collect();
    cx.store.append_logs(&logs).await?;
    Ok(Outcome::Skipped)
}

/// How the change was announced, for the head of its chain in the record's history.
fn announcement(
    event: &ChangeEvent,
    transaction_id: uuid::Uuid,
    link_id: Option<uuid::Uuid>,
) -> Option<NewSyncLogEntry> {
    let at = event
        .occurred_at
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let detail = match event.trigger {
        Trigger::Webhook => format!("webhook from {} received: changed at {at}", event.system),
        Trigger::Poll => format!("found by polling {}: changed at {at}", event.system),
        Trigger::Manual | Trigger::Replay | Trigger::Retry => return None,
    };
    let mut received = NewSyncLogEntry::for_event(transaction_id, event, Outcome::Received);
    received.link_id = link_id;
    received.detail = Some(detail);
    Some(received)
}
