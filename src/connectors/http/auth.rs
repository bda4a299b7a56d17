//! Access tokens for a connection: a fixed one (a HubSpot private-app token), or OAuth2
//! with refresh.
//!
//! OAuth refreshes are single-flight: however many workers find the token expired at
//! once, one refresh is made and the others wait for its result. Refresh tokens rotate
//! (Xero spends the old one when the new one is issued), so the new pair is written to
//! the store before the token is handed out, under a store-wide lock, and each refresh
//! first re-reads the store: a restart, or another process, never holds a spent
//! refresh token.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Deserialize;

use crate::connectors::ConnectorError;
use crate::domain::{PairId, System};
use crate::secret::Secret;
use crate::store::{Credential, Store};

#[async_trait]
pub trait TokenSource: Send + Sync {
    /// A token to send as `Authorization: Bearer`.
    async fn bearer(&self) -> Result<Secret, ConnectorError>;

    /// The service refused `token` (401): the next `bearer` refreshes, unless another
    /// caller already replaced it.
    async fn refused(&self, token: &Secret);
}

/// A token that does not expire.
pub struct StaticToken(pub Secret);

#[async_trait]
impl TokenSource for StaticToken {
    async fn bearer(&self) -> Result<Secret, ConnectorError> {
        Ok(self.0.clone())
    }

    async fn refused(&self, _token: &Secret) {}
}

/// How the client proves itself to the token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// `Authorization: Basic base64(client_id:client_secret)` (Xero).
    Basic,
    /// `client_id` and `client_secret` in the form (HubSpot).
    Form,
}

pub struct OAuthSettings {
    pub pair: PairId,
    pub system: System,
    pub token_url: String,
    pub client_id: String,
    pub client_secret: Secret,
    /// The refresh token from settings, used until the store holds a rotated one.
    pub first_refresh_token: Option<Secret>,
    pub client_auth: ClientAuth,
}

#[derive(Clone)]
struct Current {
    access: Secret,
    expires_at: DateTime<Utc>,
}

pub struct OAuthTokens {
    settings: OAuthSettings,
    store: Arc<dyn Store>,
    http: reqwest::Client,
    current: tokio::sync::Mutex<Option<Current>>,
    refreshes: AtomicU64,
}

/// The start of the error when the token endpoint cannot be reached, and a phrase of
/// the one when no refresh token is known: a probe tells them from an outage.
pub const UNREACHABLE: &str = "token endpoint unreachable";
pub const NO_REFRESH_TOKEN: &str = "no refresh token";

/// A token this close to its expiry is refreshed before use.
const EARLY: Duration = Duration::from_secs(60);

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    refresh_token: Option<String>,
    expires_in: Option<i64>,
}

impl OAuthTokens {
    pub fn new(settings: OAuthSettings, store: Arc<dyn Store>, http: reqwest::Client) -> Self {
        Self {
            settings,
            store,
            http,
            current: tokio::sync::Mutex::new(None),
            refreshes: AtomicU64::new(0),
        }
    }

    /// Refreshes made by this process.
    pub fn refreshes(&self) -> u64 {
        self.refreshes.load(Ordering::Relaxed)
    }

    fn fresh(current: &Current) -> bool {
        current.expires_at - chrono::Duration::from_std(EARLY).unwrap_or_default() > Utc::now()
    }

    fn error(&self, message: String) -> ConnectorError {
        ConnectorError::Connection {
            system: self.settings.system,
            message,
        }
    }

    /// Under the store lock: take what another process stored if it is fresh, else
    /// spend the stored refresh token and store the new pair before using it.
    async fn refresh(&self, refused: Option<&Secret>) -> Result<Current, ConnectorError> {
        let s = &self.settings;
        let key = format!("credential/{}/{}", s.pair, s.system);
        let lock = self
            .store
            .lock_entity(&key)
            .await
            .map_err(|e| self.error(format!("cannot lock the credential: {e}")))?;
        let result = self.refresh_locked(refused).await;
        if let Err(err) = lock.release().await {
            tracing::warn!(error = %err, "cannot release the credential lock");
        }
        result
    }

