//! What a hostile sender would throw at each rule of the webhook receiver, through
//! real HTTP against the running server: each refusal has its status and a JSON
//! error, queues and stores nothing, and leaves the server taking valid deliveries.

use super::*;

const CRM: &str = "/webhooks/acme/crm";

/// Header lines as sent: a name, and a value.
type Lines = Vec<(&'static str, String)>;

/// Issue 20: the URL HubSpot signs is rebuilt from `webhooks.public_base_url`; the
/// `Host` header (and any forwarded-host header) is the sender's and counts for nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hubspot_v3_is_checked_against_the_configured_url_not_the_host_header() {
    let server = Server::start().await;
    let body = hubspot_body(PORTAL, 7001);
    let ts = now_ms().to_string();
    let listening = server.url(CRM);
    let cases: Vec<(&str, String, Lines)> = vec![
        (
            "signed over the address the server listens on",
            hubspot_v3("POST", &listening, &body, &ts),
            vec![],
        ),
        (
            "signed over a Host header the sender chose",
            hubspot_v3("POST", &format!("http://attacker.example{CRM}"), &body, &ts),
            vec![("host", "attacker.example".to_string())],
        ),
        (
            "signed over forwarded headers the sender chose",
            hubspot_v3(
                "POST",
                &format!("https://attacker.example{CRM}"),
                &body,
                &ts,
            ),
            vec![
                ("host", "attacker.example".to_string()),
                ("x-forwarded-host", "attacker.example".to_string()),
                ("x-forwarded-proto", "https".to_string()),
                ("forwarded", "host=attacker.example;proto=https".to_string()),
            ],
        ),
        (
            "signed over the configured URL with another path",
            hubspot_v3(
                "POST",
                &format!("{PUBLIC_BASE}/webhooks/legacy/crm"),
                &body,
                &ts,
            ),
            vec![],
        ),
    ];
    for (what, signature, mut extra) in cases {
        extra.push(("x-hubspot-signature-v3", signature));
        extra.push(("x-hubspot-request-timestamp", ts.clone()));
        let answer = server.post(CRM, body.clone().into_bytes(), &extra).await;
        server
            .assert_refused(what, answer, 401, "signature does not match", (0, 0))
            .await;
    }
    // Signed over the configured URL, it is taken whatever the Host header says.
    let mut headers = v3_headers(CRM, &body, &ts);
    headers.push(("host", "attacker.example".to_string()));
    let (status, text) = server.post(CRM, body.into_bytes(), &headers).await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(server.published_and_stored().await, (1, 1));
    server.still_takes_deliveries().await;
    server.finish().await;
}

