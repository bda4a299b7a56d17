//! Resync and replay jobs and their progress counts.

use async_trait::async_trait;

use super::reconnect::Repeat;
use super::SeaStore;
use chrono::Utc;
use entity::job::{ActiveModel, Column, Entity, Model};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter};
use serde_json::Value;
use uuid::Uuid;

use super::{parse, Job, JobCounter, JobKind, JobStatus, StoreError, StoreResult};

pub(super) async fn create(
    db: &impl ConnectionTrait,
    kind: JobKind,
    params: Value,
) -> StoreResult<Job> {
    let now = Utc::now();
    let model = Model {
        id: Uuid::now_v7(),
        kind: kind.as_str().to_string(),
        params,
        status: JobStatus::Queued.as_str().to_string(),
        queued: 0,
        published: 0,
        synced: 0,
        failed: 0,
        skipped: 0,
        error: None,
        created_at: now,
        updated_at: now,
        finished_at: None,
    };
    Entity::insert(ActiveModel::from(model.clone()))
        .exec_without_returning(db)
        .await?;
    from_model(model)
}

pub(super) async fn get(db: &impl ConnectionTrait, id: Uuid) -> StoreResult<Option<Job>> {
    Entity::find_by_id(id)
        .one(db)
        .await?
        .map(from_model)
        .transpose()
}

pub(super) async fn add(
    db: &impl ConnectionTrait,
    id: Uuid,
    counter: JobCounter,
    n: i64,
) -> StoreResult<()> {
    let column = match counter {
        JobCounter::Queued => Column::Queued,
        JobCounter::Published => Column::Published,
        JobCounter::Synced => Column::Synced,
        JobCounter::Failed => Column::Failed,
        JobCounter::Skipped => Column::Skipped,
    };
    // Added in the database, so concurrent workers never lose each other's counts.
    let updated = Entity::update_many()
        .col_expr(column, Expr::col(column).add(n))
        .col_expr(Column::UpdatedAt, Expr::value(Utc::now()))
        .filter(Column::Id.eq(id))
        .exec(db)
        .await?;
    if updated.rows_affected == 0 {
        return Err(StoreError::NotFound(format!("job {id}")));
    }
    Ok(())
}

pub(super) async fn set_status(
    db: &impl ConnectionTrait,
    id: Uuid,
    status: JobStatus,
    error: Option<String>,
) -> StoreResult<()> {
    let now = Utc::now();
    let finished = matches!(status, JobStatus::Done | JobStatus::Failed).then_some(now);
    let updated = Entity::update_many()
        .col_expr(Column::Status, Expr::value(status.as_str()))
        .col_expr(Column::Error, Expr::value(error))
        .col_expr(Column::UpdatedAt, Expr::value(now))
        .col_expr(Column::FinishedAt, Expr::value(finished))
        .filter(Column::Id.eq(id))
        .exec(db)
        .await?;
    if updated.rows_affected == 0 {
        return Err(StoreError::NotFound(format!("job {id}")));
    }
    Ok(())
}

fn from_model(model: Model) -> StoreResult<Job> {
    Ok(Job {
        id: model.id,
        kind: parse(&model.kind)?,
        params: model.params,
        status: parse(&model.status)?,
        queued: model.queued,
        published: model.published,
        synced: model.synced,
        failed: model.failed,
        skipped: model.skipped,
        error: model.error,
        created_at: model.created_at,
        updated_at: model.updated_at,
        finished_at: model.finished_at,
    })
}

/// Resync and replay jobs and their counts.
#[async_trait]
pub trait JobStore: Send + Sync {
    async fn create_job(&self, kind: JobKind, params: Value) -> StoreResult<Job>;
    async fn job(&self, id: Uuid) -> StoreResult<Option<Job>>;
    async fn add_to_job(&self, id: Uuid, counter: JobCounter, n: i64) -> StoreResult<()>;
    async fn set_job_status(
        &self,
        id: Uuid,
        status: JobStatus,
        error: Option<String>,
    ) -> StoreResult<()>;
}

#[async_trait]
impl JobStore for SeaStore {
    async fn create_job(&self, kind: JobKind, params: Value) -> StoreResult<Job> {
        self.run(Repeat::IfNotRun, || create(&self.db, kind, params.clone()))
            .await
    }

    async fn job(&self, id: Uuid) -> StoreResult<Option<Job>> {
        self.run(Repeat::Always, || get(&self.db, id)).await
    }

    async fn add_to_job(&self, id: Uuid, counter: JobCounter, n: i64) -> StoreResult<()> {
        self.run(Repeat::IfNotRun, || add(&self.db, id, counter, n))
            .await
    }

    async fn set_job_status(
        &self,
        id: Uuid,
        status: JobStatus,
        error: Option<String>,
    ) -> StoreResult<()> {
        self.run(Repeat::Always, || {
            set_status(&self.db, id, status, error.clone())
        })
        .await
    }
}
