//! The HTTP side: every API call passes one gate (knobs, bearer token, tenant, rate
//! limits, the remaining-calls headers, the call log), then is dispatched to the list,
//! read and batch-write handlers; plus the token endpoint and the inspection routes.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use poem::http::{Method, StatusCode};
use poem::{Request, Response};
use serde_json::{json, Map, Value};

use super::contact_writes;
use super::dates;
use super::invoice_writes;
use super::query::{decode_pairs, flag, ListQuery};
use super::state::{Category, Change, Store, CONTACT_FIELDS, INVOICE_FIELDS};
use super::{SimCall, State, XeroSim};
use crate::journal::{Actor, Edit, RecordView};
use crate::knobs::{roll, KnobValues};
use crate::limits::{InFlight, Refusal};

/// At most this many items per PUT or POST, as Xero recommends and the connectors send.
pub(crate) const MAX_BATCH: usize = 50;
/// Longest `Idempotency-Key` Xero accepts.
const MAX_IDEMPOTENCY_KEY: usize = 128;
/// Xero's app-wide limit across tenants, reported in `X-AppMinLimit-Remaining`.
pub(crate) const APP_PER_MINUTE: usize = 10_000;
pub(crate) const PROVIDER_NAME: &str = "Tandem Xero Simulator";

/// A finished answer: kept whole so an idempotent replay answers the same bytes.
#[derive(Debug, Clone)]
pub(crate) struct Answer {
    pub status: u16,
    pub body: Vec<u8>,
    pub headers: Vec<(String, String)>,
}

impl Answer {
    pub(crate) fn json(status: u16, body: &Value) -> Self {
        Self {
            status,
            body: serde_json::to_vec(body).unwrap_or_default(),
            headers: Vec::new(),
        }
    }

