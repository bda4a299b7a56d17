//! Signed webhooks against the running server, with the real PostgreSQL and RabbitMQ:
//! every bad input gets its status and a JSON error and leaves the queue and the store
//! unchanged; a valid delivery sent five times publishes one event. [`hostile`] throws
//! what a hostile sender would at each rule.

mod hostile;

use crate::support;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sea_orm::{ConnectionTrait, Statement};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use support::{TandemProcess, TestDatabase};
use tandem::bus::rabbitmq::RabbitBus;
use tandem::bus::{Bus, BusConfig, Lane};
use tandem::store;

const XERO_KEY: &str = "xero-webhook-key-for-tests";
const HUBSPOT_SECRET: &str = "hubspot-client-secret-for-tests";
/// The secret of the official Standard Webhooks vectors, as a relay would hold it.
const RELAY_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
/// Where HubSpot calls Tandem, as configured; the test server listens elsewhere.
const PUBLIC_BASE: &str = "https://sync.example.com";
const PORTAL: i64 = 62515;
const TENANT: &str = "c2cc9b6e-9458-4c7d-93cc-f02b81b0594f";
const OTHER_TENANT: &str = "4a7c1d3e-0b5f-4e8a-9c2d-6f1e0a9b8c7d";

/// Three pairs: `acme` as most deployments (v3 only), `legacy` opted into HubSpot's v1
/// and v2, `relay` behind a relay that signs with Standard Webhooks. All three are
/// bound to the same HubSpot portal and Xero organisation.
fn settings_file() -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("{}.toml", support::unique("tandem_webhooks")));
    std::fs::write(
        &path,
        format!(
            r#"
[webhooks]
public_base_url = "{PUBLIC_BASE}"

[pairs.acme.crm]
kind = "hubspot"
base_url = "https://api.hubapi.com"
webhook_secrets = ["{HUBSPOT_SECRET}"]
portal_id = {PORTAL}

[pairs.acme.finance]
kind = "xero"
base_url = "https://api.xero.com"
tenant_id = "{TENANT}"
webhook_secrets = ["old-key-being-rotated-out", "{XERO_KEY}"]

[pairs.legacy.crm]
kind = "hubspot"
base_url = "https://api.hubapi.com"
webhook_secrets = ["{HUBSPOT_SECRET}"]
portal_id = {PORTAL}
signature_versions = ["v3", "v2", "v1"]

[pairs.legacy.finance]
kind = "xero"
base_url = "https://api.xero.com"
tenant_id = "{TENANT}"
webhook_secrets = ["{XERO_KEY}"]

[pairs.relay.crm]
kind = "hubspot"
base_url = "https://api.hubapi.com"
webhook_secrets = ["{RELAY_SECRET}"]
webhook_signing = "standard_webhooks"
portal_id = {PORTAL}

[pairs.relay.finance]
kind = "xero"
base_url = "https://api.xero.com"
tenant_id = "{TENANT}"
webhook_secrets = ["{RELAY_SECRET}"]
webhook_signing = "standard_webhooks"
"#
        ),
    )
    .expect("write settings");
    path
}

fn xero_signature(body: &[u8], key: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).expect("key");
    mac.update(body);
    STANDARD.encode(mac.finalize().into_bytes())
}

/// HubSpot's v3 signature over `url` as HubSpot called it.
fn hubspot_v3(method: &str, url: &str, body: &str, timestamp: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(HUBSPOT_SECRET.as_bytes()).expect("key");
    mac.update(format!("{method}{url}{body}{timestamp}").as_bytes());
    STANDARD.encode(mac.finalize().into_bytes())
}

/// The v3 headers of a delivery to `path` signed over the configured public URL.
fn v3_headers(path: &str, body: &str, timestamp: &str) -> Vec<(&'static str, String)> {
    let url = format!("{PUBLIC_BASE}{path}");
    vec![
        (
            "x-hubspot-signature-v3",
            hubspot_v3("POST", &url, body, timestamp),
        ),
        ("x-hubspot-request-timestamp", timestamp.to_string()),
    ]
}

/// HubSpot's v1 (`SHA-256(secret + body)`) or v2 (`SHA-256(secret + method + URL +
/// body)`) signature, hex.
fn hubspot_legacy(version: &str, url: &str, body: &str) -> String {
    let mut hash = Sha256::new();
    hash.update(HUBSPOT_SECRET);
    if version == "v2" {
        hash.update("POST");
        hash.update(url);
    }
    hash.update(body);
    hex::encode(hash.finalize())
}

