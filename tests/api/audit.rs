//! The audit log: one record per audited action, with the right actor and
//! outcome; the owner's and the admin's views and filters; append-only;
//! admin statistics and the manager's view of a business.

use reqwest::{Method, StatusCode};
use sea_orm::ConnectionTrait;
use serde_json::{Value, json};

use crate::common::{TestApp, email};

#[expect(
    clippy::unwrap_used,
    reason = "a test helper: a page without items is a failed test"
)]
fn items(r: &crate::common::Resp) -> Vec<Value> {
    r.body["items"].as_array().unwrap().clone()
}

#[tokio::test]
async fn every_audited_action_leaves_exactly_one_record() {
    let app = TestApp::spawn().await;
    let owner = app.owner(&email("owner"), "Audited").await;
    let business = app.business_id(&owner).await;
    let owner_id = app.get("/v1/me", Some(&owner)).await.body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let admin = app.admin(&email("admin")).await;
    let admin_id = app.get("/v1/me", Some(&admin)).await.body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (manager_id, manager) = app.manager(&admin, &email("mgr")).await;
    let secret = format!("/v1/businesses/{business}/secrets/meta/page_token");

    // (who, method, path, body, action, recorded role)
    type Step<'a> = (&'a str, Method, String, Option<Value>, &'a str, &'a str);
    let steps: Vec<Step> = vec![
        (
            "admin",
            Method::PUT,
            format!("/v1/admin/businesses/{business}/manager"),
            Some(json!({ "manager_id": manager_id })),
            "manager.assign",
            "admin",
        ),
        (
            "owner",
            Method::PUT,
            secret.clone(),
            Some(json!({ "value": "EAAB-page-token-0123456789" })),
            "secret.write",
            "owner",
        ),
        (
            "manager",
            Method::POST,
            format!("{secret}/reveal"),
            None,
            "secret.reveal",
            "manager",
        ),
        (
            "admin",
            Method::POST,
            format!("{secret}/reveal"),
            None,
            "secret.reveal",
            "admin",
        ),
        (
            "owner",
            Method::DELETE,
            secret.clone(),
            None,
            "secret.delete",
            "owner",
        ),
        (
            "admin",
            Method::DELETE,
            format!("/v1/admin/businesses/{business}/manager"),
            None,
            "manager.unassign",
            "admin",
        ),
        (
            "admin",
            Method::GET,
            format!("/v1/admin/businesses/{business}"),
            None,
            "admin.business.read",
            "admin",
        ),
    ];
    for (who, method, path, body, action, role) in &steps {
        let token = match *who {
            "owner" => &owner,
            "manager" => &manager,
            _ => &admin,
        };
        let before = app
            .get(
                &format!("/v1/admin/audit?action={action}&business_id={business}&limit=100"),
                Some(&admin),
            )
            .await;
        let r = app
            .call(method.clone(), path, Some(token), body.clone())
            .await;
        assert!(r.status.is_success(), "{method} {path}: {}", r.text);
        let after = app
            .get(
                &format!("/v1/admin/audit?action={action}&business_id={business}&limit=100"),
                Some(&admin),
            )
            .await;
        let (before, after) = (items(&before), items(&after));
        assert_eq!(
            after.len(),
            before.len() + 1,
            "{action}: exactly one new record"
        );
        let record = after.last().unwrap();
        let actor = match *who {
            "owner" => owner_id.as_str(),
            "manager" => manager_id.as_str(),
            _ => admin_id.as_str(),
        };
        assert_eq!(record["actor_id"], actor, "{action}");
        assert_eq!(record["actor_role"], *role, "{action}");
        assert_eq!(record["outcome"], "success", "{action}");
        assert_eq!(record["client_ip"], "127.0.0.1", "{action}");
        assert!(
            record["request_id"].as_str().is_some_and(|s| !s.is_empty()),
            "{action}"
        );
        assert!(
            !record.to_string().contains("EAAB-page-token"),
            "no secret in the record"
        );
    }
    // manager.create was recorded at creation, once, by the admin.
    let r = app
        .get(
            &format!("/v1/admin/audit?action=manager.create&actor_id={admin_id}"),
            Some(&admin),
        )
        .await;
    assert_eq!(items(&r).len(), 1);

    // The owner sees what happened to their business, the manager's reveal included.
    let r = app.get("/v1/business/audit?limit=100", Some(&owner)).await;
    assert_eq!(r.status, StatusCode::OK);
    let log = items(&r);
    assert!(
        log.iter()
            .any(|e| e["action"] == "secret.reveal" && e["actor_role"] == "manager")
    );
    assert!(log.iter().all(|e| e["business_id"] == business.as_str()));
    // Another owner sees none of it.
    let other = app.owner(&email("other"), "Other").await;
    let r = app.get("/v1/business/audit", Some(&other)).await;
    assert!(items(&r).is_empty());
    // Only admins read the platform log.
    assert_eq!(
        app.get("/v1/admin/audit", Some(&owner)).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        app.get("/v1/admin/audit", Some(&manager)).await.status,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn admin_audit_filters_by_time_and_paginates() {
    let app = TestApp::spawn().await;
    let admin = app.admin(&email("admin")).await;
    let start = chrono::Utc::now();
    for i in 0..5 {
        app.post(
            "/v1/admin/managers",
            Some(&admin),
            json!({ "email": email(&format!("m{i}")), "full_name": "M" }),
        )
        .await;
    }
    let from = start
        .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
        .replace('+', "%2B");
    let mut seen = Vec::new();
    let mut cursor = String::new();
    loop {
        let r = app
            .get(
                &format!("/v1/admin/audit?action=manager.create&from={from}&limit=2{cursor}"),
                Some(&admin),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        seen.extend(
            items(&r)
                .into_iter()
                .map(|e| e["id"].as_str().unwrap().to_owned()),
        );
        match r.body["next_cursor"].as_str() {
            Some(c) => cursor = format!("&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(seen.len(), 5);
    let r = app
        .get(
            &format!("/v1/admin/audit?action=manager.create&to={from}"),
            Some(&admin),
        )
        .await;
    assert!(items(&r).is_empty(), "nothing before the start");
    let r = app
        .get("/v1/admin/audit?from=yesterday", Some(&admin))
        .await;
    assert_eq!(r.code(), "invalid_query");
}

#[tokio::test]
async fn the_audit_log_is_append_only_in_the_database() {
    let app = TestApp::spawn().await;
    let admin = app.admin(&email("admin")).await;
    app.get("/v1/admin/stats", Some(&admin)).await;
    let db = &app.app.state.db;
    assert!(
        db.execute_unprepared("UPDATE audit_log SET outcome = 'denied'")
            .await
            .is_err()
    );
    assert!(
        db.execute_unprepared("DELETE FROM audit_log")
            .await
            .is_err()
    );
    let r = app.get("/v1/admin/audit", Some(&admin)).await;
    assert!(items(&r).iter().all(|e| e["outcome"] == "success"));
    assert!(!items(&r).is_empty());
}

#[tokio::test]
async fn admin_stats_and_the_manager_view_of_a_business() {
    let app = TestApp::spawn().await;
    let admin = app.admin(&email("admin")).await;
    let (m_id, manager) = app.manager(&admin, &email("mgr")).await;
    let a = app.owner(&email("a"), "A").await;
    let b = app.owner(&email("b"), "B").await;
    let c = app.owner(&email("c"), "C").await;
    let a_id = app.business_id(&a).await;
    let b_id = app.business_id(&b).await;
    app.set_plan(&b_id, "growth").await;
    let c_id = app.business_id(&c).await;
    // C's trial has ended: counted restricted.
    app.app
        .state
        .db
        .execute_unprepared(&format!(
            "UPDATE businesses SET trial_ends_at = '2000-01-01T00:00:00Z' WHERE id = {}",
            if crate::common::postgres_url().is_some() {
                format!("'{c_id}'")
            } else {
                format!("X'{}'", c_id.replace('-', ""))
            }
        ))
        .await
        .unwrap();
    for id in [&a_id, &b_id] {
        app.call(
            Method::PUT,
            &format!("/v1/admin/businesses/{id}/manager"),
            Some(&admin),
            Some(json!({ "manager_id": m_id })),
        )
        .await;
    }
    let r = app.get("/v1/admin/stats", Some(&admin)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["businesses"], 3);
    assert_eq!(r.body["by_plan"], json!({ "trial": 2, "growth": 1 }));
    assert_eq!(r.body["by_status"]["restricted"], 1);
    assert_eq!(r.body["by_status"]["active"], 2);
    assert_eq!(
        r.body["trials_ending_within_7_days"], 1,
        "A's trial ends in 7 days; C's is over; B is paid"
    );
    let managers = r.body["managers"].as_array().unwrap();
    assert_eq!(managers.len(), 1);
    assert_eq!(managers[0]["assigned_businesses"], 2);
    assert_eq!(
        app.get("/v1/admin/stats", Some(&manager)).await.status,
        StatusCode::FORBIDDEN
    );

    let r = app
        .get(&format!("/v1/manager/businesses/{a_id}"), Some(&manager))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["plan"]["id"], "trial");
    assert_eq!(r.body["channels"]["limit"], 1);
    assert!(r.body["trial_ends_at"].is_string());
    assert!(r.body["last_activity_at"].is_string());
    assert_eq!(
        app.get(&format!("/v1/manager/businesses/{c_id}"), Some(&manager))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
}
