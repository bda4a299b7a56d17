//! One connection's HTTP client: every call waits at the rate gate, carries a fresh
//! access token (one refresh and one retry on a 401), honours `Retry-After` on a 429 by
//! pausing the whole connection, and turns the answer into a [`ConnectorError`] a
//! person can read, with the exchange (secrets left out) for the sync log.
//!
//! Every call's outcome feeds the connection's health, and while the connection is out
//! of service (down, unauthorised, misconfigured) calls are held before the gate: they
//! wait for a probe to find it working, or fail without calling (see
//! [`crate::connectors::health`]). The probe is the one call that goes out meanwhile.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::header::HeaderMap;
use reqwest::Method;
use serde_json::{json, Value};

use super::auth::TokenSource;
use super::failure::{
    call_failure, describe_failure, describe_transport, token_failure, token_outcome, Failed,
};
use super::gate::{current_priority, RateGate, Spent, LONG_PAUSE};
use crate::connectors::health::{
    Admission, CallOutcome, ConnectionHealth, ConnectionState, ProbeReport, HELD_AT_MOST,
};
use crate::connectors::{ConnectorError, Exchange};
use crate::domain::System;

/// One API call.
#[derive(Debug, Clone)]
pub struct ApiRequest {
    pub method: Method,
    /// Appended to the connection's base URL.
    pub path: String,
    pub query: Vec<(String, String)>,
    pub headers: Vec<(String, String)>,
    pub body: Option<Value>,
    /// Answer a 404 as a response instead of an error (reads of one record).
    pub not_found_is_answer: bool,
}

impl ApiRequest {
    /// Whether sending this twice does no harm: reads (GET, and the POSTs that read:
    /// batch reads and searches) and writes with an idempotency key. A HubSpot create
    /// is not: a 5xx after it was applied would make a duplicate, so it goes back to
    /// the orchestrator, which looks for the origin stamp before creating again.
    pub fn repeatable(&self) -> bool {
        self.method == Method::GET
            || self.path.ends_with("/batch/read")
            || self.path.ends_with("/search")
            || self
                .headers
                .iter()
                .any(|(name, _)| name.eq_ignore_ascii_case("idempotency-key"))
    }

    pub fn new(method: Method, path: impl Into<String>) -> Self {
        Self {
            method,
            path: path.into(),
            query: Vec::new(),
            headers: Vec::new(),
            body: None,
            not_found_is_answer: false,
        }
    }

    pub fn query(mut self, name: &str, value: impl Into<String>) -> Self {
        self.query.push((name.to_string(), value.into()));
        self
    }

    pub fn header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_string(), value.into()));
        self
    }

    pub fn json(mut self, body: Value) -> Self {
        self.body = Some(body);
        self
    }

    pub fn allow_not_found(mut self) -> Self {
        self.not_found_is_answer = true;
        self
    }
}

#[derive(Debug, Clone)]
pub struct ApiResponse {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Value,
    pub exchange: Exchange,
}

/// A request as it was sent, for tests that check every call against the service's
/// published schema. The authorization header is recorded as `Bearer ***`.
#[derive(Debug, Clone, PartialEq)]
pub struct SentRequest {
    /// The side the request went to.
    pub system: System,
    pub method: String,
    pub path: String,
    pub query: Vec<(String, String)>,
    pub headers: Vec<(String, String)>,
    pub body: Option<Value>,
}

/// Collects every request a client sends.
#[derive(Debug, Default)]
pub struct RequestRecorder(Mutex<Vec<SentRequest>>);

impl RequestRecorder {
    /// What was sent so far.
    pub fn sent(&self) -> Vec<SentRequest> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn take(&self) -> Vec<SentRequest> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|p| p.into_inner()))
    }

    fn push(&self, request: SentRequest) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(request);
    }
}

