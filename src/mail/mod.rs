//! Outgoing email. Messages are written to a durable outbox in the database,
//! inside the transaction of the change that causes them together with their
//! `email.deliver` task ([`crate::jobs::email`]), which the job runner
//! retries with backoff, so sending never blocks a request and no message is
//! lost across a restart.
//!
//! Bodies carry live one-time secrets (sign-in links, reset links, codes),
//! so they are never at rest in plaintext: each body is sealed under the
//! vault's keys (AES-256-GCM envelope bound to the message's row, see
//! [`crate::crypto`]) when queued, opened only to deliver, and erased once
//! the message is sent; a message that failed for good keeps it sealed (an
//! admin may retry it) and sent and failed rows alike are purged after
//! `outbox_retention_days` (`jobs::cleanup`). A copy of the database alone
//! therefore holds no usable link or code.
//!
//! Delivery goes through SMTP when `smtp_host` is configured (STARTTLS by
//! default; implicit TLS or plain for local servers). In development only,
//! without SMTP, emails are printed to the console and kept in an in-memory
//! dev mailbox that tests read; production refuses to start without SMTP.

pub mod templates;

use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use entity::email::outbox;
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Set};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use uuid::Uuid;
use zeroize::Zeroizing;

use crate::config::{Config, ConfigError, Environment, SmtpTls};
use crate::crypto::{Binding, CryptoError, Keyring, Sealed};
use crate::error::{Error, Result};
use crate::jobs::queue::{Queue, Task, kind};
pub use templates::Rendered;

/// One email as delivered by the console transport (dev mailbox). Its
/// `Debug` leaves the body out (it carries links and codes).
#[derive(Clone, PartialEq, Eq)]
pub struct Email {
    /// Recipient address.
    pub to: String,
    /// Subject line.
    pub subject: String,
    /// Plain-text body.
    pub text: String,
    /// When it was delivered.
    pub sent_at: DateTime<Utc>,
}

impl std::fmt::Debug for Email {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Email")
            .field("to", &self.to)
            .field("subject", &self.subject)
            .field("text", &"[redacted]")
            .field("sent_at", &self.sent_at)
            .finish()
    }
}

/// A body as sealed in the outbox.
#[derive(Serialize, Deserialize)]
struct Body {
    text: String,
    html: String,
}

/// What a message's body is bound to: its outbox row.
fn binding(id: Uuid) -> Binding<'static> {
    Binding {
        business_id: Uuid::nil(),
        secret_id: id,
        provider: "email_outbox",
        name: "body",
    }
}

/// The sealed body of `message`, if it still has one.
fn sealed_body(message: &outbox::Model) -> Option<Sealed> {
    Some(Sealed {
        ciphertext: message.body_ciphertext.clone()?,
        nonce: message.body_nonce.clone()?,
        wrapped_dek: message.body_wrapped_dek.clone()?,
        dek_nonce: message.body_dek_nonce.clone()?,
        key_id: message.body_key_id.clone()?,
        version: message.body_version?,
    })
}

/// A message's body for delivery: opened from its seal, or the plaintext of
/// a message queued before bodies were sealed. Zeroed when dropped.
pub struct Opened {
    /// Plain-text body.
    pub text: Zeroizing<String>,
    /// HTML body.
    pub html: Zeroizing<String>,
}

#[derive(Clone)]
enum Transport {
    Console,
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
}

/// The `email.deliver` task: deliver outbox message `email_id` (run by
/// [`crate::jobs::email`]).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct DeliverEmail {
    /// `email_outbox.id`.
    pub email_id: Uuid,
}

impl Task for DeliverEmail {
    const KIND: &'static str = kind::EMAIL_DELIVER;

    fn dedup_key(&self) -> Option<String> {
        Some(format!("{}:{}", Self::KIND, self.email_id))
    }
}

/// The mailer; cheap to clone.
#[derive(Clone)]
pub struct Mailer {
    transport: Transport,
    from: Mailbox,
    /// The dev mailbox: development without SMTP only.
    mailbox: Option<Arc<Mutex<Vec<Email>>>>,
    jobs: Queue,
    keyring: Arc<Keyring>,
}

