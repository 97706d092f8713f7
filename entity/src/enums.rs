//! Enumerations stored as text columns. Their string forms are part of the
//! public API (JSON) and of the database; renaming a variant is a migration.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A user's platform-wide role (SPEC §1). Which business an `owner` or a
/// `manager` acts on is decided per business, not by this value alone.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    EnumIter,
    DeriveActiveEnum,
    Serialize,
    Deserialize,
    ToSchema,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::None)")]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Platform staff: everything on every business.
    #[sea_orm(string_value = "admin")]
    Admin,
    /// Platform staff looking after the businesses assigned to them.
    #[sea_orm(string_value = "manager")]
    Manager,
    /// The person who registered a business.
    #[sea_orm(string_value = "owner")]
    Owner,
}

impl Role {
    /// The casbin subject naming this role (`policies/policy.csv`).
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Manager => "manager",
            Role::Owner => "owner",
        }
    }
}

/// A business's lifecycle status (SPEC §3).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    EnumIter,
    DeriveActiveEnum,
    Serialize,
    Deserialize,
    ToSchema,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::None)")]
#[serde(rename_all = "snake_case")]
pub enum BusinessStatus {
    /// In good standing.
    #[sea_orm(string_value = "active")]
    Active,
    /// Trial over or payment lapsed: reading and billing only (SPEC §2).
    #[sea_orm(string_value = "restricted")]
    Restricted,
    /// More channels than the plan allows after a downgrade from Stripe.
    #[sea_orm(string_value = "over_limit")]
    OverLimit,
    /// Being erased; logins stop at once.
    #[sea_orm(string_value = "deleting")]
    Deleting,
}

impl BusinessStatus {
    /// The stored and serialised spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            BusinessStatus::Active => "active",
            BusinessStatus::Restricted => "restricted",
            BusinessStatus::OverLimit => "over_limit",
            BusinessStatus::Deleting => "deleting",
        }
    }
}

/// What a company sells; decides knowledge-base shape and calendar rules.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    EnumIter,
    DeriveActiveEnum,
    Serialize,
    Deserialize,
    ToSchema,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::None)")]
#[serde(rename_all = "snake_case")]
pub enum CompanyKind {
    /// Sells products.
    #[sea_orm(string_value = "product")]
    Product,
    /// Sells services.
    #[sea_orm(string_value = "service")]
    Service,
    /// Sells both.
    #[sea_orm(string_value = "hybrid")]
    Hybrid,
}

/// A company's status.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    EnumIter,
    DeriveActiveEnum,
    Serialize,
    Deserialize,
    ToSchema,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::None)")]
#[serde(rename_all = "snake_case")]
pub enum CompanyStatus {
    /// Operating.
    #[sea_orm(string_value = "active")]
    Active,
    /// Paused by its owner.
    #[sea_orm(string_value = "inactive")]
    Inactive,
    /// Paused by the platform.
    #[sea_orm(string_value = "suspended")]
    Suspended,
}

/// A messaging platform a channel connects (SPEC §3).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    EnumIter,
    DeriveActiveEnum,
    Serialize,
    Deserialize,
    ToSchema,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::None)")]
#[serde(rename_all = "snake_case")]
pub enum Platform {
    /// WhatsApp through WAHA.
    #[sea_orm(string_value = "whatsapp")]
    Whatsapp,
    /// Telegram bot.
    #[sea_orm(string_value = "telegram")]
    Telegram,
    /// Instagram through a Meta pool app.
    #[sea_orm(string_value = "instagram")]
    Instagram,
    /// Facebook page through a Meta pool app.
    #[sea_orm(string_value = "facebook")]
    Facebook,
    /// Email through Gmail OAuth.
    #[sea_orm(string_value = "email")]
    Email,
    /// TikTok leads arriving through WhatsApp.
    #[sea_orm(string_value = "tiktok")]
    Tiktok,
}

/// A channel's connection status (SPEC §3).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    EnumIter,
    DeriveActiveEnum,
    Serialize,
    Deserialize,
    ToSchema,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::None)")]
#[serde(rename_all = "snake_case")]
pub enum ChannelStatus {
    /// Created, not yet connected.
    #[sea_orm(string_value = "disconnected")]
    Disconnected,
    /// Connection in progress (e.g. QR shown).
    #[sea_orm(string_value = "connecting")]
    Connecting,
    /// Live.
    #[sea_orm(string_value = "connected")]
    Connected,
    /// Stopped by the platform (plan limit, subscription).
    #[sea_orm(string_value = "suspended")]
    Suspended,
    /// The last connection attempt failed.
    #[sea_orm(string_value = "error")]
    Error,
}

/// What a one-time token (emailed link) is for.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::None)")]
#[serde(rename_all = "snake_case")]
pub enum TokenPurpose {
    /// First password of an account created by an admin (managers).
    #[sea_orm(string_value = "set_password")]
    SetPassword,
    /// Finishing registration after the emailed code was verified.
    #[sea_orm(string_value = "registration")]
    Registration,
    /// Choosing a new password after "forgot password" (30 minutes).
    #[sea_orm(string_value = "password_reset")]
    PasswordReset,
    /// Signing in from an emailed link (15 minutes).
    #[sea_orm(string_value = "magic_link")]
    MagicLink,
    /// One-time code handed to the front end after an OAuth callback,
    /// exchanged for tokens (tokens never travel in URLs).
    #[sea_orm(string_value = "oauth_exchange")]
    OauthExchange,
    /// Confirming a new email address for an account (sent to the new
    /// address).
    #[sea_orm(string_value = "email_change")]
    EmailChange,
    /// Removing a linked sign-in method from a link in a security email
    /// (the token names the identity).
    #[sea_orm(string_value = "remove_sign_in_method")]
    RemoveSignInMethod,
}
