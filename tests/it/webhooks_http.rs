//! Signed webhooks against the running server, with the real PostgreSQL and RabbitMQ:
//! every bad input gets its status and leaves the queue and the store unchanged; a
//! valid delivery sent five times publishes one event.

use crate::support;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sea_orm::{ConnectionTrait, Statement};
use serde_json::json;
use sha2::Sha256;
use support::{TandemProcess, TestDatabase};
use tandem::bus::rabbitmq::RabbitBus;
use tandem::bus::{Bus, BusConfig, Lane};
use tandem::store;

const XERO_KEY: &str = "xero-webhook-key-for-tests";
const HUBSPOT_SECRET: &str = "hubspot-client-secret-for-tests";

fn settings_file() -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("{}.toml", support::unique("tandem_webhooks")));
    std::fs::write(
        &path,
        format!(
            r#"
[pairs.acme.crm]
kind = "hubspot"
base_url = "https://api.hubapi.com"
webhook_secrets = ["{HUBSPOT_SECRET}"]

[pairs.acme.finance]
kind = "xero"
base_url = "https://api.xero.com"
tenant_id = "c2cc9b6e-9458-4c7d-93cc-f02b81b0594f"
webhook_secrets = ["old-key-being-rotated-out", "{XERO_KEY}"]
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

fn hubspot_v3(method: &str, url: &str, body: &str, timestamp: i64) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(HUBSPOT_SECRET.as_bytes()).expect("key");
    mac.update(format!("{method}{url}{body}{timestamp}").as_bytes());
    STANDARD.encode(mac.finalize().into_bytes())
}

fn contact_update(resource: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "events": [{
            "resourceUrl": format!("https://api.xero.com/api.xro/2.0/Contacts/{resource}"),
            "resourceId": resource,
            "eventDateUtc": "2026-11-23T10:15:39.902",
            "eventType": "UPDATE",
            "eventCategory": "CONTACT",
            "tenantId": "c2cc9b6e-9458-4c7d-93cc-f02b81b0594f",
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
        let bus = RabbitBus::connect(BusConfig::new(support::amqp_url(), prefix))
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

    async fn finish(self) {
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
    let now_ms = chrono::Utc::now().timestamp_millis();
    let crm_url = server.url("/webhooks/acme/crm");
    let crm_body = r#"[{"eventId":1,"subscriptionId":2,"portalId":3,"occurredAt":1764000000000,"subscriptionType":"company.propertyChange","objectId":42}]"#;
    let stale = now_ms - 301_000;
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
            vec![
                (
                    "x-hubspot-signature-v3",
                    hubspot_v3("POST", &crm_url, crm_body, stale),
                ),
                ("x-hubspot-request-timestamp", stale.to_string()),
            ],
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
        let (status, text) = server.post(path, body, &headers).await;
        assert_eq!(status, expected, "{what}: {text}");
        assert!(
            !text.contains(XERO_KEY) && !text.contains(HUBSPOT_SECRET),
            "{what} leaked a secret: {text}"
        );
        assert_eq!(
            server.published_and_stored().await,
            (0, 0),
            "{what} changed the queue or the store"
        );
    }
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

    let url = server.url("/webhooks/acme/crm");
    let body = r#"[{"eventId":1,"subscriptionId":2,"portalId":3,"occurredAt":1764000000000,"subscriptionType":"company.propertyChange","objectId":42,"propertyName":"phone","propertyValue":"+44 1"}]"#;
    let now = chrono::Utc::now().timestamp_millis();
    let headers = [
        (
            "x-hubspot-signature-v3",
            hubspot_v3("POST", &url, body, now),
        ),
        ("x-hubspot-request-timestamp", now.to_string()),
    ];
    let (status, text) = server
        .post("/webhooks/acme/crm", body.as_bytes().to_vec(), &headers)
        .await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(server.published_and_stored().await, (1, 1));
    server.finish().await;
}
