//! Test harness: spawning the app, an HTTP client, and fixtures built
//! through the public API the way a person would (codes and links are read
//! from the dev mailbox).

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)] // a harness: a panic here is a failed test

use std::path::{Path, PathBuf};

use reqwest::{Method, StatusCode};
use sea_orm::{ConnectionTrait, Database};
use serde_json::{Value, json};
use switchboard::app::{self, RunningApp};
use switchboard::config::Config;
use tempfile::TempDir;
use tokio::net::TcpListener;
use uuid::Uuid;

/// A running app with its own database.
pub struct TestApp {
    pub app: RunningApp,
    pub client: reqwest::Client,
    pub dir: TempDir,
    pub config: Config,
}

/// A response: status, headers and JSON body (Null when empty).
#[derive(Debug)]
pub struct Resp {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
    pub text: String,
}

impl Resp {
    pub fn code(&self) -> &str {
        self.body["code"].as_str().unwrap_or("")
    }

    pub fn is_problem(&self) -> bool {
        self.headers
            .get("content-type")
            .map(|v| v.to_str().unwrap_or("") == "application/problem+json")
            .unwrap_or(false)
    }
}

/// The PostgreSQL server URL when the suite runs on PostgreSQL.
pub fn postgres_url() -> Option<String> {
    std::env::var("DATABASE_URL")
        .ok()
        .filter(|u| u.starts_with("postgres://") || u.starts_with("postgresql://"))
}

/// A configuration for a test in `dir`: its own database, dev keys, high
/// rate limits (the rate-limit test sets its own).
pub async fn test_config(dir: &Path) -> Config {
    let database_url = match postgres_url() {
        Some(base) => fresh_pg_database(&base).await,
        None => format!("sqlite://{}?mode=rwc", dir.join("switchboard.db").display()),
    };
    let mut config = Config {
        bind: "127.0.0.1:0".parse().unwrap(),
        dev_keys_path: dir.join("dev-keys.json"),
        database_url,
        ..Config::default()
    };
    config.rate_limit.auth_per_minute = 100_000;
    config.rate_limit.reveal_per_minute = 100_000;
    config.rate_limit.api_per_minute = 1_000_000;
    // Webhook receivers in tests listen on loopback.
    config.webhooks.allow_private_targets = true;
    // Tests sign in concurrently on a loaded machine: no 503 for waiting
    // (the overload test sets its own).
    config.auth.hash_wait_ms = 60_000;
    config
}

/// Creates a uniquely named database on the server of `base` and returns its URL.
pub async fn fresh_pg_database(base: &str) -> String {
    let name = format!("sb_test_{}", Uuid::new_v4().simple());
    let admin = Database::connect(base)
        .await
        .expect("connect to PostgreSQL");
    admin
        .execute_unprepared(&format!("CREATE DATABASE {name}"))
        .await
        .expect("create test database");
    admin.close().await.ok();
    let (prefix, _) = base
        .rsplit_once('/')
        .expect("DATABASE_URL has a database path");
    format!("{prefix}/{name}")
}

impl TestApp {
    /// Spawns the app with the default test configuration.
    pub async fn spawn() -> TestApp {
        let dir = tempfile::tempdir().unwrap();
        let config = test_config(dir.path()).await;
        TestApp::spawn_with(dir, config).await
    }

    /// Spawns the app with `config`, keeping `dir` alive.
    pub async fn spawn_with(dir: TempDir, config: Config) -> TestApp {
        let state = app::build_state(config.clone()).await.expect("app state");
        let listener = TcpListener::bind(config.bind).await.unwrap();
        let app = app::spawn(state, listener).unwrap();
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        TestApp {
            app,
            client,
            dir,
            config,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.app.url(), path)
    }

