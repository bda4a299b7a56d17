//! `sync_log`: every decision and write Tandem made, with its reason.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "sync_log")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub transaction_id: Uuid,
    pub link_id: Option<Uuid>,
    pub pair: String,
    pub entity_type: String,
    /// The system whose change was handled, and the record's id there.
    pub source_system: String,
    pub external_id: String,
    pub direction: Option<String>,
    pub trigger: String,
    pub outcome: String,
    pub detail: Option<String>,
    pub source_snapshot: Option<Json>,
    pub target_before: Option<Json>,
    pub target_after: Option<Json>,
    /// Request and response of the write, secrets redacted.
    pub request: Option<Json>,
    pub response: Option<Json>,
    pub status_code: Option<i32>,
    pub error: Option<String>,
    pub attempt: i32,
    pub duration_ms: i64,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
