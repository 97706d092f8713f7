//! The plan catalogue and the channel entitlement (SPEC §2).

use std::collections::BTreeMap;

/// A plan id (the catalogue's keys, checked at start-up): a lower-case
/// letter, then up to 31 of `a-z 0-9 _`.
pub const PLAN_ID_PATTERN: &str = r"^[a-z][a-z0-9_]{0,31}$";

use chrono::{DateTime, Utc};
use entity::business;
use serde::Serialize;
use utoipa::ToSchema;

use crate::config::PlanConfig;
use crate::error::Error;

pub use crate::config::TRIAL;

/// The plan an admin grants without payment (SPEC §2: "granted by an admin
/// only").
pub const FREE: &str = "free";
/// The plan an admin sets with a custom channel limit and a custom Stripe
/// price (SPEC §2).
pub const ENTERPRISE: &str = "enterprise";

/// The plans of the configuration.
pub struct PlanCatalogue {
    plans: BTreeMap<String, PlanConfig>,
}

/// A plan as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PlanView {
    /// Plan id (`trial`, `single`, `growth`, …).
    pub id: String,
    /// Display name.
    pub name: String,
    /// Channels allowed; `null` is unlimited.
    pub channel_limit: Option<u32>,
    /// Monthly price in minor units; `null` for a custom price.
    pub price_minor: Option<i64>,
    /// ISO 4217 currency.
    pub currency: String,
    /// Whether it can be bought through Checkout (it has a Stripe price).
    pub purchasable: bool,
}

impl PlanCatalogue {
    /// From the configured catalogue.
    pub fn new(plans: BTreeMap<String, PlanConfig>) -> PlanCatalogue {
        PlanCatalogue { plans }
    }

    /// Channel limit of `id`: `None` is unlimited. A plan missing from the
    /// catalogue (removed from configuration) allows nothing new.
    pub fn channel_limit(&self, id: &str) -> Option<u32> {
        match self.plans.get(id) {
            Some(plan) => plan.channel_limit,
            None => Some(0),
        }
    }

    /// Channel limit of business `b` on `plan`: the limit an admin granted
    /// with the plan when `plan` is the granted one and a limit was set
    /// (`businesses.granted_channel_limit`), else the catalogue's.
    pub fn limit_for(&self, b: &business::Model, plan: &str) -> Option<u32> {
        match (b.granted_plan.as_deref(), b.granted_channel_limit) {
            (Some(granted), Some(limit)) if granted == plan => {
                Some(u32::try_from(limit).unwrap_or(0))
            }
            _ => self.channel_limit(plan),
        }
    }

    /// Channel limit of business `b` on its current plan ([`Self::limit_for`]).
    pub fn limit_of(&self, b: &business::Model) -> Option<u32> {
        self.limit_for(b, &b.plan)
    }

    /// The API view of business `b`'s plan: the catalogue's, with the
    /// channel limit an admin granted.
    pub fn view_of(&self, b: &business::Model) -> PlanView {
        PlanView {
            channel_limit: self.limit_of(b),
            ..self.view(&b.plan)
        }
    }

    /// The plan sold at Stripe price `price_id`, if any (configuration
    /// guarantees a price names at most one plan).
    pub fn plan_for_price(&self, price_id: &str) -> Option<String> {
        self.plans
            .iter()
            .find(|(_, p)| p.stripe_price_id.as_deref() == Some(price_id))
            .map(|(id, _)| id.clone())
    }

    /// The Stripe price of plan `id`, when it is sold through Stripe.
    pub fn price_of(&self, id: &str) -> Option<&str> {
        self.plans
            .get(id)
            .and_then(|p| p.stripe_price_id.as_deref())
    }

    /// The Stripe product of plan `id`'s custom prices, if configured.
    pub fn product_of(&self, id: &str) -> Option<&str> {
        self.plans
            .get(id)
            .and_then(|p| p.stripe_product_id.as_deref())
    }

    /// Whether `id` is in the catalogue.
    pub fn contains(&self, id: &str) -> bool {
        self.plans.contains_key(id)
    }

    /// Every plan, cheapest first (custom prices last), then by id.
    pub fn list(&self) -> Vec<PlanView> {
        let mut views: Vec<PlanView> = self.plans.keys().map(|id| self.view(id)).collect();
        views.sort_by_key(|v| (v.price_minor.is_none(), v.price_minor, v.id.clone()));
        views
    }

    /// The API view of `id`.
    pub fn view(&self, id: &str) -> PlanView {
        let plan = self.plans.get(id);
        PlanView {
            id: id.to_owned(),
            name: plan.map_or_else(|| id.to_owned(), |p| p.display_name.clone()),
            channel_limit: self.channel_limit(id),
            price_minor: plan.and_then(|p| p.price_minor),
            currency: plan.map_or_else(|| "usd".into(), |p| p.currency.clone()),
            purchasable: plan.is_some_and(|p| p.stripe_price_id.is_some()),
        }
    }
}

/// Whether the business may add channels now: 402 `subscription_required`
/// when its trial is over without a paid plan, or it is restricted (SPEC §2).
pub fn ensure_may_add_channels(
    business: &business::Model,
    now: DateTime<Utc>,
) -> Result<(), Error> {
    use entity::enums::BusinessStatus;
    let trial_over = business.plan == TRIAL && now >= business.trial_ends_at;
    if trial_over || business.status == BusinessStatus::Restricted {
        return Err(Error::new(
            axum::http::StatusCode::PAYMENT_REQUIRED,
            "subscription_required",
            "A subscription is required",
        )
        .with_detail("The trial has ended. Choose a plan to add channels again; reading and billing still work.")
        .with("plan", business.plan.clone()));
    }
    if business.status == BusinessStatus::Deleting {
        return Err(Error::not_found());
    }
    Ok(())
}

/// 402 `plan_limit_reached` with `{plan, limit, used}` (SPEC §2).
pub fn plan_limit_reached(plan: &str, limit: u32, used: u64) -> Error {
    Error::new(
        axum::http::StatusCode::PAYMENT_REQUIRED,
        "plan_limit_reached",
        "Plan channel limit reached",
    )
    .with_detail(format!(
        "The {plan} plan allows {limit} channel(s) and {used} are in use. Upgrade the plan or remove a channel."
    ))
    .with("plan", plan.to_owned())
    .with("limit", limit)
    .with("used", used)
}
