//! Where the engine's keyring comes from: the settings, or on the embedded default a
//! key file beside the SQLite database.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;

use crate::config::{Settings, SettingsError};
use crate::seal::{Keyring, SecretsKey};

/// The keyring the engine seals credentials with, from the settings:
///
/// - `secrets_key` (with `secrets_old_keys` readable) when it is set;
/// - on a SQLite file without it, the key in a file beside the database, made on first
///   start (0600, with a log line saying where). The embedded default is one process on
///   one machine and must run with no setup; a key kept apart from the database still
///   means a copy of the database file alone (a backup, a file attached to a support
///   request) holds no usable token. Whoever can read both files can read the tokens,
///   as with any key on the same disk; production sets `secrets_key`;
/// - on an in-memory SQLite database, a fresh key for this process, which dies with
///   the data;
/// - on PostgreSQL without it, none (see [`oauth_needs_key`]).
pub fn keyring_for(settings: &Settings) -> anyhow::Result<Option<Keyring>> {
    let mut older = settings
        .secrets_old_keys
        .iter()
        .map(|key| SecretsKey::parse(key.expose()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| SettingsError::new("secrets_old_keys", err.to_string()))?;
    let key_file = key_file_beside(&settings.database_url);
    if let Some(key) = &settings.secrets_key {
        let current = SecretsKey::parse(key.expose())
            .map_err(|err| SettingsError::new("secrets_key", err.to_string()))?;
        // A store that began on the embedded default stays readable when a key is set
        // later; its credentials are then sealed again under the key set.
        if let Some(path) = key_file.filter(|path| path.is_file()) {
            older.push(read_key_file(&path)?);
        }
        return Ok(Some(Keyring::new(current, older)));
    }
    if let Some(path) = key_file {
        return Ok(Some(Keyring::new(read_or_create_key_file(&path)?, older)));
    }
    if settings.database_url.starts_with("sqlite") {
        return Ok(Some(Keyring::new(SecretsKey::generate()?, older)));
    }
    Ok(None)
}

/// On a store without a key (PostgreSQL without `secrets_key`), an error naming the
/// setting when a pair uses OAuth: its tokens would have to be stored, and they are
/// only stored sealed. Processes sharing one database must share one key, so none can
/// be made up here.
pub fn oauth_needs_key(settings: &Settings) -> Result<(), SettingsError> {
    let oauth = settings.pairs.iter().find_map(|(name, pair)| {
        [("crm", &pair.crm), ("finance", &pair.finance)]
            .into_iter()
            .find(|(_, c)| c.as_ref().is_some_and(|c| c.uses_oauth()))
            .map(|(side, _)| (name, side))
            .filter(|_| pair.enabled)
    });
    match oauth {
        Some((pair, side)) => Err(SettingsError::new(
            "secrets_key",
            format!(
                "pair `{pair}` {side} uses OAuth, and its tokens are kept encrypted in \
                 PostgreSQL: set TANDEM_SECRETS_KEY (or TANDEM_SECRETS_KEY_FILE), the same on \
                 every process, to {}",
                crate::seal::KEY_FORMAT
            ),
        )),
        None => Ok(()),
    }
}

/// The key file of a SQLite database file (`tandem.db` → `tandem.db.secrets-key`);
/// `None` for PostgreSQL and in-memory databases.
pub fn key_file_beside(database_url: &str) -> Option<PathBuf> {
    let rest = database_url.strip_prefix("sqlite:")?;
    let rest = rest.strip_prefix("//").unwrap_or(rest);
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    if path.is_empty() || path.contains(":memory:") || query.contains("mode=memory") {
        return None;
    }
    let mut file = PathBuf::from(path).into_os_string();
    file.push(".secrets-key");
    Some(PathBuf::from(file))
}

fn read_key_file(path: &Path) -> anyhow::Result<SecretsKey> {
    let text = zeroize::Zeroizing::new(
        std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the key file `{}`", path.display()))?,
    );
    SecretsKey::parse(&text)
        .with_context(|| format!("the key file `{}` holds no key", path.display()))
}

fn read_or_create_key_file(path: &Path) -> anyhow::Result<SecretsKey> {
    let key = SecretsKey::generate()?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(mut file) => {
            file.write_all(format!("{}\n", key.to_base64().as_str()).as_bytes())
                .and_then(|()| file.sync_all())
                .with_context(|| format!("cannot write the key file `{}`", path.display()))?;
            tracing::warn!(
                path = %path.display(),
                key_id = %key.id(),
                "made a key for the credentials in the store; keep the file with the database \
                 (without it the stored tokens cannot be read) or set TANDEM_SECRETS_KEY"
            );
            Ok(key)
        }
        Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => read_key_file(path),
        Err(err) => {
            Err(err).with_context(|| format!("cannot create the key file `{}`", path.display()))
        }
    }
}

