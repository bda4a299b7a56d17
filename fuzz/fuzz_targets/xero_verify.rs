//! Xero's signature check on arbitrary bodies, header values and keys: never a panic,
//! a header that is not the body's MAC under a configured key is refused, and the
//! right one is taken.
#![no_main]

use arbitrary::Arbitrary;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use libfuzzer_sys::fuzz_target;
use sha2::Sha256;
use webhooks::{xero, VerifyError, WebhookSecret};

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    body: &'a [u8],
    header: Option<&'a str>,
    keys: Vec<&'a str>,
    flip: u16,
}

fn sign(key: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).expect("any key length");
    mac.update(body);
    STANDARD.encode(mac.finalize().into_bytes())
}

fuzz_target!(|input: Input<'_>| {
    let secrets: Vec<WebhookSecret> = input.keys.iter().map(|k| WebhookSecret::from(*k)).collect();
    let usable: Vec<&str> = input
        .keys
        .iter()
        .copied()
        .filter(|k| !k.is_empty())
        .collect();
    let verdict = xero::verify(input.body, input.header, &secrets);
    if verdict.is_ok() {
        let header = input.header.expect("a signature was offered");
        let offered = STANDARD.decode(header.trim()).expect("it decoded");
        assert!(usable
            .iter()
            .any(|k| STANDARD.decode(sign(k, input.body)).ok() == Some(offered.clone())));
    }
    if usable.is_empty() {
        assert_eq!(verdict, Err(VerifyError::NoSecret));
        return;
    }
    // The right signature is taken; one changed byte of the body is not.
    let signature = sign(usable[0], input.body);
    assert_eq!(xero::verify(input.body, Some(&signature), &secrets), Ok(()));
    if !input.body.is_empty() {
        let mut tampered = input.body.to_vec();
        let at = usize::from(input.flip) % tampered.len();
        tampered[at] ^= 0x01;
        let still = usable.iter().any(|k| sign(k, &tampered) == signature);
        assert_eq!(
            xero::verify(&tampered, Some(&signature), &secrets).is_ok(),
            still
        );
    }
});
