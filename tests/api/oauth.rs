//! Sign-in with Google (OpenID Connect) end to end against `oidc-provider`
//! (a certified OIDC implementation, `tests/oidc/`, installed by `.ci/run`
//! from the npm registry), and with Facebook against a local server speaking
//! the Graph API's wire format. Linking, unlinking and every refusal.
#![expect(
    clippy::unwrap_used,
    reason = "harness helpers and a wire-format fake: a panic is a failed test"
)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, StatusCode as AxStatus};
use axum::response::{IntoResponse, Redirect};
use base64::Engine;
use hmac::Mac;
use reqwest::{StatusCode, Url};
use sea_orm::{ActiveModelTrait, EntityTrait, IntoActiveModel, QueryOrder, Set};
use serde_json::json;
use sha2::Digest;
use switchboard::config::{Config, FacebookConfig, OidcConfig};

use crate::common::{TestApp, email, into_resp, test_config};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `oidc-provider`, started for one test.
struct OidcProvider {
    child: Child,
    issuer: String,
}

impl Drop for OidcProvider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the provider; `None` (test skipped) only outside CI when its
/// npm packages are not installed.
fn start_oidc(redirect_uris: &str) -> Option<OidcProvider> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/oidc");
    if !dir.join("node_modules/oidc-provider").exists() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must install tests/oidc (npm ci --prefix tests/oidc)"
        );
        eprintln!("SKIPPED: run `npm ci --prefix tests/oidc` for the OpenID Connect tests");
        return None;
    }
    let port = free_port();
    let mut child = Command::new("node")
        .arg(dir.join("provider.mjs"))
        .env("OIDC_PORT", port.to_string())
        .env("OIDC_REDIRECT_URIS", redirect_uris)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let issuer = line
        .trim()
        .strip_prefix("READY ")
        .unwrap_or_else(|| panic!("provider did not start: {line:?}"))
        .to_owned();
    Some(OidcProvider { child, issuer })
}

/// A test app whose public URL is known before it starts (the provider
/// must register its callback).
async fn app_with(configure: impl FnOnce(&mut Config)) -> (TestApp, String) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path()).await;
    let port = free_port();
    config.bind = format!("127.0.0.1:{port}").parse().unwrap();
    config.public_url = format!("http://127.0.0.1:{port}");
    configure(&mut config);
    let public = config.public_url.clone();
    (TestApp::spawn_with(dir, config).await, public)
}

/// A browser: its own cookie jar.
struct Browser(reqwest::Client);

impl Browser {
    fn new() -> Browser {
        Browser(
            reqwest::Client::builder()
                .cookie_store(true)
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
        )
    }
}

/// A sign-in stopped at the provider's redirect back: the browser that made
/// it and the callback URL it was sent to.
struct Flow {
    browser: Browser,
    callback: String,
}

/// Follows redirects by hand in a new browser until one leaves for
/// `stop_prefix`.
async fn browse(start: &str, stop_prefix: &str, token: Option<&str>) -> Flow {
    let browser = Browser::new();
    let callback = browse_in(&browser, start, stop_prefix, token).await;
    Flow { browser, callback }
}

/// Follows redirects by hand in `browser` until one leaves for
/// `stop_prefix`; returns that URL.
async fn browse_in(
    browser: &Browser,
    start: &str,
    stop_prefix: &str,
    token: Option<&str>,
) -> String {
    let browser = &browser.0;
    let mut url = Url::parse(start).unwrap();
    for _ in 0..20 {
        let mut req = browser.get(url.clone());
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let r = req.send().await.unwrap();
        assert!(
            r.status().is_redirection(),
            "{url}: {} {}",
            r.status(),
            r.text().await.unwrap_or_default()
        );
        let location = r.headers()["location"].to_str().unwrap();
        let next = url.join(location).unwrap();
        if next.as_str().starts_with(stop_prefix) {
            return next.to_string();
        }
        url = next;
    }
    panic!("too many redirects from {start}");
}

