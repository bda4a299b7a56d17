//! The OAuth 2 authorization-code flow with PKCE (RFC 7636, S256) against HubSpot and
//! Xero: the authorize URL, the code exchange, and what each service says about the
//! grant (HubSpot's token metadata: the hub id; Xero's `/connections`: the
//! organisations it reaches).
//!
//! Written against reqwest directly rather than the `oauth2` crate: its reqwest (0.12)
//! fits, but the two calls after the exchange (token metadata, `/connections`) and the
//! refresh (in `connectors::http::auth`, with its single-flight and rotation rules) are
//! not the crate's, so it would cover the three lines of the exchange itself.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rand::RngCore as _;
use serde::Deserialize;
use sha2::{Digest as _, Sha256};

use crate::config::AppSettings;
use crate::secret::Secret;

/// Which service an account is with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    Hubspot,
    Xero,
}

impl Service {
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "hubspot" => Some(Self::Hubspot),
            "xero" => Some(Self::Xero),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hubspot => "hubspot",
            Self::Xero => "xero",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Hubspot => "HubSpot",
            Self::Xero => "Xero",
        }
    }

    /// The scopes asked for by default: what the connectors read and write.
    pub fn default_scopes(self) -> &'static str {
        match self {
            // `oauth` is required of every HubSpot app; contacts or companies are the
            // customers, invoices are read and written.
            Self::Hubspot => {
                "oauth crm.objects.contacts.read crm.objects.contacts.write \
                 crm.objects.companies.read crm.objects.companies.write \
                 crm.objects.invoices.read crm.objects.invoices.write"
            }
            // `offline_access` gives the refresh token.
            Self::Xero => {
                "openid profile email accounting.contacts accounting.transactions offline_access"
            }
        }
    }
}

/// The endpoints of one app, with the services' own as defaults.
#[derive(Debug, Clone)]
pub struct App {
    pub service: Service,
    pub client_id: String,
    pub client_secret: Secret,
    pub authorize_url: String,
    pub token_url: String,
    pub api_base_url: String,
    /// Xero: `/connections`; HubSpot: token metadata.
    pub grant_info_url: String,
    /// Xero: the revocation endpoint.
    pub revocation_url: Option<String>,
    pub scopes: String,
    pub webhook_key: Option<Secret>,
}

impl App {
    pub fn from_settings(service: Service, settings: &AppSettings) -> Self {
        let (authorize, token, api, info) = match service {
            Service::Hubspot => (
                "https://app.hubspot.com/oauth/authorize",
                "https://api.hubapi.com/oauth/v3/token",
                "https://api.hubapi.com",
                settings
                    .introspect_url
                    .as_deref()
                    .unwrap_or("https://api.hubapi.com/oauth/v3/token/introspect"),
            ),
            Service::Xero => (
                "https://login.xero.com/identity/connect/authorize",
                crate::connectors::xero::TOKEN_URL,
                "https://api.xero.com/api.xro/2.0",
                settings
                    .connections_url
                    .as_deref()
                    .unwrap_or("https://api.xero.com/connections"),
            ),
        };
        Self {
            service,
            client_id: settings.client_id.clone(),
            client_secret: settings.client_secret.clone(),
            authorize_url: settings.authorize_url.clone().unwrap_or(authorize.into()),
            token_url: settings.token_url.clone().unwrap_or(token.into()),
            api_base_url: settings.api_base_url.clone().unwrap_or(api.into()),
            grant_info_url: info.to_string(),
            revocation_url: match service {
                Service::Xero => Some(
                    settings
                        .revocation_url
                        .clone()
                        .unwrap_or_else(|| "https://identity.xero.com/connect/revocation".into()),
                ),
                Service::Hubspot => settings.revocation_url.clone(),
            },
            scopes: settings.scopes.clone().unwrap_or_else(|| {
                service
                    .default_scopes()
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ")
            }),
            webhook_key: settings.webhook_key.clone(),
        }
    }

