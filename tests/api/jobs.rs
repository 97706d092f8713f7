//! Background jobs: the purge of expired rows keeps what is still alive; the
//! job runner survives a killed worker, shares tasks between instances
//! exactly once, backs off, fails visibly, and queues nothing for a rolled-back
//! change.

use chrono::{Duration, Utc};
use sea_orm::{ActiveModelTrait, EntityTrait, IntoActiveModel, PaginatorTrait, Set};
use serde_json::json;

use crate::common::{TestApp, email};

#[tokio::test]
async fn purge_deletes_only_rows_a_day_past_expiry() {
    let app = TestApp::spawn().await;
    let db = &app.app.state.db;
    // Live rows: a pending code, a session, a reset link, a request counter.
    let mail = email("purge");
    app.register(&mail, "Purge Co").await;
    app.post(
        "/v1/auth/register/start",
        None,
        json!({ "email": email("pending") }),
    )
    .await;
    app.post("/v1/auth/password/forgot", None, json!({ "email": mail }))
        .await;
    let counts = || async {
        (
            entity::registration::Entity::find()
                .count(db)
                .await
                .unwrap(),
            entity::one_time_token::Entity::find()
                .count(db)
                .await
                .unwrap(),
            entity::refresh_token::Entity::find()
                .count(db)
                .await
                .unwrap(),
            entity::email::request::Entity::find()
                .count(db)
                .await
                .unwrap(),
        )
    };
    let before = counts().await;
    assert!(
        before.0 >= 2 && before.1 >= 2 && before.2 >= 1 && before.3 >= 2,
        "{before:?}"
    );

    // Nothing is old enough yet.
    let purged = switchboard::jobs::cleanup::purge(&app.app.state)
        .await
        .unwrap();
    assert_eq!(purged, switchboard::jobs::cleanup::Purged::default());
    assert_eq!(counts().await, before);

    // Age one of each past expiry + grace.
    let long_ago = Utc::now() - Duration::days(3);
    let r = entity::registration::Entity::find()
        .one(db)
        .await
        .unwrap()
        .unwrap();
    let mut r = r.into_active_model();
    r.expires_at = Set(long_ago);
    r.update(db).await.unwrap();
    let t = entity::one_time_token::Entity::find()
        .one(db)
        .await
        .unwrap()
        .unwrap();
    let mut t = t.into_active_model();
    t.expires_at = Set(long_ago);
    t.update(db).await.unwrap();
    let q = entity::email::request::Entity::find()
        .one(db)
        .await
        .unwrap()
        .unwrap();
    let mut q = q.into_active_model();
    q.created_at = Set(long_ago);
    q.update(db).await.unwrap();

    let purged = switchboard::jobs::cleanup::purge(&app.app.state)
        .await
        .unwrap();
    assert_eq!(
        (
            purged.registrations,
            purged.one_time_tokens,
            purged.email_requests,
            purged.refresh_tokens
        ),
        (1, 1, 1, 0)
    );
    let after = counts().await;
    assert_eq!(after, (before.0 - 1, before.1 - 1, before.2, before.3 - 1));
    // The account still signs in.
    app.login(&mail).await;
}

// ---- The job runner -------------------------------------------------------

use std::time::Instant;

use entity::job;
use sea_orm::{ColumnTrait, QueryFilter, TransactionTrait};
use switchboard::jobs::email::DeliverEmail;
use switchboard::jobs::queue::kind;

