//! Both simulated services running together: each on its own HTTP listener, their
//! webhook outboxes, and the control routes a trial uses on either listener:
//!
//! - `GET /sim/inspect`: do the two sides agree? ([`Inspection`])
//! - `GET /sim/journal`: every edit both sides applied ([`JournalEntry`]), in order;
//! - `GET /sim/knobs`, `POST /sim/knobs`: latency, failures, webhook misbehaviour;
//! - `POST /sim/webhooks` `{"crm_url", "finance_url"}`: where webhooks go.

use std::sync::Arc;

use anyhow::Context as _;
use poem::listener::TcpAcceptor;
use poem::web::{Data, Json};
use poem::{get, handler, post, EndpointExt as _, Route};
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use crate::hubspot::{HubSpotSettings, HubSpotSim};
use crate::inspect::Inspection;
use crate::journal::{JournalEntry, Side};
use crate::knobs::{KnobValues, Knobs};
use crate::people::People;
use crate::xero::{XeroSettings, XeroSim};

#[derive(Debug, Clone, Default)]
pub struct SimConfig {
    pub hubspot: HubSpotSettings,
    pub xero: XeroSettings,
    pub knobs: KnobValues,
}

pub struct Simulators {
    pub hubspot: Arc<HubSpotSim>,
    pub xero: Arc<XeroSim>,
    pub knobs: Arc<Knobs>,
    pub people: People,
    /// `http://host:port` of each listener.
    pub hubspot_url: String,
    pub xero_url: String,
}

#[derive(Deserialize)]
struct WebhookTargets {
    crm_url: Option<String>,
    finance_url: Option<String>,
}

#[handler]
fn inspect(sims: Data<&Arc<Simulators>>) -> Json<Inspection> {
    Json(sims.inspect())
}

#[handler]
fn journal(sims: Data<&Arc<Simulators>>) -> Json<Vec<JournalEntry>> {
    Json(sims.journal())
}

#[handler]
fn get_knobs(sims: Data<&Arc<Simulators>>) -> Json<KnobValues> {
    Json(sims.knobs.get())
}

#[handler]
fn set_knobs(sims: Data<&Arc<Simulators>>, values: Json<KnobValues>) -> Json<KnobValues> {
    sims.knobs.set(values.0);
    Json(sims.knobs.get())
}

#[handler]
fn set_webhooks(
    sims: Data<&Arc<Simulators>>,
    targets: Json<WebhookTargets>,
) -> Json<serde_json::Value> {
    sims.send_webhooks_to(targets.0.crm_url, targets.0.finance_url);
    Json(serde_json::json!({
        "crm_url": sims.hubspot.outbox().target(),
        "finance_url": sims.xero.outbox().target(),
    }))
}

async fn listen(addr: &str) -> anyhow::Result<(TcpAcceptor, String)> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    let local = listener.local_addr()?;
    Ok((
        TcpAcceptor::from_tokio(listener)?,
        format!("http://{local}"),
    ))
}

impl Simulators {
    /// Starts both services (`127.0.0.1:0` picks a free port) and their outboxes; all
    /// stop when `stop` is cancelled.
    /// Both simulators on loopback ports the OS picks (what the demo, the bench, the
    /// torture test and the tests use).
    pub async fn start_local(
        config: SimConfig,
        stop: CancellationToken,
    ) -> anyhow::Result<Arc<Self>> {
        Self::start(config, "127.0.0.1:0", "127.0.0.1:0", stop).await
    }

    pub async fn start(
        config: SimConfig,
        hubspot_listen: &str,
        xero_listen: &str,
        stop: CancellationToken,
    ) -> anyhow::Result<Arc<Self>> {
        let knobs = Arc::new(Knobs::new(config.knobs));
        let hubspot = HubSpotSim::new(config.hubspot, knobs.clone());
        let xero = XeroSim::new(config.xero, knobs.clone());
        let (hubspot_acceptor, hubspot_url) = listen(hubspot_listen).await?;
        let (xero_acceptor, xero_url) = listen(xero_listen).await?;
        let sims = Arc::new(Self {
            hubspot,
            xero,
            knobs,
            people: People::default(),
            hubspot_url,
            xero_url,
        });
        let control = |route: Route| {
            route
                .at("/sim/inspect", get(inspect))
                .at("/sim/journal", get(journal))
                .at("/sim/knobs", get(get_knobs).post(set_knobs))
                .at("/sim/webhooks", post(set_webhooks))
                .data(sims.clone())
        };
        for (acceptor, app) in [
            (hubspot_acceptor, control(sims.hubspot.endpoint())),
            (xero_acceptor, control(sims.xero.endpoint())),
        ] {
            let stop = stop.clone();
            tokio::spawn(async move {
                let server = poem::Server::new_with_acceptor(acceptor).run_with_graceful_shutdown(
                    app,
                    async move { stop.cancelled().await },
                    Some(std::time::Duration::from_secs(2)),
                );
                if let Err(err) = server.await {
                    tracing::error!(error = %err, "a simulator stopped");
                }
            });
        }
        tokio::spawn(sims.hubspot.outbox().clone().run(stop.clone()));
        tokio::spawn(sims.xero.outbox().clone().run(stop));
        Ok(sims)
    }

    /// The Xero API's base URL, as a connection's `base_url`.
    pub fn xero_api_url(&self) -> String {
        format!("{}/api.xro/2.0", self.xero_url)
    }

    pub fn xero_token_url(&self) -> String {
        format!("{}/connect/token", self.xero_url)
    }

    /// Where each service sends its webhooks (`None` keeps them queued).
    pub fn send_webhooks_to(&self, crm_url: Option<String>, finance_url: Option<String>) {
        self.hubspot.outbox().set_target(crm_url);
        self.xero.outbox().set_target(finance_url);
    }

    pub fn inspect(&self) -> Inspection {
        crate::inspect::inspect(
            &self.hubspot.customers(),
            &self.xero.customers(),
            &self.hubspot.invoices(),
            &self.xero.invoices(),
        )
    }

    /// Every edit both simulators applied, by wall clock (`at_ms`), then side (CRM
    /// first), then each side's own order.
    pub fn journal(&self) -> Vec<JournalEntry> {
        let mut entries = self.hubspot.journal();
        entries.extend(self.xero.journal());
        entries.sort_by_key(|e| {
            let side = match e.side {
                Side::Crm => 0,
                Side::Finance => 1,
            };
            (e.at_ms, side, e.seq)
        });
        entries
    }
}
