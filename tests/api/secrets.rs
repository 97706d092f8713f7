//! The integration-secret vault through the API: masking, reveal, shredding,
//! who may do what, plaintext never at rest or in logs, integrity failures,
//! key rotation online, reveal rate limit.

use std::sync::{Arc, Mutex};

use base64::Engine;
use reqwest::{Method, StatusCode};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use secrecy::SecretString;
use serde_json::json;

use crate::common::{TestApp, email, postgres_url, test_config};

const BOT_TOKEN: &str = "7012345678:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsawQ";

fn keyring(entries: &[(&str, u8)]) -> SecretString {
    entries
        .iter()
        .map(|(id, byte)| {
            format!(
                "{id}:{}",
                base64::engine::general_purpose::STANDARD.encode([*byte; 32])
            )
        })
        .collect::<Vec<_>>()
        .join(",")
        .into()
}

fn secret_path(business: &str, name: &str) -> String {
    format!("/v1/businesses/{business}/secrets/telegram/{name}")
}

async fn put(
    app: &TestApp,
    token: &str,
    business: &str,
    name: &str,
    value: &str,
) -> crate::common::Resp {
    app.call(
        Method::PUT,
        &secret_path(business, name),
        Some(token),
        Some(json!({ "value": value, "metadata": { "status": "active" } })),
    )
    .await
}

async fn reveal(app: &TestApp, token: &str, business: &str, name: &str) -> crate::common::Resp {
    app.call(
        Method::POST,
        &format!("{}/reveal", secret_path(business, name)),
        Some(token),
        None,
    )
    .await
}

#[tokio::test]
async fn secrets_are_masked_revealed_on_request_and_crypto_shredded() {
    let app = TestApp::spawn().await;
    let owner = app.owner(&email("vault"), "Vault").await;
    let business = app.business_id(&owner).await;

    let r = put(&app, &owner, &business, "bot_token", BOT_TOKEN).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["masked"], "••••sawQ");
    assert_eq!(r.body["metadata"]["status"], "active");
    assert!(!r.text.contains(BOT_TOKEN));
    let short = put(&app, &owner, &business, "short", "abc123").await;
    assert_eq!(
        short.body["masked"], "••••",
        "short values show no characters"
    );

    let r = app
        .get(&format!("/v1/businesses/{business}/secrets"), Some(&owner))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["items"].as_array().unwrap().len(), 2);
    assert!(!r.text.contains(BOT_TOKEN), "lists never carry plaintext");
    assert!(!r.text.contains("abc123"));

    let r = reveal(&app, &owner, &business, "bot_token").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["value"], BOT_TOKEN);

    // Replace: a new value under a new data key.
    let before: entity::secret::Model = entity::secret::Entity::find()
        .filter(entity::secret::Column::Name.eq("bot_token"))
        .one(&app.app.state.db)
        .await
        .unwrap()
        .unwrap();
    put(
        &app,
        &owner,
        &business,
        "bot_token",
        "7012345678:REPLACEDvalueREPLACEDvalue",
    )
    .await;
    let after = entity::secret::Entity::find_by_id(before.id)
        .one(&app.app.state.db)
        .await
        .unwrap()
        .unwrap();
    assert_ne!(before.wrapped_dek, after.wrapped_dek, "fresh data key");
    assert_eq!(
        reveal(&app, &owner, &business, "bot_token").await.body["value"],
        "7012345678:REPLACEDvalueREPLACEDvalue"
    );

    let r = app
        .call(
            Method::DELETE,
            &secret_path(&business, "bot_token"),
            Some(&owner),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(
        reveal(&app, &owner, &business, "bot_token").await.status,
        StatusCode::NOT_FOUND
    );
    assert!(
        entity::secret::Entity::find_by_id(before.id)
            .one(&app.app.state.db)
            .await
            .unwrap()
            .is_none(),
        "row and wrapped key gone"
    );

    // Bad input.
    for (path, body, code) in [
        (
            format!("/v1/businesses/{business}/secrets/myspace/x"),
            json!({ "value": "v" }),
            "invalid_path_parameter",
        ),
        (
            secret_path(&business, "Bad%20Name"),
            json!({ "value": "v" }),
            "validation_failed",
        ),
        (
            secret_path(&business, "ok"),
            json!({ "value": "" }),
            "validation_failed",
        ),
        (
            secret_path(&business, "ok"),
            json!({ "value": "v", "extra": 1 }),
            "invalid_body",
        ),
        (
            secret_path(&business, "ok"),
            json!({ "value": "x".repeat(64 * 1024 + 1) }),
            "validation_failed",
        ),
    ] {
        let r = app.call(Method::PUT, &path, Some(&owner), Some(body)).await;
        assert_eq!(r.code(), code, "{path}: {}", r.text);
    }
}

