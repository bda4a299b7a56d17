use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(SyncLog::Table)
                    .if_not_exists()
                    .col(pk_uuid(SyncLog::Id))
                    .col(uuid(SyncLog::TransactionId))
                    .col(uuid_null(SyncLog::LinkId))
                    .col(string(SyncLog::Pair))
                    .col(string(SyncLog::EntityType))
                    .col(string(SyncLog::SourceSystem))
                    .col(string(SyncLog::ExternalId))
                    .col(string_null(SyncLog::Direction))
                    .col(string(SyncLog::Trigger))
                    .col(string(SyncLog::Outcome))
                    .col(text_null(SyncLog::Detail))
                    .col(json_binary_null(SyncLog::SourceSnapshot))
                    .col(json_binary_null(SyncLog::TargetBefore))
                    .col(json_binary_null(SyncLog::TargetAfter))
                    .col(json_binary_null(SyncLog::Request))
                    .col(json_binary_null(SyncLog::Response))
                    .col(integer_null(SyncLog::StatusCode))
                    .col(text_null(SyncLog::Error))
                    .col(integer(SyncLog::Attempt))
                    .col(big_integer(SyncLog::DurationMs))
                    .col(timestamp_with_time_zone(SyncLog::CreatedAt))
                    .to_owned(),
            )
            .await?;
        // "History of a record", by link and by the record's id before a link exists;
        // "failures since" by outcome and time; transaction ids for tracing one change.
        let indexes: [(&str, Vec<SyncLog>); 4] = [
            (
                "sync_log_link_idx",
                vec![SyncLog::LinkId, SyncLog::CreatedAt],
            ),
            (
                "sync_log_record_idx",
                vec![
                    SyncLog::Pair,
                    SyncLog::EntityType,
                    SyncLog::ExternalId,
                    SyncLog::CreatedAt,
                ],
            ),
            (
                "sync_log_outcome_idx",
                vec![SyncLog::Outcome, SyncLog::CreatedAt],
            ),
            ("sync_log_transaction_idx", vec![SyncLog::TransactionId]),
        ];
        for (name, columns) in indexes {
            let mut index = Index::create();
            index.name(name).table(SyncLog::Table).if_not_exists();
            for column in columns {
                index.col(column);
            }
            manager.create_index(index.to_owned()).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(SyncLog::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum SyncLog {
    Table,
    Id,
    TransactionId,
    LinkId,
    Pair,
    EntityType,
    SourceSystem,
    ExternalId,
    Direction,
    Trigger,
    Outcome,
    Detail,
    SourceSnapshot,
    TargetBefore,
    TargetAfter,
    Request,
    Response,
    StatusCode,
    Error,
    Attempt,
    DurationMs,
    CreatedAt,
}
