//! Intake: turns outside signals into change events on the bus. [`receiver`] takes
//! signed webhooks.

pub mod jobs;
pub mod poller;
mod receipts;
pub mod receiver;

pub use poller::{PollReport, PollTarget, Poller};
pub use receiver::WebhookIntake;
