//! Typed homes for the small per-tenant values the service keeps in the
//! `CursorStore`: each has its name, its type and its text encoding here, once,
//! and every change goes through one compare-and-set loop ([`Cursor::update`]).
//! The stores only compare and swap text.

use crate::Core;
use chrono::{DateTime, NaiveDateTime, Utc};
use sne_domain::TenantId;
use sne_domain::history_mode::HistoryMode;
use sne_domain::time::{API_FORMAT, parse_api_time};
use sne_ports::StoreError;
use std::marker::PhantomData;

/// The newest Smaregi `StockHistory` id read into the ledger.
pub const STOCK_HISTORY_ID: Cursor<u64> = Cursor::new("smaregi_stock_history_id");
/// Where the stock-history periods (see [`HistoryMode`]) were kept before they
/// became the tenant setting `Tenant::stock_history`: read for tenants whose
/// record holds none yet, cleared by their next switch, never written.
pub const LEGACY_STOCK_HISTORY_MODE: Cursor<HistoryMode> =
    Cursor::new("smaregi_stock_history_mode");
/// The newest `receive_order_row_last_modified_newest_date` the order import
/// settled, in NextEngine's own time (JST).
pub const ORDER_ROWS_MODIFIED: Cursor<NaiveDateTime> = Cursor::new("ne_order_rows_modified");
/// The per-tenant order-import lease.
pub const ORDER_IMPORT_LEASE: Cursor<Lease> = Cursor::new("ne_order_import_lease");
/// Platform intake: history ids up to this one came through the old intake
/// (set when the tenant switched to the Platform API).
pub const PLATFORM_BOUNDARY_ID: Cursor<u64> = Cursor::new("platform_boundary_id");
/// Platform intake: the backfill has asked which pairs changed up to this
/// time (Smaregi's, JST).
pub const PLATFORM_WATERMARK: Cursor<NaiveDateTime> = Cursor::new("platform_watermark");
/// Platform intake: the newest history id it put into the ledger.
pub const PLATFORM_MAX_ID: Cursor<u64> = Cursor::new("platform_max_id");
/// History ids of the service's own Platform-API writes (comma-separated,
/// newest last), dropped when they come back.
pub const PLATFORM_OWN_WRITES: Cursor<String> = Cursor::new("platform_own_writes");
/// The app's contract as the last contract notification left it, once a
/// token call confirmed it: `active`, or `suspended:<action>`.
pub const PLATFORM_CONTRACT: Cursor<String> = Cursor::new("platform_contract");
/// Bumped to revoke every admin session of the tenant.
pub const SESSION_EPOCH: Cursor<u64> = Cursor::new("admin_session_epoch");

/// Rounds of [`Cursor::update`] before it reports the value as contended.
const UPDATE_ROUNDS: usize = 10;

/// How a value is written as cursor text. An empty text is "no value".
pub trait CursorValue: Sized {
    fn encode(&self) -> String;
    fn decode(text: &str) -> Option<Self>;
}

impl CursorValue for u64 {
    fn encode(&self) -> String {
        self.to_string()
    }
    fn decode(text: &str) -> Option<Self> {
        text.trim().parse().ok()
    }
}

impl CursorValue for String {
    fn encode(&self) -> String {
        self.clone()
    }
    fn decode(text: &str) -> Option<Self> {
        Some(text.trim().to_string())
    }
}

impl CursorValue for NaiveDateTime {
    fn encode(&self) -> String {
        self.format(API_FORMAT).to_string()
    }
    fn decode(text: &str) -> Option<Self> {
        parse_api_time(text)
    }
}

impl CursorValue for HistoryMode {
    fn encode(&self) -> String {
        self.to_text()
    }
    fn decode(text: &str) -> Option<Self> {
        HistoryMode::parse(text).ok()
    }
}

/// One run's hold on a job of a tenant, until it runs out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub owner: String,
    pub until: DateTime<Utc>,
}

impl Lease {
    pub fn is_live(&self, now: DateTime<Utc>) -> bool {
        self.until > now
    }
}

