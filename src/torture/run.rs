//! The torture run: the engine as a child process against real PostgreSQL and RabbitMQ
//! and both simulators over HTTP with their real rate limits; people edit both sides
//! while the simulators misbehave, the engine is killed with SIGKILL and restarted, and
//! RabbitMQ and PostgreSQL are restarted. When the edits stop and the engine has
//! settled, [`super::check`] judges the end state against the journal of every edit.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use rand::seq::SliceRandom as _;
use rand::Rng as _;
use rust_decimal::Decimal;
use serde::Serialize;
use sim::{CustomerEdit, KnobValues, SimConfig, Simulators};
use tokio_util::sync::CancellationToken;

use super::check::{self, CheckReport, EndState, HeldConflict, Limits, LinkPair};
use super::clash::{ClashCounts, ClashPlan, Resolver};
use super::profile::Profile;
use crate::bench::engine::{ConnectorLimits, EngineChild};
use crate::config::Settings;
use crate::domain::PairId;
use crate::store::{self, LinkStore as _};

/// What happened during a run, beside the checker's verdict.
#[derive(Debug, Serialize)]
pub struct RunFacts {
    pub profile: Profile,
    pub first_sync_seconds: f64,
    pub edit_seconds: f64,
    pub settle_seconds: f64,
    pub customers_crm: usize,
    pub customers_finance: usize,
    pub invoices_crm: usize,
    pub invoices_finance: usize,
    pub customer_edits: usize,
    pub edited_on_both_sides: usize,
    pub deals_won: usize,
    pub invoices_paid: usize,
    /// Acts of the clash profiles in which both sides edited one field at once.
    pub clashes: usize,
    /// Decisions the person made on held conflicts (under `manual`).
    pub decisions: usize,
    /// What the chaos schedule did, with the second of the edit phase it happened at.
    pub chaos: Vec<String>,
    pub xero_calls: usize,
    pub xero_refused_429: usize,
    pub hubspot_calls: usize,
    pub hubspot_refused_429: usize,
    /// Calls each simulator answered, by method, path (ids left out) and status class.
    pub calls_by_kind: BTreeMap<String, usize>,
    /// Records each kind of Xero call named on average (the items of a batch write,
    /// the ids or terms of a read): how full the batches were under Xero's limit.
    pub xero_items_per_call: BTreeMap<String, f64>,
}

/// One step of the chaos schedule, at a share of the edit phase.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Chaos {
    KillEngine,
    RestartRabbitMq,
    RestartPostgres,
}

/// The shell commands that restart the broker and the database during the run: the
/// services at the settings' URLs, which need not be this machine's own.
#[derive(Debug, Clone, Serialize)]
pub struct RestartCommands {
    pub rabbitmq: String,
    pub postgres: String,
}

