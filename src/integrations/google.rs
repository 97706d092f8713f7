//! Google sign-in with OpenID Connect (the `openidconnect` crate): discovery
//! from the configured issuer (so any OIDC provider works), authorization
//! code flow with PKCE (S256), state and nonce; the ID token is verified for
//! issuer, audience, signature (JWKS from discovery), nonce and expiry
//! (OpenID Connect Core 1.0 §3.1.3.7).

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

async fn client(
    config: &OidcConfig,
    redirect_uri: &str,
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
    ),
    OidcError,
> {
    let http = http_client().map_err(|e| OidcError::Provider(e.to_string()))?;
    let issuer = IssuerUrl::new(config.issuer_url.clone())
        .map_err(|e| OidcError::Provider(e.to_string()))?;
    let metadata = CoreProviderMetadata::discover_async(issuer, &http)
        .await
        .map_err(|e| OidcError::Provider(format!("discovery failed: {e}")))?;
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
    Ok((client, http))
}

/// Builds the authorization request. `login_hint` is passed through (OIDC
/// Core §3.1.2.1).
pub async fn authorize(
    config: &OidcConfig,
    redirect_uri: &str,
    login_hint: Option<&str>,
) -> Result<Authorization, OidcError> {
    let (client, _) = client(config, redirect_uri).await?;
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
    redirect_uri: &str,
    code: &str,
    pkce_verifier: &str,
    nonce: &str,
) -> Result<ExternalIdentity, OidcError> {
    let (client, http) = client(config, redirect_uri).await?;
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
    let claims = id_token
        .claims(&client.id_token_verifier(), &Nonce::new(nonce.to_owned()))
        .map_err(|e| OidcError::IdToken(e.to_string()))?;
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
