//! A fake Stripe API for the integration suite: a local HTTP server that
//! speaks Stripe's wire format (form-encoded requests with bracket notation,
//! `Authorization: Bearer sk_…`, `Idempotency-Key`, JSON responses and error
//! bodies), so the application's real async-stripe client runs end to end.
//!
//! This module owns the fake server ([`FakeStripe`]), its in-memory state
//! (customers, Checkout and portal sessions, subscriptions, invoices,
//! idempotency keys, the request log), the test-side helpers that change that
//! state as Stripe would (a paid Checkout, a dunning subscription …), and the
//! webhook helpers ([`event`], [`signature`]). Connect (accounts, Account
//! Links, login links) is its own concern: [`connect`]; so are subscriptions
//! created or moved at a custom price ([`custom_prices`]).
//!
//! Every object is built from Stripe's published example objects in
//! `tests/fixtures/stripe/fixtures3.json`: the fixture is cloned and only the
//! fields that matter are overwritten, so the shapes stay what async-stripe's
//! generated types expect.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)] // a harness: a panic here is a failed test

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State as AxumState;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, Mac};
use rand::Rng;
use rand::distr::Alphanumeric;
use serde_json::{Map, Value, json};
use sha2::Sha256;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub mod connect;
pub mod custom_prices;

/// Seconds in a day.
const DAY: i64 = 86_400;

/// Where Stripe's example objects live.
const FIXTURES_PATH: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/stripe/fixtures3.json"
);

// ---------------------------------------------------------------------------
// Public API
// ---------------------------------------------------------------------------

/// A running fake Stripe API; the server stops when this is dropped.
pub struct FakeStripe {
    /// The base URL, e.g. `http://127.0.0.1:41234` (no trailing slash; the
    /// API lives under `/v1/…`). Give it to async-stripe's `ClientBuilder::url`.
    pub url: String,
    state: Arc<Mutex<State>>,
    task: JoinHandle<()>,
}

/// One request the fake received.
#[derive(Clone, Debug)]
pub struct Recorded {
    /// `GET`, `POST` or `DELETE`.
    pub method: String,
    /// The path, e.g. `/v1/customers`, without the query string.
    pub path: String,
    /// Query-string parameters followed by form-body parameters, decoded, in order.
    pub params: Vec<(String, String)>,
    /// The `Idempotency-Key` header, if sent.
    pub idempotency_key: Option<String>,
    /// The `Authorization` header, if sent.
    pub authorization: Option<String>,
}

impl Recorded {
    /// The first value of parameter `key` (e.g. `line_items[0][price]`).
    pub fn param(&self, key: &str) -> Option<&str> {
        param(&self.params, key)
    }
}

