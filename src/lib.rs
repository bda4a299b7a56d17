//! Tandem: two-way sync between a CRM and a finance system.
//!
//! The engine is laid out as ports and adapters: the pure sync decision in [`domain`],
//! and the edges (store, bus, connectors, HTTP) behind traits.

pub mod admin_client;
pub mod api;
pub mod backlog;
pub mod bench;
pub mod bus;
pub mod cause;
pub mod cli;
pub mod config;
pub mod connect;
pub mod connection_check;
pub mod connectors;
pub mod credential_store;
pub mod demo;
pub mod domain;
pub mod intake;
pub mod metrics;
pub mod orchestrator;
pub mod seal;
pub mod secret;
pub mod service;
pub mod store;
pub mod telemetry;
pub mod torture;
pub mod wiring;
