//! Pairs made through the admin API, run by the engine that is already running: each
//! gets its connectors (wired as a pair from settings is), a prober per side, its
//! pollers, and its place in the orchestrator's [`PairTable`]; pausing or removing it
//! stops its tasks and takes it out again. No restart is involved.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use uuid::Uuid;

use crate::config::PairSettings;
use crate::connectors::health::{Connection, ConnectionState, Connections};
use crate::domain::{PairId, System};
use crate::intake::Poller;
use crate::orchestrator::PairTable;
use crate::store::Store;
use crate::wiring::{wire_pair, Wiring, WiringOptions};

struct Running {
    stop: CancellationToken,
    /// The account behind each side, and its connection.
    sides: Vec<(Uuid, Arc<Connection>)>,
}

pub struct PairHost {
    table: PairTable,
    /// The process's connections, where a running pair's sides are shown and used.
    connections: Arc<Connections>,
    bus: Arc<dyn crate::bus::Bus>,
    store: Arc<dyn Store>,
    poller: Option<Arc<Poller>>,
    tracker: TaskTracker,
    shutdown: CancellationToken,
    options: WiringOptions,
    running: Mutex<HashMap<String, Running>>,
}

impl PairHost {
    pub fn new(
        table: PairTable,
        bus: Arc<dyn crate::bus::Bus>,
        store: Arc<dyn Store>,
        poller: Option<Arc<Poller>>,
        tracker: TaskTracker,
        shutdown: CancellationToken,
        options: WiringOptions,
    ) -> Self {
        Self {
            table,
            connections: Arc::default(),
            bus,
            store,
            poller,
            tracker,
            shutdown,
            options,
            running: Mutex::new(HashMap::new()),
        }
    }

    fn running(&self) -> std::sync::MutexGuard<'_, HashMap<String, Running>> {
        self.running.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts syncing `name` (again): `accounts` are the CRM's and the finance
    /// system's, whose stored credentials the sides use.
    pub async fn start(&self, name: &str, pair: &PairSettings, accounts: (Uuid, Uuid)) -> bool {
        self.stop_tasks(name);
        // Its queues, and this process's consumers on them, before its first change.
        if let Err(err) = self.bus.add_pair(name).await {
            tracing::warn!(pair = name, error = %err, "cannot declare the pair's queues yet");
        }
        let owner = |system: System| {
            let id = match system {
                System::Crm => accounts.0,
                System::Finance => accounts.1,
            };
            crate::store::Account::credential_owner(id).to_string()
        };
        let mut wiring = Wiring::default();
        wire_pair(&mut wiring, name, pair, &owner, &self.store, &self.options);
        let id = PairId::new(name);
        let Some(runtime) = wiring.pairs.remove(&id) else {
            return false;
        };
        let stop = self.shutdown.child_token();
        let sides: Vec<(Uuid, Arc<Connection>)> = wiring
            .connections
            .take_all()
            .into_iter()
            .map(|c| {
                let account = match c.system {
                    System::Crm => accounts.0,
                    System::Finance => accounts.1,
                };
                (account, c)
            })
            .collect();
        for (_, connection) in &sides {
            connection.spawn_probing(&self.tracker, &stop);
        }
        if let Some(poller) = &self.poller {
            if !wiring.poll_targets.is_empty() {
                self.tracker
                    .spawn(poller.clone().run(wiring.poll_targets, stop.clone()));
            }
        }
        self.connections
            .replace_pair(&id, sides.iter().map(|(_, c)| c.clone()).collect());
        self.table.run(id, runtime);
        self.running()
            .insert(name.to_string(), Running { stop, sides });
        tracing::info!(pair = name, "pair started");
        true
    }

    fn stop_tasks(&self, name: &str) {
        if let Some(running) = self.running().remove(name) {
            running.stop.cancel();
        }
    }

    /// Its changes wait (postponed, not failed) until it is started again.
    pub fn pause(&self, name: &str) {
        self.stop_tasks(name);
        self.table
            .pause(PairId::new(name), format!("pair `{name}` is paused"));
    }

    /// It stops for good: its connections go too.
    pub fn remove(&self, name: &str) {
        self.stop_tasks(name);
        let id = PairId::new(name);
        self.connections.remove_pair(&id);
        self.table.remove(&id);
    }

    /// Shows and uses each running pair's sides among the process's `connections`.
    pub fn with_connections(mut self, connections: Arc<Connections>) -> Self {
        self.connections = connections;
        self
    }

    /// The state of each running side of `name`.
    pub fn sides(&self, name: &str) -> Vec<(System, ConnectionState)> {
        self.running()
            .get(name)
            .map(|r| {
                r.sides
                    .iter()
                    .map(|(_, c)| (c.system, c.health.state()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Whether a side using `account` has its credentials refused: the account needs
    /// reconnecting.
    pub fn refused(&self, account: Uuid) -> bool {
        self.running().values().any(|r| {
            r.sides
                .iter()
                .any(|(a, c)| *a == account && c.health.state() == ConnectionState::Unauthorised)
        })
    }

    /// The account has new credentials: its sides are probed at once, so a pair held
    /// by refused credentials resumes without waiting for the next probe.
    pub fn reconnected(&self, account: Uuid) {
        for running in self.running().values() {
            for (a, connection) in &running.sides {
                if *a == account {
                    connection.health.probe_soon();
                }
            }
        }
    }
}
