//! The sync log: every decision and write, newest first when read back.

use async_trait::async_trait;

use super::reconnect::Repeat;
use super::SeaStore;
use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use entity::sync_log::{ActiveModel, Column, Entity, Model};
use sea_orm::sea_query::{Condition, Expr};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};
use uuid::Uuid;

use super::{
    parse, EntityLink, NewSyncLogEntry, Outcome, StoreResult, SyncLogEntry, SyncLogFilter,
};
use crate::domain::{EntityType, PairId, System};

pub(super) async fn append(
    db: &impl ConnectionTrait,
    entry: &NewSyncLogEntry,
) -> StoreResult<Uuid> {
    let (id, model) = model_of(entry, Utc::now());
    Entity::insert(model).exec_without_returning(db).await?;
    Ok(id)
}

/// Appends several entries in one statement, in order (their ids and times rise);
/// answers the last one's id.
pub(super) async fn append_all(
    db: &impl ConnectionTrait,
    entries: &[&NewSyncLogEntry],
) -> StoreResult<Option<Uuid>> {
    let now = Utc::now();
    let models: Vec<(Uuid, ActiveModel)> = entries
        .iter()
        .enumerate()
        .map(|(n, entry)| model_of(entry, now + chrono::Duration::microseconds(n as i64)))
        .collect();
    let last = models.last().map(|(id, _)| *id);
    if !models.is_empty() {
        Entity::insert_many(models.into_iter().map(|(_, m)| m))
            .exec_without_returning(db)
            .await?;
    }
    Ok(last)
}

fn model_of(entry: &NewSyncLogEntry, created_at: chrono::DateTime<Utc>) -> (Uuid, ActiveModel) {
    let id = Uuid::now_v7();
    let model = ActiveModel {
        id: Set(id),
        transaction_id: Set(entry.transaction_id),
        link_id: Set(entry.link_id),
        pair: Set(entry.pair.as_str().to_string()),
        entity_type: Set(entry.entity.as_str().to_string()),
        source_system: Set(entry.source_system.as_str().to_string()),
        external_id: Set(entry.external_id.clone()),
        direction: Set(entry.direction.map(|d| d.as_str().to_string())),
        trigger: Set(entry.trigger.as_str().to_string()),
        outcome: Set(entry.outcome.as_str().to_string()),
        detail: Set(entry.detail.clone()),
        source_snapshot: Set(entry.source_snapshot.clone()),
        target_before: Set(entry.target_before.clone()),
        target_after: Set(entry.target_after.clone()),
        request: Set(entry.request.clone()),
        response: Set(entry.response.clone()),
        status_code: Set(entry.status_code.map(i32::from)),
        error: Set(entry.error.clone()),
        attempt: Set(entry.attempt as i32),
        duration_ms: Set(entry.duration_ms as i64),
        created_at: Set(created_at),
    };
    (id, model)
}

pub(super) async fn history(
    db: &impl ConnectionTrait,
    pair: &PairId,
    entity: EntityType,
    system: System,
    external_id: &str,
    link: Option<&EntityLink>,
    limit: u64,
) -> StoreResult<Vec<SyncLogEntry>> {
    // Entries written before the link existed name only the record's id on its side.
    let mut by_record = Condition::any().add(
        Condition::all()
            .add(Column::SourceSystem.eq(system.as_str()))
            .add(Column::ExternalId.eq(external_id)),
    );
    if let Some(link) = link {
        by_record = by_record.add(Column::LinkId.eq(link.id));
        for side in [System::Crm, System::Finance] {
            if let Some(id) = link.id_on(side) {
                by_record = by_record.add(
                    Condition::all()
                        .add(Column::SourceSystem.eq(side.as_str()))
                        .add(Column::ExternalId.eq(id)),
                );
            }
        }
    }
    Entity::find()
        .filter(Column::Pair.eq(pair.as_str()))
        .filter(Column::EntityType.eq(entity.as_str()))
        .filter(by_record)
        .order_by_desc(Column::CreatedAt)
        .order_by_desc(Column::Id)
        .limit(limit)
        .all(db)
        .await?
        .into_iter()
        .map(from_model)
        .collect()
}

pub(super) async fn query(
    db: &impl ConnectionTrait,
    filter: &SyncLogFilter,
) -> StoreResult<Vec<SyncLogEntry>> {
    let mut select = Entity::find();
    if let Some(pair) = &filter.pair {
        select = select.filter(Column::Pair.eq(pair.as_str()));
    }
    if let Some(entity) = filter.entity {
        select = select.filter(Column::EntityType.eq(entity.as_str()));
    }
    if let Some(system) = filter.system {
        select = select.filter(Column::SourceSystem.eq(system.as_str()));
    }
    if let Some(outcome) = filter.outcome {
        select = select.filter(Column::Outcome.eq(outcome.as_str()));
    }
    if let Some(since) = filter.since {
        select = select.filter(Column::CreatedAt.gte(since));
    }
    if let Some(until) = filter.until {
        select = select.filter(Column::CreatedAt.lt(until));
    }
    select
        .order_by_desc(Column::CreatedAt)
        .order_by_desc(Column::Id)
        .limit(filter.limit.max(1))
        .offset(filter.offset)
        .all(db)
        .await?
        .into_iter()
        .map(from_model)
        .collect()
}