    /// The URL the person is sent to.
    pub fn authorize_url(&self, callback: &str, state: &str, challenge: &str) -> String {
        let mut url = match reqwest::Url::parse(&self.authorize_url) {
            Ok(url) => url,
            Err(_) => return self.authorize_url.clone(),
        };
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", &self.client_id)
            .append_pair("redirect_uri", callback)
            .append_pair("scope", &self.scopes)
            .append_pair("state", state)
            .append_pair("code_challenge", challenge)
            .append_pair("code_challenge_method", "S256");
        url.to_string()
    }
}

/// 32 random bytes, base64url: a `state`, or a PKCE verifier (43 characters).
pub fn random_key() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The S256 challenge of a PKCE verifier.
pub fn challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// Tokens from a code exchange.
pub struct Grant {
    pub access: Secret,
    pub refresh: Secret,
    pub expires_in: i64,
    pub scope: Option<String>,
}

/// A step of the flow the service refused or could not be asked; says which.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct FlowError(pub String);

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    refresh_token: Option<String>,
    expires_in: Option<i64>,
    scope: Option<String>,
}

/// The OAuth error code of a refusal body, never the whole body (it could echo input).
fn oauth_error(body: &str) -> String {
    let value: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
    value
        .get("error")
        .or_else(|| value.get("status"))
        .and_then(|v| v.as_str())
        .map(|code| {
            code.chars()
                .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
                .take(60)
                .collect()
        })
        .unwrap_or_else(|| "no error code".into())
}

/// Trades the code (and its verifier) for tokens at the app's token endpoint.
pub async fn exchange(
    http: &reqwest::Client,
    app: &App,
    callback: &str,
    code: &str,
    verifier: &str,
) -> Result<Grant, FlowError> {
    let mut form = vec![
        ("grant_type", "authorization_code".to_string()),
        ("code", code.to_string()),
        ("redirect_uri", callback.to_string()),
        ("code_verifier", verifier.to_string()),
    ];
    let mut request = http.post(&app.token_url);
    match app.service {
        // Xero takes the client's credentials as Basic; HubSpot's v3 endpoint in the body.
        Service::Xero => {
            request = request.basic_auth(&app.client_id, Some(app.client_secret.expose()))
        }
        Service::Hubspot => {
            form.push(("client_id", app.client_id.clone()));
            form.push(("client_secret", app.client_secret.expose().to_string()));
        }
    }
    let name = app.service.name();
    let answer = request.form(&form).send().await.map_err(|e| {
        FlowError(format!(
            "{name}'s token endpoint cannot be reached: {}",
            e.without_url()
        ))
    })?;
    let status = answer.status();
    if !status.is_success() {
        let body = answer.text().await.unwrap_or_default();
        return Err(FlowError(format!(
            "{name}'s token endpoint refused the code ({}, {}): start the connection again",
            status.as_u16(),
            oauth_error(&body)
        )));
    }
    let token: TokenAnswer = answer
        .json()
        .await
        .map_err(|e| FlowError(format!("{name}'s token answer is not understood: {e}")))?;
    let refresh = token
        .refresh_token
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            FlowError(format!(
                "{name} gave no refresh token: the app must ask for offline access ({})",
                match app.service {
                    Service::Xero => "the `offline_access` scope",
                    Service::Hubspot => "HubSpot apps always get one; check the token URL",
                }
            ))
        })?;
    Ok(Grant {
        access: Secret::new(token.access_token),
        refresh: Secret::new(refresh),
        expires_in: token.expires_in.unwrap_or(1800),
        scope: token.scope,
    })
}

