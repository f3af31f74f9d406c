//! The pages' data. Templates live in `crates/service/templates/` and are
//! checked at compile time; every value is HTML-escaped there.

use super::Flash;
use askama::Template;

/// What the shared frame (header, navigation, message) needs.
pub struct Layout {
    pub title: &'static str,
    /// Which navigation entry is current.
    pub active: &'static str,
    pub logged_in: bool,
    pub tenant_name: String,
    pub csrf: String,
    pub flash: Option<Flash>,
}

#[derive(Template)]
#[template(path = "error.html")]
pub struct ErrorPage {
    pub message: String,
}

#[derive(Template)]
#[template(path = "login.html")]
pub struct LoginPage {
    pub layout: Layout,
    pub email: String,
    pub error: Option<String>,
}

pub struct NeStatus {
    pub connected: bool,
    pub access_end: String,
    pub refresh_end: String,
    /// 有効 / 期限間近 / 期限切れ / 未接続.
    pub label: &'static str,
    /// CSS class of the label: ok / warn / bad.
    pub class: &'static str,
}

pub struct ActionItem {
    pub title: String,
    pub detail: String,
    /// (href, text) of the page that fixes it.
    pub link: Option<(String, String)>,
}

pub struct RunRow {
    pub at: String,
    pub subject: String,
    pub sent: String,
    pub failed: bool,
}

pub struct ParkedRow {
    pub goods_code: String,
    pub delta: i64,
    pub reason: &'static str,
    pub at: String,
}

#[derive(Template)]
#[template(path = "dashboard.html")]
pub struct DashboardPage {
    pub layout: Layout,
    pub ne: NeStatus,
    pub actions: Vec<ActionItem>,
    pub runs: Vec<RunRow>,
    pub parked: Vec<ParkedRow>,
    pub order_import_on: bool,
    pub pending_changes: usize,
    /// How long the oldest pending change has waited, if any does.
    pub oldest_pending: Option<String>,
    /// From the oldest change of the newest uploaded file to its upload.
    pub last_upload_lag: Option<String>,
    /// Rows of the last 7 days counted without anything telling them from a resend.
    pub indistinguishable_changes: usize,
}

#[derive(Template)]
#[template(path = "settings.html")]
pub struct SettingsPage {
    pub layout: Layout,
    pub notify_emails: String,
    pub counted_stores: String,
    pub stock_master: &'static str,
    pub mapping_mode: &'static str,
    pub contract_id: String,
    pub customer_code: String,
    pub pair_count: usize,
    /// Since when changes are read from Smaregi's StockHistory (Japan time), if they are.
    pub stock_history_since: Option<String>,
    pub has_smaregi_api: bool,
    /// Whether changes come through the スマレジ・プラットフォームAPI now.
    pub on_platform: bool,
    /// The history id the last switch to the Platform API drew its boundary at.
    pub platform_boundary: Option<u64>,
    /// The Platform backfill's watermark (Japan time).
    pub platform_watermark: Option<String>,
    /// The app's contract as the last confirmed notification left it.
    pub platform_contract: Option<String>,
    pub error: Option<String>,
}

pub struct PairRow {
    pub product_id: String,
    pub goods_code: String,
    /// The code before the change (changed pairs only).
    pub old_code: String,
}

#[derive(Template)]
#[template(path = "mapping_preview.html")]
pub struct MappingPreviewPage {
    pub layout: Layout,
    pub file_name: String,
    pub encoding: &'static str,
    pub staged_id: String,
    pub total: usize,
    pub added_count: usize,
    pub changed_count: usize,
    pub removed_count: usize,
    pub unchanged_count: usize,
    pub added: Vec<PairRow>,
    pub changed: Vec<PairRow>,
    pub removed: Vec<PairRow>,
    pub shown_limit: usize,
    pub mode_is_table: bool,
}

#[derive(Template)]
#[template(path = "order_import.html")]
pub struct OrderImportPage {
    pub layout: Layout,
    pub enabled: bool,
    pub contract_id: String,
    pub store_id: String,
    pub token_saved: bool,
    pub enabled_since: Option<String>,
    pub error: Option<String>,
}

pub struct BatchRow {
    pub id: String,
    pub at: String,
    pub state: &'static str,
    pub state_class: &'static str,
    pub que_id: String,
    pub products: usize,
    pub changes: usize,
    pub result: String,
    pub row_errors: Vec<String>,
    pub error: Option<String>,
    pub has_csv: bool,
    /// The unapplied rows 「未反映の行を再アップロード」 would send (the first few).
    pub resend: Vec<String>,
    pub resend_count: usize,
    /// How many of them are free-stock refusals (sent only when ticked).
    pub resend_free_stock: usize,
    pub follow_up: Option<String>,
    /// The failed file this one re-sends.
    pub follows: Option<String>,
}

pub struct ReportRow {
    pub at: String,
    pub subject: String,
    pub sent: String,
    pub failed: bool,
}

pub struct OrderRow {
    pub at: String,
    pub receive_order_id: String,
    pub shop_order_no: String,
    pub state: String,
    pub state_class: &'static str,
    pub lines: String,
}

/// An upload held as 要確認, with what the operator needs to decide it.
pub struct HeldRow {
    pub id: String,
    pub at: String,
    pub attempt_at: String,
    pub products: usize,
    /// `goods code: delta` of the frozen file (the first lines).
    pub lines: Vec<String>,
    pub more_lines: usize,
    pub candidates: Vec<CandidateRow>,
}

pub struct CandidateRow {
    pub que_id: String,
    pub created_at: String,
    pub kind: String,
}

#[derive(Template)]
#[template(path = "history.html")]
pub struct HistoryPage {
    pub layout: Layout,
    pub held: Vec<HeldRow>,
    pub batches: Vec<BatchRow>,
    pub reports: Vec<ReportRow>,
    pub orders: Vec<OrderRow>,
}

/// One line of a drift check as the page shows it.
pub struct DriftRow {
    pub goods_code: String,
    pub smaregi: i64,
    pub ne_stock: String,
    pub ne_allocated: String,
    pub ne_free: String,
    pub pending: i64,
    pub in_files: i64,
    pub web_orders: i64,
    pub expected_free: i64,
    pub difference: String,
    pub correction: String,
    pub cause: String,
}

#[derive(Template)]
#[template(path = "drift.html")]
pub struct DriftPage {
    pub layout: Layout,
    /// `None`: no check yet (the initial alignment's starting point).
    pub check_id: Option<String>,
    pub checked_at: String,
    pub goods_compared: usize,
    pub unsettled: usize,
    pub unmapped_products: usize,
    pub set_goods_skipped: usize,
    pub report_only: bool,
    pub corrections: usize,
    pub rows: Vec<DriftRow>,
}

pub struct AlignRow {
    pub goods_code: String,
    pub delta: String,
}

#[derive(Template)]
#[template(path = "drift_align.html")]
pub struct AlignPage {
    pub layout: Layout,
    pub check_id: String,
    pub checked_at: String,
    pub rows: Vec<AlignRow>,
    /// Why it cannot be applied now; `None`: the confirm button is shown.
    pub refusal: Option<String>,
}
