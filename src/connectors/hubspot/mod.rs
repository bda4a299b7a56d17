//! The HubSpot CRM connector: customers as contacts or companies (a setting), invoices
//! as won deals with their line items, and status, totals and payments written back
//! to the deal.
//!
//! Calls pass the connection's rate gate (100 calls in any 10 seconds) and searches
//! also the search gate (5 a second). Reads, look-ups, creates and updates that arrive
//! together leave as one batch call (up to 100 items, answered 200 or 207 with
//! per-item errors); each change gets its own item's outcome. Reads also ask for the
//! history of the properties behind the fields that may clash, to tell when each field
//! last changed (`history.rs`).

mod batch;
mod deals;
pub mod history;
pub mod mapping;
pub mod types;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use reqwest::header::HeaderMap;
use reqwest::Method;
use serde_json::{json, Map, Value};

use self::batch::{Batches, Term};
use self::history::FieldHistory;
use self::mapping::{CustomerObject, DEAL_PROPERTIES, WON};
use super::health::{ConnectionHealth, ProbeReport};
use super::http::client::{header_number, LimitReport};
use super::http::{
    ApiClient, ApiClientParts, ApiRequest, Coalescer, Pace, RateGate, RequestRecorder, Stage,
    TokenSource, Window,
};
use super::{ChangePage, Connector, ConnectorError, Exchange, ExternalRecord, ReadAt, Written};
use crate::domain::{EntityType, FieldMap, System};

/// HubSpot's search stops at this many results; a longer listing restarts from the
/// last modification date it reached.
pub const SEARCH_CAP: usize = 10_000;
const PAGE: usize = 100;

/// HubSpot's published limits per app and account.
#[derive(Debug, Clone, Copy)]
pub struct HubSpotLimits {
    pub per_ten_seconds: usize,
    pub searches_per_second: usize,
}

impl Default for HubSpotLimits {
    fn default() -> Self {
        Self {
            per_ten_seconds: 100,
            searches_per_second: 5,
        }
    }
}

/// The canonical fields whose change times reads ask for, per entity: those that may
/// clash and be settled by the later change (two-way fields under `last_write_wins`).
/// None by default: history is asked for only when it decides something.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TimedFields {
    pub customer: Vec<String>,
    pub invoice: Vec<String>,
}

pub struct HubSpotParts {
    pub base_url: String,
    pub auth: Arc<dyn TokenSource>,
    pub http: reqwest::Client,
    pub customers: CustomerObject,
    pub timed_fields: TimedFields,
    pub limits: HubSpotLimits,
    pub batch_window: Duration,
    pub recorder: Option<Arc<RequestRecorder>>,
}

pub struct HubSpotConnector {
    client: Arc<ApiClient>,
    search_gate: Arc<RateGate>,
    customers: CustomerObject,
    customer_history: Arc<FieldHistory>,
    deal_history: Arc<FieldHistory>,
    customer_batches: Batches,
    deal_batches: Batches,
    /// Deals with their customers and line items.
    deal_reads: Coalescer<String, deals::Found>,
}

/// A remaining count at zero pauses the connection until the window turns.
fn read_limits(headers: &HeaderMap) -> LimitReport {
    let daily = header_number(headers, "x-hubspot-ratelimit-daily-remaining");
    let pause = if daily == Some(0) {
        Some(Duration::from_secs(60))
    } else if header_number(headers, "x-hubspot-ratelimit-remaining") == Some(0) {
        let interval = header_number(headers, "x-hubspot-ratelimit-interval-milliseconds")
            .unwrap_or(10_000)
            .clamp(100, 10_000);
        Some(Duration::from_millis(interval as u64 / 10))
    } else {
        None
    };
    LimitReport {
        pause,
        day_remaining: daily.and_then(|d| u64::try_from(d).ok()),
        // A private app's daily limit; OAuth apps have none.
        daily_refusal: daily == Some(0),
    }
}

fn read_error(body: &Value) -> Option<String> {
    body.get("message")
        .and_then(Value::as_str)
        .map(str::to_string)
}

fn ms(version: &str) -> Option<i64> {
    DateTime::parse_from_rfc3339(version)
        .ok()
        .map(|t| t.timestamp_millis())
}

