use std::io::Write;

use figment::providers::Serialized;
use figment::Figment;

use super::*;

fn with(pairs: &[(&str, serde_json::Value)]) -> Figment {
    pairs.iter().fold(Figment::new(), |figment, (key, value)| {
        figment.merge(Serialized::default(key, value.clone()))
    })
}

fn toml_file(contents: &str) -> tempfile_like::TempToml {
    tempfile_like::TempToml::new(contents)
}

/// A TOML file in the system temp directory, removed on drop.
mod tempfile_like {
    use std::path::PathBuf;

    pub struct TempToml(pub PathBuf);

    impl TempToml {
        pub fn new(contents: &str) -> Self {
            let path = std::env::temp_dir().join(format!("tandem-{}.toml", uuid::Uuid::new_v4()));
            std::fs::write(&path, contents).expect("write temp settings");
            Self(path)
        }
    }

    impl Drop for TempToml {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }
}

mod webhooks;

const PAIR: &str = r#"
[webhooks]
public_base_url = "https://sync.example.com"

[pairs.acme.crm]
kind = "hubspot"
base_url = "https://api.hubapi.com"
access_token = "pat-na1-secret"
webhook_secrets = ["client-secret"]
portal_id = 62515

[pairs.acme.finance]
kind = "xero"
base_url = "https://api.xero.com"
tenant_id = "tenant-1"
webhook_secrets = ["xero-key"]
"#;

#[test]
fn defaults_are_the_embedded_setup() {
    let settings = load_from(None, Figment::new()).expect("defaults are valid");
    assert!(settings.database_url.starts_with("sqlite:"));
    assert_eq!(settings.amqp_url, "memory");
    assert_eq!(settings.listen, "127.0.0.1:8080");
    assert!(settings.pairs.is_empty());
}

#[test]
fn file_then_overrides() {
    let file = toml_file(&format!(
        "listen = \"127.0.0.1:9000\"\n[bus]\nprefetch = 10\n{PAIR}"
    ));
    let settings = load_from(
        Some(&file.0),
        with(&[("bus", serde_json::json!({"prefetch": 20}))]),
    )
    .expect("valid");
    assert_eq!(
        settings.listen, "127.0.0.1:9000",
        "the file sets what it names"
    );
    assert_eq!(settings.bus.prefetch, 20, "overrides win over the file");
    assert_eq!(
        settings.bus.prefix, "tandem",
        "defaults fill what neither names"
    );
    let pair = &settings.pairs["acme"];
    assert_eq!(pair.poll_interval_secs, 60);
    assert_eq!(
        pair.finance
            .as_ref()
            .and_then(|f| f.tenant_id.clone())
            .as_deref(),
        Some("tenant-1")
    );
}

#[test]
fn secrets_can_come_from_files() {
    let mut secret = std::env::temp_dir();
    secret.push(format!("tandem-secret-{}", uuid::Uuid::new_v4()));
    let mut f = std::fs::File::create(&secret).expect("create secret file");
    writeln!(f, "0123456789abcdef0123").expect("write secret");
    let settings = load_from(
        None,
        with(&[(
            "admin_token_file",
            serde_json::json!(secret.to_string_lossy()),
        )]),
    )
    .expect("valid");
    let _ = std::fs::remove_file(&secret);
    let token = settings.admin_token.expect("token read from the file");
    assert_eq!(
        token.expose(),
        "0123456789abcdef0123",
        "trailing newline trimmed"
    );
    assert_eq!(format!("{token:?}"), "***");
}

#[test]
fn a_missing_secret_file_names_the_key() {
    let err = load_from(
        None,
        with(&[("admin_token_file", serde_json::json!("/nonexistent/x"))]),
    )
    .expect_err("must fail");
    assert_eq!(err.key, "admin_token_file");
    assert!(err.problem.contains("/nonexistent/x"), "{err}");
}

#[test]
fn bad_database_url_names_the_key_and_its_variable() {
    let err = load_from(
        None,
        with(&[("database_url", serde_json::json!("mysql//nope"))]),
    )
    .expect_err("must fail");
    assert_eq!(err.key, "database_url");
    assert!(err.to_string().contains("TANDEM_DATABASE_URL"), "{err}");
}

