//! The orchestrator: consumes change events from the bus ([`workers`]) and handles each
//! one ([`sync`]): lock the record, fetch it, decide, write, record.

pub mod idle;
mod perform;
pub mod references;
pub mod retry;
mod settle;
pub mod sync;
pub mod workers;

pub use references::LinkedReferences;
pub use sync::{Orchestrator, PairRuntime};
pub use workers::{ChangeHandler, HandleOutcome, QueueControl, WorkerPool};
