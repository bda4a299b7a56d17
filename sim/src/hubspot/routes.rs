//! HTTP routes of the simulated HubSpot: what every API call goes through first (knobs,
//! rate limits and their headers, bearer-token checks, the call log), then the single
//! object calls here and the batch and search calls in their own modules; plus the
//! token endpoint and the control routes.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use poem::endpoint::make;
use poem::http::{Method, StatusCode};
use poem::web::Form;
use poem::{FromRequest, Request, Response, Route};
use serde_json::{json, Value};

use super::oauth::{refusal_body, IntrospectForm, TokenForm};
use super::ops;
use super::state::{parse_properties, ItemError, Kind, Shown, State};
use super::webhooks::Source;
use super::{associations, batch, search, HubSpotSim, SimCall, DAILY_LIMIT};
use crate::knobs::roll;
use crate::limits::{InFlight, Refusal};

/// A handler's answer before headers are added.
pub(crate) struct Answer {
    pub status: u16,
    /// `None` answers an empty body (204).
    pub body: Option<Value>,
}

impl Answer {
    pub(crate) fn json(status: u16, body: Value) -> Self {
        Self {
            status,
            body: Some(body),
        }
    }

    pub(crate) fn error(error: &ItemError) -> Self {
        Self::json(error.status, error.body())
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Self::error(&ItemError::new(400, "VALIDATION_ERROR", message))
    }
}

/// Which of HubSpot's limits a call counts against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Policy {
    TenSecondly,
    Secondly,
}

pub(crate) fn route(sim: Arc<HubSpotSim>) -> Route {
    let api = sim.clone();
    let associations = sim.clone();
    let token = sim.clone();
    let token_v3 = sim.clone();
    let introspect = sim.clone();
    let authorize = sim.clone();
    let customers = sim.clone();
    let invoices = sim;
    Route::new()
        .at(
            "/crm/v3/objects/*path",
            make(move |req: Request| {
                let sim = api.clone();
                async move { sim.logged(req, Handler::Api).await }
            }),
        )
        .at(
            "/crm/v4/associations/*path",
            make(move |req: Request| {
                let sim = associations.clone();
                async move { sim.logged(req, Handler::Associations).await }
            }),
        )
        .at(
            "/oauth/v1/token",
            make(move |req: Request| {
                let sim = token.clone();
                async move { sim.logged(req, Handler::Token).await }
            }),
        )
        .at(
            "/oauth/v3/token",
            make(move |req: Request| {
                let sim = token_v3.clone();
                async move { sim.logged(req, Handler::Token).await }
            }),
        )
        .at(
            "/oauth/v3/token/introspect",
            make(move |req: Request| {
                let sim = introspect.clone();
                async move { sim.introspect(req).await }
            }),
        )
        .at(
            "/oauth/authorize",
            make(move |req: Request| {
                let sim = authorize.clone();
                async move { sim.authorize(req).await }
            }),
        )
        .at(
            "/sim/hubspot/customers",
            make(move |_req: Request| {
                let sim = customers.clone();
                async move { respond(200, Some(&json!(sim.customers())), &[]) }
            }),
        )
        .at(
            "/sim/hubspot/invoices",
            make(move |_req: Request| {
                let sim = invoices.clone();
                async move { respond(200, Some(&json!(sim.invoices())), &[]) }
            }),
        )
}

/// The logged routes.
#[derive(Debug, Clone, Copy)]
enum Handler {
    Api,
    Associations,
    Token,
}

impl HubSpotSim {
    /// Answers `req` with `handler` and logs the call.
    async fn logged(&self, req: Request, handler: Handler) -> Response {
        let at = Instant::now();
        let method = req.method().to_string();
        let path = req.original_uri().path().to_string();
        let query = req.original_uri().query().unwrap_or_default().to_string();
        let response = match handler {
            Handler::Api => self.api(req, Handler::Api).await,
            Handler::Associations => self.api(req, Handler::Associations).await,
            Handler::Token => self.token(req).await,
        };
        let call = SimCall {
            method,
            path,
            query,
            status: response.status().as_u16(),
            at,
            finished: Instant::now(),
        };
        self.calls
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(call);
        response
    }

    /// Knob latency and failures, which the token endpoint suffers as well.
    async fn misbehave(&self) -> Option<Response> {
        let knobs = self.knobs.get();
        if knobs.latency_ms > 0 {
            tokio::time::sleep(Duration::from_millis(knobs.latency_ms)).await;
        }
        if knobs.hubspot_down || roll(knobs.error_rate) {
            let status = if knobs.hubspot_down || rand::random::<bool>() {
                503
            } else {
                502
            };
            let body = json!({
                "status": "error",
                "message": "The service is temporarily unavailable; try again.",
                "category": "INTERNAL_ERROR",
            });
            return Some(respond(status, Some(&body), &[]));
        }
        None
    }

