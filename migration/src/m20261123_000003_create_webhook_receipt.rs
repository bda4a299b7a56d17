use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(WebhookReceipt::Table)
                    .if_not_exists()
                    .col(pk_uuid(WebhookReceipt::Id))
                    .col(string(WebhookReceipt::Pair))
                    .col(string(WebhookReceipt::System))
                    .col(string(WebhookReceipt::DeliveryKey))
                    .col(timestamp_with_time_zone(WebhookReceipt::ReceivedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("webhook_receipt_delivery_uq")
                    .table(WebhookReceipt::Table)
                    .col(WebhookReceipt::Pair)
                    .col(WebhookReceipt::System)
                    .col(WebhookReceipt::DeliveryKey)
                    .unique()
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("webhook_receipt_received_idx")
                    .table(WebhookReceipt::Table)
                    .col(WebhookReceipt::ReceivedAt)
                    .if_not_exists()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(WebhookReceipt::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum WebhookReceipt {
    Table,
    Id,
    Pair,
    System,
    DeliveryKey,
    ReceivedAt,
}
