//! Conflicts waiting for (or resolved by) a person, and deletes held for approval.

use async_trait::async_trait;

use super::reconnect::Repeat;
use super::SeaStore;
use chrono::Utc;
use entity::{conflict, pending_delete};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, IntoActiveModel,
    PaginatorTrait, QueryFilter, QueryOrder, QuerySelect,
};
use uuid::Uuid;

use super::{
    parse, stored_choice, Conflict, ConflictState, ConflictStatus, ConflictWrite, DecidedBy,
    DeleteStatus, EntityLink, PendingDelete, StoreError, StoreResult,
};
use crate::domain::{Choice, PairId, System};

/// Records one clash of a sync: a new row, or the field's held or decided row updated
/// in place. An update only touches a row still in the state the sync loaded it in: a
/// person who decided meanwhile is not overwritten (the next sync sees the decision).
pub(super) async fn write(
    db: &impl ConnectionTrait,
    link: &EntityLink,
    transaction_id: Uuid,
    write: &ConflictWrite,
) -> StoreResult<()> {
    let now = Utc::now();
    let (status, decided_by, resolution, resolved_at, applied_at) = match write.state {
        ConflictState::Held => (ConflictStatus::Open, None, None, None, None),
        ConflictState::ResolvedByPolicy(side) => (
            ConflictStatus::Resolved,
            Some(DecidedBy::Policy),
            Some(side.as_str().to_string()),
            Some(now),
            Some(now),
        ),
        ConflictState::Applied => (ConflictStatus::Resolved, None, None, None, Some(now)),
    };
    let Some(id) = write.existing else {
        let row = conflict::ActiveModel {
            id: Set(Uuid::now_v7()),
            link_id: Set(link.id),
            pair: Set(link.pair.as_str().to_string()),
            entity_type: Set(link.entity.as_str().to_string()),
            field: Set(write.field.clone()),
            crm_value: Set(write.crm_value.clone()),
            finance_value: Set(write.finance_value.clone()),
            base_value: Set(write.base_value.clone()),
            policy: Set(write.policy.clone()),
            resolution: Set(resolution),
            resolved_value: Set(None),
            status: Set(status.as_str().to_string()),
            transaction_id: Set(transaction_id),
            created_at: Set(now),
            resolved_at: Set(resolved_at),
            decided_by: Set(decided_by.map(|d| d.as_str().to_string())),
            applied_at: Set(applied_at),
        };
        conflict::Entity::insert(row)
            .exec_without_returning(db)
            .await?;
        return Ok(());
    };
    let mut update = conflict::Entity::update_many()
        .col_expr(conflict::Column::Status, Expr::value(status.as_str()))
        .col_expr(conflict::Column::AppliedAt, Expr::value(applied_at))
        .filter(conflict::Column::Id.eq(id));
    update = match write.state {
        ConflictState::Applied => {
            update.filter(conflict::Column::Status.eq(ConflictStatus::Decided.as_str()))
        }
        ConflictState::Held | ConflictState::ResolvedByPolicy(_) => update
            .col_expr(
                conflict::Column::CrmValue,
                Expr::value(write.crm_value.clone()),
            )
            .col_expr(
                conflict::Column::FinanceValue,
                Expr::value(write.finance_value.clone()),
            )
            .col_expr(conflict::Column::Resolution, Expr::value(resolution))
            .col_expr(conflict::Column::ResolvedAt, Expr::value(resolved_at))
            .col_expr(
                conflict::Column::DecidedBy,
                Expr::value(decided_by.map(|d| d.as_str().to_string())),
            )
            .filter(conflict::Column::Status.eq(ConflictStatus::Open.as_str())),
    };
    update.exec(db).await?;
    Ok(())
}

/// Ends held or decided conflicts that were never applied.
pub(super) async fn withdraw(db: &impl ConnectionTrait, ids: &[Uuid]) -> StoreResult<()> {
    if ids.is_empty() {
        return Ok(());
    }
    conflict::Entity::update_many()
        .col_expr(
            conflict::Column::Status,
            Expr::value(ConflictStatus::Withdrawn.as_str()),
        )
        .filter(conflict::Column::Id.is_in(ids.iter().copied()))
        .filter(conflict::Column::Status.is_in(ACTIVE))
        .exec(db)
        .await?;
    Ok(())
}

/// How many conflicts are held for a person.
pub(super) async fn count_open(db: &impl ConnectionTrait) -> StoreResult<u64> {
    Ok(conflict::Entity::find()
        .filter(conflict::Column::Status.eq(ConflictStatus::Open.as_str()))
        .count(db)
        .await?)
}

/// The statuses of a conflict that still matters to the next sync.
const ACTIVE: [&str; 2] = ["open", "decided"];

/// The held and decided conflicts of a link: what its next sync must respect.
pub(super) async fn active_of_link(
    db: &impl ConnectionTrait,
    link_id: Uuid,
) -> StoreResult<Vec<Conflict>> {
    conflict::Entity::find()
        .filter(conflict::Column::LinkId.eq(link_id))
        .filter(conflict::Column::Status.is_in(ACTIVE))
        .all(db)
        .await?
        .into_iter()
        .map(conflict_from)
        .collect()
}

