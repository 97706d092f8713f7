//! `oauth_states` and `identities`: sign-in with external providers.

/// `oauth_states`: one pending authorization request.
pub mod state {
    use sea_orm::entity::prelude::*;

    /// The server-side half of an authorization request: the `state` sent
    /// to the provider (stored as SHA-256), the PKCE verifier, the OIDC
    /// nonce; single use, expiring. `link_user_id` is set when a signed-in
    /// user links a provider to their account.
    #[sea_orm::model]
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "oauth_states")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        pub provider: String,
        #[sea_orm(unique)]
        pub state_hash: String,
        pub pkce_verifier: String,
        pub nonce: Option<String>,
        pub link_user_id: Option<Uuid>,
        pub expires_at: DateTimeUtc,
        pub used_at: Option<DateTimeUtc>,
        pub created_at: DateTimeUtc,
        /// SHA-256 (hex) of the random value of the cookie set in the
        /// browser that started the request; the callback must present it
        /// (RFC 9700 §4.7). `None` only for requests made before it existed,
        /// which no longer complete.
        pub browser_hash: Option<String>,
    }

    impl ActiveModelBehavior for ActiveModel {}
}

/// `identities`: a provider account linked to a user.
pub mod identity {
    use sea_orm::entity::prelude::*;

    /// `(provider, subject)` is unique: a provider account signs in one user.
    #[sea_orm::model]
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "identities")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        pub user_id: Uuid,
        /// `google` or `facebook`.
        pub provider: String,
        /// The provider's stable user id (OIDC `sub`, Graph API `id`).
        pub subject: String,
        pub email: Option<String>,
        pub created_at: DateTimeUtc,
    }

    impl ActiveModelBehavior for ActiveModel {}
}
