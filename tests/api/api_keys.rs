//! API keys for programs: shown once, stored hashed, scoped by policy,
//! confined to their business, refused once revoked or expired, never
//! managing keys, billing or accounts, and attributable in the audit log.
#![expect(clippy::unwrap_used, reason = "test helpers: a panic is a failed test")]

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::{PASSWORD, TestApp, email, postgres_url, test_config};

const ALL_SCOPES: [&str; 11] = [
    "business:read",
    "companies:read",
    "companies:write",
    "channels:read",
    "channels:write",
    "secrets:read",
    "secrets:write",
    "events:read",
    "webhooks:read",
    "webhooks:write",
    "audit:read",
];

#[tokio::test]
async fn a_key_is_shown_once_works_in_its_scopes_and_dies_when_revoked() {
    let app = TestApp::spawn().await;
    let owner = app.owner(&email("keys"), "Keyed").await;
    let r = app
        .post(
            "/v1/api-keys",
            Some(&owner),
            json!({ "name": "n8n production", "scopes": ["companies:read", "companies:write"] }),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let key = r.body["key"].as_str().unwrap().to_owned();
    let id = r.body["id"].as_str().unwrap().to_owned();
    assert!(key.starts_with("sb_live_") && key.len() >= 8 + 43, "{key}");
    assert!(key[8..].bytes().all(|b| b.is_ascii_alphanumeric()));
    assert_eq!(
        r.body["scopes"],
        json!(["companies:read", "companies:write"])
    );
    assert_eq!(r.body["masked"], format!("{}…", &key[..20]));

    let list = app.get("/v1/api-keys", Some(&owner)).await;
    assert_eq!(list.status, StatusCode::OK);
    assert!(
        !list.text.contains(&key[8..]),
        "the list never shows the key"
    );
    assert_eq!(list.body["items"][0]["last_used_at"], Value::Null);

    let r = app
        .post(
            "/v1/companies",
            Some(&key),
            json!({ "name": "Made by a program", "kind": "service" }),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert!(
        r.headers.contains_key("ratelimit"),
        "limit headers on a key's answer"
    );
    let r = app.get("/v1/companies", Some(&key)).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["items"][0]["name"], "Made by a program");
    let list = app.get("/v1/api-keys", Some(&owner)).await;
    assert!(
        list.body["items"][0]["last_used_at"].is_string(),
        "{}",
        list.text
    );

    // Every change a key makes is attributable to it.
    let audit = app.get("/v1/business/audit", Some(&owner)).await;
    let uses: Vec<&Value> = audit.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "api_key.request")
        .collect();
    assert_eq!(uses.len(), 1, "{}", audit.text);
    assert_eq!(uses[0]["target"], "POST /v1/companies");
    assert_eq!(uses[0]["actor_role"], "api_key");
    assert_eq!(uses[0]["detail"]["status"], 201);
    let created = audit.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "api_key.create")
        .unwrap();
    assert_eq!(created["target"], format!("api_key/{id}"));

    let r = app
        .call(
            Method::DELETE,
            &format!("/v1/api-keys/{id}"),
            Some(&owner),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = app.get("/v1/companies", Some(&key)).await;
    assert_eq!(
        r.status,
        StatusCode::UNAUTHORIZED,
        "revoked at the very next request"
    );
    assert_eq!(r.code(), "invalid_api_key");
    let r = app
        .call(
            Method::DELETE,
            &format!("/v1/api-keys/{id}"),
            Some(&owner),
            None,
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::NO_CONTENT,
        "revoking twice is a no-op"
    );
    assert_eq!(
        app.get("/v1/api-keys", Some(&owner)).await.body["items"],
        json!([])
    );
    let all = app
        .get("/v1/api-keys?include_revoked=true", Some(&owner))
        .await;
    assert!(all.body["items"][0]["revoked_at"].is_string());

    // A forged key with a real prefix is refused.
    let forged = format!("{}{}", &key[..20], "x".repeat(key.len() - 20));
    assert_eq!(
        app.get("/v1/companies", Some(&forged)).await.code(),
        "invalid_api_key"
    );
}