/// Issue 20: a v3 timestamp is taken only within five minutes of now, behind or
/// ahead, and anything that is not a plain decimal within i64 is malformed. Each
/// case is signed correctly over its exact timestamp text, so only the timestamp
/// rule can refuse it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hubspot_timestamps_outside_five_minutes_either_way_are_refused() {
    let server = Server::start().await;
    let now = now_ms();
    let cases: Vec<(String, &str)> = vec![
        ((now - 600_000).to_string(), "older than"),
        ((now + 600_000).to_string(), "further ahead"),
        ((now - 330_000).to_string(), "older than"),
        ((now + 330_000).to_string(), "further ahead"),
        ((now + 86_400_000 * 365).to_string(), "further ahead"),
        ("0".to_string(), "older than"),
        ("1".to_string(), "older than"),
        (i64::MAX.to_string(), "further ahead"),
        ((i64::MAX - 1).to_string(), "further ahead"),
        (i64::MIN.to_string(), "malformed"),
        ((i64::MIN + 1).to_string(), "malformed"),
        ("9223372036854775808".to_string(), "malformed"),
        ("18446744073709551615".to_string(), "malformed"),
        ("99999999999999999999999999999999".to_string(), "malformed"),
        ("-1".to_string(), "malformed"),
        (format!("+{now}"), "malformed"),
        (format!("-{now}"), "malformed"),
        (format!("{now}.0"), "malformed"),
        (format!("{now}e0"), "malformed"),
        ("1.764e12".to_string(), "malformed"),
        (format!("0x{now:x}"), "malformed"),
        (format!("{} {}", now, now), "malformed"),
        (format!("{now},{now}"), "malformed"),
        ("NaN".to_string(), "malformed"),
        ("".to_string(), "malformed"),
    ];
    for (n, (timestamp, says)) in cases.into_iter().enumerate() {
        let body = hubspot_body(PORTAL, 8000 + n as i64);
        let headers = v3_headers(CRM, &body, &timestamp);
        let answer = server.post(CRM, body.into_bytes(), &headers).await;
        server
            .assert_refused(
                &format!("timestamp {timestamp:?}"),
                answer,
                401,
                says,
                (0, 0),
            )
            .await;
    }
    // Inside the window, behind and ahead, deliveries are taken.
    for (n, offset) in [-240_000i64, -1_000, 0, 1_000, 240_000]
        .into_iter()
        .enumerate()
    {
        let body = hubspot_body(PORTAL, 9000 + n as i64);
        let headers = v3_headers(CRM, &body, &(now_ms() + offset).to_string());
        let (status, text) = server.post(CRM, body.into_bytes(), &headers).await;
        assert_eq!(status, 200, "offset {offset} ms: {text}");
    }
    support::eventually(
        std::time::Duration::from_secs(5),
        "the five fresh deliveries published",
        || {
            let server = &server;
            async move { server.published_and_stored().await == (5, 5) }
        },
    )
    .await;
    server.still_takes_deliveries().await;
    server.finish().await;
}

