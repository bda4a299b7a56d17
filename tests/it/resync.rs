//! Resync and replay through the admin API, against PostgreSQL and RabbitMQ with the
//! orchestrator running over in-memory systems.

use crate::support;
use tandem::store::SyncLogStore;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use poem::listener::{Acceptor as _, Listener as _};
use serde_json::{json, Value};
use tandem::api::admin::AdminState;
use tandem::api::{routes, HttpState};
use tandem::bus::rabbitmq::RabbitBus;
use tandem::bus::{Bus, BusConfig, BusMessage, Lane};
use tandem::config::Settings;
use tandem::connectors::memory::InMemorySystem;
use tandem::connectors::Connector;
use tandem::domain::{ChangeEvent, ChangeKind, EntityType, PairId, SyncPolicy, System, Trigger};
use tandem::intake::jobs::JobRunner;
use tandem::intake::WebhookIntake;
use tandem::orchestrator::{Orchestrator, PairRuntime, QueueControl, WorkerPool};
use tandem::secret::Secret;
use tandem::store::{self, Outcome, SeaStore, Store, SyncLogFilter};
use tokio_util::sync::CancellationToken;

const TOKEN: &str = "admin-token-for-the-resync-tests";

struct Running {
    base: String,
    client: reqwest::Client,
    store: Arc<SeaStore>,
    bus: Arc<RabbitBus>,
    crm: Arc<InMemorySystem>,
    finance: Arc<InMemorySystem>,
    shutdown: CancellationToken,
    _db: support::TestDatabase,
}

