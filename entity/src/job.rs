//! `job`: a resync or replay and its progress.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "job")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// `resync` or `replay`.
    pub kind: String,
    pub params: Json,
    /// `queued`, `running`, `done` or `failed`.
    pub status: String,
    pub queued: i64,
    pub published: i64,
    pub synced: i64,
    pub failed: i64,
    pub skipped: i64,
    pub error: Option<String>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    pub finished_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
