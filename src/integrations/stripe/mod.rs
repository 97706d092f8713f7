//! The Stripe API client, through async-stripe (form-encoded requests,
//! strictly typed JSON responses), with the base URL from configuration so
//! tests drive this exact code against local servers speaking Stripe's wire
//! format (our fake, and localstripe). One module per Stripe product:
//! [`billing`] (customers, Checkout, the customer portal, subscriptions,
//! invoices); [`connect`] (Express accounts, Account Links, login links).
//!
//! Every call returns Stripe's objects as async-stripe types; failures map to
//! problem details: Stripe unreachable or failing → 502 `stripe_unavailable`,
//! Stripe refusing the request → 502 `stripe_error` with Stripe's message.

pub mod billing;
pub mod connect;

use std::collections::HashMap;
use std::time::Duration;

use axum::http::StatusCode;
use secrecy::ExposeSecret;
use stripe::{Client, ClientBuilder, RequestStrategy, StripeError};
use stripe_shared::Invoice;
use uuid::Uuid;

use crate::config::StripeConfig;
use crate::error::Error;

/// Metadata key naming the business on Stripe objects we create.
pub const BUSINESS_METADATA_KEY: &str = "business_id";

/// A configured Stripe client (cheap to clone).
#[derive(Clone)]
pub struct StripeApi {
    client: Client,
}

/// A page of a customer's invoices.
pub struct InvoicePage {
    /// Newest first, as Stripe lists them.
    pub data: Vec<Invoice>,
    /// Whether Stripe has more after the last one.
    pub has_more: bool,
}

impl StripeApi {
    /// A client for `config.api_base` authenticated with the secret key.
    /// Requests without an explicit idempotency key are retried up to twice
    /// with one random key, so a retried create never creates twice.
    pub fn new(config: &StripeConfig) -> Result<StripeApi, Error> {
        let client = ClientBuilder::new(config.secret_key.expose_secret())
            // async-stripe joins `{base}v1{path}`: the base ends with a slash.
            .url(format!("{}/", config.api_base.trim_end_matches('/')))
            .timeout(Duration::from_secs(config.timeout_secs.max(1)))
            .request_strategy(RequestStrategy::Retry(2))
            .app_info("Switchboard", Some(env!("CARGO_PKG_VERSION").into()), None)
            .build()
            .map_err(Error::internal)?;
        Ok(StripeApi { client })
    }
}

/// The idempotency key of the business's customer creation.
pub fn customer_idempotency_key(business_id: Uuid) -> String {
    format!("switchboard-customer-{business_id}")
}

fn business_metadata(business_id: Uuid) -> HashMap<String, String> {
    HashMap::from([(BUSINESS_METADATA_KEY.to_owned(), business_id.to_string())])
}

fn is_missing(e: &StripeError) -> bool {
    matches!(e, StripeError::Stripe(_, 404))
}

/// Maps a failed Stripe call to a problem: Stripe's refusals keep its
/// message (never the API key, which async-stripe does not echo).
pub fn stripe_failure(e: StripeError) -> Error {
    match e {
        StripeError::Stripe(api, status) => {
            tracing::warn!(status, message = ?api.message, "Stripe refused a request");
            Error::new(
                StatusCode::BAD_GATEWAY,
                "stripe_error",
                "Stripe refused the request",
            )
            .with_detail(api.message.unwrap_or_else(|| "no message".into()))
            .with("stripe_status", status)
        }
        other => {
            tracing::warn!(error = %other, "Stripe request failed");
            Error::new(
                StatusCode::BAD_GATEWAY,
                "stripe_unavailable",
                "Stripe could not be reached",
            )
            .with_detail("Try again shortly.")
        }
    }
}
