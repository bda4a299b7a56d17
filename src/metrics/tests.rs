//! Each helper moves its series by exactly what it was given, on a registry of the
//! test's own; and the exposition reads as the hand-written one did.

use std::time::Duration;

use super::*;

fn no_gauges() -> Gauges {
    Gauges {
        queue_depth: vec![],
        oldest_age_seconds: vec![],
        open_conflicts: 0,
        failed_records: 0,
        retrying_records: 0,
        in_process: vec![],
        pair_depth: Vec::new(),
        day_remaining: Vec::new(),
        budget_spent_seconds: Vec::new(),
    }
}

/// The value of the sample `series` (name with labels, as written) in `text`.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|line| {
        let (name, value) = line.rsplit_once(' ')?;
        (name == series).then(|| value.parse().expect("a number"))
    })
}

fn value(metrics: &Metrics, series: &str) -> Option<f64> {
    sample(&metrics.render(&no_gauges()), series)
}

#[test]
fn event_received_adds_the_number_of_events_it_is_given() {
    let metrics = Metrics::new();
    let webhook = r#"tandem_events_received_total{pair="acme",system="crm",trigger="webhook"}"#;
    let poll = r#"tandem_events_received_total{pair="acme",system="crm",trigger="poll"}"#;
    assert_eq!(
        value(&metrics, webhook),
        None,
        "nothing before the first event"
    );
    metrics.event_received("acme", "crm", "webhook", 3);
    assert_eq!(value(&metrics, webhook), Some(3.0));
    metrics.event_received("acme", "crm", "webhook", 2);
    assert_eq!(value(&metrics, webhook), Some(5.0));
    metrics.event_received("acme", "crm", "poll", 1);
    assert_eq!(value(&metrics, poll), Some(1.0));
    assert_eq!(value(&metrics, webhook), Some(5.0), "each trigger apart");
}

