//! The engine run inside the bench process, for scenarios that read its calls from a
//! [`RequestRecorder`] and drive it through the admin API (the backfill, the
//! neighbour).

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio_util::sync::CancellationToken;

use crate::config::Settings;
use crate::connectors::http::RequestRecorder;
use crate::secret::Secret;
use crate::service::ServeArgs;
use crate::wiring::WiringOptions;

pub struct InProcessEngine {
    /// `http://127.0.0.1:{port}`.
    pub base: String,
    pub recorder: Arc<RequestRecorder>,
    token: String,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
    http: reqwest::Client,
    settings: Settings,
}

impl InProcessEngine {
    /// Starts `serve` on a port the OS picks, with a fresh admin token and the run's
    /// secrets key, and waits until it answers.
    pub async fn start(settings: Settings) -> anyhow::Result<Self> {
        let mut settings = super::engine::with_run_key(settings)?;
        settings.listen = "127.0.0.1:0".into();
        // The simulators sign the URL they call: port 0 here stands for the port bound.
        settings.webhooks.public_base_url = Some("http://127.0.0.1:0".into());
        let token = uuid::Uuid::new_v4().simple().to_string();
        settings.admin_token = Some(Secret::new(token.clone()));
        settings.validate().context("the engine's settings")?;
        let recorder = Arc::new(RequestRecorder::default());
        let stop = CancellationToken::new();
        let (listening, mut bound) = tokio::sync::mpsc::unbounded_channel();
        let task = tokio::spawn(crate::service::serve_with(
            settings.clone(),
            ServeArgs::default(),
            stop.clone(),
            WiringOptions {
                recorder: Some(recorder.clone()),
                listening: Some(listening),
                ..Default::default()
            },
        ));
        let base = match bound.recv().await {
            Some(addr) => format!("http://{addr}"),
            None => {
                return Err(task
                    .await?
                    .err()
                    .unwrap_or_else(|| anyhow::anyhow!("the engine stopped before it listened")))
            }
        };
        crate::demo::wait_until_up(&base, Duration::from_secs(30)).await?;
        Ok(Self {
            base,
            recorder,
            token,
            stop,
            task,
            http: reqwest::Client::new(),
            settings,
        })
    }

    /// Resyncs every customer of `pair` from `system`.
    pub async fn resync_customers(&self, pair: &str, system: &str) -> anyhow::Result<()> {
        let answer = self
            .http
            .post(format!("{}/api/resync", self.base))
            .bearer_auth(&self.token)
            .json(&serde_json::json!({
                "pair": pair, "system": system, "entity": "customer", "everything": true
            }))
            .send()
            .await
            .context("cannot start the resync")?;
        anyhow::ensure!(
            answer.status().as_u16() == 202,
            "the resync was refused: {}",
            answer.text().await.unwrap_or_default()
        );
        Ok(())
    }

    /// Stops the engine and deletes the run's queues.
    pub async fn stop(self) {
        self.stop.cancel();
        let _ = self.task.await;
        crate::bus::delete_topology_of(&self.settings).await;
    }
}
