//! The SQLite read path (`switchboard::db::reader`) returns exactly what
//! sea-orm returns through sqlx: every model it reads (companies, channels),
//! each of their column types (UUID blobs, RFC 3339 timestamps, enums as
//! text, optional enums, JSON, 32-bit integers, NULLs), and filters binding
//! each kind of value; a statement that does not select the model's columns
//! is an error.

use chrono::{Duration, Utc};
use reqwest::{Method, StatusCode};
use sea_orm::sea_query::Expr;
use sea_orm::sea_query::Value;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, IntoActiveModel, QueryFilter, QueryOrder,
    QuerySelect, Set,
};
use serde_json::json;
use switchboard::db::reader::{Reader, Shape};
use uuid::Uuid;

use crate::common::{TestApp, email, postgres_url};

/// Asserts that the reader and sea-orm agree on every row of `$entity`
/// (ordered by `$order`) and that the table is not empty.
macro_rules! same_rows {
    ($state:expr, $entity:ty, $order:expr) => {{
        let select = || <$entity>::find().order_by_asc($order);
        let expected = select().all(&$state.db).await.unwrap();
        let read = $state.read.all(select()).await.unwrap();
        assert!(
            !expected.is_empty(),
            "{} has no rows: the comparison would prove nothing",
            stringify!($entity)
        );
        assert_eq!(read, expected, "{}", stringify!($entity));
    }};
}

