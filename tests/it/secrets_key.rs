//! The credential key as a person meets it: `tandem serve` refusing to start without
//! the key, or with the wrong one, in words that say what to set; `tandem
//! rotate-secrets` sealing the store under a new key; a malformed key named.

use crate::support;
use tandem::store::CredentialStore;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use chrono::Utc;
use tandem::domain::{PairId, System};
use tandem::seal::{Keyring, SecretsKey, KEY_MISSING};
use tandem::secret::Secret;
use tandem::store::{self, Credential, SeaStore};

const ACCESS: &str = "access-token-0c61f9d2";
const REFRESH: &str = "refresh-token-e4b7a310";

fn tandem(args: &[&str], env: &[(&str, String)]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tandem"));
    for (key, _) in std::env::vars() {
        if key.starts_with("TANDEM_") && !key.starts_with("TANDEM_TEST_") {
            command.env_remove(key);
        }
    }
    command
        .args(args)
        .env(
            "TANDEM_LISTEN",
            format!("127.0.0.1:{}", support::free_port()),
        )
        .env("TANDEM_AMQP_URL", "memory")
        .current_dir(std::env::temp_dir());
    for (key, value) in env {
        command.env(key, value);
    }
    command
}

/// Runs the command to its end (killing it after a minute, which fails the test) and
/// returns its exit code, standard output and standard error.
fn run_to_exit(mut command: Command) -> (i32, String, String) {
    let out = std::env::temp_dir().join(support::unique("tandem_key_out"));
    let err = out.with_extension("err");
    let mut child = command
        .stdout(Stdio::from(std::fs::File::create(&out).expect("out")))
        .stderr(Stdio::from(std::fs::File::create(&err).expect("err")))
        .spawn()
        .expect("start tandem");
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("tandem did not exit within a minute");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let read = |path: &std::path::Path| {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let _ = std::fs::remove_file(path);
        text
    };
    (status.code().unwrap_or(-1), read(&out), read(&err))
}

fn credential() -> Credential {
    Credential {
        access_token: Some(Secret::new(ACCESS)),
        refresh_token: Some(Secret::new(REFRESH)),
        expires_at: Some(Utc::now()),
        rotated_at: None,
    }
}

async fn store_with(url: &str, keyring: Option<Keyring>) -> SeaStore {
    let store = store::connect(url)
        .await
        .expect("connect")
        .with_keyring(keyring);
    store.migrate().await.expect("migrate");
    store
}

fn base64(key: &SecretsKey) -> String {
    key.to_base64().as_str().to_string()
}

