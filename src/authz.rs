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

use casbin::{CoreApi, DefaultModel, Enforcer, StringAdapter};
use entity::enums::Role;
use uuid::Uuid;

use crate::error::{Error, Result};
use crate::memo::Memo;

/// The casbin model (RBAC with domains).
pub const MODEL: &str = include_str!("../policies/model.conf");
/// The policy: which role may do which action on which object, where.
pub const POLICY: &str = include_str!("../policies/policy.csv");

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
type Request = (Role, Domain, Object, Action);

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
        subject: Role,
        domain: Domain,
        object: Object,
        action: Action,
    ) -> Result<bool> {
        let request = (subject, domain, object, action);
        if let Some(decision) = self.decisions.get(&request) {
            return Ok(decision);
        }
        let decision = self
            .enforcer
            .enforce((
                subject.as_str(),
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
