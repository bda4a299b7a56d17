//! The settings that decide which webhooks a side takes: each unsafe combination
//! refuses to start, naming the key to set.

use figment::Figment;

use super::{load_from, toml_file, PAIR};
use crate::config::{SettingsError, WebhookSigning};

/// `PAIR` without its public base URL, with `extra` lines appended to its finance
/// table (or, after a table header, wherever they say).
fn pair_without_base(extra: &str) -> String {
    let pair = PAIR.replace(
        "[webhooks]\npublic_base_url = \"https://sync.example.com\"\n",
        "",
    );
    format!("{pair}{extra}")
}

fn refusal(toml: &str) -> SettingsError {
    let file = toml_file(toml);
    load_from(Some(&file.0), Figment::new()).expect_err("must be refused")
}

fn loads(toml: &str) -> crate::config::Settings {
    let file = toml_file(toml);
    load_from(Some(&file.0), Figment::new()).expect("valid")
}

/// The CRM side of `PAIR` with its table replaced by `crm`.
fn with_crm(crm: &str) -> String {
    let start = PAIR.find("[pairs.acme.crm]").expect("crm table");
    let end = PAIR.find("[pairs.acme.finance]").expect("finance table");
    format!("{}{crm}\n{}", &PAIR[..start], &PAIR[end..])
}

#[test]
fn hubspot_v3_without_a_public_base_url_refuses_to_start() {
    let err = refusal(&pair_without_base(""));
    assert_eq!(err.key, "webhooks.public_base_url");
    assert_eq!(err.env_var(), "TANDEM_WEBHOOKS__PUBLIC_BASE_URL");
    assert!(err.problem.contains("pair `acme`"), "{err}");
    assert!(err.problem.contains("Host header"), "{err}");
}

#[test]
fn only_sides_whose_signature_covers_the_url_need_the_base() {
    let crm = |extra: &str| {
        format!(
            "[pairs.acme.crm]\nkind = \"hubspot\"\nbase_url = \"https://api.hubapi.com\"\n{extra}"
        )
    };
    let no_base = |toml: String| {
        toml.replace(
            "[webhooks]\npublic_base_url = \"https://sync.example.com\"\n",
            "",
        )
    };
    // Polled only: takes no webhooks, needs neither a base nor a portal.
    loads(&no_base(with_crm(&crm(""))));
    // v1 alone signs no URL.
    loads(&no_base(with_crm(&crm(
        "webhook_secrets = [\"s\"]\nportal_id = 1\nsignature_versions = [\"v1\"]",
    ))));
    // v2 signs the URL as v3 does.
    let err = refusal(&no_base(with_crm(&crm(
        "webhook_secrets = [\"s\"]\nportal_id = 1\nsignature_versions = [\"v1\", \"v2\"]",
    ))));
    assert_eq!(err.key, "webhooks.public_base_url");
    // A relay signing with Standard Webhooks signs no URL either.
    let settings = loads(&no_base(with_crm(&crm(
        "webhook_secrets = [\"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\"]\nportal_id = 1\nwebhook_signing = \"standard_webhooks\"",
    ))));
    let crm = settings.pairs["acme"].crm.clone().expect("crm");
    assert_eq!(crm.webhook_signing, WebhookSigning::StandardWebhooks);
}

#[test]
fn legacy_versions_are_off_unless_named() {
    let settings = loads(PAIR);
    let crm = settings.pairs["acme"].crm.clone().expect("crm");
    assert_eq!(crm.hubspot_versions(), webhooks::hubspot::Versions::V3_ONLY);
    let settings = loads(&with_crm(
        "[pairs.acme.crm]\nkind = \"hubspot\"\nbase_url = \"https://api.hubapi.com\"\n\
         webhook_secrets = [\"s\"]\nportal_id = 1\nsignature_versions = [\"v3\", \"v1\"]",
    ));
    let crm = settings.pairs["acme"].crm.clone().expect("crm");
    assert_eq!(
        crm.hubspot_versions(),
        webhooks::hubspot::Versions {
            v1: true,
            v2: false,
            v3: true
        }
    );
    for (versions, why) in [("[]", "at least one"), ("[\"v4\"]", "v4")] {
        let err = refusal(&with_crm(&format!(
            "[pairs.acme.crm]\nkind = \"hubspot\"\nbase_url = \"https://api.hubapi.com\"\n\
             webhook_secrets = [\"s\"]\nportal_id = 1\nsignature_versions = {versions}"
        )));
        assert!(
            err.key.starts_with("pairs.acme.crm.signature_versions"),
            "{err}"
        );
        assert!(err.to_string().contains(why), "{err}");
    }
    let err = refusal(&format!("{PAIR}signature_versions = [\"v3\"]\n"));
    assert_eq!(err.key, "pairs.acme.finance.signature_versions");
    let err = refusal(&with_crm(
        "[pairs.acme.crm]\nkind = \"hubspot\"\nbase_url = \"https://api.hubapi.com\"\n\
         webhook_secrets = [\"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\"]\nportal_id = 1\n\
         webhook_signing = \"standard_webhooks\"\nsignature_versions = [\"v3\"]",
    ));
    assert_eq!(err.key, "pairs.acme.crm.signature_versions");
}

