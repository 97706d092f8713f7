//! Cursor pagination: `limit` (1..=100, default 20) and an opaque
//! `next_cursor`. Ids are UUIDv7, so ordering by id is creation order and the
//! cursor is the last id seen, base64url-encoded.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::error::{Error, Result};

/// Largest page.
pub const MAX_LIMIT: u64 = 100;
/// A cursor: the 16 bytes of an id in unpadded base64url, 22 characters
/// whose last one carries 2 bits (RFC 4648 §5), so one of `A Q g w`.
pub const CURSOR_PATTERN: &str = r"^[A-Za-z0-9_-]{21}[AQgw]$";
/// Page size when none is asked.
pub const DEFAULT_LIMIT: u64 = 20;

/// Query parameters of every list.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Items per page, 1..=100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u64>,
    /// `next_cursor` of the previous page.
    #[param(pattern = r"^[A-Za-z0-9_-]{21}[AQgw]$")]
    pub cursor: Option<String>,
}

/// `limit`, or `default` when absent; 422 `invalid_field` outside
/// 1..=[`MAX_LIMIT`].
pub fn page_limit(limit: Option<u64>, default: u64) -> Result<u64> {
    let limit = limit.unwrap_or(default);
    if (1..=MAX_LIMIT).contains(&limit) {
        Ok(limit)
    } else {
        Err(Error::invalid_field(
            "limit",
            format!("between 1 and {MAX_LIMIT}"),
        ))
    }
}

/// A validated page request.
#[derive(Debug, Clone, Copy)]
pub struct PageRequest {
    /// Items per page.
    pub limit: u64,
    /// Return items with ids after this one.
    pub after: Option<Uuid>,
}

impl PageRequest {
    /// Validates `limit` and decodes `cursor`.
    pub fn parse(limit: Option<u64>, cursor: Option<&str>) -> Result<PageRequest> {
        let limit = page_limit(limit, DEFAULT_LIMIT)?;
        let after = cursor
            .map(|c| {
                B64URL
                    .decode(c)
                    .ok()
                    .and_then(|b| Uuid::from_slice(&b).ok())
                    .ok_or_else(|| Error::invalid_field("cursor", "not a cursor of this API"))
            })
            .transpose()?;
        Ok(PageRequest { limit, after })
    }
}

/// One page of `T`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Page<T> {
    /// The items, oldest first.
    pub items: Vec<T>,
    /// Pass as `cursor` to get the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// Builds a page from up to `limit + 1` rows fetched in id order; the
    /// extra row only says another page exists.
    pub fn from_rows<R>(
        mut rows: Vec<R>,
        req: PageRequest,
        id: impl Fn(&R) -> Uuid,
        map: impl FnMut(R) -> T,
    ) -> Page<T> {
        let more = rows.len() as u64 > req.limit;
        rows.truncate(req.limit as usize);
        let next_cursor = if more {
            rows.last().map(|r| B64URL.encode(id(r).as_bytes()))
        } else {
            None
        };
        Page {
            items: rows.into_iter().map(map).collect(),
            next_cursor,
        }
    }

    /// The same page with each item mapped.
    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Page<U> {
        Page {
            items: self.items.into_iter().map(f).collect(),
            next_cursor: self.next_cursor,
        }
    }
}
