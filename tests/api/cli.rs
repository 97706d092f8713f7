//! The binary's command line: configuration errors are a message and exit
//! code 2 (never a panic), `openapi` prints the document, `admin create`
//! bootstraps an admin who can sign in, and a server with `sqlite_exclusive`
//! keeps other processes off its database until it stops.

use std::process::Command;

use reqwest::StatusCode;

use crate::common::{PASSWORD, TestApp, test_config};

fn switchboard(dir: &std::path::Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_switchboard"));
    cmd.current_dir(dir).env_remove("DATABASE_URL");
    for (key, _) in std::env::vars() {
        if key.starts_with("SWITCHBOARD_") {
            cmd.env_remove(key);
        }
    }
    cmd
}

#[test]
fn invalid_configuration_exits_2_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&str, &str, &str); 12] = [
        ("SWITCHBOARD_BIND", "not-an-address", "bind"),
        (
            "SWITCHBOARD_RATE_LIMIT__AUTH_PER_MINUTE",
            "0",
            "rate_limit.auth_per_minute",
        ),
        ("DATABASE_URL", "mysql://nope", "database_url"),
        ("SWITCHBOARD_NO_SUCH_KEY", "1", "no_such_key"),
        (
            "SWITCHBOARD_AUTH__HASH_CONCURRENCY",
            "0",
            "auth.hash_concurrency",
        ),
        ("SWITCHBOARD_AUTH__HASH_WAIT_MS", "0", "auth.hash_wait_ms"),
        ("SWITCHBOARD_AUTH__HASH_WAIT_MS", "soon", "hash_wait_ms"),
        (
            "SWITCHBOARD_CHANNELS__FAILURES_BEFORE_ERROR",
            "0",
            "channels.failures_before_error",
        ),
        ("SWITCHBOARD_WAHA__BASE_URL", "waha:3000", "waha"),
        ("SWITCHBOARD_N8N__BASE_URL", "http://n8n:5678", "n8n"),
        (
            "SWITCHBOARD_TELEGRAM__API_BASE",
            "api.telegram.org",
            "telegram.api_base",
        ),
        (
            "SWITCHBOARD_TELEGRAM__TIMEOUT_SECS",
            "0",
            "telegram.timeout_secs",
        ),
    ];
    for (key, value, named) in cases {
        let out = switchboard(dir.path())
            .arg("migrate")
            .env(key, value)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{key}={value}: {stderr}");
        assert!(stderr.contains("invalid configuration"), "{key}: {stderr}");
        assert!(
            stderr.to_lowercase().contains(named),
            "{key}: the message names `{named}`: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{key}: {stderr}");
    }
    std::fs::write(dir.path().join("switchboard.toml"), "bind = [1, 2]\n").unwrap();
    let out = switchboard(dir.path()).arg("migrate").output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "bad file: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Holding the file exclusively means nothing on PostgreSQL.
    std::fs::write(
        dir.path().join("switchboard.toml"),
        "database_url = \"postgres://u@127.0.0.1:1/db\"\nsqlite_exclusive = true\n",
    )
    .unwrap();
    let out = switchboard(dir.path()).arg("migrate").output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("sqlite_exclusive"), "{stderr}");
}

#[test]
fn production_refuses_to_start_without_keys() {
    let dir = tempfile::tempdir().unwrap();
    let out = switchboard(dir.path())
        .arg("serve")
        .env("SWITCHBOARD_ENVIRONMENT", "production")
        .env("SWITCHBOARD_SMTP_HOST", "smtp.example.com")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("jwt_secret"), "{stderr}");
    // Without SMTP, production would print sign-in links to its log: refused.
    let out = switchboard(dir.path())
        .arg("serve")
        .env("SWITCHBOARD_ENVIRONMENT", "production")
        .env("SWITCHBOARD_JWT_SECRET", "a".repeat(44))
        .env("SWITCHBOARD_MASTER_KEYS", format!("k1:{}", "b".repeat(44)))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("smtp_host"), "{stderr}");
    assert!(
        !dir.path().join(".switchboard-dev-keys.json").exists(),
        "no dev keys in production"
    );
}

