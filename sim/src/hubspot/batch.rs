//! `POST /crm/v3/objects/{type}/batch/{read,create,update}`: up to 100 inputs, answered
//! 200/201 when all succeed and 207 with per-input `errors` when some fail. Results come
//! back in reverse input order on purpose, so clients must map them back by
//! `objectWriteTraceId` and id, as they must with the real HubSpot.

use chrono::Utc;
use serde_json::{json, Map, Value};

use super::ops::{self, Link};
use super::routes::Answer;
use super::state::{now_ms, parse_properties, rfc3339, ItemError, Kind, Shown, State};
use super::webhooks::Source;
use super::HubSpotSim;

/// HubSpot's batch size limit.
const MAX_INPUTS: usize = 100;
/// The inputs a batch read may name when it asks for `propertiesWithHistory`. HubSpot
/// answers more with a 400 `VALIDATION_ERROR` whose message is quoted below, as
/// integrations that met it report (activepieces/activepieces#9359,
/// PipedreamHQ/pipedream#8462, HubSpot/hubspot-api-python#143).
const MAX_INPUTS_WITH_HISTORY: usize = 50;

/// The `inputs` array, or the 400 for a missing or oversized one.
fn inputs(body: &Value) -> Result<&[Value], Answer> {
    let Some(inputs) = body.get("inputs").and_then(Value::as_array) else {
        return Err(Answer::invalid("Invalid input JSON: `inputs` is required"));
    };
    if inputs.len() > MAX_INPUTS {
        return Err(Answer::invalid(format!(
            "Batch input size {} exceeds the limit of {MAX_INPUTS}",
            inputs.len()
        )));
    }
    Ok(inputs)
}

/// An input's `id`, as a string or a number.
pub(crate) fn input_id(input: &Value) -> Option<String> {
    match input.get("id") {
        Some(Value::String(id)) => Some(id.clone()),
        Some(Value::Number(id)) => Some(id.to_string()),
        _ => None,
    }
}

fn trace_id(input: &Value) -> Option<String> {
    input
        .get("objectWriteTraceId")
        .and_then(Value::as_str)
        .map(str::to_string)
}

/// One item error of a 207, naming what it was about.
fn item_error(error: &ItemError, trace: Option<&str>, id: Option<&str>) -> Value {
    let mut context = Map::new();
    if let Some(trace) = trace {
        context.insert("objectWriteTraceId".to_string(), json!([trace]));
    }
    if let Some(id) = id {
        context.insert("ids".to_string(), json!([id]));
    }
    json!({
        "status": "error",
        "category": error.category,
        "message": error.message,
        "context": context,
    })
}

/// The batch answer: `ok_status` when nothing failed, else 207.
fn finish(started_ms: i64, mut results: Vec<Value>, errors: Vec<Value>, ok_status: u16) -> Answer {
    results.reverse();
    let mut body = json!({
        "status": "COMPLETE",
        "results": results,
        "startedAt": rfc3339(started_ms),
        "completedAt": rfc3339(Utc::now().timestamp_millis()),
    });
    if errors.is_empty() {
        return Answer::json(ok_status, body);
    }
    body["numErrors"] = json!(errors.len());
    body["errors"] = Value::Array(errors);
    Answer::json(207, body)
}

