//! The dashboard in a real browser: headless Chromium driven through chromedriver's W3C
//! WebDriver HTTP API, against the whole engine (embedded backend) and the simulated
//! HubSpot and Xero. A person pastes the admin token, watches the synced count rise,
//! opens a failed sync's details, retries it once the cause is fixed, and pauses and
//! resumes the queue. Screenshots of the key moments land in `target/tmp/screenshots/`;
//! `scripts/screenshots.sh` (which sets `TANDEM_UPDATE_SCREENSHOTS=1`) writes them over
//! the committed ones in `docs/screenshots/` instead.
//!
//! Needs Debian's `chromium` and `chromium-driver` packages (`/usr/bin/chromium`,
//! `/usr/bin/chromedriver`); without them the test fails and says how to install them.

use crate::support;

use std::sync::Arc;
use std::time::Duration;

use crate::support::browser::{Browser, SETTLE};

use serde_json::json;
use sim::{CustomerSeed, SimConfig, Simulators};
use tandem::config::Settings;
use tandem::secret::Secret;
use tandem::wiring::WiringOptions;
use tokio_util::sync::CancellationToken;

use support::{unique, TestSqlite};

const PAIR: &str = "acme";
const ADMIN: &str = "browser-admin-token-0123456789abcdef";

// ---------------------------------------------------------------------------------
// The engine and the simulators.
// ---------------------------------------------------------------------------------

struct World {
    sims: Arc<Simulators>,
    base: String,
    stop_sims: CancellationToken,
    stop_engine: CancellationToken,
    engine: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    _sqlite: TestSqlite,
}

impl World {
    async fn start() -> Self {
        let stop_sims = CancellationToken::new();
        let sims = Simulators::start_local(SimConfig::default(), stop_sims.clone())
            .await
            .expect("simulators start");
        let sqlite = TestSqlite::create();
        let mut settings = Settings {
            database_url: sqlite.url.clone(),
            amqp_url: "memory".into(),
            admin_token: Some(Secret::new(ADMIN)),
            ..Default::default()
        };
        settings.bus.prefix = unique("browser");
        // The simulators sign the URL they call: Tandem's own address, on the port it
        // binds (port 0 here stands for that port).
        settings.webhooks.public_base_url = Some("http://127.0.0.1:0".into());
        // Polling off: only webhooks and the page's buttons move records, so a failure
        // stays failed until the test presses retry.
        settings
            .pairs
            .insert(PAIR.into(), tandem::demo::pair_for(&sims, 0));
        settings.validate().expect("valid settings");
        let stop_engine = CancellationToken::new();
        let (engine, base) =
            support::serve_in_process(settings, WiringOptions::default(), stop_engine.clone())
                .await;
        tandem::demo::wait_until_up(&base, Duration::from_secs(30))
            .await
            .expect("tandem answers");
        let (crm, finance) = tandem::demo::webhook_urls(&base, PAIR);
        sims.send_webhooks_to(Some(crm), Some(finance));
        Self {
            sims,
            base,
            stop_sims,
            stop_engine,
            engine: Some(engine),
            _sqlite: sqlite,
        }
    }

    async fn stop(mut self) {
        self.sims.send_webhooks_to(None, None);
        self.stop_engine.cancel();
        if let Some(engine) = self.engine.take() {
            engine
                .await
                .expect("engine task")
                .expect("engine stops cleanly");
        }
    }
}

impl Drop for World {
    fn drop(&mut self) {
        self.stop_engine.cancel();
        self.stop_sims.cancel();
    }
}

fn person(n: usize) -> CustomerSeed {
    CustomerSeed {
        name: format!("Browser Person {n}"),
        email: format!("browser.person{n}.{}@example.com", std::process::id()),
        phone: Some(format!("+1 555 02{n:02}")),
    }
}

/// The page's number in `#synced`, if it shows one yet.
fn count(text: &str) -> Option<u64> {
    text.trim().parse().ok()
}

