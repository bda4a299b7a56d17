//! What stands between a client and the handlers, on every port Tandem listens on:
//! the listener's connection cap and header deadline ([`listener`]), the body's size
//! and deadline ([`body`]), and one JSON error shape for whatever goes wrong on the
//! way, the framework's own refusals and a handler's panic included ([`errors`]).

pub mod body;
pub mod errors;
pub mod listener;

use std::time::Duration;

use poem::middleware::CatchPanic;
use poem::{Endpoint, EndpointExt};

use crate::config::Settings;

/// The limits every request and connection is held to, from `[http]` and `[webhooks]`.
#[derive(Debug, Clone)]
pub struct HttpLimits {
    pub max_connections: usize,
    pub header_read_timeout: Duration,
    pub body_read_timeout: Duration,
    /// Largest body of a webhook delivery.
    pub webhook_max_body: usize,
    /// Largest body of any other request (the admin API).
    pub max_body: usize,
}

impl HttpLimits {
    pub fn of(settings: &Settings) -> Self {
        let http = &settings.http;
        Self {
            max_connections: http.max_connections,
            header_read_timeout: Duration::from_secs(http.header_read_timeout_secs),
            body_read_timeout: Duration::from_secs(http.body_read_timeout_secs),
            webhook_max_body: settings.webhooks.max_body_bytes,
            max_body: http.max_body_bytes,
        }
    }
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self::of(&Settings::default())
    }
}

/// `endpoint` behind the request rules: a body over its limit or too slow is refused
/// before a handler sees it, any error is answered as JSON, and a panic becomes a 500
/// (logged) instead of a connection dropped without an answer.
pub fn guarded(endpoint: impl Endpoint + 'static, limits: &HttpLimits) -> impl Endpoint {
    let body = body::BodyRules::of(limits);
    errors::errors_as_json(endpoint.around(move |inner, request| {
        let body = body.clone();
        async move { body.apply(inner.as_ref(), request).await }
    }))
    .with(CatchPanic::new().with_handler(errors::panic_answer))
}
