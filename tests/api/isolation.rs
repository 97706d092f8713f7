//! Tenant isolation: every route of the OpenAPI document that carries an id,
//! called by one business (and by its manager) with another business's ids,
//! answers 404 and shows none of its data. The routes come from
//! `openapi/openapi.json`, so a new route is covered the day it is added: a
//! path parameter this test cannot fill, or a body route without a body
//! here, fails the test and names the route.

use std::collections::BTreeMap;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::{TestApp, email};

/// Routes with ids that are not tenant-scoped, and why.
const NOT_TENANT_SCOPED: [(&str, &str); 4] = [
    (
        "/v1/admin/",
        "platform staff act on every business by design (SPEC §1); roles.rs covers who may",
    ),
    (
        "/v1/auth/oauth/{provider}/",
        "the provider names a sign-in method, not a business's resource",
    ),
    (
        "/v1/me/sign-in-methods/{provider}",
        "the caller's own account, not a business's resource",
    ),
    ("/v1/webhooks/", "verified by signature, not by caller"),
];

/// A request body valid for the route, so that only the ids can fail it.
fn body_for(method: &Method, template: &str, a_company: &str) -> Option<Value> {
    match (method.as_str(), template) {
        ("PATCH", "/v1/companies/{id}") => Some(json!({ "name": "pwned" })),
        ("PUT", "/v1/businesses/{business_id}/secrets/{provider}/{name}") => {
            Some(json!({ "value": "stolen" }))
        }
        ("POST", "/v1/channels") => {
            Some(json!({ "company_id": a_company, "platform": "telegram" }))
        }
        ("PATCH", "/v1/webhook-endpoints/{id}") => Some(json!({ "description": "pwned" })),
        ("POST", "/v1/channels/{id}/connect") => Some(json!({})),
        ("POST", "/v1/purchases") => Some(json!({
            "company_id": a_company, "customer_ref": "c", "description": "d",
            "amount": 100, "currency": "usd", "lead_source": "other"
        })),
        _ => None,
    }
}

