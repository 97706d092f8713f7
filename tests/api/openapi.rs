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
    let doc = switchboard::http::openapi();
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

#[test]
fn operation_ids_are_unique_and_pages_refer_to_their_items() {
    let doc = switchboard::http::openapi();
    let mut seen = std::collections::HashMap::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let id = op["operationId"].as_str().unwrap().to_owned();
            if let Some(other) = seen.insert(id.clone(), format!("{method} {path}")) {
                panic!("operationId {id} of {method} {path} is also {other}'s");
            }
        }
    }
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    let pages: Vec<&String> = schemas.keys().filter(|k| k.starts_with("Page_")).collect();
    assert!(pages.len() >= 10);
    for page in pages {
        let item = &schemas[page]["properties"]["items"]["items"];
        let target = item["$ref"]
            .as_str()
            .unwrap_or_else(|| panic!("{page} inlines its items"));
        let name = target.trim_start_matches("#/components/schemas/");
        assert!(
            schemas.contains_key(name),
            "{page} refers to a schema that exists"
        );
    }
}

#[test]
fn cross_cutting_answers_are_documented_where_they_apply() {
    let doc = switchboard::http::openapi();
    let op = &doc["paths"]["/v1/companies"]["post"];
    for status in ["400", "401", "403", "409", "413", "415", "422", "429"] {
        assert!(
            op["responses"][status].is_object(),
            "POST /v1/companies documents {status}"
        );
    }
    let params = op["parameters"].as_array().unwrap();
    assert!(
        params
            .iter()
            .any(|p| p["name"] == "Idempotency-Key" && p["in"] == "header")
    );
    let login = &doc["paths"]["/v1/auth/login"]["post"];
    assert!(login["responses"]["429"].is_object());
    assert!(
        login.get("parameters").is_none(),
        "anonymous routes take no Idempotency-Key"
    );
    let list = &doc["paths"]["/v1/companies"]["get"];
    let limit = list["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "limit")
        .unwrap();
    assert_eq!(limit["schema"]["minimum"], 1, "{limit}");
    assert_eq!(limit["schema"]["maximum"], 100, "{limit}");
}

/// Every `pattern` in the document is a rule the server applies: one of
/// `validate::PATTERNS` (utoipa takes literal patterns, so a copy that
/// drifted from the server's constant fails here).
#[test]
fn every_pattern_in_the_document_is_one_the_server_applies() {
    fn walk(v: &serde_json::Value, found: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(map) => {
                for (k, v) in map {
                    match (k.as_str(), v) {
                        ("pattern", serde_json::Value::String(p)) => found.push(p.clone()),
                        _ => walk(v, found),
                    }
                }
            }
            serde_json::Value::Array(items) => items.iter().for_each(|v| walk(v, found)),
            _ => {}
        }
    }
    let mut found = Vec::new();
    walk(&switchboard::http::openapi(), &mut found);
    assert!(found.len() > 30, "the document states its patterns");
    for p in &found {
        assert!(
            switchboard::domain::validate::PATTERNS.contains(&p.as_str()),
            "{p} is not a pattern the server applies"
        );
    }
    for p in switchboard::domain::validate::PATTERNS {
        assert!(
            found.iter().any(|f| f == p),
            "{p} is stated in the document"
        );
    }
}