    fn header(mut self, name: &str, value: impl ToString) -> Self {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    fn into_response(self) -> Response {
        let mut builder = Response::builder()
            .status(StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
            .content_type("application/json; charset=utf-8");
        for (name, value) in self.headers {
            builder = builder.header(name, value);
        }
        builder.body(self.body)
    }
}

/// Xero's problem-details answer (401, 403, 404, 429, 503).
fn problem(status: u16, title: &str, detail: &str) -> Answer {
    Answer::json(
        status,
        &json!({ "Type": null, "Title": title, "Status": status, "Detail": detail }),
    )
}

/// A request refused as a whole: 400 `ValidationException`.
fn validation(message: &str, elements: Vec<Value>) -> Answer {
    Answer::json(
        400,
        &json!({
            "ErrorNumber": 10,
            "Type": "ValidationException",
            "Message": message,
            "Elements": elements,
        }),
    )
}

fn envelope(collection: &str, items: Vec<Value>, pagination: Option<Value>) -> Value {
    let mut o = Map::new();
    o.insert("Id".into(), uuid::Uuid::new_v4().to_string().into());
    o.insert("Status".into(), "OK".into());
    o.insert("ProviderName".into(), PROVIDER_NAME.into());
    o.insert(
        "DateTimeUTC".into(),
        dates::xero_timestamp(dates::now_ms()).into(),
    );
    if let Some(p) = pagination {
        o.insert("pagination".into(), p);
    }
    o.insert(collection.into(), Value::Array(items));
    Value::Object(o)
}

fn retry_after_secs(wait: Duration) -> u64 {
    wait.as_secs_f64().ceil().max(1.0) as u64
}

/// What the gate lets through: the in-flight guard, if the limiter admitted the call.
type Admission = Option<InFlight>;

/// What a write did: its answer, the changes to raise as webhook events, and the
/// edits to journal (none when the write was refused as a whole).
struct Written {
    answer: Answer,
    changes: Vec<Change>,
    edits: Vec<Edit>,
}

impl Written {
    fn refused(answer: Answer) -> Self {
        Self {
            answer,
            changes: Vec::new(),
            edits: Vec::new(),
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Contacts,
    Invoices,
}

impl Kind {
    fn collection(self) -> &'static str {
        match self {
            Kind::Contacts => "Contacts",
            Kind::Invoices => "Invoices",
        }
    }

    fn id_field(self) -> &'static str {
        match self {
            Kind::Contacts => "ContactID",
            Kind::Invoices => "InvoiceID",
        }
    }
}

/// The parts of a request the handlers read, taken out once.
struct Call {
    method: Method,
    /// The path below `/api.xro/2.0`.
    inner_path: String,
    pairs: Vec<(String, String)>,
    if_modified_since: Option<String>,
    idempotency_key: Option<String>,
    body: Vec<u8>,
}

fn header(req: &Request, name: &str) -> Option<String> {
    req.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

impl XeroSim {
    /// Answers one call under `/api.xro/2.0`.
    pub(crate) async fn serve_api(self: Arc<Self>, mut req: Request) -> Response {
        let at = Instant::now();
        let path = req.original_uri().path().to_string();
        let raw_query = req.original_uri().query().unwrap_or_default().to_string();
        let body = req
            .take_body()
            .into_bytes()
            .await
            .map(|b| b.to_vec())
            .unwrap_or_default();
        let pairs = decode_pairs(&raw_query);
        let items = items_named(&pairs, &body);
        let knobs = self.knobs.get();
        let (answer, guard) = match self.gate(&req, &knobs) {
            Err(refused) => (refused, None),
            Ok(guard) => {
                let call = Call {
                    method: req.method().clone(),
                    inner_path: req.uri().path().to_string(),
                    pairs,
                    if_modified_since: header(&req, "if-modified-since"),
                    idempotency_key: header(&req, "idempotency-key"),
                    body,
                };
                (self.dispatch(&call), guard)
            }
        };
        if knobs.latency_ms > 0 {
            tokio::time::sleep(Duration::from_millis(knobs.latency_ms)).await;
        }
        // Held through the latency, so slow answers make the concurrency limit bite.
        drop(guard);
        if answer.status == 429 {
            self.refused_429.fetch_add(1, Ordering::Relaxed);
        }
        let answer = self.with_limit_headers(answer);
        let call = SimCall {
            method: req.method().to_string(),
            path,
            query: raw_query,
            status: answer.status,
            items,
            at,
            finished: Instant::now(),
        };
        self.calls
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(call);
        answer.into_response()
    }

    /// Everything before the handler: injected failures, authentication, tenant and
    /// rate limits, in that order.
    fn gate(&self, req: &Request, knobs: &KnobValues) -> Result<Admission, Answer> {
        if knobs.xero_down || roll(knobs.error_rate) {
            return Err(problem(
                503,
                "Service Unavailable",
                "The service is temporarily unavailable (simulated).",
            ));
        }
        let forced = self
            .forced_429
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(wait) = forced {
            return Err(too_many("minute", wait));
        }
        if roll(knobs.rate_limit_rate) {
            return Err(too_many("minute", Duration::from_secs(1)));
        }
        let authorization = header(req, "authorization");
        if let Err(problem_detail) = self
            .tokens
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .check(authorization.as_deref())
        {
            return Err(problem(401, "Unauthorized", &problem_detail.0)
                .header("WWW-Authenticate", "Bearer error=\"invalid_token\""));
        }
        if header(req, "xero-tenant-id").as_deref().map(str::trim)
            != Some(self.settings.tenant_id.as_str())
        {
            return Err(problem(403, "Forbidden", "AuthenticationUnsuccessful"));
        }
        match self.limiter.admit() {
            Ok((admitted, guard)) => {
                let mut view = self.limit_view.lock().unwrap_or_else(|p| p.into_inner());
                view.minute = admitted.remaining.first().copied().unwrap_or(0);
                view.day = admitted.remaining.get(1).copied().unwrap_or(0);
                let now = Instant::now();
                while view
                    .app_calls
                    .front()
                    .is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(60))
                {
                    view.app_calls.pop_front();
                }
                view.app_calls.push_back(now);
                Ok(Some(guard))
            }
            Err(_) if !knobs.enforce_limits => Ok(None),
            Err(Refusal::Window { index, retry_after }) => {
                let mut view = self.limit_view.lock().unwrap_or_else(|p| p.into_inner());
                if index == 0 {
                    view.minute = 0;
                    Err(too_many("minute", retry_after))
                } else {
                    view.day = 0;
                    Err(too_many("daily", retry_after))
                }
            }
            Err(Refusal::Concurrency) => Err(too_many("concurrent", Duration::from_secs(1))),
        }
    }

    fn with_limit_headers(&self, answer: Answer) -> Answer {
        let view = self.limit_view.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let app_used = view
            .app_calls
            .iter()
            .filter(|t| now.duration_since(**t) < Duration::from_secs(60))
            .count();
        answer
            .header("X-MinLimit-Remaining", view.minute)
            .header("X-DayLimit-Remaining", view.day)
            .header(
                "X-AppMinLimit-Remaining",
                APP_PER_MINUTE.saturating_sub(app_used),
            )
    }

    fn dispatch(&self, call: &Call) -> Answer {
        let segments: Vec<&str> = call
            .inner_path
            .trim_matches('/')
            .split('/')
            .filter(|s| !s.is_empty())
            .collect();
        if segments.len() == 1 && segments[0].eq_ignore_ascii_case("organisation") {
            return match call.method {
                Method::GET => self.organisation(),
                _ => problem(
                    405,
                    "MethodNotAllowed",
                    "The method is not allowed on this resource",
                ),
            };
        }
        let kind = match segments.first().map(|s| s.to_ascii_lowercase()) {
            Some(s) if s == "contacts" => Some(Kind::Contacts),
            Some(s) if s == "invoices" => Some(Kind::Invoices),
            Some(s) if s == "payments" => None,
            _ => {
                return problem(
                    404,
                    "NotFound",
                    "The resource you're looking for cannot be found",
                )
            }
        };
        let id = segments.get(1).copied();
        if segments.len() > 2 {
            return problem(
                404,
                "NotFound",
                "The resource you're looking for cannot be found",
            );
        }
        match (kind, &call.method, id) {
            (Some(kind), &Method::GET, None) => self.list(kind, call),
            (Some(kind), &Method::GET, Some(id)) => self.read_one(kind, id),
            (Some(kind), &Method::PUT | &Method::POST, id) => {
                self.idempotent(call, |state| write(state, kind, call, id))
            }
            (None, &Method::PUT | &Method::POST, None) => {
                self.idempotent(call, |state| pay(state, call))
            }
            _ => problem(
                405,
                "MethodNotAllowed",
                "The method is not allowed on this resource",
            ),
        }
    }

    /// `GET /Organisation`: the tenant's organisation, as Xero describes it (the
    /// fields a connection check reads; Tandem's probe).
    fn organisation(&self) -> Answer {
        let organisation = json!({
            "OrganisationID": self.settings.tenant_id,
            "Name": "Tandem Simulated Organisation",
            "LegalName": "Tandem Simulated Organisation",
            "Version": "GLOBAL",
            "OrganisationType": "COMPANY",
            "BaseCurrency": "USD",
            "CountryCode": "US",
            "IsDemoCompany": false,
            "OrganisationStatus": "ACTIVE",
        });
        Answer::json(200, &envelope("Organisations", vec![organisation], None))
    }

    fn list(&self, kind: Kind, call: &Call) -> Answer {
        let fields = match kind {
            Kind::Contacts => CONTACT_FIELDS,
            Kind::Invoices => INVOICE_FIELDS,
        };
        let query = match ListQuery::parse(&call.pairs, call.if_modified_since.as_deref(), fields) {
            Ok(q) => q,
            Err(message) => return validation(&message, Vec::new()),
        };
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let store = &state.store;
        let chosen = match kind {
            Kind::Contacts => store.select_contacts(&query),
            Kind::Invoices => store.select_invoices(&query),
        };
        let item_count = chosen.len();
        let page_count = item_count.div_ceil(query.page_size);
        let items = chosen
            .iter()
            .skip((query.page - 1).saturating_mul(query.page_size))
            .take(query.page_size)
            .map(|&i| render(store, kind, i))
            .collect();
        let pagination = json!({
            "page": query.page,
            "pageSize": query.page_size,
            "pageCount": page_count,
            "itemCount": item_count,
        });
        Answer::json(200, &envelope(kind.collection(), items, Some(pagination)))
    }

    /// `GET /Contacts/{ContactID or ContactNumber}`, `GET /Invoices/{InvoiceID or
    /// InvoiceNumber}`, as Xero allows either.
    fn read_one(&self, kind: Kind, id: &str) -> Answer {
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let store = &state.store;
        let found = match kind {
            Kind::Contacts => store.contact_index(id).or_else(|| {
                store
                    .contacts
                    .iter()
                    .position(|c| c.number.as_deref() == Some(id))
            }),
            Kind::Invoices => store.invoice_index(id).or_else(|| {
                store
                    .invoices
                    .iter()
                    .position(|i| i.number.eq_ignore_ascii_case(id))
            }),
        };
        match found {
            Some(i) => Answer::json(
                200,
                &envelope(kind.collection(), vec![render(store, kind, i)], None),
            ),
            None => problem(
                404,
                "NotFound",
                "The resource you're looking for cannot be found",
            ),
        }
    }

    /// Runs a write under the state lock, answering a stored first answer for a
    /// repeated `Idempotency-Key` (per method and path) instead of writing again.
    fn idempotent(&self, call: &Call, write: impl FnOnce(&mut State) -> Written) -> Answer {
        if let Some(key) = &call.idempotency_key {
            if key.len() > MAX_IDEMPOTENCY_KEY {
                return validation(
                    "Idempotency-Key must be at most 128 characters.",
                    Vec::new(),
                );
            }
        }
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let slot = call.idempotency_key.as_ref().map(|key| {
            (
                call.method.to_string(),
                call.inner_path.to_ascii_lowercase(),
                key.clone(),
            )
        });
        let now = Instant::now();
        state
            .idempotency
            .retain(|_, (at, _)| now.duration_since(*at) < super::IDEMPOTENCY_TTL);
        if let Some(slot) = &slot {
            if let Some((_, answer)) = state.idempotency.get(slot) {
                return answer.clone();
            }
        }
        let Written {
            answer,
            changes,
            edits,
        } = write(&mut state);
        self.raise(&changes);
        for edit in edits {
            self.journal.record(Actor::Api, edit);
        }
        if let Some(slot) = slot {
            state.idempotency.insert(slot, (now, answer.clone()));
        }
        answer
    }

    /// Answers `POST /connect/token`.
    pub(crate) async fn serve_token(self: Arc<Self>, mut req: Request) -> Response {
        let body = req.take_body().into_string().await.unwrap_or_default();
        let form = decode_pairs(&body);
        let authorization = header(&req, "authorization");
        let answer = self
            .tokens
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .grant(authorization.as_deref(), &form);
        Answer::json(answer.status, &answer.body)
            .header("Cache-Control", "no-store")
            .into_response()
    }

    /// `GET /identity/connect/authorize` shows the consent form; `POST` is its answer.
    pub(crate) async fn serve_authorize(self: Arc<Self>, mut req: Request) -> Response {
        let client_id = self.settings.client_id.clone();
        let tokens = || self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        if req.method() == Method::POST {
            let body = req.take_body().into_string().await.unwrap_or_default();
            let form = decode_pairs(&body);
            return tokens().consent.decide("Xero", &client_id, &form);
        }
        let query = decode_pairs(req.uri().query().unwrap_or_default());
        if query
            .iter()
            .any(|(k, v)| k == "response_type" && v != "code")
            || !query.iter().any(|(k, _)| k == "response_type")
        {
            return Answer::json(400, &json!({"error": "unsupported_response_type"}))
                .into_response();
        }
        tokens().consent.page("Xero", &client_id, &query)
    }

    /// Answers `POST /connect/revocation`.
    pub(crate) async fn serve_revocation(self: Arc<Self>, mut req: Request) -> Response {
        let body = req.take_body().into_string().await.unwrap_or_default();
        let form = decode_pairs(&body);
        let authorization = header(&req, "authorization");
        let answer = self
            .tokens
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .revoke(authorization.as_deref(), &form);
        Answer::json(answer.status, &answer.body).into_response()
    }

    /// `GET /connections`: the organisations the bearer token's grant reaches, the
    /// simulated one last.
    pub(crate) fn serve_connections(&self, req: Request) -> Response {
        let authorization = header(&req, "authorization");
        let mut tokens = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        let grant = match tokens.grant_of(authorization.as_deref()) {
            Ok(grant) => grant,
            Err(problem_detail) => {
                return problem(401, "Unauthorized", &problem_detail.0).into_response()
            }
        };
        let now = chrono::Utc::now()
            .format("%Y-%m-%dT%H:%M:%S%.6f")
            .to_string();
        let organisations = self
            .settings
            .other_organisations
            .iter()
            .map(|o| (o.tenant_id.as_str(), o.name.as_str()))
            .chain([(
                self.settings.tenant_id.as_str(),
                self.settings.tenant_name.as_str(),
            )]);
        let listed: Vec<Value> = organisations
            .map(|(tenant, name)| {
                json!({
                    "id": tokens.connection_id(grant, tenant),
                    "authEventId": format!("00000000-0000-0000-0000-{grant:012}"),
                    "tenantId": tenant,
                    "tenantType": "ORGANISATION",
                    "tenantName": name,
                    "createdDateUtc": now,
                    "updatedDateUtc": now,
                })
            })
            .collect();
        Answer::json(200, &Value::Array(listed)).into_response()
    }

    pub(crate) fn serve_view(&self, customers: bool) -> Response {
        let body = if customers {
            serde_json::to_value(self.customers())
        } else {
            serde_json::to_value(self.invoices())
        };
        Answer::json(200, &body.unwrap_or(Value::Null)).into_response()
    }
}

fn too_many(problem_kind: &str, wait: Duration) -> Answer {
    problem(
        429,
        "Too Many Requests",
        &format!("Rate limit exceeded: {problem_kind}"),
    )
    .header("Retry-After", retry_after_secs(wait))
    .header("X-Rate-Limit-Problem", problem_kind)
}

fn render(store: &Store, kind: Kind, index: usize) -> Value {
    match kind {
        Kind::Contacts => store.contacts[index].to_json(),
        Kind::Invoices => store.invoice_json(index),
    }
}

/// The items of a write body: `{"Contacts": [...]}`, or one bare item.
fn items(body: &[u8], collection: &str) -> Result<Vec<Value>, Answer> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        Answer::json(
            400,
            &json!({
                "ErrorNumber": 14,
                "Type": "PostDataInvalidException",
                "Message": format!("The request body could not be read as JSON: {e}"),
            }),
        )
    })?;
    match value {
        Value::Object(mut o) => match o.remove(collection) {
            Some(Value::Array(items)) => Ok(items),
            Some(_) => Err(validation(
                &format!("{collection} must be a list."),
                Vec::new(),
            )),
            None => Ok(vec![Value::Object(o)]),
        },
        Value::Array(items) => Ok(items),
        _ => Err(validation(
            "The request body must be a JSON object.",
            Vec::new(),
        )),
    }
}

