//! Webhook receipts: a delivery is taken once, however often it is sent.

use chrono::Utc;
use entity::webhook_receipt::{ActiveModel, Column, Entity};
use sea_orm::sea_query::OnConflict;
use sea_orm::{ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter};
use uuid::Uuid;

use super::StoreResult;
use crate::domain::{PairId, System};

pub(super) async fn record(
    db: &impl ConnectionTrait,
    pair: &PairId,
    system: System,
    delivery_key: &str,
) -> StoreResult<bool> {
    let receipt = ActiveModel {
        id: Set(Uuid::now_v7()),
        pair: Set(pair.as_str().to_string()),
        system: Set(system.as_str().to_string()),
        delivery_key: Set(delivery_key.to_string()),
        received_at: Set(Utc::now()),
    };
    // The unique index decides between racing callers: exactly one inserts.
    let inserted = Entity::insert(receipt)
        .on_conflict(
            OnConflict::columns([Column::Pair, Column::System, Column::DeliveryKey])
                .do_nothing()
                .to_owned(),
        )
        .exec_without_returning(db)
        .await;
    match inserted {
        Ok(rows) => Ok(rows > 0),
        Err(DbErr::RecordNotInserted) => Ok(false),
        Err(err) => Err(err.into()),
    }
}

/// Forgets a receipt whose delivery could not be published, so the sender's retry is
/// taken instead of being discarded as a duplicate.
pub(super) async fn forget(
    db: &impl ConnectionTrait,
    pair: &PairId,
    system: System,
    delivery_key: &str,
) -> StoreResult<()> {
    Entity::delete_many()
        .filter(Column::Pair.eq(pair.as_str()))
        .filter(Column::System.eq(system.as_str()))
        .filter(Column::DeliveryKey.eq(delivery_key))
        .exec(db)
        .await?;
    Ok(())
}
