//! Poll cursors and the leases that let one process at a time poll each of them.

use async_trait::async_trait;

use super::reconnect::Repeat;
use super::SeaStore;
use std::time::Duration;

use chrono::Utc;
use entity::poll_cursor::{ActiveModel, Column, Entity};
use sea_orm::sea_query::{Condition, Expr, OnConflict};
use sea_orm::{ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter};
use uuid::Uuid;

use super::StoreResult;
use crate::domain::{EntityType, PairId, System};

fn key(pair: &PairId, system: System, entity: EntityType) -> Condition {
    Condition::all()
        .add(Column::Pair.eq(pair.as_str()))
        .add(Column::System.eq(system.as_str()))
        .add(Column::EntityType.eq(entity.as_str()))
}

/// Makes sure the cursor's row exists, so leases and updates have a row to work on.
async fn ensure_row(
    db: &impl ConnectionTrait,
    pair: &PairId,
    system: System,
    entity: EntityType,
) -> StoreResult<()> {
    let row = ActiveModel {
        id: Set(Uuid::now_v7()),
        pair: Set(pair.as_str().to_string()),
        system: Set(system.as_str().to_string()),
        entity_type: Set(entity.as_str().to_string()),
        cursor: Set(None),
        lease_owner: Set(None),
        lease_until: Set(None),
        updated_at: Set(Utc::now()),
    };
    let inserted = Entity::insert(row)
        .on_conflict(
            OnConflict::columns([Column::Pair, Column::System, Column::EntityType])
                .do_nothing()
                .to_owned(),
        )
        .exec_without_returning(db)
        .await;
    match inserted {
        Ok(_) | Err(DbErr::RecordNotInserted) => Ok(()),
        Err(err) => Err(err.into()),
    }
}

pub(super) async fn get(
    db: &impl ConnectionTrait,
    pair: &PairId,
    system: System,
    entity: EntityType,
) -> StoreResult<Option<String>> {
    Ok(Entity::find()
        .filter(key(pair, system, entity))
        .one(db)
        .await?
        .and_then(|row| row.cursor))
}

pub(super) async fn set(
    db: &impl ConnectionTrait,
    pair: &PairId,
    system: System,
    entity: EntityType,
    cursor: &str,
) -> StoreResult<()> {
    ensure_row(db, pair, system, entity).await?;
    Entity::update_many()
        .col_expr(Column::Cursor, Expr::value(cursor))
        .col_expr(Column::UpdatedAt, Expr::value(Utc::now()))
        .filter(key(pair, system, entity))
        .exec(db)
        .await?;
    Ok(())
}

pub(super) async fn try_lease(
    db: &impl ConnectionTrait,
    pair: &PairId,
    system: System,
    entity: EntityType,
    owner: &str,
    ttl: Duration,
) -> StoreResult<bool> {
    ensure_row(db, pair, system, entity).await?;
    let now = Utc::now();
    let until = now + chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::seconds(60));
    // One conditional UPDATE: the database decides between racing processes.
    let free = Condition::any()
        .add(Column::LeaseOwner.is_null())
        .add(Column::LeaseOwner.eq(owner))
        .add(Column::LeaseUntil.lt(now));
    let taken = Entity::update_many()
        .col_expr(Column::LeaseOwner, Expr::value(owner))
        .col_expr(Column::LeaseUntil, Expr::value(until))
        .filter(key(pair, system, entity))
        .filter(free)
        .exec(db)
        .await?;
    Ok(taken.rows_affected == 1)
}

pub(super) async fn release(
    db: &impl ConnectionTrait,
    pair: &PairId,
    system: System,
    entity: EntityType,
    owner: &str,
) -> StoreResult<()> {
    Entity::update_many()
        .col_expr(Column::LeaseOwner, Expr::value(Option::<String>::None))
        .col_expr(
            Column::LeaseUntil,
            Expr::value(Option::<chrono::DateTime<Utc>>::None),
        )
        .filter(key(pair, system, entity))
        .filter(Column::LeaseOwner.eq(owner))
        .exec(db)
        .await?;
    Ok(())
}

/// Poll cursors, and the leases that let one process poll each.
#[async_trait]
pub trait CursorStore: Send + Sync {
    async fn cursor(
        &self,
        pair: &PairId,
        system: System,
        entity: EntityType,
    ) -> StoreResult<Option<String>>;
    async fn set_cursor(
        &self,
        pair: &PairId,
        system: System,
        entity: EntityType,
        cursor: &str,
    ) -> StoreResult<()>;
    /// Takes (or renews) the lease to poll one cursor for `ttl`; `false` while another
    /// owner holds an unexpired lease.
    async fn try_lease_cursor(
        &self,
        pair: &PairId,
        system: System,
        entity: EntityType,
        owner: &str,
        ttl: Duration,
    ) -> StoreResult<bool>;
    async fn release_cursor_lease(
        &self,
        pair: &PairId,
        system: System,
        entity: EntityType,
        owner: &str,
    ) -> StoreResult<()>;
}

#[async_trait]
impl CursorStore for SeaStore {
    async fn cursor(
        &self,
        pair: &PairId,
        system: System,
        entity: EntityType,
    ) -> StoreResult<Option<String>> {
        self.run(Repeat::Always, || get(&self.db, pair, system, entity))
            .await
    }

    async fn set_cursor(
        &self,
        pair: &PairId,
        system: System,
        entity: EntityType,
        cursor: &str,
    ) -> StoreResult<()> {
        self.run(Repeat::Always, || {
            set(&self.db, pair, system, entity, cursor)
        })
        .await
    }

    async fn try_lease_cursor(
        &self,
        pair: &PairId,
        system: System,
        entity: EntityType,
        owner: &str,
        ttl: Duration,
    ) -> StoreResult<bool> {
        self.run(Repeat::Always, || {
            try_lease(&self.db, pair, system, entity, owner, ttl)
        })
        .await
    }

    async fn release_cursor_lease(
        &self,
        pair: &PairId,
        system: System,
        entity: EntityType,
        owner: &str,
    ) -> StoreResult<()> {
        self.run(Repeat::Always, || {
            release(&self.db, pair, system, entity, owner)
        })
        .await
    }
}
