//! Outgoing email. Messages are written to a durable outbox in the database,
//! inside the transaction of the change that causes them together with their
//! `email.deliver` task ([`crate::jobs::email`]), which the job runner
//! retries with backoff, so sending never blocks a request and no message is
//! lost across a restart.
//!
//! Delivery goes through SMTP when `smtp_host` is configured (STARTTLS by
//! default; implicit TLS or plain for local servers), otherwise to the
//! console: printed, and kept in an in-memory dev mailbox that tests read.

pub mod templates;

use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use entity::email::outbox;
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use sea_orm::{ActiveModelTrait, ConnectionTrait, Set};
use secrecy::ExposeSecret;
use uuid::Uuid;

use crate::config::{Config, ConfigError, SmtpTls};
use crate::error::Result;
use crate::jobs::queue::{Queue, Task, kind};
pub use templates::Rendered;

/// One email as delivered by the console transport (dev mailbox).
#[derive(Debug, Clone, PartialEq, Eq)]
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
    mailbox: Arc<Mutex<Vec<Email>>>,
    jobs: Queue,
}

impl Mailer {
    /// SMTP when `smtp_host` is set, the console otherwise.
    /// Deliveries are queued on `jobs`.
    pub fn from_config(config: &Config, jobs: Queue) -> Result<Mailer, ConfigError> {
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
        Ok(Mailer {
            transport,
            from,
            mailbox: Arc::default(),
            jobs,
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
        outbox::ActiveModel {
            id: Set(id),
            to_address: Set(to.to_owned()),
            template: Set(message.template.to_owned()),
            subject: Set(message.subject),
            text_body: Set(message.text),
            html_body: Set(message.html),
            status: Set("pending".into()),
            attempts: Set(0),
            last_error: Set(None),
            created_at: Set(now),
            sent_at: Set(None),
        }
        .insert(db)
        .await?;
        self.jobs
            .enqueue(db, &DeliverEmail { email_id: id })
            .await?;
        Ok(id)
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
                if let Ok(mut mailbox) = self.mailbox.lock() {
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
    /// (the dev mailbox; empty with SMTP).
    pub fn messages_to(&self, to: &str) -> Vec<Email> {
        self.mailbox
            .lock()
            .map(|m| {
                m.iter()
                    .filter(|e| e.to.eq_ignore_ascii_case(to))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }
}
