//! What a failed call means: the line a person reads, how the connection's health
//! counts it, and what a probe learns from it (an outage, refused credentials, or a
//! wrong base URL).

use super::auth;
use super::client::ApiRequest;
use crate::connectors::health::{CallOutcome, ConnectionState, ProbeFailure, ProbeStep};
use crate::connectors::ConnectorError;

/// A call that came to nothing: the error, and whether no connection could be made
/// at all (nothing listening at the base URL, a name that does not resolve), which a
/// probe reads as a wrong base URL rather than an outage.
pub(super) struct Failed {
    pub error: ConnectorError,
    pub unreachable: bool,
}

impl From<ConnectorError> for Failed {
    fn from(error: ConnectorError) -> Self {
        Self {
            error,
            unreachable: false,
        }
    }
}

/// A transport error with its causes ("error sending request: … Connection refused"),
/// without the URL (which may carry a query a person should not need to read).
pub(super) fn describe_transport(err: reqwest::Error) -> String {
    use std::error::Error as _;
    let err = err.without_url();
    let mut message = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !message.contains(&text) {
            message = format!("{message}: {text}");
        }
        source = cause.source();
    }
    message
}

/// How a failure to get a token counts: refused credentials ask for a probe, an
/// identity service that does not answer counts as unavailable.
pub(super) fn token_outcome(err: &ConnectorError) -> CallOutcome {
    match token_failure(err.clone()).state {
        ConnectionState::Unauthorised => CallOutcome::Unauthorised,
        _ => CallOutcome::Unavailable,
    }
}

/// What a probe learns from a failure to get a token.
pub(super) fn token_failure(err: ConnectorError) -> ProbeFailure {
    let (state, status) = match &err {
        ConnectorError::Rejected { status, .. } => (ConnectionState::Unauthorised, Some(*status)),
        ConnectorError::Connection { message, .. } if message.contains(auth::NO_REFRESH_TOKEN) => {
            (ConnectionState::Unauthorised, None)
        }
        ConnectorError::Connection { message, .. } if message.starts_with(auth::UNREACHABLE) => {
            (ConnectionState::Misconfigured, None)
        }
        _ => (ConnectionState::Down, None),
    };
    let error = match err {
        ConnectorError::Rejected { message, .. } | ConnectorError::Connection { message, .. } => {
            message
        }
        other => other.to_string(),
    };
    ProbeFailure {
        state,
        step: ProbeStep::Token,
        status,
        error,
    }
}

/// A failed call in a line a person reads: `HTTP 503 from GET /Contacts`.
pub(super) fn describe_failure(error: &ConnectorError, request: &ApiRequest) -> String {
    let call = format!("{} {}", request.method, request.path);
    match error {
        ConnectorError::Unavailable { status, .. } => format!("HTTP {status} from {call}"),
        ConnectorError::Rejected {
            status, message, ..
        } if !message.starts_with("HTTP ") => format!("HTTP {status} from {call}: {message}"),
        ConnectorError::Rejected { message, .. } => message.clone(),
        ConnectorError::Timeout { .. } => format!("no answer within the timeout to {call}"),
        ConnectorError::Connection { message, .. } => format!("{message} ({call})"),
        other => other.to_string(),
    }
}

/// What a probe learns from its call's failure.
pub(super) fn call_failure(failed: &Failed, request: &ApiRequest) -> ProbeFailure {
    let (state, status) = match &failed.error {
        ConnectorError::Rejected {
            status: status @ (401 | 403),
            ..
        } => (ConnectionState::Unauthorised, Some(*status)),
        // A 404 (or another refusal) of a known endpoint: the base URL is wrong.
        ConnectorError::Rejected { status, .. } => (ConnectionState::Misconfigured, Some(*status)),
        ConnectorError::Unavailable { status, .. } => (ConnectionState::Down, Some(*status)),
        ConnectorError::Connection { .. } if failed.unreachable => {
            (ConnectionState::Misconfigured, None)
        }
        _ => (ConnectionState::Down, None),
    };
    ProbeFailure {
        state,
        step: ProbeStep::Call,
        status,
        error: describe_failure(&failed.error, request),
    }
}

#[cfg(test)]
mod tests {
    use reqwest::Method;

    use super::*;
    use crate::connectors::Exchange;
    use crate::domain::System;

    fn rejected(status: u16) -> Failed {
        Failed::from(ConnectorError::Rejected {
            system: System::Finance,
            status,
            message: format!("HTTP {status} from GET /Organisation"),
            exchange: Exchange::default(),
        })
    }

    #[test]
    fn a_probe_tells_a_wrong_base_url_refused_credentials_and_an_outage_apart() {
        let probe = ApiRequest::new(Method::GET, "/Organisation");
        let state = |failed: Failed| call_failure(&failed, &probe).state;
        assert_eq!(state(rejected(404)), ConnectionState::Misconfigured);
        assert_eq!(state(rejected(401)), ConnectionState::Unauthorised);
        assert_eq!(state(rejected(403)), ConnectionState::Unauthorised);
        let unavailable = Failed::from(ConnectorError::Unavailable {
            system: System::Finance,
            status: 503,
            exchange: Exchange::default(),
        });
        assert_eq!(
            call_failure(&unavailable, &probe),
            ProbeFailure {
                state: ConnectionState::Down,
                step: ProbeStep::Call,
                status: Some(503),
                error: "HTTP 503 from GET /Organisation".into(),
            }
        );
        let refused = |unreachable| Failed {
            error: ConnectorError::Connection {
                system: System::Finance,
                message: "error sending request: Connection refused".into(),
            },
            unreachable,
        };
        assert_eq!(state(refused(true)), ConnectionState::Misconfigured);
        assert_eq!(state(refused(false)), ConnectionState::Down);
    }

    #[test]
    fn a_token_endpoint_that_refuses_is_unauthorised_and_one_that_is_not_there_misconfigured() {
        let refused = token_failure(ConnectorError::Rejected {
            system: System::Crm,
            status: 400,
            message: "the token endpoint refused the refresh: invalid_grant".into(),
            exchange: Exchange::default(),
        });
        assert_eq!(refused.state, ConnectionState::Unauthorised);
        assert_eq!(refused.step, ProbeStep::Token);
        assert_eq!(
            refused.error,
            "the token endpoint refused the refresh: invalid_grant"
        );
        let missing = token_failure(ConnectorError::Connection {
            system: System::Crm,
            message: format!("{}: error sending request", auth::UNREACHABLE),
        });
        assert_eq!(missing.state, ConnectionState::Misconfigured);
        let slow = token_failure(ConnectorError::Timeout {
            system: System::Crm,
        });
        assert_eq!(slow.state, ConnectionState::Down);
    }
}
