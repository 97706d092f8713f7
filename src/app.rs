//! Assembling and running the server: state from configuration, the router,
//! the listener, and graceful shutdown (in-flight requests finish).

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

use crate::auth::passwords::PasswordHasherPool;
use crate::auth::tokens::TokenSigner;
use crate::authz::Authz;
use crate::config::Config;
use crate::crypto::Keyring;
use crate::domain::billing::plans::PlanCatalogue;
use crate::keys::Keys;
use crate::mail::Mailer;
use crate::state::{AppState, Services};

/// Connects and migrates the database, resolves keys and loads policies.
pub async fn build_state(config: Config) -> anyhow::Result<AppState> {
    let keys = Keys::resolve(&config)?;
    let db = crate::db::connect(&config).await?;
    crate::db::migrate(&db).await?;
    let read = crate::db::reader::Reader::new(&config.database_url, &db, config.sqlite_exclusive)?;
    let passwords = PasswordHasherPool::new(
        config
            .auth
            .hash_concurrency
            .unwrap_or_else(crate::auth::passwords::default_concurrency),
        std::time::Duration::from_millis(config.auth.hash_wait_ms),
    );
    let tokens = TokenSigner::new(&keys, config.auth.access_token_ttl_secs);
    let reveal_quota = governor::Quota::per_minute(
        NonZeroU32::new(config.rate_limit.reveal_per_minute).unwrap_or(NonZeroU32::MIN),
    );
    let Keys { master_keys, .. } = keys;
    let keyring = Arc::new(Keyring::new(master_keys));
    seal_at_rest(&db, &keyring).await?;
    let jobs = crate::jobs::queue::Queue::new(&config);
    let poll = config
        .events
        .poll_ms
        .unwrap_or(if config.is_sqlite() { 25 } else { 1000 });
    let hub = crate::domain::events::hub::Hub::new(
        db.clone(),
        config.database_url.clone(),
        std::time::Duration::from_millis(poll),
    );
    // Counters and histograms start recording from the first request.
    crate::telemetry::handle();
    Ok(AppState::new(Services {
        probes: Default::default(),
        hub,
        keyring: keyring.clone(),
        reveal_limiter: Arc::new(governor::RateLimiter::keyed(reveal_quota)),
        api_limits: Arc::new(crate::http::rate_limit::ApiLimits::new(
            config.rate_limit.api_per_minute,
        )),
        db,
        read,
        inbound: Default::default(),
        authz: Arc::new(Authz::load().await?),
        tokens: Arc::new(tokens),
        sessions: Arc::new(crate::auth::sessions::SessionCache::new(
            std::time::Duration::from_secs(config.auth.session_recheck_secs),
        )),
        oidc: Arc::default(),
        passwords,
        mailer: Mailer::from_config(&config, jobs.clone(), keyring)?,
        jobs,
        plans: Arc::new(PlanCatalogue::new(config.plans.clone())),
        stripe: config
            .stripe
            .as_ref()
            .map(crate::integrations::stripe::StripeApi::new)
            .transpose()
            .map_err(|e| anyhow::anyhow!("Stripe client: {}", e.code()))?,
        waha: config
            .waha
            .as_ref()
            .map(crate::integrations::waha::WahaApi::new)
            .transpose()
            .map_err(|e| anyhow::anyhow!("WAHA client: {}", e.code()))?,
        n8n: config
            .n8n
            .as_ref()
            .map(crate::integrations::n8n::N8nApi::new)
            .transpose()
            .map_err(|e| anyhow::anyhow!("n8n client: {}", e.code()))?,
        telegram: crate::integrations::telegram::TelegramApi::new(
            &config.telegram.api_base,
            std::time::Duration::from_secs(config.telegram.timeout_secs),
        )
        .map_err(|e| anyhow::anyhow!("Telegram client: {}", e.code()))?,
        webhook_secrets: Arc::new(
            config
                .stripe
                .as_ref()
                .and_then(|s| s.webhook_secrets.as_ref())
                .map(crate::inbound::stripe::signature::secrets)
                .unwrap_or_default(),
        ),
        connect_webhook_secrets: Arc::new(
            config
                .stripe
                .as_ref()
                .and_then(|s| s.connect_webhook_secrets.as_ref())
                .map(crate::inbound::stripe::signature::secrets)
                .unwrap_or_default(),
        ),
        config: Arc::new(config),
    }))
}

