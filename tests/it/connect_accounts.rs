//! Connecting real accounts through the admin API alone, over real HTTP, with the
//! simulators as HubSpot's and Xero's identity servers: start with no pair, connect
//! HubSpot, connect Xero picking the second of two organisations, make a pair and see
//! a customer sync; the user revokes Tandem's access in Xero and the pair waits as
//! `needs_reconnecting` instead of failing its changes; connecting Xero again resumes
//! it; a restart keeps the pair. Bad paths answer a JSON error and store nothing.

use std::time::Duration;

use serde_json::{json, Value};
use sim::{CustomerSeed, SimConfig, Simulators};
use tokio_util::sync::CancellationToken;

use crate::support::{self, in_xero, TestDatabase, TestSqlite};

const ADMIN: &str = "connect-test-admin-token";

/// Where the engine keeps its state: the embedded default, or production's PostgreSQL
/// and RabbitMQ.
pub(crate) struct Backend {
    pub(crate) database_url: String,
    pub(crate) amqp_url: String,
    pub(crate) prefix: String,
    pub(crate) secrets_key: Option<tandem::secret::Secret>,
    _pg: Option<TestDatabase>,
    _sqlite: Option<TestSqlite>,
    _queues: Option<support::TestQueues>,
}

impl Backend {
    pub(crate) fn embedded() -> Self {
        let db = TestSqlite::create();
        Self {
            database_url: db.url.clone(),
            amqp_url: "memory".into(),
            prefix: support::unique("connect"),
            secrets_key: None,
            _pg: None,
            _sqlite: Some(db),
            _queues: None,
        }
    }

    pub(crate) async fn production() -> Self {
        Self::production_of(&["acme"]).await
    }

    /// On PostgreSQL and RabbitMQ, with the queues of `pairs` removed afterwards.
    pub(crate) async fn production_of(pairs: &[&str]) -> Self {
        let db = TestDatabase::create().await;
        let prefix = support::unique("connect");
        let key = tandem::seal::SecretsKey::generate().expect("key");
        Self {
            database_url: db.url.clone(),
            amqp_url: support::amqp_url(),
            _queues: Some(support::TestQueues::new(&prefix, pairs.iter().copied())),
            prefix,
            secrets_key: Some(tandem::secret::Secret::new(key.to_base64().as_str())),
            _pg: Some(db),
            _sqlite: None,
        }
    }
}

fn settings(sims: &Simulators, backend: &Backend) -> tandem::config::Settings {
    let mut settings = tandem::config::Settings {
        database_url: backend.database_url.clone(),
        amqp_url: backend.amqp_url.clone(),
        admin_token: Some(tandem::secret::Secret::new(ADMIN)),
        secrets_key: backend.secrets_key.clone(),
        ..Default::default()
    };
    settings.bus.prefix = backend.prefix.clone();
    settings.orchestrator.settle_ms = 0;
    // The webhook URLs each pair shows; port 0 stands for the port Tandem binds.
    settings.webhooks.public_base_url = Some("http://127.0.0.1:0".into());
    // The demo's apps: the simulators' consent pages and token endpoints.
    settings.connect = tandem::demo::connect_for(sims, "http://127.0.0.1:0/connect/callback");
    settings
}

struct Api {
    base: String,
    http: reqwest::Client,
}

