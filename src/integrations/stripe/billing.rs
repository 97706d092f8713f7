//! Stripe Billing calls: the business's customer, Checkout Sessions in
//! subscription mode, customer-portal sessions, subscriptions (retrieve,
//! change price, cancel at period end, list) and invoices.

use stripe::{IdempotencyKey, RequestStrategy, StripeError, StripeRequest};
use stripe_billing::billing_portal_session::CreateBillingPortalSession;
use stripe_billing::invoice::ListInvoice;
use stripe_billing::subscription::{
    CancelSubscription, CreateSubscription, CreateSubscriptionItems,
    CreateSubscriptionItemsPriceData, CreateSubscriptionItemsPriceDataRecurring,
    CreateSubscriptionItemsPriceDataRecurringInterval, ListSubscription, ListSubscriptionStatus,
    RetrieveSubscription, UpdateSubscription, UpdateSubscriptionItems,
    UpdateSubscriptionItemsPriceData, UpdateSubscriptionItemsPriceDataRecurring,
    UpdateSubscriptionItemsPriceDataRecurringInterval, UpdateSubscriptionProrationBehavior,
};
use stripe_checkout::checkout_session::{
    CreateCheckoutSession, CreateCheckoutSessionLineItems, CreateCheckoutSessionSubscriptionData,
};
use stripe_core::customer::{
    CreateCustomer, DeleteCustomer, RetrieveCustomer, RetrieveCustomerReturned,
};
use stripe_shared::{CheckoutSessionMode, Subscription, SubscriptionCollectionMethod};
use uuid::Uuid;

use super::{InvoicePage, StripeApi, business_metadata, is_missing, stripe_failure};
use crate::error::Error;

/// A custom recurring price, which Stripe creates from the subscription
/// item's `price_data` (Stripe API: "Create a subscription", `items[].
/// price_data`): the admin's `enterprise` price.
#[derive(Debug, Clone, Copy)]
pub struct CustomPrice<'a> {
    /// The Stripe product the price belongs to (`prod_…`).
    pub product: &'a str,
    /// ISO 4217, lower case.
    pub currency: &'a str,
    /// Minor units per interval, positive.
    pub unit_amount: i64,
    /// Billed every year (`true`) or every month.
    pub yearly: bool,
}

impl StripeApi {
    /// Creates the business's customer under `idempotency_key` (see
    /// [`customer_idempotency_key`]): a retry after a lost response, within
    /// Stripe's 24-hour key lifetime, returns the same customer instead of
    /// creating a second.
    pub async fn create_customer(
        &self,
        idempotency_key: &str,
        business_id: Uuid,
        email: &str,
        name: &str,
    ) -> Result<stripe_shared::Customer, Error> {
        let key = IdempotencyKey::new(idempotency_key).map_err(Error::internal)?;
        CreateCustomer::new()
            .email(email)
            .name(name)
            .metadata(business_metadata(business_id))
            .customize()
            .request_strategy(RequestStrategy::Idempotent(key))
            .send(&self.client)
            .await
            .map_err(stripe_failure)
    }

    /// The customer `id`; `None` once deleted in Stripe.
    pub async fn retrieve_customer(
        &self,
        id: &str,
    ) -> Result<Option<stripe_shared::Customer>, Error> {
        match RetrieveCustomer::new(id).send(&self.client).await {
            Ok(RetrieveCustomerReturned::Customer(c)) => Ok(Some(c)),
            Ok(RetrieveCustomerReturned::DeletedCustomer(_)) => Ok(None),
            Err(e) if is_missing(&e) => Ok(None),
            Err(e) => Err(stripe_failure(e)),
        }
    }

    /// Deletes the customer `id` (Stripe cancels its subscriptions at once).
    /// Deleting a customer already gone succeeds: safe to repeat.
    pub async fn delete_customer(&self, id: &str) -> Result<(), Error> {
        match DeleteCustomer::new(id).send(&self.client).await {
            Ok(_) => Ok(()),
            Err(e) if is_missing(&e) => Ok(()),
            Err(e) => Err(stripe_failure(e)),
        }
    }