    /// `POST /oauth/v1/token`: not rate limited.
    async fn token(&self, req: Request) -> Response {
        if let Some(failure) = self.misbehave().await {
            return failure;
        }
        if req.method() != Method::POST {
            return respond(405, None, &[]);
        }
        let (req, mut body) = req.split();
        let (status, answer) = match Form::<TokenForm>::from_request(&req, &mut body).await {
            Ok(Form(form)) => self.tokens.grant(&form, &self.settings),
            Err(err) => (
                400,
                json!({"status": "BAD_REQUEST", "message": format!("cannot read the form: {err}")}),
            ),
        };
        respond(status, Some(&answer), &[])
    }

    /// `GET /oauth/authorize` shows the install (consent) form; `POST` is its answer.
    async fn authorize(&self, mut req: Request) -> Response {
        let client_id = self.settings.client_id.clone();
        if req.method() == Method::POST {
            let body = req.take_body().into_string().await.unwrap_or_default();
            let form = crate::consent::decode_pairs(&body);
            return self.tokens.consent.decide("HubSpot", &client_id, &form);
        }
        let query = crate::consent::decode_pairs(req.uri().query().unwrap_or_default());
        self.tokens.consent.page("HubSpot", &client_id, &query)
    }

    /// `POST /oauth/v3/token/introspect`: token metadata.
    async fn introspect(&self, req: Request) -> Response {
        if req.method() != Method::POST {
            return respond(405, None, &[]);
        }
        let (req, mut body) = req.split();
        let (status, answer) = match Form::<IntrospectForm>::from_request(&req, &mut body).await {
            Ok(Form(form)) => self.tokens.introspect(&form, &self.settings),
            Err(err) => (
                400,
                json!({"status": "BAD_REQUEST", "message": format!("cannot read the form: {err}")}),
            ),
        };
        respond(status, Some(&answer), &[])
    }

    /// Every `/crm/v3/objects/...` and `/crm/v4/associations/...` call.
    async fn api(&self, req: Request, handler: Handler) -> Response {
        if let Some(failure) = self.misbehave().await {
            return failure;
        }
        let segments: Vec<String> = req
            .raw_path_param("path")
            .unwrap_or_default()
            .split('/')
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect();
        let policy =
            if req.method() == Method::POST && segments.len() == 2 && segments[1] == "search" {
                Policy::Secondly
            } else {
                Policy::TenSecondly
            };
        let forced = self
            .forced_429
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(retry_after) = forced {
            return self.too_many(policy, retry_after);
        }
        let knobs = self.knobs.get();
        if roll(knobs.rate_limit_rate) {
            return self.too_many(policy, Duration::from_secs(1));
        }
        let limiter = match policy {
            Policy::TenSecondly => &self.limiter,
            Policy::Secondly => &self.search_limiter,
        };
        let mut remaining = self.settings.per_ten_seconds;
        // Held until the answer is built, so the concurrency count covers the call.
        let mut _in_flight: Option<InFlight> = None;
        if knobs.enforce_limits {
            match limiter.admit() {
                Ok((admitted, guard)) => {
                    remaining = admitted.remaining.first().copied().unwrap_or(0);
                    _in_flight = Some(guard);
                }
                Err(Refusal::Window { retry_after, .. }) => {
                    return self.too_many(policy, retry_after)
                }
                Err(Refusal::Concurrency) => return self.too_many(policy, Duration::from_secs(1)),
            }
        }
        let used = self.daily_used.fetch_add(1, Ordering::Relaxed) + 1;
        // Search answers carry no rate-limit headers, as HubSpot's do not.
        let headers = match policy {
            Policy::TenSecondly => self.limit_headers(remaining, used),
            Policy::Secondly => Vec::new(),
        };
        let answer = match self.tokens.check(
            req.header("authorization"),
            &self.settings.private_app_token,
        ) {
            Err(failure) => Answer::json(401, refusal_body(failure)),
            Ok(()) => match handler {
                Handler::Associations => self.associations(req, &segments).await,
                _ => self.dispatch(req, &segments).await,
            },
        };
        respond(answer.status, answer.body.as_ref(), &headers)
    }

    fn limit_headers(&self, remaining: usize, daily_used: usize) -> Vec<(String, String)> {
        vec![
            (
                "X-HubSpot-RateLimit-Max".to_string(),
                self.settings.per_ten_seconds.to_string(),
            ),
            (
                "X-HubSpot-RateLimit-Remaining".to_string(),
                remaining.to_string(),
            ),
            (
                "X-HubSpot-RateLimit-Interval-Milliseconds".to_string(),
                "10000".to_string(),
            ),
            (
                "X-HubSpot-RateLimit-Daily".to_string(),
                DAILY_LIMIT.to_string(),
            ),
            (
                "X-HubSpot-RateLimit-Daily-Remaining".to_string(),
                DAILY_LIMIT.saturating_sub(daily_used).to_string(),
            ),
        ]
    }