#[tokio::test]
async fn secret_scope_matrix_and_unassignment_takes_effect_at_once() {
    let app = TestApp::spawn().await;
    let owner = app.owner(&email("owner"), "Owner").await;
    let other = app.owner(&email("other"), "Other").await;
    let business = app.business_id(&owner).await;
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
    assert_eq!(r.status, StatusCode::OK);
    put(&app, &owner, &business, "bot_token", BOT_TOKEN).await;

    let actors: [(&str, Option<&str>); 6] = [
        ("anonymous", None),
        ("owner", Some(&owner)),
        ("other owner", Some(&other)),
        ("manager assigned", Some(&assigned)),
        ("manager unassigned", Some(&unassigned)),
        ("admin", Some(&admin)),
    ];
    #[rustfmt::skip]
    let table: [(Method, String, Option<serde_json::Value>, [u16; 6]); 4] = [
        (Method::GET, format!("/v1/businesses/{business}/secrets"), None, [401, 200, 404, 200, 404, 200]),
        (Method::PUT, secret_path(&business, "bot_token"), Some(json!({ "value": BOT_TOKEN })), [401, 200, 404, 200, 404, 200]),
        (Method::POST, format!("{}/reveal", secret_path(&business, "bot_token")), None, [401, 200, 404, 200, 404, 200]),
        (Method::DELETE, secret_path(&business, "doomed"), None, [401, 204, 404, 403, 404, 204]),
    ];
    let mut failures = Vec::new();
    for (method, path, body, expect) in &table {
        for (i, (who, token)) in actors.iter().enumerate() {
            if *method == Method::DELETE {
                put(&app, &owner, &business, "doomed", "to be destroyed soon").await;
            }
            let r = app.call(method.clone(), path, *token, body.clone()).await;
            if r.status.as_u16() != expect[i] {
                failures.push(format!(
                    "{method} {path} as {who}: expected {}, got {} {}",
                    expect[i], r.status, r.text
                ));
            }
            if r.status.is_client_error() {
                assert!(
                    !r.text.contains(BOT_TOKEN),
                    "{who}: a refusal leaks nothing"
                );
            }
        }
    }
    assert!(
        failures.is_empty(),
        "scope matrix mismatches:\n{}",
        failures.join("\n")
    );

    // Unassigning the manager removes access at once, same token.
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
        reveal(&app, &assigned, &business, "bot_token").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.get(
            &format!("/v1/businesses/{business}/secrets"),
            Some(&assigned)
        )
        .await
        .status,
        StatusCode::NOT_FOUND
    );
}

/// Collects everything the app logs, at every level.
#[derive(Clone, Default)]
pub(crate) struct Capture(pub(crate) Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .map_err(|_| std::io::Error::other("capture poisoned"))?
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The test binary's global subscriber, installed on first use: every
/// event of every app in this process, at every level, lands in one buffer.
/// (A thread-local subscriber misses events whose callsite interest another
/// test thread cached first.)
#[expect(
    clippy::expect_used,
    reason = "a test helper: a second global subscriber is a broken suite"
)]
pub(crate) fn global_capture() -> &'static Capture {
    static CAPTURE: std::sync::OnceLock<Capture> = std::sync::OnceLock::new();
    CAPTURE.get_or_init(|| {
        let capture = Capture::default();
        let writer = capture.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::set_global_default(subscriber)
            .expect("no other global subscriber in the suite");
        capture
    })
}

