//! Health of connected channels: a recurring task ([`Probe`], every
//! `channels.health_interval_secs`) asks each connected (or failing)
//! channel how it is, and classifies what is wrong ([`Problem`]):
//! WhatsApp channels by their WAHA session's status ([`classify`]),
//! Telegram bots by `getMe` and `getWebhookInfo` ([`classify_bot`]: the
//! webhook must point at n8n, and Telegram must not have failed to deliver
//! to it since the last round).
//!
//! - A failed probe counts (`error_count`, `last_error` = the problem);
//!   `channels.failures_before_error` failures in a row put a `connected`
//!   channel in `error`, with one `channel.status_changed` event and one
//!   email to the owner.
//! - A healthy probe resets the count; a channel in `error` comes back to
//!   `connected`, again with one event and one email.
//! - A session that is starting says nothing either way. Channels that are
//!   connecting, disconnected or suspended are not probed.
//!
//! `POST /v1/channels/{id}/reconnect` starts a failing channel over.

use chrono::Utc;
use entity::channel;
use entity::channel_connection as connection;
use entity::enums::{ChannelStatus, Platform};
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, Set};
use serde::{Deserialize, Serialize};

use super::telegram::{self, Telegram};
use super::whatsapp::{self, WhatsApp};
use crate::error::{Error, Result};
use crate::integrations::telegram::{CallError, WebhookInfo};
use crate::integrations::waha::Session;
use crate::jobs::queue::{Task, kind as job_kind};
use crate::mail::Mailer;

/// What a failed probe found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Problem {
    /// The account's login is gone (WhatsApp: the session waits for a new
    /// scan: the device was unlinked on the phone).
    AuthRevoked,
    /// The platform asks us to slow down (HTTP 429).
    RateLimited,
    /// The platform could not be reached, or its session failed.
    Unreachable,
    /// Our side of the connection is wrong: the session is missing or
    /// stopped, or the platform refuses our credentials.
    Misconfigured,
}

impl Problem {
    /// The stored (`last_error`) and event form.
    pub fn as_str(self) -> &'static str {
        match self {
            Problem::AuthRevoked => "auth_revoked",
            Problem::RateLimited => "rate_limited",
            Problem::Unreachable => "unreachable",
            Problem::Misconfigured => "misconfigured",
        }
    }
}

/// Probe every connected channel (recurring; no payload).
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Probe;

impl Task for Probe {
    const KIND: &'static str = job_kind::CHANNELS_HEALTH;
}

/// What a WAHA answer about a session means: healthy (`Ok(Some(()))`), a
/// problem, or nothing to conclude (`Ok(None)`: the session is starting).
pub fn classify(
    answer: std::result::Result<Option<Session>, Error>,
) -> std::result::Result<Option<()>, Problem> {
    match answer {
        Ok(None) => Err(Problem::Misconfigured),
        Ok(Some(s)) => match s.status.as_str() {
            "WORKING" => Ok(Some(())),
            "SCAN_QR_CODE" => Err(Problem::AuthRevoked),
            "FAILED" => Err(Problem::Unreachable),
            "STOPPED" => Err(Problem::Misconfigured),
            _ => Ok(None),
        },
        Err(e) if e.code() == "whatsapp_error" => {
            match e.extension("waha_status").and_then(|v| v.as_u64()) {
                Some(429) => Err(Problem::RateLimited),
                Some(401 | 403) => Err(Problem::Misconfigured),
                _ => Err(Problem::Unreachable),
            }
        }
        Err(_) => Err(Problem::Unreachable),
    }
}

/// What a round of probes found.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Round {
    /// Channels probed.
    pub probed: u32,
    /// Healthy.
    pub healthy: u32,
    /// Failing.
    pub failing: u32,
}

/// What Telegram's answers about a bot mean: `get_me` for the token,
/// `webhook` for where its updates go. Healthy when the token works, the
/// webhook is under `webhook_prefix` (n8n's) and Telegram has not failed
/// to deliver there since `since` (Unix seconds).
pub fn classify_bot(
    get_me: std::result::Result<(), CallError>,
    webhook: Option<std::result::Result<WebhookInfo, CallError>>,
    webhook_prefix: &str,
    since: i64,
) -> std::result::Result<(), Problem> {
    let call = |e: CallError| match e {
        CallError::Unauthorized(_) => Problem::AuthRevoked,
        CallError::RateLimited(_) => Problem::RateLimited,
        CallError::Unreachable(_) => Problem::Unreachable,
        CallError::Refused(..) => Problem::Misconfigured,
    };
    get_me.map_err(call)?;
    let info = webhook.ok_or(Problem::Misconfigured)?.map_err(call)?;
    if !info.url.starts_with(webhook_prefix) {
        return Err(Problem::Misconfigured);
    }
    if info.last_error_date.is_some_and(|at| at >= since) {
        return Err(Problem::Unreachable);
    }
    Ok(())
}

