//! Authorization: the casbin enforcer and the resolution of a caller's roles.
//!
//! Who may do what is data (`policies/model.conf`, `policies/policy.csv`,
//! compiled into the binary so it can never be missing at run time). Who
//! holds which role in which business is the database's word
//! (`businesses.owner_id`, `businesses.manager_id`, `users.role`): the
//! business's columns are read at every request, so unassigning a manager
//! takes effect at once; the platform role (`users.role`) is read with the
//! session check of every request ([`crate::auth::sessions`]), remembered
//! per process for at most `auth.session_recheck_secs`, never taken from the
//! access token.
//! Handlers ask [`Authz::enforce`] with `(subject, domain, object, action)`;
//! no code tests `role == …` to decide a permission.
//!
//! Programs calling with an API key act in their key's business with the
//! key's [`Scope`]s: each scope is a casbin subject of its own
//! (`scope:companies:read`) with its policy lines, so what a key may do is
//! the same data as what a role may do. No scope reaches keys, billing,
//! accounts, deletion or secret reveals.

use casbin::{CoreApi, DefaultModel, Enforcer, StringAdapter};
use entity::enums::Role;
use uuid::Uuid;

use crate::error::{Error, Result};
use crate::memo::Memo;

/// The casbin model (RBAC with domains).
pub const MODEL: &str = include_str!("../policies/model.conf");
/// The policy: which role may do which action on which object, where.
pub const POLICY: &str = include_str!("../policies/policy.csv");

/// A permission an API key is given (its casbin subject is `scope:{name}`).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    serde::Serialize,
    serde::Deserialize,
    utoipa::ToSchema,
)]
pub enum Scope {
    /// Read the business's record (`GET /v1/business`).
    #[serde(rename = "business:read")]
    BusinessRead,
    /// List and read companies.
    #[serde(rename = "companies:read")]
    CompaniesRead,
    /// Create, change and delete companies.
    #[serde(rename = "companies:write")]
    CompaniesWrite,
    /// List and read channels.
    #[serde(rename = "channels:read")]
    ChannelsRead,
    /// Create and delete channels.
    #[serde(rename = "channels:write")]
    ChannelsWrite,
    /// List integration secrets, masked.
    #[serde(rename = "secrets:read")]
    SecretsRead,
    /// Write and delete integration secrets (never reveal them).
    #[serde(rename = "secrets:write")]
    SecretsWrite,
    /// Read the event log and its live stream.
    #[serde(rename = "events:read")]
    EventsRead,
    /// List webhook endpoints and their deliveries.
    #[serde(rename = "webhooks:read")]
    WebhooksRead,
    /// Create, change, roll the secret of and delete webhook endpoints.
    #[serde(rename = "webhooks:write")]
    WebhooksWrite,
    /// Read the business's audit log.
    #[serde(rename = "audit:read")]
    AuditRead,
    /// List and read the purchase log.
    #[serde(rename = "purchases:read")]
    PurchasesRead,
    /// Ask end customers for payments (create purchases).
    #[serde(rename = "purchases:write")]
    PurchasesWrite,
}

impl Scope {
    /// Every scope.
    pub const ALL: [Scope; 13] = [
        Scope::BusinessRead,
        Scope::CompaniesRead,
        Scope::CompaniesWrite,
        Scope::ChannelsRead,
        Scope::ChannelsWrite,
        Scope::SecretsRead,
        Scope::SecretsWrite,
        Scope::EventsRead,
        Scope::WebhooksRead,
        Scope::WebhooksWrite,
        Scope::AuditRead,
        Scope::PurchasesRead,
        Scope::PurchasesWrite,
    ];

    /// The scope's name (`companies:read`).
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::BusinessRead => "business:read",
            Scope::CompaniesRead => "companies:read",
            Scope::CompaniesWrite => "companies:write",
            Scope::ChannelsRead => "channels:read",
            Scope::ChannelsWrite => "channels:write",
            Scope::SecretsRead => "secrets:read",
            Scope::SecretsWrite => "secrets:write",
            Scope::EventsRead => "events:read",
            Scope::WebhooksRead => "webhooks:read",
            Scope::WebhooksWrite => "webhooks:write",
            Scope::AuditRead => "audit:read",
            Scope::PurchasesRead => "purchases:read",
            Scope::PurchasesWrite => "purchases:write",
        }
    }

    fn bit(self) -> u32 {
        1 << (self as u32)
    }
}

/// A set of [`Scope`]s (a bit set: copied freely).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Scopes(u32);

impl Scopes {
    /// The set of `scopes`.
    pub fn of(scopes: impl IntoIterator<Item = Scope>) -> Scopes {
        Scopes(scopes.into_iter().fold(0, |bits, s| bits | s.bit()))
    }

    /// Whether `scope` is in the set.
    pub fn contains(self, scope: Scope) -> bool {
        self.0 & scope.bit() != 0
    }

    /// The scopes in the set, in [`Scope::ALL`] order.
    pub fn iter(self) -> impl Iterator<Item = Scope> {
        Scope::ALL.into_iter().filter(move |s| self.contains(*s))
    }
}

/// Who a casbin request is for: a role, or one scope of an API key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Subject {
    /// A role held in the domain.
    Role(Role),
    /// A scope of the calling key.
    Scope(Scope),
}

impl From<Role> for Subject {
    fn from(role: Role) -> Subject {
        Subject::Role(role)
    }
}

