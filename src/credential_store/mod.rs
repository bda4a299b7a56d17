//! The store with the engine's credential keys: opened at start, where every
//! credential is sealed under the current key before any work begins, and by
//! `tandem rotate-secrets`, which does the same pass on demand and reports it.

mod keys;

use std::sync::Arc;

use anyhow::Context as _;

use crate::cause::innermost_cause;
use crate::config::redact_url;
use crate::config::Settings;
use crate::seal::Keyring;
use crate::store::{self, ResealReport, SeaStore};

pub use keys::{key_file_beside, keyring_for, oauth_needs_key};

/// The store `tandem serve` works with. Credentials kept in plain text (from before
/// encryption) or under an older key are sealed under the current key now. It refuses
/// to start when the store holds sealed credentials and no key is set, when a pair
/// uses OAuth on PostgreSQL without a key, and when a credential of a pair it syncs
/// cannot be opened with the keys set; a credential of a pair no longer in the
/// settings that cannot be opened is only warned about.
pub async fn open_engine_store(settings: &Settings) -> anyhow::Result<Arc<SeaStore>> {
    let keyring = keyring_for(settings)?;
    let key_id = keyring.as_ref().map(|k| k.current_id().clone());
    let store = connect_and_migrate(settings).await?.with_keyring(keyring);
    let report = store
        .reseal_credentials()
        .await
        .context("cannot read the credentials in the store")?;
    let Some(key_id) = key_id else {
        oauth_needs_key(settings)?;
        if report.plain_text > 0 {
            tracing::warn!(
                credentials = report.plain_text,
                "the store keeps credentials in plain text from before encryption; set \
                 TANDEM_SECRETS_KEY to encrypt them"
            );
        }
        return Ok(Arc::new(store));
    };
    for unreadable in &report.unreadable {
        let synced = settings
            .pairs
            .get(unreadable.pair.as_str())
            .is_some_and(|pair| pair.enabled);
        anyhow::ensure!(!synced, "{}", unreadable.error);
        tracing::warn!(
            pair = %unreadable.pair,
            system = %unreadable.system,
            error = %unreadable.error,
            "a credential of a pair not in the settings cannot be read; it is left as it is"
        );
    }
    if report.resealed > 0 {
        tracing::info!(
            %key_id,
            resealed = report.resealed,
            "credentials sealed again under the current key"
        );
    }
    Ok(Arc::new(store))
}

/// `tandem rotate-secrets`: seals every stored credential under `secrets_key` and prints
/// what it did. `false` when some credential could not be read, so the keys that would
/// read it must not be retired yet.
pub async fn rotate_secrets(settings: &Settings) -> anyhow::Result<bool> {
    let keyring: Keyring = keyring_for(settings)?.context(
        "nothing to seal with: set TANDEM_SECRETS_KEY (or TANDEM_SECRETS_KEY_FILE) to the new \
         key, and TANDEM_SECRETS_OLD_KEYS to the keys it replaces",
    )?;
    let store = connect_and_migrate(settings)
        .await?
        .with_keyring(Some(keyring.clone()));
    let report = store
        .reseal_credentials()
        .await
        .context("cannot read the credentials in the store")?;
    print!("{}", describe(&keyring, &report));
    Ok(report.unreadable.is_empty())
}

fn describe(keyring: &Keyring, report: &ResealReport) -> String {
    let mut out = format!(
        "credentials under key id {}: {} sealed again now, {} already under it\n",
        keyring.current_id(),
        report.resealed,
        report.current
    );
    if report.changed_meanwhile > 0 {
        out.push_str(&format!(
            "{} rewritten by a running process during the pass: run this again once every \
             process runs with the new key\n",
            report.changed_meanwhile
        ));
    }
    for unreadable in &report.unreadable {
        out.push_str(&format!("cannot read: {}\n", unreadable.error));
    }
    if report.unreadable.is_empty() && report.changed_meanwhile == 0 {
        out.push_str("no stored credential needs the keys in secrets_old_keys any more\n");
    }
    out
}

/// Connects the store the settings name and applies pending migrations.
pub async fn open_store(settings: &Settings) -> anyhow::Result<Arc<SeaStore>> {
    Ok(Arc::new(connect_and_migrate(settings).await?))
}

pub(crate) async fn connect_and_migrate(settings: &Settings) -> anyhow::Result<SeaStore> {
    let url = redact_url(&settings.database_url);
    // The innermost cause ("Connection refused", "password authentication failed") is
    // what a person can act on; the layers above it repeat it in other words.
    let store = store::connect_for_workers(&settings.database_url, settings.orchestrator.workers)
        .await
        .map_err(|err| {
            anyhow::anyhow!(
                "cannot open the database at {url} (TANDEM_DATABASE_URL): {}",
                innermost_cause(&err)
            )
        })?;
    store
        .migrate()
        .await
        .with_context(|| format!("cannot apply migrations to {url}"))?;
    Ok(store)
}
