//! `GET /api/connections`: each connection (one side of a pair) with its state, from
//! its probes and its calls, what a person should do when it is out of service, and
//! the work waiting on it. `/ready`, `/api/stats` and the dashboard read the same views.

use chrono::{DateTime, Utc};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};

use super::AdminState;
use crate::connectors::health::{tracker::RECENT, Connection, Snapshot};

pub struct ConnectionsApi {
    pub state: AdminState,
}

#[derive(Debug, Object)]
pub struct ConnectionView {
    pub pair: String,
    /// `crm` or `finance`.
    pub side: String,
    /// `hubspot`, `xero` (`memory` in tests).
    pub kind: String,
    pub base_url: String,
    /// `unknown` (not probed yet), `healthy`, `degraded` (some calls of the last
    /// minute failed), `down` (its calls all fail, or its probe does),
    /// `unauthorised` (credentials refused), `misconfigured` (a wrong base URL or token
    /// URL). While `down`, `unauthorised` or `misconfigured` its calls wait and only
    /// its probe goes out.
    pub state: String,
    /// When it entered this state (for `down`: the first failure of the outage).
    pub since: DateTime<Utc>,
    /// The most recent error, whatever the state now.
    pub last_error: Option<ErrorView>,
    /// While out of service: the setting at fault and what to do.
    pub problem: Option<ProblemView>,
    pub last_probe: Option<ProbeView>,
    pub recent_calls: CallCountsView,
    pub waiting: WaitingView,
    pub budget: BudgetView,
}

/// The account's budget of calls with the service.
#[derive(Debug, Object)]
pub struct BudgetView {
    /// Calls left today, as the service last reported them (Xero's
    /// `X-DayLimit-Remaining`); absent until it has.
    pub day_remaining: Option<u64>,
    /// While a limit is spent (`daily`): no call goes out and changes wait until
    /// `waits_until`, each without using up an attempt.
    pub spent: Option<String>,
    pub waits_until: Option<DateTime<Utc>>,
    /// A forecast: how long the day's remaining calls last at this process's pace
    /// over the last five minutes, in seconds; absent while it made no call or the
    /// service reports no daily count.
    pub lasts_secs: Option<u64>,
}

/// How long `remaining` calls last at the pace of `recent` calls in `window`.
fn lasts(remaining: Option<u64>, recent: u64, window: std::time::Duration) -> Option<u64> {
    let remaining = remaining?;
    (recent > 0).then(|| remaining.saturating_mul(window.as_secs()) / recent)
}

#[derive(Debug, Object)]
pub struct ErrorView {
    pub at: DateTime<Utc>,
    pub message: String,
}

#[derive(Debug, Object)]
pub struct ProblemView {
    /// The setting at fault, e.g. `pairs.acme.finance.base_url`; absent for an outage.
    pub setting: Option<String>,
    /// What happened, e.g. `Xero answered 404 at https://api.xero.com/Organisation`.
    pub problem: String,
    /// What to do.
    pub hint: String,
}

#[derive(Debug, Object)]
pub struct ProbeView {
    pub at: DateTime<Utc>,
    /// The URL probed.
    pub target: String,
    pub ok: bool,
    /// The state the probe found.
    pub found: String,
    pub status: Option<u16>,
    pub error: Option<String>,
}

/// This process's calls to the connection over the last `window_secs`.
#[derive(Debug, Object)]
pub struct CallCountsView {
    pub window_secs: u64,
    /// Answered.
    pub ok: u64,
    /// Answered with a refusal of the request (400, 404, 409, 422).
    pub rejected: u64,
    /// 5xx, timeouts, no connection, credentials refused.
    pub failed: u64,
    /// 429.
    pub refused: u64,
}

/// Work of this process waiting on the connection.
#[derive(Debug, Object)]
pub struct WaitingView {
    /// Calls held now until the connection comes back.
    pub held_calls: u64,
    /// Changes sent back for a retry after a failure on this connection and not
    /// handled again yet.
    pub changes_retrying: u64,
}

#[derive(ApiResponse)]
pub enum ConnectionsAnswer {
    #[oai(status = 200)]
    Ok(Json<Vec<ConnectionView>>),
}

/// The view of one connection now.
pub fn connection_view(connection: &Connection) -> ConnectionView {
    let snapshot = connection.health.snapshot();
    let problem = connection.advice(&snapshot).map(|advice| ProblemView {
        setting: advice
            .setting
            .map(|s| format!("{}.{s}", connection.settings_key())),
        problem: advice.problem,
        hint: advice.hint,
    });
    let Snapshot {
        state,
        since,
        last_error,
        last_probe,
        recent,
        ..
    } = snapshot;
    ConnectionView {
        pair: connection.pair.to_string(),
        side: connection.system.as_str().to_string(),
        kind: connection.kind.as_str().to_string(),
        base_url: connection.base_url.clone(),
        state: state.as_str().to_string(),
        since,
        last_error: last_error.map(|(at, message)| ErrorView { at, message }),
        problem,
        last_probe: last_probe.map(|probe| {
            let failure = probe.report.failure.as_ref();
            ProbeView {
                at: probe.at,
                target: probe.report.target.clone(),
                ok: failure.is_none(),
                found: failure.map_or("healthy", |f| f.state.as_str()).to_string(),
                status: failure.and_then(|f| f.status),
                error: failure.map(|f| f.error.clone()),
            }
        }),
        recent_calls: CallCountsView {
            window_secs: RECENT.as_secs(),
            ok: recent.ok,
            rejected: recent.rejected,
            failed: recent.failed,
            refused: recent.refused,
        },
        waiting: WaitingView {
            held_calls: connection.health.held() as u64,
            changes_retrying: connection.health.changes_waiting() as u64,
        },
        budget: {
            let budget = connection.health.budget();
            let calls = recent.ok + recent.rejected + recent.failed + recent.refused;
            BudgetView {
                day_remaining: budget.day_remaining,
                spent: budget.spent.map(|(limit, _)| limit.to_string()),
                waits_until: budget.spent.map(|(_, until)| until),
                lasts_secs: lasts(budget.day_remaining, calls, RECENT),
            }
        },
    }
}

#[OpenApi]
impl ConnectionsApi {
    /// Each connection's state, last probe, recent calls and the work waiting on it.
    #[oai(path = "/connections", method = "get")]
    async fn list(&self) -> ConnectionsAnswer {
        ConnectionsAnswer::Ok(Json(
            self.state
                .connections
                .all()
                .iter()
                .map(|c| connection_view(c))
                .collect(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::lasts;

    #[test]
    fn the_day_lasts_as_long_as_its_calls_at_the_recent_pace() {
        let five_minutes = Duration::from_secs(300);
        // 60 calls in five minutes: 4,800 calls last 400 such windows.
        assert_eq!(lasts(Some(4800), 60, five_minutes), Some(24_000));
        assert_eq!(lasts(Some(0), 60, five_minutes), Some(0));
        assert_eq!(
            lasts(Some(4800), 0, five_minutes),
            None,
            "idle: no forecast"
        );
        assert_eq!(lasts(None, 60, five_minutes), None, "not reported");
    }
}