/// Revokes a refresh token (RFC 7009) at Xero's revocation endpoint: the grant and its
/// access tokens stop working.
pub async fn revoke(http: &reqwest::Client, app: &App, refresh: &Secret) -> Result<(), FlowError> {
    let Some(url) = &app.revocation_url else {
        return Ok(());
    };
    let answer = http
        .post(url)
        .basic_auth(&app.client_id, Some(app.client_secret.expose()))
        .form(&[("token", refresh.expose())])
        .send()
        .await
        .map_err(|e| {
            FlowError(format!(
                "{} cannot be reached: {}",
                app.service.name(),
                e.without_url()
            ))
        })?;
    if answer.status().is_success() {
        Ok(())
    } else {
        Err(FlowError(format!(
            "{} refused the revocation ({})",
            app.service.name(),
            answer.status().as_u16()
        )))
    }
}

/// An organisation a Xero grant reaches.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Organisation {
    pub id: String,
    pub tenant_id: String,
    pub tenant_name: Option<String>,
    pub tenant_type: Option<String>,
}

/// Xero's `GET /connections`: the organisations (tenant type `ORGANISATION`) the grant
/// reaches.
pub async fn organisations(
    http: &reqwest::Client,
    app: &App,
    access: &Secret,
) -> Result<Vec<Organisation>, FlowError> {
    let answer = http
        .get(&app.grant_info_url)
        .bearer_auth(access.expose())
        .send()
        .await
        .map_err(|e| {
            FlowError(format!(
                "Xero's /connections cannot be reached: {}",
                e.without_url()
            ))
        })?;
    if !answer.status().is_success() {
        return Err(FlowError(format!(
            "Xero's /connections answered {}",
            answer.status().as_u16()
        )));
    }
    let all: Vec<Organisation> = answer
        .json()
        .await
        .map_err(|e| FlowError(format!("Xero's /connections answer is not understood: {e}")))?;
    Ok(all
        .into_iter()
        .filter(|o| o.tenant_type.as_deref().is_none_or(|t| t == "ORGANISATION"))
        .collect())
}

/// The HubSpot account a token reaches, from its metadata.
pub struct Portal {
    pub hub_id: u64,
    pub scopes: Vec<String>,
}

#[derive(Deserialize)]
struct Metadata {
    #[serde(default)]
    active: bool,
    hub_id: Option<u64>,
    #[serde(default)]
    scopes: Vec<String>,
}

/// HubSpot's token metadata (`POST /oauth/v3/token/introspect`) for `access`.
pub async fn portal(
    http: &reqwest::Client,
    app: &App,
    access: &Secret,
) -> Result<Portal, FlowError> {
    let answer = http
        .post(&app.grant_info_url)
        .form(&[
            ("client_id", app.client_id.as_str()),
            ("client_secret", app.client_secret.expose()),
            ("token", access.expose()),
            ("token_type_hint", "access_token"),
        ])
        .send()
        .await
        .map_err(|e| {
            FlowError(format!(
                "HubSpot's token metadata cannot be reached: {}",
                e.without_url()
            ))
        })?;
    if !answer.status().is_success() {
        return Err(FlowError(format!(
            "HubSpot's token metadata answered {}",
            answer.status().as_u16()
        )));
    }
    let metadata: Metadata = answer
        .json()
        .await
        .map_err(|e| FlowError(format!("HubSpot's token metadata is not understood: {e}")))?;
    match (metadata.active, metadata.hub_id) {
        (true, Some(hub_id)) => Ok(Portal {
            hub_id,
            scopes: metadata.scopes,
        }),
        _ => Err(FlowError(
            "HubSpot says the new token is not active or names no hub: start the connection again"
                .into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_challenge_is_the_rfc_7636_appendix_b_one() {
        assert_eq!(
            challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
        let key = random_key();
        assert_eq!(key.len(), 43);
        assert_ne!(key, random_key());
    }

    #[test]
    fn only_the_error_code_of_a_refusal_is_kept() {
        assert_eq!(
            oauth_error(r#"{"error":"invalid_grant","error_description":"code abc"}"#),
            "invalid_grant"
        );
        assert_eq!(oauth_error("<html>"), "no error code");
    }
}
