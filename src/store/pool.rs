//! How the store connects: the pool on PostgreSQL, the file or memory on SQLite.

use std::sync::Arc;
use std::time::Duration;

use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseBackend, DatabaseConnection, DbErr,
};

use super::{locks, reconnect, SeaStore, StoreResult};

/// Connects to `postgres://…` or `sqlite://…` (`sqlite::memory:` for tests).
pub async fn connect(database_url: &str) -> StoreResult<SeaStore> {
    connect_for_workers(database_url, 32).await
}

/// The connections the store opens at most for `workers`: 8 on a SQLite file, and on
/// PostgreSQL a quarter of the workers plus 16, between 16 and 48.
pub fn pool_size(database_url: &str, workers: usize) -> u32 {
    if database_url.starts_with("sqlite") {
        8
    } else {
        (workers / 4 + 16).clamp(16, 48) as u32
    }
}

/// Connects with a PostgreSQL pool sized for `workers`. A worker uses a connection only
/// for the moment of each query (its record lease is a row, not a held connection), so
/// the pool grows slower than the workers and stays well under PostgreSQL's default of
/// 100 connections even with two processes.
///
/// Connections are handed out without a check (see [`reconnect`]): with a checkout per
/// statement, sqlx's ping before each use was a round trip per statement (7 of the 18
/// an update of a linked record waited for).
pub async fn connect_for_workers(database_url: &str, workers: usize) -> StoreResult<SeaStore> {
    let breaks = Arc::new(reconnect::Breaks::default());
    let db = if database_url.starts_with("sqlite") {
        connect_sqlite(database_url).await?
    } else {
        reach_postgres(database_url).await?;
        connect_postgres(
            database_url,
            pool_size(database_url, workers),
            breaks.clone(),
        )
        .await?
    };
    let leases = (db.get_database_backend() == DatabaseBackend::Postgres)
        .then(|| locks::Leases::new(db.clone(), breaks.clone()));
    Ok(SeaStore {
        db,
        breaks,
        local_locks: locks::LocalLocks::default(),
        leases,
        keyring: None,
    })
}

/// How long a caller waits for a free connection of the pool.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(30);

async fn connect_sqlite(database_url: &str) -> StoreResult<DatabaseConnection> {
    // An in-memory database exists once per connection: keep exactly one.
    let size = if database_url.contains(":memory:") {
        1
    } else {
        8
    };
    let mut options = ConnectOptions::new(database_url.to_string());
    options
        .sqlx_logging(false)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .max_connections(size)
        .min_connections(1)
        // A SQLite connection is a file in this process: nothing to lose on the way.
        .test_before_acquire(false);
    let db = Database::connect(options).await?;
    if !database_url.contains(":memory:") {
        // WAL lets readers (the dashboard) work while a sync writes.
        db.execute_unprepared("PRAGMA journal_mode=WAL").await?;
        db.execute_unprepared("PRAGMA busy_timeout=5000").await?;
    }
    Ok(db)
}

/// The sqlx pool is built here rather than by sea-orm, which cannot set the check that
/// replaces the ping before every use: a connection idle since before a break was
/// seen is pinged once before it is handed out.
async fn connect_postgres(
    database_url: &str,
    size: u32,
    breaks: Arc<reconnect::Breaks>,
) -> StoreResult<DatabaseConnection> {
    use sea_orm::sqlx::postgres::{PgConnectOptions, PgPoolOptions};
    use sea_orm::sqlx::{ConnectOptions as _, Connection as _};
    use sea_orm::{RuntimeErr, SqlxPostgresConnector};
    let options: PgConnectOptions = database_url
        .parse()
        .map_err(|err| DbErr::Conn(RuntimeErr::SqlxError(err)))?;
    let pool = PgPoolOptions::new()
        .max_connections(size)
        .min_connections(2)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .test_before_acquire(false)
        .before_acquire(move |connection, meta| {
            let suspect = breaks.idle_across_a_break(meta.idle_for);
            Box::pin(async move {
                if suspect {
                    connection.ping().await?;
                }
                Ok(true)
            })
        })
        .connect_with(options.disable_statement_logging())
        .await
        .map_err(|err| DbErr::Conn(RuntimeErr::SqlxError(err)))?;
    Ok(SqlxPostgresConnector::from_sqlx_postgres_pool(pool))
}

/// How long the first connection at start may take. The pool retries a refused
/// connection until its acquire timeout (30 s, right for a busy pool later on) and then
/// reports only that it timed out; a start against an unreachable database should
/// instead stop within seconds and say why.
const FIRST_CONNECTION_TIMEOUT: Duration = Duration::from_secs(4);

/// Opens one connection to PostgreSQL, once, and closes it: a refused or failed
/// connection is reported at once with its reason, and one that gets no answer (a
/// firewall dropping packets, a port that accepts and never speaks) after
/// [`FIRST_CONNECTION_TIMEOUT`].
async fn reach_postgres(database_url: &str) -> StoreResult<()> {
    use sea_orm::sqlx::{Connection as _, PgConnection};
    use sea_orm::RuntimeErr;
    match tokio::time::timeout(
        FIRST_CONNECTION_TIMEOUT,
        PgConnection::connect(database_url),
    )
    .await
    {
        Ok(Ok(connection)) => {
            let _ = connection.close().await;
            Ok(())
        }
        Ok(Err(err)) => Err(DbErr::Conn(RuntimeErr::SqlxError(err)).into()),
        Err(_) => Err(DbErr::Conn(RuntimeErr::Internal(format!(
            "no answer within {} s",
            FIRST_CONNECTION_TIMEOUT.as_secs()
        )))
        .into()),
    }
}
