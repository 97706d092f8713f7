//! Facebook sign-in with OAuth 2.0 (the `oauth2` crate): authorization code
//! with state and PKCE, then the Graph API `/me?fields=id,name,email` with
//! `appsecret_proof` (HMAC-SHA256 of the access token under the app secret;
//! Meta docs: "Securing Graph API Requests"). The Graph API says nothing
//! about whether the address it returns was verified, and its documentation
//! promises nothing either, so it never counts as verified here: it names a
//! new account, and never links one that exists.

use hmac::{Hmac, Mac};
use oauth2::basic::BasicClient;
use oauth2::{
    AuthType, AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, PkceCodeChallenge,
    PkceCodeVerifier, RedirectUrl, Scope, TokenResponse, TokenUrl,
};
use secrecy::ExposeSecret;
use serde::Deserialize;
use sha2::Sha256;

use super::{Authorization, ExternalIdentity, http_client};
use crate::config::FacebookConfig;

/// Why a Facebook sign-in failed; the text is safe to show.
#[derive(Debug, thiserror::Error)]
pub enum FacebookError {
    /// Misconfiguration.
    #[error("Facebook sign-in is misconfigured: {0}")]
    Config(String),
    /// The code exchange failed.
    #[error("the authorization code was refused: {0}")]
    Exchange(String),
    /// The Graph API call failed.
    #[error("the Graph API refused the request: {0}")]
    Graph(String),
}

#[derive(Deserialize)]
struct Me {
    id: String,
    name: Option<String>,
    email: Option<String>,
}

fn client(
    config: &FacebookConfig,
    redirect_uri: &str,
) -> Result<
    BasicClient<
        oauth2::EndpointSet,
        oauth2::EndpointNotSet,
        oauth2::EndpointNotSet,
        oauth2::EndpointNotSet,
        oauth2::EndpointSet,
    >,
    FacebookError,
> {
    let bad = |e: oauth2::url::ParseError| FacebookError::Config(e.to_string());
    Ok(BasicClient::new(ClientId::new(config.client_id.clone()))
        .set_client_secret(ClientSecret::new(
            config.client_secret.expose_secret().to_owned(),
        ))
        .set_auth_uri(AuthUrl::new(config.auth_url.clone()).map_err(bad)?)
        .set_token_uri(TokenUrl::new(config.token_url.clone()).map_err(bad)?)
        .set_redirect_uri(RedirectUrl::new(redirect_uri.to_owned()).map_err(bad)?)
        // Facebook reads the client credentials from the request body.
        .set_auth_type(AuthType::RequestBody))
}

/// Builds the authorization request (scope `email`).
pub fn authorize(
    config: &FacebookConfig,
    redirect_uri: &str,
) -> Result<Authorization, FacebookError> {
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (url, state) = client(config, redirect_uri)?
        .authorize_url(CsrfToken::new_random)
        .add_scope(Scope::new("email".into()))
        .set_pkce_challenge(challenge)
        .url();
    Ok(Authorization {
        url: url.to_string(),
        state: state.secret().clone(),
        pkce_verifier: verifier.secret().clone(),
        nonce: None,
    })
}

/// Exchanges `code` and reads the account from the Graph API.
pub async fn finish(
    config: &FacebookConfig,
    redirect_uri: &str,
    code: &str,
    pkce_verifier: &str,
) -> Result<ExternalIdentity, FacebookError> {
    let http = http_client().map_err(|e| FacebookError::Config(e.to_string()))?;
    let token = client(config, redirect_uri)?
        .exchange_code(AuthorizationCode::new(code.to_owned()))
        .set_pkce_verifier(PkceCodeVerifier::new(pkce_verifier.to_owned()))
        .request_async(&http)
        .await
        .map_err(|e| FacebookError::Exchange(e.to_string()))?;
    let access_token = token.access_token().secret();
    let mut mac = Hmac::<Sha256>::new_from_slice(config.client_secret.expose_secret().as_bytes())
        .map_err(|e| FacebookError::Config(e.to_string()))?;
    mac.update(access_token.as_bytes());
    let proof: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let response = http
        .get(format!("{}/me", config.graph_url.trim_end_matches('/')))
        .query(&[
            ("fields", "id,name,email"),
            ("appsecret_proof", proof.as_str()),
        ])
        .bearer_auth(access_token)
        .send()
        .await
        .map_err(|e| FacebookError::Graph(e.to_string()))?;
    if !response.status().is_success() {
        return Err(FacebookError::Graph(format!("HTTP {}", response.status())));
    }
    let me: Me = response
        .json()
        .await
        .map_err(|e| FacebookError::Graph(e.to_string()))?;
    let email = me.email.map(|e| e.to_lowercase());
    Ok(ExternalIdentity {
        subject: me.id,
        email_verified: false,
        email,
        name: me.name,
    })
}
