//! `entity_link`: one record in the CRM linked to one in the finance system, with what
//! was last synced between them.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "entity_link")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub pair: String,
    pub entity_type: String,
    /// Empty while a create into the CRM is in flight.
    pub crm_id: Option<String>,
    /// Empty while a create into the finance system is in flight.
    pub finance_id: Option<String>,
    /// `active`, `creating` or `archived`.
    pub state: String,
    /// `pending`, `synced`, `retrying`, `failed`, `blocked` or `conflict`.
    pub sync_status: String,
    pub crm_checksum: Option<String>,
    pub finance_checksum: Option<String>,
    /// Each system's own updated-at for the record, as that system wrote it.
    pub crm_version: Option<String>,
    pub finance_version: Option<String>,
    /// The canonical record as of the last sync: the base of three-way merges.
    pub base_snapshot: Option<Json>,
    pub last_transaction_id: Option<Uuid>,
    pub last_synced_at: Option<DateTimeUtc>,
    pub last_direction: Option<String>,
    pub last_error: Option<String>,
    pub archived_at: Option<DateTimeUtc>,
    pub deleted_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    /// What a person recognises the record by: a customer's name and e-mail (lower
    /// case), an invoice's number, amount and customer (its CRM id).
    pub label_name: Option<String>,
    pub label_email: Option<String>,
    pub label_number: Option<String>,
    pub label_amount: Option<String>,
    pub label_customer: Option<String>,
    /// Failed attempts of the change under way (0 once it synced).
    pub attempts: i32,
    /// When the next attempt of a change that is retrying is due.
    pub next_attempt_at: Option<DateTimeUtc>,
    /// Moves on with every save; a save names the revision it was loaded at.
    pub revision: i64,
    /// Conflicts of this link held for a person or decided and not yet applied.
    pub active_conflicts: i32,
    /// The exact version of Tandem's own last write on each side, when the system's
    /// answer showed the record as written.
    pub echo_crm: Option<String>,
    pub echo_finance: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
