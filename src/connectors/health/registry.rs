//! Every connection of a process with its health, and the probes that keep it current:
//! one task per connection probes when due (soon after start, unless a first call
//! showed it working; again when it has not been seen working for a while; in both
//! cases not while calls are under way to say so; soon and then less often while it
//! is down; and at once when a call was refused its credentials or a first call
//! failed).

use std::sync::{Arc, RwLock};

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::hint::{advise, Advice, AuthForm, SystemKind};
use super::tracker::{ConnectionState, ProbeReport, Snapshot};
use super::ConnectionHealth;
use crate::connectors::Connector;
use crate::domain::{PairId, System};

/// How often a probe that is due waits for the calls under way to answer instead.
const UNDER_WAY_RECHECK: std::time::Duration = std::time::Duration::from_secs(5);

/// One side of a pair: its connector and what is known of its health.
pub struct Connection {
    pub pair: PairId,
    pub system: System,
    pub kind: SystemKind,
    pub base_url: String,
    pub auth: AuthForm,
    pub connector: Arc<dyn Connector>,
    pub health: Arc<ConnectionHealth>,
}

impl Connection {
    /// Where its settings are: `pairs.acme.finance`.
    pub fn settings_key(&self) -> String {
        format!("pairs.{}.{}", self.pair, self.system)
    }

    /// What a person should do, while it is out of service.
    pub fn advice(&self, snapshot: &Snapshot) -> Option<Advice> {
        if !snapshot.state.out_of_service() {
            return None;
        }
        if let (Some(fault), Some(probe)) = (&snapshot.fault, &snapshot.last_probe) {
            return Some(advise(
                self.kind,
                self.auth,
                &self.base_url,
                &probe.report.target,
                fault,
            ));
        }
        // Down by its calls, before a probe said more.
        let error = snapshot
            .last_error
            .as_ref()
            .map_or("its calls fail".to_string(), |(_, e)| e.clone());
        Some(Advice {
            setting: None,
            problem: error,
            hint: format!(
                "{} is unavailable; calls wait and it is probed until it answers",
                self.kind.name()
            ),
        })
    }

    /// Probes once and records what it found.
    pub async fn probe(&self) -> ProbeReport {
        let report = self.connector.probe().await;
        tracing::debug!(
            pair = %self.pair,
            system = %self.system,
            target = %report.target,
            failure = report.failure.as_ref().map(|f| f.error.as_str()),
            "probed"
        );
        let state = report
            .failure
            .as_ref()
            .map_or(ConnectionState::Healthy, |f| f.state);
        crate::metrics::connection_probe(self.pair.as_str(), self.system.as_str(), state.as_str());
        self.health.record_probe(report.clone());
        report
    }

    /// Probes it, each time when due, until `shutdown` (a connection added while the
    /// process runs).
    pub fn spawn_probing(self: &Arc<Self>, tracker: &TaskTracker, shutdown: &CancellationToken) {
        tracker.spawn(self.clone().keep_probing(shutdown.clone()));
    }

    async fn keep_probing(self: Arc<Self>, shutdown: CancellationToken) {
        self.health.expect_probes();
        loop {
            let due = self.health.probe_due();
            let busy = !self.health.probe_urgent() && self.health.calls_under_way() > 0;
            if Instant::now() >= due && busy {
                // Their answers will tell; look again in a while.
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(UNDER_WAY_RECHECK) => {}
                    _ = self.health.woken() => {}
                }
                continue;
            }
            if Instant::now() >= due {
                let before = self.health.state();
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    report = self.probe() => {
                        let after = self.health.state();
                        if before != after {
                            tracing::warn!(
                                pair = %self.pair,
                                system = %self.system,
                                state = %after,
                                error = report.failure.as_ref().map(|f| f.error.as_str()),
                                "connection state changed"
                            );
                        }
                    }
                }
                continue;
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep_until(due) => {}
                _ = self.health.woken() => {}
            }
        }
    }
}

/// The connections of a process: those of the settings file, built at start, and
/// those of the pairs made through the admin API, added and taken out while it runs.
/// Everything that shows or uses a connection (the admin API, `/ready`, resync and
/// replay, the orchestrator's retry counts) reads them here, so both kinds of pair
/// are seen the same way.
#[derive(Default)]
pub struct Connections {
    list: RwLock<Vec<Arc<Connection>>>,
}

