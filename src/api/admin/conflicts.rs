//! Conflicts: `GET /api/conflicts` and `POST /api/conflicts/{id}/resolve`.
//!
//! Every clash is listed with both values, how it ended and who decided: the pair's
//! policy (at once), a person (applied at the record's next sync), or nobody yet (held).

use chrono::{DateTime, Utc};
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::types::MaybeUndefined;
use poem_openapi::{ApiResponse, Object, OpenApi};
use serde_json::Value;
use uuid::Uuid;

use super::failure::{answers_failures, Failure};
use super::parameters::{ConflictFilter, Offset, PageSize, PathText, UuidKind, Word};
use super::{AdminState, ApiError};
use crate::domain::{Choice, System};
use crate::store::{Conflict, StoreError};

pub struct ConflictsApi {
    pub state: AdminState,
}

#[derive(Debug, Object)]
pub struct ConflictView {
    pub id: Uuid,
    pub link_id: Uuid,
    pub pair: String,
    pub entity: String,
    /// The linked records, by their ids in each system.
    pub crm_id: Option<String>,
    pub finance_id: Option<String>,
    pub field: String,
    pub crm_value: Option<Value>,
    pub finance_value: Option<Value>,
    /// The value both sides held at the last sync before the clash.
    pub base_value: Option<Value>,
    /// `open` (held for a person), `decided` (a person chose; applied at the record's
    /// next sync), `resolved` (written to both sides) or `withdrawn` (a later edit
    /// ended the clash before anyone decided).
    pub status: String,
    /// The pair's conflict policy when the clash was seen.
    pub policy: String,
    /// `policy` or `person`; absent while nobody decided.
    pub decided_by: Option<String>,
    /// Whose value was kept: `crm`, `finance`, or `value` for a person's own value.
    pub winner: Option<String>,
    /// The value a person chose, when `winner` is `value`.
    pub resolved_value: Option<Value>,
    pub created_at: DateTime<Utc>,
    /// When the policy or the person decided.
    pub resolved_at: Option<DateTime<Utc>>,
    /// When the decision was written to both sides.
    pub applied_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Object)]
pub struct ResolveBody {
    /// `crm` or `finance`: keep that side's value. Give this or `value`.
    pub keep: Option<String>,
    /// A value of your own for both sides; `null` clears the field.
    pub value: MaybeUndefined<Value>,
    /// The former name of `keep`.
    #[oai(deprecated)]
    pub winner: Option<String>,
}

#[derive(ApiResponse)]
pub enum ListAnswer {
    #[oai(status = 200)]
    Ok(Json<Vec<ConflictView>>),
    /// A parameter out of its range.
    #[oai(status = 400)]
    BadRequest(Json<ApiError>),
    #[oai(status = 500)]
    Internal(Json<ApiError>),
    /// The store did not answer.
    #[oai(status = 503)]
    Unavailable(Json<ApiError>),
}

answers_failures!(ListAnswer);

#[derive(ApiResponse)]
pub enum ResolveAnswer {
    /// Decided; the record syncs again at once and the decision is applied if both
    /// sides still hold the values it was made for.
    #[oai(status = 200)]
    Ok(Json<Box<ConflictView>>),
    #[oai(status = 400)]
    BadRequest(Json<ApiError>),
    #[oai(status = 404)]
    NotFound(Json<ApiError>),
    /// The conflict is not held for a person (decided already, resolved by the
    /// policy, or withdrawn).
    #[oai(status = 409)]
    Conflict(Json<ApiError>),
    #[oai(status = 500)]
    Internal(Json<ApiError>),
    #[oai(status = 503)]
    Unavailable(Json<ApiError>),
}

answers_failures!(ResolveAnswer);

#[OpenApi]
impl ConflictsApi {
    /// Conflicts newest first: all of them, or those of one `status`.
    #[oai(path = "/conflicts", method = "get")]
    async fn list(
        &self,
        /// `open`, `decided`, `resolved`, `withdrawn` or `all` (when not given).
        status: Query<Option<Word<ConflictFilter>>>,
        /// 1 to 500; 200 when not given.
        limit: Query<Option<PageSize<500, 200>>>,
        /// 0 to 1,000,000.
        offset: Query<Option<Offset>>,
    ) -> ListAnswer {
        let status = status.0.and_then(|filter| filter.0 .0);
        let limit = PageSize::or_default(limit.0);
        let offset = offset.0.unwrap_or_default().0;
        let conflicts = match self.state.store.list_conflicts(status, limit, offset).await {
            Ok(conflicts) => conflicts,
            Err(err) => return Failure::from(err).into(),
        };
        let mut views = Vec::with_capacity(conflicts.len());
        for conflict in conflicts {
            match self.view(conflict).await {
                Ok(view) => views.push(view),
                Err(err) => return Failure::from(err).into(),
            }
        }
        ListAnswer::Ok(Json(views))
    }