/// Standard Webhooks headers for `body`, signed with [`RELAY_SECRET`].
fn standard_headers(id: &str, timestamp: &str, body: &[u8]) -> Vec<(&'static str, String)> {
    let key = STANDARD
        .decode(RELAY_SECRET.trim_start_matches("whsec_"))
        .expect("base64 secret");
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("key");
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    let signature = format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()));
    vec![
        ("webhook-id", id.to_string()),
        ("webhook-timestamp", timestamp.to_string()),
        ("webhook-signature", signature),
    ]
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// A HubSpot delivery of one change to `object` in `portal`.
fn hubspot_body(portal: i64, object: i64) -> String {
    json!([{
        "eventId": object,
        "subscriptionId": 2,
        "portalId": portal,
        "occurredAt": now_ms(),
        "subscriptionType": "company.propertyChange",
        "objectId": object,
        "propertyName": "phone",
        "propertyValue": "+44 1"
    }])
    .to_string()
}

/// A Xero delivery of one contact update per (tenant, resource).
fn xero_body(events: &[(&str, &str)]) -> Vec<u8> {
    let events: Vec<Value> = events
        .iter()
        .map(|(tenant, resource)| {
            json!({
                "resourceUrl": format!("https://api.xero.com/api.xro/2.0/Contacts/{resource}"),
                "resourceId": resource,
                "eventDateUtc": "2026-11-23T10:15:39.902",
                "eventType": "UPDATE",
                "eventCategory": "CONTACT",
                "tenantId": tenant,
                "tenantType": "ORGANISATION"
            })
        })
        .collect();
    serde_json::to_vec(&json!({
        "events": events,
        "lastEventSequence": 7,
        "firstEventSequence": 7,
        "entropy": uuid::Uuid::new_v4().simple().to_string()
    }))
    .expect("body")
}

fn contact_update(resource: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "events": [{
            "resourceUrl": format!("https://api.xero.com/api.xro/2.0/Contacts/{resource}"),
            "resourceId": resource,
            "eventDateUtc": "2026-11-23T10:15:39.902",
            "eventType": "UPDATE",
            "eventCategory": "CONTACT",
            "tenantId": TENANT,
            "tenantType": "ORGANISATION"
        }],
        "lastEventSequence": 7,
        "firstEventSequence": 7,
        "entropy": "S0m3r4Nd0mt3xt"
    }))
    .expect("body")
}

struct Server {
    tandem: TandemProcess,
    bus: RabbitBus,
    store: store::SeaStore,
    _db: TestDatabase,
    settings: std::path::PathBuf,
    client: reqwest::Client,
}

impl Server {
    async fn start() -> Self {
        let db = TestDatabase::create().await;
        let prefix = support::unique("tandem_hooks");
        let settings = settings_file();
        let tandem = TandemProcess::start(
            &["serve"],
            &[
                ("TANDEM_CONFIG", settings.display().to_string()),
                ("TANDEM_DATABASE_URL", db.url.clone()),
                ("TANDEM_AMQP_URL", support::amqp_url()),
                ("TANDEM_BUS__PREFIX", prefix.clone()),
            ],
        )
        .await;
        // The bus keeps a queue per pair: name the settings' pairs to count theirs.
        let bus = RabbitBus::connect(BusConfig {
            pairs: ["acme", "legacy", "relay"].map(String::from).to_vec(),
            ..BusConfig::new(support::amqp_url(), prefix)
        })
        .await
        .expect("connect");
        let store = store::connect(&db.url).await.expect("connect");
        Self {
            tandem,
            bus,
            store,
            _db: db,
            settings,
            client: reqwest::Client::new(),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.tandem.base_url)
    }

    async fn post(&self, path: &str, body: Vec<u8>, headers: &[(&str, String)]) -> (u16, String) {
        let mut request = self.client.post(self.url(path)).body(body);
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        let response = request.send().await.expect("request");
        (
            response.status().as_u16(),
            response.text().await.expect("body"),
        )
    }

    /// Events waiting in the live lane, and receipts stored.
    async fn published_and_stored(&self) -> (u64, i64) {
        let depth = self.bus.depth(Lane::Live).await.expect("depth");
        let db = self.store.connection();
        let row = db
            .query_one(Statement::from_string(
                db.get_database_backend(),
                "SELECT count(*) AS n FROM webhook_receipt",
            ))
            .await
            .expect("count")
            .expect("row");
        (depth, row.try_get::<i64>("", "n").expect("n"))
    }

