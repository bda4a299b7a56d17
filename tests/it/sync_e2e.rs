//! End to end over real HTTP: the simulated HubSpot and Xero, the whole engine
//! (`tandem serve` in process, so the test can read what the connectors sent), on
//! PostgreSQL + RabbitMQ, and once on the embedded default.

use crate::support;
use crate::support::xero_spec;

use std::sync::Arc;
use std::time::{Duration, Instant};

use rust_decimal::Decimal;
use serde_json::Value;
use sim::{CustomerEdit, CustomerSeed, SimConfig, Simulators};
use tandem::config::Settings;
use tandem::connectors::http::RequestRecorder;
use tandem::secret::Secret;
use tandem::wiring::WiringOptions;
use tokio_util::sync::CancellationToken;

use support::{eventually, unique, TestDatabase, TestSqlite};

pub(crate) const PAIR: &str = "acme";
pub(crate) const ADMIN: &str = "e2e-admin-token-0123456789abcdef";
const SETTLE: Duration = Duration::from_secs(60);

#[derive(Clone, Copy)]
pub(crate) enum Backend {
    /// PostgreSQL and RabbitMQ, as in production.
    Production,
    /// SQLite and the in-process bus.
    Embedded,
}

/// The simulators and the whole engine in process, over real HTTP.
pub(crate) struct World {
    pub(crate) sims: Arc<Simulators>,
    pub(crate) settings: Settings,
    pub(crate) base: String,
    pub(crate) recorder: Arc<RequestRecorder>,
    stop_sims: CancellationToken,
    engine: Option<(
        CancellationToken,
        tokio::task::JoinHandle<anyhow::Result<()>>,
    )>,
    pub(crate) http: reqwest::Client,
    _pg: Option<TestDatabase>,
    _sqlite: Option<TestSqlite>,
    _queues: Option<support::TestQueues>,
}

impl World {
    pub(crate) async fn start(backend: Backend) -> Self {
        Self::start_with(backend, SimConfig::default()).await
    }

    async fn start_with(backend: Backend, config: SimConfig) -> Self {
        Self::start_with_pair(backend, config, |_| {}).await
    }

    /// Starts with the pair's settings adjusted by `adjust` (its conflict policy, say).
    pub(crate) async fn start_with_pair(
        backend: Backend,
        config: SimConfig,
        adjust: impl FnOnce(&mut tandem::config::PairSettings),
    ) -> Self {
        let stop_sims = CancellationToken::new();
        let sims = Simulators::start_local(config, stop_sims.clone())
            .await
            .expect("simulators start");
        // Strict rotation: a spent refresh token is refused at once.
        sims.xero.set_refresh_grace(Duration::ZERO);
        let mut settings = Settings::default();
        settings.bus.prefix = unique("e2e");
        let mut queues = None;
        let (pg, sqlite) = match backend {
            Backend::Production => {
                let db = TestDatabase::create().await;
                settings.database_url = db.url.clone();
                settings.amqp_url = support::amqp_url();
                // Production keeps OAuth tokens sealed under a key the settings name.
                let key = tandem::seal::SecretsKey::generate().expect("key");
                settings.secrets_key = Some(Secret::new(key.to_base64().as_str()));
                queues = Some(support::TestQueues::new(&settings.bus.prefix, [PAIR]));
                (Some(db), None)
            }
            Backend::Embedded => {
                let db = TestSqlite::create();
                settings.database_url = db.url.clone();
                settings.amqp_url = "memory".into();
                (None, Some(db))
            }
        };
        // The simulators sign the URL they call: Tandem's own address, whose port (0
        // here) is the one it binds.
        settings.webhooks.public_base_url = Some("http://127.0.0.1:0".into());
        settings.admin_token = Some(Secret::new(ADMIN));
        settings.orchestrator.workers = 32;
        let mut pair = tandem::demo::pair_for(&sims, 2);
        for side in [pair.crm.as_mut(), pair.finance.as_mut()]
            .into_iter()
            .flatten()
        {
            // Wide enough that changes made together share one batch call.
            side.batch_window_ms = 100;
        }
        adjust(&mut pair);
        settings.pairs.insert(PAIR.into(), pair);
        settings.validate().expect("valid settings");
        let mut world = Self {
            sims,
            settings,
            // Each start of the engine binds a port of its own and says which.
            base: String::new(),
            recorder: Arc::new(RequestRecorder::default()),
            stop_sims,
            engine: None,
            http: reqwest::Client::new(),
            _pg: pg,
            _sqlite: sqlite,
            _queues: queues,
        };
        world.start_engine().await;
        world
    }