/// Issue 20: a signature, timestamp or delivery-id header given twice is refused,
/// whichever value comes first and even when both are the valid one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_signature_or_timestamp_header_is_refused() {
    let server = Server::start().await;
    let hubspot = hubspot_body(PORTAL, 7101);
    let ts = now_ms().to_string();
    let v3 = v3_headers(CRM, &hubspot, &ts);
    let (signature, timestamp) = (v3[0].1.clone(), v3[1].1.clone());
    let forged = hubspot_v3("POST", &format!("{PUBLIC_BASE}{CRM}"), "[]", &ts);
    let other_ts = (now_ms() - 1).to_string();
    let sig = "x-hubspot-signature-v3";
    let stamp = "x-hubspot-request-timestamp";
    let hubspot_cases: Vec<(&str, Lines, &str)> = vec![
        (
            "valid v3 signature, then a forged one",
            vec![
                (sig, signature.clone()),
                (sig, forged.clone()),
                (stamp, timestamp.clone()),
            ],
            sig,
        ),
        (
            "forged v3 signature, then the valid one",
            vec![
                (sig, forged.clone()),
                (sig, signature.clone()),
                (stamp, timestamp.clone()),
            ],
            sig,
        ),
        (
            "the valid v3 signature twice",
            vec![
                (sig, signature.clone()),
                (sig, signature.clone()),
                (stamp, timestamp.clone()),
            ],
            sig,
        ),
        (
            "the signed timestamp, then another",
            vec![
                (sig, signature.clone()),
                (stamp, timestamp.clone()),
                (stamp, other_ts.clone()),
            ],
            stamp,
        ),
        (
            "another timestamp, then the signed one",
            vec![
                (sig, signature.clone()),
                (stamp, other_ts.clone()),
                (stamp, timestamp.clone()),
            ],
            stamp,
        ),
        (
            "the signed timestamp twice",
            vec![
                (sig, signature.clone()),
                (stamp, timestamp.clone()),
                (stamp, timestamp.clone()),
            ],
            stamp,
        ),
        (
            "a legacy signature twice beside a valid v3",
            vec![
                (sig, signature.clone()),
                (stamp, timestamp.clone()),
                ("x-hubspot-signature", "00".into()),
                ("x-hubspot-signature", "11".into()),
            ],
            "x-hubspot-signature",
        ),
        (
            "the version header twice beside a valid v3",
            vec![
                (sig, signature.clone()),
                (stamp, timestamp.clone()),
                ("x-hubspot-signature-version", "v3".into()),
                ("X-HubSpot-Signature-Version", "v1".into()),
            ],
            "x-hubspot-signature-version",
        ),
    ];
    for (what, headers, header) in hubspot_cases {
        let answer = server
            .post(CRM, hubspot.clone().into_bytes(), &headers)
            .await;
        server
            .assert_refused(
                what,
                answer,
                401,
                &format!("`{header}` header appears more than once"),
                (0, 0),
            )
            .await;
    }
    // Two values folded into one line, as a proxy may join them, are malformed.
    let folded = vec![
        (sig, format!("{signature}, {forged}")),
        (stamp, timestamp.clone()),
    ];
    let answer = server
        .post(CRM, hubspot.clone().into_bytes(), &folded)
        .await;
    server
        .assert_refused(
            "two v3 signatures on one line",
            answer,
            401,
            "malformed",
            (0, 0),
        )
        .await;

    let xero = xero_body(&[(TENANT, "717f2bfc-c6d4-41fd-b238-3f2f0c0cf701")]);
    let valid = xero_signature(&xero, XERO_KEY);
    let wrong = xero_signature(&xero, "not-the-key");
    for (what, first, second) in [
        ("a valid Xero signature, then a wrong one", &valid, &wrong),
        ("a wrong Xero signature, then the valid one", &wrong, &valid),
        ("the valid Xero signature twice", &valid, &valid),
    ] {
        let headers = [
            ("x-xero-signature", first.clone()),
            ("X-Xero-Signature", second.clone()),
        ];
        let answer = server
            .post("/webhooks/acme/finance", xero.clone(), &headers)
            .await;
        server
            .assert_refused(
                what,
                answer,
                401,
                "`x-xero-signature` header appears more than once",
                (0, 0),
            )
            .await;
    }

    let relay = xero_body(&[(TENANT, "717f2bfc-c6d4-41fd-b238-3f2f0c0cf702")]);
    let standard = standard_headers("msg_1", &(now_ms() / 1000).to_string(), &relay);
    for repeated in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
        let mut headers = standard.clone();
        let value = headers
            .iter()
            .find(|(name, _)| *name == repeated)
            .map(|(_, value)| value.clone())
            .expect("present");
        headers.push((repeated, value));
        let answer = server
            .post("/webhooks/relay/finance", relay.clone(), &headers)
            .await;
        server
            .assert_refused(
                &format!("{repeated} twice"),
                answer,
                401,
                &format!("`{repeated}` header appears more than once"),
                (0, 0),
            )
            .await;
    }
    // The same headers once each are taken.
    let (status, text) = server
        .post("/webhooks/relay/finance", relay, &standard)
        .await;
    assert_eq!((status, text.as_str()), (200, ""), "the relay's delivery");
    let (status, text) = server.post(CRM, hubspot.into_bytes(), &v3).await;
    assert_eq!(status, 200, "the HubSpot delivery once: {text}");
    server.still_takes_deliveries().await;
    server.finish().await;
}