    /// A 429 with HubSpot's body and `Retry-After` in whole seconds (at least 1).
    fn too_many(&self, policy: Policy, retry_after: Duration) -> Response {
        self.refused_429.fetch_add(1, Ordering::Relaxed);
        let (message, name) = match policy {
            Policy::TenSecondly => (
                "You have reached your ten_secondly_rolling limit.",
                "TEN_SECONDLY_ROLLING",
            ),
            Policy::Secondly => ("You have reached your secondly limit.", "SECONDLY"),
        };
        let body = json!({
            "status": "error",
            "message": message,
            "errorType": "RATE_LIMIT",
            "correlationId": uuid::Uuid::new_v4().to_string(),
            "category": "RATE_LIMITS",
            "policyName": name,
        });
        let seconds = retry_after.as_millis().div_ceil(1000).max(1);
        let mut headers = vec![("Retry-After".to_string(), seconds.to_string())];
        if policy == Policy::TenSecondly {
            let used = self.daily_used.load(Ordering::Relaxed);
            headers.extend(self.limit_headers(0, used));
        }
        respond(429, Some(&body), &headers)
    }

    async fn dispatch(&self, req: Request, segments: &[String]) -> Answer {
        let Some(first) = segments.first() else {
            return Answer::json(
                404,
                json!({"status": "error", "message": "Unable to find the route", "category": "NOT_FOUND"}),
            );
        };
        let Some(kind) = Kind::from_path(first) else {
            return Answer::invalid(format!("Unable to infer object type from: {first}"));
        };
        let method = req.method().clone();
        // Repeated keys (`properties=a&properties=b`) join as a comma list, so both
        // spellings HubSpot accepts work.
        let mut query: HashMap<String, String> = HashMap::new();
        let pairs: Vec<(String, String)> = req.params().unwrap_or_default();
        for (key, value) in pairs {
            query
                .entry(key)
                .and_modify(|joined| {
                    joined.push(',');
                    joined.push_str(&value);
                })
                .or_insert(value);
        }
        let rest: Vec<&str> = segments[1..].iter().map(String::as_str).collect();
        let body = if method == Method::POST || method == Method::PATCH {
            match read_json(req).await {
                Ok(body) => body,
                Err(answer) => return answer,
            }
        } else {
            Value::Null
        };
        match (method, rest.as_slice()) {
            (Method::GET, []) => self.list(kind, &query),
            (Method::GET, [id]) => self.get_one(kind, id, &query),
            (Method::DELETE, [id]) => self.archive_one(kind, id),
            (Method::PATCH, [id]) => self.update_one(kind, id, &body),
            (Method::POST, []) => self.create_one(kind, &body),
            (Method::POST, ["search"]) => search::search(self, kind, &body),
            (Method::POST, ["batch", "read"]) => batch::read(self, kind, &body),
            (Method::POST, ["batch", "create"]) => batch::create(self, kind, &body),
            (Method::POST, ["batch", "update"]) => batch::update(self, kind, &body),
            _ => Answer::json(
                404,
                json!({"status": "error", "message": "Unable to find the route", "category": "NOT_FOUND"}),
            ),
        }
    }

    async fn associations(&self, req: Request, segments: &[String]) -> Answer {
        if req.method() != Method::POST {
            return Answer::json(
                405,
                json!({"status": "error", "message": "Method not allowed", "category": "NOT_FOUND"}),
            );
        }
        let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
        match read_json(req).await {
            Ok(body) => associations::batch_read(self, &segments, &body),
            Err(answer) => answer,
        }
    }

    /// `GET /crm/v3/objects/{type}?limit=&after=&properties=&archived=`: a page of
    /// objects by id (limit 10 by default, at most 100), `paging.next.after` naming
    /// the next.
    fn list(&self, kind: Kind, query: &HashMap<String, String>) -> Answer {
        let limit = match query.get("limit").map(|l| l.parse::<usize>()) {
            None => 10,
            Some(Ok(limit)) if (1..=100).contains(&limit) => limit,
            Some(_) => return Answer::invalid("limit must be a number from 1 to 100"),
        };
        let after: u64 = query.get("after").and_then(|a| a.parse().ok()).unwrap_or(0);
        let properties = comma_list(query.get("properties"));
        let archived = query.get("archived").is_some_and(|a| a == "true");
        self.read(|state| {
            let shown = if properties.is_empty() {
                Shown::Defaults
            } else {
                Shown::Only(&properties)
            };
            let mut page = state
                .records(kind)
                .range(after..)
                .filter(|(_, record)| record.archived() == archived)
                .take(limit + 1);
            let results: Vec<Value> = page
                .by_ref()
                .take(limit)
                .map(|(_, record)| state.render(record, shown, &[]))
                .collect();
            let mut body = json!({ "results": results });
            if let Some((next, _)) = page.next() {
                body["paging"] = json!({"next": {"after": next.to_string()}});
            }
            Answer::json(200, body)
        })
    }