/// Seals what older versions kept in plaintext (migration 8): the bodies of
/// emails still pending and the list hints of secrets. Idempotent; after the
/// first start of this version it finds nothing.
async fn seal_at_rest(db: &sea_orm::DatabaseConnection, keyring: &Keyring) -> anyhow::Result<()> {
    let emails = crate::mail::seal_legacy(db, keyring)
        .await
        .map_err(|e| anyhow::anyhow!("sealing pending email bodies: {e}"))?;
    let hints = crate::domain::vault::secrets::fill_hints(crate::domain::vault::secrets::Vault {
        db,
        keyring,
    })
    .await
    .map_err(|e| anyhow::anyhow!("sealing secret hints: {e}"))?;
    if emails + hints > 0 {
        tracing::info!(
            emails,
            hints,
            "sealed what an earlier version kept in plaintext"
        );
    }
    Ok(())
}

/// A server running in the background (tests, benchmarks).
pub struct RunningApp {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its state (tests read the dev mailbox through it).
    pub state: AppState,
    shutdown: Option<oneshot::Sender<()>>,
    handle: JoinHandle<std::io::Result<()>>,
    stop_jobs: watch::Sender<bool>,
    jobs: JoinHandle<()>,
}

impl RunningApp {
    /// `http://{addr}`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Graceful stop: stops accepting, lets in-flight requests finish, stops
    /// the job runner (running tasks finish or are released), then closes
    /// the database pool.
    pub async fn stop(mut self) -> std::io::Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        // Event streams never end by themselves: end them so their
        // connections close and the graceful shutdown can finish.
        self.state.hub.close();
        let result = (&mut self.handle)
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e)));
        let _ = self.stop_jobs.send(true);
        let _ = (&mut self.jobs).await;
        let _ = self.state.db.clone().close().await;
        result
    }
}

/// Serves `state` on `listener` until `stop` is called.
pub fn spawn(state: AppState, listener: TcpListener) -> std::io::Result<RunningApp> {
    let addr = listener.local_addr()?;
    let (tx, rx) = oneshot::channel::<()>();
    let router = crate::http::router(state.clone());
    let handle = tokio::spawn(async move {
        axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async {
            let _ = rx.await;
        })
        .await
    });
    let (stop_jobs, stop) = watch::channel(false);
    let jobs = tokio::spawn(crate::jobs::runner(&state).run(stop));
    if let Some(bind) = state.config.metrics.bind {
        let metrics = axum::Router::new()
            .route(
                "/metrics",
                axum::routing::get(crate::http::ops::metrics_unguarded),
            )
            .with_state(state.clone());
        let mut stopped = stop_jobs.subscribe();
        tokio::spawn(async move {
            match TcpListener::bind(bind).await {
                Ok(l) => {
                    let _ = axum::serve(l, metrics)
                        .with_graceful_shutdown(async move {
                            let _ = stopped.changed().await;
                        })
                        .await;
                }
                Err(e) => tracing::error!(error = %e, %bind, "cannot serve metrics"),
            }
        });
    }
    Ok(RunningApp {
        addr,
        state,
        shutdown: Some(tx),
        handle,
        stop_jobs,
        jobs,
    })
}

/// Runs the server and its background jobs in the foreground until SIGINT
/// or SIGTERM, then stops gracefully (in-flight requests finish).
pub async fn serve(config: Config) -> anyhow::Result<()> {
    let bind = config.bind;
    let state = build_state(config).await?;
    let listener = TcpListener::bind(bind).await?;
    let addr = listener.local_addr()?;
    println!("Switchboard is listening on http://{addr}");
    println!("  API:      http://{addr}/v1");
    println!("  Docs:     http://{addr}/docs");
    println!("  OpenAPI:  http://{addr}/openapi.json");
    let running = spawn(state, listener)?;
    shutdown_signal().await;
    running.stop().await?;
    tracing::info!("stopped: in-flight requests finished, jobs stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutdown signal received");
}
