//! HubSpot's signatures (v1, v2, v3) on arbitrary requests, header values, versions
//! taken and clocks: never a panic; v3 is taken only inside five minutes either way
//! and only over the URL given; v1 and v2 only where accepted.
#![no_main]

use arbitrary::Arbitrary;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use libfuzzer_sys::fuzz_target;
use sha2::Sha256;
use webhooks::hubspot::{self, SignatureHeaders, SignedRequest, Versions};
use webhooks::{VerifyError, WebhookSecret};

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    method: &'a str,
    uri: &'a str,
    body: &'a [u8],
    v3_signature: Option<&'a str>,
    v3_timestamp: Option<&'a str>,
    signature: Option<&'a str>,
    version: Option<&'a str>,
    secret: &'a str,
    now_ms: i64,
    /// Milliseconds between the signed timestamp and now, for the correctly signed case.
    skew: i64,
    accept: (bool, bool, bool),
}

fn v3(secret: &str, method: &str, uri: &str, body: &[u8], timestamp: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(method.as_bytes());
    mac.update(uri.as_bytes());
    mac.update(body);
    mac.update(timestamp.as_bytes());
    STANDARD.encode(mac.finalize().into_bytes())
}

fuzz_target!(|input: Input<'_>| {
    let secrets = [WebhookSecret::from(input.secret)];
    let accepted = Versions {
        v1: input.accept.0,
        v2: input.accept.1,
        v3: input.accept.2,
    };
    let request = SignedRequest {
        method: input.method,
        uri: input.uri,
        body: input.body,
    };
    let headers = SignatureHeaders {
        v3_signature: input.v3_signature,
        v3_timestamp: input.v3_timestamp,
        signature: input.signature,
        version: input.version,
    };
    let verdict = hubspot::verify_accepting(request, headers, &secrets, input.now_ms, accepted);
    if verdict.is_ok() {
        if input.v3_signature.is_some() {
            assert!(accepted.v3);
            let sent: i64 = input
                .v3_timestamp
                .expect("timestamp")
                .trim()
                .parse()
                .expect("digits");
            assert!((i128::from(input.now_ms) - i128::from(sent)).abs() <= 300_000);
        } else {
            let version = input.version.map(str::trim).unwrap_or("v1");
            assert!(
                (version.eq_ignore_ascii_case("v1") && accepted.v1)
                    || (version.eq_ignore_ascii_case("v2") && accepted.v2)
            );
        }
    }
    // The default takes v3 alone.
    if input.v3_signature.is_none() {
        assert!(hubspot::verify(request, headers, &secrets, input.now_ms).is_err());
    }
    if input.secret.is_empty() {
        assert_eq!(verdict, Err(VerifyError::NoSecret));
        return;
    }
    // A correctly signed v3 request is taken exactly when its timestamp is in the window.
    let Some(sent) = input.now_ms.checked_sub(input.skew).filter(|s| *s >= 0) else {
        return;
    };
    let timestamp = sent.to_string();
    let signature = v3(
        input.secret,
        input.method,
        input.uri,
        input.body,
        &timestamp,
    );
    let signed = SignatureHeaders {
        v3_signature: Some(&signature),
        v3_timestamp: Some(&timestamp),
        ..headers
    };
    let verdict = hubspot::verify(request, signed, &secrets, input.now_ms);
    let fresh = input.skew.unsigned_abs() <= 300_000;
    assert_eq!(verdict.is_ok(), fresh, "{verdict:?}");
});
