//! The orchestrator: consumes change events from the bus ([`workers`]) and handles each
//! one ([`sync`]) through the pipeline ([`pipeline`]): load the record and its link,
//! decide, write to the other side, commit what was done.

pub mod idle;
mod pipeline;
pub mod references;
pub mod retry;
mod runtime;
mod settle;
pub mod sync;
pub mod workers;

pub use references::LinkedReferences;
pub use runtime::{PairRuntime, PairTable};
pub use sync::Orchestrator;
pub use workers::{ChangeHandler, HandleOutcome, QueueControl, WorkerPool};