/// What a service's limit headers say.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LimitReport {
    /// How long no call should leave (a limit at zero).
    pub pause: Option<Duration>,
    /// Calls left today for this account, as the service counts them.
    pub day_remaining: Option<u64>,
    /// A 429 for the daily limit (rather than the minute's or the concurrent one).
    pub daily_refusal: bool,
}

/// Reads a service's limit headers.
pub type LimitReader = fn(&HeaderMap) -> LimitReport;

/// Reads a person-readable message out of an error body.
pub type ErrorReader = fn(&Value) -> Option<String>;

pub struct ApiClient {
    pub system: System,
    http: reqwest::Client,
    base_url: String,
    auth: Arc<dyn TokenSource>,
    gate: Arc<RateGate>,
    /// Headers every call carries (`xero-tenant-id`, …).
    fixed_headers: Vec<(String, String)>,
    limits: LimitReader,
    errors: ErrorReader,
    recorder: Option<Arc<RequestRecorder>>,
    health: Arc<ConnectionHealth>,
}

/// Whether a call waits while the connection is out of service (every real call), or
/// goes out anyway (the probe that finds out whether it is back).
#[derive(Clone, Copy, PartialEq, Eq)]
enum WhileOut {
    Wait,
    Go,
}

/// Retries of one call after a 429 (waiting out each `Retry-After`) before the change
/// is handed back to the orchestrator's own backoff.
const RATE_LIMIT_RETRIES: u32 = 3;
/// Retries of a call that is safe to repeat after a 5xx, and the waits before each:
/// a service's passing hiccup should not send a whole batch of changes back through
/// the orchestrator's backoff (seconds to minutes).
const UNAVAILABLE_RETRIES: [Duration; 2] = [Duration::from_millis(250), Duration::from_secs(1)];
/// When a 429 names no `Retry-After`.
const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(2);

pub struct ApiClientParts {
    pub system: System,
    pub http: reqwest::Client,
    pub base_url: String,
    pub auth: Arc<dyn TokenSource>,
    pub gate: Arc<RateGate>,
    pub fixed_headers: Vec<(String, String)>,
    pub limits: LimitReader,
    pub errors: ErrorReader,
    pub recorder: Option<Arc<RequestRecorder>>,
}

impl ApiClient {
    pub fn new(parts: ApiClientParts) -> Self {
        let health = ConnectionHealth::new();
        health.watch_gate(parts.gate.clone());
        Self {
            system: parts.system,
            http: parts.http,
            base_url: parts.base_url.trim_end_matches('/').to_string(),
            auth: parts.auth,
            gate: parts.gate,
            fixed_headers: parts.fixed_headers,
            limits: parts.limits,
            errors: parts.errors,
            recorder: parts.recorder,
            health,
        }
    }

    pub fn gate(&self) -> &Arc<RateGate> {
        &self.gate
    }

