//! Sign-in hardening, one test (or more) per finding of the review:
//! re-authentication for sensitive changes and the security emails' removal
//! links; no live link or code at rest; per-client limits that a /64 or a
//! forged `X-Forwarded-For` cannot dodge, and per-account backoff; cached
//! OIDC discovery; `register/verify` alike for taken and new addresses;
//! sessions that end at once; the small leaks; key rotation that does not
//! call itself complete too early. (Browser-bound OAuth and the provider
//! linking rules are in `oauth.rs`, beside their providers.)
#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test helpers: a panic is a failed test"
)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use reqwest::{Method, StatusCode};
use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Set};
use serde_json::{Value, json};

use crate::common::{PASSWORD, Resp, TestApp, email, into_resp, postgres_url, test_config};

/// Whether `needle` is stored anywhere in the app's database: the raw
/// SQLite file and its WAL, or, on PostgreSQL, any row of any table as text.
/// Checked against `control`, a value known to be stored, so a scan that
/// cannot see anything fails instead of passing.
async fn stored_anywhere(app: &TestApp, needle: &str, control: &str) -> bool {
    if postgres_url().is_some() {
        let db = &app.app.state.db;
        let tables = db
            .query_all_raw(sea_orm::Statement::from_string(
                sea_orm::DatabaseBackend::Postgres,
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'",
            ))
            .await
            .unwrap();
        let count = |what: String| {
            let tables = &tables;
            async move {
                let mut n = 0i64;
                for t in tables {
                    let table: String = t.try_get_by_index(0).unwrap();
                    let row = db
                        .query_one_raw(sea_orm::Statement::from_sql_and_values(
                            sea_orm::DatabaseBackend::Postgres,
                            format!("SELECT count(*) FROM \"{table}\" t WHERE t::text LIKE $1"),
                            [format!("%{what}%").into()],
                        ))
                        .await
                        .unwrap()
                        .unwrap();
                    n += row.try_get_by_index::<i64>(0).unwrap();
                }
                n
            }
        };
        assert!(
            count(control.to_owned()).await > 0,
            "the scan finds stored text"
        );
        count(needle.to_owned()).await > 0
    } else {
        let mut bytes = Vec::new();
        for file in ["switchboard.db", "switchboard.db-wal"] {
            if let Ok(b) = std::fs::read(app.dir().join(file)) {
                bytes.extend(b);
            }
        }
        let has = |what: &str| bytes.windows(what.len()).any(|w| w == what.as_bytes());
        assert!(has(control), "the scan finds stored text");
        has(needle)
    }
}

fn token_in(text: &str) -> String {
    let idx = text.find("token=").expect("a link in the email") + "token=".len();
    text[idx..]
        .split(|c: char| c.is_whitespace())
        .next()
        .unwrap()
        .to_owned()
}