    async fn start_engine(&mut self) {
        let stop = CancellationToken::new();
        let options = WiringOptions {
            recorder: Some(self.recorder.clone()),
            ..Default::default()
        };
        let (task, base) =
            support::serve_in_process(self.settings.clone(), options, stop.clone()).await;
        self.base = base;
        tandem::demo::wait_until_up(&self.base, Duration::from_secs(30))
            .await
            .expect("tandem answers");
        let (crm, finance) = tandem::demo::webhook_urls(&self.base, PAIR);
        self.sims.send_webhooks_to(Some(crm), Some(finance));
        self.engine = Some((stop, task));
    }

    pub(crate) async fn stop_engine(&mut self) {
        self.sims.send_webhooks_to(None, None);
        if let Some((stop, task)) = self.engine.take() {
            stop.cancel();
            task.await
                .expect("engine task")
                .expect("engine stops cleanly");
        }
    }

    /// Waits until the simulators' inspection satisfies `check`.
    pub(crate) async fn until(&self, what: &str, check: impl Fn(&sim::Inspection) -> bool) {
        let sims = self.sims.clone();
        eventually(SETTLE, what, || {
            let ok = check(&sims.inspect());
            async move { ok }
        })
        .await;
    }

    pub(crate) async fn admin(&self, path: &str) -> Value {
        self.http
            .get(format!("{}{path}", self.base))
            .bearer_auth(ADMIN)
            .send()
            .await
            .expect("admin API answers")
            .json()
            .await
            .expect("admin API JSON")
    }
}

impl World {
    /// Every request sent to Xero so far conforms to Xero's published OpenAPI spec.
    pub(crate) fn assert_xero_requests_conform(&self) {
        let sent: Vec<_> = self
            .recorder
            .sent()
            .into_iter()
            .filter(|r| r.system == tandem::domain::System::Finance)
            .collect();
        assert!(!sent.is_empty(), "the test sent Xero requests");
        xero_spec::XeroSpec::load().assert_conforms(&sent);
    }
}

impl Drop for World {
    fn drop(&mut self) {
        if let Some((stop, engine)) = self.engine.take() {
            stop.cancel();
            // The engine stops before its queues are deleted (the fields drop after
            // this): a consumer still running would declare them again.
            support::on_own_runtime(async move {
                let _ = tokio::time::timeout(Duration::from_secs(30), engine).await;
            });
        }
        self.stop_sims.cancel();
    }
}

fn person(n: usize, tag: &str) -> CustomerSeed {
    CustomerSeed {
        name: format!("Person {tag}{n}"),
        email: format!("person.{tag}{n}@example.com").to_lowercase(),
        phone: Some(format!("+1 555 01{n:02}")),
    }
}

fn in_step(seen: &sim::Inspection) -> bool {
    seen.in_step
}

