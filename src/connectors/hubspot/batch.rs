//! The batch calls behind the HubSpot connector: batch read, search with ORed filter
//! groups, batch create and batch update, and each item's own outcome out of a 200 or
//! a 207 (results come in any order: creates are matched by their origin stamp and
//! `objectWriteTraceId`, updates by id).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Map, Value};

use super::history::FieldHistory;
use super::mapping::{id_of, prop, version};
use crate::connectors::http::{ApiClient, ApiRequest, Coalescer, RateGate, Stage};
use crate::connectors::{ConnectorError, Exchange, ExternalRecord, ReadAt, Written};
use crate::domain::System;

pub const MAX_ITEMS: usize = 100;
/// Look-ups in one search: two `IN` filters of up to 100 values, and at most this
/// many results a page.
const MAX_TERMS: usize = 100;
const SEARCH_LIMIT: usize = 200;
/// Batch calls of one kind in flight at once; the next batch fills meanwhile.
const IN_FLIGHT: usize = 2;

type Found = Result<Option<Value>, ConnectorError>;
type Wrote = Result<Written, ConnectorError>;
pub type Parse = Arc<dyn Fn(&Value) -> Option<ExternalRecord> + Send + Sync>;

#[derive(Debug, Clone)]
pub struct Term {
    pub property: &'static str,
    pub value: String,
}

pub struct NewItem {
    pub properties: Map<String, Value>,
    pub associations: Vec<Value>,
    pub stamp: String,
    pub key: String,
}

pub struct UpdateItem {
    pub id: String,
    pub properties: Map<String, Value>,
    pub key: String,
    /// When the record was read, when the write must not go out over a later change.
    pub read: Option<ReadAt>,
}

pub struct Batches {
    pub reads: Coalescer<String, Found>,
    pub finds: Coalescer<Term, Found>,
    pub creates: Coalescer<NewItem, Wrote>,
    pub updates: Coalescer<UpdateItem, Wrote>,
}

#[derive(Clone)]
struct Kind {
    client: Arc<ApiClient>,
    search_gate: Arc<RateGate>,
    path: &'static str,
    properties: &'static [&'static str],
    /// The properties reads ask history for (`history.rs`); none asks for none.
    with_history: Vec<&'static str>,
    parse: Parse,
}

impl Batches {
    pub fn new(
        client: Arc<ApiClient>,
        search_gate: Arc<RateGate>,
        path: &'static str,
        properties: &'static [&'static str],
        history: &FieldHistory,
        window: Duration,
        parse: Parse,
    ) -> Self {
        let kind = Kind {
            client,
            search_gate,
            path,
            properties,
            with_history: history.properties(),
            parse,
        };
        let gate = kind.client.gate().clone();
        let search = kind.search_gate.clone();
        // A read asking for history takes fewer ids: still one call for the reads
        // that arrive together, up to that limit.
        let reads = kind.batched(
            history.batch_limit(),
            window,
            &gate,
            Stage::Read,
            |k, ids| async move { k.read(ids).await },
        );
        let finds = kind.batched(
            MAX_TERMS,
            window,
            &search,
            Stage::Find,
            |k, terms| async move { k.find(terms).await },
        );
        let creates = kind.batched(
            MAX_ITEMS,
            window,
            &gate,
            Stage::Write,
            |k, items| async move { k.create(items).await },
        );
        let updates = kind.batched(
            MAX_ITEMS,
            window,
            &gate,
            Stage::Write,
            |k, items| async move { k.update(items).await },
        );
        Self {
            reads,
            finds,
            creates,
            updates,
        }
    }
}

/// The `results` array of a batch answer.
pub(super) fn results(body: &Value) -> Vec<Value> {
    body.get("results")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

/// A `batch/read` body: the ids, their properties, and the properties whose history
/// to answer (left out when none).
pub(super) fn read_body(properties: &[&str], with_history: &[&str], ids: &[String]) -> Value {
    let mut body = json!({
        "properties": properties,
        "inputs": ids.iter().map(|id| json!({"id": id})).collect::<Vec<_>>(),
        "archived": false,
    });
    if !with_history.is_empty() {
        body["propertiesWithHistory"] = json!(with_history);
    }
    body
}

/// Per-item errors of a 207, by what their context names (`ids` or
/// `objectWriteTraceId`).
fn errors_by_context(body: &Value) -> HashMap<String, Value> {
    let mut by = HashMap::new();
    for error in body
        .get("errors")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        for key in ["ids", "objectWriteTraceId"] {
            for named in error
                .pointer(&format!("/context/{key}"))
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
            {
                by.insert(named.to_string(), error.clone());
            }
        }
    }
    by
}

