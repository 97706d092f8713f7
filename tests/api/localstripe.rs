//! Billing against a second, independent implementation of Stripe's API:
//! localstripe (a Python Stripe mock, installed by `.ci/run` from PyPI).
//! Unlike `stripe_fake`, which we wrote ourselves, localstripe was written by
//! others, so this proves that our async-stripe client (`ensure_customer`,
//! `retrieve_customer`, `delete_customer`) speaks Stripe's wire format as a
//! third party understands it, that the customer is created once per
//! business, that deleting it is safe to repeat, and that the webhooks
//! localstripe signs and delivers on its own (`customer.created`,
//! `customer.deleted`) pass our signature check, are recorded once each in the
//! ledger (`inbound_events`) and applied (the deleted customer is forgotten),
//! while a delivery with a wrong signature is refused and not recorded.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use entity::inbound_event;
use reqwest::StatusCode;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use secrecy::SecretString;
use serde_json::Value;
use uuid::Uuid;

use crate::common::{TestApp, email, into_resp, test_config};

/// The webhook signing secret shared by localstripe and the app.
const WEBHOOK_SECRET: &str = "whsec_localstripe";

/// The secret key the app presents (localstripe accepts any `sk_test_…`).
const SECRET_KEY: &str = "sk_test_local";

/// A running localstripe server; killed when dropped.
struct LocalStripe {
    child: Child,
    port: u16,
}

#[expect(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test harness: a failure here is a failed test"
)]
impl LocalStripe {
    /// Starts one on a free port; `None` (test skipped) only outside CI when
    /// localstripe is not installed. Its log (stderr) goes to
    /// `dir/localstripe.log`.
    fn start(dir: &Path) -> Option<LocalStripe> {
        let available = Command::new("python3")
            .args(["-c", "import localstripe"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !available {
            assert!(
                std::env::var_os("CI").is_none(),
                "localstripe must be installed in CI (.ci/run installs it)"
            );
            eprintln!(
                "SKIPPED: the localstripe test needs localstripe \
                 (python3 -m pip install localstripe==1.15.10)"
            );
            return None;
        }
        let log_path = dir.join("localstripe.log");
        // Always --from-scratch: otherwise localstripe loads the state it
        // pickled to /tmp/localstripe.pickle on an earlier run.
        let mut child = Command::new("python3")
            .args(["-m", "localstripe", "--port", "0", "--from-scratch"])
            .env("PYTHONUNBUFFERED", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(File::create(&log_path).unwrap()))
            .spawn()
            .unwrap();
        // It prints `======== Running on http://[::]:PORT ========` once
        // listening. A thread reads stdout (and keeps draining it, so the
        // pipe never fills) and hands each line over.
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel::<String>();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(20);
        let port = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = match rx.recv_timeout(left) {
                Ok(line) => line,
                Err(e) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    let mut log = String::new();
                    let _ = File::open(&log_path).and_then(|mut f| f.read_to_string(&mut log));
                    panic!("localstripe did not start ({e:?}); its log:\n{log}");
                }
            };
            if let Some(rest) = line.split("Running on http://").nth(1) {
                let port = rest
                    .split_whitespace()
                    .next()
                    .and_then(|addr| addr.rsplit_once(':'))
                    .and_then(|(_, port)| port.trim_end_matches('/').parse::<u16>().ok())
                    .expect("a port in localstripe's banner");
                break port;
            }
        };
        Some(LocalStripe { child, port })
    }

    /// `http://127.0.0.1:PORT` (it listens on `[::]`, IPv4 included).
    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for LocalStripe {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every row of the ledger.
#[expect(
    clippy::unwrap_used,
    reason = "a test helper: a failure here is a failed test"
)]
async fn ledger(app: &TestApp) -> Vec<inbound_event::Model> {
    inbound_event::Entity::find()
        .all(&app.app.state.db)
        .await
        .unwrap()
}

/// The business's stored Stripe customer id.
#[expect(
    clippy::unwrap_used,
    reason = "a test helper: a failure here is a failed test"
)]
async fn stored_customer(app: &TestApp, business_id: Uuid) -> Option<String> {
    entity::business::Entity::find_by_id(business_id)
        .one(&app.app.state.db)
        .await
        .unwrap()
        .unwrap()
        .stripe_customer_id
}

