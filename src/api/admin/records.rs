//! What happened to a record and why: `GET /api/records/{pair}/{entity}/{system}/{id}`,
//! and the sync log across records: `GET /api/sync-logs`.

use chrono::{DateTime, Utc};
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};
use uuid::Uuid;

use std::collections::{BTreeMap, HashMap};

use super::failure::{answers_failures, Failure};
use super::parameters::{
    Offset, PageSize, PairName, PairNameKind, PathText, RecordIdKind, SearchText, Time, Word,
    WordKind,
};
use super::{AdminState, ApiError};
use crate::domain::{EntityType, PairId, System};
use crate::store::{EntityLink, Outcome, Store, StoreError, SyncLogEntry, SyncLogFilter};

pub struct RecordsApi {
    pub state: AdminState,
}

#[derive(Debug, Object)]
pub struct LinkView {
    pub id: Uuid,
    pub pair: String,
    pub entity: String,
    pub crm_id: Option<String>,
    pub finance_id: Option<String>,
    /// A customer's name.
    pub name: Option<String>,
    /// A customer's e-mail.
    pub email: Option<String>,
    /// An invoice's number.
    pub number: Option<String>,
    /// An invoice's total and currency.
    pub amount: Option<String>,
    /// An invoice's customer: its name (or e-mail) where its link knows it.
    pub customer: Option<String>,
    /// `pending`, `synced`, `retrying`, `failed`, `blocked` or `conflict`.
    pub sync_status: String,
    pub state: String,
    pub last_error: Option<String>,
    /// Failed attempts of the change under way.
    pub attempts: u32,
    /// When a retrying change's next attempt is due.
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub last_synced_at: Option<DateTime<Utc>>,
    pub last_direction: Option<String>,
    pub last_transaction_id: Option<Uuid>,
}

/// One decision or write, with its reason and, for writes, the exchange (redacted).
#[derive(Debug, Object)]
pub struct LogView {
    pub id: Uuid,
    pub transaction_id: Uuid,
    /// What a person recognises the record by (a customer's name or e-mail, an
    /// invoice's number), when its link knows it.
    pub record: Option<String>,
    pub created_at: DateTime<Utc>,
    pub pair: String,
    pub entity: String,
    pub system: String,
    pub external_id: String,
    pub trigger: String,
    pub outcome: String,
    pub detail: Option<String>,
    pub status_code: Option<u16>,
    pub error: Option<String>,
    pub request: Option<serde_json::Value>,
    pub response: Option<serde_json::Value>,
    pub attempt: u32,
    pub duration_ms: u64,
}

#[derive(Debug, Object)]
pub struct RecordView {
    pub link: Option<LinkView>,
    /// Newest first.
    pub history: Vec<LogView>,
}

#[derive(ApiResponse)]
pub enum RecordResponse {
    #[oai(status = 200)]
    Found(Json<Box<RecordView>>),
    /// A path parameter out of its range.
    #[oai(status = 400)]
    BadRequest(Json<ApiError>),
    #[oai(status = 404)]
    NotFound(Json<ApiError>),
    #[oai(status = 500)]
    Internal(Json<ApiError>),
    #[oai(status = 503)]
    Unavailable(Json<ApiError>),
}

answers_failures!(RecordResponse);

#[derive(ApiResponse)]
pub enum FindResponse {
    #[oai(status = 200)]
    Found(Json<Vec<LinkView>>),
    /// A parameter out of its range.
    #[oai(status = 400)]
    BadRequest(Json<ApiError>),
    #[oai(status = 500)]
    Internal(Json<ApiError>),
    #[oai(status = 503)]
    Unavailable(Json<ApiError>),
}

answers_failures!(FindResponse);

#[derive(ApiResponse)]
pub enum LogsResponse {
    #[oai(status = 200)]
    Found(Json<Vec<LogView>>),
    /// A parameter out of its range.
    #[oai(status = 400)]
    BadRequest(Json<ApiError>),
    #[oai(status = 500)]
    Internal(Json<ApiError>),
    #[oai(status = 503)]
    Unavailable(Json<ApiError>),
}

answers_failures!(LogsResponse);

