//! Email templates: each renders a subject, a plain-text body and an HTML
//! body (values HTML-escaped). The template name is stored with the message,
//! which also lets the outbox count requests per address (abuse limits).

/// A rendered message. Its `Debug` leaves the bodies out (they carry
/// links and codes).
#[derive(Clone, PartialEq, Eq)]
pub struct Rendered {
    /// Template name, e.g. `verification_code`.
    pub template: &'static str,
    /// Subject line.
    pub subject: String,
    /// Plain-text body.
    pub text: String,
    /// HTML body.
    pub html: String,
}

impl std::fmt::Debug for Rendered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rendered")
            .field("template", &self.template)
            .field("subject", &self.subject)
            .field("text", &"[redacted]")
            .field("html", &"[redacted]")
            .finish()
    }
}

fn page(title: &str, paragraphs: &[String]) -> String {
    let body: String = paragraphs.iter().map(|p| format!("<p>{p}</p>")).collect();
    format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{}</title></head>\
         <body style=\"font-family:sans-serif\">{body}<p style=\"color:#888\">Switchboard</p></body></html>",
        html_escape::encode_text(title)
    )
}

fn esc(s: &str) -> String {
    html_escape::encode_text(s).into_owned()
}

fn link(url: &str) -> String {
    format!(
        "<a href=\"{0}\">{1}</a>",
        html_escape::encode_double_quoted_attribute(url),
        esc(url)
    )
}

/// The registration code (SPEC §5: 6 digits, 10 minutes).
pub fn verification_code(code: &str, minutes: u64) -> Rendered {
    let subject = "Your Switchboard verification code".to_owned();
    Rendered {
        template: "verification_code",
        text: format!(
            "Your verification code is {code}\n\nIt expires in {minutes} minutes. If you did not ask for it, ignore this message."
        ),
        html: page(
            &subject,
            &[
                format!("Your verification code is <strong>{}</strong>", esc(code)),
                format!(
                    "It expires in {minutes} minutes. If you did not ask for it, ignore this message."
                ),
            ],
        ),
        subject,
    }
}

/// Someone tried to register an address that already has an account.
pub fn already_registered() -> Rendered {
    let subject = "You already have a Switchboard account".to_owned();
    let text = "Someone (hopefully you) tried to register with this address, which already has an account. Sign in instead, or ignore this message.".to_owned();
    Rendered {
        template: "already_registered",
        html: page(&subject, &[esc(&text)]),
        text,
        subject,
    }
}

/// A manager's first-password link.
pub fn set_password(url: &str, hours: u64) -> Rendered {
    let subject = "You are a Switchboard manager: set your password".to_owned();
    Rendered {
        template: "set_password",
        text: format!(
            "An administrator created a manager account for you.\n\nSet your password here (valid {hours} hours):\n{url}"
        ),
        html: page(
            &subject,
            &[
                "An administrator created a manager account for you.".into(),
                format!(
                    "Set your password here (valid {hours} hours): {}",
                    link(url)
                ),
            ],
        ),
        subject,
    }
}

/// A password-reset link (30 minutes, single use).
pub fn password_reset(url: &str, minutes: u64) -> Rendered {
    let subject = "Reset your Switchboard password".to_owned();
    Rendered {
        template: "password_reset",
        text: format!(
            "Choose a new password here (valid {minutes} minutes, once):\n{url}\n\nIf you did not ask for it, ignore this message; your password stays as it is."
        ),
        html: page(
            &subject,
            &[
                format!(
                    "Choose a new password here (valid {minutes} minutes, once): {}",
                    link(url)
                ),
                "If you did not ask for it, ignore this message; your password stays as it is."
                    .into(),
            ],
        ),
        subject,
    }
}

/// One way to sign in to an account, as a security email lists it.
#[derive(Clone, PartialEq, Eq)]
pub struct MethodLine {
    /// `Password`, `Google`, `Facebook`.
    pub label: String,
    /// The provider account's email, if known.
    pub detail: Option<String>,
    /// A single-use link that removes this method (providers only).
    pub remove_url: Option<String>,
}

/// The account's sign-in methods as text lines and HTML paragraphs.
fn method_list(methods: &[MethodLine]) -> (String, Vec<String>) {
    let mut text = String::from("Ways to sign in to your account now:\n");
    let mut html = vec!["Ways to sign in to your account now:".to_owned()];
    for m in methods {
        let what = match &m.detail {
            Some(d) => format!("{} ({d})", m.label),
            None => m.label.clone(),
        };
        match &m.remove_url {
            Some(url) => {
                text.push_str(&format!("- {what}: not yours? Remove it: {url}\n"));
                html.push(format!("{}: not yours? {}", esc(&what), link(url)));
            }
            None => {
                text.push_str(&format!("- {what}\n"));
                html.push(esc(&what));
            }
        }
    }
    (text, html)
}

