//! `tandem migrate` and `tandem serve` as a person runs them, against the real
//! PostgreSQL and RabbitMQ, and on the embedded default.

use crate::support;

use std::process::Command;

use serde_json::Value;
use support::{TandemProcess, TestDatabase, TestSqlite};
use tandem::bus::rabbitmq::RabbitBus;
use tandem::bus::BusConfig;
use tandem::store;

fn migrate_command(database_url: &str) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tandem"));
    command
        .arg("migrate")
        .env("TANDEM_DATABASE_URL", database_url)
        .env_remove("TANDEM_CONFIG")
        .current_dir(std::env::temp_dir());
    command
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_creates_every_table_once_even_when_run_together() {
    let db = TestDatabase::create().await;
    // Two processes started at the same moment on an empty database.
    let (mut first, mut second) = (
        migrate_command(&db.url).spawn().expect("spawn"),
        migrate_command(&db.url).spawn().expect("spawn"),
    );
    assert!(
        first.wait().expect("wait").success(),
        "first concurrent migrate failed"
    );
    assert!(
        second.wait().expect("wait").success(),
        "second concurrent migrate failed"
    );
    let store = store::connect(&db.url).await.expect("connect");
    let tables = store.table_names().await.expect("tables");
    for table in store::TABLES {
        assert!(
            tables.iter().any(|t| t == table),
            "table `{table}` missing from {tables:?}"
        );
    }
    // A third run has nothing to do and changes nothing.
    let before = schema_fingerprint(&store).await;
    assert!(migrate_command(&db.url).status().expect("run").success());
    assert_eq!(schema_fingerprint(&store).await, before);
}

async fn schema_fingerprint(store: &store::SeaStore) -> Vec<String> {
    use sea_orm::{ConnectionTrait, Statement};
    let db = store.connection();
    let rows = db
        .query_all(Statement::from_string(
            db.get_database_backend(),
            "SELECT table_name || '.' || column_name || ':' || data_type AS c FROM information_schema.columns \
             WHERE table_schema = current_schema() ORDER BY 1",
        ))
        .await
        .expect("columns");
    let mut fingerprint: Vec<String> = rows
        .iter()
        .map(|r| r.try_get::<String>("", "c").expect("c"))
        .collect();
    let migrations = db
        .query_all(Statement::from_string(
            db.get_database_backend(),
            "SELECT version FROM seaql_migrations ORDER BY 1",
        ))
        .await
        .expect("migrations");
    fingerprint.extend(
        migrations
            .iter()
            .map(|r| r.try_get::<String>("", "version").expect("version")),
    );
    fingerprint
}