fn rejected(sent: &Value, error: &Value) -> ConnectorError {
    let message = error
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or("HubSpot refused the item")
        .to_string();
    let status = match error.get("category").and_then(Value::as_str) {
        Some("CONFLICT") => 409,
        Some("OBJECT_NOT_FOUND") => 404,
        _ => 400,
    };
    ConnectorError::Rejected {
        system: System::Crm,
        status,
        message,
        exchange: Exchange {
            request: Some(sent.clone()),
            response: Some(error.clone()),
            status: Some(status),
        },
    }
}

fn missing_answer(sent: &Value, status: u16) -> ConnectorError {
    ConnectorError::Unavailable {
        system: System::Crm,
        status: 502,
        exchange: Exchange {
            request: Some(sent.clone()),
            response: None,
            status: Some(status),
        },
    }
}

impl Kind {
    /// A coalescer of up to `max` items whose batches wait for `gate` and call `call`.
    fn batched<I, O, Fut>(
        &self,
        max: usize,
        window: Duration,
        gate: &Arc<RateGate>,
        stage: Stage,
        call: impl Fn(Kind, Vec<I>) -> Fut + Send + Sync + 'static,
    ) -> Coalescer<I, O>
    where
        I: Send + 'static,
        O: Send + 'static,
        Fut: std::future::Future<Output = Vec<O>> + Send + 'static,
    {
        let kind = self.clone();
        Coalescer::gated(
            max,
            window,
            IN_FLIGHT,
            Some(gate.clone()),
            stage,
            move |items| call(kind.clone(), items),
        )
    }

    async fn read(&self, ids: Vec<String>) -> Vec<Found> {
        let request = ApiRequest::new(
            Method::POST,
            format!("/crm/v3/objects/{}/batch/read", self.path),
        )
        .json(read_body(self.properties, &self.with_history, &ids));
        match self.client.send(&request).await {
            Ok(answer) => {
                let by_id: HashMap<String, Value> = results(&answer.body)
                    .into_iter()
                    .filter_map(|o| Some((id_of(&o)?, o)))
                    .collect();
                ids.iter().map(|id| Ok(by_id.get(id).cloned())).collect()
            }
            Err(err) => ids.iter().map(|_| Err(err.clone())).collect(),
        }
    }

    async fn find(&self, terms: Vec<Term>) -> Vec<Found> {
        // One filter group per property, its values in one `IN`: a hundred look-ups
        // cost one search call. HubSpot compares `IN` values as sent; e-mails and
        // stamps are lower case already.
        let mut by_property: Vec<(&str, Vec<String>)> = Vec::new();
        for term in &terms {
            let value = term.value.to_lowercase();
            match by_property.iter_mut().find(|(p, _)| *p == term.property) {
                Some((_, values)) => values.push(value),
                None => by_property.push((term.property, vec![value])),
            }
        }
        let groups: Vec<Value> = by_property
            .iter()
            .map(|(property, values)| json!({"filters": [{"propertyName": property, "operator": "IN", "values": values}]}))
            .collect();
        let request = ApiRequest::new(
            Method::POST,
            format!("/crm/v3/objects/{}/search", self.path),
        )
        .json(json!({
            "filterGroups": groups,
            "properties": self.properties,
            "limit": SEARCH_LIMIT,
        }));
        match self
            .client
            .send_through(&request, Some(&self.search_gate))
            .await
        {
            Ok(answer) => {
                let found = results(&answer.body);
                terms
                    .iter()
                    .map(|t| {
                        Ok(found
                            .iter()
                            .find(|o| {
                                prop(o, t.property)
                                    .is_some_and(|v| v.eq_ignore_ascii_case(&t.value))
                            })
                            .cloned())
                    })
                    .collect()
            }
            Err(err) => terms.iter().map(|_| Err(err.clone())).collect(),
        }
    }

    fn written(&self, sent: &Value, object: &Value, status: u16) -> Wrote {
        match (self.parse)(object) {
            Some(record) => Ok(Written {
                record,
                exchange: Exchange {
                    request: Some(sent.clone()),
                    response: Some(object.clone()),
                    status: Some(status),
                },
            }),
            None => Err(missing_answer(sent, status)),
        }
    }