impl HubSpotConnector {
    /// An update, checked against `read` when it is given (see `batch.rs`).
    async fn write_update(
        &self,
        entity: EntityType,
        id: &str,
        fields: &FieldMap,
        idempotency_key: &str,
        read: Option<&ReadAt>,
    ) -> Result<Written, ConnectorError> {
        let properties = match entity {
            EntityType::Customer => checked(
                self.customers.singular(),
                mapping::customer_properties(self.customers, fields),
            )?,
            EntityType::Invoice => checked("deal", mapping::deal_properties(fields))?,
        };
        if properties.is_empty() {
            // Nothing HubSpot holds (a customer association change): read it as it is.
            let record = self
                .get(entity, id)
                .await?
                .ok_or_else(|| ConnectorError::Rejected {
                    system: System::Crm,
                    status: 404,
                    message: format!("{entity} {id} not found in HubSpot"),
                    exchange: Exchange::default(),
                })?;
            return Ok(Written {
                record,
                exchange: Exchange::default(),
            });
        }
        self.batches(entity)
            .updates
            .submit(batch::UpdateItem {
                id: id.to_string(),
                properties,
                key: idempotency_key.to_string(),
                read: read.cloned(),
            })
            .await
            .unwrap_or_else(|| Err(stopped()))
    }

    pub fn new(parts: HubSpotParts) -> Self {
        let gate = RateGate::paced(
            vec![Window {
                max: parts.limits.per_ten_seconds,
                per: Duration::from_secs(10),
            }],
            Some(Pace {
                per_second: parts.limits.per_ten_seconds as f64 / 10.0,
                burst: 10.0,
            }),
            16,
        );
        let search_gate = RateGate::new(
            vec![Window {
                max: parts.limits.searches_per_second,
                per: Duration::from_secs(1),
            }],
            parts.limits.searches_per_second,
        );
        let client = Arc::new(ApiClient::new(ApiClientParts {
            system: System::Crm,
            http: parts.http,
            base_url: parts.base_url,
            auth: parts.auth,
            gate,
            fixed_headers: Vec::new(),
            limits: read_limits,
            errors: read_error,
            recorder: parts.recorder,
        }));
        let customers = parts.customers;
        let customer_history = Arc::new(FieldHistory::customers(
            customers,
            &parts.timed_fields.customer,
        ));
        let deal_history = Arc::new(FieldHistory::deals(&parts.timed_fields.invoice));
        let customer_batches = Batches::new(
            client.clone(),
            search_gate.clone(),
            customers.path(),
            customers.properties(),
            &customer_history,
            parts.batch_window,
            {
                let history = customer_history.clone();
                Arc::new(move |o| mapping::customer_to_record(customers, o, &history))
            },
        );
        let deal_batches = Batches::new(
            client.clone(),
            search_gate.clone(),
            "deals",
            DEAL_PROPERTIES,
            // Deals are read through `deal_reads`, with their associations.
            &FieldHistory::default(),
            parts.batch_window,
            Arc::new(|o| mapping::deal_to_record(o, None, &[], &FieldHistory::default())),
        );
        let deal_reads = {
            let client = client.clone();
            let customers = customers.path();
            let history = deal_history.clone();
            Coalescer::gated(
                history.batch_limit(),
                parts.batch_window,
                2,
                Some(client.gate().clone()),
                Stage::Read,
                move |ids| deals::read(client.clone(), customers, history.clone(), ids),
            )
        };
        Self {
            client,
            search_gate,
            customers: parts.customers,
            customer_history,
            deal_history,
            customer_batches,
            deal_batches,
            deal_reads,
        }
    }

    pub fn health(&self) -> &Arc<ConnectionHealth> {
        self.client.health()
    }

