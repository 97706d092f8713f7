//! Telegram bot channels, against the local Bot API server
//! (`telegram_fake.rs`) and a real n8n (`scripts/n8n-local.sh`): connect
//! checks the token, provisions the business's own copy of the ingress
//! workflow whose Telegram Trigger sets the bot's webhook on the Bot API
//! server, an update posted to n8n runs it; suspension deactivates it;
//! disconnect removes everything.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a panic is a failed test

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use serde_json::{Value, json};

use crate::common::{N8n, TestApp, email, n8n, test_config};
use crate::telegram_fake::FakeTelegram;

async fn wait_for<T>(what: &str, mut f: impl AsyncFnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A Telegram ingress template in n8n: a Telegram Trigger (v1.2: it checks
/// the secret token) and a node after it, with no credential yet.
async fn template(n8n: &N8n) -> String {
    n8n.create_workflow(json!({
        "name": format!("Telegram ingress template {}", uuid::Uuid::new_v4()),
        "nodes": [
            {"id": uuid::Uuid::new_v4(), "name": "Telegram Trigger",
             "type": "n8n-nodes-base.telegramTrigger", "typeVersion": 1.2,
             "position": [0, 0], "webhookId": uuid::Uuid::new_v4(),
             "parameters": {"updates": ["message"], "additionalFields": {}}},
            {"id": uuid::Uuid::new_v4(), "name": "Answer",
             "type": "n8n-nodes-base.noOp", "typeVersion": 1,
             "position": [220, 0], "parameters": {}}
        ],
        "connections": {"Telegram Trigger": {"main": [[{"node": "Answer", "type": "main", "index": 0}]]}},
        "settings": {"executionOrder": "v1"}
    }))
    .await
}

async fn app_with(telegram: &FakeTelegram, n8n: Option<(&N8n, String)>) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path()).await;
    config.telegram.api_base = telegram.url.clone();
    config.telegram.timeout_secs = 5;
    config.n8n = n8n.map(|(n, template)| n.config(Some(template)));
    config.jobs.poll_ms = 20;
    TestApp::spawn_with(dir, config).await
}

async fn telegram_channel(app: &TestApp, owner: &str) -> String {
    let company = app.company(owner, "Acme").await;
    let r = app.channel(owner, &company, "telegram").await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    r.body["id"].as_str().unwrap().to_owned()
}