/// A TCP port where nothing listens (connections are refused).
#[expect(
    clippy::unwrap_used,
    reason = "a test helper: a failure is a failed test"
)]
fn dead_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Polls `check` every 20 ms until it returns `Some`, for at most `secs`.
async fn eventually<T, F, Fut>(secs: u64, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting: {what}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[expect(
    clippy::unwrap_used,
    reason = "a test helper: a failure is a failed test"
)]
async fn email_tasks(db: &sea_orm::DatabaseConnection) -> Vec<job::Model> {
    job::Entity::find()
        .filter(job::Column::Kind.eq(kind::EMAIL_DELIVER))
        .all(db)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_task_queued_in_a_rolled_back_transaction_never_runs() {
    let app = TestApp::spawn().await;
    let state = &app.app.state;
    let gone = email("rolled-back");
    let txn = state.db.begin().await.unwrap();
    state
        .mailer
        .enqueue(
            &txn,
            &gone,
            switchboard::mail::templates::already_registered(),
        )
        .await
        .unwrap();
    txn.rollback().await.unwrap();
    // The control: the same through a committed transaction is delivered.
    let kept = email("committed");
    let txn = state.db.begin().await.unwrap();
    state
        .mailer
        .enqueue(
            &txn,
            &kept,
            switchboard::mail::templates::already_registered(),
        )
        .await
        .unwrap();
    txn.commit().await.unwrap();
    eventually(10, "the committed email is delivered", || async {
        (!state.mailer.messages_to(&kept).is_empty()).then_some(())
    })
    .await;
    // No task is left: the delivered one is deleted once recorded, the
    // rolled-back one never existed.
    eventually(10, "the delivered task is deleted", || async {
        email_tasks(&state.db).await.is_empty().then_some(())
    })
    .await;
    assert!(state.mailer.messages_to(&gone).is_empty());
    let outbox = entity::email::outbox::Entity::find()
        .all(&state.db)
        .await
        .unwrap();
    assert_eq!(outbox.len(), 1, "the rolled-back message was never stored");
}

#[tokio::test]
async fn enqueuing_one_dedup_key_twice_leaves_one_task() {
    let app = TestApp::spawn().await;
    let state = &app.app.state;
    let task = DeliverEmail {
        email_id: uuid::Uuid::now_v7(),
    };
    // Due later, so the runner cannot finish (and delete) it in between.
    let later = Utc::now() + Duration::hours(1);
    let first = state
        .jobs
        .enqueue_at(&state.db, &task, later)
        .await
        .unwrap();
    let second = state.jobs.enqueue(&state.db, &task).await.unwrap();
    assert!(first.is_some());
    assert_eq!(second, None, "the second enqueue is a no-op");
    let rows = job::Entity::find()
        .filter(job::Column::DedupKey.eq(format!("email.deliver:{}", task.email_id)))
        .all(&state.db)
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
}

#[tokio::test]
async fn a_failing_task_backs_off_then_fails_and_admins_see_and_retry_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = crate::common::test_config(dir.path()).await;
    config.smtp_host = Some("127.0.0.1".into());
    config.smtp_port = dead_port();
    config.smtp_tls = switchboard::config::SmtpTls::None;
    config.outbox_max_attempts = 3;
    config.outbox_retry_base_ms = 200;
    config.jobs.poll_ms = 10;
    let app = TestApp::spawn_with(dir, config).await;
    let admin = app.admin(&email("jobs-admin")).await;
    let target = email("unlucky");
    app.post("/v1/auth/register/start", None, json!({ "email": target }))
        .await;
    let failed = eventually(20, "the task ends failed", || async {
        let r = app
            .get(
                "/v1/admin/jobs?state=failed&kind=email.deliver",
                Some(&admin),
            )
            .await;
        assert_eq!(r.status, reqwest::StatusCode::OK, "{}", r.text);
        r.body["items"].as_array().unwrap().first().cloned()
    })
    .await;
    assert_eq!(failed["attempts"], 3, "{failed}");
    assert_eq!(failed["max_attempts"], 3);
    assert!(
        failed["last_error"].as_str().unwrap().starts_with("smtp:"),
        "{failed}"
    );
    // Three attempts, spaced by the backoff: 200 ms, then 400 ms, each
    // jittered into its upper half.
    let attempts = entity::email::attempt::Entity::find()
        .all(&app.app.state.db)
        .await
        .unwrap();
    let mut at: Vec<_> = attempts.iter().map(|a| a.attempted_at).collect();
    at.sort();
    assert_eq!(at.len(), 3);
    let gaps: Vec<i64> = at
        .windows(2)
        .map(|w| (w[1] - w[0]).num_milliseconds())
        .collect();
    assert!(gaps[0] >= 100 && gaps[1] >= 200, "backoff gaps {gaps:?}");

    // The admin's retry makes it due again; it fails again after 3 more.
    let id = failed["id"].as_str().unwrap();
    let r = app
        .post(
            &format!("/v1/admin/jobs/{id}/retry"),
            Some(&admin),
            json!({}),
        )
        .await;
    assert_eq!(r.status, reqwest::StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["attempts"], 0);
    eventually(20, "the retried task fails again", || async {
        let n = entity::email::attempt::Entity::find()
            .count(&app.app.state.db)
            .await
            .unwrap();
        let row = job::Entity::find_by_id(id.parse::<uuid::Uuid>().unwrap())
            .one(&app.app.state.db)
            .await
            .unwrap()
            .unwrap();
        (n == 6 && row.state == "failed").then_some(())
    })
    .await;
    // A task that is not failed cannot be retried; an unknown one is 404.
    let sweep = job::Entity::find()
        .filter(job::Column::Kind.eq(kind::BILLING_SWEEP))
        .one(&app.app.state.db)
        .await
        .unwrap()
        .expect("the recurring sweep has its row");
    let r = app
        .post(
            &format!("/v1/admin/jobs/{}/retry", sweep.id),
            Some(&admin),
            json!({}),
        )
        .await;
    assert_eq!((r.status.as_u16(), r.code()), (409, "job_not_retryable"));
    let r = app
        .post(
            &format!("/v1/admin/jobs/{}/retry", uuid::Uuid::now_v7()),
            Some(&admin),
            json!({}),
        )
        .await;
    assert_eq!(r.status.as_u16(), 404);
    // Both routes are audited (who else may call them: tests/api/roles.rs).
    let audited = entity::audit_event::Entity::find()
        .filter(entity::audit_event::Column::Action.is_in(["admin.jobs.list", "admin.job.retry"]))
        .count(&app.app.state.db)
        .await
        .unwrap();
    assert!(audited >= 4, "{audited}");
}

#[tokio::test]
async fn two_instances_on_one_database_run_200_tasks_each_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let config = crate::common::test_config(dir.path()).await;
    let a = TestApp::spawn_with(dir, config.clone()).await;
    let b = TestApp::spawn_with(tempfile::tempdir().unwrap(), config).await;
    let addresses: Vec<String> = (0..200).map(|i| email(&format!("many{i}"))).collect();
    let state = &a.app.state;
    let txn = state.db.begin().await.unwrap();
    for to in &addresses {
        state
            .mailer
            .enqueue(&txn, to, switchboard::mail::templates::already_registered())
            .await
            .unwrap();
    }
    txn.commit().await.unwrap();
    b.app.state.jobs.wake();
    let delivered = |to: &str| {
        a.app.state.mailer.messages_to(to).len() + b.app.state.mailer.messages_to(to).len()
    };
    eventually(60, "every email is delivered", || async {
        addresses.iter().all(|to| delivered(to) >= 1).then_some(())
    })
    .await;
    // Give a duplicate the time to show up.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    for to in &addresses {
        assert_eq!(delivered(to), 1, "{to}: exactly once");
    }
    let by_a: usize = addresses
        .iter()
        .map(|to| a.app.state.mailer.messages_to(to).len())
        .sum();
    eprintln!("instance A delivered {by_a}, instance B {}", 200 - by_a);
    assert_eq!(
        entity::email::attempt::Entity::find()
            .count(&state.db)
            .await
            .unwrap(),
        200
    );
    assert!(email_tasks(&state.db).await.is_empty());
}

