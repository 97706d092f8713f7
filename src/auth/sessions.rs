//! Whether the session behind an access token is still alive, and the
//! account's current platform role.
//!
//! An access token is a signed statement valid until it expires (15 minutes
//! by default); what ends it early is the account's `sessions_valid_after`
//! instant (`users`), set by logging out everywhere, a password reset or
//! change, a role change and a business's deletion: a token issued before
//! it is refused. Every authenticated request is checked against it, and
//! the role the request acts with is the one the database holds now, not
//! the one the token was issued with.
//!
//! The check is memoized per account for `auth.session_recheck_secs`
//! (default 5): a change made through this process takes effect at once
//! (the memo entry is dropped with it), one made through another instance
//! sharing the database within that time.

use std::time::Duration;

use chrono::{DateTime, Utc};
use entity::enums::Role;
use entity::user;
use sea_orm::{ConnectionTrait, EntityTrait, QuerySelect};
use uuid::Uuid;

use crate::auth::tokens::Grant;
use crate::error::{Error, Result};
use crate::memo::Memo;

/// Accounts remembered at most (about 40 bytes each).
const MAX_ACCOUNTS: usize = 65_536;

/// What the check needs of an account, and when it was read.
#[derive(Debug, Clone, Copy)]
struct Account {
    /// `sessions_valid_after` in Unix milliseconds (`i64::MIN`: never set).
    valid_after_ms: i64,
    role: Role,
    read_at_ms: i64,
}

/// The memo of account states.
pub struct SessionCache {
    accounts: Memo<Uuid, Account>,
    recheck_ms: i64,
}

fn invalid() -> Error {
    Error::unauthorized(
        "invalid_token",
        "The session has ended (signed out, password changed, or account changed); sign in again",
    )
}

impl SessionCache {
    /// Re-reads an account at most every `recheck`.
    pub fn new(recheck: Duration) -> SessionCache {
        SessionCache {
            accounts: Memo::new(MAX_ACCOUNTS),
            recheck_ms: i64::try_from(recheck.as_millis()).unwrap_or(i64::MAX),
        }
    }

    /// The account's current role if `grant`'s session is alive; 401
    /// `invalid_token` when the account is gone or ended its sessions after
    /// the token was issued.
    pub async fn check<C: ConnectionTrait>(&self, db: &C, grant: &Grant) -> Result<Role> {
        let now = Utc::now().timestamp_millis();
        let account = match self.accounts.get(&grant.user_id) {
            Some(a) if now - a.read_at_ms < self.recheck_ms => a,
            _ => {
                let (valid_after, role) = user::Entity::find_by_id(grant.user_id)
                    .select_only()
                    .column(user::Column::SessionsValidAfter)
                    .column(user::Column::Role)
                    .into_tuple::<(Option<DateTime<Utc>>, Role)>()
                    .one(db)
                    .await?
                    .ok_or_else(invalid)?;
                let account = Account {
                    valid_after_ms: valid_after.map_or(i64::MIN, |t| t.timestamp_millis()),
                    role,
                    read_at_ms: now,
                };
                let recheck = self.recheck_ms;
                self.accounts
                    .insert(grant.user_id, account, |a| now - a.read_at_ms < recheck);
                account
            }
        };
        if grant.issued_at_ms < account.valid_after_ms {
            return Err(invalid());
        }
        Ok(account.role)
    }

    /// Drops what is remembered of `user_id` (its sessions or role just
    /// changed).
    pub fn forget(&self, user_id: Uuid) {
        self.accounts.remove(&user_id);
    }
}

/// Ends every session of `user_id` issued before now: its access tokens are
/// refused from the next request on and its refresh tokens revoked, through
/// `db` (pass the change's transaction). Call [`SessionCache::forget`] once
/// committed.
pub async fn end_all<C: ConnectionTrait>(db: &C, user_id: Uuid) -> Result<()> {
    use sea_orm::sea_query::Expr;
    use sea_orm::{ColumnTrait, QueryFilter};
    let now = Utc::now();
    user::Entity::update_many()
        .col_expr(user::Column::SessionsValidAfter, Expr::value(now))
        .filter(user::Column::Id.eq(user_id))
        .exec(db)
        .await?;
    entity::refresh_token::Entity::update_many()
        .col_expr(entity::refresh_token::Column::RevokedAt, Expr::value(now))
        .filter(entity::refresh_token::Column::UserId.eq(user_id))
        .filter(entity::refresh_token::Column::RevokedAt.is_null())
        .exec(db)
        .await?;
    Ok(())
}