impl FakeStripe {
    /// Binds 127.0.0.1:0 and serves until dropped (abort the task in Drop).
    pub async fn start() -> FakeStripe {
        let state = Arc::new(Mutex::new(State::default()));
        let app = Router::new().fallback(handle).with_state(state.clone());
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the fake Stripe server");
        let addr = listener.local_addr().expect("fake Stripe local address");
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.ok();
        });
        FakeStripe {
            url: format!("http://{addr}"),
            state,
            task,
        }
    }

    /// Every request received, in order.
    pub fn requests(&self) -> Vec<Recorded> {
        self.lock().requests.clone()
    }

    /// Requests whose method and path match, e.g. ("POST", "/v1/customers").
    pub fn requests_to(&self, method: &str, path: &str) -> Vec<Recorded> {
        self.lock()
            .requests
            .iter()
            .filter(|r| r.method.eq_ignore_ascii_case(method) && r.path == path)
            .cloned()
            .collect()
    }

    /// The customer `id` as `GET /v1/customers/{id}` would return it (the
    /// deleted-customer object once deleted); `None` if unknown.
    pub fn customer(&self, id: &str) -> Option<Value> {
        self.lock().customer_view(id)
    }

    /// The stored subscription `id`; `None` if unknown.
    pub fn subscription(&self, id: &str) -> Option<Value> {
        self.lock().subscription(id).cloned()
    }

    /// The stored Checkout Session `id`; `None` if unknown.
    pub fn checkout_session(&self, id: &str) -> Option<Value> {
        self.lock().session(id).cloned()
    }

    /// The parameters Checkout Session `id` was created with.
    pub fn checkout_session_params(&self, id: &str) -> Option<Vec<(String, String)>> {
        self.lock().session_params.get(id).cloned()
    }

    /// Simulates the customer paying on the Checkout page of session `id`:
    /// creates a subscription for the session's customer and price (status `trialing` with
    /// `trial_end` = the session's `subscription_data[trial_end]` if one was given, else `active`),
    /// metadata = the session's `subscription_data[metadata][*]`, marks the session `complete`
    /// with `subscription` = the new id. Returns (session, subscription).
    ///
    /// Also: `subscription_data[trial_period_days]` counts as a trial; a
    /// session without a customer gets a new one (from `customer_email`); the
    /// completed session's `url` becomes null and `payment_status` becomes
    /// `paid` (`no_payment_required` when trialing), as on Stripe. For a
    /// `payment`/`setup` session no subscription is made and the second value
    /// is `Value::Null`. Panics if the session is unknown or not `open`.
    pub fn complete_checkout(&self, session_id: &str) -> (Value, Value) {
        self.lock().complete_checkout(session_id)
    }

    /// Creates a subscription directly (as if made elsewhere). `status` as Stripe spells it.
    /// A `trialing` subscription gets `trial_start` now and `trial_end` in 30 days.
    pub fn create_subscription(&self, customer: &str, price: &str, status: &str) -> Value {
        let trial_end = (status == "trialing").then(|| now() + 30 * DAY);
        let sub = new_subscription(customer, price, status, trial_end, Map::new());
        self.lock().subscriptions.push(sub.clone());
        sub
    }

    /// Mutates a stored subscription in place (to simulate portal changes, dunning …) and returns the new object.
    /// Panics if the subscription is unknown. `f` runs under the fake's lock:
    /// don't call the fake from inside it.
    pub fn update_subscription(&self, id: &str, f: impl FnOnce(&mut Value)) -> Value {
        let mut state = self.lock();
        let sub = state
            .subscription_mut(id)
            .unwrap_or_else(|| panic!("fake Stripe: no subscription {id}"));
        f(sub);
        sub.clone()
    }

    /// Adds an invoice for `customer` (and subscription), `status` e.g. "paid"/"open", `amount` minor units.
    /// The subscription's `latest_invoice` becomes the new invoice.
    pub fn add_invoice(
        &self,
        customer: &str,
        subscription: Option<&str>,
        amount: i64,
        status: &str,
    ) -> Value {
        self.lock()
            .add_invoice(customer, subscription, amount, status)
    }

    /// Makes the next `n` requests answer 500 with a Stripe `api_error` body (to test failure paths).
    /// These failures are not stored under an idempotency key, so a retry with
    /// the same key runs for real once the failures are used up.
    pub fn fail_next(&self, n: usize) {
        self.lock().fail_next = n;
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for FakeStripe {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// An event JSON built from the fixture `event`: `id` = `evt_` + random, `type` = type_, `created` = created,
/// `data.object` = object, `data.previous_attributes` removed/null, `livemode` false, `api_version` kept as fixture.
pub fn event(type_: &str, object: Value, created: i64) -> Value {
    event_with_id(&random_id("evt_", 24), type_, object, created)
}

/// Same, with a given event id (for duplicates).
pub fn event_with_id(id: &str, type_: &str, object: Value, created: i64) -> Value {
    let mut e = fixture("event");
    e["id"] = json!(id);
    e["type"] = json!(type_);
    e["created"] = json!(created);
    e["livemode"] = json!(false);
    e["data"] = json!({ "object": object });
    e
}

/// The `Stripe-Signature` header value Stripe sends: `t={t},v1={hex(HMAC-SHA256(secret, "{t}.{payload}"))}`.
/// Accepts several secrets: one `v1=` per secret, as Stripe does while an endpoint secret is being rolled.
pub fn signature(payload: &str, secrets: &[&str], t: i64) -> String {
    let mut header = format!("t={t}");
    for secret in secrets {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
        mac.update(format!("{t}.{payload}").as_bytes());
        header.push_str(",v1=");
        header.push_str(&hex(&mac.finalize().into_bytes()));
    }
    header
}

/// A fixture resource by name, e.g. "subscription".
pub fn fixture(name: &str) -> Value {
    static FIXTURES: OnceLock<Value> = OnceLock::new();
    let all = FIXTURES.get_or_init(|| {
        let text = std::fs::read_to_string(FIXTURES_PATH)
            .unwrap_or_else(|e| panic!("read {FIXTURES_PATH}: {e}"));
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("parse {FIXTURES_PATH}: {e}"))
    });
    all["resources"]
        .get(name)
        .cloned()
        .unwrap_or_else(|| panic!("no Stripe fixture named {name:?}"))
}

/// Decodes an `application/x-www-form-urlencoded` string (a form body or a
/// query string) into its pairs, in order: `+` is a space, `%XX` a byte.
pub fn decode_form(s: &str) -> Vec<(String, String)> {
    s.split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

/// The first value of parameter `key`, e.g. `param(&params, "line_items[0][price]")`.
pub fn param<'a>(params: &'a [(String, String)], key: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

// ---------------------------------------------------------------------------
// Small helpers
// ---------------------------------------------------------------------------

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn random_id(prefix: &str, len: usize) -> String {
    let tail: String = rand::rng()
        .sample_iter(&Alphanumeric)
        .take(len)
        .map(char::from)
        .collect();
    format!("{prefix}{tail}")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn hex_digit(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b'%' => {
                match (
                    bytes.get(i + 1).copied().and_then(hex_digit),
                    bytes.get(i + 2).copied().and_then(hex_digit),
                ) {
                    (Some(hi), Some(lo)) => {
                        out.push(hi * 16 + lo);
                        i += 3;
                    }
                    _ => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The `prefix[key]` parameters as a JSON object of strings (Stripe's
/// `metadata[k]=v`); keys with further brackets are skipped.
fn bracket_map(params: &[(String, String)], prefix: &str) -> Map<String, Value> {
    let mut map = Map::new();
    for (k, v) in params {
        if let Some(key) = k
            .strip_prefix(prefix)
            .and_then(|rest| rest.strip_prefix('['))
            .and_then(|rest| rest.strip_suffix(']'))
            .filter(|key| !key.contains('[') && !key.contains(']'))
        {
            map.insert(key.to_string(), json!(v));
        }
    }
    map
}

/// Stripe's metadata update: `metadata[k]=v` sets, `metadata[k]=` unsets,
/// `metadata=` clears everything.
fn merge_metadata(target: &mut Value, params: &[(String, String)], prefix: &str) {
    if !target.is_object() {
        *target = json!({});
    }
    if param(params, prefix) == Some("") {
        *target = json!({});
    }
    let obj = target.as_object_mut().expect("metadata is an object");
    for (k, v) in bracket_map(params, prefix) {
        if v.as_str() == Some("") {
            obj.remove(&k);
        } else {
            obj.insert(k, v);
        }
    }
}

/// Stripe's create-time metadata: empty values are dropped.
fn metadata_from(params: &[(String, String)], prefix: &str) -> Value {
    let mut m = json!({});
    merge_metadata(&mut m, params, prefix);
    m
}

fn opt_str(v: Option<&str>) -> Value {
    v.map_or(Value::Null, |s| json!(s))
}

// ---------------------------------------------------------------------------
// Replies and Stripe errors
// ---------------------------------------------------------------------------

type Reply = (StatusCode, Value);

fn ok(body: Value) -> Reply {
    (StatusCode::OK, body)
}

fn stripe_error(
    status: StatusCode,
    type_: &str,
    code: Option<&str>,
    message: String,
    param: Option<&str>,
) -> Reply {
    let mut error = json!({ "type": type_, "message": message });
    if let Some(code) = code {
        error["code"] = json!(code);
        error["doc_url"] = json!(format!(
            "https://stripe.com/docs/error-codes/{}",
            code.replace('_', "-")
        ));
    }
    if let Some(param) = param {
        error["param"] = json!(param);
    }
    (status, json!({ "error": error }))
}

/// 404 for an unknown id in the URL.
fn no_such(kind: &str, id: &str) -> Reply {
    stripe_error(
        StatusCode::NOT_FOUND,
        "invalid_request_error",
        Some("resource_missing"),
        format!("No such {kind}: '{id}'"),
        Some("id"),
    )
}

/// 400 for an unknown id given as a parameter.
fn no_such_param(kind: &str, id: &str, param: &str) -> Reply {
    stripe_error(
        StatusCode::BAD_REQUEST,
        "invalid_request_error",
        Some("resource_missing"),
        format!("No such {kind}: '{id}'"),
        Some(param),
    )
}

fn missing_param(name: &str) -> Reply {
    stripe_error(
        StatusCode::BAD_REQUEST,
        "invalid_request_error",
        Some("parameter_missing"),
        format!("Missing required param: {name}."),
        Some(name),
    )
}

fn invalid_param(name: &str, message: String) -> Reply {
    stripe_error(
        StatusCode::BAD_REQUEST,
        "invalid_request_error",
        Some("parameter_invalid_string"),
        message,
        Some(name),
    )
}

fn parse_bool(params: &[(String, String)], name: &str) -> Result<Option<bool>, Reply> {
    match param(params, name) {
        None => Ok(None),
        Some("true") => Ok(Some(true)),
        Some("false") => Ok(Some(false)),
        Some(other) => Err(invalid_param(name, format!("Invalid boolean: {other}"))),
    }
}

fn parse_int(params: &[(String, String)], name: &str) -> Result<Option<i64>, Reply> {
    match param(params, name) {
        None => Ok(None),
        Some(v) => v
            .parse()
            .map(Some)
            .map_err(|_| invalid_param(name, format!("Invalid integer: {v}"))),
    }
}

// ---------------------------------------------------------------------------
// State
// ---------------------------------------------------------------------------

/// A response stored under an idempotency key.
struct Saved {
    method: String,
    path: String,
    params: Vec<(String, String)>,
    status: StatusCode,
    body: Value,
    request_id: String,
}

#[derive(Default)]
struct State {
    requests: Vec<Recorded>,
    customers: Vec<Value>,
    deleted_customers: Vec<String>,
    checkout_sessions: Vec<Value>,
    session_params: HashMap<String, Vec<(String, String)>>,
    portal_sessions: Vec<Value>,
    subscriptions: Vec<Value>,
    invoices: Vec<Value>,
    idempotency: HashMap<String, Saved>,
    fail_next: usize,
    last_invoice_created: i64,
    invoice_count: u32,
    accounts: Vec<Value>,
    balances: Vec<String>,
    account_links: Vec<Vec<(String, String)>>,
    login_links: u32,
}

impl State {
    fn stored_customer(&self, id: &str) -> Option<&Value> {
        self.customers.iter().find(|c| c["id"] == id)
    }

    fn is_deleted(&self, id: &str) -> bool {
        self.deleted_customers.iter().any(|d| d == id)
    }

    /// A live (not deleted) customer.
    fn live_customer(&self, id: &str) -> Option<&Value> {
        self.stored_customer(id).filter(|_| !self.is_deleted(id))
    }

    fn customer_view(&self, id: &str) -> Option<Value> {
        let stored = self.stored_customer(id)?;
        if self.is_deleted(id) {
            let mut deleted = fixture("deleted_customer");
            deleted["id"] = json!(id);
            Some(deleted)
        } else {
            Some(stored.clone())
        }
    }

    fn session(&self, id: &str) -> Option<&Value> {
        self.checkout_sessions.iter().find(|s| s["id"] == id)
    }

    fn subscription(&self, id: &str) -> Option<&Value> {
        self.subscriptions.iter().find(|s| s["id"] == id)
    }

    fn subscription_mut(&mut self, id: &str) -> Option<&mut Value> {
        self.subscriptions.iter_mut().find(|s| s["id"] == id)
    }

    fn complete_checkout(&mut self, session_id: &str) -> (Value, Value) {
        let session = self
            .session(session_id)
            .unwrap_or_else(|| panic!("fake Stripe: no Checkout Session {session_id}"))
            .clone();
        assert_eq!(
            session["status"], "open",
            "fake Stripe: Checkout Session {session_id} is not open"
        );
        let params = self
            .session_params
            .get(session_id)
            .cloned()
            .unwrap_or_default();

        let customer_id = match session["customer"].as_str() {
            Some(id) => id.to_string(),
            None => {
                let mut new_params = Vec::new();
                if let Some(email) = param(&params, "customer_email") {
                    new_params.push(("email".to_string(), email.to_string()));
                }
                let customer = new_customer(&new_params);
                let id = customer["id"].as_str().expect("customer id").to_string();
                self.customers.push(customer);
                id
            }
        };

        let mode = session["mode"].as_str().unwrap_or("payment");
        let subscription = if mode == "subscription" {
            let price = param(&params, "line_items[0][price]")
                .expect("fake Stripe: subscription session without line_items[0][price]");
            let trial_end = param(&params, "subscription_data[trial_end]")
                .and_then(|t| t.parse::<i64>().ok())
                .or_else(|| {
                    param(&params, "subscription_data[trial_period_days]")
                        .and_then(|d| d.parse::<i64>().ok())
                        .map(|days| now() + days * DAY)
                });
            let status = if trial_end.is_some() {
                "trialing"
            } else {
                "active"
            };
            let metadata = bracket_map(&params, "subscription_data[metadata]");
            let sub = new_subscription(&customer_id, price, status, trial_end, metadata);
            self.subscriptions.push(sub.clone());
            sub
        } else {
            Value::Null
        };

        let customer = self.stored_customer(&customer_id).cloned();
        let session = self
            .checkout_sessions
            .iter_mut()
            .find(|s| s["id"] == session_id)
            .expect("session still stored");
        session["status"] = json!("complete");
        session["customer"] = json!(customer_id);
        session["url"] = Value::Null;
        session["payment_status"] = json!(if subscription["status"] == "trialing" {
            "no_payment_required"
        } else {
            "paid"
        });
        if !subscription.is_null() {
            session["subscription"] = subscription["id"].clone();
        }
        let mut details = fixture("checkout.session")["customer_details"].clone();
        let email = customer
            .as_ref()
            .map(|c| c["email"].clone())
            .filter(|e| !e.is_null())
            .unwrap_or_else(|| session["customer_email"].clone());
        details["email"] = email;
        details["name"] = customer.as_ref().map_or(Value::Null, |c| c["name"].clone());
        session["customer_details"] = details;
        (session.clone(), subscription)
    }

    fn add_invoice(
        &mut self,
        customer: &str,
        subscription: Option<&str>,
        amount: i64,
        status: &str,
    ) -> Value {
        let created = now().max(self.last_invoice_created + 1);
        self.last_invoice_created = created;
        self.invoice_count += 1;
        let number = format!("SWB-{:04}", self.invoice_count);
        let sub = subscription.and_then(|id| self.subscription(id)).cloned();
        let cust = self.stored_customer(customer).cloned();
        let invoice = new_invoice(&InvoiceSpec {
            customer,
            customer_obj: cust.as_ref(),
            subscription,
            subscription_obj: sub.as_ref(),
            amount,
            status,
            created,
            number: &number,
        });
        if let Some(id) = subscription
            && let Some(s) = self.subscription_mut(id)
        {
            s["latest_invoice"] = invoice["id"].clone();
        }
        self.invoices.push(invoice.clone());
        invoice
    }
}

// ---------------------------------------------------------------------------
// Object builders (from the fixtures)
// ---------------------------------------------------------------------------

fn new_customer(params: &[(String, String)]) -> Value {
    let mut c = fixture("customer");
    c["id"] = json!(random_id("cus_", 14));
    c["object"] = json!("customer");
    c["created"] = json!(now());
    c["email"] = opt_str(param(params, "email"));
    c["name"] = opt_str(param(params, "name"));
    c["description"] = opt_str(param(params, "description"));
    c["phone"] = opt_str(param(params, "phone"));
    c["metadata"] = metadata_from(params, "metadata");
    c["discount"] = Value::Null;
    c["livemode"] = json!(false);
    c["invoice_prefix"] = json!(random_id("", 8).to_uppercase());
    if let Some(obj) = c.as_object_mut() {
        obj.remove("deleted");
    }
    c
}

fn new_subscription(
    customer: &str,
    price: &str,
    status: &str,
    trial_end: Option<i64>,
    metadata: Map<String, Value>,
) -> Value {
    let now = now();
    let id = random_id("sub_", 24);
    let mut s = fixture("subscription");

    let mut item = s["items"]["data"][0].clone();
    item["id"] = json!(random_id("si_", 14));
    item["object"] = json!("subscription_item");
    item["subscription"] = json!(id);
    item["created"] = json!(now);
    item["metadata"] = json!({});
    item["discounts"] = json!([]);
    item["billing_thresholds"] = Value::Null;
    item["price"]["id"] = json!(price);
    item["plan"]["id"] = json!(price);
    item["quantity"] = json!(1);
    item["current_period_start"] = json!(now);
    item["current_period_end"] = json!(now + 30 * DAY);

    s["id"] = json!(id);
    s["object"] = json!("subscription");
    s["customer"] = json!(customer);
    s["status"] = json!(status);
    s["created"] = json!(now);
    s["start_date"] = json!(now);
    s["billing_cycle_anchor"] = json!(trial_end.unwrap_or(now));
    s["billing_cycle_anchor_config"] = Value::Null;
    s["billing_thresholds"] = Value::Null;
    s["cancel_at_period_end"] = json!(false);
    s["cancel_at"] = Value::Null;
    s["canceled_at"] = Value::Null;
    s["ended_at"] = Value::Null;
    s["cancellation_details"] = json!({ "comment": null, "feedback": null, "reason": null });
    s["trial_start"] = if trial_end.is_some() {
        json!(now)
    } else {
        Value::Null
    };
    s["trial_end"] = opt_i64(trial_end);
    s["latest_invoice"] = Value::Null;
    s["livemode"] = json!(false);
    s["metadata"] = Value::Object(metadata);
    s["schedule"] = Value::Null;
    s["pending_update"] = Value::Null;
    s["pending_setup_intent"] = Value::Null;
    s["pending_invoice_item_interval"] = Value::Null;
    s["next_pending_invoice_item_invoice"] = Value::Null;
    s["transfer_data"] = Value::Null;
    s["pause_collection"] = Value::Null;
    s["discounts"] = json!([]);
    s["test_clock"] = Value::Null;
    s["items"] = json!({
        "object": "list",
        "data": [item],
        "has_more": false,
        "url": format!("/v1/subscription_items?subscription={id}"),
    });
    s
}

fn opt_i64(v: Option<i64>) -> Value {
    v.map_or(Value::Null, |n| json!(n))
}

struct InvoiceSpec<'a> {
    customer: &'a str,
    customer_obj: Option<&'a Value>,
    subscription: Option<&'a str>,
    subscription_obj: Option<&'a Value>,
    amount: i64,
    status: &'a str,
    created: i64,
    number: &'a str,
}

fn new_invoice(spec: &InvoiceSpec<'_>) -> Value {
    let id = random_id("in_", 24);
    let paid = spec.status == "paid";
    let draft = spec.status == "draft";
    let amount_paid = if paid { spec.amount } else { 0 };
    let amount_remaining = if spec.status == "void" {
        0
    } else {
        spec.amount - amount_paid
    };
    let created = spec.created;

    let mut inv = fixture("invoice");
    inv["id"] = json!(id);
    inv["object"] = json!("invoice");
    inv["customer"] = json!(spec.customer);
    inv["status"] = json!(spec.status);
    inv["amount_due"] = json!(spec.amount);
    inv["amount_paid"] = json!(amount_paid);
    inv["amount_remaining"] = json!(amount_remaining);
    inv["amount_overpaid"] = json!(0);
    inv["total"] = json!(spec.amount);
    inv["subtotal"] = json!(spec.amount);
    inv["total_excluding_tax"] = json!(spec.amount);
    inv["subtotal_excluding_tax"] = json!(spec.amount);
    inv["currency"] = json!("usd");
    inv["created"] = json!(created);
    inv["livemode"] = json!(false);
    inv["period_start"] = json!(created);
    inv["period_end"] = json!(created);
    inv["effective_at"] = if draft { Value::Null } else { json!(created) };
    inv["due_date"] = Value::Null;
    inv["attempted"] = json!(!draft);
    inv["attempt_count"] = json!(i64::from(!draft));
    inv["auto_advance"] = json!(spec.status == "open" || draft);
    inv["next_payment_attempt"] = if spec.status == "open" {
        json!(created + 3 * DAY)
    } else {
        Value::Null
    };
    inv["last_finalization_error"] = Value::Null;
    inv["from_invoice"] = Value::Null;
    inv["webhooks_delivered_at"] = json!(created);
    inv["billing_reason"] = json!(if spec.subscription.is_some() {
        "subscription_cycle"
    } else {
        "manual"
    });
    // Stripe gives drafts no number and no hosted page yet.
    if draft {
        inv["number"] = Value::Null;
        inv["hosted_invoice_url"] = Value::Null;
        inv["invoice_pdf"] = Value::Null;
    } else {
        inv["number"] = json!(spec.number);
        inv["hosted_invoice_url"] = json!(format!("https://invoice.stripe.com/i/{id}"));
        inv["invoice_pdf"] = json!(format!("https://pay.stripe.com/invoice/{id}/pdf"));
    }
    inv["status_transitions"] = json!({
        "finalized_at": if draft { Value::Null } else { json!(created) },
        "marked_uncollectible_at": if spec.status == "uncollectible" { json!(created) } else { Value::Null },
        "paid_at": if paid { json!(created) } else { Value::Null },
        "voided_at": if spec.status == "void" { json!(created) } else { Value::Null },
    });
    if let Some(c) = spec.customer_obj {
        inv["customer_email"] = c["email"].clone();
        inv["customer_name"] = c["name"].clone();
    }
    inv["subscription"] = opt_str(spec.subscription);
    inv["parent"] = match spec.subscription {
        Some(sub) => {
            let mut parent = inv["parent"].clone();
            parent["type"] = json!("subscription_details");
            parent["quote_details"] = Value::Null;
            parent["subscription_details"]["subscription"] = json!(sub);
            parent["subscription_details"]["metadata"] = spec
                .subscription_obj
                .map_or(Value::Null, |s| s["metadata"].clone());
            parent
        }
        None => Value::Null,
    };

    // The one line: the whole amount.
    let mut line = inv["lines"]["data"][0].clone();
    line["id"] = json!(random_id("il_", 24));
    line["invoice"] = json!(id);
    line["amount"] = json!(spec.amount);
    line["subtotal"] = json!(spec.amount);
    line["currency"] = json!("usd");
    line["subscription"] = opt_str(spec.subscription);
    let item = spec.subscription_obj.map(|s| s["items"]["data"][0].clone());
    line["period"] = match &item {
        Some(item) => json!({
            "start": item["current_period_start"],
            "end": item["current_period_end"],
        }),
        None => json!({ "start": created, "end": created }),
    };
    if let (Some(sub), Some(item)) = (spec.subscription, &item) {
        line["description"] = json!("1 × Subscription");
        line["parent"]["type"] = json!("subscription_item_details");
        line["parent"]["invoice_item_details"] = Value::Null;
        line["parent"]["subscription_item_details"]["subscription"] = json!(sub);
        line["parent"]["subscription_item_details"]["subscription_item"] = item["id"].clone();
        line["parent"]["subscription_item_details"]["proration"] = json!(false);
        line["parent"]["subscription_item_details"]["proration_details"] =
            json!({ "credited_items": null });
    }
    inv["lines"] = json!({
        "object": "list",
        "data": [line],
        "has_more": false,
        "url": format!("/v1/invoices/{id}/lines"),
    });
    inv
}

// ---------------------------------------------------------------------------
// The HTTP side
// ---------------------------------------------------------------------------

fn header_string(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

fn respond(
    status: StatusCode,
    body: &Value,
    request_id: &str,
    idempotency_key: Option<&str>,
    replayed: bool,
) -> Response {
    let mut resp = (status, axum::Json(body.clone())).into_response();
    let headers = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(request_id) {
        headers.insert(HeaderName::from_static("request-id"), v);
    }
    if let Some(key) = idempotency_key
        && let Ok(v) = HeaderValue::from_str(key)
    {
        headers.insert(HeaderName::from_static("idempotency-key"), v);
    }
    if replayed {
        headers.insert(
            HeaderName::from_static("idempotent-replayed"),
            HeaderValue::from_static("true"),
        );
    }
    if status == StatusCode::UNAUTHORIZED {
        headers.insert(
            HeaderName::from_static("www-authenticate"),
            HeaderValue::from_static("Basic realm=\"Stripe\""),
        );
    }
    resp
}

async fn handle(
    AxumState(state): AxumState<Arc<Mutex<State>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_string();
    let mut params = uri.query().map(decode_form).unwrap_or_default();
    params.extend(decode_form(&String::from_utf8_lossy(&body)));
    let idempotency_key = header_string(&headers, "idempotency-key");
    let authorization = header_string(&headers, "authorization");
    let request_id = random_id("req_", 14);

    let mut st = state.lock().unwrap_or_else(PoisonError::into_inner);
    st.requests.push(Recorded {
        method: method.to_string(),
        path: path.clone(),
        params: params.clone(),
        idempotency_key: idempotency_key.clone(),
        authorization: authorization.clone(),
    });

    let is_post = method == Method::POST;
    let echo_key = idempotency_key.as_deref().filter(|_| is_post);

    if st.fail_next > 0 {
        st.fail_next -= 1;
        let (status, body) = stripe_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "api_error",
            None,
            "An unknown error occurred while processing your request. (fake Stripe: fail_next)"
                .to_string(),
            None,
        );
        return respond(status, &body, &request_id, echo_key, false);
    }

    let authorized = authorization
        .as_deref()
        .and_then(|a| a.strip_prefix("Bearer "))
        .is_some_and(|key| key.starts_with("sk_") && key.len() > 3);
    if !authorized {
        let (status, body) = stripe_error(
            StatusCode::UNAUTHORIZED,
            "invalid_request_error",
            None,
            "You did not provide an API key.".to_string(),
            None,
        );
        return respond(status, &body, &request_id, None, false);
    }

    if let Some(key) = echo_key
        && let Some(saved) = st.idempotency.get(key)
    {
        if saved.method == method.as_str() && saved.path == path && saved.params == params {
            return respond(saved.status, &saved.body, &saved.request_id, echo_key, true);
        }
        let (status, body) = stripe_error(
            StatusCode::BAD_REQUEST,
            "idempotency_error",
            None,
            format!(
                "Keys for idempotent requests can only be used with the same parameters they \
                 were first used with. Try using a key other than '{key}' if you meant to \
                 execute a different request."
            ),
            None,
        );
        return respond(status, &body, &request_id, echo_key, false);
    }

    let (status, body) = route(&mut st, &method, &path, &params);

    // Stripe saves the result once the endpoint has started executing; a
    // request that failed validation (400) saves nothing.
    if let Some(key) = echo_key
        && status != StatusCode::BAD_REQUEST
    {
        st.idempotency.insert(
            key.to_string(),
            Saved {
                method: method.to_string(),
                path: path.clone(),
                params,
                status,
                body: body.clone(),
                request_id: request_id.clone(),
            },
        );
    }
    respond(status, &body, &request_id, echo_key, false)
}

fn route(st: &mut State, method: &Method, path: &str, params: &[(String, String)]) -> Reply {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    if let Some(reply) = connect::route(st, method.as_str(), &segments, params) {
        return reply;
    }
    match (method.as_str(), segments.as_slice()) {
        ("POST", ["v1", "customers"]) => create_customer(st, params),
        ("GET", ["v1", "customers", id]) => match st.customer_view(id) {
            Some(c) => ok(c),
            None => no_such("customer", id),
        },
        ("POST", ["v1", "customers", id]) => update_customer(st, id, params),
        ("DELETE", ["v1", "customers", id]) => delete_customer(st, id),
        ("POST", ["v1", "checkout", "sessions"]) => create_checkout_session(st, params),
        ("GET", ["v1", "checkout", "sessions", id]) => match st.session(id) {
            Some(s) => ok(s.clone()),
            None => no_such("checkout.session", id),
        },
        ("POST", ["v1", "billing_portal", "sessions"]) => create_portal_session(st, params),
        ("GET", ["v1", "subscriptions"]) => list_subscriptions(st, params),
        ("GET", ["v1", "subscriptions", id]) => match st.subscription(id) {
            Some(s) => ok(s.clone()),
            None => no_such("subscription", id),
        },
        ("POST", ["v1", "subscriptions"]) => custom_prices::create_subscription(st, params),
        ("POST", ["v1", "subscriptions", id]) => update_subscription(st, id, params),
        ("DELETE", ["v1", "subscriptions", id]) => cancel_subscription(st, id),
        ("GET", ["v1", "invoices"]) => list_invoices(st, params),
        ("GET", ["v1", "invoices", id]) => match st.invoices.iter().find(|i| i["id"] == *id) {
            Some(i) => ok(i.clone()),
            None => no_such("invoice", id),
        },
        _ => stripe_error(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            None,
            format!("Unrecognized request URL ({method}: {path})"),
            None,
        ),
    }
}

// ---------------------------------------------------------------------------
// Endpoints
// ---------------------------------------------------------------------------

fn create_customer(st: &mut State, params: &[(String, String)]) -> Reply {
    let customer = new_customer(params);
    st.customers.push(customer.clone());
    ok(customer)
}

fn update_customer(st: &mut State, id: &str, params: &[(String, String)]) -> Reply {
    if st.live_customer(id).is_none() {
        return no_such("customer", id);
    }
    let c = st
        .customers
        .iter_mut()
        .find(|c| c["id"] == id)
        .expect("customer stored");
    for field in ["email", "name", "description", "phone"] {
        if let Some(v) = param(params, field) {
            c[field] = if v.is_empty() { Value::Null } else { json!(v) };
        }
    }
    merge_metadata(&mut c["metadata"], params, "metadata");
    ok(c.clone())
}

fn delete_customer(st: &mut State, id: &str) -> Reply {
    if st.live_customer(id).is_none() {
        return no_such("customer", id);
    }
    st.deleted_customers.push(id.to_string());
    let now = now();
    for s in st.subscriptions.iter_mut().filter(|s| s["customer"] == id) {
        if s["status"] != "canceled" {
            s["status"] = json!("canceled");
            s["canceled_at"] = json!(now);
            s["ended_at"] = json!(now);
        }
    }
    let mut deleted = fixture("deleted_customer");
    deleted["id"] = json!(id);
    ok(deleted)
}

fn create_checkout_session(st: &mut State, params: &[(String, String)]) -> Reply {
    let Some(mode) = param(params, "mode") else {
        return missing_param("mode");
    };
    if !matches!(mode, "payment" | "setup" | "subscription") {
        return invalid_param(
            "mode",
            format!("Invalid mode: must be one of payment, setup, or subscription (got {mode})"),
        );
    }
    let Some(success_url) = param(params, "success_url") else {
        return missing_param("success_url");
    };
    if mode == "subscription" && param(params, "line_items[0][price]").is_none() {
        return missing_param("line_items[0][price]");
    }
    let customer = param(params, "customer");
    if let Some(c) = customer
        && st.live_customer(c).is_none()
    {
        return no_such_param("customer", c, "customer");
    }
    if let Err(e) = parse_int(params, "subscription_data[trial_end]") {
        return e;
    }

    let now = now();
    let id = random_id("cs_test_", 24);
    let mut s = fixture("checkout.session");
    s["id"] = json!(id);
    s["object"] = json!("checkout.session");
    s["url"] = json!(format!("https://checkout.stripe.com/c/pay/{id}"));
    s["mode"] = json!(mode);
    s["customer"] = opt_str(customer);
    s["customer_email"] = opt_str(param(params, "customer_email"));
    s["customer_details"] = Value::Null;
    s["client_reference_id"] = opt_str(param(params, "client_reference_id"));
    s["status"] = json!("open");
    s["payment_status"] = json!("unpaid");
    s["payment_intent"] = Value::Null;
    s["subscription"] = Value::Null;
    s["invoice"] = Value::Null;
    s["success_url"] = json!(success_url);
    s["cancel_url"] = opt_str(param(params, "cancel_url"));
    s["metadata"] = metadata_from(params, "metadata");
    s["created"] = json!(now);
    s["expires_at"] = json!(now + DAY);
    s["livemode"] = json!(false);
    if mode == "payment" {
        connect::price_data_totals(&mut s, params);
    }
    st.session_params.insert(id.clone(), params.to_vec());
    st.checkout_sessions.push(s.clone());
    ok(s)
}

fn create_portal_session(st: &mut State, params: &[(String, String)]) -> Reply {
    let Some(customer) = param(params, "customer") else {
        return missing_param("customer");
    };
    if st.live_customer(customer).is_none() {
        return no_such("customer", customer);
    }
    let id = random_id("bps_", 24);
    let mut s = fixture("billing_portal.session");
    s["id"] = json!(id);
    s["object"] = json!("billing_portal.session");
    s["customer"] = json!(customer);
    s["return_url"] = opt_str(param(params, "return_url"));
    s["url"] = json!(format!("https://billing.stripe.com/p/session/{id}"));
    s["created"] = json!(now());
    s["livemode"] = json!(false);
    s["flow"] = Value::Null;
    st.portal_sessions.push(s.clone());
    ok(s)
}

fn update_subscription(st: &mut State, id: &str, params: &[(String, String)]) -> Reply {
    let Some(current) = st.subscription(id).cloned() else {
        return no_such("subscription", id);
    };

    if current["status"] == "canceled" {
        let allowed = |k: &str| {
            k.starts_with("metadata")
                || k.starts_with("cancellation_details")
                || k.starts_with("expand")
        };
        if params.iter().any(|(k, _)| !allowed(k)) {
            return stripe_error(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                None,
                "A canceled subscription can only update its cancellation_details and metadata."
                    .to_string(),
                None,
            );
        }
    }

    let cancel_at_period_end = match parse_bool(params, "cancel_at_period_end") {
        Ok(v) => v,
        Err(e) => return e,
    };
    let quantity = match parse_int(params, "items[0][quantity]") {
        Ok(v) => v,
        Err(e) => return e,
    };

    let mut sub = current;
    let touches_items = params.iter().any(|(k, _)| k.starts_with("items["));
    if touches_items {
        let Some(item_id) = param(params, "items[0][id]") else {
            return missing_param("items[0][id]");
        };
        let Some(item) = sub["items"]["data"]
            .as_array_mut()
            .and_then(|items| items.iter_mut().find(|i| i["id"] == item_id))
        else {
            return no_such_param("subscription item", item_id, "items[0][id]");
        };
        if let Some(price) = param(params, "items[0][price]") {
            item["price"]["id"] = json!(price);
            item["plan"]["id"] = json!(price);
        } else if params
            .iter()
            .any(|(k, _)| k.starts_with("items[0][price_data]"))
        {
            match custom_prices::item_price(params, "items[0]") {
                Ok(Some(price)) => custom_prices::set_item_price(item, &price),
                Ok(None) => {}
                Err(e) => return e,
            }
        }
        if let Some(q) = quantity {
            item["quantity"] = json!(q);
        }
    }

    let now = now();
    if let Some(flag) = cancel_at_period_end {
        sub["cancel_at_period_end"] = json!(flag);
        if flag {
            sub["cancel_at"] = sub["items"]["data"][0]["current_period_end"].clone();
            sub["canceled_at"] = json!(now);
            sub["cancellation_details"]["reason"] = json!("cancellation_requested");
        } else {
            sub["cancel_at"] = Value::Null;
            sub["canceled_at"] = Value::Null;
            sub["cancellation_details"]["reason"] = Value::Null;
        }
    }
    merge_metadata(&mut sub["metadata"], params, "metadata");

    let stored = st.subscription_mut(id).expect("subscription stored");
    *stored = sub.clone();
    ok(sub)
}

fn cancel_subscription(st: &mut State, id: &str) -> Reply {
    let Some(sub) = st.subscription_mut(id) else {
        return no_such("subscription", id);
    };
    // Stripe answers resource_missing when cancelling an already canceled subscription.
    if sub["status"] == "canceled" {
        return no_such("subscription", id);
    }
    let now = now();
    sub["status"] = json!("canceled");
    sub["canceled_at"] = json!(now);
    sub["ended_at"] = json!(now);
    sub["cancellation_details"]["reason"] = json!("cancellation_requested");
    ok(sub.clone())
}

fn list_subscriptions(st: &State, params: &[(String, String)]) -> Reply {
    let customer = param(params, "customer");
    let status = param(params, "status");
    let items: Vec<Value> = st
        .subscriptions
        .iter()
        .rev()
        .filter(|s| customer.is_none_or(|c| s["customer"] == c))
        .filter(|s| {
            let st = s["status"].as_str().unwrap_or("");
            match status {
                None => st != "canceled",
                Some("all") => true,
                Some("ended") => matches!(st, "canceled" | "incomplete_expired"),
                Some(wanted) => st == wanted,
            }
        })
        .cloned()
        .collect();
    paginate(items, params, "/v1/subscriptions", "subscription")
}

fn list_invoices(st: &State, params: &[(String, String)]) -> Reply {
    let customer = param(params, "customer");
    let subscription = param(params, "subscription");
    let status = param(params, "status");
    let items: Vec<Value> = st
        .invoices
        .iter()
        .rev()
        .filter(|i| customer.is_none_or(|c| i["customer"] == c))
        .filter(|i| subscription.is_none_or(|s| i["subscription"] == s))
        .filter(|i| status.is_none_or(|s| i["status"] == s))
        .cloned()
        .collect();
    paginate(items, params, "/v1/invoices", "invoice")
}

/// A Stripe list object over `items` (already newest first), honouring
/// `limit` (1–100, default 10), `starting_after` and `ending_before`.
fn paginate(items: Vec<Value>, params: &[(String, String)], url: &str, kind: &str) -> Reply {
    let limit = match parse_int(params, "limit") {
        Ok(l) => l.unwrap_or(10),
        Err(e) => return e,
    };
    if !(1..=100).contains(&limit) {
        return stripe_error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            Some("parameter_invalid_integer"),
            format!("Invalid limit: must be between 1 and 100 (got {limit})"),
            Some("limit"),
        );
    }
    let limit = usize::try_from(limit).expect("limit is positive");
    let position = |name: &str, id: &str| -> Result<usize, Reply> {
        items
            .iter()
            .position(|i| i["id"] == id)
            .ok_or_else(|| no_such_param(kind, id, name))
    };

    let (page, has_more) = if let Some(before) = param(params, "ending_before") {
        let end = match position("ending_before", before) {
            Ok(p) => p,
            Err(e) => return e,
        };
        let start = end.saturating_sub(limit);
        (items[start..end].to_vec(), start > 0)
    } else {
        let start = match param(params, "starting_after") {
            Some(after) => match position("starting_after", after) {
                Ok(p) => p + 1,
                Err(e) => return e,
            },
            None => 0,
        };
        let end = (start + limit).min(items.len());
        (items[start..end].to_vec(), end < items.len())
    };
    ok(json!({
        "object": "list",
        "data": page,
        "has_more": has_more,
        "url": url,
    }))
}

// ---------------------------------------------------------------------------
// Self-tests
// ---------------------------------------------------------------------------

/// The `Authorization` header the self-tests send.
const TEST_AUTH: &str = "Bearer sk_test_fake";

/// POSTs a form body to the fake; returns status, JSON body and headers.
async fn post_form(
    client: &reqwest::Client,
    url: &str,
    body: &str,
    key: Option<&str>,
) -> (u16, Value, reqwest::header::HeaderMap) {
    let mut req = client
        .post(url)
        .header("authorization", TEST_AUTH)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body.to_string());
    if let Some(k) = key {
        req = req.header("idempotency-key", k);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    (status, resp.json().await.unwrap(), headers)
}

#[tokio::test]
async fn fake_stripe_speaks_form_and_idempotency() {
    let fake = FakeStripe::start().await;
    let client = reqwest::Client::new();
    let url = format!("{}/v1/customers", fake.url);
    let body = "email=ada%40example.com&name=Ada+Lovelace&metadata[business_id]=b%2B1";

    let (s1, first, h1) = post_form(&client, &url, body, Some("key-1")).await;
    assert_eq!(s1, 200, "{first}");
    assert!(first["id"].as_str().unwrap().starts_with("cus_"));
    assert_eq!(first["email"], "ada@example.com");
    assert_eq!(first["name"], "Ada Lovelace");
    assert_eq!(first["metadata"]["business_id"], "b+1");
    assert!(first.get("deleted").is_none());
    assert!(h1.get("idempotent-replayed").is_none());

    let (s2, replay, h2) = post_form(&client, &url, body, Some("key-1")).await;
    assert_eq!(s2, 200);
    assert_eq!(replay, first, "the replay is the first response");
    assert_eq!(h2["idempotent-replayed"], "true");
    assert_eq!(h2["request-id"], h1["request-id"]);
    assert_eq!(fake.requests_to("POST", "/v1/customers").len(), 2);
    assert_eq!(fake.lock().customers.len(), 1, "one customer created");

    let (s3, err, _) = post_form(&client, &url, "email=other%40example.com", Some("key-1")).await;
    assert_eq!(s3, 400);
    assert_eq!(err["error"]["type"], "idempotency_error");

    let recorded = fake.requests();
    assert_eq!(recorded.len(), 3);
    assert_eq!(recorded[0].param("metadata[business_id]"), Some("b+1"));
    assert_eq!(recorded[0].idempotency_key.as_deref(), Some("key-1"));
    assert_eq!(recorded[0].authorization.as_deref(), Some(TEST_AUTH));

    // GET, deletion, 401, 404, fail_next.
    let id = first["id"].as_str().unwrap();
    let got: Value = client
        .get(format!("{}/v1/customers/{id}", fake.url))
        .header("authorization", TEST_AUTH)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(got, first);
    let unauth = client
        .get(format!("{}/v1/customers/{id}", fake.url))
        .send()
        .await
        .unwrap();
    assert_eq!(unauth.status().as_u16(), 401);
    let missing = client
        .get(format!("{}/v1/customers/cus_nope", fake.url))
        .header("authorization", TEST_AUTH)
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status().as_u16(), 404);
    let missing: Value = missing.json().await.unwrap();
    assert_eq!(missing["error"]["code"], "resource_missing");
    assert_eq!(missing["error"]["message"], "No such customer: 'cus_nope'");

    fake.fail_next(1);
    let (s4, failed, _) = post_form(&client, &url, "email=x%40y.z", None).await;
    assert_eq!(s4, 500);
    assert_eq!(failed["error"]["type"], "api_error");
    let (s5, _, _) = post_form(&client, &url, "email=x%40y.z", None).await;
    assert_eq!(s5, 200);

    let deleted = client
        .delete(format!("{}/v1/customers/{id}", fake.url))
        .header("authorization", TEST_AUTH)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status().as_u16(), 200);
    assert_eq!(
        fake.customer(id).unwrap(),
        json!({ "id": id, "object": "customer", "deleted": true })
    );

    // The signature: HMAC-SHA256 test vector computed independently.
    assert_eq!(
        signature("{\"id\":\"evt_1\"}", &["whsec_test"], 1_700_000_000),
        "t=1700000000,v1=c89214b5b5da833daed6f0b8c5bb6bd58cea9022bd80ccc78230f3942d632925"
    );
    let two = signature("payload", &["whsec_a", "whsec_b"], 42);
    let parts: Vec<&str> = two.split(',').collect();
    assert_eq!(parts.len(), 3);
    assert_eq!(parts[0], "t=42");
    assert!(
        parts[1..]
            .iter()
            .all(|p| p.starts_with("v1=") && p.len() == 3 + 64)
    );
    assert_ne!(parts[1], parts[2]);
}

#[test]
fn form_decoding() {
    let p = decode_form("a=1&line_items%5B0%5D%5Bprice%5D=price_x&b=x+y%20z&c=&d&e=%E2%9C%93%zz");
    assert_eq!(param(&p, "a"), Some("1"));
    assert_eq!(param(&p, "line_items[0][price]"), Some("price_x"));
    assert_eq!(param(&p, "b"), Some("x y z"));
    assert_eq!(param(&p, "c"), Some(""));
    assert_eq!(param(&p, "d"), Some(""));
    assert_eq!(param(&p, "e"), Some("✓%zz"));
    assert_eq!(param(&p, "missing"), None);
}

/// Parses `value` the way async-stripe parses a response body.
fn parses_as<T: miniserde::Deserialize>(what: &str, value: &Value) -> T {
    miniserde::json::from_str::<T>(&value.to_string())
        .unwrap_or_else(|_| panic!("async-stripe cannot parse the fake's {what}: {value}"))
}

#[tokio::test]
async fn fake_objects_parse_with_async_stripe_types() {
    let fake = FakeStripe::start().await;
    let client = reqwest::Client::new();
    let (_, customer, _) = post_form(
        &client,
        &format!("{}/v1/customers", fake.url),
        "email=a%40b.c",
        None,
    )
    .await;
    let cus = customer["id"].as_str().unwrap();
    let (status, session, _) = post_form(
        &client,
        &format!("{}/v1/checkout/sessions", fake.url),
        &format!(
            "mode=subscription&customer={cus}&line_items[0][price]=price_x&line_items[0][quantity]=1\
             &success_url=https%3A%2F%2Fa.test%2Fok&subscription_data[trial_end]=4102444800\
             &subscription_data[metadata][business_id]=b1"
        ),
        None,
    )
    .await;
    assert_eq!(status, 200, "{session}");
    let (status, portal, _) = post_form(
        &client,
        &format!("{}/v1/billing_portal/sessions", fake.url),
        &format!("customer={cus}&return_url=https%3A%2F%2Fa.test"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{portal}");

    let _: stripe_shared::Customer = parses_as("customer", &customer);
    let _: stripe_shared::CheckoutSession = parses_as("open session", &session);
    let _: stripe_billing::BillingPortalSession = parses_as("portal session", &portal);
    let (done, sub) = fake.complete_checkout(session["id"].as_str().unwrap());
    assert_eq!(done["status"], "complete");
    assert_eq!(done["subscription"], sub["id"]);
    assert_eq!(sub["status"], "trialing");
    assert_eq!(sub["trial_end"], 4_102_444_800_i64);
    assert_eq!(sub["metadata"], json!({ "business_id": "b1" }));
    assert_eq!(sub["items"]["data"][0]["price"]["id"], "price_x");
    let _: stripe_shared::CheckoutSession = parses_as("complete session", &done);
    let _: stripe_shared::Subscription = parses_as("subscription", &sub);
    for status in ["active", "past_due", "canceled", "unpaid", "incomplete"] {
        let s = fake.create_subscription(cus, "price_y", status);
        let _: stripe_shared::Subscription = parses_as(status, &s);
    }
    let sub_id = sub["id"].as_str().unwrap();
    for status in ["paid", "open", "draft", "void", "uncollectible"] {
        let inv = fake.add_invoice(cus, Some(sub_id), 2000, status);
        let _: stripe_shared::Invoice = parses_as(status, &inv);
    }
    let inv = fake.add_invoice(cus, None, 500, "paid");
    assert!(inv["parent"].is_null());
    let _: stripe_shared::Invoice = parses_as("invoice without subscription", &inv);
    let e = event("customer.subscription.updated", sub.clone(), 1_700_000_000);
    assert!(e["id"].as_str().unwrap().starts_with("evt_"));
    let _: stripe_shared::Event = parses_as("event", &e);
    let _: stripe_shared::Event =
        parses_as("event", &event_with_id("evt_1", "invoice.paid", inv, 1));
    let _: stripe_shared::DeletedCustomer =
        parses_as("deleted customer", &fixture("deleted_customer"));
}

#[tokio::test]
async fn async_stripe_client_round_trips() {
    use stripe_billing::billing_portal_session::CreateBillingPortalSession;
    use stripe_billing::invoice::ListInvoice;
    use stripe_billing::subscription::{
        CancelSubscription, ListSubscription, ListSubscriptionStatus, RetrieveSubscription,
        UpdateSubscription, UpdateSubscriptionItems, UpdateSubscriptionProrationBehavior,
    };
    use stripe_checkout::checkout_session::{
        CreateCheckoutSession, CreateCheckoutSessionLineItems,
        CreateCheckoutSessionSubscriptionData,
    };
    use stripe_core::customer::{
        CreateCustomer, DeleteCustomer, RetrieveCustomer, RetrieveCustomerReturned,
    };

    let fake = FakeStripe::start().await;
    let client = stripe::ClientBuilder::new("sk_test_fake")
        .url(fake.url.clone())
        .build()
        .unwrap();

    let customer = CreateCustomer::new()
        .email("ada@example.com")
        .name("Ada")
        .metadata([("business_id".to_string(), "b1".to_string())])
        .send(&client)
        .await
        .unwrap();
    assert_eq!(customer.email.as_deref(), Some("ada@example.com"));
    assert_eq!(customer.metadata.as_ref().unwrap()["business_id"], "b1");
    let posted = &fake.requests_to("POST", "/v1/customers")[0];
    assert_eq!(posted.authorization.as_deref(), Some("Bearer sk_test_fake"));
    assert_eq!(posted.param("metadata[business_id]"), Some("b1"));

    let mut line = CreateCheckoutSessionLineItems::new();
    line.price = Some("price_basic".to_string());
    line.quantity = Some(1);
    let mut sub_data = CreateCheckoutSessionSubscriptionData::new();
    sub_data.trial_end = Some(4_102_444_800);
    sub_data.metadata = Some([("business_id".to_string(), "b1".to_string())].into());
    let session = CreateCheckoutSession::new()
        .mode(stripe_shared::CheckoutSessionMode::Subscription)
        .customer(customer.id.as_str())
        .client_reference_id("b1")
        .line_items(vec![line])
        .subscription_data(sub_data)
        .success_url("https://app.test/ok")
        .send(&client)
        .await
        .unwrap();
    assert!(
        session
            .url
            .as_deref()
            .unwrap()
            .starts_with("https://checkout.stripe.com/c/pay/cs_test_")
    );
    let params = fake.checkout_session_params(session.id.as_str()).unwrap();
    assert_eq!(param(&params, "line_items[0][price]"), Some("price_basic"));
    assert_eq!(
        param(&params, "subscription_data[metadata][business_id]"),
        Some("b1")
    );

    let (_, sub) = fake.complete_checkout(session.id.as_str());
    let sub_id = sub["id"].as_str().unwrap().to_string();
    let item_id = sub["items"]["data"][0]["id"].as_str().unwrap().to_string();

    let got = RetrieveSubscription::new(sub_id.as_str())
        .send(&client)
        .await
        .unwrap();
    assert_eq!(got.status, stripe_shared::SubscriptionStatus::Trialing);
    assert_eq!(got.metadata["business_id"], "b1");

    let mut item = UpdateSubscriptionItems::new();
    item.id = Some(item_id);
    item.price = Some("price_pro".to_string());
    let updated = UpdateSubscription::new(sub_id.as_str())
        .items(vec![item])
        .proration_behavior(UpdateSubscriptionProrationBehavior::AlwaysInvoice)
        .cancel_at_period_end(true)
        .send(&client)
        .await
        .unwrap();
    assert!(updated.cancel_at_period_end);
    assert_eq!(updated.items.data[0].price.id.as_str(), "price_pro");
    let upd = fake.requests_to("POST", &format!("/v1/subscriptions/{sub_id}"));
    assert_eq!(upd[0].param("proration_behavior"), Some("always_invoice"));

    let mut bad = UpdateSubscriptionItems::new();
    bad.id = Some("si_wrong".to_string());
    bad.price = Some("price_pro".to_string());
    let err = UpdateSubscription::new(sub_id.as_str())
        .items(vec![bad])
        .send(&client)
        .await
        .unwrap_err();
    assert!(
        matches!(err, stripe::StripeError::Stripe(_, 400)),
        "{err:?}"
    );

    for _ in 0..3 {
        fake.add_invoice(customer.id.as_str(), Some(&sub_id), 2000, "paid");
    }
    let page1 = ListInvoice::new()
        .customer(customer.id.as_str())
        .limit(2)
        .send(&client)
        .await
        .unwrap();
    assert_eq!(page1.data.len(), 2);
    assert!(page1.has_more);
    assert!(
        page1.data[0].created > page1.data[1].created,
        "newest first"
    );
    let last = page1.data[1].id.as_ref().unwrap().as_str().to_string();
    let page2 = ListInvoice::new()
        .customer(customer.id.as_str())
        .limit(2)
        .starting_after(last)
        .send(&client)
        .await
        .unwrap();
    assert_eq!(page2.data.len(), 1);
    assert!(!page2.has_more);

    let portal = CreateBillingPortalSession::new()
        .customer(customer.id.as_str())
        .return_url("https://app.test/billing")
        .send(&client)
        .await
        .unwrap();
    assert!(
        portal
            .url
            .starts_with("https://billing.stripe.com/p/session/bps_")
    );

    let canceled = CancelSubscription::new(sub_id.as_str())
        .send(&client)
        .await
        .unwrap();
    assert_eq!(canceled.status, stripe_shared::SubscriptionStatus::Canceled);
    let listed = ListSubscription::new()
        .customer(customer.id.as_str())
        .send(&client)
        .await
        .unwrap();
    assert!(listed.data.is_empty(), "canceled ones hidden by default");
    let all = ListSubscription::new()
        .customer(customer.id.as_str())
        .status(ListSubscriptionStatus::All)
        .send(&client)
        .await
        .unwrap();
    assert_eq!(all.data.len(), 1);

    DeleteCustomer::new(customer.id.as_str())
        .send(&client)
        .await
        .unwrap();
    let gone = RetrieveCustomer::new(customer.id.as_str())
        .send(&client)
        .await
        .unwrap();
    assert!(matches!(gone, RetrieveCustomerReturned::DeletedCustomer(_)));

    fake.fail_next(1);
    let err = RetrieveCustomer::new("cus_any")
        .send(&client)
        .await
        .unwrap_err();
    assert!(
        matches!(err, stripe::StripeError::Stripe(_, 500)),
        "{err:?}"
    );
}
