//! What the integration tests share: reaching the real PostgreSQL and RabbitMQ, with a
//! fresh database or queue prefix per test so tests run in parallel without meeting.
#![allow(dead_code)]

use std::future::Future;
use std::time::{Duration, Instant};

pub fn amqp_url() -> String {
    std::env::var("TANDEM_TEST_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into())
}

pub fn pg_admin_url() -> String {
    std::env::var("TANDEM_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

pub const START_RABBITMQ: &str =
    "start it with `rabbitmq-server -detached` (or point TANDEM_TEST_AMQP_URL at one)";
pub const START_POSTGRES: &str = "start it with `pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start` (or point TANDEM_TEST_PG_URL at one)";

/// A name no other test uses.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::new_v4().simple())
}

/// Polls `check` until it holds or `within` passes; for conditions nothing can be
/// awaited on (a queue depth on the broker, a row another process writes).
pub async fn eventually<F, Fut>(within: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    loop {
        if check().await {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {within:?} waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
