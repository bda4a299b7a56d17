//! The poller: finds changes that no webhook announced (dropped, or never configured).
//!
//! Per pair, system and entity type it lists what changed since its stored cursor
//! minus a look-back overlap, so a record written while the previous poll ran is never
//! missed; publishes a change event for each (event ids are deterministic, and receipts
//! keep overlapping polls from publishing one version twice); and advances the cursor
//! only once every publish was confirmed. A lease in the store lets one process at a
//! time poll a given cursor.
//!
//! A listed record whose link already holds what was listed (the echo of a sync,
//! found again by the next poll, or a version older than the one synced) is not
//! published: the sync core would read it again only to skip it, and on a
//! rate-limited system (Xero's 60 calls a minute) that read is budget live changes
//! wait for. Only content the link already holds is passed over, so an edit a
//! dropped webhook did not announce is published as before.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use crate::bus::{Bus, BusMessage, Lane};
use crate::connectors::{Connector, ConnectorError, ExternalRecord};
use crate::domain::{
    decide_without_target, ChangeEvent, ChangeKind, EntityType, LinkSnapshot, PairId, SkipReason,
    SourceRecord, SyncDecision, SyncPolicy, System, Trigger,
};
use crate::store::{Store, StoreError};

/// One cursor to poll.
#[derive(Clone)]
pub struct PollTarget {
    pub pair: PairId,
    pub system: System,
    pub entity: EntityType,
    pub connector: Arc<dyn Connector>,
    pub interval: Duration,
    pub overlap: Duration,
    /// The pair's policy for the entity type: what a link's checksums cover.
    pub policy: SyncPolicy,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PollReport {
    Polled {
        published: usize,
    },
    /// Another process holds this cursor's lease.
    LeasedElsewhere,
}

#[derive(Debug, thiserror::Error)]
pub enum PollError {
    #[error(transparent)]
    Connector(#[from] ConnectorError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("publishing failed; the cursor stays where it was: {0}")]
    Bus(#[from] crate::bus::BusError),
}

pub struct Poller {
    store: Arc<dyn Store>,
    bus: Arc<dyn Bus>,
    /// This process, as the holder of cursor leases.
    owner: String,
}

impl Poller {
    pub fn new(store: Arc<dyn Store>, bus: Arc<dyn Bus>) -> Self {
        Self {
            store,
            bus,
            owner: format!("tandem-{}", uuid::Uuid::new_v4()),
        }
    }

    /// Polls every target on its interval until `shutdown`, then gives up its leases.
    pub async fn run(self: Arc<Self>, targets: Vec<PollTarget>, shutdown: CancellationToken) {
        let tasks: Vec<_> = targets
            .into_iter()
            .map(|target| {
                let poller = self.clone();
                let shutdown = shutdown.clone();
                tokio::spawn(async move {
                    let mut ticks = tokio::time::interval(target.interval);
                    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                    loop {
                        tokio::select! {
                            _ = shutdown.cancelled() => break,
                            _ = ticks.tick() => {}
                        }
                        if let Err(err) = poller.poll_once(&target).await {
                            tracing::warn!(pair = %target.pair, system = %target.system, entity = %target.entity, error = %err, "poll failed; trying again next interval");
                        }
                    }
                    let _ = poller
                        .store
                        .release_cursor_lease(&target.pair, target.system, target.entity, &poller.owner)
                        .await;
                })
            })
            .collect();
        for task in tasks {
            let _ = task.await;
        }
    }

    /// One round for one cursor.
    pub async fn poll_once(&self, target: &PollTarget) -> Result<PollReport, PollError> {
        let (pair, system, entity) = (&target.pair, target.system, target.entity);
        // The lease outlives a slow round, and lapses if this process dies.
        let lease = target.interval * 2 + Duration::from_secs(30);
        if !self
            .store
            .try_lease_cursor(pair, system, entity, &self.owner, lease)
            .await?
        {
            return Ok(PollReport::LeasedElsewhere);
        }
        let cursor = self
            .store
            .cursor(pair, system, entity)
            .await?
            .and_then(|c| DateTime::parse_from_rfc3339(&c).ok())
            .map(|c| c.with_timezone(&Utc));
        let overlap = chrono::Duration::from_std(target.overlap).unwrap_or_default();
        let since = cursor.map(|c| c - overlap);
        let mut newest = cursor;
        let mut published = 0;
        let mut page: Option<String> = None;
        loop {
            let changes = target
                .connector
                .list_changed(entity, since, page.as_deref())
                .await?;
            published += self.publish(target, &changes.records).await?;
            for record in &changes.records {
                let version = record
                    .version
                    .as_deref()
                    .and_then(|v| DateTime::parse_from_rfc3339(v).ok())
                    .map(|v| v.with_timezone(&Utc));
                newest = newest.max(version);
            }
            // Pages come oldest change first, so what is not listed yet changed at or
            // after the newest version seen: the cursor moves page by page. A listing
            // cut short (a rate limit, a restart) resumes where it stopped instead of
            // spending the connection's budget on pages it already published.
            if newest != cursor {
                if let Some(newest) = newest {
                    self.store
                        .set_cursor(pair, system, entity, &newest.to_rfc3339())
                        .await?;
                }
            }
            match changes.next {
                Some(next) => page = Some(next),
                None => break,
            }
        }
        Ok(PollReport::Polled { published })
    }

    /// Publishes one event per record version not published before.
    async fn publish(
        &self,
        target: &PollTarget,
        records: &[ExternalRecord],
    ) -> Result<usize, PollError> {
        let synced = self.already_synced(target, records).await?;
        let events: Vec<ChangeEvent> = records
            .iter()
            .filter(|record| !synced.contains(record.id.as_str()))
            .map(|record| ChangeEvent {
                event_id: format!(
                    "poll:{}:{}:{}:{}",
                    target.system,
                    target.entity,
                    record.id,
                    record.version.as_deref().unwrap_or("-")
                ),
                pair: target.pair.clone(),
                system: target.system,
                entity: target.entity,
                external_id: record.id.clone(),
                kind: if record.fields.is_some() {
                    ChangeKind::Upsert
                } else {
                    ChangeKind::Delete
                },
                occurred_at: record
                    .version
                    .as_deref()
                    .and_then(|v| DateTime::parse_from_rfc3339(v).ok())
                    .map_or_else(Utc::now, |v| v.with_timezone(&Utc)),
                trigger: Trigger::Poll,
                job_id: None,
                transaction_id: None,
                by_tandem: false,
            })
            .collect();
        let keys: Vec<String> = events.iter().map(|e| e.event_id.clone()).collect();
        // One statement for the page's receipts, not a round trip per record.
        let new: HashSet<String> = self
            .store
            .record_receipts(&target.pair, target.system, &keys)
            .await?
            .into_iter()
            .collect();
        let mut taken = Vec::new();
        let mut fresh = Vec::new();
        for event in events {
            if new.contains(&event.event_id) && !taken.contains(&event.event_id) {
                taken.push(event.event_id.clone());
                fresh.push(BusMessage::ChangeV1(event));
            }
        }
        if !synced.is_empty() {
            tracing::debug!(
                pair = %target.pair,
                system = %target.system,
                entity = %target.entity,
                already_synced = synced.len(),
                "listed records the links already hold were not published"
            );
        }
        if fresh.is_empty() {
            return Ok(0);
        }
        if let Err(err) = self.bus.publish_batch(Lane::Live, &fresh).await {
            let _ = self
                .store
                .forget_receipts(&target.pair, target.system, &taken)
                .await;
            return Err(err.into());
        }
        crate::metrics::event_received(
            target.pair.as_str(),
            target.system.as_str(),
            "poll",
            fresh.len() as u64,
        );
        Ok(fresh.len())
    }

    /// The ids of listed records whose link already holds the listed content, by
    /// the same rules the sync core skips an echo or a stale version with.
    async fn already_synced(
        &self,
        target: &PollTarget,
        records: &[ExternalRecord],
    ) -> Result<HashSet<String>, PollError> {
        let listed: Vec<String> = records
            .iter()
            .filter(|record| record.fields.is_some())
            .map(|record| record.id.clone())
            .collect();
        if listed.is_empty() {
            return Ok(HashSet::new());
        }
        let links: HashMap<String, LinkSnapshot> = self
            .store
            .find_links(&target.pair, target.entity, target.system, &listed)
            .await?
            .into_iter()
            .filter_map(|link| Some((link.id_on(target.system)?.to_string(), link.snapshot())))
            .collect();
        Ok(records
            .iter()
            .filter(|record| {
                let Some(link) = links.get(&record.id) else {
                    return false;
                };
                let source = SourceRecord {
                    system: target.system,
                    id: record.id.clone(),
                    fields: record.fields.clone(),
                    version: record.version.clone(),
                    stamp: record.stamp.clone(),
                    field_versions: record.field_versions.clone(),
                };
                matches!(
                    decide_without_target(&source, Some(link), &target.policy),
                    Some(SyncDecision::Skip(SkipReason::Echo | SkipReason::Stale))
                )
            })
            .map(|record| record.id.clone())
            .collect())
    }
}
