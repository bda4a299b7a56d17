//! Webhook ingest: signed Xero deliveries over HTTP at rising concurrency, through the
//! real receiver (signature, de-duplication in the store, publish with confirms) into
//! the configured PostgreSQL and RabbitMQ; beside it, the bare RabbitMQ
//! publish-with-confirm rate measured in the same run.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use chrono::Utc;
use hmac::{Hmac, Mac};
use serde::Serialize;
use serde_json::json;
use sha2::Sha256;
use tokio_util::sync::CancellationToken;

use super::Latency;
use crate::api::admin::AdminState;
use crate::api::{routes, HttpState};
use crate::bus::{self, Bus, BusConfig, BusMessage, Lane};
use crate::config::{ConnectionSettings, ConnectorKind, PairSettings, Settings};
use crate::domain::{ChangeEvent, ChangeKind, EntityType, PairId, System, Trigger};
use crate::intake::jobs::JobRunner;
use crate::intake::WebhookIntake;
use crate::secret::Secret;
use crate::store::Store;

const WEBHOOK_KEY: &str = "bench-webhook-key";

#[derive(Debug, Clone, Serialize)]
pub struct IngestStep {
    pub concurrency: usize,
    pub deliveries: usize,
    pub failed: usize,
    pub per_second: f64,
    pub latency: Latency,
    /// Bare RabbitMQ in the same run: as many publishers as senders, each waiting for
    /// its own confirm before the next publish, as the webhook handler does.
    pub bare_rabbitmq_per_second: f64,
    /// Deliveries per second over the bare broker's publishes per second.
    pub ratio_to_bare: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct IngestReport {
    pub steps: Vec<IngestStep>,
    /// Bare RabbitMQ: each publish waiting for its own confirm.
    pub rabbitmq_confirm_one_at_a_time_per_second: f64,
    /// Bare RabbitMQ: 100 publishes with their confirms in flight together.
    pub rabbitmq_confirm_100_in_flight_per_second: f64,
}

pub async fn run(
    settings: &Settings,
    concurrencies: &[usize],
    seconds: u64,
) -> anyhow::Result<IngestReport> {
    let store = crate::service::open_store(settings).await?;
    let prefix = format!("tandem_bench_{}", uuid::Uuid::new_v4().simple());
    let config = BusConfig {
        prefix: prefix.clone(),
        // The bench's one pair, so its queues are declared and deleted with the rest.
        pairs: vec!["bench".into()],
        ..BusConfig::from_settings(settings)
    };
    let bus = bus::connect(&config)
        .await
        .context("cannot reach the bus")?;

    let mut bench_settings = settings.clone();
    bench_settings.pairs.insert("bench".into(), bench_pair());
    let intake = Arc::new(WebhookIntake::new(
        &bench_settings,
        bus.clone(),
        store.clone(),
    ));
    let jobs = Arc::new(JobRunner::new(
        store.clone(),
        bus.clone(),
        Default::default(),
    ));
    let state = HttpState {
        probes: vec![],
        intake,
        admin: AdminState {
            connections: Default::default(),
            connect: None,
            file_pairs: Vec::new(),
            public_base_url: None,
            store: store.clone() as Arc<dyn Store>,
            bus: bus.clone(),
            jobs,
            queue: Default::default(),
            backlog: Default::default(),
        },
        admin_token: Secret::new(uuid::Uuid::new_v4().to_string()),
    };
    let (acceptor, addr) = crate::service::bind("127.0.0.1:0").await?;
    let shutdown = CancellationToken::new();
    let stop = shutdown.clone();
    let server = tokio::spawn(async move {
        let limits = crate::api::guard::HttpLimits::default();
        crate::api::guard::listener::serve(
            acceptor,
            routes(state, &limits),
            &limits,
            stop,
            std::time::Duration::ZERO,
        )
        .await
    });
    let url = format!("http://{addr}/webhooks/bench/finance");
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .build()?;

    let mut steps = Vec::new();
    for &concurrency in concurrencies {
        let mut taken = step(&client, &url, concurrency, Duration::from_secs(seconds)).await;
        taken.bare_rabbitmq_per_second = publishers(
            bus.as_ref(),
            concurrency,
            Duration::from_secs(seconds.min(3)),
        )
        .await?;
        taken.ratio_to_bare = taken.per_second / taken.bare_rabbitmq_per_second.max(1.0);
        steps.push(taken);
    }
    let one = bare_publish(bus.as_ref(), 1, Duration::from_secs(seconds.min(3))).await?;
    let hundred = bare_publish(bus.as_ref(), 100, Duration::from_secs(seconds.min(3))).await?;
    shutdown.cancel();
    let _ = server.await;
    if let Ok(rabbit) = crate::bus::rabbitmq::RabbitBus::connect(config).await {
        let _ = rabbit.delete_topology().await;
    }
    Ok(IngestReport {
        steps,
        rabbitmq_confirm_one_at_a_time_per_second: one,
        rabbitmq_confirm_100_in_flight_per_second: hundred,
    })
}

fn bench_pair() -> PairSettings {
    let connection = |kind, base_url: &str| ConnectionSettings {
        kind,
        base_url: base_url.into(),
        token_url: None,
        access_token: None,
        client_id: None,
        client_secret: None,
        refresh_token: None,
        tenant_id: Some("bench-tenant".into()),
        webhook_secrets: vec![Secret::new(WEBHOOK_KEY)],
        webhook_signing: Default::default(),
        signature_versions: None,
        portal_id: (kind == ConnectorKind::Hubspot).then_some(1),
        customer_object: Default::default(),
        batch_window_ms: 20,
        rate_limit_share: 1.0,
    };
    PairSettings {
        enabled: true,
        crm: Some(connection(ConnectorKind::Hubspot, "http://127.0.0.1:9")),
        finance: Some(connection(ConnectorKind::Xero, "http://127.0.0.1:9")),
        poll_interval_secs: 0,
        poll_overlap_secs: 0,
        conflict_policy: Default::default(),
        source_of_truth: System::Finance,
        deletes: Default::default(),
        fields: Default::default(),
    }
}

/// A distinct, correctly signed delivery of one contact update.
fn delivery() -> (Vec<u8>, String) {
    let id = uuid::Uuid::new_v4();
    let body = serde_json::to_vec(&json!({
        "events": [{
            "resourceUrl": format!("https://api.xero.com/api.xro/2.0/Contacts/{id}"),
            "resourceId": id.to_string(),
            "eventDateUtc": Utc::now().format("%Y-%m-%dT%H:%M:%S%.3f").to_string(),
            "eventType": "UPDATE",
            "eventCategory": "CONTACT",
            "tenantId": "bench-tenant",
            "tenantType": "ORGANISATION"
        }],
        "firstEventSequence": 1,
        "lastEventSequence": 1,
        "entropy": id.simple().to_string()
    }))
    .unwrap_or_default();
    let mut mac = Hmac::<Sha256>::new_from_slice(WEBHOOK_KEY.as_bytes())
        .expect("any key length is valid for HMAC");
    mac.update(&body);
    (body, STANDARD.encode(mac.finalize().into_bytes()))
}

async fn step(
    client: &reqwest::Client,
    url: &str,
    concurrency: usize,
    length: Duration,
) -> IngestStep {
    let started = Instant::now();
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let client = client.clone();
            let url = url.to_string();
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut failed = 0;
                while started.elapsed() < length {
                    let (body, signature) = delivery();
                    let sent = Instant::now();
                    let answer = client
                        .post(&url)
                        .header("x-xero-signature", signature)
                        .body(body)
                        .send()
                        .await;
                    match answer {
                        Ok(response) if response.status().is_success() => {
                            latencies.push(sent.elapsed())
                        }
                        _ => failed += 1,
                    }
                }
                (latencies, failed)
            })
        })
        .collect();
    let mut latencies = Vec::new();
    let mut failed = 0;
    for worker in workers {
        if let Ok((mut l, f)) = worker.await {
            latencies.append(&mut l);
            failed += f;
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    IngestStep {
        concurrency,
        deliveries: latencies.len(),
        failed,
        per_second: latencies.len() as f64 / elapsed,
        latency: Latency::of(&mut latencies),
        bare_rabbitmq_per_second: 0.0,
        ratio_to_bare: 0.0,
    }
}

/// `count` publishers at once, each publishing one message and waiting for its confirm
/// before the next, for `length`; messages per second.
async fn publishers(bus: &dyn Bus, count: usize, length: Duration) -> anyhow::Result<f64> {
    let message = bare_message();
    let started = Instant::now();
    let sent = futures::future::try_join_all((0..count).map(|_| async {
        let mut sent = 0usize;
        while started.elapsed() < length {
            bus.publish(Lane::Bulk, &message).await?;
            sent += 1;
        }
        Ok::<_, crate::bus::BusError>(sent)
    }))
    .await?;
    Ok(sent.iter().sum::<usize>() as f64 / started.elapsed().as_secs_f64())
}

/// Publishes batches of `in_flight` messages with confirms for `length`; messages per second.
async fn bare_publish(bus: &dyn Bus, in_flight: usize, length: Duration) -> anyhow::Result<f64> {
    let batch = vec![bare_message(); in_flight];
    let started = Instant::now();
    let mut sent = 0;
    while started.elapsed() < length {
        bus.publish_batch(Lane::Bulk, &batch).await?;
        sent += in_flight;
    }
    Ok(sent as f64 / started.elapsed().as_secs_f64())
}

fn bare_message() -> BusMessage {
    BusMessage::ChangeV1(ChangeEvent {
        event_id: "bench".into(),
        pair: PairId::new("bench"),
        system: System::Finance,
        entity: EntityType::Customer,
        external_id: "bench".into(),
        kind: ChangeKind::Upsert,
        occurred_at: Utc::now(),
        trigger: Trigger::Manual,
        job_id: None,
        transaction_id: None,
        by_tandem: false,
    })
}