async fn me_id(app: &TestApp, token: &str) -> uuid::Uuid {
    app.get("/v1/me", Some(token)).await.body["id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap()
}

/// Links a provider identity to `user` straight in the database (what a
/// completed provider sign-in stores), for tests that need one without a
/// provider.
async fn link_identity(app: &TestApp, user: uuid::Uuid, provider: &str, email: &str) {
    entity::oauth::identity::ActiveModel {
        id: Set(uuid::Uuid::now_v7()),
        user_id: Set(user),
        provider: Set(provider.into()),
        subject: Set(format!("{provider}-{user}")),
        email: Set(Some(email.into())),
        created_at: Set(chrono::Utc::now()),
    }
    .insert(&app.app.state.db)
    .await
    .unwrap();
}

// ---- 2. Re-authentication and the security emails ------------------------

#[tokio::test]
async fn sensitive_changes_need_a_recent_sign_in_and_a_refresh_does_not_make_one() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path()).await;
    config.auth.reauth_window_secs = 1;
    let app = TestApp::spawn_with(dir, config).await;
    let mail = email("stepup");
    let pair = app.register(&mail, "Step Up").await;
    let token = pair["access_token"].as_str().unwrap().to_owned();
    tokio::time::sleep(Duration::from_millis(2100)).await;

    // A stolen (older) access token cannot move the account's email.
    let r = app
        .post(
            "/v1/me/email",
            Some(&token),
            json!({ "email": email("thief") }),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);
    assert_eq!(r.code(), "reauthentication_required");
    assert_eq!(r.body["max_age"], 1);
    let challenge = r.headers["www-authenticate"].to_str().unwrap();
    assert!(
        challenge.contains("insufficient_user_authentication") && challenge.contains("max_age=1"),
        "{challenge}"
    );
    // Neither can a refreshed one: the family keeps its sign-in time.
    let r = app
        .post(
            "/v1/auth/refresh",
            None,
            json!({ "refresh_token": pair["refresh_token"] }),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let refreshed = r.body["access_token"].as_str().unwrap().to_owned();
    let r = app
        .post(
            "/v1/me/email",
            Some(&refreshed),
            json!({ "email": email("thief") }),
        )
        .await;
    assert_eq!(r.code(), "reauthentication_required");

    // Re-authenticating: a wrong password is refused, the right one makes a
    // token good for sensitive changes.
    let r = app
        .post(
            "/v1/auth/reauthenticate",
            Some(&refreshed),
            json!({ "password": "not the password" }),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.code(), "invalid_credentials");
    let r = app
        .post(
            "/v1/auth/reauthenticate",
            Some(&refreshed),
            json!({ "password": PASSWORD }),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let fresh = r.body["access_token"].as_str().unwrap().to_owned();
    assert!(r.body.get("refresh_token").is_none());
    let new_address = email("moved");
    let r = app
        .post(
            "/v1/me/email",
            Some(&fresh),
            json!({ "email": new_address }),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);

    // The link goes to the new address; following it moves the account and
    // tells the old address.
    let confirm = token_in(&app.last_message(&new_address).await.text);
    let r = app
        .post("/v1/auth/email/confirm", None, json!({ "token": confirm }))
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    let r = app
        .post("/v1/auth/email/confirm", None, json!({ "token": confirm }))
        .await;
    assert_eq!(r.code(), "invalid_token", "single use");
    assert!(
        app.last_message(&mail)
            .await
            .text
            .contains(&new_address.to_lowercase())
    );
    assert_eq!(
        app.get("/v1/me", Some(&fresh)).await.body["email"],
        new_address.to_lowercase()
    );
    let r = app
        .post(
            "/v1/auth/login",
            None,
            json!({ "email": new_address, "password": PASSWORD }),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = app
        .post(
            "/v1/auth/login",
            None,
            json!({ "email": mail, "password": PASSWORD }),
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::UNAUTHORIZED,
        "the old address is gone"
    );
}

#[tokio::test]
async fn a_password_reset_lists_the_sign_in_methods_and_a_link_removes_one() {
    let app = TestApp::spawn().await;
    let mail = email("victim");
    let token = app.owner(&mail, "Victim Co").await;
    let id = me_id(&app, &token).await;
    // An attacker with a stolen token linked their own provider account.
    link_identity(&app, id, "facebook", "attacker@example.net").await;

    let r = app
        .post("/v1/auth/password/forgot", None, json!({ "email": mail }))
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    let reset = app.last_link_token(&mail).await;
    let r = app
        .post(
            "/v1/auth/password/reset",
            None,
            json!({ "token": reset, "password": "a brand new password" }),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    let notice = app.last_message(&mail).await;
    assert!(
        notice.subject.contains("password was changed"),
        "{notice:?}"
    );
    assert!(notice.text.contains("- Password"), "{}", notice.text);
    assert!(
        notice
            .text
            .contains("Facebook (attacker@example.net): not yours? Remove it:"),
        "{}",
        notice.text
    );
    let remove = token_in(&notice.text);

    // Signed in again (the reset ended every session), then the link.
    let r = app
        .post(
            "/v1/auth/login",
            None,
            json!({ "email": mail, "password": "a brand new password" }),
        )
        .await;
    let after_reset = r.body["access_token"].as_str().unwrap().to_owned();
    let r = app
        .post(
            "/v1/auth/sign-in-methods/remove",
            None,
            json!({ "token": remove }),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    let r = app
        .post(
            "/v1/auth/sign-in-methods/remove",
            None,
            json!({ "token": remove }),
        )
        .await;
    assert_eq!(r.code(), "invalid_token", "single use");
    assert_eq!(
        app.get("/v1/me", Some(&after_reset)).await.status,
        StatusCode::UNAUTHORIZED,
        "whoever added the method is signed out with everyone"
    );
    let r = app
        .post(
            "/v1/auth/login",
            None,
            json!({ "email": mail, "password": "a brand new password" }),
        )
        .await;
    let now = r.body["access_token"].as_str().unwrap().to_owned();
    let methods = app.get("/v1/me/sign-in-methods", Some(&now)).await;
    assert_eq!(
        methods.body.as_array().unwrap().len(),
        1,
        "{}",
        methods.text
    );
    assert_eq!(methods.body[0]["method"], "password");

    // A tampered link (another identity's id, same secret) is refused.
    let (_, secret) = remove.split_once('.').unwrap();
    let forged = format!("{}.{secret}", uuid::Uuid::now_v7().simple());
    let r = app
        .post(
            "/v1/auth/sign-in-methods/remove",
            None,
            json!({ "token": forged }),
        )
        .await;
    assert_eq!(r.code(), "invalid_token");
}

#[tokio::test]
async fn a_removal_link_never_removes_the_last_way_in() {
    let app = TestApp::spawn().await;
    let mail = email("only-google");
    let token = app.owner(&mail, "Only Google").await;
    let id = me_id(&app, &token).await;
    link_identity(&app, id, "google", &mail).await;
    // The account loses its password; a removal link for its only provider
    // (as a security email would carry) must not lock it out.
    let txn = app.app.state.db.clone();
    let user = entity::user::Entity::find_by_id(id)
        .one(&txn)
        .await
        .unwrap()
        .unwrap();
    let mut user: entity::user::ActiveModel = user.into();
    user.password_hash = Set(None);
    user.update(&txn).await.unwrap();
    let identity = entity::oauth::identity::Entity::find()
        .filter(entity::oauth::identity::Column::UserId.eq(id))
        .one(&txn)
        .await
        .unwrap()
        .unwrap();
    let remove = switchboard::domain::identity::one_time::create_for_subject(
        &txn,
        entity::enums::TokenPurpose::RemoveSignInMethod,
        id,
        &mail,
        600,
        identity.id,
    )
    .await
    .unwrap();
    let r = app
        .post(
            "/v1/auth/sign-in-methods/remove",
            None,
            json!({ "token": remove }),
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
    assert_eq!(r.code(), "last_sign_in_method");
    assert_eq!(
        app.get("/v1/me/sign-in-methods", Some(&token)).await.body[0]["method"],
        "google"
    );
}

// ---- 3. No live link or code at rest -------------------------------------

#[tokio::test]
async fn emailed_links_are_sealed_while_queued_and_erased_once_sent() {
    // A queued message (SMTP down): its body is sealed, the link nowhere.
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path()).await;
    config.smtp_host = Some("127.0.0.1".into());
    config.smtp_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    config.smtp_tls = switchboard::config::SmtpTls::None;
    config.outbox_retry_base_ms = 60_000;
    let stuck = TestApp::spawn_with(dir, config).await;
    // An account made without email (SMTP is down), as `admin create` does.
    let mail = email("queued");
    switchboard::domain::tenancy::managers::create_admin(
        &stuck.app.state.identity(),
        &switchboard::domain::validate::Email::parse("email", &mail).unwrap(),
        "Sealed Outbox",
        switchboard::domain::validate::Password::parse("password", PASSWORD.to_owned().into())
            .unwrap(),
    )
    .await
    .unwrap();
    let r = stuck
        .post("/v1/auth/magic-link", None, json!({ "email": mail }))
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    let row = entity::email::outbox::Entity::find()
        .filter(entity::email::outbox::Column::Template.eq("magic_link"))
        .one(&stuck.app.state.db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.status, "pending");
    assert!(row.text_body.is_empty() && row.html_body.is_empty());
    assert!(row.body_ciphertext.is_some());
    let body = stuck.app.state.mailer.open(&row).unwrap().unwrap();
    let link = token_in(&body.text);
    assert!(link.len() >= 40, "{link}");
    assert!(
        !stored_anywhere(&stuck, &link, "Sealed Outbox").await,
        "a queued sign-in link is not at rest in plaintext"
    );
}

#[tokio::test]
async fn a_magic_link_sent_and_used_leaves_nothing_usable_in_the_database() {
    let app = TestApp::spawn().await;
    let mail = email("magic");
    app.owner(&mail, "Magic Scan").await;
    let r = app
        .post("/v1/auth/magic-link", None, json!({ "email": mail }))
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    let link = app.last_link_token(&mail).await;
    let r = app
        .post("/v1/auth/magic-link/verify", None, json!({ "token": link }))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    // Every message is sent (the sign-in's own notice is delivered by the
    // job runner, so wait for it): no body remains, sealed or not.
    let mut rows = Vec::new();
    for _ in 0..200 {
        rows = entity::email::outbox::Entity::find()
            .all(&app.app.state.db)
            .await
            .unwrap();
        if rows.iter().all(|r| r.status == "sent") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(rows.len() >= 2);
    for row in &rows {
        assert_eq!(row.status, "sent");
        assert!(
            row.body_ciphertext.is_none() && row.text_body.is_empty(),
            "{}",
            row.template
        );
    }
    // Checkpoint the WAL into the file so the scan sees every page.
    if postgres_url().is_none() {
        app.app
            .state
            .db
            .execute_unprepared("PRAGMA wal_checkpoint(TRUNCATE)")
            .await
            .unwrap();
    }
    assert!(
        !stored_anywhere(&app, &link, "Magic Scan").await,
        "the link is nowhere in the database"
    );
    let code_mail = app.wait_for_messages(&mail, 1).await[0].text.clone();
    let code = code_mail
        .split("code is ")
        .nth(1)
        .map(|s| &s[..6])
        .unwrap()
        .to_owned();
    assert!(
        !stored_anywhere(&app, &format!("code is {code}"), "Magic Scan").await,
        "nor the registration email"
    );
}

// ---- 4. Limits that cannot be dodged -------------------------------------

async fn login_via(app: &TestApp, forwarded_for: &str, mail: &str) -> Resp {
    into_resp(
        app.client
            .post(app.url("/v1/auth/login"))
            .header("x-forwarded-for", forwarded_for)
            .json(&json!({ "email": mail, "password": "wrong password here" }))
            .send()
            .await
            .unwrap(),
    )
    .await
}

#[tokio::test]
async fn one_ipv6_64_and_forged_forwarded_for_share_one_budget() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path()).await;
    config.rate_limit.auth_per_minute = 3;
    config.rate_limit.trusted_proxies = vec!["127.0.0.1/32".into(), "::1".into()];
    let app = TestApp::spawn_with(dir, config).await;
    // Four addresses of one /64 (through the trusted proxy): one client.
    for i in 1..=3 {
        let r = login_via(&app, &format!("2001:db8:1:2::{i:x}"), &email("n")).await;
        assert_eq!(
            r.status,
            StatusCode::UNAUTHORIZED,
            "request {i}: {}",
            r.text
        );
    }
    let r = login_via(&app, "2001:db8:1:2:ffff:ffff:ffff:fffe", &email("n")).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.text);
    assert_eq!(r.code(), "rate_limited");
    // Writing another address to the left of the header changes nothing:
    // the proxy appended the real one on the right.
    for forged in ["198.51.100.1", "203.0.113.9, 10.0.0.1"] {
        let r = login_via(&app, &format!("{forged}, 2001:db8:1:2::77"), &email("n")).await;
        assert_eq!(
            r.status,
            StatusCode::TOO_MANY_REQUESTS,
            "{forged}: {}",
            r.text
        );
    }
    // Another /64 is another client.
    let r = login_via(&app, "2001:db8:1:3::1", &email("n")).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);
    // The audit log and everything else see the same client.
    // Not behind the trusted proxy: the header is ignored entirely.
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path()).await;
    config.rate_limit.auth_per_minute = 3;
    let direct = TestApp::spawn_with(dir, config).await;
    for i in 1..=3 {
        let r = login_via(&direct, &format!("192.0.2.{i}"), &email("n")).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    }
    let r = login_via(&direct, "192.0.2.99", &email("n")).await;
    assert_eq!(
        r.status,
        StatusCode::TOO_MANY_REQUESTS,
        "forged headers from a direct client count as the peer"
    );
}

