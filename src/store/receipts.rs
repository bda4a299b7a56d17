//! Webhook receipts: a delivery is taken once, however often it is sent.

use async_trait::async_trait;

use super::reconnect::Repeat;
use super::SeaStore;
use chrono::Utc;
use entity::webhook_receipt::{ActiveModel, Column, Entity};
use sea_orm::sea_query::{OnConflict, Query};
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

/// Rows a statement carries at most: far under every backend's parameter limit.
const CHUNK: usize = 200;

/// Records a delivery's receipts in one statement per [`CHUNK`]: under load a
/// round trip per event is what limits the intake. Returns the keys inserted now;
/// the unique index decides between racing callers, as in [`record`].
pub(super) async fn record_many(
    db: &impl ConnectionTrait,
    pair: &PairId,
    system: System,
    delivery_keys: &[String],
) -> StoreResult<Vec<String>> {
    let mut keys: Vec<&String> = Vec::with_capacity(delivery_keys.len());
    for key in delivery_keys {
        if !keys.contains(&key) {
            keys.push(key);
        }
    }
    let mut inserted = Vec::new();
    let now = Utc::now();
    for chunk in keys.chunks(CHUNK) {
        let mut insert = Query::insert();
        insert
            .into_table(Entity)
            .columns([
                Column::Id,
                Column::Pair,
                Column::System,
                Column::DeliveryKey,
                Column::ReceivedAt,
            ])
            .on_conflict(
                OnConflict::columns([Column::Pair, Column::System, Column::DeliveryKey])
                    .do_nothing()
                    .to_owned(),
            )
            .returning_col(Column::DeliveryKey);
        for key in chunk {
            insert.values_panic([
                Uuid::now_v7().into(),
                pair.as_str().into(),
                system.as_str().into(),
                key.as_str().into(),
                now.into(),
            ]);
        }
        let statement = db.get_database_backend().build(&insert);
        for row in db.query_all(statement).await? {
            inserted.push(row.try_get::<String>("", "delivery_key")?);
        }
    }
    Ok(inserted)
}

/// Forgets receipts in one statement per [`CHUNK`].
pub(super) async fn forget_many(
    db: &impl ConnectionTrait,
    pair: &PairId,
    system: System,
    delivery_keys: &[String],
) -> StoreResult<()> {
    for chunk in delivery_keys.chunks(CHUNK) {
        Entity::delete_many()
            .filter(Column::Pair.eq(pair.as_str()))
            .filter(Column::System.eq(system.as_str()))
            .filter(Column::DeliveryKey.is_in(chunk.iter().map(String::as_str)))
            .exec(db)
            .await?;
    }
    Ok(())
}

/// Webhook deliveries taken in, so a delivery sent again is taken once.
#[async_trait]
pub trait ReceiptStore: Send + Sync {
    /// Records a delivery; `true` if it is new, `false` if it was seen before.
    async fn record_receipt(
        &self,
        pair: &PairId,
        system: System,
        delivery_key: &str,
    ) -> StoreResult<bool>;
    /// Forgets a receipt whose delivery could not be published, so a retry is taken.
    async fn forget_receipt(
        &self,
        pair: &PairId,
        system: System,
        delivery_key: &str,
    ) -> StoreResult<()>;
    /// Records several deliveries in one statement; the keys that are new, each once.
    async fn record_receipts(
        &self,
        pair: &PairId,
        system: System,
        delivery_keys: &[String],
    ) -> StoreResult<Vec<String>>;
    /// Forgets several receipts in one statement.
    async fn forget_receipts(
        &self,
        pair: &PairId,
        system: System,
        delivery_keys: &[String],
    ) -> StoreResult<()>;
}

#[async_trait]
impl ReceiptStore for SeaStore {
    async fn record_receipt(
        &self,
        pair: &PairId,
        system: System,
        delivery_key: &str,
    ) -> StoreResult<bool> {
        self.run(Repeat::IfNotRun, || {
            record(&self.db, pair, system, delivery_key)
        })
        .await
    }

    async fn forget_receipt(
        &self,
        pair: &PairId,
        system: System,
        delivery_key: &str,
    ) -> StoreResult<()> {
        self.run(Repeat::Always, || {
            forget(&self.db, pair, system, delivery_key)
        })
        .await
    }

    async fn record_receipts(
        &self,
        pair: &PairId,
        system: System,
        delivery_keys: &[String],
    ) -> StoreResult<Vec<String>> {
        self.run(Repeat::IfNotRun, || {
            record_many(&self.db, pair, system, delivery_keys)
        })
        .await
    }

    async fn forget_receipts(
        &self,
        pair: &PairId,
        system: System,
        delivery_keys: &[String],
    ) -> StoreResult<()> {
        self.run(Repeat::Always, || {
            forget_many(&self.db, pair, system, delivery_keys)
        })
        .await
    }
}
