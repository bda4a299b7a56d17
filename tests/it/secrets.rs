//! Secrets never leave: a full sync against the simulators with known secret values
//! (admin token, webhook keys, client secrets, the key that seals credentials, every
//! OAuth access and refresh token the simulators issued), then a search of every admin
//! API answer, every log line at trace level, and what the database keeps: every row of
//! every table on PostgreSQL, the database file itself on SQLite, and in both the raw
//! `credential` rows, which must hold the tokens sealed.

use crate::support;

use std::io::Read as _;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use rust_decimal::Decimal;
use sea_orm::{ConnectionTrait, Statement};
use sim::{CustomerSeed, SimConfig, Simulators};
use tokio_util::sync::CancellationToken;

use support::{eventually, unique, TestDatabase, TestSqlite};

const ADMIN: &str = "admin-secret-4a0c9f21b7e84d6f";

/// Where the engine under test keeps its data.
enum Backend {
    /// PostgreSQL and RabbitMQ, with the key in a file named by `secrets_key_file`.
    Production {
        db: TestDatabase,
        key_file: std::path::PathBuf,
        _queues: support::TestQueues,
    },
    /// A SQLite file and the in-process bus, with no key set: the embedded default
    /// makes its key file beside the database.
    Embedded { db: TestSqlite },
}

impl Backend {
    async fn production(prefix: &str) -> Self {
        let key_file = std::env::temp_dir().join(unique("tandem_secrets_key"));
        let key = tandem::seal::SecretsKey::generate().expect("key");
        std::fs::write(&key_file, format!("{}\n", key.to_base64().as_str())).expect("key file");
        Self::Production {
            db: TestDatabase::create().await,
            key_file,
            _queues: support::TestQueues::new(prefix, ["acme"]),
        }
    }

    fn url(&self) -> &str {
        match self {
            Backend::Production { db, .. } => &db.url,
            Backend::Embedded { db } => &db.url,
        }
    }

    /// The settings lines that choose this backend.
    fn settings(&self) -> String {
        match self {
            Backend::Production { db, key_file, .. } => format!(
                "database_url = \"{}\"\namqp_url = \"{}\"\nsecrets_key_file = \"{}\"\n",
                db.url,
                support::amqp_url(),
                key_file.display()
            ),
            Backend::Embedded { db } => {
                format!("database_url = \"{}\"\namqp_url = \"memory\"\n", db.url)
            }
        }
    }

    /// The key credentials were sealed with, as written in its file.
    fn key_text(&self) -> String {
        let file = match self {
            Backend::Production { key_file, .. } => key_file.clone(),
            Backend::Embedded { db } => tandem::credential_store::key_file_beside(&db.url)
                .expect("a key file beside the database"),
        };
        std::fs::read_to_string(&file)
            .expect("the key file")
            .trim()
            .to_string()
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        if let Backend::Production { key_file, .. } = self {
            let _ = std::fs::remove_file(key_file);
        }
    }
}

fn settings_file(
    sims: &Simulators,
    backend: &Backend,
    log: &std::path::Path,
    prefix: &str,
) -> std::path::PathBuf {
    let hubspot = sims.hubspot.settings();
    let xero = sims.xero.settings();
    let toml = format!(
        r#"{backend}listen = "127.0.0.1:0"
admin_token = "{ADMIN}"

[bus]
prefix = "{prefix}"

[webhooks]
public_base_url = "http://127.0.0.1:0"

[pairs.acme]
poll_interval_secs = 2
poll_overlap_secs = 2

[pairs.acme.crm]
kind = "hubspot"
base_url = "{hubspot_url}"
client_id = "{hs_id}"
client_secret = "{hs_secret}"
refresh_token = "{hs_refresh}"
webhook_secrets = ["{hs_secret}"]
portal_id = {portal}

[pairs.acme.finance]
kind = "xero"
base_url = "{xero_api}"
token_url = "{xero_token}"
tenant_id = "{tenant}"
client_id = "{x_id}"
client_secret = "{x_secret}"
refresh_token = "{x_refresh}"
webhook_secrets = ["{x_key}"]
"#,
        backend = backend.settings(),
        hubspot_url = sims.hubspot_url,
        hs_id = hubspot.client_id,
        hs_secret = hubspot.client_secret,
        hs_refresh = hubspot.refresh_token,
        portal = hubspot.portal_id,
        xero_api = sims.xero_api_url(),
        xero_token = sims.xero_token_url(),
        tenant = xero.tenant_id,
        x_id = xero.client_id,
        x_secret = xero.client_secret,
        x_refresh = xero.refresh_token,
        x_key = xero.webhook_key,
    );
    let path = log.with_extension("toml");
    std::fs::write(&path, toml).expect("write settings");
    path
}

struct Engine(Child);

