//! Each kind of admin parameter (counts, windows, times, ids, pair names, free text,
//! words from a list, lists of ids) out of its range: 400, naming the parameter and
//! the range. The values are the kinds a hostile or careless client sends: beyond
//! `i64`, negative, non-ASCII, control characters, years 1 and 9999, empty, huge.

use reqwest::Method;
use serde_json::json;

use super::{test_limits, Hostile};

/// Query and path parameters: (path, the parameter named, the range's words).
const QUERY_CASES: &[(&str, &str, &str)] = &[
    (
        "/api/stats?window=9999999999999999999h",
        "window",
        "1m to 90d",
    ),
    ("/api/stats?window=1%C3%A9", "window", "1m to 90d"),
    ("/api/stats?window=%E0%AB%93", "window", "1m to 90d"),
    ("/api/stats?window=0h", "window", "1m to 90d"),
    ("/api/stats?window=-5m", "window", "1m to 90d"),
    (
        "/api/sync-logs?offset=9223372036854775808",
        "offset",
        "0 to 1000000",
    ),
    ("/api/sync-logs?offset=-1", "offset", "0 to 1000000"),
    ("/api/sync-logs?limit=0", "limit", "1 to 500"),
    ("/api/sync-logs?limit=501", "limit", "1 to 500"),
    ("/api/sync-logs?limit=1e2", "limit", "1 to 500"),
    ("/api/sync-logs?limit=%2B5", "limit", "1 to 500"),
    (
        "/api/sync-logs?since=0001-01-01T00:00:00Z",
        "since",
        "2000-01-01T00:00:00Z",
    ),
    (
        "/api/sync-logs?until=9999-12-31T23:59:59Z",
        "until",
        "2100-01-01T00:00:00Z",
    ),
    ("/api/sync-logs?since=yesterday", "since", "RFC 3339"),
    (
        "/api/sync-logs?entity=Customer",
        "entity",
        "customer, invoice",
    ),
    ("/api/sync-logs?system=crm%00", "system", "crm, finance"),
    ("/api/sync-logs?outcome=exploded", "outcome", "created"),
    ("/api/sync-logs?pair=acme%0A", "pair", "a-z, 0-9"),
    ("/api/sync-logs?pair=", "pair", "a-z, 0-9"),
    (
        "/api/conflicts?status=open%0D%0A",
        "status",
        "open, decided",
    ),
    ("/api/conflicts?limit=100000", "limit", "1 to 500"),
    ("/api/records?q=a", "q", "2 to 200"),
    ("/api/records?q=ab%00cd", "q", "control characters"),
    ("/api/records?limit=101&q=acme", "limit", "1 to 100"),
    (
        "/api/records/acme/customer/crm/a%00b",
        "id",
        "control characters",
    ),
    (
        "/api/records/acme/customer/crm/a%1Bb",
        "id",
        "control characters",
    ),
    (
        "/api/records/acme/customer/crm/a%C2%85b",
        "id",
        "control characters",
    ),
    ("/api/records/ACME/customer/crm/1", "pair", "a-z, 0-9"),
    (
        "/api/records/acme/contact/crm/1",
        "entity",
        "customer, invoice",
    ),
    ("/api/records/acme/customer/erp/1", "system", "crm, finance"),
    ("/api/jobs/not-a-uuid", "id", ""),
    ("/api/jobs/%00", "id", ""),
];

#[tokio::test]
async fn a_query_or_path_parameter_out_of_range_is_a_400_naming_it() {
    let server = Hostile::start(test_limits()).await;
    for (path, parameter, range) in QUERY_CASES {
        let answer = server.call(Method::GET, path, None).await;
        // The parameter first, then its range: no type names of the framework's.
        let named = format!("`{parameter}` ");
        assert!(
            answer.1.contains(&format!("\"error\":\"`{parameter}` ")),
            "{path}: {}",
            answer.1
        );
        server
            .assert_refused(path, answer, 400, &[named.as_str(), range])
            .await;
    }
    let long_id = format!("/api/records/acme/customer/crm/{}", "x".repeat(256));
    let answer = server.call(Method::GET, &long_id, None).await;
    server
        .assert_refused("a 256-character id", answer, 400, &["`id`", "1 to 255"])
        .await;
}