#[tokio::test]
async fn a_stopping_server_releases_the_task_it_is_running() {
    // An SMTP server that accepts connections and never greets: delivery hangs.
    let tarpit = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut config = crate::common::test_config(dir.path()).await;
    config.smtp_host = Some("127.0.0.1".into());
    config.smtp_port = tarpit.local_addr().unwrap().port();
    config.smtp_tls = switchboard::config::SmtpTls::None;
    config.jobs.shutdown_grace_secs = 0;
    let app = TestApp::spawn_with(dir, config).await;
    app.post(
        "/v1/auth/register/start",
        None,
        json!({ "email": email("hung") }),
    )
    .await;
    let db = app.app.state.db.clone();
    eventually(10, "the delivery is running", || async {
        let t = email_tasks(&db).await;
        (t.len() == 1 && t[0].state == "running").then_some(())
    })
    .await;
    app.app.stop().await.unwrap();
    let db = sea_orm::Database::connect(&app.config.database_url)
        .await
        .unwrap();
    let t = email_tasks(&db).await;
    assert_eq!(t.len(), 1);
    assert_eq!(
        (t[0].state.as_str(), t[0].worker.as_deref(), t[0].attempts),
        ("queued", None, 0),
        "released, the cancelled attempt not counted"
    );
}

