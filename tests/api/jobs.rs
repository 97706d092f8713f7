//! Background jobs: the purge of expired rows keeps what is still alive.

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
