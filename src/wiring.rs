//! From settings to running parts: each pair's connectors, the orchestrator's pairs,
//! and the poller's cursors.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crate::config::{ConnectionSettings, ConnectorKind, Settings};
use crate::connectors::Connector;
use crate::domain::{EntityType, PairId, System};
use crate::intake::PollTarget;
use crate::orchestrator::PairRuntime;

/// The parts of a process that depend on connectors.
#[derive(Default)]
pub struct Wiring {
    pub connectors: HashMap<(PairId, System), Arc<dyn Connector>>,
    /// Pairs with both connectors, as the orchestrator runs them.
    pub pairs: HashMap<PairId, PairRuntime>,
    pub poll_targets: Vec<PollTarget>,
}

/// The connector for one side of a pair, when this build carries it.
fn connector(
    pair: &str,
    system: System,
    settings: &ConnectionSettings,
) -> Option<Arc<dyn Connector>> {
    match settings.kind {
        ConnectorKind::Hubspot | ConnectorKind::Xero => {
            tracing::warn!(
                pair,
                %system,
                kind = settings.kind.as_str(),
                "this build has no {} connector yet: the pair's webhooks are taken and queued, not synced",
                settings.kind.as_str()
            );
            None
        }
    }
}

pub fn from_settings(settings: &Settings) -> Wiring {
    let mut wiring = Wiring::default();
    for (name, pair) in settings.pairs.iter().filter(|(_, p)| p.enabled) {
        let id = PairId::new(name.clone());
        let crm = pair
            .crm
            .as_ref()
            .and_then(|c| connector(name, System::Crm, c));
        let finance = pair
            .finance
            .as_ref()
            .and_then(|c| connector(name, System::Finance, c));
        for (system, connector) in [(System::Crm, &crm), (System::Finance, &finance)] {
            let Some(connector) = connector else { continue };
            wiring
                .connectors
                .insert((id.clone(), system), connector.clone());
            if pair.poll_interval_secs > 0 {
                for entity in EntityType::ALL {
                    wiring.poll_targets.push(PollTarget {
                        pair: id.clone(),
                        system,
                        entity,
                        connector: connector.clone(),
                        interval: Duration::from_secs(pair.poll_interval_secs),
                        overlap: Duration::from_secs(pair.poll_overlap_secs),
                    });
                }
            }
        }
        if let (Some(crm), Some(finance)) = (crm, finance) {
            let policies = EntityType::ALL
                .into_iter()
                .map(|e| (e, pair.policy(e)))
                .collect();
            wiring.pairs.insert(
                id,
                PairRuntime {
                    crm,
                    finance,
                    policies,
                },
            );
        }
    }
    wiring
}
