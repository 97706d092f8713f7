//! Outgoing email. Until SMTP is configured (a later issue), every message is
//! printed to the console and kept in an in-memory dev mailbox, which the
//! tests read to follow links and codes the way a person would.

use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};

/// One email as sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email {
    /// Recipient address.
    pub to: String,
    /// Subject line.
    pub subject: String,
    /// Plain-text body.
    pub text: String,
    /// When it was handed to the mailer.
    pub sent_at: DateTime<Utc>,
}

/// The mailer; cheap to clone.
#[derive(Clone, Default)]
pub struct Mailer {
    mailbox: Arc<Mutex<Vec<Email>>>,
}

impl Mailer {
    /// A console mailer with an empty dev mailbox.
    pub fn console() -> Mailer {
        Mailer::default()
    }

    /// Sends (prints and records) a message.
    pub fn send(&self, to: &str, subject: &str, text: String) {
        println!("---- email to {to}: {subject} ----\n{text}\n---- end of email ----");
        let email = Email {
            to: to.to_owned(),
            subject: subject.to_owned(),
            text,
            sent_at: Utc::now(),
        };
        if let Ok(mut mailbox) = self.mailbox.lock() {
            mailbox.push(email);
        }
    }

    /// Every message sent to `to`, oldest first (dev mailbox).
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
