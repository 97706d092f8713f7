//! Configuration: one typed struct, layered defaults → optional
//! `switchboard.toml` → `SWITCHBOARD_*` environment (nested keys with `__`,
//! e.g. `SWITCHBOARD_RATE_LIMIT__AUTH_PER_MINUTE=20`), with `DATABASE_URL`
//! selecting the database. Validated once at start-up; an invalid value is a
//! [`ConfigError`] naming the key, never a panic.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Toml};
use secrecy::SecretString;
use serde::Deserialize;

/// Where the server runs. Development generates missing keys into a local
/// file; production refuses to start without them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Environment {
    /// Local development: zero configuration works.
    #[default]
    Development,
    /// Production: every key must be configured.
    Production,
}

/// The whole configuration of a Switchboard process.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// `development` (default) or `production`.
    pub environment: Environment,
    /// Address to listen on; default `127.0.0.1:8080`.
    pub bind: SocketAddr,
    /// Public base URL used in links sent by email; default `http://127.0.0.1:8080`.
    pub public_url: String,
    /// `sqlite://…` (default `sqlite://switchboard.db?mode=rwc`) or `postgres://…`.
    pub database_url: String,
    /// Connection pool size.
    pub database_max_connections: u32,
    /// SQLite file databases only: this process holds the file exclusively
    /// while it runs (SQLite's `unix-excl` VFS). Transactions then take no
    /// file locks and the WAL index lives in memory: every read begins and
    /// ends a read transaction, and without the two `fcntl` locks and the
    /// contended shared-memory mutex of each, `GET /v1/companies` measured
    /// about 16% faster (README, Benchmark). The cost: no other process can open the database
    /// meanwhile, so `keys rotate`, `billing reconcile`, `admin create`,
    /// `migrate` or the `sqlite3` shell must wait until the server stops
    /// (they fail at once with a clear message). Default `false`. See
    /// SQLite docs: vfs.html (unix-excl), wal.html (shared memory).
    pub sqlite_exclusive: bool,
    /// File holding generated development keys (ignored by git).
    pub dev_keys_path: PathBuf,
    /// HS256 signing key of access tokens, base64 (at least 32 bytes decoded).
    pub jwt_secret: Option<SecretString>,
    /// Key-encryption keyring, `key_id:base64` entries separated by commas;
    /// the first encrypts, all decrypt.
    pub master_keys: Option<SecretString>,
    /// Sign-in and session settings.
    pub auth: AuthConfig,
    /// Rate limits.
    pub rate_limit: RateLimitConfig,
    /// Plan catalogue keyed by plan id (SPEC §2).
    pub plans: BTreeMap<String, PlanConfig>,
    /// SMTP server (`SWITCHBOARD_SMTP_HOST`); unset: emails go to the console.
    pub smtp_host: Option<String>,
    /// SMTP port; default 587.
    pub smtp_port: u16,
    /// SMTP user name, if the server wants one.
    pub smtp_username: Option<String>,
    /// SMTP password.
    pub smtp_password: Option<SecretString>,
    /// `starttls` (default), `tls` (implicit, port 465) or `none` (local servers).
    pub smtp_tls: SmtpTls,
    /// Sender mailbox; default `Switchboard <no-reply@switchboard.localhost>`.
    pub smtp_from: String,
    /// Delivery attempts before a message is marked failed; default 10.
    pub outbox_max_attempts: u32,
    /// First retry delay in milliseconds, doubling each time; default 5000.
    pub outbox_retry_base_ms: u64,
    /// Days sent and failed messages stay in the outbox (recipient, subject,
    /// outcome; their bodies are erased at once) before they are purged;
    /// default 30.
    pub outbox_retention_days: u32,
    /// Hours a stored `Idempotency-Key` answer is kept for replay; default
    /// 24 (Stripe's).
    pub idempotency_retention_hours: u32,
    /// Google (any OpenID Connect provider) sign-in; off when unset.
    pub google: Option<OidcConfig>,
    /// Facebook sign-in; off when unset.
    pub facebook: Option<FacebookConfig>,
    /// Where the browser goes after an OAuth callback, with `?code=` (or
    /// `?error=`); default `{public_url}/oauth/complete`.
    pub oauth_frontend_url: Option<String>,
    /// Stripe billing; billing routes answer 503 `billing_unavailable` and
    /// webhooks 503 `webhooks_unavailable` while it is unset.
    pub stripe: Option<StripeConfig>,
    /// WAHA, the WhatsApp HTTP API; WhatsApp channels answer 503
    /// `whatsapp_unavailable` on connect while it is unset.
    pub waha: Option<WahaConfig>,
    /// n8n, the automation layer Switchboard provisions; connections that
    /// need it answer 503 `automation_unavailable` while it is unset.
    pub n8n: Option<N8nConfig>,
    /// The Telegram Bot API.
    pub telegram: TelegramConfig,
    /// Entitlement timings and billing jobs.
    pub billing: BillingConfig,
    /// The background job runner.
    pub jobs: JobsConfig,
    /// Outgoing webhooks to businesses' endpoints.
    pub webhooks: WebhooksConfig,
    /// The live event stream.
    pub events: EventsConfig,
    /// Connected channels' health probes.
    pub channels: ChannelsConfig,
    /// Who may read `/metrics` and `/health/detailed` without an admin.
    pub metrics: MetricsConfig,
    /// Cross-origin requests from browsers (a web front end elsewhere).
    pub cors: CorsConfig,
}