/// Confirmation that the password changed (or was reset), listing every way
/// to sign in, each provider with a link that removes it.
pub fn password_changed(methods: &[MethodLine]) -> Rendered {
    let subject = "Your Switchboard password was changed".to_owned();
    let intro = "Your password was just changed and every session was signed out. If this was not you, reset your password at once.";
    let (list, list_html) = method_list(methods);
    let mut html = vec![esc(intro)];
    html.extend(list_html);
    Rendered {
        template: "password_changed",
        html: page(&subject, &html),
        text: format!("{intro}\n\n{list}"),
        subject,
    }
}

/// Password sign-ins to the account are paused after repeated failures.
pub fn sign_in_locked(failures: i32, minutes: i64, reset_url: &str) -> Rendered {
    let subject = "Failed sign-ins to your Switchboard account".to_owned();
    let text = format!(
        "There were {failures} failed password sign-ins to your account. Password sign-in is paused for {minutes} minutes, and longer after further failures.\n\nIf this was not you, your password may be targeted: choose a new one here:\n{reset_url}\n\nSign-in links and linked providers keep working."
    );
    Rendered {
        template: "sign_in_locked",
        html: page(
            &subject,
            &[
                format!(
                    "There were {failures} failed password sign-ins to your account. Password sign-in is paused for {minutes} minutes, and longer after further failures."
                ),
                format!(
                    "If this was not you, your password may be targeted: {}",
                    link(reset_url)
                ),
                "Sign-in links and linked providers keep working.".into(),
            ],
        ),
        text,
        subject,
    }
}

/// A link confirming a new email address (sent to the new address).
pub fn email_change(url: &str, minutes: u64) -> Rendered {
    let subject = "Confirm your new Switchboard email address".to_owned();
    Rendered {
        template: "email_change",
        text: format!(
            "Confirm that this address should sign in to your Switchboard account (valid {minutes} minutes, once):\n{url}\n\nIf you did not ask for it, ignore this message."
        ),
        html: page(
            &subject,
            &[
                format!(
                    "Confirm that this address should sign in to your Switchboard account (valid {minutes} minutes, once): {}",
                    link(url)
                ),
                "If you did not ask for it, ignore this message.".into(),
            ],
        ),
        subject,
    }
}

/// The account's email changed (sent to the old address).
pub fn email_changed(new_address: &str) -> Rendered {
    let subject = "Your Switchboard email address was changed".to_owned();
    let text = format!(
        "Your account now signs in with {new_address}; emails go there from now on. If this was not you, contact support at once."
    );
    Rendered {
        template: "email_changed",
        html: page(&subject, &[esc(&text)]),
        text,
        subject,
    }
}

/// A sign-in link (15 minutes, single use).
pub fn magic_link(url: &str, minutes: u64) -> Rendered {
    let subject = "Your Switchboard sign-in link".to_owned();
    Rendered {
        template: "magic_link",
        text: format!(
            "Sign in with this link (valid {minutes} minutes, once):\n{url}\n\nIf you did not ask for it, ignore this message."
        ),
        html: page(
            &subject,
            &[
                format!(
                    "Sign in with this link (valid {minutes} minutes, once): {}",
                    link(url)
                ),
                "If you did not ask for it, ignore this message.".into(),
            ],
        ),
        subject,
    }
}

/// A provider was linked to the account as a new way to sign in; lists
/// every way to sign in, each provider with a link that removes it.
pub fn sign_in_method_linked(provider: &str, methods: &[MethodLine]) -> Rendered {
    let subject = format!("{provider} can now sign you in to Switchboard");
    let intro = format!(
        "{provider} was linked to your account as a new way to sign in. If this was not you, remove it with its link below and change your password."
    );
    let (list, list_html) = method_list(methods);
    let mut html = vec![esc(&intro)];
    html.extend(list_html);
    Rendered {
        template: "sign_in_method_linked",
        html: page(&subject, &html),
        text: format!("{intro}\n\n{list}"),
        subject,
    }
}

/// A webhook endpoint was disabled after its deliveries kept failing.
pub fn webhook_endpoint_disabled(url: &str, error: &str) -> Rendered {
    let subject = "A Switchboard webhook endpoint was disabled".to_owned();
    let text = format!(
        "Deliveries to {url} kept failing for about three days (last: {error}), so the endpoint was disabled and receives nothing now. Fix it, then re-enable it in your settings; events from meanwhile stay in the event log."
    );
    Rendered {
        template: "webhook_endpoint_disabled",
        html: page(&subject, &[esc(&text)]),
        text,
        subject,
    }
}

