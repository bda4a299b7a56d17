//! A request body's size and deadline. A `Content-Length` over the limit is answered
//! 413 before a byte of the body is read; a body (declared or chunked) is read here,
//! within the limit and the deadline, so that no handler waits on a client that
//! dribbles a byte a second or sends more than it may. Bodies are small (a webhook
//! delivery, an admin request), so holding one in memory costs at most the limit.

use std::time::Duration;

use poem::http::{header, StatusCode};
use poem::{Body, Endpoint, IntoResponse, Request, Response};

use super::errors::json_error;
use super::HttpLimits;
use crate::metrics::HttpRefusal;

#[derive(Debug, Clone)]
pub struct BodyRules {
    webhook_max: usize,
    max: usize,
    timeout: Duration,
}

impl BodyRules {
    pub fn of(limits: &HttpLimits) -> Self {
        Self {
            webhook_max: limits.webhook_max_body,
            max: limits.max_body,
            timeout: limits.body_read_timeout,
        }
    }

    fn limit_for(&self, path: &str) -> usize {
        if path.starts_with("/webhooks/") {
            self.webhook_max
        } else {
            self.max
        }
    }

    /// Calls `inner` with the body read, or answers the refusal.
    pub async fn apply<E: Endpoint>(
        &self,
        inner: &E,
        mut request: Request,
    ) -> poem::Result<Response> {
        let limit = self.limit_for(request.uri().path());
        let declared = match declared_length(&request) {
            Ok(declared) => declared,
            Err(why) => return Ok(closing(json_error(StatusCode::BAD_REQUEST, why))),
        };
        if declared.is_some_and(|length| length > limit as u64) {
            return Ok(closing(too_large(limit)));
        }
        let chunked = request.headers().contains_key(header::TRANSFER_ENCODING);
        if declared.unwrap_or(0) > 0 || chunked {
            let body = request.take_body();
            match tokio::time::timeout(self.timeout, body.into_bytes_limit(limit)).await {
                Ok(Ok(bytes)) => request.set_body(Body::from_bytes(bytes)),
                Ok(Err(poem::error::ReadBodyError::PayloadTooLarge)) => {
                    return Ok(closing(too_large(limit)))
                }
                Ok(Err(_)) => {
                    return Ok(closing(json_error(
                        StatusCode::BAD_REQUEST,
                        "the body could not be read",
                    )))
                }
                Err(_) => {
                    crate::metrics::http_refused(HttpRefusal::BodyTooSlow);
                    return Ok(closing(json_error(
                        StatusCode::REQUEST_TIMEOUT,
                        &format!(
                            "the body did not arrive within {} seconds",
                            self.timeout.as_secs()
                        ),
                    )));
                }
            }
        }
        inner.call(request).await.map(IntoResponse::into_response)
    }
}

/// The `Content-Length` a request declares, if any; one that is not a number (or is
/// given twice, differently) is refused, since the framework and a proxy in front
/// could read it differently.
fn declared_length(request: &Request) -> Result<Option<u64>, &'static str> {
    let mut values = request.headers().get_all(header::CONTENT_LENGTH).iter();
    let Some(first) = values.next() else {
        return Ok(None);
    };
    let text = first
        .to_str()
        .map_err(|_| "`Content-Length` is not a number")?;
    if values.any(|other| other != first) {
        return Err("`Content-Length` is given twice with different values");
    }
    params::count(text, 0, u64::MAX)
        .map(Some)
        .map_err(|_| "`Content-Length` is not a number")
}

fn too_large(limit: usize) -> Response {
    crate::metrics::http_refused(HttpRefusal::BodyTooLarge);
    json_error(
        StatusCode::PAYLOAD_TOO_LARGE,
        &format!("the body is larger than {limit} bytes"),
    )
}

/// A refusal whose body was not read (or not all of it): the connection cannot carry
/// another request, so the client is told it closes.
fn closing(mut response: Response) -> Response {
    response.headers_mut().insert(
        header::CONNECTION,
        header::HeaderValue::from_static("close"),
    );
    response
}