/// Operators' endpoints (`SWITCHBOARD_METRICS__TOKEN`, …). Never public by
/// default: with neither key set, `/metrics` does not exist and
/// `/health/detailed` answers admins only.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    /// Bearer token for `GET /metrics` and `GET /health/detailed` (at least
    /// 32 characters).
    pub token: Option<SecretString>,
    /// A separate address serving `GET /metrics` without a token (a private
    /// network's scraper), e.g. `127.0.0.1:9090`.
    pub bind: Option<SocketAddr>,
}

/// Cross-origin resource sharing (`SWITCHBOARD_CORS__ALLOWED_ORIGINS`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CorsConfig {
    /// Exact origins (`https://app.example.com`) allowed to call the API
    /// from a browser, with credentials; empty (default): none.
    pub allowed_origins: Vec<String>,
}

/// Outgoing webhooks (`SWITCHBOARD_WEBHOOKS__MAX_ATTEMPTS`, …).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebhooksConfig {
    /// Attempts of one delivery before it fails for good and its endpoint
    /// is disabled; default 15 (with the backoff: about three days).
    pub max_attempts: u32,
    /// First retry delay in seconds, doubling, capped at 12 h; default 60.
    pub retry_base_secs: u64,
    /// Let endpoints point at loopback and private addresses (tests,
    /// private deployments); default false (SSRF protection).
    pub allow_private_targets: bool,
}

impl Default for WebhooksConfig {
    fn default() -> Self {
        WebhooksConfig {
            max_attempts: 15,
            retry_base_secs: 60,
            allow_private_targets: false,
        }
    }
}

/// The live event stream (`SWITCHBOARD_EVENTS__POLL_MS`, …).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EventsConfig {
    /// Milliseconds between checks of subscribed businesses for new events;
    /// default 25 on SQLite (the only wake-up) and 1000 on PostgreSQL (a
    /// safety net behind LISTEN/NOTIFY).
    pub poll_ms: Option<u64>,
    /// Seconds between keep-alive comments on idle streams; default 15.
    pub keep_alive_secs: Option<u64>,
}

/// Health probes of connected channels
/// (`SWITCHBOARD_CHANNELS__HEALTH_INTERVAL_SECS`, …).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ChannelsConfig {
    /// Seconds between probes of every connected channel; default 300; 0
    /// turns the probes off.
    pub health_interval_secs: u64,
    /// Failed probes in a row that put a channel in `error` (and tell its
    /// owner); default 3.
    pub failures_before_error: u32,
}

impl Default for ChannelsConfig {
    fn default() -> Self {
        ChannelsConfig {
            health_interval_secs: 300,
            failures_before_error: 3,
        }
    }
}

/// The durable job runner (`SWITCHBOARD_JOBS__CONCURRENCY`, …).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JobsConfig {
    /// Tasks one process runs at once; default 4.
    pub concurrency: u32,
    /// Seconds a claimed task stays leased to its worker without a
    /// heartbeat; a worker that died loses its tasks after this; default 60.
    pub lease_secs: u64,
    /// Milliseconds between looks for due tasks when nothing woke the
    /// runner (new tasks of this process wake it at once); default 250.
    pub poll_ms: u64,
    /// Seconds a stopping process lets running tasks finish before it
    /// releases their leases (they run again elsewhere); default 10.
    pub shutdown_grace_secs: u64,
}

