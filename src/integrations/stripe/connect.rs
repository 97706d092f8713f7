//! Stripe Connect calls (Express accounts): create the business's
//! connected account, read it, Account Links for hosted onboarding, Express
//! dashboard login links, and the removal (delete, or reject where Stripe
//! refuses the delete).

use stripe::{IdempotencyKey, RequestStrategy, StripeRequest};
use stripe_connect::account::{
    CreateAccount, CreateAccountType, DeleteAccount, RejectAccount, RejectAccountReason,
    RetrieveAccount,
};
use stripe_connect::account_link::{CreateAccountLink, CreateAccountLinkType};
use stripe_connect::login_link::CreateAccountLoginLink;
use stripe_shared::Account;
use uuid::Uuid;

use super::{StripeApi, business_metadata, is_missing, stripe_failure};
use crate::error::Error;

/// The idempotency key of the business's `generation`-th connected-account
/// creation (how many accounts it removed before): a retried or concurrent
/// create within Stripe's 24-hour key lifetime gets the same account, never
/// a second, while a business that removed its account gets a new one.
pub fn account_idempotency_key(business_id: Uuid, generation: u64) -> String {
    format!("switchboard-connect-account-{business_id}-{generation}")
}

/// An Account Link or login link: a single-use URL and, for Account
/// Links, when it expires (Unix seconds).
pub struct Link {
    /// Where to send the person.
    pub url: String,
    /// Expiry (Unix seconds), for Account Links.
    pub expires_at: Option<i64>,
}

impl StripeApi {
    /// Creates the business's Express account (`POST /v1/accounts`,
    /// `type=express`, `country`, `email`, `metadata[business_id]`) under
    /// [`account_idempotency_key`] for `generation`.
    pub async fn create_express_account(
        &self,
        business_id: Uuid,
        generation: u64,
        country: &str,
        email: &str,
    ) -> Result<Account, Error> {
        let key = IdempotencyKey::new(account_idempotency_key(business_id, generation))
            .map_err(Error::internal)?;
        CreateAccount::new()
            .type_(CreateAccountType::Express)
            .country(country)
            .email(email)
            .metadata(business_metadata(business_id))
            .customize()
            .request_strategy(RequestStrategy::Idempotent(key))
            .send(&self.client)
            .await
            .map_err(stripe_failure)
    }

    /// The account `id` as Stripe has it now; `None` once deleted.
    pub async fn retrieve_account(&self, id: &str) -> Result<Option<Account>, Error> {
        match RetrieveAccount::new(id).send(&self.client).await {
            Ok(a) => Ok(Some(a)),
            Err(e) if is_missing(&e) => Ok(None),
            Err(e) => Err(stripe_failure(e)),
        }
    }

    /// An onboarding Account Link (`POST /v1/account_links`,
    /// `type=account_onboarding`): Stripe sends the person to `return_url`
    /// when done, to `refresh_url` when the link expired or was used.
    pub async fn create_onboarding_link(
        &self,
        account: &str,
        refresh_url: &str,
        return_url: &str,
    ) -> Result<Link, Error> {
        let link = CreateAccountLink::new(account, CreateAccountLinkType::AccountOnboarding)
            .refresh_url(refresh_url)
            .return_url(return_url)
            .send(&self.client)
            .await
            .map_err(stripe_failure)?;
        Ok(Link {
            url: link.url,
            expires_at: Some(link.expires_at),
        })
    }

    /// An Express dashboard login link (`POST /v1/accounts/{id}/login_links`).
    pub async fn create_login_link(&self, account: &str) -> Result<Link, Error> {
        let link = CreateAccountLoginLink::new(account)
            .send(&self.client)
            .await
            .map_err(stripe_failure)?;
        Ok(Link {
            url: link.url,
            expires_at: None,
        })
    }

