//! The domain: identifiers shared by every layer, the change events that flow through
//! the bus, canonical records, and the pure sync decision.

pub mod event;
pub mod ids;

pub use event::{ChangeEvent, ChangeKind, Trigger};
pub use ids::{EntityType, PairId, System};
