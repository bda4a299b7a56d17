//! Intake: turns outside signals into change events on the bus. [`receiver`] takes
//! signed webhooks.

pub mod receiver;

pub use receiver::WebhookIntake;
