//! Intake: turns outside signals into change events on the bus. [`receiver`] takes
//! signed webhooks.

pub mod jobs;
pub mod poller;
mod receipts;
pub mod receiver;

pub use poller::{PollReport, PollTarget, Poller};
pub use receiver::WebhookIntake;

use crate::domain::System;

/// Where a pair's webhooks from `system` are received, under Tandem's public `base`
/// (`https://sync.example.com/webhooks/acme/crm`): what a person registers in the app.
pub fn webhook_url(base: &str, pair: &str, system: System) -> String {
    format!("{}/webhooks/{pair}/{system}", base.trim_end_matches('/'))
}
