//! `account` (a connected HubSpot portal or Xero organisation) and `sync_pair` (a pair
//! made of two accounts through the admin API). Their tokens live in `credential`,
//! sealed, under the owner `account:<id>`: one place holds a token.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Account::Table)
                    .if_not_exists()
                    .col(pk_uuid(Account::Id))
                    .col(string(Account::Kind))
                    .col(string(Account::ExternalId))
                    .col(string(Account::Name))
                    .col(text(Account::Scopes))
                    .col(string(Account::State))
                    .col(timestamp_with_time_zone(Account::CreatedAt))
                    .col(timestamp_with_time_zone(Account::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("account_external_uq")
                    .table(Account::Table)
                    .col(Account::Kind)
                    .col(Account::ExternalId)
                    .unique()
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(SyncPair::Table)
                    .if_not_exists()
                    .col(string(SyncPair::Name).primary_key())
                    .col(uuid(SyncPair::CrmAccount))
                    .col(uuid(SyncPair::FinanceAccount))
                    .col(string(SyncPair::ConflictPolicy))
                    .col(string(SyncPair::SourceOfTruth))
                    .col(string(SyncPair::Deletes))
                    .col(big_integer(SyncPair::PollIntervalSecs))
                    .col(string(SyncPair::State))
                    .col(timestamp_with_time_zone(SyncPair::CreatedAt))
                    .col(timestamp_with_time_zone(SyncPair::UpdatedAt))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(SyncPair::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(Account::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum Account {
    Table,
    Id,
    Kind,
    ExternalId,
    Name,
    Scopes,
    State,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum SyncPair {
    Table,
    Name,
    CrmAccount,
    FinanceAccount,
    ConflictPolicy,
    SourceOfTruth,
    Deletes,
    PollIntervalSecs,
    State,
    CreatedAt,
    UpdatedAt,
}