/// A connected channel stopped working (its probes kept failing).
pub fn channel_needs_attention(platform: &str, account: &str, problem: &str) -> Rendered {
    let subject = format!("Your {platform} channel needs attention");
    let what = match problem {
        "auth_revoked" => {
            "it was logged out (the link on the phone was removed or expired): connect it again to scan a new code"
        }
        "rate_limited" => "the platform is limiting it for now: it will be checked again shortly",
        "misconfigured" => {
            "its connection is gone or misconfigured on the platform's side: connect it again"
        }
        _ => "the platform could not be reached: it will be checked again shortly",
    };
    let text = format!(
        "Your {platform} channel {account} is not answering your customers: {what}. We will write again when it works."
    );
    Rendered {
        template: "channel_needs_attention",
        html: page(&subject, &[esc(&text)]),
        text,
        subject,
    }
}

/// A channel that was in error works again.
pub fn channel_recovered(platform: &str, account: &str) -> Rendered {
    let subject = format!("Your {platform} channel works again");
    let text = format!("Your {platform} channel {account} is connected and answering again.");
    Rendered {
        template: "channel_recovered",
        html: page(&subject, &[esc(&text)]),
        text,
        subject,
    }
}

/// Billing notice: the trial ends soon (SPEC §2; sent 3 days before).
pub fn trial_ending(days_left: i64, billing_url: &str) -> Rendered {
    let subject = format!("Your Switchboard trial ends in {days_left} days");
    Rendered {
        template: "trial_ending",
        text: format!(
            "Your trial ends in {days_left} days. Choose a plan to keep your channels running:\n{billing_url}"
        ),
        html: page(
            &subject,
            &[
                format!("Your trial ends in {days_left} days."),
                format!(
                    "Choose a plan to keep your channels running: {}",
                    link(billing_url)
                ),
            ],
        ),
        subject,
    }
}

/// Billing notice: the trial of a subscription already chosen ends soon and
/// the first charge follows (Stripe's `customer.subscription.trial_will_end`).
pub fn subscription_trial_ending(days_left: i64, billing_url: &str) -> Rendered {
    let subject = format!("Your Switchboard trial ends in {days_left} days");
    Rendered {
        template: "subscription_trial_ending",
        text: format!(
            "Your trial ends in {days_left} days; your subscription then starts and your payment method is charged. Review your plan or payment details:\n{billing_url}"
        ),
        html: page(
            &subject,
            &[
                format!(
                    "Your trial ends in {days_left} days; your subscription then starts and your payment method is charged."
                ),
                format!("Review your plan or payment details: {}", link(billing_url)),
            ],
        ),
        subject,
    }
}

/// Billing notice: a payment failed; access continues for the grace period.
pub fn payment_failed(grace_days: i64, billing_url: &str) -> Rendered {
    let subject = "Your Switchboard payment failed".to_owned();
    Rendered {
        template: "payment_failed",
        text: format!(
            "We could not charge your payment method. Your channels keep working for {grace_days} more days; update your payment details:\n{billing_url}"
        ),
        html: page(
            &subject,
            &[
                "We could not charge your payment method.".into(),
                format!(
                    "Your channels keep working for {grace_days} more days; update your payment details: {}",
                    link(billing_url)
                ),
            ],
        ),
        subject,
    }
}

/// Billing notice: the business is restricted (channels suspended).
pub fn restricted(billing_url: &str) -> Rendered {
    let subject = "Your Switchboard channels are paused".to_owned();
    Rendered {
        template: "restricted",
        text: format!("Without an active subscription your channels are paused. Reading and billing still work; subscribe to resume:\n{billing_url}"),
        html: page(&subject, &[
            "Without an active subscription your channels are paused. Reading and billing still work.".into(),
            format!("Subscribe to resume: {}", link(billing_url)),
        ]),
        subject,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_bodies_escape_values() {
        let r = magic_link("https://x.test/?a=1&b=<script>", 15);
        assert!(r.html.contains("&amp;b=&lt;script&gt;"));
        assert!(!r.html.contains("<script>"));
        assert!(r.text.contains("https://x.test/?a=1&b=<script>"));
    }

    #[test]
    fn every_template_has_text_and_html() {
        for r in [
            verification_code("123456", 10),
            already_registered(),
            set_password("https://x.test/s", 72),
            password_reset("https://x.test/r", 30),
            password_changed(&[]),
            magic_link("https://x.test/m", 15),
            sign_in_method_linked("Google", &[]),
            sign_in_locked(5, 1, "https://x.test/r"),
            email_change("https://x.test/e", 30),
            email_changed("new@x.test"),
            webhook_endpoint_disabled("https://x.test/h", "HTTP 500"),
            channel_needs_attention("WhatsApp", "+1555", "auth_revoked"),
            channel_recovered("WhatsApp", "+1555"),
            trial_ending(3, "https://x.test/b"),
            payment_failed(3, "https://x.test/b"),
            restricted("https://x.test/b"),
        ] {
            assert!(
                !r.subject.is_empty() && !r.text.is_empty(),
                "{}",
                r.template
            );
            assert!(
                r.html.starts_with("<!doctype html>") && r.html.contains(&esc(&r.subject)),
                "{}",
                r.template
            );
        }
    }
}
