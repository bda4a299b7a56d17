//! One organisation spends its Xero day: its changes wait for the budget to renew
//! (postponed, no attempt used, nothing failed), `/api/connections`, the metrics and
//! the dashboard say which connection waits and until when, and another pair on the
//! same engine keeps syncing as if nothing happened. The simulated Xero of the pair
//! `spent` allows a handful of calls a day and answers the next with Xero's daily 429
//! (`X-Rate-Limit-Problem`, a `Retry-After` of hours).

use std::time::Duration;

use serde_json::Value;
use sim::{CustomerSeed, SimConfig, Simulators};
use tandem::secret::Secret;
use tokio_util::sync::CancellationToken;

use crate::connect_accounts::Backend;
use crate::support::browser::Browser;
use crate::support::{self, customer_named, in_xero};

const ADMIN: &str = "day-budget-admin-token-0123456789";
/// Calls the spent organisation's Xero allows a day: the connection's probe and the
/// first customer's calls spend them.
const SPENT_PER_DAY: usize = 4;

async fn simulators(per_day: usize, stop: &CancellationToken) -> std::sync::Arc<Simulators> {
    let mut config = SimConfig::default();
    config.xero.per_day = per_day;
    Simulators::start_local(config, stop.clone())
        .await
        .expect("simulators start")
}

async fn get(base: &str, path: &str) -> Value {
    reqwest::Client::new()
        .get(format!("{base}{path}"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .expect("admin API")
        .json()
        .await
        .expect("JSON")
}

fn finance_of<'a>(connections: &'a Value, pair: &str) -> Option<&'a Value> {
    connections
        .as_array()?
        .iter()
        .find(|c| c["pair"] == pair && c["side"] == "finance")
}

#[tokio::test]
async fn a_spent_day_waits_for_its_renewal_and_the_other_pair_keeps_syncing_on_postgres_and_rabbitmq(
) {
    scenario(Backend::production_of(&["spent", "quiet"]).await).await;
}

#[tokio::test]
async fn a_spent_day_waits_for_its_renewal_and_the_other_pair_keeps_syncing_on_the_embedded_default(
) {
    scenario(Backend::embedded()).await;
}

