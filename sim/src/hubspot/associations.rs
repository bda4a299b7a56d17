//! `POST /crm/v4/associations/{fromObjectType}/{toObjectType}/batch/read`
//! `{"inputs": [{"id"}]}`: for each input that exists, the ids of the live `to`
//! objects associated with it, in association order:
//! `{"status": "COMPLETE", "results": [{"from": {"id"}, "to": [{"toObjectId",
//! "associationTypes": [{"category", "typeId", "label"}]}]}]}`. Inputs that do not
//! exist are reported in one 207 error, as the object batch read reports them.

use serde_json::{json, Value};

use super::batch::input_id;
use super::routes::Answer;
use super::state::{now_ms, Kind};
use super::HubSpotSim;

/// HubSpot's batch size limit.
const MAX_INPUTS: usize = 1000;

pub(crate) fn batch_read(sim: &HubSpotSim, segments: &[&str], body: &Value) -> Answer {
    let (from, to) = match segments {
        [from, to, "batch", "read"] => match (Kind::from_path(from), Kind::from_path(to)) {
            (Some(from), Some(to)) => (from, to),
            _ => {
                return Answer::invalid(format!("Unable to infer object types from: {from}, {to}"))
            }
        },
        _ => {
            return Answer::json(
                404,
                json!({"status": "error", "message": "Unable to find the route", "category": "NOT_FOUND"}),
            )
        }
    };
    let Some(inputs) = body.get("inputs").and_then(Value::as_array) else {
        return Answer::invalid("Invalid input JSON: `inputs` is required");
    };
    if inputs.len() > MAX_INPUTS {
        return Answer::invalid(format!(
            "Batch input size {} exceeds the limit of {MAX_INPUTS}",
            inputs.len()
        ));
    }
    let started = now_ms();
    let type_id = association_type(from, to);
    sim.read(|state| {
        let mut results = Vec::new();
        let mut missing = Vec::new();
        for input in inputs {
            let id = input_id(input).unwrap_or_default();
            match state.get(from, &id) {
                Some(record) if !record.archived() => {
                    let linked: Vec<Value> = state
                        .linked(record.id, to)
                        .into_iter()
                        .map(|other| {
                            json!({
                                "toObjectId": other.to_string(),
                                "associationTypes": [{"category": "HUBSPOT_DEFINED", "typeId": type_id.unwrap_or(1), "label": null}],
                            })
                        })
                        .collect();
                    results.push(json!({"from": {"id": id}, "to": linked}));
                }
                _ => missing.push(id),
            }
        }
        let mut answer = json!({
            "status": "COMPLETE",
            "results": results,
            "startedAt": super::state::rfc3339(started),
            "completedAt": super::state::rfc3339(now_ms()),
        });
        if missing.is_empty() {
            return Answer::json(200, answer);
        }
        answer["numErrors"] = json!(1);
        answer["errors"] = json!([{
            "status": "error",
            "category": "OBJECT_NOT_FOUND",
            "message": format!("Could not find some {} objects.", from.upper()),
            "context": {"ids": missing},
        }]);
        Answer::json(207, answer)
    })
}

/// The default association type from `from` to `to`, as creates name them.
fn association_type(from: Kind, to: Kind) -> Option<i64> {
    (1..=20).find(|type_id| from.association_target(*type_id) == Some(to))
}
