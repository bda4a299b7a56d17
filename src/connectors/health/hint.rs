//! What a person should do about a connection that is out of service: the setting at
//! fault, what happened, and a hint, from the probe that found it.

use super::tracker::{ConnectionState, ProbeFailure, ProbeStep};

/// How a connection authenticates, as its settings say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthForm {
    /// A fixed token (`access_token`).
    AccessToken,
    /// OAuth2 refresh (`client_id`, `client_secret`, `refresh_token`, `token_url`).
    OAuth,
    /// No credentials of its own (the in-memory system).
    None,
}

/// The kind of system behind a connection, for messages and hints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SystemKind {
    HubSpot,
    Xero,
    InMemory,
}

impl SystemKind {
    /// As in the settings (`kind = "xero"`).
    pub fn as_str(self) -> &'static str {
        match self {
            SystemKind::HubSpot => "hubspot",
            SystemKind::Xero => "xero",
            SystemKind::InMemory => "memory",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            SystemKind::HubSpot => "HubSpot",
            SystemKind::Xero => "Xero",
            SystemKind::InMemory => "the in-memory system",
        }
    }
}

/// Xero's API lives under this path of its host.
const XERO_API_PATH: &str = "/api.xro/2.0";

/// The setting at fault (a key of the connection's settings, when one is), what
/// happened, and what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Advice {
    pub setting: Option<&'static str>,
    pub problem: String,
    pub hint: String,
}

impl Advice {
    /// `pairs.acme.finance.base_url: Xero answered 404 at …: the base URL should …`.
    pub fn line(&self, prefix: &str) -> String {
        match self.setting {
            Some(setting) => format!("{prefix}.{setting}: {}: {}", self.problem, self.hint),
            None => format!("{prefix}: {}: {}", self.problem, self.hint),
        }
    }
}

/// Advice for a probe of `url` that failed with `failure`.
pub fn advise(
    kind: SystemKind,
    auth: AuthForm,
    base_url: &str,
    url: &str,
    failure: &ProbeFailure,
) -> Advice {
    let name = kind.name();
    let answered = |status: u16| format!("{name} answered {status} at {url}");
    let credential = match auth {
        AuthForm::AccessToken => Some("access_token"),
        AuthForm::OAuth => Some("refresh_token"),
        AuthForm::None => None,
    };
    match (failure.state, failure.step, failure.status) {
        (ConnectionState::Misconfigured, ProbeStep::Token, _) => Advice {
            setting: Some("token_url"),
            problem: format!("the token endpoint cannot be reached: {}", failure.error),
            hint: "check token_url (or leave it out to use the service's own)".into(),
        },
        (ConnectionState::Misconfigured, ProbeStep::Call, Some(404)) => Advice {
            setting: Some("base_url"),
            problem: answered(404),
            hint: base_url_hint(kind, base_url),
        },
        (ConnectionState::Misconfigured, ProbeStep::Call, Some(status)) => Advice {
            setting: Some("base_url"),
            problem: format!("{}: {}", answered(status), failure.error),
            hint: base_url_hint(kind, base_url),
        },
        (ConnectionState::Misconfigured, ProbeStep::Call, None) => Advice {
            setting: Some("base_url"),
            problem: format!("nothing answers at {base_url}: {}", failure.error),
            hint: "check the base URL's host and port".into(),
        },
        (ConnectionState::Unauthorised, ProbeStep::Token, _) => {
            // OAuth's `invalid_client` (Xero), HubSpot's `BAD_CLIENT_ID`.
            let error = failure.error.to_ascii_lowercase();
            let client = error.contains("invalid_client") || error.contains("bad_client");
            let grant = error.contains("invalid_grant") || error.contains("refresh_token");
            Advice {
                setting: Some(if client {
                    "client_secret"
                } else {
                    "refresh_token"
                }),
                problem: failure.error.clone(),
                hint: if client {
                    "check client_id and client_secret against the app's".into()
                } else if grant {
                    "the refresh token was spent or revoked: authorise the app again and set \
                     the new refresh_token"
                        .into()
                } else {
                    "check client_id, client_secret and refresh_token".into()
                },
            }
        }
        (ConnectionState::Unauthorised, ProbeStep::Call, Some(403)) if kind == SystemKind::Xero => {
            Advice {
                setting: Some("tenant_id"),
                problem: format!("{}: {}", answered(403), failure.error),
                hint: "check tenant_id, and that the app is connected to that organisation".into(),
            }
        }
        (ConnectionState::Unauthorised, ProbeStep::Call, Some(403)) => Advice {
            setting: credential,
            problem: format!("{}: {}", answered(403), failure.error),
            hint: "the token lacks a scope the connection needs: grant it to the app".into(),
        },
        (ConnectionState::Unauthorised, _, status) => Advice {
            setting: credential,
            problem: match status {
                Some(status) => format!("{}: {}", answered(status), failure.error),
                None => failure.error.clone(),
            },
            hint: match auth {
                AuthForm::OAuth => "the app may have been disconnected: authorise it again".into(),
                _ => "issue a new access token".into(),
            },
        },
        (_, _, status) => Advice {
            setting: None,
            problem: match status {
                Some(status) => answered(status),
                None => format!("{name} did not answer at {url}: {}", failure.error),
            },
            hint: format!("{name} is unavailable; calls wait and it is probed until it answers"),
        },
    }
}

