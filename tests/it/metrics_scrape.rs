//! `GET /metrics` scraped from `tandem serve` at work, on PostgreSQL and RabbitMQ with
//! the simulated HubSpot and Xero: every series dashboards read is there under its name
//! and type, each is listed in docs/metrics.md, and the calls counted are the calls the
//! simulators answered. The engine runs as a child process, so its figures are its own
//! (the registry is the process's).

use std::collections::BTreeMap;
use std::time::Duration;

use sim::{CustomerSeed, SimConfig, Simulators};
use tandem::config::Settings;
use tandem::secret::Secret;
use tokio_util::sync::CancellationToken;

use crate::support::{self, eventually, TandemProcess, TestDatabase, TestQueues};

const PAIR: &str = "acme";

/// Every family the engine exposes, with its type: the names dashboards query.
const SERIES: [(&str, &str); 13] = [
    ("tandem_events_received_total", "counter"),
    ("tandem_sync_outcomes_total", "counter"),
    ("tandem_system_calls_total", "counter"),
    ("tandem_rate_limit_waits_total", "counter"),
    ("tandem_sync_duration_seconds", "histogram"),
    ("tandem_queue_depth", "gauge"),
    ("tandem_queue_oldest_age_seconds", "gauge"),
    ("tandem_queue_pair_depth", "gauge"),
    ("tandem_open_conflicts", "gauge"),
    ("tandem_failed_records", "gauge"),
    ("tandem_retrying_records", "gauge"),
    ("tandem_connection_calls_held_total", "counter"),
    ("tandem_connection_day_remaining", "gauge"),
];

/// Series that appear only once what they count has happened (a probe, a refused
/// delivery or connection, a spent day); also in docs/metrics.md.
const SOMETIMES: [(&str, &str); 5] = [
    ("tandem_connection_probes_total", "counter"),
    ("tandem_webhooks_foreign_tenant_total", "counter"),
    ("tandem_http_refusals_total", "counter"),
    ("tandem_daily_limit_refusals_total", "counter"),
    ("tandem_connection_budget_spent_seconds", "gauge"),
];

/// The metric name of a sample line: what stands before its labels or its value.
fn metric_name(line: &str) -> &str {
    line.split(['{', ' ']).next().unwrap_or_default()
}

/// The samples of an exposition, as series (name with labels) -> value.
fn samples(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (series, value) = l.rsplit_once(' ').expect("a value");
            (series.to_string(), value.parse().expect("a number"))
        })
        .collect()
}

/// The sum of the samples of `metric` whose labels include every one of `labels`.
fn total(samples: &BTreeMap<String, f64>, metric: &str, labels: &[&str]) -> f64 {
    samples
        .iter()
        .filter(|(series, _)| metric_name(series) == metric)
        .filter(|(series, _)| labels.iter().all(|l| series.contains(l)))
        .map(|(_, value)| value)
        .sum()
}

/// Calls to a simulator's API, as the engine's connectors make them: the token
/// endpoint is called by the OAuth client, which the call counter does not see.
fn api_calls(calls: &[(String, u16)], status: Option<u16>) -> f64 {
    calls
        .iter()
        .filter(|(path, s)| !path.contains("token") && status.is_none_or(|want| *s == want))
        .count() as f64
}

struct Engine {
    tandem: TandemProcess,
    settings_file: std::path::PathBuf,
    _db: TestDatabase,
    _queues: TestQueues,
}

impl Drop for Engine {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.settings_file);
    }
}

/// `tandem serve` with one pair on the simulators, webhooks only (no poller, so that
/// nothing calls the simulators once the changes are done).
async fn serve(sims: &Simulators) -> Engine {
    let db = TestDatabase::create().await;
    let mut settings = Settings {
        database_url: db.url.clone(),
        amqp_url: support::amqp_url(),
        ..Default::default()
    };
    settings.bus.prefix = support::unique("tandem_metrics");
    let queues = TestQueues::new(&settings.bus.prefix, [PAIR]);
    let key = tandem::seal::SecretsKey::generate().expect("key");
    settings.secrets_key = Some(Secret::new(key.to_base64().as_str()));
    settings
        .pairs
        .insert(PAIR.into(), tandem::demo::pair_for(sims, 0));
    // The simulators sign the URL they call: the port the child binds.
    settings.webhooks.public_base_url = Some("http://127.0.0.1:0".into());
    let settings_file =
        std::env::temp_dir().join(format!("{}.toml", support::unique("tandem-metrics")));
    std::fs::write(
        &settings_file,
        tandem::bench::engine::settings_toml(&settings).expect("settings as TOML"),
    )
    .expect("write settings");
    let tandem = TandemProcess::start(
        &["serve"],
        &[("TANDEM_CONFIG", settings_file.display().to_string())],
    )
    .await;
    let (crm, finance) = tandem::demo::webhook_urls(&tandem.base_url, PAIR);
    sims.send_webhooks_to(Some(crm), Some(finance));
    Engine {
        tandem,
        settings_file,
        _db: db,
        _queues: queues,
    }
}

