//! Whole requests through [`Signing`]: the official vectors still pass when read from
//! raw header lines, a repeated header is refused whatever its values, and the URL
//! HubSpot signs comes from the configured base, never from the `Host` header.

use std::path::PathBuf;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use proptest::prelude::*;
use serde_json::Value;
use sha2::{Digest, Sha256};
use webhooks::endpoint::{Request, Signing};
use webhooks::hubspot::Versions;
use webhooks::standard::StandardSecret;
use webhooks::{VerifyError, WebhookSecret};

const SECRET: &str = "hubspot-client-secret";
const BASE: &str = "https://sync.example.com";
const PATH: &str = "/webhooks/acme/crm";
const NOW_MS: i64 = 1_764_000_000_000;

fn standard_vector() -> Value {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../specs/standard-webhooks-vectors.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|err| panic!("cannot read {} ({err})", path.display()));
    let all: Value = serde_json::from_str(&text).expect("json");
    all["vectors"][0].clone()
}

fn v3(url: &str, body: &[u8], timestamp: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).expect("key");
    mac.update(b"POST");
    mac.update(url.as_bytes());
    mac.update(body);
    mac.update(timestamp.as_bytes());
    STANDARD.encode(mac.finalize().into_bytes())
}

fn hubspot(versions: Versions) -> Signing {
    Signing::hubspot(vec![WebhookSecret::from(SECRET)], versions, Some(BASE))
}

fn request<'a>(headers: &'a [(&'a str, &'a [u8])], body: &'a [u8]) -> Request<'a> {
    Request {
        method: "POST",
        path_and_query: PATH,
        headers,
        body,
    }
}

#[test]
fn the_standard_vector_passes_from_raw_headers_and_a_repeat_is_refused() {
    let v = standard_vector();
    let text = |key: &str| v[key].as_str().expect(key).to_string();
    let secret = StandardSecret::parse(&text("secret")).expect("secret");
    let signing = Signing::Standard {
        secrets: vec![secret],
    };
    let timestamp = v["timestamp"].as_i64().expect("timestamp");
    let (id, ts, signature, payload) = (
        text("msg_id"),
        timestamp.to_string(),
        text("expected_signature"),
        text("payload"),
    );
    let now_ms = timestamp * 1000;
    let headers: Vec<(&str, &[u8])> = vec![
        ("Webhook-Id", id.as_bytes()),
        ("webhook-timestamp", ts.as_bytes()),
        ("WEBHOOK-SIGNATURE", signature.as_bytes()),
    ];
    assert_eq!(
        signing.verify(&request(&headers, payload.as_bytes()), now_ms),
        Ok(())
    );
    for repeated in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
        let mut twice = headers.clone();
        let value = headers
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(repeated))
            .map(|(_, value)| *value)
            .expect("present");
        twice.push((repeated, value));
        assert_eq!(
            signing.verify(&request(&twice, payload.as_bytes()), now_ms),
            Err(VerifyError::DuplicateHeader(match repeated {
                "webhook-id" => "webhook-id",
                "webhook-timestamp" => "webhook-timestamp",
                _ => "webhook-signature",
            })),
            "{repeated} twice"
        );
    }
    // Ten minutes either way, and the i64 edges in milliseconds, are refused.
    for (now, refusal) in [
        (now_ms + 600_000, VerifyError::StaleTimestamp),
        (now_ms - 600_000, VerifyError::FutureTimestamp),
        (i64::MAX, VerifyError::StaleTimestamp),
        (i64::MIN, VerifyError::FutureTimestamp),
    ] {
        assert_eq!(
            signing.verify(&request(&headers, payload.as_bytes()), now),
            Err(refusal)
        );
    }
}

