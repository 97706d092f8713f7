//! A token issued before a restart still works after it (development keys
//! are generated once into a file).

use reqwest::StatusCode;

use crate::common::{TestApp, email, test_config};

#[tokio::test]
async fn token_issued_before_restart_still_works_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let config = test_config(dir.path()).await;
    assert!(
        config.jwt_secret.is_none(),
        "dev mode: keys come from the dev key file"
    );
    let app = TestApp::spawn_with(dir, config.clone()).await;
    let token = app.owner(&email("restart"), "Persistent").await;
    assert!(config.dev_keys_path.exists(), "dev keys were written");
    let TestApp {
        app: running, dir, ..
    } = app;
    running.stop().await.unwrap();

    let app = TestApp::spawn_with(dir, config).await;
    let r = app.get("/v1/me", Some(&token)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = app.get("/v1/business", Some(&token)).await;
    assert_eq!(r.body["name"], "Persistent");
}

#[tokio::test]
async fn a_token_signed_with_other_keys_is_refused() {
    let first = TestApp::spawn().await;
    let token = first.owner(&email("keys"), "Keys").await;
    let second = TestApp::spawn().await;
    let r = second.get("/v1/me", Some(&token)).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.code(), "invalid_token");
}