/// The views of `links`, each invoice naming its customer as that customer's link does.
pub(super) async fn link_views(
    store: &dyn Store,
    links: Vec<EntityLink>,
) -> Result<Vec<LinkView>, StoreError> {
    let mut wanted: BTreeMap<PairId, Vec<String>> = BTreeMap::new();
    for link in &links {
        if let Some(customer) = &link.label.customer {
            wanted
                .entry(link.pair.clone())
                .or_default()
                .push(customer.clone());
        }
    }
    let mut customers: HashMap<(PairId, String), String> = HashMap::new();
    for (pair, ids) in wanted {
        for customer in store
            .find_links(&pair, EntityType::Customer, System::Crm, &ids)
            .await?
        {
            let (Some(id), Some(shown)) = (
                customer.crm_id.clone(),
                customer.label.name.or(customer.label.email),
            ) else {
                continue;
            };
            customers.insert((pair.clone(), id), shown);
        }
    }
    Ok(links
        .into_iter()
        .map(|link| {
            let customer = link.label.customer.as_ref().map(|id| {
                customers
                    .get(&(link.pair.clone(), id.clone()))
                    .cloned()
                    .unwrap_or_else(|| format!("crm {id}"))
            });
            LinkView {
                customer,
                ..link_view(link)
            }
        })
        .collect())
}

/// Log views, each naming its record as the record's link does.
async fn labelled_logs(
    store: &dyn Store,
    logs: Vec<SyncLogEntry>,
) -> Result<Vec<LogView>, StoreError> {
    let mut ids: Vec<Uuid> = logs.iter().filter_map(|l| l.entry.link_id).collect();
    ids.sort();
    ids.dedup();
    let names: HashMap<Uuid, String> = store
        .get_links(&ids)
        .await?
        .into_iter()
        .filter_map(|link| Some((link.id, record_name(&link)?)))
        .collect();
    Ok(logs
        .into_iter()
        .map(|log| {
            let record = log.entry.link_id.and_then(|id| names.get(&id).cloned());
            LogView {
                record,
                ..log_view(log)
            }
        })
        .collect())
}

/// The words a person knows a record by: a customer's name and e-mail, an invoice's
/// number and amount.
pub(super) fn record_name(link: &EntityLink) -> Option<String> {
    let label = &link.label;
    let parts: Vec<&str> = [&label.name, &label.email, &label.number, &label.amount]
        .into_iter()
        .flatten()
        .map(String::as_str)
        .collect();
    (!parts.is_empty()).then(|| parts.join(" · "))
}

pub(super) fn link_view(link: EntityLink) -> LinkView {
    LinkView {
        id: link.id,
        pair: link.pair.to_string(),
        entity: link.entity.as_str().to_string(),
        crm_id: link.crm_id,
        finance_id: link.finance_id,
        name: link.label.name,
        email: link.label.email,
        number: link.label.number,
        amount: link.label.amount,
        customer: link.label.customer.map(|id| format!("crm {id}")),
        sync_status: link.sync_status.as_str().to_string(),
        state: link.state.as_str().to_string(),
        last_error: link.last_error,
        attempts: link.attempts,
        next_attempt_at: link.next_attempt_at,
        last_synced_at: link.last_synced_at,
        last_direction: link.last_direction.map(|d| d.as_str().to_string()),
        last_transaction_id: link.last_transaction_id,
    }
}

pub(super) fn log_view(log: SyncLogEntry) -> LogView {
    let e = log.entry;
    LogView {
        id: log.id,
        transaction_id: e.transaction_id,
        record: None,
        created_at: log.created_at,
        pair: e.pair.to_string(),
        entity: e.entity.as_str().to_string(),
        system: e.source_system.as_str().to_string(),
        external_id: e.external_id,
        trigger: e.trigger.as_str().to_string(),
        outcome: e.outcome.as_str().to_string(),
        detail: e.detail,
        status_code: e.status_code,
        error: e.error,
        request: e.request,
        response: e.response,
        attempt: e.attempt,
        duration_ms: e.duration_ms,
    }
}

