//! One error shape for every answer that is not a success: `{"error": "..."}`, with
//! words a person can act on and nothing internal (no driver text, no panic message,
//! no stack). The framework's own refusals (404 unknown route, 405, 415, a parameter
//! or body poem-openapi cannot read) get the same shape as the handlers' own.

use std::any::Any;

use poem::http::StatusCode;
use poem::{Endpoint, EndpointExt, IntoResponse, Request, Response};
use poem_openapi::error::ParseParamError;

/// An answer with `status` and `{"error": message}`.
pub fn json_error(status: StatusCode, message: &str) -> Response {
    Response::builder()
        .status(status)
        .content_type("application/json")
        .body(serde_json::json!({ "error": message }).to_string())
}

/// Answers the errors of `endpoint` (its own, or the framework's) as JSON with their
/// status. A server error's own text stays in the log: it may name internals.
pub fn errors_as_json(endpoint: impl Endpoint + 'static) -> impl Endpoint {
    endpoint.around(|inner, request: Request| async move {
        let method = request.method().clone();
        let path = request.uri().path().to_string();
        match inner.call(request).await {
            Ok(response) => Ok(response.into_response()),
            Err(err) if err.status().is_server_error() => {
                tracing::error!(error = %err, %method, %path, "a request failed");
                Ok(json_error(
                    err.status(),
                    "internal error; the server's log has the detail",
                ))
            }
            Err(err) => {
                let message = match err.status() {
                    _ if err.is::<ParseParamError>() => parameter_refusal(&err),
                    StatusCode::NOT_FOUND => {
                        format!("no such endpoint: {method} {}", params::shown(&path))
                    }
                    StatusCode::METHOD_NOT_ALLOWED => {
                        format!("{method} is not allowed on {}", params::shown(&path))
                    }
                    _ => err.to_string(),
                };
                Ok(json_error(err.status(), &message))
            }
        }
    })
}

/// A query parameter out of its range, in the words of the body fields' refusals
/// (`` `limit` must be a whole number from 1 to 500; got `501` ``): poem-openapi's own
/// message puts the parameter's type name between the two.
fn parameter_refusal(err: &poem::Error) -> String {
    let Some(param) = err.downcast_ref::<ParseParamError>() else {
        return err.to_string();
    };
    let reason = param.reason.as_str();
    let reason = match reason.strip_prefix("failed to parse \"") {
        Some(rest) => rest.split_once("\": ").map_or(reason, |(_, why)| why),
        None if reason.ends_with("expects an input value.") => "is required",
        None => reason,
    };
    format!("`{}` {reason}", param.name)
}

/// The answer to a handler that panicked: a 500 and a log line with what the panic
/// said, which stays in the log.
pub fn panic_answer(panic: Box<dyn Any + Send + 'static>) -> Response {
    let said = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_default();
    tracing::error!(panic = %said, "a request handler panicked; answered 500");
    json_error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal error; the server's log has the detail",
    )
}
