//! The HTTP surface: every route registered here through utoipa-axum's
//! `OpenApiRouter`, so the OpenAPI document is generated from the handlers
//! themselves; plus the cross-cutting layers (request ids, tracing, body
//! limit, panic capture, rate limits, problem+json fallbacks).

pub mod admin;
pub mod admin_business;
pub mod api_keys;
pub mod auth;
pub mod billing;
pub mod business;
pub mod channels;
pub mod client_ip;
pub mod companies;
pub mod connect;
pub mod context;
pub mod contract;
pub mod events;
pub mod extract;
pub mod health;
pub mod idempotency;
pub mod manager;
pub mod me;
pub mod oauth;
pub mod ops;
pub mod purchases;
pub mod rate_limit;
pub mod secrets;
pub mod stripe_connect;
pub mod webhook_endpoints;

use std::any::Any;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use utoipa_swagger_ui::SwaggerUi;

use crate::error::Error;
use crate::state::AppState;

/// Largest request body accepted (1 MiB).
pub const BODY_LIMIT: usize = 1024 * 1024;

/// The document's fixed parts; paths and schemas come from the routes.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Switchboard API",
        description = "Control plane of a multichannel business-automation SaaS. Errors are RFC 9457 problem+json with a stable `code`.",
        version = "1.0.0"
    ),
    modifiers(&BearerAuth),
    components(schemas(crate::domain::identity::oauth::SignInProvider)),
    tags(
        (name = "auth", description = "Registration and sessions"),
        (name = "me", description = "The signed-in account"),
        (name = "business", description = "The caller's business"),
        (name = "companies", description = "Companies of the caller's business"),
        (name = "channels", description = "Channels, under the plan's limit"),
        (name = "admin", description = "Platform staff"),
        (name = "manager", description = "Managers' read-only views of assigned businesses"),
        (name = "secrets", description = "Integration secrets (envelope-encrypted), masked; reveal is audited"),
        (name = "billing", description = "Stripe subscription, plans, invoices; Stripe webhooks"),
        (name = "connect", description = "The business's Stripe Connect account, so its own customers pay it; Connect webhooks"),
        (name = "purchases", description = "End-customer payments (Stripe Checkout to the connected account) and the purchase log"),
        (name = "api-keys", description = "API keys for the business's programs (people only; a key never manages keys)"),
        (name = "events", description = "The business's event log: pages and a live stream (server-sent events)"),
        (name = "webhooks", description = "Outgoing webhooks to the business's own endpoints (Standard Webhooks signatures)"),
        (name = "health", description = "Liveness and readiness"),
    )
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

/// `/v1/auth/*`, which the router wraps in the auth rate limit.
fn auth_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(auth::register_start))
        .routes(routes!(auth::register_verify))
        .routes(routes!(auth::register_complete))
        .routes(routes!(auth::login))
        .routes(routes!(auth::refresh))
        .routes(routes!(auth::logout))
        .routes(routes!(auth::password_set))
        .routes(routes!(auth::password_forgot))
        .routes(routes!(auth::password_reset))
        .routes(routes!(auth::password_change))
        .routes(routes!(auth::magic_link_request))
        .routes(routes!(auth::magic_link_verify))
        .routes(routes!(oauth::start))
        .routes(routes!(oauth::callback))
        .routes(routes!(oauth::exchange))
        .routes(routes!(auth::reauthenticate))
        .routes(routes!(auth::logout_all))
        .routes(routes!(auth::remove_sign_in_method))
        .routes(routes!(auth::confirm_email))
}

/// Every other route.
fn api_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(health::live))
        .routes(routes!(health::ready))
        .routes(routes!(ops::detailed))
        .routes(routes!(me::get_me, me::update_me))
        .routes(routes!(me::change_email))
        .routes(routes!(oauth::list_methods))
        .routes(routes!(oauth::link_method, oauth::unlink_method))
        .routes(routes!(business::get_business, business::update_business))
        .routes(routes!(business::business_audit))
        .routes(routes!(
            companies::create_company,
            companies::list_companies
        ))
        .routes(routes!(
            companies::get_company,
            companies::update_company,
            companies::delete_company
        ))
        .routes(routes!(channels::create_channel, channels::list_channels))
        .routes(routes!(channels::get_channel, channels::delete_channel))
        .routes(routes!(channels::connect_channel))
        .routes(routes!(channels::reconnect_channel))
        .routes(routes!(channels::disconnect_channel))
        .routes(routes!(channels::channel_qr))
        .routes(routes!(channels::waha_webhook))
        .routes(routes!(admin::list_businesses))
        .routes(routes!(admin::get_business))
        .routes(routes!(admin::create_manager, admin::list_managers))
        .routes(routes!(admin::assign_manager, admin::unassign_manager))
        .routes(routes!(admin::audit_log))
        .routes(routes!(admin::platform_stats))
        .routes(routes!(admin::list_jobs))
        .routes(routes!(admin::retry_job))
        .routes(routes!(manager::list_businesses))
        .routes(routes!(manager::get_business))
        .routes(routes!(manager::list_companies))
        .routes(routes!(manager::list_channels))
        .routes(routes!(secrets::list_secrets))
        .routes(routes!(secrets::put_secret, secrets::delete_secret))
        .routes(routes!(secrets::reveal_secret))
        .routes(routes!(billing::list_plans))
        .routes(routes!(billing::checkout_session))
        .routes(routes!(billing::portal_session))
        .routes(routes!(billing::change_plan))
        .routes(routes!(billing::cancel))
        .routes(routes!(billing::resume))
        .routes(routes!(billing::subscription))
        .routes(routes!(billing::invoices))
        .routes(routes!(billing::stripe_webhook))
        .routes(routes!(
            stripe_connect::create_account,
            stripe_connect::get_account,
            stripe_connect::delete_account
        ))
        .routes(routes!(stripe_connect::onboarding_link))
        .routes(routes!(stripe_connect::login_link))
        .routes(routes!(stripe_connect::connect_webhook))
        .routes(routes!(
            purchases::create_purchase,
            purchases::list_purchases
        ))
        .routes(routes!(purchases::get_purchase))
        .routes(routes!(purchases::export_purchases))
        .routes(routes!(api_keys::create_api_key, api_keys::list_api_keys))
        .routes(routes!(api_keys::revoke_api_key))
        .routes(routes!(api_keys::admin_list_api_keys))
        .routes(routes!(api_keys::admin_revoke_api_key))
        .routes(routes!(admin::set_rate_limit))
        .routes(routes!(admin_business::grant_plan))
        .routes(routes!(admin_business::create_company))
        .routes(routes!(
            admin_business::update_company,
            admin_business::delete_company
        ))
        .routes(routes!(admin_business::create_channel))
        .routes(routes!(admin_business::delete_channel))
        .routes(routes!(events::list_events))
        .routes(routes!(events::stream_events))
        .routes(routes!(
            webhook_endpoints::create_endpoint,
            webhook_endpoints::list_endpoints
        ))
        .routes(routes!(
            webhook_endpoints::get_endpoint,
            webhook_endpoints::update_endpoint,
            webhook_endpoints::delete_endpoint
        ))
        .routes(routes!(webhook_endpoints::roll_secret))
        .routes(routes!(webhook_endpoints::list_deliveries))
}

