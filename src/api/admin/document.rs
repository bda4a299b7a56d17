//! The admin API's OpenAPI document as served and committed: poem-openapi's, plus the
//! admin token. The token is checked once, in front of every operation
//! ([`super::require_token`]), rather than as a parameter of each handler, so the
//! generator does not know of it; this adds what it would have said: the bearer scheme,
//! the requirement on every operation, and the 401 each of them can answer.

use serde_json::{json, Value};

use super::AdminApi;

/// The name of the admin token's scheme in the document.
const SCHEME: &str = "adminToken";

/// The document of `service`, with the admin token in it.
pub fn document(service: &poem_openapi::OpenApiService<AdminApi, ()>) -> String {
    with_admin_token(&service.spec())
}

/// The API browser's page (Swagger UI) showing [`document`], with its "Authorize" button.
pub fn browser_page(service: &poem_openapi::OpenApiService<AdminApi, ()>) -> String {
    // The page embeds the generator's document verbatim; swap in the complete one.
    let spec = service.spec();
    service
        .swagger_ui_html()
        .replacen(&spec, &with_admin_token(&spec), 1)
}

/// `spec` with the bearer scheme, the requirement and a 401 on every operation. A spec
/// that is not a JSON object (it always is) is returned as it came.
fn with_admin_token(spec: &str) -> String {
    let Ok(mut doc) = serde_json::from_str::<Value>(spec) else {
        return spec.to_string();
    };
    let Some(root) = doc.as_object_mut() else {
        return spec.to_string();
    };
    let components = root.entry("components").or_insert_with(|| json!({}));
    components["securitySchemes"][SCHEME] = json!({
        "type": "http",
        "scheme": "bearer",
        "description": "The admin token (`admin_token` in the settings, or `TANDEM_ADMIN_TOKEN`): every operation needs `Authorization: Bearer <token>`.",
    });
    root.insert("security".into(), json!([{ SCHEME: [] }]));
    let refusal = json!({
        "description": "The admin token is missing or wrong",
        "content": {
            "application/json; charset=utf-8": {
                "schema": { "$ref": "#/components/schemas/ApiError" }
            }
        }
    });
    if let Some(paths) = root.get_mut("paths").and_then(Value::as_object_mut) {
        for operation in paths
            .values_mut()
            .filter_map(Value::as_object_mut)
            .flat_map(|methods| methods.values_mut())
        {
            if let Some(responses) = operation
                .get_mut("responses")
                .and_then(Value::as_object_mut)
            {
                responses.insert("401".into(), refusal.clone());
            }
        }
    }
    serde_json::to_string_pretty(&doc).unwrap_or_else(|_| spec.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_operation_documents_the_token_and_its_401() {
        let spec = json!({
            "openapi": "3.0.0",
            "paths": {
                "/a": { "get": { "responses": { "200": {} } }, "post": { "responses": {} } },
                "/b": { "get": { "responses": { "503": {} } } }
            },
            "components": { "schemas": {} }
        })
        .to_string();
        let doc: Value = serde_json::from_str(&with_admin_token(&spec)).expect("JSON");
        assert_eq!(doc["security"], json!([{ "adminToken": [] }]));
        assert_eq!(
            doc["components"]["securitySchemes"]["adminToken"]["scheme"],
            "bearer"
        );
        for (path, method) in [("/a", "get"), ("/a", "post"), ("/b", "get")] {
            assert!(
                doc["paths"][path][method]["responses"]["401"].is_object(),
                "{method} {path}"
            );
        }
        assert!(doc["paths"]["/b"]["get"]["responses"]["503"].is_object());
    }
}
