//! The official signature vectors, read from the repository's `specs/` as published, so these
//! tests cannot drift from them; plus rotation, tampering and time windows.

use std::path::PathBuf;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;
use webhooks::hubspot::{self, SignatureHeaders, SignedRequest, Versions};
use webhooks::standard::{self, StandardSecret};
use webhooks::xero::{self, XeroDelivery};
use webhooks::{ChangeKind, VerifyError, WebhookSecret};

fn specs() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../specs")
}

fn spec(name: &str) -> String {
    let path = specs().join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|err| {
        panic!(
            "cannot read {} ({err}): the specs are committed in specs/ (see specs/SOURCES.md)",
            path.display()
        )
    })
}

fn json(name: &str) -> Value {
    serde_json::from_str(&spec(name)).unwrap_or_else(|err| panic!("{name} is not JSON: {err}"))
}

fn s<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("`{key}` missing in {v}"))
}

#[test]
fn standard_webhooks_vectors_pass_as_published() {
    let vectors = json("standard-webhooks-vectors.json");
    let list = vectors["vectors"].as_array().expect("vectors");
    assert!(!list.is_empty());
    for v in list {
        let secret = StandardSecret::parse(s(v, "secret")).expect("secret");
        let timestamp = v["timestamp"].as_i64().expect("timestamp");
        let headers = standard::Headers {
            id: Some(s(v, "msg_id")),
            timestamp: Some(&timestamp.to_string()),
            signature: Some(s(v, "expected_signature")),
        };
        // Checked at the moment it was signed: the vectors' timestamps are long past.
        let verified = standard::verify(
            s(v, "payload").as_bytes(),
            headers,
            std::slice::from_ref(&secret),
            timestamp,
        );
        assert_eq!(verified, Ok(()), "vector {}", s(v, "id"));
        // The same vector checked a little over five minutes before it was signed, or
        // after, is refused.
        for (drift, refusal) in [
            (-301, VerifyError::FutureTimestamp),
            (301, VerifyError::StaleTimestamp),
        ] {
            assert_eq!(
                standard::verify(
                    s(v, "payload").as_bytes(),
                    headers,
                    std::slice::from_ref(&secret),
                    timestamp + drift
                ),
                Err(refusal)
            );
        }
        // Without the prefix, the secret is the same.
        let bare = StandardSecret::parse(s(v, "secret").trim_start_matches("whsec_"))
            .expect("bare secret");
        assert_eq!(
            standard::verify(s(v, "payload").as_bytes(), headers, &[bare], timestamp),
            Ok(())
        );
    }
}

#[test]
fn standard_webhooks_negative_cases_are_refused_and_multi_signatures_accepted() {
    let vectors = json("standard-webhooks-vectors.json");
    let v = &vectors["vectors"][0];
    let secret = StandardSecret::parse(s(v, "secret")).expect("secret");
    let timestamp = v["timestamp"].as_i64().expect("timestamp");
    let ts = timestamp.to_string();
    let valid = s(v, "expected_signature");
    for case in vectors["negative_and_behavioural_cases_from_library_tests"]
        .as_array()
        .expect("cases")
    {
        let Some(signature) = case["webhook-signature"].as_str() else {
            continue;
        };
        let signature = signature.replace("<valid v1 sig>", valid);
        let headers = standard::Headers {
            id: Some(s(v, "msg_id")),
            timestamp: Some(&ts),
            signature: Some(&signature),
        };
        let outcome = standard::verify(
            s(v, "payload").as_bytes(),
            headers,
            std::slice::from_ref(&secret),
            timestamp,
        );
        match s(case, "expect") {
            "accept" => assert_eq!(outcome, Ok(()), "{}", s(case, "case")),
            "reject" => assert!(outcome.is_err(), "{} was accepted", s(case, "case")),
            other => panic!("unknown expectation {other}"),
        }
    }
    let missing = standard::Headers {
        id: None,
        timestamp: Some(&ts),
        signature: Some(valid),
    };
    assert_eq!(
        standard::verify(b"{}", missing, std::slice::from_ref(&secret), timestamp),
        Err(VerifyError::MissingHeader("webhook-id"))
    );
    assert!(
        StandardSecret::parse("whsec_").is_err(),
        "an empty secret is refused"
    );
    // A tampered body is refused.
    let headers = standard::Headers {
        id: Some(s(v, "msg_id")),
        timestamp: Some(&ts),
        signature: Some(valid),
    };
    assert_eq!(
        standard::verify(b"{\"test\": 2432232315}", headers, &[secret], timestamp),
        Err(VerifyError::BadSignature)
    );
}

