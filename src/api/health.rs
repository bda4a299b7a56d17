//! `GET /health` (the process is up) and `GET /ready` (its store and bus answer, and
//! none of its connections is down, unauthorised or misconfigured).

use std::time::Duration;

use async_trait::async_trait;
use futures::future::join_all;
use poem::http::StatusCode;
use poem::web::Data;
use poem::{handler, Response};
use serde_json::json;

use super::admin::connections::connection_view;
use super::HttpState;

/// A dependency that must answer for the process to be ready to take work.
#[async_trait]
pub trait ReadinessProbe: Send + Sync {
    /// What a person would call it: `database`, `rabbitmq`.
    fn name(&self) -> &'static str;
    async fn check(&self) -> Result<(), String>;
}

/// A dependency that does not answer within this is reported as down, so `/ready`
/// answers in bounded time even when a connection hangs.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

#[handler]
pub async fn health() -> Response {
    json_response(StatusCode::OK, json!({"status": "ok"}))
}

#[handler]
pub async fn ready(state: Data<&HttpState>) -> Response {
    let checks = join_all(state.probes.iter().map(|probe| async move {
        let outcome = match tokio::time::timeout(PROBE_TIMEOUT, probe.check()).await {
            Ok(outcome) => outcome,
            Err(_) => Err(format!("no answer within {}s", PROBE_TIMEOUT.as_secs())),
        };
        (probe.name(), outcome)
    }))
    .await;
    let mut failing: Vec<_> = checks
        .iter()
        .filter_map(|(name, outcome)| {
            outcome
                .as_ref()
                .err()
                .map(|err| json!({"name": name, "error": err}))
        })
        .collect();
    let mut checked: Vec<String> = checks.iter().map(|(name, _)| name.to_string()).collect();
    // A connection's state comes from its probes and calls, kept current in the
    // background: reading it makes no call.
    for connection in state.admin.connections.all().iter() {
        let view = connection_view(connection);
        let name = format!("{} ({} {})", view.kind, view.pair, view.side);
        if connection.health.state().out_of_service() {
            let problem = view.problem.as_ref();
            failing.push(json!({
                "name": name,
                "pair": view.pair,
                "side": view.side,
                "state": view.state,
                "since": view.since,
                "error": problem.map(|p| p.problem.as_str()),
                "setting": problem.and_then(|p| p.setting.as_deref()),
                "hint": problem.map(|p| p.hint.as_str()),
            }));
        }
        checked.push(name);
    }
    if failing.is_empty() {
        json_response(
            StatusCode::OK,
            json!({"status": "ready", "checked": checked}),
        )
    } else {
        for failure in &failing {
            tracing::warn!(dependency = %failure["name"], error = %failure["error"], "not ready");
        }
        json_response(
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"status": "unavailable", "failing": failing}),
        )
    }
}

pub(crate) fn json_response(status: StatusCode, body: serde_json::Value) -> Response {
    Response::builder()
        .status(status)
        .content_type("application/json")
        .body(body.to_string())
}