#[tokio::test]
async fn the_sqlite_read_path_decodes_every_model_it_reads_like_sea_orm() {
    let app = TestApp::spawn().await;
    let state = &app.app.state;
    if postgres_url().is_none() {
        assert!(
            matches!(state.read, Reader::Sqlite(_)),
            "on SQLite, hot reads must bypass sqlx"
        );
    }

    // Rows in every table, with optional columns both set and NULL.
    let admin = app.admin(&email("radmin")).await;
    let (manager_id, _) = app.manager(&admin, &email("rmanager")).await;
    let owner = app.owner(&email("rowner"), "Reader Co").await;
    let business_id = app.business_id(&owner).await;
    let r = app
        .call(
            Method::PUT,
            &format!("/v1/admin/businesses/{business_id}/manager"),
            Some(&admin),
            Some(json!({ "manager_id": manager_id })),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let company = app.company(&owner, "Acme").await;
    let r = app
        .post(
            "/v1/companies",
            Some(&owner),
            json!({ "name": "Beta", "kind": "service", "shop_type": "bakery" }),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    app.set_plan(&business_id, "growth").await;
    let r = app
        .post(
            "/v1/channels",
            Some(&owner),
            json!({ "company_id": company, "platform": "telegram", "account_name": "@acme",
                    "config": { "greeting": "héllo", "n": 3 } }),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(
        app.channel(&owner, &company, "email").await.status,
        StatusCode::CREATED
    );
    let business: Uuid = business_id.parse().unwrap();
    let now = Utc::now();
    // Every optional channel column set on one row, NULL on the others.
    let telegram = entity::channel::Entity::find()
        .filter(entity::channel::Column::Platform.eq(entity::enums::Platform::Telegram))
        .one(&state.db)
        .await
        .unwrap()
        .unwrap();
    let mut suspended = telegram.into_active_model();
    suspended.status = Set(entity::enums::ChannelStatus::Suspended);
    suspended.suspended_from = Set(Some(entity::enums::ChannelStatus::Connected));
    suspended.suspended_reason = Set(Some("plan_limit".into()));
    suspended.account_id = Set(Some("7012345678".into()));
    suspended.last_error = Set(Some("Unauthorized: bot token revoked".into()));
    suspended.error_count = Set(i32::MAX);
    suspended.update(&state.db).await.unwrap();

    use entity::*;
    same_rows!(state, company::Entity, company::Column::Id);
    same_rows!(state, channel::Entity, channel::Column::Id);

    // Filters bind each kind of value as sqlx stores it.
    let filters = [
        company::Entity::find().filter(company::Column::BusinessId.eq(business)),
        company::Entity::find().filter(company::Column::Kind.eq(enums::CompanyKind::Service)),
        company::Entity::find().filter(company::Column::CreatedAt.lte(Utc::now())),
        company::Entity::find().filter(company::Column::CreatedAt.gt(now - Duration::hours(1))),
        company::Entity::find().filter(company::Column::ShopType.is_null()),
        company::Entity::find().filter(company::Column::Code.eq("COMP002")),
    ];
    for select in filters {
        let select = select.order_by_asc(company::Column::Id);
        let expected = select.clone().all(&state.db).await.unwrap();
        assert!(!expected.is_empty());
        assert_eq!(state.read.all(select).await.unwrap(), expected);
    }
    let channels = [
        channel::Entity::find().filter(channel::Column::ErrorCount.eq(i32::MAX)),
        channel::Entity::find().filter(channel::Column::ErrorCount.lt(i64::MAX)),
        channel::Entity::find().filter(sea_orm::sea_query::ExprTrait::eq(Expr::val(true), true)),
        channel::Entity::find()
            .filter(channel::Column::SuspendedFrom.eq(Some(enums::ChannelStatus::Connected))),
    ];
    for select in channels {
        let select = select.order_by_asc(channel::Column::Id);
        let expected = select.clone().all(&state.db).await.unwrap();
        assert!(!expected.is_empty());
        assert_eq!(state.read.all(select).await.unwrap(), expected);
    }

    // `one` is the first row or none; a miss is `None`, not an error.
    let first = company::Entity::find()
        .filter(company::Column::BusinessId.eq(business))
        .order_by_asc(company::Column::Code);
    assert_eq!(
        state.read.one(first).await.unwrap().unwrap().code,
        "COMP001"
    );
    let missing = company::Entity::find_by_id(Uuid::now_v7());
    assert_eq!(state.read.one(missing).await.unwrap(), None);
    let page = company::Entity::find().limit(1);
    assert_eq!(state.read.all(page).await.unwrap().len(), 1);

    // A statement must select the model's columns in the entity's order.
    if postgres_url().is_none() {
        use sea_orm::Iterable;
        let reversed = channel::Entity::find().select_only().columns(
            channel::Column::iter()
                .collect::<Vec<_>>()
                .into_iter()
                .rev(),
        );
        let err = state.read.all(reversed).await.unwrap_err();
        assert!(err.to_string().contains("whole models"), "{err}");
        let fewer = company::Entity::find()
            .select_only()
            .column(company::Column::Id);
        assert!(state.read.all(fewer).await.is_err());
    }

    // Shaped reads keep a statement's text and bind the call's values; the
    // values must be the statement's, and a shape holds one text.
    let shape = Shape::new();
    let by_business = || {
        company::Entity::find()
            .filter(company::Column::BusinessId.eq(business))
            .order_by_asc(company::Column::Id)
    };
    let expected = by_business().all(&state.db).await.unwrap();
    for _ in 0..2 {
        let read = state
            .read
            .all_shaped(&shape, vec![Value::from(business)], by_business)
            .await
            .unwrap();
        assert_eq!(read, expected);
    }
    if postgres_url().is_none() {
        let wrong_values = state
            .read
            .all_shaped(&shape, vec![Value::from(Uuid::now_v7())], by_business)
            .await;
        assert!(wrong_values.is_err(), "values that are not the statement's");
        let by_code = || company::Entity::find().filter(company::Column::Code.eq("COMP001"));
        let other_text = state
            .read
            .all_shaped(&shape, vec![Value::from("COMP001")], by_code)
            .await;
        assert!(other_text.is_err(), "two statements in one shape");
    }

    // A page needs a shape for each combination of filters and cursor.
    let too_few = [Shape::new(), Shape::new()];
    let page = state
        .read
        .page::<company::Entity, 1>(
            &too_few,
            (company::Column::BusinessId, Value::from(business)),
            [(company::Column::Code, None)],
            company::Column::Id,
            None,
            10,
        )
        .await;
    assert!(page.unwrap_err().to_string().contains("needs 4 shapes"));

    // Every shape of the companies list: status and cursor together too.
    let first = app
        .get("/v1/companies?status=active&limit=1", Some(&owner))
        .await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text);
    assert_eq!(first.body["items"][0]["name"], "Acme");
    let cursor = first.body["next_cursor"].as_str().unwrap();
    let second = app
        .get(
            &format!("/v1/companies?status=active&limit=1&cursor={cursor}"),
            Some(&owner),
        )
        .await;
    assert_eq!(second.body["items"][0]["name"], "Beta", "{}", second.text);
    assert!(second.body["next_cursor"].is_null());
}

/// The read path hides no commit: not one made through the server's pool,
/// not one made by another connection to the file (as another process
/// would), not one made after a checkpoint reset the WAL. And it holds no
/// snapshot between reads: right after a read, a checkpoint can reset the
/// WAL at once.
#[tokio::test]
async fn sqlite_reads_see_every_commit_and_hold_nothing_between_reads() {
    use std::time::Duration;

    if postgres_url().is_some() {
        return; // PostgreSQL reads through its pool.
    }
    // No background writes meanwhile: the job runner looks for due tasks
    // only when woken (the emails of sign-up wake it).
    let dir = tempfile::tempdir().unwrap();
    let mut config = crate::common::test_config(dir.path()).await;
    config.jobs.poll_ms = 600_000;
    let app = TestApp::spawn_with(dir, config).await;
    let state = &app.app.state;
    let owner = app.owner(&email("kept"), "Kept Co").await;
    let business: Uuid = app.business_id(&owner).await.parse().unwrap();
    let names = || async {
        let select = company::Entity::find()
            .filter(company::Column::BusinessId.eq(business))
            .order_by_asc(company::Column::Code);
        let rows = state.read.all(select).await.unwrap();
        rows.into_iter().map(|c| c.name).collect::<Vec<_>>()
    };
    use entity::company;

    // Commits through the server, each read right after it.
    for i in 0..10 {
        app.company(&owner, &format!("C{i}")).await;
        assert_eq!(names().await.len(), i + 1);
    }
    // Commits of another connection.
    let db = app.dir.path().join("switchboard.db");
    let other = rusqlite::Connection::open(&db).unwrap();
    other.busy_timeout(Duration::from_secs(5)).unwrap();
    let rename = |name: &str| {
        other
            .execute(
                "UPDATE companies SET name = ?1 WHERE business_id = ?2 AND code = 'COMP001'",
                rusqlite::params![name, business.as_bytes().as_slice()],
            )
            .unwrap()
    };
    for i in 0..10 {
        assert_eq!(rename(&format!("renamed {i}")), 1);
        assert_eq!(names().await[0], format!("renamed {i}"));
    }

    // Right after a read, nothing of the read path holds the WAL: a
    // TRUNCATE checkpoint that waits for no one completes at once.
    tokio::time::sleep(Duration::from_millis(300)).await; // the last emails' tasks settle
    assert_eq!(names().await[0], "renamed 9");
    other.busy_timeout(Duration::ZERO).unwrap();
    let (busy, wal_frames): (i64, i64) = other
        .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert_eq!(busy, 0, "no read transaction outlives its read");
    assert_eq!(wal_frames, 0, "TRUNCATE leaves an empty WAL");
    other.busy_timeout(Duration::from_secs(5)).unwrap();

    // Commits into the reset WAL are seen, from either side.
    rename("after reset");
    assert_eq!(names().await[0], "after reset");
    app.company(&owner, "Last").await;
    assert_eq!(names().await.last().unwrap(), "Last");
}
