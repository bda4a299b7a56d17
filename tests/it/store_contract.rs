//! The store contract, run against PostgreSQL (a fresh database per test) and SQLite.

use crate::support;
use tandem::store::{
    ConflictStore, CredentialStore, CursorStore, JobStore, LinkStore, ReceiptStore, RecordWork,
    SyncLogStore,
};

use std::sync::Arc;
use std::time::Duration;

use chrono::{Duration as ChronoDuration, Utc};
use serde_json::json;
use tandem::domain::{Choice, EntityType, PairId, System, Trigger};
use tandem::seal::{Keyring, SecretsKey};
use tandem::secret::Secret;
use tandem::store::{
    self, ConflictState, ConflictStatus, ConflictWrite, Credential, DecidedBy, EntityLink,
    JobCounter, JobKind, JobStatus, LinkKey, NewSyncLogEntry, Outcome, SeaStore, Store, StoreError,
    SyncCommit, SyncLogFilter, SyncStatus,
};
use uuid::Uuid;

mod credential_sealing;
use credential_sealing::*;

fn acme() -> PairId {
    PairId::new("acme")
}

fn log(link: Option<&EntityLink>, system: System, id: &str, outcome: Outcome) -> NewSyncLogEntry {
    let mut entry = NewSyncLogEntry::new(
        Uuid::now_v7(),
        acme(),
        EntityType::Customer,
        system,
        id,
        Trigger::Webhook,
        outcome,
    );
    entry.link_id = link.map(|l| l.id);
    entry
}

/// A store under test, plus a way to open a second one on the same database (standing
/// for a second process).
struct Backend {
    store: Arc<SeaStore>,
    url: String,
    /// The key the store seals credentials with; a second process holds the same.
    key: SecretsKey,
    _pg: Option<support::TestDatabase>,
    _sqlite: Option<support::TestSqlite>,
}

impl Backend {
    async fn postgres() -> Self {
        let db = support::TestDatabase::create().await;
        let mut backend = Self::open(&db.url).await;
        backend._pg = Some(db);
        backend
    }

    async fn sqlite() -> Self {
        let db = support::TestSqlite::create();
        let mut backend = Self::open(&db.url).await;
        backend._sqlite = Some(db);
        backend
    }

    async fn open(url: &str) -> Self {
        let key = SecretsKey::generate().expect("key");
        let store = store::connect(url)
            .await
            .expect("connect")
            .with_keyring(Some(Keyring::new(key.clone(), [])));
        store.migrate().await.expect("migrate");
        Self {
            store: Arc::new(store),
            url: url.to_string(),
            key,
            _pg: None,
            _sqlite: None,
        }
    }

    /// A second process on the same database; on SQLite (single process) the same store.
    async fn other_process(&self) -> Arc<SeaStore> {
        if self._pg.is_some() {
            Arc::new(
                self.with_keys(Some(Keyring::new(self.key.clone(), [])))
                    .await,
            )
        } else {
            self.store.clone()
        }
    }

    /// Another store on the same database, sealing with `keyring` (or with no key).
    async fn with_keys(&self, keyring: Option<Keyring>) -> SeaStore {
        store::connect(&self.url)
            .await
            .expect("connect")
            .with_keyring(keyring)
    }
}

async fn migrations_create_every_table_and_rerun_changes_nothing(b: &Backend) {
    b.store.migrate().await.expect("second migrate");
    let tables = b.store.table_names().await.expect("tables");
    for table in store::TABLES {
        assert!(
            tables.iter().any(|t| t == table),
            "table `{table}` missing from {tables:?}"
        );
    }
}

