//! The store: everything Tandem remembers, behind the [`Store`] trait, over sea-orm on
//! PostgreSQL (production) or SQLite (the embedded default, single process). No SQL
//! lives outside this module.

mod accounts;
mod conflicts;
mod credentials;
mod cursors;
mod jobs;
mod links;
mod locks;
mod pool;
mod receipts;
mod reconnect;
mod sync_log;
mod types;
mod unit;

use std::sync::Arc;

use async_trait::async_trait;
use migration::{Migrator, MigratorTrait};
use sea_orm::{ConnectionTrait, DatabaseBackend, DatabaseConnection, DbErr, TransactionTrait};

use crate::seal::Keyring;

pub use accounts::{Account, AccountStore, PairRecord};
pub use conflicts::ConflictStore;
pub use credentials::CredentialStore;
pub use credentials::{ResealReport, Unreadable};
pub use cursors::CursorStore;
pub use jobs::JobStore;
pub use links::LinkStore;
pub use locks::EntityLock;
pub use migration::TABLES;
pub use pool::{connect, connect_for_workers, pool_size};
pub use receipts::ReceiptStore;
use reconnect::Repeat;
pub use sync_log::SyncLogStore;
pub use types::*;
pub use unit::RecordWork;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the record is already linked: {0}")]
    AlreadyLinked(String),
    #[error("{0} not found")]
    NotFound(String),
    /// A decision on something no longer waiting for one.
    #[error("{0}")]
    AlreadyDecided(String),
    /// What was read changed meanwhile (another change saved the link): read again.
    #[error("{0}")]
    Concurrent(String),
    #[error("stored data is not understood: {0}")]
    Corrupt(String),
    #[error("database error: {0}")]
    Database(#[from] DbErr),
    /// The connection broke while a transaction was committing: it may or may not be
    /// stored, so it is not run again by the store.
    #[error(
        "the database connection broke while committing; the change may or may not be stored: {0}"
    )]
    Unconfirmed(DbErr),
    #[error(transparent)]
    Sealed(#[from] crate::seal::SealError),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// What the engine asks of its storage: every port below, and whether the database
/// answers. A part of the engine that needs one aggregate takes that port; the parts
/// that need several take this.
#[async_trait]
pub trait Store:
    LinkStore
    + SyncLogStore
    + ReceiptStore
    + CursorStore
    + JobStore
    + CredentialStore
    + ConflictStore
    + RecordWork
    + Send
    + Sync
{
    /// Whether the database answers, for readiness.
    async fn ping(&self) -> StoreResult<()>;
}

/// The sea-orm implementation of [`Store`], for PostgreSQL and SQLite.
pub struct SeaStore {
    db: DatabaseConnection,
    /// When a connection was last seen broken; see [`reconnect`].
    breaks: Arc<reconnect::Breaks>,
    local_locks: locks::LocalLocks,
    /// Record leases, on PostgreSQL.
    leases: Option<locks::Leases>,
    /// The keys credentials are sealed with; without one, credentials are neither
    /// written nor read when sealed.
    keyring: Option<Arc<Keyring>>,
}

impl SeaStore {
    /// Applies pending migrations. On PostgreSQL they run under an advisory lock, so
    /// several processes starting at once apply them once and all succeed.
    pub async fn migrate(&self) -> StoreResult<()> {
        match self.db.get_database_backend() {
            DatabaseBackend::Postgres => {
                let guard = self.db.begin().await?;
                guard
                    .execute_unprepared(&format!(
                        "SELECT pg_advisory_xact_lock({})",
                        locks::MIGRATION_LOCK_KEY
                    ))
                    .await?;
                let outcome = Migrator::up(&self.db, None).await;
                guard.commit().await?;
                outcome?;
            }
            _ => Migrator::up(&self.db, None).await?,
        }
        Ok(())
    }

    /// The tables the database has, for checking a migration.
    pub async fn table_names(&self) -> StoreResult<Vec<String>> {
        let sql = match self.db.get_database_backend() {
            DatabaseBackend::Postgres => {
                "SELECT tablename AS name FROM pg_tables WHERE schemaname = current_schema()"
            }
            _ => "SELECT name FROM sqlite_master WHERE type = 'table'",
        };
        let rows = self
            .db
            .query_all(sea_orm::Statement::from_string(
                self.db.get_database_backend(),
                sql,
            ))
            .await?;
        rows.iter()
            .map(|row| row.try_get::<String>("", "name").map_err(StoreError::from))
            .collect()
    }

    pub fn connection(&self) -> &DatabaseConnection {
        &self.db
    }

    /// Seals credentials with `keyring` from now on: new writes under its current key,
    /// reads under any of its keys.
    pub fn with_keyring(mut self, keyring: Option<Keyring>) -> Self {
        self.keyring = keyring.map(Arc::new);
        self
    }

    /// Seals again, under the current key, every credential kept in plain text or
    /// under an older key. Without a key, fails if any credential is sealed.
    pub async fn reseal_credentials(&self) -> StoreResult<ResealReport> {
        credentials::reseal_all(&self.db, self.keyring.as_deref()).await
    }

    /// Runs one of the store's operations, once more if its connection broke (see
    /// [`reconnect`]).
    async fn run<T, F, Fut>(&self, repeat: Repeat, operation: F) -> StoreResult<T>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = StoreResult<T>>,
    {
        reconnect::at_most_twice(&self.breaks, repeat, operation).await
    }
}

fn parse<T: std::str::FromStr<Err = String>>(value: &str) -> StoreResult<T> {
    value.parse().map_err(StoreError::Corrupt)
}

#[async_trait]
impl Store for SeaStore {
    async fn ping(&self) -> StoreResult<()> {
        self.run(Repeat::Always, || async {
            self.db.ping().await.map_err(StoreError::from)
        })
        .await
    }
}