/// Probes every connected channel that is `connected` or in `error`:
/// WhatsApp ones when WAHA is configured, Telegram ones when n8n is;
/// `threshold` failures in a row put one in `error`. `interval` is the
/// time between rounds (a webhook failure older than that was seen
/// already).
pub async fn probe_all(
    w: WhatsApp<'_>,
    t: Telegram<'_>,
    mailer: &Mailer,
    threshold: u32,
    interval: std::time::Duration,
) -> Result<Round> {
    let mut round = Round::default();
    let mut providers = Vec::new();
    if w.waha.is_some() {
        providers.push(whatsapp::PROVIDER);
    }
    if t.n8n.is_some() {
        providers.push(telegram::PROVIDER);
    }
    if providers.is_empty() {
        return Ok(round);
    }
    let connections = connection::Entity::find()
        .filter(connection::Column::Provider.is_in(providers))
        .all(w.db)
        .await?;
    // The channels worth probing, in one read.
    let probed: std::collections::HashMap<_, _> = channel::Entity::find()
        .filter(channel::Column::Id.is_in(connections.iter().map(|c| c.channel_id)))
        .filter(channel::Column::Status.is_in([ChannelStatus::Connected, ChannelStatus::Error]))
        .all(w.db)
        .await?
        .into_iter()
        .map(|c| (c.id, c))
        .collect();
    let since = Utc::now().timestamp() - i64::try_from(interval.as_secs()).unwrap_or(i64::MAX);
    for conn in connections {
        let Some(c) = probed.get(&conn.channel_id) else {
            continue;
        };
        let verdict = if conn.provider == whatsapp::PROVIDER {
            let Some(waha) = w.waha else { continue };
            match classify(waha.session(&conn.external_id).await) {
                Ok(None) => continue,
                Ok(Some(())) => None,
                Err(problem) => Some(problem),
            }
        } else {
            probe_bot(t, c, since).await?.err()
        };
        round.probed += 1;
        if verdict.is_some() {
            round.failing += 1;
        } else {
            round.healthy += 1;
        }
        record(w.db, mailer, threshold, c, verdict).await?;
    }
    Ok(round)
}

/// One Telegram bot's probe.
async fn probe_bot(
    t: Telegram<'_>,
    c: &channel::Model,
    since: i64,
) -> Result<std::result::Result<(), Problem>> {
    let Some(n8n) = t.n8n else {
        return Ok(Ok(()));
    };
    let Some(token) = telegram::token(t, c.business_id, c.id).await? else {
        return Ok(Err(Problem::Misconfigured));
    };
    let me = t.api.get_me(&token).await.map(|_| ());
    let webhook = match me {
        Ok(()) => Some(t.api.webhook_info(&token).await),
        Err(_) => None,
    };
    Ok(classify_bot(
        me,
        webhook,
        &format!("{}/webhook/", n8n.webhook_base()),
        since,
    ))
}

/// Writes one probe's verdict on channel `c` (read again in the
/// transaction: a webhook may have moved it meanwhile).
async fn record(
    db: &sea_orm::DatabaseConnection,
    mailer: &Mailer,
    threshold: u32,
    c: &channel::Model,
    verdict: Option<Problem>,
) -> Result<()> {
    let txn = crate::db::begin_write(db).await?;
    let Some(c) = channel::Entity::find_by_id(c.id)
        .filter(channel::Column::BusinessId.eq(c.business_id))
        .one(&txn)
        .await?
        .filter(|c| matches!(c.status, ChannelStatus::Connected | ChannelStatus::Error))
    else {
        return Ok(());
    };
    let from = c.status;
    let mut active: channel::ActiveModel = c.clone().into();
    let mail = match verdict {
        None => {
            if c.error_count == 0 && from == ChannelStatus::Connected {
                return Ok(());
            }
            active.error_count = Set(0);
            active.last_error = Set(None);
            active.status = Set(ChannelStatus::Connected);
            (from == ChannelStatus::Error).then(|| {
                crate::mail::templates::channel_recovered(platform_name(c.platform), &account(&c))
            })
        }
        Some(problem) => {
            let count = c.error_count.saturating_add(1);
            active.error_count = Set(count);
            active.last_error = Set(Some(problem.as_str().to_owned()));
            let failing = u32::try_from(count).unwrap_or(u32::MAX) >= threshold;
            if failing {
                active.status = Set(ChannelStatus::Error);
            }
            (failing && from == ChannelStatus::Connected).then(|| {
                crate::mail::templates::channel_needs_attention(
                    platform_name(c.platform),
                    &account(&c),
                    problem.as_str(),
                )
            })
        }
    };
    active.updated_at = Set(Utc::now());
    let c = active.update(&txn).await?;
    let reason = verdict.map_or("recovered", Problem::as_str);
    super::status_changed(&txn, &c, from, Some(reason)).await?;
    if let Some(message) = mail
        && let Some(b) = entity::business::Entity::find_by_id(c.business_id)
            .one(&txn)
            .await?
        && let Some(owner) = entity::user::Entity::find_by_id(b.owner_id)
            .one(&txn)
            .await?
    {
        mailer.enqueue(&txn, &owner.email, message).await?;
    }
    txn.commit().await?;
    Ok(())
}

