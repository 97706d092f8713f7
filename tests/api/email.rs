//! Email and the sign-in paths built on it: password reset and change,
//! magic links, per-email limits, and real SMTP delivery through a local
//! aiosmtpd server (installed by `.ci/run` from PyPI), including delivery of
//! queued messages exactly once after a restart.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;

use crate::common::{PASSWORD, TestApp, email, test_config};

#[tokio::test]
async fn password_reset_sets_a_new_password_and_signs_out_everywhere() {
    let app = TestApp::spawn().await;
    let mail = email("reset");
    let pair = app.register(&mail, "Reset Co").await;
    let old_refresh = pair["refresh_token"].as_str().unwrap().to_owned();

    let r = app
        .post("/v1/auth/password/forgot", None, json!({ "email": mail }))
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    let token = app.last_link_token(&mail).await;
    assert!(
        app.last_message(&mail)
            .await
            .text
            .contains("/reset-password?token=")
    );

    let r = app
        .post(
            "/v1/auth/password/reset",
            None,
            json!({ "token": token, "password": "a brand new password" }),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    let r = app
        .post(
            "/v1/auth/password/reset",
            None,
            json!({ "token": token, "password": "yet another password" }),
        )
        .await;
    assert_eq!(r.code(), "invalid_token", "single use");

    let r = app
        .post(
            "/v1/auth/refresh",
            None,
            json!({ "refresh_token": old_refresh }),
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::UNAUTHORIZED,
        "every session signed out"
    );
    let r = app
        .post(
            "/v1/auth/login",
            None,
            json!({ "email": mail, "password": PASSWORD }),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "old password gone");
    let r = app
        .post(
            "/v1/auth/login",
            None,
            json!({ "email": mail, "password": "a brand new password" }),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(
        app.last_message(&mail)
            .await
            .subject
            .contains("password was changed")
    );

    // Unknown address: same answer, nothing sent.
    let unknown = email("nobody");
    let r = app
        .post(
            "/v1/auth/password/forgot",
            None,
            json!({ "email": unknown }),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(app.app.state.mailer.messages_to(&unknown).is_empty());
}

#[tokio::test]
async fn password_change_requires_the_current_password() {
    let app = TestApp::spawn().await;
    let mail = email("change");
    let pair = app.register(&mail, "Change Co").await;
    let access = pair["access_token"].as_str().unwrap();
    let body = |current: &str| json!({ "current_password": current, "new_password": "the next password 1" });
    let r = app
        .call(
            reqwest::Method::POST,
            "/v1/auth/password/change",
            Some(access),
            Some(body("wrong password!!")),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.code(), "invalid_credentials");
    let r = app
        .call(
            reqwest::Method::POST,
            "/v1/auth/password/change",
            None,
            Some(body(PASSWORD)),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "signed-in users only");
    let r = app
        .call(
            reqwest::Method::POST,
            "/v1/auth/password/change",
            Some(access),
            Some(body(PASSWORD)),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    let r = app
        .post(
            "/v1/auth/refresh",
            None,
            json!({ "refresh_token": pair["refresh_token"] }),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "sessions revoked");
    let r = app
        .post(
            "/v1/auth/login",
            None,
            json!({ "email": mail, "password": "the next password 1" }),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
}

#[tokio::test]
async fn magic_link_signs_in_once() {
    let app = TestApp::spawn().await;
    let mail = email("magic");
    app.register(&mail, "Magic Co").await;
    let r = app
        .post(
            "/v1/auth/magic-link",
            None,
            json!({ "email": mail.to_uppercase() }),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    let token = app.last_link_token(&mail).await;
    let r = app
        .post(
            "/v1/auth/magic-link/verify",
            None,
            json!({ "token": token }),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let access = r.body["access_token"].as_str().unwrap();
    assert_eq!(app.get("/v1/me", Some(access)).await.body["email"], mail);
    let r = app
        .post(
            "/v1/auth/magic-link/verify",
            None,
            json!({ "token": token }),
        )
        .await;
    assert_eq!(r.code(), "invalid_token", "single use");
    let r = app
        .post(
            "/v1/auth/magic-link/verify",
            None,
            json!({ "token": "forged" }),
        )
        .await;
    assert_eq!(r.code(), "invalid_token");
}

#[tokio::test]
async fn emailed_requests_are_limited_per_address_without_revealing_accounts() {
    let app = TestApp::spawn().await;
    let known = email("known");
    app.register(&known, "Known").await;
    let unknown = email("unknown");
    for address in [&known, &unknown] {
        for path in ["/v1/auth/password/forgot", "/v1/auth/magic-link"] {
            for i in 0..5 {
                let r = app.post(path, None, json!({ "email": address })).await;
                assert_eq!(r.status, StatusCode::ACCEPTED, "{path} #{i}");
            }
            let r = app.post(path, None, json!({ "email": address })).await;
            assert_eq!(
                r.status,
                StatusCode::TOO_MANY_REQUESTS,
                "{path} for {address}"
            );
            assert_eq!(r.code(), "too_many_requests");
            let retry: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
            assert!((3500..=3600).contains(&retry), "{retry}");
        }
    }
    // Registration codes too (counted per address as well).
    let fresh = email("fresh");
    for _ in 0..5 {
        assert_eq!(
            app.post("/v1/auth/register/start", None, json!({ "email": fresh }))
                .await
                .status,
            StatusCode::ACCEPTED
        );
    }
    assert_eq!(
        app.post("/v1/auth/register/start", None, json!({ "email": fresh }))
            .await
            .status,
        StatusCode::TOO_MANY_REQUESTS
    );
}

/// A local aiosmtpd server writing every message it receives to a Maildir.
struct SmtpSink {
    child: Child,
    port: u16,
    maildir: PathBuf,
}

#[expect(
    clippy::unwrap_used,
    reason = "a test harness: a failure here is a failed test"
)]
impl SmtpSink {
    /// Starts one on a free port; `None` (test skipped) only outside CI when
    /// aiosmtpd is not installed.
    fn start(dir: &Path) -> Option<SmtpSink> {
        let available = Command::new("python3")
            .args(["-c", "import aiosmtpd"])
            .status()
            .is_ok_and(|s| s.success());
        if !available {
            assert!(
                std::env::var_os("CI").is_none(),
                "aiosmtpd must be installed in CI (.ci/run installs it)"
            );
            eprintln!("SKIPPED: the SMTP tests need aiosmtpd (python3 -m pip install aiosmtpd)");
            return None;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let maildir = dir.join(format!("maildir-{port}"));
        let child = Command::new("python3")
            .args([
                "-m",
                "aiosmtpd",
                "-n",
                "-l",
                &format!("127.0.0.1:{port}"),
                "-c",
                "aiosmtpd.handlers.Mailbox",
            ])
            .arg(&maildir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(15);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "aiosmtpd did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(SmtpSink {
            child,
            port,
            maildir,
        })
    }

    /// Every delivered message, decoded from quoted-printable, as text.
    fn messages(&self) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(self.maildir.join("new")) else {
            return Vec::new();
        };
        entries
            .filter_map(|e| std::fs::read_to_string(e.ok()?.path()).ok())
            .map(|raw| {
                raw.replace("=\r\n", "")
                    .replace("=\n", "")
                    .replace("=3D", "=")
            })
            .collect()
    }

    fn messages_to(&self, address: &str) -> Vec<String> {
        self.messages()
            .into_iter()
            .filter(|m| {
                m.lines().any(|l| {
                    l.to_lowercase().starts_with("to:") && l.to_lowercase().contains(address)
                })
            })
            .collect()
    }

    async fn wait_for(&self, address: &str, n: usize) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let found = self.messages_to(address);
            if found.len() >= n || Instant::now() > deadline {
                return found;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[expect(
    clippy::unwrap_used,
    reason = "a test helper: no code in the message is a failed test"
)]
fn code_in(message: &str) -> String {
    let i = message.find("code is ").unwrap() + "code is ".len();
    message[i..i + 6].to_owned()
}

#[tokio::test]
async fn registration_works_end_to_end_through_a_real_smtp_server() {
    let dir = tempfile::tempdir().unwrap();
    let Some(sink) = SmtpSink::start(dir.path()) else {
        return;
    };
    let mut config = test_config(dir.path()).await;
    config.smtp_host = Some("127.0.0.1".into());
    config.smtp_port = sink.port;
    config.smtp_tls = switchboard::config::SmtpTls::None;
    let app = TestApp::spawn_with(dir, config).await;

    let mail = email("smtp");
    let r = app
        .post("/v1/auth/register/start", None, json!({ "email": mail }))
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    let delivered = sink.wait_for(&mail, 1).await;
    assert_eq!(delivered.len(), 1, "the code arrived by SMTP");
    let message = &delivered[0];
    assert!(message.contains("Subject: Your Switchboard verification code"));
    assert!(message.contains("From: Switchboard <no-reply@switchboard.localhost>"));
    assert!(
        message.contains("text/plain") && message.contains("text/html"),
        "plain and HTML parts"
    );
    let code = code_in(message);
    let r = app
        .post(
            "/v1/auth/register/verify",
            None,
            json!({ "email": mail, "code": code }),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(
        app.app.state.mailer.messages_to(&mail).is_empty(),
        "nothing went to the console"
    );

    // Every attempt is recorded.
    use sea_orm::EntityTrait;
    let attempts = entity::email::attempt::Entity::find()
        .all(&app.app.state.db)
        .await
        .unwrap();
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0].outcome, "sent");
}

#[tokio::test]
async fn queued_emails_survive_a_restart_and_are_delivered_exactly_once() {
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
    let dir = tempfile::tempdir().unwrap();
    let Some(sink) = SmtpSink::start(dir.path()) else {
        return;
    };
    // First life: the SMTP server is unreachable; messages queue and fail.
    let dead_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut config = test_config(dir.path()).await;
    config.smtp_host = Some("127.0.0.1".into());
    config.smtp_port = dead_port;
    config.smtp_tls = switchboard::config::SmtpTls::None;
    config.outbox_retry_base_ms = 100;
    let app = TestApp::spawn_with(dir, config.clone()).await;
    let addresses: Vec<String> = (0..4).map(|i| email(&format!("queued{i}"))).collect();
    for a in &addresses {
        assert_eq!(
            app.post("/v1/auth/register/start", None, json!({ "email": a }))
                .await
                .status,
            StatusCode::ACCEPTED
        );
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let failed = entity::email::attempt::Entity::find()
            .filter(entity::email::attempt::Column::Outcome.eq("error"))
            .all(&app.app.state.db)
            .await
            .unwrap();
        if failed.len() >= addresses.len() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "delivery was attempted and failed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let TestApp {
        app: running, dir, ..
    } = app;
    running.stop().await.unwrap();
    assert!(sink.messages().is_empty());

    // Second life: the server is back.
    config.smtp_port = sink.port;
    let app = TestApp::spawn_with(dir, config).await;
    for a in &addresses {
        let got = sink.wait_for(a, 1).await;
        assert_eq!(got.len(), 1, "{a} got its code");
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    for a in &addresses {
        assert_eq!(sink.messages_to(a).len(), 1, "{a}: exactly once");
    }
    let rows = entity::email::outbox::Entity::find()
        .all(&app.app.state.db)
        .await
        .unwrap();
    assert_eq!(rows.len(), addresses.len());
    assert!(
        rows.iter()
            .all(|r| r.status == "sent" && r.attempts >= 2 && r.sent_at.is_some())
    );
    // The codes delivered after the restart still verify.
    let code = code_in(&sink.messages_to(&addresses[0])[0]);
    let r = app
        .post(
            "/v1/auth/register/verify",
            None,
            json!({ "email": addresses[0], "code": code }),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
}