#[tokio::test]
async fn plaintext_is_nowhere_in_the_database_file_or_the_logs() {
    let capture = global_capture();

    let app = TestApp::spawn().await;
    let owner = app.owner(&email("leak"), "Leak Test").await;
    let business = app.business_id(&owner).await;
    let admin = app.admin(&email("admin")).await;
    let (manager_id, manager) = app.manager(&admin, &email("mgr")).await;
    app.call(
        Method::PUT,
        &format!("/v1/admin/businesses/{business}/manager"),
        Some(&admin),
        Some(json!({ "manager_id": manager_id })),
    )
    .await;

    let plaintexts = [
        "wAhA-SeSsIoN-kEy-0123456789-abcdefghij",
        "n8n-credential-9f8e7d6c5b4a39281706",
        BOT_TOKEN,
    ];
    put(&app, &owner, &business, "bot_token", plaintexts[2]).await;
    let r = app
        .call(
            Method::PUT,
            &format!("/v1/businesses/{business}/secrets/waha/session_key"),
            Some(&manager),
            Some(json!({ "value": plaintexts[0] })),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = app
        .call(
            Method::PUT,
            &format!("/v1/businesses/{business}/secrets/n8n/credential_id"),
            Some(&admin),
            Some(json!({ "value": plaintexts[1] })),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    for (provider, name) in [
        ("waha", "session_key"),
        ("n8n", "credential_id"),
        ("telegram", "bot_token"),
    ] {
        let r = app
            .call(
                Method::POST,
                &format!("/v1/businesses/{business}/secrets/{provider}/{name}/reveal"),
                Some(&manager),
                None,
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    }

    let logs = String::from_utf8_lossy(&capture.0.lock().unwrap()).into_owned();
    assert!(
        logs.len() > 1000,
        "the capture saw the app's logs ({} bytes)",
        logs.len()
    );
    for p in plaintexts {
        assert!(!logs.contains(p), "plaintext in the logs");
    }
    if postgres_url().is_none() {
        let dir = app.dir();
        let mut bytes = Vec::new();
        for file in ["switchboard.db", "switchboard.db-wal"] {
            if let Ok(b) = std::fs::read(dir.join(file)) {
                bytes.extend(b);
            }
        }
        assert!(bytes.len() > 10_000, "read the database files");
        // The tenant's name proves the search can find stored text.
        assert!(
            bytes.windows(9).any(|w| w == b"Leak Test"),
            "stored text is findable"
        );
        for p in plaintexts {
            assert!(
                !bytes.windows(p.len()).any(|w| w == p.as_bytes()),
                "plaintext in the database file"
            );
        }
    }
}

#[tokio::test]
async fn a_moved_or_tampered_ciphertext_refuses_to_decrypt_and_is_audited() {
    use sea_orm::{ActiveModelTrait, IntoActiveModel, Set};
    let app = TestApp::spawn().await;
    let a = app.owner(&email("a"), "A").await;
    let b = app.owner(&email("b"), "B").await;
    let a_business = app.business_id(&a).await;
    let b_business = app.business_id(&b).await;
    put(&app, &a, &a_business, "bot_token", BOT_TOKEN).await;
    put(
        &app,
        &b,
        &b_business,
        "bot_token",
        "B's own token value 1234567890",
    )
    .await;
    let db = &app.app.state.db;
    let rows = entity::secret::Entity::find().all(db).await.unwrap();
    let a_row = rows
        .iter()
        .find(|r| r.business_id.to_string() == a_business)
        .unwrap()
        .clone();
    let b_row = rows
        .iter()
        .find(|r| r.business_id.to_string() == b_business)
        .unwrap()
        .clone();

    // Copy A's sealed fields onto B's row.
    let mut moved = b_row.clone().into_active_model();
    moved.ciphertext = Set(a_row.ciphertext.clone());
    moved.nonce = Set(a_row.nonce.clone());
    moved.wrapped_dek = Set(a_row.wrapped_dek.clone());
    moved.dek_nonce = Set(a_row.dek_nonce.clone());
    moved.update(db).await.unwrap();
    let r = reveal(&app, &b, &b_business, "bot_token").await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(r.code(), "secret_integrity_failure");
    assert!(
        r.body["detail"]
            .as_str()
            .unwrap()
            .contains("failed authentication")
    );
    assert!(!r.text.contains(BOT_TOKEN));

    // A flipped bit in A's own row.
    let mut flipped = a_row.ciphertext.clone();
    flipped[3] ^= 0x10;
    let mut t = a_row.clone().into_active_model();
    t.ciphertext = Set(flipped);
    t.update(db).await.unwrap();
    assert_eq!(
        reveal(&app, &a, &a_business, "bot_token").await.code(),
        "secret_integrity_failure"
    );

    // A key id that is not in the keyring.
    let mut k = entity::secret::Entity::find_by_id(a_row.id)
        .one(db)
        .await
        .unwrap()
        .unwrap()
        .into_active_model();
    k.key_id = Set("retired-key".into());
    k.update(db).await.unwrap();
    let r = reveal(&app, &a, &a_business, "bot_token").await;
    assert!(
        r.body["detail"]
            .as_str()
            .unwrap()
            .contains("`retired-key` is not in the keyring"),
        "{}",
        r.text
    );

    // Each failure is a security event in the owner's audit log.
    let r = app.get("/v1/business/audit?limit=100", Some(&b)).await;
    let failures: Vec<_> = r.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "secret.decrypt_failed")
        .collect();
    assert_eq!(failures.len(), 1);
    assert_eq!(failures[0]["outcome"], "failure");
    let r = app.get("/v1/business/audit?limit=100", Some(&a)).await;
    let failures = r.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "secret.decrypt_failed")
        .count();
    assert_eq!(failures, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_runs_online_and_the_old_key_can_then_be_removed() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path()).await;
    config.master_keys = Some(keyring(&[("a", 1)]));
    let app = TestApp::spawn_with(dir, config.clone()).await;
    let owners = [
        app.owner(&email("r1"), "R1").await,
        app.owner(&email("r2"), "R2").await,
    ];
    let mut expected = Vec::new();
    for (o, owner) in owners.iter().enumerate() {
        let business = app.business_id(owner).await;
        for i in 0..15 {
            let value = format!("secret-{o}-{i}-value-0123456789");
            assert_eq!(
                put(&app, owner, &business, &format!("s{i}"), &value)
                    .await
                    .status,
                StatusCode::OK
            );
            expected.push((owner.clone(), business.clone(), format!("s{i}"), value));
        }
    }
    let TestApp {
        app: running, dir, ..
    } = app;
    running.stop().await.unwrap();

    // Key B first, A still present; serve while the CLI rotates.
    config.master_keys = Some(keyring(&[("b", 2), ("a", 1)]));
    let app = Arc::new(TestApp::spawn_with(dir, config.clone()).await);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let traffic = {
        let app = app.clone();
        let stop = stop.clone();
        let (owner, business) = (owners[0].clone(), expected[0].1.clone());
        tokio::spawn(async move {
            let mut n = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let r = put(
                    &app,
                    &owner,
                    &business,
                    "live",
                    &format!("written-during-rotation-{n}-xxxxxxxx"),
                )
                .await;
                assert_eq!(r.status, StatusCode::OK, "{}", r.text);
                let r = reveal(&app, &owner, &business, "s1").await;
                assert_eq!(r.status, StatusCode::OK, "{}", r.text);
                n += 1;
            }
            n
        })
    };
    let keys_env = keyring(&[("b", 2), ("a", 1)]);
    let (url, dev_keys) = (config.database_url.clone(), config.dev_keys_path.clone());
    let cli = tokio::task::spawn_blocking(move || {
        use secrecy::ExposeSecret;
        std::process::Command::new(env!("CARGO_BIN_EXE_switchboard"))
            .args(["keys", "rotate"])
            .env("DATABASE_URL", url)
            .env("SWITCHBOARD_DEV_KEYS_PATH", dev_keys)
            .env("SWITCHBOARD_MASTER_KEYS", keys_env.expose_secret())
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let requests = traffic.await.unwrap();
    let stdout = String::from_utf8_lossy(&cli.stdout);
    assert!(
        cli.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&cli.stderr)
    );
    assert!(requests > 0, "requests ran during the rotation");
    let summary = stdout.lines().find(|l| l.starts_with("rewrapped")).unwrap();
    let numbers: Vec<u64> = summary
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|t| t.parse().ok())
        .collect();
    assert_eq!(numbers.len(), 3, "{summary}");
    assert!(
        numbers[0] >= 29,
        "at least the 30 old secrets, less the live one: {summary}"
    );
    assert_eq!(numbers[2], 0, "failed 0: {summary}");

    // Idempotent: a second run has nothing to do.
    let summary = switchboard::domain::vault::secrets::rotate(
        &app.app.state.db,
        &app.app.state.keyring,
        |_, _| {},
    )
    .await
    .unwrap();
    assert_eq!(summary.rewrapped, 0);
    assert_eq!(summary.failed, 0);
    assert_eq!(summary.already_current, 31);
    let old = entity::secret::Entity::find()
        .filter(entity::secret::Column::KeyId.eq("a"))
        .all(&app.app.state.db)
        .await
        .unwrap();
    assert!(old.is_empty(), "no data key is still wrapped by A");

    // Remove A: every secret still reveals.
    let app = Arc::into_inner(app).unwrap();
    let TestApp {
        app: running, dir, ..
    } = app;
    running.stop().await.unwrap();
    config.master_keys = Some(keyring(&[("b", 2)]));
    let app = TestApp::spawn_with(dir, config).await;
    for (owner, business, name, value) in &expected {
        let r = reveal(&app, owner, business, name).await;
        assert_eq!(r.status, StatusCode::OK, "{name}: {}", r.text);
        assert_eq!(r.body["value"], value.as_str());
    }
    let r = reveal(&app, &owners[0], &expected[0].1, "live").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
}

