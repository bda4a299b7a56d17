//! The clash profiles' people: a few customers edited again and again on both sides,
//! most edits clashing with an edit of the same field on the other side in the same
//! instant; and under `manual`, a person who keeps deciding the held conflicts through
//! the admin API while the clashes keep coming.
//!
//! Every edit writes a value never written before, so no edit can look like "no change"
//! to the engine (a field put back to the value it had at the last sync), and the
//! oracle can tell every edit apart.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rand::seq::SliceRandom as _;
use rand::Rng as _;
use serde_json::{json, Value};
use sim::{CustomerEdit, Simulators};

use super::check::{HeldConflict, PersonDecision};

/// Edits of the hot customers, spread over the edit phase.
pub struct ClashPlan {
    /// (CRM id, finance id) of the customers edited again and again.
    hot: Vec<(String, String)>,
    /// Acts in the whole edit phase: each a clash, or one side's edit.
    acts: usize,
    /// Share of acts that are clashes (two edits of one field, one on each side).
    clash_share: f64,
    next_value: AtomicU64,
}

/// What the people did so far.
#[derive(Debug, Default)]
pub struct ClashCounts {
    pub edits: usize,
    pub clashes: usize,
}

impl ClashPlan {
    pub fn new(pairs: &[(String, String)], hot: usize, acts: usize, clash_share: f64) -> Self {
        Self {
            hot: pairs.iter().take(hot).cloned().collect(),
            acts,
            clash_share,
            next_value: AtomicU64::new(0),
        }
    }

    /// The acts of one step out of `steps`.
    pub fn act(&self, sims: &Simulators, step: u64, steps: u64, counts: &mut ClashCounts) {
        let from = (self.acts as u64 * step / steps) as usize;
        let to = (self.acts as u64 * (step + 1) / steps) as usize;
        let mut rng = rand::thread_rng();
        for _ in from..to {
            let Some((crm_id, finance_id)) = self.hot.choose(&mut rng) else {
                return;
            };
            let phone = rng.gen_bool(0.6);
            if rng.gen_bool(self.clash_share) {
                // Both people save the same field in the same instant, in either order.
                let (crm_edit, finance_edit) =
                    (self.edit(phone, "crm"), self.edit(phone, "finance"));
                if rng.gen_bool(0.5) {
                    sims.hubspot.person_edits_customer(crm_id, &crm_edit);
                    sims.xero.person_edits_contact(finance_id, &finance_edit);
                } else {
                    sims.xero.person_edits_contact(finance_id, &finance_edit);
                    sims.hubspot.person_edits_customer(crm_id, &crm_edit);
                }
                counts.clashes += 1;
                counts.edits += 2;
            } else if rng.gen_bool(0.5) {
                sims.hubspot
                    .person_edits_customer(crm_id, &self.edit(phone, "crm"));
                counts.edits += 1;
            } else {
                sims.xero
                    .person_edits_contact(finance_id, &self.edit(phone, "finance"));
                counts.edits += 1;
            }
        }
    }

    /// An edit of the phone or the name to a value never written before.
    fn edit(&self, phone: bool, side: &str) -> CustomerEdit {
        let n = self.next_value.fetch_add(1, Ordering::Relaxed);
        if phone {
            CustomerEdit {
                phone: Some(format!("+44 20 {n:08}")),
                ..CustomerEdit::default()
            }
        } else {
            CustomerEdit {
                name: Some(format!("Clash {n} from {side}")),
                ..CustomerEdit::default()
            }
        }
    }
}

/// A person deciding held conflicts through the admin API, as a person would from the
/// dashboard: keep the CRM's value, keep finance's, or type a value of their own.
pub struct Resolver {
    http: reqwest::Client,
    next_value: AtomicU64,
    pub decisions: Vec<PersonDecision>,
}

impl Default for Resolver {
    fn default() -> Self {
        Self {
            http: reqwest::Client::new(),
            next_value: AtomicU64::new(0),
            decisions: Vec::new(),
        }
    }
}

impl Resolver {
    /// Decides every conflict held now; answers how many it decided. A conflict that
    /// changed state meanwhile (a later edit ended it) is refused with 409 and skipped.
    pub async fn decide_all(&mut self, base_url: &str, token: &str) -> anyhow::Result<usize> {
        let mut decided = 0;
        for conflict in self.open(base_url, token).await? {
            let body = match rand::thread_rng().gen_range(0..5) {
                0 | 1 => json!({"keep": "crm"}),
                2 | 3 => json!({"keep": "finance"}),
                _ => {
                    let n = self.next_value.fetch_add(1, Ordering::Relaxed);
                    let field = conflict["field"].as_str().unwrap_or_default();
                    json!({"value": own_value(field, n)})
                }
            };
            let Some(id) = conflict["id"].as_str() else {
                continue;
            };
            let answer = self
                .http
                .post(format!("{base_url}/api/conflicts/{id}/resolve"))
                .bearer_auth(token)
                .json(&body)
                .timeout(Duration::from_secs(10))
                .send()
                .await?;
            if answer.status() == reqwest::StatusCode::CONFLICT {
                continue;
            }
            let view: Value = answer.error_for_status()?.json().await?;
            let value = match view["winner"].as_str() {
                Some("crm") => text(&view["crm_value"]),
                Some("finance") => text(&view["finance_value"]),
                _ => text(&view["resolved_value"]),
            };
            self.decisions.push(PersonDecision {
                crm_id: text(&view["crm_id"]).unwrap_or_default(),
                finance_id: text(&view["finance_id"]).unwrap_or_default(),
                field: text(&view["field"]).unwrap_or_default(),
                value,
                at_ms: chrono::Utc::now().timestamp_millis(),
            });
            decided += 1;
        }
        Ok(decided)
    }

    /// The conflicts held for a person now.
    pub async fn held(&self, base_url: &str, token: &str) -> anyhow::Result<Vec<HeldConflict>> {
        Ok(self
            .open(base_url, token)
            .await?
            .iter()
            .map(|c| HeldConflict {
                crm_id: text(&c["crm_id"]).unwrap_or_default(),
                finance_id: text(&c["finance_id"]).unwrap_or_default(),
                field: text(&c["field"]).unwrap_or_default(),
                crm_value: text(&c["crm_value"]),
                finance_value: text(&c["finance_value"]),
            })
            .collect())
    }

    async fn open(&self, base_url: &str, token: &str) -> anyhow::Result<Vec<Value>> {
        let mut all = Vec::new();
        loop {
            let page: Vec<Value> = self
                .http
                .get(format!("{base_url}/api/conflicts"))
                .query(&[
                    ("status", "open".to_string()),
                    ("limit", "500".to_string()),
                    ("offset", all.len().to_string()),
                ])
                .bearer_auth(token)
                .timeout(Duration::from_secs(10))
                .send()
                .await?
                .error_for_status()?
                .json()
                .await?;
            let full = page.len() == 500;
            all.extend(page);
            if !full {
                return Ok(all);
            }
        }
    }
}

/// A value a person types for a field, never written before.
fn own_value(field: &str, n: u64) -> String {
    match field {
        "phone" => format!("+44 161 {n:07}"),
        _ => format!("Chosen by a person {n}"),
    }
}

fn text(value: &Value) -> Option<String> {
    value.as_str().map(str::to_string)
}
