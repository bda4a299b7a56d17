use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(PollCursor::Table)
                    .if_not_exists()
                    .col(pk_uuid(PollCursor::Id))
                    .col(string(PollCursor::Pair))
                    .col(string(PollCursor::System))
                    .col(string(PollCursor::EntityType))
                    .col(text_null(PollCursor::Cursor))
                    .col(string_null(PollCursor::LeaseOwner))
                    .col(timestamp_with_time_zone_null(PollCursor::LeaseUntil))
                    .col(timestamp_with_time_zone(PollCursor::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("poll_cursor_uq")
                    .table(PollCursor::Table)
                    .col(PollCursor::Pair)
                    .col(PollCursor::System)
                    .col(PollCursor::EntityType)
                    .unique()
                    .if_not_exists()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(PollCursor::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum PollCursor {
    Table,
    Id,
    Pair,
    System,
    EntityType,
    Cursor,
    LeaseOwner,
    LeaseUntil,
    UpdatedAt,
}
