//! The unit of work of one change: the record's lock, then one commit that saves its
//! link, its log entries, its conflicts and a held delete (and, on PostgreSQL, drops
//! the lease row) together. It spans the aggregates on purpose: all of it is stored or
//! none of it.

use async_trait::async_trait;
use sea_orm::{ConnectionTrait, TransactionTrait};
use uuid::Uuid;

use super::reconnect::{self, Repeat};
use super::{conflicts, links, sync_log};
use super::{EntityLock, LinkKey, NewSyncLogEntry, SeaStore, StoreResult, SyncCommit};

/// The unit of work of one change: the record's lock, then one commit of its link, log entry, conflicts and held delete.
#[async_trait]
pub trait RecordWork: Send + Sync {
    /// Saves the link, appends the log entry, and records conflicts and a held delete,
    /// all in one transaction: all of it is stored or none of it.
    async fn commit_sync(&self, commit: SyncCommit) -> StoreResult<Uuid>;
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

#[async_trait]
impl RecordWork for SeaStore {
    async fn commit_sync(&self, commit: SyncCommit) -> StoreResult<Uuid> {
        // A transaction that failed before its COMMIT was rolled back: safe to run again.
        self.run(Repeat::Always, || self.commit_once(&commit)).await
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

impl SeaStore {
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
        write_outcome(&txn, commit).await?;
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
        write_outcome(&txn, commit).await?;
        txn.commit().await.map_err(reconnect::commit_failed)?;
        Ok(log_id)
    }
}

/// What a commit writes after its link and log entries, inside its transaction: the
/// link's status, the conflicts it ended, then the new ones and a held delete.
async fn write_outcome(txn: &impl ConnectionTrait, commit: &SyncCommit) -> StoreResult<()> {
    if let Some(change) = &commit.link_status {
        links::set_status(txn, change).await?;
    }
    // Ended rows first: a field whose decision went stale gets a new held row.
    conflicts::withdraw(txn, &commit.withdrawn).await?;
    if let Some(link) = &commit.link {
        for conflict in &commit.conflicts {
            conflicts::write(txn, link, commit.log.transaction_id, conflict).await?;
        }
        if commit.hold_delete {
            conflicts::hold_delete(txn, link, commit.log.source_system, &commit.log.external_id)
                .await?;
        }
    }
    Ok(())
}
