//! A link says what a person recognises its record by (a customer's name and e-mail,
//! an invoice's number, amount and customer), so lists and look-ups show people, not
//! ids; and how a change of it that keeps failing stands: its attempts so far and when
//! the next one is due.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // SQLite takes one column per ALTER TABLE.
        let columns = [
            ColumnDef::new(EntityLink::LabelName)
                .string()
                .null()
                .to_owned(),
            ColumnDef::new(EntityLink::LabelEmail)
                .string()
                .null()
                .to_owned(),
            ColumnDef::new(EntityLink::LabelNumber)
                .string()
                .null()
                .to_owned(),
            ColumnDef::new(EntityLink::LabelAmount)
                .string()
                .null()
                .to_owned(),
            ColumnDef::new(EntityLink::LabelCustomer)
                .string()
                .null()
                .to_owned(),
            ColumnDef::new(EntityLink::Attempts)
                .integer()
                .not_null()
                .default(0)
                .to_owned(),
            ColumnDef::new(EntityLink::NextAttemptAt)
                .timestamp_with_time_zone()
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
        for (name, column) in [
            ("entity_link_label_email_idx", EntityLink::LabelEmail),
            ("entity_link_label_number_idx", EntityLink::LabelNumber),
        ] {
            manager
                .create_index(
                    Index::create()
                        .name(name)
                        .table(EntityLink::Table)
                        .col(column)
                        .if_not_exists()
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        db.execute_unprepared("DROP INDEX IF EXISTS entity_link_label_email_idx")
            .await?;
        db.execute_unprepared("DROP INDEX IF EXISTS entity_link_label_number_idx")
            .await?;
        for column in [
            EntityLink::LabelName,
            EntityLink::LabelEmail,
            EntityLink::LabelNumber,
            EntityLink::LabelAmount,
            EntityLink::LabelCustomer,
            EntityLink::Attempts,
            EntityLink::NextAttemptAt,
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
    LabelName,
    LabelEmail,
    LabelNumber,
    LabelAmount,
    LabelCustomer,
    Attempts,
    NextAttemptAt,
}
