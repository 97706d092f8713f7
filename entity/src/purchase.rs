//! `purchases`: the business's payment log (see the root crate's
//! `domain::billing::purchases`).

use sea_orm::entity::prelude::*;

/// One payment asked of an end customer. `amount` and
/// `application_fee_amount` are integer minor units of `currency` (ISO
/// 4217, lower case as Stripe writes it); `status` is `no_payment_link`,
/// `payment_link_sent`, `paid`, `expired` or `refunded`; `status_at` is
/// the `created` second of the last Stripe event applied.
#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "purchases")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub business_id: Uuid,
    pub company_id: Uuid,
    pub channel_id: Option<Uuid>,
    pub customer_ref: String,
    pub description: String,
    pub amount: i64,
    pub currency: String,
    pub application_fee_amount: i64,
    pub lead_source: String,
    pub status: String,
    pub stripe_account_id: String,
    pub stripe_checkout_session_id: Option<String>,
    pub stripe_payment_intent_id: Option<String>,
    pub payment_url: Option<String>,
    pub status_at: i64,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

impl ActiveModelBehavior for ActiveModel {}
