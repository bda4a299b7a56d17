//! Steering: `GET /api/stats`, `GET /api/queue`, `POST /api/queue/pause` and
//! `/resume`, `POST /api/failures/retry`, `DELETE /api/failures`, and the lists of
//! open conflicts and deletes awaiting approval.

use std::collections::BTreeMap;

use chrono::{Duration, Utc};
use poem_openapi::param::Query;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};
use uuid::Uuid;

use super::connections::connection_view;
use super::failure::{answers_failures, Failure, Unavailable};
use super::parameters::{PathKind, PathText, UuidKind, Window, WordKind};
use super::records::{link_views, LinkView};
use super::{source_of, AdminState, ApiError};
use crate::bus::{BusMessage, Lane};
use crate::domain::{ChangeEvent, ChangeKind, EntityType, Trigger};
use crate::store::{NewSyncLogEntry, Outcome, SyncCommit, SyncStatus};

pub struct OperationsApi {
    pub state: AdminState,
}

#[derive(Debug, Object)]
pub struct StatsView {
    pub window: String,
    /// Log entries by outcome.
    pub outcomes: BTreeMap<String, u64>,
    /// Finished changes (not retries in between): synced, skipped, blocked, failed ...
    pub finished: u64,
    /// Share of finished changes that did not fail, 0 to 1; absent when none finished.
    /// A change still being retried is not counted: see `attempt_success_rate`.
    pub success_rate: Option<f64>,
    /// Every attempt to sync a change: the finished ones and each failed attempt
    /// that was retried (`retrying`).
    pub attempts: u64,
    /// Share of attempts that did not fail, 0 to 1 (retries count as failed
    /// attempts); absent when none was made. During an outage this falls at once,
    /// while `success_rate` waits for the changes to finish.
    pub attempt_success_rate: Option<f64>,
    /// The state of each connection now, as `GET /api/connections` shows it.
    pub connections: Vec<ConnectionStateView>,
}

#[derive(Debug, Object)]
pub struct ConnectionStateView {
    pub pair: String,
    pub side: String,
    pub kind: String,
    /// `unknown`, `healthy`, `degraded`, `down`, `unauthorised` or `misconfigured`.
    pub state: String,
    pub since: chrono::DateTime<Utc>,
    pub last_error: Option<String>,
    /// Changes sent back for a retry after this connection failed them, and calls
    /// held until it comes back.
    pub waiting: super::connections::WaitingView,
}

#[derive(Debug, Object)]
pub struct QueueView {
    pub paused: bool,
    /// Messages waiting in the broker's live lane (not yet taken by any process).
    pub live_depth: u64,
    /// Messages waiting in the broker's bulk lane.
    pub bulk_depth: u64,
    /// Changes inside this process: taken from the broker and waiting, or running.
    pub in_process: InProcessView,
    /// The same, by pair and lane.
    pub pairs: Vec<PairQueueView>,
    /// Age of the oldest change waiting anywhere (broker or this process), in seconds;
    /// for the broker it is an upper bound (see docs/metrics.md).
    pub oldest_age_seconds: Option<f64>,
}

/// Changes inside a process, by what they are doing.
#[derive(Debug, Default, Object)]
pub struct InProcessView {
    /// Waiting for a worker.
    pub waiting_for_worker: u64,
    /// Waiting for the record's lock (another change of the same record runs).
    pub waiting_for_lock: u64,
    /// Waiting for the connection's rate budget, or for the batch call it joined.
    pub waiting_for_rate: u64,
    pub running: u64,
}

#[derive(Debug, Object)]
pub struct PairQueueView {
    pub pair: String,
    pub lane: String,
    /// Messages of this pair and lane waiting in the broker (each pair has its own
    /// queue there, so one pair's backlog is never in front of another's changes).
    pub broker_depth: u64,
    pub in_process: InProcessView,
    pub oldest_age_seconds: Option<f64>,
}