async fn customers_reach_the_other_side(backend: Backend) {
    let mut world = World::start(backend).await;
    let crm_ids: Vec<String> = (0..3)
        .map(|n| world.sims.hubspot.person_creates_customer(&person(n, "c")))
        .collect();
    let xero_ids: Vec<String> = (0..3)
        .map(|n| world.sims.xero.person_creates_contact(&person(n, "x")))
        .collect();
    let shared = person(9, "s");
    world.sims.hubspot.person_creates_customer(&shared);
    world.sims.xero.person_creates_contact(&shared);
    world
        .until("7 customers on each side, all in step", |s| {
            in_step(s)
                && s.customers.paired == 7
                && s.customers.crm == 7
                && s.customers.finance == 7
        })
        .await;

    world.sims.hubspot.person_edits_customer(
        &crm_ids[0],
        &CustomerEdit {
            name: Some("Renamed In CRM".into()),
            ..Default::default()
        },
    );
    world.sims.xero.person_edits_contact(
        &xero_ids[1],
        &CustomerEdit {
            phone: Some("+1 555 9999".into()),
            ..Default::default()
        },
    );
    let sims = world.sims.clone();
    world
        .until("both edits reached the other side", move |s| {
            let xero = sims.xero.customers();
            let crm = sims.hubspot.customers();
            in_step(s)
                && xero
                    .iter()
                    .any(|c| c.name.as_deref() == Some("Renamed In CRM"))
                && crm
                    .iter()
                    .any(|c| c.phone.as_deref() == Some("+1 555 9999"))
        })
        .await;
    let seen = world.sims.inspect();
    assert_eq!(
        (seen.customers.crm, seen.customers.finance),
        (7, 7),
        "no duplicate on either side"
    );
    world.assert_xero_requests_conform();
    // Stopped before the queues go, so the engine cannot declare them again.
    world.stop_engine().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn customers_created_and_edited_on_each_side_reach_the_other() {
    customers_reach_the_other_side(Backend::Production).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn customers_sync_both_ways_on_the_embedded_default() {
    customers_reach_the_other_side(Backend::Embedded).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_won_deal_becomes_a_draft_invoice_and_a_payment_marks_the_crm_side_paid() {
    deal_to_invoice_to_payment(Backend::Production).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_won_deal_is_invoiced_and_paid_on_the_embedded_default() {
    deal_to_invoice_to_payment(Backend::Embedded).await;
}

async fn deal_to_invoice_to_payment(backend: Backend) {
    let mut world = World::start(backend).await;
    let customer = world.sims.hubspot.person_creates_customer(&person(1, "d"));
    let deal = world.sims.hubspot.person_wins_deal(
        &customer,
        "Consulting",
        &[("Consulting".into(), Decimal::from(3), Decimal::from(150))],
    );
    let sims = world.sims.clone();
    world
        .until("a DRAFT invoice in Xero for the deal", move |_| {
            sims.xero.invoices().iter().any(|i| {
                i.stamp.as_deref() == Some(deal.as_str()) && i.status.as_deref() == Some("draft")
            })
        })
        .await;
    let invoice = world
        .sims
        .xero
        .invoices()
        .into_iter()
        .find(|i| i.stamp.is_some())
        .expect("the invoice");
    assert_eq!(invoice.total.as_deref(), Some("450"));
    let contact = world
        .sims
        .xero
        .customers()
        .into_iter()
        .find(|c| c.stamp.as_deref() == Some(customer.as_str()))
        .expect("the customer was synced first");
    assert_eq!(
        invoice.customer.as_deref(),
        Some(contact.id.as_str()),
        "the invoice names the synced contact"
    );

    world
        .sims
        .xero
        .person_pays_invoice(&invoice.id, Decimal::from(450))
        .expect("payment");
    let sims = world.sims.clone();
    world
        .until("the CRM deal shows paid", move |_| {
            sims.hubspot.invoices().iter().any(|i| {
                i.status.as_deref() == Some("paid") && i.amount_paid.as_deref() == Some("450")
            })
        })
        .await;
    assert_eq!(
        world.sims.xero.invoices().len(),
        1,
        "one invoice, no duplicate"
    );
    world.assert_xero_requests_conform();
    // Stopped before the queues go, so the engine cannot declare them again.
    world.stop_engine().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_expired_token_is_refreshed_once_and_the_rotated_refresh_token_survives_a_restart() {
    let mut world = World::start(Backend::Production).await;
    world.sims.hubspot.person_creates_customer(&person(0, "t"));
    world
        .until("the first customer synced", |s| {
            in_step(s) && s.customers.paired == 1
        })
        .await;
    let refreshes = world.sims.xero.token_refreshes();
    assert_eq!(refreshes, 1, "one refresh to get the first access token");

    world.sims.xero.expire_access_tokens();
    for n in 1..=10 {
        world.sims.hubspot.person_creates_customer(&person(n, "t"));
    }
    world
        .until("ten more customers synced", |s| {
            in_step(s) && s.customers.paired == 11
        })
        .await;
    assert_eq!(
        world.sims.xero.token_refreshes(),
        refreshes + 1,
        "ten changes needing a token after expiry cause one refresh"
    );

    // A restart holds only the settings' first refresh token, which Xero has spent: the
    // rotated one must come from the store.
    world.stop_engine().await;
    world.sims.xero.expire_access_tokens();
    world.start_engine().await;
    world.sims.hubspot.person_creates_customer(&person(20, "t"));
    world
        .until("a customer synced after the restart", |s| {
            in_step(s) && s.customers.paired == 12
        })
        .await;
    assert_eq!(world.sims.xero.token_refreshes(), refreshes + 2);
    world.assert_xero_requests_conform();
    // Stopped before the queues go, so the engine cannot declare them again.
    world.stop_engine().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_429_pauses_the_connection_and_the_change_still_syncs() {
    let mut world = World::start(Backend::Production).await;
    world.sims.hubspot.person_creates_customer(&person(0, "r"));
    world
        .until("the first customer synced", |s| {
            in_step(s) && s.customers.paired == 1
        })
        .await;

    let retry_after = Duration::from_secs(2);
    world.sims.xero.force_429_next(retry_after);
    let before = world.sims.xero.calls().len();
    world.sims.hubspot.person_creates_customer(&person(1, "r"));
    world
        .until("the second customer synced", |s| {
            in_step(s) && s.customers.paired == 2
        })
        .await;

    let calls = world.sims.xero.calls();
    let after: Vec<_> = calls[before..].iter().collect();
    let refused = after
        .iter()
        .position(|c| c.status == 429)
        .expect("the forced 429 was answered");
    let refused_at: Instant = after[refused].finished;
    let next = after.get(refused + 1).expect("a call after the 429");
    assert!(
        next.at >= refused_at + retry_after - Duration::from_millis(50),
        "no call before Retry-After elapsed: the next came {:?} after the 429",
        next.at.duration_since(refused_at)
    );
    world.assert_xero_requests_conform();
    // Stopped before the queues go, so the engine cannot declare them again.
    world.stop_engine().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_batch_with_one_invalid_item_syncs_the_others_and_fails_only_that_one() {
    let mut world = World::start(Backend::Production).await;
    let mut bad = person(2, "b");
    bad.email = "not-an-email".into();
    let good_a = world.sims.hubspot.person_creates_customer(&person(0, "b"));
    let good_b = world.sims.hubspot.person_creates_customer(&person(1, "b"));
    let bad_id = world.sims.hubspot.person_creates_customer(&bad);
    let sims = world.sims.clone();
    let (a, b) = (good_a.clone(), good_b.clone());
    world
        .until("the two valid customers in Xero", move |_| {
            let stamps: Vec<_> = sims
                .xero
                .customers()
                .into_iter()
                .filter_map(|c| c.stamp)
                .collect();
            stamps.contains(&a) && stamps.contains(&b)
        })
        .await;
    let failures = {
        let mut found = Value::Null;
        let deadline = Instant::now() + SETTLE;
        while Instant::now() < deadline {
            let answer = world.admin("/api/failures").await;
            if answer.to_string().contains(&bad_id) {
                found = answer;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        found
    };
    let text = failures.to_string();
    assert!(
        text.contains("Email address must be valid"),
        "the item's own error is shown: {text}"
    );
    assert!(
        !text.contains(&good_a) && !text.contains(&good_b),
        "only the invalid one failed: {text}"
    );
    assert!(
        !world
            .sims
            .xero
            .customers()
            .iter()
            .any(|c| c.stamp.as_deref() == Some(bad_id.as_str())),
        "the invalid one was not created"
    );
    let batched = world.recorder.sent().into_iter().any(|r| {
        r.method == "PUT"
            && r.body
                .as_ref()
                .and_then(|b| b["Contacts"].as_array())
                .is_some_and(|items| {
                    items.len() >= 2 && items.iter().any(|c| c["EmailAddress"] == "not-an-email")
                })
    });
    assert!(
        batched,
        "the invalid item travelled in one batch call with a valid one"
    );
    world.assert_xero_requests_conform();
    // Stopped before the queues go, so the engine cannot declare them again.
    world.stop_engine().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_record_history_holds_the_whole_chain_under_one_transaction_id() {
    let mut world = World::start(Backend::Production).await;
    let id = world.sims.hubspot.person_creates_customer(&person(0, "h"));
    let path = format!("/api/records/{PAIR}/customer/crm/{id}");
    let is_echo = |e: &Value| {
        e["outcome"] == "skipped"
            && e["system"] == "finance"
            && e["detail"].as_str().unwrap_or_default().contains("echo")
    };
    let mut record = Value::Null;
    let deadline = Instant::now() + SETTLE;
    while Instant::now() < deadline {
        record = world.admin(&path).await;
        // The CRM's webhook may come after a poll found the record first; then it is
        // logged when its settling wait ends, under the same transaction.
        let crm_webhook = |e: &Value| {
            e["outcome"] == "received" && e["system"] == "crm" && e["trigger"] == "webhook"
        };
        if record["history"]
            .as_array()
            .is_some_and(|h| h.iter().any(is_echo) && h.iter().any(crm_webhook))
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let history = record["history"].as_array().cloned().unwrap_or_default();
    let created = history
        .iter()
        .find(|e| e["outcome"] == "created")
        .unwrap_or_else(|| panic!("a create in the history: {record}"));
    let transaction = &created["transaction_id"];
    assert!(
        created["request"].is_object() && created["response"].is_object(),
        "{created}"
    );
    let chain: Vec<&Value> = history
        .iter()
        .filter(|e| e["transaction_id"] == *transaction)
        .collect();
    let has = |outcome: &str, system: &str, trigger: Option<&str>| {
        chain.iter().any(|e| {
            e["outcome"] == outcome
                && e["system"] == system
                && trigger.is_none_or(|t| e["trigger"] == t)
        })
    };
    assert!(
        has("received", "crm", Some("webhook")),
        "the webhook that started it: {record}"
    );
    assert!(
        has("created", "crm", None),
        "the decision and its write: {record}"
    );
    assert!(
        has("received", "finance", None),
        "the echo announced: {record}"
    );
    assert!(
        chain.iter().any(|e| is_echo(e)),
        "the echo skipped, in the same transaction: {record}"
    );
    world.stop_engine().await;
}