impl Default for JobsConfig {
    fn default() -> Self {
        JobsConfig {
            concurrency: 4,
            lease_secs: 60,
            poll_ms: 250,
            shutdown_grace_secs: 10,
        }
    }
}

/// Stripe API access (`SWITCHBOARD_STRIPE__SECRET_KEY`, …).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StripeConfig {
    /// Secret API key (`sk_live_…`/`sk_test_…`).
    pub secret_key: SecretString,
    /// API base URL; default `https://api.stripe.com` (tests point it at a
    /// local server speaking Stripe's wire format).
    #[serde(default = "stripe_api_base")]
    pub api_base: String,
    /// Webhook endpoint signing secrets (`whsec_…`), separated by commas. A
    /// delivery signed by any of them is accepted, so a secret can be rolled
    /// without downtime.
    #[serde(default)]
    pub webhook_secrets: Option<SecretString>,
    /// Where Checkout sends the customer after paying; default
    /// `{public_url}/billing/success?session_id={CHECKOUT_SESSION_ID}`.
    pub success_url: Option<String>,
    /// Where Checkout sends the customer who gives up; default `{public_url}/billing`.
    pub cancel_url: Option<String>,
    /// Where the customer portal returns to; default `{public_url}/billing`.
    pub portal_return_url: Option<String>,
    /// Request timeout in seconds; default 20.
    #[serde(default = "stripe_timeout")]
    pub timeout_secs: u64,
    /// The Connect webhook endpoint's signing secrets (`whsec_…`, comma
    /// separated; Stripe signs events from connected accounts with the
    /// Connect endpoint's own secret). Unset: `/v1/webhooks/stripe/connect`
    /// answers 503 `webhooks_unavailable`.
    #[serde(default)]
    pub connect_webhook_secrets: Option<SecretString>,
    /// Country of new connected accounts when the owner names none (ISO
    /// 3166-1 alpha-2); default `US`.
    #[serde(default = "connect_country")]
    pub connect_country: String,
    /// Where Stripe's onboarding returns to; default
    /// `{public_url}/billing/connect`.
    #[serde(default)]
    pub connect_return_url: Option<String>,
}

fn connect_country() -> String {
    "US".into()
}

/// WAHA access (`SWITCHBOARD_WAHA__BASE_URL`, `SWITCHBOARD_WAHA__API_KEY`).
/// WAHA calls back at `{public_url}/v1/webhooks/waha/{session}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WahaConfig {
    /// Base URL of the WAHA server, e.g. `http://waha:3000` (its API is
    /// under `/api`).
    pub base_url: String,
    /// The server's `WAHA_API_KEY`, sent as `X-Api-Key`.
    pub api_key: SecretString,
    /// Request timeout in seconds; default 15.
    #[serde(default = "waha_timeout")]
    pub timeout_secs: u64,
}

fn waha_timeout() -> u64 {
    15
}

/// n8n access (`SWITCHBOARD_N8N__BASE_URL`, `SWITCHBOARD_N8N__API_KEY`, …):
/// its public REST API, and the workflows Switchboard builds on.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct N8nConfig {
    /// Base URL of n8n, e.g. `http://n8n:5678` (its public API is under
    /// `/api/v1`).
    pub base_url: String,
    /// A public-API key (n8n: Settings → n8n API), sent as `X-N8N-API-KEY`.
    pub api_key: SecretString,
    /// Where n8n serves production webhooks (its `WEBHOOK_URL`); default
    /// `base_url`.
    #[serde(default)]
    pub webhook_base: Option<String>,
    /// The Telegram ingress workflow to duplicate per bot connection (a
    /// Telegram Trigger and what answers); Telegram connections answer 503
    /// `automation_unavailable` while it is unset.
    #[serde(default)]
    pub telegram_template_id: Option<String>,
    /// The one shared WhatsApp ingress workflow: its first Webhook node
    /// receives every WhatsApp message with the business's routing; unset,
    /// messages are only recorded.
    #[serde(default)]
    pub whatsapp_workflow_id: Option<String>,
    /// Request timeout in seconds; default 20.
    #[serde(default = "n8n_timeout")]
    pub timeout_secs: u64,
}

fn n8n_timeout() -> u64 {
    20
}

/// The Telegram Bot API (`SWITCHBOARD_TELEGRAM__API_BASE`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TelegramConfig {
    /// The Bot API's base URL; default `https://api.telegram.org`. n8n's
    /// `telegramApi` credentials get the same base, so both reach one server.
    pub api_base: String,
    /// Request timeout in seconds; default 15.
    pub timeout_secs: u64,
}

