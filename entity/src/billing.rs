//! Billing tables: `subscriptions` (Stripe subscriptions as last applied).

/// `subscriptions`: one row per Stripe subscription of a business.
pub mod subscription {
    use sea_orm::entity::prelude::*;

    /// A Stripe subscription as Switchboard last applied it. `status` is
    /// Stripe's spelling (`trialing`, `active`, `past_due`, `canceled`,
    /// `unpaid`, `incomplete`, `incomplete_expired`, `paused`). `watermark` is
    /// the `created` second of the newest event applied, so an older event
    /// never overwrites a newer state.
    #[sea_orm::model]
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "subscriptions")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        pub business_id: Uuid,
        #[sea_orm(unique)]
        pub stripe_subscription_id: String,
        pub stripe_customer_id: String,
        pub price_id: Option<String>,
        /// Catalogue plan of `price_id`; `None` for a price no plan names.
        pub plan: Option<String>,
        pub status: String,
        pub current_period_start: Option<DateTimeUtc>,
        pub current_period_end: Option<DateTimeUtc>,
        pub cancel_at_period_end: bool,
        pub trial_end: Option<DateTimeUtc>,
        pub stripe_created: DateTimeUtc,
        pub watermark: i64,
        pub created_at: DateTimeUtc,
        pub updated_at: DateTimeUtc,
    }

    impl ActiveModelBehavior for ActiveModel {}
}