async fn get_json(url: &str) -> (u16, Value) {
    let response = reqwest::get(url).await.expect("request");
    let status = response.status().as_u16();
    (status, response.json().await.expect("json body"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_on_postgres_and_rabbitmq_is_ready_and_stops_on_sigterm() {
    let db = TestDatabase::create().await;
    let prefix = support::unique("tandem_serve");
    let mut tandem = TandemProcess::start(
        &["serve"],
        &[
            ("TANDEM_DATABASE_URL", db.url.clone()),
            ("TANDEM_AMQP_URL", support::amqp_url()),
            ("TANDEM_BUS__PREFIX", prefix.clone()),
        ],
    )
    .await;
    let (status, body) = get_json(&format!("{}/health", tandem.base_url)).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("ok")));
    let (status, body) = get_json(&format!("{}/ready", tandem.base_url)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["checked"], serde_json::json!(["database", "rabbitmq"]));
    assert_eq!(tandem.terminate(), Some(0), "a clean exit on SIGTERM");

    let bus = RabbitBus::connect(BusConfig::new(support::amqp_url(), prefix))
        .await
        .expect("connect");
    bus.delete_topology().await.expect("delete test queues");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_on_the_embedded_default_is_ready() {
    let db = TestSqlite::create();
    let mut tandem =
        TandemProcess::start(&["serve"], &[("TANDEM_DATABASE_URL", db.url.clone())]).await;
    let (status, body) = get_json(&format!("{}/ready", tandem.base_url)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["checked"],
        serde_json::json!(["database", "in-process bus"])
    );
    assert_eq!(tandem.terminate(), Some(0));
}

fn tandem_command(args: &[&str], env: &[(&str, String)]) -> std::process::Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tandem"));
    for (key, _) in std::env::vars() {
        if key.starts_with("TANDEM_") && !key.starts_with("TANDEM_TEST_") {
            command.env_remove(key);
        }
    }
    command
        .args(args)
        .envs(env.iter().map(|(k, v)| (*k, v.clone())))
        .current_dir(std::env::temp_dir());
    command.output().expect("run tandem")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resync_and_replay_from_the_command_line_ask_the_running_server() {
    let db = TestSqlite::create();
    let token = "command-line-admin-token".to_string();
    let tandem = TandemProcess::start(
        &["serve"],
        &[
            ("TANDEM_DATABASE_URL", db.url.clone()),
            ("TANDEM_ADMIN_TOKEN", token.clone()),
        ],
    )
    .await;
    let env = [
        ("TANDEM_URL", tandem.base_url.clone()),
        ("TANDEM_ADMIN_TOKEN", token.clone()),
    ];
    // An empty window: the job is done at once.
    let replay = tandem_command(
        &[
            "replay",
            "--from",
            "2026-11-23T09:00:00Z",
            "--to",
            "2026-11-23T10:00:00Z",
            "--wait",
        ],
        &env,
    );
    let stdout = String::from_utf8_lossy(&replay.stdout);
    assert!(
        replay.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&replay.stderr)
    );
    assert!(
        stdout.contains("started") && stdout.contains("done: queued 0"),
        "{stdout}"
    );
    // A pair the server does not know: the server's reason, and a failing exit.
    let resync = tandem_command(
        &[
            "resync",
            "--pair",
            "globex",
            "--system",
            "crm",
            "--entity",
            "customer",
            "--everything",
        ],
        &env,
    );
    let stderr = String::from_utf8_lossy(&resync.stderr);
    assert!(!resync.status.success());
    assert!(
        stderr.contains("404") && stderr.contains("globex"),
        "{stderr}"
    );
    // The queue and the last 24 hours.
    let status = tandem_command(&["status"], &env);
    let stdout = String::from_utf8_lossy(&status.stdout);
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    assert!(
        stdout.contains("queue: live 0, bulk 0") && stdout.contains("last 24h: 0 finished"),
        "{stdout}"
    );
    // The wrong token is refused.
    let wrong = tandem_command(
        &[
            "replay",
            "--from",
            "2026-11-23T09:00:00Z",
            "--to",
            "2026-11-23T10:00:00Z",
        ],
        &[
            ("TANDEM_URL", tandem.base_url.clone()),
            ("TANDEM_ADMIN_TOKEN", "not-the-admin-token".into()),
        ],
    );
    assert!(
        String::from_utf8_lossy(&wrong.stderr).contains("401"),
        "{}",
        String::from_utf8_lossy(&wrong.stderr)
    );
}

/// A smoke run of the benchmark: every scenario runs about a second with small numbers
/// and writes valid JSON with the keys the docs quote. Speed is not asserted; `tandem
/// bench` measures it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_smoke_run_writes_valid_json() {
    let db = TestDatabase::create().await;
    let out = std::env::temp_dir().join(support::unique("tandem_bench"));
    let output = tandem_command(
        &[
            "bench",
            "--scenarios",
            "ingest,backfill,e2e,economy,memory",
            "--seconds",
            "1",
            "--concurrency",
            "1,4",
            "--customers",
            "60",
            "--rate",
            "40",
            "--rates",
            "40,80",
            "--workers",
            "16",
            "--out",
            &out.display().to_string(),
        ],
        &[
            ("TANDEM_DATABASE_URL", db.url.clone()),
            ("TANDEM_AMQP_URL", support::amqp_url()),
        ],
    );
    assert!(
        output.status.success(),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("rate limits off") && stdout.contains("workers"),
        "the output says how the simulators and the engine ran: {stdout}"
    );
    let written: Vec<_> = std::fs::read_dir(&out)
        .expect("results folder")
        .map(|entry| entry.expect("entry").path())
        .collect();
    assert_eq!(written.len(), 5, "one JSON file per scenario: {written:?}");
    let read = |scenario: &str| -> Value {
        let path = written
            .iter()
            .find(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(&format!("{scenario}-")))
            })
            .unwrap_or_else(|| panic!("no {scenario} results in {written:?}"));
        serde_json::from_slice(&std::fs::read(path).expect("read")).expect("valid JSON")
    };
    let backfill = read("backfill");
    assert_eq!(backfill["scenario"], "rate_limited_backfill");
    assert_eq!(backfill["report"]["created_in_xero"], 60, "{backfill}");
    let document = read("ingest");
    let steps = document["report"]["steps"].as_array().expect("steps");
    assert_eq!(
        steps
            .iter()
            .map(|s| s["concurrency"].as_u64())
            .collect::<Vec<_>>(),
        vec![Some(1), Some(4)]
    );
    assert!(
        steps
            .iter()
            .all(|s| s["deliveries"].as_u64().unwrap_or(0) > 0 && s["failed"] == 0),
        "{document}"
    );
    assert!(
        document["report"]["rabbitmq_confirm_100_in_flight_per_second"]
            .as_f64()
            .unwrap_or(0.0)
            > 0.0
    );

    let e2e = read("e2e");
    assert_eq!(e2e["scenario"], "end_to_end_sync");
    let report = &e2e["report"];
    assert_eq!(report["engine"]["workers"], 16, "{e2e}");
    assert_eq!(report["engine"]["connector_limits"], "lifted", "{e2e}");
    assert_eq!(report["customers"], 60, "{e2e}");
    assert!(report["fixed"]["edits"].as_u64().unwrap_or(0) > 0, "{e2e}");
    assert!(
        report["fixed"]["arrived"].as_u64().unwrap_or(0) > 0,
        "some edit reached the other side: {e2e}"
    );
    for key in ["p50_ms", "p99_ms", "max_ms"] {
        assert!(report["fixed"]["latency"][key].is_number(), "{key}: {e2e}");
    }
    for key in [
        "offered_per_second",
        "completed_per_second",
        "writes_per_change",
        "peak_rss_mib",
        "kept_up",
    ] {
        assert!(!report["fixed"][key].is_null(), "{key}: {e2e}");
    }
    assert!(!report["steps"].as_array().expect("steps").is_empty());
    for key in [
        "highest_sustained_per_second",
        "fixed_goal_met",
        "sustained_goal_met",
    ] {
        assert!(!report[key].is_null(), "{key}: {e2e}");
    }

    let economy = read("economy");
    assert_eq!(economy["scenario"], "api_economy");
    let checks = economy["report"]["checks"].as_array().expect("checks");
    assert_eq!(
        checks
            .iter()
            .map(|c| c["name"].as_str().unwrap_or_default())
            .collect::<Vec<_>>(),
        vec![
            "one_write_per_change",
            "no_write_for_echoes",
            "triple_delivery_one_write",
            "ten_edits_in_a_second"
        ]
    );
    assert!(
        checks
            .iter()
            .all(|c| c["writes"].is_u64() && c["passed"].is_boolean()),
        "{economy}"
    );

    let memory = read("memory");
    assert_eq!(memory["scenario"], "memory");
    let report = &memory["report"];
    for key in [
        "idle_after_start_mib",
        "idle_after_first_sync_mib",
        "peak_under_load_mib",
    ] {
        assert!(
            report[key].as_f64().unwrap_or(0.0) > 0.0,
            "{key} is a reading: {memory}"
        );
    }
    assert!(report["samples"].as_u64().unwrap_or(0) > 10, "{memory}");
    let _ = std::fs::remove_dir_all(&out);
}