    /// Removes account `id` from the platform: deletes it (`DELETE
    /// /v1/accounts/{id}`; Stripe allows it for Express accounts whose
    /// balances are zero) or, where Stripe refuses, rejects it (`POST
    /// /v1/accounts/{id}/reject`, `reason=other`). An account already gone
    /// is fine. Returns `true` when deleted, `false` when rejected.
    pub async fn remove_account(&self, id: &str) -> Result<bool, Error> {
        match DeleteAccount::new(id).send(&self.client).await {
            Ok(_) => Ok(true),
            Err(e) if is_missing(&e) => Ok(true),
            Err(stripe::StripeError::Stripe(_, 400)) => {
                match RejectAccount::new(id, RejectAccountReason::Other)
                    .send(&self.client)
                    .await
                {
                    Ok(_) => Ok(false),
                    Err(e) if is_missing(&e) => Ok(true),
                    Err(e) => Err(stripe_failure(e)),
                }
            }
            Err(e) => Err(stripe_failure(e)),
        }
    }
}

/// A payment asked of an end customer, as a Checkout Session.
pub struct DestinationCharge<'a> {
    /// Switchboard's purchase id (`client_reference_id`, and metadata of
    /// the session and of its PaymentIntent, so its charge names it too).
    pub purchase_id: Uuid,
    /// The business.
    pub business_id: Uuid,
    /// The connected account that receives the money.
    pub destination: &'a str,
    /// What is bought (the line item's product name).
    pub description: &'a str,
    /// Integer minor units.
    pub amount: i64,
    /// ISO 4217, lower case.
    pub currency: &'a str,
    /// The platform's fee, minor units (0: none).
    pub application_fee_amount: i64,
    /// Where Checkout sends the customer after paying.
    pub success_url: &'a str,
    /// Where Checkout sends the customer who gives up.
    pub cancel_url: &'a str,
}

impl StripeApi {
    /// A Checkout Session in `payment` mode whose charge goes to the
    /// connected account (a destination charge: `payment_intent_data
    /// [transfer_data][destination]`, with `application_fee_amount` when
    /// not 0; Stripe docs: Connect, "Destination charges"), under the
    /// idempotency key `switchboard-purchase-{id}`.
    pub async fn create_destination_checkout(
        &self,
        c: &DestinationCharge<'_>,
    ) -> Result<stripe_shared::CheckoutSession, Error> {
        use std::str::FromStr;
        use stripe_checkout::checkout_session::{
            CreateCheckoutSession, CreateCheckoutSessionLineItems,
            CreateCheckoutSessionLineItemsPriceData, CreateCheckoutSessionPaymentIntentData,
            CreateCheckoutSessionPaymentIntentDataTransferData, ProductData,
        };
        let key = IdempotencyKey::new(format!("switchboard-purchase-{}", c.purchase_id))
            .map_err(Error::internal)?;
        let currency = stripe_types::Currency::from_str(c.currency).map_err(Error::internal)?;
        let mut price = CreateCheckoutSessionLineItemsPriceData::new(currency);
        price.unit_amount = Some(c.amount);
        price.product_data = Some(ProductData::new(c.description));
        let mut item = CreateCheckoutSessionLineItems::new();
        item.price_data = Some(price);
        item.quantity = Some(1);
        let mut metadata = business_metadata(c.business_id);
        metadata.insert("purchase_id".into(), c.purchase_id.to_string());
        let mut intent = CreateCheckoutSessionPaymentIntentData::new();
        intent.transfer_data = Some(CreateCheckoutSessionPaymentIntentDataTransferData::new(
            c.destination,
        ));
        if c.application_fee_amount > 0 {
            intent.application_fee_amount = Some(c.application_fee_amount);
        }
        intent.metadata = Some(metadata.clone());
        CreateCheckoutSession::new()
            .mode(stripe_shared::CheckoutSessionMode::Payment)
            .line_items(vec![item])
            .payment_intent_data(intent)
            .client_reference_id(c.purchase_id.to_string())
            .metadata(metadata)
            .success_url(c.success_url)
            .cancel_url(c.cancel_url)
            .customize()
            .request_strategy(RequestStrategy::Idempotent(key))
            .send(&self.client)
            .await
            .map_err(stripe_failure)
    }
}