impl InProcessView {
    fn of(figures: &crate::backlog::Figures) -> Self {
        Self {
            waiting_for_worker: figures.slot,
            waiting_for_lock: figures.lock,
            waiting_for_rate: figures.rate,
            running: figures.running,
        }
    }

    fn add(&mut self, other: &Self) {
        self.waiting_for_worker += other.waiting_for_worker;
        self.waiting_for_lock += other.waiting_for_lock;
        self.waiting_for_rate += other.waiting_for_rate;
        self.running += other.running;
    }
}

#[derive(Debug, Object)]
pub struct RetryBody {
    /// One failed link; otherwise every failed link (up to 1,000) that matches the
    /// filters below.
    pub link_id: Option<Uuid>,
    /// Only the failures of this pair.
    pub pair: Option<String>,
    /// Only failures of this entity type: `customer` or `invoice`.
    pub entity: Option<String>,
}

#[derive(Debug, Object)]
pub struct Count {
    pub count: u64,
}

#[derive(Debug, Object)]
pub struct DeleteView {
    pub id: Uuid,
    pub link_id: Uuid,
    pub pair: String,
    pub entity: String,
    pub deleted_in: String,
    pub external_id: String,
}

#[derive(ApiResponse)]
pub enum StatsAnswer {
    #[oai(status = 200)]
    Ok(Json<StatsView>),
    /// `window` out of its range.
    #[oai(status = 400)]
    BadRequest(Json<ApiError>),
    #[oai(status = 500)]
    Internal(Json<ApiError>),
    #[oai(status = 503)]
    Unavailable(Json<ApiError>),
}

answers_failures!(StatsAnswer);

#[derive(ApiResponse)]
pub enum QueueAnswer {
    #[oai(status = 200)]
    Ok(Json<QueueView>),
    /// The broker did not answer.
    #[oai(status = 503)]
    Unavailable(Json<ApiError>),
}

answers_failures!(QueueAnswer, bus only);

#[derive(ApiResponse)]
pub enum RetryAnswer {
    /// How many records were sent through the sync again.
    #[oai(status = 200)]
    Ok(Json<Count>),
    /// A field out of its range, or a link that has not failed.
    #[oai(status = 400)]
    BadRequest(Json<ApiError>),
    #[oai(status = 404)]
    NotFound(Json<ApiError>),
    #[oai(status = 500)]
    Internal(Json<ApiError>),
    #[oai(status = 503)]
    Unavailable(Json<ApiError>),
}

answers_failures!(RetryAnswer);

/// What an endpoint that only reads or writes the store answers.
#[derive(ApiResponse)]
pub enum StoreAnswer<T: poem_openapi::types::ToJSON + Send + Sync> {
    #[oai(status = 200)]
    Ok(Json<T>),
    #[oai(status = 500)]
    Internal(Json<ApiError>),
    #[oai(status = 503)]
    Unavailable(Json<ApiError>),
}

impl<T: poem_openapi::types::ToJSON + Send + Sync> From<Failure> for StoreAnswer<T> {
    fn from(failure: Failure) -> Self {
        match failure {
            Failure::Unavailable(body) => Self::Unavailable(body),
            Failure::Internal(body) => Self::Internal(body),
        }
    }
}

