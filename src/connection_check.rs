//! `tandem config --check`: settings that parse are not settings that work. This opens
//! the database (it holds the rotated OAuth tokens), builds each pair's connectors and
//! makes each one's probe call, then names the setting at fault with what to do, e.g.
//! `pairs.acme.finance.base_url: Xero answered 404 at https://api.xero.com/Organisation:
//! the base URL should end in /api.xro/2.0`.

use std::sync::Arc;

use futures::future::join_all;

use crate::config::Settings;
use crate::connectors::health::Connection;
use crate::domain::System;
use crate::store::Store;

/// What the check found, worst first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verdict {
    /// A setting is wrong (or missing): fix it before starting.
    SettingsAtFault,
    /// Something the settings name does not answer now (an outage, the database).
    Unavailable,
    Passed,
}

/// Runs the check, printing one line per connection; the worst verdict.
pub async fn run(settings: &Settings) -> Verdict {
    let store: Arc<dyn Store> = match crate::credential_store::open_engine_store(settings).await {
        Ok(store) => store,
        Err(err) => {
            println!("database_url: {err:#}");
            return Verdict::Unavailable;
        }
    };
    let wiring = crate::wiring::from_settings(settings, store);
    let mut verdict = Verdict::Passed;
    for (name, pair) in settings.pairs.iter().filter(|(_, p)| p.enabled) {
        for (system, side) in [(System::Crm, &pair.crm), (System::Finance, &pair.finance)] {
            let built = wiring
                .connections
                .all()
                .iter()
                .any(|c| c.pair.as_str() == name.as_str() && c.system == system);
            if side.is_some() && !built {
                println!(
                    "pairs.{name}.{system}: no credentials (access_token, or client_id + \
                     client_secret + refresh_token): it takes webhooks but cannot sync"
                );
                verdict = verdict.min(Verdict::SettingsAtFault);
            }
        }
    }
    let probed = join_all(wiring.connections.all().iter().map(|c| check(c))).await;
    let checked = probed.len();
    let failed = probed.iter().filter(|v| **v != Verdict::Passed).count();
    verdict = probed.into_iter().fold(verdict, Verdict::min);
    println!("{checked} connections checked, {failed} failed");
    verdict
}

async fn check(connection: &Connection) -> Verdict {
    let report = connection.probe().await;
    let key = connection.settings_key();
    let Some(failure) = &report.failure else {
        println!(
            "{key}: ok ({} answered at {})",
            connection.kind.name(),
            report.target
        );
        return Verdict::Passed;
    };
    let advice = crate::connectors::health::advise(
        connection.kind,
        connection.auth,
        &connection.base_url,
        &report.target,
        failure,
    );
    println!("{}", advice.line(&key));
    if advice.setting.is_some() {
        Verdict::SettingsAtFault
    } else {
        Verdict::Unavailable
    }
}