impl Api {
    fn new(base: String) -> Self {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client");
        Self { base, http }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(ADMIN);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let answer = request.send().await.expect("admin API");
        let status = answer.status().as_u16();
        (status, answer.json().await.unwrap_or(Value::Null))
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        self.call(reqwest::Method::GET, path, None).await
    }

    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }

    /// Starts a connect, answers the consent page as a person would (`allow` or
    /// `deny`), follows the service's redirect to Tandem's callback and answers what
    /// the callback said.
    async fn connect(&self, kind: &str, decision: &str) -> (u16, Value) {
        let (status, started) = self
            .post(&format!("/api/accounts/connect/{kind}"), json!({}))
            .await;
        assert_eq!(status, 201, "{started}");
        let authorize = started["authorize_url"].as_str().expect("authorize_url");
        let url = reqwest::Url::parse(authorize).expect("url");
        let pairs: Vec<(String, String)> = url
            .query_pairs()
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        let query = |name: &str| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        assert_eq!(query("code_challenge_method"), "S256");
        assert_eq!(query("state"), started["state"].as_str().expect("state"));
        assert!(query("redirect_uri").ends_with("/connect/callback"));
        let page = self.http.get(authorize).send().await.expect("consent page");
        assert_eq!(page.status(), 200);
        let mut form = pairs.clone();
        form.retain(|(k, _)| k != "response_type");
        form.push(("decision".into(), decision.into()));
        let mut endpoint = url.clone();
        endpoint.set_query(None);
        let answer = self
            .http
            .post(endpoint)
            .form(&form)
            .send()
            .await
            .expect("consent");
        assert_eq!(answer.status(), 303);
        let back = answer.headers()["location"]
            .to_str()
            .expect("location")
            .to_string();
        assert!(back.starts_with(&self.base), "{back}");
        let callback = self.http.get(back).send().await.expect("callback");
        let status = callback.status().as_u16();
        (
            status,
            callback.json().await.expect("JSON from the callback"),
        )
    }

    /// Connects Xero and picks the organisation offered second.
    async fn connect_xero_second(&self) -> Value {
        let (status, answer) = self.connect("xero", "allow").await;
        assert_eq!(status, 200, "{answer}");
        let choose = &answer["choose_organisation"];
        let organisations = choose["organisations"].as_array().expect("organisations");
        assert_eq!(organisations.len(), 2, "never picked silently: {answer}");
        let choice = choose["choice"].as_str().expect("choice");
        let tenant = organisations[1]["tenant_id"].as_str().expect("tenant");
        let (status, account) = self
            .post(
                &format!("/api/accounts/choices/{choice}"),
                json!({ "tenant_id": tenant }),
            )
            .await;
        assert_eq!(status, 200, "{account}");
        account
    }
}

/// Registers the pair's webhook URLs in the simulated apps, as its user would in
/// HubSpot's and Xero's: each must be one of Tandem's own.
fn register_webhooks(sims: &Simulators, pair: &Value, base: &str) {
    let url = |side: &str| {
        pair["webhooks"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|w| w["side"] == side)
            .and_then(|w| w["url"].as_str())
            .unwrap_or_else(|| panic!("no {side} webhook URL shown: {pair}"))
            .to_string()
    };
    let (crm, finance) = (url("crm"), url("finance"));
    assert!(
        crm.starts_with(base) && finance.starts_with(base),
        "{crm} {finance}"
    );
    sims.send_webhooks_to(Some(crm), Some(finance));
}

