//! The Xero Accounting connector: customers as Contacts, invoices as ACCREC Invoices.
//!
//! Every call names the tenant (`xero-tenant-id`) and passes the connection's rate
//! gate (60 calls in any minute, 5 at once, 5,000 a day per tenant). Reads by id,
//! look-ups and writes that arrive together leave as one call each (`IDs=`, a `where`
//! of ORed terms, `PUT`/`POST` of up to 50 with `summarizeErrors=false`), and each
//! change gets its own item's outcome. Every write carries an `Idempotency-Key`.

mod batch;
pub mod limits;
pub mod mapping;
mod outbound;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use reqwest::header::HeaderMap;
use reqwest::Method;
use serde_json::{json, Map, Value};

use self::batch::{Batches, Term, UpdateItem};
use super::health::{ConnectionHealth, ProbeReport};
use super::http::client::{header_number, LimitReport};
use super::http::Coalescer;
use super::http::{
    ApiClient, ApiClientParts, ApiRequest, Pace, RateGate, RequestRecorder, TokenSource, Window,
};
use super::{ChangePage, Connector, ConnectorError, ExternalRecord, ReadAt, Written};
use crate::domain::{EntityType, FieldMap, System};

/// Xero's token endpoint, unless settings name another.
pub const TOKEN_URL: &str = "https://identity.xero.com/connect/token";
pub const PAGE_SIZE: usize = 100;

/// Xero's published limits per tenant.
#[derive(Debug, Clone, Copy)]
pub struct XeroLimits {
    pub per_minute: usize,
    pub at_once: usize,
    pub per_day: usize,
}

impl Default for XeroLimits {
    fn default() -> Self {
        Self {
            per_minute: 60,
            at_once: 5,
            per_day: 5000,
        }
    }
}

pub struct XeroParts {
    pub base_url: String,
    pub tenant_id: String,
    pub auth: Arc<dyn TokenSource>,
    pub http: reqwest::Client,
    pub limits: XeroLimits,
    /// How long single requests wait for others to share their call.
    pub batch_window: Duration,
    pub recorder: Option<Arc<RequestRecorder>>,
}

pub struct XeroConnector {
    client: Arc<ApiClient>,
    contacts: Batches,
    invoices: Batches,
}

/// The kind of Xero record an entity type is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Contacts,
    Invoices,
}

impl Kind {
    fn of(entity: EntityType) -> Self {
        match entity {
            EntityType::Customer => Kind::Contacts,
            EntityType::Invoice => Kind::Invoices,
        }
    }

    pub(crate) fn path(self) -> &'static str {
        match self {
            Kind::Contacts => "/Contacts",
            Kind::Invoices => "/Invoices",
        }
    }

    /// The key of the list in request and answer bodies.
    pub(crate) fn collection(self) -> &'static str {
        match self {
            Kind::Contacts => "Contacts",
            Kind::Invoices => "Invoices",
        }
    }

    pub(crate) fn id_key(self) -> &'static str {
        match self {
            Kind::Contacts => "ContactID",
            Kind::Invoices => "InvoiceID",
        }
    }

    pub(crate) fn stamp_key(self) -> &'static str {
        match self {
            Kind::Contacts => "ContactNumber",
            Kind::Invoices => "Reference",
        }
    }

    pub(crate) fn parse(self, item: &Value) -> Option<ExternalRecord> {
        match self {
            Kind::Contacts => mapping::contact_to_record(item),
            Kind::Invoices => mapping::invoice_to_record(item),
        }
    }

    fn body(self, fields: &FieldMap) -> Result<Map<String, Value>, ConnectorError> {
        match self {
            Kind::Contacts => Ok(mapping::contact_body(fields)),
            Kind::Invoices => mapping::invoice_body(fields).map_err(unsendable),
        }
    }

    /// A body as it will be sent, checked against what Xero takes (`outbound.rs`).
    fn checked(self, body: Map<String, Value>) -> Result<Map<String, Value>, ConnectorError> {
        outbound::check(self, &body).map_err(unsendable)?;
        Ok(body)
    }

    /// Xero names records by UUID; anything else in a path, `IDs=` or a body's id is
    /// refused by Xero, or worse read as something else (a path takes a
    /// `ContactNumber` too).
    fn check_id(self, id: &str) -> Result<(), String> {
        if outbound::is_xero_id(id) {
            return Ok(());
        }
        Err(format!(
            "Xero ids are UUIDs: {} is not a {}",
            super::unread::shown(id),
            self.id_key()
        ))
    }
}

/// A change Tandem will not send to Xero, and why.
fn unsendable(message: String) -> ConnectorError {
    ConnectorError::Unsendable {
        system: System::Finance,
        message,
    }
}