#[test]
fn hubspot_vectors_pass_as_published() {
    let vectors = json("hubspot-signature-vectors.json");
    for v in vectors["vectors"].as_array().expect("vectors") {
        let secret = WebhookSecret::from(s(v, "client_secret"));
        let request = SignedRequest {
            method: v["http_method"].as_str().unwrap_or("POST"),
            uri: v["uri"]
                .as_str()
                .unwrap_or("https://www.example.com/webhook_uri"),
            body: s(v, "request_body").as_bytes(),
        };
        let expected = s(v, "expected_signature");
        let outcome = match s(v, "version") {
            "v3" => {
                let timestamp = s(v, "timestamp");
                // The published timestamp is deliberately ancient: the HMAC is checked
                // alone, then the window must refuse it.
                let hmac_only = hubspot::verify_v3(
                    request,
                    expected,
                    timestamp,
                    std::slice::from_ref(&secret),
                    None,
                );
                let now: i64 = 1_764_000_000_000;
                let headers = SignatureHeaders {
                    v3_signature: Some(expected),
                    v3_timestamp: Some(timestamp),
                    ..Default::default()
                };
                assert_eq!(
                    hubspot::verify(request, headers, std::slice::from_ref(&secret), now),
                    Err(VerifyError::StaleTimestamp),
                    "{}",
                    s(v, "id")
                );
                hmac_only
            }
            version => {
                let headers = SignatureHeaders {
                    signature: Some(expected),
                    version: Some(version),
                    ..Default::default()
                };
                // v1 and v2 only where an endpoint opts in.
                assert!(matches!(
                    hubspot::verify(request, headers, std::slice::from_ref(&secret), 0),
                    Err(VerifyError::NotAccepted(_))
                ));
                hubspot::verify_accepting(
                    request,
                    headers,
                    std::slice::from_ref(&secret),
                    0,
                    ALL_VERSIONS,
                )
            }
        };
        assert_eq!(outcome, Ok(()), "vector {}", s(v, "id"));
        // One changed character in the body is refused.
        let mut tampered = request.body.to_vec();
        tampered.push(b' ');
        let tampered = SignedRequest {
            body: &tampered,
            ..request
        };
        let headers = match s(v, "version") {
            "v3" => None,
            version => Some(SignatureHeaders {
                signature: Some(expected),
                version: Some(version),
                ..Default::default()
            }),
        };
        if let Some(headers) = headers {
            assert_eq!(
                hubspot::verify_accepting(tampered, headers, &[secret], 0, ALL_VERSIONS),
                Err(VerifyError::BadSignature),
                "{}",
                s(v, "id")
            );
        }
    }
}

const ALL_VERSIONS: Versions = Versions {
    v1: true,
    v2: true,
    v3: true,
};

fn v3_signature(secret: &str, method: &str, uri: &str, body: &str, timestamp: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("key");
    mac.update(format!("{method}{uri}{body}{timestamp}").as_bytes());
    STANDARD.encode(mac.finalize().into_bytes())
}