#[OpenApi]
impl RecordsApi {
    /// A record's link, its sync status, and the full history of events, decisions
    /// and writes for it on both sides.
    #[oai(path = "/records/:pair/:entity/:system/:id", method = "get")]
    async fn record(
        &self,
        pair: Path<PathText<PairNameKind>>,
        entity: Path<PathText<WordKind<EntityType>>>,
        system: Path<PathText<WordKind<System>>>,
        /// The record's id in `system`: no control characters, at most 255.
        id: Path<PathText<RecordIdKind>>,
    ) -> RecordResponse {
        let read = (|| {
            Ok::<_, String>((
                pair.0.read("pair")?,
                entity.0.read("entity")?,
                system.0.read("system")?,
                id.0.read("id")?,
            ))
        })();
        let (pair, entity, system, id) = match read {
            Ok(read) => read,
            Err(why) => return RecordResponse::BadRequest(ApiError::new(why)),
        };
        let store = &self.state.store;
        let found = async {
            let link = store.find_link(&pair, entity, system, &id).await?;
            let history = store
                .record_history(&pair, entity, system, &id, 500)
                .await?;
            Ok::<_, crate::store::StoreError>((link, history))
        };
        match found.await {
            Ok((None, history)) if history.is_empty() => {
                RecordResponse::NotFound(ApiError::new(format!(
                    "Tandem has never seen {entity} `{}` in {system} of pair `{pair}`",
                    params::shown(&id)
                )))
            }
            Ok((link, history)) => {
                let link = match link {
                    Some(link) => match link_views(store.as_ref(), vec![link]).await {
                        Ok(mut views) => views.pop(),
                        Err(err) => return Failure::from(err).into(),
                    },
                    None => None,
                };
                RecordResponse::Found(Json(Box::new(RecordView {
                    link,
                    history: history.into_iter().map(log_view).collect(),
                })))
            }
            Err(err) => Failure::from(err).into(),
        }
    }

    /// Records found by what a person knows of them: a customer's e-mail (any case) or
    /// part of its name, an invoice's number, or an id on either side. Most recently
    /// changed first.
    #[oai(path = "/records", method = "get")]
    async fn find(
        &self,
        /// What to look for: 2 to 200 characters.
        q: Query<SearchText>,
        /// 1 to 100; 20 when not given.
        limit: Query<Option<PageSize<100, 20>>>,
    ) -> FindResponse {
        let text = q.0 .0;
        let limit = PageSize::or_default(limit.0);
        let store = self.state.store.as_ref();
        let found = match store.find_links_matching(&text, limit).await {
            Ok(found) => link_views(store, found).await,
            Err(err) => Err(err),
        };
        match found {
            Ok(views) => FindResponse::Found(Json(views)),
            Err(err) => Failure::from(err).into(),
        }
    }

    /// The sync log, newest first, filtered and paged.
    #[allow(clippy::too_many_arguments)]
    #[oai(path = "/sync-logs", method = "get")]
    async fn sync_logs(
        &self,
        pair: Query<Option<PairName>>,
        entity: Query<Option<Word<EntityType>>>,
        system: Query<Option<Word<System>>>,
        /// `created`, `updated`, `linked`, `archived`, `skipped`, `blocked`, `conflict`, `retrying`, `failed`, ...
        outcome: Query<Option<Word<Outcome>>>,
        since: Query<Option<Time>>,
        until: Query<Option<Time>>,
        /// 1 to 500; 50 when not given.
        limit: Query<Option<PageSize<500, 50>>>,
        /// 0 to 1,000,000.
        offset: Query<Option<Offset>>,
    ) -> LogsResponse {
        let filter = SyncLogFilter {
            pair: pair.0.map(|p| p.0),
            entity: entity.0.map(|w| w.0),
            system: system.0.map(|w| w.0),
            outcome: outcome.0.map(|w| w.0),
            since: since.0.map(|t| t.0),
            until: until.0.map(|t| t.0),
            limit: PageSize::or_default(limit.0),
            offset: offset.0.unwrap_or_default().0,
        };
        let store = self.state.store.as_ref();
        let labelled = async {
            let logs = store.query_logs(&filter).await?;
            labelled_logs(store, logs).await
        };
        match labelled.await {
            Ok(logs) => LogsResponse::Found(Json(logs)),
            Err(err) => Failure::from(err).into(),
        }
    }
}
