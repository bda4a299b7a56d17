//! Per-record locks: one change to a record at a time, across workers and processes.
//!
//! On PostgreSQL a lease row (`record_lease`) names the process working on a record
//! and until when. A lease holds no connection while its change waits for its batch
//! call, so the number of changes in flight is not bounded by the pool. Inside one
//! process the waiters for a record queue on a keyed mutex, so only one of them asks
//! the database at a time and none polls behind its own neighbour. One heartbeat task
//! per process renews the leases it holds; a process that dies stops renewing, and
//! its leases lapse after [`LEASE_TTL`] for the next process to take.
//!
//! On SQLite (one process) the keyed mutex alone.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use sea_orm::{ConnectionTrait, DatabaseConnection, Statement, Value};
use tokio::sync::OwnedMutexGuard;
use tokio_util::sync::{CancellationToken, DropGuard};
use uuid::Uuid;

use super::reconnect::{at_most_twice, Breaks, Repeat};
use super::{LinkKey, StoreResult};
use crate::domain::System;

/// Advisory lock key for migrations.
pub(super) const MIGRATION_LOCK_KEY: i64 = 0x7461_6e64_656d_0001;

/// How long a lease lasts without renewal: how long a record stays locked after the
/// process holding it died.
pub const LEASE_TTL: Duration = Duration::from_secs(30);
/// How often the heartbeat renews: three chances before a lease lapses.
const RENEW_EVERY: Duration = Duration::from_secs(10);
/// The longest wait between two attempts on a record another process holds.
const MAX_RETRY_WAIT: Duration = Duration::from_millis(500);

/// Held while one record is worked on; release it (or drop it) when done.
pub enum EntityLock {
    Lease(LeaseGuard),
    Local(OwnedMutexGuard<()>),
}

impl EntityLock {
    pub async fn release(self) -> StoreResult<()> {
        match self {
            EntityLock::Lease(lease) => lease.release().await,
            EntityLock::Local(guard) => {
                drop(guard);
                Ok(())
            }
        }
    }

    /// The statement that ends this lease inside another transaction, when the lock is
    /// a lease row; see [`EntityLock::released`].
    pub(super) fn delete_statement(&self, db: &impl ConnectionTrait) -> Option<Statement> {
        match self {
            EntityLock::Lease(lease) => Some(lease.shared.delete_statement(db, &lease.key)),
            EntityLock::Local(_) => None,
        }
    }

    /// The lease row is gone (deleted in the commit that ended the change): stop
    /// renewing it and let the next waiter in.
    pub(super) fn released(self) {
        match self {
            EntityLock::Lease(mut lease) => {
                lease.released = true;
                lease.shared.held().remove(&lease.key);
            }
            EntityLock::Local(guard) => drop(guard),
        }
    }
}

/// In-process keyed mutexes: the SQLite lock, and the queue in front of a lease.
#[derive(Default)]
pub(super) struct LocalLocks {
    locks: Mutex<HashMap<String, Weak<tokio::sync::Mutex<()>>>>,
}

impl LocalLocks {
    pub(super) async fn lock(&self, key: &str) -> OwnedMutexGuard<()> {
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
        mutex.lock_owned().await
    }
}

/// This process's leases on PostgreSQL.
pub(super) struct Leases {
    shared: Arc<LeaseShared>,
    local: LocalLocks,
    heartbeat: Mutex<Option<DropGuard>>,
}

struct LeaseShared {
    db: DatabaseConnection,
    breaks: Arc<Breaks>,
    /// Who this process is in `record_lease.holder`; new at every start.
    holder: Uuid,
    held: Mutex<HashSet<String>>,
}

impl LeaseShared {
    fn held(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn delete(&self, key: &str) -> StoreResult<()> {
        at_most_twice(&self.breaks, Repeat::Always, || async {
            self.db
                .execute(self.delete_statement(&self.db, key))
                .await?;
            Ok(())
        })
        .await
    }

    fn delete_statement(&self, db: &impl ConnectionTrait, key: &str) -> Statement {
        Statement::from_sql_and_values(
            db.get_database_backend(),
            "DELETE FROM record_lease WHERE key = $1 AND holder = $2",
            [key.into(), self.holder.into()],
        )
    }
}

impl Leases {
    pub(super) fn new(db: DatabaseConnection, breaks: Arc<Breaks>) -> Self {
        Self {
            shared: Arc::new(LeaseShared {
                db,
                breaks,
                holder: Uuid::new_v4(),
                held: Mutex::new(HashSet::new()),
            }),
            local: LocalLocks::default(),
            heartbeat: Mutex::new(None),
        }
    }

