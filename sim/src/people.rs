//! Simulated people: they fill both services with customers (some of them the same
//! people, by e-mail) and keep editing: names and phones on both sides, deals won in
//! the CRM, invoices paid in finance.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rand::seq::SliceRandom as _;
use rand::Rng as _;
use rust_decimal::Decimal;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::hubspot::HubSpotSim;
use crate::view::{CustomerEdit, CustomerSeed};
use crate::xero::XeroSim;

const FIRST: &[&str] = &[
    "Ada",
    "Alan",
    "Grace",
    "Edsger",
    "Barbara",
    "Donald",
    "Frances",
    "Ken",
    "Margaret",
    "Niklaus",
    "Radia",
    "Tim",
    "Hedy",
    "Claude",
    "Katherine",
    "John",
];
const LAST: &[&str] = &[
    "Lovelace",
    "Turing",
    "Hopper",
    "Dijkstra",
    "Liskov",
    "Knuth",
    "Allen",
    "Thompson",
    "Hamilton",
    "Wirth",
    "Perlman",
    "Berners-Lee",
    "Lamarr",
    "Shannon",
    "Johnson",
    "Backus",
];

/// What the people have done so far.
#[derive(Debug, Default, Serialize)]
pub struct PeopleCounts {
    pub crm_edits: u64,
    pub finance_edits: u64,
    pub deals_won: u64,
    pub invoices_paid: u64,
}

#[derive(Default)]
pub struct People {
    crm_edits: AtomicU64,
    finance_edits: AtomicU64,
    deals_won: AtomicU64,
    invoices_paid: AtomicU64,
    names: AtomicU64,
}

fn seed(n: usize, tag: &str) -> CustomerSeed {
    let first = FIRST[n % FIRST.len()];
    let last = LAST[(n / FIRST.len()) % LAST.len()];
    CustomerSeed {
        name: format!("{first} {last} {tag}{n}"),
        email: format!(
            "{}.{}.{tag}{n}@example.com",
            first.to_lowercase(),
            last.to_lowercase()
        ),
        phone: Some(format!("+44 20 7946 {:04}", n % 10_000)),
    }
}

fn phone() -> String {
    format!("+44 20 7946 {:04}", rand::thread_rng().gen_range(0..10_000))
}

impl People {
    /// `each` customers on each side, `shared` of them the same people on both.
    pub fn seed(&self, hubspot: &HubSpotSim, xero: &XeroSim, each: usize, shared: usize) {
        for n in 0..shared.min(each) {
            let person = seed(n, "S");
            hubspot.person_creates_customer(&person);
            xero.person_creates_contact(&person);
        }
        for n in shared.min(each)..each {
            hubspot.person_creates_customer(&seed(n, "C"));
            xero.person_creates_contact(&seed(n, "F"));
        }
    }

    /// One random thing a person does.
    pub fn act(&self, hubspot: &HubSpotSim, xero: &XeroSim) {
        let roll = rand::thread_rng().gen_range(0..100);
        match roll {
            0..=34 => {
                let customers = hubspot.customers();
                if let Some(c) = customers
                    .choose(&mut rand::thread_rng())
                    .filter(|c| !c.archived)
                {
                    let edit = if roll % 2 == 0 {
                        CustomerEdit {
                            phone: Some(phone()),
                            ..Default::default()
                        }
                    } else {
                        let n = self.names.fetch_add(1, Ordering::Relaxed);
                        CustomerEdit {
                            name: c.name.as_ref().map(|name| rename(name, n)),
                            ..Default::default()
                        }
                    };
                    hubspot.person_edits_customer(&c.id, &edit);
                    self.crm_edits.fetch_add(1, Ordering::Relaxed);
                }
            }
            35..=69 => {
                let contacts = xero.customers();
                if let Some(c) = contacts
                    .choose(&mut rand::thread_rng())
                    .filter(|c| !c.archived)
                {
                    xero.person_edits_contact(
                        &c.id,
                        &CustomerEdit {
                            phone: Some(phone()),
                            ..Default::default()
                        },
                    );
                    self.finance_edits.fetch_add(1, Ordering::Relaxed);
                }
            }
            70..=84 => {
                let customers = hubspot.customers();
                if let Some(c) = customers
                    .choose(&mut rand::thread_rng())
                    .filter(|c| !c.archived)
                {
                    let hours = Decimal::from(rand::thread_rng().gen_range(1..20));
                    hubspot.person_wins_deal(
                        &c.id,
                        &format!("Consulting for {}", c.name.clone().unwrap_or_default()),
                        &[("Consulting".to_string(), hours, Decimal::from(150))],
                    );
                    self.deals_won.fetch_add(1, Ordering::Relaxed);
                }
            }
            _ => {
                let open: Vec<_> = xero
                    .invoices()
                    .into_iter()
                    .filter(|i| !i.archived && i.stamp.is_some())
                    .filter(|i| {
                        matches!(
                            i.status.as_deref(),
                            Some("draft" | "submitted" | "authorised")
                        )
                    })
                    .collect();
                if let Some(invoice) = open.choose(&mut rand::thread_rng()) {
                    let total = invoice
                        .total
                        .as_deref()
                        .and_then(|t| t.parse::<Decimal>().ok())
                        .unwrap_or_default();
                    let paid = invoice
                        .amount_paid
                        .as_deref()
                        .and_then(|t| t.parse::<Decimal>().ok())
                        .unwrap_or_default();
                    if total > paid && xero.person_pays_invoice(&invoice.id, total - paid).is_ok() {
                        self.invoices_paid.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }
    }

    /// Acts `per_second` times a second until `stop`.
    pub async fn run(
        &self,
        hubspot: &HubSpotSim,
        xero: &XeroSim,
        per_second: f64,
        stop: CancellationToken,
    ) {
        if per_second <= 0.0 {
            return;
        }
        let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / per_second));
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tick.tick() => self.act(hubspot, xero),
            }
        }
    }

    pub fn counts(&self) -> PeopleCounts {
        PeopleCounts {
            crm_edits: self.crm_edits.load(Ordering::Relaxed),
            finance_edits: self.finance_edits.load(Ordering::Relaxed),
            deals_won: self.deals_won.load(Ordering::Relaxed),
            invoices_paid: self.invoices_paid.load(Ordering::Relaxed),
        }
    }
}

/// A new name that stays unique (Xero refuses two active contacts with one name).
fn rename(name: &str, n: u64) -> String {
    let base = name.split(" ~").next().unwrap_or(name);
    format!("{base} ~{n}")
}