impl Connections {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Vec<Arc<Connection>>> {
        self.list.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Vec<Arc<Connection>>> {
        self.list.write().unwrap_or_else(|p| p.into_inner())
    }

    pub fn add(&self, connection: Connection) {
        self.write().push(Arc::new(connection));
    }

    /// Takes every connection out (to run them elsewhere).
    pub fn take_all(&self) -> Vec<Arc<Connection>> {
        std::mem::take(&mut *self.write())
    }

    /// A pair's connections, in place of those it had.
    pub fn replace_pair(&self, pair: &PairId, connections: Vec<Arc<Connection>>) {
        let mut list = self.write();
        list.retain(|c| &c.pair != pair);
        list.extend(connections);
    }

    /// A removed pair's connections go.
    pub fn remove_pair(&self, pair: &PairId) {
        self.write().retain(|c| &c.pair != pair);
    }

    /// Every connection, now.
    pub fn all(&self) -> Vec<Arc<Connection>> {
        self.read().clone()
    }

    pub fn find(&self, pair: &PairId, system: System) -> Option<Arc<Connection>> {
        self.read()
            .iter()
            .find(|c| &c.pair == pair && c.system == system)
            .cloned()
    }

    /// Whether a pair has a connection here.
    pub fn has_pair(&self, pair: &PairId) -> bool {
        self.read().iter().any(|c| &c.pair == pair)
    }

    pub fn is_empty(&self) -> bool {
        self.read().is_empty()
    }

    /// Probes every connection, each when due, until `shutdown`.
    pub fn spawn_probes(&self, tracker: &TaskTracker, shutdown: &CancellationToken) {
        for connection in self.all() {
            tracker.spawn(connection.keep_probing(shutdown.clone()));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::connectors::health::{ProbeFailure, ProbeStep};
    use crate::connectors::memory::InMemorySystem;

    fn connection(system: &Arc<InMemorySystem>) -> Connection {
        Connection {
            pair: PairId::new("acme"),
            system: System::Finance,
            kind: SystemKind::InMemory,
            base_url: "memory://finance".into(),
            auth: AuthForm::None,
            connector: system.clone(),
            health: ConnectionHealth::new(),
        }
    }

    fn failure(state: ConnectionState) -> ProbeFailure {
        ProbeFailure {
            state,
            step: ProbeStep::Call,
            status: Some(503),
            error: "HTTP 503 from GET /".into(),
        }
    }

    #[tokio::test]
    async fn a_probe_that_fails_on_demand_sets_the_state_and_what_to_do() {
        let system = Arc::new(InMemorySystem::new(System::Finance));
        let connection = connection(&system);
        connection.probe().await;
        assert_eq!(connection.health.state(), ConnectionState::Healthy);
        system.set_probe_failure(Some(failure(ConnectionState::Down)));
        connection.probe().await;
        let snapshot = connection.health.snapshot();
        assert_eq!(snapshot.state, ConnectionState::Down);
        let advice = connection.advice(&snapshot).expect("advice while down");
        assert_eq!(advice.setting, None);
        assert!(advice.problem.contains("answered 503"), "{advice:?}");
        system.set_probe_failure(None);
        connection.probe().await;
        assert_eq!(connection.health.state(), ConnectionState::Healthy);
        assert_eq!(connection.advice(&connection.health.snapshot()), None);
    }

    #[tokio::test(start_paused = true)]
    async fn the_prober_finds_a_down_connection_back_within_its_longest_wait() {
        let system = Arc::new(InMemorySystem::new(System::Finance));
        system.set_probe_failure(Some(failure(ConnectionState::Down)));
        let connections = Connections::default();
        connections.add(connection(&system));
        let tracker = TaskTracker::new();
        let stop = CancellationToken::new();
        connections.spawn_probes(&tracker, &stop);
        let health = connections.all()[0].health.clone();
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert_eq!(health.state(), ConnectionState::Down);
        let probes_while_down = system.probes();
        assert!(
            (6..=12).contains(&probes_while_down),
            "1 s, 2 s, 4 s, 8 s, then every 10 s: {probes_while_down} in a minute"
        );
        system.set_probe_failure(None);
        tokio::time::sleep(super::super::tracker::DOWN_PROBE_AT_MOST).await;
        assert_eq!(health.state(), ConnectionState::Healthy);
        stop.cancel();
        tracker.close();
        tracker.wait().await;
    }
}