/// A refused item: what was sent, flagged with the reasons.
fn refused(item: &Value, messages: Vec<String>) -> Value {
    let mut o = item.as_object().cloned().unwrap_or_default();
    o.insert("StatusAttributeString".into(), "ERROR".into());
    o.insert("HasValidationErrors".into(), true.into());
    o.insert(
        "ValidationErrors".into(),
        Value::Array(
            messages
                .into_iter()
                .map(|m| json!({ "Message": m }))
                .collect(),
        ),
    );
    Value::Object(o)
}

/// Applies a batch to a copy of the store; commits it unless errors are summarised
/// and some item was refused, in which case nothing changes and the answer is 400.
/// Each item that changed a record is one journal edit, against the record as the
/// items before it left it.
fn batch(
    state: &mut State,
    collection: &str,
    items: Vec<Value>,
    call: &Call,
    mut apply: impl FnMut(&mut Store, &Value) -> Result<(Value, Option<Change>), Vec<String>>,
) -> Written {
    if items.len() > MAX_BATCH {
        return Written::refused(validation(
            &format!("A maximum of {MAX_BATCH} {collection} can be sent in one request."),
            Vec::new(),
        ));
    }
    // Xero summarises unless told `summarizeErrors=false`.
    let summarize = flag(&call.pairs, "summarizeErrors") != Some(false);
    let mut work = state.store.clone();
    let mut answers = Vec::with_capacity(items.len());
    let mut refusals = Vec::new();
    let mut changes = Vec::new();
    let mut edits = Vec::new();
    // Each record's view after the last item that changed it.
    let mut latest: HashMap<(Category, String), Option<RecordView>> = HashMap::new();
    for item in &items {
        match apply(&mut work, item) {
            Ok((mut rendered, change)) => {
                if let Some(o) = rendered.as_object_mut() {
                    o.insert("HasValidationErrors".into(), false.into());
                }
                answers.push(rendered);
                if let Some(change) = change {
                    let key = (change.category, change.id.clone());
                    let before = latest
                        .remove(&key)
                        .unwrap_or_else(|| state.store.view(change.category, &change.id));
                    let after = work.view(change.category, &change.id);
                    edits.extend(Edit::between(before.as_ref(), after.as_ref()));
                    latest.insert(key, after);
                    changes.push(change);
                }
            }
            Err(messages) => {
                let r = refused(item, messages);
                refusals.push(r.clone());
                answers.push(r);
            }
        }
    }
    if summarize && !refusals.is_empty() {
        let answer = Answer::json(
            400,
            &json!({
                "ErrorNumber": 10,
                "Type": "ValidationException",
                "Message": "A validation exception occurred",
                "Elements": refusals,
            }),
        );
        return Written::refused(answer);
    }
    state.store = work;
    Written {
        answer: Answer::json(200, &envelope(collection, answers, None)),
        changes,
        edits,
    }
}

