//! `GET /metrics` scraped from the whole engine at work (the simulators, PostgreSQL and
//! RabbitMQ): every series that dashboards read is there under its name and type, and
//! each is listed in docs/metrics.md.

use std::time::Duration;

use sim::{CustomerSeed, SimConfig};

use crate::sync_e2e::{Backend, World, PAIR};

/// Every family the engine exposes, with its type: the names dashboards query.
const SERIES: [(&str, &str); 9] = [
    ("tandem_events_received_total", "counter"),
    ("tandem_sync_outcomes_total", "counter"),
    ("tandem_system_calls_total", "counter"),
    ("tandem_rate_limit_waits_total", "counter"),
    ("tandem_sync_duration_seconds", "histogram"),
    ("tandem_queue_depth", "gauge"),
    ("tandem_queue_oldest_age_seconds", "gauge"),
    ("tandem_open_conflicts", "gauge"),
    ("tandem_failed_records", "gauge"),
];

/// The metric name of a sample line: what stands before its labels or its value.
fn metric_name(line: &str) -> &str {
    line.split(['{', ' ']).next().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_series_is_exposed_with_its_type_while_the_engine_works() {
    let mut world = World::start_with_pair(Backend::Production, SimConfig::default(), |_| {}).await;
    // Xero's first answer is a 429, so the wait it asks for is counted too.
    world.sims.xero.force_429_next(Duration::from_secs(1));
    world.sims.hubspot.person_creates_customer(&CustomerSeed {
        name: "Metrics Person".into(),
        email: "metrics.person@example.com".into(),
        phone: None,
    });
    world
        .until("the customer reached Xero", |s| {
            s.in_step && s.customers.paired == 1
        })
        .await;

    let answer = world
        .http
        .get(format!("{}/metrics", world.base))
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
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    let text = answer.text().await.expect("text");

    for (name, kind) in SERIES {
        let type_line = format!("# TYPE {name} {kind}");
        assert!(
            text.lines().any(|l| l == type_line),
            "no `{type_line}` in\n{text}"
        );
        let samples: Vec<&str> = match kind {
            "histogram" => vec!["_bucket", "_sum", "_count"],
            _ => vec![""],
        };
        for suffix in samples {
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
            SERIES.iter().any(|(n, _)| *n == name),
            "`{name}` is exposed but not listed here nor in docs/metrics.md"
        );
    }
    // The figures of this run, under the labels dashboards filter on.
    let value = |series: &str| {
        text.lines().find_map(|l| {
            let (name, value) = l.rsplit_once(' ')?;
            (name == series).then(|| value.parse::<f64>().expect("a number"))
        })
    };
    let received =
        format!(r#"tandem_events_received_total{{pair="{PAIR}",system="crm",trigger="webhook"}}"#);
    assert!(value(&received).is_some_and(|v| v >= 1.0), "{text}");
    assert!(
        value(r#"tandem_rate_limit_waits_total{system="finance"}"#).is_some_and(|v| v >= 1.0),
        "{text}"
    );
    assert!(
        value(r#"tandem_system_calls_total{system="finance",status="429"}"#)
            .is_some_and(|v| v >= 1.0),
        "{text}"
    );
    world.stop_engine().await;
}

#[test]
fn every_series_is_documented() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/metrics.md"))
        .expect("docs/metrics.md");
    for (name, kind) in SERIES {
        let row = format!("| `{name}` | {kind} |");
        assert!(doc.contains(&row), "docs/metrics.md has no row `{row}`");
    }
}