    /// A person's decision on a held conflict: keep one side's value, or write a value
    /// of their own to both. The record syncs again at once.
    #[oai(path = "/conflicts/:id/resolve", method = "post")]
    async fn resolve(
        &self,
        id: Path<PathText<UuidKind>>,
        body: Json<ResolveBody>,
    ) -> ResolveAnswer {
        let read = id.0.read("id").and_then(|id| Ok((id, choice_of(body.0)?)));
        let (id, choice) = match read {
            Ok(read) => read,
            Err(why) => return ResolveAnswer::BadRequest(ApiError::new(why)),
        };
        let conflict = match self.state.store.resolve_conflict(id, &choice).await {
            Ok(conflict) => conflict,
            Err(StoreError::NotFound(what)) => {
                return ResolveAnswer::NotFound(ApiError::new(format!("no {what}")))
            }
            Err(StoreError::AlreadyDecided(why)) => {
                return ResolveAnswer::Conflict(ApiError::new(why))
            }
            Err(err) => return Failure::from(err).into(),
        };
        match self.state.store.get_link(conflict.link_id).await {
            Ok(Some(link)) => {
                if let Err(err) = self.state.sync_again(&link).await {
                    // The decision is stored: say so, rather than the bus's words alone.
                    tracing::error!(error = %err, "the bus is unavailable");
                    return ResolveAnswer::Unavailable(ApiError::new(
                        "decided, but the record could not be queued to sync; it syncs at its next change, or retry",
                    ));
                }
            }
            Ok(None) => {
                return ResolveAnswer::NotFound(ApiError::new(format!(
                    "no link {}",
                    conflict.link_id
                )))
            }
            Err(err) => return Failure::from(err).into(),
        }
        match self.view(conflict).await {
            Ok(view) => ResolveAnswer::Ok(Json(Box::new(view))),
            Err(err) => Failure::from(err).into(),
        }
    }
}

impl ConflictsApi {
    async fn view(&self, conflict: Conflict) -> Result<ConflictView, StoreError> {
        let link = self.state.store.get_link(conflict.link_id).await?;
        Ok(ConflictView {
            id: conflict.id,
            link_id: conflict.link_id,
            pair: conflict.pair.to_string(),
            entity: conflict.entity.as_str().to_string(),
            crm_id: link.as_ref().and_then(|l| l.crm_id.clone()),
            finance_id: link.as_ref().and_then(|l| l.finance_id.clone()),
            field: conflict.field,
            crm_value: conflict.crm_value,
            finance_value: conflict.finance_value,
            base_value: conflict.base_value,
            status: conflict.status.as_str().to_string(),
            policy: conflict.policy,
            decided_by: conflict.decided_by.map(|d| d.as_str().to_string()),
            winner: conflict.resolution,
            resolved_value: conflict.resolved_value,
            created_at: conflict.created_at,
            resolved_at: conflict.resolved_at,
            applied_at: conflict.applied_at,
        })
    }
}

fn choice_of(body: ResolveBody) -> Result<Choice, String> {
    let keep = body.keep.or(body.winner);
    match (keep, body.value) {
        (Some(_), MaybeUndefined::Value(_) | MaybeUndefined::Null) => {
            Err("give either `keep` or `value`, not both".into())
        }
        (Some(side), MaybeUndefined::Undefined) => {
            side.parse::<System>().map(Choice::Keep).map_err(|_| {
                format!(
                    "`keep` must be `crm` or `finance`, not `{}`",
                    side.escape_default()
                )
            })
        }
        (None, MaybeUndefined::Value(value)) => Ok(Choice::Value(Some(value))),
        (None, MaybeUndefined::Null) => Ok(Choice::Value(None)),
        (None, MaybeUndefined::Undefined) => {
            Err("say whose value to keep (`keep`: `crm` or `finance`) or give a `value`".into())
        }
    }
}
