//! `account`: a HubSpot portal or a Xero organisation connected through the OAuth
//! authorization-code flow, keyed on the service's own id (hub id, tenantId). Its
//! tokens are in `credential` (sealed), not here.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "account")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// `hubspot` or `xero`.
    pub kind: String,
    /// HubSpot's hub id, or Xero's tenantId.
    pub external_id: String,
    pub name: String,
    /// The scopes granted, separated by spaces.
    pub scopes: String,
    /// `connected` or `disconnected`.
    pub state: String,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
