//! sea-orm entities: Tandem's storage schema, one module per table.
//!
//! These are storage types only; the engine's domain types and the admin API's types
//! live in the `tandem` crate so the schema and the public API can change apart.
