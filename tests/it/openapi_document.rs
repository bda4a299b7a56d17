//! The committed OpenAPI document (`docs/openapi.json`) is the one the code serves.
//! After changing the admin API, regenerate it with
//! `TANDEM_UPDATE_OPENAPI=1 cargo nextest run --test it -E 'test(/^openapi_document::/)'`.

use std::sync::Arc;

use tandem::api::admin::{self, AdminState};
use tandem::bus::memory::MemoryBus;
use tandem::bus::{Bus, BusConfig};
use tandem::intake::jobs::JobRunner;
use tandem::store::{self, Store};

#[tokio::test]
async fn the_committed_openapi_document_matches_the_code() {
    let store: Arc<dyn Store> = Arc::new(store::connect("sqlite::memory:").await.expect("store"));
    let bus: Arc<dyn Bus> = Arc::new(MemoryBus::new(BusConfig::new("memory", "doc")));
    let jobs = Arc::new(JobRunner::new(
        store.clone(),
        bus.clone(),
        Default::default(),
    ));
    let service = admin::service(AdminState {
        store,
        bus,
        jobs,
        queue: Default::default(),
        backlog: Default::default(),
        connections: Default::default(),
        connect: None,
        file_pairs: Vec::new(),
        public_base_url: None,
    });
    let spec = admin::document::document(&service);
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/openapi.json");
    if std::env::var_os("TANDEM_UPDATE_OPENAPI").is_some() {
        std::fs::write(&path, format!("{spec}\n")).expect("write docs/openapi.json");
    }
    let committed = std::fs::read_to_string(&path).expect("docs/openapi.json is committed");
    assert_eq!(
        committed.trim_end(),
        spec.trim_end(),
        "docs/openapi.json differs from the code; regenerate it with TANDEM_UPDATE_OPENAPI=1 cargo nextest run --test it -E 'test(/^openapi_document::/)'"
    );
}