    pub fn dir(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    /// Sends `method path` with an optional bearer token and JSON body.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Resp {
        let mut req = self.client.request(method, self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        into_resp(req.send().await.expect("request sent")).await
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Resp {
        self.call(Method::GET, path, token, None).await
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> Resp {
        self.call(Method::POST, path, token, Some(body)).await
    }

    /// Waits (up to 10 s) until the dev mailbox holds `n` messages for
    /// `email`: delivery goes through the outbox worker, after the request.
    pub async fn wait_for_messages(&self, email: &str, n: usize) -> Vec<switchboard::mail::Email> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let messages = self.app.state.mailer.messages_to(email);
            if messages.len() >= n || std::time::Instant::now() > deadline {
                return messages;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }

    /// The newest message to `email` once the outbox has delivered every
    /// message queued for it.
    pub async fn last_message(&self, email: &str) -> switchboard::mail::Email {
        use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
        let queued = entity::email::outbox::Entity::find()
            .filter(entity::email::outbox::Column::ToAddress.eq(email.to_lowercase()))
            .count(&self.app.state.db)
            .await
            .unwrap() as usize;
        let messages = self.wait_for_messages(email, queued).await;
        assert_eq!(
            messages.len(),
            queued,
            "every queued email to {email} was delivered"
        );
        messages.last().expect("an email was sent").clone()
    }

    /// The last 6-digit code emailed to `email`.
    pub async fn last_code(&self, email: &str) -> String {
        let text = self.last_message(email).await.text;
        let idx = text.find("code is ").expect("a code in the email") + "code is ".len();
        text[idx..idx + 6].to_owned()
    }

    /// The `token=` of the last link emailed to `email`.
    pub async fn last_link_token(&self, email: &str) -> String {
        let text = self.last_message(email).await.text;
        let idx = text.find("token=").expect("a link in the email") + "token=".len();
        text[idx..]
            .split(|c: char| c.is_whitespace())
            .next()
            .unwrap()
            .to_owned()
    }

    /// Registers `email` with `business` through the three public steps;
    /// returns the token pair JSON.
    pub async fn register(&self, email: &str, business: &str) -> Value {
        let r = self
            .post("/v1/auth/register/start", None, json!({ "email": email }))
            .await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
        let code = self.last_code(email).await;
        let r = self
            .post(
                "/v1/auth/register/verify",
                None,
                json!({ "email": email, "code": code }),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        let token = r.body["registration_token"].as_str().unwrap().to_owned();
        let r = self
            .post(
                "/v1/auth/register/complete",
                None,
                json!({
                    "registration_token": token,
                    "password": PASSWORD,
                    "full_name": "Test Owner",
                    "business_name": business,
                }),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        r.body
    }

    /// Registers and returns the access token.
    pub async fn owner(&self, email: &str, business: &str) -> String {
        self.register(email, business).await["access_token"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// Creates an admin the way `switchboard admin create` does and signs in.
    pub async fn admin(&self, email: &str) -> String {
        let state = &self.app.state;
        let email_v = switchboard::domain::validate::Email::parse("email", email).unwrap();
        let password =
            switchboard::domain::validate::Password::parse("password", PASSWORD.to_owned().into())
                .unwrap();
        switchboard::domain::tenancy::managers::create_admin(
            &state.identity(),
            &email_v,
            "Admin",
            password,
        )
        .await
        .unwrap();
        self.login(email).await
    }

    /// Creates a manager through the admin API, sets their password from
    /// the emailed link, signs in; returns (user id, access token).
    pub async fn manager(&self, admin_token: &str, email: &str) -> (String, String) {
        let r = self
            .post(
                "/v1/admin/managers",
                Some(admin_token),
                json!({ "email": email, "full_name": "Manny Ager" }),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        let id = r.body["id"].as_str().unwrap().to_owned();
        let token = self.last_link_token(email).await;
        let r = self
            .post(
                "/v1/auth/password/set",
                None,
                json!({ "token": token, "password": PASSWORD }),
            )
            .await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
        (id, self.login(email).await)
    }

    pub async fn login(&self, email: &str) -> String {
        let r = self
            .post(
                "/v1/auth/login",
                None,
                json!({ "email": email, "password": PASSWORD }),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        r.body["access_token"].as_str().unwrap().to_owned()
    }

    /// Creates an API key with `scopes` as the owner behind `token` (a
    /// fresh sign-in); returns the key.
    pub async fn api_key(&self, token: &str, scopes: &[&str]) -> String {
        let r = self
            .post(
                "/v1/api-keys",
                Some(token),
                json!({ "name": format!("key {}", Uuid::new_v4().simple()), "scopes": scopes }),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        r.body["key"].as_str().unwrap().to_owned()
    }

    /// The business id of the owner behind `token`.
    pub async fn business_id(&self, token: &str) -> String {
        let r = self.get("/v1/business", Some(token)).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        r.body["id"].as_str().unwrap().to_owned()
    }

    pub async fn company(&self, token: &str, name: &str) -> String {
        let r = self
            .post(
                "/v1/companies",
                Some(token),
                json!({ "name": name, "kind": "product" }),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        r.body["id"].as_str().unwrap().to_owned()
    }

    pub async fn channel(&self, token: &str, company: &str, platform: &str) -> Resp {
        self.post(
            "/v1/channels",
            Some(token),
            json!({ "company_id": company, "platform": platform }),
        )
        .await
    }

    /// Puts a business on `plan` directly in the database (plan changes
    /// through billing are a later issue).
    pub async fn set_plan(&self, business_id: &str, plan: &str) {
        use sea_orm::{ActiveModelTrait, EntityTrait, IntoActiveModel, Set};
        let id: Uuid = business_id.parse().unwrap();
        let b = entity::business::Entity::find_by_id(id)
            .one(&self.app.state.db)
            .await
            .unwrap()
            .unwrap();
        let mut active = b.into_active_model();
        active.plan = Set(plan.to_owned());
        active.update(&self.app.state.db).await.unwrap();
    }
}

pub const PASSWORD: &str = "correct horse battery staple";

pub async fn into_resp(res: reqwest::Response) -> Resp {
    let status = res.status();
    let headers = res.headers().clone();
    let text = res.text().await.unwrap_or_default();
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    Resp {
        status,
        headers,
        body,
        text,
    }
}

/// A unique email for a test.
pub fn email(prefix: &str) -> String {
    format!("{prefix}-{}@example.com", Uuid::new_v4().simple())
}

/// Whether Debian's Chromium is installed for the browser tests (CI
/// installs it; elsewhere those tests print SKIPPED and pass).
pub fn has_chromium() -> bool {
    if std::path::Path::new("/usr/bin/chromium").exists() {
        return true;
    }
    assert!(std::env::var_os("CI").is_none(), "CI must install chromium");
    eprintln!("SKIPPED: install Debian's chromium for the browser tests");
    false
}

/// The real n8n the tests provision (`N8N_BASE_URL`, `N8N_API_KEY`,
/// `N8N_WEBHOOK_BASE`, as `scripts/n8n-local.sh start` prints them). CI
/// starts it; elsewhere the tests that need it print SKIPPED and pass.
pub fn n8n() -> Option<N8n> {
    match (std::env::var("N8N_BASE_URL"), std::env::var("N8N_API_KEY")) {
        (Ok(base), Ok(key)) if !base.is_empty() && !key.is_empty() => Some(N8n {
            webhook_base: std::env::var("N8N_WEBHOOK_BASE").unwrap_or_else(|_| base.clone()),
            base,
            key,
            http: reqwest::Client::new(),
        }),
        _ => {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI must start n8n (scripts/n8n-local.sh)"
            );
            eprintln!("SKIPPED: start n8n with scripts/n8n-local.sh and export what it prints");
            None
        }
    }
}

/// n8n's public API, as the tests read it.
#[derive(Clone)]
pub struct N8n {
    pub base: String,
    pub key: String,
    pub webhook_base: String,
    http: reqwest::Client,
}

impl N8n {
    /// The app's `n8n` configuration for this n8n.
    pub fn config(&self, telegram_template_id: Option<String>) -> switchboard::config::N8nConfig {
        switchboard::config::N8nConfig {
            base_url: self.base.clone(),
            api_key: secrecy::SecretString::from(self.key.clone()),
            webhook_base: Some(self.webhook_base.clone()),
            telegram_template_id,
            whatsapp_workflow_id: None,
            timeout_secs: 20,
        }
    }

    /// `method` `/api/v1{path}` with `body`; (status, JSON or Null).
    pub async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self
            .http
            .request(method, format!("{}/api/v1{path}", self.base))
            .header("X-N8N-API-KEY", &self.key);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.unwrap();
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    /// Workflow `id`, or `None` when n8n has none.
    pub async fn workflow(&self, id: &str) -> Option<Value> {
        let (status, body) = self
            .call(Method::GET, &format!("/workflows/{id}"), None)
            .await;
        (status == 200).then_some(body)
    }

    /// Workflows named `name`.
    pub async fn workflows_named(&self, name: &str) -> Vec<Value> {
        let (_, body) = self
            .call(
                Method::GET,
                &format!("/workflows?name={}", urlencode(name)),
                None,
            )
            .await;
        body["data"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|w| w["name"] == name)
            .collect()
    }

    /// Creates workflow `body`; returns its id.
    pub async fn create_workflow(&self, body: Value) -> String {
        let (status, created) = self.call(Method::POST, "/workflows", Some(body)).await;
        assert_eq!(status, 200, "{created}");
        created["id"].as_str().unwrap().to_owned()
    }

    /// The executions of workflow `id` (newest first).
    pub async fn executions(&self, id: &str) -> Vec<Value> {
        let (_, body) = self
            .call(
                Method::GET,
                &format!("/executions?workflowId={id}&includeData=true"),
                None,
            )
            .await;
        body["data"].as_array().cloned().unwrap_or_default()
    }
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