/// Issue 20: HubSpot's v1 and v2 have no timestamp, so a pair takes them only when it
/// names them in `signature_versions`. A captured request stripped of its v3 headers
/// is refused by a pair that did not opt in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hubspot_v1_and_v2_only_where_a_pair_opts_in() {
    let server = Server::start().await;
    let legacy = |pair: &str, version: Option<&str>, object: i64| {
        let path = format!("/webhooks/{pair}/crm");
        let body = hubspot_body(PORTAL, object);
        let url = format!("{PUBLIC_BASE}{path}");
        let signature = hubspot_legacy(version.unwrap_or("v1"), &url, &body);
        let mut headers = vec![("x-hubspot-signature", signature)];
        if let Some(version) = version {
            headers.push(("x-hubspot-signature-version", version.to_string()));
        }
        (path, body, headers)
    };
    for (n, version) in [Some("v1"), Some("v2"), None, Some("V1")]
        .into_iter()
        .enumerate()
    {
        let (path, body, headers) = legacy("acme", version, 7200 + n as i64);
        let answer = server.post(&path, body.into_bytes(), &headers).await;
        server
            .assert_refused(
                &format!("{version:?} to a v3-only pair"),
                answer,
                401,
                "not accepted",
                (0, 0),
            )
            .await;
    }
    // A request as HubSpot sends it (v3 beside v1) whose v3 headers were stripped by
    // whoever captured it.
    let body = hubspot_body(PORTAL, 7210);
    let headers = vec![
        ("x-hubspot-signature", hubspot_legacy("v1", "", &body)),
        ("x-hubspot-signature-version", "v1".to_string()),
    ];
    let answer = server.post(CRM, body.into_bytes(), &headers).await;
    server
        .assert_refused(
            "a captured request without its v3 headers",
            answer,
            401,
            "no timestamp",
            (0, 0),
        )
        .await;
    // An unknown version is refused, its text escaped.
    let body = hubspot_body(PORTAL, 7211);
    let headers = vec![
        ("x-hubspot-signature", "00".to_string()),
        ("x-hubspot-signature-version", "v9\"}".to_string()),
    ];
    let answer = server.post(CRM, body.into_bytes(), &headers).await;
    server
        .assert_refused(
            "version v9",
            answer,
            401,
            "unsupported signature version",
            (0, 0),
        )
        .await;
    // The pair that opted in takes v1 and v2; a forged v1 is still refused there.
    for (n, version) in [Some("v1"), Some("v2"), None].into_iter().enumerate() {
        let (path, body, headers) = legacy("legacy", version, 7300 + n as i64);
        let (status, text) = server.post(&path, body.into_bytes(), &headers).await;
        assert_eq!(status, 200, "{version:?} to the pair that opted in: {text}");
    }
    support::eventually(
        std::time::Duration::from_secs(5),
        "three legacy deliveries published",
        || {
            let server = &server;
            async move { server.published_and_stored().await == (3, 3) }
        },
    )
    .await;
    let (path, body, _) = legacy("legacy", Some("v1"), 7400);
    let forged = vec![
        ("x-hubspot-signature", hubspot_legacy("v1", "", "[]")),
        ("x-hubspot-signature-version", "v1".to_string()),
    ];
    let answer = server.post(&path, body.into_bytes(), &forged).await;
    server
        .assert_refused(
            "a forged v1 to the pair that opted in",
            answer,
            401,
            "signature does not match",
            (3, 3),
        )
        .await;
    server.still_takes_deliveries().await;
    server.finish().await;
}