#[tokio::test]
async fn failed_sign_ins_pause_the_account_alike_whether_or_not_it_exists() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path()).await;
    config.auth.login_failures_before_lock = 3;
    config.auth.login_lock_base_secs = 1;
    config.auth.login_lock_max_secs = 2;
    let app = TestApp::spawn_with(dir, config).await;
    let known = email("guessed");
    app.register(&known, "Guessed").await;
    let unknown = email("nobody");
    let attempt = |who: String, password: &'static str| {
        let app = &app;
        async move {
            app.post(
                "/v1/auth/login",
                None,
                json!({ "email": who, "password": password }),
            )
            .await
        }
    };
    for who in [&known, &unknown] {
        for i in 0..3 {
            let r = attempt(who.clone(), "wrong password!").await;
            assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{who} attempt {i}");
        }
    }
    // Paused: even the right password is not checked, and both answer alike.
    let k = attempt(known.clone(), PASSWORD).await;
    let u = attempt(unknown.clone(), PASSWORD).await;
    for r in [&k, &u] {
        assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.text);
        assert_eq!(r.code(), "login_throttled");
        let retry: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
        assert!((1..=2).contains(&retry), "{retry}");
    }
    let keys = |r: &Resp| {
        let mut k: Vec<String> = r.body.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    };
    assert_eq!(keys(&k), keys(&u));
    assert_eq!(k.body["detail"], u.body["detail"]);
    // The owner hears of it once.
    let notices: Vec<_> = app
        .wait_for_messages(&known, 2)
        .await
        .into_iter()
        .filter(|m| m.subject.contains("Failed sign-ins"))
        .collect();
    assert_eq!(notices.len(), 1, "{notices:?}");
    assert!(notices[0].text.contains("forgot-password"));
    // The pause ends; a success clears the count.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(
        attempt(known.clone(), PASSWORD).await.status,
        StatusCode::OK
    );
    assert_eq!(
        attempt(known.clone(), "wrong password!").await.status,
        StatusCode::UNAUTHORIZED,
        "counting starts over"
    );
    // A further failure of a paused series pauses longer (capped at 2 s).
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let r = attempt(unknown.clone(), "wrong password!").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = attempt(unknown.clone(), "wrong password!").await;
    assert_eq!(r.code(), "login_throttled");
    assert_eq!(
        r.headers["retry-after"].to_str().unwrap(),
        "2",
        "the second pause doubles"
    );
}