    /// `GET /crm/v3/objects/{type}/{id}?properties=&propertiesWithHistory=&associations=&archived=`.
    fn get_one(&self, kind: Kind, id: &str, query: &HashMap<String, String>) -> Answer {
        let properties = comma_list(query.get("properties"));
        let with_history = comma_list(query.get("propertiesWithHistory"));
        let associations: Vec<Kind> = comma_list(query.get("associations"))
            .iter()
            .filter_map(|name| Kind::from_path(name))
            .collect();
        let archived = query.get("archived").is_some_and(|a| a == "true");
        self.read(|state| match state.get(kind, id) {
            // `archived=true` reads the recycle bin only, as HubSpot does.
            Some(record) if record.archived() == archived => {
                let shown = if properties.is_empty() {
                    Shown::Defaults
                } else {
                    Shown::Only(&properties)
                };
                let mut object = state.render(record, shown, &associations);
                if !with_history.is_empty() {
                    object["propertiesWithHistory"] =
                        State::render_history(record, &with_history, self.settings.app_id);
                }
                Answer::json(200, object)
            }
            _ => Answer::error(&ItemError::not_found()),
        })
    }

    fn archive_one(&self, kind: Kind, id: &str) -> Answer {
        self.change(Source::Integration, |state, events| {
            match ops::archive(state, events, kind, id) {
                Ok(()) => Answer {
                    status: 204,
                    body: None,
                },
                Err(err) => Answer::error(&err),
            }
        })
    }

    /// `POST /crm/v3/objects/{type}`: one create (beyond the contract, same rules as batch).
    fn create_one(&self, kind: Kind, body: &Value) -> Answer {
        let writes = match parse_properties(body.get("properties")) {
            Ok(writes) => writes,
            Err(err) => return Answer::error(&err),
        };
        let links = match batch::parse_links(kind, body.get("associations")) {
            Ok(links) => links,
            Err(err) => return Answer::error(&err),
        };
        self.change(Source::Integration, |state, events| {
            match ops::create(state, events, kind, &writes, &links) {
                Ok(id) => match state.get(kind, &id.to_string()) {
                    Some(record) => Answer::json(201, state.render(record, Shown::All, &[])),
                    None => Answer::error(&ItemError::not_found()),
                },
                Err(err) => Answer::error(&err),
            }
        })
    }

    /// `PATCH /crm/v3/objects/{type}/{id}`: one update (beyond the contract).
    fn update_one(&self, kind: Kind, id: &str, body: &Value) -> Answer {
        let writes = match parse_properties(body.get("properties")) {
            Ok(writes) => writes,
            Err(err) => return Answer::error(&err),
        };
        self.change(Source::Integration, |state, events| {
            match ops::update(state, events, kind, id, &writes) {
                Ok(_) => match state.get(kind, id) {
                    Some(record) => Answer::json(200, state.render(record, Shown::All, &[])),
                    None => Answer::error(&ItemError::not_found()),
                },
                Err(err) => Answer::error(&err),
            }
        })
    }
}

/// The request body as JSON, or HubSpot's 400 for a body that is not.
async fn read_json(req: Request) -> Result<Value, Answer> {
    let bytes = req
        .into_body()
        .into_bytes()
        .await
        .map_err(|err| Answer::invalid(format!("Invalid input JSON: {err}")))?;
    if bytes.is_empty() {
        return Ok(json!({}));
    }
    serde_json::from_slice(&bytes).map_err(|err| {
        Answer::invalid(format!(
            "Invalid input JSON on line {}, column {}: {err}",
            err.line(),
            err.column()
        ))
    })
}

fn comma_list(value: Option<&String>) -> Vec<String> {
    value
        .map(|v| {
            v.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// Builds the HTTP answer: JSON body (if any) and `headers`.
pub(crate) fn respond(status: u16, body: Option<&Value>, headers: &[(String, String)]) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut builder = Response::builder().status(status);
    for (name, value) in headers {
        builder = builder.header(name.as_str(), value.as_str());
    }
    match body {
        Some(body) => builder
            .content_type("application/json;charset=utf-8")
            .body(body.to_string()),
        None => builder.finish(),
    }
}