#[test]
fn openapi_subcommand_prints_the_document() {
    let dir = tempfile::tempdir().unwrap();
    let out = switchboard(dir.path()).arg("openapi").output().unwrap();
    assert!(out.status.success());
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(
        doc,
        serde_json::to_value(switchboard::http::openapi()).unwrap()
    );
}

#[tokio::test]
async fn admin_create_bootstraps_an_admin_who_can_sign_in() {
    let dir = tempfile::tempdir().unwrap();
    let config = test_config(dir.path()).await;
    let out = switchboard(dir.path())
        .args(["admin", "create", "--email", "Root@Example.com"])
        .env("DATABASE_URL", &config.database_url)
        .env("SWITCHBOARD_DEV_KEYS_PATH", &config.dev_keys_path)
        .env("SWITCHBOARD_ADMIN_PASSWORD", PASSWORD)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let again = switchboard(dir.path())
        .args(["admin", "create", "--email", "root@example.com"])
        .env("DATABASE_URL", &config.database_url)
        .env("SWITCHBOARD_DEV_KEYS_PATH", &config.dev_keys_path)
        .env("SWITCHBOARD_ADMIN_PASSWORD", PASSWORD)
        .output()
        .unwrap();
    assert_eq!(
        again.status.code(),
        Some(1),
        "a second admin with the same email is refused"
    );

    let app = TestApp::spawn_with(dir, config).await;
    let token = app.login("root@example.com").await;
    let r = app.get("/v1/admin/businesses", Some(&token)).await;
    assert_eq!(r.status, StatusCode::OK);
    let r = app.get("/v1/me", Some(&token)).await;
    assert_eq!(r.body["role"], "admin");
}

#[tokio::test]
async fn the_binary_serves_delivers_email_and_stops_gracefully_on_sigterm() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = switchboard(dir.path())
        .arg("serve")
        .env("SWITCHBOARD_BIND", format!("127.0.0.1:{port}"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let next_line_containing = |needle: &str| loop {
        let line = rx
            .recv_timeout(std::time::Duration::from_secs(30))
            .expect("the server printed it");
        if line.contains(needle) {
            return line;
        }
    };
    next_line_containing("is listening on");
    assert!(
        dir.path().join("switchboard.db").exists(),
        "zero configuration: ./switchboard.db"
    );
    let client = reqwest::Client::new();
    let r = client
        .post(format!("http://127.0.0.1:{port}/v1/auth/register/start"))
        .json(&serde_json::json!({ "email": "cli@example.com" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let line = next_line_containing("code is");
    assert!(
        line.split("code is ")
            .nth(1)
            .is_some_and(|c| c.trim().len() == 6),
        "{line}"
    );

    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "graceful stop on SIGTERM");
}

#[tokio::test]
async fn an_exclusive_server_holds_its_sqlite_file_until_it_stops() {
    if crate::common::postgres_url().is_some() {
        return; // SQLite only: PostgreSQL refuses the setting.
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    let mut config = test_config(&path).await;
    config.sqlite_exclusive = true;
    let url = config.database_url.clone();
    let app = TestApp::spawn_with(dir, config).await;

    // Writes (through the pool) and reads (through the read path) share the
    // in-memory WAL index: every read sees the write before it.
    let token = app.owner("excl@example.com", "Exclusive").await;
    for n in 1..=3 {
        let id = app.company(&token, &format!("Company {n}")).await;
        let r = app.get(&format!("/v1/companies/{id}"), Some(&token)).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        let r = app.get("/v1/companies", Some(&token)).await;
        assert_eq!(r.body["items"].as_array().unwrap().len(), n);
    }

    // Another process cannot open the file meanwhile, and says why.
    let migrate = |url: String, dir: std::path::PathBuf| {
        tokio::task::spawn_blocking(move || {
            switchboard(&dir)
                .arg("migrate")
                .env("DATABASE_URL", url)
                .env("SWITCHBOARD_LOG", "warn")
                .output()
                .unwrap()
        })
    };
    let out = migrate(url.clone(), path.clone()).await.unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("held by another process"), "{stderr}");

    // Once the server stops, the file is free.
    let TestApp {
        app: running, dir, ..
    } = app;
    running.stop().await.unwrap();
    let out = migrate(url, path).await.unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    drop(dir);
}