/// A local OpenID provider's discovery document and keys, counting how often
/// each is fetched.
async fn counting_discovery() -> (String, Arc<AtomicUsize>, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer = format!("http://{}", listener.local_addr().unwrap());
    let (docs, keys) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let doc = json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/auth"),
        "token_endpoint": format!("{issuer}/token"),
        "jwks_uri": format!("{issuer}/jwks"),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
    });
    let router = axum::Router::new()
        .route(
            "/.well-known/openid-configuration",
            axum::routing::get({
                let docs = docs.clone();
                move || async move {
                    docs.fetch_add(1, Ordering::SeqCst);
                    axum::Json(doc)
                }
            }),
        )
        .route(
            "/jwks",
            axum::routing::get({
                let keys = keys.clone();
                move || async move {
                    keys.fetch_add(1, Ordering::SeqCst);
                    axum::Json(json!({ "keys": [] }))
                }
            }),
        );
    tokio::spawn(async move { axum::serve(listener, router).await });
    (issuer, docs, keys)
}

#[tokio::test]
async fn oidc_discovery_is_fetched_once_not_on_every_sign_in() {
    let (issuer, docs, keys) = counting_discovery().await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path()).await;
    config.google = Some(switchboard::config::OidcConfig {
        issuer_url: issuer.clone(),
        client_id: "switchboard".into(),
        client_secret: "s".to_owned().into(),
    });
    let app = TestApp::spawn_with(dir, config).await;
    for _ in 0..3 {
        let r = app.get("/v1/auth/oauth/google/start", None).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text);
        let location = r.headers["location"].to_str().unwrap();
        assert!(
            location.starts_with(&format!("{issuer}/auth?")),
            "{location}"
        );
    }
    assert_eq!(docs.load(Ordering::SeqCst), 1, "discovery fetched once");
    assert!(
        keys.load(Ordering::SeqCst) <= 1,
        "keys fetched at most once"
    );
}

