//! The consent step both simulated identity servers share: an authorize page with a
//! consent form, its answer as a plain form POST (so a test can approve or deny over
//! HTTP, as a person would in a browser), and the single-use authorization codes it
//! issues, bound to the client, the redirect URI and the PKCE challenge.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use poem::http::StatusCode;
use poem::Response;
use rand::distributions::Alphanumeric;
use rand::Rng as _;
use sha2::{Digest as _, Sha256};

/// How long an authorization code may wait for its exchange.
const CODE_TTL: Duration = Duration::from_secs(5 * 60);

/// What a code was issued for.
#[derive(Debug, Clone)]
pub(crate) struct Granted {
    pub scope: String,
}

struct Pending {
    client_id: String,
    redirect_uri: String,
    challenge: Option<String>,
    scope: String,
    expires: Instant,
}

/// Why a code exchange was refused, as an OAuth `error` code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    InvalidGrant,
}

#[derive(Default)]
pub(crate) struct Consent {
    codes: Mutex<HashMap<String, Pending>>,
}

pub(crate) fn random_token(len: usize) -> String {
    rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

/// Decodes a query string or a form body (`+` is a space, `%xx` escapes) into pairs.
pub(crate) fn decode_pairs(raw: &str) -> Vec<(String, String)> {
    match reqwest::Url::parse(&format!("http://query.invalid/?{raw}")) {
        Ok(url) => url
            .query_pairs()
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect(),
        Err(_) => Vec::new(),
    }
}

fn field<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn html(status: StatusCode, body: String) -> Response {
    Response::builder()
        .status(status)
        .content_type("text/html; charset=utf-8")
        .body(body)
}

/// The authorize parameters every request must carry.
const CARRIED: [&str; 6] = [
    "client_id",
    "redirect_uri",
    "scope",
    "state",
    "code_challenge",
    "code_challenge_method",
];

impl Consent {
    /// `GET` of the authorize URL: the consent form, or a 400 page when the request
    /// names another app or asks for something other than a code (an identity server
    /// never redirects such a request, since its redirect URI cannot be trusted).
    pub(crate) fn page(
        &self,
        service: &str,
        client_id: &str,
        query: &[(String, String)],
    ) -> Response {
        if let Err(problem) = check_request(client_id, query) {
            return html(
                StatusCode::BAD_REQUEST,
                format!(
                    "<!doctype html><title>{service}</title><p>{}</p>",
                    escape(problem)
                ),
            );
        }
        let hidden: String = CARRIED
            .iter()
            .filter_map(|name| field(query, name).map(|v| (name, v)))
            .map(|(name, value)| {
                format!(
                    r#"<input type="hidden" name="{name}" value="{}">"#,
                    escape(value)
                )
            })
            .collect();
        let scope = field(query, "scope").unwrap_or_default();
        html(
            StatusCode::OK,
            format!(
                r#"<!doctype html><title>{service}: connect an app</title>
<h1>Allow this app to reach your {service} account?</h1>
<p>It asks for: <code>{}</code></p>
<form method="post">{hidden}
<button name="decision" value="allow">Allow access</button>
<button name="decision" value="deny">Cancel</button>
</form>"#,
                escape(scope)
            ),
        )
    }

    /// `POST` of the consent form: back to the app's redirect URI with a code (allowed)
    /// or `error=access_denied` (denied), and the app's `state` either way.
    pub(crate) fn decide(
        &self,
        service: &str,
        client_id: &str,
        form: &[(String, String)],
    ) -> Response {
        if let Err(problem) = check_request(client_id, form) {
            return html(
                StatusCode::BAD_REQUEST,
                format!(
                    "<!doctype html><title>{service}</title><p>{}</p>",
                    escape(problem)
                ),
            );
        }
        let redirect_uri = field(form, "redirect_uri").unwrap_or_default();
        let mut target = match reqwest::Url::parse(redirect_uri) {
            Ok(url) => url,
            Err(_) => {
                return html(
                    StatusCode::BAD_REQUEST,
                    "<p>redirect_uri is not a URL</p>".into(),
                )
            }
        };
        {
            let mut query = target.query_pairs_mut();
            if field(form, "decision") == Some("allow") {
                let code = random_token(40);
                self.codes.lock().unwrap_or_else(|p| p.into_inner()).insert(
                    code.clone(),
                    Pending {
                        client_id: client_id.to_string(),
                        redirect_uri: redirect_uri.to_string(),
                        challenge: field(form, "code_challenge").map(str::to_string),
                        scope: field(form, "scope").unwrap_or_default().to_string(),
                        expires: Instant::now() + CODE_TTL,
                    },
                );
                query.append_pair("code", &code);
            } else {
                query.append_pair("error", "access_denied");
                query.append_pair("error_description", "the user declined");
            }
            if let Some(state) = field(form, "state") {
                query.append_pair("state", state);
            }
        }
        Response::builder()
            .status(StatusCode::SEE_OTHER)
            .header("Location", target.as_str())
            .finish()
    }

    /// Spends `code` (once, whatever the outcome): it must have been issued to this
    /// client for this redirect URI, not be expired, and, when a challenge was sent,
    /// come with the verifier whose S256 digest it was.
    pub(crate) fn redeem(
        &self,
        code: &str,
        client_id: &str,
        redirect_uri: Option<&str>,
        verifier: Option<&str>,
    ) -> Result<Granted, Refusal> {
        let pending = self
            .codes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(code)
            .ok_or(Refusal::InvalidGrant)?;
        if pending.client_id != client_id
            || redirect_uri != Some(pending.redirect_uri.as_str())
            || Instant::now() >= pending.expires
        {
            return Err(Refusal::InvalidGrant);
        }
        if let Some(challenge) = &pending.challenge {
            let verifier = verifier.ok_or(Refusal::InvalidGrant)?;
            if s256(verifier) != *challenge {
                return Err(Refusal::InvalidGrant);
            }
        }
        Ok(Granted {
            scope: pending.scope,
        })
    }
}

/// The PKCE S256 challenge of `verifier` (RFC 7636, section 4.2).
pub fn s256(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

fn check_request(client_id: &str, pairs: &[(String, String)]) -> Result<(), &'static str> {
    if field(pairs, "client_id") != Some(client_id) {
        return Err("unknown client_id: no app is registered with it");
    }
    if let Some(kind) = field(pairs, "response_type") {
        if kind != "code" {
            return Err("response_type must be code");
        }
    }
    let Some(redirect) = field(pairs, "redirect_uri") else {
        return Err("redirect_uri is missing");
    };
    if reqwest::Url::parse(redirect).is_err() {
        return Err("redirect_uri is not a URL");
    }
    match field(pairs, "code_challenge_method") {
        None | Some("S256") => Ok(()),
        Some(_) => Err("code_challenge_method must be S256"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s256_matches_the_rfc_7636_appendix_b_vector() {
        assert_eq!(
            s256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }
}
