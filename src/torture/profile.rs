//! The torture profiles: `small` (a few hundred records, one kill, one broker restart;
//! part of the test suite), `full` (what the README promises), and `clash` and
//! `clash-manual` (a few customers edited again and again on both sides, most edits
//! clashing, under `last_write_wins` and under `manual` with a person deciding).

use serde::Serialize;

use crate::domain::ConflictPolicy;

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
    /// The pair's conflict policy.
    pub conflicts: ConflictPolicy,
    /// Customers edited again and again (the clash profiles); 0 spreads the edits over
    /// `edited_share` of the customers, once each.
    pub hot_customers: usize,
    /// Acts on the hot customers over the edit phase: each a clash or one side's edit.
    pub clash_acts: usize,
    /// Share of those acts that are clashes: both sides edit one field at once.
    pub clash_share: f64,
    /// How often the person decides the held conflicts (under `manual`).
    pub decide_every_secs: u64,
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
            conflicts: ConflictPolicy::LastWriteWins,
            hot_customers: 0,
            clash_acts: 0,
            clash_share: 0.0,
            decide_every_secs: 0,
        };
        // Two acts a second on 40 customers for three minutes: each customer clashes
        // about five times on its phone or name, half the acts clash (two thirds of
        // the edits), with one kill and webhooks duplicated, reordered and dropped.
        let clash = Self {
            name: "clash".into(),
            customers: 400,
            invoices: 0,
            edited_share: 0.0,
            both_sides_share: 0.0,
            edit_seconds: 180,
            kills: 1,
            rabbitmq_restarts: 0,
            postgres_restarts: 0,
            error_rate: 0.02,
            rate_limit_rate: 0.01,
            poll_seconds: 15,
            first_sync_limit_secs: 300,
            settle_limit_secs: 300,
            conflicts: ConflictPolicy::LastWriteWins,
            hot_customers: 40,
            clash_acts: 360,
            clash_share: 0.5,
            decide_every_secs: 0,
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
            "clash" => Ok(clash),
            "clash-manual" => Ok(Self {
                name: "clash-manual".into(),
                conflicts: ConflictPolicy::Manual,
                decide_every_secs: 3,
                ..clash
            }),
            other => anyhow::bail!(
                "no torture profile `{other}`; the profiles are small, full, clash, clash-manual"
            ),
        }
    }
}
