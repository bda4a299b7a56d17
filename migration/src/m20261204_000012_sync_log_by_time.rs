//! The sync log is read newest first and by time range: the dashboard's list with no
//! filter, a replay job's pages of a date range, and the outcomes of the last 24 hours.
//! Without an index on the time each of those read the whole log and sorted it
//! (docs/benchmarks.md, "Round trips and query plans": 50 ms at 200k entries, growing
//! with the log); with one they read the entries they return. `id` breaks ties in the
//! same order the queries sort by.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_index(
                Index::create()
                    .name("sync_log_created_idx")
                    .table(SyncLog::Table)
                    .col(SyncLog::CreatedAt)
                    .col(SyncLog::Id)
                    .if_not_exists()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared("DROP INDEX IF EXISTS sync_log_created_idx")
            .await?;
        Ok(())
    }
}

#[derive(DeriveIden)]
enum SyncLog {
    Table,
    Id,
    CreatedAt,
}
