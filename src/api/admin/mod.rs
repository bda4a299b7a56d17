//! The admin API (poem-openapi), one file per resource, behind a bearer token compared
//! in constant time.

pub mod jobs;
pub mod operations;
pub mod records;

use std::sync::Arc;

use poem::http::StatusCode;
use poem::{Endpoint, EndpointExt, IntoResponse, Request, Response};
use poem_openapi::{Object, OpenApiService};

use crate::intake::jobs::JobRunner;
use crate::secret::Secret;
use crate::store::Store;

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
}

/// The admin API, one OpenAPI document for all its resources.
pub type AdminApi = (
    jobs::JobsApi,
    records::RecordsApi,
    operations::OperationsApi,
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
            operations::OperationsApi { state },
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
                return Ok(Response::builder()
                    .status(StatusCode::UNAUTHORIZED)
                    .header("www-authenticate", "Bearer")
                    .content_type("application/json")
                    .body(r#"{"error":"a valid `Authorization: Bearer <admin token>` header is required"}"#));
            }
            inner.call(request).await.map(IntoResponse::into_response)
        }
    })
}
