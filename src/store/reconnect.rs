//! Broken connections are found where they are used, not by pinging every connection
//! before every statement.
//!
//! sqlx's pool checks a connection with a round trip each time it hands one out
//! (`test_before_acquire`); with a checkout per statement that was one more round trip
//! per statement, 7 of the 18 an update of a linked record waited for. Instead, the
//! pool hands connections out unchecked, and an operation that fails because its
//! connection broke (the server restarted, an administrator ended the session, the
//! socket closed) runs once more. From the moment a break is seen, each connection
//! that sat idle since before it is checked once before use, so the second attempt,
//! and everyone else, gets a live one.
//!
//! A second attempt must not do twice what the first did. Reads, and writes that end
//! in the same state however often they run, go again after any break. Other writes go
//! again only when the server said it ended the session (SQLSTATE class 57P: the
//! statement never ran); after a bare socket error they may have been committed just
//! before it, so the error is returned. A transaction whose COMMIT itself failed is
//! never run again ([`StoreError::Unconfirmed`]).

use std::future::Future;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sea_orm::{DbErr, RuntimeErr};

use super::{StoreError, StoreResult};

/// Whether an operation may run a second time after its connection broke.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Repeat {
    /// A read, or a write that leaves the same state however often it runs.
    Always,
    /// A write that must not happen twice: again only if it surely did not run.
    IfNotRun,
}

/// When a broken connection was last seen, shared by the store and its pool.
#[derive(Debug, Default)]
pub(super) struct Breaks {
    last: Mutex<Option<Instant>>,
}

impl Breaks {
    fn note(&self) {
        *self.last.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
    }

    /// Whether a connection idle for `idle_for` was already idle when the last break
    /// was seen, and may have broken with it.
    pub(super) fn idle_across_a_break(&self, idle_for: Duration) -> bool {
        let last = *self.last.lock().unwrap_or_else(|p| p.into_inner());
        last.is_some_and(|at| idle_for >= at.elapsed())
    }
}

/// How a failure shows that the connection broke.
#[derive(Debug, PartialEq, Eq)]
enum Broken {
    No,
    /// The server ended the session and said so: the statement did not run.
    NotRun,
    /// The socket failed: the statement may have run.
    Unknown,
}

fn diagnose(err: &StoreError) -> Broken {
    match err {
        StoreError::Database(err) => diagnose_db(err),
        _ => Broken::No,
    }
}

fn diagnose_db(err: &DbErr) -> Broken {
    let (DbErr::Conn(RuntimeErr::SqlxError(err))
    | DbErr::Exec(RuntimeErr::SqlxError(err))
    | DbErr::Query(RuntimeErr::SqlxError(err))) = err
    else {
        return Broken::No;
    };
    match err {
        sea_orm::sqlx::Error::Io(_) => Broken::Unknown,
        sea_orm::sqlx::Error::Database(db) => match db.code() {
            // admin_shutdown, crash_shutdown, cannot_connect_now, idle_session_timeout.
            Some(code) if code.starts_with("57P") => Broken::NotRun,
            _ => Broken::No,
        },
        _ => Broken::No,
    }
}

/// The error of a failed COMMIT: [`StoreError::Unconfirmed`] when the connection broke,
/// since the server may have committed before it did.
pub(super) fn commit_failed(err: DbErr) -> StoreError {
    match diagnose_db(&err) {
        Broken::No => StoreError::Database(err),
        Broken::NotRun | Broken::Unknown => StoreError::Unconfirmed(err),
    }
}

/// Runs `operation`, and once more if its connection broke and `repeat` allows.
pub(super) async fn at_most_twice<T, F, Fut>(
    breaks: &Breaks,
    repeat: Repeat,
    operation: F,
) -> StoreResult<T>
where
    F: Fn() -> Fut,
    Fut: Future<Output = StoreResult<T>>,
{
    let err = match operation().await {
        Ok(done) => return Ok(done),
        Err(err) => err,
    };
    let broken = diagnose(&err);
    if broken == Broken::No {
        return Err(err);
    }
    breaks.note();
    if broken == Broken::Unknown && repeat == Repeat::IfNotRun {
        return Err(err);
    }
    tracing::warn!(error = %err, "a database connection broke; running the operation again");
    operation().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_connections_idle_since_before_a_break_are_suspect() {
        let breaks = Breaks::default();
        assert!(!breaks.idle_across_a_break(Duration::from_secs(3600)));
        breaks.note();
        std::thread::sleep(Duration::from_millis(20));
        assert!(breaks.idle_across_a_break(Duration::from_secs(3600)));
        assert!(!breaks.idle_across_a_break(Duration::from_millis(10)));
    }

    #[test]
    fn store_errors_that_are_not_broken_connections_are_not_repeated() {
        assert_eq!(diagnose(&StoreError::NotFound("link".into())), Broken::No);
        assert_eq!(
            diagnose(&StoreError::Database(DbErr::RecordNotInserted)),
            Broken::No
        );
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset");
        assert_eq!(
            diagnose(&StoreError::Database(DbErr::Query(RuntimeErr::SqlxError(
                sea_orm::sqlx::Error::Io(io)
            )))),
            Broken::Unknown
        );
    }

    #[tokio::test]
    async fn an_operation_runs_twice_at_most() {
        let breaks = Breaks::default();
        let calls = std::sync::atomic::AtomicU32::new(0);
        let reset = || {
            calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            async {
                let io = std::io::Error::new(std::io::ErrorKind::BrokenPipe, "closed");
                Err::<(), _>(StoreError::Database(DbErr::Exec(RuntimeErr::SqlxError(
                    sea_orm::sqlx::Error::Io(io),
                ))))
            }
        };
        assert!(at_most_twice(&breaks, Repeat::Always, reset).await.is_err());
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 2);
        assert!(breaks.idle_across_a_break(Duration::from_secs(3600)));
        // A write that may have run before the socket failed is not run again.
        assert!(at_most_twice(&breaks, Repeat::IfNotRun, reset)
            .await
            .is_err());
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 3);
    }
}