#[derive(ApiResponse)]
pub enum ApproveAnswer {
    #[oai(status = 200)]
    Ok(Json<DeleteView>),
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

answers_failures!(ApproveAnswer);

#[OpenApi]
impl OperationsApi {
    /// Counts by outcome over a window (default 24h) and the success rate.
    #[oai(path = "/stats", method = "get")]
    async fn stats(
        &self,
        /// How far back: `90m`, `24h` (when not given), `7d`; 1m to 90d.
        window: Query<Option<Window>>,
    ) -> StatsAnswer {
        let window = window.0.unwrap_or_else(|| Window {
            length: Duration::hours(24),
            text: "24h".into(),
        });
        let counts = match self
            .state
            .store
            .count_outcomes_since(Utc::now() - window.length)
            .await
        {
            Ok(counts) => counts,
            Err(err) => return Failure::from(err).into(),
        };
        let finished: u64 = counts
            .iter()
            .filter(|(o, _)| !matches!(o, Outcome::Retrying | Outcome::Received))
            .map(|(_, n)| n)
            .sum();
        let failed = counts.get(&Outcome::Failed).copied().unwrap_or(0)
            + counts.get(&Outcome::Parked).copied().unwrap_or(0);
        let retried = counts.get(&Outcome::Retrying).copied().unwrap_or(0);
        let attempts = finished + retried;
        let failed_attempts = failed.min(finished) + retried;
        let connections = self
            .state
            .connections
            .all()
            .iter()
            .map(|c| {
                let view = connection_view(c);
                ConnectionStateView {
                    pair: view.pair,
                    side: view.side,
                    kind: view.kind,
                    state: view.state,
                    since: view.since,
                    last_error: view.last_error.map(|e| e.message),
                    waiting: view.waiting,
                }
            })
            .collect();
        StatsAnswer::Ok(Json(StatsView {
            window: window.text,
            outcomes: counts
                .iter()
                .map(|(o, n)| (o.as_str().to_string(), *n))
                .collect(),
            finished,
            success_rate: (finished > 0)
                .then(|| (finished - failed.min(finished)) as f64 / finished as f64),
            attempts,
            attempt_success_rate: (attempts > 0)
                .then(|| (attempts - failed_attempts) as f64 / attempts as f64),
            connections,
        }))
    }

