//! The binary refuses bad settings before doing anything, naming the key.

use std::process::Command;

fn tandem() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tandem"));
    // Start from a clean slate: no settings file, no TANDEM_* from the caller.
    for (key, _) in std::env::vars() {
        if key.starts_with("TANDEM_") {
            cmd.env_remove(key);
        }
    }
    cmd.current_dir(std::env::temp_dir());
    cmd
}

fn run(cmd: &mut Command) -> (i32, String) {
    let output = cmd.output().expect("run tandem");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    (output.status.code().unwrap_or(-1), stderr)
}

#[test]
fn unparsable_database_url_names_the_key() {
    let (code, stderr) = run(tandem()
        .arg("config")
        .env("TANDEM_DATABASE_URL", "postgres://[::1"));
    assert_eq!(code, 78, "{stderr}");
    assert!(
        stderr.contains("`database_url` (TANDEM_DATABASE_URL)"),
        "{stderr}"
    );
}

#[test]
fn a_pair_missing_its_finance_connection_names_the_key() {
    let (code, stderr) = run(tandem()
        .arg("serve")
        .env("TANDEM_PAIRS__ACME__CRM__KIND", "hubspot")
        .env(
            "TANDEM_PAIRS__ACME__CRM__BASE_URL",
            "https://api.hubapi.com",
        ));
    assert_eq!(code, 78, "{stderr}");
    assert!(stderr.contains("pairs.acme.finance"), "{stderr}");
    assert!(stderr.contains("TANDEM_PAIRS__ACME__FINANCE"), "{stderr}");
}

#[test]
fn a_missing_settings_file_is_named() {
    let (code, stderr) = run(tandem()
        .arg("config")
        .env("TANDEM_CONFIG", "/nonexistent/tandem.toml"));
    assert_eq!(code, 78, "{stderr}");
    assert!(stderr.contains("TANDEM_CONFIG"), "{stderr}");
}

#[test]
fn config_prints_settings_without_secrets() {
    let output = tandem()
        .arg("config")
        .env("TANDEM_ADMIN_TOKEN", "super-secret-admin-token")
        .env(
            "TANDEM_DATABASE_URL",
            "postgres://tandem:db-password@127.0.0.1/tandem",
        )
        .output()
        .expect("run tandem");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("admin_token = (set, hidden)"), "{stdout}");
    assert!(!stdout.contains("super-secret-admin-token"), "{stdout}");
    assert!(!stdout.contains("db-password"), "{stdout}");
}

#[test]
fn help_lists_the_commands() {
    let output = tandem().arg("--help").output().expect("run tandem");
    let stdout = String::from_utf8_lossy(&output.stdout);
    for command in [
        "demo", "serve", "migrate", "resync", "replay", "status", "sim", "bench",
    ] {
        assert!(
            stdout.contains(command),
            "`{command}` missing from --help:\n{stdout}"
        );
    }
}

/// A pair taking HubSpot v3 webhooks needs the public URL HubSpot signs, and the
/// portal its deliveries must name: without either, `serve` does not start.
#[test]
fn a_pair_taking_hubspot_webhooks_without_its_url_or_portal_does_not_start() {
    let pair = |cmd: &mut Command| {
        cmd.arg("serve")
            .env("TANDEM_PAIRS__ACME__CRM__KIND", "hubspot")
            .env(
                "TANDEM_PAIRS__ACME__CRM__BASE_URL",
                "https://api.hubapi.com",
            )
            .env(
                "TANDEM_PAIRS__ACME__CRM__WEBHOOK_SECRETS",
                "[\"client-secret-value\"]",
            )
            .env("TANDEM_PAIRS__ACME__FINANCE__KIND", "xero")
            .env(
                "TANDEM_PAIRS__ACME__FINANCE__BASE_URL",
                "https://api.xero.com",
            )
            .env("TANDEM_PAIRS__ACME__FINANCE__TENANT_ID", "t1");
    };
    let mut cmd = tandem();
    pair(&mut cmd);
    let (code, stderr) = run(&mut cmd);
    assert_eq!(code, 78, "{stderr}");
    assert!(stderr.contains("pairs.acme.crm.portal_id"), "{stderr}");
    assert!(!stderr.contains("client-secret-value"), "{stderr}");

    let mut cmd = tandem();
    pair(&mut cmd);
    cmd.env("TANDEM_PAIRS__ACME__CRM__PORTAL_ID", "62515");
    let (code, stderr) = run(&mut cmd);
    assert_eq!(code, 78, "{stderr}");
    assert!(
        stderr.contains("`webhooks.public_base_url` (TANDEM_WEBHOOKS__PUBLIC_BASE_URL)"),
        "{stderr}"
    );
    assert!(stderr.contains("Host header"), "{stderr}");
    assert!(!stderr.contains("client-secret-value"), "{stderr}");
}
