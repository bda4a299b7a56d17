//! The end-to-end rig the e2e, economy and memory scenarios share: both simulators over
//! HTTP with their rate limits off, the engine as a child process on the configured
//! PostgreSQL and RabbitMQ, N customers seeded alike on both sides and linked by the
//! first sync, and simulated people editing them at an offered rate.
//!
//! What reached the other side is read from the simulators' journals: a person's edit
//! (a `Person` entry, with its `Instant`) has arrived when the first `Api` entry on the
//! counterpart record, at or after it, carries the same value.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use sea_orm::{ConnectionTrait as _, Statement};
use serde::Serialize;
use sim::{
    Action, Actor, CustomerEdit, CustomerSeed, JournalEntry, KnobValues, Side, SimConfig,
    Simulators,
};
use tokio_util::sync::CancellationToken;

use super::engine::{ConnectorLimits, EngineChild};
use sim::hubspot::HubSpotSettings;
use sim::xero::XeroSettings;

/// A simulator limit no run reaches.
const UNREACHED: usize = 1_000_000_000;
use crate::config::Settings;

/// How a rig is built.
#[derive(Debug, Clone)]
pub struct RigOptions {
    /// Scenario name, in the pair name and the bus prefix.
    pub name: &'static str,
    /// Customers seeded on each side (rounded up to an even number, so that each record
    /// is only ever edited on one side).
    pub customers: usize,
    pub workers: usize,
    pub poll_interval_secs: u64,
    pub limits: ConnectorLimits,
    /// Where webhooks go instead of the engine (a relay in front of it), and the base
    /// URL the engine checks HubSpot signatures against.
    pub webhook_base: Option<String>,
}

pub struct SyncRig {
    pub sims: Arc<Simulators>,
    stop_sims: CancellationToken,
    pub engine: EngineChild,
    pub pair: String,
    /// (CRM id, Xero id) of each seeded customer, the same person on both sides.
    pub records: Vec<(String, String)>,
    /// Each record's id on one side -> its counterpart on the other.
    counterpart: HashMap<(Side, String), String>,
    settings: Settings,
    webhook_base: String,
    http: reqwest::Client,
}

/// One person's edit and when its value reached the other side.
#[derive(Debug, Clone)]
pub struct Arrival {
    pub side: Side,
    pub at: Instant,
    pub written_at: Option<Instant>,
}

impl Arrival {
    pub fn latency(&self) -> Option<Duration> {
        self.written_at
            .map(|w| w.saturating_duration_since(self.at))
    }
}

/// Edits made by [`SyncRig::offer`].
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Offered {
    pub edits: u64,
    #[serde(skip)]
    pub started: Instant,
    #[serde(skip)]
    pub ended: Instant,
}

impl Offered {
    pub fn seconds(&self) -> f64 {
        self.ended.duration_since(self.started).as_secs_f64()
    }
}

pub fn other(side: Side) -> Side {
    match side {
        Side::Crm => Side::Finance,
        Side::Finance => Side::Crm,
    }
}

fn seed(n: usize) -> CustomerSeed {
    CustomerSeed {
        name: format!("Bench Customer {n}"),
        email: format!("bench.customer.{n}@example.com"),
        phone: Some(format!("+44 20 7946 {n:06}")),
    }
}

