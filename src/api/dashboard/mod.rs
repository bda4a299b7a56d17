//! The dashboard: one page built into the binary (no CDN, works offline). It reads and
//! steers Tandem through the admin API with the token a person pastes in, refreshing
//! every two seconds.

use poem::{handler, Response};

const PAGE: &str = include_str!("index.html");

#[handler]
pub async fn page() -> Response {
    Response::builder()
        .content_type("text/html; charset=utf-8")
        .header("cache-control", "no-store")
        .body(PAGE)
}