    fn path(&self, entity: EntityType) -> &'static str {
        match entity {
            EntityType::Customer => self.customers.path(),
            EntityType::Invoice => "deals",
        }
    }

    fn batches(&self, entity: EntityType) -> &Batches {
        match entity {
            EntityType::Customer => &self.customer_batches,
            EntityType::Invoice => &self.deal_batches,
        }
    }

    fn parse(&self, entity: EntityType, object: &Value) -> Option<ExternalRecord> {
        match entity {
            EntityType::Customer => {
                mapping::customer_to_record(self.customers, object, &self.customer_history)
            }
            EntityType::Invoice => mapping::deal_to_record(object, None, &[], &self.deal_history),
        }
    }

    /// A deal with its customer and line items, read together with the others asked
    /// for at the same moment (`deals.rs`).
    async fn get_deal(&self, id: &str) -> Result<Option<ExternalRecord>, ConnectorError> {
        self.deal_reads
            .submit(id.to_string())
            .await
            .unwrap_or_else(|| Err(stopped()))
    }

    /// A look-up by one property; a deal found is read again with its customer and
    /// line items, which search answers do not carry.
    async fn find(
        &self,
        entity: EntityType,
        term: Term,
    ) -> Result<Option<ExternalRecord>, ConnectorError> {
        let found = self
            .batches(entity)
            .finds
            .submit(term)
            .await
            .unwrap_or_else(|| Err(stopped()))?;
        match (entity, found) {
            (EntityType::Invoice, Some(deal)) => match mapping::id_of(&deal) {
                Some(id) => self.get_deal(&id).await,
                None => Ok(None),
            },
            (_, found) => Ok(found.and_then(|o| self.parse(entity, &o))),
        }
    }

    /// Creates a deal associated with its customer, then its line items.
    async fn create_deal(
        &self,
        fields: &FieldMap,
        stamp: &str,
        key: &str,
    ) -> Result<Written, ConnectorError> {
        let mut properties = checked("deal", mapping::deal_properties(fields))?;
        let lines = mapping::line_item_properties(fields)
            .into_iter()
            .enumerate()
            .map(|(i, line)| checked(&format!("line item {}", i + 1), line))
            .collect::<Result<Vec<_>, _>>()?;
        properties.insert("tandem_origin_id".into(), json!(stamp));
        properties.insert("dealstage".into(), json!(WON));
        let number = fields
            .get("number")
            .and_then(Value::as_str)
            .unwrap_or(stamp);
        properties
            .entry("dealname")
            .or_insert(json!(format!("Invoice {number}")));
        let mut associations = Vec::new();
        if let Some(customer) = fields.get("customer").and_then(Value::as_str) {
            let type_id = match self.customers {
                CustomerObject::Contacts => 3,
                CustomerObject::Companies => 5,
            };
            associations.push(json!({"to": {"id": customer}, "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": type_id}]}));
        }
        let written = self
            .deal_batches
            .creates
            .submit(batch::NewItem {
                properties,
                associations,
                stamp: stamp.to_string(),
                key: key.to_string(),
            })
            .await
            .unwrap_or_else(|| Err(stopped()))?;
        let deal_id = written.record.id.clone();
        if !lines.is_empty() {
            let inputs: Vec<Value> = lines
                .into_iter()
                .map(|p| json!({"properties": p, "associations": [{"to": {"id": deal_id}, "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 20}]}]}))
                .collect();
            let request = ApiRequest::new(Method::POST, "/crm/v3/objects/line_items/batch/create")
                .json(json!({ "inputs": inputs }));
            self.client.send(&request).await?;
        }
        let record = self.get_deal(&deal_id).await?.unwrap_or(written.record);
        Ok(Written {
            record,
            exchange: written.exchange,
        })
    }
}

/// `properties` of `object` checked against their HubSpot types (`types.rs`).
fn checked(
    object: &str,
    properties: Map<String, Value>,
) -> Result<Map<String, Value>, ConnectorError> {
    types::check(object, &properties).map_err(|message| ConnectorError::Unsendable {
        system: System::Crm,
        message,
    })?;
    Ok(properties)
}

fn stopped() -> ConnectorError {
    ConnectorError::Connection {
        system: System::Crm,
        message: "the batch was dropped while the process stopped".into(),
    }
}

#[async_trait]
impl Connector for HubSpotConnector {
    fn system(&self) -> System {
        System::Crm
    }

    /// One customer object from the list (`GET /crm/v3/objects/{contacts|companies}
    /// ?limit=1`): authenticated, needs the read scope the connection needs anyway,
    /// and costs one call.
    async fn probe(&self) -> ProbeReport {
        let request = ApiRequest::new(
            Method::GET,
            format!("/crm/v3/objects/{}", self.customers.path()),
        )
        .query("limit", "1")
        .query("archived", "false");
        self.client.probe(&request).await
    }

    async fn get(
        &self,
        entity: EntityType,
        id: &str,
    ) -> Result<Option<ExternalRecord>, ConnectorError> {
        match entity {
            EntityType::Invoice => self.get_deal(id).await,
            EntityType::Customer => self
                .customer_batches
                .reads
                .submit(id.to_string())
                .await
                .unwrap_or_else(|| Err(stopped()))
                .map(|o| o.and_then(|v| self.parse(entity, &v))),
        }
    }

    /// A page token is `<after>:<since ms>`: when the search cap is near, the next page
    /// starts a new search from the last modification date reached.
    async fn list_changed(
        &self,
        entity: EntityType,
        since: Option<DateTime<Utc>>,
        page: Option<&str>,
    ) -> Result<ChangePage, ConnectorError> {
        let (after, since_ms) = match page.and_then(|p| p.split_once(':')) {
            Some((after, since)) => (
                after.parse::<usize>().unwrap_or(0),
                since.parse::<i64>().unwrap_or(0),
            ),
            None => (0, since.map(|s| s.timestamp_millis()).unwrap_or(0)),
        };
        let mut filters = vec![
            json!({"propertyName": "hs_lastmodifieddate", "operator": "GTE", "value": since_ms.to_string()}),
        ];
        if entity == EntityType::Invoice {
            filters.push(json!({"propertyName": "dealstage", "operator": "EQ", "value": WON}));
        }
        let properties = match entity {
            EntityType::Customer => self.customers.properties(),
            EntityType::Invoice => DEAL_PROPERTIES,
        };
        let request = ApiRequest::new(
            Method::POST,
            format!("/crm/v3/objects/{}/search", self.path(entity)),
        )
        .json(json!({
            "filterGroups": [{"filters": filters}],
            "sorts": [{"propertyName": "hs_lastmodifieddate", "direction": "ASCENDING"}],
            "properties": properties,
            "limit": PAGE,
            "after": after.to_string(),
        }));
        let answer = self
            .client
            .send_through(&request, Some(&self.search_gate))
            .await?;
        let results = answer
            .body
            .get("results")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let records: Vec<ExternalRecord> = results
            .iter()
            .filter_map(|o| self.parse(entity, o))
            .collect();
        let next_after = answer
            .body
            .pointer("/paging/next/after")
            .and_then(Value::as_str)
            .and_then(|a| a.parse::<usize>().ok());
        let next = next_after.map(|next_after| {
            if next_after + PAGE > SEARCH_CAP {
                let last = records
                    .last()
                    .and_then(|r| r.version.as_deref())
                    .and_then(ms)
                    .unwrap_or(since_ms);
                format!("0:{last}")
            } else {
                format!("{next_after}:{since_ms}")
            }
        });
        Ok(ChangePage { records, next })
    }

    async fn create(
        &self,
        entity: EntityType,
        fields: &FieldMap,
        stamp: &str,
        idempotency_key: &str,
    ) -> Result<Written, ConnectorError> {
        if entity == EntityType::Invoice {
            return self.create_deal(fields, stamp, idempotency_key).await;
        }
        let mut properties = checked(
            self.customers.singular(),
            mapping::customer_properties(self.customers, fields),
        )?;
        properties.insert("tandem_origin_id".into(), json!(stamp));
        let written = self
            .customer_batches
            .creates
            .submit(batch::NewItem {
                properties,
                associations: Vec::new(),
                stamp: stamp.to_string(),
                key: idempotency_key.to_string(),
            })
            .await
            .unwrap_or_else(|| Err(stopped()))?;
        Ok(written)
    }

    async fn update(
        &self,
        entity: EntityType,
        id: &str,
        fields: &FieldMap,
        idempotency_key: &str,
    ) -> Result<Written, ConnectorError> {
        self.write_update(entity, id, fields, idempotency_key, None)
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
        self.write_update(entity, id, fields, idempotency_key, Some(read))
            .await
    }

    async fn archive(
        &self,
        entity: EntityType,
        id: &str,
        _idempotency_key: &str,
    ) -> Result<Written, ConnectorError> {
        let request = ApiRequest::new(
            Method::DELETE,
            format!("/crm/v3/objects/{}/{id}", self.path(entity)),
        )
        .allow_not_found();
        // A record already gone is as archived as it gets: archiving is idempotent.
        let answer = self.client.send(&request).await?;
        Ok(Written {
            record: ExternalRecord {
                id: id.to_string(),
                fields: None,
                version: None,
                stamp: None,
                field_versions: Default::default(),
            },
            exchange: answer.exchange,
        })
    }

    async fn find_by_stamp(
        &self,
        entity: EntityType,
        stamp: &str,
    ) -> Result<Option<ExternalRecord>, ConnectorError> {
        let term = Term {
            property: "tandem_origin_id",
            value: stamp.to_string(),
        };
        self.find(entity, term).await
    }

    async fn find_by_natural_key(
        &self,
        entity: EntityType,
        fields: &FieldMap,
    ) -> Result<Option<ExternalRecord>, ConnectorError> {
        let (property, field) = match entity {
            EntityType::Customer => self.customers.natural_key(),
            EntityType::Invoice => ("tandem_invoice_number", "number"),
        };
        let Some(value) = fields.get(field).and_then(Value::as_str) else {
            return Ok(None);
        };
        let term = Term {
            property,
            value: value.to_string(),
        };
        self.find(entity, term).await
    }
}
