//! The run report of SPEC §5 as data: what happened in one run for one tenant,
//! and its Japanese subject and body. How it is sent is not this module's business.

use crate::que_message::RowError;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub const SUBJECT_PREFIX: &str = "【スマレジtoネクストエンジン】";
pub const TOKEN_ERROR_TEXT: &str = "ファイルのアップロード中にトークンのエラーが発生しました";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunReport {
    pub tenant_name: String,
    pub run_at: DateTime<Utc>,
    pub upload: UploadSection,
    pub previous: PreviousSection,
    /// `None` while the order import is off: the section is then left out.
    pub orders: Option<OrderSection>,
    /// Fallbacks and warnings the operator should know about (SPEC §3: never guess silently).
    pub notices: Vec<String>,
}

/// A goods code that was left out of the upload, with the delta it would have carried.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParkedLine {
    pub goods_code: String,
    pub delta: i64,
    pub reason: ParkReason,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ParkReason {
    /// 未登録商品: NextEngine does not know the goods code.
    NotRegistered,
    /// The code breaks NextEngine's rule (ASCII letters, digits, `-`, `_`, ≤ 30).
    InvalidCode,
    /// The Smaregi product has no goods code under the tenant's mapping.
    Unmapped,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum UploadSection {
    /// No stock change needed uploading in this run.
    Nothing { parked: Vec<ParkedLine> },
    Uploaded {
        batch_id: String,
        que_id: String,
        products: usize,
        /// Stock changes that went into the file.
        changes: usize,
        csv_file_name: String,
        download_url: Option<String>,
        parked: Vec<ParkedLine>,
    },
    /// NextEngine refused our tokens; the batch waits for 再取得.
    TokenError { batch_id: String, detail: String },
    /// Any other failure; the batch is kept and retried by the next run.
    Failed { batch_id: Option<String>, reason: String },
    /// The outcome of an upload is not known yet (timeout); the next run resolves it
    /// from NextEngine's queue before anything is sent again.
    Unresolved { batch_id: String, reason: String },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueResult {
    pub que_id: String,
    pub batch_id: String,
    pub outcome: QueueOutcome,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum QueueOutcome {
    Succeeded,
    Failed {
        row_errors: Vec<RowError>,
        raw_message: String,
        /// Whether NextEngine applies the good rows of a failing file (since 2025-02-13).
        good_rows_applied: bool,
    },
    /// Still waiting or running in NextEngine's queue, longer than the configured limit.
    Overdue { minutes: i64 },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PreviousSection {
    Nothing,
    Results { results: Vec<QueueResult> },
    /// The queue could not be read (e.g. token error); the check is repeated next run.
    Error { reason: String },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportedOrder {
    /// NextEngine 伝票番号.
    pub receive_order_id: String,
    /// The shop's 受注番号.
    pub shop_order_no: String,
    pub shipment_id: String,
    pub lines: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailedOrder {
    pub receive_order_id: String,
    pub shop_order_no: String,
    pub reason: String,
    /// goods code × quantity, so the operator can register the shipment by hand.
    pub lines: Vec<(String, i64)>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct OrderSection {
    pub imported: Vec<ImportedOrder>,
    pub failed: Vec<FailedOrder>,
    /// Orders cancelled in NextEngine after they were imported.
    pub cancelled_after_import: Vec<ImportedOrder>,
    /// The import itself could not run (e.g. Smaregi or token error).
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedReport {
    pub subject: String,
    pub body: String,
}

impl RunReport {
    /// Whether this run did anything an operator should hear about.
    pub fn is_worth_sending(&self) -> bool {
        let _ = self;
        todo!("implemented by the domain helper")
    }

    pub fn render(&self) -> RenderedReport {
        let _ = self;
        todo!("implemented by the domain helper")
    }
}