fn write(state: &mut State, kind: Kind, call: &Call, path_id: Option<&str>) -> Written {
    let mut items = match items(&call.body, kind.collection()) {
        Ok(items) => items,
        Err(answer) => return Written::refused(answer),
    };
    // `POST /Contacts/{id}` updates that record.
    if let Some(id) = path_id {
        for item in &mut items {
            if let Some(o) = item.as_object_mut() {
                o.insert(kind.id_field().into(), id.into());
            }
        }
    }
    batch(state, kind.collection(), items, call, |store, item| {
        let (index, change) = match kind {
            Kind::Contacts => contact_writes::upsert(store, item)?,
            Kind::Invoices => invoice_writes::upsert(store, item)?,
        };
        Ok((render(store, kind, index), change))
    })
}

fn pay(state: &mut State, call: &Call) -> Written {
    let items = match items(&call.body, "Payments") {
        Ok(items) => items,
        Err(answer) => return Written::refused(answer),
    };
    batch(state, "Payments", items, call, |store, item| {
        let invoice_id = item
            .pointer("/Invoice/InvoiceID")
            .and_then(Value::as_str)
            .ok_or_else(
                || vec!["Payment must specify an Invoice with an InvoiceID.".to_string()],
            )?;
        let index = store.invoice_index(invoice_id).ok_or_else(|| {
            vec![format!(
                "Invoice with InvoiceID {invoice_id} could not be found."
            )]
        })?;
        let amount = item
            .get("Amount")
            .and_then(super::fields::read_decimal)
            .ok_or_else(|| vec!["Payment Amount must be a number.".to_string()])?;
        let date = match item.get("Date").and_then(Value::as_str) {
            Some(text) => dates::parse_day(text)
                .ok_or_else(|| vec![format!("Payment Date {text} is not a valid date.")])?,
            None => chrono::Utc::now().date_naive(),
        };
        let change = invoice_writes::pay(store, index, amount).map_err(|e| vec![e])?;
        let invoice = &store.invoices[index];
        let account = item
            .pointer("/Account/Code")
            .and_then(Value::as_str)
            .unwrap_or("090");
        let rendered = json!({
            "PaymentID": uuid::Uuid::new_v4().to_string(),
            "Date": dates::day(date),
            "Amount": super::fields::number(amount),
            "PaymentType": "ACCRECPAYMENT",
            "Status": "AUTHORISED",
            "Account": { "Code": account },
            "Invoice": {
                "InvoiceID": invoice.id,
                "InvoiceNumber": invoice.number,
                "Status": invoice.status.as_str(),
            },
            "UpdatedDateUTC": dates::xero_timestamp(invoice.updated_ms),
        });
        Ok((rendered, Some(change)))
    })
}