/// The settings of pair `acme` whose CRM side uses OAuth.
fn oauth_pair() -> Vec<(&'static str, String)> {
    [
        ("TANDEM_PAIRS__ACME__CRM__KIND", "hubspot"),
        ("TANDEM_PAIRS__ACME__CRM__BASE_URL", "http://127.0.0.1:9"),
        ("TANDEM_PAIRS__ACME__CRM__CLIENT_ID", "client"),
        ("TANDEM_PAIRS__ACME__CRM__CLIENT_SECRET", "client-secret"),
        ("TANDEM_PAIRS__ACME__CRM__REFRESH_TOKEN", "first-refresh"),
        ("TANDEM_PAIRS__ACME__FINANCE__KIND", "xero"),
        (
            "TANDEM_PAIRS__ACME__FINANCE__BASE_URL",
            "http://127.0.0.1:9",
        ),
        ("TANDEM_PAIRS__ACME__FINANCE__TENANT_ID", "tenant"),
        ("TANDEM_PAIRS__ACME__FINANCE__ACCESS_TOKEN", "fixed-token"),
    ]
    .into_iter()
    .map(|(k, v)| (k, v.to_string()))
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_without_the_key_refuses_a_store_holding_sealed_credentials() {
    let db = support::TestDatabase::create().await;
    let key = SecretsKey::generate().expect("key");
    store_with(&db.url, Some(Keyring::new(key, [])))
        .await
        .save_credential(&PairId::new("acme"), System::Crm, &credential())
        .await
        .expect("save");
    let mut env = oauth_pair();
    env.push(("TANDEM_DATABASE_URL", db.url.clone()));
    let (code, _, stderr) = run_to_exit(tandem(&["serve"], &env));
    assert_ne!(code, 0, "{stderr}");
    assert!(stderr.contains(KEY_MISSING), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_with_another_key_names_the_key_id_it_needs_and_no_secret() {
    let db = support::TestDatabase::create().await;
    let key = SecretsKey::generate().expect("key");
    store_with(&db.url, Some(Keyring::new(key.clone(), [])))
        .await
        .save_credential(&PairId::new("acme"), System::Crm, &credential())
        .await
        .expect("save");
    let wrong = SecretsKey::generate().expect("key");
    let mut env = oauth_pair();
    env.push(("TANDEM_DATABASE_URL", db.url.clone()));
    env.push(("TANDEM_SECRETS_KEY", base64(&wrong)));
    let (code, stdout, stderr) = run_to_exit(tandem(&["serve"], &env));
    assert_ne!(code, 0, "{stderr}");
    assert!(
        stderr.contains(&format!("key id `{}`", key.id())),
        "{stderr}"
    );
    assert!(stderr.contains("pair `acme` crm"), "{stderr}");
    for secret in [ACCESS, REFRESH, &base64(&key), &base64(&wrong)] {
        assert!(
            !stderr.contains(secret) && !stdout.contains(secret),
            "{stderr}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_on_postgres_with_an_oauth_pair_and_no_key_names_the_setting() {
    let db = support::TestDatabase::create().await;
    let mut env = oauth_pair();
    env.push(("TANDEM_DATABASE_URL", db.url.clone()));
    let (code, _, stderr) = run_to_exit(tandem(&["serve"], &env));
    assert_ne!(code, 0, "{stderr}");
    assert!(
        stderr.contains("`secrets_key` (TANDEM_SECRETS_KEY)"),
        "{stderr}"
    );
    assert!(stderr.contains("pair `acme` crm uses OAuth"), "{stderr}");
}

#[test]
fn a_malformed_key_names_the_setting_and_the_format() {
    let (code, _, stderr) = run_to_exit(tandem(
        &["config"],
        &[("TANDEM_SECRETS_KEY", "my-password-123".into())],
    ));
    assert_eq!(code, 78, "{stderr}");
    assert!(
        stderr.contains("`secrets_key` (TANDEM_SECRETS_KEY)"),
        "{stderr}"
    );
    assert!(
        stderr.contains("base64") && stderr.contains("hex"),
        "{stderr}"
    );
    assert!(!stderr.contains("my-password-123"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotate_secrets_seals_plain_text_and_old_key_credentials_under_the_new_key() {
    let db = support::TestDatabase::create().await;
    let old = SecretsKey::generate().expect("key");
    let before = store_with(&db.url, Some(Keyring::new(old.clone(), []))).await;
    before
        .save_credential(&PairId::new("acme"), System::Finance, &credential())
        .await
        .expect("save");
    {
        // A row from before encryption.
        use sea_orm::{ActiveValue::Set, EntityTrait};
        entity::credential::Entity::insert(entity::credential::ActiveModel {
            id: Set(uuid::Uuid::now_v7()),
            pair: Set("acme".into()),
            system: Set("crm".into()),
            access_token: Set(Some(ACCESS.into())),
            refresh_token: Set(Some(REFRESH.into())),
            expires_at: Set(None),
            rotated_at: Set(None),
            updated_at: Set(Utc::now()),
        })
        .exec_without_returning(before.connection())
        .await
        .expect("plain row");
    }
    let new = SecretsKey::generate().expect("key");
    let env = [
        ("TANDEM_DATABASE_URL", db.url.clone()),
        ("TANDEM_SECRETS_KEY", base64(&new)),
        ("TANDEM_SECRETS_OLD_KEYS", base64(&old)),
    ];
    let (code, stdout, stderr) = run_to_exit(tandem(&["rotate-secrets"], &env));
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(
        stdout.contains(&format!("key id {}: 2 sealed again now", new.id())),
        "{stdout}"
    );

    let after = store_with(&db.url, Some(Keyring::new(new, []))).await;
    for system in [System::Crm, System::Finance] {
        let read = after
            .credential(&PairId::new("acme"), system)
            .await
            .expect("the new key alone reads it")
            .expect("there");
        assert_eq!(
            read.refresh_token.as_ref().map(Secret::expose),
            Some(REFRESH)
        );
    }
    assert!(before
        .credential(&PairId::new("acme"), System::Finance)
        .await
        .is_err());
}