async fn links_are_unique_per_side(b: &Backend) {
    let s = &b.store;
    let link = EntityLink::new(acme(), EntityType::Customer, System::Crm, "c1");
    s.insert_link(&link).await.expect("insert");
    let found = s
        .find_link(&acme(), EntityType::Customer, System::Crm, "c1")
        .await
        .expect("find");
    assert_eq!(found.as_ref().map(|l| l.id), Some(link.id));
    assert!(s
        .find_link(&acme(), EntityType::Invoice, System::Crm, "c1")
        .await
        .expect("find")
        .is_none());
    let duplicate = EntityLink::new(acme(), EntityType::Customer, System::Crm, "c1");
    assert!(matches!(
        s.insert_link(&duplicate).await,
        Err(StoreError::AlreadyLinked(_))
    ));
    // Two links still waiting for their finance id do not collide.
    let other = EntityLink::new(acme(), EntityType::Customer, System::Crm, "c2");
    s.insert_link(&other).await.expect("a second pending link");
    assert_eq!(
        s.get_link(other.id).await.expect("get").map(|l| l.crm_id),
        Some(Some("c2".into()))
    );
}

/// A person's search text is matched as written: `%`, `_` and a backslash in it are letters,
/// not `LIKE` wildcards, so `%` does not list every record.
async fn search_text_is_literal_not_a_pattern(b: &Backend) {
    let s = &b.store;
    for (id, name) in [
        ("c1", "Ada Lovelace"),
        ("c2", "50% Off_Ltd"),
        ("c3", "Back\\slash"),
    ] {
        let mut link = EntityLink::new(acme(), EntityType::Customer, System::Crm, id);
        link.label.name = Some(name.into());
        s.insert_link(&link).await.expect("insert");
    }
    let found = |text: &'static str| async move {
        let mut ids: Vec<String> = s
            .find_links_matching(text, 50)
            .await
            .expect("search")
            .into_iter()
            .filter_map(|l| l.crm_id)
            .collect();
        ids.sort();
        ids
    };
    assert_eq!(
        found("lovelace").await,
        ["c1"],
        "a part of a name, any case"
    );
    assert_eq!(found("%").await, ["c2"], "`%` is a letter");
    assert_eq!(found("_").await, ["c2"], "`_` is a letter");
    assert!(
        found("a_a").await.is_empty(),
        "`_` does not stand for any one letter"
    );
    assert!(
        found("a%e").await.is_empty(),
        "`%` does not stand for any text"
    );
    assert_eq!(found("\\").await, ["c3"], "a backslash is a letter");
}

async fn commit_sync_is_all_or_nothing(b: &Backend) {
    let s = &b.store;
    let mut first = EntityLink::new(acme(), EntityType::Customer, System::Crm, "c1");
    first.finance_id = Some("f1".into());
    s.insert_link(&first).await.expect("insert");

    let mut second = EntityLink::new(acme(), EntityType::Customer, System::Crm, "c2");
    second.finance_id = Some("f2".into());
    second.sync_status = SyncStatus::Synced;
    second.base_snapshot = Some(json!({"name": "Ada"}));
    s.commit_sync(SyncCommit {
        link: Some(second.clone()),
        log: log(Some(&second), System::Crm, "c2", Outcome::Created),
        conflicts: vec![],
        withdrawn: vec![],
        link_status: None,
        hold_delete: false,
        announced: None,
    })
    .await
    .expect("commit");
    let stored = s.get_link(second.id).await.expect("get").expect("saved");
    assert_eq!(stored.sync_status, SyncStatus::Synced);
    assert_eq!(stored.base_snapshot, Some(json!({"name": "Ada"})));

    // Linking c2 to f1, which c1 holds, must fail and leave no log entry behind.
    let mut clash = stored.clone();
    clash.finance_id = Some("f1".into());
    let before = s
        .query_logs(&SyncLogFilter {
            limit: 100,
            ..Default::default()
        })
        .await
        .expect("logs")
        .len();
    let result = s
        .commit_sync(SyncCommit {
            link: Some(clash),
            log: log(Some(&stored), System::Crm, "c2", Outcome::Updated),
            conflicts: vec![],
            withdrawn: vec![],
            link_status: None,
            hold_delete: false,
            announced: Some(log(Some(&stored), System::Crm, "c2", Outcome::Received)),
        })
        .await;
    assert!(
        matches!(result, Err(StoreError::AlreadyLinked(_))),
        "{result:?}"
    );
    let after = s
        .query_logs(&SyncLogFilter {
            limit: 100,
            ..Default::default()
        })
        .await
        .expect("logs")
        .len();
    assert_eq!(
        before, after,
        "both log entries were rolled back with the link"
    );
    let unchanged = s
        .get_link(second.id)
        .await
        .expect("get")
        .expect("still there");
    assert_eq!(unchanged.finance_id.as_deref(), Some("f2"));
}