#[tokio::test]
async fn a_task_whose_process_was_killed_runs_again_after_its_lease() {
    // First life: the real binary, delivering to an SMTP server that never
    // greets, so the task is mid-run when the process is killed (SIGKILL).
    let tarpit = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = crate::common::test_config(dir.path()).await;
    let port = dead_port();
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_switchboard"));
    cmd.current_dir(dir.path());
    for (key, _) in std::env::vars() {
        if key.starts_with("SWITCHBOARD_") {
            cmd.env_remove(key);
        }
    }
    let mut child = cmd
        .env("DATABASE_URL", &config.database_url)
        .env("SWITCHBOARD_BIND", format!("127.0.0.1:{port}"))
        .env("SWITCHBOARD_SMTP_HOST", "127.0.0.1")
        .env(
            "SWITCHBOARD_SMTP_PORT",
            tarpit.local_addr().unwrap().port().to_string(),
        )
        .env("SWITCHBOARD_SMTP_TLS", "none")
        .env("SWITCHBOARD_JOBS__LEASE_SECS", "2")
        // The second life must open the bodies the first sealed: one keyring.
        .env("SWITCHBOARD_DEV_KEYS_PATH", &config.dev_keys_path)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let client = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    eventually(30, "the binary serves", || async {
        client
            .get(format!("{base}/health"))
            .send()
            .await
            .ok()
            .map(|_| ())
    })
    .await;
    let to = email("killed");
    let r = client
        .post(format!("{base}/v1/auth/register/start"))
        .json(&json!({ "email": to }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 202);
    let db = sea_orm::Database::connect(&config.database_url)
        .await
        .unwrap();
    let running = eventually(10, "the delivery is running", || async {
        let t = email_tasks(&db).await;
        (t.len() == 1 && t[0].state == "running").then(|| t[0].clone())
    })
    .await;
    child.kill().unwrap(); // SIGKILL: no graceful stop, the lease stays
    child.wait().unwrap();
    let left = email_tasks(&db).await;
    assert_eq!(
        (left[0].state.as_str(), left[0].worker.as_deref()),
        ("running", running.worker.as_deref()),
        "the dead worker still holds the task"
    );

    // Second life: a server on the same database, delivering to the console.
    let app = TestApp::spawn_with(tempfile::tempdir().unwrap(), config).await;
    let got = eventually(15, "the task runs again after the lease", || async {
        let m = app.app.state.mailer.messages_to(&to);
        (!m.is_empty()).then_some(m)
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(app.app.state.mailer.messages_to(&to).len(), 1, "{got:?}");
    assert!(email_tasks(&db).await.is_empty(), "done and deleted");
    let message = entity::email::outbox::Entity::find()
        .one(&db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(message.status, "sent");
    assert!(
        message.sent_at.unwrap() >= running.lease_until.unwrap(),
        "not taken again before the dead worker's lease expired"
    );
}
