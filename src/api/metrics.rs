//! `GET /metrics`: Prometheus text.

use poem::web::Data;
use poem::{handler, Response};

use super::HttpState;
use crate::bus::Lane;
use crate::metrics::{render, Gauges, CONTENT_TYPE};
use crate::store::SyncStatus;

#[handler]
pub async fn metrics(state: Data<&HttpState>) -> Response {
    let admin = &state.admin;
    let mut queue_depth = Vec::new();
    let mut oldest_age_seconds = Vec::new();
    let now_ms = chrono::Utc::now().timestamp_millis().max(0) as u64;
    for lane in Lane::ALL {
        // A lane that cannot be read is left out rather than reported as empty.
        if let Ok(depth) = admin.bus.depth(lane).await {
            queue_depth.push((lane.as_str(), depth));
            if let Some(age) = crate::metrics::oldest_age_seconds(lane.as_str(), depth, now_ms) {
                oldest_age_seconds.push((lane.as_str(), age));
            }
        }
    }
    let open_conflicts = admin
        .store
        .open_conflicts(100_000)
        .await
        .map(|c| c.len() as u64)
        .unwrap_or(0);
    let failed_records = admin
        .store
        .links_with_status(&[SyncStatus::Failed], 100_000, 0)
        .await
        .map(|l| l.len() as u64)
        .unwrap_or(0);
    Response::builder()
        .content_type(CONTENT_TYPE)
        .body(render(&Gauges {
            queue_depth,
            oldest_age_seconds,
            open_conflicts,
            failed_records,
        }))
}