async fn history_follows_a_record_before_and_after_its_link(b: &Backend) {
    let s = &b.store;
    s.append_log(log(None, System::Crm, "c9", Outcome::Received))
        .await
        .expect("log");
    let mut link = EntityLink::new(acme(), EntityType::Customer, System::Crm, "c9");
    link.finance_id = Some("f9".into());
    s.commit_sync(SyncCommit {
        link: Some(link.clone()),
        log: log(Some(&link), System::Crm, "c9", Outcome::Created),
        conflicts: vec![],
        withdrawn: vec![],
        link_status: None,
        hold_delete: false,
        announced: None,
    })
    .await
    .expect("commit");
    s.append_log(log(Some(&link), System::Finance, "f9", Outcome::Skipped))
        .await
        .expect("log");
    s.append_log(log(None, System::Crm, "someone-else", Outcome::Received))
        .await
        .expect("log");

    let history = s
        .record_history(&acme(), EntityType::Customer, System::Finance, "f9", 50)
        .await
        .expect("history");
    let outcomes: Vec<_> = history.iter().map(|h| h.entry.outcome).collect();
    assert_eq!(
        outcomes,
        vec![Outcome::Skipped, Outcome::Created, Outcome::Received],
        "newest first, both sides"
    );
}

async fn logs_filter_and_count(b: &Backend) {
    let s = &b.store;
    for (system, outcome) in [
        (System::Crm, Outcome::Updated),
        (System::Crm, Outcome::Failed),
        (System::Finance, Outcome::Failed),
    ] {
        let mut entry = log(None, system, "x", outcome);
        if outcome == Outcome::Failed {
            entry.status_code = Some(400);
            entry.error = Some("ContactName is required".into());
            entry.request = Some(json!({"Name": ""}));
        }
        s.append_log(entry).await.expect("log");
    }
    let failures = s
        .query_logs(&SyncLogFilter {
            outcome: Some(Outcome::Failed),
            limit: 10,
            ..Default::default()
        })
        .await
        .expect("query");
    assert_eq!(failures.len(), 2);
    assert!(failures
        .iter()
        .all(|f| f.entry.status_code == Some(400) && f.entry.request.is_some()));
    let crm_failures = s
        .query_logs(&SyncLogFilter {
            outcome: Some(Outcome::Failed),
            system: Some(System::Crm),
            limit: 10,
            ..Default::default()
        })
        .await
        .expect("query");
    assert_eq!(crm_failures.len(), 1);
    let paged = s
        .query_logs(&SyncLogFilter {
            limit: 2,
            offset: 2,
            ..Default::default()
        })
        .await
        .expect("query");
    assert_eq!(paged.len(), 1);
    let future = s
        .query_logs(&SyncLogFilter {
            since: Some(Utc::now() + ChronoDuration::hours(1)),
            limit: 10,
            ..Default::default()
        })
        .await
        .expect("query");
    assert!(future.is_empty());
    let counts = s
        .count_outcomes_since(Utc::now() - ChronoDuration::hours(24))
        .await
        .expect("count");
    assert_eq!(counts.get(&Outcome::Failed), Some(&2));
    assert_eq!(counts.get(&Outcome::Updated), Some(&1));
}

async fn receipts_take_a_delivery_once_under_concurrency(b: &Backend) {
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let s = b.store.clone();
            tokio::spawn(async move {
                s.record_receipt(&acme(), System::Finance, "delivery-1")
                    .await
            })
        })
        .collect();
    let mut new = 0;
    for task in tasks {
        if task.await.expect("task").expect("record") {
            new += 1;
        }
    }
    assert_eq!(new, 1, "exactly one caller takes the delivery");
    assert!(
        b.store
            .record_receipt(&acme(), System::Crm, "delivery-1")
            .await
            .expect("record"),
        "keys are per system"
    );
}