#[tokio::test]
async fn an_expired_key_is_refused_and_creating_one_needs_a_recent_sign_in() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path()).await;
    config.auth.reauth_window_secs = 1;
    let app = TestApp::spawn_with(dir, config).await;
    let owner = app.owner(&email("expiring"), "Expiring").await;
    let soon = chrono::Utc::now() + chrono::Duration::seconds(2);
    let r = app
        .post(
            "/v1/api-keys",
            Some(&owner),
            json!({ "name": "short", "scopes": ["business:read"], "expires_at": soon }),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let key = r.body["key"].as_str().unwrap().to_owned();
    assert_eq!(
        app.get("/v1/business", Some(&key)).await.status,
        StatusCode::OK
    );
    tokio::time::sleep(Duration::from_millis(2600)).await;
    let r = app.get("/v1/business", Some(&key)).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.code(), "invalid_api_key");
    // The owner's sign-in is now older than the window.
    let r = app
        .post(
            "/v1/api-keys",
            Some(&owner),
            json!({ "name": "late", "scopes": ["business:read"] }),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.code(), "reauthentication_required");
    // Bad input is refused with the field.
    let fresh = app.login(&email_of(&app, &owner).await).await;
    for (body, field) in [
        (json!({ "name": "", "scopes": ["business:read"] }), "name"),
        (json!({ "name": "none", "scopes": [] }), "scopes"),
        (
            json!({ "name": "past", "scopes": ["business:read"], "expires_at": "2020-01-01T00:00:00Z" }),
            "expires_at",
        ),
    ] {
        let r = app.post("/v1/api-keys", Some(&fresh), body).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
        assert_eq!(r.body["errors"][0]["field"], field);
    }
    let r = app
        .post(
            "/v1/api-keys",
            Some(&fresh),
            json!({ "name": "x", "scopes": ["billing:write"] }),
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "an unknown scope: {}",
        r.text
    );
}