    /// Takes the record's lease, waiting while another holds it; answers, from the
    /// same statement, the revision of the `watched` record's link as it stands once the
    /// lease is held (so a link loaded before the lease is checked at no extra cost).
    pub(super) async fn lock(
        &self,
        key: &str,
        watched: Option<&LinkKey>,
    ) -> StoreResult<(EntityLock, Option<i64>)> {
        self.start_heartbeat();
        let queued = self.local.lock(key).await;
        let mut wait = Duration::from_millis(10);
        // Another process holds the record: it is working on it now, or died and its
        // lease lapses within LEASE_TTL.
        let revision = loop {
            if let Some(revision) = self.try_take(key, watched).await? {
                break revision;
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(MAX_RETRY_WAIT);
        };
        self.shared.held().insert(key.to_string());
        let lease = EntityLock::Lease(LeaseGuard {
            key: key.to_string(),
            shared: self.shared.clone(),
            queued: Some(queued),
            released: false,
        });
        Ok((lease, revision))
    }

    /// Takes the lease if nobody holds it, its holder let it lapse, or this process
    /// holds it already (a guard dropped before its delete ran: the keyed mutex says
    /// nobody here is using it).
    /// `Some(revision of the watched link)` once taken, `None` while another holds it.
    async fn try_take(
        &self,
        key: &str,
        watched: Option<&LinkKey>,
    ) -> StoreResult<Option<Option<i64>>> {
        // Taking a lease this process already holds succeeds: safe to run again.
        at_most_twice(&self.shared.breaks, Repeat::Always, || async {
            // The watched link by the record's id on its side (NULL without one).
            let id_column = match watched.map(|w| w.system) {
                Some(System::Finance) => "finance_id",
                _ => "crm_id",
            };
            let sql = format!(
                "INSERT INTO record_lease (key, holder, expires_at) \
                 VALUES ($1, $2, now() + make_interval(secs => $3)) \
                 ON CONFLICT (key) DO UPDATE \
                 SET holder = EXCLUDED.holder, expires_at = EXCLUDED.expires_at \
                 WHERE record_lease.expires_at < now() OR record_lease.holder = EXCLUDED.holder \
                 RETURNING (SELECT revision FROM entity_link \
                 WHERE pair = $4 AND entity_type = $5 AND {id_column} = $6) AS revision"
            );
            let taken = self
                .shared
                .db
                .query_one(Statement::from_sql_and_values(
                    self.shared.db.get_database_backend(),
                    sql,
                    [
                        key.into(),
                        self.shared.holder.into(),
                        Value::Double(Some(LEASE_TTL.as_secs_f64())),
                        watched.map(|w| w.pair.as_str().to_string()).into(),
                        watched.map(|w| w.entity.as_str().to_string()).into(),
                        watched.map(|w| w.external_id.clone()).into(),
                    ],
                ))
                .await?;
            match taken {
                None => Ok(None),
                Some(row) => Ok(Some(row.try_get::<Option<i64>>("", "revision")?)),
            }
        })
        .await
    }

    fn start_heartbeat(&self) {
        let mut heartbeat = self.heartbeat.lock().unwrap_or_else(|p| p.into_inner());
        if heartbeat.is_some() {
            return;
        }
        let stop = CancellationToken::new();
        let shared = Arc::downgrade(&self.shared);
        tokio::spawn(renew_until(shared, stop.clone()));
        *heartbeat = Some(stop.drop_guard());
    }
}

/// Renews every lease this process holds, until the store is dropped.
async fn renew_until(shared: Weak<LeaseShared>, stop: CancellationToken) {
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(RENEW_EVERY) => {}
        }
        let Some(shared) = shared.upgrade() else {
            return;
        };
        let keys: Vec<String> = shared.held().iter().cloned().collect();
        for chunk in keys.chunks(500) {
            if let Err(err) = renew(&shared, chunk).await {
                tracing::warn!(error = %err, leases = chunk.len(), "cannot renew record leases");
            }
        }
    }
}

async fn renew(shared: &LeaseShared, keys: &[String]) -> StoreResult<()> {
    let placeholders: Vec<String> = (0..keys.len()).map(|i| format!("${}", i + 3)).collect();
    let sql = format!(
        "UPDATE record_lease SET expires_at = now() + make_interval(secs => $2) \
         WHERE holder = $1 AND key IN ({})",
        placeholders.join(", ")
    );
    let mut values: Vec<Value> = vec![
        shared.holder.into(),
        Value::Double(Some(LEASE_TTL.as_secs_f64())),
    ];
    values.extend(keys.iter().map(|k| Value::from(k.as_str())));
    shared
        .db
        .execute(Statement::from_sql_and_values(
            shared.db.get_database_backend(),
            sql,
            values,
        ))
        .await?;
    Ok(())
}

/// One lease held by this process.
pub struct LeaseGuard {
    key: String,
    shared: Arc<LeaseShared>,
    /// This process's queue for the record, held until the row is gone, so that the
    /// next waiter here cannot take a row that a late delete then removes.
    queued: Option<OwnedMutexGuard<()>>,
    released: bool,
}

impl LeaseGuard {
    async fn release(mut self) -> StoreResult<()> {
        self.released = true;
        self.shared.held().remove(&self.key);
        self.shared.delete(&self.key).await
    }
}

impl Drop for LeaseGuard {
    /// A guard dropped without release (a worker that failed or was cancelled): stop
    /// renewing and delete the row in the background. If even that cannot run, the
    /// lease lapses after LEASE_TTL, and this process may take it again at once.
    fn drop(&mut self) {
        if self.released {
            return;
        }
        self.shared.held().remove(&self.key);
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let shared = self.shared.clone();
            let key = std::mem::take(&mut self.key);
            let queued = self.queued.take();
            runtime.spawn(async move {
                if let Err(err) = shared.delete(&key).await {
                    tracing::warn!(error = %err, "cannot delete a dropped record lease");
                }
                drop(queued);
            });
        }
    }
}