/// A list of property names in a request body.
fn names(body: &Value, key: &str) -> Vec<String> {
    body.get(key)
        .and_then(Value::as_array)
        .map(|names| {
            names
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// `batch/read` `{"properties": [...], "propertiesWithHistory": [...], "inputs":
/// [{"id"}], "archived": false}`.
pub(crate) fn read(sim: &HubSpotSim, kind: Kind, body: &Value) -> Answer {
    let started = now_ms();
    let inputs = match inputs(body) {
        Ok(inputs) => inputs,
        Err(answer) => return answer,
    };
    let properties = names(body, "properties");
    let with_history = names(body, "propertiesWithHistory");
    if !with_history.is_empty() && inputs.len() > MAX_INPUTS_WITH_HISTORY {
        return Answer::invalid(format!(
            "The maximum number of inputs supported in a batch request for property histories is {MAX_INPUTS_WITH_HISTORY}. Please reduce the number of items and try again"
        ));
    }
    let shown = if properties.is_empty() {
        Shown::Defaults
    } else {
        Shown::Only(&properties)
    };
    let archived = body
        .get("archived")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    sim.read(|state| {
        let mut results = Vec::new();
        let mut missing = Vec::new();
        for input in inputs {
            let id = input_id(input).unwrap_or_default();
            match state.get(kind, &id) {
                Some(record) if record.archived() == archived => {
                    let mut object = state.render(record, shown, &[]);
                    if !with_history.is_empty() {
                        object["propertiesWithHistory"] = State::render_history(
                            record,
                            &with_history,
                            sim.settings.app_id,
                        );
                    }
                    results.push(object);
                }
                _ => missing.push(id),
            }
        }
        // HubSpot reports every missing id in one error.
        let errors = if missing.is_empty() {
            Vec::new()
        } else {
            vec![json!({
                "status": "error",
                "category": "OBJECT_NOT_FOUND",
                "message": format!(
                    "Could not get some {} objects, they may be deleted or not exist. Check that ids are valid.",
                    kind.upper()
                ),
                "context": {"ids": missing},
            })]
        };
        finish(started, results, errors, 200)
    })
}

/// `batch/create` `{"inputs": [{"properties", "objectWriteTraceId", "associations"}]}`.
pub(crate) fn create(sim: &HubSpotSim, kind: Kind, body: &Value) -> Answer {
    let started = now_ms();
    let inputs = match inputs(body) {
        Ok(inputs) => inputs,
        Err(answer) => return answer,
    };
    sim.change(Source::Integration, |state, events| {
        let mut results = Vec::new();
        let mut errors = Vec::new();
        for input in inputs {
            let trace = trace_id(input);
            let created = parse_properties(input.get("properties")).and_then(|writes| {
                let links = parse_links(kind, input.get("associations"))?;
                ops::create(state, events, kind, &writes, &links)
            });
            match created {
                Ok(id) => {
                    if let Some(record) = state.get(kind, &id.to_string()) {
                        results.push(with_trace(
                            state.render(record, Shown::All, &[]),
                            trace.as_deref(),
                        ));
                    }
                }
                Err(err) => errors.push(item_error(&err, trace.as_deref(), None)),
            }
        }
        finish(started, results, errors, 201)
    })
}

/// `batch/update` `{"inputs": [{"id", "properties", "objectWriteTraceId"}]}`.
pub(crate) fn update(sim: &HubSpotSim, kind: Kind, body: &Value) -> Answer {
    let started = now_ms();
    let inputs = match inputs(body) {
        Ok(inputs) => inputs,
        Err(answer) => return answer,
    };
    sim.change(Source::Integration, |state, events| {
        let mut results = Vec::new();
        let mut errors = Vec::new();
        for input in inputs {
            let trace = trace_id(input);
            let id = input_id(input).unwrap_or_default();
            let updated = parse_properties(input.get("properties"))
                .and_then(|writes| ops::update(state, events, kind, &id, &writes));
            match updated {
                Ok(_) => {
                    if let Some(record) = state.get(kind, &id) {
                        results.push(with_trace(
                            state.render(record, Shown::All, &[]),
                            trace.as_deref(),
                        ));
                    }
                }
                Err(err) => errors.push(item_error(&err, trace.as_deref(), Some(&id))),
            }
        }
        finish(started, results, errors, 200)
    })
}

/// Echoes the input's `objectWriteTraceId` on its result, so a client can map a created
/// object (which it has no id for yet) back to its input.
fn with_trace(mut object: Value, trace: Option<&str>) -> Value {
    if let Some(trace) = trace {
        object["objectWriteTraceId"] = json!(trace);
    }
    object
}

/// A create input's `associations`:
/// `[{"to": {"id"}, "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": n}]}]`.
pub(crate) fn parse_links(kind: Kind, value: Option<&Value>) -> Result<Vec<Link>, ItemError> {
    let Some(value) = value.filter(|v| !v.is_null()) else {
        return Ok(Vec::new());
    };
    let invalid = |message: String| ItemError::new(400, "VALIDATION_ERROR", message);
    let Some(items) = value.as_array() else {
        return Err(invalid(
            "Invalid input JSON: `associations` must be an array".to_string(),
        ));
    };
    let mut links = Vec::new();
    for item in items {
        let id = match item.get("to").and_then(|to| to.get("id")) {
            Some(Value::String(id)) => id.parse::<u64>().ok(),
            Some(Value::Number(id)) => id.as_u64(),
            _ => None,
        }
        .ok_or_else(|| {
            invalid(
                "One or more associations are invalid: `to.id` must be a numeric id".to_string(),
            )
        })?;
        let types = item
            .get("types")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let mut target = None;
        for association in &types {
            let type_id = association
                .get("associationTypeId")
                .and_then(Value::as_i64)
                .unwrap_or(-1);
            match kind.association_target(type_id) {
                Some(other) => target = Some(other),
                None => {
                    return Err(invalid(format!(
                        "One or more associations are invalid: association type {type_id} does not exist from {}",
                        kind.upper()
                    )))
                }
            }
        }
        let Some(target) = target else {
            return Err(invalid(
                "One or more associations are invalid: `types` is required".to_string(),
            ));
        };
        links.push((target, id));
    }
    Ok(links)
}
