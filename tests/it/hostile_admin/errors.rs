//! One error shape everywhere: the framework's own refusals (unknown route, method,
//! media type, unreadable body) answer `{"error": "..."}` like the handlers, and a
//! store that does not answer is a 503 with no driver text. With the parameter tests,
//! each error status the OpenAPI document lists is provoked at least once.

use reqwest::Method;
use sea_orm::ConnectionTrait;
use serde_json::json;
use tandem::store::{ConflictStore, RecordWork};

use super::{error_message, test_limits, Hostile, TOKEN};

#[tokio::test]
async fn the_frameworks_own_refusals_are_json() {
    let server = Hostile::start(test_limits()).await;
    let answer = server.call(Method::GET, "/no-such-page", None).await;
    server
        .assert_refused("unknown route", answer, 404, &["no such endpoint"])
        .await;
    let answer = server
        .call(Method::GET, "/api/no-such-endpoint", None)
        .await;
    server
        .assert_refused("unknown admin route", answer, 404, &["no such endpoint"])
        .await;
    let answer = server.call(Method::DELETE, "/health", None).await;
    server
        .assert_refused("DELETE /health", answer, 405, &["DELETE"])
        .await;
    let answer = server.call(Method::PUT, "/api/resync", None).await;
    server
        .assert_refused("PUT /api/resync", answer, 405, &["PUT"])
        .await;

    let post = |content_type: &'static str, body: &'static str| {
        server
            .client
            .post(format!("{}/api/resync", server.base))
            .bearer_auth(TOKEN)
            .header("content-type", content_type)
            .body(body)
    };
    let text = |response: reqwest::Response| async move {
        let status = response.status().as_u16();
        (status, response.text().await.expect("a body"))
    };
    let answer = text(post("text/plain", "ids=1").send().await.expect("an answer")).await;
    server.assert_refused("text/plain", answer, 415, &[]).await;
    let answer = text(
        post("application/json", "{\"pair\": ")
            .send()
            .await
            .expect("an answer"),
    )
    .await;
    server
        .assert_refused("truncated JSON", answer, 400, &[])
        .await;
    let answer = text(
        post("application/json", "[1, 2]")
            .send()
            .await
            .expect("an answer"),
    )
    .await;
    server
        .assert_refused("JSON of the wrong shape", answer, 400, &[])
        .await;

    let unauthorised = server
        .client
        .get(format!("{}/api/sync-logs", server.base))
        .send()
        .await
        .expect("an answer");
    let answer = text(unauthorised).await;
    server
        .assert_refused("no token", answer, 401, &["Bearer"])
        .await;
}

#[tokio::test]
async fn an_unknown_job_is_a_404_and_a_valid_request_still_works() {
    let server = Hostile::start(test_limits()).await;
    let path = format!("/api/jobs/{}", uuid::Uuid::new_v4());
    let answer = server.call(Method::GET, &path, None).await;
    server
        .assert_refused("unknown job", answer, 404, &["no job"])
        .await;
    let (status, text) = server
        .call(Method::GET, "/api/sync-logs?limit=500&offset=1000000", None)
        .await;
    assert_eq!(
        (status, text.as_str()),
        (200, "[]"),
        "the edges of the ranges are accepted"
    );
}

/// The database stops taking connections: every store-backed endpoint answers 503 with
/// the same words and no driver text, and answers again once it is back.
#[tokio::test]
async fn a_store_that_does_not_answer_is_a_503_without_driver_text() {
    let server = Hostile::start(test_limits()).await;
    let name = server
        .db
        .url
        .rsplit('/')
        .next()
        .expect("a database name")
        .to_string();
    let admin = sea_orm::Database::connect(crate::support::pg_admin_url())
        .await
        .expect("connect as the administrator");
    let refuse = |allow: bool| format!("ALTER DATABASE {name} WITH ALLOW_CONNECTIONS {allow}");
    admin
        .execute_unprepared(&refuse(false))
        .await
        .expect("refuse connections");
    admin
        .execute_unprepared(&format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"
        ))
        .await
        .expect("end the store's sessions");
    for path in [
        "/api/sync-logs",
        "/api/conflicts",
        "/api/failures",
        "/api/deletes",
        "/api/stats",
        "/api/records?q=acme",
        "/api/records/acme/customer/crm/42",
        "/api/accounts",
        "/api/accounts/6f1c2a8e-0d4b-4c1e-9a57-3b2f8d9e1c40",
        "/api/pairs",
        "/api/pairs/acme",
    ] {
        let (status, text) = server.call(Method::GET, path, None).await;
        assert_eq!(status, 503, "{path}: {text}");
        assert_eq!(
            error_message(path, &text),
            "the store is unavailable; try again",
            "{path}"
        );
        super::assert_nothing_internal(path, &text);
    }
    let body = json!({"pair": "acme", "system": "crm", "entity": "customer", "ids": ["42"]});
    let (status, text) = server.call(Method::POST, "/api/resync", Some(body)).await;
    assert_eq!(status, 503, "resync: {text}");
    super::assert_nothing_internal("resync", &text);

    admin
        .execute_unprepared(&refuse(true))
        .await
        .expect("take connections again");
    let (status, text) = server.call(Method::GET, "/api/sync-logs", None).await;
    assert_eq!(status, 200, "once the database is back: {text}");
    assert_eq!(server.queued_and_stored().await, (0, 0));
}

