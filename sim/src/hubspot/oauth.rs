//! HubSpot's OAuth: `POST /oauth/v1/token` trades the refresh token for short-lived
//! access tokens, and every API call's bearer token is checked here.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::{json, Value};

/// The form `POST /oauth/v1/token` takes.
#[derive(Debug, Deserialize)]
pub(crate) struct TokenForm {
    #[serde(default)]
    pub grant_type: String,
    #[serde(default)]
    pub client_id: String,
    #[serde(default)]
    pub client_secret: String,
    #[serde(default)]
    pub refresh_token: String,
}

/// Why a bearer token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AuthFailure {
    Missing,
    Expired,
}

/// Issued access tokens and when each stops working.
#[derive(Debug, Default)]
pub(crate) struct Tokens {
    issued: Mutex<HashMap<String, Instant>>,
    grants: AtomicUsize,
}

impl Tokens {
    /// Answers a token request: `(status, body)`.
    pub(crate) fn grant(
        &self,
        form: &TokenForm,
        settings: &super::HubSpotSettings,
    ) -> (u16, Value) {
        if form.grant_type != "refresh_token" {
            return (
                400,
                json!({"status": "BAD_GRANT_TYPE", "message": "grant_type must be refresh_token"}),
            );
        }
        if form.client_id != settings.client_id || form.client_secret != settings.client_secret {
            return (
                400,
                json!({"status": "BAD_CLIENT_ID", "message": "missing or unknown client id, or a client secret that does not match"}),
            );
        }
        if form.refresh_token != settings.refresh_token {
            return (
                400,
                json!({"status": "BAD_REFRESH_TOKEN", "message": "missing or unknown refresh token"}),
            );
        }
        let token = format!("sim-hs-at-{}", uuid::Uuid::new_v4().simple());
        self.issued
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(token.clone(), Instant::now() + settings.access_token_ttl);
        self.grants.fetch_add(1, Ordering::Relaxed);
        (
            200,
            json!({
                "access_token": token,
                // HubSpot keeps the refresh token for the life of the install.
                "refresh_token": settings.refresh_token,
                "expires_in": settings.access_token_ttl.as_secs(),
                "token_type": "bearer",
            }),
        )
    }

    /// Checks an `Authorization` header value.
    pub(crate) fn check(
        &self,
        authorization: Option<&str>,
        private_app_token: &str,
    ) -> Result<(), AuthFailure> {
        let Some(token) = authorization
            .and_then(|h| {
                h.strip_prefix("Bearer ")
                    .or_else(|| h.strip_prefix("bearer "))
            })
            .map(str::trim)
        else {
            return Err(AuthFailure::Missing);
        };
        if !private_app_token.is_empty() && token == private_app_token {
            return Ok(());
        }
        let issued = self.issued.lock().unwrap_or_else(|p| p.into_inner());
        match issued.get(token) {
            Some(until) if Instant::now() < *until => Ok(()),
            _ => Err(AuthFailure::Expired),
        }
    }

    /// Every access token issued so far stops working now.
    pub(crate) fn expire_all(&self) {
        let now = Instant::now();
        for until in self
            .issued
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values_mut()
        {
            *until = now.checked_sub(Duration::from_millis(1)).unwrap_or(now);
        }
    }

    /// Every access token issued so far.
    pub(crate) fn issued(&self) -> Vec<String> {
        self.issued
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .cloned()
            .collect()
    }

    pub(crate) fn grants(&self) -> usize {
        self.grants.load(Ordering::Relaxed)
    }
}

/// The 401 body for a refused bearer token.
pub(crate) fn refusal_body(failure: AuthFailure) -> Value {
    match failure {
        AuthFailure::Missing => json!({
            "status": "error",
            "message": "Authentication credentials not found. This API supports OAuth 2.0 authentication and you can find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview",
            "category": "INVALID_AUTHENTICATION",
        }),
        AuthFailure::Expired => json!({
            "status": "error",
            "message": "The OAuth token used to make this call expired 0 second(s) ago.",
            "category": "EXPIRED_AUTHENTICATION",
        }),
    }
}