#[test]
fn hubspot_negative_cases_are_refused() {
    let secret = "yyyyyyyy-yyyy-yyyy-yyyy-yyyyyyyyyyyy";
    let request = SignedRequest {
        method: "POST",
        uri: "https://tandem.example/webhooks/acme/crm",
        body: b"[]",
    };
    let now: i64 = 1_764_000_000_000;
    // Older than five minutes (hubspot-api-php: now - 300500 ms is invalid).
    let old = (now - 300_500).to_string();
    let signature = v3_signature(secret, "POST", request.uri, "[]", &old);
    let headers = SignatureHeaders {
        v3_signature: Some(&signature),
        v3_timestamp: Some(&old),
        ..Default::default()
    };
    assert_eq!(
        hubspot::verify(request, headers, &[secret.into()], now),
        Err(VerifyError::StaleTimestamp)
    );
    // Fresh, and signed with the second of two active secrets (rotation).
    let fresh = (now - 1_000).to_string();
    let signature = v3_signature(secret, "POST", request.uri, "[]", &fresh);
    let headers = SignatureHeaders {
        v3_signature: Some(&signature),
        v3_timestamp: Some(&fresh),
        ..Default::default()
    };
    assert_eq!(
        hubspot::verify(request, headers, &["old-secret".into(), secret.into()], now),
        Ok(())
    );
    // No timestamp.
    let headers = SignatureHeaders {
        v3_signature: Some(&signature),
        ..Default::default()
    };
    assert_eq!(
        hubspot::verify(request, headers, &[secret.into()], now),
        Err(VerifyError::MissingHeader(hubspot::TIMESTAMP_HEADER))
    );
    // An unknown version.
    let headers = SignatureHeaders {
        signature: Some("00"),
        version: Some("v4"),
        ..Default::default()
    };
    assert_eq!(
        hubspot::verify(request, headers, &[secret.into()], now),
        Err(VerifyError::UnsupportedVersion("\"v4\"".into()))
    );
    // No signature at all: v3 is what is missing.
    assert_eq!(
        hubspot::verify(request, SignatureHeaders::default(), &[secret.into()], now),
        Err(VerifyError::MissingHeader(hubspot::SIGNATURE_V3_HEADER))
    );
    // Ten minutes ahead is refused as firmly as ten minutes behind.
    let ahead = (now + 600_000).to_string();
    let signature = v3_signature(secret, "POST", request.uri, "[]", &ahead);
    let headers = SignatureHeaders {
        v3_signature: Some(&signature),
        v3_timestamp: Some(&ahead),
        ..Default::default()
    };
    assert_eq!(
        hubspot::verify(request, headers, &[secret.into()], now),
        Err(VerifyError::FutureTimestamp)
    );
}

#[test]
fn xero_check_value_from_the_spec_passes() {
    let doc = spec("xero-webhooks.md");
    let after = |label: &str| -> String {
        let line = doc
            .lines()
            .find(|l| l.contains(label))
            .unwrap_or_else(|| panic!("`{label}` not in xero-webhooks.md"));
        line.split('`')
            .nth(3)
            .or_else(|| line.split('`').nth(1))
            .expect("a backticked value")
            .to_string()
    };
    let key = after("key (UTF-8)");
    let expected = after("expected `x-xero-signature`");
    let body_line_index = doc
        .lines()
        .position(|l| l.contains("body (exact bytes"))
        .expect("body line");
    let body = doc
        .lines()
        .nth(body_line_index + 1)
        .expect("body")
        .trim()
        .trim_matches('`')
        .to_string();
    assert_eq!(key, "test-webhook-key");
    assert_eq!(
        xero::verify(body.as_bytes(), Some(&expected), &[key.as_str().into()]),
        Ok(())
    );
    // Intent to receive: the correctly signed handshake is recognised; wrongly signed
    // ones are refused.
    assert_eq!(
        xero::parse(body.as_bytes()),
        Ok(XeroDelivery::IntentToReceive)
    );
    assert_eq!(
        xero::verify(body.as_bytes(), Some(&expected), &["another-key".into()]),
        Err(VerifyError::BadSignature)
    );
    assert_eq!(
        xero::verify(
            body.as_bytes(),
            Some("bm90IGEgc2lnbmF0dXJl"),
            &[key.as_str().into()]
        ),
        Err(VerifyError::BadSignature)
    );
    assert_eq!(
        xero::verify(body.as_bytes(), None, &[key.as_str().into()]),
        Err(VerifyError::MissingHeader("x-xero-signature"))
    );
    assert_eq!(
        xero::verify(body.as_bytes(), Some(&expected), &[]),
        Err(VerifyError::NoSecret)
    );
    // Rotation: the old and the new key both work while both are configured.
    assert_eq!(
        xero::verify(
            body.as_bytes(),
            Some(&expected),
            &["new-key".into(), key.as_str().into()]
        ),
        Ok(())
    );
}

