//! RabbitMQ stopped and started under load, on a node of the test's own
//! ([`support::private_rabbitmq`]): the machine's node serves everyone else.

use crate::support;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use support::private_rabbitmq::PrivateRabbitMq;
use tandem::bus::rabbitmq::RabbitBus;
use tandem::bus::{Bus, BusConfig, BusMessage, Lane};
use tandem::domain::{ChangeEvent, ChangeKind, EntityType, PairId, System, Trigger};

fn change(n: u64) -> BusMessage {
    BusMessage::ChangeV1(ChangeEvent {
        event_id: format!("evt-{n}"),
        pair: PairId::new("acme"),
        system: System::Finance,
        entity: EntityType::Invoice,
        external_id: n.to_string(),
        kind: ChangeKind::Upsert,
        occurred_at: Utc
            .with_ymd_and_hms(2026, 11, 23, 9, 30, 0)
            .single()
            .expect("valid time"),
        trigger: Trigger::Poll,
        job_id: None,
        transaction_id: None,
        by_tandem: false,
    })
}

fn id_of(message: &BusMessage) -> u64 {
    let BusMessage::ChangeV1(event) = message;
    event.external_id.parse().expect("numeric id")
}

/// Publishes fresh ids until `target` of them were confirmed, sorting each into the
/// confirmed or the failed set by what the bus reported.
async fn publish_confirmed(
    bus: &RabbitBus,
    next_id: &mut u64,
    target: usize,
    confirmed: &mut BTreeSet<u64>,
    failed: &mut BTreeSet<u64>,
) {
    let mut done = 0;
    while done < target {
        *next_id += 1;
        match bus.publish(Lane::Live, &change(*next_id)).await {
            Ok(()) => {
                confirmed.insert(*next_id);
                done += 1;
            }
            Err(_) => {
                failed.insert(*next_id);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_confirmed_publish_survives_a_broker_restart() {
    let broker = PrivateRabbitMq::start();
    let config = BusConfig::new(&broker.amqp_url, support::unique("tandem_restart"));
    let bus = Arc::new(RabbitBus::connect(config).await.expect("the private node"));

    // A consumer that runs across the restart and must reconnect by itself.
    let consumed = Arc::new(tokio::sync::Mutex::new(BTreeSet::new()));
    let consumer_task = {
        let bus = bus.clone();
        let consumed = consumed.clone();
        tokio::spawn(async move {
            let mut consumer = bus.consume(Lane::Live).await.expect("consume");
            while let Some(delivery) = consumer.next().await {
                let id = id_of(&delivery.message().expect("decodes"));
                consumed.lock().await.insert(id);
                // A failed ack (the channel died) is fine: the message comes again.
                let _ = delivery.ack().await;
            }
        })
    };

    let mut confirmed = BTreeSet::new();
    let mut failed = BTreeSet::new();
    let mut next_id = 0;
    publish_confirmed(&bus, &mut next_id, 300, &mut confirmed, &mut failed).await;

    // Stop the broker while publishing goes on from another task.
    let publisher = {
        let bus = bus.clone();
        let start = 1_000_000;
        tokio::spawn(async move {
            let mut ok = Vec::new();
            let mut bad = Vec::new();
            let began = Instant::now();
            let mut i = start;
            while began.elapsed() < Duration::from_secs(6) {
                i += 1;
                match bus.publish(Lane::Live, &change(i)).await {
                    Ok(()) => ok.push(i),
                    Err(_) => {
                        bad.push(i);
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
            }
            (ok, bad)
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    broker.stop_app();
    // The outage itself: the broker stays down long enough for publishes to fail.
    tokio::time::sleep(Duration::from_secs(2)).await;
    broker.start_app();
    let (ok, bad) = publisher.await.expect("publisher task");
    confirmed.extend(ok);
    failed.extend(bad);
    assert!(
        !failed.is_empty(),
        "publishes while the broker was down must be reported as failed"
    );

    // After the restart the same bus publishes again without being rebuilt.
    let before = confirmed.len();
    publish_confirmed(&bus, &mut next_id, 300, &mut confirmed, &mut failed).await;
    assert_eq!(confirmed.len(), before + 300);

    support::eventually(
        Duration::from_secs(60),
        "every confirmed publish consumed",
        || {
            let consumed = consumed.clone();
            let confirmed = confirmed.clone();
            async move { confirmed.is_subset(&*consumed.lock().await) }
        },
    )
    .await;
    consumer_task.abort();
    let consumed = consumed.lock().await;
    let missing: Vec<_> = confirmed.difference(&consumed).take(10).collect();
    assert!(
        missing.is_empty(),
        "confirmed but never consumed: {missing:?}"
    );
    eprintln!(
        "confirmed {}, reported failed {}, consumed {} distinct",
        confirmed.len(),
        failed.len(),
        consumed.len()
    );
}

/// `/ready` names RabbitMQ while it is down and recovers without restarting Tandem.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_reports_rabbitmq_down_and_recovers() {
    let db = support::TestDatabase::create().await;
    let broker = PrivateRabbitMq::start();
    let tandem = support::TandemProcess::start(
        &["serve"],
        &[
            ("TANDEM_DATABASE_URL", db.url.clone()),
            ("TANDEM_AMQP_URL", broker.amqp_url.clone()),
            ("TANDEM_BUS__PREFIX", support::unique("tandem_ready")),
        ],
    )
    .await;
    let ready = format!("{}/ready", tandem.base_url);
    let status = || {
        let ready = ready.clone();
        async move {
            let response = reqwest::get(&ready).await.expect("request");
            let code = response.status().as_u16();
            (
                code,
                response.json::<serde_json::Value>().await.expect("json"),
            )
        }
    };
    assert_eq!(status().await.0, 200);

    broker.stop_app();
    let (code, body) = status().await;
    assert_eq!(code, 503, "{body}");
    assert_eq!(body["failing"][0]["name"], "rabbitmq", "{body}");
    assert_eq!(
        body["failing"].as_array().map(Vec::len),
        Some(1),
        "only RabbitMQ is down: {body}"
    );

    broker.start_app();
    support::eventually(Duration::from_secs(30), "/ready answers 200 again", || {
        let check = status();
        async move { check.await.0 == 200 }
    })
    .await;
}

/// With RabbitMQ down a valid webhook gets 503 and leaves no receipt, so the sender's
/// retry after the broker is back is taken and published.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_while_rabbitmq_is_down_gets_503_and_its_retry_is_taken() {
    use base64::Engine as _;
    use hmac::Mac as _;
    let db = support::TestDatabase::create().await;
    let broker = PrivateRabbitMq::start();
    let prefix = support::unique("tandem_hook_outage");
    let settings = std::env::temp_dir().join(format!("{}.toml", support::unique("tandem_outage")));
    std::fs::write(
        &settings,
        "[webhooks]\npublic_base_url = \"https://sync.example.com\"\n\n\
         [pairs.acme.crm]\nkind = \"hubspot\"\nbase_url = \"https://api.hubapi.com\"\nwebhook_secrets = [\"crm-secret\"]\nportal_id = 62515\n\n\
         [pairs.acme.finance]\nkind = \"xero\"\nbase_url = \"https://api.xero.com\"\ntenant_id = \"t1\"\nwebhook_secrets = [\"xero-key\"]\n",
    )
    .expect("write settings");
    let tandem = support::TandemProcess::start(
        &["serve"],
        &[
            ("TANDEM_CONFIG", settings.display().to_string()),
            ("TANDEM_DATABASE_URL", db.url.clone()),
            ("TANDEM_AMQP_URL", broker.amqp_url.clone()),
            ("TANDEM_BUS__PREFIX", prefix.clone()),
        ],
    )
    .await;
    let body = br#"{"events":[{"resourceUrl":"https://api.xero.com/api.xro/2.0/Contacts/0f0c1a52-3c1e-4e2b-9d59-7f4a1c2b3d4e","resourceId":"0f0c1a52-3c1e-4e2b-9d59-7f4a1c2b3d4e","eventDateUtc":"2026-11-23T10:00:00.000","eventType":"UPDATE","eventCategory":"CONTACT","tenantId":"t1","tenantType":"ORGANISATION"}],"lastEventSequence":1,"firstEventSequence":1,"entropy":"x"}"#;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(b"xero-key").expect("key");
    mac.update(body);
    let signature = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    let client = reqwest::Client::new();
    let send = || {
        client
            .post(format!("{}/webhooks/acme/finance", tandem.base_url))
            .header("x-xero-signature", signature.clone())
            .body(body.to_vec())
            .send()
    };

    broker.stop_app();
    let refused = send().await.expect("request");
    assert_eq!(refused.status().as_u16(), 503, "the sender must retry");
    broker.start_app();

    // The bus keeps a queue per pair: name the pair to count its queue.
    let bus = RabbitBus::connect(BusConfig {
        pairs: vec!["acme".into()],
        ..BusConfig::new(&broker.amqp_url, prefix)
    })
    .await
    .expect("connect");
    support::eventually(
        Duration::from_secs(30),
        "the retried webhook is taken",
        || {
            let send = send();
            async move {
                send.await
                    .map(|r| r.status().as_u16() == 200)
                    .unwrap_or(false)
            }
        },
    )
    .await;
    assert_eq!(
        bus.depth(Lane::Live).await.expect("depth"),
        1,
        "published exactly once"
    );
    let _ = std::fs::remove_file(&settings);
}
