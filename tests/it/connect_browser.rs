//! Connecting real accounts in a real browser, as a new user would: `tandem serve` with
//! no pair, the dashboard, HubSpot's and Xero's consent pages (the simulators play the
//! identity servers), the second of two Xero organisations picked, a pair made in a
//! form, its first sync seen; then the user revokes Tandem's access in Xero, the pair
//! waits with a "reconnect" prompt, one click and a consent later it resumes and the
//! change that waited lands. Screenshots as in `dashboard_browser`.

use std::time::Duration;

use serde_json::Value;
use sim::{SimConfig, Simulators};
use tandem::config::Settings;
use tandem::secret::Secret;
use tokio_util::sync::CancellationToken;

use crate::support::browser::Browser;
use crate::support::{self, customer_named, in_xero, unique, TestSqlite};

const ADMIN: &str = "connect-browser-admin-token-0123456789";

/// On the consent page the simulator serves: allow access.
async fn allow(browser: &Browser) {
    browser.click("css selector", "button[value='allow']").await;
}

/// The dashboard's organisation picker, after a Xero consent: two organisations
/// offered, the second taken.
async fn pick_second_organisation(browser: &Browser, expected: &str) {
    let rows = browser
        .wait_for(
            "the organisation picker lists two organisations",
            || browser.text("#organisations"),
            |text| text.lines().filter(|l| !l.trim().is_empty()).count() == 2,
        )
        .await;
    let second = rows.lines().filter(|l| !l.trim().is_empty()).nth(1);
    assert!(
        second.is_some_and(|row| row.contains(expected)),
        "the second organisation offered is {expected}: {rows}"
    );
    browser
        .click("xpath", "(//tbody[@id='organisations']//button)[2]")
        .await;
    browser
        .wait_for(
            "the account of the organisation picked",
            || browser.text("#accounts"),
            |text| text.contains(expected),
        )
        .await;
}

#[tokio::test]
async fn a_new_user_connects_both_systems_in_the_browser_makes_a_pair_and_reconnects_after_a_revoke(
) {
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
    settings.bus.prefix = unique("connect_browser");
    settings.webhooks.public_base_url = Some("http://127.0.0.1:0".into());
    // The demo's apps: the simulators' consent pages and token endpoints; port 0
    // stands for the port Tandem binds.
    settings.connect = tandem::demo::connect_for(&sims, "http://127.0.0.1:0/connect/callback");
    let stop = CancellationToken::new();
    let (engine, base) =
        support::serve_in_process(settings, Default::default(), stop.clone()).await;

    let browser = Browser::start().await;
    browser.open_dashboard(&base, ADMIN).await;
    browser
        .wait_for(
            "the page says no account is connected",
            || browser.text("#accounts-note"),
            |text| text.contains("No account connected yet"),
        )
        .await;
    browser.screenshot("connect-start.png").await;

    // A callback that was not started here: the page says so, nothing is stored.
    browser
        .goto(&format!("{base}/connect/callback?state=forged&code=x"))
        .await;
    browser
        .wait_for(
            "the refused callback is explained on the dashboard",
            || browser.text("#errors"),
            |text| text.contains("Not connected") && text.contains("state"),
        )
        .await;
    browser.click("css selector", "#errors button").await;

    // HubSpot: consent, and the portal comes back as an account.
    browser.click("css selector", "#connect-hubspot").await;
    allow(&browser).await;
    let portal = sims.hubspot.settings().portal_id.to_string();
    browser
        .wait_for(
            "the HubSpot portal is connected",
            || browser.text("#accounts"),
            |text| text.contains(&portal) && text.contains("connected"),
        )
        .await;

    // Xero: the grant reaches two organisations, and the person picks the second.
    let organisation = sims.xero.settings().tenant_name.clone();
    browser.click("css selector", "#connect-xero").await;
    allow(&browser).await;
    browser
        .wait_for(
            "the organisation picker shows",
            || browser.text("#choose"),
            |text| text.to_lowercase().contains("pick the xero organisation"),
        )
        .await;
    browser.screenshot("connect-choose-organisation.png").await;
    pick_second_organisation(&browser, &organisation).await;

    // A pair of the two, from the form; polled every second (no webhooks registered).
    browser.type_into("#pair-name", "acme").await;
    browser.clear("#pair-poll").await;
    browser.type_into("#pair-poll", "1").await;
    browser.click("css selector", "#create-pair").await;
    browser
        .wait_for(
            "the pair syncs",
            || browser.text("#pairs"),
            |text| text.contains("acme") && text.contains("syncing"),
        )
        .await;
    let ada = customer_named("Ada Lovelace");
    sims.hubspot.person_creates_customer(&ada);
    browser
        .wait_for(
            "the first sync shows among the recent syncs",
            || browser.text("#logs"),
            |text| text.contains("Ada Lovelace") && text.contains("created"),
        )
        .await;
    assert!(in_xero(&sims, &ada.email), "the customer is in Xero");
    browser.click("css selector", "#pairs details").await;
    browser.screenshot("connect-pair-syncing.png").await;

    // The user removes Tandem's access in Xero: the pair waits, and the page asks for
    // a reconnect.
    sims.xero.revoke_all_grants();
    let grace = customer_named("Grace Hopper");
    sims.hubspot.person_creates_customer(&grace);
    let prompt = browser
        .wait_for(
            "a reconnect prompt",
            || browser.text("#prompts"),
            |text| text.contains("Pair acme is waiting"),
        )
        .await;
    assert!(prompt.contains("Reconnect Xero"), "{prompt}");
    assert!(browser.text("#pairs").await.contains("needs reconnecting"));
    browser.screenshot("connect-reconnect.png").await;
    assert!(
        !in_xero(&sims, &grace.email),
        "nothing lands while it waits"
    );

    // One click, the consent, the same organisation: it resumes and the change lands.
    browser.click("css selector", "#prompts button").await;
    allow(&browser).await;
    pick_second_organisation(&browser, &organisation).await;
    browser
        .wait_for(
            "the prompt is gone and the pair syncs again",
            || async { (browser.text("#prompts").await, browser.text("#pairs").await) },
            |(prompts, pairs)| prompts.is_empty() && pairs.contains("syncing"),
        )
        .await;
    support::eventually(
        Duration::from_secs(60),
        "the change that waited reaches Xero",
        || async { in_xero(&sims, &grace.email) },
    )
    .await;

    // Changes waited, none failed.
    let failed: Value = reqwest::Client::new()
        .get(format!("{base}/api/sync-logs?outcome=failed"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .expect("admin API")
        .json()
        .await
        .expect("json");
    assert_eq!(
        failed,
        serde_json::json!([]),
        "changes wait, they do not fail"
    );

    drop(browser);
    stop.cancel();
    engine
        .await
        .expect("engine task")
        .expect("engine stops cleanly");
    stop_sims.cancel();
}
