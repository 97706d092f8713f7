//! The fake's Connect side (Stripe API reference: Accounts, Account Links,
//! Login Links; Connect, "Express accounts"): Express accounts built from
//! Stripe's example `account` object, created (`POST /v1/accounts`,
//! under the shared `Idempotency-Key` handling), read, deleted (refused
//! with 400 while the account holds a balance, as Stripe does) or
//! rejected; onboarding links (`POST /v1/account_links`, expiring after
//! 300 s) and Express dashboard login links (`POST
//! /v1/accounts/{id}/login_links`, refused before onboarding is
//! submitted). Tests move an account through onboarding with
//! [`FakeStripe::update_account`] and build its `account.updated` events
//! with [`connect_event`].

use serde_json::{Value, json};

use super::{
    FakeStripe, Reply, State, fixture, metadata_from, missing_param, no_such, now, ok, param,
    random_id, stripe_error,
};
use axum::http::StatusCode;

impl FakeStripe {
    /// Account `id` as the fake has it.
    pub fn account(&self, id: &str) -> Option<Value> {
        self.lock().accounts.iter().find(|a| a["id"] == id).cloned()
    }

    /// Every account the fake made.
    pub fn accounts(&self) -> Vec<Value> {
        self.lock().accounts.clone()
    }

    /// Changes account `id` as Stripe would (onboarding submitted,
    /// verification done, …); returns it.
    pub fn update_account(&self, id: &str, f: impl FnOnce(&mut Value)) -> Value {
        let mut st = self.lock();
        let a = st
            .accounts
            .iter_mut()
            .find(|a| a["id"] == id)
            .expect("an account of the fake");
        f(a);
        a.clone()
    }

    /// Gives account `id` a balance: Stripe then refuses to delete it.
    pub fn hold_balance(&self, id: &str) {
        self.lock().balances.push(id.to_owned());
    }
}

/// A Connect event for `account` (the envelope carries `account`, as
/// Stripe's Connect events do).
pub fn connect_event(type_: &str, account: &str, object: Value, created: i64) -> Value {
    let mut e = super::event(type_, object, created);
    e["account"] = json!(account);
    e
}

/// Onboarding submitted and verified: charges and payouts enabled.
pub fn enabled(a: &mut Value) {
    a["details_submitted"] = json!(true);
    a["charges_enabled"] = json!(true);
    a["payouts_enabled"] = json!(true);
    a["requirements"]["currently_due"] = json!([]);
    a["requirements"]["eventually_due"] = json!([]);
    a["requirements"]["past_due"] = json!([]);
    a["requirements"]["pending_verification"] = json!([]);
    a["requirements"]["disabled_reason"] = Value::Null;
}

/// Submitted; Stripe is verifying the identity document.
pub fn pending_verification(a: &mut Value) {
    a["details_submitted"] = json!(true);
    a["charges_enabled"] = json!(false);
    a["payouts_enabled"] = json!(false);
    a["requirements"]["currently_due"] = json!([]);
    a["requirements"]["past_due"] = json!([]);
    a["requirements"]["pending_verification"] = json!(["individual.verification.document"]);
    a["requirements"]["disabled_reason"] = json!("requirements.pending_verification");
}

/// Submitted, but Stripe needs more: payouts off until a bank account is
/// given.
pub fn restricted(a: &mut Value) {
    a["details_submitted"] = json!(true);
    a["charges_enabled"] = json!(true);
    a["payouts_enabled"] = json!(false);
    a["requirements"]["currently_due"] = json!(["external_account"]);
    a["requirements"]["past_due"] = json!(["external_account"]);
    a["requirements"]["pending_verification"] = json!([]);
    a["requirements"]["disabled_reason"] = json!("requirements.past_due");
}

/// The Connect routes; `None` for a path that is not Connect's.
pub(super) fn route(
    st: &mut State,
    method: &str,
    segments: &[&str],
    params: &[(String, String)],
) -> Option<Reply> {
    Some(match (method, segments) {
        ("POST", ["v1", "accounts"]) => create_account(st, params),
        ("GET", ["v1", "accounts", id]) => match st.accounts.iter().find(|a| a["id"] == *id) {
            Some(a) => ok(a.clone()),
            None => no_such_account(id),
        },
        ("DELETE", ["v1", "accounts", id]) => delete_account(st, id),
        ("POST", ["v1", "accounts", id, "reject"]) => reject_account(st, id, params),
        ("POST", ["v1", "accounts", id, "login_links"]) => login_link(st, id),
        ("POST", ["v1", "account_links"]) => account_link(st, params),
        _ => return None,
    })
}

fn no_such_account(id: &str) -> Reply {
    // Stripe answers an account that is not connected to the platform
    // (or gone) with a permission error naming it.
    let mut reply = no_such("account", id);
    reply.1["error"]["code"] = json!("account_invalid");
    reply
}

fn create_account(st: &mut State, params: &[(String, String)]) -> Reply {
    let Some(type_) = param(params, "type") else {
        return missing_param("type");
    };
    let now = now();
    let mut a = fixture("account");
    a["id"] = json!(random_id("acct_", 16));
    a["type"] = json!(type_);
    a["created"] = json!(now);
    a["country"] = json!(param(params, "country").unwrap_or("US"));
    a["email"] = super::opt_str(param(params, "email"));
    a["metadata"] = metadata_from(params, "metadata");
    a["charges_enabled"] = json!(false);
    a["payouts_enabled"] = json!(false);
    a["details_submitted"] = json!(false);
    a["controller"] = json!({"type": "application", "is_controller": true,
        "stripe_dashboard": {"type": "express"}, "fees": {"payer": "application"},
        "losses": {"payments": "application"}, "requirement_collection": "stripe"});
    a["requirements"]["disabled_reason"] = json!("requirements.past_due");
    a["external_accounts"]["url"] = json!(format!(
        "/v1/accounts/{}/external_accounts",
        a["id"].as_str().unwrap()
    ));
    st.accounts.push(a.clone());
    ok(a)
}

