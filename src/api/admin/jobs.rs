//! Resync, replay and their jobs: `POST /api/resync`, `POST /api/replay`,
//! `GET /api/jobs/{id}`.

use chrono::{DateTime, Utc};
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};
use uuid::Uuid;

use super::failure::{answers_failures, Failure};
use super::parameters::{PathKind, PathText, UuidKind, WordKind};
use super::time_field::TimeField;
use super::{AdminState, ApiError};
use crate::domain::{EntityType, PairId, System};
use crate::intake::jobs::{self, JobError, ResyncRequest, ResyncScope};
use params::limits::{REPLAY_DAYS, RESYNC_IDS};

pub struct JobsApi {
    pub state: AdminState,
}

/// Exactly one of `ids` (1 to 1,000), `modified_from` with `modified_to`, or
/// `everything`.
#[derive(Debug, Object)]
pub struct ResyncBody {
    pub pair: String,
    /// `crm` or `finance`: the side whose records are read again.
    pub system: String,
    /// `customer` or `invoice`.
    pub entity: String,
    pub ids: Option<Vec<String>>,
    pub modified_from: Option<TimeField>,
    pub modified_to: Option<TimeField>,
    pub everything: Option<bool>,
}

/// At most 31 days, `from` before `to`.
#[derive(Debug, Object)]
pub struct ReplayBody {
    pub from: TimeField,
    pub to: TimeField,
    pub pair: Option<String>,
}

#[derive(Debug, Object)]
pub struct JobAccepted {
    pub job_id: Uuid,
}

#[derive(Debug, Object)]
pub struct JobView {
    pub id: Uuid,
    /// `resync` or `replay`.
    pub kind: String,
    /// `queued`, `listing` (still publishing the records it lists), `running`, `done` or
    /// `failed`.
    pub status: String,
    pub queued: i64,
    pub published: i64,
    pub synced: i64,
    pub failed: i64,
    pub skipped: i64,
    pub error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

#[derive(ApiResponse)]
pub enum StartResponse {
    /// The job was recorded and runs in the background.
    #[oai(status = 202)]
    Accepted(Json<JobAccepted>),
    /// A field out of its range, or ids the system cannot hold.
    #[oai(status = 400)]
    BadRequest(Json<ApiError>),
    #[oai(status = 404)]
    UnknownPair(Json<ApiError>),
    #[oai(status = 500)]
    Internal(Json<ApiError>),
    #[oai(status = 503)]
    Unavailable(Json<ApiError>),
}

answers_failures!(StartResponse);

#[derive(ApiResponse)]
pub enum JobResponse {
    #[oai(status = 200)]
    Found(Json<JobView>),
    /// The id is not a UUID.
    #[oai(status = 400)]
    BadRequest(Json<ApiError>),
    #[oai(status = 404)]
    NotFound(Json<ApiError>),
    #[oai(status = 500)]
    Internal(Json<ApiError>),
    #[oai(status = 503)]
    Unavailable(Json<ApiError>),
}

answers_failures!(JobResponse);

fn started(result: Result<Uuid, JobError>) -> StartResponse {
    match result {
        Ok(job_id) => StartResponse::Accepted(Json(JobAccepted { job_id })),
        Err(JobError::UnknownPair(pair)) => {
            StartResponse::UnknownPair(ApiError::new(format!("no pair named `{pair}`")))
        }
        Err(JobError::Invalid(why)) => StartResponse::BadRequest(ApiError::new(why)),
        Err(JobError::Store(err)) => Failure::from(err).into(),
    }
}

/// A body field read by its rule; the reason names the field.
fn field<T>(name: &str, read: Result<T, params::Refusal>) -> Result<T, String> {
    read.map_err(|refusal| format!("`{name}` {refusal}"))
}

/// The scope of a resync as the body gives it, every field within its range.
fn resync_request(body: ResyncBody) -> Result<ResyncRequest, String> {
    let pair = field("pair", params::pair_name(&body.pair))?.to_string();
    let system = field("system", WordKind::<System>::read(&body.system))?;
    let entity = field("entity", WordKind::<EntityType>::read(&body.entity))?;
    let modified_from = body
        .modified_from
        .map(|t| t.parse("modified_from"))
        .transpose()?;
    let modified_to = body
        .modified_to
        .map(|t| t.parse("modified_to"))
        .transpose()?;
    let scope = match (
        body.ids,
        modified_from,
        modified_to,
        body.everything.unwrap_or(false),
    ) {
        (Some(ids), None, None, false) => ResyncScope::Ids(resync_ids(ids)?),
        (None, Some(from), Some(to), false) => {
            let span = field("modified_from", params::span(from, to, MODIFIED_DAYS))?;
            ResyncScope::ModifiedBetween {
                from: span.from,
                to: span.to,
            }
        }
        (None, None, None, true) => ResyncScope::Everything,
        _ => return Err(
            "give exactly one of `ids`, `modified_from` with `modified_to`, or `everything: true`"
                .into(),
        ),
    };
    Ok(ResyncRequest {
        pair: PairId::new(pair),
        system,
        entity,
        scope,
    })
}

/// The whole range of times a parameter may name: a resync by modified date may cover
/// it, since `everything` may too.
const MODIFIED_DAYS: i64 = 36_600;

/// 1 to [`RESYNC_IDS`] ids, each an id a system could hold; repeats are read once, in
/// the order first given.
fn resync_ids(ids: Vec<String>) -> Result<Vec<String>, String> {
    if ids.is_empty() || ids.len() > RESYNC_IDS {
        return Err(format!(
            "`ids` must hold 1 to {RESYNC_IDS} ids; got {}",
            ids.len()
        ));
    }
    for (n, id) in ids.iter().enumerate() {
        field(&format!("ids[{n}]"), params::record_id(id))?;
    }
    let mut seen = std::collections::HashSet::new();
    Ok(ids
        .into_iter()
        .filter(|id| seen.insert(id.clone()))
        .collect())
}

#[OpenApi]
impl JobsApi {
    /// Looks at chosen records again: by ids, by modified-date range, or everything of
    /// one entity type on one side. Answers at once; follow the job for progress.
    #[oai(path = "/resync", method = "post")]
    async fn resync(&self, body: Json<ResyncBody>) -> StartResponse {
        match resync_request(body.0) {
            Ok(request) => started(self.state.jobs.start_resync(request).await),
            Err(why) => StartResponse::BadRequest(ApiError::new(why)),
        }
    }

