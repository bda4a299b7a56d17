//! Arbitrary headers and bodies through every signature scheme and payload parser:
//! whatever a sender puts on the wire, Tandem answers with an error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use webhooks::hubspot::{self, SignatureHeaders, SignedRequest};
use webhooks::standard::{self, StandardSecret};
use webhooks::{generic, xero, WebhookSecret};

fuzz_target!(|data: &[u8]| {
    // The first bytes, split on newlines, stand for header values; the rest is the body.
    let mut parts = data.splitn(5, |b| *b == b'\n');
    let mut header = || parts.next().map(|p| String::from_utf8_lossy(p).into_owned());
    let (first, second, third, fourth) = (header(), header(), header(), header());
    let body = parts.next().unwrap_or_default();
    let secrets = [WebhookSecret::from("fuzz-secret"), WebhookSecret::from("")];

    let _ = xero::verify(body, first.as_deref(), &secrets);
    let _ = xero::parse(body);
    let _ = hubspot::parse(body);
    let request = SignedRequest { method: "POST", uri: third.as_deref().unwrap_or("https://tandem.example/webhooks/acme/crm"), body };
    let headers = SignatureHeaders {
        v3_signature: first.as_deref(),
        v3_timestamp: second.as_deref(),
        signature: third.as_deref(),
        version: fourth.as_deref(),
    };
    let _ = hubspot::verify(request, headers, &secrets, 1_764_000_000_000);
    let _ = generic::verify(body, "x-hub-signature-256", first.as_deref(), &secrets);
    if let Some(secret) = fourth.as_deref().and_then(|s| StandardSecret::parse(s).ok()) {
        let headers = standard::Headers { id: first.as_deref(), timestamp: second.as_deref(), signature: third.as_deref() };
        let _ = standard::verify(body, headers, &[secret], 1_764_000_000);
    }
});
