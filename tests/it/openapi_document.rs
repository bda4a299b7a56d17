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
    let spec = admin::service(AdminState {
        store,
        bus,
        jobs,
        queue: Default::default(),
        backlog: Default::default(),
        connections: Default::default(),
        connect: None,
        file_pairs: Vec::new(),
        public_base_url: None,
    })
    .spec();
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
