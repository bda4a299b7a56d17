//! Links between a record in the CRM and one in the finance system.

use async_trait::async_trait;

use super::reconnect::Repeat;
use super::SeaStore;
use entity::entity_link::{ActiveModel, Column, Entity, Model};
use sea_orm::sea_query::{Expr, Func, LikeExpr, OnConflict};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, SqlErr,
};
use uuid::Uuid;

use super::{
    parse, EntityLink, LinkStatusChange, RecordCounts, StoreError, StoreResult, SyncStatus,
};
use crate::domain::{EntityType, PairId, RecordLabel, System};

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

pub(super) async fn get_many(
    db: &impl ConnectionTrait,
    ids: &[Uuid],
) -> StoreResult<Vec<EntityLink>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    Entity::find()
        .filter(Column::Id.is_in(ids.iter().copied()))
        .all(db)
        .await?
        .into_iter()
        .map(from_model)
        .collect()
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

/// Writes the link as it stands, inserting it if it is new. An existing link is only
/// overwritten at the revision it was loaded at: `Concurrent` when another change
/// saved it meanwhile.
pub(super) async fn save(db: &impl ConnectionTrait, link: &EntityLink) -> StoreResult<()> {
    let mut link = link.clone();
    let loaded = link.revision;
    link.updated_at = chrono::Utc::now();
    link.revision = loaded + 1;
    let saved = Entity::insert(to_active(&link))
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
                    Column::LabelName,
                    Column::LabelEmail,
                    Column::LabelNumber,
                    Column::LabelAmount,
                    Column::LabelCustomer,
                    Column::Attempts,
                    Column::NextAttemptAt,
                    Column::Revision,
                    Column::ActiveConflicts,
                    Column::EchoCrm,
                    Column::EchoFinance,
                ])
                .action_and_where(Expr::col((Entity, Column::Revision)).eq(loaded))
                .to_owned(),
        )
        .exec_without_returning(db)
        .await
        .map_err(|err| match err.sql_err() {
            Some(SqlErr::UniqueConstraintViolation(detail)) => StoreError::AlreadyLinked(detail),
            _ => StoreError::Database(err),
        })?;
    if saved == 0 {
        return Err(StoreError::Concurrent(format!(
            "link {} was saved by another change since it was read",
            link.id
        )));
    }
    Ok(())
}

/// Writes only the status of a link whose change failed (see [`LinkStatusChange`]).
pub(super) async fn set_status(
    db: &impl ConnectionTrait,
    change: &LinkStatusChange,
) -> StoreResult<()> {
    Entity::update_many()
        .col_expr(Column::SyncStatus, Expr::value(change.status.as_str()))
        .col_expr(Column::LastError, Expr::value(Some(change.error.clone())))
        .col_expr(
            Column::Attempts,
            Expr::value(i32::try_from(change.attempts).unwrap_or(i32::MAX)),
        )
        .col_expr(Column::NextAttemptAt, Expr::value(change.next_attempt_at))
        .col_expr(
            Column::LastTransactionId,
            Expr::value(Some(change.transaction_id)),
        )
        .col_expr(Column::UpdatedAt, Expr::value(chrono::Utc::now()))
        .filter(Column::Id.eq(change.link_id))
        .exec(db)
        .await?;
    Ok(())
}

/// Links whose record a person would look for by `text`: its id on either side, a
/// customer's e-mail (any case) or a part of its name, an invoice's number.
pub(super) async fn matching(
    db: &impl ConnectionTrait,
    text: &str,
    limit: u64,
) -> StoreResult<Vec<EntityLink>> {
    let text = text.trim();
    let pattern = format!(
        "%{}%",
        text.to_lowercase()
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_")
    );
    let name_like = Expr::expr(Func::lower(Expr::col(Column::LabelName)))
        .like(LikeExpr::new(pattern).escape('\\'));
    Entity::find()
        .filter(
            Condition::any()
                .add(Column::CrmId.eq(text))
                .add(Column::FinanceId.eq(text))
                .add(Column::LabelEmail.eq(text.to_lowercase()))
                .add(Column::LabelNumber.eq(text))
                .add(name_like),
        )
        .order_by_desc(Column::UpdatedAt)
        .limit(limit)
        .all(db)
        .await?
        .into_iter()
        .map(from_model)
        .collect()
}

/// How many links are in each status.
pub(super) async fn count_by_status(
    db: &impl ConnectionTrait,
) -> StoreResult<std::collections::BTreeMap<SyncStatus, u64>> {
    let rows: Vec<(String, i64)> = Entity::find()
        .select_only()
        .column(Column::SyncStatus)
        .column_as(Column::Id.count(), "n")
        .group_by(Column::SyncStatus)
        .into_tuple()
        .all(db)
        .await?;
    rows.into_iter()
        .map(|(status, n)| Ok((parse(&status)?, u64::try_from(n).unwrap_or(0))))
        .collect()
}

