//! Sign-in by emailed link: a random single-use token (15 minutes), stored
//! hashed and bound to the address; verifying it signs the account in.

use entity::enums::TokenPurpose;

use crate::domain::identity::Identity;
use crate::domain::identity::one_time;
use crate::domain::identity::sessions::{self, TokenPair};
use crate::domain::validate::Email;
use crate::error::Result;
use crate::mail::templates;

/// Emails a sign-in link when the address has an account; answers alike
/// either way. Counted against the per-email limit.
pub async fn request(ctx: &Identity<'_>, email: &Email) -> Result<()> {
    let link = one_time::LinkEmail {
        kind: "magic_link",
        purpose: TokenPurpose::MagicLink,
        ttl_secs: ctx.config.auth.magic_link_ttl_secs,
        path: "/magic-link",
        render: templates::magic_link,
    };
    one_time::email_link(ctx, email, link).await
}

/// Signs in with a magic-link token (single use). The account must still
/// have the address the link was sent to.
pub async fn verify(ctx: &Identity<'_>, token: &str) -> Result<TokenPair> {
    let txn = crate::db::begin_write(ctx.db).await?;
    let user = one_time::consume_for_user(&txn, TokenPurpose::MagicLink, token).await?;
    let pair = sessions::issue(ctx, &txn, &user).await?;
    txn.commit().await?;
    Ok(pair)
}
