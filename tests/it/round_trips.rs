//! What the store sends PostgreSQL, counted at the wire (`support::pg_wire`): one
//! store operation, and each kind of change the orchestrator handles, against the
//! budgets of DESIGN.md section 8.

use crate::support::{self, pg_wire::PgWire, pg_wire::TripKind, pg_wire::WireReport};

use tandem::domain::{EntityType, PairId, System, Trigger};
use tandem::store::{self, EntityLink, NewSyncLogEntry, Outcome, Store, SyncCommit, SyncStatus};

fn acme() -> PairId {
    PairId::new("acme")
}

/// Runs `operation` a few times so every pooled connection has its statements
/// prepared, then once more under the counter.
async fn steady_cost<F, Fut>(wire: &PgWire, mut operation: F) -> WireReport
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    for _ in 0..6 {
        operation().await;
    }
    wire.take().await;
    operation().await;
    wire.take().await
}

fn commit_of(link: &EntityLink) -> SyncCommit {
    let mut log = NewSyncLogEntry::new(
        uuid::Uuid::now_v7(),
        acme(),
        EntityType::Customer,
        System::Crm,
        link.crm_id.clone().unwrap_or_default(),
        Trigger::Webhook,
        Outcome::Updated,
    );
    log.link_id = Some(link.id);
    SyncCommit {
        link: Some(link.clone()),
        log,
        conflicts: vec![],
        withdrawn: vec![],
        link_status: None,
        hold_delete: false,
        announced: None,
    }
}

/// One `find_link` is one statement; one `commit_sync` of a link and its log entry is
/// BEGIN, the two statements and COMMIT. Each also costs the pool's give-back ping,
/// which sqlx 0.8 sends at every give-back from a task of its own; nothing pings a
/// connection before it is used.
#[tokio::test]
async fn one_find_link_and_one_commit_sync() {
    let db = support::TestDatabase::create().await;
    let wire = PgWire::start().await;
    let store = store::connect(&wire.url(&db.url)).await.expect("connect");
    store.migrate().await.expect("migrate");
    let mut link = EntityLink::new(acme(), EntityType::Customer, System::Crm, "c1");
    link.finance_id = Some("f1".into());
    link.sync_status = SyncStatus::Synced;
    store.insert_link(&link).await.expect("insert");

    let find = steady_cost(&wire, || async {
        let found = store
            .find_link(&acme(), EntityType::Customer, System::Crm, "c1")
            .await
            .expect("find");
        assert!(found.is_some());
    })
    .await;
    println!("one find_link: {find}");

    let commit = steady_cost(&wire, || async {
        store.commit_sync(commit_of(&link)).await.expect("commit");
    })
    .await;
    println!("one commit_sync: {commit}");

    assert_eq!(
        find.kinds(),
        vec![TripKind::Execute, TripKind::GiveBackPing],
        "{find}"
    );
    assert_eq!(
        commit.kinds(),
        vec![
            TripKind::Query,
            TripKind::Execute,
            TripKind::Execute,
            TripKind::Query,
            TripKind::GiveBackPing
        ],
        "{commit}"
    );
}
