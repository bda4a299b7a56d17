//! Simulated HubSpot and Xero: HTTP servers speaking the subsets of each API that
//! Tandem's connectors use (`docs/api-subsets.md`), for the demo, the tests and the
//! benchmarks. Each keeps its records in memory, enforces the real rate limits with the
//! real headers, honours idempotency keys, issues and rotates OAuth tokens, and sends
//! signed webhooks to a configured URL, misbehaving as the knobs say. Simulated people
//! edit both sides; the inspection says whether the two sides agree, and the journal
//! lists every edit each side applied.

pub mod consent;
pub mod hubspot;
pub mod inspect;
pub mod journal;
pub mod knobs;
pub mod limits;
pub mod outbox;
pub mod people;
pub mod simulators;
pub mod view;
pub mod xero;

pub use inspect::Inspection;
pub use journal::{Action, Actor, Journal, JournalEntry, Side};
pub use knobs::{KnobValues, Knobs};
pub use simulators::{SimConfig, Simulators};
pub use view::{CustomerEdit, CustomerSeed, CustomerView, InvoiceView};