#[test]
fn sync_finished_counts_the_outcome_once_and_times_it_into_its_bucket() {
    let metrics = Metrics::new();
    metrics.sync_finished("created", Duration::from_millis(30));
    metrics.sync_finished("created", Duration::from_millis(40));
    metrics.sync_finished("skipped", Duration::from_millis(2));
    let text = metrics.render(&no_gauges());
    let at = |series: &str| sample(&text, series);
    assert_eq!(
        at(r#"tandem_sync_outcomes_total{outcome="created"}"#),
        Some(2.0)
    );
    assert_eq!(
        at(r#"tandem_sync_outcomes_total{outcome="skipped"}"#),
        Some(1.0)
    );
    let bucket = |le: &str| {
        at(&format!(
            r#"tandem_sync_duration_seconds_bucket{{outcome="created",le="{le}"}}"#
        ))
    };
    assert_eq!(bucket("0.025"), Some(0.0), "30 and 40 ms are above 25 ms");
    assert_eq!(bucket("0.05"), Some(2.0));
    assert_eq!(bucket("+Inf"), Some(2.0));
    assert_eq!(
        at(r#"tandem_sync_duration_seconds_count{outcome="created"}"#),
        Some(2.0)
    );
    let sum = at(r#"tandem_sync_duration_seconds_sum{outcome="created"}"#).expect("a sum");
    assert!((sum - 0.07).abs() < 1e-9, "{sum}");
}

#[test]
fn system_call_counts_each_system_and_status_apart() {
    let metrics = Metrics::new();
    metrics.system_call("finance", 200);
    metrics.system_call("finance", 200);
    metrics.system_call("finance", 0);
    metrics.system_call("crm", 200);
    let ok = r#"tandem_system_calls_total{system="finance",status="200"}"#;
    assert_eq!(value(&metrics, ok), Some(2.0));
    assert_eq!(
        value(
            &metrics,
            r#"tandem_system_calls_total{system="finance",status="0"}"#
        ),
        Some(1.0),
        "no answer counts as status 0"
    );
    assert_eq!(
        value(
            &metrics,
            r#"tandem_system_calls_total{system="crm",status="200"}"#
        ),
        Some(1.0)
    );
}

#[test]
fn rate_limit_wait_counts_each_system_apart() {
    let metrics = Metrics::new();
    metrics.rate_limit_wait("finance");
    metrics.rate_limit_wait("finance");
    metrics.rate_limit_wait("crm");
    assert_eq!(
        value(
            &metrics,
            r#"tandem_rate_limit_waits_total{system="finance"}"#
        ),
        Some(2.0)
    );
    assert_eq!(
        value(&metrics, r#"tandem_rate_limit_waits_total{system="crm"}"#),
        Some(1.0)
    );
}

#[test]
fn the_free_functions_count_into_the_process_registry() {
    // A system no other test names, since unit tests share the process registry.
    let series = r#"tandem_system_calls_total{system="free-function-test",status="418"}"#;
    let before = sample(&render(&no_gauges()), series).unwrap_or(0.0);
    system_call("free-function-test", 418);
    assert_eq!(sample(&render(&no_gauges()), series), Some(before + 1.0));
}

#[test]
fn the_oldest_age_is_bounded_by_the_last_message_taken() {
    let metrics = Metrics::new();
    assert_eq!(
        metrics.oldest_age_seconds("live", 0, 9_000),
        Some(0.0),
        "empty"
    );
    assert_eq!(
        metrics.oldest_age_seconds("live", 3, 9_000),
        None,
        "nothing taken yet"
    );
    metrics.delivered("live", Some(4_000));
    assert_eq!(metrics.oldest_age_seconds("live", 3, 9_000), Some(5.0));
    metrics.delivered("live", None);
    assert_eq!(
        metrics.oldest_age_seconds("live", 3, 9_000),
        Some(5.0),
        "unknown times do not reset it"
    );
}

/// What the hand-written registry printed for the same figures, but for the two
/// gauge values it wrote with three decimals (`0.000`, `5.250`), which the encoder
/// writes in the shortest form (`0.0`, `5.25`). Within a family the order of the
/// series is not fixed (it never mattered to Prometheus), so each family's samples are
/// compared as a set.
const EXPECTED: &str = r#"# HELP tandem_events_received_total Change events taken in, by pair, system and trigger.
# TYPE tandem_events_received_total counter
tandem_events_received_total{pair="acme",system="crm",trigger="webhook"} 3
tandem_events_received_total{pair="acme",system="finance",trigger="poll"} 1
# HELP tandem_sync_outcomes_total Changes handled, by outcome.
# TYPE tandem_sync_outcomes_total counter
tandem_sync_outcomes_total{outcome="created"} 2
tandem_sync_outcomes_total{outcome="skipped"} 1
# HELP tandem_system_calls_total Calls to each system, by HTTP status.
# TYPE tandem_system_calls_total counter
tandem_system_calls_total{system="crm",status="200"} 1
tandem_system_calls_total{system="finance",status="429"} 1
# HELP tandem_rate_limit_waits_total Waits a system asked for with 429 and Retry-After.
# TYPE tandem_rate_limit_waits_total counter
tandem_rate_limit_waits_total{system="finance"} 1
# HELP tandem_sync_duration_seconds Time to handle one change, by outcome.
# TYPE tandem_sync_duration_seconds histogram
tandem_sync_duration_seconds_bucket{outcome="created",le="0.005"} 0
tandem_sync_duration_seconds_bucket{outcome="created",le="0.01"} 0
tandem_sync_duration_seconds_bucket{outcome="created",le="0.025"} 0
tandem_sync_duration_seconds_bucket{outcome="created",le="0.05"} 1
tandem_sync_duration_seconds_bucket{outcome="created",le="0.1"} 1
tandem_sync_duration_seconds_bucket{outcome="created",le="0.25"} 1
tandem_sync_duration_seconds_bucket{outcome="created",le="0.5"} 1
tandem_sync_duration_seconds_bucket{outcome="created",le="1"} 1
tandem_sync_duration_seconds_bucket{outcome="created",le="2.5"} 2
tandem_sync_duration_seconds_bucket{outcome="created",le="10"} 2
tandem_sync_duration_seconds_bucket{outcome="created",le="+Inf"} 2
tandem_sync_duration_seconds_sum{outcome="created"} 2.03
tandem_sync_duration_seconds_count{outcome="created"} 2
tandem_sync_duration_seconds_bucket{outcome="skipped",le="0.005"} 1
tandem_sync_duration_seconds_bucket{outcome="skipped",le="0.01"} 1
tandem_sync_duration_seconds_bucket{outcome="skipped",le="0.025"} 1
tandem_sync_duration_seconds_bucket{outcome="skipped",le="0.05"} 1
tandem_sync_duration_seconds_bucket{outcome="skipped",le="0.1"} 1
tandem_sync_duration_seconds_bucket{outcome="skipped",le="0.25"} 1
tandem_sync_duration_seconds_bucket{outcome="skipped",le="0.5"} 1
tandem_sync_duration_seconds_bucket{outcome="skipped",le="1"} 1
tandem_sync_duration_seconds_bucket{outcome="skipped",le="2.5"} 1
tandem_sync_duration_seconds_bucket{outcome="skipped",le="10"} 1
tandem_sync_duration_seconds_bucket{outcome="skipped",le="+Inf"} 1
tandem_sync_duration_seconds_sum{outcome="skipped"} 0.002
tandem_sync_duration_seconds_count{outcome="skipped"} 1
# HELP tandem_queue_depth Messages waiting in each lane.
# TYPE tandem_queue_depth gauge
tandem_queue_depth{lane="live"} 0
tandem_queue_depth{lane="bulk"} 12
# HELP tandem_queue_oldest_age_seconds Age of the oldest message waiting in each lane (at most).
# TYPE tandem_queue_oldest_age_seconds gauge
tandem_queue_oldest_age_seconds{lane="live"} 0.0
tandem_queue_oldest_age_seconds{lane="bulk"} 5.25
# HELP tandem_open_conflicts Conflicts waiting for a person.
# TYPE tandem_open_conflicts gauge
tandem_open_conflicts 2
# HELP tandem_failed_records Records whose last sync failed.
# TYPE tandem_failed_records gauge
tandem_failed_records 1
"#;

/// `text` as families in order: the HELP and TYPE lines, then the samples sorted.
fn families(text: &str) -> Vec<(String, Vec<String>)> {
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    for line in text.lines() {
        match out.last_mut() {
            Some((head, _)) if line.starts_with("# TYPE ") => {
                head.push('\n');
                head.push_str(line);
            }
            Some((_, samples)) if !line.starts_with('#') => samples.push(line.to_string()),
            _ => out.push((line.to_string(), Vec::new())),
        }
    }
    for (_, samples) in &mut out {
        samples.sort();
    }
    out
}

#[test]
fn the_exposition_reads_as_the_hand_written_one_did() {
    let metrics = Metrics::new();
    metrics.event_received("acme", "crm", "webhook", 3);
    metrics.event_received("acme", "finance", "poll", 1);
    metrics.sync_finished("created", Duration::from_millis(30));
    metrics.sync_finished("created", Duration::from_millis(2000));
    metrics.sync_finished("skipped", Duration::from_millis(2));
    metrics.system_call("crm", 200);
    metrics.system_call("finance", 429);
    metrics.rate_limit_wait("finance");
    let text = metrics.render(&Gauges {
        queue_depth: vec![("live", 0), ("bulk", 12)],
        oldest_age_seconds: vec![("live", 0.0), ("bulk", 5.25)],
        open_conflicts: 2,
        failed_records: 1,
        retrying_records: 0,
        in_process: vec![],
        pair_depth: Vec::new(),
        day_remaining: Vec::new(),
        budget_spent_seconds: Vec::new(),
    });
    // Every family the hand-written exposition had reads the same; families added
    // since come after them.
    let expected = families(EXPECTED);
    let kept: Vec<_> = families(&text)
        .into_iter()
        .filter(|(head, _)| expected.iter().any(|(h, _)| h == head))
        .collect();
    assert_eq!(kept, expected, "{text}");
}

#[test]
fn a_family_without_series_yet_is_left_out_and_a_gauge_is_read_each_scrape() {
    let metrics = Metrics::new();
    let text = metrics.render(&Gauges {
        queue_depth: vec![("bulk", 4)],
        oldest_age_seconds: vec![],
        open_conflicts: 0,
        failed_records: 0,
        retrying_records: 0,
        in_process: vec![],
        pair_depth: Vec::new(),
        day_remaining: Vec::new(),
        budget_spent_seconds: Vec::new(),
    });
    assert!(!text.contains("tandem_events_received_total"), "{text}");
    assert_eq!(
        sample(&text, r#"tandem_queue_depth{lane="bulk"}"#),
        Some(4.0)
    );
    assert_eq!(sample(&text, "tandem_open_conflicts"), Some(0.0));
    // A lane that could not be read at the next scrape is not shown with the old figure.
    let text = metrics.render(&no_gauges());
    assert_eq!(
        sample(&text, r#"tandem_queue_depth{lane="bulk"}"#),
        None,
        "{text}"
    );
}
