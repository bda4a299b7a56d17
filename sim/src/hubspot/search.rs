//! `POST /crm/v3/objects/{type}/search`: filter groups (ORed) of filters (ANDed), one
//! sort, offset paging through `after`, and HubSpot's 10,000-result paging cap.
//! Archived objects never match.

use std::cmp::Ordering;

use serde_json::{json, Value};

use super::routes::Answer;
use super::state::{sort_key, Kind, Record, Shown, SortKey};
use super::HubSpotSim;

/// The most results one search may page through (`after + limit`).
pub(crate) const RESULT_CAP: usize = 10_000;
const MAX_LIMIT: usize = 200;
const DEFAULT_LIMIT: usize = 10;

#[derive(Debug)]
struct Filter {
    property: String,
    operator: String,
    value: Option<String>,
    values: Vec<String>,
}

/// A filter value as text: strings as they are, numbers and booleans printed.
fn text(value: &Value) -> Option<String> {
    match value {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

fn parse_filters(body: &Value) -> Result<Vec<Vec<Filter>>, String> {
    let Some(groups) = body.get("filterGroups") else {
        return Ok(Vec::new());
    };
    let groups = groups.as_array().ok_or("`filterGroups` must be an array")?;
    let mut parsed = Vec::new();
    for group in groups {
        let filters = group
            .get("filters")
            .and_then(Value::as_array)
            .ok_or("each filter group needs `filters`")?;
        let mut all = Vec::new();
        for filter in filters {
            let property = filter
                .get("propertyName")
                .and_then(Value::as_str)
                .ok_or("each filter needs `propertyName`")?;
            let operator = filter
                .get("operator")
                .and_then(Value::as_str)
                .unwrap_or("EQ")
                .to_string();
            let known = [
                "EQ",
                "NEQ",
                "GT",
                "GTE",
                "LT",
                "LTE",
                "HAS_PROPERTY",
                "NOT_HAS_PROPERTY",
                "IN",
                "NOT_IN",
            ];
            if !known.contains(&operator.as_str()) {
                return Err(format!("Unsupported filter operator {operator}"));
            }
            let value = filter.get("value").and_then(text);
            let values = filter
                .get("values")
                .and_then(Value::as_array)
                .map(|vs| vs.iter().filter_map(text).collect())
                .unwrap_or_default();
            let needs_value = !matches!(
                operator.as_str(),
                "HAS_PROPERTY" | "NOT_HAS_PROPERTY" | "IN" | "NOT_IN"
            );
            if needs_value && value.is_none() {
                return Err(format!(
                    "filter on {property} with {operator} needs a `value`"
                ));
            }
            all.push(Filter {
                property: property.to_string(),
                operator,
                value,
                values,
            });
        }
        parsed.push(all);
    }
    Ok(parsed)
}

/// Compares as numbers when both sides are numbers (dates included), else as text
/// without regard to case (so `EQ` on an email ignores case, as HubSpot's does).
fn compare(a: &SortKey, b: &SortKey) -> Ordering {
    match (a, b) {
        (SortKey::Number(x), SortKey::Number(y)) => x.partial_cmp(y).unwrap_or(Ordering::Equal),
        (SortKey::Text(x), SortKey::Text(y)) => x.cmp(y),
        (SortKey::Number(x), SortKey::Text(y)) => x.to_string().to_lowercase().cmp(y),
        (SortKey::Text(x), SortKey::Number(y)) => x.cmp(&y.to_string().to_lowercase()),
    }
}

fn matches(record: &Record, filter: &Filter) -> bool {
    let actual = record.value(&filter.property);
    let key = |v: &str| sort_key(&filter.property, v);
    let against = |wanted: &str| actual.as_deref().map(|a| compare(&key(a), &key(wanted)));
    let wanted = filter.value.as_deref().unwrap_or_default();
    match filter.operator.as_str() {
        "HAS_PROPERTY" => actual.is_some(),
        "NOT_HAS_PROPERTY" => actual.is_none(),
        "EQ" => against(wanted) == Some(Ordering::Equal),
        "NEQ" => against(wanted) != Some(Ordering::Equal),
        "GT" => against(wanted) == Some(Ordering::Greater),
        "GTE" => matches!(against(wanted), Some(Ordering::Greater | Ordering::Equal)),
        "LT" => against(wanted) == Some(Ordering::Less),
        "LTE" => matches!(against(wanted), Some(Ordering::Less | Ordering::Equal)),
        "IN" => filter
            .values
            .iter()
            .any(|v| against(v) == Some(Ordering::Equal)),
        "NOT_IN" => !filter
            .values
            .iter()
            .any(|v| against(v) == Some(Ordering::Equal)),
        _ => false,
    }
}

/// The one sort: `[{"propertyName", "direction"}]` or HubSpot's short `["name"]` form.
fn parse_sort(body: &Value) -> Result<Option<(String, bool)>, String> {
    let Some(first) = body
        .get("sorts")
        .and_then(Value::as_array)
        .and_then(|s| s.first())
    else {
        return Ok(None);
    };
    if let Some(name) = first.as_str() {
        return Ok(Some((name.to_string(), true)));
    }
    let name = first
        .get("propertyName")
        .and_then(Value::as_str)
        .ok_or("each sort needs `propertyName`")?;
    let ascending = match first.get("direction").and_then(Value::as_str) {
        None | Some("ASCENDING") => true,
        Some("DESCENDING") => false,
        Some(other) => return Err(format!("Unsupported sort direction {other}")),
    };
    Ok(Some((name.to_string(), ascending)))
}

pub(crate) fn search(sim: &HubSpotSim, kind: Kind, body: &Value) -> Answer {
    let groups = match parse_filters(body) {
        Ok(groups) => groups,
        Err(message) => return Answer::invalid(message),
    };
    let sort = match parse_sort(body) {
        Ok(sort) => sort,
        Err(message) => return Answer::invalid(message),
    };
    let properties: Vec<String> = body
        .get("properties")
        .and_then(Value::as_array)
        .map(|names| {
            names
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    let limit = match body.get("limit") {
        None | Some(Value::Null) => DEFAULT_LIMIT,
        Some(value) => match value.as_u64().map(|l| l as usize) {
            Some(limit) if limit <= MAX_LIMIT => limit,
            _ => {
                return Answer::invalid(format!("limit must be a number between 0 and {MAX_LIMIT}"))
            }
        },
    };
    let after = match body.get("after") {
        None | Some(Value::Null) => 0,
        Some(Value::String(s)) if s.is_empty() => 0,
        Some(value) => match text(value).and_then(|t| t.trim().parse::<usize>().ok()) {
            Some(after) => after,
            None => {
                return Answer::invalid("`after` must be a paging cursor from a previous answer")
            }
        },
    };
    if after.saturating_add(limit) > RESULT_CAP {
        return Answer::invalid(format!(
            "Search paging is limited to {RESULT_CAP} results: after ({after}) + limit ({limit}) exceeds {RESULT_CAP}. Narrow the filters instead."
        ));
    }
    let shown = if properties.is_empty() {
        Shown::Defaults
    } else {
        Shown::Only(&properties)
    };
    sim.read(|state| {
        let mut found: Vec<&Record> = state
            .records(kind)
            .values()
            .filter(|r| !r.archived())
            .filter(|r| groups.is_empty() || groups.iter().any(|g| g.iter().all(|f| matches(r, f))))
            .collect();
        if let Some((property, ascending)) = &sort {
            // Missing values sort last ascending (first descending); ties by id.
            found.sort_by(|a, b| {
                let ka = a.value(property).map(|v| sort_key(property, &v));
                let kb = b.value(property).map(|v| sort_key(property, &v));
                let order = match (&ka, &kb) {
                    (Some(x), Some(y)) => compare(x, y),
                    (Some(_), None) => Ordering::Less,
                    (None, Some(_)) => Ordering::Greater,
                    (None, None) => Ordering::Equal,
                };
                let order = if *ascending { order } else { order.reverse() };
                order.then(a.id.cmp(&b.id))
            });
        }
        let total = found.len();
        let results: Vec<Value> = found
            .iter()
            .skip(after)
            .take(limit)
            .map(|r| state.render(r, shown, &[]))
            .collect();
        let mut answer = json!({"total": total, "results": results});
        let next = after + limit;
        if next < total && limit > 0 {
            answer["paging"] = json!({"next": {"after": next.to_string()}});
        }
        Answer::json(200, answer)
    })
}
