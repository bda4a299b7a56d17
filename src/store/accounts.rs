//! Accounts (a HubSpot portal or a Xero organisation connected through OAuth) and the
//! pairs made of two of them through the admin API. Their tokens are credentials
//! (sealed) under [`Account::credential_owner`].

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use entity::{account, sync_pair};
use sea_orm::sea_query::OnConflict;
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
use uuid::Uuid;

use super::{SeaStore, StoreError, StoreResult};
use crate::domain::PairId;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub id: Uuid,
    /// `hubspot` or `xero`.
    pub kind: String,
    /// HubSpot's hub id, or Xero's tenantId.
    pub external_id: String,
    pub name: String,
    pub scopes: String,
    /// `connected` or `disconnected`.
    pub state: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Account {
    /// The owner its tokens are stored under in `credential`.
    pub fn credential_owner(id: Uuid) -> PairId {
        PairId::new(format!("account:{id}"))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PairRecord {
    pub name: String,
    pub crm_account: Uuid,
    pub finance_account: Uuid,
    pub conflict_policy: String,
    pub source_of_truth: String,
    pub deletes: String,
    pub poll_interval_secs: u64,
    /// `active`, `paused` or `removed`.
    pub state: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The port for accounts and pairs made through the admin API.
#[async_trait]
pub trait AccountStore: Send + Sync {
    /// Saves an account, keyed on its kind and external id: connecting the same
    /// organisation again keeps its id. Answers the account as stored.
    async fn save_account(
        &self,
        kind: &str,
        external_id: &str,
        name: &str,
        scopes: &str,
    ) -> StoreResult<Account>;
    async fn account(&self, id: Uuid) -> StoreResult<Option<Account>>;
    async fn accounts(&self) -> StoreResult<Vec<Account>>;
    async fn set_account_state(&self, id: Uuid, state: &str) -> StoreResult<()>;
    /// Adds a pair; `AlreadyLinked` when the name is taken (even by a removed pair,
    /// whose history keeps the name).
    async fn add_pair(&self, pair: &PairRecord) -> StoreResult<()>;
    async fn pair_record(&self, name: &str) -> StoreResult<Option<PairRecord>>;
    async fn pair_records(&self) -> StoreResult<Vec<PairRecord>>;
    async fn set_pair_state(&self, name: &str, state: &str) -> StoreResult<()>;
}

fn account_from(row: account::Model) -> Account {
    Account {
        id: row.id,
        kind: row.kind,
        external_id: row.external_id,
        name: row.name,
        scopes: row.scopes,
        state: row.state,
        created_at: row.created_at,
        updated_at: row.updated_at,
    }
}

fn pair_from(row: sync_pair::Model) -> PairRecord {
    PairRecord {
        name: row.name,
        crm_account: row.crm_account,
        finance_account: row.finance_account,
        conflict_policy: row.conflict_policy,
        source_of_truth: row.source_of_truth,
        deletes: row.deletes,
        poll_interval_secs: u64::try_from(row.poll_interval_secs).unwrap_or(0),
        state: row.state,
        created_at: row.created_at,
        updated_at: row.updated_at,
    }
}

#[async_trait]
impl AccountStore for SeaStore {
    async fn save_account(
        &self,
        kind: &str,
        external_id: &str,
        name: &str,
        scopes: &str,
    ) -> StoreResult<Account> {
        let now = Utc::now();
        let row = account::ActiveModel {
            id: Set(Uuid::now_v7()),
            kind: Set(kind.to_string()),
            external_id: Set(external_id.to_string()),
            name: Set(name.to_string()),
            scopes: Set(scopes.to_string()),
            state: Set("connected".to_string()),
            created_at: Set(now),
            updated_at: Set(now),
        };
        account::Entity::insert(row)
            .on_conflict(
                OnConflict::columns([account::Column::Kind, account::Column::ExternalId])
                    .update_columns([
                        account::Column::Name,
                        account::Column::Scopes,
                        account::Column::State,
                        account::Column::UpdatedAt,
                    ])
                    .to_owned(),
            )
            .exec(self.connection())
            .await?;
        account::Entity::find()
            .filter(account::Column::Kind.eq(kind))
            .filter(account::Column::ExternalId.eq(external_id))
            .one(self.connection())
            .await?
            .map(account_from)
            .ok_or_else(|| StoreError::NotFound(format!("account {kind} {external_id}")))
    }

    async fn account(&self, id: Uuid) -> StoreResult<Option<Account>> {
        Ok(account::Entity::find_by_id(id)
            .one(self.connection())
            .await?
            .map(account_from))
    }

    async fn accounts(&self) -> StoreResult<Vec<Account>> {
        Ok(account::Entity::find()
            .order_by_asc(account::Column::CreatedAt)
            .all(self.connection())
            .await?
            .into_iter()
            .map(account_from)
            .collect())
    }

    async fn set_account_state(&self, id: Uuid, state: &str) -> StoreResult<()> {
        let row = account::ActiveModel {
            id: Set(id),
            state: Set(state.to_string()),
            updated_at: Set(Utc::now()),
            ..Default::default()
        };
        account::Entity::update(row)
            .exec(self.connection())
            .await
            .map(|_| ())
            .map_err(|e| match e {
                sea_orm::DbErr::RecordNotUpdated => StoreError::NotFound(format!("account {id}")),
                other => other.into(),
            })
    }

    async fn add_pair(&self, pair: &PairRecord) -> StoreResult<()> {
        if self.pair_record(&pair.name).await?.is_some() {
            return Err(StoreError::AlreadyLinked(format!(
                "a pair named `{}` exists",
                pair.name
            )));
        }
        let row = sync_pair::ActiveModel {
            name: Set(pair.name.clone()),
            crm_account: Set(pair.crm_account),
            finance_account: Set(pair.finance_account),
            conflict_policy: Set(pair.conflict_policy.clone()),
            source_of_truth: Set(pair.source_of_truth.clone()),
            deletes: Set(pair.deletes.clone()),
            poll_interval_secs: Set(i64::try_from(pair.poll_interval_secs).unwrap_or(i64::MAX)),
            state: Set(pair.state.clone()),
            created_at: Set(pair.created_at),
            updated_at: Set(pair.updated_at),
        };
        sync_pair::Entity::insert(row)
            .exec(self.connection())
            .await
            .map(|_| ())
            .map_err(Into::into)
    }

    async fn pair_record(&self, name: &str) -> StoreResult<Option<PairRecord>> {
        Ok(sync_pair::Entity::find_by_id(name.to_string())
            .one(self.connection())
            .await?
            .map(pair_from))
    }

    async fn pair_records(&self) -> StoreResult<Vec<PairRecord>> {
        Ok(sync_pair::Entity::find()
            .order_by_asc(sync_pair::Column::CreatedAt)
            .all(self.connection())
            .await?
            .into_iter()
            .map(pair_from)
            .collect())
    }

    async fn set_pair_state(&self, name: &str, state: &str) -> StoreResult<()> {
        let row = sync_pair::ActiveModel {
            name: Set(name.to_string()),
            state: Set(state.to_string()),
            updated_at: Set(Utc::now()),
            ..Default::default()
        };
        sync_pair::Entity::update(row)
            .exec(self.connection())
            .await
            .map(|_| ())
            .map_err(|e| match e {
                sea_orm::DbErr::RecordNotUpdated => StoreError::NotFound(format!("pair `{name}`")),
                other => other.into(),
            })
    }
}