/// Issue 20: a pair can take its deliveries from a relay that signs with Standard
/// Webhooks (`webhook_signing = "standard_webhooks"`), with the same freshness window
/// and the same binding to the pair's accounts; the service's own signature is not
/// taken there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_signing_with_standard_webhooks_is_a_source_a_pair_can_choose() {
    let server = Server::start().await;
    let xero = xero_body(&[(TENANT, "717f2bfc-c6d4-41fd-b238-3f2f0c0cf801")]);
    let hubspot = hubspot_body(PORTAL, 7501);
    let now_s = now_ms() / 1000;
    let finance = "/webhooks/relay/finance";
    let crm = "/webhooks/relay/crm";

    // The official vector as published: its signature holds, but it was signed in
    // 2021, so the window refuses it.
    let vectors: Value = serde_json::from_str(
        &std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("specs/standard-webhooks-vectors.json"),
        )
        .expect("the vectors vendored in specs/"),
    )
    .expect("json");
    let v = &vectors["vectors"][0];
    let published = vec![
        ("webhook-id", v["msg_id"].as_str().expect("id").to_string()),
        ("webhook-timestamp", v["timestamp"].to_string()),
        (
            "webhook-signature",
            v["expected_signature"].as_str().expect("sig").to_string(),
        ),
    ];
    let payload = v["payload"].as_str().expect("payload").as_bytes().to_vec();
    let answer = server.post(finance, payload, &published).await;
    server
        .assert_refused(
            "the published vector, years later",
            answer,
            401,
            "older than",
            (0, 0),
        )
        .await;

    let cases: Vec<(&str, &str, Vec<u8>, Lines, &str)> = vec![
        (
            "Xero's own signature at the relay's endpoint",
            finance,
            xero.clone(),
            vec![("x-xero-signature", xero_signature(&xero, XERO_KEY))],
            "`webhook-id` header is missing",
        ),
        (
            "HubSpot's own v3 at the relay's endpoint",
            crm,
            hubspot.clone().into_bytes(),
            v3_headers(crm, &hubspot, &now_ms().to_string()),
            "`webhook-id` header is missing",
        ),
        (
            "ten minutes old",
            finance,
            xero.clone(),
            standard_headers("msg_old", &(now_s - 600).to_string(), &xero),
            "older than",
        ),
        (
            "ten minutes ahead",
            finance,
            xero.clone(),
            standard_headers("msg_ahead", &(now_s + 600).to_string(), &xero),
            "further ahead",
        ),
        (
            "a timestamp past i64",
            finance,
            xero.clone(),
            standard_headers("msg_big", "9223372036854775808", &xero),
            "malformed",
        ),
        (
            "a timestamp in milliseconds",
            finance,
            xero.clone(),
            standard_headers("msg_ms", &now_ms().to_string(), &xero),
            "further ahead",
        ),
        (
            "signed for another body",
            finance,
            xero_body(&[(TENANT, "717f2bfc-c6d4-41fd-b238-3f2f0c0cf899")]),
            standard_headers("msg_x", &now_s.to_string(), &xero),
            "signature does not match",
        ),
        (
            "another id than the one signed",
            finance,
            xero.clone(),
            {
                let mut headers = standard_headers("msg_a", &now_s.to_string(), &xero);
                headers[0].1 = "msg_b".into();
                headers
            },
            "signature does not match",
        ),
    ];
    for (what, path, body, headers, says) in cases {
        let answer = server.post(path, body, &headers).await;
        server.assert_refused(what, answer, 401, says, (0, 0)).await;
    }
    // A relay offering many signatures (rotation) is taken when one holds.
    let mut headers = standard_headers("msg_ok", &now_s.to_string(), &xero);
    headers[2].1 = format!(
        "v1,AAAA v2,{} {} v1,bm9wZQ==",
        &headers[2].1[3..],
        headers[2].1
    );
    let (status, text) = server.post(finance, xero, &headers).await;
    assert_eq!(
        (status, text.as_str()),
        (200, ""),
        "Xero's body through the relay"
    );
    let headers = standard_headers("msg_ok_crm", &now_s.to_string(), hubspot.as_bytes());
    let (status, text) = server.post(crm, hubspot.into_bytes(), &headers).await;
    assert_eq!(status, 200, "HubSpot's body through the relay: {text}");
    // Through the relay too, another account's delivery is refused.
    let foreign = xero_body(&[(OTHER_TENANT, "717f2bfc-c6d4-41fd-b238-3f2f0c0cf802")]);
    let headers = standard_headers("msg_foreign", &now_s.to_string(), &foreign);
    let answer = server.post(finance, foreign, &headers).await;
    server
        .assert_refused(
            "another organisation through the relay",
            answer,
            403,
            "not connected to",
            (2, 2),
        )
        .await;
    server.still_takes_deliveries().await;
    server.finish().await;
}