    async fn get(&self, path: &str) -> (u16, String) {
        let response = self
            .client
            .get(self.url(path))
            .send()
            .await
            .expect("request");
        (
            response.status().as_u16(),
            response.text().await.expect("body"),
        )
    }

    /// The value of one Prometheus series at `/metrics`, 0 when absent.
    async fn metric(&self, series: &str) -> u64 {
        let (status, text) = self.get("/metrics").await;
        assert_eq!(status, 200, "{text}");
        support::sample(&text, series)
    }

    /// Asserts that an answer is the refusal expected: the status, a body of exactly
    /// `{"error": "..."}` whose message contains `says`, no secret in it, nothing
    /// queued or stored beyond `before`, and the server still answering.
    async fn assert_refused(
        &self,
        what: &str,
        answer: (u16, String),
        status: u16,
        says: &str,
        before: (u64, i64),
    ) {
        let (got, text) = answer;
        assert_eq!(got, status, "{what}: {text}");
        let body: Value = serde_json::from_str(&text)
            .unwrap_or_else(|err| panic!("{what}: the refusal is not JSON ({err}): {text}"));
        let message = body["error"]
            .as_str()
            .unwrap_or_else(|| panic!("{what}: no `error` string in {text}"));
        assert_eq!(body.as_object().map(|o| o.len()), Some(1), "{what}: {text}");
        assert!(
            message.to_lowercase().contains(&says.to_lowercase()),
            "{what}: expected an error saying {says:?}, got {message:?}"
        );
        for secret in [XERO_KEY, HUBSPOT_SECRET, RELAY_SECRET, "MfKQ9r8GKYqrTwjU"] {
            assert!(!text.contains(secret), "{what} leaked a secret: {text}");
        }
        assert_eq!(
            self.published_and_stored().await,
            before,
            "{what} changed the queue or the store"
        );
        assert_eq!(
            self.get("/health").await.0,
            200,
            "{what}: the server stopped answering"
        );
    }

    /// A fresh, correctly signed delivery to each of `acme`'s sides is still taken.
    async fn still_takes_deliveries(&self) {
        let (published, stored) = self.published_and_stored().await;
        let xero = xero_body(&[(TENANT, &uuid::Uuid::new_v4().to_string())]);
        let signature = xero_signature(&xero, XERO_KEY);
        let (status, text) = self
            .post(
                "/webhooks/acme/finance",
                xero,
                &[("x-xero-signature", signature)],
            )
            .await;
        assert_eq!((status, text.as_str()), (200, ""), "a valid Xero delivery");
        let object = rand::random::<u32>().into();
        let hubspot = hubspot_body(PORTAL, object);
        let path = "/webhooks/acme/crm";
        let headers = v3_headers(path, &hubspot, &now_ms().to_string());
        let (status, text) = self.post(path, hubspot.into_bytes(), &headers).await;
        assert_eq!(status, 200, "a valid HubSpot delivery: {text}");
        let expected = (published + 2, stored + 2);
        support::eventually(
            std::time::Duration::from_secs(5),
            "both deliveries published",
            || async move { self.published_and_stored().await == expected },
        )
        .await;
    }

    async fn finish(mut self) {
        // The engine first: a consumer whose queue is deleted under it declares the
        // topology again, and the queues would outlive the test.
        self.tandem.terminate();
        self.bus
            .delete_topology()
            .await
            .expect("delete test queues");
        let _ = std::fs::remove_file(&self.settings);
    }
}

