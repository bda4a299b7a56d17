//! Conflicts waiting for (or resolved by) a person, and deletes held for approval.

use chrono::Utc;
use entity::{conflict, pending_delete};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, IntoActiveModel,
    QueryFilter, QueryOrder, QuerySelect,
};
use serde_json::Value;
use uuid::Uuid;

use super::{
    parse, Conflict, ConflictStatus, DeleteStatus, EntityLink, NewConflict, PendingDelete,
    StoreError, StoreResult,
};
use crate::domain::{PairId, System};

pub(super) async fn insert(
    db: &impl ConnectionTrait,
    link: &EntityLink,
    transaction_id: Uuid,
    new: &NewConflict,
) -> StoreResult<()> {
    let resolved = new.resolution.is_some();
    let row = conflict::ActiveModel {
        id: Set(Uuid::now_v7()),
        link_id: Set(link.id),
        pair: Set(link.pair.as_str().to_string()),
        entity_type: Set(link.entity.as_str().to_string()),
        field: Set(new.field.clone()),
        crm_value: Set(new.crm_value.clone()),
        finance_value: Set(new.finance_value.clone()),
        base_value: Set(new.base_value.clone()),
        policy: Set(new.policy.clone()),
        resolution: Set(new.resolution.clone()),
        resolved_value: Set(None),
        status: Set(if resolved {
            ConflictStatus::Resolved
        } else {
            ConflictStatus::Open
        }
        .as_str()
        .to_string()),
        transaction_id: Set(transaction_id),
        created_at: Set(Utc::now()),
        resolved_at: Set(resolved.then(Utc::now)),
    };
    conflict::Entity::insert(row)
        .exec_without_returning(db)
        .await?;
    Ok(())
}

pub(super) async fn open(db: &impl ConnectionTrait, limit: u64) -> StoreResult<Vec<Conflict>> {
    conflict::Entity::find()
        .filter(conflict::Column::Status.eq(ConflictStatus::Open.as_str()))
        .order_by_asc(conflict::Column::CreatedAt)
        .limit(limit)
        .all(db)
        .await?
        .into_iter()
        .map(conflict_from)
        .collect()
}

pub(super) async fn of_link(
    db: &impl ConnectionTrait,
    link_id: Uuid,
) -> StoreResult<Vec<Conflict>> {
    conflict::Entity::find()
        .filter(conflict::Column::LinkId.eq(link_id))
        .order_by_asc(conflict::Column::CreatedAt)
        .all(db)
        .await?
        .into_iter()
        .map(conflict_from)
        .collect()
}

pub(super) async fn deletes_of_link(
    db: &impl ConnectionTrait,
    link_id: Uuid,
) -> StoreResult<Vec<PendingDelete>> {
    pending_delete::Entity::find()
        .filter(pending_delete::Column::LinkId.eq(link_id))
        .order_by_asc(pending_delete::Column::CreatedAt)
        .all(db)
        .await?
        .into_iter()
        .map(delete_from)
        .collect()
}

pub(super) async fn resolve(
    db: &impl ConnectionTrait,
    id: Uuid,
    resolution: &str,
    value: Option<Value>,
) -> StoreResult<Conflict> {
    let row = conflict::Entity::find_by_id(id)
        .one(db)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("conflict {id}")))?;
    let mut active = row.into_active_model();
    active.resolution = Set(Some(resolution.to_string()));
    active.resolved_value = Set(value);
    active.status = Set(ConflictStatus::Resolved.as_str().to_string());
    active.resolved_at = Set(Some(Utc::now()));
    conflict_from(active.update(db).await?)
}

pub(super) async fn hold_delete(
    db: &impl ConnectionTrait,
    link: &EntityLink,
    source: System,
    external_id: &str,
) -> StoreResult<()> {
    let row = pending_delete::ActiveModel {
        id: Set(Uuid::now_v7()),
        link_id: Set(link.id),
        pair: Set(link.pair.as_str().to_string()),
        entity_type: Set(link.entity.as_str().to_string()),
        source_system: Set(source.as_str().to_string()),
        external_id: Set(external_id.to_string()),
        status: Set(DeleteStatus::Pending.as_str().to_string()),
        created_at: Set(Utc::now()),
        decided_at: Set(None),
    };
    pending_delete::Entity::insert(row)
        .exec_without_returning(db)
        .await?;
    Ok(())
}

pub(super) async fn pending_deletes(
    db: &impl ConnectionTrait,
    limit: u64,
) -> StoreResult<Vec<PendingDelete>> {
    pending_delete::Entity::find()
        .filter(pending_delete::Column::Status.eq(DeleteStatus::Pending.as_str()))
        .order_by_asc(pending_delete::Column::CreatedAt)
        .limit(limit)
        .all(db)
        .await?
        .into_iter()
        .map(delete_from)
        .collect()
}

pub(super) async fn decide_delete(
    db: &impl ConnectionTrait,
    id: Uuid,
    approve: bool,
) -> StoreResult<PendingDelete> {
    let row = pending_delete::Entity::find_by_id(id)
        .one(db)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("pending delete {id}")))?;
    let mut active = row.into_active_model();
    active.status = Set(if approve {
        DeleteStatus::Approved
    } else {
        DeleteStatus::Rejected
    }
    .as_str()
    .to_string());
    active.decided_at = Set(Some(Utc::now()));
    delete_from(active.update(db).await?)
}

fn conflict_from(model: conflict::Model) -> StoreResult<Conflict> {
    Ok(Conflict {
        id: model.id,
        link_id: model.link_id,
        pair: PairId::new(model.pair),
        entity: parse(&model.entity_type)?,
        field: model.field,
        crm_value: model.crm_value,
        finance_value: model.finance_value,
        base_value: model.base_value,
        policy: model.policy,
        resolution: model.resolution,
        resolved_value: model.resolved_value,
        status: parse(&model.status)?,
        transaction_id: model.transaction_id,
        created_at: model.created_at,
        resolved_at: model.resolved_at,
    })
}

fn delete_from(model: pending_delete::Model) -> StoreResult<PendingDelete> {
    Ok(PendingDelete {
        id: model.id,
        link_id: model.link_id,
        pair: PairId::new(model.pair),
        entity: parse(&model.entity_type)?,
        source_system: parse(&model.source_system)?,
        external_id: model.external_id,
        status: parse(&model.status)?,
        created_at: model.created_at,
        decided_at: model.decided_at,
    })
}
