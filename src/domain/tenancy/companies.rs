//! Companies of a business: numbered `COMP001`, `COMP002`, … per business.
//! Every function takes the scope of the business the company must belong
//! to ([`BusinessScope`]).

use crate::domain::audit::{self, Actor};
use crate::domain::events::{self, kind};
use chrono::{DateTime, Utc};
use entity::company;
use entity::enums::{CompanyKind, CompanyStatus};
use sea_orm::sea_query::{Expr, ExprTrait, Value};
use sea_orm::{
    ActiveEnum, ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait,
    IntoActiveModel, QueryFilter, QuerySelect, Set,
};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::db::reader::{Reader, Shape};
use crate::domain::pagination::{Page, PageRequest};
use crate::domain::tenancy::access::BusinessScope;
use crate::domain::validate;
use crate::error::{Error, Result};

/// A company.
#[derive(Debug, Serialize, ToSchema)]
pub struct CompanyView {
    /// Company id.
    pub id: Uuid,
    /// Business it belongs to.
    pub business_id: Uuid,
    /// Public per-business code, `COMP001`…
    pub code: String,
    /// Name.
    pub name: String,
    /// What it sells.
    pub kind: CompanyKind,
    /// Free-form shop type.
    pub shop_type: Option<String>,
    /// Status.
    pub status: CompanyStatus,
    /// Creation time.
    #[serde(serialize_with = "crate::rfc3339::serialize")]
    pub created_at: DateTime<Utc>,
    /// Last change.
    #[serde(serialize_with = "crate::rfc3339::serialize")]
    pub updated_at: DateTime<Utc>,
}

impl From<company::Model> for CompanyView {
    fn from(c: company::Model) -> Self {
        CompanyView {
            id: c.id,
            business_id: c.business_id,
            code: c.code,
            name: c.name,
            kind: c.kind,
            shop_type: c.shop_type,
            status: c.status,
            created_at: c.created_at,
            updated_at: c.updated_at,
        }
    }
}

/// Fields of a new company.
pub struct NewCompany {
    /// Name (1..=200 characters).
    pub name: String,
    /// Kind.
    pub kind: CompanyKind,
    /// Optional shop type (≤ 100 characters).
    pub shop_type: Option<String>,
}

/// Changes to a company; `None` leaves a field alone.
#[derive(Default)]
pub struct CompanyChanges {
    /// New name.
    pub name: Option<String>,
    /// New kind.
    pub kind: Option<CompanyKind>,
    /// New shop type.
    pub shop_type: Option<String>,
    /// New status: `active` or `inactive` (`suspended` is the platform's).
    pub status: Option<CompanyStatus>,
}

const SHOP_TYPE_MAX: usize = 100;

/// The company `id` of the scope's business, or 404.
pub async fn find<C: ConnectionTrait>(
    db: &C,
    scope: &BusinessScope,
    id: Uuid,
) -> Result<company::Model> {
    company::Entity::find_by_id(id)
        .filter(company::Column::BusinessId.eq(scope.id()))
        .one(db)
        .await?
        .ok_or_else(Error::not_found)
}

/// Company `id` of the scope's business, through the read path. 404 otherwise.
pub async fn get(read: &Reader, scope: &BusinessScope, id: Uuid) -> Result<CompanyView> {
    let select = company::Entity::find_by_id(id).filter(company::Column::BusinessId.eq(scope.id()));
    Ok(read.found(select).await?.into())
}