/// Conflicts newest first, of one status or all.
pub(super) async fn list(
    db: &impl ConnectionTrait,
    status: Option<ConflictStatus>,
    limit: u64,
    offset: u64,
) -> StoreResult<Vec<Conflict>> {
    let mut query = conflict::Entity::find();
    if let Some(status) = status {
        query = query.filter(conflict::Column::Status.eq(status.as_str()));
    }
    query
        .order_by_desc(conflict::Column::CreatedAt)
        .order_by_desc(conflict::Column::Id)
        .limit(limit)
        .offset(offset)
        .all(db)
        .await?
        .into_iter()
        .map(conflict_from)
        .collect()
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

/// A person's decision on a held conflict, applied at the record's next sync. Only a
/// conflict still held can be decided: a second decision, or one on a conflict the
/// policy resolved or that ended, is refused.
pub(super) async fn decide(
    db: &impl ConnectionTrait,
    id: Uuid,
    choice: &Choice,
) -> StoreResult<Conflict> {
    let (resolution, value) = stored_choice(choice);
    let decided = conflict::Entity::update_many()
        .col_expr(
            conflict::Column::Status,
            Expr::value(ConflictStatus::Decided.as_str()),
        )
        .col_expr(
            conflict::Column::DecidedBy,
            Expr::value(DecidedBy::Person.as_str()),
        )
        .col_expr(conflict::Column::Resolution, Expr::value(resolution))
        .col_expr(conflict::Column::ResolvedValue, Expr::value(value))
        .col_expr(conflict::Column::ResolvedAt, Expr::value(Some(Utc::now())))
        .filter(conflict::Column::Id.eq(id))
        .filter(conflict::Column::Status.eq(ConflictStatus::Open.as_str()))
        .exec(db)
        .await?
        .rows_affected;
    let row = conflict::Entity::find_by_id(id)
        .one(db)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("conflict {id}")))?;
    let conflict = conflict_from(row)?;
    if decided == 0 {
        return Err(StoreError::AlreadyDecided(format!(
            "conflict {id} is {}, not held for a person",
            conflict.status
        )));
    }
    Ok(conflict)
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
        decided_by: model.decided_by.as_deref().map(parse).transpose()?,
        applied_at: model.applied_at,
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

/// Conflicts and deletes held for a person, and their decisions.
#[async_trait]
pub trait ConflictStore: Send + Sync {
    /// Every conflict recorded for a link, whatever its status, oldest first.
    async fn conflicts_of(&self, link_id: Uuid) -> StoreResult<Vec<Conflict>>;
    /// The conflicts of a link held for a person or decided and not yet applied.
    async fn active_conflicts(&self, link_id: Uuid) -> StoreResult<Vec<Conflict>>;
    /// Conflicts newest first, of one status or all.
    async fn list_conflicts(
        &self,
        status: Option<ConflictStatus>,
        limit: u64,
        offset: u64,
    ) -> StoreResult<Vec<Conflict>>;
    /// Every held delete recorded for a link, oldest first.
    async fn deletes_of(&self, link_id: Uuid) -> StoreResult<Vec<PendingDelete>>;
    async fn open_conflicts(&self, limit: u64) -> StoreResult<Vec<Conflict>>;
    /// Records a person's choice for a held conflict; `AlreadyDecided` when it is not
    /// held (any more). It is applied at the record's next sync, if the values still
    /// are the ones it was made for.
    async fn resolve_conflict(&self, id: Uuid, choice: &Choice) -> StoreResult<Conflict>;
    async fn pending_deletes(&self, limit: u64) -> StoreResult<Vec<PendingDelete>>;
    async fn decide_delete(&self, id: Uuid, approve: bool) -> StoreResult<PendingDelete>;
}

#[async_trait]
impl ConflictStore for SeaStore {
    async fn conflicts_of(&self, link_id: Uuid) -> StoreResult<Vec<Conflict>> {
        self.run(Repeat::Always, || of_link(&self.db, link_id))
            .await
    }

    async fn active_conflicts(&self, link_id: Uuid) -> StoreResult<Vec<Conflict>> {
        self.run(Repeat::Always, || active_of_link(&self.db, link_id))
            .await
    }

    async fn list_conflicts(
        &self,
        status: Option<ConflictStatus>,
        limit: u64,
        offset: u64,
    ) -> StoreResult<Vec<Conflict>> {
        self.run(Repeat::Always, || list(&self.db, status, limit, offset))
            .await
    }

    async fn deletes_of(&self, link_id: Uuid) -> StoreResult<Vec<PendingDelete>> {
        self.run(Repeat::Always, || deletes_of_link(&self.db, link_id))
            .await
    }

    async fn open_conflicts(&self, limit: u64) -> StoreResult<Vec<Conflict>> {
        self.run(Repeat::Always, || open(&self.db, limit)).await
    }

    async fn resolve_conflict(&self, id: Uuid, choice: &Choice) -> StoreResult<Conflict> {
        self.run(Repeat::IfNotRun, || decide(&self.db, id, choice))
            .await
    }

    async fn pending_deletes(&self, limit: u64) -> StoreResult<Vec<PendingDelete>> {
        self.run(Repeat::Always, || pending_deletes(&self.db, limit))
            .await
    }

    async fn decide_delete(&self, id: Uuid, approve: bool) -> StoreResult<PendingDelete> {
        self.run(Repeat::Always, || decide_delete(&self.db, id, approve))
            .await
    }
}