fn query_param(url: &str, name: &str) -> Option<String> {
    Url::parse(url)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// Google sign-in for `hint` through the provider, stopped at the callback.
async fn to_callback(app: &TestApp, public: &str, hint: &str) -> Flow {
    browse(
        &app.url(&format!("/v1/auth/oauth/google/start?login_hint={hint}")),
        &format!("{public}/v1/auth/oauth/google/callback"),
        None,
    )
    .await
}

/// Follows the callback in the browser that started the sign-in to the front
/// end, and exchanges the code for tokens.
async fn finish(app: &TestApp, flow: &Flow) -> crate::common::Resp {
    let r =
        crate::common::into_resp(flow.browser.0.get(&flow.callback).send().await.unwrap()).await;
    if r.status != StatusCode::SEE_OTHER {
        return r;
    }
    let location = r.headers["location"].to_str().unwrap().to_owned();
    assert!(
        location.starts_with(&format!("{}/oauth/complete?code=", app.config.public_url)),
        "{location}"
    );
    assert!(
        !location.contains("access_token"),
        "tokens never travel in URLs"
    );
    let code = query_param(&location, "code").unwrap();
    let r = app
        .post("/v1/auth/oauth/exchange", None, json!({ "code": code }))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let again = app
        .post("/v1/auth/oauth/exchange", None, json!({ "code": code }))
        .await;
    assert_eq!(
        again.code(),
        "invalid_token",
        "the exchange code is single use"
    );
    r
}

/// The OIDC provider and an app signing in with it as `client`; `None`
/// when the provider is not installed (outside CI).
async fn google_app(client: &str) -> Option<(OidcProvider, TestApp, String)> {
    let port = free_port();
    let provider = start_oidc(&format!(
        "http://127.0.0.1:{port}/v1/auth/oauth/google/callback"
    ))?;
    let (app, public) = app_with(|c| {
        c.bind = format!("127.0.0.1:{port}").parse().unwrap();
        c.public_url = format!("http://127.0.0.1:{port}");
        c.google = Some(google(&provider.issuer, client));
    })
    .await;
    Some((provider, app, public))
}

fn google(issuer: &str, client: &str) -> OidcConfig {
    OidcConfig {
        issuer_url: issuer.to_owned(),
        client_id: client.to_owned(),
        client_secret: format!("{client}-secret").into(),
    }
}

#[tokio::test]
async fn google_sign_in_creates_an_owner_on_trial_then_signs_the_same_user_in() {
    let Some((_provider, app, public)) = google_app("switchboard").await else {
        return;
    };

    let alice = email("alice");
    let flow = to_callback(&app, &public, &alice).await;
    assert!(query_param(&flow.callback, "state").is_some());
    let r = finish(&app, &flow).await;
    let token = r.body["access_token"].as_str().unwrap().to_owned();
    let me = app.get("/v1/me", Some(&token)).await;
    assert_eq!(me.body["email"], alice);
    assert_eq!(me.body["role"], "owner");
    assert_eq!(me.body["full_name"], "OIDC User");
    let business = app.get("/v1/business", Some(&token)).await;
    assert_eq!(business.body["plan"]["id"], "trial");

    // Again, in a new browser: the same account.
    let r = finish(&app, &to_callback(&app, &public, &alice).await).await;
    let again = app
        .get("/v1/me", Some(r.body["access_token"].as_str().unwrap()))
        .await;
    assert_eq!(again.body["id"], me.body["id"]);

    let methods = app.get("/v1/me/sign-in-methods", Some(&token)).await;
    assert_eq!(methods.body.as_array().unwrap().len(), 1);
    assert_eq!(methods.body[0]["method"], "google");
    let r = app
        .call(
            reqwest::Method::DELETE,
            "/v1/me/sign-in-methods/google",
            Some(&token),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert_eq!(r.code(), "last_sign_in_method");
}

#[tokio::test]
async fn google_links_an_account_with_the_same_verified_email_and_refuses_the_rest() {
    let Some((_provider, app, public)) = google_app("switchboard").await else {
        return;
    };

    // An existing password account is linked, not duplicated.
    let bob = email("bob");
    let bob_token = app.owner(&bob, "Bob's").await;
    let bob_id = app.get("/v1/me", Some(&bob_token)).await.body["id"].clone();
    let r = finish(&app, &to_callback(&app, &public, &bob).await).await;
    let via_google = app
        .get("/v1/me", Some(r.body["access_token"].as_str().unwrap()))
        .await;
    assert_eq!(via_google.body["id"], bob_id);
    let notice = app.last_message(&bob).await;
    assert!(notice.subject.contains("Google can now sign you in"));
    assert!(
        notice.text.contains("- Password") && notice.text.contains("/remove-sign-in-method?token="),
        "the notice lists the methods with a removal link: {}",
        notice.text
    );
    let methods = app.get("/v1/me/sign-in-methods", Some(&bob_token)).await;
    let kinds: Vec<&str> = methods
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["method"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["password", "google"]);
    let r = app
        .call(
            reqwest::Method::DELETE,
            "/v1/me/sign-in-methods/google",
            Some(&bob_token),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "the password remains");

    // A verified address of an admin account: never linked automatically.
    let admin_mail = email("root");
    app.admin(&admin_mail).await;
    let r = finish(&app, &to_callback(&app, &public, &admin_mail).await).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
    assert_eq!(r.code(), "link_required");

    // Unverified email at the provider: no linking.
    let carol = format!("unverified-{}", email("carol"));
    app.owner(&carol, "Carol's").await;
    let r = finish(&app, &to_callback(&app, &public, &carol).await).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
    assert_eq!(r.code(), "email_unverified");

    // Bad state.
    let r = app
        .get("/v1/auth/oauth/google/callback?code=abc&state=forged", None)
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.code(), "invalid_state");

    // Replayed callback (same code and state).
    let dave = email("dave");
    let flow = to_callback(&app, &public, &dave).await;
    assert_eq!(finish(&app, &flow).await.status, StatusCode::OK);
    let r = finish(&app, &flow).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.code(), "invalid_state");

    // Wrong nonce: the ID token carries the nonce of the request, not ours.
    let erin = email("erin");
    let flow = to_callback(&app, &public, &erin).await;
    let pending = entity::oauth::state::Entity::find()
        .order_by_desc(entity::oauth::state::Column::Id)
        .one(&app.app.state.db)
        .await
        .unwrap()
        .unwrap();
    let mut tampered = pending.into_active_model();
    tampered.nonce = Set(Some("another-nonce".into()));
    tampered.update(&app.app.state.db).await.unwrap();
    let r = finish(&app, &flow).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert_eq!(r.code(), "oauth_failed");
    assert!(
        r.body["detail"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("nonce"),
        "{}",
        r.text
    );

    // A provider account already linked elsewhere cannot be linked again.
    let frank = email("frank");
    let frank_token = app.owner(&frank, "Frank's").await;
    let frank_browser = Browser::new();
    let link = crate::common::into_resp(
        frank_browser
            .0
            .post(app.url("/v1/me/sign-in-methods/google"))
            .bearer_auth(&frank_token)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(link.status, StatusCode::OK);
    let url = link.body["authorization_url"].as_str().unwrap();
    // The provider signs in its default account, which Google sign-in registers first.
    let r = finish(
        &app,
        &to_callback(&app, &public, "default@example.com").await,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let callback = browse_in(
        &frank_browser,
        url,
        &format!("{public}/v1/auth/oauth/google/callback"),
        None,
    )
    .await;
    let flow = Flow {
        browser: frank_browser,
        callback,
    };
    let r = finish(&app, &flow).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
    assert_eq!(r.code(), "identity_linked_elsewhere");
}

#[tokio::test]
async fn an_expired_id_token_is_refused() {
    let Some((_provider, app, public)) = google_app("expiring").await else {
        return;
    };
    let r = finish(&app, &to_callback(&app, &public, &email("late")).await).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert_eq!(r.code(), "oauth_failed");
    assert!(
        r.body["detail"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("expired"),
        "{}",
        r.text
    );
}

/// A local server speaking the Graph API's OAuth and `/me` wire format.
#[derive(Clone, Default)]
struct Graph {
    /// code → (redirect_uri, code_challenge)
    codes: Arc<Mutex<HashMap<String, (String, String)>>>,
    tokens: Arc<Mutex<Vec<String>>>,
}

const FB_SECRET: &str = "fb-app-secret";

async fn fb_dialog(
    State(g): State<Graph>,
    Query(q): Query<HashMap<String, String>>,
) -> impl IntoResponse {
    assert_eq!(q["client_id"], "fb-app");
    assert_eq!(q["response_type"], "code");
    assert_eq!(q["code_challenge_method"], "S256");
    assert!(q["scope"].contains("email"));
    let code = format!("code-{}", uuid::Uuid::new_v4().simple());
    g.codes.lock().unwrap().insert(
        code.clone(),
        (q["redirect_uri"].clone(), q["code_challenge"].clone()),
    );
    Redirect::to(&format!(
        "{}?code={code}&state={}",
        q["redirect_uri"], q["state"]
    ))
}

async fn fb_token(
    State(g): State<Graph>,
    Form(f): Form<HashMap<String, String>>,
) -> axum::response::Response {
    let error = |msg: &str| {
        (
            AxStatus::BAD_REQUEST,
            axum::Json(
                json!({ "error": { "message": msg, "type": "OAuthException", "code": 100 } }),
            ),
        )
            .into_response()
    };
    if f.get("client_id").map(String::as_str) != Some("fb-app")
        || f.get("client_secret").map(String::as_str) != Some(FB_SECRET)
    {
        return error("Error validating client secret.");
    }
    let Some((redirect, challenge)) = g
        .codes
        .lock()
        .unwrap()
        .remove(f.get("code").map(String::as_str).unwrap_or(""))
    else {
        return error("This authorization code has been used.");
    };
    if f.get("redirect_uri") != Some(&redirect) {
        return error(
            "Error validating verification code. Please make sure your redirect_uri is identical",
        );
    }
    let verifier = f.get("code_verifier").cloned().unwrap_or_default();
    let computed = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(sha2::Sha256::digest(verifier.as_bytes()));
    if computed != challenge {
        return error("Invalid code verifier");
    }
    let token = format!("EAAB{}", uuid::Uuid::new_v4().simple());
    g.tokens.lock().unwrap().push(token.clone());
    axum::Json(json!({ "access_token": token, "token_type": "bearer", "expires_in": 5_183_944 }))
        .into_response()
}

async fn fb_me(
    State(g): State<Graph>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> axum::response::Response {
    let token = headers
        .get("authorization")
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Bearer "))
        .unwrap_or("")
        .to_owned();
    if !g.tokens.lock().unwrap().contains(&token) {
        return (AxStatus::UNAUTHORIZED, axum::Json(json!({ "error": { "message": "Invalid OAuth access token.", "type": "OAuthException", "code": 190 } }))).into_response();
    }
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(FB_SECRET.as_bytes()).unwrap();
    mac.update(token.as_bytes());
    let proof: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    if q.get("appsecret_proof") != Some(&proof) {
        return (AxStatus::BAD_REQUEST, axum::Json(json!({ "error": { "message": "Invalid appsecret_proof provided in the API argument", "type": "GraphMethodException", "code": 100 } }))).into_response();
    }
    assert_eq!(q["fields"], "id,name,email");
    axum::Json(
        json!({ "id": "10223344556677889", "name": "Fay Book", "email": "Fay.Book@Example.com" }),
    )
    .into_response()
}

async fn start_graph() -> String {
    let app = axum::Router::new()
        .route("/dialog/oauth", axum::routing::get(fb_dialog))
        .route("/oauth/access_token", axum::routing::post(fb_token))
        .route("/me", axum::routing::get(fb_me))
        .with_state(Graph::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

fn facebook(graph: &str, secret: &str) -> FacebookConfig {
    FacebookConfig {
        client_id: "fb-app".into(),
        client_secret: secret.to_owned().into(),
        auth_url: format!("{graph}/dialog/oauth"),
        token_url: format!("{graph}/oauth/access_token"),
        graph_url: graph.to_owned(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn facebook_sign_in_through_the_graph_api() {
    let graph = start_graph().await;
    let (app, public) = app_with(|c| c.facebook = Some(facebook(&graph, FB_SECRET))).await;
    let flow = browse(
        &app.url("/v1/auth/oauth/facebook/start"),
        &format!("{public}/v1/auth/oauth/facebook/callback"),
        None,
    )
    .await;
    let r = finish(&app, &flow).await;
    let me = app
        .get("/v1/me", Some(r.body["access_token"].as_str().unwrap()))
        .await;
    assert_eq!(me.body["email"], "fay.book@example.com");
    assert_eq!(me.body["full_name"], "Fay Book");
    let methods = app
        .get(
            "/v1/me/sign-in-methods",
            Some(r.body["access_token"].as_str().unwrap()),
        )
        .await;
    assert_eq!(methods.body[0]["method"], "facebook");

    // A wrong app secret: the code exchange is refused, nobody signs in.
    let (bad, public) = app_with(|c| c.facebook = Some(facebook(&graph, "wrong-secret"))).await;
    let flow = browse(
        &bad.url("/v1/auth/oauth/facebook/start"),
        &format!("{public}/v1/auth/oauth/facebook/callback"),
        None,
    )
    .await;
    let r = finish(&bad, &flow).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.code(), "oauth_failed");

    // A provider the deployment has not configured.
    let r = app.get("/v1/auth/oauth/google/start", None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.code(), "provider_not_configured");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_unlinks_never_remove_the_last_sign_in_method() {
    use sea_orm::ActiveValue::Set as S;
    let app = TestApp::spawn().await;
    let db = &app.app.state.db;
    for round in 0..5 {
        // An account that signs in only with Google and Facebook.
        let token = app.owner(&email(&format!("two-{round}")), "Two").await;
        let id: uuid::Uuid = app.get("/v1/me", Some(&token)).await.body["id"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        let user = entity::user::Entity::find_by_id(id)
            .one(db)
            .await
            .unwrap()
            .unwrap();
        let mut user = user.into_active_model();
        user.password_hash = Set(None);
        user.update(db).await.unwrap();
        for provider in ["google", "facebook"] {
            entity::oauth::identity::ActiveModel {
                id: S(uuid::Uuid::now_v7()),
                user_id: S(id),
                provider: S(provider.into()),
                subject: S(format!("{provider}-{id}")),
                email: S(None),
                created_at: S(chrono::Utc::now()),
            }
            .insert(db)
            .await
            .unwrap();
        }
        // Warm connections so both requests really run together.
        futures::future::join_all((0..8).map(|_| app.get("/v1/me/sign-in-methods", Some(&token))))
            .await;
        let paths = ["google", "facebook"].map(|p| format!("/v1/me/sign-in-methods/{p}"));
        let results = futures::future::join_all(
            paths
                .iter()
                .map(|path| app.call(reqwest::Method::DELETE, path, Some(&token), None)),
        )
        .await;
        let statuses: Vec<u16> = results.iter().map(|r| r.status.as_u16()).collect();
        let mut sorted = statuses.clone();
        sorted.sort();
        assert_eq!(
            sorted,
            [204, 409],
            "round {round}: exactly one unlink wins: {statuses:?}"
        );
        let left = app.get("/v1/me/sign-in-methods", Some(&token)).await;
        assert_eq!(
            left.body.as_array().unwrap().len(),
            1,
            "round {round}: one method remains"
        );
    }
}

#[tokio::test]
async fn a_callback_opened_in_another_browser_signs_nobody_in() {
    let Some((_provider, app, public)) = google_app("switchboard").await else {
        return;
    };
    // Login CSRF: the attacker stops at the redirect back and sends the
    // link to a victim, whose browser has no cookie of that sign-in.
    let attacker = email("mallory");
    let flow = to_callback(&app, &public, &attacker).await;
    let victim = Flow {
        browser: Browser::new(),
        callback: flow.callback.clone(),
    };
    let r = finish(&app, &victim).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert_eq!(r.code(), "invalid_state");
    assert!(
        r.body["title"]
            .as_str()
            .unwrap()
            .contains("another browser")
    );
    // The cookie is what binds: the browser that started it completes it.
    let r = finish(&app, &flow).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
}

#[tokio::test]
async fn a_link_url_opened_in_another_browser_links_nothing() {
    let Some((_provider, app, public)) = google_app("switchboard").await else {
        return;
    };
    // Link CSRF: the attacker asks to link Google to *their* account and
    // sends the provider URL to a victim signed in to Google.
    let attacker = app.owner(&email("mallory"), "Mallory's").await;
    let attacker_browser = Browser::new();
    let r = into_resp(
        attacker_browser
            .0
            .post(app.url("/v1/me/sign-in-methods/google"))
            .bearer_auth(&attacker)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let set_cookie = r.headers["set-cookie"].to_str().unwrap().to_owned();
    for attribute in [
        "sb_oauth_google=",
        "HttpOnly",
        "SameSite=Lax",
        "Path=/v1/auth/oauth",
        "Max-Age=600",
    ] {
        assert!(set_cookie.contains(attribute), "{set_cookie}");
    }
    assert!(
        !set_cookie.contains("Secure"),
        "plain http public URL: {set_cookie}"
    );
    let url = r.body["authorization_url"].as_str().unwrap();
    let victim = browse(
        url,
        &format!("{public}/v1/auth/oauth/google/callback"),
        None,
    )
    .await;
    let r = finish(&app, &victim).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert_eq!(r.code(), "invalid_state");
    let methods = app.get("/v1/me/sign-in-methods", Some(&attacker)).await;
    let kinds: Vec<&str> = methods
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["method"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["password"], "nothing was linked to the attacker");
}

#[tokio::test]
async fn linking_needs_a_recent_sign_in() {
    let graph = start_graph().await;
    let (app, _) = app_with(|c| {
        c.facebook = Some(facebook(&graph, FB_SECRET));
        c.auth.reauth_window_secs = 1;
    })
    .await;
    let token = app.owner(&email("stale"), "Stale").await;
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let r = app
        .call(
            reqwest::Method::POST,
            "/v1/me/sign-in-methods/facebook",
            Some(&token),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);
    assert_eq!(r.code(), "reauthentication_required");
    assert!(
        r.headers.get("set-cookie").is_none(),
        "no request was started"
    );
    let r = app
        .post(
            "/v1/auth/reauthenticate",
            Some(&token),
            json!({ "password": crate::common::PASSWORD }),
        )
        .await;
    let fresh = r.body["access_token"].as_str().unwrap();
    let r = app
        .call(
            reqwest::Method::POST,
            "/v1/me/sign-in-methods/facebook",
            Some(fresh),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
}

#[tokio::test]
async fn the_binding_cookie_is_secure_behind_https() {
    let graph = start_graph().await;
    let (app, _) = app_with(|c| {
        c.facebook = Some(facebook(&graph, FB_SECRET));
        c.public_url = "https://switchboard.example".into();
    })
    .await;
    let r = app.get("/v1/auth/oauth/facebook/start", None).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let set_cookie = r.headers["set-cookie"].to_str().unwrap();
    assert!(
        set_cookie.contains("Secure") && set_cookie.contains("HttpOnly"),
        "{set_cookie}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn facebook_s_email_never_links_an_existing_account() {
    let graph = start_graph().await;
    let (app, public) = app_with(|c| c.facebook = Some(facebook(&graph, FB_SECRET))).await;
    // An owner already uses the address the Graph API returns.
    let owner = app.owner("fay.book@example.com", "Fay's").await;
    let flow = browse(
        &app.url("/v1/auth/oauth/facebook/start"),
        &format!("{public}/v1/auth/oauth/facebook/callback"),
        None,
    )
    .await;
    let r = finish(&app, &flow).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
    assert_eq!(r.code(), "email_unverified");
    let methods = app.get("/v1/me/sign-in-methods", Some(&owner)).await;
    assert_eq!(
        methods.body.as_array().unwrap().len(),
        1,
        "{}",
        methods.text
    );

    // An admin with that address: never linked automatically, by any provider.
    let (staff, public) = app_with(|c| c.facebook = Some(facebook(&graph, FB_SECRET))).await;
    staff.admin("fay.book@example.com").await;
    let flow = browse(
        &staff.url("/v1/auth/oauth/facebook/start"),
        &format!("{public}/v1/auth/oauth/facebook/callback"),
        None,
    )
    .await;
    let r = finish(&staff, &flow).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
    assert_eq!(r.code(), "link_required");

    // A new address from Facebook makes an account whose email is not
    // marked verified.
    let (fresh, public) = app_with(|c| c.facebook = Some(facebook(&graph, FB_SECRET))).await;
    let flow = browse(
        &fresh.url("/v1/auth/oauth/facebook/start"),
        &format!("{public}/v1/auth/oauth/facebook/callback"),
        None,
    )
    .await;
    let r = finish(&fresh, &flow).await;
    let me = fresh
        .get("/v1/me", Some(r.body["access_token"].as_str().unwrap()))
        .await;
    assert_eq!(me.body["email"], "fay.book@example.com");
    assert_eq!(me.body["email_verified_at"], serde_json::Value::Null);
}
