//! Resync, replay and their jobs: `POST /api/resync`, `POST /api/replay`,
//! `GET /api/jobs/{id}`.

use chrono::{DateTime, Utc};
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};
use uuid::Uuid;

use super::time_field::TimeField;
use super::{AdminState, ApiError};
use crate::domain::{EntityType, PairId, System};
use crate::intake::jobs::{self, JobError, ResyncRequest, ResyncScope};

pub struct JobsApi {
    pub state: AdminState,
}

/// Exactly one of `ids`, `modified_from` with `modified_to`, or `everything`.
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
    #[oai(status = 400)]
    BadRequest(Json<ApiError>),
    #[oai(status = 404)]
    UnknownPair(Json<ApiError>),
    #[oai(status = 500)]
    Internal(Json<ApiError>),
}

#[derive(ApiResponse)]
pub enum JobResponse {
    #[oai(status = 200)]
    Found(Json<JobView>),
    #[oai(status = 404)]
    NotFound(Json<ApiError>),
    #[oai(status = 500)]
    Internal(Json<ApiError>),
}

fn started(result: Result<Uuid, JobError>) -> StartResponse {
    match result {
        Ok(job_id) => StartResponse::Accepted(Json(JobAccepted { job_id })),
        Err(JobError::UnknownPair(pair)) => {
            StartResponse::UnknownPair(ApiError::new(format!("no pair named `{pair}`")))
        }
        Err(JobError::Invalid(why)) => StartResponse::BadRequest(ApiError::new(why)),
        Err(JobError::Store(err)) => {
            tracing::error!(error = %err, "cannot record a job");
            StartResponse::Internal(ApiError::new("the store is unavailable; try again"))
        }
    }
}

#[OpenApi]
impl JobsApi {
    /// Looks at chosen records again: by ids, by modified-date range, or everything of
    /// one entity type on one side. Answers at once; follow the job for progress.
    #[oai(path = "/resync", method = "post")]
    async fn resync(&self, body: Json<ResyncBody>) -> StartResponse {
        let body = body.0;
        let system = match body.system.parse::<System>() {
            Ok(system) => system,
            Err(why) => return StartResponse::BadRequest(ApiError::new(why)),
        };
        let entity = match body.entity.parse::<EntityType>() {
            Ok(entity) => entity,
            Err(why) => return StartResponse::BadRequest(ApiError::new(why)),
        };
        let parsed =
            |field: &str, time: Option<TimeField>| time.map(|t| t.parse(field)).transpose();
        let modified_from = match parsed("modified_from", body.modified_from) {
            Ok(time) => time,
            Err(why) => return StartResponse::BadRequest(ApiError::new(why)),
        };
        let modified_to = match parsed("modified_to", body.modified_to) {
            Ok(time) => time,
            Err(why) => return StartResponse::BadRequest(ApiError::new(why)),
        };
        let scope = match (body.ids, modified_from, modified_to, body.everything.unwrap_or(false)) {
            (Some(ids), None, None, false) => ResyncScope::Ids(ids),
            (None, Some(from), Some(to), false) => ResyncScope::ModifiedBetween { from, to },
            (None, None, None, true) => ResyncScope::Everything,
            _ => {
                return StartResponse::BadRequest(ApiError::new(
                    "give exactly one of `ids`, `modified_from` with `modified_to`, or `everything: true`",
                ))
            }
        };
        let request = ResyncRequest {
            pair: PairId::new(body.pair),
            system,
            entity,
            scope,
        };
        started(self.state.jobs.start_resync(request).await)
    }

    /// Re-publishes, once per record, the changes recorded in a time window.
    #[oai(path = "/replay", method = "post")]
    async fn replay(&self, body: Json<ReplayBody>) -> StartResponse {
        let body = body.0;
        let (from, to) = match (body.from.parse("from"), body.to.parse("to")) {
            (Ok(from), Ok(to)) => (from, to),
            (Err(why), _) | (_, Err(why)) => return StartResponse::BadRequest(ApiError::new(why)),
        };
        started(
            self.state
                .jobs
                .start_replay(body.pair.map(PairId::new), from, to)
                .await,
        )
    }

    /// A job's progress: queued, published, synced, failed, skipped.
    #[oai(path = "/jobs/:id", method = "get")]
    async fn job(&self, id: Path<Uuid>) -> JobResponse {
        match jobs::progress(self.state.store.as_ref(), id.0).await {
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
            Ok(None) => JobResponse::NotFound(ApiError::new(format!("no job {}", id.0))),
            Err(err) => {
                tracing::error!(error = %err, "cannot read a job");
                JobResponse::Internal(ApiError::new("the store is unavailable; try again"))
            }
        }
    }
}
