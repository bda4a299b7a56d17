//! The domain: identifiers shared by every layer, the change events that flow through
//! the bus, canonical records, field mapping, and the pure sync decision.

pub mod checksum;
pub mod clash;
pub mod customer;
pub mod decision;
pub mod event;
pub mod ids;
pub mod invoice;
pub mod label;
pub mod mapping;
pub mod policy;
pub mod record;

pub use checksum::Checksum;
pub use clash::{ChangeTimes, Choice, ClashResolution, FieldConflict, HeldClash, PersonDecision};
pub use customer::{Address, Customer};
pub use decision::{
    apply, decide, decide_without_target, idempotency_key, settle, source_checksum, Changes,
    DecisionInput, Held, LinkSnapshot, SkipReason, SourceRecord, SyncDecision, TargetFound,
    TargetRecord,
};
pub use event::{ChangeEvent, ChangeKind, Trigger};
pub use ids::{EntityType, PairId, System};
pub use invoice::{Invoice, InvoiceStatus, LineItem};
pub use label::RecordLabel;
pub use mapping::{FieldMapping, Flow};
pub use policy::{ConflictPolicy, DeletePolicy, SyncPolicy};
pub use record::FieldMap;
