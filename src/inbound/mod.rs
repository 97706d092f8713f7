//! Inbound webhooks: every system that calls Switchboard back (Stripe and
//! WAHA today; Telegram, n8n, Meta and Cloudinary next) goes through one
//! path:
//!
//! 1. **Raw body**: the handler takes the body as bytes (`axum::body::Bytes`);
//!    nothing is parsed before it is verified.
//! 2. **Verify** with the source's own scheme ([`stripe::signature`] for
//!    `Stripe-Signature`; [`verify`] holds the constant-time HMAC checks the
//!    other sources' schemes are made of). A delivery that fails changes
//!    nothing.
//! 3. **Parse** the verified body into the source's item: its event id, type,
//!    timestamp and the effect it asks for. Calls to the source's API (a
//!    re-fetch) happen here, before any transaction.
//! 4. **Commit** through the source's [`writer::Writer`]: items queued
//!    meanwhile are committed together, each with its [`ledger`] row
//!    (source, event id) in the transaction of its effect, so a duplicate
//!    is a no-op and a failure rolls both back; a failed batch is retried
//!    item by item, so one bad event fails alone.
//! 5. **Answer** as the source expects: 2xx once the event is recorded
//!    (processed, duplicate, or nothing of ours: [`Outcome`]), so the source
//!    stops retrying; 4xx for what a retry cannot fix (bad signature: 400 for
//!    Stripe, 401 for sources whose docs say so; malformed body: 400); 5xx
//!    when processing failed, after recording the failure in the ledger, so
//!    the source's retry processes it again.
//!
//! ## Adding a source
//!
//! A source is its verifier and its effect; the rest is shared. For WAHA
//! (hex HMAC-SHA512 of the raw body in `X-Webhook-Hmac`; WAHA docs:
//! security):
//!
//! ```text
//! // src/inbound/waha/mod.rs
//! pub const SOURCE: &str = "waha";
//! pub async fn receive(state: &AppState, headers: &HeaderMap, body: &[u8]) -> Result<Outcome> {
//!     let key = /* the session's HMAC key, from the vault */;
//!     if !verify::hmac_sha512_hex(key, body, header(headers, "x-webhook-hmac")?) {
//!         return Err(Error::unauthorized("signature_mismatch", "…"));   // 401: WAHA's contract
//!     }
//!     let env: Envelope = serde_json::from_slice(body).map_err(bad_body)?; // 400
//!     let item = Item { id: env.id, kind: env.event, created: env.timestamp, effect: effect_of(&env) };
//!     state.inbound.waha.submit(item, |items| Box::pin(commit(&ctx, items))).await
//! }
//! // commit(): ledger::done → apply the effects in memory → ledger::claim → writes, one transaction.
//! ```
//!
//! plus a `Writer` field in [`Writers`] and a route beside the source's
//! resource. A new source never touches the writer, the ledger or another
//! source.

pub mod ledger;
pub mod stripe;
pub mod verify;
pub mod waha;
pub mod writer;

/// What happened to a delivery that was accepted (answered 2xx).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Its effect is committed.
    Processed,
    /// Already processed: nothing done.
    Duplicate,
    /// A type Switchboard does not act on (or no business of ours): recorded.
    Ignored,
}

impl Outcome {
    /// Lower-case name for the response body.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Processed => "processed",
            Outcome::Duplicate => "duplicate",
            Outcome::Ignored => "ignored",
        }
    }
}

/// Each source's writer (one per process, started on first use).
#[derive(Default, Clone)]
pub struct Writers {
    /// Stripe events.
    pub stripe: stripe::event::StripeWriter,
    /// WAHA events.
    pub waha: waha::WahaWriter,
    /// WAHA sessions' connections and keys, remembered briefly.
    pub waha_keys: std::sync::Arc<waha::SessionKeys>,
}