impl Default for TelegramConfig {
    fn default() -> Self {
        TelegramConfig {
            api_base: "https://api.telegram.org".into(),
            timeout_secs: 15,
        }
    }
}

fn stripe_api_base() -> String {
    "https://api.stripe.com".into()
}

fn stripe_timeout() -> u64 {
    20
}

/// Entitlement timings and billing jobs (SPEC §2).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BillingConfig {
    /// Access kept while a subscription is `past_due`, in hours; default 72 (3 days).
    pub grace_hours: u32,
    /// How long before the end of a trial the reminder goes out, in hours; default 72.
    pub trial_notice_hours: u32,
    /// Seconds between entitlement sweeps (trial and grace ends); default 60.
    pub sweep_interval_secs: u64,
    /// Hours between reconciliations with Stripe; default 24; 0 turns the
    /// in-process schedule off (`switchboard billing reconcile` still works).
    pub reconcile_interval_hours: u32,
    /// Age in seconds beyond which a webhook's `Stripe-Signature` timestamp is
    /// refused; default 300 (Stripe's own tolerance).
    pub webhook_tolerance_secs: u64,
    /// The platform's commission on end-customer payments, in basis points
    /// of the amount (`application_fee_amount`, rounded down); default 0.
    pub application_fee_bps: u32,
    /// Largest purchase amount, in minor units; default 100000000
    /// (1,000,000.00 of a two-decimal currency).
    pub purchase_max_amount: i64,
}

impl Default for BillingConfig {
    fn default() -> Self {
        BillingConfig {
            grace_hours: 72,
            trial_notice_hours: 72,
            sweep_interval_secs: 60,
            reconcile_interval_hours: 24,
            webhook_tolerance_secs: 300,
            application_fee_bps: 0,
            purchase_max_amount: 100_000_000,
        }
    }
}

/// An OpenID Connect provider (`SWITCHBOARD_GOOGLE__CLIENT_ID`, …).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcConfig {
    /// Issuer; discovery reads `{issuer}/.well-known/openid-configuration`.
    #[serde(default = "google_issuer")]
    pub issuer_url: String,
    /// OAuth client id.
    pub client_id: String,
    /// OAuth client secret.
    pub client_secret: SecretString,
}

fn google_issuer() -> String {
    "https://accounts.google.com".into()
}

/// Facebook Login (`SWITCHBOARD_FACEBOOK__CLIENT_ID`, …); base URLs are
/// configuration so tests can point them at a local server.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FacebookConfig {
    /// App id.
    pub client_id: String,
    /// App secret.
    pub client_secret: SecretString,
    /// OAuth dialog.
    #[serde(default = "facebook_auth_url")]
    pub auth_url: String,
    /// Token endpoint.
    #[serde(default = "facebook_token_url")]
    pub token_url: String,
    /// Graph API base.
    #[serde(default = "facebook_graph_url")]
    pub graph_url: String,
}

fn facebook_auth_url() -> String {
    "https://www.facebook.com/v21.0/dialog/oauth".into()
}

fn facebook_token_url() -> String {
    "https://graph.facebook.com/v21.0/oauth/access_token".into()
}

fn facebook_graph_url() -> String {
    "https://graph.facebook.com/v21.0".into()
}

/// How to secure the SMTP connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum SmtpTls {
    /// Plain connection upgraded with STARTTLS (RFC 3207); required.
    #[default]
    Starttls,
    /// TLS from the first byte (RFC 8314).
    Tls,
    /// No TLS: only for a server on the same host or network.
    None,
}