/// The failures table's row for a HubSpot id (its cell names the record, then its ids).
fn failure_row(crm_id: &str) -> String {
    format!("//tbody[@id='failures']/tr[td[1][contains(normalize-space(.), 'CRM {crm_id} ')]]")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_person_watches_syncs_reads_a_failure_retries_it_and_pauses_the_queue() {
    let browser = Browser::start().await;
    let world = World::start().await;

    // 1. Open the dashboard, paste the token, see the synced count rise.
    browser.goto(&format!("{}/", world.base)).await;
    let asked = browser.text("#message").await;
    assert!(
        asked.contains("admin token"),
        "the page asks for the token: {asked:?}"
    );
    // Tab leaves the field, which fires its `change` event, as a person's would.
    browser
        .type_into("#token", &format!("{ADMIN}\u{E004}"))
        .await;
    let first = browser
        .wait_for(
            "a first synced count",
            || async { browser.text("#synced").await },
            |t| count(t).is_some(),
        )
        .await;
    let first = count(&first).expect("a number");
    let seeded: Vec<String> = (0..3)
        .map(|n| world.sims.hubspot.person_creates_customer(&person(n)))
        .collect();
    browser
        .wait_for(
            "the synced count to rise by the three new customers",
            || async { browser.text("#synced").await },
            |t| count(t).is_some_and(|n| n >= first + 3),
        )
        .await;
    let sims = world.sims.clone();
    let in_xero = |id: &str| {
        sims.xero
            .customers()
            .iter()
            .any(|c| c.stamp.as_deref() == Some(id))
    };
    assert!(
        seeded.iter().all(|id| in_xero(id)),
        "the seeded customers reached Xero"
    );
    browser
        .wait_for(
            "the recent syncs to list the created customers",
            || async { browser.text("#logs").await },
            |t| seeded.iter().all(|id| t.contains(id.as_str())),
        )
        .await;
    assert_eq!(browser.text("#paused").await, "running");
    browser.screenshot("dashboard-overview.png").await;

    // 2. A customer Xero refuses: listed among failures, its details readable.
    let bad_id = world.sims.hubspot.person_creates_customer(&CustomerSeed {
        email: "not-an-email".into(),
        ..person(9)
    });
    let row = failure_row(&bad_id);
    let listed = browser
        .wait_for(
            "the refused customer among the failures",
            || async {
                let mut text = String::new();
                for element in browser.find_all("xpath", &row).await {
                    text = browser.text_of(&element).await.unwrap_or_default();
                }
                text
            },
            |t| t.contains("Email address must be valid"),
        )
        .await;
    assert!(
        listed.contains(&person(9).name) && listed.contains("not-an-email"),
        "the row names the refused customer by name and e-mail: {listed}"
    );
    let all_failures = browser.text("#failures").await;
    assert!(
        !seeded.iter().any(|id| browser_lists(&all_failures, id)),
        "only the refused customer failed: {all_failures}"
    );
    browser
        .click(
            "xpath",
            &format!("{row}//button[normalize-space(.)='Details']"),
        )
        .await;
    let detail = browser
        .wait_for(
            "the failure's details",
            || async { browser.text("#failure-detail pre").await },
            |t| t.contains("status 400") && t.contains("Email address must be valid"),
        )
        .await;
    assert!(
        detail.contains("not-an-email"),
        "the details show the request that was refused: {detail}"
    );
    browser.screenshot("dashboard-failure.png").await;

    // 3. Fix the cause in HubSpot with nothing else watching, then retry from the page.
    world.sims.send_webhooks_to(None, None);
    let fixed_email = format!("fixed.{}@example.com", std::process::id());
    let hubspot = world.sims.hubspot.settings();
    let fixed = reqwest::Client::new()
        .post(format!(
            "{}/crm/v3/objects/contacts/batch/update",
            world.sims.hubspot_url
        ))
        .bearer_auth(&hubspot.private_app_token)
        .json(&json!({"inputs": [{"id": bad_id, "properties": {"email": fixed_email}}]}))
        .send()
        .await
        .expect("the simulated HubSpot answers");
    let status = fixed.status();
    let body = fixed.text().await.unwrap_or_default();
    assert!(
        status.is_success(),
        "e-mail fixed in HubSpot: {status} {body}"
    );
    assert!(
        !in_xero(&bad_id),
        "nothing synced the fixed customer before the retry"
    );
    browser
        .click(
            "xpath",
            &format!("{row}//button[normalize-space(.)='Retry']"),
        )
        .await;
    let sims = world.sims.clone();
    let reached = tokio::time::timeout(SETTLE, async {
        loop {
            let found = sims
                .xero
                .customers()
                .into_iter()
                .find(|c| c.stamp.as_deref() == Some(bad_id.as_str()));
            if let Some(found) = found {
                return found;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("the retried customer did not reach Xero within {SETTLE:?}"));
    assert_eq!(reached.email.as_deref(), Some(fixed_email.as_str()));
    browser
        .wait_for(
            "the retried customer gone from the failures",
            || async { browser.find_all("xpath", &row).await.len() },
            |rows| *rows == 0,
        )
        .await;
    assert_eq!(
        browser.text("#errors").await,
        "",
        "the page reported no error"
    );

    // 4. Look a customer up by e-mail, in another case than it was typed.
    let wanted = person(1);
    browser
        .type_into(
            "#query",
            &format!("{}\u{E007}", wanted.email.to_uppercase()),
        )
        .await;
    let found = browser
        .wait_for(
            "the customer found by e-mail",
            || async { browser.text("#results").await },
            |t| t.contains(&wanted.name),
        )
        .await;
    assert!(found.contains(&seeded[1]), "with its CRM id: {found}");
    browser
        .wait_for(
            "the found customer's history",
            || async { browser.text("#record-body").await },
            |t| t.contains(&wanted.name) && t.contains("created"),
        )
        .await;

    // 5. Xero goes down while a customer waits to reach it: a banner says so plainly,
    // with the changes waiting, and goes once Xero answers again.
    let (crm, finance) = tandem::demo::webhook_urls(&world.base, PAIR);
    world.sims.send_webhooks_to(Some(crm), Some(finance));
    world.sims.knobs.update(|k| k.xero_down = true);
    let waiting_id = world.sims.hubspot.person_creates_customer(&person(7));
    let banner = browser
        .wait_for(
            "a banner naming the Xero outage",
            || async { browser.text("#banner").await },
            |t| t.contains("is down since") && t.contains("waiting"),
        )
        .await;
    assert!(
        banner.starts_with(&format!("Xero ({PAIR}, finance) is down since ")),
        "the banner names the connection: {banner}"
    );
    assert!(
        (banner.contains(" change waiting") || banner.contains(" changes waiting"))
            && banner.contains("503"),
        "the banner counts the waiting change and gives the last error: {banner}"
    );
    browser.screenshot("dashboard-outage.png").await;
    world.sims.knobs.update(|k| k.xero_down = false);
    browser
        .wait_for(
            "the banner gone once Xero answers",
            || async { browser.text("#banner").await },
            |t| t.is_empty(),
        )
        .await;
    let sims = world.sims.clone();
    tokio::time::timeout(SETTLE + Duration::from_secs(30), async {
        while !sims
            .xero
            .customers()
            .iter()
            .any(|c| c.stamp.as_deref() == Some(waiting_id.as_str()))
        {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("the customer that waited reached Xero after the outage");
    world.sims.send_webhooks_to(None, None);

    // 6. Pause and resume the queue.
    browser.click("css selector", "#pause").await;
    browser
        .wait_for(
            "the queue shown as paused",
            || async { browser.text("#paused").await },
            |t| t == "paused",
        )
        .await;
    browser.screenshot("dashboard-paused.png").await;
    browser.click("css selector", "#resume").await;
    browser
        .wait_for(
            "the queue shown as running again",
            || async { browser.text("#paused").await },
            |t| t == "running",
        )
        .await;

    // 7. The token lives in the tab, not in localStorage.
    let stored = browser
        .cmd(
            "POST",
            "/execute/sync",
            Some(json!({"script": "return [localStorage.getItem('tandem-token'), sessionStorage.getItem('tandem-token')];", "args": []})),
        )
        .await
        .expect("run a script");
    assert_eq!(stored, json!([null, ADMIN]), "token storage");

    // 8. A refused token clears the figures and says so, and the message stays.
    browser
        .cmd(
            "POST",
            &format!("/element/{}/clear", browser.css("#token").await),
            Some(json!({})),
        )
        .await
        .expect("clear the token");
    browser.type_into("#token", "not-the-token\u{E004}").await;
    let said = browser
        .wait_for(
            "the refusal said",
            || async { browser.text("#errors").await },
            |t| t.contains("admin token was refused"),
        )
        .await;
    assert!(said.contains("Dismiss"), "a person dismisses it: {said}");
    assert_eq!(
        browser.text("#synced").await,
        "–",
        "no figure left from before"
    );
    assert_eq!(
        browser.text("#failures").await,
        "",
        "no list left from before"
    );
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    assert!(
        browser
            .text("#errors")
            .await
            .contains("admin token was refused"),
        "the error stays across refreshes until dismissed"
    );
    browser.screenshot("dashboard-refused.png").await;
    browser
        .click(
            "xpath",
            "//ul[@id='errors']/li[1]/button[normalize-space(.)='Dismiss']",
        )
        .await;
    browser
        .wait_for(
            "the error dismissed",
            || async { browser.text("#errors").await },
            |t| t.is_empty(),
        )
        .await;

    drop(browser);
    world.stop().await;
}

/// Whether a failures row's text names a HubSpot id.
fn browser_lists(text: &str, crm_id: &str) -> bool {
    text.split_whitespace().any(|word| word == crm_id)
}