    async fn create(&self, items: Vec<NewItem>) -> Vec<Wrote> {
        let inputs: Vec<Value> = items
            .iter()
            .map(|i| {
                let mut input = json!({"properties": i.properties, "objectWriteTraceId": i.key});
                if !i.associations.is_empty() {
                    input["associations"] = json!(i.associations);
                }
                input
            })
            .collect();
        let request = ApiRequest::new(
            Method::POST,
            format!("/crm/v3/objects/{}/batch/create", self.path),
        )
        .json(json!({ "inputs": inputs }));
        match self.client.send(&request).await {
            Ok(answer) => {
                let created = results(&answer.body);
                let errors = errors_by_context(&answer.body);
                items
                    .iter()
                    .zip(&inputs)
                    .map(|(item, sent)| {
                        if let Some(error) = errors.get(&item.key) {
                            return Err(rejected(sent, error));
                        }
                        match created
                            .iter()
                            .find(|o| prop(o, "tandem_origin_id").as_deref() == Some(&item.stamp))
                        {
                            Some(object) => self.written(sent, object, answer.status),
                            None => Err(missing_answer(sent, answer.status)),
                        }
                    })
                    .collect()
            }
            Err(err) => items.iter().map(|_| Err(err.clone())).collect(),
        }
    }

    /// HubSpot has no conditional write: items read long ago are read again (their
    /// versions only, in one call) and those whose record moved on are answered
    /// `Changed` instead of written.
    async fn update(&self, items: Vec<UpdateItem>) -> Vec<Wrote> {
        let changed = self.changed_since_read(&items).await;
        let mut answers: Vec<Option<Wrote>> = changed
            .iter()
            .zip(&items)
            .map(|(moved, item)| {
                moved.then(|| {
                    Err(ConnectorError::Changed {
                        system: System::Crm,
                        id: item.id.clone(),
                    })
                })
            })
            .collect();
        let to_send: Vec<UpdateItem> = items
            .into_iter()
            .zip(&changed)
            .filter(|(_, moved)| !**moved)
            .map(|(item, _)| item)
            .collect();
        let mut written = self.write_updates(to_send).await.into_iter();
        answers
            .iter_mut()
            .map(|answer| {
                answer.take().or_else(|| written.next()).unwrap_or_else(|| {
                    Err(ConnectorError::Connection {
                        system: System::Crm,
                        message: "HubSpot's answer to a batch update was shorter than the batch"
                            .into(),
                    })
                })
            })
            .collect()
    }

    /// Which items' records moved on since they were read; a failed re-read says
    /// nothing, and its items are written as they would have been.
    async fn changed_since_read(&self, items: &[UpdateItem]) -> Vec<bool> {
        let stale: Vec<String> = items
            .iter()
            .filter(|i| i.read.as_ref().is_some_and(ReadAt::needs_check))
            .map(|i| i.id.clone())
            .collect();
        if stale.is_empty() {
            return vec![false; items.len()];
        }
        let request = ApiRequest::new(
            Method::POST,
            format!("/crm/v3/objects/{}/batch/read", self.path),
        )
        .json(read_body(&["hs_lastmodifieddate"], &[], &stale));
        let Ok(answer) = self.client.send(&request).await else {
            return vec![false; items.len()];
        };
        let now: HashMap<String, Option<String>> = results(&answer.body)
            .into_iter()
            .filter_map(|o| Some((id_of(&o)?, version(&o))))
            .collect();
        items
            .iter()
            .map(|item| match (&item.read, now.get(&item.id)) {
                (Some(read_at), Some(current)) if read_at.needs_check() => {
                    !read_at.unchanged(current.as_deref())
                }
                _ => false,
            })
            .collect()
    }

    async fn write_updates(&self, items: Vec<UpdateItem>) -> Vec<Wrote> {
        if items.is_empty() {
            return Vec::new();
        }
        let inputs: Vec<Value> = items
            .iter()
            .map(|i| json!({"id": i.id, "properties": i.properties, "objectWriteTraceId": i.key}))
            .collect();
        let request = ApiRequest::new(
            Method::POST,
            format!("/crm/v3/objects/{}/batch/update", self.path),
        )
        .json(json!({ "inputs": inputs }));
        match self.client.send(&request).await {
            Ok(answer) => {
                let by_id: HashMap<String, Value> = results(&answer.body)
                    .into_iter()
                    .filter_map(|o| Some((id_of(&o)?, o)))
                    .collect();
                let errors = errors_by_context(&answer.body);
                items
                    .iter()
                    .zip(&inputs)
                    .map(|(item, sent)| {
                        if let Some(error) = errors.get(&item.key).or_else(|| errors.get(&item.id))
                        {
                            return Err(rejected(sent, error));
                        }
                        match by_id.get(&item.id) {
                            Some(object) => self.written(sent, object, answer.status),
                            None => Err(missing_answer(sent, answer.status)),
                        }
                    })
                    .collect()
            }
            Err(err) => items.iter().map(|_| Err(err.clone())).collect(),
        }
    }
}
