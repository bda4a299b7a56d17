//! `sync_pair`: a pair created through the admin API from two accounts, with its
//! policies. A removed pair keeps its row (and its history in the other tables).

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "sync_pair")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub name: String,
    pub crm_account: Uuid,
    pub finance_account: Uuid,
    pub conflict_policy: String,
    pub source_of_truth: String,
    pub deletes: String,
    pub poll_interval_secs: i64,
    /// `active`, `paused` or `removed`.
    pub state: String,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