/// Sign-in and session lifetimes and limits (SPEC §5).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// Access-token (JWT) lifetime in seconds; default 900 (15 min).
    pub access_token_ttl_secs: u64,
    /// Refresh-token lifetime in seconds; default 30 days.
    pub refresh_token_ttl_secs: u64,
    /// Registration code lifetime in seconds; default 600 (10 min).
    pub code_ttl_secs: u64,
    /// Wrong codes allowed before a code is dead; default 5.
    pub code_max_attempts: u32,
    /// Seconds to finish registration after verifying the code; default 3600.
    pub registration_token_ttl_secs: u64,
    /// Lifetime of an emailed set-password link in seconds; default 72 h.
    pub set_password_ttl_secs: u64,
    /// Trial length in days; default 7 (SPEC §2).
    pub trial_days: u32,
    /// Password hashes computed at once (argon2 is memory- and CPU-bound:
    /// 19 MiB each); default half the cores the process may use, at least 1.
    pub hash_concurrency: Option<usize>,
    /// Longest wait in milliseconds for a turn to hash before answering 503
    /// `auth_overloaded` with `Retry-After`; default 1000.
    pub hash_wait_ms: u64,
    /// Lifetime of a password-reset link in seconds; default 1800 (30 min).
    pub password_reset_ttl_secs: u64,
    /// Lifetime of a magic sign-in link in seconds; default 900 (15 min).
    pub magic_link_ttl_secs: u64,
    /// Code, reset and magic-link requests allowed per email address per
    /// hour (each kind counted apart); default 5.
    pub email_requests_per_hour: u32,
    /// Seconds an account's session state (signed out everywhere, password
    /// changed, role) is remembered per process before it is read again;
    /// changes made through this process apply at once, through another
    /// instance within this time. Default 5.
    pub session_recheck_secs: u64,
    /// Seconds after signing in (password, provider, emailed link) or
    /// re-authenticating during which sensitive changes (linking a sign-in
    /// method, changing the email, creating API keys) are allowed; default
    /// 300.
    pub reauth_window_secs: u64,
    /// Failed password sign-ins to one account before password sign-in to it
    /// pauses; default 5.
    pub login_failures_before_lock: u32,
    /// First pause in seconds; doubles with each further failure; default 30.
    pub login_lock_base_secs: u64,
    /// Longest pause in seconds; default 900 (15 minutes).
    pub login_lock_max_secs: u64,
}

/// Request-rate limits (SPEC §5).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Requests per minute per client IP on `/v1/auth/*`; default 10.
    pub auth_per_minute: u32,
    /// Secret reveals per minute per user; default 10.
    pub reveal_per_minute: u32,
    /// Requests per minute per user and per API key on the rest of the API
    /// (an admin may raise a business's); default 100 (SPEC §5).
    pub api_per_minute: u32,
    /// Proxies whose `X-Forwarded-For` is believed, as addresses or CIDR
    /// blocks (`10.0.0.0/8`, `::1`). When the TCP peer is one of them, the
    /// client is the right-most forwarded address that is not (the left-most
    /// ones are whatever the client wrote). Empty (default): the TCP peer is
    /// the client.
    pub trusted_proxies: Vec<String>,
}

/// One plan of the catalogue. The built-in catalogue (SPEC §2) is the base
/// layer, so one field can be set alone, e.g.
/// `SWITCHBOARD_PLANS__GROWTH__STRIPE_PRICE_ID=price_…`.
#[derive(Debug, Clone, Deserialize, serde::Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PlanConfig {
    /// Name shown to people.
    pub display_name: String,
    /// Monthly price in minor units (cents) of `currency`; `None` for custom.
    pub price_minor: Option<i64>,
    /// ISO 4217 currency, lower case.
    pub currency: String,
    /// Channels allowed; `None` is unlimited.
    pub channel_limit: Option<u32>,
    /// Stripe price id, for plans sold through Stripe.
    pub stripe_price_id: Option<String>,
    /// Stripe product id (`prod_…`) of the custom prices an admin sets for
    /// this plan (`enterprise`: `PUT /v1/admin/businesses/{id}/plan`).
    #[serde(default)]
    pub stripe_product_id: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            environment: Environment::Development,
            bind: SocketAddr::from(([127, 0, 0, 1], 8080)),
            public_url: "http://127.0.0.1:8080".into(),
            database_url: "sqlite://switchboard.db?mode=rwc".into(),
            database_max_connections: 10,
            sqlite_exclusive: false,
            dev_keys_path: PathBuf::from(".switchboard-dev-keys.json"),
            jwt_secret: None,
            master_keys: None,
            auth: AuthConfig::default(),
            rate_limit: RateLimitConfig::default(),
            plans: default_plans(),
            smtp_host: None,
            smtp_port: 587,
            smtp_username: None,
            smtp_password: None,
            smtp_tls: SmtpTls::Starttls,
            smtp_from: "Switchboard <no-reply@switchboard.localhost>".into(),
            outbox_max_attempts: 10,
            outbox_retry_base_ms: 5000,
            outbox_retention_days: 30,
            idempotency_retention_hours: 24,
            google: None,
            facebook: None,
            oauth_frontend_url: None,
            stripe: None,
            waha: None,
            n8n: None,
            telegram: TelegramConfig::default(),
            billing: BillingConfig::default(),
            jobs: JobsConfig::default(),
            webhooks: WebhooksConfig::default(),
            events: EventsConfig::default(),
            channels: ChannelsConfig::default(),
            metrics: MetricsConfig::default(),
            cors: CorsConfig::default(),
        }
    }
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            access_token_ttl_secs: 15 * 60,
            refresh_token_ttl_secs: 30 * 24 * 3600,
            code_ttl_secs: 10 * 60,
            code_max_attempts: 5,
            registration_token_ttl_secs: 3600,
            set_password_ttl_secs: 72 * 3600,
            trial_days: 7,
            hash_concurrency: None,
            hash_wait_ms: 1000,
            password_reset_ttl_secs: 30 * 60,
            magic_link_ttl_secs: 15 * 60,
            email_requests_per_hour: 5,
            session_recheck_secs: 5,
            reauth_window_secs: 300,
            login_failures_before_lock: 5,
            login_lock_base_secs: 30,
            login_lock_max_secs: 900,
        }
    }
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        RateLimitConfig {
            auth_per_minute: 10,
            reveal_per_minute: 10,
            api_per_minute: 100,
            trusted_proxies: Vec::new(),
        }
    }
}