impl Mailer {
    /// SMTP when `smtp_host` is set; otherwise, in development only, the
    /// console (production requires SMTP: [`Config::validate`]). Deliveries
    /// are queued on `jobs`; bodies are sealed under `keyring`.
    pub fn from_config(
        config: &Config,
        jobs: Queue,
        keyring: Arc<Keyring>,
    ) -> Result<Mailer, ConfigError> {
        let invalid = |key, message: String| ConfigError::Invalid { key, message };
        let from: Mailbox = config
            .smtp_from
            .parse()
            .map_err(|e| invalid("smtp_from", format!("not a mailbox: {e}")))?;
        let transport = match &config.smtp_host {
            None => Transport::Console,
            Some(host) => {
                let builder = match config.smtp_tls {
                    SmtpTls::Starttls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(host),
                    SmtpTls::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(host),
                    SmtpTls::None => Ok(AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(
                        host,
                    )),
                }
                .map_err(|e| invalid("smtp_host", e.to_string()))?
                .port(config.smtp_port)
                .timeout(Some(std::time::Duration::from_secs(20)));
                let builder = match (&config.smtp_username, &config.smtp_password) {
                    (Some(user), Some(pass)) => builder.credentials(Credentials::new(
                        user.clone(),
                        pass.expose_secret().to_owned(),
                    )),
                    _ => builder,
                };
                Transport::Smtp(builder.build())
            }
        };
        let mailbox = (matches!(transport, Transport::Console)
            && config.environment == Environment::Development)
            .then(Arc::default);
        Ok(Mailer {
            transport,
            from,
            mailbox,
            jobs,
            keyring,
        })
    }

    /// Queues `message` for `to` and its delivery task through `db` (pass
    /// the transaction of the change that causes it). Returns the outbox id.
    pub async fn enqueue<C: ConnectionTrait>(
        &self,
        db: &C,
        to: &str,
        message: Rendered,
    ) -> Result<Uuid> {
        let now = Utc::now();
        let id = Uuid::now_v7();
        let body = Zeroizing::new(
            serde_json::to_vec(&Body {
                text: message.text,
                html: message.html,
            })
            .map_err(Error::internal)?,
        );
        let sealed = self
            .keyring
            .seal(&binding(id), &body)
            .map_err(Error::internal)?;
        outbox::ActiveModel {
            id: Set(id),
            to_address: Set(to.to_owned()),
            template: Set(message.template.to_owned()),
            subject: Set(message.subject),
            text_body: Set(String::new()),
            html_body: Set(String::new()),
            status: Set("pending".into()),
            attempts: Set(0),
            last_error: Set(None),
            created_at: Set(now),
            sent_at: Set(None),
            body_ciphertext: Set(Some(sealed.ciphertext)),
            body_nonce: Set(Some(sealed.nonce)),
            body_wrapped_dek: Set(Some(sealed.wrapped_dek)),
            body_dek_nonce: Set(Some(sealed.dek_nonce)),
            body_key_id: Set(Some(sealed.key_id)),
            body_version: Set(Some(sealed.version)),
        }
        .insert(db)
        .await?;
        self.jobs
            .enqueue(db, &DeliverEmail { email_id: id })
            .await?;
        Ok(id)
    }

    /// The body of `message` for delivery; `Ok(None)` when it was erased
    /// (sent).
    pub fn open(&self, message: &outbox::Model) -> Result<Option<Opened>, CryptoError> {
        let Some(sealed) = sealed_body(message) else {
            if message.text_body.is_empty() && message.html_body.is_empty() {
                return Ok(None);
            }
            return Ok(Some(Opened {
                text: Zeroizing::new(message.text_body.clone()),
                html: Zeroizing::new(message.html_body.clone()),
            }));
        };
        let plaintext = self.keyring.open(&binding(message.id), &sealed)?;
        let body: Body = serde_json::from_slice(&plaintext).map_err(|_| CryptoError::Malformed)?;
        Ok(Some(Opened {
            text: Zeroizing::new(body.text),
            html: Zeroizing::new(body.html),
        }))
    }

    /// Delivers one message now. Errors are the transport's, as text.
    pub(crate) async fn deliver(
        &self,
        to: &str,
        subject: &str,
        text: &str,
        html: &str,
    ) -> Result<(), String> {
        match &self.transport {
            Transport::Console => {
                println!("---- email to {to}: {subject} ----\n{text}\n---- end of email ----");
                if let Some(Ok(mut mailbox)) = self.mailbox.as_ref().map(|m| m.lock()) {
                    mailbox.push(Email {
                        to: to.to_owned(),
                        subject: subject.to_owned(),
                        text: text.to_owned(),
                        sent_at: Utc::now(),
                    });
                }
                Ok(())
            }
            Transport::Smtp(smtp) => {
                let to: Mailbox = to.parse().map_err(|e| format!("bad recipient: {e}"))?;
                let message = Message::builder()
                    .from(self.from.clone())
                    .to(to)
                    .subject(subject)
                    .multipart(MultiPart::alternative_plain_html(
                        text.to_owned(),
                        html.to_owned(),
                    ))
                    .map_err(|e| e.to_string())?;
                smtp.send(message)
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            }
        }
    }

    /// Every message the console transport delivered to `to`, oldest first
    /// (the dev mailbox; empty with SMTP and outside development).
    pub fn messages_to(&self, to: &str) -> Vec<Email> {
        let Some(Ok(mailbox)) = self.mailbox.as_ref().map(|m| m.lock()) else {
            return Vec::new();
        };
        mailbox
            .iter()
            .filter(|e| e.to.eq_ignore_ascii_case(to))
            .cloned()
            .collect()
    }
}

