//! Links between a record in the CRM and one in the finance system.

use entity::entity_link::{ActiveModel, Column, Entity, Model};
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, SqlErr,
};
use uuid::Uuid;

use super::{parse, EntityLink, StoreError, StoreResult, SyncStatus};
use crate::domain::{EntityType, PairId, System};

pub(super) async fn find(
    db: &impl ConnectionTrait,
    pair: &PairId,
    entity: EntityType,
    system: System,
    external_id: &str,
) -> StoreResult<Option<EntityLink>> {
    let id_column = match system {
        System::Crm => Column::CrmId,
        System::Finance => Column::FinanceId,
    };
    Entity::find()
        .filter(Column::Pair.eq(pair.as_str()))
        .filter(Column::EntityType.eq(entity.as_str()))
        .filter(id_column.eq(external_id))
        .one(db)
        .await?
        .map(from_model)
        .transpose()
}

/// The links of the given records on one side, in one query per thousand ids.
pub(super) async fn find_many(
    db: &impl ConnectionTrait,
    pair: &PairId,
    entity: EntityType,
    system: System,
    external_ids: &[String],
) -> StoreResult<Vec<EntityLink>> {
    let id_column = match system {
        System::Crm => Column::CrmId,
        System::Finance => Column::FinanceId,
    };
    let mut found = Vec::new();
    // Well under SQLite's and PostgreSQL's limits on bound parameters.
    for ids in external_ids.chunks(1000) {
        let models = Entity::find()
            .filter(Column::Pair.eq(pair.as_str()))
            .filter(Column::EntityType.eq(entity.as_str()))
            .filter(id_column.is_in(ids.iter().map(String::as_str)))
            .all(db)
            .await?;
        for model in models {
            found.push(from_model(model)?);
        }
    }
    Ok(found)
}

pub(super) async fn get(db: &impl ConnectionTrait, id: Uuid) -> StoreResult<Option<EntityLink>> {
    Entity::find_by_id(id)
        .one(db)
        .await?
        .map(from_model)
        .transpose()
}

pub(super) async fn insert(db: &impl ConnectionTrait, link: &EntityLink) -> StoreResult<()> {
    Entity::insert(to_active(link))
        .exec_without_returning(db)
        .await
        .map_err(|err| match err.sql_err() {
            Some(SqlErr::UniqueConstraintViolation(detail)) => StoreError::AlreadyLinked(detail),
            _ => StoreError::Database(err),
        })?;
    Ok(())
}

/// Writes the link as it stands, inserting it if it is new.
pub(super) async fn save(db: &impl ConnectionTrait, link: &EntityLink) -> StoreResult<()> {
    let mut link = link.clone();
    link.updated_at = chrono::Utc::now();
    Entity::insert(to_active(&link))
        .on_conflict(
            OnConflict::column(Column::Id)
                .update_columns([
                    Column::CrmId,
                    Column::FinanceId,
                    Column::State,
                    Column::SyncStatus,
                    Column::CrmChecksum,
                    Column::FinanceChecksum,
                    Column::CrmVersion,
                    Column::FinanceVersion,
                    Column::BaseSnapshot,
                    Column::LastTransactionId,
                    Column::LastSyncedAt,
                    Column::LastDirection,
                    Column::LastError,
                    Column::ArchivedAt,
                    Column::DeletedAt,
                    Column::UpdatedAt,
                ])
                .to_owned(),
        )
        .exec_without_returning(db)
        .await
        .map_err(|err| match err.sql_err() {
            Some(SqlErr::UniqueConstraintViolation(detail)) => StoreError::AlreadyLinked(detail),
            _ => StoreError::Database(err),
        })?;
    Ok(())
}

pub(super) async fn with_status(
    db: &impl ConnectionTrait,
    status: SyncStatus,
    limit: u64,
    offset: u64,
) -> StoreResult<Vec<EntityLink>> {
    Entity::find()
        .filter(Column::SyncStatus.eq(status.as_str()))
        .order_by_desc(Column::UpdatedAt)
        .limit(limit)
        .offset(offset)
        .all(db)
        .await?
        .into_iter()
        .map(from_model)
        .collect()
}

pub(super) async fn of_pair(
    db: &impl ConnectionTrait,
    pair: &PairId,
) -> StoreResult<Vec<EntityLink>> {
    Entity::find()
        .filter(Column::Pair.eq(pair.as_str()))
        .order_by_asc(Column::Id)
        .all(db)
        .await?
        .into_iter()
        .map(from_model)
        .collect()
}

fn to_active(link: &EntityLink) -> ActiveModel {
    ActiveModel {
        id: Set(link.id),
        pair: Set(link.pair.as_str().to_string()),
        entity_type: Set(link.entity.as_str().to_string()),
        crm_id: Set(link.crm_id.clone()),
        finance_id: Set(link.finance_id.clone()),
        state: Set(link.state.as_str().to_string()),
        sync_status: Set(link.sync_status.as_str().to_string()),
        crm_checksum: Set(link.crm_checksum.clone()),
        finance_checksum: Set(link.finance_checksum.clone()),
        crm_version: Set(link.crm_version.clone()),
        finance_version: Set(link.finance_version.clone()),
        base_snapshot: Set(link.base_snapshot.clone()),
        last_transaction_id: Set(link.last_transaction_id),
        last_synced_at: Set(link.last_synced_at),
        last_direction: Set(link.last_direction.map(|d| d.as_str().to_string())),
        last_error: Set(link.last_error.clone()),
        archived_at: Set(link.archived_at),
        deleted_at: Set(link.deleted_at),
        created_at: Set(link.created_at),
        updated_at: Set(link.updated_at),
    }
}

fn from_model(model: Model) -> StoreResult<EntityLink> {
    Ok(EntityLink {
        id: model.id,
        pair: PairId::new(model.pair),
        entity: parse(&model.entity_type)?,
        crm_id: model.crm_id,
        finance_id: model.finance_id,
        state: parse(&model.state)?,
        sync_status: parse(&model.sync_status)?,
        crm_checksum: model.crm_checksum,
        finance_checksum: model.finance_checksum,
        crm_version: model.crm_version,
        finance_version: model.finance_version,
        base_snapshot: model.base_snapshot,
        last_transaction_id: model.last_transaction_id,
        last_synced_at: model.last_synced_at,
        last_direction: model.last_direction.as_deref().map(parse).transpose()?,
        last_error: model.last_error,
        archived_at: model.archived_at,
        deleted_at: model.deleted_at,
        created_at: model.created_at,
        updated_at: model.updated_at,
    })
}