async fn email_of(app: &TestApp, token: &str) -> String {
    app.get("/v1/me", Some(token)).await.body["email"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn a_key_never_reaches_keys_billing_accounts_or_another_business() {
    let app = TestApp::spawn().await;
    let a = app.owner(&email("a"), "Alpha").await;
    let b = app.owner(&email("b"), "Beta").await;
    let b_business = app.business_id(&b).await;
    let b_company = app.company(&b, "Beta Co").await;
    let key = app.api_key(&a, &ALL_SCOPES).await;
    for (method, path, body) in [
        (
            Method::POST,
            "/v1/api-keys",
            Some(json!({ "name": "child", "scopes": ["business:read"] })),
        ),
        (Method::GET, "/v1/api-keys", None),
        (Method::GET, "/v1/me", None),
        (Method::POST, "/v1/auth/logout-all", None),
        (
            Method::POST,
            "/v1/auth/password/change",
            Some(json!({ "current_password": PASSWORD, "new_password": "another password 1" })),
        ),
        (Method::GET, "/v1/billing/subscription", None),
        (Method::POST, "/v1/billing/cancel", None),
        (Method::POST, "/v1/connect/account", None),
        (Method::GET, "/v1/connect/account", None),
        (Method::DELETE, "/v1/connect/account", None),
        (Method::POST, "/v1/connect/onboarding-link", None),
        (Method::POST, "/v1/connect/login-link", None),
        (
            Method::PATCH,
            "/v1/business",
            Some(json!({ "name": "Renamed by a key" })),
        ),
        (Method::GET, "/v1/admin/businesses", None),
    ] {
        let r = app.call(method.clone(), path, Some(&key), body).await;
        assert_eq!(
            r.status,
            StatusCode::FORBIDDEN,
            "{method} {path}: {}",
            r.text
        );
        assert_eq!(r.code(), "api_key_not_allowed", "{method} {path}");
    }
    // Another business's ids answer 404, as to any other caller.
    for path in [
        format!("/v1/companies/{b_company}"),
        format!("/v1/businesses/{b_business}/secrets"),
    ] {
        let r = app.get(&path, Some(&key)).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{path}: {}", r.text);
    }
    let r = app
        .call(
            Method::PUT,
            &format!("/v1/businesses/{b_business}/secrets/telegram/bot"),
            Some(&key),
            Some(json!({ "value": "planted" })),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = app
        .post(
            "/v1/channels",
            Some(&key),
            json!({ "company_id": b_company, "platform": "telegram" }),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
}

/// `app.call`, except that a stream's success is answered by its status
/// alone (a stream never ends).
async fn call(
    app: &TestApp,
    method: Method,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> crate::common::Resp {
    if !path.contains("/stream") {
        return app.call(method, path, Some(token), body).await;
    }
    let res = app
        .client
        .get(app.url(path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    if res.status().is_success() {
        return crate::common::Resp {
            status: res.status(),
            headers: res.headers().clone(),
            body: Value::Null,
            text: String::new(),
        };
    }
    crate::common::into_resp(res).await
}

/// One route a key may use, and the scope it needs (`None`: no scope).
struct ScopedRoute {
    method: Method,
    path: &'static str,
    body: Option<Value>,
    scope: Option<&'static str>,
    ok: u16,
}

fn route(
    method: Method,
    path: &'static str,
    body: Option<Value>,
    scope: Option<&'static str>,
    ok: u16,
) -> ScopedRoute {
    ScopedRoute {
        method,
        path,
        body,
        scope,
        ok,
    }
}

#[tokio::test]
async fn the_scope_matrix_every_route_with_and_without_its_scope() {
    let app = TestApp::spawn().await;
    let owner = app.owner(&email("matrix"), "Matrix").await;
    let business = app.business_id(&owner).await;
    app.set_plan(&business, "enterprise").await;
    let company = app.company(&owner, "Main").await;
    let channel = app.channel(&owner, &company, "instagram").await.body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = app
        .call(
            Method::PUT,
            &format!("/v1/businesses/{business}/secrets/telegram/bot"),
            Some(&owner),
            Some(json!({ "value": "123456:matrix-secret" })),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let hook = json!({ "url": "http://127.0.0.1:9/hook" });
    let endpoint = app
        .post("/v1/webhook-endpoints", Some(&owner), hook.clone())
        .await
        .body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    #[rustfmt::skip]
    let table = vec![
        route(Method::GET, "/v1/business", None, Some("business:read"), 200),
        route(Method::GET, "/v1/business/audit", None, Some("audit:read"), 200),
        route(Method::GET, "/v1/companies", None, Some("companies:read"), 200),
        route(Method::POST, "/v1/companies", Some(json!({ "name": "New", "kind": "service" })), Some("companies:write"), 201),
        route(Method::GET, "/v1/companies/{company}", None, Some("companies:read"), 200),
        route(Method::PATCH, "/v1/companies/{company}", Some(json!({ "name": "Renamed" })), Some("companies:write"), 200),
        route(Method::DELETE, "/v1/companies/{fresh_company}", None, Some("companies:write"), 204),
        route(Method::GET, "/v1/channels", None, Some("channels:read"), 200),
        route(Method::POST, "/v1/channels", Some(json!({ "company_id": "{company}", "platform": "email" })), Some("channels:write"), 201),
        route(Method::GET, "/v1/channels/{channel}", None, Some("channels:read"), 200),
        route(Method::DELETE, "/v1/channels/{fresh_channel}", None, Some("channels:write"), 204),
        // An Instagram channel: allowed, then refused for its platform.
        route(Method::POST, "/v1/channels/{channel}/connect", None, Some("channels:write"), 422),
        route(Method::POST, "/v1/channels/{channel}/reconnect", None, Some("channels:write"), 422),
        route(Method::GET, "/v1/channels/{channel}/qr", None, Some("channels:write"), 422),
        route(Method::POST, "/v1/channels/{channel}/disconnect", None, Some("channels:write"), 422),
        // No Stripe here: a permitted key learns billing is unavailable.
        route(Method::POST, "/v1/purchases", Some(json!({ "company_id": "{company}", "customer_ref": "c", "description": "d", "amount": 100, "currency": "usd", "lead_source": "whatsapp" })), Some("purchases:write"), 503),
        route(Method::GET, "/v1/purchases", None, Some("purchases:read"), 200),
        route(Method::GET, "/v1/purchases/export.csv", None, Some("purchases:read"), 200),
        route(Method::GET, "/v1/purchases/{company}", None, Some("purchases:read"), 404),
        route(Method::GET, "/v1/businesses/{business}/secrets", None, Some("secrets:read"), 200),
        route(Method::PUT, "/v1/businesses/{business}/secrets/telegram/bot", Some(json!({ "value": "123456:rewritten" })), Some("secrets:write"), 200),
        route(Method::DELETE, "/v1/businesses/{business}/secrets/telegram/{fresh_secret}", None, Some("secrets:write"), 204),
        route(Method::GET, "/v1/events", None, Some("events:read"), 200),
        route(Method::GET, "/v1/events/stream?after=999999", None, Some("events:read"), 200),
        route(Method::POST, "/v1/webhook-endpoints", Some(json!({ "url": "http://127.0.0.1:9/hook" })), Some("webhooks:write"), 201),
        route(Method::GET, "/v1/webhook-endpoints", None, Some("webhooks:read"), 200),
        route(Method::GET, "/v1/webhook-endpoints/{endpoint}", None, Some("webhooks:read"), 200),
        route(Method::PATCH, "/v1/webhook-endpoints/{endpoint}", Some(json!({ "description": "by a key" })), Some("webhooks:write"), 200),
        route(Method::POST, "/v1/webhook-endpoints/{endpoint}/roll-secret", None, Some("webhooks:write"), 200),
        route(Method::GET, "/v1/webhook-endpoints/{endpoint}/deliveries", None, Some("webhooks:read"), 200),
        route(Method::DELETE, "/v1/webhook-endpoints/{fresh_endpoint}", None, Some("webhooks:write"), 204),
        // No scope reveals a secret.
        route(Method::POST, "/v1/businesses/{business}/secrets/telegram/bot/reveal", None, None, 0),
    ];
    let mut failures = Vec::new();
    for (i, row) in table.iter().enumerate() {
        // Fresh resources for the deleting rows.
        let fresh_company = app.company(&owner, &format!("Spare {i}")).await;
        let fresh_channel = app.channel(&owner, &company, "whatsapp").await.body["id"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let fresh_secret = format!("spare-{i}");
        let fresh_endpoint = app
            .post("/v1/webhook-endpoints", Some(&owner), hook.clone())
            .await
            .body["id"]
            .as_str()
            .unwrap()
            .to_owned();
        app.call(
            Method::PUT,
            &format!("/v1/businesses/{business}/secrets/telegram/{fresh_secret}"),
            Some(&owner),
            Some(json!({ "value": "123456:spare" })),
        )
        .await;
        let fill = |s: &str| {
            s.replace("{business}", &business)
                .replace("{fresh_company}", &fresh_company)
                .replace("{company}", &company)
                .replace("{fresh_channel}", &fresh_channel)
                .replace("{channel}", &channel)
                .replace("{fresh_secret}", &fresh_secret)
                .replace("{fresh_endpoint}", &fresh_endpoint)
                .replace("{endpoint}", &endpoint)
        };
        let path = fill(row.path);
        let body: Option<Value> = row
            .body
            .as_ref()
            .map(|b| serde_json::from_str(&fill(&b.to_string())).unwrap());
        // Every scope but the one needed, then exactly that one.
        let others: Vec<&str> = ALL_SCOPES
            .iter()
            .copied()
            .filter(|s| Some(*s) != row.scope)
            .collect();
        let without = app.api_key(&owner, &others).await;
        let r = call(&app, row.method.clone(), &path, &without, body.clone()).await;
        let refusal = if row.scope.is_some() {
            "forbidden"
        } else {
            "api_key_not_allowed"
        };
        if r.status != StatusCode::FORBIDDEN || r.code() != refusal {
            failures.push(format!(
                "{} {path} without {:?}: {} {}",
                row.method, row.scope, r.status, r.text
            ));
        }
        if let Some(scope) = row.scope {
            let with = app.api_key(&owner, &[scope]).await;
            let r = call(&app, row.method.clone(), &path, &with, body).await;
            if r.status.as_u16() != row.ok {
                failures.push(format!(
                    "{} {path} with {scope}: {} {}",
                    row.method, r.status, r.text
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "scope matrix mismatches:\n{}",
        failures.join("\n")
    );
    assert_every_key_route_has_a_row(&table);
}

/// Every operation of the document that takes `AnyAuth` (the routes a key
/// may call) must have a row; the rest answer a key 403
/// `api_key_not_allowed` (checked for a sample in the test above) or need
/// no credential at all.
fn assert_every_key_route_has_a_row(table: &[ScopedRoute]) {
    let doc: Value = serde_json::from_str(include_str!("../../openapi/openapi.json")).unwrap();
    let normalize = |p: &str| {
        let p = p.split('?').next().unwrap_or(p);
        p.split('/')
            .map(|seg| if seg.contains('{') { "{}" } else { seg })
            .collect::<Vec<_>>()
            .join("/")
    };
    let rows: std::collections::HashSet<(String, String)> = table
        .iter()
        .map(|r| (r.method.to_string(), normalize(r.path)))
        .collect();
    let mut missing = Vec::new();
    for (template, ops) in doc["paths"].as_object().unwrap() {
        for (method, op) in ops.as_object().unwrap() {
            let keys_allowed = op["description"]
                .as_str()
                .is_some_and(|d| d.contains("API keys: `"));
            if !keys_allowed {
                continue;
            }
            let method = method.to_uppercase();
            let path = normalize(template);
            let covered = rows.iter().any(|(m, p)| {
                *m == method
                    && p.split('/').count() == path.split('/').count()
                    && p.split('/')
                        .zip(path.split('/'))
                        .all(|(a, b)| a == b || b == "{}")
            });
            if !covered {
                missing.push(format!("{method} {template}"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "key routes without a row in the scope matrix: {missing:?}"
    );
}

#[tokio::test]
async fn admins_list_and_revoke_any_key_and_are_audited() {
    let app = TestApp::spawn().await;
    let owner = app.owner(&email("watched"), "Watched").await;
    let business = app.business_id(&owner).await;
    let key = app.api_key(&owner, &["business:read"]).await;
    let admin = app.admin(&email("root")).await;
    let r = app
        .get(
            &format!("/v1/admin/api-keys?business_id={business}"),
            Some(&admin),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let id = r.body["items"][0]["id"].as_str().unwrap().to_owned();
    assert!(!r.text.contains(&key[8..]));
    let r = app
        .call(
            Method::DELETE,
            &format!("/v1/admin/api-keys/{id}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(
        app.get("/v1/business", Some(&key)).await.status,
        StatusCode::UNAUTHORIZED
    );
    let r = app
        .get("/v1/admin/audit?action=api_key.revoke", Some(&admin))
        .await;
    assert_eq!(r.body["items"][0]["actor_role"], "admin");
    // Owners and managers cannot use the admin routes.
    let r = app.get("/v1/admin/api-keys", Some(&owner)).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn a_key_s_plaintext_is_nowhere_in_the_database_or_the_logs() {
    let capture = crate::secrets::global_capture();
    let app = TestApp::spawn().await;
    let owner = app.owner(&email("hidden"), "Hidden Key Co").await;
    let key = app.api_key(&owner, &["business:read"]).await;
    assert_eq!(
        app.get("/v1/business", Some(&key)).await.status,
        StatusCode::OK
    );
    let secret_part = &key[8 + 12..];
    let logs = String::from_utf8_lossy(&capture.0.lock().unwrap()).into_owned();
    assert!(!logs.contains(secret_part), "the key is not in the logs");
    if postgres_url().is_none() {
        let mut bytes = Vec::new();
        for file in ["switchboard.db", "switchboard.db-wal"] {
            if let Ok(b) = std::fs::read(app.dir().join(file)) {
                bytes.extend(b);
            }
        }
        assert!(
            bytes.windows(13).any(|w| w == b"Hidden Key Co"),
            "stored text is findable"
        );
        assert!(
            !bytes
                .windows(secret_part.len())
                .any(|w| w == secret_part.as_bytes()),
            "the key is not in the database file"
        );
    } else {
        use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
        let rows = entity::api_key::Entity::find()
            .filter(entity::api_key::Column::SecretHash.contains(secret_part))
            .all(&app.app.state.db)
            .await
            .unwrap();
        assert!(rows.is_empty());
    }
}