async fn scrape(http: &reqwest::Client, base: &str) -> (String, String) {
    let answer = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .expect("/metrics answers");
    assert_eq!(answer.status(), 200);
    let content_type = answer
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    (content_type, answer.text().await.expect("text"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_series_is_exposed_with_its_type_and_counts_what_happened() {
    let stop_sims = CancellationToken::new();
    let sims = Simulators::start_local(SimConfig::default(), stop_sims.clone())
        .await
        .expect("simulators start");
    let _stop_sims = stop_sims.drop_guard();
    let engine = serve(&sims).await;
    let base = engine.tandem.base_url.clone();
    let http = reqwest::Client::new();

    // Xero's first answer is a 429, so the wait it asks for is counted too.
    sims.xero.force_429_next(Duration::from_secs(1));
    sims.hubspot.person_creates_customer(&CustomerSeed {
        name: "Metrics Person".into(),
        email: "metrics.person@example.com".into(),
        phone: None,
    });
    // Done when the customer is on both sides and every change taken in (the create and
    // the echoes of its writes) has its outcome, with no call made since the last look.
    let last_calls = std::sync::Mutex::new(0usize);
    let (http_ref, base_ref, sims_ref, last_ref) = (&http, base.as_str(), &sims, &last_calls);
    eventually(
        Duration::from_secs(60),
        "the engine at rest",
        || async move {
            let (http, base, sims) = (http_ref, base_ref, sims_ref);
            let (_, text) = scrape(http, base).await;
            let calls = sims.hubspot.calls().len() + sims.xero.calls().len();
            let s = samples(&text);
            let unfinished = total(&s, "tandem_events_received_total", &[])
                - total(&s, "tandem_sync_outcomes_total", &[])
                + total(&s, "tandem_sync_outcomes_total", &[r#"outcome="retrying""#]);
            let inspected = sims.inspect();
            let mut last = last_ref.lock().expect("lock");
            let at_rest = inspected.in_step
                && inspected.customers.paired == 1
                && unfinished == 0.0
                && *last == calls;
            *last = calls;
            at_rest
        },
    )
    .await;
    let (content_type, text) = scrape(&http, &base).await;
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );

    for (name, kind) in SERIES {
        let type_line = format!("# TYPE {name} {kind}");
        assert!(
            text.lines().any(|l| l == type_line),
            "no `{type_line}` in\n{text}"
        );
        let suffixes: &[&str] = match kind {
            "histogram" => &["_bucket", "_sum", "_count"],
            _ => &[""],
        };
        for suffix in suffixes {
            let sample = format!("{name}{suffix}");
            assert!(
                text.lines()
                    .any(|l| !l.starts_with('#') && metric_name(l) == sample),
                "no `{sample}` sample in\n{text}"
            );
        }
    }
    // Nothing is exposed that the list (and so the documentation) does not name.
    for line in text.lines().filter(|l| l.starts_with("# TYPE ")) {
        let name = line.split(' ').nth(2).unwrap_or_default();
        assert!(
            SERIES.iter().any(|(n, _)| *n == name) || SOMETIMES.iter().any(|(n, _)| *n == name),
            "`{name}` is exposed but not listed here nor in docs/metrics.md"
        );
    }

    // The figures are what happened: each call the simulators answered is counted once,
    // under its system and status, and so is the wait the 429 asked for.
    let s = samples(&text);
    let calls = |system: &str| -> Vec<(String, u16)> {
        match system {
            "crm" => sims
                .hubspot
                .calls()
                .into_iter()
                .map(|c| (c.path, c.status))
                .collect(),
            _ => sims
                .xero
                .calls()
                .into_iter()
                .map(|c| (c.path, c.status))
                .collect(),
        }
    };
    for system in ["crm", "finance"] {
        let label = format!(r#"system="{system}""#);
        assert_eq!(
            total(&s, "tandem_system_calls_total", &[&label]),
            api_calls(&calls(system), None),
            "{system}: {:?}\n{text}",
            calls(system)
        );
    }
    assert_eq!(
        total(
            &s,
            "tandem_system_calls_total",
            &[r#"system="finance""#, r#"status="429""#]
        ),
        api_calls(&calls("finance"), Some(429)),
        "{text}"
    );
    assert_eq!(
        s.get(r#"tandem_rate_limit_waits_total{system="finance"}"#),
        Some(&1.0),
        "{text}"
    );
    let received =
        format!(r#"tandem_events_received_total{{pair="{PAIR}",system="crm",trigger="webhook"}}"#);
    assert!(s.get(&received).is_some_and(|v| *v >= 1.0), "{text}");
    assert_eq!(
        s.get(r#"tandem_sync_outcomes_total{outcome="created"}"#),
        Some(&1.0),
        "{text}"
    );
}

#[test]
fn every_series_is_documented() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/metrics.md"))
        .expect("docs/metrics.md");
    for (name, kind) in SERIES {
        let row = format!("| `{name}` | {kind} |");
        assert!(doc.contains(&row), "docs/metrics.md has no row `{row}`");
    }
    for (name, kind) in SOMETIMES {
        let row = format!("| `{name}` | {kind} |");
        assert!(doc.contains(&row), "docs/metrics.md has no row `{row}`");
    }
}
