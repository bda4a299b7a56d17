//! What a trial can turn: latency, failures, rate limits and webhook misbehaviour.
//! Read on every request, settable at run time through `POST /sim/knobs`.

use std::sync::RwLock;

use rand::Rng as _;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KnobValues {
    /// Added to every API answer.
    pub latency_ms: u64,
    /// Share of API calls answered 5xx (0.0 to 1.0), before doing anything.
    pub error_rate: f64,
    /// Share of API calls answered 429 on top of the real limits.
    pub rate_limit_rate: f64,
    /// Share of webhook deliveries sent twice.
    pub webhook_duplicate_rate: f64,
    /// Share of webhook deliveries held back and sent after the next one.
    pub webhook_reorder_rate: f64,
    /// Share of webhook deliveries never sent.
    pub webhook_drop_rate: f64,
    /// Whether the real rate limits (calls per window, calls at once) are enforced.
    pub enforce_limits: bool,
    /// An outage of the simulated Xero: every API call answered 503, before anything
    /// else (the other service keeps working, unlike with `error_rate`).
    pub xero_down: bool,
    /// An outage of the simulated HubSpot: every API and token call answered 503.
    pub hubspot_down: bool,
}

impl Default for KnobValues {
    fn default() -> Self {
        Self {
            latency_ms: 0,
            error_rate: 0.0,
            rate_limit_rate: 0.0,
            webhook_duplicate_rate: 0.0,
            webhook_reorder_rate: 0.0,
            webhook_drop_rate: 0.0,
            enforce_limits: true,
            xero_down: false,
            hubspot_down: false,
        }
    }
}

#[derive(Debug, Default)]
pub struct Knobs {
    values: RwLock<KnobValues>,
}

impl Knobs {
    pub fn new(values: KnobValues) -> Self {
        Self {
            values: RwLock::new(values),
        }
    }

    pub fn get(&self) -> KnobValues {
        self.values
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn set(&self, values: KnobValues) {
        *self.values.write().unwrap_or_else(|p| p.into_inner()) = values;
    }

    /// Changes some values, leaving the others as they are.
    pub fn update(&self, change: impl FnOnce(&mut KnobValues)) {
        change(&mut self.values.write().unwrap_or_else(|p| p.into_inner()));
    }
}

/// True with probability `p`.
pub fn roll(p: f64) -> bool {
    p > 0.0 && rand::thread_rng().gen_bool(p.clamp(0.0, 1.0))
}