/// Limit headers at zero pause the connection: another process (or app) spent the
/// budget this process's own count does not see. The day's remaining calls are kept
/// for the admin API; a 429 naming the day (`X-Rate-Limit-Problem: day`; `Daily`
/// and `DayLimit` are seen too) is a spent daily budget.
fn read_limits(headers: &HeaderMap) -> LimitReport {
    let day = header_number(headers, "x-daylimit-remaining");
    let minute = header_number(headers, "x-minlimit-remaining");
    let app = header_number(headers, "x-appminlimit-remaining");
    let pause = if day == Some(0) {
        Some(Duration::from_secs(60))
    } else {
        (minute == Some(0) || app == Some(0)).then_some(Duration::from_secs(2))
    };
    let daily_refusal = headers
        .get("x-rate-limit-problem")
        .and_then(|v| v.to_str().ok())
        .map(str::to_ascii_lowercase)
        .is_some_and(|problem| problem.contains("day") || problem.contains("daily"));
    LimitReport {
        pause,
        day_remaining: day.and_then(|d| u64::try_from(d).ok()),
        daily_refusal,
    }
}

/// The message a person should read: the validation messages, else Xero's own.
pub(crate) fn read_error(body: &Value) -> Option<String> {
    let validation: Vec<String> = body
        .get("Elements")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .flat_map(validation_messages)
        .collect();
    if !validation.is_empty() {
        return Some(validation.join("; "));
    }
    ["Message", "Detail", "Title", "error"]
        .iter()
        .find_map(|k| body.get(*k).and_then(Value::as_str).map(str::to_string))
}

pub(crate) fn validation_messages(item: &Value) -> Vec<String> {
    item.get("ValidationErrors")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|e| e.get("Message").and_then(Value::as_str).map(str::to_string))
        .collect()
}

impl XeroConnector {
    pub fn new(parts: XeroParts) -> Self {
        let limits = parts.limits;
        let gate = RateGate::paced(
            vec![
                Window {
                    max: limits.per_minute,
                    per: Duration::from_secs(60),
                },
                Window {
                    max: limits.per_day,
                    per: Duration::from_secs(24 * 3600),
                },
            ],
            // Live work: a quarter of the minute's budget may go at once, the rest is
            // paced so later live changes find budget and batches fill while they
            // wait. Bulk work may spend the whole minute at once (gate.rs).
            Some(Pace {
                per_second: limits.per_minute as f64 / 60.0,
                burst: (limits.per_minute / 4).max(limits.at_once) as f64,
            }),
            limits.at_once,
        );
        let client = Arc::new(ApiClient::new(ApiClientParts {
            system: System::Finance,
            http: parts.http,
            base_url: parts.base_url,
            auth: parts.auth,
            gate,
            fixed_headers: vec![("xero-tenant-id".into(), parts.tenant_id)],
            limits: read_limits,
            errors: read_error,
            recorder: parts.recorder,
        }));
        // One call in flight per kind of batch: the next batch fills while it is out.
        let in_flight = 1;
        Self {
            contacts: Batches::new(
                client.clone(),
                Kind::Contacts,
                parts.batch_window,
                in_flight,
            ),
            invoices: Batches::new(
                client.clone(),
                Kind::Invoices,
                parts.batch_window,
                in_flight,
            ),
            client,
        }
    }

    fn batches(&self, entity: EntityType) -> &Batches {
        match Kind::of(entity) {
            Kind::Contacts => &self.contacts,
            Kind::Invoices => &self.invoices,
        }
    }

    pub fn gate(&self) -> &Arc<RateGate> {
        self.client.gate()
    }

    pub fn health(&self) -> &Arc<ConnectionHealth> {
        self.client.health()
    }
}

/// One item's outcome from its batch; a batch dropped while the process stops is a
/// connection failure, retried later.
async fn ask<I: Send + 'static, T: Send + 'static>(
    batch: &Coalescer<I, Result<T, ConnectorError>>,
    item: I,
) -> Result<T, ConnectorError> {
    batch.submit(item).await.unwrap_or_else(|| {
        Err(ConnectorError::Connection {
            system: System::Finance,
            message: "the batch was dropped while the process stopped".into(),
        })
    })
}

impl XeroConnector {
    async fn write_update(
        &self,
        entity: EntityType,
        id: &str,
        body: Map<String, Value>,
        key: &str,
        read: Option<&ReadAt>,
    ) -> Result<Written, ConnectorError> {
        Kind::of(entity).check_id(id).map_err(unsendable)?;
        let item = UpdateItem {
            id: id.to_string(),
            body,
            key: key.to_string(),
            read: read.cloned(),
        };
        ask(&self.batches(entity).updates, item).await
    }

    async fn find(
        &self,
        entity: EntityType,
        term: Term,
    ) -> Result<Option<ExternalRecord>, ConnectorError> {
        ask(&self.batches(entity).finds, term).await
    }
}

#[async_trait]
impl Connector for XeroConnector {
    fn system(&self) -> System {
        System::Finance
    }

    fn check_id(&self, entity: EntityType, id: &str) -> Result<(), String> {
        Kind::of(entity).check_id(id)
    }

    /// `GET /Organisation`: names the tenant, needs only a settings read scope, and
    /// exists on every organisation, so a 404 means the base URL is wrong.
    async fn probe(&self) -> ProbeReport {
        self.client
            .probe(&ApiRequest::new(Method::GET, "/Organisation"))
            .await
    }

