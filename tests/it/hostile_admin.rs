//! The admin API and the listener under hostile and careless input, through real
//! HTTP against PostgreSQL and RabbitMQ: every refusal is its status and a body of
//! exactly `{"error": "..."}` naming what was wrong and nothing internal, nothing is
//! queued or stored, and the server answers the next request.
//!
//! [`parameters`]: each kind of parameter out of its range; [`errors`]: the
//! framework's own refusals and a store that does not answer; [`listener`]: slow,
//! oversized and too many connections, and a handler that panics.

mod errors;
mod listener;
mod parameters;

use crate::support;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use poem::listener::{Acceptor as _, Listener as _};
use sea_orm::{ConnectionTrait, Statement};
use serde_json::Value;
use tandem::api::admin::AdminState;
use tandem::api::guard::{listener::serve, HttpLimits};
use tandem::api::{routes, HttpState};
use tandem::bus::rabbitmq::RabbitBus;
use tandem::bus::{Bus, BusConfig, Lane};
use tandem::config::Settings;
use tandem::connectors::memory::InMemorySystem;
use tandem::connectors::Connector;
use tandem::domain::{PairId, System};
use tandem::intake::jobs::JobRunner;
use tandem::intake::WebhookIntake;
use tandem::secret::Secret;
use tandem::store::{self, SeaStore, Store};
use tokio_util::sync::CancellationToken;

const TOKEN: &str = "admin-token-for-the-hostile-tests";

/// Small limits, so that each is reached quickly.
fn test_limits() -> HttpLimits {
    HttpLimits {
        max_connections: 64,
        header_read_timeout: Duration::from_secs(1),
        body_read_timeout: Duration::from_secs(1),
        webhook_max_body: 64 * 1024,
        max_body: 256 * 1024,
    }
}

struct Hostile {
    addr: std::net::SocketAddr,
    base: String,
    client: reqwest::Client,
    store: Arc<SeaStore>,
    bus: Arc<RabbitBus>,
    db: support::TestDatabase,
    shutdown: CancellationToken,
    _queues: support::TestQueues,
}

impl Drop for Hostile {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

impl Hostile {
    async fn start(limits: HttpLimits) -> Self {
        let db = support::TestDatabase::create().await;
        let store = Arc::new(store::connect(&db.url).await.expect("connect"));
        store.migrate().await.expect("migrate");
        let url = support::amqp_url();
        let prefix = support::unique("tandem_hostile");
        let bus = Arc::new(
            RabbitBus::connect(BusConfig::new(&url, prefix.clone()))
                .await
                .unwrap_or_else(|err| {
                    panic!(
                        "RabbitMQ is not reachable at {url}: {err}; {}",
                        support::START_RABBITMQ
                    )
                }),
        );
        let pair = PairId::new("acme");
        let connectors = HashMap::from([
            (
                (pair.clone(), System::Crm),
                Arc::new(InMemorySystem::new(System::Crm)) as Arc<dyn Connector>,
            ),
            (
                (pair.clone(), System::Finance),
                Arc::new(InMemorySystem::new(System::Finance)) as Arc<dyn Connector>,
            ),
        ]);
        let jobs = Arc::new(JobRunner::new(
            store.clone() as Arc<dyn Store>,
            bus.clone() as Arc<dyn Bus>,
            connectors,
        ));
        let state = HttpState {
            probes: vec![],
            intake: Arc::new(WebhookIntake::new(
                &Settings::default(),
                bus.clone() as Arc<dyn Bus>,
                store.clone() as Arc<dyn Store>,
            )),
            admin: AdminState {
                store: store.clone() as Arc<dyn Store>,
                bus: bus.clone() as Arc<dyn Bus>,
                jobs,
                queue: Default::default(),
                backlog: Default::default(),
                connections: Default::default(),
                // Accounts and pairs answer from the store like every other resource.
                connect: Some(Arc::new(tandem::connect::Connect::new(
                    &Default::default(),
                    Vec::new(),
                    store.clone() as Arc<dyn Store>,
                    store.clone() as Arc<dyn tandem::store::AccountStore>,
                    None,
                ))),
                file_pairs: Vec::new(),
                public_base_url: None,
            },
            admin_token: Secret::new(TOKEN),
        };
        let acceptor = poem::listener::TcpListener::bind("127.0.0.1:0")
            .into_acceptor()
            .await
            .expect("bind a loopback port");
        let addr = acceptor.local_addr()[0]
            .as_socket_addr()
            .copied()
            .expect("a socket address");
        let shutdown = CancellationToken::new();
        let stop = shutdown.clone();
        tokio::spawn(async move {
            serve(
                acceptor,
                routes(state, &limits),
                &limits,
                stop,
                Duration::ZERO,
            )
            .await
        });
        Self {
            addr,
            base: format!("http://{addr}"),
            client: reqwest::Client::new(),
            store,
            bus,
            db,
            shutdown,
            _queues: support::TestQueues::new(&prefix, ["acme"]),
        }
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, String) {
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(TOKEN);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("an answer");
        let status = response.status().as_u16();
        (status, response.text().await.expect("a body"))
    }

