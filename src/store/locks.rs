//! Per-record locks: one change to a record at a time, across workers and processes.
//!
//! On PostgreSQL a transaction-scoped advisory lock, held by an open transaction on its
//! own connection: committing, rolling back or dropping the guard releases it, so a
//! crashed worker can never leave a record locked. On SQLite (single process) a keyed
//! in-process mutex.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use sea_orm::{ConnectionTrait, DatabaseConnection, DatabaseTransaction, TransactionTrait};
use sha2::{Digest, Sha256};
use tokio::sync::OwnedMutexGuard;

use super::StoreResult;

/// Advisory lock key for migrations; record keys hash elsewhere in the key space.
pub(super) const MIGRATION_LOCK_KEY: i64 = 0x7461_6e64_656d_0001;

/// Held while one record is worked on; release it (or drop it) when done.
pub enum EntityLock {
    Postgres(DatabaseTransaction),
    Local(OwnedMutexGuard<()>),
}

impl EntityLock {
    pub async fn release(self) -> StoreResult<()> {
        match self {
            EntityLock::Postgres(txn) => txn.commit().await?,
            EntityLock::Local(guard) => drop(guard),
        }
        Ok(())
    }
}

/// A stable 64-bit key for a record key, the same in every process.
pub(super) fn lock_key(key: &str) -> i64 {
    let digest = Sha256::digest(key.as_bytes());
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&digest[..8]);
    i64::from_be_bytes(bytes)
}

pub(super) async fn lock_postgres(db: &DatabaseConnection, key: &str) -> StoreResult<EntityLock> {
    let txn = db.begin().await?;
    txn.execute_unprepared(&format!("SELECT pg_advisory_xact_lock({})", lock_key(key)))
        .await?;
    Ok(EntityLock::Postgres(txn))
}

#[derive(Default)]
pub(super) struct LocalLocks {
    locks: Mutex<HashMap<String, Weak<tokio::sync::Mutex<()>>>>,
}

impl LocalLocks {
    pub(super) async fn lock(&self, key: &str) -> EntityLock {
        let mutex = {
            let mut locks = self
                .locks
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            // Forget locks nobody holds any more, so the map stays small.
            if locks.len() > 1024 {
                locks.retain(|_, weak| weak.strong_count() > 0);
            }
            match locks.get(key).and_then(Weak::upgrade) {
                Some(mutex) => mutex,
                None => {
                    let mutex = Arc::new(tokio::sync::Mutex::new(()));
                    locks.insert(key.to_string(), Arc::downgrade(&mutex));
                    mutex
                }
            }
        };
        EntityLock::Local(mutex.lock_owned().await)
    }
}
