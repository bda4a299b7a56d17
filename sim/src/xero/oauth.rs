//! Xero's OAuth 2.0 token endpoint (`POST /connect/token`, refresh-token grant only)
//! and the access tokens it issues. Refresh tokens rotate: each grant answers a new
//! one. As Xero does, the token just replaced keeps working (answering the same new
//! refresh token) until the new one is used or the grace period ends, so a client that
//! crashed before saving the new token can recover; after that it is `invalid_grant`.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use rand::distributions::Alphanumeric;
use rand::Rng as _;
use serde_json::{json, Value};

use super::dates;

/// How long a replaced refresh token stays usable, as Xero documents.
pub(crate) const DEFAULT_REFRESH_GRACE: Duration = Duration::from_secs(30 * 60);

pub(crate) const SCOPE: &str =
    "openid profile email accounting.transactions accounting.contacts offline_access";

struct Access {
    expires: Instant,
    expires_utc: DateTime<Utc>,
}

/// The token endpoint's answer: status and JSON body.
pub(crate) struct TokenAnswer {
    pub status: u16,
    pub body: Value,
}

/// Why an access token was refused, in the words of Xero's 401 `Detail`.
pub(crate) struct AuthProblem(pub String);

pub(crate) struct Tokens {
    client_id: String,
    client_secret: String,
    ttl: Duration,
    grace: Duration,
    current_refresh: String,
    /// The refresh token `current_refresh` replaced, and when.
    previous_refresh: Option<(String, Instant)>,
    access: HashMap<String, Access>,
    refreshes: usize,
}

fn random_token(len: usize) -> String {
    rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

impl Tokens {
    pub(crate) fn new(
        client_id: &str,
        client_secret: &str,
        refresh_token: &str,
        ttl: Duration,
    ) -> Self {
        Self {
            client_id: client_id.to_string(),
            client_secret: client_secret.to_string(),
            ttl,
            grace: DEFAULT_REFRESH_GRACE,
            current_refresh: refresh_token.to_string(),
            previous_refresh: None,
            access: HashMap::new(),
            refreshes: 0,
        }
    }

    pub(crate) fn set_grace(&mut self, grace: Duration) {
        self.grace = grace;
    }

    /// Every access and refresh token issued so far (tests search logs for them).
    pub(crate) fn issued(&self) -> Vec<String> {
        let mut all: Vec<String> = self.access.keys().cloned().collect();
        all.push(self.current_refresh.clone());
        all.extend(self.previous_refresh.iter().map(|(t, _)| t.clone()));
        all
    }

    pub(crate) fn refreshes(&self) -> usize {
        self.refreshes
    }

    pub(crate) fn expire_all(&mut self) {
        let now = Instant::now();
        let now_utc = Utc::now();
        for token in self.access.values_mut() {
            if token.expires > now {
                token.expires = now;
                token.expires_utc = now_utc;
            }
        }
    }

    /// Checks an `Authorization` header value.
    pub(crate) fn check(&self, authorization: Option<&str>) -> Result<(), AuthProblem> {
        let token = authorization
            .and_then(|h| {
                h.strip_prefix("Bearer ")
                    .or_else(|| h.strip_prefix("bearer "))
            })
            .map(str::trim)
            .ok_or_else(|| AuthProblem("AuthenticationUnsuccessful".into()))?;
        let access = self
            .access
            .get(token)
            .ok_or_else(|| AuthProblem("AuthenticationUnsuccessful".into()))?;
        if Instant::now() >= access.expires {
            return Err(AuthProblem(format!(
                "TokenExpired: token expired at {}",
                dates::expiry_words(access.expires_utc)
            )));
        }
        Ok(())
    }

    /// Answers one call of the token endpoint.
    pub(crate) fn grant(
        &mut self,
        authorization: Option<&str>,
        form: &[(String, String)],
    ) -> TokenAnswer {
        let field = |name: &str| {
            form.iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        let basic = authorization
            .and_then(|h| {
                h.strip_prefix("Basic ")
                    .or_else(|| h.strip_prefix("basic "))
            })
            .and_then(|b| STANDARD.decode(b.trim()).ok())
            .and_then(|b| String::from_utf8(b).ok());
        let (id, secret) = match &basic {
            Some(pair) => match pair.split_once(':') {
                Some((i, s)) => (Some(i), Some(s)),
                None => (None, None),
            },
            // Some clients send the client credentials in the form instead.
            None => (field("client_id"), field("client_secret")),
        };
        if id != Some(self.client_id.as_str()) || secret != Some(self.client_secret.as_str()) {
            return error(401, "invalid_client");
        }
        if field("grant_type") != Some("refresh_token") {
            return error(400, "unsupported_grant_type");
        }
        let Some(presented) = field("refresh_token") else {
            return error(400, "invalid_request");
        };
        let now = Instant::now();
        let refresh = if presented == self.current_refresh {
            let next = random_token(64);
            self.previous_refresh = Some((std::mem::replace(&mut self.current_refresh, next), now));
            self.current_refresh.clone()
        } else {
            let in_grace = self
                .previous_refresh
                .as_ref()
                .is_some_and(|(old, at)| old == presented && now.duration_since(*at) < self.grace);
            if !in_grace {
                return error(400, "invalid_grant");
            }
            self.current_refresh.clone()
        };
        let access = random_token(96);
        let expires_utc =
            Utc::now() + chrono::Duration::from_std(self.ttl).unwrap_or(chrono::Duration::zero());
        self.access.insert(
            access.clone(),
            Access {
                expires: now + self.ttl,
                expires_utc,
            },
        );
        // Forget tokens long dead, so a long run does not grow without bound.
        self.access
            .retain(|_, a| now.saturating_duration_since(a.expires) < Duration::from_secs(86_400));
        self.refreshes += 1;
        TokenAnswer {
            status: 200,
            body: json!({
                "access_token": access,
                "refresh_token": refresh,
                "expires_in": self.ttl.as_secs(),
                "token_type": "Bearer",
                "scope": SCOPE,
            }),
        }
    }
}

fn error(status: u16, code: &str) -> TokenAnswer {
    TokenAnswer {
        status,
        body: json!({ "error": code }),
    }
}