/// Data the store holds but cannot read (a job whose status no version of Tandem
/// wrote): a 500 with no detail in the answer.
#[tokio::test]
async fn unreadable_data_is_a_500_without_its_detail() {
    let server = Hostile::start(test_limits()).await;
    let id = uuid::Uuid::new_v4();
    server
        .store
        .connection()
        .execute_unprepared(&format!(
            "INSERT INTO job (id, kind, params, status, created_at, updated_at) \
             VALUES ('{id}', 'resync', '{{}}', 'exploded', now(), now())"
        ))
        .await
        .expect("write a job no version of Tandem wrote");
    let (status, text) = server
        .call(Method::GET, &format!("/api/jobs/{id}"), None)
        .await;
    assert_eq!(status, 500, "{text}");
    assert_eq!(
        error_message("unreadable job", &text),
        "internal error; the server's log has the detail"
    );
    assert!(
        !text.contains("exploded"),
        "the stored value leaked: {text}"
    );
    server.assert_answers("after unreadable data").await;
}

/// A decision on a conflict no longer held for one: 409, and the first decision stands.
#[tokio::test]
async fn deciding_a_conflict_twice_is_a_409() {
    use tandem::domain::{EntityType, PairId, System, Trigger};
    use tandem::store::{
        ConflictState, ConflictWrite, EntityLink, NewSyncLogEntry, Outcome, SyncCommit, SyncStatus,
    };

    let server = Hostile::start(test_limits()).await;
    let mut link = EntityLink::new(PairId::new("acme"), EntityType::Customer, System::Crm, "c1");
    link.finance_id = Some("f1".into());
    link.sync_status = SyncStatus::Conflict;
    let mut log = NewSyncLogEntry::new(
        uuid::Uuid::now_v7(),
        PairId::new("acme"),
        EntityType::Customer,
        System::Crm,
        "c1",
        Trigger::Webhook,
        Outcome::Conflict,
    );
    log.link_id = Some(link.id);
    server
        .store
        .commit_sync(SyncCommit {
            link: Some(link),
            log,
            conflicts: vec![ConflictWrite {
                existing: None,
                field: "phone".into(),
                crm_value: Some(json!("1")),
                finance_value: Some(json!("2")),
                base_value: Some(json!("0")),
                policy: "manual".into(),
                state: ConflictState::Held,
            }],
            withdrawn: vec![],
            link_status: None,
            hold_delete: false,
            announced: None,
        })
        .await
        .expect("hold a conflict");
    let held = server
        .store
        .open_conflicts(10)
        .await
        .expect("open conflicts");
    let path = format!("/api/conflicts/{}/resolve", held[0].id);
    let (status, text) = server
        .call(Method::POST, &path, Some(json!({"keep": "crm"})))
        .await;
    assert_eq!(status, 200, "the first decision: {text}");
    let (status, text) = server
        .call(Method::POST, &path, Some(json!({"keep": "finance"})))
        .await;
    assert_eq!(status, 409, "{text}");
    error_message("a second decision", &text);
    super::assert_nothing_internal("a second decision", &text);
    let (status, text) = server
        .call(Method::GET, "/api/conflicts?status=decided", None)
        .await;
    assert_eq!(status, 200, "{text}");
    assert!(
        text.contains("\"winner\":\"crm\""),
        "the first decision stands: {text}"
    );
}

/// Every operation the committed document lists refuses a request without the admin
/// token with the 401 it documents, before its handler reads anything (so no
/// parameter, however wrong, is judged first), and so does a wrong token.
#[tokio::test]
async fn every_documented_operation_refuses_a_request_without_the_token() {
    let server = Hostile::start(test_limits()).await;
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/openapi.json");
    let spec: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("docs/openapi.json"))
            .expect("JSON");
    let mut operations = 0;
    for (route, methods) in spec["paths"].as_object().expect("paths") {
        // Any value stands in for a path parameter: the token is checked first.
        let route = route
            .split('/')
            .map(|part| if part.starts_with('{') { "x" } else { part })
            .collect::<Vec<_>>()
            .join("/");
        for (method, operation) in methods.as_object().expect("methods") {
            assert!(
                operation["responses"]["401"].is_object(),
                "{method} {route} does not document its 401"
            );
            let url = format!("{}/api{route}", server.base);
            let method =
                reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).expect("a method");
            for token in [None, Some("not-the-admin-token")] {
                let mut request = server.client.request(method.clone(), &url);
                if let Some(token) = token {
                    request = request.bearer_auth(token);
                }
                let answer = request.send().await.expect("an answer");
                let status = answer.status().as_u16();
                let text = answer.text().await.expect("a body");
                assert_eq!(status, 401, "{method} {route} with {token:?}: {text}");
                assert!(
                    error_message(&format!("{method} {route}"), &text).contains("Bearer"),
                    "{text}"
                );
            }
            operations += 1;
        }
    }
    assert!(operations >= 25, "only {operations} operations documented");
    assert_eq!(server.queued_and_stored().await, (0, 0));
}
