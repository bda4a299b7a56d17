//! Any bytes as a Xero delivery body: the parser answers a delivery or an error,
//! never a panic, and what it takes holds the rules later steps rely on.
#![no_main]

use libfuzzer_sys::fuzz_target;
use webhooks::xero::{self, XeroDelivery};
use webhooks::Tenant;

fuzz_target!(|body: &[u8]| {
    let Ok(XeroDelivery::Changes(changes)) = xero::parse(body) else {
        return;
    };
    assert!(!changes.is_empty(), "an empty batch is the handshake");
    for change in &changes {
        // Ids go into API paths: only UUIDs are taken.
        let id = change.object_id.as_bytes();
        assert_eq!(id.len(), 36, "{:?}", change.object_id);
        assert!(id.iter().all(|b| b.is_ascii_hexdigit() || *b == b'-'));
        // Years 1..=9999 in Unix milliseconds.
        assert!((-62_135_596_800_000..=253_402_300_800_999).contains(&change.occurred_at));
        assert!(change.tenant.is_some());
    }
    // The same body always gives the same delivery keys (a redelivery is recognised).
    assert_eq!(
        xero::parse(body),
        Ok(XeroDelivery::Changes(changes.clone()))
    );
    // Holding it to an organisation never panics, and a delivery whose changes all
    // name one organisation is that organisation's.
    if let Some(first) = changes[0].tenant.clone() {
        let verdict = Tenant::XeroOrganisation(first.clone()).check(&changes);
        let all_same = changes.iter().all(|c| {
            c.tenant
                .as_deref()
                .is_some_and(|t| t.trim().eq_ignore_ascii_case(first.trim()))
        });
        assert_eq!(verdict.is_ok(), all_same);
    }
});
