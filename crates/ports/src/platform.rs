//! The スマレジ・プラットフォームAPI port: what the Platform intake reads (and
//! the one write it may make) per contract. The app's client id and secret are
//! the implementation's configuration, never a tenant's; tokens are its own
//! business (reference smaregi-platform-api.md §1).

use crate::smaregi::SmaregiError;
use async_trait::async_trait;
use chrono::NaiveDateTime;
use sne_domain::{ChangeRow, ProductId, StoreId};

/// A (product, store) pair whose stock row changed in a window of `GET /stock`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ChangedPair {
    pub product_id: ProductId,
    pub store_id: StoreId,
    /// `updDateTime` of the stock row, Japan time.
    pub updated_at: Option<NaiveDateTime>,
}

#[async_trait]
pub trait SmaregiPlatformApi: Send + Sync {
    /// Whether the app can act for the contract now: a token is granted. The
    /// contract notification is believed only once this agrees with it.
    async fn check_contract(&self, contract_id: &str) -> Result<(), SmaregiError>;

    /// Every pair whose stock changed between `from` and `to` (Japan time),
    /// asked in windows Smaregi accepts (at most 31 days), every page.
    async fn changed_pairs(
        &self,
        contract_id: &str,
        from: NaiveDateTime,
        to: NaiveDateTime,
    ) -> Result<Vec<ChangedPair>, SmaregiError>;

    /// The pair's stock changes with an id above `after_id` and changed at or
    /// after `since` (Japan time), oldest first. Rows carry amount, stock after,
    /// division and the history id.
    async fn pair_changes(
        &self,
        contract_id: &str,
        product: &ProductId,
        store: &StoreId,
        after_id: u64,
        since: NaiveDateTime,
    ) -> Result<Vec<ChangeRow>, SmaregiError>;

    /// One change by its 在庫変動履歴ID; `None` when Smaregi has no such row.
    async fn change(
        &self,
        contract_id: &str,
        product: &ProductId,
        store: &StoreId,
        id: u64,
    ) -> Result<Option<ChangeRow>, SmaregiError>;

    /// `POST /stock/{product}/add`: returns the `stockHistory.id` the write
    /// recorded, which the intake drops when it comes back as `pos:stock`.
    async fn add_stock(
        &self,
        contract_id: &str,
        product: &ProductId,
        store: &StoreId,
        delta: i64,
        memo: &str,
    ) -> Result<u64, SmaregiError>;
}

/// The port when no Platform app is configured: every call is refused the
/// way a contract without the app is, so a Platform tenant's run reports it.
pub struct NoPlatformApp;

fn not_configured() -> SmaregiError {
    SmaregiError::Auth {
        code: "platform_app_not_configured".into(),
        message: "no Smaregi Platform app (client id and secret) is configured".into(),
    }
}

#[async_trait]
impl SmaregiPlatformApi for NoPlatformApp {
    async fn check_contract(&self, _: &str) -> Result<(), SmaregiError> {
        Err(not_configured())
    }
    async fn changed_pairs(
        &self,
        _: &str,
        _: NaiveDateTime,
        _: NaiveDateTime,
    ) -> Result<Vec<ChangedPair>, SmaregiError> {
        Err(not_configured())
    }
    async fn pair_changes(
        &self,
        _: &str,
        _: &ProductId,
        _: &StoreId,
        _: u64,
        _: NaiveDateTime,
    ) -> Result<Vec<ChangeRow>, SmaregiError> {
        Err(not_configured())
    }
    async fn change(
        &self,
        _: &str,
        _: &ProductId,
        _: &StoreId,
        _: u64,
    ) -> Result<Option<ChangeRow>, SmaregiError> {
        Err(not_configured())
    }
    async fn add_stock(
        &self,
        _: &str,
        _: &ProductId,
        _: &StoreId,
        _: i64,
        _: &str,
    ) -> Result<u64, SmaregiError> {
        Err(not_configured())
    }
}
