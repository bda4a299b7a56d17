//! The binary refuses bad settings before doing anything, naming the key; and every
//! settings example in the documentation is valid.

use std::process::Command;

use crate::support;

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

/// Every settings example in the documentation loads through the real loader and
/// validation (`tandem::config::load_from`), so an example cannot drift from the code.
///
/// Convention: every fenced `toml` block in README.md and docs/*.md is Tandem settings.
/// A block that is deliberately a fragment (one table of a pair, say) is marked by an
/// HTML comment starting `<!-- partial settings` on the line before its fence; it is
/// loaded merged onto [`COMPLETE_PAIR`], a minimal valid pair `acme`. A block that is
/// not settings at all would be marked `<!-- not settings -->` and skipped (none is
/// today). Each Xero connection must also use the Accounting API's root, which the
/// loader cannot know the connector needs.
#[test]
fn every_settings_example_in_the_docs_loads() {
    let examples = settings_examples();
    assert!(
        examples.len() >= 2,
        "expected the README's settings examples, found {}: did the fences change?",
        examples.len()
    );
    let base = std::env::temp_dir().join(format!("{}.toml", support::unique("complete_pair")));
    std::fs::write(&base, COMPLETE_PAIR).expect("write the base settings");
    for example in &examples {
        let loaded = if example.partial {
            tandem::config::load_from(
                Some(&base),
                figment::Figment::new().merge(
                    <figment::providers::Toml as figment::providers::Format>::string(&example.toml),
                ),
            )
        } else {
            let file = std::env::temp_dir().join(format!("{}.toml", support::unique("example")));
            std::fs::write(&file, &example.toml).expect("write the example");
            let loaded = tandem::config::load_from(Some(&file), figment::Figment::new());
            let _ = std::fs::remove_file(&file);
            loaded
        };
        let settings = loaded.unwrap_or_else(|err| {
            panic!(
                "the settings example at {} does not load: {err}\n{}",
                example.place, example.toml
            )
        });
        for (name, pair) in &settings.pairs {
            if let Some(finance) = &pair.finance {
                assert!(
                    finance
                        .base_url
                        .trim_end_matches('/')
                        .ends_with("/api.xro/2.0"),
                    "{}: pairs.{name}.finance.base_url `{}` is not Xero's Accounting API root \
                     (https://api.xero.com/api.xro/2.0, see docs/api-subsets.md)",
                    example.place,
                    finance.base_url
                );
            }
        }
    }
    let _ = std::fs::remove_file(&base);
}

/// What a partial example is loaded onto: the least a pair needs to be valid.
const COMPLETE_PAIR: &str = r#"
[pairs.acme.crm]
kind = "hubspot"
base_url = "https://api.hubapi.com"

[pairs.acme.finance]
kind = "xero"
base_url = "https://api.xero.com/api.xro/2.0"
tenant_id = "tenant"
"#;

struct SettingsExample {
    /// `README.md:164`, for the failure message.
    place: String,
    toml: String,
    partial: bool,
}

fn settings_examples() -> Vec<SettingsExample> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = vec![root.join("README.md")];
    let mut docs: Vec<_> = std::fs::read_dir(root.join("docs"))
        .expect("read docs/")
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "md"))
        .collect();
    docs.sort();
    files.extend(docs);
    let mut examples = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).expect("read a documentation file");
        let name = file
            .strip_prefix(root)
            .unwrap_or(&file)
            .display()
            .to_string();
        examples.extend(toml_blocks(&name, &text));
    }
    examples
}

/// The fenced `toml` blocks of one Markdown file, with the marker before each.
fn toml_blocks(name: &str, text: &str) -> Vec<SettingsExample> {
    let lines: Vec<&str> = text.lines().collect();
    let mut blocks = Vec::new();
    let mut n = 0;
    while n < lines.len() {
        let fence = lines[n].trim_start();
        if fence.strip_prefix("```").map(str::trim) != Some("toml") {
            n += 1;
            continue;
        }
        let marker = n
            .checked_sub(1)
            .map(|before| lines[before].trim())
            .unwrap_or_default();
        let body: Vec<&str> = lines[n + 1..]
            .iter()
            .take_while(|line| !line.trim_start().starts_with("```"))
            .copied()
            .collect();
        if !marker.starts_with("<!-- not settings") {
            blocks.push(SettingsExample {
                place: format!("{name}:{}", n + 1),
                toml: body.join("\n"),
                partial: marker.starts_with("<!-- partial settings"),
            });
        }
        n += body.len() + 2;
    }
    blocks
}

#[test]
fn a_marked_fragment_is_found_and_told_apart() {
    let text = "intro\n\n```toml\na = 1\n```\n<!-- partial settings -->\n```toml\nb = 2\nc = 3\n```\n```sh\nx\n```\n";
    let blocks = toml_blocks("T.md", text);
    let seen: Vec<_> = blocks
        .iter()
        .map(|b| (b.place.as_str(), b.toml.as_str(), b.partial))
        .collect();
    assert_eq!(
        seen,
        [("T.md:3", "a = 1", false), ("T.md:7", "b = 2\nc = 3", true)]
    );
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