/// `tandem <args>` against the server at `base`: exit code, stdout and stderr.
async fn cli(base: &str, args: &[&str]) -> (i32, String, String) {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_tandem"));
    for (key, _) in std::env::vars() {
        if key.starts_with("TANDEM_") {
            command.env_remove(key);
        }
    }
    command
        .args(args)
        .current_dir(std::env::temp_dir())
        .env("TANDEM_URL", base)
        .env("TANDEM_ADMIN_TOKEN", ADMIN);
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .expect("join")
        .expect("run tandem");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Every token the credential table holds, as stored.
async fn stored_tokens(database_url: &str) -> Vec<String> {
    use sea_orm::ConnectionTrait as _;
    let db = sea_orm::Database::connect(database_url)
        .await
        .expect("database");
    let rows = db
        .query_all(sea_orm::Statement::from_string(
            db.get_database_backend(),
            "SELECT access_token, refresh_token FROM credential",
        ))
        .await
        .expect("credentials");
    let _ = db.close().await;
    rows.iter()
        .flat_map(|row| {
            ["access_token", "refresh_token"]
                .map(|column| row.try_get::<Option<String>>("", column).ok().flatten())
        })
        .flatten()
        .collect()
}

#[tokio::test]
async fn accounts_connect_and_a_pair_of_them_syncs_pauses_and_resumes_on_the_embedded_default() {
    scenario(Backend::embedded()).await;
}

#[tokio::test]
async fn accounts_connect_and_a_pair_of_them_syncs_pauses_and_resumes_on_postgres_and_rabbitmq() {
    scenario(Backend::production().await).await;
}

async fn scenario(backend: Backend) {
    let stop_sims = CancellationToken::new();
    let sims = Simulators::start_local(SimConfig::default(), stop_sims.clone())
        .await
        .expect("simulators");
    let stop = CancellationToken::new();
    let (server, base) =
        support::serve_in_process(settings(&sims, &backend), Default::default(), stop.clone())
            .await;
    let api = Api::new(base.clone());

    let (status, pairs) = api.get("/api/pairs").await;
    assert_eq!(
        (status, pairs.clone()),
        (200, json!([])),
        "no pair at start"
    );

    // Bad paths answer JSON errors and store nothing.
    let wrong_state = api
        .http
        .get(format!("{base}/connect/callback?state=forged&code=x"))
        .send()
        .await
        .expect("callback");
    assert_eq!(wrong_state.status(), 400);
    let body: Value = wrong_state.json().await.expect("json");
    assert!(
        body["error"].as_str().is_some_and(|e| e.contains("state")),
        "{body}"
    );
    let (status, denied) = api.connect("hubspot", "deny").await;
    assert_eq!(status, 502, "{denied}");
    assert!(
        denied["error"]
            .as_str()
            .is_some_and(|e| e.contains("access_denied")),
        "{denied}"
    );
    // A code the token endpoint refuses (forged, or spent): its OAuth error, no more.
    let (_, started) = api.post("/api/accounts/connect/xero", json!({})).await;
    let state = started["state"].as_str().expect("state");
    let refused = api
        .http
        .get(format!(
            "{base}/connect/callback?state={state}&code=forged-code"
        ))
        .send()
        .await
        .expect("callback");
    assert_eq!(refused.status(), 502);
    let body: Value = refused.json().await.expect("json");
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("invalid_grant")),
        "{body}"
    );
    let replayed = api
        .http
        .get(format!(
            "{base}/connect/callback?state={state}&code=forged-code"
        ))
        .send()
        .await
        .expect("callback");
    assert_eq!(replayed.status(), 400, "a state is spent by its first use");
    let (status, unknown) = api
        .post("/api/accounts/connect/salesforce", json!({}))
        .await;
    assert_eq!(status, 400, "{unknown}");
    let (_, accounts) = api.get("/api/accounts").await;
    assert_eq!(accounts, json!([]), "nothing stored by the bad paths");

    // HubSpot: the portal comes from the token's metadata.
    let (status, hubspot) = api.connect("hubspot", "allow").await;
    assert_eq!(status, 200, "{hubspot}");
    let hubspot = &hubspot["account"];
    assert_eq!(
        hubspot["account_id"],
        sims.hubspot.settings().portal_id.to_string()
    );
    assert_eq!(hubspot["state"], "connected");
    let crm_account = hubspot["id"].as_str().expect("id").to_string();

    // Xero: two organisations, the second picked; a wrong pick changes nothing.
    let (status, answer) = api.connect("xero", "allow").await;
    assert_eq!(status, 200, "{answer}");
    let choice = answer["choose_organisation"]["choice"]
        .as_str()
        .expect("choice");
    let (status, wrong) = api
        .post(
            &format!("/api/accounts/choices/{choice}"),
            json!({ "tenant_id": "not-offered" }),
        )
        .await;
    assert_eq!(status, 400, "{wrong}");
    let (status, offered) = api.get(&format!("/api/accounts/choices/{choice}")).await;
    assert_eq!(status, 200, "{offered}");
    assert_eq!(offered.as_array().map(Vec::len), Some(2), "{offered}");
    let (status, _) = api.get("/api/accounts/choices/not%20issued").await;
    assert_eq!(status, 400, "a choice Tandem never issues");
    let (status, _) = api.get("/api/accounts/choices/unknown-choice").await;
    assert_eq!(
        status, 404,
        "a choice of the right form that is not waiting"
    );
    let (_, accounts) = api.get("/api/accounts").await;
    assert_eq!(accounts.as_array().map(Vec::len), Some(1), "{accounts}");
    let xero = api.connect_xero_second().await;
    assert_eq!(xero["account_id"], sims.xero.settings().tenant_id.as_str());
    assert_eq!(xero["name"], sims.xero.settings().tenant_name.as_str());
    let finance_account = xero["id"].as_str().expect("id").to_string();
    let answers = serde_json::to_string(&(&hubspot, &xero)).expect("json");
    for token in sims.xero.issued_tokens() {
        assert!(!answers.contains(&token), "a token in an answer");
    }

    // Sealed at rest: no token the services issued is in the store as it is.
    let stored = stored_tokens(&backend.database_url).await;
    assert_eq!(
        stored.len(),
        4,
        "two accounts, two tokens each: {}",
        stored.len()
    );
    let issued: Vec<String> = sims
        .xero
        .issued_tokens()
        .into_iter()
        .chain(sims.hubspot.issued_tokens())
        .collect();
    for token in &stored {
        assert!(
            !token.contains("sim-hs-") && !issued.iter().any(|t| token.contains(t.as_str())),
            "a token stored in plain text"
        );
    }

    // A pair with a policy that does not exist, or of an account that does not: a
    // clear error, and no pair.
    let (status, bad) = api
        .post(
            "/api/pairs",
            json!({ "name": "acme", "crm_account": crm_account, "finance_account": finance_account,
                    "conflict_policy": "coin_flip" }),
        )
        .await;
    assert_eq!(status, 400, "{bad}");
    assert!(
        bad["error"]
            .as_str()
            .is_some_and(|e| e.contains("conflict_policy")),
        "{bad}"
    );
    let (status, bad) = api
        .post(
            "/api/pairs",
            json!({ "name": "acme", "crm_account": finance_account, "finance_account": crm_account }),
        )
        .await;
    assert_eq!(status, 400, "{bad}");
    let (status, bad) = api
        .post(
            "/api/pairs",
            json!({ "name": "acme", "crm_account": uuid::Uuid::new_v4(), "finance_account": finance_account }),
        )
        .await;
    assert_eq!(status, 404, "{bad}");
    let (_, pairs) = api.get("/api/pairs").await;
    assert_eq!(pairs, json!([]), "no pair made by the bad requests");

    // A pair from the two; it syncs without a restart. Polled once a day, so the
    // changes below come in through the webhooks it shows, as registered in each app.
    let (status, pair) = api
        .post(
            "/api/pairs",
            json!({
                "name": "acme",
                "crm_account": crm_account,
                "finance_account": finance_account,
                "poll_interval_secs": 86_400,
            }),
        )
        .await;
    assert_eq!(status, 201, "{pair}");
    assert_eq!(pair["defined_by"], "api");
    assert_eq!(pair["conflict_policy"], "last_write_wins");
    register_webhooks(&sims, &pair, &base);
    let (status, again) = api
        .post(
            "/api/pairs",
            json!({ "name": "acme", "crm_account": crm_account, "finance_account": finance_account }),
        )
        .await;
    assert_eq!(status, 409, "{again}");

    let ada_id = sims.hubspot.person_creates_customer(&CustomerSeed {
        name: "Ada Lovelace".into(),
        email: "ada@example.com".into(),
        phone: None,
    });
    support::eventually(
        Duration::from_secs(60),
        "the customer reaches Xero",
        || async { in_xero(&sims, "ada@example.com") },
    )
    .await;

    // Where webhooks are taken by a process of their own (`--no-workers`, on the same
    // database and broker), a pair made through the API is taken there too.
    if backend._queues.is_some() {
        let stop_web = CancellationToken::new();
        let web_only = tandem::cli::ServeArgs {
            no_workers: true,
            no_poller: true,
            ..Default::default()
        };
        let (web, web_base) = support::serve_in_process_as(
            settings(&sims, &backend),
            Default::default(),
            web_only,
            stop_web.clone(),
        )
        .await;
        let (_, pair) = Api::new(web_base.clone()).get("/api/pairs/acme").await;
        register_webhooks(&sims, &pair, &web_base);
        sims.hubspot.person_creates_customer(&CustomerSeed {
            name: "Mary Jackson".into(),
            email: "mary@example.com".into(),
            phone: None,
        });
        support::eventually(
            Duration::from_secs(60),
            "a change taken by the webhook-only process reaches Xero",
            || async { in_xero(&sims, "mary@example.com") },
        )
        .await;
        let (_, pair) = api.get("/api/pairs/acme").await;
        register_webhooks(&sims, &pair, &base);
        stop_web.cancel();
        web.await
            .expect("join")
            .expect("the web process stopped cleanly");
    }

    // The user removes Tandem's access in Xero: the pair waits for a reconnect.
    sims.xero.revoke_all_grants();
    sims.hubspot.person_creates_customer(&CustomerSeed {
        name: "Grace Hopper".into(),
        email: "grace@example.com".into(),
        phone: None,
    });
    support::eventually(
        Duration::from_secs(60),
        "the pair needs reconnecting",
        || async {
            let (_, pair) = api.get("/api/pairs/acme").await;
            pair["status"] == "needs_reconnecting"
        },
    )
    .await;
    let (_, account) = api.get(&format!("/api/accounts/{finance_account}")).await;
    assert_eq!(account["state"], "needs_reconnecting", "{account}");
    assert!(!in_xero(&sims, "grace@example.com"));
    let (status, failed) = api.get("/api/sync-logs?outcome=failed").await;
    assert_eq!(status, 200, "{failed}");
    assert_eq!(failed, json!([]), "changes wait, they do not fail");

    // Connecting Xero again keeps the account (keyed on tenantId) and resumes.
    let again = api.connect_xero_second().await;
    assert_eq!(again["id"], finance_account.as_str());
    support::eventually(
        Duration::from_secs(60),
        "the waiting customer reaches Xero",
        || async { in_xero(&sims, "grace@example.com") },
    )
    .await;
    let (_, pair) = api.get("/api/pairs/acme").await;
    assert_eq!(pair["status"], "syncing", "{pair}");

    // Its sides are the process's connections like any other: health, resync.
    let (status, connections) = api.get("/api/connections").await;
    assert_eq!(status, 200, "{connections}");
    let sides: Vec<&str> = connections
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| c["pair"] == "acme")
        .filter_map(|c| c["side"].as_str())
        .collect();
    assert_eq!(sides.len(), 2, "both sides of the API pair: {connections}");
    let (status, job) = api
        .post(
            "/api/resync",
            json!({"pair": "acme", "system": "crm", "entity": "customer", "ids": [ada_id]}),
        )
        .await;
    assert_eq!(status, 202, "a resync of the API pair: {job}");
    let job_id = job["job_id"].as_str().expect("job id").to_string();
    support::eventually(
        Duration::from_secs(60),
        "the resync job is done",
        || async { api.get(&format!("/api/jobs/{job_id}")).await.1["status"] == "done" },
    )
    .await;

    // Paused, its changes wait; removed, it is gone from the engine but listed.
    let (status, paused) = api.post("/api/pairs/acme/pause", json!({})).await;
    assert_eq!((status, paused["status"].clone()), (200, json!("paused")));
    let (status, in_use) = api
        .post(
            &format!("/api/accounts/{crm_account}/disconnect"),
            json!({}),
        )
        .await;
    assert_eq!(status, 409, "an account a pair uses stays: {in_use}");

    // The command line reads the same resources.
    let (code, out, err) = cli(&base, &["pair", "list"]).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("acme (api): paused"), "{out}");
    let (code, out, err) = cli(&base, &["connect", "list"]).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(&format!("{finance_account} xero")), "{out}");
    let (code, _, err) = cli(&base, &["pair", "remove", "acme"]).await;
    assert_ne!(code, 0);
    assert!(err.contains("--yes"), "{err}");

    // A restart keeps the pair and its state, with nothing in the settings file.
    stop.cancel();
    server.await.expect("join").expect("tandem stopped cleanly");
    let stop = CancellationToken::new();
    let (server, base) =
        support::serve_in_process(settings(&sims, &backend), Default::default(), stop.clone())
            .await;
    let api = Api::new(base.clone());
    let (_, pairs) = api.get("/api/pairs").await;
    assert_eq!(pairs[0]["name"], "acme", "{pairs}");
    register_webhooks(&sims, &pairs[0], &base);
    assert_eq!(pairs[0]["state"], "paused", "{pairs}");
    let (status, resumed) = api.post("/api/pairs/acme/resume", json!({})).await;
    assert_eq!(
        (status, resumed["state"].clone()),
        (200, json!("active")),
        "{resumed}"
    );
    sims.hubspot.person_creates_customer(&CustomerSeed {
        name: "Katherine Johnson".into(),
        email: "katherine@example.com".into(),
        phone: None,
    });
    support::eventually(
        Duration::from_secs(60),
        "a customer syncs after the restart",
        || async { in_xero(&sims, "katherine@example.com") },
    )
    .await;
    let (status, removed) = api.post("/api/pairs/acme/remove", json!({})).await;
    assert_eq!((status, removed["state"].clone()), (200, json!("removed")));
    let (status, _) = api.post("/api/pairs/acme/resume", json!({})).await;
    assert_eq!(status, 409);
    let refused = api
        .http
        .post(format!("{base}/webhooks/acme/crm"))
        .body("[]")
        .send()
        .await
        .expect("webhook");
    assert_eq!(refused.status(), 404, "a removed pair takes no webhook");

    // With its pair removed, the Xero account disconnects: the grant is revoked at
    // Xero and the tokens are forgotten.
    let (status, crm_gone) = api
        .post(
            &format!("/api/accounts/{crm_account}/disconnect"),
            json!({}),
        )
        .await;
    assert_eq!(status, 200, "{crm_gone}");
    let held_before = sims.xero.issued_tokens().len();
    let (status, gone) = api
        .post(
            &format!("/api/accounts/{finance_account}/disconnect"),
            json!({}),
        )
        .await;
    assert_eq!(
        (status, gone["state"].clone()),
        (200, json!("disconnected")),
        "{gone}"
    );
    assert!(
        sims.xero.issued_tokens().len() < held_before,
        "the grant was revoked at Xero"
    );
    assert!(stored_tokens(&backend.database_url).await.is_empty());
    stop.cancel();
    server.await.expect("join").expect("tandem stopped cleanly");
    stop_sims.cancel();
}