/// Id of the plan every registration starts on; the catalogue must hold it.
pub const TRIAL: &str = "trial";

/// The plan catalogue of SPEC §2.
pub fn default_plans() -> BTreeMap<String, PlanConfig> {
    let plan = |name: &str, price: Option<i64>, limit: Option<u32>| PlanConfig {
        display_name: name.into(),
        price_minor: price,
        currency: "usd".into(),
        channel_limit: limit,
        stripe_price_id: None,
        stripe_product_id: None,
    };
    BTreeMap::from([
        (TRIAL.into(), plan("Trial", Some(0), Some(1))),
        ("free".into(), plan("Free", Some(0), Some(1))),
        ("single".into(), plan("Single", Some(999), Some(1))),
        ("double".into(), plan("Double", Some(1999), Some(2))),
        ("growth".into(), plan("Growth", Some(4999), Some(4))),
        ("special".into(), plan("Special", Some(2999), Some(3))),
        ("enterprise".into(), plan("Enterprise", None, None)),
    ])
}

/// A configuration problem, reported before anything starts (exit code 2).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A value could not be read or has the wrong shape.
    #[error("invalid configuration: {0}")]
    Load(#[from] Box<figment::Error>),
    /// A value was read but breaks a rule.
    #[error("invalid configuration: `{key}`: {message}")]
    Invalid {
        /// The offending key.
        key: &'static str,
        /// What is wrong with it.
        message: String,
    },
}