// ---- 5. register/verify answers alike ------------------------------------

#[tokio::test]
async fn register_verify_answers_a_taken_address_like_a_new_one() {
    let app = TestApp::spawn().await;
    let taken = email("taken");
    app.register(&taken, "Taken").await;
    let fresh = email("fresh");
    for who in [&taken, &fresh] {
        let r = app
            .post("/v1/auth/register/start", None, json!({ "email": who }))
            .await;
        assert_eq!(r.status, StatusCode::ACCEPTED);
    }
    let fresh_code = app.last_code(&fresh).await;
    let wrong = if fresh_code == "000000" {
        "111111"
    } else {
        "000000"
    };
    let answer = |who: String| {
        let app = &app;
        async move {
            app.post(
                "/v1/auth/register/verify",
                None,
                json!({ "email": who, "code": wrong }),
            )
            .await
        }
    };
    let (t, f) = (answer(taken.clone()).await, answer(fresh.clone()).await);
    assert_eq!(t.status, f.status);
    assert_eq!(t.status, StatusCode::BAD_REQUEST);
    let strip = |r: &Resp| {
        let mut b = r.body.clone();
        b.as_object_mut().unwrap().remove("instance");
        b
    };
    assert_eq!(strip(&t), strip(&f), "same body: {} vs {}", t.text, f.text);
    assert_eq!(t.body["attempts_remaining"], 4);
    // Attempts run out alike too.
    for _ in 0..4 {
        answer(taken.clone()).await;
        answer(fresh.clone()).await;
    }
    let (t, f) = (answer(taken.clone()).await, answer(fresh.clone()).await);
    assert_eq!((t.status, t.code()), (f.status, f.code()));
    assert_eq!(t.code(), "code_attempts_exceeded");
}

