//! The store hands out pooled connections without a ping; when PostgreSQL ends them
//! under it (here `pg_terminate_backend`, as a restart or an administrator would), the
//! next operation still succeeds, and once the dead connections are gone nothing
//! pings again.

use crate::support::{self, pg_wire::PgWire, pg_wire::TripKind};
use tandem::store::{LinkStore, RecordWork, SyncLogStore};

use std::time::Duration;

use sea_orm::{ConnectionTrait, Database, Statement};
use tandem::domain::{EntityType, PairId, System, Trigger};
use tandem::store::{self, EntityLink, NewSyncLogEntry, Outcome, SyncCommit};

fn acme() -> PairId {
    PairId::new("acme")
}

fn log_of(link: &EntityLink) -> NewSyncLogEntry {
    let mut log = NewSyncLogEntry::new(
        uuid::Uuid::now_v7(),
        acme(),
        EntityType::Customer,
        System::Crm,
        "c1",
        Trigger::Webhook,
        Outcome::Updated,
    );
    log.link_id = Some(link.id);
    log
}

/// Ends every session on the test's database but the caller's, and waits until they
/// are gone; returns how many there were.
async fn end_sessions(database_url: &str) -> i64 {
    let name = database_url.rsplit('/').next().expect("database name");
    let admin = Database::connect(support::pg_admin_url())
        .await
        .expect("admin connection");
    let ended = admin
        .query_one(Statement::from_string(
            admin.get_database_backend(),
            format!(
                "SELECT count(pg_terminate_backend(pid)) AS n FROM pg_stat_activity \
                 WHERE datname = '{name}' AND pid <> pg_backend_pid()"
            ),
        ))
        .await
        .expect("terminate")
        .and_then(|row| row.try_get::<i64>("", "n").ok())
        .unwrap_or(0);
    support::eventually(Duration::from_secs(10), "the sessions ended", || {
        let admin = admin.clone();
        let name = name.to_string();
        async move {
            admin
                .query_one(Statement::from_string(
                    admin.get_database_backend(),
                    format!("SELECT count(*) AS n FROM pg_stat_activity WHERE datname = '{name}'"),
                ))
                .await
                .ok()
                .flatten()
                .and_then(|row| row.try_get::<i64>("", "n").ok())
                == Some(0)
        }
    })
    .await;
    let _ = admin.close().await;
    ended
}

#[tokio::test]
async fn the_next_operation_after_the_server_ended_the_connections_succeeds() {
    let db = support::TestDatabase::create().await;
    let wire = PgWire::start().await;
    let store = store::connect(&wire.url(&db.url)).await.expect("connect");
    store.migrate().await.expect("migrate");
    let mut link = EntityLink::new(acme(), EntityType::Customer, System::Crm, "c1");
    link.finance_id = Some("f1".into());
    store.insert_link(&link).await.expect("insert");
    let pair = acme();
    let find = || store.find_link(&pair, EntityType::Customer, System::Crm, "c1");

    // A read.
    assert!(end_sessions(&db.url).await >= 1, "the pool had connections");
    wire.take().await;
    assert!(find()
        .await
        .expect("find after the sessions ended")
        .is_some());
    let report = wire.take().await;
    println!("find_link after the sessions ended: {report}");
    assert!(
        report.count(TripKind::Connect) >= 1,
        "a fresh connection: {report}"
    );

    // A transaction: BEGIN fails on the dead connection, and the whole runs again.
    end_sessions(&db.url).await;
    let commit = SyncCommit {
        link: Some(link.clone()),
        log: log_of(&link),
        conflicts: vec![],
        withdrawn: vec![],
        link_status: None,
        hold_delete: false,
        announced: None,
    };
    store
        .commit_sync(commit)
        .await
        .expect("commit after the sessions ended");

    // A write that must not run twice runs again: the server said the session ended
    // before the statement could run.
    end_sessions(&db.url).await;
    store
        .append_log(log_of(&link))
        .await
        .expect("append after the sessions ended");
    let logged = store
        .record_history(&acme(), EntityType::Customer, System::Crm, "c1", 10)
        .await
        .expect("history");
    assert_eq!(logged.len(), 2, "one entry per write, none twice");

    // The lease of a record, which every change takes and gives back.
    end_sessions(&db.url).await;
    let lock = store
        .lock_entity("acme/customer/crm:c1")
        .await
        .expect("lock");
    lock.release().await.expect("release");

    // The pipeline's commit, which ends the lease in the same transaction.
    let (lock, _) = store
        .lock_record("acme/customer/crm:c1", None)
        .await
        .expect("lock");
    let saved = store.get_link(link.id).await.expect("read").expect("saved");
    end_sessions(&db.url).await;
    store
        .commit_and_release(
            SyncCommit {
                link: Some(saved.clone()),
                log: log_of(&saved),
                conflicts: vec![],
                withdrawn: vec![],
                link_status: None,
                hold_delete: false,
                announced: None,
            },
            lock,
        )
        .await
        .expect("commit and release after the sessions ended");
    let relocked = tokio::time::timeout(
        Duration::from_secs(5),
        store.lock_entity("acme/customer/crm:c1"),
    )
    .await
    .expect("the lease was given back")
    .expect("lock");
    relocked.release().await.expect("release");

    // Once the dead connections are gone, nothing is checked before use any more.
    for _ in 0..6 {
        find().await.expect("find");
    }
    wire.take().await;
    find().await.expect("find");
    let report = wire.take().await;
    println!("find_link afterwards: {report}");
    assert_eq!(
        report.kinds(),
        vec![TripKind::Execute, TripKind::GiveBackPing],
        "{report}"
    );
}