#[test]
fn pair_without_finance_is_refused() {
    let file =
        toml_file("[pairs.acme.crm]\nkind = \"hubspot\"\nbase_url = \"https://api.hubapi.com\"\n");
    let err = load_from(Some(&file.0), Figment::new()).expect_err("must fail");
    assert_eq!(err.key, "pairs.acme.finance");
    assert_eq!(err.env_var(), "TANDEM_PAIRS__ACME__FINANCE");
}

#[test]
fn unknown_keys_are_refused_not_ignored() {
    let file = toml_file("databse_url = \"sqlite::memory:\"\n");
    let err = load_from(Some(&file.0), Figment::new()).expect_err("a typo must not pass");
    assert!(err.problem.contains("databse_url"), "{err}");
}

#[test]
fn wrong_type_names_the_nested_key() {
    let err = load_from(
        None,
        with(&[("bus", serde_json::json!({"prefetch": "lots"}))]),
    )
    .expect_err("must fail");
    assert_eq!(err.key, "bus.prefetch");
}

#[test]
fn open_listen_address_needs_an_admin_token() {
    let err = load_from(None, with(&[("listen", serde_json::json!("0.0.0.0:8080"))]))
        .expect_err("must fail");
    assert_eq!(err.key, "admin_token");
    let ok = load_from(
        None,
        with(&[
            ("listen", serde_json::json!("0.0.0.0:8080")),
            ("admin_token", serde_json::json!("0123456789abcdef")),
        ]),
    );
    assert!(ok.is_ok());
}

#[test]
fn secrets_never_appear_in_debug_output() {
    let file = toml_file(PAIR);
    let settings = load_from(Some(&file.0), Figment::new()).expect("valid");
    let printed = format!("{settings:?}");
    for secret in ["pat-na1-secret", "client-secret", "xero-key"] {
        assert!(
            !printed.contains(secret),
            "`{secret}` leaked into {printed}"
        );
    }
}

#[test]
fn pair_policies_and_field_directions_come_from_settings() {
    let file = toml_file(&format!(
        "{PAIR}\n[pairs.acme]\nconflict_policy = \"manual\"\ndeletes = \"approve\"\n\n[pairs.acme.fields.customer]\nphone = \"crm_to_finance\"\n"
    ));
    let settings = load_from(Some(&file.0), Figment::new()).expect("valid");
    let policy = settings.pairs["acme"].policy(crate::domain::EntityType::Customer);
    assert_eq!(policy.conflicts, crate::domain::ConflictPolicy::Manual);
    assert_eq!(policy.deletes, crate::domain::DeletePolicy::Approve);
    assert_eq!(policy.source_of_truth, crate::domain::System::Finance);
    assert_eq!(
        policy.mapping.flow("phone"),
        crate::domain::Flow::CrmToFinance
    );
    assert_eq!(policy.mapping.flow("email"), crate::domain::Flow::Both);
    let invoices = settings.pairs["acme"].policy(crate::domain::EntityType::Invoice);
    assert_eq!(
        invoices.mapping.flow("status"),
        crate::domain::Flow::FinanceToCrm
    );
}

#[test]
fn an_unknown_field_or_direction_names_the_key() {
    let file = toml_file(&format!(
        "{PAIR}\n[pairs.acme.fields.customer]\nfax = \"both\"\n"
    ));
    let err = load_from(Some(&file.0), Figment::new()).expect_err("unknown field");
    assert_eq!(err.key, "pairs.acme.fields.customer");
    assert!(err.problem.contains("`fax`"), "{err}");
    let file = toml_file(&format!(
        "{PAIR}\n[pairs.acme.fields.customer]\nphone = \"sideways\"\n"
    ));
    let err = load_from(Some(&file.0), Figment::new()).expect_err("unknown direction");
    assert_eq!(err.key, "pairs.acme.fields.customer.phone");
    let file = toml_file(&format!(
        "{PAIR}\n[pairs.acme]\nconflict_policy = \"coin_toss\"\n"
    ));
    let err = load_from(Some(&file.0), Figment::new()).expect_err("unknown policy");
    assert_eq!(err.key, "pairs.acme.conflict_policy");
}

