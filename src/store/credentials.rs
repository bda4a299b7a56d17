//! OAuth credentials per pair and system.

use chrono::Utc;
use entity::credential::{ActiveModel, Column, Entity};
use sea_orm::sea_query::OnConflict;
use sea_orm::{ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter};
use uuid::Uuid;

use super::{Credential, StoreResult};
use crate::domain::{PairId, System};
use crate::secret::Secret;

pub(super) async fn get(
    db: &impl ConnectionTrait,
    pair: &PairId,
    system: System,
) -> StoreResult<Option<Credential>> {
    Ok(Entity::find()
        .filter(Column::Pair.eq(pair.as_str()))
        .filter(Column::System.eq(system.as_str()))
        .one(db)
        .await?
        .map(|row| Credential {
            access_token: row.access_token.map(Secret::new),
            refresh_token: row.refresh_token.map(Secret::new),
            expires_at: row.expires_at,
            rotated_at: row.rotated_at,
        }))
}

pub(super) async fn save(
    db: &impl ConnectionTrait,
    pair: &PairId,
    system: System,
    credential: &Credential,
) -> StoreResult<()> {
    let row = ActiveModel {
        id: Set(Uuid::now_v7()),
        pair: Set(pair.as_str().to_string()),
        system: Set(system.as_str().to_string()),
        access_token: Set(credential
            .access_token
            .as_ref()
            .map(|s| s.expose().to_string())),
        refresh_token: Set(credential
            .refresh_token
            .as_ref()
            .map(|s| s.expose().to_string())),
        expires_at: Set(credential.expires_at),
        rotated_at: Set(credential.rotated_at),
        updated_at: Set(Utc::now()),
    };
    // One upsert: the old refresh token is replaced in the same statement that stores
    // the new one, so no moment exists where neither or both are kept.
    Entity::insert(row)
        .on_conflict(
            OnConflict::columns([Column::Pair, Column::System])
                .update_columns([
                    Column::AccessToken,
                    Column::RefreshToken,
                    Column::ExpiresAt,
                    Column::RotatedAt,
                    Column::UpdatedAt,
                ])
                .to_owned(),
        )
        .exec_without_returning(db)
        .await?;
    Ok(())
}