// ---- 7. Sessions end at once ----------------------------------------------

#[tokio::test]
async fn logout_everywhere_and_password_changes_end_access_tokens_at_once() {
    let app = TestApp::spawn().await;
    let mail = email("everywhere");
    let first = app.register(&mail, "Everywhere").await;
    let phone = app.login(&mail).await;
    let laptop = first["access_token"].as_str().unwrap().to_owned();
    assert_eq!(app.get("/v1/me", Some(&phone)).await.status, StatusCode::OK);
    let r = app
        .call(Method::POST, "/v1/auth/logout-all", Some(&laptop), None)
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    for t in [&phone, &laptop] {
        let r = app.get("/v1/me", Some(t)).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        assert_eq!(r.code(), "invalid_token");
    }
    let r = app
        .post(
            "/v1/auth/refresh",
            None,
            json!({ "refresh_token": first["refresh_token"] }),
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::UNAUTHORIZED,
        "refresh tokens revoked too"
    );
    // A sign-in right after (often within the same second) works.
    let again = app.login(&mail).await;
    assert_eq!(app.get("/v1/me", Some(&again)).await.status, StatusCode::OK);

    // A password change ends the other sessions the same way.
    let other = app.login(&mail).await;
    let r = app
        .post(
            "/v1/auth/password/change",
            Some(&again),
            json!({ "current_password": PASSWORD, "new_password": "changed password 123" }),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    for t in [&again, &other] {
        assert_eq!(
            app.get("/v1/me", Some(t)).await.status,
            StatusCode::UNAUTHORIZED
        );
    }
    let r = app
        .post(
            "/v1/auth/login",
            None,
            json!({ "email": mail, "password": "changed password 123" }),
        )
        .await;
    let t = r.body["access_token"].as_str().unwrap().to_owned();
    assert_eq!(app.get("/v1/me", Some(&t)).await.status, StatusCode::OK);
}

#[tokio::test]
async fn the_role_comes_from_the_database_and_other_instances_follow_within_the_recheck() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path()).await;
    config.auth.session_recheck_secs = 1;
    let a = TestApp::spawn_with(dir, config.clone()).await;
    let b = TestApp::spawn_with(tempfile::tempdir().unwrap(), config).await;
    let admin_mail = email("demoted");
    let admin = a.admin(&admin_mail).await;
    assert_eq!(
        a.get("/v1/admin/stats", Some(&admin)).await.status,
        StatusCode::OK
    );
    assert_eq!(
        b.get("/v1/admin/stats", Some(&admin)).await.status,
        StatusCode::OK
    );
    // Demoted in the database: the token still says admin, the server does not.
    let id = me_id(&a, &admin).await;
    entity::user::Entity::update_many()
        .col_expr(
            entity::user::Column::Role,
            sea_orm::sea_query::Expr::value("manager"),
        )
        .filter(entity::user::Column::Id.eq(id))
        .exec(&a.app.state.db)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    for app in [&a, &b] {
        let r = app.get("/v1/admin/stats", Some(&admin)).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    }
    // Logging out everywhere through A: A refuses at once, B within the recheck.
    let owner = a.owner(&email("two-instances"), "Two").await;
    assert_eq!(b.get("/v1/me", Some(&owner)).await.status, StatusCode::OK);
    let r = a
        .call(Method::POST, "/v1/auth/logout-all", Some(&owner), None)
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(
        a.get("/v1/me", Some(&owner)).await.status,
        StatusCode::UNAUTHORIZED
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(
        b.get("/v1/me", Some(&owner)).await.status,
        StatusCode::UNAUTHORIZED
    );
}