fn base_url_hint(kind: SystemKind, base_url: &str) -> String {
    let base = base_url.trim_end_matches('/');
    match kind {
        SystemKind::Xero if !base.ends_with(XERO_API_PATH) => format!(
            "the base URL should end in {XERO_API_PATH} (https://api.xero.com{XERO_API_PATH})"
        ),
        SystemKind::HubSpot
            if reqwest::Url::parse(base).is_ok_and(|u| !u.path().trim_matches('/').is_empty()) =>
        {
            "the base URL should be the API's root, with no path (https://api.hubapi.com)".into()
        }
        _ => "check the base URL".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(state: ConnectionState, step: ProbeStep, status: Option<u16>) -> ProbeFailure {
        ProbeFailure {
            state,
            step,
            status,
            error: "detail".into(),
        }
    }

    #[test]
    fn a_xero_base_url_without_its_api_path_is_named_with_the_fix() {
        let advice = advise(
            SystemKind::Xero,
            AuthForm::OAuth,
            "https://api.xero.com",
            "https://api.xero.com/Organisation",
            &failure(ConnectionState::Misconfigured, ProbeStep::Call, Some(404)),
        );
        assert_eq!(
            advice.line("pairs.acme.finance"),
            "pairs.acme.finance.base_url: Xero answered 404 at https://api.xero.com/Organisation: \
             the base URL should end in /api.xro/2.0 (https://api.xero.com/api.xro/2.0)"
        );
    }

    #[test]
    fn refusals_name_the_credential_that_was_refused() {
        let xero_403 = advise(
            SystemKind::Xero,
            AuthForm::OAuth,
            "https://api.xero.com/api.xro/2.0",
            "https://api.xero.com/api.xro/2.0/Organisation",
            &failure(ConnectionState::Unauthorised, ProbeStep::Call, Some(403)),
        );
        assert_eq!(xero_403.setting, Some("tenant_id"));
        let hubspot_401 = advise(
            SystemKind::HubSpot,
            AuthForm::AccessToken,
            "https://api.hubapi.com",
            "https://api.hubapi.com/crm/v3/objects/contacts",
            &failure(ConnectionState::Unauthorised, ProbeStep::Call, Some(401)),
        );
        assert_eq!(hubspot_401.setting, Some("access_token"));
        let spent = advise(
            SystemKind::Xero,
            AuthForm::OAuth,
            "https://api.xero.com/api.xro/2.0",
            "https://api.xero.com/api.xro/2.0/Organisation",
            &failure(ConnectionState::Unauthorised, ProbeStep::Token, Some(400)),
        );
        assert_eq!(spent.setting, Some("refresh_token"));
    }

    #[test]
    fn an_outage_names_no_setting() {
        let advice = advise(
            SystemKind::HubSpot,
            AuthForm::OAuth,
            "https://api.hubapi.com",
            "https://api.hubapi.com/crm/v3/objects/contacts",
            &failure(ConnectionState::Down, ProbeStep::Call, Some(503)),
        );
        assert_eq!(advice.setting, None);
        assert!(
            advice.problem.contains("HubSpot answered 503"),
            "{advice:?}"
        );
    }
}
