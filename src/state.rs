//! The shared state every request sees.

use std::ops::Deref;
use std::sync::Arc;

use sea_orm::DatabaseConnection;

use crate::auth::passwords::PasswordHasherPool;
use crate::auth::tokens::TokenSigner;
use crate::authz::Authz;
use crate::config::Config;
use crate::crypto::Keyring;
use crate::domain::billing::plans::PlanCatalogue;
use crate::mail::Mailer;

/// Application state: one [`Services`] behind an `Arc`, so the clone axum
/// makes for every request is a single reference-count increment. Fields
/// are reached through `Deref` (`state.db`).
#[derive(Clone)]
pub struct AppState(Arc<Services>);

impl AppState {
    /// Shares `services` with every request.
    pub fn new(services: Services) -> AppState {
        AppState(Arc::new(services))
    }
}

impl Deref for AppState {
    type Target = Services;

    fn deref(&self) -> &Services {
        &self.0
    }
}

/// What every request may use.
pub struct Services {
    /// Database pool.
    pub db: DatabaseConnection,
    /// Hot read-only queries (in place on SQLite; the pool on PostgreSQL).
    pub read: crate::db::reader::Reader,
    /// Validated configuration.
    pub config: Arc<Config>,
    /// The casbin enforcer.
    pub authz: Arc<Authz>,
    /// Access-token signer and code hasher.
    pub tokens: Arc<TokenSigner>,
    /// Whether tokens' sessions are alive, per account (memoized).
    pub sessions: Arc<crate::auth::sessions::SessionCache>,
    /// Discovered OpenID provider metadata (cached).
    pub oidc: Arc<crate::integrations::google::Discovery>,
    /// Password hashing on the blocking pool.
    pub passwords: PasswordHasherPool,
    /// Outgoing email.
    pub mailer: Mailer,
    /// The job runner's queue (enqueue inside the caller's transaction).
    pub jobs: crate::jobs::queue::Queue,
    /// The plan catalogue.
    pub plans: Arc<PlanCatalogue>,
    /// Key-encryption keys of the secret vault.
    pub keyring: Arc<Keyring>,
    /// Stripe API client; `None` when billing is not configured.
    pub stripe: Option<crate::integrations::stripe::StripeApi>,
    /// WAHA client; `None` when WhatsApp is not configured.
    pub waha: Option<crate::integrations::waha::WahaApi>,
    /// n8n client; `None` when the automation layer is not configured.
    pub n8n: Option<crate::integrations::n8n::N8nApi>,
    /// Telegram Bot API client.
    pub telegram: crate::integrations::telegram::TelegramApi,
    /// Stripe webhook endpoint secrets (any of them signs a valid delivery).
    pub webhook_secrets: Arc<Vec<secrecy::SecretString>>,
    /// Stripe Connect webhook endpoint secrets.
    pub connect_webhook_secrets: Arc<Vec<secrecy::SecretString>>,
    /// The inbound-webhook writers (group commit per source).
    pub inbound: crate::inbound::Writers,
    /// The last probes of the external systems (`/health/detailed`).
    pub probes: crate::http::ops::Probes,
    /// The live event stream's fan-out.
    pub hub: Arc<crate::domain::events::hub::Hub>,
    /// Requests per user and per API key (`rate_limit.api_per_minute`).
    pub api_limits: Arc<crate::http::rate_limit::ApiLimits>,
    /// Secret reveals per user (GCRA, `rate_limit.reveal_per_minute`).
    pub reveal_limiter: Arc<governor::DefaultKeyedRateLimiter<uuid::Uuid>>,
}

impl Services {
    /// The handles the business's Stripe side uses.
    pub fn billing(&self) -> crate::domain::billing::Billing<'_> {
        crate::domain::billing::Billing {
            db: &self.db,
            stripe: self.stripe.as_ref(),
            plans: &self.plans,
            rules: self.rules(),
            config: &self.config,
        }
    }

    /// The handles accounts and signing in use.
    pub fn identity(&self) -> crate::domain::identity::Identity<'_> {
        crate::domain::identity::Identity {
            db: &self.db,
            tokens: &self.tokens,
            sessions: &self.sessions,
            oidc: &self.oidc,
            passwords: &self.passwords,
            mailer: &self.mailer,
            config: &self.config,
        }
    }

    /// What WhatsApp channels need.
    pub fn whatsapp(&self) -> crate::domain::channels::whatsapp::WhatsApp<'_> {
        crate::domain::channels::whatsapp::WhatsApp {
            db: &self.db,
            keyring: &self.keyring,
            jobs: &self.jobs,
            waha: self.waha.as_ref(),
            public_base: self.config.public_base(),
            n8n: self.n8n.as_ref(),
            n8n_config: self.config.n8n.as_ref(),
        }
    }

    /// What Telegram channels need.
    pub fn telegram(&self) -> crate::domain::channels::telegram::Telegram<'_> {
        crate::domain::channels::telegram::Telegram {
            db: &self.db,
            keyring: &self.keyring,
            jobs: &self.jobs,
            api: &self.telegram,
            n8n: self.n8n.as_ref(),
            n8n_config: self.config.n8n.as_ref(),
        }
    }

    /// The secret vault's handles.
    pub fn vault(&self) -> crate::domain::vault::secrets::Vault<'_> {
        crate::domain::vault::secrets::Vault {
            db: &self.db,
            keyring: &self.keyring,
        }
    }

    /// What managing webhook endpoints needs.
    pub fn endpoints(&self) -> crate::domain::events::webhooks::Endpoints<'_> {
        crate::domain::events::webhooks::Endpoints {
            db: &self.db,
            keyring: &self.keyring,
            allow_private: self.config.webhooks.allow_private_targets,
        }
    }

    /// What re-evaluating a business's entitlement needs.
    pub fn rules(&self) -> crate::domain::billing::entitlement::Rules<'_> {
        crate::domain::billing::entitlement::Rules {
            plans: &self.plans,
            billing: &self.config.billing,
            mailer: &self.mailer,
            public_base: self.config.public_base(),
            jobs: &self.jobs,
        }
    }
}