pub(super) async fn with_statuses(
    db: &impl ConnectionTrait,
    statuses: &[SyncStatus],
    limit: u64,
    offset: u64,
) -> StoreResult<Vec<EntityLink>> {
    Entity::find()
        .filter(Column::SyncStatus.is_in(statuses.iter().map(|s| s.as_str())))
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
        label_name: Set(link.label.name.clone()),
        label_email: Set(link.label.email.clone()),
        label_number: Set(link.label.number.clone()),
        label_amount: Set(link.label.amount.clone()),
        label_customer: Set(link.label.customer.clone()),
        attempts: Set(i32::try_from(link.attempts).unwrap_or(i32::MAX)),
        next_attempt_at: Set(link.next_attempt_at),
        revision: Set(link.revision),
        active_conflicts: Set(i32::try_from(link.active_conflicts).unwrap_or(i32::MAX)),
        echo_crm: Set(link.echo_crm.clone()),
        echo_finance: Set(link.echo_finance.clone()),
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
        label: RecordLabel {
            name: model.label_name,
            email: model.label_email,
            number: model.label_number,
            amount: model.label_amount,
            customer: model.label_customer,
        },
        attempts: u32::try_from(model.attempts).unwrap_or(0),
        next_attempt_at: model.next_attempt_at,
        revision: model.revision,
        active_conflicts: u32::try_from(model.active_conflicts).unwrap_or(0),
        echo_crm: model.echo_crm,
        echo_finance: model.echo_finance,
    })
}

/// Links between a record on one side and its counterpart on the other.
#[async_trait]
pub trait LinkStore: Send + Sync {
    async fn find_link(
        &self,
        pair: &PairId,
        entity: EntityType,
        system: System,
        external_id: &str,
    ) -> StoreResult<Option<EntityLink>>;
    /// The links of several records on one side (those that have one), in no order.
    async fn find_links(
        &self,
        pair: &PairId,
        entity: EntityType,
        system: System,
        external_ids: &[String],
    ) -> StoreResult<Vec<EntityLink>>;
    async fn get_link(&self, id: Uuid) -> StoreResult<Option<EntityLink>>;
    /// The links with these ids (those that exist), in no order.
    async fn get_links(&self, ids: &[Uuid]) -> StoreResult<Vec<EntityLink>>;
    /// Inserts a new link; `AlreadyLinked` when either side's id is linked already.
    async fn insert_link(&self, link: &EntityLink) -> StoreResult<()>;
    /// Links in any of `statuses`, most recently changed first.
    async fn links_with_status(
        &self,
        statuses: &[SyncStatus],
        limit: u64,
        offset: u64,
    ) -> StoreResult<Vec<EntityLink>>;
    /// How many links are in each status, and how many conflicts wait for a person.
    async fn count_records(&self) -> StoreResult<RecordCounts>;
    /// Links a person would find by `text`: an id on either side, a customer's e-mail
    /// or part of its name, an invoice's number; most recently changed first.
    async fn find_links_matching(&self, text: &str, limit: u64) -> StoreResult<Vec<EntityLink>>;
    /// Every link of a pair, whatever its status (for checks over a whole pair).
    async fn links_of_pair(&self, pair: &PairId) -> StoreResult<Vec<EntityLink>>;
}

#[async_trait]
impl LinkStore for SeaStore {
    async fn find_link(
        &self,
        pair: &PairId,
        entity: EntityType,
        system: System,
        external_id: &str,
    ) -> StoreResult<Option<EntityLink>> {
        self.run(Repeat::Always, || {
            find(&self.db, pair, entity, system, external_id)
        })
        .await
    }

    async fn find_links(
        &self,
        pair: &PairId,
        entity: EntityType,
        system: System,
        external_ids: &[String],
    ) -> StoreResult<Vec<EntityLink>> {
        self.run(Repeat::Always, || {
            find_many(&self.db, pair, entity, system, external_ids)
        })
        .await
    }

    async fn get_link(&self, id: Uuid) -> StoreResult<Option<EntityLink>> {
        self.run(Repeat::Always, || get(&self.db, id)).await
    }

    async fn get_links(&self, ids: &[Uuid]) -> StoreResult<Vec<EntityLink>> {
        self.run(Repeat::Always, || get_many(&self.db, ids)).await
    }

    async fn insert_link(&self, link: &EntityLink) -> StoreResult<()> {
        self.run(Repeat::IfNotRun, || insert(&self.db, link)).await
    }

    async fn links_with_status(
        &self,
        statuses: &[SyncStatus],
        limit: u64,
        offset: u64,
    ) -> StoreResult<Vec<EntityLink>> {
        self.run(Repeat::Always, || {
            with_statuses(&self.db, statuses, limit, offset)
        })
        .await
    }

    async fn count_records(&self) -> StoreResult<RecordCounts> {
        self.run(Repeat::Always, || async {
            Ok(RecordCounts {
                links: count_by_status(&self.db).await?,
                open_conflicts: super::conflicts::count_open(&self.db).await?,
            })
        })
        .await
    }

    async fn find_links_matching(&self, text: &str, limit: u64) -> StoreResult<Vec<EntityLink>> {
        self.run(Repeat::Always, || matching(&self.db, text, limit))
            .await
    }

    async fn links_of_pair(&self, pair: &PairId) -> StoreResult<Vec<EntityLink>> {
        self.run(Repeat::Always, || of_pair(&self.db, pair)).await
    }
}