impl Config {
    /// Loads defaults, then `file` (default `switchboard.toml`, optional),
    /// then `SWITCHBOARD_*` variables, then `DATABASE_URL`; validates.
    pub fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
        let file = file.unwrap_or(Path::new("switchboard.toml"));
        let mut figment = Figment::new()
            .merge(figment::providers::Serialized::default(
                "plans",
                default_plans(),
            ))
            .merge(Toml::file(file))
            // LOG (the log filter) and ADMIN_PASSWORD (the CLI's) are read
            // elsewhere and are not configuration keys.
            .merge(
                Env::prefixed("SWITCHBOARD_")
                    .ignore(&["LOG", "ADMIN_PASSWORD"])
                    .split("__"),
            );
        if let Ok(url) = std::env::var("DATABASE_URL") {
            figment = figment.merge(("database_url", url));
        }
        let config: Config = figment.extract().map_err(Box::new)?;
        config.validate()?;
        Ok(config)
    }

    /// Checks the rules no type can express.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.validate_database()?;
        self.validate_limits()?;
        self.validate_billing()?;
        self.validate_production()
    }

    /// The database URL, pool and SQLite options; the public URL.
    fn validate_database(&self) -> Result<(), ConfigError> {
        let invalid = |key, message: &str| ConfigError::Invalid {
            key,
            message: message.to_owned(),
        };
        if !(self.database_url.starts_with("sqlite:")
            || self.database_url.starts_with("postgres://")
            || self.database_url.starts_with("postgresql://"))
        {
            return Err(invalid(
                "database_url",
                "must start with sqlite:, postgres:// or postgresql://",
            ));
        }
        if self.database_max_connections == 0 {
            return Err(invalid("database_max_connections", "must be at least 1"));
        }
        if self.sqlite_exclusive && !self.is_sqlite() {
            return Err(invalid(
                "sqlite_exclusive",
                "applies only to a SQLite database_url",
            ));
        }
        if !(self.public_url.starts_with("http://") || self.public_url.starts_with("https://")) {
            return Err(invalid("public_url", "must be an http(s) URL"));
        }
        Ok(())
    }

    /// Lifetimes, attempts, rates and intervals: each at least 1.
    fn validate_limits(&self) -> Result<(), ConfigError> {
        let invalid = |key, message: &str| ConfigError::Invalid {
            key,
            message: message.to_owned(),
        };
        if self.auth.access_token_ttl_secs == 0 || self.auth.refresh_token_ttl_secs == 0 {
            return Err(invalid("auth", "token lifetimes must be positive"));
        }
        if self.auth.code_max_attempts == 0 {
            return Err(invalid("auth.code_max_attempts", "must be at least 1"));
        }
        if self
            .auth
            .hash_concurrency
            .is_some_and(|n| !(1..=1024).contains(&n))
        {
            return Err(invalid(
                "auth.hash_concurrency",
                "must be between 1 and 1024",
            ));
        }
        if !(1..=60_000).contains(&self.auth.hash_wait_ms) {
            return Err(invalid(
                "auth.hash_wait_ms",
                "must be between 1 and 60000 milliseconds",
            ));
        }
        if self.auth.session_recheck_secs > 3600 {
            return Err(invalid(
                "auth.session_recheck_secs",
                "must be at most 3600 seconds",
            ));
        }
        if self.auth.reauth_window_secs == 0 {
            return Err(invalid("auth.reauth_window_secs", "must be at least 1"));
        }
        if self.auth.login_failures_before_lock == 0
            || self.auth.login_lock_base_secs == 0
            || self.auth.login_lock_max_secs < self.auth.login_lock_base_secs
        {
            return Err(invalid(
                "auth.login_lock_*",
                "failures before lock and the base pause must be at least 1, the longest pause at least the base",
            ));
        }
        if let Some(bad) = self
            .rate_limit
            .trusted_proxies
            .iter()
            .find(|p| crate::http::client_ip::parse_net(p).is_none())
        {
            return Err(ConfigError::Invalid {
                key: "rate_limit.trusted_proxies",
                message: format!("`{bad}` is not an IP address or CIDR block"),
            });
        }
        if self.rate_limit.api_per_minute == 0 {
            return Err(invalid("rate_limit.api_per_minute", "must be at least 1"));
        }
        if self.rate_limit.auth_per_minute == 0 {
            return Err(invalid("rate_limit.auth_per_minute", "must be at least 1"));
        }
        if self.outbox_max_attempts == 0 {
            return Err(invalid("outbox_max_attempts", "must be at least 1"));
        }
        if self.auth.email_requests_per_hour == 0 {
            return Err(invalid(
                "auth.email_requests_per_hour",
                "must be at least 1",
            ));
        }
        if self.rate_limit.reveal_per_minute == 0 {
            return Err(invalid(
                "rate_limit.reveal_per_minute",
                "must be at least 1",
            ));
        }
        if self.webhooks.max_attempts == 0 || self.webhooks.retry_base_secs == 0 {
            return Err(invalid(
                "webhooks",
                "max_attempts and retry_base_secs must be at least 1",
            ));
        }
        if self.events.poll_ms == Some(0) || self.events.keep_alive_secs == Some(0) {
            return Err(invalid(
                "events",
                "poll_ms and keep_alive_secs must be at least 1",
            ));
        }
        if self
            .metrics
            .token
            .as_ref()
            .is_some_and(|t| secrecy::ExposeSecret::expose_secret(t).len() < 32)
        {
            return Err(invalid("metrics.token", "must be at least 32 characters"));
        }
        if let Some(bad) = self.cors.allowed_origins.iter().find(|o| {
            !(o.starts_with("http://") || o.starts_with("https://"))
                || o.trim_end_matches('/') != o.as_str()
                || axum::http::HeaderValue::from_str(o).is_err()
        }) {
            return Err(ConfigError::Invalid {
                key: "cors.allowed_origins",
                message: format!("`{bad}` is not an origin like https://app.example.com"),
            });
        }
        if self.jobs.concurrency == 0 {
            return Err(invalid("jobs.concurrency", "must be at least 1"));
        }
        if self.jobs.lease_secs < 2 {
            return Err(invalid("jobs.lease_secs", "must be at least 2"));
        }
        if self.jobs.poll_ms == 0 {
            return Err(invalid("jobs.poll_ms", "must be at least 1"));
        }
        if self.billing.sweep_interval_secs == 0 {
            return Err(invalid("billing.sweep_interval_secs", "must be at least 1"));
        }
        Ok(())
    }

    /// Stripe's base URL and the plan catalogue.
    fn validate_billing(&self) -> Result<(), ConfigError> {
        let invalid = |key, message: &str| ConfigError::Invalid {
            key,
            message: message.to_owned(),
        };
        if let Some(stripe) = &self.stripe
            && !(stripe.api_base.starts_with("http://") || stripe.api_base.starts_with("https://"))
        {
            return Err(invalid("stripe.api_base", "must be an http(s) URL"));
        }
        if self.channels.failures_before_error == 0 {
            return Err(invalid(
                "channels.failures_before_error",
                "must be at least 1",
            ));
        }
        if let Some(waha) = &self.waha {
            if !(waha.base_url.starts_with("http://") || waha.base_url.starts_with("https://")) {
                return Err(invalid("waha.base_url", "must be an http(s) URL"));
            }
            if waha.timeout_secs == 0 {
                return Err(invalid("waha.timeout_secs", "must be at least 1"));
            }
        }
        if let Some(n8n) = &self.n8n {
            for (key, url) in [
                ("n8n.base_url", Some(&n8n.base_url)),
                ("n8n.webhook_base", n8n.webhook_base.as_ref()),
            ] {
                if let Some(url) = url
                    && !(url.starts_with("http://") || url.starts_with("https://"))
                {
                    return Err(invalid(key, "must be an http(s) URL"));
                }
            }
            if n8n.timeout_secs == 0 {
                return Err(invalid("n8n.timeout_secs", "must be at least 1"));
            }
        }
        if !(self.telegram.api_base.starts_with("http://")
            || self.telegram.api_base.starts_with("https://"))
        {
            return Err(invalid("telegram.api_base", "must be an http(s) URL"));
        }
        if self.telegram.timeout_secs == 0 {
            return Err(invalid("telegram.timeout_secs", "must be at least 1"));
        }
        let mut prices = std::collections::HashSet::new();
        for plan in self.plans.values() {
            if let Some(price) = &plan.stripe_price_id
                && !prices.insert(price.as_str())
            {
                return Err(invalid(
                    "plans",
                    "two plans share a Stripe price id; a price must name one plan",
                ));
            }
        }
        if self.plans.keys().any(|id| {
            !crate::domain::validate::matches(crate::domain::billing::plans::PLAN_ID_PATTERN, id)
        }) {
            return Err(invalid(
                "plans",
                "a plan id is a lower-case letter then up to 31 of a-z, 0-9, `_`",
            ));
        }
        if !self.plans.contains_key(TRIAL) {
            return Err(invalid("plans", "the catalogue must contain `trial`"));
        }
        Ok(())
    }

    /// What production requires: configured keys.
    fn validate_production(&self) -> Result<(), ConfigError> {
        let invalid = |key, message: &str| ConfigError::Invalid {
            key,
            message: message.to_owned(),
        };
        if self.environment == Environment::Production {
            if self.smtp_host.is_none() {
                return Err(invalid(
                    "smtp_host",
                    "required in production (SWITCHBOARD_SMTP_HOST): emails carry sign-in links and codes and are never printed to the log there",
                ));
            }
            if self.jwt_secret.is_none() {
                return Err(invalid(
                    "jwt_secret",
                    "required in production (SWITCHBOARD_JWT_SECRET)",
                ));
            }
            if self.master_keys.is_none() {
                return Err(invalid(
                    "master_keys",
                    "required in production (SWITCHBOARD_MASTER_KEYS)",
                ));
            }
        }
        Ok(())
    }

    /// Where the browser goes after an OAuth callback.
    pub fn oauth_frontend_url(&self) -> String {
        self.oauth_frontend_url
            .clone()
            .unwrap_or_else(|| format!("{}/oauth/complete", self.public_base()))
    }

    /// Base URL without a trailing slash.
    pub fn public_base(&self) -> &str {
        self.public_url.trim_end_matches('/')
    }

    /// The billing page billing notices and Stripe return links point to:
    /// `{public_url}/billing`.
    pub fn billing_url(&self) -> String {
        format!("{}/billing", self.public_base())
    }

    /// True when the database is SQLite.
    pub fn is_sqlite(&self) -> bool {
        self.database_url.starts_with("sqlite:")
    }
}
