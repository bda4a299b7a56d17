//! OAuth credentials per pair and system, sealed at rest (see [`crate::seal`]).
//!
//! Both tokens are sealed under the current key on every write. A row read in plain
//! text (written before encryption) or under an older key is sealed again under the
//! current key at once, with a compare-and-set so a token rotated meanwhile by another
//! worker or process is never overwritten by the stale one.

use async_trait::async_trait;

use super::reconnect::Repeat;
use super::SeaStore;
use chrono::Utc;
use entity::credential::{ActiveModel, Column, Entity, Model};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter};
use uuid::Uuid;

use super::{Credential, StoreError, StoreResult};
use crate::domain::{PairId, System};
use crate::seal::{is_sealed, CredentialSlot, Kept, Keyring, SealError, TokenKind};
use crate::secret::Secret;

/// What a pass over every stored credential found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResealReport {
    /// Rows sealed again under the current key (they were plain text or under an
    /// older key).
    pub resealed: usize,
    /// Rows already sealed under the current key.
    pub current: usize,
    /// Rows another writer replaced while this pass read them; they hold what that
    /// writer sealed.
    pub changed_meanwhile: usize,
    /// Rows left in plain text because no key is set.
    pub plain_text: usize,
    /// Rows none of the keys opens, left as they are.
    pub unreadable: Vec<Unreadable>,
}

/// A stored credential the keys set cannot open: which row, and why (the error names
/// the key id it is sealed under).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unreadable {
    pub pair: PairId,
    pub system: String,
    pub error: SealError,
}

pub(super) async fn get(
    db: &impl ConnectionTrait,
    keyring: Option<&Keyring>,
    pair: &PairId,
    system: System,
) -> StoreResult<Option<Credential>> {
    let Some(row) = Entity::find()
        .filter(Column::Pair.eq(pair.as_str()))
        .filter(Column::System.eq(system.as_str()))
        .one(db)
        .await?
    else {
        return Ok(None);
    };
    let access = open(keyring, &row, TokenKind::Access)?;
    let refresh = open(keyring, &row, TokenKind::Refresh)?;
    let stale = [&access, &refresh]
        .iter()
        .any(|t| t.as_ref().is_some_and(|(_, kept)| *kept != Kept::Current));
    if let (Some(keyring), true) = (keyring, stale) {
        if reseal(db, keyring, &row).await? {
            tracing::info!(
                pair = %pair,
                %system,
                key_id = %keyring.current_id(),
                "credential sealed again under the current key"
            );
        }
    }
    Ok(Some(Credential {
        access_token: access.map(|(token, _)| token),
        refresh_token: refresh.map(|(token, _)| token),
        expires_at: row.expires_at,
        rotated_at: row.rotated_at,
    }))
}