#[tokio::test]
async fn a_body_field_out_of_range_is_a_400_naming_it() {
    let server = Hostile::start(test_limits()).await;
    let ids = |n: usize| (0..n).map(|i| i.to_string()).collect::<Vec<_>>();
    let resync = |extra: serde_json::Value| {
        let mut body = json!({"pair": "acme", "system": "crm", "entity": "customer"});
        for (key, value) in extra.as_object().expect("an object") {
            body[key] = value.clone();
        }
        body
    };
    let cases = [
        (
            "/api/resync",
            resync(json!({"ids": ids(1001)})),
            "`ids`",
            "1 to 1000",
        ),
        (
            "/api/resync",
            resync(json!({"ids": []})),
            "`ids`",
            "1 to 1000",
        ),
        (
            "/api/resync",
            resync(json!({"ids": ["ok", "a\u{0}b"]})),
            "`ids[1]`",
            "control characters",
        ),
        (
            "/api/resync",
            resync(json!({"ids": ["x".repeat(256)]})),
            "`ids[0]`",
            "1 to 255",
        ),
        (
            "/api/resync",
            resync(json!({"pair": "acme\n", "everything": true})),
            "`pair`",
            "a-z, 0-9",
        ),
        (
            "/api/resync",
            resync(json!({"system": "CRM", "everything": true})),
            "`system`",
            "crm, finance",
        ),
        (
            "/api/resync",
            resync(json!({"entity": "contact", "everything": true})),
            "`entity`",
            "customer, invoice",
        ),
        (
            "/api/resync",
            resync(
                json!({"modified_from": "0001-01-01T00:00:00Z", "modified_to": "2026-01-01T00:00:00Z"}),
            ),
            "`modified_from`",
            "2000-01-01T00:00:00Z",
        ),
        (
            "/api/resync",
            resync(
                json!({"modified_from": "2026-02-01T00:00:00Z", "modified_to": "2026-01-01T00:00:00Z"}),
            ),
            "`modified_from`",
            "a start before the end",
        ),
        (
            "/api/replay",
            json!({"from": "0001-01-01T00:00:00Z", "to": "9999-12-31T23:59:59Z"}),
            "`from`",
            "2000-01-01T00:00:00Z",
        ),
        (
            "/api/replay",
            json!({"from": "2026-01-01T00:00:00Z", "to": "2026-03-01T00:00:00Z"}),
            "`from`",
            "at most 31 days",
        ),
        (
            "/api/replay",
            json!({"from": "2026-01-01T00:00:00Z", "to": "2026-01-02T00:00:00Z", "pair": "a\u{7f}"}),
            "`pair`",
            "a-z, 0-9",
        ),
        (
            "/api/failures/retry",
            json!({"entity": "x\u{0}"}),
            "`entity`",
            "customer, invoice",
        ),
        (
            "/api/failures/retry",
            json!({"pair": "Ünïcode"}),
            "`pair`",
            "a-z, 0-9",
        ),
    ];
    for (path, body, field, range) in cases {
        let what = format!("POST {path} {}", params::shown(&body.to_string()));
        let answer = server.call(Method::POST, path, Some(body)).await;
        server
            .assert_refused(&what, answer, 400, &[field, range])
            .await;
    }
}

/// The request of issue 20: 450,000 ids in 5 MB. It is refused by size before it is
/// read (the admin body limit); 1,001 small ids are refused by count.
#[tokio::test]
async fn a_resync_of_450000_ids_is_refused_and_queues_nothing() {
    let server = Hostile::start(test_limits()).await;
    let ids: Vec<String> = (0..450_000).map(|i| format!("{i:09}")).collect();
    let body = json!({"pair": "acme", "system": "crm", "entity": "customer", "ids": ids});
    let answer = server.call(Method::POST, "/api/resync", Some(body)).await;
    server
        .assert_refused("450,000 ids", answer, 413, &["larger than 262144 bytes"])
        .await;
}

/// The limits in force are the documented ones.
#[test]
fn the_documented_limits_are_the_enforced_ones() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    for documented in [
        format!("{} ids", params::limits::RESYNC_IDS),
        format!("{} days", params::limits::REPLAY_DAYS),
        format!("{}d", params::limits::STATS_WINDOW_DAYS),
        "`limit` 1 to 500".to_string(),
    ] {
        assert!(
            readme.contains(&documented),
            "the README does not say {documented:?}"
        );
    }
}