    async fn refresh_locked(&self, refused: Option<&Secret>) -> Result<Current, ConnectorError> {
        let s = &self.settings;
        let stored = self
            .store
            .credential(&s.pair, s.system)
            .await
            .map_err(|e| self.error(format!("cannot read the credential: {e}")))?;
        if let Some(Credential {
            access_token: Some(access),
            expires_at: Some(expires_at),
            ..
        }) = &stored
        {
            let candidate = Current {
                access: access.clone(),
                expires_at: *expires_at,
            };
            let is_refused = refused.is_some_and(|r| r.expose() == access.expose());
            if Self::fresh(&candidate) && !is_refused {
                return Ok(candidate);
            }
        }
        let refresh_token = stored
            .as_ref()
            .and_then(|c| c.refresh_token.clone())
            .or_else(|| s.first_refresh_token.clone())
            .ok_or_else(|| {
                self.error(format!(
                    "{NO_REFRESH_TOKEN} for pair `{}` {} (TANDEM_PAIRS__{}__{}__REFRESH_TOKEN)",
                    s.pair,
                    s.system,
                    s.pair.as_str().to_uppercase(),
                    s.system.as_str().to_uppercase()
                ))
            })?;
        let mut form = vec![
            ("grant_type", "refresh_token".to_string()),
            ("refresh_token", refresh_token.expose().to_string()),
        ];
        let mut request = self.http.post(&s.token_url);
        match s.client_auth {
            ClientAuth::Basic => {
                request =
                    request.basic_auth(&s.client_id, Some(s.client_secret.expose().to_string()))
            }
            ClientAuth::Form => {
                form.push(("client_id", s.client_id.clone()));
                form.push(("client_secret", s.client_secret.expose().to_string()));
            }
        }
        let answer = request.form(&form).send().await.map_err(|e| {
            if e.is_timeout() {
                ConnectorError::Timeout { system: s.system }
            } else {
                self.error(format!("{UNREACHABLE}: {}", e.without_url()))
            }
        })?;
        let status = answer.status();
        if !status.is_success() {
            // The body names the OAuth error (invalid_grant, …) and holds no secret.
            let body = answer.text().await.unwrap_or_default();
            let detail: String = body.chars().take(300).collect();
            return Err(ConnectorError::Rejected {
                system: s.system,
                status: status.as_u16(),
                message: format!("the token endpoint refused the refresh: {detail}"),
                exchange: Default::default(),
            });
        }
        let token: TokenAnswer = answer
            .json()
            .await
            .map_err(|e| self.error(format!("unreadable token answer: {e}")))?;
        let now = Utc::now();
        let current = Current {
            access: Secret::new(token.access_token),
            expires_at: now + chrono::Duration::seconds(token.expires_in.unwrap_or(1800)),
        };
        let rotated = token.refresh_token.map(Secret::new);
        let credential = Credential {
            access_token: Some(current.access.clone()),
            refresh_token: rotated.clone().or(Some(refresh_token)),
            expires_at: Some(current.expires_at),
            rotated_at: rotated.map(|_| now),
        };
        self.store
            .save_credential(&s.pair, s.system, &credential)
            .await
            .map_err(|e| self.error(format!("cannot save the rotated credential: {e}")))?;
        self.refreshes.fetch_add(1, Ordering::Relaxed);
        tracing::info!(pair = %s.pair, system = %s.system, "access token refreshed");
        Ok(current)
    }
}

#[async_trait]
impl TokenSource for OAuthTokens {
    async fn bearer(&self) -> Result<Secret, ConnectorError> {
        let mut current = self.current.lock().await;
        if let Some(token) = current.as_ref().filter(|c| Self::fresh(c)) {
            return Ok(token.access.clone());
        }
        let token = self.refresh(None).await?;
        *current = Some(token.clone());
        Ok(token.access)
    }

    async fn refused(&self, token: &Secret) {
        let mut current = self.current.lock().await;
        if current
            .as_ref()
            .is_some_and(|c| c.access.expose() != token.expose())
        {
            return; // another caller already replaced it
        }
        match self.refresh(Some(token)).await {
            Ok(fresh) => *current = Some(fresh),
            Err(err) => {
                tracing::warn!(error = %err, "token refresh after a 401 failed");
                *current = None;
            }
        }
    }
}