fn delete_account(st: &mut State, id: &str) -> Reply {
    if !st.accounts.iter().any(|a| a["id"] == id) {
        return no_such_account(id);
    }
    if st.balances.iter().any(|b| b == id) {
        return stripe_error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            None,
            "This account cannot be deleted because it has a non-zero balance.".into(),
            None,
        );
    }
    st.accounts.retain(|a| a["id"] != id);
    ok(json!({ "id": id, "object": "account", "deleted": true }))
}

fn reject_account(st: &mut State, id: &str, params: &[(String, String)]) -> Reply {
    let Some(reason) = param(params, "reason") else {
        return missing_param("reason");
    };
    let Some(a) = st.accounts.iter_mut().find(|a| a["id"] == id) else {
        return no_such_account(id);
    };
    a["charges_enabled"] = json!(false);
    a["payouts_enabled"] = json!(false);
    a["requirements"]["disabled_reason"] = json!(format!("rejected.{reason}"));
    ok(a.clone())
}

fn login_link(st: &mut State, id: &str) -> Reply {
    let Some(a) = st.accounts.iter().find(|a| a["id"] == id) else {
        return no_such_account(id);
    };
    if a["details_submitted"] != true {
        return stripe_error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            None,
            "Cannot create a login link for an account that has not completed onboarding.".into(),
            None,
        );
    }
    let mut link = fixture("login_link");
    link["created"] = json!(now());
    link["url"] = json!(format!(
        "https://connect.stripe.com/express/{}",
        random_id("", 12)
    ));
    st.login_links += 1;
    ok(link)
}

fn account_link(st: &mut State, params: &[(String, String)]) -> Reply {
    for name in ["account", "type"] {
        if param(params, name).is_none() {
            return missing_param(name);
        }
    }
    let account = param(params, "account").unwrap_or_default();
    if !st.accounts.iter().any(|a| a["id"] == account) {
        return stripe_error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            Some("account_invalid"),
            format!("No such account: '{account}'"),
            Some("account"),
        );
    }
    for url in ["refresh_url", "return_url"] {
        if param(params, url).is_some_and(|u| !u.starts_with("http")) {
            return super::invalid_param(url, format!("Not a valid URL: {url}"));
        }
    }
    let now = now();
    let mut link = fixture("account_link");
    link["created"] = json!(now);
    link["expires_at"] = json!(now + 300);
    link["url"] = json!(format!(
        "https://connect.stripe.com/setup/e/{account}/{}",
        random_id("", 12)
    ));
    st.account_links.push(params.to_vec());
    ok(link)
}

impl FakeStripe {
    /// The customer pays on the Checkout page of payment-mode session
    /// `id`: the session is `complete` and `paid` with a new PaymentIntent
    /// (whose metadata is the session's `payment_intent_data[metadata]`).
    /// Returns the session.
    pub fn pay_checkout(&self, id: &str) -> Value {
        let mut st = self.lock();
        let pi = random_id("pi_", 24);
        let s = st
            .checkout_sessions
            .iter_mut()
            .find(|s| s["id"] == id)
            .expect("a session of the fake");
        s["status"] = json!("complete");
        s["payment_status"] = json!("paid");
        s["payment_intent"] = json!(pi);
        s["url"] = Value::Null;
        s.clone()
    }

    /// Payment-mode session `id` expires unpaid. Returns the session.
    pub fn expire_checkout(&self, id: &str) -> Value {
        let mut st = self.lock();
        let s = st
            .checkout_sessions
            .iter_mut()
            .find(|s| s["id"] == id)
            .expect("a session of the fake");
        s["status"] = json!("expired");
        s["url"] = Value::Null;
        s.clone()
    }

    /// The charge of paid session `id`, fully refunded: Stripe's example
    /// charge with the session's amount, currency, PaymentIntent and the
    /// PaymentIntent's metadata.
    pub fn refunded_charge(&self, id: &str) -> Value {
        let st = self.lock();
        let s = st
            .checkout_sessions
            .iter()
            .find(|s| s["id"] == id)
            .expect("a session of the fake");
        let params = st.session_params.get(id).cloned().unwrap_or_default();
        let mut c = fixture("charge");
        c["id"] = json!(random_id("ch_", 24));
        c["payment_intent"] = s["payment_intent"].clone();
        c["amount"] = s["amount_total"].clone();
        c["amount_refunded"] = s["amount_total"].clone();
        c["currency"] = s["currency"].clone();
        c["refunded"] = json!(true);
        c["metadata"] = metadata_from(&params, "payment_intent_data[metadata]");
        c
    }
}

/// What a payment-mode session's first line item asks: its amount and
/// currency, which Checkout shows and totals (`amount_total`, `currency`).
pub(super) fn price_data_totals(s: &mut Value, params: &[(String, String)]) {
    if let Some(amount) =
        param(params, "line_items[0][price_data][unit_amount]").and_then(|a| a.parse::<i64>().ok())
    {
        let quantity = param(params, "line_items[0][quantity]")
            .and_then(|q| q.parse::<i64>().ok())
            .unwrap_or(1);
        s["amount_total"] = json!(amount * quantity);
        s["amount_subtotal"] = json!(amount * quantity);
    }
    if let Some(c) = param(params, "line_items[0][price_data][currency]") {
        s["currency"] = json!(c);
    }
}
