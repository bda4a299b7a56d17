//! Tandem's HTTP surface: health and readiness, signed webhooks, and the admin API
//! with its OpenAPI document.

pub mod admin;
pub mod dashboard;
pub mod guard;
pub mod health;
pub mod metrics;

use std::sync::Arc;

use poem::{get, post, EndpointExt, IntoEndpoint, Route};

use crate::intake::WebhookIntake;
use crate::secret::Secret;
use admin::AdminState;

pub use health::ReadinessProbe;

/// Everything the HTTP handlers need, shared by reference.
#[derive(Clone)]
pub struct HttpState {
    pub probes: Vec<Arc<dyn ReadinessProbe>>,
    pub intake: Arc<WebhookIntake>,
    pub admin: AdminState,
    pub admin_token: Secret,
}

/// Every route, behind the request rules of `limits` (see [`guard`]).
pub fn routes(state: HttpState, limits: &guard::HttpLimits) -> impl poem::Endpoint {
    let admin = admin::service(state.admin.clone());
    let document = admin::document::document(&admin);
    let spec = poem::endpoint::make_sync(move |_| {
        poem::Response::builder()
            .content_type("application/json")
            .body(document.clone())
    });
    // The API browser's page carries the whole Swagger UI bundle (3 MiB); built when
    // asked for rather than kept for the life of the process.
    let browser = Arc::new(admin::service(state.admin.clone()));
    let docs = poem::endpoint::make(move |_| {
        let browser = browser.clone();
        async move { poem::web::Html(admin::document::browser_page(&browser)) }
    });
    let routes = Route::new()
        .at("/", get(dashboard::page))
        .at("/health", get(health::health))
        .at("/ready", get(health::ready))
        .at("/metrics", get(metrics::metrics))
        .at(
            "/connect/callback",
            get(admin::accounts::callback).data(state.admin.connect.clone()),
        )
        .at(
            "/webhooks/:pair/:system",
            post(crate::intake::receiver::receive),
        )
        .nest(
            "/api",
            admin::require_token(admin.into_endpoint(), state.admin_token.clone()),
        )
        .at("/openapi.json", spec)
        .at("/docs", get(docs))
        .data(state.intake.clone())
        .data(state);
    guard::guarded(routes, limits)
}