impl Running {
    async fn start() -> Self {
        let db = support::TestDatabase::create().await;
        let store = Arc::new(store::connect(&db.url).await.expect("connect"));
        store.migrate().await.expect("migrate");
        let url = support::amqp_url();
        let bus = Arc::new(
            RabbitBus::connect(BusConfig::new(&url, support::unique("tandem_resync")))
                .await
                .unwrap_or_else(|err| {
                    panic!(
                        "RabbitMQ is not reachable at {url}: {err}; {}",
                        support::START_RABBITMQ
                    )
                }),
        );
        let crm = Arc::new(InMemorySystem::with_latency(System::Crm, Duration::ZERO));
        let finance = Arc::new(InMemorySystem::with_latency(
            System::Finance,
            Duration::ZERO,
        ));
        let pair = PairId::new("acme");
        let policies = EntityType::ALL
            .into_iter()
            .map(|e| (e, SyncPolicy::defaults(e)))
            .collect();
        let runtime = PairRuntime {
            crm: crm.clone() as Arc<dyn Connector>,
            finance: finance.clone() as Arc<dyn Connector>,
            policies,
        };
        let orchestrator = Arc::new(Orchestrator::new(
            store.clone() as Arc<dyn Store>,
            HashMap::from([(pair.clone(), runtime)]),
            4,
        ));
        let shutdown = CancellationToken::new();
        // One worker, so the order in which lanes are served shows.
        let control = QueueControl::default();
        let pool = WorkerPool::new(
            bus.clone() as Arc<dyn Bus>,
            orchestrator,
            1,
            Duration::from_secs(5),
        )
        .with_control(control.clone());
        tokio::spawn(pool.run(shutdown.clone()));
        let connectors = HashMap::from([
            (
                (pair.clone(), System::Crm),
                crm.clone() as Arc<dyn Connector>,
            ),
            (
                (pair.clone(), System::Finance),
                finance.clone() as Arc<dyn Connector>,
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
                queue: control,
                backlog: Default::default(),
                connections: Default::default(),
                connect: None,
                file_pairs: Vec::new(),
                public_base_url: None,
            },
            admin_token: Secret::new(TOKEN),
        };
        // Bound here on port 0, so the address is known before the server runs.
        let acceptor = poem::listener::TcpListener::bind("127.0.0.1:0")
            .into_acceptor()
            .await
            .expect("bind a loopback port");
        let addr = acceptor.local_addr()[0]
            .as_socket_addr()
            .copied()
            .expect("a socket address");
        let stop = shutdown.clone();
        tokio::spawn(async move {
            let limits = tandem::api::guard::HttpLimits::default();
            tandem::api::guard::listener::serve(
                acceptor,
                routes(state, &limits),
                &limits,
                stop,
                Duration::ZERO,
            )
            .await
        });
        let base = format!("http://{addr}");
        let client = reqwest::Client::new();
        support::eventually(Duration::from_secs(10), "the server answers", || {
            let client = client.clone();
            let url = format!("{base}/openapi.json");
            async move { client.get(url).send().await.is_ok() }
        })
        .await;
        Self {
            base,
            client,
            store,
            bus,
            crm,
            finance,
            shutdown,
            _db: db,
        }
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request = self.client.request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request");
        let status = response.status().as_u16();
        let text = response.text().await.expect("body");
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// `/metrics`, checked to be Prometheus text, as sample name with labels -> value.
    async fn metrics(&self) -> std::collections::BTreeMap<String, f64> {
        let text = self
            .client
            .get(format!("{}/metrics", self.base))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("text");
        let mut samples = std::collections::BTreeMap::new();
        for line in text.lines().filter(|l| !l.is_empty()) {
            if let Some(comment) = line.strip_prefix("# ") {
                let kind = comment.split_whitespace().next();
                assert!(
                    matches!(kind, Some("HELP") | Some("TYPE")),
                    "bad comment line: {line}"
                );
                continue;
            }
            let (name, value) = line
                .rsplit_once(' ')
                .unwrap_or_else(|| panic!("no value: {line}"));
            let value: f64 = value
                .parse()
                .unwrap_or_else(|_| panic!("not a number: {line}"));
            let metric = name.split('{').next().unwrap_or_default();
            assert!(
                !metric.is_empty()
                    && metric
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
                "bad name: {line}"
            );
            if let Some(labels) = name.strip_prefix(metric) {
                assert!(
                    labels.is_empty() || (labels.starts_with('{') && labels.ends_with('}')),
                    "bad labels: {line}"
                );
            }
            samples.insert(name.to_string(), value);
        }
        samples
    }

    /// Polls an admin GET until `done` holds for its answer (within 10 s); for state
    /// another task changes, which the test cannot await.
    async fn get_until(&self, path: &str, done: impl Fn(u16, &Value) -> bool) -> Value {
        for _ in 0..100 {
            let (status, body) = self
                .call(reqwest::Method::GET, path, Some(TOKEN), None)
                .await;
            if done(status, &body) {
                return body;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("{path} did not reach the expected state within 10 s");
    }

    /// Polls the job until it is done; the job has no event to await from outside.
    async fn job_done(&self, job: &str, within: Duration) -> Value {
        let deadline = std::time::Instant::now() + within;
        loop {
            let (status, body) = self
                .call(
                    reqwest::Method::GET,
                    &format!("/api/jobs/{job}"),
                    Some(TOKEN),
                    None,
                )
                .await;
            assert_eq!(status, 200, "{body}");
            if body["status"] == "done" {
                return body;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "job not done within {within:?}: {body}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn finish(self) {
        self.shutdown.cancel();
        self.bus
            .delete_topology()
            .await
            .expect("delete test queues");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resync_of_1000_ids_answers_at_once_and_live_changes_go_first() {
    let r = Running::start().await;
    let ids: Vec<String> = (0..1000)
        .map(|n| {
            r.crm.person_creates(
                EntityType::Customer,
                [("name".to_string(), json!(format!("C{n}")))]
                    .into_iter()
                    .collect(),
            )
        })
        .collect();
    let before = r.metrics().await;
    let started = std::time::Instant::now();
    let (status, body) = r
        .call(
            reqwest::Method::POST,
            "/api/resync",
            Some(TOKEN),
            Some(json!({"pair": "acme", "system": "crm", "entity": "customer", "ids": ids})),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "answered without waiting for the syncs"
    );
    let job = body["job_id"].as_str().expect("job id").to_string();

    // A person edits a record while the resync runs: its change is a live event.
    let live = r.crm.person_creates(
        EntityType::Customer,
        [("name".to_string(), json!("Live"))].into_iter().collect(),
    );
    let event = ChangeEvent {
        event_id: "live-1".into(),
        pair: PairId::new("acme"),
        system: System::Crm,
        entity: EntityType::Customer,
        external_id: live.clone(),
        kind: ChangeKind::Upsert,
        occurred_at: Utc::now(),
        trigger: Trigger::Webhook,
        job_id: None,
        transaction_id: None,
        by_tandem: false,
    };
    r.bus
        .publish(Lane::Live, &BusMessage::ChangeV1(event))
        .await
        .expect("published");

    let last = r.job_done(&job, Duration::from_secs(120)).await;
    assert_eq!(
        (
            last["queued"].as_i64(),
            last["published"].as_i64(),
            last["failed"].as_i64()
        ),
        (Some(1000), Some(1000), Some(0)),
        "{last}"
    );
    assert_eq!(
        last["synced"].as_i64().unwrap_or(0) + last["skipped"].as_i64().unwrap_or(0),
        1000,
        "{last}"
    );

    // /metrics parses and its counters moved with the syncs. The registry is the
    // process's, which other tests' engines may share under `cargo test`: compared
    // with the scrape before the resync, not with zero.
    let after = r.metrics().await;
    let moved = |series: &str| {
        after.get(series).copied().unwrap_or(0.0) - before.get(series).copied().unwrap_or(0.0)
    };
    let created = r#"tandem_sync_outcomes_total{outcome="created"}"#;
    let received = r#"tandem_events_received_total{pair="acme",system="crm",trigger="manual"}"#;
    assert!(moved(created) >= 1000.0, "{before:?}\n{after:?}");
    assert_eq!(moved(received), 1000.0, "{before:?}\n{after:?}");
    assert!(
        after.contains_key(r#"tandem_queue_depth{lane="bulk"}"#),
        "{after:?}"
    );
    // Both lanes were drained: nothing waits, so the oldest waiting message is 0 s old.
    for lane in ["live", "bulk"] {
        let depth = after
            .get(&format!(r#"tandem_queue_depth{{lane="{lane}"}}"#))
            .copied();
        let age = after
            .get(&format!(
                r#"tandem_queue_oldest_age_seconds{{lane="{lane}"}}"#
            ))
            .copied();
        if depth == Some(0.0) {
            assert_eq!(age, Some(0.0), "{after:?}");
        } else {
            assert!(age.is_some_and(|a| a >= 0.0), "{after:?}");
        }
    }
    assert!(
        after
            .keys()
            .any(|k| k.starts_with("tandem_sync_duration_seconds_bucket")),
        "{after:?}"
    );

    // The live change was handled before the resync's tail.
    let logs = r
        .store
        .query_logs(&SyncLogFilter {
            limit: 2000,
            ..Default::default()
        })
        .await
        .expect("logs");
    let position = |id: &str| {
        logs.iter()
            .rev()
            .position(|l| l.entry.external_id == id)
            .expect("handled")
    };
    let live_at = position(&live);
    assert!(
        live_at < 900,
        "the live change was handled {live_at}th of 1001: behind the bulk tail"
    );
    r.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_errors_say_what_was_wrong() {
    let r = Running::start().await;
    let body = json!({"pair": "acme", "system": "crm", "entity": "customer", "everything": true});
    let (status, _) = r
        .call(
            reqwest::Method::POST,
            "/api/resync",
            None,
            Some(body.clone()),
        )
        .await;
    assert_eq!(status, 401, "no token");
    let (status, _) = r
        .call(
            reqwest::Method::POST,
            "/api/resync",
            Some("wrong-token"),
            Some(body),
        )
        .await;
    assert_eq!(status, 401, "wrong token");
    let (status, body) = r
        .call(
            reqwest::Method::GET,
            &format!("/api/jobs/{}", uuid::Uuid::now_v7()),
            Some(TOKEN),
            None,
        )
        .await;
    assert_eq!(status, 404, "{body}");
    let cases = [
        (
            json!({"pair": "acme", "system": "erp", "entity": "customer", "everything": true}),
            400,
            "`system` must be one of crm, finance",
        ),
        (
            json!({"pair": "acme", "system": "crm", "entity": "customer", "everything": true, "ids": ["1"]}),
            400,
            "exactly one",
        ),
        (
            json!({"pair": "acme", "system": "crm", "entity": "customer", "ids": []}),
            400,
            "1 to 1000 ids",
        ),
        (
            json!({"pair": "globex", "system": "crm", "entity": "customer", "everything": true}),
            404,
            "globex",
        ),
    ];
    for (body, expected, says) in cases {
        let (status, answer) = r
            .call(
                reqwest::Method::POST,
                "/api/resync",
                Some(TOKEN),
                Some(body.clone()),
            )
            .await;
        assert_eq!(status, expected, "{body} -> {answer}");
        assert!(
            answer.to_string().contains(says),
            "{answer} does not say `{says}`"
        );
    }
    let (status, _) = r
        .call(
            reqwest::Method::POST,
            "/api/replay",
            Some(TOKEN),
            Some(json!({"from": "2026-11-23T10:00:00Z", "to": "2026-11-23T09:00:00Z"})),
        )
        .await;
    assert_eq!(status, 400, "a window that ends before it starts");
    let response = r
        .client
        .post(format!("{}/api/resync", r.base))
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .expect("request");
    assert_eq!(response.status().as_u16(), 400, "malformed JSON");
    let unknown = uuid::Uuid::now_v7();
    let (status, body) = r
        .call(
            reqwest::Method::POST,
            &format!("/api/conflicts/{unknown}/resolve"),
            Some(TOKEN),
            Some(json!({"winner": "crm"})),
        )
        .await;
    assert_eq!(status, 404, "{body}");
    let (status, body) = r
        .call(
            reqwest::Method::POST,
            &format!("/api/conflicts/{unknown}/resolve"),
            Some(TOKEN),
            Some(json!({"winner": "both"})),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = r
        .call(
            reqwest::Method::POST,
            &format!("/api/deletes/{unknown}/approve"),
            Some(TOKEN),
            None,
        )
        .await;
    assert_eq!(status, 404, "{body}");
    let (status, spec) = r
        .call(reqwest::Method::GET, "/openapi.json", None, None)
        .await;
    assert_eq!(status, 200);
    assert!(
        spec["paths"]["/resync"].is_object() && spec["servers"][0]["url"] == "/api",
        "{spec}"
    );
    let (status, page) = r.call(reqwest::Method::GET, "/docs", None, None).await;
    let page = page.as_str().unwrap_or_default();
    assert_eq!(status, 200);
    assert!(
        page.contains("SwaggerUIBundle") && page.contains("/resync"),
        "/docs is not the API browser with the document: {}",
        &page[..page.len().min(200)]
    );
    r.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_republishes_each_record_of_a_window_once() {
    let r = Running::start().await;
    let from = Utc::now() - chrono::Duration::seconds(1);
    for n in 0..3 {
        let id = r.crm.person_creates(
            EntityType::Customer,
            [("name".to_string(), json!(format!("R{n}")))]
                .into_iter()
                .collect(),
        );
        for _ in 0..2 {
            let event = ChangeEvent {
                event_id: format!("r-{n}"),
                pair: PairId::new("acme"),
                system: System::Crm,
                entity: EntityType::Customer,
                external_id: id.clone(),
                kind: ChangeKind::Upsert,
                occurred_at: Utc::now(),
                trigger: Trigger::Webhook,
                job_id: None,
                transaction_id: None,
                by_tandem: false,
            };
            r.bus
                .publish(Lane::Live, &BusMessage::ChangeV1(event))
                .await
                .expect("published");
        }
    }
    let store = r.store.clone();
    support::eventually(Duration::from_secs(30), "six changes handled", || {
        let store = store.clone();
        async move {
            store
                .query_logs(&SyncLogFilter {
                    limit: 100,
                    ..Default::default()
                })
                .await
                .map(|l| {
                    l.iter()
                        .filter(|e| e.entry.outcome != Outcome::Received)
                        .count()
                        >= 6
                })
                .unwrap_or(false)
        }
    })
    .await;
    let to = Utc::now() + chrono::Duration::seconds(1);
    let (status, body) = r
        .call(
            reqwest::Method::POST,
            "/api/replay",
            Some(TOKEN),
            Some(json!({"from": from, "to": to, "pair": "acme"})),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let job = body["job_id"].as_str().expect("job").to_string();
    let last = r.job_done(&job, Duration::from_secs(30)).await;
    assert_eq!(
        last["queued"].as_i64(),
        Some(3),
        "one event per record: {last}"
    );
    assert_eq!(last["kind"], "replay");
    r.finish().await;
}

/// The operator's view: a failure with its details, retried after the cause is gone;
/// a record's history; 24-hour stats; the queue paused and resumed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_reads_a_failure_retries_it_and_pauses_the_queue() {
    use tandem::connectors::memory::{Failure, Operation};
    let r = Running::start().await;
    r.finance.fail_next(
        Operation::Create,
        Failure::Rejected("ContactName is required".into()),
    );
    let id = r.crm.person_creates(
        EntityType::Customer,
        [("name".to_string(), json!("Failing"))]
            .into_iter()
            .collect(),
    );
    let announce = |id: String| {
        let bus = r.bus.clone();
        async move {
            let event = ChangeEvent {
                event_id: uuid::Uuid::now_v7().to_string(),
                pair: PairId::new("acme"),
                system: System::Crm,
                entity: EntityType::Customer,
                external_id: id,
                kind: ChangeKind::Upsert,
                occurred_at: Utc::now(),
                trigger: Trigger::Webhook,
                job_id: None,
                transaction_id: None,
                by_tandem: false,
            };
            bus.publish(Lane::Live, &BusMessage::ChangeV1(event))
                .await
                .expect("published");
        }
    };
    announce(id.clone()).await;
    let record_path = format!("/api/records/acme/customer/crm/{id}");
    let record = r
        .get_until(&record_path, |_, body| {
            body["link"]["sync_status"] == "failed"
        })
        .await;
    assert_eq!(record["link"]["sync_status"], "failed", "{record}");
    let failure = &record["history"][0];
    assert_eq!(
        (failure["outcome"].as_str(), failure["status_code"].as_u64()),
        (Some("failed"), Some(400)),
        "{record}"
    );
    assert!(failure["error"]
        .as_str()
        .unwrap_or_default()
        .contains("ContactName is required"));
    assert!(
        failure["request"].is_object() && failure["response"].is_object(),
        "{failure}"
    );
    let (status, failures) = r
        .call(reqwest::Method::GET, "/api/failures", Some(TOKEN), None)
        .await;
    assert_eq!((status, failures.as_array().map(Vec::len)), (200, Some(1)));

    // A filter that matches nothing retries nothing; an unknown entity type is refused.
    let (status, retried) = r
        .call(
            reqwest::Method::POST,
            "/api/failures/retry",
            Some(TOKEN),
            Some(json!({"pair": "acme", "entity": "invoice"})),
        )
        .await;
    assert_eq!(
        (status, retried["count"].as_u64()),
        (200, Some(0)),
        "{retried}"
    );
    let (status, refused) = r
        .call(
            reqwest::Method::POST,
            "/api/failures/retry",
            Some(TOKEN),
            Some(json!({"entity": "order"})),
        )
        .await;
    assert_eq!(status, 400, "{refused}");
    assert!(refused.to_string().contains("customer"), "{refused}");

    // The cause is gone (the injected failure was used up): retry all.
    let (status, retried) = r
        .call(
            reqwest::Method::POST,
            "/api/failures/retry",
            Some(TOKEN),
            Some(json!({})),
        )
        .await;
    assert_eq!(
        (status, retried["count"].as_u64()),
        (200, Some(1)),
        "{retried}"
    );
    let synced = r
        .get_until(&record_path, |_, body| {
            body["link"]["sync_status"] == "synced"
        })
        .await;
    assert_eq!(synced["history"][0]["trigger"], "retry", "{synced}");

    let (status, stats) = r
        .call(
            reqwest::Method::GET,
            "/api/stats?window=24h",
            Some(TOKEN),
            None,
        )
        .await;
    assert_eq!(status, 200, "{stats}");
    assert_eq!(
        (
            stats["outcomes"]["failed"].as_u64(),
            stats["outcomes"]["created"].as_u64()
        ),
        (Some(1), Some(1)),
        "{stats}"
    );
    assert_eq!(stats["success_rate"].as_f64(), Some(0.5));
    let (status, _) = r
        .call(
            reqwest::Method::GET,
            "/api/stats?window=soon",
            Some(TOKEN),
            None,
        )
        .await;
    assert_eq!(status, 400);
    let (status, _) = r
        .call(
            reqwest::Method::GET,
            "/api/records/acme/customer/crm/never-seen",
            Some(TOKEN),
            None,
        )
        .await;
    assert_eq!(status, 404);
    let (status, _) = r
        .call(
            reqwest::Method::GET,
            "/api/records/acme/planet/crm/x",
            Some(TOKEN),
            None,
        )
        .await;
    assert_eq!(status, 400);
    let (status, logs) = r
        .call(
            reqwest::Method::GET,
            "/api/sync-logs?outcome=failed&limit=10",
            Some(TOKEN),
            None,
        )
        .await;
    assert_eq!(
        (status, logs.as_array().map(Vec::len)),
        (200, Some(1)),
        "{logs}"
    );
    let (status, _) = r
        .call(
            reqwest::Method::GET,
            "/api/sync-logs?limit=0",
            Some(TOKEN),
            None,
        )
        .await;
    assert_eq!(status, 400);

    // Paused: a new change waits in the queue; resumed: it is handled.
    let (status, queue) = r
        .call(reqwest::Method::POST, "/api/queue/pause", Some(TOKEN), None)
        .await;
    assert_eq!((status, queue["paused"].as_bool()), (200, Some(true)));
    let waiting = r.crm.person_creates(
        EntityType::Customer,
        [("name".to_string(), json!("Waiting"))]
            .into_iter()
            .collect(),
    );
    announce(waiting.clone()).await;
    let waiting_path = format!("/api/records/acme/customer/crm/{waiting}");
    // Showing that something does not happen takes a while of it not happening.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (status, _) = r
        .call(reqwest::Method::GET, &waiting_path, Some(TOKEN), None)
        .await;
    assert_eq!(status, 404, "handled while paused");
    let (status, queue) = r
        .call(
            reqwest::Method::POST,
            "/api/queue/resume",
            Some(TOKEN),
            None,
        )
        .await;
    assert_eq!((status, queue["paused"].as_bool()), (200, Some(false)));
    r.get_until(&waiting_path, |status, _| status == 200).await;
    r.finish().await;
}