    /// A Checkout Session in `subscription` mode for one unit of `price`.
    /// `trial_end` (Unix seconds) carries the rest of our trial into the
    /// subscription so nobody pays twice.
    pub async fn create_checkout_session(
        &self,
        customer: &str,
        business_id: Uuid,
        price: &str,
        trial_end: Option<i64>,
        success_url: &str,
        cancel_url: &str,
    ) -> Result<stripe_shared::CheckoutSession, Error> {
        let mut item = CreateCheckoutSessionLineItems::new();
        item.price = Some(price.to_owned());
        item.quantity = Some(1);
        let mut subscription_data = CreateCheckoutSessionSubscriptionData::new();
        subscription_data.metadata = Some(business_metadata(business_id));
        subscription_data.trial_end = trial_end;
        CreateCheckoutSession::new()
            .mode(CheckoutSessionMode::Subscription)
            .customer(customer)
            .client_reference_id(business_id.to_string())
            .line_items(vec![item])
            .subscription_data(subscription_data)
            .metadata(business_metadata(business_id))
            .success_url(success_url)
            .cancel_url(cancel_url)
            .send(&self.client)
            .await
            .map_err(stripe_failure)
    }

    /// A customer-portal session for `customer`.
    pub async fn create_portal_session(
        &self,
        customer: &str,
        return_url: &str,
    ) -> Result<stripe_billing::BillingPortalSession, Error> {
        CreateBillingPortalSession::new()
            .customer(customer)
            .return_url(return_url)
            .send(&self.client)
            .await
            .map_err(stripe_failure)
    }

    /// The subscription `id` as Stripe has it now.
    pub async fn retrieve_subscription(&self, id: &str) -> Result<Subscription, Error> {
        RetrieveSubscription::new(id)
            .send(&self.client)
            .await
            .map_err(stripe_failure)
    }

    /// Moves the subscription's item `item_id` to `price`. Upgrades invoice
    /// the prorated difference at once (`always_invoice`); downgrades take
    /// effect without proration, as there are no refunds on downgrade (SPEC §2).
    pub async fn change_price(
        &self,
        id: &str,
        item_id: &str,
        price: &str,
        upgrade: bool,
    ) -> Result<Subscription, Error> {
        let mut item = UpdateSubscriptionItems::new();
        item.id = Some(item_id.to_owned());
        item.price = Some(price.to_owned());
        let proration = if upgrade {
            UpdateSubscriptionProrationBehavior::AlwaysInvoice
        } else {
            UpdateSubscriptionProrationBehavior::None
        };
        UpdateSubscription::new(id)
            .items(vec![item])
            .proration_behavior(proration)
            .send(&self.client)
            .await
            .map_err(stripe_failure)
    }

    /// Creates a subscription of `customer` at the custom price `price`,
    /// invoiced (`collection_method=send_invoice`, due `days_until_due`
    /// days after each invoice) rather than charged to a card, with the
    /// business id in metadata, under `idempotency_key`: a retry after a
    /// lost answer returns the same subscription (Stripe keeps keys 24 h).
    pub async fn create_custom_subscription(
        &self,
        idempotency_key: &str,
        customer: &str,
        business_id: Uuid,
        price: CustomPrice<'_>,
        days_until_due: u32,
    ) -> Result<Subscription, Error> {
        let key = IdempotencyKey::new(idempotency_key).map_err(Error::internal)?;
        let interval = if price.yearly {
            CreateSubscriptionItemsPriceDataRecurringInterval::Year
        } else {
            CreateSubscriptionItemsPriceDataRecurringInterval::Month
        };
        let mut data = CreateSubscriptionItemsPriceData::new(
            currency(price.currency)?,
            price.product,
            CreateSubscriptionItemsPriceDataRecurring::new(interval),
        );
        data.unit_amount = Some(price.unit_amount);
        let mut item = CreateSubscriptionItems::new();
        item.price_data = Some(data);
        item.quantity = Some(1);
        CreateSubscription::new()
            .customer(customer)
            .items(vec![item])
            .collection_method(SubscriptionCollectionMethod::SendInvoice)
            .days_until_due(days_until_due)
            .metadata(business_metadata(business_id))
            .customize()
            .request_strategy(RequestStrategy::Idempotent(key))
            .send(&self.client)
            .await
            .map_err(stripe_failure)
    }

