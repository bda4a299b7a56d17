//! sea-orm entities: Tandem's storage schema, one module per table.
//!
//! These are storage types only; the engine's domain types and the admin API's types
//! live in the `tandem` crate so the schema and the public API can change apart.

pub mod account;
pub mod conflict;
pub mod credential;
pub mod entity_link;
pub mod job;
pub mod pending_delete;
pub mod poll_cursor;
pub mod sync_log;
pub mod sync_pair;
pub mod webhook_receipt;
