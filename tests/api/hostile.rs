//! Hostile input: every malformed request gets a 4xx problem+json with a
//! stable code, never a 500, and changes nothing.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::common::{TestApp, email, into_resp};

#[tokio::test]
async fn malformed_requests_get_problem_json_with_stable_codes() {
    let app = TestApp::spawn().await;
    let token = app.owner(&email("hostile"), "Hostile").await;
    let company = app.company(&token, "Target").await;

    let raw =
        |method: Method, path: &str, body: &'static str, content_type: Option<&'static str>| {
            let mut req = app
                .client
                .request(method, app.url(path))
                .bearer_auth(&token)
                .body(body);
            if let Some(ct) = content_type {
                req = req.header("content-type", ct);
            }
            req
        };
    let json_ct = Some("application/json");
    let long = "x".repeat(201);
    let business = app.get("/v1/business", Some(&token)).await.body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let secret_path = format!("/v1/businesses/{business}/secrets/waha/api_key");
    let cases: Vec<(&str, reqwest::RequestBuilder, u16, &str)> = vec![
        (
            "malformed JSON",
            raw(Method::POST, "/v1/companies", "{\"name\": ", json_ct),
            400,
            "malformed_json",
        ),
        (
            "not an object",
            raw(Method::POST, "/v1/companies", "[1,2,3]", json_ct),
            422,
            "invalid_body",
        ),
        (
            // serde's derived structs take their fields in order from an
            // array too; the API document says object.
            "a body's fields as an array",
            raw(
                Method::POST,
                "/v1/companies",
                r#"["A", "product"]"#,
                json_ct,
            ),
            422,
            "invalid_body",
        ),
        (
            "a nested object's fields as an array",
            raw(
                Method::PUT,
                &secret_path,
                r#"{"value": "a secret value", "metadata": [null, null]}"#,
                json_ct,
            ),
            422,
            "invalid_body",
        ),
        (
            "an empty refresh token",
            raw(
                Method::POST,
                "/v1/auth/logout",
                r#"{"refresh_token": ""}"#,
                json_ct,
            ),
            422,
            "validation_failed",
        ),
        (
            "wrong type",
            raw(
                Method::POST,
                "/v1/companies",
                r#"{"name": 42, "kind": "product"}"#,
                json_ct,
            ),
            422,
            "invalid_body",
        ),
        (
            "bad enum",
            raw(
                Method::POST,
                "/v1/companies",
                r#"{"name": "A", "kind": "spaceship"}"#,
                json_ct,
            ),
            422,
            "invalid_body",
        ),
        (
            "unknown field",
            raw(
                Method::POST,
                "/v1/companies",
                r#"{"name": "A", "kind": "product", "business_id": "x"}"#,
                json_ct,
            ),
            422,
            "invalid_body",
        ),
        (
            "missing field",
            raw(Method::POST, "/v1/companies", r#"{"name": "A"}"#, json_ct),
            422,
            "invalid_body",
        ),
        (
            "no content type",
            raw(
                Method::POST,
                "/v1/companies",
                r#"{"name": "A", "kind": "product"}"#,
                None,
            ),
            415,
            "unsupported_media_type",
        ),
        (
            "wrong content type",
            raw(
                Method::POST,
                "/v1/companies",
                r#"{"name": "A", "kind": "product"}"#,
                Some("text/plain"),
            ),
            415,
            "unsupported_media_type",
        ),
        (
            "bad platform",
            raw(
                Method::POST,
                "/v1/channels",
                r#"{"company_id": "00000000-0000-0000-0000-000000000000", "platform": "myspace"}"#,
                json_ct,
            ),
            422,
            "invalid_body",
        ),
        (
            "bad uuid in body",
            raw(
                Method::POST,
                "/v1/channels",
                r#"{"company_id": "not-a-uuid", "platform": "telegram"}"#,
                json_ct,
            ),
            422,
            "invalid_body",
        ),
        (
            "config not an object",
            raw(
                Method::POST,
                "/v1/channels",
                r#"{"company_id": "00000000-0000-0000-0000-000000000000", "platform": "telegram", "config": [1]}"#,
                json_ct,
            ),
            422,
            "invalid_body",
        ),
        (
            "bad uuid in path",
            raw(Method::GET, "/v1/companies/not-a-uuid", "", None),
            400,
            "invalid_path_parameter",
        ),
        (
            "sql in path",
            raw(Method::GET, "/v1/companies/1%27%20OR%201=1--", "", None),
            400,
            "invalid_path_parameter",
        ),
        (
            "limit too large",
            raw(Method::GET, "/v1/companies?limit=1000", "", None),
            422,
            "validation_failed",
        ),
        (
            "limit zero",
            raw(Method::GET, "/v1/companies?limit=0", "", None),
            422,
            "validation_failed",
        ),
        (
            "limit not a number",
            raw(Method::GET, "/v1/companies?limit=abc", "", None),
            400,
            "invalid_query",
        ),
        (
            "negative limit",
            raw(Method::GET, "/v1/companies?limit=-1", "", None),
            400,
            "invalid_query",
        ),
        (
            "unknown query parameter",
            raw(Method::GET, "/v1/companies?business_id=x", "", None),
            400,
            "invalid_query",
        ),
        (
            "bad cursor",
            raw(Method::GET, "/v1/companies?cursor=%%%", "", None),
            422,
            "validation_failed",
        ),
        (
            "forged cursor",
            raw(Method::GET, "/v1/companies?cursor=aGVsbG8", "", None),
            422,
            "validation_failed",
        ),
        (
            "bad status filter",
            raw(Method::GET, "/v1/channels?status=exploded", "", None),
            400,
            "invalid_query",
        ),
        (
            "unknown route",
            raw(Method::GET, "/v1/nothing-here", "", None),
            404,
            "route_not_found",
        ),
        (
            "wrong method",
            raw(Method::PUT, "/v1/companies", "", None),
            405,
            "method_not_allowed",
        ),
    ];
    for (name, req, status, code) in cases {
        let r = into_resp(req.send().await.unwrap()).await;
        assert_eq!(r.status.as_u16(), status, "{name}: {}", r.text);
        assert!(r.is_problem(), "{name}: problem+json");
        assert_eq!(r.code(), code, "{name}: {}", r.text);
        assert_eq!(r.body["status"], status, "{name}: status member");
        assert!(
            r.body["type"].as_str().unwrap().ends_with(code),
            "{name}: type URI"
        );
    }

    // Validation of values inside well-formed JSON.
    let validation_cases = vec![
        (
            "name too long",
            Method::POST,
            "/v1/companies".to_owned(),
            json!({ "name": long, "kind": "product" }),
            "name",
        ),
        (
            "empty name",
            Method::POST,
            "/v1/companies".to_owned(),
            json!({ "name": "   ", "kind": "product" }),
            "name",
        ),
        (
            "control characters",
            Method::POST,
            "/v1/companies".to_owned(),
            json!({ "name": "a\u{0}b", "kind": "product" }),
            "name",
        ),
        (
            "long patch",
            Method::PATCH,
            format!("/v1/companies/{company}"),
            json!({ "name": long }),
            "name",
        ),
        (
            "long shop type",
            Method::POST,
            "/v1/companies".to_owned(),
            json!({ "name": "ok", "kind": "product", "shop_type": "y".repeat(101) }),
            "shop_type",
        ),
        (
            "long account name",
            Method::POST,
            "/v1/channels".to_owned(),
            json!({ "company_id": company, "platform": "telegram", "account_name": long }),
            "account_name",
        ),
        (
            "huge config",
            Method::POST,
            "/v1/channels".to_owned(),
            json!({ "company_id": company, "platform": "telegram", "config": { "k": "z".repeat(17 * 1024) } }),
            "config",
        ),
        (
            "long full name",
            Method::PATCH,
            "/v1/me".to_owned(),
            json!({ "full_name": long }),
            "full_name",
        ),
    ];
    for (name, method, path, body, field) in validation_cases {
        let r = app.call(method, &path, Some(&token), Some(body)).await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{name}: {}",
            r.text
        );
        assert_eq!(r.code(), "validation_failed", "{name}");
        assert_eq!(r.body["errors"][0]["field"], field, "{name}");
    }

    // A body over 1 MiB is refused before it is parsed.
    let big = format!(
        r#"{{"name": "{}", "kind": "product"}}"#,
        "b".repeat(1024 * 1024 + 10)
    );
    let r = into_resp(
        app.client
            .post(app.url("/v1/companies"))
            .bearer_auth(&token)
            .header("content-type", "application/json")
            .body(big)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", r.text);
    assert_eq!(r.code(), "payload_too_large");

    // Bad credentials.
    for (name, header) in [
        ("garbage token", "Bearer abc.def.ghi"),
        ("wrong scheme", "Basic dXNlcjpwYXNz"),
        ("empty bearer", "Bearer "),
    ] {
        let r = into_resp(
            app.client
                .get(app.url("/v1/me"))
                .header("authorization", header)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{name}");
        assert_eq!(r.code(), "invalid_token", "{name}");
    }
    let r = app.get("/v1/me", None).await;
    assert_eq!(r.code(), "unauthenticated");

    // Registration inputs.
    for (body, code) in [
        (json!({ "email": "not-an-email" }), "validation_failed"),
        (
            json!({ "email": format!("{}@example.com", "a".repeat(300)) }),
            "validation_failed",
        ),
        (json!({ "email": 42 }), "invalid_body"),
    ] {
        let r = app.post("/v1/auth/register/start", None, body).await;
        assert_eq!(r.status.as_u16() / 100, 4);
        assert_eq!(r.code(), code);
    }
    let r = app
        .post("/v1/auth/register/complete", None, json!({ "registration_token": "nope", "password": "short", "full_name": "A", "business_name": "B" }))
        .await;
    assert_eq!(
        r.code(),
        "validation_failed",
        "password too short is checked first"
    );
    let r = app
        .post("/v1/auth/register/complete", None, json!({ "registration_token": "nope", "password": "long enough password", "full_name": "A", "business_name": "B" }))
        .await;
    assert_eq!(r.code(), "invalid_token");

    // Nothing changed: still exactly one company.
    let r = app.get("/v1/companies", Some(&token)).await;
    assert_eq!(r.body["items"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn integers_may_be_written_with_a_zero_fraction() {
    // JSON Schema's `integer` is any number whose fraction is zero, so a
    // client may send 600.0 where the document says integer; 2.5 is not one.
    let app = TestApp::spawn().await;
    let owner = app.owner(&email("whole"), "Whole").await;
    let business = app.business_id(&owner).await;
    let admin = app.admin(&email("whole-admin")).await;
    for (value, status) in [
        (json!(600.0), StatusCode::OK),
        (json!(2.5), StatusCode::UNPROCESSABLE_ENTITY),
        (json!(-1.0), StatusCode::UNPROCESSABLE_ENTITY),
    ] {
        let r = app
            .call(
                Method::PUT,
                &format!("/v1/admin/businesses/{business}/rate-limit"),
                Some(&admin),
                Some(json!({ "per_minute": value })),
            )
            .await;
        assert_eq!(r.status, status, "{value}: {}", r.text);
        if status == StatusCode::OK {
            assert_eq!(r.body["per_minute"], 600);
        }
    }
}
