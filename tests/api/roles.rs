//! The role matrix: every route × {anonymous, owner, other owner, assigned
//! manager, unassigned manager, admin} → the expected status, from one table.
//! Also: assignment rules (at most one manager; unassignment is immediate).

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::{TestApp, email};

const ACTORS: [&str; 6] = [
    "anonymous",
    "owner",
    "other owner",
    "manager assigned",
    "manager unassigned",
    "admin",
];
/// Order of calls per row: refusals first, so that the permitted mutation
/// (owner or admin) runs last and earlier calls see unchanged state.
const ORDER: [usize; 6] = [0, 2, 4, 3, 5, 1];

struct Row {
    method: Method,
    path: &'static str,
    body: Option<Value>,
    expect: [u16; 6],
}

fn row(method: Method, path: &'static str, body: Option<Value>, expect: [u16; 6]) -> Row {
    Row {
        method,
        path,
        body,
        expect,
    }
}

#[tokio::test]
async fn role_matrix() {
    let app = TestApp::spawn().await;
    let owner = app.owner(&email("owner"), "Owned").await;
    let other = app.owner(&email("other"), "Other").await;
    let business = app.business_id(&owner).await;
    app.set_plan(&business, "growth").await;
    let company = app.company(&owner, "Main").await;
    let spare_company = app.company(&owner, "Spare").await;
    let channel = app.channel(&owner, &company, "whatsapp").await.body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let spare_channel = app.channel(&owner, &company, "telegram").await.body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let staff_company = app.company(&owner, "Staff Target").await;
    let staff_channel = app.channel(&owner, &company, "email").await.body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let admin = app.admin(&email("admin")).await;
    let (assigned_id, assigned) = app.manager(&admin, &email("assigned")).await;
    let (_, unassigned) = app.manager(&admin, &email("unassigned")).await;
    let r = app
        .call(
            Method::PUT,
            &format!("/v1/admin/businesses/{business}/manager"),
            Some(&admin),
            Some(json!({ "manager_id": assigned_id })),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let tokens = [
        None,
        Some(owner),
        Some(other),
        Some(assigned),
        Some(unassigned),
        Some(admin),
    ];

    for actor in [1, 5] {
        let r = app
            .call(
                Method::PUT,
                &format!("/v1/businesses/{business}/secrets/telegram/gone-{actor}"),
                tokens[actor].as_deref(),
                Some(json!({ "value": "123456:doomed" })),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    }
    let key_id = |r: crate::common::Resp| r.body["id"].as_str().unwrap().to_owned();
    let scopes = json!({ "name": "matrix", "scopes": ["business:read"] });
    let owner_key = key_id(
        app.post("/v1/api-keys", tokens[1].as_deref(), scopes.clone())
            .await,
    );
    let admin_key = key_id(app.post("/v1/api-keys", tokens[1].as_deref(), scopes).await);
    let hook = |r: crate::common::Resp| r.body["id"].as_str().unwrap().to_owned();
    let hook_body = json!({ "url": "http://127.0.0.1:9/hook" });
    let endpoint = hook(
        app.post(
            "/v1/webhook-endpoints",
            tokens[1].as_deref(),
            hook_body.clone(),
        )
        .await,
    );
    let spare_endpoint = hook(
        app.post("/v1/webhook-endpoints", tokens[1].as_deref(), hook_body)
            .await,
    );
    let new_manager = email("new-manager");
    let job = {
        use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
        entity::job::Entity::find()
            .filter(entity::job::Column::Kind.eq("billing.sweep"))
            .one(&app.app.state.db)
            .await
            .unwrap()
            .expect("the recurring sweep has its row")
            .id
            .to_string()
    };
    #[rustfmt::skip]
    let table = vec![
        row(Method::GET, "/v1/me", None, [401, 200, 200, 200, 200, 200]),
        row(Method::PATCH, "/v1/me", Some(json!({ "full_name": "Renamed" })), [401, 200, 200, 200, 200, 200]),
        // Every account may move itself (each token here is a fresh sign-in).
        row(Method::POST, "/v1/me/email", Some(json!({ "email": "moved-{actor}@example.com" })), [401, 202, 202, 202, 202, 202]),
        row(Method::GET, "/v1/business", None, [401, 200, 200, 403, 403, 403]),
        row(Method::PATCH, "/v1/business", Some(json!({ "name": "Renamed" })), [401, 200, 200, 403, 403, 403]),
        row(Method::POST, "/v1/companies", Some(json!({ "name": "New", "kind": "service" })), [401, 201, 201, 403, 403, 403]),
        row(Method::GET, "/v1/companies", None, [401, 200, 200, 403, 403, 403]),
        row(Method::GET, "/v1/companies/{company}", None, [401, 200, 404, 403, 403, 403]),
        row(Method::PATCH, "/v1/companies/{company}", Some(json!({ "name": "Main 2" })), [401, 200, 404, 403, 403, 403]),
        row(Method::DELETE, "/v1/companies/{spare_company}", None, [401, 204, 404, 403, 403, 403]),
        row(Method::POST, "/v1/channels", Some(json!({ "company_id": "{company}", "platform": "email" })), [401, 201, 404, 403, 403, 403]),
        row(Method::GET, "/v1/channels", None, [401, 200, 200, 403, 403, 403]),
        row(Method::GET, "/v1/channels/{channel}", None, [401, 200, 404, 403, 403, 403]),
        row(Method::DELETE, "/v1/channels/{spare_channel}", None, [401, 204, 404, 403, 403, 403]),
        // Managers look after businesses; connecting their WhatsApp is the
        // owner's (no WAHA here: 503 once allowed; a channel without a
        // connection disconnects as it is).
        row(Method::POST, "/v1/channels/{channel}/connect", None, [401, 503, 404, 403, 403, 403]),
        row(Method::POST, "/v1/channels/{channel}/reconnect", None, [401, 503, 404, 403, 403, 403]),
        row(Method::GET, "/v1/channels/{channel}/qr", None, [401, 503, 404, 403, 403, 403]),
        row(Method::POST, "/v1/channels/{channel}/disconnect", None, [401, 200, 404, 403, 403, 403]),
        row(Method::GET, "/v1/businesses/{business}/secrets", None, [401, 200, 404, 200, 404, 200]),
        row(Method::PUT, "/v1/businesses/{business}/secrets/telegram/bot", Some(json!({ "value": "123456:secret" })), [401, 200, 404, 200, 404, 200]),
        row(Method::POST, "/v1/businesses/{business}/secrets/telegram/bot/reveal", None, [401, 200, 404, 200, 404, 200]),
        // One secret per permitted actor, so each deletion has its own to delete.
        row(Method::DELETE, "/v1/businesses/{business}/secrets/telegram/gone-{actor}", None, [401, 204, 404, 403, 404, 204]),
        row(Method::GET, "/v1/admin/businesses", None, [401, 403, 403, 403, 403, 200]),
        row(Method::GET, "/v1/admin/businesses/{business}", None, [401, 403, 403, 403, 403, 200]),
        row(Method::POST, "/v1/admin/managers", Some(json!({ "email": new_manager, "full_name": "New" })), [401, 403, 403, 403, 403, 201]),
        row(Method::GET, "/v1/admin/managers", None, [401, 403, 403, 403, 403, 200]),
        row(Method::GET, "/v1/admin/jobs", None, [401, 403, 403, 403, 403, 200]),
        // The recurring sweep is queued, not failed: the admin may ask, and learns so.
        row(Method::POST, "/v1/admin/jobs/{job}/retry", None, [401, 403, 403, 403, 403, 409]),
        row(Method::GET, "/v1/manager/businesses", None, [401, 403, 403, 200, 200, 403]),
        row(Method::GET, "/v1/manager/businesses/{business}", None, [401, 200, 404, 200, 404, 200]),
        row(Method::GET, "/v1/manager/businesses/{business}/companies", None, [401, 200, 404, 200, 404, 200]),
        row(Method::GET, "/v1/manager/businesses/{business}/channels", None, [401, 200, 404, 200, 404, 200]),
        row(Method::PUT, "/v1/admin/businesses/{business}/manager", Some(json!({ "manager_id": "{assigned_id}" })), [401, 403, 404, 403, 404, 200]),
        row(Method::DELETE, "/v1/admin/businesses/{business}/manager", None, [401, 403, 404, 403, 404, 204]),
        row(Method::GET, "/health", None, [200, 200, 200, 200, 200, 200]),
        row(Method::GET, "/health/ready", None, [200, 200, 200, 200, 200, 200]),
        row(Method::GET, "/health/detailed", None, [401, 403, 403, 403, 403, 200]),
        row(Method::GET, "/v1/admin/audit", None, [401, 403, 403, 403, 403, 200]),
        row(Method::GET, "/v1/admin/stats", None, [401, 403, 403, 403, 403, 200]),
        row(Method::GET, "/v1/business/audit", None, [401, 200, 200, 403, 403, 403]),
        row(Method::GET, "/v1/me/sign-in-methods", None, [401, 200, 200, 200, 200, 200]),
        row(Method::POST, "/v1/api-keys", Some(json!({ "name": "n8n", "scopes": ["companies:read"] })), [401, 201, 201, 403, 403, 403]),
        row(Method::GET, "/v1/api-keys", None, [401, 200, 200, 403, 403, 403]),
        row(Method::DELETE, "/v1/api-keys/{owner_key}", None, [401, 204, 404, 403, 403, 403]),
        row(Method::GET, "/v1/admin/api-keys", None, [401, 403, 403, 403, 403, 200]),
        row(Method::GET, "/v1/events", None, [401, 200, 200, 403, 403, 403]),
        row(Method::GET, "/v1/events/stream?after=999999", None, [401, 200, 200, 403, 403, 403]),
        row(Method::POST, "/v1/webhook-endpoints", Some(json!({ "url": "http://127.0.0.1:9/hook" })), [401, 201, 201, 403, 403, 403]),
        row(Method::GET, "/v1/webhook-endpoints", None, [401, 200, 200, 403, 403, 403]),
        row(Method::GET, "/v1/webhook-endpoints/{endpoint}", None, [401, 200, 404, 403, 403, 403]),
        row(Method::PATCH, "/v1/webhook-endpoints/{endpoint}", Some(json!({ "description": "renamed" })), [401, 200, 404, 403, 403, 403]),
        row(Method::POST, "/v1/webhook-endpoints/{endpoint}/roll-secret", None, [401, 200, 404, 403, 403, 403]),
        row(Method::GET, "/v1/webhook-endpoints/{endpoint}/deliveries", None, [401, 200, 404, 403, 403, 403]),
        row(Method::DELETE, "/v1/webhook-endpoints/{spare_endpoint}", None, [401, 204, 404, 403, 403, 403]),
        row(Method::PUT, "/v1/admin/businesses/{business}/rate-limit", Some(json!({ "per_minute": 1000000 })), [401, 403, 403, 403, 403, 422]),
        row(Method::DELETE, "/v1/admin/api-keys/{admin_key}", None, [401, 403, 403, 403, 403, 204]),
        row(Method::GET, "/v1/billing/plans", None, [200, 200, 200, 200, 200, 200]),
        row(Method::GET, "/v1/billing/subscription", None, [401, 200, 200, 403, 403, 403]),
        // This app has no Stripe key: permitted callers learn billing is unavailable.
        row(Method::POST, "/v1/billing/cancel", None, [401, 503, 503, 403, 403, 403]),
        row(Method::POST, "/v1/billing/change-plan", Some(json!({ "plan": "double" })), [401, 503, 503, 403, 403, 403]),
        row(Method::POST, "/v1/billing/resume", None, [401, 503, 503, 403, 403, 403]),
        row(Method::POST, "/v1/billing/checkout-session", Some(json!({ "plan": "double" })), [401, 503, 503, 403, 403, 403]),
        row(Method::POST, "/v1/billing/portal-session", None, [401, 503, 503, 403, 403, 403]),
        row(Method::GET, "/v1/billing/invoices", None, [401, 503, 503, 403, 403, 403]),
        // Stripe Connect: the owner's own (no account yet; no Stripe here).
        row(Method::GET, "/v1/connect/account", None, [401, 404, 404, 403, 403, 403]),
        row(Method::POST, "/v1/connect/account", None, [401, 503, 503, 403, 403, 403]),
        row(Method::DELETE, "/v1/connect/account", None, [401, 404, 404, 403, 403, 403]),
        row(Method::POST, "/v1/connect/onboarding-link", None, [401, 503, 503, 403, 403, 403]),
        row(Method::POST, "/v1/connect/login-link", None, [401, 503, 503, 403, 403, 403]),
        // Purchases: the owner's (no Stripe here: creating answers 503 after the checks; another business's company is 404).
        row(Method::POST, "/v1/purchases", Some(json!({ "company_id": "{company}", "customer_ref": "c", "description": "d", "amount": 100, "currency": "usd", "lead_source": "other" })), [401, 503, 404, 403, 403, 403]),
        row(Method::GET, "/v1/purchases", None, [401, 200, 200, 403, 403, 403]),
        row(Method::GET, "/v1/purchases/export.csv", None, [401, 200, 200, 403, 403, 403]),
        row(Method::GET, "/v1/purchases/{spare_company}", None, [401, 404, 404, 403, 403, 403]),
        // Platform staff change any business (SPEC §1): admins only.
        row(Method::POST, "/v1/admin/businesses/{business}/companies", Some(json!({ "name": "Staff", "kind": "service" })), [401, 403, 403, 403, 403, 201]),
        row(Method::PATCH, "/v1/admin/businesses/{business}/companies/{staff_company}", Some(json!({ "name": "Staff 2" })), [401, 403, 403, 403, 403, 200]),
        row(Method::DELETE, "/v1/admin/businesses/{business}/companies/{staff_company}", None, [401, 403, 403, 403, 403, 204]),
        row(Method::POST, "/v1/admin/businesses/{business}/channels", Some(json!({ "company_id": "{company}", "platform": "email" })), [401, 403, 403, 403, 403, 201]),
        row(Method::DELETE, "/v1/admin/businesses/{business}/channels/{staff_channel}", None, [401, 403, 403, 403, 403, 204]),
        // Last: it changes the plan the rows above ran under.
        row(Method::PUT, "/v1/admin/businesses/{business}/plan", Some(json!({ "plan": "free" })), [401, 403, 403, 403, 403, 200]),
    ];
    assert_every_route_has_a_row(&table);
    let fill = |s: &str| {
        s.replace("{company}", &company)
            .replace("{spare_company}", &spare_company)
            .replace("{staff_company}", &staff_company)
            .replace("{staff_channel}", &staff_channel)
            .replace("{channel}", &channel)
            .replace("{spare_channel}", &spare_channel)
            .replace("{business}", &business)
            .replace("{assigned_id}", &assigned_id)
            .replace("{job}", &job)
            .replace("{owner_key}", &owner_key)
            .replace("{spare_endpoint}", &spare_endpoint)
            .replace("{endpoint}", &endpoint)
            .replace("{admin_key}", &admin_key)
    };
    let mut failures = Vec::new();
    for row in &table {
        for &actor in &ORDER {
            let path = fill(row.path).replace("{actor}", &actor.to_string());
            let body: Option<Value> = row.body.as_ref().map(|b| {
                serde_json::from_str(&fill(&b.to_string()).replace("{actor}", &actor.to_string()))
                    .unwrap()
            });
            let r = if path.contains("/stream") {
                // A stream never ends: its status is all there is to check.
                let mut req = app.client.get(app.url(&path));
                if let Some(t) = tokens[actor].as_deref() {
                    req = req.bearer_auth(t);
                }
                let res = req.send().await.unwrap();
                if res.status().is_success() {
                    crate::common::Resp {
                        status: res.status(),
                        headers: res.headers().clone(),
                        body: Value::Null,
                        text: String::new(),
                    }
                } else {
                    crate::common::into_resp(res).await
                }
            } else {
                app.call(row.method.clone(), &path, tokens[actor].as_deref(), body)
                    .await
            };
            if r.status.as_u16() != row.expect[actor] {
                failures.push(format!(
                    "{} {} as {}: expected {}, got {} {}",
                    row.method, path, ACTORS[actor], row.expect[actor], r.status, r.text
                ));
            }
            if r.status.is_client_error() {
                assert!(
                    r.is_problem(),
                    "{} {path} as {} answers problem+json",
                    row.method,
                    ACTORS[actor]
                );
            }
        }
    }
    assert!(
        failures.is_empty(),
        "role matrix mismatches:\n{}",
        failures.join("\n")
    );
}

#[tokio::test]
async fn unassigning_a_manager_removes_access_at_once_and_a_business_has_one_manager() {
    let app = TestApp::spawn().await;
    let owner = app.owner(&email("owner"), "Managed").await;
    let business = app.business_id(&owner).await;
    let admin = app.admin(&email("admin")).await;
    let (m1_id, m1) = app.manager(&admin, &email("m1")).await;
    let (m2_id, m2) = app.manager(&admin, &email("m2")).await;
    let assign = |id: String| {
        let app = &app;
        let admin = admin.clone();
        let business = business.clone();
        async move {
            app.call(
                Method::PUT,
                &format!("/v1/admin/businesses/{business}/manager"),
                Some(&admin),
                Some(json!({ "manager_id": id })),
            )
            .await
        }
    };
    assert_eq!(assign(m1_id.clone()).await.status, StatusCode::OK);
    let path = format!("/v1/manager/businesses/{business}");
    assert_eq!(app.get(&path, Some(&m1)).await.status, StatusCode::OK);
    let r = app.get("/v1/manager/businesses", Some(&m1)).await;
    assert_eq!(r.body["items"].as_array().unwrap().len(), 1);

    // A second manager replaces the first: at most one per business.
    let r = assign(m2_id.clone()).await;
    assert_eq!(r.body["manager_id"], m2_id);
    assert_eq!(
        app.get(&path, Some(&m1)).await.status,
        StatusCode::NOT_FOUND,
        "m1 lost access"
    );
    assert_eq!(app.get(&path, Some(&m2)).await.status, StatusCode::OK);
    let r = app.get("/v1/manager/businesses", Some(&m1)).await;
    assert_eq!(r.body["items"].as_array().unwrap().len(), 0);

    // Unassignment: the same access token, refused at once.
    let r = app
        .call(
            Method::DELETE,
            &format!("/v1/admin/businesses/{business}/manager"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(
        app.get(&path, Some(&m2)).await.status,
        StatusCode::NOT_FOUND
    );

    // Only manager accounts can be assigned.
    let owner_id = app.get("/v1/me", Some(&owner)).await.body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = assign(owner_id).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.code(), "not_a_manager");
    let r = assign(uuid::Uuid::now_v7().to_string()).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "no such user");

    // Admin sees the manager list with assigned counts.
    assign(m1_id.clone()).await;
    let r = app.get("/v1/admin/managers", Some(&admin)).await;
    let m1_row = r.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == m1_id)
        .unwrap()
        .clone();
    assert_eq!(m1_row["assigned_businesses"], 1);
    assert_eq!(m1_row["activated"], true);
}

#[tokio::test]
async fn manager_set_password_link_is_single_use() {
    let app = TestApp::spawn().await;
    let admin = app.admin(&email("admin")).await;
    let mail = email("single");
    let r = app
        .post(
            "/v1/admin/managers",
            Some(&admin),
            json!({ "email": mail, "full_name": "Once" }),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let r = app
        .post(
            "/v1/admin/managers",
            Some(&admin),
            json!({ "email": mail, "full_name": "Twice" }),
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert_eq!(r.code(), "email_taken");
    // Before setting a password, nobody can sign in as the manager.
    let r = app
        .post(
            "/v1/auth/login",
            None,
            json!({ "email": mail, "password": crate::common::PASSWORD }),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let token = app.last_link_token(&mail).await;
    let r = app
        .post(
            "/v1/auth/password/set",
            None,
            json!({ "token": token, "password": crate::common::PASSWORD }),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = app
        .post(
            "/v1/auth/password/set",
            None,
            json!({ "token": token, "password": "another password 123" }),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.code(), "invalid_token");
    app.login(&mail).await;
}

/// Routes the matrix leaves out, and why; every other operation of the
/// OpenAPI document must have a row.
const NOT_IN_MATRIX: [(&str, &str); 3] = [
    (
        "/v1/auth/",
        "anonymous by design: the body is the credential (flow.rs, email.rs and oauth.rs test each)",
    ),
    (
        "/v1/me/sign-in-methods/{}",
        "needs a configured OAuth provider: oauth.rs tests linking and unlinking per role",
    ),
    (
        "/v1/webhooks/",
        "authenticated by Stripe's signature, not a role (billing.rs)",
    ),
];

/// Fails, naming them, when operations of `openapi/openapi.json` have no
/// row in `table` (path parameters and placeholders compare as `{}`).
#[expect(
    clippy::unwrap_used,
    reason = "a test helper: a failure is a failed test"
)]
fn assert_every_route_has_a_row(table: &[Row]) {
    fn normalize(path: &str) -> String {
        let path = path.split('?').next().unwrap_or(path);
        path.split('/')
            .map(|seg| if seg.contains('{') { "{}" } else { seg })
            .collect::<Vec<_>>()
            .join("/")
    }
    let doc: Value = serde_json::from_str(include_str!("../../openapi/openapi.json")).unwrap();
    let rows: std::collections::HashSet<(String, String)> = table
        .iter()
        .map(|r| (r.method.to_string(), normalize(r.path)))
        .collect();
    let mut missing = Vec::new();
    for (template, ops) in doc["paths"].as_object().unwrap() {
        let path = normalize(template);
        if NOT_IN_MATRIX.iter().any(|(p, _)| path.starts_with(p)) {
            continue;
        }
        for method in ops.as_object().unwrap().keys() {
            let method = method.to_uppercase();
            // Literal segments of a row may stand for a parameter (a provider, a name).
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
        "routes without a row in the role matrix: {missing:?}"
    );
}
