//! Tenant isolation: every route with an id, called by one business with
//! another business's ids, answers 404 and shows none of its data.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::common::{TestApp, email};

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

    // B's own resources so that B's calls are otherwise valid.
    let b_company = app.company(&b, "Beta Company").await;

    let admin = app.admin(&email("admin")).await;
    let (_, manager_b) = app.manager(&admin, &email("manager-b")).await;
    let b_business = app.business_id(&b).await;
    let me = app.get("/v1/me", Some(&manager_b)).await;
    let manager_b_id = me.body["id"].as_str().unwrap().to_owned();
    let r = app
        .call(
            Method::PUT,
            &format!("/v1/admin/businesses/{b_business}/manager"),
            Some(&admin),
            Some(json!({ "manager_id": manager_b_id })),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);

    let cases: Vec<(&str, Method, String, Option<serde_json::Value>)> = vec![
        (
            "owner B",
            Method::GET,
            format!("/v1/companies/{a_company}"),
            None,
        ),
        (
            "owner B",
            Method::PATCH,
            format!("/v1/companies/{a_company}"),
            Some(json!({ "name": "pwned" })),
        ),
        (
            "owner B",
            Method::DELETE,
            format!("/v1/companies/{a_company}"),
            None,
        ),
        (
            "owner B",
            Method::GET,
            format!("/v1/channels/{a_channel}"),
            None,
        ),
        (
            "owner B",
            Method::DELETE,
            format!("/v1/channels/{a_channel}"),
            None,
        ),
        (
            "owner B",
            Method::POST,
            "/v1/channels".into(),
            Some(json!({ "company_id": a_company, "platform": "telegram" })),
        ),
        (
            "owner B",
            Method::GET,
            format!("/v1/channels?company_id={a_company}"),
            None,
        ),
        (
            "owner B",
            Method::GET,
            format!("/v1/manager/businesses/{a_business}"),
            None,
        ),
        (
            "owner B",
            Method::GET,
            format!("/v1/manager/businesses/{a_business}/companies"),
            None,
        ),
        (
            "owner B",
            Method::GET,
            format!("/v1/manager/businesses/{a_business}/channels"),
            None,
        ),
        (
            "manager of B",
            Method::GET,
            format!("/v1/manager/businesses/{a_business}"),
            None,
        ),
        (
            "manager of B",
            Method::GET,
            format!("/v1/manager/businesses/{a_business}/companies"),
            None,
        ),
        (
            "manager of B",
            Method::GET,
            format!("/v1/manager/businesses/{a_business}/channels"),
            None,
        ),
    ];
    for (who, method, path, body) in cases {
        let token = if who == "owner B" { &b } else { &manager_b };
        let r = app.call(method.clone(), &path, Some(token), body).await;
        assert_eq!(
            r.status,
            StatusCode::NOT_FOUND,
            "{who} {method} {path}: {}",
            r.text
        );
        assert!(r.is_problem(), "{method} {path}");
        for secret in ["Alpha", &a_company, &a_channel, &a_business] {
            assert!(
                !r.text.contains(secret),
                "{method} {path} leaked {secret}: {}",
                r.text
            );
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
