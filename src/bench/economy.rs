//! API economy: how many writes Tandem makes, counted in the simulators' journals (the
//! `Api` entries are Tandem's writes). Four checks, each a count with pass or fail:
//!
//! 1. one write per effective change (edits of distinct records, both sides);
//! 2. no write for echoes: once those syncs settled, nothing more is written while
//!    the echoes' webhooks and several polls come and go;
//! 3. a webhook delivered three times gives one write: a relay in front of the engine
//!    sends each delivery it gets three times, byte for byte (the engine checks HubSpot
//!    signatures against the relay's URL, as behind any proxy);
//! 4. ten edits of one record within one second (100 ms apart) give at most two writes.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use poem::endpoint::make;
use poem::http::StatusCode;
use poem::listener::TcpAcceptor;
use poem::{post, Request, Route};
use serde::Serialize;
use sim::{Actor, CustomerEdit, JournalEntry, Side};
use tokio_util::sync::CancellationToken;

use super::e2e::SIMULATORS;
use super::engine::{ConnectorLimits, EngineSettings};
use super::rig::{other, RigOptions, SyncRig};
use crate::config::Settings;

/// Edits of the first check.
const CHANGES: usize = 20;
/// Polls every this often, so the echo check also sees polls find Tandem's own writes.
const POLL_SECS: u64 = 2;
/// How long the echo check watches after the syncs settled: several polls.
const ECHO_WATCH: Duration = Duration::from_secs(3 * POLL_SECS + 1);

pub struct EconomyOptions {
    pub customers: usize,
    pub workers: usize,
    pub limits: ConnectorLimits,
}

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub name: &'static str,
    /// What was done, in words.
    pub setup: String,
    /// What was expected, in words.
    pub expected: String,
    /// Tandem's API writes counted.
    pub writes: usize,
    pub passed: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct EconomyReport {
    pub engine: EngineSettings,
    pub simulators: &'static str,
    pub customers: usize,
    pub checks: Vec<Check>,
    pub all_passed: bool,
    /// The first check's echoes on the Xero side (the writes of HubSpot edits there):
    /// how many times Xero was read, per echo, for a record after Tandem wrote it.
    /// Goal 0: the write's answer carries the version the echo names.
    pub xero_reads_per_echo: f64,
}

pub async fn run(settings: &Settings, options: &EconomyOptions) -> anyhow::Result<EconomyReport> {
    let stop_relay = CancellationToken::new();
    let relay = Relay::start(stop_relay.clone()).await?;
    let rig = SyncRig::start(
        settings,
        RigOptions {
            name: "economy",
            customers: options.customers.max(CHANGES + 4),
            workers: options.workers,
            poll_interval_secs: POLL_SECS,
            limits: options.limits,
            webhook_base: Some(relay.base_url.clone()),
        },
    )
    .await;
    let rig = match rig {
        Ok(rig) => rig,
        Err(err) => {
            stop_relay.cancel();
            return Err(err);
        }
    };
    relay.forward_to(&rig.engine.base_url);
    let result = measure(&rig, &relay).await;
    rig.stop().await?;
    stop_relay.cancel();
    result
}

/// Tandem's writes at or after `from`, on `side` record `id` when given.
fn writes_since(journal: &[JournalEntry], from: Instant, on: Option<(Side, &str)>) -> usize {
    journal
        .iter()
        .filter(|e| e.actor == Actor::Api && e.at.is_some_and(|at| at >= from))
        .filter(|e| on.is_none_or(|(side, id)| e.side == side && e.id == id))
        .count()
}

