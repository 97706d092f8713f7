//! Google sign-in with OpenID Connect (the `openidconnect` crate): discovery
//! from the configured issuer (so any OIDC provider works), authorization
//! code flow with PKCE (S256), state and nonce; the ID token is verified for
//! issuer, audience, signature (JWKS from discovery), nonce and expiry
//! (OpenID Connect Core 1.0 §3.1.3.7).
//!
//! Discovery (the provider's metadata and its signing keys) is cached for
//! [`DISCOVERY_TTL`] instead of fetched on every start and callback (OpenID
//! Connect Discovery 1.0 §4; Google serves both with a cache lifetime of
//! hours). A callback whose ID token fails to verify against cached keys
//! older than [`REFRESH_AFTER`] re-reads them once and verifies again, so a
//! provider's key rotation costs one extra fetch, not a failed sign-in.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use openidconnect::core::{CoreAuthenticationFlow, CoreClient, CoreProviderMetadata};
use openidconnect::{
    AuthorizationCode, ClientId, ClientSecret, CsrfToken, IssuerUrl, Nonce, PkceCodeChallenge,
    PkceCodeVerifier, RedirectUrl, Scope,
};
use secrecy::ExposeSecret;

use super::{Authorization, ExternalIdentity, http_client};
use crate::config::OidcConfig;

/// Why a Google sign-in failed; the text is safe to show.
#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    /// Configuration or discovery failed.
    #[error("the OpenID provider is unavailable: {0}")]
    Provider(String),
    /// The code exchange failed (bad, expired or replayed code).
    #[error("the authorization code was refused: {0}")]
    Exchange(String),
    /// The ID token did not verify.
    #[error("the ID token is invalid: {0}")]
    IdToken(String),
}

/// How long discovered metadata and keys are used before being re-read.
pub const DISCOVERY_TTL: Duration = Duration::from_secs(3600);
/// Age past which a failed ID-token verification re-reads the keys.
pub const REFRESH_AFTER: Duration = Duration::from_secs(60);

/// The cache of discovered provider metadata (with its JWKS), per issuer.
#[derive(Default)]
pub struct Discovery {
    cached: Mutex<Option<(String, CoreProviderMetadata, Instant)>>,
}

impl Discovery {
    /// The issuer's metadata: cached unless older than [`DISCOVERY_TTL`] (or
    /// `max_age`), else discovered now (and cached).
    async fn metadata(
        &self,
        issuer_url: &str,
        http: &reqwest::Client,
        max_age: Duration,
    ) -> Result<(CoreProviderMetadata, Instant), OidcError> {
        if let Ok(guard) = self.cached.lock()
            && let Some((issuer, metadata, at)) = guard.as_ref()
            && issuer == issuer_url
            && at.elapsed() < max_age.min(DISCOVERY_TTL)
        {
            return Ok((metadata.clone(), *at));
        }
        let issuer = IssuerUrl::new(issuer_url.to_owned())
            .map_err(|e| OidcError::Provider(e.to_string()))?;
        let metadata = CoreProviderMetadata::discover_async(issuer, http)
            .await
            .map_err(|e| OidcError::Provider(format!("discovery failed: {e}")))?;
        let at = Instant::now();
        if let Ok(mut guard) = self.cached.lock() {
            *guard = Some((issuer_url.to_owned(), metadata.clone(), at));
        }
        Ok((metadata, at))
    }
}

async fn client(
    config: &OidcConfig,
    redirect_uri: &str,
    discovery: &Discovery,
    max_age: Duration,
) -> Result<
    (
        CoreClient<
            openidconnect::EndpointSet,
            openidconnect::EndpointNotSet,
            openidconnect::EndpointNotSet,
            openidconnect::EndpointNotSet,
            openidconnect::EndpointMaybeSet,
            openidconnect::EndpointMaybeSet,
        >,
        reqwest::Client,
        Instant,
    ),
    OidcError,
> {
    let http = http_client().map_err(|e| OidcError::Provider(e.to_string()))?;
    let (metadata, discovered_at) = discovery
        .metadata(&config.issuer_url, &http, max_age)
        .await?;
    let client = CoreClient::from_provider_metadata(
        metadata,
        ClientId::new(config.client_id.clone()),
        Some(ClientSecret::new(
            config.client_secret.expose_secret().to_owned(),
        )),
    )
    .set_redirect_uri(
        RedirectUrl::new(redirect_uri.to_owned())
            .map_err(|e| OidcError::Provider(e.to_string()))?,
    );
    Ok((client, http, discovered_at))
}

/// Builds the authorization request. `login_hint` is passed through (OIDC
/// Core §3.1.2.1).
pub async fn authorize(
    config: &OidcConfig,
    discovery: &Discovery,
    redirect_uri: &str,
    login_hint: Option<&str>,
) -> Result<Authorization, OidcError> {
    let (client, _, _) = client(config, redirect_uri, discovery, DISCOVERY_TTL).await?;
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let mut request = client
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .add_scope(Scope::new("email".into()))
        .add_scope(Scope::new("profile".into()))
        .set_pkce_challenge(challenge);
    if let Some(hint) = login_hint {
        request = request.add_extra_param("login_hint", hint.to_owned());
    }
    let (url, state, nonce) = request.url();
    Ok(Authorization {
        url: url.to_string(),
        state: state.secret().clone(),
        pkce_verifier: verifier.secret().clone(),
        nonce: Some(nonce.secret().clone()),
    })
}

/// Exchanges `code` (with the PKCE verifier) and verifies the ID token.
pub async fn finish(
    config: &OidcConfig,
    discovery: &Discovery,
    redirect_uri: &str,
    code: &str,
    pkce_verifier: &str,
    nonce: &str,
) -> Result<ExternalIdentity, OidcError> {
    let (client, http, discovered_at) =
        client(config, redirect_uri, discovery, DISCOVERY_TTL).await?;
    let response = client
        .exchange_code(AuthorizationCode::new(code.to_owned()))
        .map_err(|e| OidcError::Provider(e.to_string()))?
        .set_pkce_verifier(PkceCodeVerifier::new(pkce_verifier.to_owned()))
        .request_async(&http)
        .await
        .map_err(|e| OidcError::Exchange(e.to_string()))?;
    let id_token = response
        .extra_fields()
        .id_token()
        .ok_or_else(|| OidcError::IdToken("no ID token in the response".into()))?;
    let nonce = Nonce::new(nonce.to_owned());
    let claims = match id_token.claims(&client.id_token_verifier(), &nonce) {
        Ok(claims) => claims.clone(),
        Err(first) if discovered_at.elapsed() >= REFRESH_AFTER => {
            // The provider may have rotated its keys since they were cached.
            let (fresh, _, _) =
                self::client(config, redirect_uri, discovery, Duration::ZERO).await?;
            id_token
                .claims(&fresh.id_token_verifier(), &nonce)
                .map_err(|e| {
                    OidcError::IdToken(format!("{first}; after re-reading the keys: {e}"))
                })?
                .clone()
        }
        Err(e) => return Err(OidcError::IdToken(e.to_string())),
    };
    Ok(ExternalIdentity {
        subject: claims.subject().to_string(),
        email: claims.email().map(|e| e.to_string().to_lowercase()),
        email_verified: claims.email_verified().unwrap_or(false),
        name: claims
            .name()
            .and_then(|n| n.get(None))
            .map(|n| n.to_string()),
    })
}