/// Each admin operation's documented statuses are exactly those of the answer type its
/// handler returns (and the admin token's 401), and the document keeps the promises every client relies on: one
/// error shape, a 400 wherever a parameter or a body can be refused, and the store's
/// and the bus's failures as 503 (and unreadable data as 500) wherever they are asked.
#[test]
fn every_operation_documents_exactly_what_its_handler_can_answer() {
    use std::collections::{BTreeMap, BTreeSet};

    use poem_openapi::ApiResponse;
    use serde_json::Value;
    use tandem::api::admin::operations::StoreAnswer;
    use tandem::api::admin::{accounts, conflicts, connections, jobs, operations, pairs, records};

    fn statuses<A: ApiResponse>() -> BTreeSet<u16> {
        A::meta()
            .responses
            .iter()
            .filter_map(|r| r.status)
            .collect()
    }
    let handlers: BTreeMap<(&str, &str), BTreeSet<u16>> = BTreeMap::from([
        (("post", "/api/resync"), statuses::<jobs::StartResponse>()),
        (("post", "/api/replay"), statuses::<jobs::StartResponse>()),
        (("get", "/api/jobs/{id}"), statuses::<jobs::JobResponse>()),
        (
            ("get", "/api/records/{pair}/{entity}/{system}/{id}"),
            statuses::<records::RecordResponse>(),
        ),
        (("get", "/api/records"), statuses::<records::FindResponse>()),
        (
            ("get", "/api/sync-logs"),
            statuses::<records::LogsResponse>(),
        ),
        (("get", "/api/stats"), statuses::<operations::StatsAnswer>()),
        (("get", "/api/queue"), statuses::<operations::QueueAnswer>()),
        (
            ("post", "/api/queue/pause"),
            statuses::<operations::QueueAnswer>(),
        ),
        (
            ("post", "/api/queue/resume"),
            statuses::<operations::QueueAnswer>(),
        ),
        (
            ("post", "/api/failures/retry"),
            statuses::<operations::RetryAnswer>(),
        ),
        (
            ("delete", "/api/failures"),
            statuses::<StoreAnswer<operations::Count>>(),
        ),
        (
            ("get", "/api/failures"),
            statuses::<StoreAnswer<Vec<records::LinkView>>>(),
        ),
        (
            ("post", "/api/deletes/{id}/approve"),
            statuses::<operations::ApproveAnswer>(),
        ),
        (
            ("get", "/api/deletes"),
            statuses::<StoreAnswer<Vec<operations::DeleteView>>>(),
        ),
        (
            ("get", "/api/conflicts"),
            statuses::<conflicts::ListAnswer>(),
        ),
        (
            ("post", "/api/conflicts/{id}/resolve"),
            statuses::<conflicts::ResolveAnswer>(),
        ),
        (
            ("get", "/api/connections"),
            statuses::<connections::ConnectionsAnswer>(),
        ),
        (
            ("post", "/api/accounts/connect/{kind}"),
            statuses::<accounts::StartAnswer>(),
        ),
        (
            ("post", "/api/accounts/choices/{choice}"),
            statuses::<accounts::AccountAnswer>(),
        ),
        (
            ("get", "/api/accounts/choices/{choice}"),
            statuses::<accounts::OfferedAnswer>(),
        ),
        (
            ("get", "/api/accounts"),
            statuses::<accounts::AccountsAnswer>(),
        ),
        (
            ("get", "/api/accounts/{id}"),
            statuses::<accounts::AccountAnswer>(),
        ),
        (
            ("post", "/api/accounts/{id}/disconnect"),
            statuses::<accounts::AccountAnswer>(),
        ),
        (("get", "/api/pairs"), statuses::<pairs::PairsAnswer>()),
        (("post", "/api/pairs"), statuses::<pairs::CreateAnswer>()),
        (
            ("get", "/api/pairs/{name}"),
            statuses::<pairs::PairAnswer>(),
        ),
        (
            ("post", "/api/pairs/{name}/{action}"),
            statuses::<pairs::PairAnswer>(),
        ),
    ]);
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/openapi.json");
    let spec: Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("docs/openapi.json"))
            .expect("JSON");
    let mut documented = BTreeMap::new();
    for (route, methods) in spec["paths"].as_object().expect("paths") {
        for (method, operation) in methods.as_object().expect("methods") {
            let what = format!("{method} /api{route}");
            let responses = operation["responses"].as_object().expect("responses");
            let codes: BTreeSet<u16> = responses
                .keys()
                .map(|code| code.parse().expect("a numeric status"))
                .collect();
            for (code, response) in responses {
                if code.starts_with('4') || code.starts_with('5') {
                    let schema = &response["content"]["application/json; charset=utf-8"]["schema"];
                    assert_eq!(
                        schema["$ref"], "#/components/schemas/ApiError",
                        "{what} {code}: every error is {{\"error\": \"...\"}}"
                    );
                }
            }
            let takes_input = operation["parameters"]
                .as_array()
                .is_some_and(|p| !p.is_empty())
                || operation.get("requestBody").is_some();
            assert!(
                !takes_input || codes.contains(&400),
                "{what} takes input but documents no 400"
            );
            if codes.contains(&500) {
                assert!(
                    codes.contains(&503),
                    "{what}: a store-backed answer is also a 503"
                );
            }
            if route != "/connections" {
                assert!(
                    codes.contains(&503),
                    "{what} asks the store or the bus: 503"
                );
            }
            documented.insert((method.clone(), format!("/api{route}")), codes);
        }
    }
    let expected: BTreeMap<(String, String), BTreeSet<u16>> = handlers
        .into_iter()
        // Every operation is behind the admin token, checked in front of the handlers.
        .map(|((method, route), mut codes)| {
            codes.insert(401);
            ((method.to_string(), route.to_string()), codes)
        })
        .collect();
    assert_eq!(
        documented, expected,
        "the document's operations and statuses differ from the handlers' answer types"
    );
}