async fn measure(rig: &SyncRig, relay: &Relay) -> anyhow::Result<EconomyReport> {
    println!("{}", rig.engine.settings.line());
    rig.link_all(Duration::from_secs(300)).await?;
    let settle = || rig.settle(Duration::from_secs(1), Duration::from_secs(120));
    let mut checks = Vec::new();
    let id_on = |n: usize, side: Side| -> &str {
        let (crm, finance) = &rig.records[n];
        match side {
            Side::Crm => crm,
            Side::Finance => finance,
        }
    };

    // 1. One write per effective change.
    let started = Instant::now();
    let echo_events_before = outbox_events(rig);
    for n in 0..CHANGES {
        rig.edit_record(
            n,
            &CustomerEdit {
                phone: Some(format!("+1 555 7{n:08}")),
                ..Default::default()
            },
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    settle().await?;
    let journal = rig.sims.journal();
    let arrivals = rig.arrivals(&journal, started, Instant::now());
    let each_once = (0..CHANGES).all(|n| {
        let side = SyncRig::side_of(n);
        writes_since(
            &journal,
            started,
            Some((other(side), id_on(n, other(side)))),
        ) == 1
            && writes_since(&journal, started, Some((side, id_on(n, side)))) == 0
    });
    let writes = writes_since(&journal, started, None);
    let xero_reads_per_echo = reads_after_own_write(
        &journal,
        &rig.sims.xero.calls(),
        started,
        (0..CHANGES)
            .filter(|&n| SyncRig::side_of(n) == Side::Crm)
            .map(|n| id_on(n, Side::Finance)),
    );
    checks.push(Check {
        name: "one_write_per_change",
        setup: format!(
            "{CHANGES} phone edits of distinct linked customers, half in HubSpot, half in Xero"
        ),
        expected: format!("{CHANGES} writes, each change's value written once on the other side and nothing written back"),
        writes,
        passed: writes == CHANGES
            && each_once
            && arrivals.len() == CHANGES
            && arrivals.iter().all(|a| a.written_at.is_some()),
    });

    // 2. No write for echoes.
    let echo_events = outbox_events(rig) - echo_events_before - CHANGES as u64;
    let watched = Instant::now();
    tokio::time::sleep(ECHO_WATCH).await;
    settle().await?;
    let writes = writes_since(&rig.sims.journal(), watched, None);
    checks.push(Check {
        name: "no_write_for_echoes",
        setup: format!(
            "after check 1 settled: {echo_events} webhook events raised by Tandem's own writes, then {} s of polls every {POLL_SECS} s",
            ECHO_WATCH.as_secs()
        ),
        expected: "0 writes".into(),
        writes,
        passed: writes == 0,
    });

    // 3. One webhook delivered three times.
    relay.copies.store(3, Ordering::SeqCst);
    let tripled_before = relay.tripled.load(Ordering::SeqCst);
    let started = Instant::now();
    let (a, b) = (CHANGES, CHANGES + 1);
    for n in [a, b] {
        rig.edit_record(
            n,
            &CustomerEdit {
                phone: Some(format!("+1 555 8{n:08}")),
                ..Default::default()
            },
        );
    }
    settle().await?;
    relay.copies.store(1, Ordering::SeqCst);
    let journal = rig.sims.journal();
    let per_record: Vec<usize> = [a, b]
        .iter()
        .map(|&n| {
            let there = other(SyncRig::side_of(n));
            writes_since(&journal, started, Some((there, id_on(n, there))))
        })
        .collect();
    let writes = writes_since(&journal, started, None);
    let tripled = relay.tripled.load(Ordering::SeqCst) - tripled_before;
    checks.push(Check {
        name: "triple_delivery_one_write",
        setup: format!(
            "one edit in HubSpot and one in Xero; every webhook delivery sent three times by a relay ({tripled} deliveries tripled, {} copies refused)",
            relay.refused.load(Ordering::SeqCst)
        ),
        expected: "1 write per edit (2 in all)".into(),
        writes,
        passed: per_record == [1, 1] && writes == 2,
    });

    // 4. Ten edits of one record within one second.
    let mut bursts = Vec::new();
    for n in [CHANGES + 2, CHANGES + 3] {
        let started = Instant::now();
        let mut last = String::new();
        for k in 0..10 {
            last = format!("+1 555 9{n:04}{k:04}");
            rig.edit_record(
                n,
                &CustomerEdit {
                    phone: Some(last.clone()),
                    ..Default::default()
                },
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        settle().await?;
        let journal = rig.sims.journal();
        let there = other(SyncRig::side_of(n));
        let id = id_on(n, there);
        let writes = writes_since(&journal, started, Some((there, id)));
        let converged = journal
            .iter()
            .rev()
            .find(|e| e.actor == Actor::Api && e.side == there && e.id == id)
            .is_some_and(|e| e.changed.get("phone") == Some(&Some(last.clone())));
        bursts.push((SyncRig::side_of(n), writes, converged));
    }
    let writes = bursts.iter().map(|(_, w, _)| *w).max().unwrap_or(0);
    checks.push(Check {
        name: "ten_edits_in_a_second",
        setup: format!(
            "ten phone edits 100 ms apart of one customer, once in HubSpot ({} writes to Xero{}) and once in Xero ({} writes to HubSpot{})",
            bursts[0].1,
            if bursts[0].2 { ", last value arrived" } else { ", LAST VALUE MISSING" },
            bursts[1].1,
            if bursts[1].2 { ", last value arrived" } else { ", LAST VALUE MISSING" },
        ),
        expected: "at most 2 writes for each, ending on the last value".into(),
        writes,
        passed: bursts.iter().all(|(_, w, converged)| *w <= 2 && *converged),
    });

    Ok(EconomyReport {
        engine: rig.engine.settings.clone(),
        simulators: SIMULATORS,
        customers: rig.records.len(),
        all_passed: checks.iter().all(|c| c.passed),
        checks,
        xero_reads_per_echo,
    })
}

/// Reads of Xero naming each of `records` after Tandem's first write to it since
/// `from`, per record: what the echoes of those writes cost in reads. A Xero webhook
/// names only the resource, so an echo recognised without a read costs none.
fn reads_after_own_write<'a>(
    journal: &[JournalEntry],
    calls: &[sim::xero::SimCall],
    from: Instant,
    records: impl Iterator<Item = &'a str>,
) -> f64 {
    let (mut echoes, mut reads) = (0usize, 0usize);
    for id in records {
        let Some(written) = journal
            .iter()
            .filter(|e| e.actor == Actor::Api && e.side == Side::Finance && e.id == id)
            .filter_map(|e| e.at)
            .find(|at| *at >= from)
        else {
            continue;
        };
        echoes += 1;
        reads += calls
            .iter()
            .filter(|c| c.method == "GET" && c.at >= written)
            .filter(|c| names(c, id))
            .count();
    }
    reads as f64 / echoes.max(1) as f64
}

/// Whether a call names record `id`: in its path, or as a whole word of a decoded
/// query value (`IDs=a,b`, a `where` of `Guid("a")` terms).
fn names(call: &sim::xero::SimCall, id: &str) -> bool {
    let word = |text: &str| {
        text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
            .any(|w| w == id)
    };
    let values = reqwest::Url::parse(&format!("http://xero/?{}", call.query))
        .map(|url| url.query_pairs().any(|(_, value)| word(&value)))
        .unwrap_or(false);
    word(&call.path) || values
}

fn outbox_events(rig: &SyncRig) -> u64 {
    rig.sims.hubspot.outbox().stats().events + rig.sims.xero.outbox().stats().events
}

/// A webhook relay in front of the engine: forwards each delivery as it came (method,
/// path, headers, body), `copies` times in a row, and answers the last answer.
struct Relay {
    base_url: String,
    target: Mutex<Option<String>>,
    copies: AtomicUsize,
    /// Deliveries forwarded more than once.
    tripled: AtomicU64,
    /// Copies the engine answered with anything but 2xx.
    refused: AtomicU64,
    http: reqwest::Client,
}

impl Relay {
    async fn start(stop: CancellationToken) -> anyhow::Result<Arc<Self>> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .context("cannot start the webhook relay")?;
        let base_url = format!("http://{}", listener.local_addr()?);
        let relay = Arc::new(Self {
            base_url,
            target: Mutex::new(None),
            copies: AtomicUsize::new(1),
            tripled: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            http: reqwest::Client::new(),
        });
        let serving = relay.clone();
        let app = Route::new().at(
            "/*path",
            post(make(move |request: Request| {
                let relay = serving.clone();
                async move { relay.forward(request).await }
            })),
        );
        let acceptor = TcpAcceptor::from_tokio(listener)?;
        tokio::spawn(async move {
            let _ = poem::Server::new_with_acceptor(acceptor)
                .run_with_graceful_shutdown(app, async move { stop.cancelled().await }, None)
                .await;
        });
        Ok(relay)
    }

    fn forward_to(&self, base_url: &str) {
        *self.target.lock().unwrap_or_else(|p| p.into_inner()) = Some(base_url.to_string());
    }

    async fn forward(&self, request: Request) -> StatusCode {
        let target = self
            .target
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let Some(target) = target else {
            return StatusCode::SERVICE_UNAVAILABLE;
        };
        let path = request
            .original_uri()
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .unwrap_or_default();
        let headers: Vec<(String, String)> = request
            .headers()
            .iter()
            .filter(|(name, _)| !matches!(name.as_str(), "host" | "content-length"))
            .filter_map(|(name, value)| Some((name.to_string(), value.to_str().ok()?.to_string())))
            .collect();
        let Ok(body) = request.into_body().into_bytes().await else {
            return StatusCode::BAD_REQUEST;
        };
        let copies = self.copies.load(Ordering::SeqCst).max(1);
        if copies > 1 {
            self.tripled.fetch_add(1, Ordering::SeqCst);
        }
        let mut answer = StatusCode::BAD_GATEWAY;
        for _ in 0..copies {
            let mut call = self.http.post(format!("{target}{path}")).body(body.clone());
            for (name, value) in &headers {
                call = call.header(name, value);
            }
            answer = match call.send().await {
                Ok(response) => StatusCode::from_u16(response.status().as_u16())
                    .unwrap_or(StatusCode::BAD_GATEWAY),
                Err(_) => StatusCode::BAD_GATEWAY,
            };
            if !answer.is_success() {
                self.refused.fetch_add(1, Ordering::SeqCst);
            }
        }
        answer
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use sim::xero::SimCall;
    use sim::Action;

    use super::*;

    fn write(id: &str, at: Instant) -> JournalEntry {
        JournalEntry {
            seq: 0,
            side: Side::Finance,
            entity: "customer".into(),
            id: id.into(),
            actor: Actor::Api,
            action: Action::Update,
            changed: BTreeMap::new(),
            version_ms: 0,
            at_ms: 0,
            at: Some(at),
        }
    }

    fn get(path: &str, query: &str, at: Instant) -> SimCall {
        SimCall {
            method: "GET".into(),
            path: path.into(),
            query: query.into(),
            status: 200,
            items: 1,
            at,
            finished: at,
        }
    }

    #[test]
    fn reads_naming_a_record_after_its_write_are_its_echo_reads() {
        let t0 = Instant::now();
        let t = |ms| t0 + Duration::from_millis(ms);
        let journal = [write("a", t(10)), write("b", t(10))];
        let calls = [
            // Before the write: the change's own read, not the echo's.
            get("/api.xro/2.0/Contacts", "IDs=a", t(5)),
            // After: one batched read naming both, one by path, one listing.
            get("/api.xro/2.0/Contacts", "IDs=a%2Cb", t(20)),
            get("/api.xro/2.0/Contacts/b", "", t(30)),
            get(
                "/api.xro/2.0/Contacts",
                "page=1&where=Name%3D%3D%22a%22",
                t(40),
            ),
            get(
                "/api.xro/2.0/Contacts",
                "where=ContactID%3D%3DGuid%28%22b%22%29",
                t(50),
            ),
        ];
        let per_echo = reads_after_own_write(&journal, &calls, t0, ["a", "b"].into_iter());
        assert_eq!(per_echo, 2.5, "a read twice, b three times");
        let none = reads_after_own_write(&journal, &calls[..1], t0, ["a", "b"].into_iter());
        assert_eq!(none, 0.0, "a read before the write is not the echo's");
    }
}