#[test]
fn a_hubspot_side_taking_webhooks_needs_its_portal() {
    let err = refusal(&PAIR.replace("portal_id = 62515\n", ""));
    assert_eq!(err.key, "pairs.acme.crm.portal_id");
    assert_eq!(err.env_var(), "TANDEM_PAIRS__ACME__CRM__PORTAL_ID");
    assert!(err.problem.contains("hub id"), "{err}");
    let err = refusal(&PAIR.replace("portal_id = 62515", "portal_id = 0"));
    assert_eq!(err.key, "pairs.acme.crm.portal_id");
    let err = refusal(&PAIR.replace("portal_id = 62515", "portal_id = -5"));
    assert_eq!(err.key, "pairs.acme.crm.portal_id");
    let err = refusal(&format!("{PAIR}portal_id = 62515\n"));
    assert_eq!(
        err.key, "pairs.acme.finance.portal_id",
        "Xero is bound by tenant_id"
    );
    let settings = loads(PAIR);
    assert_eq!(
        settings.pairs["acme"]
            .crm
            .as_ref()
            .and_then(|c| c.portal_id),
        Some(62515)
    );
}

#[test]
fn standard_webhooks_secrets_must_be_whsec_and_are_never_echoed() {
    let relay = |secrets: &str| {
        PAIR.replace(
            "webhook_secrets = [\"xero-key\"]",
            &format!("webhook_secrets = {secrets}\nwebhook_signing = \"standard_webhooks\""),
        )
    };
    let settings = loads(&relay(
        "[\"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\", \"MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\"]",
    ));
    let finance = settings.pairs["acme"].finance.clone().expect("finance");
    assert_eq!(finance.webhook_signing, WebhookSigning::StandardWebhooks);
    for bad in [
        "whsec_",
        "whsec_not base64 at all!",
        "xero-key-not-a-relay-secret",
    ] {
        let err = refusal(&relay(&format!(
            "[\"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\", \"{bad}\"]"
        )));
        assert_eq!(err.key, "pairs.acme.finance.webhook_secrets", "{bad}");
        assert!(err.problem.contains("entry 2"), "{err}");
        let shown = err.to_string();
        assert!(!shown.contains("MfKQ9r8G"), "{shown}");
        if bad.len() > 8 {
            assert!(!shown.contains(bad), "the secret leaked: {shown}");
        }
    }
    let err = refusal(&PAIR.replace(
        "webhook_secrets = [\"xero-key\"]",
        "webhook_secrets = [\"k\"]\nwebhook_signing = \"svix\"",
    ));
    assert_eq!(err.key, "pairs.acme.finance.webhook_signing");
}

#[test]
fn the_public_base_url_is_a_plain_http_url() {
    for bad in [
        "sync.example.com",
        "ftp://sync.example.com",
        "https://sync.example.com/?pair=acme",
        "https://sync.example.com/#x",
        "https://user:pass@sync.example.com",
        "https://",
    ] {
        let err = refusal(&PAIR.replace("https://sync.example.com", bad));
        assert_eq!(err.key, "webhooks.public_base_url", "{bad}");
    }
    for good in [
        "https://sync.example.com/",
        "http://127.0.0.1:8080",
        "https://example.com/tandem",
    ] {
        loads(&PAIR.replace("https://sync.example.com", good));
    }
}
