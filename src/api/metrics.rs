//! `GET /metrics`: Prometheus text.

use std::collections::BTreeMap;

use poem::web::Data;
use poem::{handler, Response};

use super::HttpState;
use crate::backlog::{Figures, Place, Stage};
use crate::bus::Lane;
use crate::metrics::{render, Gauges, CONTENT_TYPE};
use crate::store::SyncStatus;

/// The age in seconds of the oldest change of `lane` inside this process, if any.
pub(crate) fn oldest_in_process(
    figures: &BTreeMap<Place, Figures>,
    lane: &str,
    now_ms: u64,
) -> Option<f64> {
    figures
        .iter()
        .filter(|(place, _)| place.lane == lane)
        .filter_map(|(_, f)| f.oldest_published_ms)
        .min()
        .map(|at| now_ms.saturating_sub(at) as f64 / 1000.0)
}

#[handler]
pub async fn metrics(state: Data<&HttpState>) -> Response {
    let admin = &state.admin;
    let mut queue_depth = Vec::new();
    let mut oldest_age_seconds = Vec::new();
    let mut pair_depth = Vec::new();
    let now_ms = chrono::Utc::now().timestamp_millis().max(0) as u64;
    let in_process = admin.backlog.figures();
    for lane in Lane::ALL {
        // A lane that cannot be read is left out rather than reported as empty.
        if let Ok(depth) = admin.bus.depth(lane).await {
            queue_depth.push((lane.as_str(), depth));
            let in_broker = crate::metrics::oldest_age_seconds(lane.as_str(), depth, now_ms);
            let here = oldest_in_process(&in_process, lane.as_str(), now_ms);
            if let Some(age) = [in_broker, here].into_iter().flatten().reduce(f64::max) {
                oldest_age_seconds.push((lane.as_str(), age));
            }
        }
        if let Ok(depths) = admin.bus.pair_depths(lane).await {
            pair_depth.extend(
                depths
                    .into_iter()
                    .map(|(pair, depth)| (lane.as_str(), pair, depth)),
            );
        }
    }
    let mut day_remaining = Vec::new();
    let mut budget_spent_seconds = Vec::new();
    for connection in admin.connections.all() {
        let budget = connection.health.budget();
        let side = (connection.pair.to_string(), connection.system.as_str());
        if let Some(left) = budget.day_remaining {
            day_remaining.push((side.0.clone(), side.1, left));
        }
        if let Some((_, until)) = budget.spent {
            let secs = (until - chrono::Utc::now()).num_seconds().max(0) as u64;
            budget_spent_seconds.push((side.0, side.1, secs));
        }
    }
    let counts = admin.store.count_records().await.unwrap_or_default();
    let count = |status: SyncStatus| counts.links.get(&status).copied().unwrap_or(0);
    let in_process = in_process
        .iter()
        .flat_map(|(place, figures)| {
            Stage::ALL.into_iter().map(move |stage| {
                let value = match stage {
                    Stage::Slot => figures.slot,
                    Stage::Lock => figures.lock,
                    Stage::Rate => figures.rate,
                    Stage::Running => figures.running,
                };
                (place.lane, place.pair.clone(), stage.as_str(), value)
            })
        })
        .collect();
    Response::builder()
        .content_type(CONTENT_TYPE)
        .body(render(&Gauges {
            queue_depth,
            oldest_age_seconds,
            open_conflicts: counts.open_conflicts,
            failed_records: count(SyncStatus::Failed),
            retrying_records: count(SyncStatus::Retrying),
            in_process,
            pair_depth,
            day_remaining,
            budget_spent_seconds,
        }))
}
