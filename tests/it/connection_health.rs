//! Connections are probed and outages are shown as outages, against the simulators
//! over real HTTP: a wrong Xero base URL fails `tandem config --check` naming the
//! setting and makes `/ready` answer 503; a Xero outage shows as `down` in the admin
//! API and `tandem status`, Xero sees only the probe while it is down, and the
//! connection comes back on its own.

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use sim::{SimConfig, Simulators};
use tokio_util::sync::CancellationToken;

use crate::support::{self, TestSqlite};
use crate::sync_e2e::{Backend, World, ADMIN, PAIR};

const XERO_API_PATH: &str = "/api.xro/2.0";

/// `tandem <args>` with only the given settings (none from the caller's environment).
fn tandem(args: &[&str], env: &[(&str, String)]) -> (i32, String, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tandem"));
    for (key, _) in std::env::vars() {
        if key.starts_with("TANDEM_") {
            command.env_remove(key);
        }
    }
    command.args(args).current_dir(std::env::temp_dir());
    for (key, value) in env {
        command.env(key, value);
    }
    let output = command.output().expect("run tandem");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// A settings file for pair `acme` against the simulators, Xero at `xero_base_url`.
fn settings_file(sims: &Simulators, xero_base_url: &str, dir: &std::path::Path) -> String {
    let hubspot = sims.hubspot.settings();
    let xero = sims.xero.settings();
    let toml = format!(
        r#"
[webhooks]
public_base_url = "https://sync.example.com"

[pairs.{PAIR}]
poll_interval_secs = 0

[pairs.{PAIR}.crm]
kind = "hubspot"
base_url = "{hubspot_url}"
client_id = "{hubspot_client}"
client_secret = "{hubspot_secret}"
refresh_token = "{hubspot_refresh}"
webhook_secrets = ["{hubspot_secret}"]
portal_id = {portal_id}

[pairs.{PAIR}.finance]
kind = "xero"
base_url = "{xero_base_url}"
token_url = "{token_url}"
tenant_id = "{tenant}"
client_id = "{xero_client}"
client_secret = "{xero_secret}"
refresh_token = "{xero_refresh}"
webhook_secrets = ["{xero_webhook}"]
"#,
        hubspot_url = sims.hubspot_url,
        hubspot_client = hubspot.client_id,
        hubspot_secret = hubspot.client_secret,
        hubspot_refresh = hubspot.refresh_token,
        portal_id = hubspot.portal_id,
        token_url = sims.xero_token_url(),
        tenant = xero.tenant_id,
        xero_client = xero.client_id,
        xero_secret = xero.client_secret,
        xero_refresh = xero.refresh_token,
        xero_webhook = xero.webhook_key,
    );
    let path = dir.join(format!("{}.toml", support::unique("tandem")));
    std::fs::write(&path, toml).expect("write the settings file");
    path.display().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_check_names_a_wrong_xero_base_url_and_passes_a_right_one() {
    let stop = CancellationToken::new();
    let sims = Simulators::start_local(SimConfig::default(), stop.clone())
        .await
        .expect("simulators start");
    let dir = std::env::temp_dir();
    let check = |xero_base_url: String| {
        let db = TestSqlite::create();
        let file = settings_file(&sims, &xero_base_url, &dir);
        let ran = tandem(
            &["config", "--check"],
            &[
                ("TANDEM_CONFIG", file.clone()),
                ("TANDEM_DATABASE_URL", db.url.clone()),
            ],
        );
        let _ = std::fs::remove_file(file);
        ran
    };

    // The host alone, as the README's example once had it: Xero's API is below a path.
    let (code, stdout, stderr) = tokio::task::block_in_place(|| check(sims.xero_url.clone()));
    assert_eq!(code, 78, "a wrong setting exits 78\n{stdout}\n{stderr}");
    let expected = format!(
        "pairs.{PAIR}.finance.base_url: Xero answered 404 at {}/Organisation: the base URL \
         should end in {XERO_API_PATH}",
        sims.xero_url
    );
    assert!(stdout.contains(&expected), "{stdout}\n{stderr}");
    assert!(
        stdout.contains(&format!("pairs.{PAIR}.crm: ok")),
        "{stdout}"
    );
    assert!(
        stdout.contains("2 connections checked, 1 failed"),
        "{stdout}"
    );

    let (code, stdout, stderr) = tokio::task::block_in_place(|| check(sims.xero_api_url()));
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(
        stdout.contains(&format!("pairs.{PAIR}.finance: ok")),
        "{stdout}"
    );
    stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_names_a_misconfigured_connection_and_no_change_fails_for_it() {
    let world = World::start_with_pair(Backend::Embedded, SimConfig::default(), |pair| {
        if let Some(finance) = pair.finance.as_mut() {
            finance.base_url = finance.base_url.trim_end_matches(XERO_API_PATH).to_string();
        }
    })
    .await;
    let mut answer = Value::Null;
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        let response = world
            .http
            .get(format!("{}/ready", world.base))
            .send()
            .await
            .expect("/ready answers");
        let status = response.status().as_u16();
        answer = response.json().await.unwrap_or(Value::Null);
        if status == 503 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(answer["status"], "unavailable", "503 within 30 s: {answer}");
    let failing = answer["failing"].as_array().cloned().unwrap_or_default();
    let finance = failing
        .iter()
        .find(|f| f["side"] == "finance")
        .unwrap_or_else(|| panic!("the finance connection is named: {answer}"));
    assert_eq!(finance["pair"], PAIR, "{answer}");
    assert_eq!(finance["state"], "misconfigured", "{answer}");
    assert_eq!(
        finance["setting"],
        format!("pairs.{PAIR}.finance.base_url"),
        "{answer}"
    );
    assert!(
        finance["hint"]
            .as_str()
            .is_some_and(|h| h.contains(XERO_API_PATH)),
        "{answer}"
    );
    assert!(
        !failing.iter().any(|f| f["side"] == "crm"),
        "HubSpot is fine: {answer}"
    );

    // A change that needs Xero waits for it instead of failing on a 404.
    world
        .sims
        .hubspot
        .person_creates_customer(&sim::CustomerSeed {
            name: "Waiting Person".into(),
            email: "waiting.person@example.com".into(),
            phone: None,
        });
    tokio::time::sleep(Duration::from_secs(5)).await;
    let stats = world.admin("/api/stats?window=1h").await;
    assert_eq!(stats["outcomes"]["failed"], Value::Null, "{stats}");
    let connections = world.admin("/api/connections").await;
    let finance = connections
        .as_array()
        .and_then(|all| all.iter().find(|c| c["side"] == "finance"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(finance["state"], "misconfigured", "{connections}");
    assert_eq!(finance["recent_calls"]["ok"], 0, "{connections}");
}

/// The connection on `side` as `GET /api/connections` shows it.
async fn connection(world: &World, side: &str) -> Value {
    let all = world.admin("/api/connections").await;
    all.as_array()
        .and_then(|all| all.iter().find(|c| c["side"] == side))
        .cloned()
        .unwrap_or_else(|| panic!("no {side} connection in {all}"))
}

/// The most calls that started within any `window`.
fn most_within(starts: &[Instant], window: Duration) -> usize {
    starts
        .iter()
        .map(|from| {
            starts
                .iter()
                .filter(|t| **t >= *from && t.duration_since(*from) < window)
                .count()
        })
        .max()
        .unwrap_or(0)
}

const OUTAGE: Duration = Duration::from_secs(65);

async fn an_outage_is_shown_contained_and_ends_on_its_own(backend: Backend) {
    let world = World::start(backend).await;
    let sims = world.sims.clone();
    sims.people.seed(&sims.hubspot, &sims.xero, 20, 5);
    world
        .until("the first sync is done", |s| {
            s.in_step && s.customers.paired == 35
        })
        .await;
    assert_eq!(connection(&world, "finance").await["state"], "healthy");
    let people = CancellationToken::new();
    let editing = {
        let (sims, stop) = (sims.clone(), people.clone());
        tokio::spawn(async move { sims.people.run(&sims.hubspot, &sims.xero, 2.0, stop).await })
    };
    tokio::time::sleep(Duration::from_secs(3)).await;

    let outage_start = Instant::now();
    let outage_start_time = chrono::Utc::now();
    sims.knobs.update(|k| k.xero_down = true);

    // Shown as down within 30 s, with when it started.
    let mut down = Value::Null;
    let deadline = outage_start + Duration::from_secs(30);
    while Instant::now() < deadline {
        down = connection(&world, "finance").await;
        if down["state"] == "down" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(down["state"], "down", "within 30 s: {down}");
    let down_at = Instant::now();
    let since: chrono::DateTime<chrono::Utc> = down["since"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("since: {down}"));
    assert!(
        since >= outage_start_time - chrono::Duration::seconds(1) && since <= chrono::Utc::now(),
        "since {since}, the outage began at {outage_start_time}"
    );
    assert_eq!(connection(&world, "crm").await["state"], "healthy");
    // `/api/stats` says the same, with the changes waiting on Xero, also within 30 s.
    let mut shown = Value::Null;
    while Instant::now() < deadline {
        let stats = world.admin("/api/stats?window=1h").await;
        shown = stats["connections"]
            .as_array()
            .and_then(|all| all.iter().find(|c| c["side"] == "finance"))
            .cloned()
            .unwrap_or_default();
        if shown["waiting"]["changes_retrying"].as_u64() > Some(0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(shown["state"], "down", "{shown}");
    let waiting = shown["waiting"]["changes_retrying"].as_u64().unwrap_or(0);
    assert!(waiting > 0, "changes waiting on Xero within 30 s: {shown}");
    let (code, status, stderr) = tokio::task::block_in_place(|| {
        tandem(
            &["status"],
            &[
                ("TANDEM_URL", world.base.clone()),
                ("TANDEM_ADMIN_TOKEN", ADMIN.to_string()),
            ],
        )
    });
    assert_eq!(code, 0, "{status}\n{stderr}");
    let line = format!(
        "xero ({PAIR} finance): down since {}",
        since.format("%H:%M:%S UTC")
    );
    assert!(status.contains(&line), "{line:?} in:\n{status}");
    assert!(status.contains("last error: HTTP 503"), "{status}");
    assert!(status.contains(" waiting to retry)"), "{status}");
    let ready = world
        .http
        .get(format!("{}/ready", world.base))
        .send()
        .await
        .expect("/ready answers");
    assert_eq!(ready.status().as_u16(), 503);

    let remaining = OUTAGE.saturating_sub(outage_start.elapsed());
    tokio::time::sleep(remaining).await;
    sims.knobs.update(|k| k.xero_down = false);
    let outage_end = Instant::now();
    people.cancel();
    let _ = editing.await;

    // Back on its own, found by a probe.
    let mut back = Value::Null;
    let deadline = outage_end + Duration::from_secs(30);
    while Instant::now() < deadline {
        back = connection(&world, "finance").await;
        if back["state"] == "healthy" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        back["state"], "healthy",
        "within 30 s of the outage's end: {back}"
    );

    // What Xero received during the outage: within its budget, and once the outage
    // was known, nothing but the probe, one at a time.
    let calls: Vec<_> = sims
        .xero
        .calls()
        .into_iter()
        .filter(|c| c.at >= outage_start && c.at < outage_end)
        .collect();
    let starts: Vec<Instant> = calls.iter().map(|c| c.at).collect();
    let budget = sims.xero.settings().per_minute;
    assert!(
        most_within(&starts, Duration::from_secs(60)) <= budget,
        "{} calls during the outage",
        calls.len()
    );
    let known: Vec<_> = calls.iter().filter(|c| c.at >= down_at).collect();
    assert!(
        known.iter().all(|c| c.path.ends_with("/Organisation")),
        "only probes while down: {:?}",
        known
            .iter()
            .map(|c| format!("{} {}", c.method, c.path))
            .collect::<Vec<_>>()
    );
    assert!(
        known.windows(2).all(|w| w[1].at >= w[0].finished),
        "one probe at a time"
    );
    assert!(
        calls.len() <= 30,
        "a down Xero sees fewer calls, not more: {} in {OUTAGE:?}",
        calls.len()
    );

    // Every attempt counts: the outage's retries lowered the attempt rate.
    let stats = world.admin("/api/stats?window=1h").await;
    let attempt_rate = stats["attempt_success_rate"].as_f64().unwrap_or(1.0);
    assert!(attempt_rate < 1.0, "{stats}");
    assert!(
        stats["attempts"].as_u64() > stats["finished"].as_u64(),
        "{stats}"
    );

    // Nothing was lost: the held and postponed changes all reach Xero (postponed
    // changes come back within about as long as the outage lasted).
    support::eventually(
        OUTAGE + Duration::from_secs(60),
        "both sides agree after the outage",
        || {
            let in_step = sims.inspect().in_step;
            async move { in_step }
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_is_shown_contained_and_ends_on_its_own_on_postgres_and_rabbitmq() {
    an_outage_is_shown_contained_and_ends_on_its_own(Backend::Production).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_is_shown_contained_and_ends_on_its_own_on_the_embedded_default() {
    an_outage_is_shown_contained_and_ends_on_its_own(Backend::Embedded).await;
}