#[test]
fn a_rate_limit_share_outside_zero_to_one_names_the_key() {
    let file = toml_file(&format!("{PAIR}rate_limit_share = 1.5\n"));
    let err = load_from(Some(&file.0), Figment::new()).expect_err("a share above 1");
    assert_eq!(err.key, "pairs.acme.finance.rate_limit_share");
    let file = toml_file(&format!(
        "{PAIR}rate_limit_share = 0.5\ncustomer_object = \"companies\"\n"
    ));
    let err = load_from(Some(&file.0), Figment::new())
        .expect_err("customers as companies is a CRM setting");
    assert!(err.key.starts_with("pairs.acme.finance"), "{}", err.key);
    let ok = toml_file(&format!("{PAIR}rate_limit_share = 0.5\n"));
    let settings = load_from(Some(&ok.0), Figment::new()).expect("a half share is valid");
    let finance = settings.pairs["acme"].finance.as_ref().expect("finance");
    assert_eq!(finance.rate_limit_share, 0.5);
}

#[test]
fn a_settling_window_over_a_minute_names_the_key() {
    let err = load_from(
        None,
        with(&[("orchestrator", serde_json::json!({"settle_ms": 120_000}))]),
    )
    .expect_err("must fail");
    assert_eq!(err.key, "orchestrator.settle_ms");
    let ok = load_from(
        None,
        with(&[("orchestrator", serde_json::json!({"settle_ms": 0}))]),
    )
    .expect("0 turns settling off");
    assert_eq!(ok.orchestrator.settle_ms, 0);
}

const KEY_HEX: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
const KEY_B64: &str = "ABEiM0RVZneImaq7zN3u/wARIjNEVWZ3iJmqu8zd7v8=";

#[test]
fn the_secrets_key_comes_from_a_file_and_older_keys_from_one_string() {
    let mut path = std::env::temp_dir();
    path.push(format!("tandem-key-{}", uuid::Uuid::new_v4()));
    std::fs::write(&path, format!("{KEY_B64}\n")).expect("write key file");
    let settings = load_from(
        None,
        with(&[
            (
                "secrets_key_file",
                serde_json::json!(path.to_string_lossy()),
            ),
            (
                "secrets_old_keys",
                serde_json::json!(format!("{KEY_HEX}, {KEY_B64}")),
            ),
        ]),
    )
    .expect("valid");
    let _ = std::fs::remove_file(&path);
    assert_eq!(
        settings.secrets_key.as_ref().map(|k| k.expose()),
        Some(KEY_B64)
    );
    assert_eq!(settings.secrets_old_keys.len(), 2);
    assert_eq!(format!("{:?}", settings.secrets_key), "Some(***)");
}

#[test]
fn a_malformed_secrets_key_names_the_setting_and_the_format_not_the_value() {
    let err = load_from(
        None,
        with(&[("secrets_key", serde_json::json!("hunter2-is-not-a-key"))]),
    )
    .expect_err("must fail");
    assert_eq!(err.key, "secrets_key");
    let message = err.to_string();
    assert!(message.contains("TANDEM_SECRETS_KEY"), "{message}");
    assert!(
        message.contains("base64") && message.contains("hex"),
        "{message}"
    );
    assert!(!message.contains("hunter2"), "{message}");

    let err = load_from(
        None,
        with(&[
            ("secrets_key", serde_json::json!(KEY_HEX)),
            ("secrets_old_keys", serde_json::json!([KEY_B64, "c2hvcnQ="])),
        ]),
    )
    .expect_err("must fail");
    assert_eq!(err.key, "secrets_old_keys");
    assert!(err.problem.contains("key 2 of 2"), "{err}");
}

#[test]
fn older_keys_without_a_current_key_are_refused() {
    let err = load_from(
        None,
        with(&[("secrets_old_keys", serde_json::json!([KEY_HEX]))]),
    )
    .expect_err("must fail");
    assert_eq!(err.key, "secrets_old_keys");
    assert!(err.problem.contains("TANDEM_SECRETS_KEY"), "{err}");
}

#[test]
fn listener_limits_of_zero_or_beyond_reason_name_their_key() {
    for (key, value) in [
        ("http.max_connections", serde_json::json!(0)),
        ("http.header_read_timeout_secs", serde_json::json!(0)),
        ("http.body_read_timeout_secs", serde_json::json!(86_400)),
        ("http.max_body_bytes", serde_json::json!(0)),
    ] {
        let err = load_from(None, with(&[(key, value)])).expect_err(key);
        assert_eq!(err.key, key);
        assert!(err.problem.contains("between 1 and"), "{err}");
    }
    let settings = load_from(
        None,
        with(&[("http.max_connections", serde_json::json!(16))]),
    )
    .expect("a cap of 16 is valid");
    assert_eq!(settings.http.max_connections, 16);
    assert_eq!(settings.http.header_read_timeout_secs, 10);
}