pub(super) async fn count_outcomes_since(
    db: &impl ConnectionTrait,
    since: DateTime<Utc>,
) -> StoreResult<BTreeMap<Outcome, u64>> {
    let rows: Vec<(String, i64)> = Entity::find()
        .select_only()
        .column(Column::Outcome)
        .column_as(Expr::col(Column::Id).count(), "count")
        .filter(Column::CreatedAt.gte(since))
        .group_by(Column::Outcome)
        .into_tuple()
        .all(db)
        .await?;
    rows.into_iter()
        .map(|(outcome, count)| Ok((parse(&outcome)?, count.max(0) as u64)))
        .collect()
}

fn from_model(model: Model) -> StoreResult<SyncLogEntry> {
    Ok(SyncLogEntry {
        id: model.id,
        created_at: model.created_at,
        entry: NewSyncLogEntry {
            transaction_id: model.transaction_id,
            link_id: model.link_id,
            pair: PairId::new(model.pair),
            entity: parse(&model.entity_type)?,
            source_system: parse(&model.source_system)?,
            external_id: model.external_id,
            direction: model.direction.as_deref().map(parse).transpose()?,
            trigger: parse_trigger(&model.trigger)?,
            outcome: parse(&model.outcome)?,
            detail: model.detail,
            source_snapshot: model.source_snapshot,
            target_before: model.target_before,
            target_after: model.target_after,
            request: model.request,
            response: model.response,
            status_code: model.status_code.and_then(|code| u16::try_from(code).ok()),
            error: model.error,
            attempt: model.attempt.max(0) as u32,
            duration_ms: model.duration_ms.max(0) as u64,
        },
    })
}

fn parse_trigger(value: &str) -> StoreResult<crate::domain::Trigger> {
    serde_json::from_value(serde_json::Value::String(value.to_string()))
        .map_err(|_| super::StoreError::Corrupt(format!("unknown trigger `{value}`")))
}

/// The sync log: every decision, with its reason, newest first when read.
#[async_trait]
pub trait SyncLogStore: Send + Sync {
    async fn append_log(&self, entry: NewSyncLogEntry) -> StoreResult<Uuid>;
    /// Appends several entries, in order, in one statement.
    async fn append_logs(&self, entries: &[NewSyncLogEntry]) -> StoreResult<()>;
    /// Everything recorded for a record, newest first: by its link (both sides) when
    /// it has one, else by its id on the given side.
    async fn record_history(
        &self,
        pair: &PairId,
        entity: EntityType,
        system: System,
        external_id: &str,
        limit: u64,
    ) -> StoreResult<Vec<SyncLogEntry>>;
    async fn query_logs(&self, filter: &SyncLogFilter) -> StoreResult<Vec<SyncLogEntry>>;
    async fn count_outcomes_since(
        &self,
        since: DateTime<Utc>,
    ) -> StoreResult<BTreeMap<Outcome, u64>>;
}

#[async_trait]
impl SyncLogStore for SeaStore {
    async fn append_log(&self, entry: NewSyncLogEntry) -> StoreResult<Uuid> {
        self.run(Repeat::IfNotRun, || append(&self.db, &entry))
            .await
    }

    async fn append_logs(&self, entries: &[NewSyncLogEntry]) -> StoreResult<()> {
        let entries: Vec<&NewSyncLogEntry> = entries.iter().collect();
        self.run(Repeat::IfNotRun, || async {
            append_all(&self.db, &entries).await.map(|_| ())
        })
        .await
    }

    async fn record_history(
        &self,
        pair: &PairId,
        entity: EntityType,
        system: System,
        external_id: &str,
        limit: u64,
    ) -> StoreResult<Vec<SyncLogEntry>> {
        self.run(Repeat::Always, || async {
            let link = super::links::find(&self.db, pair, entity, system, external_id).await?;
            history(
                &self.db,
                pair,
                entity,
                system,
                external_id,
                link.as_ref(),
                limit,
            )
            .await
        })
        .await
    }

    async fn query_logs(&self, filter: &SyncLogFilter) -> StoreResult<Vec<SyncLogEntry>> {
        self.run(Repeat::Always, || query(&self.db, filter)).await
    }

    async fn count_outcomes_since(
        &self,
        since: DateTime<Utc>,
    ) -> StoreResult<BTreeMap<Outcome, u64>> {
        self.run(Repeat::Always, || count_outcomes_since(&self.db, since))
            .await
    }
}
