//! The admin API (poem-openapi), one file per resource, behind a bearer token compared
//! in constant time.

pub mod accounts;
pub mod conflicts;
pub mod connections;
pub mod document;
pub mod jobs;
pub mod operations;
pub mod pairs;
pub mod records;
pub mod time_field;

mod failure;
pub mod parameters;

use std::sync::Arc;

use poem::http::StatusCode;
use poem::{Endpoint, EndpointExt, IntoResponse, Request};
use poem_openapi::{Object, OpenApiService};

use chrono::Utc;
use uuid::Uuid;

use crate::bus::{BusMessage, Lane};
use crate::domain::{ChangeEvent, ChangeKind, System, Trigger};
use crate::intake::jobs::JobRunner;
use crate::secret::Secret;
use crate::store::{Direction, EntityLink, Store};

/// The body of every error answer: what was wrong, in words a person can act on.
#[derive(Debug, Object)]
pub struct ApiError {
    pub error: String,
}

impl ApiError {
    pub fn new(error: impl Into<String>) -> poem_openapi::payload::Json<Self> {
        poem_openapi::payload::Json(Self {
            error: error.into(),
        })
    }
}

/// What the admin endpoints work with.
#[derive(Clone)]
pub struct AdminState {
    pub store: Arc<dyn Store>,
    pub bus: Arc<dyn crate::bus::Bus>,
    pub jobs: Arc<JobRunner>,
    pub queue: crate::orchestrator::QueueControl,
    /// What waits inside this process, and for what.
    pub backlog: crate::backlog::Backlog,
    /// The connections of this process and their health.
    pub connections: Arc<crate::connectors::health::Connections>,
    /// Connecting accounts and making pairs of them (`None` where nothing runs them).
    pub connect: Option<Arc<crate::connect::Connect>>,
    /// The names of the pairs the settings file defines.
    pub file_pairs: Vec<String>,
    /// `webhooks.public_base_url`, for the webhook URLs shown for each pair.
    pub public_base_url: Option<String>,
}

impl AdminState {
    /// Sends a linked record through the sync again (a person's decision takes effect
    /// there), from the side its last change started on.
    pub async fn sync_again(&self, link: &EntityLink) -> Result<(), crate::bus::BusError> {
        let Some((system, external_id)) = source_of(link) else {
            return Ok(());
        };
        self.sync_again_from(link, system, external_id).await
    }

    /// Sends a linked record through the sync again from `system`'s side.
    pub async fn sync_again_from(
        &self,
        link: &EntityLink,
        system: System,
        external_id: String,
    ) -> Result<(), crate::bus::BusError> {
        let event = ChangeEvent {
            event_id: format!("manual:{}:{}", link.id, Uuid::now_v7()),
            pair: link.pair.clone(),
            system,
            entity: link.entity,
            external_id,
            kind: ChangeKind::Upsert,
            occurred_at: Utc::now(),
            trigger: Trigger::Manual,
            job_id: None,
            transaction_id: None,
            by_tandem: false,
        };
        self.bus
            .publish(Lane::Live, &BusMessage::ChangeV1(event))
            .await
    }
}

/// The side a link's last change started on, and its id there.
pub fn source_of(link: &EntityLink) -> Option<(System, String)> {
    let side = match link.last_direction {
        Some(Direction::FinanceToCrm) => System::Finance,
        Some(Direction::CrmToFinance) => System::Crm,
        None if link.crm_id.is_some() => System::Crm,
        None => System::Finance,
    };
    link.id_on(side).map(|id| (side, id.to_string()))
}

/// The admin API, one OpenAPI document for all its resources.
pub type AdminApi = (
    jobs::JobsApi,
    records::RecordsApi,
    operations::OperationsApi,
    conflicts::ConflictsApi,
    connections::ConnectionsApi,
    accounts::AccountsApi,
    pairs::PairsApi,
);

pub fn service(state: AdminState) -> OpenApiService<AdminApi, ()> {
    OpenApiService::new(
        (
            jobs::JobsApi {
                state: state.clone(),
            },
            records::RecordsApi {
                state: state.clone(),
            },
            operations::OperationsApi {
                state: state.clone(),
            },
            conflicts::ConflictsApi {
                state: state.clone(),
            },
            connections::ConnectionsApi {
                state: state.clone(),
            },
            accounts::AccountsApi {
                state: state.clone(),
            },
            pairs::PairsApi { state },
        ),
        "Tandem admin API",
        env!("CARGO_PKG_VERSION"),
    )
    .server("/api")
}

/// Wraps the admin endpoints so that every call needs `Authorization: Bearer <token>`.
pub fn require_token(endpoint: impl Endpoint + 'static, token: Secret) -> impl Endpoint {
    endpoint.around(move |inner, request: Request| {
        let token = token.clone();
        async move {
            let presented = request
                .header("authorization")
                .and_then(|value| value.strip_prefix("Bearer "))
                .unwrap_or_default()
                .to_string();
            if presented.is_empty() || !token.matches(&presented) {
                let mut refusal = crate::api::guard::errors::json_error(
                    StatusCode::UNAUTHORIZED,
                    "a valid `Authorization: Bearer <admin token>` header is required",
                );
                refusal.headers_mut().insert(
                    "www-authenticate",
                    poem::http::HeaderValue::from_static("Bearer"),
                );
                return Ok(refusal);
            }
            inner.call(request).await.map(IntoResponse::into_response)
        }
    })
}
