//! Reading won deals as invoices, many at once: a deal with its customer and its line
//! items.
//!
//! Deals read together cost four calls, however many (up to 100): the deals, their
//! customer associations, their line-item associations (both `POST
//! /crm/v4/associations/deals/{to}/batch/read`) and the line items. One at a time a
//! deal cost two calls (the deal with its associations, then its line items), and
//! under HubSpot's 100 calls in 10 seconds the deal reads of a busy pair (each won
//! deal, its write-back, a payment, and the echo of each) outran the budget.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use reqwest::Method;
use serde_json::{json, Value};

use super::batch::{read_body, results, MAX_ITEMS};
use super::history::FieldHistory;
use super::mapping::{self, DEAL_PROPERTIES, LINE_ITEM_PROPERTIES};
use crate::connectors::http::{ApiClient, ApiRequest};
use crate::connectors::{ConnectorError, ExternalRecord};

pub(super) type Found = Result<Option<ExternalRecord>, ConnectorError>;

/// Reads `ids` (at most `history.batch_limit()`) with their customers (`customers`:
/// `contacts` or `companies`) and line items, and the change times `history` asks for;
/// one outcome per id, in order. A deal that does not exist (or was archived) is
/// `None`.
pub(super) async fn read(
    client: Arc<ApiClient>,
    customers: &'static str,
    history: Arc<FieldHistory>,
    ids: Vec<String>,
) -> Vec<Found> {
    let (mut found, paged) = match read_all(&client, customers, &history, &ids).await {
        Ok(read) => read,
        Err(err) => return ids.iter().map(|_| Err(err.clone())).collect(),
    };
    let mut outcomes = Vec::with_capacity(ids.len());
    for id in &ids {
        // More associations than one answer lists: read that deal on its own.
        if paged.contains(id) {
            outcomes.push(read_one(&client, customers, &history, id).await);
        } else {
            outcomes.push(Ok(found.remove(id.as_str())));
        }
    }
    outcomes
}

/// One deal with its associations (`GET /crm/v3/objects/deals/{id}`), then one batch
/// read of its line items.
pub(super) async fn read_one(
    client: &ApiClient,
    customers: &'static str,
    history: &FieldHistory,
    id: &str,
) -> Found {
    let mut request = ApiRequest::new(Method::GET, format!("/crm/v3/objects/deals/{id}"))
        .query("properties", DEAL_PROPERTIES.join(","))
        .query("associations", format!("{customers},line_items"))
        .allow_not_found();
    if !history.is_empty() {
        request = request.query("propertiesWithHistory", history.properties().join(","));
    }
    let answer = client.send(&request).await?;
    if answer.status == 404 {
        return Ok(None);
    }
    let deal = answer.body;
    let associated = |kind: &str| -> Vec<String> {
        deal.get("associations")
            .and_then(|a| a.get(kind))
            .and_then(|a| a.get("results"))
            .and_then(Value::as_array)
            .map(|r| r.iter().filter_map(mapping::id_of).collect())
            .unwrap_or_default()
    };
    let customer = associated(customers).into_iter().next();
    let line_ids = associated("line_items");
    let mut by_id = HashMap::new();
    for chunk in line_ids.chunks(MAX_ITEMS) {
        by_id.extend(read_objects(client, "line_items", LINE_ITEM_PROPERTIES, &[], chunk).await?);
    }
    // HubSpot answers in any order; the deal's order of association is kept.
    let lines: Vec<Value> = line_ids.iter().filter_map(|l| by_id.remove(l)).collect();
    Ok(mapping::deal_to_record(&deal, customer, &lines, history))
}

/// The deals read, by id, and the ids of those with more associations than an
/// answer lists.
type ReadAll = (HashMap<String, ExternalRecord>, HashSet<String>);

async fn read_all(
    client: &ApiClient,
    customers: &'static str,
    history: &FieldHistory,
    ids: &[String],
) -> Result<ReadAll, ConnectorError> {
    let deals = read_objects(client, "deals", DEAL_PROPERTIES, &history.properties(), ids).await?;
    if deals.is_empty() {
        return Ok(Default::default());
    }
    let found: Vec<String> = deals.keys().cloned().collect();
    let (customer_of, mut paged) = associated(client, customers, &found).await?;
    let (lines_of, more) = associated(client, "line_items", &found).await?;
    paged.extend(more);
    let line_ids: Vec<String> = lines_of.values().flatten().cloned().collect();
    let mut lines = HashMap::new();
    for chunk in line_ids.chunks(MAX_ITEMS) {
        lines.extend(read_objects(client, "line_items", LINE_ITEM_PROPERTIES, &[], chunk).await?);
    }
    let records = deals
        .into_iter()
        .filter_map(|(id, deal)| {
            let customer = customer_of.get(&id).and_then(|c| c.first().cloned());
            // The deal's order of association is kept.
            let deal_lines: Vec<Value> = lines_of
                .get(&id)
                .into_iter()
                .flatten()
                .filter_map(|line| lines.get(line).cloned())
                .collect();
            let record = mapping::deal_to_record(&deal, customer, &deal_lines, history)?;
            Some((id, record))
        })
        .collect();
    Ok((records, paged))
}

/// `POST /crm/v3/objects/{path}/batch/read`: the live objects found, by id, with the
/// history of `with_history`.
async fn read_objects(
    client: &ApiClient,
    path: &str,
    properties: &[&str],
    with_history: &[&str],
    ids: &[String],
) -> Result<HashMap<String, Value>, ConnectorError> {
    let request = ApiRequest::new(Method::POST, format!("/crm/v3/objects/{path}/batch/read"))
        .json(read_body(properties, with_history, ids));
    let answer = client.send(&request).await?;
    Ok(results(&answer.body)
        .into_iter()
        .filter_map(|object| Some((mapping::id_of(&object)?, object)))
        .collect())
}

/// `POST /crm/v4/associations/deals/{to}/batch/read`: the ids of the `to` objects each
/// deal is associated with (a deal with none may be left out of the answer), and the
/// deals whose list goes on in another page.
async fn associated(
    client: &ApiClient,
    to: &str,
    deals: &[String],
) -> Result<(HashMap<String, Vec<String>>, HashSet<String>), ConnectorError> {
    let request = ApiRequest::new(
        Method::POST,
        format!("/crm/v4/associations/deals/{to}/batch/read"),
    )
    .json(json!({
        "inputs": deals.iter().map(|id| json!({"id": id})).collect::<Vec<_>>(),
    }));
    let answer = client.send(&request).await?;
    let mut paged = HashSet::new();
    let by_deal = results(&answer.body)
        .into_iter()
        .filter_map(|result| {
            let from = result.get("from").and_then(mapping::id_of)?;
            if result.pointer("/paging/next").is_some() {
                paged.insert(from.clone());
            }
            let to = result
                .get("to")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|t| match t.get("toObjectId")? {
                    Value::String(id) => Some(id.clone()),
                    Value::Number(id) => Some(id.to_string()),
                    _ => None,
                })
                .collect();
            Some((from, to))
        })
        .collect();
    Ok((by_deal, paged))
}
