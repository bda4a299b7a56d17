//! Any bytes as a HubSpot delivery body: the parser answers changes or an error, never
//! a panic, and each change names the portal it came from.
#![no_main]

use libfuzzer_sys::fuzz_target;
use webhooks::{hubspot, Tenant};

fuzz_target!(|body: &[u8]| {
    let Ok(changes) = hubspot::parse(body) else {
        return;
    };
    for change in &changes {
        let portal = change
            .tenant
            .as_deref()
            .expect("every change names its portal");
        assert!(portal.parse::<i64>().is_ok(), "{portal:?}");
        assert!(change.object_id.parse::<i64>().is_ok());
        assert!(change.delivery_key.starts_with("hubspot:"));
        // A portal is only itself.
        let verdict = Tenant::HubspotPortal(62515).check(std::slice::from_ref(change));
        assert_eq!(verdict.is_ok(), portal == "62515");
    }
    assert_eq!(hubspot::parse(body), Ok(changes));
});