impl CursorValue for Lease {
    fn encode(&self) -> String {
        format!("{}|{}", self.owner, self.until.to_rfc3339())
    }
    fn decode(text: &str) -> Option<Self> {
        let (owner, until) = text.rsplit_once('|')?;
        Some(Lease {
            owner: owner.to_string(),
            until: DateTime::parse_from_rfc3339(until)
                .ok()?
                .with_timezone(&Utc),
        })
    }
}

/// What [`Cursor::update`] does with the value it read.
pub enum Update<T> {
    Keep,
    Set(T),
    Clear,
}

#[derive(Debug, thiserror::Error)]
pub enum CursorError {
    #[error("{}", crate::wording::cursor_unreadable(.name, .text))]
    Unreadable { name: &'static str, text: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<CursorError> for StoreError {
    fn from(e: CursorError) -> Self {
        match e {
            CursorError::Store(e) => e,
            other => StoreError::Unavailable(other.to_string()),
        }
    }
}

pub struct Cursor<T> {
    pub name: &'static str,
    value: PhantomData<fn() -> T>,
}

impl<T: CursorValue> Cursor<T> {
    pub const fn new(name: &'static str) -> Self {
        Cursor {
            name,
            value: PhantomData,
        }
    }

    /// The value with the text it was read from (for a later compare-and-set).
    async fn read_raw(
        &self,
        ctx: &Core,
        tenant: &TenantId,
    ) -> Result<(Option<String>, Option<T>), CursorError> {
        let raw = ctx.storage.cursor(tenant, self.name).await?;
        let value = match raw.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(text) => Some(T::decode(text).ok_or_else(|| CursorError::Unreadable {
                name: self.name,
                text: text.to_string(),
            })?),
        };
        Ok((raw, value))
    }

    /// The value; an unreadable one is an error, never "none".
    pub async fn read(&self, ctx: &Core, tenant: &TenantId) -> Result<Option<T>, CursorError> {
        Ok(self.read_raw(ctx, tenant).await?.1)
    }

    /// Applies `change` to the current value with compare-and-set, reading
    /// again after a lost race; returns the value as it is afterwards.
    pub async fn update(
        &self,
        ctx: &Core,
        tenant: &TenantId,
        mut change: impl FnMut(Option<&T>) -> Update<T>,
    ) -> Result<Option<T>, CursorError> {
        for _ in 0..UPDATE_ROUNDS {
            let (raw, current) = self.read_raw(ctx, tenant).await?;
            let next = match change(current.as_ref()) {
                Update::Keep => return Ok(current),
                Update::Set(next) => Some(next),
                Update::Clear => None,
            };
            let text = next.as_ref().map(CursorValue::encode).unwrap_or_default();
            if ctx
                .storage
                .set_cursor(tenant, self.name, raw.as_deref(), &text)
                .await?
            {
                return Ok(next);
            }
        }
        Err(StoreError::Conflict(format!("{} kept changing", self.name)).into())
    }

    /// Replaces exactly `expected` (as read before) by `next`: false when
    /// someone else changed it since.
    pub async fn swap(
        &self,
        ctx: &Core,
        tenant: &TenantId,
        expected: Option<&T>,
        next: Option<&T>,
    ) -> Result<bool, StoreError> {
        let expected = expected.map(CursorValue::encode);
        let next = next.map(CursorValue::encode).unwrap_or_default();
        ctx.storage
            .set_cursor(tenant, self.name, expected.as_deref(), &next)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn values_read_back_as_written() {
        let lease = Lease {
            owner: "import-1|odd".into(),
            until: Utc.with_ymd_and_hms(2026, 12, 1, 10, 0, 0).unwrap(),
        };
        assert_eq!(Lease::decode(&lease.encode()), Some(lease));
        assert_eq!(u64::decode(" 42 "), Some(42));
        let t = parse_api_time("2026-12-01 10:00:00").unwrap();
        assert_eq!(NaiveDateTime::decode(&t.encode()), Some(t));
        assert_eq!(u64::decode("x"), None);
    }
}
