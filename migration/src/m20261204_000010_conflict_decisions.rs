//! Conflicts say who resolved them and when a person's decision was applied, and a
//! field of a link has at most one clash that is held or waiting to be applied.
//!
//! Before, a conflict the policy resolved looked like one a person resolved, and the
//! sync read either back as a person's decision; `decided_by` tells them apart and
//! `applied_at` marks a decision as used, once.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // SQLite takes one column per ALTER TABLE.
        manager
            .alter_table(
                Table::alter()
                    .table(Conflict::Table)
                    .add_column(ColumnDef::new(Conflict::DecidedBy).string().null())
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Conflict::Table)
                    .add_column(
                        ColumnDef::new(Conflict::AppliedAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .to_owned(),
            )
            .await?;
        let db = manager.get_connection();
        // Rows from before: a resolved conflict under `manual` was a person's, applied
        // at its next sync; any other was the policy's, applied at once.
        db.execute_unprepared(
            "UPDATE conflict SET decided_by = CASE WHEN policy = 'manual' THEN 'person' ELSE 'policy' END, \
             applied_at = resolved_at WHERE status = 'resolved'",
        )
        .await?;
        // One clash could open two rows (one per side's change): keep the newest held.
        db.execute_unprepared(
            "UPDATE conflict SET status = 'withdrawn' WHERE status = 'open' AND EXISTS (\
             SELECT 1 FROM conflict AS newer WHERE newer.link_id = conflict.link_id \
             AND newer.field = conflict.field AND newer.status = 'open' \
             AND newer.created_at > conflict.created_at)",
        )
        .await?;
        // Partial indexes are written the same way in PostgreSQL and SQLite.
        db.execute_unprepared(
            "CREATE UNIQUE INDEX IF NOT EXISTS conflict_active_field_idx ON conflict \
             (link_id, field) WHERE status IN ('open', 'decided')",
        )
        .await?;
        manager
            .create_index(
                Index::create()
                    .name("conflict_link_idx")
                    .table(Conflict::Table)
                    .col(Conflict::LinkId)
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("pending_delete_link_idx")
                    .table(PendingDelete::Table)
                    .col(PendingDelete::LinkId)
                    .if_not_exists()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        db.execute_unprepared("DROP INDEX IF EXISTS conflict_active_field_idx")
            .await?;
        db.execute_unprepared("DROP INDEX IF EXISTS conflict_link_idx")
            .await?;
        db.execute_unprepared("DROP INDEX IF EXISTS pending_delete_link_idx")
            .await?;
        for column in [Conflict::DecidedBy, Conflict::AppliedAt] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Conflict::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
enum Conflict {
    Table,
    LinkId,
    DecidedBy,
    AppliedAt,
}

#[derive(DeriveIden)]
enum PendingDelete {
    Table,
    LinkId,
}