impl Drop for Engine {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_secret_reaches_an_api_answer_a_log_line_or_a_stored_row_on_postgres() {
    let prefix = unique("secrets");
    no_secret_leaves(Backend::production(&prefix).await, &prefix).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_secret_reaches_an_api_answer_a_log_line_or_a_stored_row_on_sqlite() {
    let backend = Backend::Embedded {
        db: TestSqlite::create(),
    };
    no_secret_leaves(backend, &unique("secrets")).await;
}

async fn no_secret_leaves(backend: Backend, prefix: &str) {
    let stop = CancellationToken::new();
    let mut config = SimConfig::default();
    config.hubspot.client_secret = "hubspot-client-secret-7d1e5b".into();
    config.hubspot.refresh_token = "hubspot-refresh-token-93c4aa".into();
    config.xero.client_secret = "xero-client-secret-51f0e2".into();
    config.xero.refresh_token = "xero-refresh-token-0be8d7".into();
    config.xero.webhook_key = "xero-webhook-key-c3a9f6".into();
    let sims = Simulators::start_local(config, stop.clone())
        .await
        .expect("simulators");
    sims.xero.set_refresh_grace(Duration::ZERO);

    let log = std::env::temp_dir().join(format!("{}.log", unique("tandem_secrets")));
    let settings = settings_file(&sims, &backend, &log, prefix);
    let log_file = std::fs::File::create(&log).expect("log file");
    let mut command = Command::new(env!("CARGO_BIN_EXE_tandem"));
    for (key, _) in std::env::vars() {
        if key.starts_with("TANDEM_") && !key.starts_with("TANDEM_TEST_") {
            command.env_remove(key);
        }
    }
    let engine = Engine(
        command
            .arg("serve")
            .env("TANDEM_CONFIG", &settings)
            .env("TANDEM_LOG", "trace")
            // One file, one offset: the `listening on` line and the log interleave.
            .stdout(Stdio::from(log_file.try_clone().expect("log file")))
            .stderr(Stdio::from(log_file))
            .spawn()
            .expect("start tandem"),
    );
    let mut base = String::new();
    eventually(
        Duration::from_secs(60),
        "tandem says where it listens",
        || {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if let Some(url) = tandem::service::listening_url(&text) {
                base = url.to_string();
            }
            let found = !base.is_empty();
            async move { found }
        },
    )
    .await;
    tandem::demo::wait_until_up(&base, Duration::from_secs(60))
        .await
        .expect("tandem answers");
    let (crm_url, finance_url) = tandem::demo::webhook_urls(&base, "acme");
    sims.send_webhooks_to(Some(crm_url), Some(finance_url));

    // A full sync: both ways, an invoice and its payment, a token refresh mid-run and
    // a refused item whose request and response are kept.
    let seed = |n: usize| CustomerSeed {
        name: format!("Secret Keeper {n}"),
        email: format!("keeper{n}@example.com"),
        phone: None,
    };
    let customer = sims.hubspot.person_creates_customer(&seed(1));
    sims.xero.person_creates_contact(&seed(2));
    sims.hubspot.person_creates_customer(&CustomerSeed {
        email: "not-an-email".into(),
        ..seed(3)
    });
    sims.hubspot.person_wins_deal(
        &customer,
        "Audit",
        &[("Audit".into(), Decimal::from(2), Decimal::from(100))],
    );
    let s = sims.clone();
    eventually(Duration::from_secs(60), "an invoice in Xero", || {
        let done = s.xero.invoices().iter().any(|i| i.stamp.is_some());
        async move { done }
    })
    .await;
    sims.xero.expire_access_tokens();
    sims.hubspot.expire_access_tokens();
    let invoice = sims
        .xero
        .invoices()
        .into_iter()
        .find(|i| i.stamp.is_some())
        .expect("invoice");
    sims.xero
        .person_pays_invoice(&invoice.id, Decimal::from(200))
        .expect("payment");
    let s = sims.clone();
    eventually(
        Duration::from_secs(60),
        "the payment back in the CRM",
        || {
            let done = s
                .hubspot
                .invoices()
                .iter()
                .any(|i| i.status.as_deref() == Some("paid"));
            async move { done }
        },
    )
    .await;
    assert!(
        sims.xero.token_refreshes() >= 2,
        "a refresh happened mid-run"
    );

    let mut secrets: Vec<String> = vec![
        ADMIN.into(),
        sims.hubspot.settings().client_secret.clone(),
        sims.hubspot.settings().refresh_token.clone(),
        sims.xero.settings().client_secret.clone(),
        sims.xero.settings().webhook_key.clone(),
        backend.key_text(),
    ];
    secrets.extend(sims.xero.issued_tokens());
    secrets.extend(sims.hubspot.issued_tokens());
    assert!(
        secrets.len() >= 10,
        "the simulators issued tokens: {}",
        secrets.len()
    );

    // Every admin answer.
    let http = reqwest::Client::new();
    let mut answers = String::new();
    let ids: Vec<String> = sims.hubspot.customers().into_iter().map(|c| c.id).collect();
    let mut paths: Vec<String> = [
        "/api/sync-logs?limit=500",
        "/api/failures",
        "/api/stats?window=24h",
        "/api/queue",
        "/api/conflicts",
        "/api/deletes",
        "/api/connections",
        "/metrics",
        "/ready",
        "/health",
        "/openapi.json",
        "/",
    ]
    .iter()
    .map(|p| p.to_string())
    .collect();
    paths.extend(
        ids.iter()
            .map(|id| format!("/api/records/acme/customer/crm/{id}")),
    );
    for path in &paths {
        let answer = http
            .get(format!("{base}{path}"))
            .bearer_auth(ADMIN)
            .send()
            .await
            .expect("answer");
        answers.push_str(&answer.text().await.expect("body"));
    }
    assert!(
        answers.contains("Email address must be valid"),
        "the failure's exchange is there"
    );

    let sealed = sealed_credentials(backend.url()).await;
    let rows = match &backend {
        Backend::Production { db, .. } => every_row(&db.url).await,
        Backend::Embedded { .. } => String::new(),
    };
    drop(engine);
    let mut logged = String::new();
    std::fs::File::open(&log)
        .expect("log")
        .read_to_string(&mut logged)
        .expect("read log");
    assert!(
        logged.lines().count() > 50,
        "the log was written at trace level"
    );
    let _ = std::fs::remove_file(&log);
    let _ = std::fs::remove_file(&settings);
    stop.cancel();
    // On SQLite the database is one file (and its log): every byte of it, read after
    // the engine stopped, deleted pages and all.
    let rows = match &backend {
        Backend::Embedded { db } => {
            assert!(
                logged.contains("made a key for the credentials"),
                "the embedded default says where its key is"
            );
            database_bytes(db)
        }
        Backend::Production { .. } => rows,
    };
    assert!(
        rows.contains("not-an-email"),
        "the stored data holds the sync's data"
    );

    for secret in &secrets {
        assert!(
            !answers.contains(secret.as_str()),
            "a secret in an API answer"
        );
        assert!(!logged.contains(secret.as_str()), "a secret in the log");
        assert!(!rows.contains(secret.as_str()), "a secret in a stored row");
        assert!(
            !sealed.contains(secret.as_str()),
            "a secret in a credential row"
        );
    }
}

/// The raw `access_token` and `refresh_token` of every credential row, after checking
/// that both sides of the pair have one and that each is a sealed envelope.
async fn sealed_credentials(url: &str) -> String {
    let store = sea_orm::Database::connect(url).await.expect("database");
    let found = store
        .query_all(Statement::from_string(
            store.get_database_backend(),
            "SELECT system, access_token, refresh_token FROM credential",
        ))
        .await
        .expect("credential rows");
    let _ = store.close().await;
    let mut systems = Vec::new();
    let mut raw = String::new();
    for row in found {
        systems.push(row.try_get::<String>("", "system").expect("system"));
        for column in ["access_token", "refresh_token"] {
            let value: String = row.try_get("", column).expect("a token");
            assert!(value.starts_with("v1:"), "{column} is not sealed");
            raw.push_str(&value);
        }
    }
    systems.sort();
    assert_eq!(systems, ["crm", "finance"], "both connections kept tokens");
    raw
}

/// Every row of every table, as JSON text (PostgreSQL).
async fn every_row(url: &str) -> String {
    let store = sea_orm::Database::connect(url).await.expect("database");
    let mut rows = String::new();
    for table in migration::TABLES {
        let found = store
            .query_all(Statement::from_string(
                store.get_database_backend(),
                format!("SELECT row_to_json(t)::text AS row FROM {table} t"),
            ))
            .await
            .expect("rows");
        for row in found {
            rows.push_str(&row.try_get::<String>("", "row").expect("text"));
        }
    }
    let _ = store.close().await;
    rows
}

/// The SQLite database file and its write-ahead log, as text.
fn database_bytes(db: &TestSqlite) -> String {
    let path = db
        .url
        .trim_start_matches("sqlite://")
        .split('?')
        .next()
        .unwrap_or_default()
        .to_string();
    let mut bytes = Vec::new();
    for suffix in ["", "-wal"] {
        if let Ok(mut part) = std::fs::read(format!("{path}{suffix}")) {
            bytes.append(&mut part);
        }
    }
    assert!(!bytes.is_empty(), "the database file at {path}");
    String::from_utf8_lossy(&bytes).into_owned()
}
