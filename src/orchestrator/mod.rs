//! The orchestrator: consumes change events from the bus and hands each to the sync
//! core. [`workers`] is the consuming side: a bounded pool that prefers live changes
//! to bulk work and stops gracefully.

pub mod workers;

pub use workers::{ChangeHandler, HandleOutcome, WorkerPool};
