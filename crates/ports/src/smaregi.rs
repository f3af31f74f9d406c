//! The Smaregi port (old スマレジAPI): stock history, products, stores, shipments.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use sne_domain::tenant::SmaregiCredentials;
use sne_domain::{ChangeRow, ProductId, ProductPair, StoreId};

#[derive(Debug, Clone, thiserror::Error)]
pub enum SmaregiError {
    /// Contract id or access token refused, or the function is not enabled.
    #[error("Smaregi refused the credentials ({code}): {message}")]
    Auth { code: String, message: String },
    /// Smaregi answered with an error (validation, unknown data).
    #[error("Smaregi error {code}: {message}")]
    Api { code: String, message: String },
    #[error("Smaregi unreachable: {0}")]
    Transport(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SmaregiStore {
    pub store_id: String,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewShipment {
    pub store_id: String,
    pub recipient_name: String,
    pub shipment_date: chrono::NaiveDate,
    pub identification_no: String,
    pub memo: String,
    pub token: String,
    /// product id × quantity, one row per product.
    pub lines: Vec<(String, i64)>,
    /// `true` for a 返品 shipment (division 1) that reverses an earlier one.
    pub is_return: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShipmentSummary {
    pub shipment_id: String,
    pub identification_no: String,
    pub division: String,
    pub status: String,
}

/// One row of Smaregi's `Stock` table: the current stock of a product in a store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreStock {
    pub store_id: StoreId,
    pub product_id: ProductId,
    /// `stockAmount`: may be negative (Smaregi allows it, NextEngine does not).
    pub amount: i64,
    /// `updDateTime` (Japan time), when Smaregi gives it.
    pub updated_at: Option<chrono::NaiveDateTime>,
}

#[async_trait]
pub trait SmaregiApi: Send + Sync {
    /// `StockHistory` rows with `id` above `after_id`, oldest first, at most `max_rows`.
    async fn stock_history_after(
        &self,
        creds: &SmaregiCredentials,
        after_id: u64,
        max_rows: usize,
    ) -> Result<Vec<ChangeRow>, SmaregiError>;
    /// The newest `StockHistory` id, to start reading history from "now".
    async fn latest_stock_history_id(
        &self,
        creds: &SmaregiCredentials,
    ) -> Result<Option<u64>, SmaregiError>;
    /// The 商品コード of each given product that exists and has one.
    async fn product_codes(
        &self,
        creds: &SmaregiCredentials,
        product_ids: &[ProductId],
    ) -> Result<Vec<ProductPair>, SmaregiError>;
    async fn stores(&self, creds: &SmaregiCredentials) -> Result<Vec<SmaregiStore>, SmaregiError>;
    /// Every `Stock` row of the given stores (`stock_ref`, one store per lookup,
    /// paged): the drift radar's view of Smaregi's current stock.
    async fn stock_of_stores(
        &self,
        creds: &SmaregiCredentials,
        store_ids: &[StoreId],
    ) -> Result<Vec<StoreStock>, SmaregiError>;
    async fn shipments_by_identification(
        &self,
        creds: &SmaregiCredentials,
        identification_no: &str,
    ) -> Result<Vec<ShipmentSummary>, SmaregiError>;
    /// Returns the new shipment id, or `None` when Smaregi skipped a replayed token.
    async fn create_shipment(
        &self,
        creds: &SmaregiCredentials,
        shipment: &NewShipment,
    ) -> Result<Option<String>, SmaregiError>;
}
