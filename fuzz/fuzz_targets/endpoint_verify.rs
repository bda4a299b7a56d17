//! Whole requests through an endpoint's signing (Xero, HubSpot with or without a
//! public base URL and legacy versions, a Standard Webhooks relay), with header lines
//! in any number, case and order: never a panic, and a request carrying any header
//! its scheme reads more than once is never taken.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use webhooks::endpoint::{Request, Signing};
use webhooks::hubspot::Versions;
use webhooks::standard::StandardSecret;
use webhooks::{VerifyError, WebhookSecret};

const NAMES: [&str; 9] = [
    "x-xero-signature",
    "x-hubspot-signature-v3",
    "x-hubspot-request-timestamp",
    "x-hubspot-signature",
    "x-hubspot-signature-version",
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
    "host",
];

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    scheme: u8,
    method: &'a str,
    path_and_query: &'a str,
    /// (which name, upper-case it, value)
    lines: Vec<(u8, bool, &'a [u8])>,
    other_lines: Vec<(&'a str, &'a [u8])>,
    body: &'a [u8],
    base: Option<&'a str>,
    accept: (bool, bool, bool),
    now_ms: i64,
}

fuzz_target!(|input: Input<'_>| {
    let (signing, read): (Signing, &[&str]) = match input.scheme % 3 {
        0 => (
            Signing::Xero {
                keys: vec![WebhookSecret::from("xero-key")],
            },
            &NAMES[..1],
        ),
        1 => (
            Signing::hubspot(
                vec![WebhookSecret::from("client-secret")],
                Versions {
                    v1: input.accept.0,
                    v2: input.accept.1,
                    v3: input.accept.2,
                },
                input.base,
            ),
            &NAMES[1..5],
        ),
        _ => (
            Signing::Standard {
                secrets: vec![
                    StandardSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
                        .expect("the official secret"),
                ],
            },
            &NAMES[5..8],
        ),
    };
    let upper: Vec<String> = NAMES.iter().map(|n| n.to_ascii_uppercase()).collect();
    let mut headers: Vec<(&str, &[u8])> = input
        .lines
        .iter()
        .map(|(which, shout, value)| {
            let at = usize::from(*which) % NAMES.len();
            let name = if *shout {
                upper[at].as_str()
            } else {
                NAMES[at]
            };
            (name, *value)
        })
        .collect();
    headers.extend(input.other_lines.iter().copied());
    let request = Request {
        method: input.method,
        path_and_query: input.path_and_query,
        headers: &headers,
        body: input.body,
    };
    let verdict = signing.verify(&request, input.now_ms);
    let repeated = read.iter().find(|name| {
        headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .count()
            > 1
    });
    if let Some(name) = repeated {
        assert!(verdict.is_err(), "{name} twice was taken");
        if read.iter().take_while(|n| *n != name).all(|n| {
            headers
                .iter()
                .filter(|(h, _)| h.eq_ignore_ascii_case(n))
                .count()
                <= 1
        }) {
            // The first repeated header in reading order is the one named.
            assert!(
                matches!(
                    verdict,
                    Err(VerifyError::DuplicateHeader(_)) | Err(VerifyError::MalformedHeader(_))
                ),
                "{verdict:?}"
            );
        }
    }
    if verdict.is_ok() && input.scheme % 3 == 1 {
        assert!(
            input.base.is_some(),
            "HubSpot taken without a configured URL"
        );
    }
});
