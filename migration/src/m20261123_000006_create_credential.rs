use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Credential::Table)
                    .if_not_exists()
                    .col(pk_uuid(Credential::Id))
                    .col(string(Credential::Pair))
                    .col(string(Credential::System))
                    .col(text_null(Credential::AccessToken))
                    .col(text_null(Credential::RefreshToken))
                    .col(timestamp_with_time_zone_null(Credential::ExpiresAt))
                    .col(timestamp_with_time_zone_null(Credential::RotatedAt))
                    .col(timestamp_with_time_zone(Credential::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("credential_uq")
                    .table(Credential::Table)
                    .col(Credential::Pair)
                    .col(Credential::System)
                    .unique()
                    .if_not_exists()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Credential::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum Credential {
    Table,
    Id,
    Pair,
    System,
    AccessToken,
    RefreshToken,
    ExpiresAt,
    RotatedAt,
    UpdatedAt,
}