// ---- 8. Small leaks ---------------------------------------------------------

#[tokio::test]
async fn readiness_names_a_reason_and_nothing_more() {
    let app = TestApp::spawn().await;
    assert_eq!(app.get("/health/ready", None).await.status, StatusCode::OK);
    // Forget the newest migration: the server is not ready, and says why in
    // one word, not with the database's own message.
    let db = &app.app.state.db;
    db.execute_unprepared(
        "DELETE FROM seaql_migrations WHERE version = (SELECT max(version) FROM seaql_migrations)",
    )
    .await
    .unwrap();
    let r = app.get("/health/ready", None).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.code(), "not_ready");
    assert_eq!(r.body["reason"], "migrations_pending");
    assert!(r.body.get("detail").is_none(), "{}", r.text);
}

#[tokio::test]
async fn owners_see_staff_actions_by_role_not_by_address() {
    let app = TestApp::spawn().await;
    let owner = app.owner(&email("watched"), "Watched").await;
    let business = app.business_id(&owner).await;
    let admin = app.admin(&email("staff")).await;
    let path = format!("/v1/businesses/{business}/secrets/telegram/bot_token");
    let r = app
        .call(
            Method::PUT,
            &path,
            Some(&owner),
            Some(json!({ "value": "123456:owner-wrote-this" })),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = app
        .call(Method::POST, &format!("{path}/reveal"), Some(&admin), None)
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let seen = app.get("/v1/business/audit", Some(&owner)).await;
    let items = seen.body["items"].as_array().unwrap();
    let by_action = |a: &str| items.iter().find(|i| i["action"] == a).unwrap().clone();
    let reveal = by_action("secret.reveal");
    assert_eq!(reveal["actor_role"], "admin");
    for field in ["actor_id", "client_ip", "request_id"] {
        assert_eq!(reveal[field], Value::Null, "{field}: {reveal}");
    }
    let write = by_action("secret.write");
    assert_eq!(
        write["client_ip"], "127.0.0.1",
        "the owner's own actions keep theirs"
    );
    // Admins still see everything.
    let all = app.get("/v1/admin/audit", Some(&admin)).await;
    let reveal = all.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["action"] == "secret.reveal")
        .unwrap()
        .clone();
    assert_eq!(reveal["client_ip"], "127.0.0.1");
    assert!(reveal["actor_id"].is_string());
}