/// A delivery's receipts in one statement: racing deliveries that share keys take each
/// key exactly once between them, a key repeated within one delivery counts once, and
/// forgetting lets the keys be taken again.
async fn delivery_receipts_are_taken_once_in_one_statement(b: &Backend) {
    let keys = |range: std::ops::Range<u32>| -> Vec<String> {
        range.map(|i| format!("batch-{i}")).collect()
    };
    let tasks: Vec<_> = (0..8)
        .map(|n| {
            let s = b.store.clone();
            // Overlapping windows: every key is offered by several deliveries.
            let offered = keys(n * 10..n * 10 + 40);
            tokio::spawn(async move { s.record_receipts(&acme(), System::Crm, &offered).await })
        })
        .collect();
    let mut taken = Vec::new();
    for task in tasks {
        taken.extend(task.await.expect("task").expect("record"));
    }
    taken.sort();
    let mut expected = keys(0..110);
    expected.sort();
    assert_eq!(taken, expected, "each key taken exactly once");
    let repeated = vec!["dup".to_string(), "dup".to_string(), "batch-3".to_string()];
    let new = b
        .store
        .record_receipts(&acme(), System::Crm, &repeated)
        .await
        .expect("record");
    assert_eq!(new, vec!["dup".to_string()]);
    b.store
        .forget_receipts(&acme(), System::Crm, &repeated)
        .await
        .expect("forget");
    let mut again = b
        .store
        .record_receipts(&acme(), System::Crm, &repeated)
        .await
        .expect("record again");
    again.sort();
    assert_eq!(again, vec!["batch-3".to_string(), "dup".to_string()]);
}

async fn cursors_and_leases(b: &Backend) {
    let s = &b.store;
    let other = b.other_process().await;
    let (pair, sys, ent) = (acme(), System::Finance, EntityType::Invoice);
    assert_eq!(s.cursor(&pair, sys, ent).await.expect("cursor"), None);
    s.set_cursor(&pair, sys, ent, "2026-11-23T10:00:00Z")
        .await
        .expect("set");
    assert_eq!(
        other
            .cursor(&pair, sys, ent)
            .await
            .expect("cursor")
            .as_deref(),
        Some("2026-11-23T10:00:00Z")
    );

    let ttl = Duration::from_secs(60);
    assert!(s
        .try_lease_cursor(&pair, sys, ent, "process-a", ttl)
        .await
        .expect("lease"));
    assert!(
        !other
            .try_lease_cursor(&pair, sys, ent, "process-b", ttl)
            .await
            .expect("lease"),
        "held by a"
    );
    assert!(s
        .try_lease_cursor(&pair, sys, ent, "process-a", ttl)
        .await
        .expect("renew"));
    s.release_cursor_lease(&pair, sys, ent, "process-a")
        .await
        .expect("release");
    assert!(other
        .try_lease_cursor(&pair, sys, ent, "process-b", Duration::from_millis(20))
        .await
        .expect("lease"));
    // An expired lease (its holder died) can be taken over.
    support::eventually(Duration::from_secs(5), "expired lease taken over", || {
        let s = s.clone();
        let pair = pair.clone();
        async move {
            s.try_lease_cursor(&pair, sys, ent, "process-a", ttl)
                .await
                .unwrap_or(false)
        }
    })
    .await;
}