async fn channel(app: &TestApp, owner: &str, id: &str) -> Value {
    let r = app.get(&format!("/v1/channels/{id}"), Some(owner)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r.body
}

async fn connect(app: &TestApp, owner: &str, id: &str, token: &str) -> crate::common::Resp {
    app.post(
        &format!("/v1/channels/{id}/connect"),
        Some(owner),
        json!({ "bot_token": token }),
    )
    .await
}

/// The n8n objects Switchboard recorded for channel `id`.
async fn objects(app: &TestApp, id: &str) -> Vec<entity::n8n_object::Model> {
    entity::n8n_object::Entity::find()
        .filter(entity::n8n_object::Column::ChannelId.eq(id.parse::<uuid::Uuid>().unwrap()))
        .all(&app.app.state.db)
        .await
        .unwrap()
}

async fn workflow_id(app: &TestApp, id: &str) -> String {
    objects(app, id)
        .await
        .into_iter()
        .find(|o| o.kind == "workflow")
        .expect("a recorded workflow")
        .n8n_id
}

async fn secrets_of(app: &TestApp, business: &str) -> u64 {
    entity::secret::Entity::find()
        .filter(entity::secret::Column::BusinessId.eq(business.parse::<uuid::Uuid>().unwrap()))
        .filter(entity::secret::Column::Provider.eq("telegram"))
        .count(&app.app.state.db)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_telegram_bot_connects_through_its_own_n8n_workflow_and_disconnects_cleanly() {
    let Some(n8n) = n8n() else { return };
    let telegram = FakeTelegram::start().await;
    let template_id = template(&n8n).await;
    let app = app_with(&telegram, Some((&n8n, template_id.clone()))).await;
    let owner = app.owner(&email("tg"), "Bots").await;
    let business = app.business_id(&owner).await;
    let id = telegram_channel(&app, &owner).await;

    // A token Telegram refuses: 422, nothing kept, nothing made in n8n.
    let stranger = format!("{}:{}", 123_456_789, "A".repeat(35));
    let r = connect(&app, &owner, &id, &stranger).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::UNPROCESSABLE_ENTITY, "telegram_token_invalid"),
        "{}",
        r.text
    );
    assert_eq!(secrets_of(&app, &business).await, 0);
    assert!(objects(&app, &id).await.is_empty());
    assert_eq!(channel(&app, &owner, &id).await["status"], "disconnected");

    let token = telegram.add_bot("acme_support_bot");
    let bot = telegram.bot(&token);
    let r = connect(&app, &owner, &id, &token).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    assert_eq!(r.body["channel"]["status"], "connecting");
    assert_eq!(r.body["channel"]["account_name"], "acme_support_bot");
    assert_eq!(r.body["channel"]["account_id"], bot.id.to_string());
    assert!(r.body["connect_page"].is_null());
    assert!(!r.text.contains(&token), "the token is never echoed");

    let c = wait_for("the channel connected", async || {
        let c = channel(&app, &owner, &id).await;
        (c["status"] == "connected").then_some(c)
    })
    .await;
    assert_eq!(c["account_name"], "acme_support_bot");

    // n8n set the bot's webhook itself, on activation, at its own URL.
    let hook = telegram.bot(&token).webhook.expect("n8n set the webhook");
    assert!(
        hook.url
            .starts_with(&format!("{}/webhook/", n8n.webhook_base)),
        "{}",
        hook.url
    );
    let secret = hook.secret_token.clone().expect("a secret token");
    let calls = telegram.calls(bot.id);
    assert!(calls.contains(&"setWebhook".to_owned()), "{calls:?}");
    assert!(calls.contains(&"getWebhookInfo".to_owned()), "{calls:?}");

    // The copy: active, tagged with the business, this bot's credential,
    // fresh webhook id, the tenant's ids in its static data.
    let recorded = objects(&app, &id).await;
    assert_eq!(recorded.len(), 2, "{recorded:?}");
    let credential = recorded
        .iter()
        .find(|o| o.kind == "credential")
        .unwrap()
        .n8n_id
        .clone();
    let wf_id = workflow_id(&app, &id).await;
    assert_ne!(wf_id, template_id);
    let wf = n8n.workflow(&wf_id).await.unwrap();
    assert_eq!(wf["active"], true, "{wf}");
    let trigger = wf["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["type"] == "n8n-nodes-base.telegramTrigger")
        .unwrap();
    assert_eq!(trigger["credentials"]["telegramApi"]["id"], credential);
    let template = n8n.workflow(&template_id).await.unwrap();
    assert_ne!(trigger["webhookId"], template["nodes"][0]["webhookId"]);
    assert!(hook.url.contains(trigger["webhookId"].as_str().unwrap()));
    let tags: Vec<&str> = wf["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        tags,
        [switchboard::integrations::n8n::business_tag(
            business.parse().unwrap()
        )]
    );
    let static_data = if wf["staticData"].is_string() {
        serde_json::from_str::<Value>(wf["staticData"].as_str().unwrap()).unwrap()
    } else {
        wf["staticData"].clone()
    };
    assert_eq!(static_data["switchboard"]["business_id"], business, "{wf}");
    assert_eq!(static_data["switchboard"]["channel_id"], id);

    // A customer writes to the bot: Telegram posts the update to n8n with
    // the secret; the workflow runs. A wrong secret gets 403.
    let http = reqwest::Client::new();
    let update = json!({"update_id": 1001, "message": {"message_id": 1, "date": 1_796_000_000,
        "chat": {"id": 42, "type": "private"}, "from": {"id": 42, "is_bot": false, "first_name": "Ann"},
        "text": "Do you deliver?"}});
    let wrong = http
        .post(&hook.url)
        .header("X-Telegram-Bot-Api-Secret-Token", "not-the-secret")
        .json(&update)
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::FORBIDDEN);
    let res = http
        .post(&hook.url)
        .header("X-Telegram-Bot-Api-Secret-Token", &secret)
        .json(&update)
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        StatusCode::OK,
        "{}",
        res.text().await.unwrap()
    );
    let run = wait_for("the workflow's execution", async || {
        n8n.executions(&wf_id)
            .await
            .into_iter()
            .find(|e| e["finished"] == true || e["status"] == "success")
    })
    .await;
    assert_eq!(run["status"], "success", "{run}");

    // Connecting again with the same bot: the same connection, no copy.
    let r = connect(&app, &owner, &id, &token).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    assert_eq!(r.body["channel"]["status"], "connected");
    let name = switchboard::domain::channels::telegram::object_name(
        business.parse().unwrap(),
        id.parse().unwrap(),
    );
    assert_eq!(n8n.workflows_named(&name).await.len(), 1);

    // Disconnect: everything goes (workflow, credential, webhook, token).
    let r = app
        .post(
            &format!("/v1/channels/{id}/disconnect"),
            Some(&owner),
            json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["status"], "disconnected");
    wait_for("n8n's objects removed", async || {
        objects(&app, &id).await.is_empty().then_some(())
    })
    .await;
    assert!(n8n.workflow(&wf_id).await.is_none());
    let (status, _) = n8n
        .call(Method::DELETE, &format!("/credentials/{credential}"), None)
        .await;
    assert_eq!(status, 404, "the credential is gone");
    wait_for("the token destroyed", async || {
        (secrets_of(&app, &business).await == 0).then_some(())
    })
    .await;
    assert!(telegram.bot(&token).webhook.is_none());
    assert!(telegram.calls(bot.id).contains(&"deleteWebhook".to_owned()));
    // Again: the same answer, nothing else to do.
    let r = app
        .post(
            &format!("/v1/channels/{id}/disconnect"),
            Some(&owner),
            json!({}),
        )
        .await;
    assert_eq!(
        (r.status, &r.body["status"]),
        (StatusCode::OK, &json!("disconnected"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_suspended_bots_workflow_is_deactivated_and_active_again_on_restore() {
    let Some(n8n) = n8n() else { return };
    let telegram = FakeTelegram::start().await;
    let app = app_with(&telegram, Some((&n8n, template(&n8n).await))).await;
    let owner = app.owner(&email("tgsusp"), "Susp").await;
    let business = app.business_id(&owner).await;
    app.set_plan(&business, "enterprise").await;
    let company = app.company(&owner, "Shop").await;
    let mut ids = Vec::new();
    for _ in 0..2 {
        let r = app.channel(&owner, &company, "telegram").await;
        ids.push(r.body["id"].as_str().unwrap().to_owned());
    }
    let mut tokens = Vec::new();
    for (n, id) in ids.iter().enumerate() {
        let token = telegram.add_bot(&format!("shop{n}_bot"));
        let r = connect(&app, &owner, id, &token).await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
        tokens.push(token);
    }
    for id in &ids {
        wait_for("connected", async || {
            (channel(&app, &owner, id).await["status"] == "connected").then_some(())
        })
        .await;
    }
    let newest = workflow_id(&app, &ids[1]).await;
    let oldest = workflow_id(&app, &ids[0]).await;

    // Down to one channel: the newest is suspended, its workflow off (and
    // n8n takes the bot's webhook down with it).
    app.set_plan(&business, "single").await;
    crate::whatsapp::settle(&app, &business).await;
    assert_eq!(channel(&app, &owner, &ids[1]).await["status"], "suspended");
    wait_for("the workflow deactivated", async || {
        (n8n.workflow(&newest).await.unwrap()["active"] == false).then_some(())
    })
    .await;
    assert_eq!(n8n.workflow(&oldest).await.unwrap()["active"], true);
    wait_for("the webhook removed by n8n", async || {
        telegram.bot(&tokens[1]).webhook.is_none().then_some(())
    })
    .await;
    let r = connect(&app, &owner, &ids[1], &tokens[1]).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::PAYMENT_REQUIRED, "channel_suspended")
    );

    // Restored: active again, the webhook set again.
    app.set_plan(&business, "enterprise").await;
    crate::whatsapp::settle(&app, &business).await;
    wait_for("the workflow active again", async || {
        (n8n.workflow(&newest).await.unwrap()["active"] == true).then_some(())
    })
    .await;
    wait_for("the webhook set again", async || {
        telegram.bot(&tokens[1]).webhook.is_some().then_some(())
    })
    .await;
    assert_eq!(channel(&app, &owner, &ids[1]).await["status"], "connected");

    // Deleting a channel removes its bot from n8n too.
    let r = app
        .call(
            Method::DELETE,
            &format!("/v1/channels/{}", ids[1]),
            Some(&owner),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    wait_for("n8n's objects removed", async || {
        objects(&app, &ids[1]).await.is_empty().then_some(())
    })
    .await;
    assert!(n8n.workflow(&newest).await.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_token_puts_the_channel_in_error_with_what_to_do() {
    let Some(n8n) = n8n() else { return };
    let telegram = FakeTelegram::start().await;
    // A template n8n does not have: provisioning retries, so the token
    // can be revoked before it finishes.
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path()).await;
    config.telegram.api_base = telegram.url.clone();
    config.n8n = Some(n8n.config(Some("missingTemplate1".into())));
    config.jobs.poll_ms = 20;
    let app = TestApp::spawn_with(dir, config).await;
    let owner = app.owner(&email("tgrev"), "Rev").await;
    let id = telegram_channel(&app, &owner).await;
    let token = telegram.add_bot("revoked_bot");
    let r = connect(&app, &owner, &id, &token).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    // The owner sees why it is not connected yet.
    let c = wait_for("a first failed attempt noted", async || {
        let c = channel(&app, &owner, &id).await;
        c["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("retried"))
            .then_some(c)
    })
    .await;
    assert_eq!(c["status"], "connecting");
    telegram.revoke(&token);
    // The next attempt finds the token refused: the channel says so.
    let c = wait_for("the channel in error", async || {
        let c = channel(&app, &owner, &id).await;
        (c["status"] == "error").then_some(c)
    })
    .await;
    assert!(
        c["last_error"].as_str().unwrap().contains("new token"),
        "{c}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connecting_a_bot_is_refused_where_it_cannot_work() {
    let telegram = FakeTelegram::start().await;
    // No n8n: 503 with what to configure, before Telegram is called.
    let app = app_with(&telegram, None).await;
    let owner = app.owner(&email("tgbad"), "Bad").await;
    let id = telegram_channel(&app, &owner).await;
    let token = telegram.add_bot("nowhere_bot");
    let r = connect(&app, &owner, &id, &token).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::SERVICE_UNAVAILABLE, "automation_unavailable"),
        "{}",
        r.text
    );
    assert!(telegram.calls(telegram.bot(&token).id).is_empty());

    // With n8n configured (nothing reaches it in these cases).
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path()).await;
    config.telegram.api_base = telegram.url.clone();
    config.n8n = Some(switchboard::config::N8nConfig {
        base_url: "http://127.0.0.1:9".into(),
        api_key: secrecy::SecretString::from("unused"),
        webhook_base: None,
        telegram_template_id: Some("tpl".into()),
        whatsapp_workflow_id: None,
        timeout_secs: 1,
    });
    let app = TestApp::spawn_with(dir, config).await;
    let owner = app.owner(&email("tgbad2"), "Bad").await;
    app.set_plan(&app.business_id(&owner).await, "enterprise")
        .await;
    let id = telegram_channel(&app, &owner).await;
    let company = app.company(&owner, "Other").await;
    let wa = app.channel(&owner, &company, "whatsapp").await.body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let url = format!("/v1/channels/{id}/connect");
    let cases: Vec<(&str, Option<Value>, u16, &str)> = vec![
        ("no body", None, 422, "validation_failed"),
        ("no token", Some(json!({})), 422, "validation_failed"),
        (
            "not a token",
            Some(json!({"bot_token": "hello"})),
            422,
            "validation_failed",
        ),
        (
            "a path in the token",
            Some(json!({"bot_token": format!("1:{}/../getMe", "A".repeat(30))})),
            422,
            "validation_failed",
        ),
        (
            "unknown field",
            Some(json!({"token": token})),
            422,
            "invalid_body",
        ),
        ("not an object", Some(json!([token])), 422, "invalid_body"),
    ];
    for (what, body, status, code) in cases {
        let r = match body {
            Some(b) => app.post(&url, Some(&owner), b).await,
            None => app.call(Method::POST, &url, Some(&owner), None).await,
        };
        assert_eq!(
            (r.status.as_u16(), r.code()),
            (status, code),
            "{what}: {}",
            r.text
        );
    }
    // A token on a WhatsApp channel; another business's channel.
    let r = connect(&app, &owner, &wa, &token).await;
    assert_eq!(
        (r.status.as_u16(), r.code()),
        (422, "validation_failed"),
        "{}",
        r.text
    );
    let other = app.owner(&email("tgother"), "Other").await;
    let r = connect(&app, &other, &id, &token).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    // Reconnecting a channel without a bot.
    let r = app
        .post(
            &format!("/v1/channels/{id}/reconnect"),
            Some(&owner),
            json!({}),
        )
        .await;
    assert_eq!(
        (r.status.as_u16(), r.code()),
        (409, "not_connected"),
        "{}",
        r.text
    );

    // One bot, one channel.
    let r = connect(&app, &owner, &id, &token).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    let second = app.channel(&owner, &company, "telegram").await.body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = connect(&app, &owner, &second, &token).await;
    assert_eq!(
        (r.status.as_u16(), r.code()),
        (409, "bot_already_connected"),
        "{}",
        r.text
    );
    // The first channel to another bot: disconnect first.
    let r = connect(&app, &owner, &id, &telegram.add_bot("another_bot")).await;
    assert_eq!(
        (r.status.as_u16(), r.code()),
        (409, "channel_already_connected"),
        "{}",
        r.text
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bot_whose_deliveries_fail_goes_to_error_once_and_recovers() {
    use switchboard::domain::channels::health;
    let Some(n8n) = n8n() else { return };
    let telegram = FakeTelegram::start().await;
    let app = app_with(&telegram, Some((&n8n, template(&n8n).await))).await;
    let mail = email("tghealth");
    let owner = app.owner(&mail, "Health").await;
    let id = telegram_channel(&app, &owner).await;
    let token = telegram.add_bot("healthy_bot");
    connect(&app, &owner, &id, &token).await;
    wait_for("connected", async || {
        (channel(&app, &owner, &id).await["status"] == "connected").then_some(())
    })
    .await;
    let state = &app.app.state;
    let probe = async || {
        health::probe_all(
            state.whatsapp(),
            state.telegram(),
            &state.mailer,
            2,
            Duration::from_secs(300),
        )
        .await
        .unwrap()
    };
    let r = probe().await;
    assert_eq!((r.probed, r.healthy), (1, 1));

    // Telegram cannot deliver to n8n: counted, then `error` with one email.
    telegram.fail_deliveries(&token, "Connection refused");
    probe().await;
    let c = channel(&app, &owner, &id).await;
    assert_eq!(
        (
            c["status"].as_str(),
            c["error_count"].as_i64(),
            c["last_error"].as_str()
        ),
        (Some("connected"), Some(1), Some("unreachable"))
    );
    probe().await;
    let c = channel(&app, &owner, &id).await;
    assert_eq!(
        (c["status"].as_str(), c["error_count"].as_i64()),
        (Some("error"), Some(2))
    );
    let last = app.last_message(&mail).await;
    assert!(last.subject.contains("needs attention"), "{}", last.subject);

    telegram.deliveries_work(&token);
    probe().await;
    let c = channel(&app, &owner, &id).await;
    assert_eq!(
        (c["status"].as_str(), c["error_count"].as_i64()),
        (Some("connected"), Some(0))
    );

    // The token revoked at @BotFather.
    telegram.revoke(&token);
    probe().await;
    let c = channel(&app, &owner, &id).await;
    assert_eq!(c["last_error"], "auth_revoked");
}