#[cfg(test)]
mod tests {
    use figment::providers::{Format, Toml};
    use figment::Figment;

    use super::*;

    fn settings(toml: &str) -> Settings {
        crate::config::load_from(None, Figment::from(Toml::string(toml))).expect("valid")
    }

    const OAUTH_PAIR: &str = r#"
[pairs.acme.crm]
kind = "hubspot"
base_url = "https://api.hubapi.com"
client_id = "id"
client_secret = "secret"
refresh_token = "refresh"

[pairs.acme.finance]
kind = "xero"
base_url = "https://api.xero.com"
tenant_id = "tenant-1"
access_token = "fixed"
"#;

    #[test]
    fn postgres_with_an_oauth_pair_and_no_key_names_the_setting() {
        let settings = settings(&format!(
            "database_url = \"postgres://db.example/tandem\"\n{OAUTH_PAIR}"
        ));
        assert!(keyring_for(&settings).expect("no keyring").is_none());
        let err = oauth_needs_key(&settings).expect_err("no key").to_string();
        assert!(err.contains("`secrets_key` (TANDEM_SECRETS_KEY)"), "{err}");
        assert!(err.contains("pair `acme` crm uses OAuth"), "{err}");
        assert!(err.contains("TANDEM_SECRETS_KEY_FILE"), "{err}");
    }

    #[test]
    fn postgres_without_oauth_needs_no_key_and_gets_none() {
        let settings = settings("database_url = \"postgres://db.example/tandem\"");
        assert!(keyring_for(&settings).expect("fine").is_none());
        oauth_needs_key(&settings).expect("no OAuth, no key needed");
    }

    #[test]
    fn a_sqlite_file_gets_a_private_key_file_made_once() {
        let db = std::env::temp_dir().join(format!("tandem-keyfile-{}.db", uuid::Uuid::new_v4()));
        let settings = settings(&format!(
            "database_url = \"sqlite://{}?mode=rwc\"",
            db.display()
        ));
        let first = keyring_for(&settings).expect("made").expect("a keyring");
        let path = key_file_beside(&settings.database_url).expect("beside");
        let again = keyring_for(&settings).expect("read").expect("a keyring");
        assert_eq!(first.current_id(), again.current_id(), "the file is reused");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).expect("file").permissions().mode();
            assert_eq!(
                mode & 0o077,
                0,
                "the key file is readable by others: {mode:o}"
            );
        }

        // Setting a key later keeps the file's key readable, as an older key.
        let key = SecretsKey::generate().expect("key");
        let mut with_key = settings.clone();
        with_key.secrets_key = Some(crate::secret::Secret::new(key.to_base64().as_str()));
        let ring = keyring_for(&with_key).expect("ring").expect("a keyring");
        assert_eq!(ring.current_id(), key.id());
        assert!(ring.ids().contains(first.current_id()));
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn an_unreadable_key_file_is_named() {
        let db = std::env::temp_dir().join(format!("tandem-badkey-{}.db", uuid::Uuid::new_v4()));
        let settings = settings(&format!("database_url = \"sqlite://{}\"", db.display()));
        let path = key_file_beside(&settings.database_url).expect("beside");
        std::fs::write(&path, "not a key\n").expect("write");
        let err = format!("{:#}", keyring_for(&settings).expect_err("bad file"));
        let _ = std::fs::remove_file(&path);
        assert!(err.contains(&path.display().to_string()), "{err}");
        assert!(!err.contains("not a key\n"), "{err}");
    }

    #[test]
    fn the_key_file_sits_beside_a_sqlite_file_only() {
        assert_eq!(
            key_file_beside("sqlite://tandem.db?mode=rwc"),
            Some("tandem.db.secrets-key".into())
        );
        assert_eq!(
            key_file_beside("sqlite:///var/lib/tandem/t.db"),
            Some("/var/lib/tandem/t.db.secrets-key".into())
        );
        assert_eq!(key_file_beside("sqlite::memory:"), None);
        assert_eq!(key_file_beside("postgres://localhost/tandem"), None);
    }
}