async fn job_counts_add_up_under_concurrency(b: &Backend) {
    let s = &b.store;
    let job = s
        .create_job(JobKind::Resync, json!({"entity": "customer"}))
        .await
        .expect("create");
    assert_eq!(job.status, JobStatus::Queued);
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let s = s.clone();
            tokio::spawn(async move {
                for _ in 0..5 {
                    s.add_to_job(job.id, JobCounter::Synced, 1)
                        .await
                        .expect("add");
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("task");
    }
    s.add_to_job(job.id, JobCounter::Queued, 50)
        .await
        .expect("add");
    s.set_job_status(job.id, JobStatus::Done, None)
        .await
        .expect("status");
    let done = s.job(job.id).await.expect("get").expect("exists");
    assert_eq!(
        (done.queued, done.synced, done.status),
        (50, 50, JobStatus::Done)
    );
    assert!(done.finished_at.is_some());
    assert!(matches!(
        s.add_to_job(Uuid::now_v7(), JobCounter::Synced, 1).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(s.job(Uuid::now_v7()).await.expect("get").is_none());
}

async fn credentials_rotate_in_one_step(b: &Backend) {
    let s = &b.store;
    let first = Credential {
        access_token: Some(Secret::new("a1")),
        refresh_token: Some(Secret::new("r1")),
        expires_at: Some(Utc::now()),
        rotated_at: None,
    };
    s.save_credential(&acme(), System::Finance, &first)
        .await
        .expect("save");
    let rotated = Credential {
        access_token: Some(Secret::new("a2")),
        refresh_token: Some(Secret::new("r2")),
        expires_at: Some(Utc::now()),
        rotated_at: Some(Utc::now()),
    };
    s.save_credential(&acme(), System::Finance, &rotated)
        .await
        .expect("rotate");
    let stored = b
        .other_process()
        .await
        .credential(&acme(), System::Finance)
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(
        stored.refresh_token.as_ref().map(Secret::expose),
        Some("r2")
    );
    assert_eq!(stored.access_token.as_ref().map(Secret::expose), Some("a2"));
    assert!(s
        .credential(&acme(), System::Crm)
        .await
        .expect("get")
        .is_none());
}

fn clash(
    field: &str,
    crm: &str,
    finance: &str,
    existing: Option<Uuid>,
    state: ConflictState,
) -> ConflictWrite {
    ConflictWrite {
        existing,
        field: field.into(),
        crm_value: Some(json!(crm)),
        finance_value: Some(json!(finance)),
        base_value: Some(json!("0")),
        policy: "manual".into(),
        state,
    }
}

async fn commit_clashes(
    s: &dyn Store,
    link: &EntityLink,
    conflicts: Vec<ConflictWrite>,
    withdrawn: Vec<Uuid>,
) {
    // Each commit saves the link at the revision it was last saved at.
    let mut link = link.clone();
    if let Some(stored) = s.get_link(link.id).await.expect("read") {
        link.revision = stored.revision;
    }
    let link = &link;
    s.commit_sync(SyncCommit {
        link: Some(link.clone()),
        log: log(Some(link), System::Crm, "c1", Outcome::Conflict),
        conflicts,
        withdrawn,
        link_status: None,
        hold_delete: false,
        announced: None,
    })
    .await
    .expect("commit");
}

async fn conflicts_and_held_deletes(b: &Backend) {
    let s = &b.store;
    let mut link = EntityLink::new(acme(), EntityType::Customer, System::Crm, "c1");
    link.finance_id = Some("f1".into());
    link.sync_status = SyncStatus::Conflict;
    let mut by_policy = clash(
        "name",
        "A",
        "B",
        None,
        ConflictState::ResolvedByPolicy(System::Crm),
    );
    by_policy.policy = "crm_wins".into();
    s.commit_sync(SyncCommit {
        link: Some(link.clone()),
        log: log(Some(&link), System::Crm, "c1", Outcome::Conflict),
        conflicts: vec![
            clash("phone", "1", "2", None, ConflictState::Held),
            by_policy,
        ],
        withdrawn: vec![],
        link_status: None,
        hold_delete: true,
        announced: None,
    })
    .await
    .expect("commit");
    let open = s.open_conflicts(10).await.expect("open");
    assert_eq!(
        open.len(),
        1,
        "the policy-resolved conflict is recorded but not open"
    );
    assert_eq!(
        (open[0].field.as_str(), open[0].crm_value.clone()),
        ("phone", Some(json!("1")))
    );
    let resolved = s
        .list_conflicts(Some(ConflictStatus::Resolved), 10, 0)
        .await
        .expect("resolved");
    assert_eq!(resolved.len(), 1);
    assert_eq!(
        (resolved[0].decided_by, resolved[0].resolution.as_deref()),
        (Some(DecidedBy::Policy), Some("crm")),
        "the policy's resolution says so"
    );
    assert_eq!(
        resolved[0].choice(),
        None,
        "the policy's is never a person's choice"
    );

    // A later edit while held updates the one held row.
    commit_clashes(
        s.as_ref(),
        &link,
        vec![clash(
            "phone",
            "1b",
            "2",
            Some(open[0].id),
            ConflictState::Held,
        )],
        vec![],
    )
    .await;
    let active = s.active_conflicts(link.id).await.expect("active");
    assert_eq!(active.len(), 1, "one clash, one row: {active:?}");
    assert_eq!(active[0].crm_value, Some(json!("1b")));
    // A second held row for the same field is refused by the store itself.
    let twice = s
        .commit_sync(SyncCommit {
            link: Some(link.clone()),
            log: log(Some(&link), System::Crm, "c1", Outcome::Conflict),
            conflicts: vec![clash("phone", "9", "9", None, ConflictState::Held)],
            withdrawn: vec![],
            link_status: None,
            hold_delete: false,
            announced: None,
        })
        .await;
    assert!(twice.is_err(), "one active conflict per field of a link");

    // A person decides; only once.
    let decided = s
        .resolve_conflict(open[0].id, &Choice::Keep(System::Finance))
        .await
        .expect("resolve");
    assert_eq!(decided.status, ConflictStatus::Decided);
    assert_eq!(decided.decided_by, Some(DecidedBy::Person));
    assert_eq!(decided.choice(), Some(Choice::Keep(System::Finance)));
    assert!(s.open_conflicts(10).await.expect("open").is_empty());
    assert!(matches!(
        s.resolve_conflict(open[0].id, &Choice::Keep(System::Crm))
            .await,
        Err(StoreError::AlreadyDecided(_))
    ));
    assert!(matches!(
        s.resolve_conflict(Uuid::now_v7(), &Choice::Keep(System::Crm))
            .await,
        Err(StoreError::NotFound(_))
    ));
    // A held refresh that races the decision does not overwrite it.
    commit_clashes(
        s.as_ref(),
        &link,
        vec![clash(
            "phone",
            "1c",
            "2",
            Some(open[0].id),
            ConflictState::Held,
        )],
        vec![],
    )
    .await;
    let active = s.active_conflicts(link.id).await.expect("active");
    assert_eq!(
        (active[0].status, active[0].crm_value.clone()),
        (ConflictStatus::Decided, Some(json!("1b")))
    );
    // Applied: consumed, no longer active.
    commit_clashes(
        s.as_ref(),
        &link,
        vec![clash(
            "phone",
            "1b",
            "2",
            Some(open[0].id),
            ConflictState::Applied,
        )],
        vec![],
    )
    .await;
    assert!(s
        .active_conflicts(link.id)
        .await
        .expect("active")
        .is_empty());
    let applied = s.conflicts_of(link.id).await.expect("all");
    let phone = applied.iter().find(|c| c.id == open[0].id).expect("row");
    assert_eq!(phone.status, ConflictStatus::Resolved);
    assert!(phone.applied_at.is_some());
    assert_eq!(phone.decided_by, Some(DecidedBy::Person));

    // A new clash held, then withdrawn by a later edit: a new row each time.
    commit_clashes(
        s.as_ref(),
        &link,
        vec![clash("phone", "3", "4", None, ConflictState::Held)],
        vec![],
    )
    .await;
    let held_again = s.active_conflicts(link.id).await.expect("active");
    assert_eq!(held_again.len(), 1);
    commit_clashes(s.as_ref(), &link, vec![], vec![held_again[0].id]).await;
    assert!(s
        .active_conflicts(link.id)
        .await
        .expect("active")
        .is_empty());
    assert_eq!(
        s.list_conflicts(Some(ConflictStatus::Withdrawn), 10, 0)
            .await
            .expect("withdrawn")
            .len(),
        1
    );
    assert_eq!(s.list_conflicts(None, 10, 0).await.expect("all").len(), 3);

    let held = s.pending_deletes(10).await.expect("deletes");
    assert_eq!(held.len(), 1);
    assert_eq!(held[0].link_id, link.id);
    s.decide_delete(held[0].id, true).await.expect("approve");
    assert!(s.pending_deletes(10).await.expect("deletes").is_empty());
    assert!(matches!(
        s.decide_delete(Uuid::now_v7(), true).await,
        Err(StoreError::NotFound(_))
    ));
}

async fn entity_lock_serialises_holders(b: &Backend) {
    let first = b
        .store
        .lock_entity("acme/customer/crm/c1")
        .await
        .expect("lock");
    let other = b.other_process().await;
    let contender = {
        let other = other.clone();
        tokio::spawn(async move { other.lock_entity("acme/customer/crm/c1").await })
    };
    // Another record is not held up.
    let unrelated = tokio::time::timeout(
        Duration::from_secs(5),
        other.lock_entity("acme/customer/crm/c2"),
    )
    .await
    .expect("a different record locks at once")
    .expect("lock");
    unrelated.release().await.expect("release");
    // The same record waits while the first holder works. Waiting a while and seeing
    // nothing happen is the only way to show that something does not happen.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !contender.is_finished(),
        "a second holder got the lock while the first held it"
    );
    first.release().await.expect("release");
    let second = tokio::time::timeout(Duration::from_secs(5), contender)
        .await
        .expect("the lock passes on release")
        .expect("task")
        .expect("lock");
    second.release().await.expect("release");
    // A dropped lock (a worker that died mid-change) frees the record too.
    drop(
        b.store
            .lock_entity("acme/customer/crm/c3")
            .await
            .expect("lock"),
    );
    tokio::time::timeout(
        Duration::from_secs(5),
        other.lock_entity("acme/customer/crm/c3"),
    )
    .await
    .expect("a dropped lock is released")
    .expect("lock")
    .release()
    .await
    .expect("release");
}

/// A link is saved only at the revision it was read at: a change that read it before
/// another change saved it is told so, and saves nothing.
async fn a_link_read_before_another_save_is_not_overwritten(b: &Backend) {
    let s = &b.store;
    let mut link = EntityLink::new(acme(), EntityType::Customer, System::Crm, "r1");
    link.finance_id = Some("f-r1".into());
    s.commit_sync(SyncCommit {
        link: Some(link.clone()),
        log: log(Some(&link), System::Crm, "r1", Outcome::Linked),
        conflicts: vec![],
        withdrawn: vec![],
        link_status: None,
        hold_delete: false,
        announced: None,
    })
    .await
    .expect("first save");
    let read_by_one = s.get_link(link.id).await.expect("read").expect("saved");
    let read_by_other = read_by_one.clone();
    let mut first = read_by_one;
    first.crm_checksum = Some("first".into());
    s.commit_sync(SyncCommit {
        link: Some(first.clone()),
        log: log(Some(&first), System::Crm, "r1", Outcome::Updated),
        conflicts: vec![],
        withdrawn: vec![],
        link_status: None,
        hold_delete: false,
        announced: None,
    })
    .await
    .expect("the first change saves");
    let mut second = read_by_other;
    second.crm_checksum = Some("second".into());
    let stale = s
        .commit_sync(SyncCommit {
            link: Some(second.clone()),
            log: log(Some(&second), System::Crm, "r1", Outcome::Updated),
            conflicts: vec![],
            withdrawn: vec![],
            link_status: None,
            hold_delete: false,
            announced: None,
        })
        .await;
    assert!(matches!(stale, Err(StoreError::Concurrent(_))), "{stale:?}");
    let stored = s.get_link(link.id).await.expect("read").expect("saved");
    assert_eq!(stored.crm_checksum.as_deref(), Some("first"));
    // The lock answers the link's revision as it stands: a reader knows it moved on.
    let watched = LinkKey {
        pair: acme(),
        entity: EntityType::Customer,
        system: System::Crm,
        external_id: "r1".into(),
    };
    let (lock, revision) = s
        .lock_record("acme/customer/crm:r1", Some(&watched))
        .await
        .expect("lock");
    assert_eq!(revision, Some(stored.revision));
    assert_ne!(
        revision,
        Some(second.revision),
        "the stale reader sees the move"
    );
    // Released in the commit that ends the change: the next holder takes it at once.
    let mut entry = log(Some(&stored), System::Crm, "r1", Outcome::Skipped);
    entry.detail = Some("echo".into());
    s.commit_and_release(
        SyncCommit {
            link: None,
            log: entry,
            conflicts: vec![],
            withdrawn: vec![],
            link_status: None,
            hold_delete: false,
            announced: None,
        },
        lock,
    )
    .await
    .expect("commit and release");
    let other = b.other_process().await;
    let (again, none) = tokio::time::timeout(
        Duration::from_secs(5),
        other.lock_record("acme/customer/crm:r1", None),
    )
    .await
    .expect("released at once")
    .expect("lock");
    assert_eq!(none, None);
    again.release().await.expect("release");
}

macro_rules! contract {
    ($($name:ident),* $(,)?) => {
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let backend = super::Backend::postgres().await;
                    super::$name(&backend).await;
                }
            )*
        }
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let backend = super::Backend::sqlite().await;
                    super::$name(&backend).await;
                }
            )*
        }
    };
}

