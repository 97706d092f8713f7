//! Clients of external systems, one module each, every base URL from
//! configuration so tests run the real client code against local servers
//! that speak the same wire format.

pub mod facebook;
pub mod google;
pub mod n8n;
pub mod ssrf;
pub mod stripe;
pub mod telegram;
pub mod waha;

/// The outside systems Switchboard connects a business to, by the names
/// the vault stores their secrets under (SPEC §3, §4): one vocabulary for
/// the vault, the connectors and the deletion cascade. (A channel's
/// [`entity::enums::Platform`] is what the business's customers talk on;
/// sign-in providers are `domain::identity::oauth::SignInProvider`.)
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum System {
    /// WAHA (WhatsApp) session keys.
    Waha,
    /// Telegram bot tokens.
    Telegram,
    /// Meta (Instagram/Facebook) page tokens.
    Meta,
    /// Gmail OAuth tokens.
    Gmail,
    /// n8n credential ids.
    N8n,
    /// Stripe Connect data.
    StripeConnect,
    /// Cloudinary folder keys.
    Cloudinary,
}

impl System {
    /// The stored (and path) form.
    pub fn as_str(self) -> &'static str {
        match self {
            System::Waha => "waha",
            System::Telegram => "telegram",
            System::Meta => "meta",
            System::Gmail => "gmail",
            System::N8n => "n8n",
            System::StripeConnect => "stripe_connect",
            System::Cloudinary => "cloudinary",
        }
    }
}

/// What a provider vouches for after a completed sign-in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalIdentity {
    /// The provider's stable user id (OIDC `sub`, Graph API `id`).
    pub subject: String,
    /// The email address, lower-cased, if shared.
    pub email: Option<String>,
    /// Whether the provider verified that address.
    pub email_verified: bool,
    /// Display name, if shared.
    pub name: Option<String>,
}

/// The start of an authorization request: where to send the browser and
/// what to keep server-side until the callback.
pub struct Authorization {
    /// The provider's authorization URL, with state, PKCE challenge (and
    /// nonce for OIDC).
    pub url: String,
    /// The `state` value (kept hashed).
    pub state: String,
    /// The PKCE verifier.
    pub pkce_verifier: String,
    /// The OIDC nonce, for OpenID Connect providers.
    pub nonce: Option<String>,
}

/// An HTTP client for provider calls: no redirects (following them would
/// open server-side request forgery; openidconnect's advice), short timeouts.
pub fn http_client() -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(std::time::Duration::from_secs(15))
        .build()
}