#[tokio::test]
async fn reveals_are_rate_limited_per_user() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path()).await;
    config.rate_limit.reveal_per_minute = 3;
    let app = TestApp::spawn_with(dir, config).await;
    let owner = app.owner(&email("limited"), "Limited").await;
    let business = app.business_id(&owner).await;
    let admin = app.admin(&email("admin")).await;
    put(&app, &owner, &business, "bot_token", BOT_TOKEN).await;
    for _ in 0..3 {
        assert_eq!(
            reveal(&app, &owner, &business, "bot_token").await.status,
            StatusCode::OK
        );
    }
    let r = reveal(&app, &owner, &business, "bot_token").await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.code(), "rate_limited");
    assert!(r.headers.contains_key("retry-after"));
    assert_eq!(
        reveal(&app, &admin, &business, "bot_token").await.status,
        StatusCode::OK,
        "another user's quota is their own"
    );
}

/// Runs `switchboard keys {command}` with `keys` on `config`'s database.
#[expect(
    clippy::unwrap_used,
    reason = "a test helper: a failure is a failed test"
)]
async fn keys_cli(
    config: &switchboard::config::Config,
    command: &'static str,
    keys: SecretString,
) -> std::process::Output {
    let (url, dev_keys) = (config.database_url.clone(), config.dev_keys_path.clone());
    tokio::task::spawn_blocking(move || {
        use secrecy::ExposeSecret;
        std::process::Command::new(env!("CARGO_BIN_EXE_switchboard"))
            .args(["keys", command])
            .env("DATABASE_URL", url)
            .env("SWITCHBOARD_DEV_KEYS_PATH", dev_keys)
            .env("SWITCHBOARD_MASTER_KEYS", keys.expose_secret())
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn rotation_is_not_complete_while_an_instance_still_seals_under_the_old_key() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path()).await;
    config.master_keys = Some(keyring(&[("a", 1)]));
    // An instance not yet restarted: its keyring still starts with A.
    let stale = TestApp::spawn_with(dir, config.clone()).await;
    let owner = stale.owner(&email("stale"), "Stale").await;
    let business = stale.business_id(&owner).await;
    for i in 0..3 {
        put(
            &stale,
            &owner,
            &business,
            &format!("s{i}"),
            "old-value-0123456789",
        )
        .await;
    }
    let new_first = || keyring(&[("b", 2), ("a", 1)]);
    let out = keys_cli(&config, "rotate", new_first()).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("rewrapped 3, already current 0, failed 0"),
        "{stdout}"
    );
    assert!(stdout.contains("  b (current): 3 secrets"), "{stdout}");
    assert!(stdout.contains("rotation complete"), "{stdout}");

    // The stale instance writes after the pass, under A: what the rotation
    // reported is no longer true, and the status says so before anyone
    // removes A.
    put(
        &stale,
        &owner,
        &business,
        "late",
        "written-by-the-stale-instance",
    )
    .await;
    let out = keys_cli(&config, "status", new_first()).await;
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(stdout.contains("  a: 1 secrets"), "{stdout}");
    assert!(stdout.contains("  b (current): 3 secrets"), "{stdout}");
    assert!(
        stderr.contains("rotation incomplete") && stderr.contains("restart every instance"),
        "{stderr}"
    );

    // Every instance restarted with B first, rotated again: complete.
    let TestApp {
        app: running, dir, ..
    } = stale;
    running.stop().await.unwrap();
    config.master_keys = Some(new_first());
    let app = TestApp::spawn_with(dir, config.clone()).await;
    put(
        &app,
        &owner,
        &business,
        "after",
        "written-after-the-restart",
    )
    .await;
    let out = keys_cli(&config, "rotate", new_first()).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("  b (current): 5 secrets"), "{stdout}");
    assert!(!stdout.contains("  a:"), "{stdout}");
    let out = keys_cli(&config, "status", new_first()).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
