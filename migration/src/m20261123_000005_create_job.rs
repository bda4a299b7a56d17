use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Job::Table)
                    .if_not_exists()
                    .col(pk_uuid(Job::Id))
                    .col(string(Job::Kind))
                    .col(json_binary(Job::Params))
                    .col(string(Job::Status))
                    .col(big_integer(Job::Queued).default(0))
                    .col(big_integer(Job::Published).default(0))
                    .col(big_integer(Job::Synced).default(0))
                    .col(big_integer(Job::Failed).default(0))
                    .col(big_integer(Job::Skipped).default(0))
                    .col(text_null(Job::Error))
                    .col(timestamp_with_time_zone(Job::CreatedAt))
                    .col(timestamp_with_time_zone(Job::UpdatedAt))
                    .col(timestamp_with_time_zone_null(Job::FinishedAt))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Job::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum Job {
    Table,
    Id,
    Kind,
    Params,
    Status,
    Queued,
    Published,
    Synced,
    Failed,
    Skipped,
    Error,
    CreatedAt,
    UpdatedAt,
    FinishedAt,
}
