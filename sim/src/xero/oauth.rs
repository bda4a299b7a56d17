//! Xero's OAuth 2.0 identity server: the consent step, the token endpoint
//! (`POST /connect/token`: authorization code with PKCE, and refresh), revocation, and
//! the access tokens it issues. Refresh tokens rotate: each grant answers a new
//! one. As Xero does, the token just replaced keeps working (answering the same new
//! refresh token) until the new one is used or the grace period ends, so a client that
//! crashed before saving the new token can recover; after that it is `invalid_grant`.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::dates;
use crate::consent::{random_token, Consent, Refusal};

/// How long a replaced refresh token stays usable, as Xero documents.
pub(crate) const DEFAULT_REFRESH_GRACE: Duration = Duration::from_secs(30 * 60);

pub(crate) const SCOPE: &str =
    "openid profile email accounting.transactions accounting.contacts offline_access";

struct Access {
    expires: Instant,
    expires_utc: DateTime<Utc>,
    /// The grant it was issued under: revoking the grant ends it too.
    grant: u64,
}

/// The token endpoint's answer: status and JSON body.
pub(crate) struct TokenAnswer {
    pub status: u16,
    pub body: Value,
}

/// Why an access token was refused, in the words of Xero's 401 `Detail`.
pub(crate) struct AuthProblem(pub String);

/// One consent (or the configured first refresh token): its refresh token rotates.
struct Grant {
    id: u64,
    current_refresh: String,
    /// The refresh token `current_refresh` replaced, and when.
    previous_refresh: Option<(String, Instant)>,
    scope: String,
}

pub(crate) struct Tokens {
    client_id: String,
    client_secret: String,
    ttl: Duration,
    grace: Duration,
    grants: Vec<Grant>,
    next_grant: u64,
    access: HashMap<String, Access>,
    refreshes: usize,
    pub(crate) consent: Consent,
    /// The `id` of each (grant, organisation) connection: new with each consent.
    connection_ids: HashMap<(u64, String), String>,
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
            grants: vec![Grant {
                id: 0,
                current_refresh: refresh_token.to_string(),
                previous_refresh: None,
                scope: SCOPE.to_string(),
            }],
            next_grant: 1,
            access: HashMap::new(),
            refreshes: 0,
            consent: Consent::default(),
            connection_ids: HashMap::new(),
        }
    }

    pub(crate) fn set_grace(&mut self, grace: Duration) {
        self.grace = grace;
    }

    /// Every access and refresh token issued so far (tests search logs for them).
    pub(crate) fn issued(&self) -> Vec<String> {
        let mut all: Vec<String> = self.access.keys().cloned().collect();
        for grant in &self.grants {
            all.push(grant.current_refresh.clone());
            all.extend(grant.previous_refresh.iter().map(|(t, _)| t.clone()));
        }
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

    /// The user removes the app's access in Xero: every grant's refresh tokens and
    /// access tokens stop working at once.
    pub(crate) fn revoke_all(&mut self) {
        self.grants.clear();
        self.access.clear();
    }

    /// The grant of a valid bearer token.
    pub(crate) fn grant_of(&self, authorization: Option<&str>) -> Result<u64, AuthProblem> {
        self.check(authorization)?;
        let token = authorization
            .and_then(|h| h.split_once(' ').map(|(_, t)| t.trim()))
            .unwrap_or_default();
        self.access
            .get(token)
            .map(|a| a.grant)
            .ok_or_else(|| AuthProblem("AuthenticationUnsuccessful".into()))
    }

    /// The connection id of `tenant` under `grant`: the same for the grant's life, new
    /// after a reconnect (as Xero's are), while the tenant id stays.
    pub(crate) fn connection_id(&mut self, grant: u64, tenant: &str) -> String {
        self.connection_ids
            .entry((grant, tenant.to_string()))
            .or_insert_with(|| uuid::Uuid::new_v4().to_string())
            .clone()
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

    /// Whether the client authenticated itself (Basic, or the form).
    fn client_ok(&self, authorization: Option<&str>, form: &[(String, String)]) -> bool {
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
        id == Some(self.client_id.as_str()) && secret == Some(self.client_secret.as_str())
    }

    /// Answers one call of the token endpoint: the authorization-code grant (with PKCE
    /// when the authorize request carried a challenge) or the refresh-token grant.
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
        if !self.client_ok(authorization, form) {
            return error(401, "invalid_client");
        }
        let now = Instant::now();
        let (grant_id, refresh) = match field("grant_type") {
            Some("authorization_code") => {
                let Some(code) = field("code") else {
                    return error(400, "invalid_request");
                };
                let granted = match self.consent.redeem(
                    code,
                    &self.client_id,
                    field("redirect_uri"),
                    field("code_verifier"),
                ) {
                    Ok(granted) => granted,
                    Err(Refusal::InvalidGrant) => return error(400, "invalid_grant"),
                };
                let id = self.next_grant;
                self.next_grant += 1;
                let refresh = random_token(64);
                self.grants.push(Grant {
                    id,
                    current_refresh: refresh.clone(),
                    previous_refresh: None,
                    scope: granted.scope,
                });
                (id, refresh)
            }
            Some("refresh_token") => {
                let Some(presented) = field("refresh_token") else {
                    return error(400, "invalid_request");
                };
                let grace = self.grace;
                let Some(grant) = self.grants.iter_mut().find(|g| {
                    g.current_refresh == presented
                        || g.previous_refresh.as_ref().is_some_and(|(old, at)| {
                            old == presented && now.duration_since(*at) < grace
                        })
                }) else {
                    return error(400, "invalid_grant");
                };
                if grant.current_refresh == presented {
                    let next = random_token(64);
                    grant.previous_refresh =
                        Some((std::mem::replace(&mut grant.current_refresh, next), now));
                }
                (grant.id, grant.current_refresh.clone())
            }
            _ => return error(400, "unsupported_grant_type"),
        };
        let scope = self
            .grants
            .iter()
            .find(|g| g.id == grant_id)
            .map(|g| g.scope.clone())
            .unwrap_or_default();
        let access = random_token(96);
        let expires_utc =
            Utc::now() + chrono::Duration::from_std(self.ttl).unwrap_or(chrono::Duration::zero());
        self.access.insert(
            access.clone(),
            Access {
                expires: now + self.ttl,
                expires_utc,
                grant: grant_id,
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
                "scope": scope,
            }),
        }
    }

    /// `POST /connect/revocation`: revokes the refresh token presented, which ends its
    /// grant and every access token issued under it. Answers 200 for an unknown token
    /// too (RFC 7009, section 2.2).
    pub(crate) fn revoke(
        &mut self,
        authorization: Option<&str>,
        form: &[(String, String)],
    ) -> TokenAnswer {
        if !self.client_ok(authorization, form) {
            return error(401, "invalid_client");
        }
        let Some(token) = form.iter().find(|(k, _)| k == "token").map(|(_, v)| v) else {
            return error(400, "invalid_request");
        };
        let revoked: Vec<u64> = self
            .grants
            .iter()
            .filter(|g| {
                &g.current_refresh == token
                    || g.previous_refresh
                        .as_ref()
                        .is_some_and(|(old, _)| old == token)
            })
            .map(|g| g.id)
            .collect();
        self.grants.retain(|g| !revoked.contains(&g.id));
        self.access.retain(|_, a| !revoked.contains(&a.grant));
        TokenAnswer {
            status: 200,
            body: json!({}),
        }
    }
}

fn error(status: u16, code: &str) -> TokenAnswer {
    TokenAnswer {
        status,
        body: json!({ "error": code }),
    }
}