/// How many records a call names: the items of a batch write, the ids or ORed terms
/// of a read; 0 for a listing. Shows how full the engine's batches are.
fn items_named(pairs: &[(String, String)], body: &[u8]) -> usize {
    if let Ok(Value::Object(fields)) = serde_json::from_slice::<Value>(body) {
        return fields
            .values()
            .filter_map(Value::as_array)
            .map(Vec::len)
            .sum();
    }
    let named = |key: &str| pairs.iter().find(|(k, _)| k.eq_ignore_ascii_case(key));
    if let Some((_, ids)) = named("IDs") {
        return ids.split(',').filter(|id| !id.is_empty()).count();
    }
    if let Some((_, clause)) = named("where") {
        return clause.matches(" OR ").count() + 1;
    }
    0
}

#[cfg(test)]
mod tests {
    use super::items_named;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_call_names_its_batch_items_ids_or_terms() {
        let body = br#"{"Contacts":[{"Name":"A"},{"Name":"B"},{"Name":"C"}]}"#;
        assert_eq!(items_named(&[], body), 3);
        assert_eq!(items_named(&pairs(&[("IDs", "a,b")]), b""), 2);
        let clause = r#"EmailAddress=="a@x" OR EmailAddress=="b@x" OR EmailAddress=="c@x""#;
        assert_eq!(items_named(&pairs(&[("where", clause)]), b""), 3);
        assert_eq!(items_named(&pairs(&[("page", "1")]), b""), 0);
    }
}