    /// Messages in both lanes, and rows in every table.
    async fn queued_and_stored(&self) -> (u64, i64) {
        let queued = self.bus.depth(Lane::Live).await.expect("depth")
            + self.bus.depth(Lane::Bulk).await.expect("depth");
        let db = self.store.connection();
        let mut rows = 0;
        for table in store::TABLES {
            let row = db
                .query_one(Statement::from_string(
                    db.get_database_backend(),
                    format!("SELECT count(*) AS n FROM {table}"),
                ))
                .await
                .expect("count")
                .expect("a row");
            rows += row.try_get::<i64>("", "n").expect("n");
        }
        (queued, rows)
    }

    /// Asserts a refusal: `status`, a body of exactly `{"error": "..."}` that contains
    /// each of `says` and no internal text, nothing queued or stored, and the server
    /// still answering.
    async fn assert_refused(&self, what: &str, answer: (u16, String), status: u16, says: &[&str]) {
        let (got, text) = answer;
        assert_eq!(got, status, "{what}: {text}");
        let message = error_message(what, &text);
        for words in says {
            assert!(
                message.contains(words),
                "{what}: expected the error to say {words:?}, got {message:?}"
            );
        }
        assert_nothing_internal(what, &text);
        assert_eq!(
            self.queued_and_stored().await,
            (0, 0),
            "{what}: something was kept"
        );
        self.assert_answers(what).await;
    }

    /// How many refusals of `reason` the listener has counted, from `/metrics`.
    async fn refusals(&self, reason: &str) -> u64 {
        let text = self
            .client
            .get(format!("{}/metrics", self.base))
            .bearer_auth(TOKEN)
            .send()
            .await
            .expect("an answer")
            .text()
            .await
            .expect("a body");
        support::sample(
            &text,
            &format!("tandem_http_refusals_total{{reason=\"{reason}\"}}"),
        )
    }

    /// The server still answers, on a new connection.
    async fn assert_answers(&self, what: &str) {
        let health = reqwest::Client::new()
            .get(format!("{}/health", self.base))
            .send()
            .await
            .unwrap_or_else(|err| panic!("{what}: the server no longer answers: {err}"));
        assert_eq!(health.status().as_u16(), 200, "{what}: /health");
    }
}

/// The `error` of a body that must be exactly `{"error": "..."}`.
fn error_message(what: &str, text: &str) -> String {
    let body: Value = serde_json::from_str(text)
        .unwrap_or_else(|err| panic!("{what}: the answer is not JSON ({err}): {text}"));
    assert_eq!(body.as_object().map(|o| o.len()), Some(1), "{what}: {text}");
    body["error"]
        .as_str()
        .unwrap_or_else(|| panic!("{what}: no `error` string in {text}"))
        .to_string()
}

/// No driver, SQL, framework or panic text, and no raw control character.
fn assert_nothing_internal(what: &str, text: &str) {
    let lower = text.to_lowercase();
    for internal in [
        "sqlx",
        "sea_orm",
        "sea-orm",
        "dberr",
        "select ",
        "insert ",
        "postgres",
        "syntax error",
        "panicked",
        "backtrace",
        "src/",
        "lapin",
        "invalid byte sequence",
    ] {
        assert!(
            !lower.contains(internal),
            "{what}: internal text {internal:?} in {text}"
        );
    }
    assert!(
        !text.chars().any(char::is_control),
        "{what}: a control character in {text:?}"
    );
}
