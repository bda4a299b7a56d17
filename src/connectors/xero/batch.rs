//! The batch calls behind the Xero connector: one call for many reads, look-ups,
//! creates or updates of one kind, and each item's own outcome out of the answer.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use super::{validation_messages, Kind};
use crate::connectors::http::{ApiClient, ApiRequest, ApiResponse, Coalescer, Stage};
use crate::connectors::{ConnectorError, Exchange, ExternalRecord, ReadAt, Written};
use crate::domain::System;

/// Xero takes up to 50 items per write; reads by id are kept to 50 for the URL's sake.
pub const MAX_ITEMS: usize = 50;
/// ORed terms per look-up call.
const MAX_TERMS: usize = 50;

type Found = Result<Option<ExternalRecord>, ConnectorError>;
type Wrote = Result<Written, ConnectorError>;

/// A look-up: records whose `field` equals `value`.
#[derive(Debug, Clone)]
pub struct Term {
    pub field: &'static str,
    pub value: String,
    /// Natural keys match live records only; a stamp finds an archived one too.
    pub live_only: bool,
}

pub struct NewItem {
    pub body: Map<String, Value>,
    pub key: String,
}

pub struct UpdateItem {
    pub id: String,
    pub body: Map<String, Value>,
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

impl Batches {
    pub fn new(client: Arc<ApiClient>, kind: Kind, window: Duration, in_flight: usize) -> Self {
        let batched = |max, stage| Batched {
            client: client.clone(),
            max,
            window,
            in_flight,
            stage,
        };
        let reads = batched(MAX_ITEMS, Stage::Read)
            .of(move |c, ids| async move { read(&c, kind, ids).await });
        let finds = batched(MAX_TERMS, Stage::Find)
            .of(move |c, terms| async move { find(&c, kind, terms).await });
        let creates = batched(MAX_ITEMS, Stage::Write)
            .of(move |c, items| async move { create(&c, kind, items).await });
        let updates = batched(MAX_ITEMS, Stage::Write)
            .of(move |c, items| async move { update(&c, kind, items).await });
        Self {
            reads,
            finds,
            creates,
            updates,
        }
    }
}

/// How one kind of batch call is cut: through the connection's gate, `max` items at
/// most, one call of it in flight.
struct Batched {
    client: Arc<ApiClient>,
    max: usize,
    window: Duration,
    in_flight: usize,
    stage: Stage,
}

impl Batched {
    fn of<I, O, Fut>(
        self,
        call: impl Fn(Arc<ApiClient>, Vec<I>) -> Fut + Send + Sync + 'static,
    ) -> Coalescer<I, O>
    where
        I: Send + 'static,
        O: Send + 'static,
        Fut: std::future::Future<Output = Vec<O>> + Send + 'static,
    {
        let gate = Some(self.client.gate().clone());
        let client = self.client;
        Coalescer::gated(
            self.max,
            self.window,
            self.in_flight,
            gate,
            self.stage,
            move |items| call(client.clone(), items),
        )
    }
}

fn items_of(kind: Kind, answer: &ApiResponse) -> Vec<Value> {
    answer
        .body
        .get(kind.collection())
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

async fn read(client: &ApiClient, kind: Kind, ids: Vec<String>) -> Vec<Found> {
    let request = ApiRequest::new(Method::GET, kind.path())
        .query("IDs", ids.join(","))
        .query("includeArchived", "true")
        .query("page", "1");
    match client.send(&request).await {
        Ok(answer) => {
            let by_id: HashMap<String, ExternalRecord> = items_of(kind, &answer)
                .iter()
                .filter_map(|i| kind.parse(i))
                .map(|r| (r.id.clone(), r))
                .collect();
            ids.iter().map(|id| Ok(by_id.get(id).cloned())).collect()
        }
        Err(err) => ids.iter().map(|_| Err(err.clone())).collect(),
    }
}

/// Xero's `where` strings are C#-like: a quote or backslash inside a value is escaped.
fn quoted(value: &str) -> String {
    format!("\"{}\"", value.replace('\\', "\\\\").replace('"', "\\\""))
}

fn matches(item: &Value, term: &Term) -> bool {
    let Some(found) = item.get(term.field).and_then(Value::as_str) else {
        return false;
    };
    let archived = matches!(
        item.get("ContactStatus").and_then(Value::as_str),
        Some("ARCHIVED")
    ) || item.get("Status").and_then(Value::as_str) == Some("DELETED");
    let equal = if term.field == "EmailAddress" {
        found.eq_ignore_ascii_case(&term.value)
    } else {
        found == term.value
    };
    equal && !(term.live_only && archived)
}

async fn find(client: &ApiClient, kind: Kind, terms: Vec<Term>) -> Vec<Found> {
    let expression = terms
        .iter()
        .map(|t| format!("{}=={}", t.field, quoted(&t.value)))
        .collect::<Vec<_>>()
        .join(" OR ");
    let request = ApiRequest::new(Method::GET, kind.path())
        .query("where", expression)
        .query("includeArchived", "true")
        .query("page", "1");
    match client.send(&request).await {
        Ok(answer) => {
            let items = items_of(kind, &answer);
            terms
                .iter()
                .map(|term| {
                    Ok(items
                        .iter()
                        .filter(|i| matches(i, term))
                        .find_map(|i| kind.parse(i)))
                })
                .collect()
        }
        Err(err) => terms.iter().map(|_| Err(err.clone())).collect(),
    }
}

/// One key for the whole call, from the items' own keys: the same batch retried is the
/// same request to Xero.
fn batch_key<'a>(keys: impl Iterator<Item = &'a str>) -> String {
    let mut hash = Sha256::new();
    for key in keys {
        hash.update(key.as_bytes());
        hash.update(b"\n");
    }
    hex::encode(hash.finalize())
}

/// Each item's outcome, from the item Xero answered for it.
fn outcome(kind: Kind, sent: &Value, answered: Option<&Value>, status: u16) -> Wrote {
    let Some(item) = answered else {
        return Err(ConnectorError::Unavailable {
            system: System::Finance,
            status: 502,
            exchange: Exchange {
                request: Some(sent.clone()),
                response: None,
                status: Some(status),
            },
        });
    };
    let exchange = Exchange {
        request: Some(sent.clone()),
        response: Some(item.clone()),
        status: Some(status),
    };
    let refused = item.get("HasValidationErrors").and_then(Value::as_bool) == Some(true);
    if refused {
        let messages = validation_messages(item);
        return Err(ConnectorError::Rejected {
            system: System::Finance,
            status: 400,
            message: if messages.is_empty() {
                "Xero refused the item".into()
            } else {
                messages.join("; ")
            },
            exchange: Exchange {
                status: Some(400),
                ..exchange
            },
        });
    }
    match kind.parse(item) {
        Some(record) => Ok(Written { record, exchange }),
        None => Err(ConnectorError::Unavailable {
            system: System::Finance,
            status: 502,
            exchange,
        }),
    }
}

/// Sends one batch write and gives each item the answer Xero gave it: Xero answers
/// in the order sent, and `matched_by` (the stamp of a create, the id of an update)
/// confirms it is the same item, or finds it when the order differs.
async fn write(
    client: &ApiClient,
    kind: Kind,
    method: Method,
    bodies: Vec<Value>,
    key: String,
    matched_by: &str,
) -> Vec<Wrote> {
    let request = ApiRequest::new(method, kind.path())
        .query("summarizeErrors", "false")
        .header("Idempotency-Key", key)
        .json(json!({ kind.collection(): bodies }));
    match client.send(&request).await {
        Ok(answer) => {
            let answered = items_of(kind, &answer);
            bodies
                .iter()
                .enumerate()
                .map(|(i, sent)| {
                    let wanted = sent.get(matched_by);
                    let item = answered
                        .get(i)
                        .filter(|a| a.get(matched_by) == wanted)
                        .or_else(|| answered.iter().find(|a| a.get(matched_by) == wanted));
                    outcome(kind, sent, item, answer.status)
                })
                .collect()
        }
        Err(err) => bodies.iter().map(|_| Err(err.clone())).collect(),
    }
}

async fn create(client: &ApiClient, kind: Kind, items: Vec<NewItem>) -> Vec<Wrote> {
    let key = batch_key(items.iter().map(|i| i.key.as_str()));
    let bodies: Vec<Value> = items.into_iter().map(|i| Value::Object(i.body)).collect();
    write(client, kind, Method::PUT, bodies, key, kind.stamp_key()).await
}

async fn update(client: &ApiClient, kind: Kind, items: Vec<UpdateItem>) -> Vec<Wrote> {
    let changed = changed_since_read(client, kind, &items).await;
    // Answers in the items' order: those whose record moved on are not sent.
    let mut answers: Vec<Option<Wrote>> = changed
        .iter()
        .zip(&items)
        .map(|(moved, item)| {
            moved.then(|| {
                Err(ConnectorError::Changed {
                    system: System::Finance,
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
    let mut written = write_updates(client, kind, to_send).await.into_iter();
    answers
        .iter_mut()
        .map(|answer| {
            answer
                .take()
                .or_else(|| written.next())
                .unwrap_or_else(|| Err(missing_update()))
        })
        .collect()
}

/// Xero has no conditional write: the items read long ago are read again, in one
/// call, and those whose record moved on since are marked. A failed re-read says
/// nothing: its items are written as they would have been.
async fn changed_since_read(client: &ApiClient, kind: Kind, items: &[UpdateItem]) -> Vec<bool> {
    let stale: Vec<String> = items
        .iter()
        .filter(|i| i.read.as_ref().is_some_and(ReadAt::needs_check))
        .map(|i| i.id.clone())
        .collect();
    if stale.is_empty() {
        return vec![false; items.len()];
    }
    let current: HashMap<String, Found> = stale
        .iter()
        .cloned()
        .zip(read(client, kind, stale.clone()).await)
        .collect();
    items
        .iter()
        .map(|item| match (&item.read, current.get(&item.id)) {
            (Some(read_at), Some(Ok(now))) => {
                !read_at.unchanged(now.as_ref().and_then(|r| r.version.as_deref()))
            }
            _ => false,
        })
        .collect()
}

fn missing_update() -> ConnectorError {
    ConnectorError::Connection {
        system: System::Finance,
        message: "Xero's answer to a batch update was shorter than the batch".into(),
    }
}

/// The updates sent in one call, their answers in order.
async fn write_updates(client: &ApiClient, kind: Kind, items: Vec<UpdateItem>) -> Vec<Wrote> {
    if items.is_empty() {
        return Vec::new();
    }
    let key = batch_key(items.iter().map(|i| i.key.as_str()));
    let id_key = kind.id_key();
    let bodies: Vec<Value> = items
        .into_iter()
        .map(|i| {
            let mut body = i.body;
            body.insert(id_key.into(), json!(i.id));
            Value::Object(body)
        })
        .collect();
    write(client, kind, Method::POST, bodies, key, id_key).await
}
