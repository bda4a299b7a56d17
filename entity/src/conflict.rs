//! `conflict`: a field changed on both sides to different values, with both values and
//! how it was (or is to be) resolved.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "conflict")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub link_id: Uuid,
    pub pair: String,
    pub entity_type: String,
    pub field: String,
    pub crm_value: Option<Json>,
    pub finance_value: Option<Json>,
    pub base_value: Option<Json>,
    pub policy: String,
    /// `crm`, `finance` or `value`; empty while open.
    pub resolution: Option<String>,
    pub resolved_value: Option<Json>,
    /// `open` (held for a person), `decided` (a person chose; applied at the record's
    /// next sync), `resolved` (applied) or `withdrawn` (ended before anyone decided).
    pub status: String,
    pub transaction_id: Uuid,
    pub created_at: DateTimeUtc,
    /// When the policy or a person decided.
    pub resolved_at: Option<DateTimeUtc>,
    /// `policy` or `person`; empty while open.
    pub decided_by: Option<String>,
    /// When the decision was written to both sides.
    pub applied_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