pub(super) async fn save(
    db: &impl ConnectionTrait,
    keyring: Option<&Keyring>,
    pair: &PairId,
    system: System,
    credential: &Credential,
) -> StoreResult<()> {
    let keyring = keyring.ok_or(SealError::NoKeyToSeal)?;
    let seal = |token: TokenKind, value: &Option<Secret>| {
        value
            .as_ref()
            .map(|secret| keyring.seal(&slot(pair.as_str(), system.as_str(), token), secret))
            .transpose()
    };
    let row = ActiveModel {
        id: Set(Uuid::now_v7()),
        pair: Set(pair.as_str().to_string()),
        system: Set(system.as_str().to_string()),
        access_token: Set(seal(TokenKind::Access, &credential.access_token)?),
        refresh_token: Set(seal(TokenKind::Refresh, &credential.refresh_token)?),
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

/// Seals every stored credential that is not yet under the current key; a row the keys
/// cannot open is reported, not fatal, since it may belong to a pair no longer synced.
/// Without a key, fails if any credential is sealed (nothing could read it) and counts
/// the plain-text ones.
pub(super) async fn reseal_all(
    db: &impl ConnectionTrait,
    keyring: Option<&Keyring>,
) -> StoreResult<ResealReport> {
    let mut report = ResealReport::default();
    for row in Entity::find().all(db).await? {
        let Some(keyring) = keyring else {
            let values = [&row.access_token, &row.refresh_token];
            if values.iter().any(|v| v.as_deref().is_some_and(is_sealed)) {
                return Err(SealError::KeyMissing.into());
            }
            report.plain_text += 1;
            continue;
        };
        let opened = open(Some(keyring), &row, TokenKind::Access)
            .and_then(|access| Ok([access, open(Some(keyring), &row, TokenKind::Refresh)?]));
        let kept = match opened {
            Ok(kept) => kept,
            Err(StoreError::Sealed(error)) => {
                report.unreadable.push(Unreadable {
                    pair: PairId::new(row.pair.as_str()),
                    system: row.system.clone(),
                    error,
                });
                continue;
            }
            Err(err) => return Err(err),
        };
        if kept
            .iter()
            .flatten()
            .all(|(_, kept)| *kept == Kept::Current)
        {
            report.current += 1;
        } else if reseal(db, keyring, &row).await? {
            report.resealed += 1;
        } else {
            report.changed_meanwhile += 1;
        }
    }
    Ok(report)
}

fn slot<'a>(pair: &'a str, system: &'a str, token: TokenKind) -> CredentialSlot<'a> {
    CredentialSlot {
        pair,
        system,
        token,
    }
}

fn stored(row: &Model, token: TokenKind) -> Option<&str> {
    match token {
        TokenKind::Access => row.access_token.as_deref(),
        TokenKind::Refresh => row.refresh_token.as_deref(),
    }
}

/// One token of a row, and how it was kept.
fn open(
    keyring: Option<&Keyring>,
    row: &Model,
    token: TokenKind,
) -> StoreResult<Option<(Secret, Kept)>> {
    let Some(value) = stored(row, token) else {
        return Ok(None);
    };
    let opened = match keyring {
        Some(keyring) => keyring.open(&slot(&row.pair, &row.system, token), value)?,
        None if is_sealed(value) => return Err(SealError::KeyMissing.into()),
        // A plain-text row with no key to seal it: read as it is; `save` refuses to
        // write without a key, so nothing new is ever kept this way.
        None => return Ok(Some((Secret::new(value), Kept::PlainText))),
    };
    Ok(Some((opened.token, opened.kept)))
}

/// Seals the row's tokens again under the current key, unless the row changed since it
/// was read; `true` when it was written.
async fn reseal(db: &impl ConnectionTrait, keyring: &Keyring, row: &Model) -> StoreResult<bool> {
    let again = |token: TokenKind| -> StoreResult<Option<String>> {
        let Some(value) = stored(row, token) else {
            return Ok(None);
        };
        let place = slot(&row.pair, &row.system, token);
        let opened = keyring.open(&place, value)?;
        Ok(Some(match opened.kept {
            Kept::Current => value.to_string(),
            Kept::OlderKey(_) | Kept::PlainText => keyring.seal(&place, &opened.token)?,
        }))
    };
    let mut update = Entity::update_many()
        .col_expr(Column::AccessToken, Expr::value(again(TokenKind::Access)?))
        .col_expr(
            Column::RefreshToken,
            Expr::value(again(TokenKind::Refresh)?),
        )
        .filter(Column::Id.eq(row.id));
    for (column, value) in [
        (Column::AccessToken, &row.access_token),
        (Column::RefreshToken, &row.refresh_token),
    ] {
        update = match value {
            Some(value) => update.filter(column.eq(value.as_str())),
            None => update.filter(column.is_null()),
        };
    }
    Ok(update.exec(db).await?.rows_affected == 1)
}

/// The OAuth tokens of each connection, sealed at rest.
#[async_trait]
pub trait CredentialStore: Send + Sync {
    async fn credential(&self, pair: &PairId, system: System) -> StoreResult<Option<Credential>>;
    /// Saves a connection's tokens in one statement, replacing the spent refresh token.
    async fn save_credential(
        &self,
        pair: &PairId,
        system: System,
        credential: &Credential,
    ) -> StoreResult<()>;
}

#[async_trait]
impl CredentialStore for SeaStore {
    async fn credential(&self, pair: &PairId, system: System) -> StoreResult<Option<Credential>> {
        self.run(Repeat::Always, || {
            get(&self.db, self.keyring.as_deref(), pair, system)
        })
        .await
    }

    async fn save_credential(
        &self,
        pair: &PairId,
        system: System,
        credential: &Credential,
    ) -> StoreResult<()> {
        self.run(Repeat::Always, || {
            save(&self.db, self.keyring.as_deref(), pair, system, credential)
        })
        .await
    }
}