impl From<Scope> for Subject {
    fn from(scope: Scope) -> Subject {
        Subject::Scope(scope)
    }
}

impl Subject {
    fn to_casbin(self) -> std::borrow::Cow<'static, str> {
        match self {
            Subject::Role(role) => role.as_str().into(),
            Subject::Scope(scope) => format!("scope:{}", scope.as_str()).into(),
        }
    }
}

/// A casbin domain: one business, or the platform itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Domain {
    /// A tenant: `business:{uuid}`.
    Business(Uuid),
    /// Platform-wide actions: `platform`.
    Platform,
}

impl Domain {
    fn to_casbin(self) -> String {
        match self {
            Domain::Business(id) => format!("business:{id}"),
            Domain::Platform => "platform".into(),
        }
    }
}

/// A casbin object: the kind of resource acted on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Object {
    /// A business's own record.
    Business,
    /// Companies of a business.
    Company,
    /// Channels of a business.
    Channel,
    /// The manager assigned to a business.
    ManagerAssignment,
    /// Manager accounts (platform).
    Manager,
    /// The businesses assigned to the calling manager (platform).
    AssignedBusiness,
    /// Integration secrets of a business.
    Secret,
    /// The audit log (of a business, or of the platform).
    Audit,
    /// Platform statistics.
    Stats,
    /// A business's subscription, invoices and Stripe sessions.
    Billing,
    /// Background tasks of the job runner (platform).
    Job,
    /// API keys of a business (and, for admins, of the platform).
    ApiKey,
    /// The business's event log and live stream.
    Event,
    /// The business's outgoing-webhook endpoints.
    WebhookEndpoint,
    /// The business's purchase log (end-customer payments).
    Purchase,
    /// The plan a business is granted (`free`, `enterprise`): admins only.
    Plan,
}

impl Object {
    fn as_str(self) -> &'static str {
        match self {
            Object::Business => "business",
            Object::Company => "company",
            Object::Channel => "channel",
            Object::ManagerAssignment => "manager_assignment",
            Object::Manager => "manager",
            Object::AssignedBusiness => "assigned_business",
            Object::Secret => "secret",
            Object::Audit => "audit",
            Object::Stats => "stats",
            Object::Billing => "billing",
            Object::Job => "job",
            Object::ApiKey => "api_key",
            Object::Event => "event",
            Object::WebhookEndpoint => "webhook_endpoint",
            Object::Purchase => "purchase",
            Object::Plan => "plan",
        }
    }
}

/// A casbin action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// Read a list.
    List,
    /// Read one.
    Read,
    /// Create one.
    Create,
    /// Change one.
    Update,
    /// Delete one.
    Delete,
    /// See a secret's plaintext.
    Reveal,
}

impl Action {
    fn as_str(self) -> &'static str {
        match self {
            Action::List => "list",
            Action::Read => "read",
            Action::Create => "create",
            Action::Update => "update",
            Action::Delete => "delete",
            Action::Reveal => "reveal",
        }
    }
}

/// A request as casbin sees it.
type Request = (Subject, Domain, Object, Action);

/// Most decisions remembered; past it the memo starts over (a business
/// domain per tenant makes the key space unbounded).
const MAX_DECISIONS: usize = 65_536;

/// The loaded enforcer, read-only after start-up, and a memo of its
/// decisions. casbin evaluates the matcher with an embedded script engine
/// (rhai), a few microseconds per request, while the model and policy are
/// compiled into the binary and never change: the same request always gets
/// the same answer, so each is evaluated once.
pub struct Authz {
    enforcer: Enforcer,
    decisions: Memo<Request, bool>,
}

impl Authz {
    /// Builds the enforcer from the embedded model and policy.
    pub async fn load() -> anyhow::Result<Authz> {
        let model = DefaultModel::from_str(MODEL).await?;
        let adapter = StringAdapter::new(POLICY);
        let enforcer = Enforcer::new(model, adapter).await?;
        Ok(Authz {
            enforcer,
            decisions: Memo::new(MAX_DECISIONS),
        })
    }

    /// Whether `subject` may do `action` on `object` in `domain`.
    /// An enforcer failure is an internal error (the policy is compiled in).
    pub fn enforce(
        &self,
        subject: impl Into<Subject>,
        domain: Domain,
        object: Object,
        action: Action,
    ) -> Result<bool> {
        let subject = subject.into();
        let request = (subject, domain, object, action);
        if let Some(decision) = self.decisions.get(&request) {
            return Ok(decision);
        }
        let decision = self
            .enforcer
            .enforce((
                subject.to_casbin(),
                domain.to_casbin(),
                object.as_str(),
                action.as_str(),
            ))
            .map_err(Error::internal)?;
        // No decision goes stale: a full memo starts over.
        self.decisions.insert(request, decision, |_| false);
        Ok(decision)
    }
}

/// The roles `user` holds in `business` according to the database: admin
/// (platform staff, every business), owner (`owner_id`), manager (the
/// business's single `manager_id`, and the account is a manager).
pub fn roles_in_business(
    user_id: Uuid,
    user_role: Role,
    business: &entity::business::Model,
) -> Vec<Role> {
    let mut roles = Vec::with_capacity(1);
    if user_role == Role::Admin {
        roles.push(Role::Admin);
    }
    if business.owner_id == user_id {
        roles.push(Role::Owner);
    }
    if user_role == Role::Manager && business.manager_id == Some(user_id) {
        roles.push(Role::Manager);
    }
    roles
}