pub async fn run(
    settings: &Settings,
    profile: Profile,
    restarts: &RestartCommands,
) -> anyhow::Result<(RunFacts, CheckReport)> {
    anyhow::ensure!(
        settings.database_url.starts_with("postgres"),
        "tandem torture runs against PostgreSQL: set TANDEM_DATABASE_URL=postgres://..."
    );
    anyhow::ensure!(
        settings.amqp_url.starts_with("amqp"),
        "tandem torture runs against RabbitMQ: set TANDEM_AMQP_URL=amqp://..."
    );
    let stop_sims = CancellationToken::new();
    let _stop_sims_on_exit = stop_sims.clone().drop_guard();
    let sims = Simulators::start_local(SimConfig::default(), stop_sims.clone())
        .await
        .context("cannot start the simulators")?;
    let shared = profile.customers / 10;
    let each = (profile.customers + shared) / 2;
    sims.people.seed(&sims.hubspot, &sims.xero, each, shared);
    println!(
        "seeded {each} customers on each side, {shared} of them the same people ({} in all)",
        2 * each - shared
    );

    let pair = format!(
        "torture_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    let mut settings = settings.clone();
    settings.pairs.clear();
    let mut pair_settings = crate::demo::pair_for(&sims, profile.poll_seconds);
    pair_settings.conflict_policy = profile.conflicts;
    settings.pairs.insert(pair.clone(), pair_settings);
    settings.bus.prefix = format!("tandem_{pair}");

    let mut engine = start_engine(&settings, &sims, &pair).await?;
    println!("{}", engine.settings.line());

    // The first sync: the poller finds everything on both sides.
    let started = Instant::now();
    wait_in_step(
        &sims,
        &engine,
        Duration::from_secs(profile.first_sync_limit_secs),
    )
    .await
    .context("the first sync did not finish")?;
    let first_sync_seconds = started.elapsed().as_secs_f64();
    println!("first sync done after {first_sync_seconds:.0}s");

    // The edit phase, with the simulators misbehaving and the chaos schedule.
    sims.knobs.set(profile.chaos_knobs());
    let mut schedule = chaos_schedule(&profile);
    let mut chaos_log = Vec::new();
    let plan = EditPlan::new(&sims, &profile);
    let clash_plan = (profile.hot_customers > 0).then(|| {
        ClashPlan::new(
            &plan.order,
            profile.hot_customers,
            profile.clash_acts,
            profile.clash_share,
        )
    });
    let mut resolver = Resolver::default();
    let edit_started = Instant::now();
    let length = Duration::from_secs(profile.edit_seconds);
    let mut counts = EditCounts::default();
    let mut clash_counts = ClashCounts::default();
    let steps = (profile.edit_seconds * 10).max(1);
    let decide_every = (profile.decide_every_secs * 10).max(1);
    for step in 0..steps {
        let due = edit_started + length.mul_f64(step as f64 / steps as f64);
        tokio::time::sleep_until(due.into()).await;
        match &clash_plan {
            Some(clash_plan) => clash_plan.act(&sims, step, steps, &mut clash_counts),
            None => plan.act(&sims, step, steps, &mut counts),
        }
        if profile.decide_every_secs > 0 && step % decide_every == 0 {
            // The engine may be restarting: the person tries again next round.
            if let Err(err) = resolver
                .decide_all(&engine.base_url, &engine.admin_token)
                .await
            {
                tracing::debug!(error = %err, "the person could not decide now");
            }
        }
        let share = step as f64 / steps as f64;
        while let Some(&(at, chaos)) = schedule.first() {
            if at > share {
                break;
            }
            schedule.remove(0);
            let second = edit_started.elapsed().as_secs();
            match chaos {
                Chaos::KillEngine => {
                    engine.kill().await;
                    chaos_log.push(format!("{second}s: engine killed with SIGKILL"));
                    engine = start_engine(&settings, &sims, &pair).await?;
                    chaos_log.push(format!(
                        "{}s: engine restarted",
                        edit_started.elapsed().as_secs()
                    ));
                }
                Chaos::RestartRabbitMq => {
                    restart("RabbitMQ", &restarts.rabbitmq).await?;
                    chaos_log.push(format!("{second}s: RabbitMQ restarted"));
                }
                Chaos::RestartPostgres => {
                    restart("PostgreSQL", &restarts.postgres).await?;
                    chaos_log.push(format!("{second}s: PostgreSQL restarted"));
                }
            }
            println!("  {}", chaos_log.last().map(String::as_str).unwrap_or(""));
        }
    }
    counts.customer_edits += clash_counts.edits;
    counts.both_sides += clash_counts.clashes;
    let edits_stopped_at_ms = chrono::Utc::now().timestamp_millis();
    let edit_seconds = edit_started.elapsed().as_secs_f64();
    println!(
        "edits stopped after {edit_seconds:.0}s: {} customer edits ({} on both sides at once), {} deals won, {} invoices paid",
        counts.customer_edits, counts.both_sides, counts.deals_won, counts.invoices_paid
    );

    // Settle: the engine catches up (polling finds what dropped webhooks missed).
    let settle_started = Instant::now();
    let settle_limit = Duration::from_secs(profile.settle_limit_secs);
    let settled = if profile.decide_every_secs > 0 {
        decide_until_in_step(&mut resolver, &sims, &engine, settle_limit).await
    } else {
        wait_in_step(&sims, &engine, settle_limit).await
    };
    let settle_seconds = settle_started.elapsed().as_secs_f64();
    match &settled {
        Ok(()) => println!("in step {settle_seconds:.0}s after the last edit"),
        Err(err) => println!("not in step after {settle_seconds:.0}s: {err:#}"),
    }
    let held = if profile.decide_every_secs > 0 {
        resolver
            .held(&engine.base_url, &engine.admin_token)
            .await
            .context("cannot read the conflicts held at the end")?
    } else {
        Vec::<HeldConflict>::new()
    };
    engine.stop().await.ok();
    crate::bus::delete_topology_of(&settings).await;
    let links = links_of(&settings.database_url, &pair).await?;

    let state = EndState {
        crm_customers: sims.hubspot.customers(),
        finance_customers: sims.xero.customers(),
        crm_invoices: sims.hubspot.invoices(),
        finance_invoices: sims.xero.invoices(),
        journal: sims.journal(),
        links,
        edits_stopped_at_ms,
        policy: profile.conflicts,
        held,
        decisions: resolver.decisions.clone(),
        // The HubSpot connector reads each property's change time.
        crm_field_times: true,
    };
    let report = check::check(
        &state,
        &Limits {
            max_write_ratio: 1.05,
            settle_seconds: 60,
        },
    );
    let (xero_calls, hubspot_calls) = (sims.xero.calls(), sims.hubspot.calls());
    let facts = RunFacts {
        first_sync_seconds,
        edit_seconds,
        settle_seconds,
        customers_crm: state.crm_customers.len(),
        customers_finance: state.finance_customers.len(),
        invoices_crm: state.crm_invoices.len(),
        invoices_finance: state.finance_invoices.len(),
        customer_edits: counts.customer_edits,
        edited_on_both_sides: counts.both_sides,
        deals_won: counts.deals_won,
        invoices_paid: counts.invoices_paid,
        clashes: clash_counts.clashes,
        decisions: resolver.decisions.len(),
        chaos: chaos_log,
        xero_calls: xero_calls.len(),
        xero_refused_429: sims.xero.refused_429(),
        hubspot_calls: hubspot_calls.len(),
        hubspot_refused_429: sims.hubspot.refused_429(),
        calls_by_kind: calls_by_kind(&xero_calls, &hubspot_calls),
        xero_items_per_call: xero_items_per_call(&xero_calls),
        profile,
    };
    stop_sims.cancel();
    Ok((facts, report))
}

/// A call's kind: the service, method, path without ids and status class.
fn kind(service: &str, method: &str, path: &str, status: u16) -> String {
    // Ids are digits or UUIDs; keep the words.
    let path: Vec<&str> = path
        .split('/')
        .filter(|part| !part.is_empty())
        .filter(|part| !part.chars().any(|c| c.is_ascii_digit()))
        .collect();
    format!("{service} {method} /{} {}xx", path.join("/"), status / 100)
}

fn xero_items_per_call(calls: &[sim::xero::SimCall]) -> BTreeMap<String, f64> {
    let mut sums: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for call in calls {
        let (count, items) = sums
            .entry(kind("xero", &call.method, &call.path, call.status))
            .or_default();
        *count += 1;
        *items += call.items;
    }
    sums.into_iter()
        .map(|(kind, (count, items))| (kind, items as f64 / count as f64))
        .collect()
}

fn calls_by_kind(
    xero: &[sim::xero::SimCall],
    hubspot: &[sim::hubspot::SimCall],
) -> BTreeMap<String, usize> {
    let xero = xero.iter().map(|c| ("xero", &c.method, &c.path, c.status));
    let hubspot = hubspot
        .iter()
        .map(|c| ("hubspot", &c.method, &c.path, c.status));
    let mut kinds = BTreeMap::new();
    for (service, method, path, status) in xero.chain(hubspot) {
        *kinds
            .entry(kind(service, method, path, status))
            .or_insert(0) += 1;
    }
    kinds
}

async fn start_engine(
    settings: &Settings,
    sims: &Simulators,
    pair: &str,
) -> anyhow::Result<EngineChild> {
    let engine = EngineChild::start(settings.clone(), ConnectorLimits::Published).await?;
    let (crm, finance) = crate::demo::webhook_urls(&engine.base_url, pair);
    sims.send_webhooks_to(Some(crm), Some(finance));
    Ok(engine)
}

/// Waits until the simulators' inspection finds both sides in step and the engine has
/// nothing unfinished, twice in a row a poll interval apart (a change can be in neither
/// place for a moment: in a webhook on its way).
async fn wait_in_step(
    sims: &Simulators,
    engine: &EngineChild,
    within: Duration,
) -> anyhow::Result<()> {
    let http = reqwest::Client::new();
    let deadline = Instant::now() + within;
    let mut calm_since: Option<Instant> = None;
    loop {
        let in_step = sims.inspect().in_step;
        let idle = engine.unfinished(&http).await.is_ok_and(|n| n <= 0)
            && engine.queue_depth(&http).await.is_ok_and(|n| n == 0);
        if in_step && idle {
            let since = *calm_since.get_or_insert_with(Instant::now);
            if since.elapsed() >= Duration::from_secs(3) {
                return Ok(());
            }
        } else {
            calm_since = None;
        }
        if Instant::now() > deadline {
            let inspection = sims.inspect();
            let brief = |s: &sim::inspect::SideBySide| {
                format!(
                    "{} paired, {} agree, {} only in the CRM, {} only in finance",
                    s.paired, s.agree, s.only_crm, s.only_finance
                )
            };
            anyhow::bail!(
                "still out of step after {within:?}: customers {}; invoices {}",
                brief(&inspection.customers),
                brief(&inspection.invoices)
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Under `manual`, once the edits stop: the person decides whatever is held, again and
/// again (a decision can go stale and its clash be held anew), until the sides are in
/// step with nothing held.
async fn decide_until_in_step(
    resolver: &mut Resolver,
    sims: &Simulators,
    engine: &EngineChild,
    within: Duration,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + within;
    loop {
        if let Err(err) = resolver
            .decide_all(&engine.base_url, &engine.admin_token)
            .await
        {
            tracing::debug!(error = %err, "the person could not decide now");
        }
        let left = deadline.saturating_duration_since(Instant::now());
        match wait_in_step(sims, engine, left.min(Duration::from_secs(10))).await {
            Ok(()) => {
                println!(
                    "{} decisions made on held conflicts",
                    resolver.decisions.len()
                );
                return Ok(());
            }
            Err(err) if Instant::now() >= deadline => return Err(err),
            Err(_) => {}
        }
    }
}

fn chaos_schedule(profile: &Profile) -> Vec<(f64, Chaos)> {
    let mut schedule = Vec::new();
    for k in 0..profile.kills {
        schedule.push((
            (k as f64 + 1.0) / (profile.kills as f64 + 1.0),
            Chaos::KillEngine,
        ));
    }
    for k in 0..profile.rabbitmq_restarts {
        schedule.push((0.35 + 0.1 * k as f64, Chaos::RestartRabbitMq));
    }
    for k in 0..profile.postgres_restarts {
        schedule.push((0.65 + 0.1 * k as f64, Chaos::RestartPostgres));
    }
    schedule.sort_by(|a, b| a.0.total_cmp(&b.0));
    schedule
}

/// Runs one of the restart commands through `sh -c` and waits for it to finish.
async fn restart(service: &str, command: &str) -> anyhow::Result<()> {
    let status = tokio::process::Command::new("sh")
        .args(["-c", command])
        .status()
        .await
        .with_context(|| format!("cannot run the {service} restart `{command}`"))?;
    anyhow::ensure!(
        status.success(),
        "the {service} restart `{command}` failed: {status} (--restart-{} sets it)",
        service.to_lowercase()
    );
    Ok(())
}

/// Every link the engine holds for `pair`.
async fn links_of(database_url: &str, pair: &str) -> anyhow::Result<Vec<LinkPair>> {
    let store = store::connect(database_url).await?;
    let links = store.links_of_pair(&PairId::new(pair)).await?;
    Ok(links
        .into_iter()
        .filter_map(|l| {
            Some(LinkPair {
                entity: l.entity,
                crm_id: l.crm_id?,
                finance_id: l.finance_id?,
            })
        })
        .collect())
}

#[derive(Debug, Default)]
struct EditCounts {
    customer_edits: usize,
    both_sides: usize,
    deals_won: usize,
    invoices_paid: usize,
}

/// Who gets edited when: a share of the paired customers once each, in a random order
/// spread over the edit phase; some of them on both sides in the same instant (a true conflict for
/// the engine), the rest on one side. Deals are won for customers along the way and
/// some invoices paid in finance.
struct EditPlan {
    /// (CRM id, finance id) of each customer pair, in edit order.
    pub(super) order: Vec<(String, String)>,
    /// How many of `order` (from the front) are edited.
    edited: usize,
    /// Share of the edited ones edited on both sides.
    both_sides_share: f64,
    invoices: usize,
    pay_share: f64,
}

impl EditPlan {
    fn new(sims: &Simulators, profile: &Profile) -> Self {
        let finance = sims.xero.customers();
        let crm = sims.hubspot.customers();
        // Pair by e-mail: after the first sync every customer is on both sides.
        let by_email: std::collections::HashMap<_, _> = finance
            .iter()
            .filter_map(|c| Some((c.email.clone()?.to_lowercase(), c.id.clone())))
            .collect();
        let mut order: Vec<_> = crm
            .iter()
            .filter_map(|c| {
                let email = c.email.clone()?.to_lowercase();
                Some((c.id.clone(), by_email.get(&email)?.clone()))
            })
            .collect();
        order.shuffle(&mut rand::thread_rng());
        let edited = (order.len() as f64 * profile.edited_share).round() as usize;
        Self {
            edited: edited.min(order.len()),
            order,
            both_sides_share: profile.both_sides_share / profile.edited_share.max(f64::EPSILON),
            invoices: profile.invoices,
            pay_share: 0.3,
        }
    }

    fn act(&self, sims: &Simulators, step: u64, steps: u64, counts: &mut EditCounts) {
        let slice = |total: usize| {
            let from = (total as u64 * step / steps) as usize;
            let to = (total as u64 * (step + 1) / steps) as usize;
            from..to
        };
        let mut rng = rand::thread_rng();
        for n in slice(self.edited) {
            let (crm_id, finance_id) = &self.order[n];
            let edit = |side: &str| CustomerEdit {
                name: Some(format!("Customer {n} edited in {side}")),
                phone: Some(format!("+44 20 7946 {:04}", rng_phone())),
            };
            let roll: f64 = rng.gen();
            if roll < self.both_sides_share {
                // Both people save in the same instant, in either order.
                if rng.gen_bool(0.5) {
                    sims.hubspot.person_edits_customer(crm_id, &edit("crm"));
                    sims.xero.person_edits_contact(finance_id, &edit("finance"));
                } else {
                    sims.xero.person_edits_contact(finance_id, &edit("finance"));
                    sims.hubspot.person_edits_customer(crm_id, &edit("crm"));
                }
                counts.both_sides += 1;
            } else if roll < self.both_sides_share + (1.0 - self.both_sides_share) / 2.0 {
                sims.hubspot.person_edits_customer(crm_id, &edit("crm"));
            } else {
                sims.xero.person_edits_contact(finance_id, &edit("finance"));
            }
            counts.customer_edits += 1;
        }
        for _ in slice(self.invoices) {
            let Some((crm_id, _)) = self.order.choose(&mut rng) else {
                break;
            };
            let hours = Decimal::from(rng.gen_range(1..20));
            sims.hubspot.person_wins_deal(
                crm_id,
                "Consulting",
                &[("Consulting".to_string(), hours, Decimal::from(150))],
            );
            counts.deals_won += 1;
            // Now and then someone in finance pays an invoice that reached Xero.
            if rng.gen_bool(self.pay_share) {
                let open: Vec<_> = sims
                    .xero
                    .invoices()
                    .into_iter()
                    .filter(|i| !i.archived && i.stamp.is_some())
                    .filter(|i| i.amount_paid.as_deref().is_none_or(|p| p == "0"))
                    .collect();
                if let Some(invoice) = open.choose(&mut rng) {
                    let total = invoice
                        .total
                        .as_deref()
                        .and_then(|t| t.parse::<Decimal>().ok())
                        .unwrap_or_default();
                    if total > Decimal::ZERO
                        && sims.xero.person_pays_invoice(&invoice.id, total).is_ok()
                    {
                        counts.invoices_paid += 1;
                    }
                }
            }
        }
    }
}

fn rng_phone() -> u32 {
    rand::thread_rng().gen_range(0..10_000)
}

impl Profile {
    /// The simulators' misbehaviour during the edit phase.
    pub fn chaos_knobs(&self) -> KnobValues {
        KnobValues {
            error_rate: self.error_rate,
            rate_limit_rate: self.rate_limit_rate,
            webhook_duplicate_rate: 0.10,
            webhook_reorder_rate: 0.10,
            webhook_drop_rate: 0.05,
            ..KnobValues::default()
        }
    }
}
