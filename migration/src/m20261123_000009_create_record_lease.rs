use sea_orm_migration::{prelude::*, schema::*};

/// Per-record leases: which process works on a record, until when. A lease holds no
/// database connection, so hundreds of changes can wait for their batch call at once.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(RecordLease::Table)
                    .if_not_exists()
                    .col(string(RecordLease::Key).primary_key())
                    .col(uuid(RecordLease::Holder))
                    .col(timestamp_with_time_zone(RecordLease::ExpiresAt))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(RecordLease::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum RecordLease {
    Table,
    Key,
    Holder,
    ExpiresAt,
}
