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

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use migration::{Migrator, MigratorTrait};
use sea_orm::{ConnectionTrait, DatabaseBackend, DatabaseConnection, DbErr, TransactionTrait};
use serde_json::Value;
use uuid::Uuid;

use crate::domain::{Choice, EntityType, PairId, System};
use crate::seal::Keyring;

pub use accounts::{Account, AccountStore, PairRecord};
pub use credentials::{ResealReport, Unreadable};
pub use locks::EntityLock;
pub use migration::TABLES;
pub use pool::{connect, connect_for_workers, pool_size};
use reconnect::Repeat;
pub use types::*;

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

/// What the engine asks of its storage.
#[async_trait]
pub trait Store: Send + Sync {
    /// Whether the database answers, for readiness.
    async fn ping(&self) -> StoreResult<()>;

    // Links.
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
    /// Saves the link, appends the log entry, and records conflicts and a held delete,
    /// all in one transaction: all of it is stored or none of it.
    async fn commit_sync(&self, commit: SyncCommit) -> StoreResult<Uuid>;

    // Sync log.
    async fn append_log(&self, entry: NewSyncLogEntry) -> StoreResult<Uuid>;
    /// Appends several entries, in order, in one statement.
    async fn append_logs(&self, entries: &[NewSyncLogEntry]) -> StoreResult<()>;
    /// Everything recorded for a record, newest first: by its link (both sides) when
    /// it has one, else by its id on the given side.
    async fn record_history(
        &self,
        pair: &PairId,
        entity: EntityType,
        system: System,
        external_id: &str,
        limit: u64,
    ) -> StoreResult<Vec<SyncLogEntry>>;
    async fn query_logs(&self, filter: &SyncLogFilter) -> StoreResult<Vec<SyncLogEntry>>;
    async fn count_outcomes_since(
        &self,
        since: DateTime<Utc>,
    ) -> StoreResult<BTreeMap<Outcome, u64>>;

    // Webhook receipts.
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

    // Poll cursors.
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

    // Jobs.
    async fn create_job(&self, kind: JobKind, params: Value) -> StoreResult<Job>;
    async fn job(&self, id: Uuid) -> StoreResult<Option<Job>>;
    async fn add_to_job(&self, id: Uuid, counter: JobCounter, n: i64) -> StoreResult<()>;
    async fn set_job_status(
        &self,
        id: Uuid,
        status: JobStatus,
        error: Option<String>,
    ) -> StoreResult<()>;

    // Credentials.
    async fn credential(&self, pair: &PairId, system: System) -> StoreResult<Option<Credential>>;
    /// Saves a connection's tokens in one statement, replacing the spent refresh token.
    async fn save_credential(
        &self,
        pair: &PairId,
        system: System,
        credential: &Credential,
    ) -> StoreResult<()>;

    // Conflicts and held deletes.
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

    /// Serialises work on one record across workers and processes until the lock is
    /// released (or dropped).
    async fn lock_entity(&self, key: &str) -> StoreResult<EntityLock>;
    /// [`Store::lock_entity`], answering the revision of the `watched` record's link as
    /// it stands once the lock is held (`None` if it has none), in the same round trip
    /// where the database allows: a link loaded before the lock is checked for free.
    async fn lock_record(
        &self,
        key: &str,
        watched: Option<&LinkKey>,
    ) -> StoreResult<(EntityLock, Option<i64>)>;
    /// [`Store::commit_sync`] that also ends `lock`: on PostgreSQL its lease row is
    /// deleted in the same transaction. A commit that only logs (a skip) is not
    /// wrapped in a transaction.
    async fn commit_and_release(&self, commit: SyncCommit, lock: EntityLock) -> StoreResult<()>;
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

