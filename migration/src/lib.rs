//! sea-orm migrations for Tandem's store, applied by `tandem migrate` and at start.
pub use sea_orm_migration::prelude::*;

mod m20261123_000001_create_entity_link;
mod m20261123_000002_create_sync_log;
mod m20261123_000003_create_webhook_receipt;
mod m20261123_000004_create_poll_cursor;
mod m20261123_000005_create_job;
mod m20261123_000006_create_credential;
mod m20261123_000007_create_conflict;
mod m20261123_000008_create_pending_delete;
mod m20261123_000009_create_record_lease;
mod m20261204_000010_conflict_decisions;
mod m20261204_000011_link_labels_and_attempts;
mod m20261204_000012_sync_log_by_time;
mod m20261204_000013_link_revision_and_echoes;
mod m20261204_000014_create_account_and_sync_pair;

/// Every table the migrations create, so a check can confirm the schema is complete.
pub const TABLES: &[&str] = &[
    "entity_link",
    "sync_log",
    "webhook_receipt",
    "poll_cursor",
    "job",
    "credential",
    "conflict",
    "pending_delete",
    "record_lease",
    "account",
    "sync_pair",
];

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261123_000001_create_entity_link::Migration),
            Box::new(m20261123_000002_create_sync_log::Migration),
            Box::new(m20261123_000003_create_webhook_receipt::Migration),
            Box::new(m20261123_000004_create_poll_cursor::Migration),
            Box::new(m20261123_000005_create_job::Migration),
            Box::new(m20261123_000006_create_credential::Migration),
            Box::new(m20261123_000007_create_conflict::Migration),
            Box::new(m20261123_000008_create_pending_delete::Migration),
            Box::new(m20261123_000009_create_record_lease::Migration),
            Box::new(m20261204_000010_conflict_decisions::Migration),
            Box::new(m20261204_000011_link_labels_and_attempts::Migration),
            Box::new(m20261204_000012_sync_log_by_time::Migration),
            Box::new(m20261204_000013_link_revision_and_echoes::Migration),
            Box::new(m20261204_000014_create_account_and_sync_pair::Migration),
        ]
    }
}