async fn scenario(backend: Backend) {
    let stop_sims = CancellationToken::new();
    let spent = simulators(SPENT_PER_DAY, &stop_sims).await;
    let quiet = simulators(5000, &stop_sims).await;
    let mut settings = tandem::config::Settings {
        database_url: backend.database_url.clone(),
        amqp_url: backend.amqp_url.clone(),
        admin_token: Some(Secret::new(ADMIN)),
        secrets_key: backend.secrets_key.clone(),
        ..Default::default()
    };
    settings.bus.prefix = backend.prefix.clone();
    settings.orchestrator.settle_ms = 0;
    settings.webhooks.public_base_url = Some("http://127.0.0.1:0".into());
    // Polled once a day: the changes come in by webhook.
    for (name, sims) in [("spent", &spent), ("quiet", &quiet)] {
        settings
            .pairs
            .insert(name.into(), tandem::demo::pair_for(sims, 86_400));
    }
    let stop = CancellationToken::new();
    let (engine, base) =
        support::serve_in_process(settings, Default::default(), stop.clone()).await;
    for (name, sims) in [("spent", &spent), ("quiet", &quiet)] {
        let (crm, finance) = tandem::demo::webhook_urls(&base, name);
        sims.send_webhooks_to(Some(crm), Some(finance));
    }

    // The spent organisation's few calls carry its first customers; Xero reports no
    // call left, and refuses the day to the next change (after the minute's pause a
    // reported zero asks for).
    let first: Vec<CustomerSeed> = ["Ada Byron", "Alan Turing"]
        .into_iter()
        .map(customer_named)
        .collect();
    for someone in &first {
        spent.hubspot.person_creates_customer(someone);
    }
    support::eventually(
        Duration::from_secs(30),
        "the first customers use up the spent organisation's day",
        || async {
            let connections = get(&base, "/api/connections").await;
            first.iter().all(|p| in_xero(&spent, &p.email))
                && finance_of(&connections, "spent")
                    .is_some_and(|c| c["budget"]["day_remaining"] == 0)
        },
    )
    .await;
    let late = customer_named("Barbara Liskov");
    spent.hubspot.person_creates_customer(&late);
    support::eventually(
        Duration::from_secs(120),
        "the spent connection says it waits for the day's renewal",
        || async {
            let connections = get(&base, "/api/connections").await;
            finance_of(&connections, "spent").is_some_and(|c| c["budget"]["spent"] == "daily")
        },
    )
    .await;
    let connections = get(&base, "/api/connections").await;
    let waits_until = finance_of(&connections, "spent").expect("spent's Xero")["budget"]
        ["waits_until"]
        .as_str()
        .expect("waits_until")
        .to_string();
    let until = chrono::DateTime::parse_from_rfc3339(&waits_until).expect("waits_until");
    assert!(
        until > chrono::Utc::now() + chrono::Duration::hours(20),
        "Xero's day renews in about a day: {waits_until}"
    );
    assert!(!in_xero(&spent, &late.email), "the late change waits");

    // They wait: postponed, no attempt used, nothing failed.
    support::eventually(
        Duration::from_secs(30),
        "a change of the spent pair is recorded as waiting for the limit",
        || async {
            let waiting = get(&base, "/api/sync-logs?pair=spent&outcome=retrying").await;
            waiting.as_array().into_iter().flatten().any(|l| {
                l["error"]
                    .as_str()
                    .is_some_and(|e| e.contains("daily") && e.contains("wait until"))
            })
        },
    )
    .await;
    let failed = get(&base, "/api/sync-logs?outcome=failed").await;
    assert_eq!(failed, serde_json::json!([]), "nothing failed");
    let metrics = reqwest::get(format!("{base}/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        support::sample(
            &metrics,
            "tandem_daily_limit_refusals_total{system=\"finance\"}"
        ) >= 1,
        "the daily refusal is counted"
    );
    assert!(
        metrics
            .lines()
            .any(|l| l == "tandem_connection_day_remaining{pair=\"spent\",system=\"finance\"} 0"),
        "the spent organisation's day, as Xero reported it: {metrics}"
    );
    assert!(
        support::sample(
            &metrics,
            "tandem_connection_budget_spent_seconds{pair=\"spent\",system=\"finance\"}"
        ) > 20 * 3600,
        "the spent day renews in about a day"
    );

    // The other organisation's changes go on as before, and its remaining day shows.
    let grace = customer_named("Grace Hopper");
    quiet.hubspot.person_creates_customer(&grace);
    support::eventually(
        Duration::from_secs(15),
        "the quiet pair's change reaches its Xero",
        || async { in_xero(&quiet, &grace.email) },
    )
    .await;
    let connections = get(&base, "/api/connections").await;
    let quiet_budget = &finance_of(&connections, "quiet").expect("quiet's Xero")["budget"];
    assert!(quiet_budget["spent"].is_null(), "{quiet_budget}");
    assert!(
        quiet_budget["day_remaining"]
            .as_u64()
            .is_some_and(|left| left > 0 && left < 5000),
        "the day's remaining calls as Xero reported them: {quiet_budget}"
    );
    assert!(
        quiet_budget["lasts_secs"].as_u64().is_some_and(|s| s > 0),
        "a forecast at the recent pace: {quiet_budget}"
    );

    // The pairs of the settings file show their sides and the webhooks they take.
    let pairs = get(&base, "/api/pairs").await;
    let quiet_pair = pairs
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["name"] == "quiet")
        .expect("the quiet pair is listed");
    assert_eq!(quiet_pair["defined_by"], "settings");
    assert_eq!(
        quiet_pair["sides"].as_array().map(Vec::len),
        Some(2),
        "{quiet_pair}"
    );
    assert!(
        quiet_pair["webhooks"][0]["url"]
            .as_str()
            .is_some_and(|u| u.starts_with(&base) && u.ends_with("/webhooks/quiet/crm")),
        "{quiet_pair}"
    );

    // The dashboard says which organisation waits, and until when.
    let browser = Browser::start().await;
    browser.open_dashboard(&base, ADMIN).await;
    let banner = browser
        .wait_for(
            "the banner names the spent connection",
            || browser.text("#banner"),
            |text| text.contains("(spent, finance) has spent its daily API limit"),
        )
        .await;
    assert!(
        banner.contains(&waits_until[..10]),
        "{banner}: until {waits_until}"
    );
    assert!(!banner.contains("quiet"), "{banner}");
    if backend.amqp_url == "memory" {
        browser.screenshot("dashboard-day-spent.png").await;
    }
    let spent_row = browser.text("tr[data-connection='spent/finance']").await;
    assert!(
        spent_row.contains("daily limit spent until") && spent_row.contains("1 change waiting"),
        "{spent_row}"
    );
    let quiet_row = browser.text("tr[data-connection='quiet/finance']").await;
    let left = quiet_budget["day_remaining"].as_u64().unwrap_or_default();
    assert!(
        quiet_row.contains("healthy"),
        "the other organisation's Xero: {quiet_row} ({left} calls left)"
    );
    drop(browser);

    stop.cancel();
    engine
        .await
        .expect("engine task")
        .expect("engine stops cleanly");
    stop_sims.cancel();
}