impl SyncRig {
    /// Starts the simulators (limits off), seeds both sides and starts the engine. The
    /// seeds' webhooks wait in the simulators' outboxes until [`SyncRig::link_all`].
    pub async fn start(settings: &Settings, options: RigOptions) -> anyhow::Result<Self> {
        let stop_sims = CancellationToken::new();
        // Enforcement off, and the configured limits out of reach too: with enforcement
        // off the simulated Xero still reports the remaining count of its last
        // admitted call (0 once 60 calls were made in the minute), and the engine
        // rightly pauses on a remaining count of 0.
        let config = SimConfig {
            knobs: KnobValues {
                enforce_limits: false,
                ..Default::default()
            },
            hubspot: HubSpotSettings {
                per_ten_seconds: UNREACHED,
                search_per_second: UNREACHED,
                ..Default::default()
            },
            xero: XeroSettings {
                per_minute: UNREACHED,
                per_day: UNREACHED,
                concurrency: UNREACHED,
                ..Default::default()
            },
        };
        let sims = Simulators::start_local(config, stop_sims.clone())
            .await
            .context("cannot start the simulators")?;
        let customers = options.customers.max(2).div_ceil(2) * 2;
        let mut records = Vec::with_capacity(customers);
        let mut counterpart = HashMap::new();
        for n in 0..customers {
            let person = seed(n);
            let crm = sims.hubspot.person_creates_customer(&person);
            let finance = sims.xero.person_creates_contact(&person);
            counterpart.insert((Side::Crm, crm.clone()), finance.clone());
            counterpart.insert((Side::Finance, finance.clone()), crm.clone());
            records.push((crm, finance));
        }
        let tag = &uuid::Uuid::new_v4().simple().to_string()[..8];
        let pair = format!("{}_{tag}", options.name);
        let mut engine_settings = settings.clone();
        engine_settings.pairs.clear();
        engine_settings.pairs.insert(
            pair.clone(),
            crate::demo::pair_for(&sims, options.poll_interval_secs),
        );
        engine_settings.bus.prefix = format!("tandem_bench_{}_{tag}", options.name);
        engine_settings.orchestrator.workers = options.workers.max(1);
        engine_settings.webhooks.public_base_url = options.webhook_base.clone();
        let engine = EngineChild::start(engine_settings.clone(), options.limits).await?;
        let webhook_base = options
            .webhook_base
            .clone()
            .unwrap_or_else(|| engine.base_url.clone());
        Ok(Self {
            sims,
            stop_sims,
            engine,
            pair,
            records,
            counterpart,
            settings: engine_settings,
            webhook_base,
            http: reqwest::Client::new(),
        })
    }

    /// The engine's settings (its database, bus and pair).
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The id on the other side of the customer `id` on `side`.
    pub fn counterpart(&self, side: Side, id: &str) -> Option<&String> {
        self.counterpart.get(&(side, id.to_string()))
    }

