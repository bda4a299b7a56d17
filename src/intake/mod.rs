//! Intake: turns outside signals into change events on the bus. [`receiver`] takes
//! signed webhooks.

pub mod jobs;
pub mod poller;
pub mod receiver;

pub use poller::{PollReport, PollTarget, Poller};
pub use receiver::WebhookIntake;
