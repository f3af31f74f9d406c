//! The NextEngine port: what the jobs need from NextEngine, in our own words.

use async_trait::async_trait;
use chrono::NaiveDateTime;
use serde::{Deserialize, Serialize};
pub use sne_domain::orders::NeOrderRow;
pub use sne_domain::row_application::StockIoEntry;
use sne_domain::tenant::NeTokens;
use sne_domain::{GoodsCode, QueId, TenantId};
use std::collections::HashSet;

#[derive(Debug, Clone)]
pub struct NeAuth {
    pub tokens: NeTokens,
    pub company_ne_id: String,
    pub company_name: String,
    pub uid: String,
    pub pic_name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum QueueStatus {
    Waiting,
    Running,
    Done,
    Failed,
    /// A value NextEngine may add later: treated as still running.
    Other(String),
}

impl QueueStatus {
    pub fn from_code(code: &str) -> Self {
        match code.trim() {
            "0" => QueueStatus::Waiting,
            "1" => QueueStatus::Running,
            "2" => QueueStatus::Done,
            "-1" => QueueStatus::Failed,
            other => QueueStatus::Other(other.to_string()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueEntry {
    pub que_id: QueId,
    pub status: QueueStatus,
    pub message: String,
    pub method_name: String,
    pub created_at: Option<NaiveDateTime>,
    /// `que_last_modified_date`: for a finished queue, when NextEngine finished it.
    #[serde(default)]
    pub modified_at: Option<NaiveDateTime>,
    /// `que_upload_name`: tells API uploads from screen uploads where NextEngine fills it.
    #[serde(default)]
    pub upload_name: String,
    /// `que_client_file_name`: the file name a screen upload came with.
    #[serde(default)]
    pub client_file_name: String,
}

/// A goods' stock as NextEngine's goods master shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GoodsStock {
    pub goods_code: GoodsCode,
    /// `stock_quantity` (在庫数): what `zaiko_su` uploads change.
    pub stock: i64,
    /// `stock_allocation_quantity` (引当数): held by orders not yet shipped.
    pub allocated: i64,
    /// `stock_free_quantity` (フリー在庫数).
    pub free: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderRowQuery {
    /// Rows changed at or after this moment (`receive_order_row_last_modified_newest_date-gte`).
    pub modified_since: Option<NaiveDateTime>,
    /// Orders imported into NextEngine at or after this moment.
    pub imported_since: Option<NaiveDateTime>,
    pub offset: usize,
    pub limit: usize,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum NeError {
    /// The tokens are unusable: the operator must 再取得 in the admin screen.
    #[error("token error ({code}): {message}")]
    Token { code: String, message: String },
    /// NextEngine answered with an error envelope; nothing was done on its side.
    #[error("NextEngine error {code}: {message}")]
    Api { code: String, message: String },
    /// The NextEngine account or its main function is suspended (利用停止,
    /// codes 001007/002003/003003): nothing was done, and neither a retry nor
    /// a new sign-in helps until the contract is sorted out.
    #[error("NextEngine account suspended ({code}): {message}")]
    Suspended { code: String, message: String },
    /// Overload or maintenance still going on after the bounded retries; nothing was done.
    #[error("NextEngine busy ({code}): {message}")]
    Busy { code: String, message: String },
    /// No complete answer arrived (timeout, dropped connection, 5xx, unreadable body):
    /// the call may or may not have taken effect.
    #[error("NextEngine unreachable: {0}")]
    Transport(String),
    /// Our own storage failed around the call (tokens, cursors); NextEngine's
    /// side is as the variant's caller says.
    #[error("storage: {0}")]
    Store(#[from] crate::error::StoreError),
}

impl NeError {
    /// Whether NextEngine may have acted on the request although we got no answer.
    pub fn outcome_unknown(&self) -> bool {
        matches!(self, NeError::Transport(_))
    }
}

#[async_trait]
pub trait NextEngineApi: Send + Sync {
    /// The browser sign-in URL (`/users/sign_in/?client_id=…&redirect_uri=…`).
    fn sign_in_url(&self) -> String;
    /// `/api_neauth`: exchanges the callback's `uid` and `state` for tokens.
    async fn authorize(&self, uid: &str, state: &str) -> Result<NeAuth, NeError>;
    /// The subset of `codes` NextEngine's goods master knows.
    async fn existing_goods(
        &self,
        tenant: &TenantId,
        codes: &[GoodsCode],
    ) -> Result<HashSet<GoodsCode>, NeError>;
    /// Uploads a `syohin_code,zaiko_su` file; returns the `que_id`. Never retried
    /// after an unknown outcome: that is for the caller to resolve from the queue.
    /// The stock of each of `codes` the goods master knows
    /// (`/api_v1_master_goods/search` with the stock fields, in chunks).
    async fn goods_stock(
        &self,
        tenant: &TenantId,
        codes: &[GoodsCode],
    ) -> Result<Vec<GoodsStock>, NeError>;
    /// The subset of `codes` that are set goods (`/api_v1_master_setgoods/search`):
    /// NextEngine computes their stock from their components.
    async fn set_goods(
        &self,
        tenant: &TenantId,
        codes: &[GoodsCode],
    ) -> Result<HashSet<GoodsCode>, NeError>;
    async fn upload_stock_csv(&self, tenant: &TenantId, csv: &[u8]) -> Result<QueId, NeError>;
    async fn queues_by_id(
        &self,
        tenant: &TenantId,
        que_ids: &[QueId],
    ) -> Result<Vec<QueueEntry>, NeError>;
    /// Goods-master upload queues created at or after `since` (Japan time).
    async fn goods_upload_queues_since(
        &self,
        tenant: &TenantId,
        since: NaiveDateTime,
    ) -> Result<Vec<QueueEntry>, NeError>;
    async fn order_rows(
        &self,
        tenant: &TenantId,
        query: &OrderRowQuery,
    ) -> Result<Vec<NeOrderRow>, NeError>;
    /// Entries of NextEngine's stock in/out history (入出庫履歴) of `goods_codes`
    /// created at or after `since` (Japan time): how the judgement of a failed
    /// file's rows learns what NextEngine applied.
    async fn stock_io_history(
        &self,
        tenant: &TenantId,
        goods_codes: &[GoodsCode],
        since: NaiveDateTime,
    ) -> Result<Vec<StockIoEntry>, NeError>;
    /// One cheap authenticated call. NextEngine rotates tokens only when they are
    /// used, so a tenant without stock changes would otherwise lose its refresh
    /// token after three quiet days.
    async fn keep_tokens_alive(&self, tenant: &TenantId) -> Result<(), NeError>;
}
