use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Conflict::Table)
                    .if_not_exists()
                    .col(pk_uuid(Conflict::Id))
                    .col(uuid(Conflict::LinkId))
                    .col(string(Conflict::Pair))
                    .col(string(Conflict::EntityType))
                    .col(string(Conflict::Field))
                    .col(json_binary_null(Conflict::CrmValue))
                    .col(json_binary_null(Conflict::FinanceValue))
                    .col(json_binary_null(Conflict::BaseValue))
                    .col(string(Conflict::Policy))
                    .col(string_null(Conflict::Resolution))
                    .col(json_binary_null(Conflict::ResolvedValue))
                    .col(string(Conflict::Status))
                    .col(uuid(Conflict::TransactionId))
                    .col(timestamp_with_time_zone(Conflict::CreatedAt))
                    .col(timestamp_with_time_zone_null(Conflict::ResolvedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("conflict_status_idx")
                    .table(Conflict::Table)
                    .col(Conflict::Status)
                    .col(Conflict::CreatedAt)
                    .if_not_exists()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Conflict::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum Conflict {
    Table,
    Id,
    LinkId,
    Pair,
    EntityType,
    Field,
    CrmValue,
    FinanceValue,
    BaseValue,
    Policy,
    Resolution,
    ResolvedValue,
    Status,
    TransactionId,
    CreatedAt,
    ResolvedAt,
}
