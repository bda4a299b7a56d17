//! Pairs as resources: `GET /api/pairs` (those made here and those the settings file
//! defines), `POST /api/pairs` (from two connected accounts, with its policies; it
//! starts syncing at once, no restart), `GET /api/pairs/{name}`, and
//! `POST /api/pairs/{name}/pause|resume|remove` (removal keeps its history and its
//! name).

use chrono::{DateTime, Utc};
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};
use uuid::Uuid;

use super::accounts::{failure, NO_CONNECT};
use super::{AdminState, ApiError};
use crate::connect::{Connect, ConnectError, NewPair};
use crate::domain::System;
use crate::store::PairRecord;

pub struct PairsApi {
    pub state: AdminState,
}

#[derive(Debug, Object)]
pub struct NewPairBody {
    /// a-z, 0-9, `-`, `_`; it names the pair in webhooks URLs and records.
    pub name: String,
    /// A connected HubSpot account.
    pub crm_account: Uuid,
    /// A connected Xero account.
    pub finance_account: Uuid,
    /// `last_write_wins` (default), `crm_wins`, `finance_wins` or `manual`.
    pub conflict_policy: Option<String>,
    /// Who wins a tie: `finance` (default) or `crm`.
    pub source_of_truth: Option<String>,
    /// `archive` (default), `approve` or `ignore`.
    pub deletes: Option<String>,
    /// Seconds between polls of each side (default 60).
    pub poll_interval_secs: Option<u64>,
}

#[derive(Debug, Object)]
pub struct SideView {
    /// `crm` or `finance`.
    pub side: String,
    /// The connection's state: `unknown`, `healthy`, `degraded`, `down`,
    /// `unauthorised`, `misconfigured`.
    pub state: String,
}

#[derive(Debug, Object)]
pub struct WebhookView {
    /// `crm` or `finance`.
    pub side: String,
    /// Register this URL in the app's webhook settings (absent until
    /// `webhooks.public_base_url` is set).
    pub url: Option<String>,
    /// Which secret signs the deliveries.
    pub secret: String,
}

#[derive(Debug, Object)]
pub struct PairView {
    pub name: String,
    /// `api` (made here) or `settings` (the settings file; change it there).
    pub defined_by: String,
    pub crm_account: Option<Uuid>,
    pub finance_account: Option<Uuid>,
    pub conflict_policy: Option<String>,
    pub source_of_truth: Option<String>,
    pub deletes: Option<String>,
    pub poll_interval_secs: Option<u64>,
    /// `active`, `paused` or `removed` (as set); `settings` for a file pair.
    pub state: String,
    /// What it does now: `syncing`, `paused`, `needs_reconnecting` (a side's
    /// credentials were refused: its changes wait until the account is connected
    /// again), `removed`, or `settings`.
    pub status: String,
    pub sides: Vec<SideView>,
    pub webhooks: Vec<WebhookView>,
    pub created_at: Option<DateTime<Utc>>,
}

#[derive(ApiResponse)]
pub enum PairsAnswer {
    #[oai(status = 200)]
    Found(Json<Vec<PairView>>),
    #[oai(status = 500)]
    Internal(Json<ApiError>),
    #[oai(status = 503)]
    Unavailable(Json<ApiError>),
}

/// `POST /api/pairs`.
// One answer per request, moved once: boxing the view would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(ApiResponse)]
pub enum CreateAnswer {
    #[oai(status = 201)]
    Created(Json<PairView>),
    #[oai(status = 400)]
    BadRequest(Json<ApiError>),
    /// An account named does not exist.
    #[oai(status = 404)]
    NotFound(Json<ApiError>),
    /// The name is taken.
    #[oai(status = 409)]
    Conflict(Json<ApiError>),
    #[oai(status = 500)]
    Internal(Json<ApiError>),
    #[oai(status = 503)]
    Unavailable(Json<ApiError>),
}

#[allow(clippy::large_enum_variant)]
#[derive(ApiResponse)]
pub enum PairAnswer {
    #[oai(status = 200)]
    Found(Json<PairView>),
    #[oai(status = 400)]
    BadRequest(Json<ApiError>),
    #[oai(status = 404)]
    NotFound(Json<ApiError>),
    #[oai(status = 409)]
    Conflict(Json<ApiError>),
    #[oai(status = 500)]
    Internal(Json<ApiError>),
    #[oai(status = 503)]
    Unavailable(Json<ApiError>),
}

fn view(state: &AdminState, connect: &Connect, record: PairRecord) -> PairView {
    let sides: Vec<SideView> = connect
        .sides(&record.name)
        .into_iter()
        .map(|(side, state)| SideView {
            side: side.as_str().to_string(),
            state,
        })
        .collect();
    let status = match record.state.as_str() {
        "active" if sides.iter().any(|s| s.state == "unauthorised") => "needs_reconnecting",
        "active" => "syncing",
        other => other,
    }
    .to_string();
    let webhooks = [System::Crm, System::Finance]
        .into_iter()
        .map(|side| {
            let (url, signed) =
                connect.webhook(state.public_base_url.as_deref(), &record.name, side);
            WebhookView {
                side: side.as_str().to_string(),
                url,
                secret: match (side, signed) {
                    (System::Crm, _) => "the HubSpot app's client secret".into(),
                    (System::Finance, true) => "the Xero app's webhook key".into(),
                    (System::Finance, false) => {
                        "the Xero app's webhook key (set TANDEM_CONNECT__XERO__WEBHOOK_KEY)".into()
                    }
                },
            }
        })
        .collect();
    PairView {
        name: record.name,
        defined_by: "api".into(),
        crm_account: Some(record.crm_account),
        finance_account: Some(record.finance_account),
        conflict_policy: Some(record.conflict_policy),
        source_of_truth: Some(record.source_of_truth),
        deletes: Some(record.deletes),
        poll_interval_secs: Some(record.poll_interval_secs),
        state: record.state,
        status,
        sides,
        webhooks,
        created_at: Some(record.created_at),
    }
}

