//! HubSpot's OAuth: the install (consent) page at `/oauth/authorize`, the token
//! endpoint (`POST /oauth/v3/token`, and the v1 one HubSpot retires on 16 Feb 2027):
//! the authorization-code grant with `code_verifier`, and refresh; token metadata at
//! `POST /oauth/v3/token/introspect` (the hub id); every API call's bearer token is
//! checked here.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Deserialize;

use crate::consent::Consent;
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
    #[serde(default)]
    pub code: String,
    #[serde(default)]
    pub redirect_uri: String,
    #[serde(default)]
    pub code_verifier: String,
}

/// The form `POST /oauth/v3/token/introspect` takes.
#[derive(Debug, Deserialize)]
pub(crate) struct IntrospectForm {
    #[serde(default)]
    pub client_id: String,
    #[serde(default)]
    pub client_secret: String,
    #[serde(default)]
    pub token: String,
}

/// Why a bearer token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AuthFailure {
    Missing,
    Expired,
}

/// Issued access tokens and when each stops working.
#[derive(Default)]
pub(crate) struct Tokens {
    issued: Mutex<HashMap<String, Instant>>,
    grants: AtomicUsize,
    /// Refresh tokens issued by code exchanges, with the scopes granted. HubSpot keeps
    /// a refresh token for the life of the install (it does not rotate).
    installs: Mutex<HashMap<String, String>>,
    /// The scopes of each access token issued under an install.
    access_scopes: Mutex<HashMap<String, String>>,
    pub(crate) consent: Consent,
}

fn bad(status: &str, message: &str) -> (u16, Value) {
    let error = match status {
        "BAD_CLIENT_ID" => "invalid_client",
        "BAD_GRANT_TYPE" => "unsupported_grant_type",
        _ => "invalid_grant",
    };
    (
        400,
        json!({"status": status, "message": message, "error": error, "error_description": message}),
    )
}

impl Tokens {
    /// Answers a token request: `(status, body)`.
    pub(crate) fn grant(
        &self,
        form: &TokenForm,
        settings: &super::HubSpotSettings,
    ) -> (u16, Value) {
        if form.client_id != settings.client_id || form.client_secret != settings.client_secret {
            return bad(
                "BAD_CLIENT_ID",
                "missing or unknown client id, or a client secret that does not match",
            );
        }
        let refresh = match form.grant_type.as_str() {
            "authorization_code" => {
                let redeemed = self.consent.redeem(
                    &form.code,
                    &settings.client_id,
                    Some(form.redirect_uri.as_str()),
                    Some(form.code_verifier.as_str()).filter(|v| !v.is_empty()),
                );
                let Ok(granted) = redeemed else {
                    return bad(
                        "BAD_AUTH_CODE",
                        "auth code not found, expired, already used, or its code_verifier or redirect_uri does not match",
                    );
                };
                let refresh = format!("sim-hs-rt-{}", uuid::Uuid::new_v4().simple());
                self.installs
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(refresh.clone(), granted.scope);
                refresh
            }
            "refresh_token" => {
                let known = form.refresh_token == settings.refresh_token
                    || self
                        .installs
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .contains_key(&form.refresh_token);
                if !known {
                    return bad("BAD_REFRESH_TOKEN", "missing or unknown refresh token");
                }
                form.refresh_token.clone()
            }
            _ => {
                return bad(
                    "BAD_GRANT_TYPE",
                    "grant_type must be authorization_code or refresh_token",
                )
            }
        };
        let token = format!("sim-hs-at-{}", uuid::Uuid::new_v4().simple());
        if let Some(scope) = self
            .installs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&refresh)
        {
            self.access_scopes
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(token.clone(), scope.clone());
        }
        self.issued
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(token.clone(), Instant::now() + settings.access_token_ttl);
        self.grants.fetch_add(1, Ordering::Relaxed);
        (
            200,
            json!({
                "access_token": token,
                "refresh_token": refresh,
                "expires_in": settings.access_token_ttl.as_secs(),
                "token_type": "bearer",
            }),
        )
    }

    /// Token metadata: whether the token is active, and for an access token the hub
    /// it reaches and its scopes (the fields of HubSpot's token metadata).
    pub(crate) fn introspect(
        &self,
        form: &IntrospectForm,
        settings: &super::HubSpotSettings,
    ) -> (u16, Value) {
        if form.client_id != settings.client_id || form.client_secret != settings.client_secret {
            return bad(
                "BAD_CLIENT_ID",
                "missing or unknown client id, or a client secret that does not match",
            );
        }
        let access_until = self
            .issued
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&form.token)
            .copied();
        let scopes = self
            .installs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&form.token)
            .cloned();
        let access_scopes = self
            .access_scopes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&form.token)
            .cloned();
        let (active, token_type, expires_in) = match (access_until, &scopes) {
            (Some(until), _) => (
                Instant::now() < until,
                "access",
                until.saturating_duration_since(Instant::now()).as_secs(),
            ),
            (None, Some(_)) => (true, "refresh", 0),
            (None, None) => return (200, json!({ "active": false })),
        };
        (
            200,
            json!({
                "active": active,
                "token_type": token_type,
                "hub_id": settings.portal_id,
                "app_id": settings.app_id,
                "client_id": settings.client_id,
                "scopes": access_scopes.or(scopes).unwrap_or_default().split_whitespace().collect::<Vec<_>>(),
                "expires_in": expires_in,
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
