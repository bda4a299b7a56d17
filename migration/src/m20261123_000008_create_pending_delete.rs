use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(PendingDelete::Table)
                    .if_not_exists()
                    .col(pk_uuid(PendingDelete::Id))
                    .col(uuid(PendingDelete::LinkId))
                    .col(string(PendingDelete::Pair))
                    .col(string(PendingDelete::EntityType))
                    .col(string(PendingDelete::SourceSystem))
                    .col(string(PendingDelete::ExternalId))
                    .col(string(PendingDelete::Status))
                    .col(timestamp_with_time_zone(PendingDelete::CreatedAt))
                    .col(timestamp_with_time_zone_null(PendingDelete::DecidedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("pending_delete_status_idx")
                    .table(PendingDelete::Table)
                    .col(PendingDelete::Status)
                    .col(PendingDelete::CreatedAt)
                    .if_not_exists()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(PendingDelete::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum PendingDelete {
    Table,
    Id,
    LinkId,
    Pair,
    EntityType,
    SourceSystem,
    ExternalId,
    Status,
    CreatedAt,
    DecidedAt,
}
