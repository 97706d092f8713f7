//! Models read straight from SQLite rows: the decoding half of the SQLite
//! read path ([`super::reader`]).
//!
//! A model names its columns once, in the entity's declaration order (which
//! is the order `Entity::find()` selects them), with [`sqlite_row!`]; each
//! field then reads its column by position, with the rule sqlx applies to
//! its type (sqlx-sqlite `types/`): UUIDs from 16-byte blobs, timestamps
//! from RFC 3339 text, enums from their string values, JSON from text,
//! `NULL` only into an `Option`. A value of another kind is a `DbErr::Type`
//! naming the column, never a guess. A field added to a model without its
//! column here does not compile; a column order that differs from the
//! entity's fails the unit test below.
//!
//! This replaced filling the entity's `ActiveModel` from `sea_query::Value`s
//! column by column, which was half of the read path's CPU on
//! `GET /v1/companies` (a `Value` and often a `String` per column, then a
//! type check and a move per field).

use chrono::{DateTime, Utc};
use entity::enums::{ChannelStatus, CompanyKind, CompanyStatus, Platform};
use entity::{channel, company};
use rusqlite::Row;
use rusqlite::types::ValueRef;
use sea_orm::{ActiveEnum, DbErr};
use uuid::Uuid;

use super::read_pool::query_err;

/// A model the SQLite read path decodes from a row holding its entity's
/// columns in declaration order.
pub trait FromSqliteRow: Sized {
    /// The entity's column names, in declaration order.
    const COLUMNS: &'static [&'static str];

    /// The model in `row`. Errors: `DbErr::Type` naming the first column
    /// whose value its field cannot hold, or `DbErr::Query` if the row has
    /// fewer columns.
    fn from_row(row: &Row<'_>) -> Result<Self, DbErr>;
}

/// A field type read from one SQLite value: `None` when the value cannot
/// hold it (another storage class, invalid UTF-8, an unknown enum value,
/// an integer out of range).
pub trait FromColumn: Sized {
    /// `value` as `Self`, if it holds one.
    fn from_column(value: ValueRef<'_>) -> Option<Self>;
}

impl FromColumn for Uuid {
    fn from_column(value: ValueRef<'_>) -> Option<Self> {
        match value {
            ValueRef::Blob(b) => Uuid::from_slice(b).ok(),
            _ => None,
        }
    }
}

impl FromColumn for String {
    fn from_column(value: ValueRef<'_>) -> Option<Self> {
        text(value).map(str::to_owned)
    }
}

impl FromColumn for DateTime<Utc> {
    fn from_column(value: ValueRef<'_>) -> Option<Self> {
        crate::rfc3339::parse(text(value)?)
    }
}

impl FromColumn for i32 {
    fn from_column(value: ValueRef<'_>) -> Option<Self> {
        match value {
            ValueRef::Integer(n) => i32::try_from(n).ok(),
            _ => None,
        }
    }
}

impl FromColumn for serde_json::Value {
    fn from_column(value: ValueRef<'_>) -> Option<Self> {
        match value {
            ValueRef::Text(t) => serde_json::from_slice(t).ok(),
            _ => None,
        }
    }
}

impl<T: FromColumn> FromColumn for Option<T> {
    fn from_column(value: ValueRef<'_>) -> Option<Self> {
        match value {
            ValueRef::Null => Some(None),
            value => T::from_column(value).map(Some),
        }
    }
}

/// UTF-8 text, as sqlx requires of a `String`.
fn text(value: ValueRef<'_>) -> Option<&str> {
    match value {
        ValueRef::Text(t) => std::str::from_utf8(t).ok(),
        _ => None,
    }
}

/// Enums stored as their string values (`rs_type = "String"`).
macro_rules! text_enums {
    ($($enum:ty),+ $(,)?) => {$(
        impl FromColumn for $enum {
            fn from_column(value: ValueRef<'_>) -> Option<Self> {
                <$enum as ActiveEnum>::try_from_value(&text(value)?.to_owned()).ok()
            }
        }
    )+};
}

text_enums!(CompanyKind, CompanyStatus, Platform, ChannelStatus);

/// Column `index` of `row`, named `name`, as a `T`.
fn column<T: FromColumn>(row: &Row<'_>, index: usize, name: &str) -> Result<T, DbErr> {
    let value = row.get_ref(index).map_err(query_err)?;
    T::from_column(value).ok_or_else(|| {
        DbErr::Type(format!(
            "column `{name}`: {} cannot hold a {:?} value",
            std::any::type_name::<T>(),
            value.data_type()
        ))
    })
}

/// Implements [`FromSqliteRow`] for a model whose fields are listed in
/// the entity's column order (each field named as its column).
macro_rules! sqlite_row {
    ($model:ty { $($field:ident),+ $(,)? }) => {
        impl FromSqliteRow for $model {
            const COLUMNS: &'static [&'static str] = &[$(stringify!($field)),+];

            fn from_row(row: &Row<'_>) -> Result<Self, DbErr> {
                let mut index = 0..;
                Ok(Self {$(
                    $field: column(row, index.next().unwrap_or_default(), stringify!($field))?,
                )+})
            }
        }
    };
}

sqlite_row!(company::Model {
    id,
    business_id,
    code,
    name,
    kind,
    shop_type,
    status,
    created_at,
    updated_at,
});

sqlite_row!(channel::Model {
    id,
    business_id,
    company_id,
    platform,
    status,
    account_id,
    account_name,
    last_error,
    error_count,
    suspended_reason,
    suspended_from,
    config,
    created_at,
    updated_at,
});

#[cfg(test)]
mod tests {
    use sea_orm::{EntityTrait, IdenStatic, Iterable};

    use super::*;

    fn declared<E: EntityTrait>() -> Vec<&'static str> {
        E::Column::iter().map(|c| c.as_str()).collect()
    }

    #[test]
    fn models_list_their_columns_in_declaration_order() {
        assert_eq!(company::Model::COLUMNS, declared::<company::Entity>());
        assert_eq!(channel::Model::COLUMNS, declared::<channel::Entity>());
    }

    #[test]
    fn values_of_another_kind_are_refused() {
        assert_eq!(Uuid::from_column(ValueRef::Text(b"not a blob")), None);
        assert_eq!(Uuid::from_column(ValueRef::Blob(&[1, 2, 3])), None);
        assert_eq!(String::from_column(ValueRef::Text(&[0xff, 0xfe])), None);
        assert_eq!(String::from_column(ValueRef::Null), None);
        assert_eq!(
            Option::<String>::from_column(ValueRef::Null),
            Some(None::<String>)
        );
        assert_eq!(i32::from_column(ValueRef::Integer(1 << 40)), None);
        assert_eq!(CompanyKind::from_column(ValueRef::Text(b"gadget")), None);
        assert_eq!(
            CompanyKind::from_column(ValueRef::Text(b"service")),
            Some(CompanyKind::Service)
        );
        assert_eq!(DateTime::<Utc>::from_column(ValueRef::Integer(0)), None);
        assert_eq!(
            serde_json::Value::from_column(ValueRef::Text(b"{\"a\":")),
            None
        );
    }
}