contract!(
    migrations_create_every_table_and_rerun_changes_nothing,
    links_are_unique_per_side,
    search_text_is_literal_not_a_pattern,
    commit_sync_is_all_or_nothing,
    history_follows_a_record_before_and_after_its_link,
    logs_filter_and_count,
    receipts_take_a_delivery_once_under_concurrency,
    delivery_receipts_are_taken_once_in_one_statement,
    cursors_and_leases,
    job_counts_add_up_under_concurrency,
    credentials_rotate_in_one_step,
    credentials_are_sealed_in_their_row,
    a_credential_copied_to_another_row_is_refused,
    plain_text_credentials_are_sealed_when_first_read,
    rotation_seals_every_credential_under_the_new_key,
    a_missing_or_wrong_key_is_named_and_no_token_is_shown,
    conflicts_and_held_deletes,
    entity_lock_serialises_holders,
    a_link_read_before_another_save_is_not_overwritten,
);

/// Two processes starting at the same moment on a fresh database both migrate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_concurrent_migrations_both_succeed() {
    let db = support::TestDatabase::create().await;
    let (a, b) = (
        store::connect(&db.url).await.expect("connect"),
        store::connect(&db.url).await.expect("connect"),
    );
    let (ra, rb) = tokio::join!(a.migrate(), b.migrate());
    ra.expect("first migrate");
    rb.expect("second migrate");
    let tables = a.table_names().await.expect("tables");
    for table in store::TABLES {
        assert!(tables.iter().any(|t| t == table), "table `{table}` missing");
    }
}