/// Each secret's name and masked value, as the list shows them.
async fn masked(
    app: &TestApp,
    owner: &str,
    business: &str,
) -> std::collections::BTreeMap<String, String> {
    let r = app
        .get(&format!("/v1/businesses/{business}/secrets"), Some(owner))
        .await;
    r.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["name"].as_str().unwrap().to_owned(),
                i["masked"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn a_secret_s_last_four_characters_are_sealed_and_filled_for_old_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let config = test_config(dir.path()).await;
    let app = TestApp::spawn_with(dir, config.clone()).await;
    let owner = app.owner(&email("hints"), "Hints").await;
    let business = app.business_id(&owner).await;
    let long = "7012345678:AAHdqTcvCH1vGWJxfSeofSAs0K5PQ9zX";
    for (name, value) in [("long", long), ("short", "abc123")] {
        let r = app
            .call(
                Method::PUT,
                &format!("/v1/businesses/{business}/secrets/telegram/{name}"),
                Some(&owner),
                Some(json!({ "value": value })),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    }
    let seen = masked(&app, &owner, &business).await;
    assert_eq!(seen["long"], "••••Q9zX");
    assert_eq!(seen["short"], "••••");
    let rows = entity::secret::Entity::find()
        .all(&app.app.state.db)
        .await
        .unwrap();
    for row in &rows {
        let hint = row.hint_ciphertext.as_ref().unwrap();
        assert!(!hint.windows(4).any(|w| w == b"Q9zX"), "the hint is sealed");
    }
    // Secrets from before hints were sealed get theirs at the next start.
    entity::secret::Entity::update_many()
        .col_expr(
            entity::secret::Column::HintCiphertext,
            sea_orm::sea_query::Expr::value(Option::<Vec<u8>>::None),
        )
        .col_expr(
            entity::secret::Column::HintNonce,
            sea_orm::sea_query::Expr::value(Option::<Vec<u8>>::None),
        )
        .exec(&app.app.state.db)
        .await
        .unwrap();
    assert_eq!(masked(&app, &owner, &business).await["long"], "••••");
    let TestApp {
        app: running, dir, ..
    } = app;
    running.stop().await.unwrap();
    let app = TestApp::spawn_with(dir, config).await;
    let seen = masked(&app, &owner, &business).await;
    assert_eq!(seen["long"], "••••Q9zX");
    assert_eq!(seen["short"], "••••");
}

#[test]
fn tokens_and_email_bodies_never_show_in_debug_output() {
    let pair = switchboard::domain::identity::sessions::TokenPair {
        access_token: "eyJ-access-token-value".into(),
        token_type: "Bearer",
        expires_in: 900,
        refresh_token: "refresh-token-value".into(),
        refresh_expires_in: 60,
    };
    let debug = format!("{pair:?}");
    assert!(
        !debug.contains("access-token-value") && !debug.contains("refresh-token-value"),
        "{debug}"
    );
    let rendered =
        switchboard::mail::templates::magic_link("https://x.test/m?token=live-secret", 15);
    let debug = format!("{rendered:?}");
    assert!(!debug.contains("live-secret"), "{debug}");
    let email = switchboard::mail::Email {
        to: "a@b.c".into(),
        subject: "s".into(),
        text: "token=live-secret".into(),
        sent_at: chrono::Utc::now(),
    };
    assert!(!format!("{email:?}").contains("live-secret"));
}