#[tokio::test]
async fn every_route_with_an_id_answers_404_across_businesses() {
    let app = TestApp::spawn().await;
    let a = app.owner(&email("tenant-a"), "Alpha Secret Bakery").await;
    let b = app.owner(&email("tenant-b"), "Beta Shop").await;
    let a_business = app.business_id(&a).await;
    let a_company = app.company(&a, "Alpha Private Company").await;
    let r = app.channel(&a, &a_company, "whatsapp").await;
    assert_eq!(r.status, StatusCode::CREATED);
    let a_channel = r.body["id"].as_str().unwrap().to_owned();
    let r = app
        .call(
            Method::PUT,
            &format!("/v1/businesses/{a_business}/secrets/telegram/alpha_bot"),
            Some(&a),
            Some(json!({ "value": "Alpha-token-123456" })),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);

    let r = app
        .post(
            "/v1/api-keys",
            Some(&a),
            json!({ "name": "alpha program", "scopes": ["business:read"] }),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let a_key = r.body["id"].as_str().unwrap().to_owned();
    let r = app
        .post(
            "/v1/webhook-endpoints",
            Some(&a),
            json!({ "url": "http://127.0.0.1:9/alpha-hook" }),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let a_endpoint = r.body["id"].as_str().unwrap().to_owned();

    // B's own resources so that B's calls are otherwise valid.
    let b_company = app.company(&b, "Beta Company").await;
    // B's program, with every scope.
    let b_key = app
        .api_key(
            &b,
            &[
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
            ],
        )
        .await;

    let admin = app.admin(&email("admin")).await;
    let (manager_b_id, manager_b) = app.manager(&admin, &email("manager-b")).await;
    let b_business = app.business_id(&b).await;
    let r = app
        .call(
            Method::PUT,
            &format!("/v1/admin/businesses/{b_business}/manager"),
            Some(&admin),
            Some(json!({ "manager_id": manager_b_id })),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);

    // A purchase of A's (written directly: this app has no Stripe).
    let a_purchase = {
        use sea_orm::{ActiveModelTrait, IntoActiveModel};
        let now = chrono::Utc::now();
        entity::purchase::Model {
            id: uuid::Uuid::now_v7(),
            business_id: a_business.parse().unwrap(),
            company_id: a_company.parse().unwrap(),
            channel_id: None,
            customer_ref: "alpha-customer".into(),
            description: "Alpha secret cake".into(),
            amount: 4200,
            currency: "usd".into(),
            application_fee_amount: 0,
            lead_source: "whatsapp".into(),
            status: "payment_link_sent".into(),
            stripe_account_id: "acct_alpha".into(),
            stripe_checkout_session_id: None,
            stripe_payment_intent_id: None,
            payment_url: None,
            status_at: 0,
            created_at: now,
            updated_at: now,
        }
        .into_active_model()
        .insert(&app.app.state.db)
        .await
        .unwrap()
        .id
        .to_string()
    };

    // Every operation of the document whose path or body names an id.
    let doc: Value = serde_json::from_str(include_str!("../../openapi/openapi.json")).unwrap();
    let mut routes: BTreeMap<String, Vec<Method>> = BTreeMap::new();
    for (template, ops) in doc["paths"].as_object().unwrap() {
        for m in ops.as_object().unwrap().keys() {
            if let Ok(method) = m.to_uppercase().parse::<Method>() {
                routes.entry(template.clone()).or_default().push(method);
            }
        }
    }
    let mut cases: Vec<(Method, String, Option<Value>)> = Vec::new();
    let mut uncovered = Vec::new();
    for (template, methods) in &routes {
        if NOT_TENANT_SCOPED
            .iter()
            .any(|(p, _)| template.starts_with(p))
        {
            continue;
        }
        for method in methods {
            let body = body_for(method, template, &a_company);
            let carries_id = template.contains('{')
                || body
                    .as_ref()
                    .is_some_and(|b| b.to_string().contains(&a_company));
            // Outside systems' webhooks carry no caller: their signatures
            // are their isolation (billing.rs, whatsapp.rs).
            if !carries_id || template.starts_with("/v1/webhooks/") {
                continue;
            }
            // Fill each parameter with A's resource of that kind.
            let mut path = template.clone();
            for (param, value) in [
                ("{business_id}", a_business.as_str()),
                ("{provider}", "telegram"),
                ("{name}", "alpha_bot"),
            ] {
                path = path.replace(param, value);
            }
            let id = if template.starts_with("/v1/companies/") {
                Some(a_company.as_str())
            } else if template.starts_with("/v1/channels/") {
                Some(a_channel.as_str())
            } else if template.starts_with("/v1/manager/businesses/") {
                Some(a_business.as_str())
            } else if template.starts_with("/v1/api-keys/") {
                Some(a_key.as_str())
            } else if template.starts_with("/v1/webhook-endpoints/") {
                Some(a_endpoint.as_str())
            } else if template.starts_with("/v1/purchases/") {
                Some(a_purchase.as_str())
            } else {
                None
            };
            if let Some(id) = id {
                path = path.replace("{id}", id);
            }
            let needs_body = doc["paths"][template][method.as_str().to_lowercase()]
                .get("requestBody")
                .is_some();
            if path.contains('{') || (needs_body && body.is_none()) {
                uncovered.push(format!("{method} {template}"));
                continue;
            }
            cases.push((method.clone(), path, body));
        }
    }
    assert!(
        uncovered.is_empty(),
        "routes this isolation test cannot fill (teach it their ids or body): {uncovered:?}"
    );
    // Ids in the query too.
    cases.push((
        Method::GET,
        format!("/v1/channels?company_id={a_company}"),
        None,
    ));
    assert!(cases.len() >= 14, "{} cases: {cases:?}", cases.len());

    for (method, path, body) in &cases {
        // Owner B always; B's manager too on the routes managers use.
        let mut callers = vec![("owner B", &b)];
        if path.starts_with("/v1/manager/") || path.starts_with("/v1/businesses/") {
            callers.push(("manager of B", &manager_b));
        }
        let key_route = [
            "/v1/companies",
            "/v1/channels",
            "/v1/businesses/",
            "/v1/webhook-endpoints",
        ]
        .iter()
        .any(|p| path.starts_with(p))
            && !path.ends_with("/reveal");
        if key_route {
            callers.push(("B's API key", &b_key));
        }
        for (who, token) in callers {
            let r = app
                .call(method.clone(), path, Some(token), body.clone())
                .await;
            assert_eq!(
                r.status,
                StatusCode::NOT_FOUND,
                "{who} {method} {path}: {}",
                r.text
            );
            assert!(r.is_problem(), "{method} {path}");
            for secret in [
                "Alpha",
                &a_company,
                &a_channel,
                &a_business,
                &a_key,
                &a_endpoint,
            ] {
                assert!(
                    !r.text.contains(secret),
                    "{method} {path} leaked {secret}: {}",
                    r.text
                );
            }
        }
    }

    // Nothing of A changed.
    let r = app
        .get(&format!("/v1/companies/{a_company}"), Some(&a))
        .await;
    assert_eq!(r.body["name"], "Alpha Private Company");
    assert_eq!(
        app.get(&format!("/v1/channels/{a_channel}"), Some(&a))
            .await
            .status,
        StatusCode::OK
    );
    let r = app.get("/v1/business", Some(&a)).await;
    assert_eq!(r.body["channels"]["used"], 1);
    let r = app
        .post(
            &format!("/v1/businesses/{a_business}/secrets/telegram/alpha_bot/reveal"),
            Some(&a),
            json!({}),
        )
        .await;
    assert_eq!(r.body["value"], "Alpha-token-123456", "{}", r.text);

    // B's lists hold only B's rows.
    let r = app.get("/v1/companies", Some(&b)).await;
    let ids: Vec<&str> = r.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [b_company.as_str()]);
    let r = app.get("/v1/channels", Some(&b)).await;
    assert_eq!(r.body["items"].as_array().unwrap().len(), 0);
}