    /// Lets the seeds' webhooks through and waits until the first sync linked every
    /// customer and settled; answers how long that took.
    pub async fn link_all(&self, within: Duration) -> anyhow::Result<Duration> {
        let started = Instant::now();
        let (crm_url, finance_url) = crate::demo::webhook_urls(&self.webhook_base, &self.pair);
        self.sims.send_webhooks_to(Some(crm_url), Some(finance_url));
        let db = sea_orm::Database::connect(&self.settings.database_url)
            .await
            .context("cannot reach the engine's database to count links")?;
        let count = format!(
            "SELECT COUNT(*) AS n FROM entity_link WHERE pair = '{}' AND entity_type = 'customer' \
             AND crm_id IS NOT NULL AND finance_id IS NOT NULL",
            self.pair
        );
        loop {
            let row = db
                .query_one(Statement::from_string(db.get_database_backend(), &count))
                .await?;
            let linked = row
                .and_then(|r| r.try_get::<i64>("", "n").ok())
                .unwrap_or(0) as usize;
            if linked >= self.records.len() {
                break;
            }
            if started.elapsed() > within {
                anyhow::bail!(
                    "the first sync linked {linked} of {} customers within {within:?}:\n{}",
                    self.records.len(),
                    self.engine.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        let _ = db.close().await;
        self.settle(
            Duration::from_secs(1),
            within.saturating_sub(started.elapsed()),
        )
        .await?;
        Ok(started.elapsed())
    }

    /// Waits until nothing moves for `quiet`: no new journal entry, no webhook event
    /// raised, nothing waiting in the engine's queues or held by its workers.
    pub async fn settle(&self, quiet: Duration, within: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + within;
        let mut last = None;
        let mut since = Instant::now();
        loop {
            let depth = self
                .engine
                .queue_depth(&self.http)
                .await
                .unwrap_or(u64::MAX);
            let unfinished = self.engine.unfinished(&self.http).await.unwrap_or(i64::MAX);
            let seen = (
                self.sims.hubspot.journal().len(),
                self.sims.xero.journal().len(),
                self.sims.hubspot.outbox().stats().events,
                self.sims.xero.outbox().stats().events,
                depth,
                unfinished,
            );
            if last != Some(seen) {
                last = Some(seen);
                since = Instant::now();
            } else if depth == 0 && unfinished <= 0 && since.elapsed() >= quiet {
                return Ok(());
            }
            if Instant::now() > deadline {
                anyhow::bail!(
                    "the sync did not settle within {within:?} (queue depth {depth}, {unfinished} changes unfinished):\n{}",
                    self.engine.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// One person's edit, number `serial`: record `serial % N`, on the CRM for even
    /// records and in Xero for odd ones (so edits alternate sides and no record is
    /// edited on both), its phone or its name by turns, always to a value never used.
    pub fn edit(&self, serial: u64) {
        let n = serial as usize % self.records.len();
        let round = serial as usize / self.records.len();
        let edit = if round % 2 == 0 {
            CustomerEdit {
                phone: Some(format!("+1 555 {serial:09}")),
                ..Default::default()
            }
        } else {
            CustomerEdit {
                name: Some(format!("Bench Customer {n} ~{serial}")),
                ..Default::default()
            }
        };
        self.edit_record(n, &edit);
    }

    /// A person edits record `n` on the side it is edited on.
    pub fn edit_record(&self, n: usize, edit: &CustomerEdit) {
        let (crm, finance) = &self.records[n];
        match Self::side_of(n) {
            Side::Crm => self.sims.hubspot.person_edits_customer(crm, edit),
            Side::Finance => self.sims.xero.person_edits_contact(finance, edit),
        }
    }

    pub fn side_of(n: usize) -> Side {
        if n % 2 == 0 {
            Side::Crm
        } else {
            Side::Finance
        }
    }

    /// Edits at `per_second` for `length`, numbering them from `*serial`; a generator
    /// that falls behind catches up, so the offered rate is what was asked unless the
    /// bench process itself cannot keep up (the count says).
    pub async fn offer(&self, per_second: f64, length: Duration, serial: &mut u64) -> Offered {
        let started = Instant::now();
        let mut made = 0u64;
        loop {
            let elapsed = started.elapsed();
            if elapsed >= length {
                break;
            }
            let due = (elapsed.as_secs_f64() * per_second) as u64;
            while made < due {
                self.edit(*serial);
                *serial += 1;
                made += 1;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        Offered {
            edits: made,
            started,
            ended: Instant::now(),
        }
    }

    /// Every person's edit made in `[from, to)`, with when its value reached the other
    /// side (if it did).
    pub fn arrivals(&self, journal: &[JournalEntry], from: Instant, to: Instant) -> Vec<Arrival> {
        let mut writes: HashMap<(Side, &str), Vec<&JournalEntry>> = HashMap::new();
        for entry in journal.iter().filter(|e| e.actor == Actor::Api) {
            writes
                .entry((entry.side, &entry.id))
                .or_default()
                .push(entry);
        }
        journal
            .iter()
            .filter(|e| e.actor == Actor::Person && e.action == Action::Update)
            .filter_map(|e| Some((e, e.at?)))
            .filter(|(_, at)| *at >= from && *at < to)
            .filter_map(|(edit, at)| {
                let there = self.counterpart.get(&(edit.side, edit.id.clone()))?;
                let written_at = writes
                    .get(&(other(edit.side), there.as_str()))
                    .into_iter()
                    .flatten()
                    .filter_map(|w| Some((w, w.at?)))
                    .find(|(w, written)| {
                        *written >= at
                            && edit
                                .changed
                                .iter()
                                .all(|(field, value)| w.changed.get(field) == Some(value))
                    })
                    .map(|(_, written)| written);
                Some(Arrival {
                    side: edit.side,
                    at,
                    written_at,
                })
            })
            .collect()
    }

    /// Waits until every person's edit of `[from, to)` reached the other side, or
    /// `within` passed; answers the arrivals and how long the wait was.
    pub async fn drain(
        &self,
        from: Instant,
        to: Instant,
        within: Duration,
    ) -> (Vec<Arrival>, Duration) {
        let started = Instant::now();
        loop {
            let arrivals = self.arrivals(&self.sims.journal(), from, to);
            let done = arrivals.iter().all(|a| a.written_at.is_some());
            if done || started.elapsed() >= within {
                return (arrivals, started.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Stops the engine and the simulators and removes the run's queues.
    pub async fn stop(self) -> anyhow::Result<()> {
        let result = self.engine.stop().await;
        self.stop_sims.cancel();
        crate::bus::delete_topology_of(&self.settings).await;
        result
    }
}