    /// Moves the subscription's item `item_id` to the custom price
    /// `price`, the difference prorated onto the next invoice
    /// (`create_prorations`), under `idempotency_key`.
    pub async fn move_to_custom_price(
        &self,
        idempotency_key: &str,
        id: &str,
        item_id: &str,
        price: CustomPrice<'_>,
    ) -> Result<Subscription, Error> {
        let key = IdempotencyKey::new(idempotency_key).map_err(Error::internal)?;
        let interval = if price.yearly {
            UpdateSubscriptionItemsPriceDataRecurringInterval::Year
        } else {
            UpdateSubscriptionItemsPriceDataRecurringInterval::Month
        };
        let mut data = UpdateSubscriptionItemsPriceData::new(
            currency(price.currency)?,
            price.product,
            UpdateSubscriptionItemsPriceDataRecurring::new(interval),
        );
        data.unit_amount = Some(price.unit_amount);
        let mut item = UpdateSubscriptionItems::new();
        item.id = Some(item_id.to_owned());
        item.price_data = Some(data);
        UpdateSubscription::new(id)
            .items(vec![item])
            .proration_behavior(UpdateSubscriptionProrationBehavior::CreateProrations)
            .customize()
            .request_strategy(RequestStrategy::Idempotent(key))
            .send(&self.client)
            .await
            .map_err(stripe_failure)
    }

    /// The id (`si_…`) of subscription `id`'s first item, as Stripe has it
    /// now: the one item a Switchboard subscription has (a plan's price).
    pub async fn first_item_id(&self, id: &str) -> Result<String, Error> {
        let remote = self.retrieve_subscription(id).await?;
        remote
            .items
            .data
            .first()
            .map(|item| item.id.to_string())
            .ok_or_else(|| Error::internal("Stripe subscription without items"))
    }

    /// Cancels the subscription `id` now (`DELETE /v1/subscriptions/{id}`),
    /// without proration; answers its final state.
    pub async fn cancel_now(&self, id: &str) -> Result<Subscription, Error> {
        CancelSubscription::new(id)
            .send(&self.client)
            .await
            .map_err(stripe_failure)
    }

    /// Sets `cancel_at_period_end` (cancel at the end of the paid period, or undo that).
    pub async fn set_cancel_at_period_end(
        &self,
        id: &str,
        cancel: bool,
    ) -> Result<Subscription, Error> {
        UpdateSubscription::new(id)
            .cancel_at_period_end(cancel)
            .send(&self.client)
            .await
            .map_err(stripe_failure)
    }

    /// Every subscription of `customer`, canceled ones included, following
    /// Stripe's pagination.
    pub async fn list_subscriptions(&self, customer: &str) -> Result<Vec<Subscription>, Error> {
        let mut all = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let mut req = ListSubscription::new()
                .customer(customer)
                .status(ListSubscriptionStatus::All)
                .limit(100);
            if let Some(a) = &after {
                req = req.starting_after(a.as_str());
            }
            let page = req.send(&self.client).await.map_err(stripe_failure)?;
            after = page.data.last().map(|s| s.id.to_string());
            all.extend(page.data);
            if !page.has_more || after.is_none() {
                return Ok(all);
            }
        }
    }

    /// One page of `customer`'s invoices, newest first, `limit` 1–100,
    /// after the invoice `starting_after`.
    pub async fn list_invoices(
        &self,
        customer: &str,
        limit: i64,
        starting_after: Option<&str>,
    ) -> Result<InvoicePage, Error> {
        let mut req = ListInvoice::new().customer(customer).limit(limit);
        if let Some(a) = starting_after {
            req = req.starting_after(a);
        }
        let page = req.send(&self.client).await.map_err(|e| match e {
            // Stripe answers 400 `resource_missing` with `param:
            // starting_after` for a cursor that names no invoice of the
            // customer (Stripe API reference: errors).
            StripeError::Stripe(api, 400) if api.param.as_deref() == Some("starting_after") => {
                Error::invalid_field("starting_after", "no such invoice of this business")
            }
            other => stripe_failure(other),
        })?;
        Ok(InvoicePage {
            data: page.data,
            has_more: page.has_more,
        })
    }
}

/// `code` (lower-case ISO 4217, checked by the caller) as async-stripe's type.
fn currency(code: &str) -> Result<stripe_types::Currency, Error> {
    use std::str::FromStr;
    stripe_types::Currency::from_str(code).map_err(Error::internal)
}
