//! The two torture profiles: `small` (a few hundred records, one kill, one broker
//! restart; part of the test suite) and `full` (what the README promises).

use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct Profile {
    pub name: String,
    /// Distinct customers across both sides; a tenth of them start on both.
    pub customers: usize,
    /// Deals won in the CRM during the edit phase, each an invoice in finance.
    pub invoices: usize,
    /// Share of customers edited during the edit phase, each once (on one side or both).
    pub edited_share: f64,
    /// Share of all customers edited on both sides in the same instant (a true conflict
    /// for the engine); part of `edited_share`.
    pub both_sides_share: f64,
    pub edit_seconds: u64,
    pub kills: usize,
    pub rabbitmq_restarts: usize,
    pub postgres_restarts: usize,
    /// Share of API calls the simulators answer 5xx, and 429, during the edit phase.
    pub error_rate: f64,
    pub rate_limit_rate: f64,
    /// The engine's poll interval: what finds the changes whose webhooks were dropped.
    pub poll_seconds: u64,
    pub first_sync_limit_secs: u64,
    /// How long after the last edit the run waits for the two sides to be in step.
    pub settle_limit_secs: u64,
}

impl Profile {
    pub fn named(name: &str) -> anyhow::Result<Self> {
        let full = Self {
            name: "full".into(),
            customers: 10_000,
            invoices: 2_000,
            edited_share: 0.3,
            both_sides_share: 0.3,
            edit_seconds: 900,
            kills: 3,
            rabbitmq_restarts: 1,
            postgres_restarts: 1,
            error_rate: 0.05,
            rate_limit_rate: 0.02,
            poll_seconds: 30,
            first_sync_limit_secs: 1800,
            settle_limit_secs: 600,
        };
        match name {
            "full" => Ok(full),
            "small" => Ok(Self {
                name: "small".into(),
                customers: 300,
                invoices: 12,
                edited_share: 0.2,
                both_sides_share: 0.07,
                edit_seconds: 60,
                kills: 1,
                postgres_restarts: 0,
                poll_seconds: 15,
                first_sync_limit_secs: 180,
                settle_limit_secs: 120,
                ..full
            }),
            other => anyhow::bail!("no torture profile `{other}`; the profiles are small, full"),
        }
    }
}