/// What is wrong, the path, the body, the headers, and the status expected.
type BadDelivery = (
    &'static str,
    &'static str,
    Vec<u8>,
    Vec<(&'static str, String)>,
    u16,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_deliveries_are_refused_and_change_nothing() {
    let server = Server::start().await;
    let body = contact_update("717f2bfc-c6d4-41fd-b238-3f2f0c0cf777");
    let signed = xero_signature(&body, XERO_KEY);
    let crm_body = hubspot_body(PORTAL, 42);
    let stale = (now_ms() - 301_000).to_string();
    let malformed = b"{\"events\": [".to_vec();
    let cases: Vec<BadDelivery> = vec![
        (
            "over the size limit",
            "/webhooks/acme/finance",
            vec![b' '; 1024 * 1024 + 1],
            vec![("x-xero-signature", signed.clone())],
            413,
        ),
        (
            "no signature",
            "/webhooks/acme/finance",
            body.clone(),
            vec![],
            401,
        ),
        (
            "wrong signature",
            "/webhooks/acme/finance",
            body.clone(),
            vec![("x-xero-signature", xero_signature(&body, "not-the-key"))],
            401,
        ),
        (
            "tampered body",
            "/webhooks/acme/finance",
            contact_update("00000000-0000-0000-0000-000000000000"),
            vec![("x-xero-signature", signed.clone())],
            401,
        ),
        (
            "stale HubSpot timestamp",
            "/webhooks/acme/crm",
            crm_body.as_bytes().to_vec(),
            v3_headers("/webhooks/acme/crm", &crm_body, &stale),
            401,
        ),
        (
            "malformed JSON behind a valid signature",
            "/webhooks/acme/finance",
            malformed.clone(),
            vec![("x-xero-signature", xero_signature(&malformed, XERO_KEY))],
            400,
        ),
        (
            "unknown pair",
            "/webhooks/globex/finance",
            body.clone(),
            vec![("x-xero-signature", signed.clone())],
            404,
        ),
        (
            "unknown system",
            "/webhooks/acme/erp",
            body.clone(),
            vec![("x-xero-signature", signed.clone())],
            404,
        ),
    ];
    for (what, path, body, headers, expected) in cases {
        let answer = server.post(path, body, &headers).await;
        server
            .assert_refused(what, answer, expected, "", (0, 0))
            .await;
    }
    server.still_takes_deliveries().await;
    server.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_sent_five_times_publishes_one_event() {
    let server = Server::start().await;
    let body = contact_update("717f2bfc-c6d4-41fd-b238-3f2f0c0cf777");
    let signature = xero_signature(&body, XERO_KEY);
    for attempt in 1..=5 {
        let (status, text) = server
            .post(
                "/webhooks/acme/finance",
                body.clone(),
                &[("x-xero-signature", signature.clone())],
            )
            .await;
        assert_eq!(
            (status, text.as_str()),
            (200, ""),
            "attempt {attempt}: Xero wants 200 with an empty body"
        );
    }
    support::eventually(
        std::time::Duration::from_secs(5),
        "one event in the live lane",
        || {
            let server = &server;
            async move { server.published_and_stored().await == (1, 1) }
        },
    )
    .await;
    assert_eq!(server.published_and_stored().await, (1, 1));
    server.finish().await;
}

/// Receipts of deliveries that arrive together are recorded together: each delivery
/// is still taken once, however many copies arrive at the same moment.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_at_once_are_each_taken_once() {
    let server = Server::start().await;
    let bodies: Vec<Vec<u8>> = (0..20)
        .map(|n| contact_update(&format!("717f2bfc-c6d4-41fd-b238-{n:012}")))
        .collect();
    let sender = &server;
    let sends = bodies.iter().chain(bodies.iter()).map(|body| async move {
        let signature = xero_signature(body, XERO_KEY);
        sender
            .post(
                "/webhooks/acme/finance",
                body.clone(),
                &[("x-xero-signature", signature)],
            )
            .await
    });
    let answers = futures::future::join_all(sends).await;
    assert!(
        answers.iter().all(|(status, _)| *status == 200),
        "{answers:?}"
    );
    support::eventually(
        std::time::Duration::from_secs(5),
        "one event per distinct delivery",
        || {
            let server = &server;
            async move { server.published_and_stored().await == (20, 20) }
        },
    )
    .await;
    assert_eq!(server.published_and_stored().await, (20, 20));
    server.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xero_intent_to_receive_and_hubspot_v3() {
    let server = Server::start().await;
    let itr =
        br#"{"events":[],"lastEventSequence":0,"firstEventSequence":0,"entropy":"S0m3r4Nd0mt3xt"}"#
            .to_vec();
    let (status, text) = server
        .post(
            "/webhooks/acme/finance",
            itr.clone(),
            &[("x-xero-signature", xero_signature(&itr, XERO_KEY))],
        )
        .await;
    assert_eq!(
        (status, text.as_str()),
        (200, ""),
        "correctly signed handshake"
    );
    let (status, _) = server
        .post(
            "/webhooks/acme/finance",
            itr.clone(),
            &[("x-xero-signature", xero_signature(&itr, "wrong"))],
        )
        .await;
    assert_eq!(status, 401, "wrongly signed handshake");
    assert_eq!(
        server.published_and_stored().await,
        (0, 0),
        "a handshake publishes nothing"
    );

    let path = "/webhooks/acme/crm";
    let body = hubspot_body(PORTAL, 42);
    let headers = v3_headers(path, &body, &now_ms().to_string());
    let (status, text) = server.post(path, body.into_bytes(), &headers).await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(server.published_and_stored().await, (1, 1));
    server.finish().await;
}