/// The OpenAPI document (what `GET /openapi.json` serves and
/// `switchboard openapi` prints): generated from the routes, with the
/// cross-cutting layers' answers added ([`contract`]).
pub fn openapi() -> serde_json::Value {
    let doc = OpenApiRouter::<AppState>::with_openapi(ApiDoc::openapi())
        .merge(auth_routes())
        .merge(api_routes())
        .into_openapi();
    contract::apply(&doc)
}

/// The whole application router.
pub fn router(state: AppState) -> Router {
    let context = axum::middleware::from_fn_with_state(state.clone(), context::layer);
    let (router, doc) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(
            auth_routes()
                .layer(context.clone())
                .layer(rate_limit::auth_layer(&state.config.rate_limit)),
        )
        .merge(
            api_routes()
                .layer(context)
                .layer(axum::middleware::from_fn_with_state(
                    state.clone(),
                    idempotency::layer,
                )),
        )
        .split_for_parts();
    let doc = contract::apply(&doc);
    let resolver = client_ip::Resolver::new(&state.config.rate_limit.trusted_proxies);
    let hsts = state.config.public_url.starts_with("https://");
    router
        .route("/metrics", axum::routing::get(ops::metrics))
        .layer(axum::middleware::from_fn(crate::telemetry::http_layer))
        .merge(SwaggerUi::new("/docs").external_url_unchecked("/openapi.json", doc))
        .merge(connect::routes())
        .merge(stripe_connect::routes())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn(move |req, next| {
            security_headers(hsts, req, next)
        }))
        .layer(cors(&state.config.cors))
        .layer(axum::middleware::from_fn_with_state(
            resolver,
            client_ip::layer,
        ))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(TraceLayer::new_for_http())
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .with_state(state)
}

/// Headers every response carries: no MIME sniffing, no referrer, a
/// content security policy (the API's answers load nothing and frame
/// nowhere; the docs page and the connect page load their own scripts and
/// styles only, so they work offline), and HSTS when the public URL is
/// https.
async fn security_headers(
    hsts: bool,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    use axum::http::{HeaderValue, header};
    let docs = request.uri().path().starts_with("/docs");
    let connect = request.uri().path().starts_with("/connect/");
    let mut response = next.run(request).await;
    let h = response.headers_mut();
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    let csp = if docs {
        "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'"
    } else if connect {
        // The connect page: its own script and style, the code as a data:
        // URL or from its own route, its own event stream; nothing else.
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
    } else {
        "default-src 'none'; frame-ancestors 'none'"
    };
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(csp),
    );
    if hsts {
        h.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000; includeSubDomains"),
        );
    }
    response
}

/// Cross-origin requests from the configured origins only (none by
/// default), with credentials (the OAuth binding cookie); the headers a
/// client needs to read are exposed.
fn cors(config: &crate::config::CorsConfig) -> tower_http::cors::CorsLayer {
    use axum::http::{HeaderName, HeaderValue, Method, header};
    use tower_http::cors::{AllowOrigin, CorsLayer};
    let origins: Vec<HeaderValue> = config
        .allowed_origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o).ok())
        .collect();
    CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins))
        .allow_credentials(true)
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
        ])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            HeaderName::from_static("idempotency-key"),
            HeaderName::from_static("last-event-id"),
        ])
        .expose_headers([
            header::RETRY_AFTER,
            header::LOCATION,
            HeaderName::from_static("ratelimit"),
            HeaderName::from_static("ratelimit-policy"),
            HeaderName::from_static("idempotent-replayed"),
            HeaderName::from_static("x-request-id"),
        ])
        .max_age(std::time::Duration::from_secs(600))
}

async fn not_found() -> Error {
    Error::new(StatusCode::NOT_FOUND, "route_not_found", "No such route")
}

async fn method_not_allowed() -> Error {
    Error::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "Method not allowed on this route",
    )
}

fn panic_response(_: Box<dyn Any + Send + 'static>) -> Response {
    Error::internal("handler panicked").into_response()
}
