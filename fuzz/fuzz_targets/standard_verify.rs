//! Standard Webhooks on arbitrary ids, timestamps, signature lists, bodies, secrets and
//! clocks: never a panic, nothing taken outside five minutes either way, and a list
//! holding one correct `v1,` entry among any others is taken.
#![no_main]

use arbitrary::Arbitrary;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use libfuzzer_sys::fuzz_target;
use sha2::Sha256;
use webhooks::standard::{self, Headers, StandardSecret};

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    body: &'a [u8],
    id: Option<&'a str>,
    timestamp: Option<&'a str>,
    signature: Option<&'a str>,
    secret: &'a str,
    key: Vec<u8>,
    now_secs: i64,
    skew: i64,
}

fuzz_target!(|input: Input<'_>| {
    // Secrets as configured: any text, parsed as settings would.
    if let Ok(secret) = StandardSecret::parse(input.secret) {
        let headers = Headers {
            id: input.id,
            timestamp: input.timestamp,
            signature: input.signature,
        };
        if standard::verify(input.body, headers, &[secret], input.now_secs).is_ok() {
            let sent: i64 = input
                .timestamp
                .expect("timestamp")
                .trim()
                .parse()
                .expect("digits");
            assert!((i128::from(input.now_secs) - i128::from(sent)).abs() <= 300);
        }
    }
    // A correctly signed delivery among noise entries.
    if input.key.is_empty() {
        return;
    }
    let secret = StandardSecret::parse(&STANDARD.encode(&input.key)).expect("base64 of bytes");
    let Some(sent) = input.now_secs.checked_sub(input.skew).filter(|s| *s >= 0) else {
        return;
    };
    let id = input
        .id
        .filter(|id| !id.trim().is_empty())
        .unwrap_or("msg_1");
    let timestamp = sent.to_string();
    let mut mac = Hmac::<Sha256>::new_from_slice(&input.key).expect("any key length");
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(input.body);
    let good = format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()));
    let noise = input.signature.unwrap_or_default();
    let list = format!("{noise} {good}");
    let headers = Headers {
        id: Some(id),
        timestamp: Some(&timestamp),
        signature: Some(&list),
    };
    let verdict = standard::verify(input.body, headers, &[secret], input.now_secs);
    assert_eq!(
        verdict.is_ok(),
        input.skew.unsigned_abs() <= 300,
        "{verdict:?}"
    );
});