#[tokio::test]
async fn localstripe_customer_lifecycle_through_our_client_and_signed_webhooks() {
    let dir = tempfile::tempdir().unwrap();
    let Some(stripe) = LocalStripe::start(dir.path()) else {
        return;
    };

    // 1. The app, pointed at localstripe, with no background reconciliation.
    let mut config = test_config(dir.path()).await;
    config.stripe = Some(switchboard::config::StripeConfig {
        secret_key: SecretString::from(SECRET_KEY.to_owned()),
        api_base: stripe.url(),
        webhook_secrets: Some(SecretString::from(WEBHOOK_SECRET.to_owned())),
        success_url: None,
        cancel_url: None,
        portal_return_url: None,
        timeout_secs: 20,
        connect_webhook_secrets: None,
        connect_country: "US".into(),
        connect_return_url: None,
    });
    config.billing.reconcile_interval_hours = 0;
    let app = TestApp::spawn_with(dir, config).await;
    let owner_email = email("localstripe");
    let token = app.owner(&owner_email, "Local Stripe Co").await;
    let business_id: Uuid = app.business_id(&token).await.parse().unwrap();
    let state = &app.app.state;
    let api = state.stripe.as_ref().expect("Stripe is configured");

    // 2. localstripe delivers every event to our endpoint, signed with the secret.
    let r = app
        .client
        .post(format!("{}/_config/webhooks/switchboard", stripe.url()))
        .form(&[
            ("url", app.url("/v1/webhooks/stripe")),
            ("secret", WEBHOOK_SECRET.to_owned()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());

    // 3. The customer is created once and stored on the business (the
    // scope as the owner's access check mints it).
    let owner = entity::business::Entity::find_by_id(business_id)
        .one(&state.db)
        .await
        .unwrap()
        .unwrap()
        .owner_id;
    use switchboard::authz::{Action, Object};
    use switchboard::domain::tenancy::access;
    let caller = access::Caller {
        user_id: owner,
        role: entity::enums::Role::Owner,
        owned_business: Some(business_id),
        auth_time: 0,
    };
    let scope = access::own_scope(&state.authz, caller, Object::Billing, Action::Update).unwrap();
    let customer =
        switchboard::domain::billing::customer::ensure_customer(&state.billing(), &scope)
            .await
            .unwrap();
    assert!(customer.starts_with("cus_"), "{customer}");
    assert_eq!(
        stored_customer(&app, business_id).await.as_deref(),
        Some(customer.as_str())
    );
    let again = switchboard::domain::billing::customer::ensure_customer(&state.billing(), &scope)
        .await
        .unwrap();
    assert_eq!(again, customer, "a second call reuses the stored customer");
    let r = into_resp(
        app.client
            .get(format!("{}/v1/customers", stripe.url()))
            .bearer_auth(SECRET_KEY)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let ours: Vec<&Value> = r.body["data"]
        .as_array()
        .expect("a list of customers")
        .iter()
        .filter(|c| c["metadata"]["business_id"] == business_id.to_string())
        .collect();
    assert_eq!(ours.len(), 1, "one customer for the business: {}", r.text);
    assert_eq!(ours[0]["id"], customer.as_str());
    assert_eq!(
        r.body["data"].as_array().map(Vec::len),
        Some(1),
        "localstripe holds no other customer: {}",
        r.text
    );

    // 4. Our client reads it back: metadata and email as we sent them.
    let fetched = api
        .retrieve_customer(&customer)
        .await
        .unwrap()
        .expect("the customer exists");
    assert_eq!(fetched.id.as_str(), customer);
    assert_eq!(
        fetched
            .metadata
            .as_ref()
            .and_then(|m| m.get("business_id"))
            .map(String::as_str),
        Some(business_id.to_string().as_str())
    );
    assert_eq!(fetched.email.as_deref(), Some(owner_email.as_str()));

    // 5. Deleting it works, it is gone afterwards, and deleting again is fine.
    api.delete_customer(&customer).await.unwrap();
    assert!(
        api.retrieve_customer(&customer).await.unwrap().is_none(),
        "a deleted customer reads as gone"
    );
    api.delete_customer(&customer)
        .await
        .expect("deleting a deleted customer succeeds");

    // 6. localstripe's signed deliveries (about 1 s after each call) land
    // in the ledger once each and are applied.
    let deadline = Instant::now() + Duration::from_secs(15);
    let rows = loop {
        let rows = ledger(&app).await;
        let has = |t: &str| rows.iter().any(|e| e.event_type == t);
        if (has("customer.created") && has("customer.deleted")) || Instant::now() > deadline {
            break rows;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    for event_type in ["customer.created", "customer.deleted"] {
        let of_type: Vec<_> = rows.iter().filter(|e| e.event_type == event_type).collect();
        assert_eq!(
            of_type.len(),
            1,
            "one {event_type} in the ledger: {rows:#?}\nlocalstripe log: {}",
            std::fs::read_to_string(app.dir().join("localstripe.log")).unwrap_or_default()
        );
        let e = of_type[0];
        assert!(e.event_id.starts_with("evt_"), "{e:?}");
        assert_eq!(e.status, "done", "{e:?}");
        assert_eq!(e.attempts, 1, "{e:?}");
        assert_eq!(e.business_id, Some(business_id), "{e:?}");
    }
    assert_eq!(rows.len(), 2, "nothing else was delivered: {rows:#?}");
    assert_eq!(
        stored_customer(&app, business_id).await,
        None,
        "customer.deleted cleared the business's customer"
    );

    // 7. The check is real: a delivery with a wrong signature is refused
    // and not recorded.
    let now = chrono::Utc::now().timestamp();
    let forged = format!(
        r#"{{"id":"evt_forged","object":"event","type":"customer.created","created":{now},"data":{{"object":{{"id":"cus_x","object":"customer","metadata":{{}}}}}}}}"#
    );
    let r = into_resp(
        app.client
            .post(app.url("/v1/webhooks/stripe"))
            .header("content-type", "application/json")
            .header("stripe-signature", format!("t={now},v1={}", "0".repeat(64)))
            .body(forged)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert_eq!(r.code(), "signature_mismatch", "{}", r.text);
    assert!(
        inbound_event::Entity::find()
            .filter(inbound_event::Column::EventId.eq("evt_forged"))
            .one(&app.app.state.db)
            .await
            .unwrap()
            .is_none(),
        "a forged event is not recorded"
    );
    assert_eq!(ledger(&app).await.len(), 2);
}