    /// Saves a sync and deletes its lease row in one transaction.
    async fn commit_and_release_once(
        &self,
        commit: &SyncCommit,
        logs: &[&NewSyncLogEntry],
        lock: &EntityLock,
    ) -> StoreResult<()> {
        let txn = self.db.begin().await?;
        if let Some(link) = &commit.link {
            links::save(&txn, link).await?;
        }
        sync_log::append_all(&txn, logs).await?;
        if let Some(change) = &commit.link_status {
            links::set_status(&txn, change).await?;
        }
        conflicts::withdraw(&txn, &commit.withdrawn).await?;
        if let Some(link) = &commit.link {
            for conflict in &commit.conflicts {
                conflicts::write(&txn, link, commit.log.transaction_id, conflict).await?;
            }
            if commit.hold_delete {
                conflicts::hold_delete(
                    &txn,
                    link,
                    commit.log.source_system,
                    &commit.log.external_id,
                )
                .await?;
            }
        }
        if let Some(delete) = lock.delete_statement(&txn) {
            txn.execute(delete).await?;
        }
        txn.commit().await.map_err(reconnect::commit_failed)?;
        Ok(())
    }

    /// Saves a sync's link, log entry, conflicts and held delete in one transaction.
    async fn commit_once(&self, commit: &SyncCommit) -> StoreResult<Uuid> {
        let txn = self.db.begin().await?;
        if let Some(link) = &commit.link {
            links::save(&txn, link).await?;
        }
        if let Some(announced) = &commit.announced {
            sync_log::append(&txn, announced).await?;
        }
        let log_id = sync_log::append(&txn, &commit.log).await?;
        if let Some(change) = &commit.link_status {
            links::set_status(&txn, change).await?;
        }
        // Ended rows first: a field whose decision went stale gets a new held row.
        conflicts::withdraw(&txn, &commit.withdrawn).await?;
        if let Some(link) = &commit.link {
            for conflict in &commit.conflicts {
                conflicts::write(&txn, link, commit.log.transaction_id, conflict).await?;
            }
            if commit.hold_delete {
                conflicts::hold_delete(
                    &txn,
                    link,
                    commit.log.source_system,
                    &commit.log.external_id,
                )
                .await?;
            }
        }
        txn.commit().await.map_err(reconnect::commit_failed)?;
        Ok(log_id)
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

    async fn find_link(
        &self,
        pair: &PairId,
        entity: EntityType,
        system: System,
        external_id: &str,
    ) -> StoreResult<Option<EntityLink>> {
        self.run(Repeat::Always, || {
            links::find(&self.db, pair, entity, system, external_id)
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
            links::find_many(&self.db, pair, entity, system, external_ids)
        })
        .await
    }

    async fn get_link(&self, id: Uuid) -> StoreResult<Option<EntityLink>> {
        self.run(Repeat::Always, || links::get(&self.db, id)).await
    }

    async fn get_links(&self, ids: &[Uuid]) -> StoreResult<Vec<EntityLink>> {
        self.run(Repeat::Always, || links::get_many(&self.db, ids))
            .await
    }

    async fn insert_link(&self, link: &EntityLink) -> StoreResult<()> {
        self.run(Repeat::IfNotRun, || links::insert(&self.db, link))
            .await
    }

    async fn links_with_status(
        &self,
        statuses: &[SyncStatus],
        limit: u64,
        offset: u64,
    ) -> StoreResult<Vec<EntityLink>> {
        self.run(Repeat::Always, || {
            links::with_statuses(&self.db, statuses, limit, offset)
        })
        .await
    }

    async fn find_links_matching(&self, text: &str, limit: u64) -> StoreResult<Vec<EntityLink>> {
        self.run(Repeat::Always, || links::matching(&self.db, text, limit))
            .await
    }

    async fn count_records(&self) -> StoreResult<RecordCounts> {
        self.run(Repeat::Always, || async {
            Ok(RecordCounts {
                links: links::count_by_status(&self.db).await?,
                open_conflicts: conflicts::count_open(&self.db).await?,
            })
        })
        .await
    }

    async fn links_of_pair(&self, pair: &PairId) -> StoreResult<Vec<EntityLink>> {
        self.run(Repeat::Always, || links::of_pair(&self.db, pair))
            .await
    }

    async fn commit_sync(&self, commit: SyncCommit) -> StoreResult<Uuid> {
        // A transaction that failed before its COMMIT was rolled back: safe to run again.
        self.run(Repeat::Always, || self.commit_once(&commit)).await
    }

    async fn append_log(&self, entry: NewSyncLogEntry) -> StoreResult<Uuid> {
        self.run(Repeat::IfNotRun, || sync_log::append(&self.db, &entry))
            .await
    }

    async fn append_logs(&self, entries: &[NewSyncLogEntry]) -> StoreResult<()> {
        let entries: Vec<&NewSyncLogEntry> = entries.iter().collect();
        self.run(Repeat::IfNotRun, || async {
            sync_log::append_all(&self.db, &entries).await.map(|_| ())
        })
        .await
    }

    async fn record_history(
        &self,
        pair: &PairId,
        entity: EntityType,
        system: System,
        external_id: &str,
        limit: u64,
    ) -> StoreResult<Vec<SyncLogEntry>> {
        self.run(Repeat::Always, || async {
            let link = links::find(&self.db, pair, entity, system, external_id).await?;
            sync_log::history(
                &self.db,
                pair,
                entity,
                system,
                external_id,
                link.as_ref(),
                limit,
            )
            .await
        })
        .await
    }

    async fn query_logs(&self, filter: &SyncLogFilter) -> StoreResult<Vec<SyncLogEntry>> {
        self.run(Repeat::Always, || sync_log::query(&self.db, filter))
            .await
    }

    async fn count_outcomes_since(
        &self,
        since: DateTime<Utc>,
    ) -> StoreResult<BTreeMap<Outcome, u64>> {
        self.run(Repeat::Always, || {
            sync_log::count_outcomes_since(&self.db, since)
        })
        .await
    }

    async fn record_receipt(
        &self,
        pair: &PairId,
        system: System,
        delivery_key: &str,
    ) -> StoreResult<bool> {
        self.run(Repeat::IfNotRun, || {
            receipts::record(&self.db, pair, system, delivery_key)
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
            receipts::forget(&self.db, pair, system, delivery_key)
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
            receipts::record_many(&self.db, pair, system, delivery_keys)
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
            receipts::forget_many(&self.db, pair, system, delivery_keys)
        })
        .await
    }

    async fn cursor(
        &self,
        pair: &PairId,
        system: System,
        entity: EntityType,
    ) -> StoreResult<Option<String>> {
        self.run(Repeat::Always, || {
            cursors::get(&self.db, pair, system, entity)
        })
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
            cursors::set(&self.db, pair, system, entity, cursor)
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
            cursors::try_lease(&self.db, pair, system, entity, owner, ttl)
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
            cursors::release(&self.db, pair, system, entity, owner)
        })
        .await
    }

    async fn create_job(&self, kind: JobKind, params: Value) -> StoreResult<Job> {
        self.run(Repeat::IfNotRun, || {
            jobs::create(&self.db, kind, params.clone())
        })
        .await
    }

    async fn job(&self, id: Uuid) -> StoreResult<Option<Job>> {
        self.run(Repeat::Always, || jobs::get(&self.db, id)).await
    }

    async fn add_to_job(&self, id: Uuid, counter: JobCounter, n: i64) -> StoreResult<()> {
        self.run(Repeat::IfNotRun, || jobs::add(&self.db, id, counter, n))
            .await
    }

    async fn set_job_status(
        &self,
        id: Uuid,
        status: JobStatus,
        error: Option<String>,
    ) -> StoreResult<()> {
        self.run(Repeat::Always, || {
            jobs::set_status(&self.db, id, status, error.clone())
        })
        .await
    }

    async fn credential(&self, pair: &PairId, system: System) -> StoreResult<Option<Credential>> {
        self.run(Repeat::Always, || {
            credentials::get(&self.db, self.keyring.as_deref(), pair, system)
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
            credentials::save(&self.db, self.keyring.as_deref(), pair, system, credential)
        })
        .await
    }

    async fn open_conflicts(&self, limit: u64) -> StoreResult<Vec<Conflict>> {
        self.run(Repeat::Always, || conflicts::open(&self.db, limit))
            .await
    }

    async fn conflicts_of(&self, link_id: Uuid) -> StoreResult<Vec<Conflict>> {
        self.run(Repeat::Always, || conflicts::of_link(&self.db, link_id))
            .await
    }

    async fn active_conflicts(&self, link_id: Uuid) -> StoreResult<Vec<Conflict>> {
        self.run(Repeat::Always, || {
            conflicts::active_of_link(&self.db, link_id)
        })
        .await
    }

    async fn list_conflicts(
        &self,
        status: Option<ConflictStatus>,
        limit: u64,
        offset: u64,
    ) -> StoreResult<Vec<Conflict>> {
        self.run(Repeat::Always, || {
            conflicts::list(&self.db, status, limit, offset)
        })
        .await
    }

    async fn deletes_of(&self, link_id: Uuid) -> StoreResult<Vec<PendingDelete>> {
        self.run(Repeat::Always, || {
            conflicts::deletes_of_link(&self.db, link_id)
        })
        .await
    }

    async fn resolve_conflict(&self, id: Uuid, choice: &Choice) -> StoreResult<Conflict> {
        self.run(Repeat::IfNotRun, || conflicts::decide(&self.db, id, choice))
            .await
    }

    async fn pending_deletes(&self, limit: u64) -> StoreResult<Vec<PendingDelete>> {
        self.run(Repeat::Always, || {
            conflicts::pending_deletes(&self.db, limit)
        })
        .await
    }

    async fn decide_delete(&self, id: Uuid, approve: bool) -> StoreResult<PendingDelete> {
        self.run(Repeat::Always, || {
            conflicts::decide_delete(&self.db, id, approve)
        })
        .await
    }

    async fn lock_entity(&self, key: &str) -> StoreResult<EntityLock> {
        Ok(self.lock_record(key, None).await?.0)
    }

    async fn lock_record(
        &self,
        key: &str,
        watched: Option<&LinkKey>,
    ) -> StoreResult<(EntityLock, Option<i64>)> {
        match &self.leases {
            Some(leases) => leases.lock(key, watched).await,
            None => {
                let lock = EntityLock::Local(self.local_locks.lock(key).await);
                let revision = match watched {
                    Some(w) => links::find(&self.db, &w.pair, w.entity, w.system, &w.external_id)
                        .await?
                        .map(|link| link.revision),
                    None => None,
                };
                Ok((lock, revision))
            }
        }
    }

    async fn commit_and_release(&self, commit: SyncCommit, lock: EntityLock) -> StoreResult<()> {
        let logs: Vec<&NewSyncLogEntry> = commit.announced.iter().chain([&commit.log]).collect();
        let only_logs = commit.link.is_none()
            && commit.conflicts.is_empty()
            && commit.withdrawn.is_empty()
            && commit.link_status.is_none()
            && !commit.hold_delete;
        if only_logs {
            // Two statements of their own: each runs again only as far as that is safe.
            self.run(Repeat::IfNotRun, || async {
                sync_log::append_all(&self.db, &logs).await.map(|_| ())
            })
            .await?;
            if let Some(delete) = lock.delete_statement(&self.db) {
                self.run(Repeat::Always, || async {
                    self.db.execute(delete.clone()).await?;
                    Ok(())
                })
                .await?;
            }
            lock.released();
            return Ok(());
        }
        // A transaction that failed before its COMMIT was rolled back: safe to run again.
        self.run(Repeat::Always, || {
            self.commit_and_release_once(&commit, &logs, &lock)
        })
        .await?;
        lock.released();
        Ok(())
    }
}