/// Issue 20: a delivery any of whose changes names another Xero organisation or
/// HubSpot portal than the pair's is refused whole (403, not retried by HubSpot),
/// counted, and nothing of it is taken.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_naming_another_account_are_refused_and_counted() {
    let server = Server::start().await;
    let finance_count = "tandem_webhooks_foreign_tenant_total{pair=\"acme\",system=\"finance\"}";
    let crm_count = "tandem_webhooks_foreign_tenant_total{pair=\"acme\",system=\"crm\"}";
    let ours = "717f2bfc-c6d4-41fd-b238-3f2f0c0cf901";
    let theirs = "717f2bfc-c6d4-41fd-b238-3f2f0c0cf902";
    let xero_cases: Vec<(&str, Vec<u8>)> = vec![
        ("another organisation", xero_body(&[(OTHER_TENANT, theirs)])),
        (
            "ours, then another",
            xero_body(&[(TENANT, ours), (OTHER_TENANT, theirs)]),
        ),
        (
            "another, then ours",
            xero_body(&[(OTHER_TENANT, theirs), (TENANT, ours)]),
        ),
        ("an empty tenant id", xero_body(&[("", theirs)])),
        (
            "a tenant id with our id inside it",
            xero_body(&[(&format!("{TENANT}x"), theirs)]),
        ),
        (
            "a tenant id padded with our id",
            xero_body(&[(&format!("x{TENANT}"), theirs)]),
        ),
        (
            "an application, not an organisation",
            xero_body(&[("00000000-0000-0000-0000-000000000000", theirs)]),
        ),
    ];
    let mut refused = 0;
    for (what, body) in xero_cases {
        let signature = xero_signature(&body, XERO_KEY);
        let answer = server
            .post(
                "/webhooks/acme/finance",
                body,
                &[("x-xero-signature", signature)],
            )
            .await;
        server
            .assert_refused(
                what,
                answer,
                403,
                "Xero organisation (tenantId) that pair `acme` is not connected to",
                (0, 0),
            )
            .await;
        refused += 1;
        assert_eq!(
            server.metric(finance_count).await,
            refused,
            "{what} counted"
        );
    }
    let hubspot_cases: Vec<(&str, String)> = vec![
        ("another portal", hubspot_body(PORTAL + 1, 7601)),
        ("portal 0", hubspot_body(0, 7602)),
        ("a negative portal", hubspot_body(-PORTAL, 7603)),
        ("the largest portal", hubspot_body(i64::MAX, 7604)),
        (
            "ours, then another",
            json!([
                serde_json::from_str::<Value>(&hubspot_body(PORTAL, 7605)).expect("json")[0],
                serde_json::from_str::<Value>(&hubspot_body(PORTAL + 1, 7606)).expect("json")[0],
            ])
            .to_string(),
        ),
    ];
    let mut refused = 0;
    for (what, body) in hubspot_cases {
        let headers = v3_headers(CRM, &body, &now_ms().to_string());
        let answer = server.post(CRM, body.into_bytes(), &headers).await;
        server
            .assert_refused(
                what,
                answer,
                403,
                "HubSpot portal (portalId) that pair `acme` is not connected to",
                (0, 0),
            )
            .await;
        refused += 1;
        assert_eq!(server.metric(crm_count).await, refused, "{what} counted");
    }
    // Our organisation, its UUID in capitals, is ours.
    let body = xero_body(&[(&TENANT.to_uppercase(), ours)]);
    let signature = xero_signature(&body, XERO_KEY);
    let (status, text) = server
        .post(
            "/webhooks/acme/finance",
            body,
            &[("x-xero-signature", signature)],
        )
        .await;
    assert_eq!((status, text.as_str()), (200, ""));
    assert_eq!(
        server.metric(finance_count).await,
        7,
        "a delivery taken is not counted"
    );
    server.still_takes_deliveries().await;
    server.finish().await;
}