/// Creates a company with the next code of the business. The counter is
/// incremented by an atomic `UPDATE … SET company_seq = company_seq + 1`
/// inside the transaction, so concurrent creations get distinct codes.
pub async fn create(
    db: &DatabaseConnection,
    scope: &BusinessScope,
    input: NewCompany,
    staff: Option<&Actor>,
) -> Result<CompanyView> {
    let business_id = scope.id();
    let name = validate::name("name", &input.name, validate::NAME_MAX)?;
    let shop_type =
        validate::optional_name("shop_type", input.shop_type.as_deref(), SHOP_TYPE_MAX)?;
    let txn = crate::db::begin_write(db).await?;
    entity::business::Entity::update_many()
        .col_expr(
            entity::business::Column::CompanySeq,
            Expr::col(entity::business::Column::CompanySeq).add(1),
        )
        .filter(entity::business::Column::Id.eq(business_id))
        .exec(&txn)
        .await?;
    let seq: i64 = entity::business::Entity::find_by_id(business_id)
        .select_only()
        .column(entity::business::Column::CompanySeq)
        .into_tuple()
        .one(&txn)
        .await?
        .ok_or_else(Error::not_found)?;
    let now = Utc::now();
    let company = company::ActiveModel {
        id: Set(Uuid::now_v7()),
        business_id: Set(business_id),
        code: Set(format!("COMP{seq:03}")),
        name: Set(name),
        kind: Set(input.kind),
        shop_type: Set(shop_type),
        status: Set(CompanyStatus::Active),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(&txn)
    .await?;
    let view = CompanyView::from(company);
    let data = to_data(&view)?;
    let target = format!("company/{}", view.id);
    audit::staff_change(
        &txn,
        staff,
        business_id,
        "company.create",
        &target,
        data.clone(),
    )
    .await?;
    events::record(&txn, business_id, kind::COMPANY_CREATED, data).await?;
    txn.commit().await?;
    Ok(view)
}

fn to_data<T: serde::Serialize>(v: &T) -> Result<serde_json::Value> {
    serde_json::to_value(v).map_err(Error::internal)
}

/// A page of the business's companies, optionally of one status.
pub async fn list(
    read: &Reader,
    scope: &BusinessScope,
    status: Option<CompanyStatus>,
    page: PageRequest,
) -> Result<Page<CompanyView>> {
    // One statement text per combination of the optional filter and cursor.
    static SHAPES: [Shape; 4] = [const { Shape::new() }; 4];
    let rows = read
        .page::<company::Entity, _>(
            &SHAPES,
            (company::Column::BusinessId, Value::from(scope.id())),
            [(company::Column::Status, status.map(|s| s.to_value().into()))],
            company::Column::Id,
            page.after,
            page.limit + 1,
        )
        .await?;
    Ok(Page::from_rows(rows, page, |c| c.id, CompanyView::from))
}

/// Applies `changes` to company `id` of the scope's business.
pub async fn update(
    db: &DatabaseConnection,
    scope: &BusinessScope,
    id: Uuid,
    changes: CompanyChanges,
    staff: Option<&Actor>,
) -> Result<CompanyView> {
    let txn = crate::db::begin_write(db).await?;
    let company = find(&txn, scope, id).await?;
    let mut active = company.into_active_model();
    if let Some(name) =
        validate::optional_name("name", changes.name.as_deref(), validate::NAME_MAX)?
    {
        active.name = Set(name);
    }
    if let Some(kind) = changes.kind {
        active.kind = Set(kind);
    }
    if let Some(shop) =
        validate::optional_name("shop_type", changes.shop_type.as_deref(), SHOP_TYPE_MAX)?
    {
        active.shop_type = Set(Some(shop));
    }
    match changes.status {
        Some(CompanyStatus::Suspended) => {
            return Err(Error::invalid_field(
                "status",
                "`suspended` is set by the platform; use `active` or `inactive`",
            ));
        }
        Some(s) => active.status = Set(s),
        None => {}
    }
    active.updated_at = Set(Utc::now());
    let view = CompanyView::from(active.update(&txn).await?);
    let data = to_data(&view)?;
    let target = format!("company/{id}");
    audit::staff_change(
        &txn,
        staff,
        scope.id(),
        "company.update",
        &target,
        data.clone(),
    )
    .await?;
    events::record(&txn, scope.id(), kind::COMPANY_UPDATED, data).await?;
    txn.commit().await?;
    Ok(view)
}

/// Deletes company `id` of the scope's business and, by cascade, its channels.
pub async fn delete(
    db: &DatabaseConnection,
    scope: &BusinessScope,
    id: Uuid,
    staff: Option<&Actor>,
) -> Result<()> {
    let txn = crate::db::begin_write(db).await?;
    let company = find(&txn, scope, id).await?;
    let channels: Vec<Uuid> = entity::channel::Entity::find()
        .select_only()
        .column(entity::channel::Column::Id)
        .filter(entity::channel::Column::CompanyId.eq(company.id))
        .into_tuple()
        .all(&txn)
        .await?;
    entity::channel::Entity::delete_many()
        .filter(entity::channel::Column::CompanyId.eq(company.id))
        .exec(&txn)
        .await?;
    company::Entity::delete_by_id(company.id).exec(&txn).await?;
    let data =
        serde_json::json!({ "id": company.id, "code": company.code, "channel_ids": channels });
    let target = format!("company/{id}");
    audit::staff_change(
        &txn,
        staff,
        scope.id(),
        "company.delete",
        &target,
        data.clone(),
    )
    .await?;
    events::record(&txn, scope.id(), kind::COMPANY_DELETED, data).await?;
    txn.commit().await?;
    Ok(())
}