    /// Re-publishes, once per record, the changes recorded in a time window.
    #[oai(path = "/replay", method = "post")]
    async fn replay(&self, body: Json<ReplayBody>) -> StartResponse {
        let body = body.0;
        let window = (|| {
            let (from, to) = (body.from.parse("from")?, body.to.parse("to")?);
            field("from", params::span(from, to, REPLAY_DAYS))
        })();
        let pair = body
            .pair
            .map(|pair| field("pair", params::pair_name(&pair)).map(PairId::new))
            .transpose();
        match (window, pair) {
            (Ok(window), Ok(pair)) => started(
                self.state
                    .jobs
                    .start_replay(pair, window.from, window.to)
                    .await,
            ),
            (Err(why), _) | (_, Err(why)) => StartResponse::BadRequest(ApiError::new(why)),
        }
    }

    /// A job's progress: queued, published, synced, failed, skipped.
    #[oai(path = "/jobs/:id", method = "get")]
    async fn job(&self, id: Path<PathText<UuidKind>>) -> JobResponse {
        let id = match id.0.read("id") {
            Ok(id) => id,
            Err(why) => return JobResponse::BadRequest(ApiError::new(why)),
        };
        match jobs::progress(self.state.store.as_ref(), id).await {
            Ok(Some(job)) => JobResponse::Found(Json(JobView {
                id: job.id,
                kind: job.kind.as_str().to_string(),
                status: job.status.as_str().to_string(),
                queued: job.queued,
                published: job.published,
                synced: job.synced,
                failed: job.failed,
                skipped: job.skipped,
                error: job.error,
                created_at: job.created_at,
                finished_at: job.finished_at,
            })),
            Ok(None) => JobResponse::NotFound(ApiError::new(format!("no job {}", id))),
            Err(err) => Failure::from(err).into(),
        }
    }
}