/// A pair of the settings file: its sides as the process's connections show them
/// (none when the file gives it no credentials), and the webhooks it takes.
fn file_pair(state: &AdminState, name: &str) -> PairView {
    let id = crate::domain::PairId::new(name);
    let sides: Vec<SideView> = [System::Crm, System::Finance]
        .into_iter()
        .filter_map(|side| {
            let connection = state.connections.find(&id, side)?;
            Some(SideView {
                side: side.as_str().to_string(),
                state: connection.health.state().as_str().to_string(),
            })
        })
        .collect();
    let webhooks = [System::Crm, System::Finance]
        .into_iter()
        .map(|side| WebhookView {
            side: side.as_str().to_string(),
            url: state
                .public_base_url
                .as_deref()
                .map(|base| crate::intake::webhook_url(base, name, side)),
            secret: format!("pairs.{name}.{side}.webhook_secrets in the settings file"),
        })
        .collect();
    PairView {
        name: name.to_string(),
        defined_by: "settings".into(),
        crm_account: None,
        finance_account: None,
        conflict_policy: None,
        source_of_truth: None,
        deletes: None,
        poll_interval_secs: None,
        state: "settings".into(),
        status: "settings".into(),
        sides,
        webhooks,
        created_at: None,
    }
}

fn answer(
    state: &AdminState,
    connect: &Connect,
    result: Result<PairRecord, ConnectError>,
) -> PairAnswer {
    match result {
        Ok(record) => PairAnswer::Found(Json(view(state, connect, record))),
        Err(err) => {
            let (status, message) = failure(err);
            let body = ApiError::new(message);
            match status {
                400 => PairAnswer::BadRequest(body),
                404 => PairAnswer::NotFound(body),
                409 => PairAnswer::Conflict(body),
                503 => PairAnswer::Unavailable(body),
                _ => PairAnswer::Internal(body),
            }
        }
    }
}

fn created(
    state: &AdminState,
    connect: &Connect,
    result: Result<PairRecord, ConnectError>,
) -> CreateAnswer {
    match result {
        Ok(record) => CreateAnswer::Created(Json(view(state, connect, record))),
        Err(err) => {
            let (status, message) = failure(err);
            let body = ApiError::new(message);
            match status {
                400 => CreateAnswer::BadRequest(body),
                404 => CreateAnswer::NotFound(body),
                409 => CreateAnswer::Conflict(body),
                503 => CreateAnswer::Unavailable(body),
                _ => CreateAnswer::Internal(body),
            }
        }
    }
}

#[OpenApi]
impl PairsApi {
    /// Every pair: those made here, then those of the settings file.
    #[oai(path = "/pairs", method = "get")]
    async fn list(&self) -> PairsAnswer {
        let Some(connect) = &self.state.connect else {
            return PairsAnswer::Unavailable(ApiError::new(NO_CONNECT));
        };
        match connect.pairs().await {
            Ok(records) => {
                let mut views: Vec<PairView> = records
                    .into_iter()
                    .map(|r| view(&self.state, connect, r))
                    .collect();
                views.extend(
                    self.state
                        .file_pairs
                        .iter()
                        .map(|name| file_pair(&self.state, name)),
                );
                PairsAnswer::Found(Json(views))
            }
            Err(err) => match failure(err) {
                (503, message) => PairsAnswer::Unavailable(ApiError::new(message)),
                (_, message) => PairsAnswer::Internal(ApiError::new(message)),
            },
        }
    }

    /// Makes a pair of a connected HubSpot account and a connected Xero account; it
    /// syncs at once and after every restart, with nothing in the settings file.
    #[oai(path = "/pairs", method = "post")]
    async fn create(&self, body: Json<NewPairBody>) -> CreateAnswer {
        let Some(connect) = &self.state.connect else {
            return CreateAnswer::Unavailable(ApiError::new(NO_CONNECT));
        };
        let body = body.0;
        let result = connect
            .create_pair(NewPair {
                name: body.name,
                crm_account: body.crm_account,
                finance_account: body.finance_account,
                conflict_policy: body.conflict_policy,
                source_of_truth: body.source_of_truth,
                deletes: body.deletes,
                poll_interval_secs: body.poll_interval_secs,
            })
            .await;
        created(&self.state, connect, result)
    }

    #[oai(path = "/pairs/:name", method = "get")]
    async fn show(&self, name: Path<String>) -> PairAnswer {
        let Some(connect) = &self.state.connect else {
            return PairAnswer::Unavailable(ApiError::new(NO_CONNECT));
        };
        if self.state.file_pairs.contains(&name.0) {
            return PairAnswer::Found(Json(file_pair(&self.state, &name.0)));
        }
        answer(&self.state, connect, connect.pair(&name.0).await)
    }

    /// `pause` (its changes wait), `resume`, or `remove` (it stops for good; its
    /// history is kept and its name stays taken).
    #[oai(path = "/pairs/:name/:action", method = "post")]
    async fn act(&self, name: Path<String>, action: Path<String>) -> PairAnswer {
        let Some(connect) = &self.state.connect else {
            return PairAnswer::Unavailable(ApiError::new(NO_CONNECT));
        };
        if self.state.file_pairs.contains(&name.0) {
            return PairAnswer::Conflict(ApiError::new(format!(
                "pair `{}` is defined by the settings file: change it there",
                name.0
            )));
        }
        answer(
            &self.state,
            connect,
            connect.set_pair(&name.0, &action.0).await,
        )
    }
}
