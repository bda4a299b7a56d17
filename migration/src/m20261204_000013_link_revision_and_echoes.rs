//! What a sync needs to know about a link in the one query that loads it: its revision
//! (a commit checks it, so a link changed by another process since it was loaded is
//! never overwritten), how many of its conflicts are held or decided (their rows are
//! read only when there are any), and the exact version of Tandem's own last write on
//! each side (an event of that version is its echo, known without reading the record).

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let columns = [
            ColumnDef::new(EntityLink::Revision)
                .big_integer()
                .not_null()
                .default(1)
                .to_owned(),
            ColumnDef::new(EntityLink::ActiveConflicts)
                .integer()
                .not_null()
                .default(0)
                .to_owned(),
            ColumnDef::new(EntityLink::EchoCrm)
                .string()
                .null()
                .to_owned(),
            ColumnDef::new(EntityLink::EchoFinance)
                .string()
                .null()
                .to_owned(),
        ];
        for mut column in columns {
            manager
                .alter_table(
                    Table::alter()
                        .table(EntityLink::Table)
                        .add_column(&mut column)
                        .to_owned(),
                )
                .await?;
        }
        // Links from before count the conflicts they hold now.
        manager
            .get_connection()
            .execute_unprepared(
                "UPDATE entity_link SET active_conflicts = (SELECT COUNT(*) FROM conflict \
                 WHERE conflict.link_id = entity_link.id AND conflict.status IN ('open', 'decided'))",
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in [
            EntityLink::Revision,
            EntityLink::ActiveConflicts,
            EntityLink::EchoCrm,
            EntityLink::EchoFinance,
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(EntityLink::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
enum EntityLink {
    Table,
    Revision,
    ActiveConflicts,
    EchoCrm,
    EchoFinance,
}
