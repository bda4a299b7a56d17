//! Tandem's HTTP surface: health and readiness now; webhooks, the admin API and the
//! dashboard mount here too.

pub mod health;

use std::sync::Arc;

use poem::{get, post, EndpointExt, Route};

use crate::intake::WebhookIntake;

pub use health::ReadinessProbe;

/// Everything the HTTP handlers need, shared by reference.
#[derive(Clone)]
pub struct HttpState {
    pub probes: Vec<Arc<dyn ReadinessProbe>>,
    pub intake: Arc<WebhookIntake>,
}

pub fn routes(state: HttpState) -> impl poem::Endpoint {
    Route::new()
        .at("/health", get(health::health))
        .at("/ready", get(health::ready))
        .at(
            "/webhooks/:pair/:system",
            post(crate::intake::receiver::receive),
        )
        .data(state.intake.clone())
        .data(state)
}