    async fn get(
        &self,
        entity: EntityType,
        id: &str,
    ) -> Result<Option<ExternalRecord>, ConnectorError> {
        Kind::of(entity).check_id(id).map_err(unsendable)?;
        ask(&self.batches(entity).reads, id.to_string()).await
    }

    async fn list_changed(
        &self,
        entity: EntityType,
        since: Option<DateTime<Utc>>,
        page: Option<&str>,
    ) -> Result<ChangePage, ConnectorError> {
        let kind = Kind::of(entity);
        let page: usize = page.and_then(|p| p.parse().ok()).unwrap_or(1);
        let mut request = ApiRequest::new(Method::GET, kind.path())
            .query("page", page.to_string())
            .query("pageSize", PAGE_SIZE.to_string())
            .query("includeArchived", "true")
            .query("order", "UpdatedDateUTC ASC");
        if let Some(since) = since {
            request = request.header("If-Modified-Since", mapping::modified_since(since));
        }
        let answer = self.client.send(&request).await?;
        let items = answer
            .body
            .get(kind.collection())
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let full = items.len() >= PAGE_SIZE;
        Ok(ChangePage {
            records: items.iter().filter_map(|i| kind.parse(i)).collect(),
            next: full.then(|| (page + 1).to_string()),
        })
    }

    async fn create(
        &self,
        entity: EntityType,
        fields: &FieldMap,
        stamp: &str,
        idempotency_key: &str,
    ) -> Result<Written, ConnectorError> {
        let kind = Kind::of(entity);
        let mut body = kind.body(fields)?;
        body.insert(kind.stamp_key().into(), json!(stamp));
        if kind == Kind::Invoices {
            body.insert("Type".into(), json!("ACCREC"));
            body.entry("Status").or_insert(json!("DRAFT"));
        }
        let item = batch::NewItem {
            body: kind.checked(body)?,
            key: idempotency_key.to_string(),
        };
        ask(&self.batches(entity).creates, item).await
    }

    async fn update(
        &self,
        entity: EntityType,
        id: &str,
        fields: &FieldMap,
        idempotency_key: &str,
    ) -> Result<Written, ConnectorError> {
        let kind = Kind::of(entity);
        let body = kind.checked(kind.body(fields)?)?;
        self.write_update(entity, id, body, idempotency_key, None)
            .await
    }

    async fn update_unless_changed(
        &self,
        entity: EntityType,
        id: &str,
        fields: &FieldMap,
        idempotency_key: &str,
        read: &ReadAt,
    ) -> Result<Written, ConnectorError> {
        let kind = Kind::of(entity);
        let body = kind.checked(kind.body(fields)?)?;
        self.write_update(entity, id, body, idempotency_key, Some(read))
            .await
    }

    async fn archive(
        &self,
        entity: EntityType,
        id: &str,
        idempotency_key: &str,
    ) -> Result<Written, ConnectorError> {
        let mut body = Map::new();
        match Kind::of(entity) {
            Kind::Contacts => body.insert("ContactStatus".into(), json!("ARCHIVED")),
            // Only a draft can be deleted; Xero refuses the others and a person sees why.
            Kind::Invoices => body.insert("Status".into(), json!("DELETED")),
        };
        self.write_update(entity, id, body, idempotency_key, None)
            .await
    }

    async fn find_by_stamp(
        &self,
        entity: EntityType,
        stamp: &str,
    ) -> Result<Option<ExternalRecord>, ConnectorError> {
        let term = Term {
            field: Kind::of(entity).stamp_key(),
            value: stamp.to_string(),
            live_only: false,
        };
        self.find(entity, term).await
    }

    async fn find_by_natural_key(
        &self,
        entity: EntityType,
        fields: &FieldMap,
    ) -> Result<Option<ExternalRecord>, ConnectorError> {
        let (field, canonical) = match Kind::of(entity) {
            Kind::Contacts => ("EmailAddress", "email"),
            Kind::Invoices => ("InvoiceNumber", "number"),
        };
        let Some(value) = fields.get(canonical).and_then(Value::as_str) else {
            return Ok(None);
        };
        let term = Term {
            field,
            value: value.to_string(),
            live_only: true,
        };
        self.find(entity, term).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, value.parse().expect("a header value"));
        }
        map
    }

    #[test]
    fn a_429_naming_the_day_is_a_spent_daily_budget_however_it_is_spelt() {
        for problem in ["day", "Daily", "DayLimit"] {
            let report = read_limits(&headers(&[
                ("x-rate-limit-problem", problem),
                ("x-daylimit-remaining", "0"),
            ]));
            assert!(report.daily_refusal, "{problem}");
            assert_eq!(report.day_remaining, Some(0));
            assert_eq!(report.pause, Some(Duration::from_secs(60)));
        }
        let minute = read_limits(&headers(&[
            ("x-rate-limit-problem", "minute"),
            ("x-daylimit-remaining", "4200"),
            ("x-minlimit-remaining", "0"),
        ]));
        assert!(!minute.daily_refusal);
        assert_eq!(minute.day_remaining, Some(4200));
        assert_eq!(minute.pause, Some(Duration::from_secs(2)));
        assert_eq!(read_limits(&HeaderMap::new()), LimitReport::default());
    }
}