    /// The health of this connection, fed by every call.
    pub fn health(&self) -> &Arc<ConnectionHealth> {
        &self.health
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// One probe call: `request` is a cheap authenticated read of a known endpoint.
    /// It passes the rate gate like any call, but is not held while the connection is
    /// out of service: it is how the connection is found working again.
    pub async fn probe(&self, request: &ApiRequest) -> ProbeReport {
        let target = self.url(&request.path);
        if let Err(err) = self.auth.bearer().await {
            return ProbeReport::failed(target, token_failure(err));
        }
        match self.exchange(request, None, WhileOut::Go).await {
            Ok(_) => ProbeReport::ok(target),
            // The service answered; only the budget stood in the way.
            Err(Failed {
                error: ConnectorError::RateLimited { .. },
                ..
            }) => ProbeReport::ok(target),
            Err(failed) => ProbeReport::failed(target, call_failure(&failed, request)),
        }
    }

    /// Sends `request` through `gates` (the connection's own gate first), returning
    /// 2xx and 207 answers (and 404 when asked) and an error for anything else.
    pub async fn send_through(
        &self,
        request: &ApiRequest,
        extra_gate: Option<&RateGate>,
    ) -> Result<ApiResponse, ConnectorError> {
        self.exchange(request, extra_gate, WhileOut::Wait)
            .await
            .map_err(|failed| failed.error)
    }

    /// Waits while the connection is out of service; `Err` when it stayed out for
    /// [`HELD_AT_MOST`]: the call is not made and the change is retried later.
    async fn wait_in_service(&self, request: &ApiRequest) -> Result<Admission, ConnectorError> {
        let state = match self.health.wait_in_service(HELD_AT_MOST).await {
            Ok(admission) => return Ok(admission),
            Err(state) => state,
        };
        let snapshot = self.health.snapshot();
        let standing = match state {
            ConnectionState::Unknown => "has not been probed yet".to_string(),
            state => format!("is {state} since {}", snapshot.since.format("%H:%M:%S UTC")),
        };
        Err(ConnectorError::OutOfService {
            system: self.system,
            message: format!(
                "not called ({} {}): the connection {standing}; the change waits until a \
                 probe finds it working",
                request.method, request.path
            ),
            out_for: (chrono::Utc::now() - snapshot.since)
                .to_std()
                .unwrap_or_default(),
        })
    }

    fn over_budget(&self, spent: Spent) -> ConnectorError {
        let left = chrono::Duration::from_std(spent.left).unwrap_or(chrono::Duration::zero());
        ConnectorError::OverBudget {
            system: self.system,
            limit: spent.limit.to_string(),
            until: chrono::Utc::now() + left,
            retry_after: spent.left,
        }
    }

    async fn exchange(
        &self,
        request: &ApiRequest,
        extra_gate: Option<&RateGate>,
        while_out: WhileOut,
    ) -> Result<ApiResponse, Failed> {
        let _under_way = (while_out == WhileOut::Wait).then(|| self.health.call_under_way());
        let admission = match while_out {
            WhileOut::Wait => self.wait_in_service(request).await?,
            WhileOut::Go => Admission::Go,
        };
        let trial = admission == Admission::Trial;
        let result = self
            .exchange_admitted(request, extra_gate, while_out, trial)
            .await;
        match result {
            Err(failed) if trial => {
                // The connection's first call failed: a probe decides whether the
                // connection works, and meanwhile the change waits like the others.
                self.health.trial_failed();
                Err(ConnectorError::OutOfService {
                    system: self.system,
                    message: format!(
                        "{}: the first call to this connection failed; the change waits \
                         until a probe finds it working",
                        describe_failure(&failed.error, request)
                    ),
                    out_for: Duration::ZERO,
                }
                .into())
            }
            result => result,
        }
    }

    /// One call, admitted: `trial` when it is the first of a connection whose state is
    /// not known yet (it goes alone, once: no waiting again, no repeat after a 5xx).
    async fn exchange_admitted(
        &self,
        request: &ApiRequest,
        extra_gate: Option<&RateGate>,
        while_out: WhileOut,
        trial: bool,
    ) -> Result<ApiResponse, Failed> {
        let mut refreshed = false;
        let mut limited = 0;
        let mut unavailable = 0;
        let mut first = true;
        loop {
            // Each attempt after the first waits again while the connection is out.
            if while_out == WhileOut::Wait && !trial && !first {
                self.wait_in_service(request).await?;
            }
            first = false;
            let priority = current_priority();
            let _permit = self.gate.acquire(priority).await;
            let _extra = match extra_gate {
                Some(gate) => Some(gate.acquire(priority).await),
                None => None,
            };
            // A spent daily budget is not waited out: the change comes back when it
            // is renewed. A probe goes anyway, to learn how things are.
            if while_out == WhileOut::Wait {
                if let Some(spent) = self.gate.spent() {
                    return Err(self.over_budget(spent).into());
                }
            }
            // The connection may have gone out of service while this call waited for
            // its slot: it waits again rather than adding to the calls of an outage.
            if while_out == WhileOut::Wait && !trial && self.health.state().out_of_service() {
                continue;
            }
            let token = match self.auth.bearer().await {
                Ok(token) => token,
                Err(err) => {
                    self.health
                        .record_call(token_outcome(&err), Some(&err.to_string()));
                    return Err(err.into());
                }
            };
            let answer = match self.send_once(request, &token).await {
                Ok(answer) => answer,
                Err(failed) => {
                    crate::metrics::system_call(self.system.as_str(), 0);
                    let detail = describe_failure(&failed.error, request);
                    self.health
                        .record_call(CallOutcome::Unavailable, Some(&detail));
                    return Err(failed);
                }
            };
            crate::metrics::system_call(self.system.as_str(), answer.status);
            let report = (self.limits)(&answer.headers);
            if let Some(pause) = report.pause {
                self.gate.pause_for(pause);
            }
            if let Some(remaining) = report.day_remaining {
                self.health.day_remaining(remaining);
            }
            match answer.status {
                200..=299 => {
                    self.health.record_call(CallOutcome::Ok, None);
                    return Ok(answer);
                }
                // "No such record", unless it is the first call: a wrong base URL
                // answers 404 to everything, so it proves nothing about the connection.
                404 if request.not_found_is_answer && !trial => {
                    self.health.record_call(CallOutcome::Ok, None);
                    return Ok(answer);
                }
                // An expired token, as a matter of course: refreshed and sent again.
                401 if !refreshed => {
                    refreshed = true;
                    self.auth.refused(&token).await;
                }
                429 => {
                    self.health.record_call(CallOutcome::Refused, None);
                    let retry_after = retry_after(&answer.headers).unwrap_or(DEFAULT_RETRY_AFTER);
                    if report.daily_refusal && retry_after > LONG_PAUSE {
                        self.gate.pause_for_limit(retry_after, "daily");
                        if let Some(gate) = extra_gate {
                            gate.pause_for(retry_after);
                        }
                        crate::metrics::daily_limit_refusal(self.system.as_str());
                        let spent = self.gate.spent().unwrap_or(Spent {
                            limit: "daily",
                            left: retry_after,
                        });
                        return Err(self.over_budget(spent).into());
                    }
                    self.gate.pause_for(retry_after);
                    if let Some(gate) = extra_gate {
                        gate.pause_for(retry_after);
                    }
                    crate::metrics::rate_limit_wait(self.system.as_str());
                    limited += 1;
                    // A probe learns what it needs from the 429 itself.
                    if limited > RATE_LIMIT_RETRIES || while_out == WhileOut::Go {
                        return Err(ConnectorError::RateLimited {
                            system: self.system,
                            retry_after,
                            exchange: answer.exchange,
                        }
                        .into());
                    }
                    tracing::debug!(system = %self.system, ?retry_after, "rate limited; the connection pauses");
                }
                status @ 500..=599 => {
                    self.health.record_call(
                        CallOutcome::Unavailable,
                        Some(&format!(
                            "HTTP {status} from {} {}",
                            request.method, request.path
                        )),
                    );
                    // A probe is not repeated: the next one is due soon enough, and
                    // while the connection is down it is the only call that goes out.
                    let again = while_out == WhileOut::Wait
                        && !trial
                        && request.repeatable()
                        && unavailable < UNAVAILABLE_RETRIES.len();
                    if !again {
                        return Err(ConnectorError::Unavailable {
                            system: self.system,
                            status,
                            exchange: answer.exchange,
                        }
                        .into());
                    }
                    drop(_permit);
                    drop(_extra);
                    tokio::time::sleep(UNAVAILABLE_RETRIES[unavailable]).await;
                    unavailable += 1;
                }
                status => {
                    let message = (self.errors)(&answer.body).unwrap_or_else(|| {
                        format!("HTTP {status} from {} {}", request.method, request.path)
                    });
                    let outcome = match status {
                        401 | 403 => CallOutcome::Unauthorised,
                        _ => CallOutcome::Rejected,
                    };
                    let error = ConnectorError::Rejected {
                        system: self.system,
                        status,
                        message,
                        exchange: answer.exchange,
                    };
                    let detail = describe_failure(&error, request);
                    self.health.record_call(
                        outcome,
                        (outcome == CallOutcome::Unauthorised).then_some(detail.as_str()),
                    );
                    return Err(error.into());
                }
            }
        }
    }

    pub async fn send(&self, request: &ApiRequest) -> Result<ApiResponse, ConnectorError> {
        self.send_through(request, None).await
    }

    async fn send_once(
        &self,
        request: &ApiRequest,
        token: &crate::secret::Secret,
    ) -> Result<ApiResponse, Failed> {
        let url = self.url(&request.path);
        let headers: Vec<(String, String)> = self
            .fixed_headers
            .iter()
            .chain(request.headers.iter())
            .cloned()
            .collect();
        if let Some(recorder) = &self.recorder {
            let mut recorded = headers.clone();
            recorded.push(("authorization".into(), "Bearer ***".into()));
            recorder.push(SentRequest {
                system: self.system,
                method: request.method.to_string(),
                path: request.path.clone(),
                query: request.query.clone(),
                headers: recorded,
                body: request.body.clone(),
            });
        }
        let mut builder = self
            .http
            .request(request.method.clone(), &url)
            .bearer_auth(token.expose())
            .header("accept", "application/json");
        if !request.query.is_empty() {
            builder = builder.query(&request.query);
        }
        for (name, value) in &headers {
            builder = builder.header(name, value);
        }
        if let Some(body) = &request.body {
            builder = builder.json(body);
        }
        let exchange_request = json!({
            "method": request.method.as_str(),
            "url": url,
            "query": request.query.iter().map(|(k, v)| json!([k, v])).collect::<Vec<_>>(),
            "headers": headers.iter().map(|(k, v)| json!([k, v])).collect::<Vec<_>>(),
            "body": request.body,
        });
        let answer = builder.send().await.map_err(|err| Failed {
            unreachable: err.is_connect(),
            error: if err.is_timeout() {
                ConnectorError::Timeout {
                    system: self.system,
                }
            } else {
                ConnectorError::Connection {
                    system: self.system,
                    message: describe_transport(err),
                }
            },
        })?;
        let status = answer.status().as_u16();
        let headers = answer.headers().clone();
        let bytes = answer.bytes().await.map_err(|err| {
            Failed::from(ConnectorError::Connection {
                system: self.system,
                message: format!("the answer broke off: {}", describe_transport(err)),
            })
        })?;
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        Ok(ApiResponse {
            status,
            headers,
            exchange: Exchange {
                request: Some(exchange_request),
                response: Some(body.clone()),
                status: Some(status),
            },
            body,
        })
    }
}

/// `Retry-After` in seconds (the services send whole seconds).
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get("retry-after")?.to_str().ok()?.trim();
    value
        .parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(Duration::from_secs_f64)
}

/// A header as a number.
pub fn header_number(headers: &HeaderMap, name: &str) -> Option<i64> {
    headers.get(name)?.to_str().ok()?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_and_keyed_writes_may_be_repeated_after_a_5xx_and_other_writes_may_not() {
        assert!(ApiRequest::new(Method::GET, "/Contacts").repeatable());
        assert!(ApiRequest::new(Method::POST, "/crm/v3/objects/deals/batch/read").repeatable());
        assert!(ApiRequest::new(Method::POST, "/crm/v3/objects/contacts/search").repeatable());
        assert!(ApiRequest::new(Method::PUT, "/Contacts")
            .header("Idempotency-Key", "k")
            .repeatable());
        assert!(
            !ApiRequest::new(Method::POST, "/crm/v3/objects/contacts/batch/create").repeatable()
        );
        assert!(!ApiRequest::new(Method::PUT, "/Contacts").repeatable());
    }
}