#[test]
fn xero_examples_parse_into_changes() {
    let examples = json("xero-webhook-examples.json");
    let body = serde_json::to_vec(&examples["contact_update_example"]).expect("body");
    let XeroDelivery::Changes(changes) = xero::parse(&body).expect("parses") else {
        panic!("not a handshake")
    };
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].object_type, "CONTACT");
    assert_eq!(changes[0].object_id, "717f2bfc-c6d4-41fd-b238-3f2f0c0cf777");
    assert_eq!(changes[0].kind, ChangeKind::Upsert);
    assert_eq!(
        changes[0].tenant.as_deref(),
        Some("c2cc9b6e-9458-4c7d-93cc-f02b81b0594f")
    );
    let itr = serde_json::to_vec(&examples["intent_to_receive_example"]).expect("body");
    assert_eq!(xero::parse(&itr), Ok(XeroDelivery::IntentToReceive));
    assert!(matches!(
        xero::parse(b"{\"events\": [}"),
        Err(webhooks::ParseError::Malformed(_))
    ));
    assert!(matches!(
        xero::parse(b"[]"),
        Err(webhooks::ParseError::Malformed(_))
    ));
}

#[test]
fn hubspot_examples_parse_with_unique_delivery_keys() {
    let examples = json("hubspot-webhook-examples.json");
    let raw = s(&examples, "contact_creation_docs_v1_example_raw_body");
    let changes = hubspot::parse(raw.as_bytes()).expect("parses");
    assert_eq!(changes.len(), 1);
    assert_eq!(
        (
            changes[0].object_type.as_str(),
            changes[0].object_id.as_str()
        ),
        ("contact", "123")
    );
    assert_eq!(changes[0].occurred_at, 1_564_113_600_000);
    // eventId is not unique: two different changes sharing one must get two keys, and
    // a redelivery of one change (a later attemptNumber) must keep its key.
    let mut events: Vec<Value> = serde_json::from_str(raw).expect("json");
    let mut other = events[0].clone();
    other["objectId"] = 124.into();
    let mut retried = events[0].clone();
    retried["attemptNumber"] = 3.into();
    let mut property = examples["contact_property_change_sensitive_example"][0].clone();
    property["eventId"] = events[0]["eventId"].clone();
    events.extend([other, retried, property]);
    let changes = hubspot::parse(&serde_json::to_vec(&events).expect("body")).expect("parses");
    let keys: std::collections::BTreeSet<_> =
        changes.iter().map(|c| c.delivery_key.clone()).collect();
    assert_eq!(keys.len(), 3, "{keys:#?}");
    assert_eq!(
        changes[0].delivery_key, changes[2].delivery_key,
        "a redelivery keeps its key"
    );
    let deletion = br#"[{"eventId":9,"subscriptionId":1,"portalId":2,"occurredAt":3,"subscriptionType":"deal.deletion","objectId":4}]"#;
    assert_eq!(
        hubspot::parse(deletion).expect("parses")[0].kind,
        ChangeKind::Delete
    );
    assert!(matches!(
        hubspot::parse(b"{\"not\": \"an array\"}"),
        Err(webhooks::ParseError::Malformed(_))
    ));
}

#[test]
fn secrets_never_print() {
    assert_eq!(format!("{:?}", WebhookSecret::from("hunter2")), "***");
    assert_eq!(
        format!(
            "{:?}",
            StandardSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").expect("secret")
        ),
        "***"
    );
}