#[test]
fn hubspot_signs_the_configured_url_whatever_the_host_header_says() {
    let body = br#"[{"portalId":62515}]"#;
    let ts = NOW_MS.to_string();
    let configured = v3(&format!("{BASE}{PATH}"), body, &ts);
    let forged = v3(&format!("http://attacker.example{PATH}"), body, &ts);
    for signature in [&configured, &forged] {
        let headers: Vec<(&str, &[u8])> = vec![
            ("host", b"attacker.example"),
            ("x-forwarded-host", b"attacker.example"),
            ("X-HubSpot-Signature-v3", signature.as_bytes()),
            ("X-HubSpot-Request-Timestamp", ts.as_bytes()),
        ];
        let verdict = hubspot(Versions::V3_ONLY).verify(&request(&headers, body), NOW_MS);
        if signature == &configured {
            assert_eq!(verdict, Ok(()));
        } else {
            assert_eq!(verdict, Err(VerifyError::BadSignature));
        }
    }
    // Without a configured base, v3 is not taken at all.
    let headers: Vec<(&str, &[u8])> = vec![
        ("host", b"attacker.example"),
        ("x-hubspot-signature-v3", forged.as_bytes()),
        ("x-hubspot-request-timestamp", ts.as_bytes()),
    ];
    let unconfigured = Signing::hubspot(vec![WebhookSecret::from(SECRET)], Versions::V3_ONLY, None);
    assert!(matches!(
        unconfigured.verify(&request(&headers, body), NOW_MS),
        Err(VerifyError::NotAccepted(_))
    ));
}

#[test]
fn hubspot_legacy_versions_only_where_opted_in() {
    let body = b"[]";
    let mut hash = Sha256::new();
    hash.update(SECRET);
    hash.update(body);
    let v1 = hex::encode(hash.finalize());
    let headers: Vec<(&str, &[u8])> = vec![
        ("x-hubspot-signature", v1.as_bytes()),
        ("x-hubspot-signature-version", b"v1"),
    ];
    assert!(matches!(
        hubspot(Versions::V3_ONLY).verify(&request(&headers, body), NOW_MS),
        Err(VerifyError::NotAccepted(_))
    ));
    let with_v1 = Versions {
        v1: true,
        ..Versions::V3_ONLY
    };
    assert_eq!(
        hubspot(with_v1).verify(&request(&headers, body), NOW_MS),
        Ok(())
    );
}

proptest! {
    /// Whatever the values, a signature-bearing header given twice is refused before
    /// any signature is checked, so a valid value beside a forged one never passes.
    #[test]
    fn any_repeated_signature_header_is_refused(
        which in 0usize..4,
        first_valid in any::<bool>(),
        other in "[ -~]{0,60}",
        offset in -299_000i64..=299_000,
    ) {
        let body = b"[]";
        let ts = (NOW_MS + offset).to_string();
        let signature = v3(&format!("{BASE}{PATH}"), body, &ts);
        let names = [
            "x-hubspot-signature-v3",
            "x-hubspot-request-timestamp",
            "x-hubspot-signature",
            "x-hubspot-signature-version",
        ];
        let mut headers: Vec<(&str, &[u8])> = vec![
            ("x-hubspot-signature-v3", signature.as_bytes()),
            ("x-hubspot-request-timestamp", ts.as_bytes()),
        ];
        prop_assert_eq!(hubspot(Versions::V3_ONLY).verify(&request(&headers, body), NOW_MS), Ok(()));
        let extra = (names[which], other.as_bytes());
        if first_valid { headers.push(extra) } else { headers.insert(0, extra) }
        if which >= 2 {
            // The legacy headers once is fine; twice is not.
            headers.push(extra);
        }
        prop_assert_eq!(
            hubspot(Versions::V3_ONLY).verify(&request(&headers, body), NOW_MS),
            Err(VerifyError::DuplicateHeader(names[which]))
        );
    }

    /// A v3 timestamp is taken exactly when it lies within five minutes of now.
    #[test]
    fn hubspot_v3_window_either_way(
        sent_at in prop_oneof![any::<i64>(), NOW_MS - 600_000..=NOW_MS + 600_000]
    ) {
        let body = b"[]";
        let ts = sent_at.to_string();
        let signature = v3(&format!("{BASE}{PATH}"), body, &ts);
        let headers: Vec<(&str, &[u8])> = vec![
            ("x-hubspot-signature-v3", signature.as_bytes()),
            ("x-hubspot-request-timestamp", ts.as_bytes()),
        ];
        let verdict = hubspot(Versions::V3_ONLY).verify(&request(&headers, body), NOW_MS);
        let distance = (i128::from(NOW_MS) - i128::from(sent_at)).abs();
        if sent_at < 0 {
            prop_assert_eq!(verdict, Err(VerifyError::MalformedHeader("x-hubspot-request-timestamp")));
        } else if distance <= 300_000 {
            prop_assert_eq!(verdict, Ok(()));
        } else {
            prop_assert!(matches!(verdict, Err(VerifyError::StaleTimestamp | VerifyError::FutureTimestamp)));
        }
    }
}