fn platform_name(p: Platform) -> &'static str {
    match p {
        Platform::Whatsapp => "WhatsApp",
        Platform::Telegram => "Telegram",
        Platform::Instagram => "Instagram",
        Platform::Facebook => "Facebook",
        Platform::Email => "email",
        Platform::Tiktok => "TikTok",
    }
}

fn account(c: &channel::Model) -> String {
    c.account_name
        .clone()
        .or_else(|| c.account_id.clone())
        .unwrap_or_else(|| c.id.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::StatusCode;

    fn session(status: &str) -> Session {
        Session {
            name: "sb_x".into(),
            status: status.into(),
            me: None,
        }
    }

    fn refused(status: u16) -> Error {
        Error::new(StatusCode::BAD_GATEWAY, "whatsapp_error", "refused").with("waha_status", status)
    }

    #[test]
    fn answers_are_classified_as_the_issue_names_them() {
        assert_eq!(classify(Ok(Some(session("WORKING")))), Ok(Some(())));
        assert_eq!(classify(Ok(Some(session("STARTING")))), Ok(None));
        assert_eq!(
            classify(Ok(Some(session("SCAN_QR_CODE")))),
            Err(Problem::AuthRevoked)
        );
        assert_eq!(
            classify(Ok(Some(session("FAILED")))),
            Err(Problem::Unreachable)
        );
        assert_eq!(
            classify(Ok(Some(session("STOPPED")))),
            Err(Problem::Misconfigured)
        );
        assert_eq!(classify(Ok(None)), Err(Problem::Misconfigured));
        assert_eq!(classify(Err(refused(429))), Err(Problem::RateLimited));
        assert_eq!(classify(Err(refused(401))), Err(Problem::Misconfigured));
        assert_eq!(classify(Err(refused(500))), Err(Problem::Unreachable));
        let down = Error::new(StatusCode::BAD_GATEWAY, "whatsapp_unreachable", "down");
        assert_eq!(classify(Err(down)), Err(Problem::Unreachable));
    }

    fn hook(url: &str, last_error_date: Option<i64>) -> WebhookInfo {
        WebhookInfo {
            url: url.into(),
            pending_update_count: 0,
            last_error_date,
            last_error_message: None,
        }
    }

    #[test]
    fn bots_are_classified_as_the_issue_names_them() {
        let n8n = "http://n8n/webhook/";
        let ok = || Some(Ok(hook("http://n8n/webhook/abc/webhook", None)));
        assert_eq!(classify_bot(Ok(()), ok(), n8n, 100), Ok(()));
        assert_eq!(
            classify_bot(Err(CallError::Unauthorized("x".into())), None, n8n, 100),
            Err(Problem::AuthRevoked)
        );
        assert_eq!(
            classify_bot(Err(CallError::RateLimited(Some(3))), None, n8n, 100),
            Err(Problem::RateLimited)
        );
        assert_eq!(
            classify_bot(Err(CallError::Unreachable("x".into())), None, n8n, 100),
            Err(Problem::Unreachable)
        );
        assert_eq!(
            classify_bot(Ok(()), Some(Ok(hook("", None))), n8n, 100),
            Err(Problem::Misconfigured),
            "no webhook"
        );
        assert_eq!(
            classify_bot(
                Ok(()),
                Some(Ok(hook("https://elsewhere/x", None))),
                n8n,
                100
            ),
            Err(Problem::Misconfigured)
        );
        assert_eq!(
            classify_bot(
                Ok(()),
                Some(Ok(hook("http://n8n/webhook/a/webhook", Some(150)))),
                n8n,
                100
            ),
            Err(Problem::Unreachable),
            "a delivery failed since the last round"
        );
        assert_eq!(
            classify_bot(
                Ok(()),
                Some(Ok(hook("http://n8n/webhook/a/webhook", Some(50)))),
                n8n,
                100
            ),
            Ok(()),
            "an old failure was counted already"
        );
    }
}