/// Seals the plaintext bodies of messages queued before bodies were sealed
/// (migration 8) and still pending, under `keyring` (run at start-up).
/// Returns how many were sealed.
pub async fn seal_legacy<C: ConnectionTrait>(db: &C, keyring: &Keyring) -> Result<u64> {
    let legacy = outbox::Entity::find()
        .filter(outbox::Column::BodyCiphertext.is_null())
        .filter(outbox::Column::TextBody.ne(""))
        .all(db)
        .await?;
    let mut sealed_count = 0;
    for message in legacy {
        let body = Zeroizing::new(
            serde_json::to_vec(&Body {
                text: message.text_body.clone(),
                html: message.html_body.clone(),
            })
            .map_err(Error::internal)?,
        );
        let sealed = keyring
            .seal(&binding(message.id), &body)
            .map_err(Error::internal)?;
        sealed_count += outbox::Entity::update_many()
            .col_expr(
                outbox::Column::BodyCiphertext,
                Expr::value(sealed.ciphertext),
            )
            .col_expr(outbox::Column::BodyNonce, Expr::value(sealed.nonce))
            .col_expr(
                outbox::Column::BodyWrappedDek,
                Expr::value(sealed.wrapped_dek),
            )
            .col_expr(outbox::Column::BodyDekNonce, Expr::value(sealed.dek_nonce))
            .col_expr(outbox::Column::BodyKeyId, Expr::value(sealed.key_id))
            .col_expr(outbox::Column::BodyVersion, Expr::value(sealed.version))
            .col_expr(outbox::Column::TextBody, Expr::value(""))
            .col_expr(outbox::Column::HtmlBody, Expr::value(""))
            .filter(outbox::Column::Id.eq(message.id))
            .filter(outbox::Column::BodyCiphertext.is_null())
            .exec(db)
            .await?
            .rows_affected;
    }
    Ok(sealed_count)
}

/// The column writes that erase a message's body (sealed and legacy).
pub(crate) fn erase_body(
    update: sea_orm::UpdateMany<outbox::Entity>,
) -> sea_orm::UpdateMany<outbox::Entity> {
    let none = Option::<Vec<u8>>::None;
    update
        .col_expr(outbox::Column::BodyCiphertext, Expr::value(none.clone()))
        .col_expr(outbox::Column::BodyNonce, Expr::value(none.clone()))
        .col_expr(outbox::Column::BodyWrappedDek, Expr::value(none.clone()))
        .col_expr(outbox::Column::BodyDekNonce, Expr::value(none))
        .col_expr(
            outbox::Column::BodyKeyId,
            Expr::value(Option::<String>::None),
        )
        .col_expr(
            outbox::Column::BodyVersion,
            Expr::value(Option::<i32>::None),
        )
        .col_expr(outbox::Column::TextBody, Expr::value(""))
        .col_expr(outbox::Column::HtmlBody, Expr::value(""))
}

/// Re-wraps the data keys of pending messages' bodies under the keyring's
/// current key, like the vault's rotation (`switchboard keys rotate`).
/// Returns (re-wrapped, already current, failed).
pub async fn rotate<C: ConnectionTrait>(db: &C, keyring: &Keyring) -> Result<(u64, u64, u64)> {
    let rows = outbox::Entity::find()
        .filter(outbox::Column::BodyCiphertext.is_not_null())
        .all(db)
        .await?;
    let (mut rewrapped, mut current, mut failed) = (0, 0, 0);
    for row in rows {
        let Some(sealed) = sealed_body(&row) else {
            continue;
        };
        match keyring.rewrap(&binding(row.id), &sealed) {
            Ok(None) => current += 1,
            Ok(Some(new)) => {
                let res = outbox::Entity::update_many()
                    .col_expr(outbox::Column::BodyWrappedDek, Expr::value(new.wrapped_dek))
                    .col_expr(outbox::Column::BodyDekNonce, Expr::value(new.dek_nonce))
                    .col_expr(outbox::Column::BodyKeyId, Expr::value(new.key_id))
                    .filter(outbox::Column::Id.eq(row.id))
                    .filter(outbox::Column::BodyKeyId.eq(sealed.key_id.as_str()))
                    .exec(db)
                    .await?;
                // Not written: erased (sent) meanwhile, nothing left to wrap.
                if res.rows_affected == 1 {
                    rewrapped += 1;
                } else {
                    current += 1;
                }
            }
            Err(err) => {
                failed += 1;
                tracing::error!(security = true, email_id = %row.id, key_id = %sealed.key_id, error = %err, "rotation could not open an email body's data key");
            }
        }
    }
    Ok((rewrapped, current, failed))
}
