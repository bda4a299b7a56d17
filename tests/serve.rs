//! `tandem migrate` and `tandem serve` as a person runs them, against the real
//! PostgreSQL and RabbitMQ, and on the embedded default.

mod support;

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
