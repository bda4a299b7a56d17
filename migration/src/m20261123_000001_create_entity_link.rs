use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(EntityLink::Table)
                    .if_not_exists()
                    .col(pk_uuid(EntityLink::Id))
                    .col(string(EntityLink::Pair))
                    .col(string(EntityLink::EntityType))
                    .col(string_null(EntityLink::CrmId))
                    .col(string_null(EntityLink::FinanceId))
                    .col(string(EntityLink::State))
                    .col(string(EntityLink::SyncStatus))
                    .col(string_null(EntityLink::CrmChecksum))
                    .col(string_null(EntityLink::FinanceChecksum))
                    .col(string_null(EntityLink::CrmVersion))
                    .col(string_null(EntityLink::FinanceVersion))
                    .col(json_binary_null(EntityLink::BaseSnapshot))
                    .col(uuid_null(EntityLink::LastTransactionId))
                    .col(timestamp_with_time_zone_null(EntityLink::LastSyncedAt))
                    .col(string_null(EntityLink::LastDirection))
                    .col(text_null(EntityLink::LastError))
                    .col(timestamp_with_time_zone_null(EntityLink::ArchivedAt))
                    .col(timestamp_with_time_zone_null(EntityLink::DeletedAt))
                    .col(timestamp_with_time_zone(EntityLink::CreatedAt))
                    .col(timestamp_with_time_zone(EntityLink::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        // One link per record on each side; NULLs (a create in flight) do not collide.
        for (name, column) in [
            ("entity_link_crm_uq", EntityLink::CrmId),
            ("entity_link_finance_uq", EntityLink::FinanceId),
        ] {
            manager
                .create_index(
                    Index::create()
                        .name(name)
                        .table(EntityLink::Table)
                        .col(EntityLink::Pair)
                        .col(EntityLink::EntityType)
                        .col(column)
                        .unique()
                        .if_not_exists()
                        .to_owned(),
                )
                .await?;
        }
        manager
            .create_index(
                Index::create()
                    .name("entity_link_status_idx")
                    .table(EntityLink::Table)
                    .col(EntityLink::SyncStatus)
                    .col(EntityLink::UpdatedAt)
                    .if_not_exists()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(EntityLink::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum EntityLink {
    Table,
    Id,
    Pair,
    EntityType,
    CrmId,
    FinanceId,
    State,
    SyncStatus,
    CrmChecksum,
    FinanceChecksum,
    CrmVersion,
    FinanceVersion,
    BaseSnapshot,
    LastTransactionId,
    LastSyncedAt,
    LastDirection,
    LastError,
    ArchivedAt,
    DeletedAt,
    CreatedAt,
    UpdatedAt,
}