    /// What waits: in the broker per lane, and inside this process per pair and lane
    /// (for a worker, a record's lock or a rate budget) or running; the oldest age over
    /// all of it; and whether this process's workers are paused.
    #[oai(path = "/queue", method = "get")]
    async fn queue(&self) -> QueueAnswer {
        let (live, bulk) = (
            self.state.bus.depth(Lane::Live).await,
            self.state.bus.depth(Lane::Bulk).await,
        );
        let (live_depth, bulk_depth) = match (live, bulk) {
            (Ok(live), Ok(bulk)) => (live, bulk),
            (Err(err), _) | (_, Err(err)) => return Unavailable::from(err).into(),
        };
        let mut broker = BTreeMap::new();
        for lane in Lane::ALL {
            match self.state.bus.pair_depths(lane).await {
                Ok(depths) => {
                    for (pair, depth) in depths.into_iter().filter(|(_, depth)| *depth > 0) {
                        broker.insert((pair, lane.as_str()), depth);
                    }
                }
                Err(err) => return Unavailable::from(err).into(),
            }
        }
        let now_ms = u64::try_from(Utc::now().timestamp_millis()).unwrap_or(0);
        let figures = self.state.backlog.figures();
        let age = |at: Option<u64>| at.map(|at| now_ms.saturating_sub(at) as f64 / 1000.0);
        let mut in_process = InProcessView::default();
        let mut places: BTreeMap<(String, &'static str), PairQueueView> = BTreeMap::new();
        for (place, f) in &figures {
            let view = InProcessView::of(f);
            in_process.add(&view);
            places.insert(
                (place.pair.clone(), place.lane),
                PairQueueView {
                    pair: place.pair.clone(),
                    lane: place.lane.to_string(),
                    broker_depth: 0,
                    in_process: view,
                    oldest_age_seconds: age(f.oldest_published_ms),
                },
            );
        }
        for ((pair, lane), depth) in broker {
            places
                .entry((pair.clone(), lane))
                .or_insert_with(|| PairQueueView {
                    pair,
                    lane: lane.to_string(),
                    broker_depth: 0,
                    in_process: InProcessView::default(),
                    oldest_age_seconds: None,
                })
                .broker_depth = depth;
        }
        let pairs: Vec<PairQueueView> = places.into_values().collect();
        let oldest_age_seconds = [(Lane::Live, live_depth), (Lane::Bulk, bulk_depth)]
            .into_iter()
            .flat_map(|(lane, depth)| {
                [
                    crate::metrics::oldest_age_seconds(lane.as_str(), depth, now_ms),
                    crate::api::metrics::oldest_in_process(&figures, lane.as_str(), now_ms),
                ]
            })
            .flatten()
            .reduce(f64::max);
        QueueAnswer::Ok(Json(QueueView {
            paused: self.state.queue.is_paused(),
            live_depth,
            bulk_depth,
            in_process,
            pairs,
            oldest_age_seconds,
        }))
    }

    /// Stops this process's workers from taking new changes; queued ones wait.
    #[oai(path = "/queue/pause", method = "post")]
    async fn pause(&self) -> QueueAnswer {
        self.state.queue.pause();
        self.queue().await
    }

    #[oai(path = "/queue/resume", method = "post")]
    async fn resume(&self) -> QueueAnswer {
        self.state.queue.resume();
        self.queue().await
    }

    /// Sends failed records through the sync again: one, those of a pair or entity
    /// type, or all.
    #[oai(path = "/failures/retry", method = "post")]
    async fn retry(&self, body: Json<RetryBody>) -> RetryAnswer {
        let entity = body
            .0
            .entity
            .as_deref()
            .map(WordKind::<EntityType>::read)
            .transpose();
        let pair = body.0.pair.as_deref().map(params::pair_name).transpose();
        let (entity, pair) = match (entity, pair) {
            (Ok(entity), Ok(pair)) => (entity, pair.map(str::to_string)),
            (Err(refusal), _) => {
                return RetryAnswer::BadRequest(ApiError::new(format!("`entity` {refusal}")))
            }
            (_, Err(refusal)) => {
                return RetryAnswer::BadRequest(ApiError::new(format!("`pair` {refusal}")))
            }
        };
        let links = match body.0.link_id {
            Some(id) => match self.state.store.get_link(id).await {
                Ok(Some(link))
                    if matches!(link.sync_status, SyncStatus::Failed | SyncStatus::Retrying) =>
                {
                    vec![link]
                }
                Ok(Some(_)) => {
                    return RetryAnswer::BadRequest(ApiError::new(format!(
                        "link {id} has not failed"
                    )))
                }
                Ok(None) => return RetryAnswer::NotFound(ApiError::new(format!("no link {id}"))),
                Err(err) => return Failure::from(err).into(),
            },
            None => match self
                .state
                .store
                .links_with_status(&[SyncStatus::Failed, SyncStatus::Retrying], 1000, 0)
                .await
            {
                Ok(links) => links
                    .into_iter()
                    .filter(|l| pair.as_deref().is_none_or(|p| l.pair.as_str() == p))
                    .filter(|l| entity.is_none_or(|e| l.entity == e))
                    .collect(),
                Err(err) => return Failure::from(err).into(),
            },
        };
        let events: Vec<_> = links
            .iter()
            .filter_map(|link| {
                let (system, id) = source_of(link)?;
                Some(BusMessage::ChangeV1(ChangeEvent {
                    event_id: format!("retry:{}:{}", link.id, Uuid::now_v7()),
                    pair: link.pair.clone(),
                    system,
                    entity: link.entity,
                    external_id: id,
                    kind: ChangeKind::Upsert,
                    occurred_at: Utc::now(),
                    trigger: Trigger::Retry,
                    job_id: None,
                    transaction_id: None,
                    by_tandem: false,
                }))
            })
            .collect();
        if let Err(err) = self.state.bus.publish_batch(Lane::Live, &events).await {
            return Failure::from(err).into();
        }
        RetryAnswer::Ok(Json(Count {
            count: events.len() as u64,
        }))
    }

    /// Dismisses every failure: the links go back to `pending`, and the log says a
    /// person cleared them.
    #[oai(path = "/failures", method = "delete")]
    async fn clear(&self) -> StoreAnswer<Count> {
        let links = match self
            .state
            .store
            .links_with_status(&[SyncStatus::Failed], 1000, 0)
            .await
        {
            Ok(links) => links,
            Err(err) => return Failure::from(err).into(),
        };
        let count = links.len() as u64;
        for mut link in links {
            let Some((system, id)) = source_of(&link) else {
                continue;
            };
            let mut log = NewSyncLogEntry::new(
                Uuid::now_v7(),
                link.pair.clone(),
                link.entity,
                system,
                id,
                Trigger::Manual,
                Outcome::Skipped,
            );
            log.link_id = Some(link.id);
            log.detail = Some(format!(
                "failure cleared by a person: {}",
                link.last_error.as_deref().unwrap_or("no detail")
            ));
            link.sync_status = SyncStatus::Pending;
            link.last_error = None;
            if let Err(err) = self
                .state
                .store
                .commit_sync(SyncCommit {
                    link: Some(link),
                    log,
                    conflicts: vec![],
                    withdrawn: vec![],
                    link_status: None,
                    hold_delete: false,
                    announced: None,
                })
                .await
            {
                return Failure::from(err).into();
            }
        }
        StoreAnswer::Ok(Json(Count { count }))
    }

    /// Records whose change failed, most recent first: `retrying` from the first failed
    /// attempt (with the error and when the next attempt is due), `failed` once the
    /// attempts are spent. Each names its record (a customer's name and e-mail, an
    /// invoice's number, amount and customer).
    #[oai(path = "/failures", method = "get")]
    async fn failures(&self) -> StoreAnswer<Vec<LinkView>> {
        let links = match self
            .state
            .store
            .links_with_status(&[SyncStatus::Retrying, SyncStatus::Failed], 200, 0)
            .await
        {
            Ok(links) => links,
            Err(err) => return Failure::from(err).into(),
        };
        match link_views(self.state.store.as_ref(), links).await {
            Ok(views) => StoreAnswer::Ok(Json(views)),
            Err(err) => Failure::from(err).into(),
        }
    }

    /// Approves a held delete: the other side's record is archived at once.
    #[oai(path = "/deletes/:id/approve", method = "post")]
    async fn approve(&self, id: poem_openapi::param::Path<PathText<UuidKind>>) -> ApproveAnswer {
        let id = match id.0.read("id") {
            Ok(id) => id,
            Err(why) => return ApproveAnswer::BadRequest(ApiError::new(why)),
        };
        let held = match self.state.store.decide_delete(id, true).await {
            Ok(held) => held,
            Err(crate::store::StoreError::NotFound(what)) => {
                return ApproveAnswer::NotFound(ApiError::new(format!("no {what}")))
            }
            Err(err) => return Failure::from(err).into(),
        };
        let link = match self.state.store.get_link(held.link_id).await {
            Ok(Some(link)) => link,
            Ok(None) => {
                return ApproveAnswer::NotFound(ApiError::new(format!("no link {}", held.link_id)))
            }
            Err(err) => return Failure::from(err).into(),
        };
        if let Err(err) = self
            .state
            .sync_again_from(&link, held.source_system, held.external_id.clone())
            .await
        {
            return Failure::from(err).into();
        }
        ApproveAnswer::Ok(Json(DeleteView {
            id: held.id,
            link_id: held.link_id,
            pair: held.pair.to_string(),
            entity: held.entity.as_str().to_string(),
            deleted_in: held.source_system.as_str().to_string(),
            external_id: held.external_id,
        }))
    }

    /// Deletes held for a person to approve.
    #[oai(path = "/deletes", method = "get")]
    async fn deletes(&self) -> StoreAnswer<Vec<DeleteView>> {
        match self.state.store.pending_deletes(200).await {
            Ok(deletes) => StoreAnswer::Ok(Json(
                deletes
                    .into_iter()
                    .map(|d| DeleteView {
                        id: d.id,
                        link_id: d.link_id,
                        pair: d.pair.to_string(),
                        entity: d.entity.as_str().to_string(),
                        deleted_in: d.source_system.as_str().to_string(),
                        external_id: d.external_id,
                    })
                    .collect(),
            )),
            Err(err) => Failure::from(err).into(),
        }
    }
}