/// A process that died holding a record leaves a lease row nobody renews: the record
/// waits while the lease is live and is taken as soon as it lapses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_lease_of_a_dead_process_lapses() {
    use sea_orm::{ConnectionTrait, Database};
    let b = Backend::postgres().await;
    let db = Database::connect(&b.url).await.expect("connect");
    let dead = uuid::Uuid::new_v4();
    db.execute_unprepared(&format!(
        "INSERT INTO record_lease (key, holder, expires_at) \
         VALUES ('acme/customer/crm/dead', '{dead}', now() + interval '2 seconds')"
    ))
    .await
    .expect("plant a live lease");
    let waiting = {
        let store = b.store.clone();
        tokio::spawn(async move { store.lock_entity("acme/customer/crm/dead").await })
    };
    // Waiting a while and seeing nothing happen is the only way to show that something
    // does not happen; the lease has well over a second left.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !waiting.is_finished(),
        "took a record another process holds"
    );
    let lock = tokio::time::timeout(Duration::from_secs(10), waiting)
        .await
        .expect("the lapsed lease is taken")
        .expect("task")
        .expect("lock");
    let holder: String = db
        .query_one(sea_orm::Statement::from_string(
            db.get_database_backend(),
            "SELECT holder::text AS holder FROM record_lease WHERE key = 'acme/customer/crm/dead'",
        ))
        .await
        .expect("query")
        .expect("the lease row")
        .try_get("", "holder")
        .expect("holder");
    assert_ne!(holder, dead.to_string(), "the dead holder still holds it");
    lock.release().await.expect("release");
    let left = db
        .query_one(sea_orm::Statement::from_string(
            db.get_database_backend(),
            "SELECT count(*) AS n FROM record_lease",
        ))
        .await
        .expect("query")
        .expect("row")
        .try_get::<i64>("", "n")
        .expect("count");
    assert_eq!(left, 0, "a released lease leaves no row");
}
