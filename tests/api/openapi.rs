//! The committed `openapi/openapi.json` is the document the code generates;
//! run with `UPDATE_OPENAPI=1` to rewrite it after an intended change.

use reqwest::StatusCode;

use crate::common::TestApp;

#[test]
fn committed_openapi_document_matches_the_code() {
    let generated = serde_json::to_string_pretty(&switchboard::http::openapi()).unwrap() + "\n";
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("openapi/openapi.json");
    if std::env::var("UPDATE_OPENAPI").is_ok() {
        std::fs::write(&path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "openapi/openapi.json drifted from the code; run `UPDATE_OPENAPI=1 cargo test openapi` and commit it"
    );
}

#[test]
fn every_operation_documents_its_errors_and_has_a_summary() {
    let doc = serde_json::to_value(switchboard::http::openapi()).unwrap();
    let paths = doc["paths"].as_object().unwrap();
    assert!(paths.len() >= 20, "routes are documented");
    for (path, item) in paths {
        for (method, op) in item.as_object().unwrap() {
            assert!(op["summary"].is_string(), "{method} {path} has a summary");
            let responses = op["responses"].as_object().unwrap();
            let errors = responses
                .keys()
                .filter(|k| k.starts_with('4') || k.starts_with('5'))
                .count();
            // Health and the public plan catalogue cannot fail.
            if path != "/health" && path != "/v1/billing/plans" {
                assert!(errors > 0, "{method} {path} documents its errors");
            }
            if op.get("security").is_some() {
                assert!(
                    responses.contains_key("401"),
                    "{method} {path} documents 401"
                );
            }
        }
    }
}

#[tokio::test]
async fn openapi_json_and_offline_docs_are_served() {
    let app = TestApp::spawn().await;
    let r = app.get("/openapi.json", None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["openapi"], "3.1.0");
    assert!(r.body["paths"]["/v1/channels"].is_object());
    let html = app.client.get(app.url("/docs/")).send().await.unwrap();
    assert_eq!(html.status(), StatusCode::OK);
    let text = html.text().await.unwrap();
    assert!(text.contains("swagger-ui"), "Swagger UI page");
    // The UI's assets come from the binary, not a CDN.
    assert!(!text.contains("https://"), "no external assets");
    let js = app
        .client
        .get(app.url("/docs/swagger-ui-bundle.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(js.status(), StatusCode::OK);
    assert!(js.bytes().await.unwrap().len() > 100_000);
}
