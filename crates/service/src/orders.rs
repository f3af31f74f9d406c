//! The order importer (SPEC §2, manual 「(β版)ネクストエンジン受注数取り込み」):
//! NextEngine web orders become Smaregi 出荷, exactly once.
//!
//! What keeps it exactly once:
//! 1. a record is written `Started` (CAS on "absent") before `shipment_upd`, so a
//!    crash during the call leaves a trace the next run resolves first;
//! 2. every creation is preceded by a `shipment_ref` lookup by identificationNo
//!    (the NextEngine 伝票番号), so a shipment whose answer was lost is adopted,
//!    not made again;
//! 3. the `token` is derived from tenant and order, so even a replayed request
//!    that slips past the lookup is skipped by Smaregi;
//! 4. the read cursor only advances after every order of the run is settled, and
//!    re-reading an order changes nothing (its record decides).
//!
//! Failed orders are terminal: the report tells the operator to register them by
//! hand, so retrying one later could ship it twice. See `README-orders.md`.

use crate::Context;
use crate::run::{Jobs, TenantRun, new_run_id, run_tenant};
use chrono::{Duration as ChronoDuration, NaiveDateTime, SubsecRound};
use sha2::{Digest, Sha256};
use sne_domain::TenantId;
use sne_domain::mapping::ProductMap;
use sne_domain::report::{FailedOrder, ImportedOrder, OrderSection};
use sne_domain::tenant::{MappingMode, OrderImportSettings, SmaregiCredentials, Tenant};
use sne_domain::time::{API_FORMAT, parse_api_time, to_jst};
use sne_ports::nextengine::{NeError, NeOrderRow, OrderRowQuery};
use sne_ports::smaregi::{NewShipment, SmaregiError};
use sne_ports::{OrderImportRecord, OrderImportState, PairSource, StoreError};
use std::collections::BTreeMap;

/// Cursor (CursorStore) holding the newest `receive_order_row_last_modified_newest_date`
/// already settled, in NextEngine's own time (JST, `YYYY-MM-DD HH:MM:SS`).
pub const ORDER_CURSOR: &str = "ne_order_rows_modified";
pub const STARTED_MESSAGE: &str = "受注数取り込みを開始しました";
pub const STOPPED_MESSAGE: &str = "受注数取り込みを停止しました";
/// Cursor holding the per-tenant import lease (`ImportLease`).
pub const IMPORT_LEASE: &str = "ne_order_import_lease";
pub const HISTORY_REQUIRED: &str = "受注数取り込みには在庫変動履歴の読み取りが必要です。取り込んだ出荷がネクストエンジンへ二重に通知されないよう、取り込みを止めています。管理画面の設定で「在庫変動履歴の読み取り」を有効にしてください";
/// NextEngine's rows are read again from this long before the cursor: a row
/// written with an earlier timestamp than a concurrent read (or shifted between
/// two pages) is still seen. Re-reading is harmless.
const CURSOR_OVERLAP_MINUTES: i64 = 10;
/// 受取先名 (recipientName) is at most 85 characters.
const RECIPIENT_NAME_MAX: usize = 85;
const MEMO_MAX: usize = 1000;
/// Records read when composing the report section (newest first).
const REPORT_SCAN: usize = 1000;

#[derive(Debug, Clone)]
pub struct ImportOptions {
    /// Rows per `receive_order_row/search` page.
    pub page_size: usize,
}

impl Default for ImportOptions {
    fn default() -> Self {
        ImportOptions { page_size: 1000 }
    }
}

// ---------------------------------------------------------------- settings

/// The admin screen's 「(β版)ネクストエンジン受注数取り込み」 form.
#[derive(Debug, Clone, Default)]
pub struct OrderImportForm {
    /// 「実行する」 (true) / 「実行しない」 (false).
    pub enabled: bool,
    pub contract_id: String,
    pub store_id: String,
    pub access_token: String,
}

/// A saved setting: the manual's message and anything the operator should know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderImportSaved {
    pub message: &'static str,
    pub warnings: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum OrderImportError {
    /// The input or Smaregi's answer to the check; nothing was saved.
    #[error("{0}")]
    Invalid(String),
    #[error("テナントが見つかりません")]
    UnknownTenant,
    #[error("設定を保存できませんでした: {0}")]
    Store(#[from] StoreError),
}

/// Pasted values arrive with spaces, full-width spaces and line breaks around
/// (or inside) them; none of the three fields can contain whitespace.
fn clean(value: &str) -> String {
    value.chars().filter(|c| !c.is_whitespace()).collect()
}

/// Saves the order-import setting after proving it works: the credentials are
/// accepted, 「24.出荷情報取得」 and 「17.出荷情報更新」 are enabled and the store
/// exists. Switching off needs no check. Reused by the CLI and the admin screen.
pub async fn configure_order_import(
    ctx: &Context,
    tenant_id: &TenantId,
    form: OrderImportForm,
) -> Result<OrderImportSaved, OrderImportError> {
    let mut warnings = Vec::new();
    if !form.enabled {
        // The credentials stay: they also give the uploader history access.
        update_tenant_with(ctx, tenant_id, |t| t.order_import.enabled = false).await?;
        tracing::info!(tenant = %tenant_id, "order import switched off");
        return Ok(OrderImportSaved {
            message: STOPPED_MESSAGE,
            warnings,
        });
    }
    let tenant = ctx
        .storage
        .tenant(tenant_id)
        .await?
        .ok_or(OrderImportError::UnknownTenant)?;
    let (creds, store_id) = validate_form(&tenant, &form)?;
    check_with_smaregi(ctx, &creds, &store_id, &mut warnings).await?;
    // History reading goes on before the import does, so every shipment the
    // import creates is read back from StockHistory as 出荷 and never uploaded.
    let tenant =
        update_tenant_with(ctx, tenant_id, |t| t.smaregi_api = Some(creds.clone())).await?;
    if crate::uploader::history_mode_since(ctx, &tenant)
        .await
        .is_none()
    {
        let message = crate::uploader::set_history_mode(ctx, &tenant, true)
            .await
            .map_err(|e| OrderImportError::Invalid(e.to_string()))?;
        warnings.push(format!(
            "{message}。受注数取り込みの出荷が二重に通知されないよう、在庫の増減はスマレジの在庫変動履歴から読み取ります"
        ));
    }
    let now = ctx.clock.now().trunc_subsecs(0);
    update_tenant_with(ctx, tenant_id, |t| {
        let was_on = t.order_import.enabled;
        t.smaregi_api = Some(creds.clone());
        t.order_import = OrderImportSettings {
            enabled: true,
            store_id: Some(store_id.clone()),
            // Re-saving while on (e.g. a new token) must not skip the orders
            // received since the import was first switched on.
            enabled_at: match (was_on, t.order_import.enabled_at) {
                (true, Some(at)) => Some(at),
                _ => Some(now),
            },
        };
    })
    .await?;
    tracing::info!(tenant = %tenant_id, "order import switched on");
    Ok(OrderImportSaved {
        message: STARTED_MESSAGE,
        warnings,
    })
}

/// Applies `change` to the fresh tenant and saves it. Another writer (admin
/// screen, token rotation) may bump the version between read and write; the
/// change is then applied again on the newer tenant.
async fn update_tenant_with(
    ctx: &Context,
    tenant_id: &TenantId,
    change: impl Fn(&mut Tenant),
) -> Result<Tenant, OrderImportError> {
    for _ in 0..5 {
        let mut tenant = ctx
            .storage
            .tenant(tenant_id)
            .await?
            .ok_or(OrderImportError::UnknownTenant)?;
        change(&mut tenant);
        match ctx.storage.update_tenant(&tenant).await {
            Ok(saved) => return Ok(saved),
            Err(StoreError::Conflict(_)) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(OrderImportError::Store(StoreError::Conflict(
        "テナント設定が更新され続けています。もう一度お試しください".into(),
    )))
}

fn validate_form(
    tenant: &Tenant,
    form: &OrderImportForm,
) -> Result<(SmaregiCredentials, String), OrderImportError> {
    let invalid = |m: &str| OrderImportError::Invalid(m.to_string());
    let contract_id = clean(&form.contract_id);
    let store_id = clean(&form.store_id);
    let access_token = clean(&form.access_token);
    if contract_id.is_empty() {
        return Err(invalid("スマレジ契約IDを入力してください"));
    }
    if store_id.is_empty() {
        return Err(invalid("取り込み先スマレジ側店舗IDを入力してください"));
    }
    if access_token.is_empty() {
        return Err(invalid("スマレジアクセストークンを入力してください"));
    }
    // Shipments must land in the contract whose pushes this tenant receives,
    // or their 出荷 could never be recognised (and another shop's stock would move).
    if contract_id != tenant.contract_id {
        return Err(OrderImportError::Invalid(format!(
            "スマレジ契約ID {contract_id} はこのアカウントの契約ID ({}) と一致しません",
            tenant.contract_id
        )));
    }
    if !store_id.chars().all(|c| c.is_ascii_digit()) {
        return Err(invalid(
            "取り込み先スマレジ側店舗IDは半角数字で入力してください (スマレジ管理画面 店舗 > 店舗一覧 の店舗ID)",
        ));
    }
    if !access_token.chars().all(|c| c.is_ascii_graphic()) {
        return Err(invalid(
            "スマレジアクセストークンに使用できない文字が含まれています。コピーした内容を確認してください",
        ));
    }
    Ok((
        SmaregiCredentials {
            contract_id,
            access_token,
        },
        store_id,
    ))
}

fn smaregi_check_error(what: &str, e: &SmaregiError) -> OrderImportError {
    OrderImportError::Invalid(match e {
        SmaregiError::Transport(_) => {
            "スマレジに接続できませんでした。時間をおいてもう一度「設定」をクリックしてください"
                .to_string()
        }
        SmaregiError::Auth { message, .. } | SmaregiError::Api { message, .. } => {
            format!("{what} (スマレジの応答: {message})")
        }
    })
}

async fn check_with_smaregi(
    ctx: &Context,
    creds: &SmaregiCredentials,
    store_id: &str,
    warnings: &mut Vec<String>,
) -> Result<(), OrderImportError> {
    // 1. shipment_ref: proves the credentials and 「24.出荷情報取得」.
    ctx.smaregi
        .shipments_by_identification(creds, "smaregi-ne-settings-check")
        .await
        .map_err(|e| {
            smaregi_check_error(
                "スマレジ契約ID・スマレジアクセストークンが正しいこと、スマレジ管理画面 設定 > システム連携 > スマレジAPI設定 の「受信機能を利用する」が「利用する」で、機能設定の「24.出荷情報取得」が「利用する」になっていることを確認してください",
                &e,
            )
        })?;
    // 2. The store, from 店舗情報参照 (store_ref). Only read calls: a test write
    //    that a lenient Smaregi accepted would be a real 未出荷 shipment.
    //    「17.出荷情報更新」 cannot be proven without writing; a disabled one stops
    //    the first import with a text that names it.
    match ctx.smaregi.stores(creds).await {
        Ok(stores) if stores.iter().any(|s| s.store_id == store_id) => {}
        Ok(_) => {
            return Err(OrderImportError::Invalid(format!(
                "取り込み先スマレジ側店舗ID {store_id} の店舗がスマレジにありません。スマレジ管理画面 店舗 > 店舗一覧 で店舗IDを確認してください"
            )));
        }
        Err(e @ SmaregiError::Transport(_)) => return Err(smaregi_check_error("", &e)),
        Err(_) => warnings.push(format!(
            "スマレジAPI設定の機能設定で「店舗情報参照」が利用できないため、店舗ID {store_id} を確認できませんでした。店舗IDが正しいことをスマレジ管理画面 店舗 > 店舗一覧 で確認してください(誤っている場合は最初の取り込みで止まり、通知メールでお知らせします)"
        )),
    }
    // The import needs stock-history reading (see `import_orders`), which needs
    // 在庫情報参照 (stock_ref) with the same credentials.
    ctx.smaregi
        .latest_stock_history_id(creds)
        .await
        .map_err(|e| {
            smaregi_check_error(
                "受注数取り込みには在庫変動履歴の読み取りが必要です。スマレジAPI設定の機能設定で「在庫情報参照」も「利用する」にしてください",
                &e,
            )
        })?;
    Ok(())
}

// ---------------------------------------------------------------- the job

/// Runs the order import (and its report) for every tenant with the import on.
/// The order-importer Lambda calls this.
pub async fn run_order_import_all(ctx: &Context) -> anyhow::Result<Vec<TenantRun>> {
    let run_id = new_run_id(ctx);
    let tenants = ctx.storage.list_tenants().await?;
    let mut runs = Vec::new();
    for tenant in tenants.into_iter().filter(|t| t.order_import.enabled) {
        runs.push(run_tenant(ctx, &tenant, Jobs::ImportOrders, &run_id).await);
    }
    Ok(runs)
}

/// The import for one tenant, then the report section: every order whose state
/// the operator has not been told about yet. `None` while the import is off.
pub async fn run_order_import(ctx: &Context, tenant: &Tenant) -> Option<OrderSection> {
    run_order_import_with(ctx, tenant, &ImportOptions::default()).await
}

pub async fn run_order_import_with(
    ctx: &Context,
    tenant: &Tenant,
    options: &ImportOptions,
) -> Option<OrderSection> {
    if !tenant.order_import.enabled {
        return None;
    }
    let owner = format!("import-{}", uuid::Uuid::new_v4().simple());
    let lease = match ImportLease::acquire(ctx, &tenant.id, &owner).await {
        Ok(Some(lease)) => lease,
        // Another process imports this tenant right now; its report tells.
        Ok(None) => {
            tracing::info!(tenant = %tenant.id, "order import held by another run");
            return None;
        }
        Err(e) => {
            return Some(OrderSection {
                error: Some(format!(
                    "受注取込を開始できませんでした(次回再試行します): {e}"
                )),
                ..OrderSection::default()
            });
        }
    };
    let mut lease = lease;
    let error = import_orders(ctx, tenant, options, &mut lease).await.err();
    lease.release(ctx).await;
    if let Some(e) = &error {
        tracing::warn!(tenant = %tenant.id, error = %e, "order import stopped");
    }
    let mut section = match unreported_section(ctx, &tenant.id).await {
        Ok(section) => section,
        Err(e) => OrderSection {
            error: Some(format!("受注取込の記録を読めませんでした: {e}")),
            ..OrderSection::default()
        },
    };
    if section.error.is_none() {
        section.error = error;
    }
    Some(section)
}

/// Marks the orders of a stored report as told, so the next report does not
/// repeat them. A state that moved on since (e.g. cancelled) stays untold.
pub async fn mark_reported(ctx: &Context, tenant: &TenantId, section: &OrderSection) {
    let ids = section
        .imported
        .iter()
        .map(|o| &o.receive_order_id)
        .chain(section.failed.iter().map(|o| &o.receive_order_id))
        .chain(
            section
                .cancelled_after_import
                .iter()
                .map(|o| &o.receive_order_id),
        );
    for id in ids {
        let Ok(Some(mut record)) = ctx.storage.order_record(tenant, id).await else {
            continue;
        };
        if record.reported || record.state == OrderImportState::Started {
            continue;
        }
        record.reported = true;
        let tag = record.state.tag();
        if let Err(e) = ctx.storage.put_order_record(&record, Some(tag)).await {
            tracing::debug!(tenant = %tenant, order = %id, error = %e, "order not marked as reported");
        }
    }
}

async fn unreported_section(ctx: &Context, tenant: &TenantId) -> Result<OrderSection, StoreError> {
    let mut records = ctx.storage.order_records(tenant, REPORT_SCAN).await?;
    records.retain(|r| !r.reported);
    records.sort_by_key(|r| order_key(&r.receive_order_id));
    let mut section = OrderSection::default();
    for r in records {
        let imported = |shipment_id: &str| ImportedOrder {
            receive_order_id: r.receive_order_id.clone(),
            shop_order_no: r.shop_order_no.clone(),
            shipment_id: shipment_id.to_string(),
            lines: r.lines.len(),
        };
        match &r.state {
            OrderImportState::Started => {}
            OrderImportState::Imported { shipment_id } => {
                section.imported.push(imported(shipment_id))
            }
            OrderImportState::CancelledAfterImport { shipment_id } => {
                section.cancelled_after_import.push(imported(shipment_id))
            }
            OrderImportState::Failed { reason } => section.failed.push(FailedOrder {
                receive_order_id: r.receive_order_id.clone(),
                shop_order_no: r.shop_order_no.clone(),
                reason: reason.clone(),
                lines: r.lines.clone(),
            }),
        }
    }
    Ok(section)
}

/// Numeric 伝票番号 sort, text as a fallback.
fn order_key(id: &str) -> (u64, String) {
    (id.parse().unwrap_or(u64::MAX), id.to_string())
}

/// Smaregi's idempotency token for the shipment of one order: the same for every
/// attempt, different for every tenant, order and purpose.
pub fn shipment_token(tenant: &TenantId, receive_order_id: &str) -> String {
    let digest = Sha256::digest(format!("{tenant}\u{1f}{receive_order_id}\u{1f}shipment"));
    // 32 characters: unique enough, and short of any plausible column size.
    hex::encode(digest)[..32].to_string()
}

/// One NextEngine order, assembled from its rows.
#[derive(Debug, Clone)]
struct NeOrder {
    receive_order_id: String,
    shop_order_no: String,
    cancel_type_id: String,
    import_date: Option<NaiveDateTime>,
    rows: BTreeMap<String, NeOrderRow>,
}

impl NeOrder {
    fn is_valid(&self) -> bool {
        self.cancel_type_id.trim() == "0"
    }

    /// goods code × quantity of the live rows, summed per goods code.
    fn goods_lines(&self) -> Vec<(String, i64)> {
        let mut lines: BTreeMap<String, i64> = BTreeMap::new();
        for row in self
            .rows
            .values()
            .filter(|r| !r.row_cancelled && !r.row_deleted)
        {
            *lines.entry(row.goods_id.trim().to_string()).or_default() += row.quantity;
        }
        lines.into_iter().filter(|(_, q)| *q != 0).collect()
    }
}

/// Aborts the run: nothing after it may be attempted, the cursor stays.
type RunError = String;

/// One import run per tenant at a time, across processes: a compare-and-set
/// lease in the cursor store, renewed after every order. Only the holder touches
/// `Started` records, so a `Started` record of another owner is always one whose
/// run died (its lease ran out) and is resolved, never a run still in progress.
struct ImportLease {
    tenant: TenantId,
    owner: String,
    /// The stored value, `<owner>|<until, RFC 3339>`.
    held: String,
}

impl ImportLease {
    fn value(ctx: &Context, owner: &str) -> String {
        let until = ctx.clock.now()
            + ChronoDuration::from_std(ctx.config.order_import_lease)
                .unwrap_or(ChronoDuration::minutes(15));
        format!("{owner}|{}", until.to_rfc3339())
    }

    fn expired(ctx: &Context, value: &str) -> bool {
        value
            .rsplit_once('|')
            .and_then(|(_, until)| chrono::DateTime::parse_from_rfc3339(until).ok())
            .is_none_or(|until| until <= ctx.clock.now())
    }

    async fn acquire(
        ctx: &Context,
        tenant: &TenantId,
        owner: &str,
    ) -> Result<Option<ImportLease>, StoreError> {
        let current = ctx.storage.cursor(tenant, IMPORT_LEASE).await?;
        if let Some(value) = &current
            && !value.is_empty()
            && !Self::expired(ctx, value)
        {
            return Ok(None);
        }
        let held = Self::value(ctx, owner);
        let won = ctx
            .storage
            .set_cursor(tenant, IMPORT_LEASE, current.as_deref(), &held)
            .await?;
        Ok(won.then(|| ImportLease {
            tenant: tenant.clone(),
            owner: owner.to_string(),
            held,
        }))
    }

    /// False when the lease was lost (another run took it over after it ran out).
    async fn renew(&mut self, ctx: &Context) -> Result<(), RunError> {
        let next = Self::value(ctx, &self.owner);
        match ctx
            .storage
            .set_cursor(&self.tenant, IMPORT_LEASE, Some(&self.held), &next)
            .await
        {
            Ok(true) => {
                self.held = next;
                Ok(())
            }
            Ok(false) => Err("別の実行が受注取込を引き継いだため、この実行を止めました".into()),
            Err(e) => Err(format!("保存に失敗しました: {e}")),
        }
    }

    async fn release(self, ctx: &Context) {
        if let Err(e) = ctx
            .storage
            .set_cursor(&self.tenant, IMPORT_LEASE, Some(&self.held), "")
            .await
        {
            tracing::warn!(tenant = %self.tenant, error = %e, "order import lease not released; it runs out");
        }
    }
}

async fn import_orders(
    ctx: &Context,
    tenant: &Tenant,
    options: &ImportOptions,
    lease: &mut ImportLease,
) -> Result<(), RunError> {
    let Some(creds) = tenant.smaregi_api.clone() else {
        return Err(
            "スマレジAPIの設定がありません。管理画面で受注数取り込みを設定し直してください".into(),
        );
    };
    let Some(store_id) = tenant.order_import.store_id.clone() else {
        return Err("取り込み先スマレジ側店舗IDが設定されていません".into());
    };
    let Some(enabled_at) = tenant.order_import.enabled_at else {
        return Err("受注数取り込みの開始日時がありません。設定し直してください".into());
    };
    let imported_since = to_jst(enabled_at).trunc_subsecs(0);
    let store_err = |e: StoreError| format!("保存に失敗しました: {e}");

    let cursor = ctx
        .storage
        .cursor(&tenant.id, ORDER_CURSOR)
        .await
        .map_err(store_err)?;
    let modified_since = cursor
        .as_deref()
        .and_then(parse_api_time)
        .map(|t| t - ChronoDuration::minutes(CURSOR_OVERLAP_MINUTES));

    // Reading changes from StockHistory is what keeps our own 出荷 out of
    // NextEngine whatever the push shape (README-orders.md): without it a push
    // carrying only the stock after would upload the shipment as a sale.
    let history_on = crate::uploader::history_mode(ctx, &tenant.id)
        .await
        .map_err(|e| format!("保存に失敗しました: {e}"))?
        .on_since()
        .is_some();
    if !history_on {
        return Err(HISTORY_REQUIRED.into());
    }
    let rows = fetch_rows(ctx, tenant, modified_since, imported_since, options).await?;
    let newest = rows.iter().filter_map(|r| r.last_modified_newest).max();
    let orders = group_orders(rows, imported_since);
    let map = product_map(ctx, tenant).await.map_err(store_err)?;
    for order in orders {
        process_order(ctx, tenant, &creds, &store_id, &map, &order, &lease.owner).await?;
        lease.renew(ctx).await?;
    }
    // Only now: every order read in this run is settled.
    if let Some(newest) = newest {
        let value = newest.format(API_FORMAT).to_string();
        let older = cursor
            .as_deref()
            .and_then(parse_api_time)
            .is_none_or(|c| c < newest);
        if older {
            ctx.storage
                .set_cursor(&tenant.id, ORDER_CURSOR, cursor.as_deref(), &value)
                .await
                .map_err(store_err)?;
        }
    }
    Ok(())
}

async fn fetch_rows(
    ctx: &Context,
    tenant: &Tenant,
    modified_since: Option<NaiveDateTime>,
    imported_since: NaiveDateTime,
    options: &ImportOptions,
) -> Result<Vec<NeOrderRow>, RunError> {
    let limit = options.page_size.max(1);
    let mut rows = Vec::new();
    loop {
        let query = OrderRowQuery {
            modified_since,
            imported_since: Some(imported_since),
            offset: rows.len(),
            limit,
        };
        let page = ctx
            .nextengine
            .order_rows(&tenant.id, &query)
            .await
            .map_err(|e| ne_error_text(&e))?;
        let n = page.len();
        rows.extend(page);
        if n < limit {
            return Ok(rows);
        }
    }
}

fn ne_error_text(e: &NeError) -> String {
    match e {
        NeError::Token { .. } => format!(
            "ネクストエンジンの受注の取得中にトークンのエラーが発生しました。管理画面のトークンの再取得欄で「再取得」をクリックしてください ({e})"
        ),
        _ => format!("ネクストエンジンから受注を取得できませんでした(次回再試行します): {e}"),
    }
}

/// Rows per 伝票番号, in 伝票番号 order. A row read twice (an overlap between
/// pages) counts once. Orders NextEngine received before the switch-on are
/// dropped here too, whatever the server filtered.
fn group_orders(rows: Vec<NeOrderRow>, imported_since: NaiveDateTime) -> Vec<NeOrder> {
    let mut orders: BTreeMap<(u64, String), NeOrder> = BTreeMap::new();
    for row in rows {
        let id = row.receive_order_id.trim().to_string();
        if id.is_empty() {
            continue;
        }
        let order = orders.entry(order_key(&id)).or_insert_with(|| NeOrder {
            receive_order_id: id.clone(),
            shop_order_no: row.shop_order_no.clone(),
            cancel_type_id: row.cancel_type_id.clone(),
            import_date: row.import_date,
            rows: BTreeMap::new(),
        });
        // Header fields of the most recently modified row win.
        let newer = order
            .rows
            .values()
            .filter_map(|r| r.last_modified_newest)
            .max()
            .is_none_or(|t| row.last_modified_newest.is_some_and(|n| n >= t));
        if newer {
            order.cancel_type_id = row.cancel_type_id.clone();
            order.shop_order_no = row.shop_order_no.clone();
            order.import_date = row.import_date.or(order.import_date);
        }
        order.rows.insert(row.row_no.trim().to_string(), row);
    }
    orders
        .into_values()
        .filter(|o| o.import_date.is_none_or(|d| d >= imported_since))
        .collect()
}

async fn product_map(ctx: &Context, tenant: &Tenant) -> Result<ProductMap, StoreError> {
    let source = match tenant.mapping_mode {
        MappingMode::ProductId => return Ok(ProductMap::Identity),
        MappingMode::ProductCode => PairSource::ProductCode,
        MappingMode::Table => PairSource::Table,
    };
    let pairs = ctx.storage.product_pairs(&tenant.id, source).await?;
    Ok(ProductMap::for_mode(tenant.mapping_mode, pairs))
}

/// Settles one order. `Err` only for what stops the whole run (Smaregi
/// unreachable or refusing the credentials, storage down).
async fn process_order(
    ctx: &Context,
    tenant: &Tenant,
    creds: &SmaregiCredentials,
    store_id: &str,
    map: &ProductMap,
    order: &NeOrder,
    owner: &str,
) -> Result<(), RunError> {
    let store_err = |e: StoreError| format!("保存に失敗しました: {e}");
    let existing = ctx
        .storage
        .order_record(&tenant.id, &order.receive_order_id)
        .await
        .map_err(store_err)?;
    match existing {
        None => {
            let lines = order.goods_lines();
            if !order.is_valid() || lines.is_empty() {
                // Never imported and nothing to ship: nothing to remember either.
                return Ok(());
            }
            let mut record = OrderImportRecord {
                tenant_id: tenant.id.clone(),
                receive_order_id: order.receive_order_id.clone(),
                shop_order_no: order.shop_order_no.clone(),
                state: OrderImportState::Started,
                shipment_token: shipment_token(&tenant.id, &order.receive_order_id),
                lines: lines.clone(),
                updated_at: ctx.clock.now(),
                reported: false,
                owner: Some(owner.to_string()),
            };
            if let Err(reason) = shipment_lines(map, &lines) {
                record.state = OrderImportState::Failed { reason };
                return put_new(ctx, &record).await;
            }
            match ctx.storage.put_order_record(&record, None).await {
                Ok(()) => {}
                // Another run took it; its record decides.
                Err(StoreError::Conflict(_)) => return Ok(()),
                Err(e) => return Err(store_err(e)),
            }
            ship(ctx, tenant, creds, store_id, map, record).await?;
            cancel_if_needed(ctx, tenant, order).await
        }
        Some(record) if record.state == OrderImportState::Started => {
            // A crash (or a lost answer) after `Started`: the lookup inside `ship`
            // adopts a shipment that was made. A cancelled order that was never
            // shipped stays `Started`, shipping nothing.
            let found = find_shipment(ctx, creds, &record.receive_order_id).await?;
            if found.is_none() && !order.is_valid() {
                return Ok(());
            }
            ship(ctx, tenant, creds, store_id, map, record).await?;
            cancel_if_needed(ctx, tenant, order).await
        }
        Some(_) => cancel_if_needed(ctx, tenant, order).await,
    }
}

async fn put_new(ctx: &Context, record: &OrderImportRecord) -> Result<(), RunError> {
    match ctx.storage.put_order_record(record, None).await {
        Ok(()) | Err(StoreError::Conflict(_)) => Ok(()),
        Err(e) => Err(format!("保存に失敗しました: {e}")),
    }
}

/// An imported order NextEngine cancelled: reported once, not reversed (the
/// report asks the operator to cancel the shipment in Smaregi).
async fn cancel_if_needed(ctx: &Context, tenant: &Tenant, order: &NeOrder) -> Result<(), RunError> {
    if order.is_valid() {
        return Ok(());
    }
    let Some(record) = ctx
        .storage
        .order_record(&tenant.id, &order.receive_order_id)
        .await
        .map_err(|e| format!("保存に失敗しました: {e}"))?
    else {
        return Ok(());
    };
    let OrderImportState::Imported { shipment_id } = &record.state else {
        return Ok(());
    };
    let cancelled = OrderImportRecord {
        state: OrderImportState::CancelledAfterImport {
            shipment_id: shipment_id.clone(),
        },
        updated_at: ctx.clock.now(),
        reported: false,
        ..record.clone()
    };
    match ctx
        .storage
        .put_order_record(&cancelled, Some(record.state.tag()))
        .await
    {
        Ok(()) | Err(StoreError::Conflict(_)) => Ok(()),
        Err(e) => Err(format!("保存に失敗しました: {e}")),
    }
}

/// Whether a `shipment_upd` refusal is about the order itself: it names one of
/// the order's products, or a field of its detail rows (the API's own names,
/// `productId` / `quantity`, reference §1.7), not the header or the setting.
fn names_order_data(message: &str, shipment: &NewShipment) -> bool {
    shipment
        .lines
        .iter()
        .any(|(product_id, _)| message.contains(product_id.as_str()))
        || ["productId", "quantity"]
            .iter()
            .any(|f| message.contains(f))
}

/// goods code × quantity → Smaregi product id × quantity, one row per product.
fn shipment_lines(map: &ProductMap, lines: &[(String, i64)]) -> Result<Vec<(String, i64)>, String> {
    let mut unmapped = Vec::new();
    let mut out: BTreeMap<String, i64> = BTreeMap::new();
    for (goods_code, quantity) in lines {
        if *quantity < 0 {
            return Err(format!(
                "商品コード {goods_code} の受注数がマイナスです ({quantity})"
            ));
        }
        match map.product_id(goods_code) {
            Some(product_id) if !product_id.is_empty() => {
                *out.entry(product_id.to_string()).or_default() += quantity
            }
            _ => unmapped.push(goods_code.as_str()),
        }
    }
    if !unmapped.is_empty() {
        return Err(format!(
            "スマレジの商品に対応付けられない商品コードがあります: {}",
            unmapped.join(", ")
        ));
    }
    Ok(out.into_iter().filter(|(_, q)| *q > 0).collect())
}

async fn find_shipment(
    ctx: &Context,
    creds: &SmaregiCredentials,
    receive_order_id: &str,
) -> Result<Option<String>, RunError> {
    let found = ctx
        .smaregi
        .shipments_by_identification(creds, receive_order_id)
        .await
        .map_err(|e| smaregi_run_error(&e))?;
    Ok(found
        .into_iter()
        .find(|s| s.division.trim() == "0" && !s.shipment_id.is_empty())
        .map(|s| s.shipment_id))
}

fn smaregi_run_error(e: &SmaregiError) -> RunError {
    match e {
        SmaregiError::Auth { .. } => format!(
            "スマレジAPIの認証に失敗しました。スマレジアクセストークンと機能設定(17.出荷情報更新・24.出荷情報取得)を確認し、管理画面で受注数取り込みを設定し直してください ({e})"
        ),
        _ => format!("スマレジに接続できませんでした(次回再試行します): {e}"),
    }
}

/// `Started` → `Imported` (or `Failed` when Smaregi rejects the shipment).
async fn ship(
    ctx: &Context,
    tenant: &Tenant,
    creds: &SmaregiCredentials,
    store_id: &str,
    map: &ProductMap,
    record: OrderImportRecord,
) -> Result<(), RunError> {
    let settle = |state: OrderImportState| {
        let record = OrderImportRecord {
            state,
            updated_at: ctx.clock.now(),
            reported: false,
            ..record.clone()
        };
        async move {
            match ctx.storage.put_order_record(&record, Some("started")).await {
                Ok(()) | Err(StoreError::Conflict(_)) => Ok(()),
                Err(e) => Err(format!("保存に失敗しました: {e}")),
            }
        }
    };
    if let Some(shipment_id) = find_shipment(ctx, creds, &record.receive_order_id).await? {
        return settle(OrderImportState::Imported { shipment_id }).await;
    }
    let lines = match shipment_lines(map, &record.lines) {
        Ok(lines) if !lines.is_empty() => lines,
        Ok(_) => {
            return settle(OrderImportState::Failed {
                reason: "出荷する数量がありません".into(),
            })
            .await;
        }
        Err(reason) => return settle(OrderImportState::Failed { reason }).await,
    };
    let shipment = NewShipment {
        store_id: store_id.to_string(),
        recipient_name: tenant.name.chars().take(RECIPIENT_NAME_MAX).collect(),
        shipment_date: to_jst(ctx.clock.now()).date(),
        identification_no: record.receive_order_id.clone(),
        memo: format!(
            "ネクストエンジン 伝票番号:{} 受注番号:{}",
            record.receive_order_id, record.shop_order_no
        )
        .chars()
        .take(MEMO_MAX)
        .collect(),
        token: record.shipment_token.clone(),
        lines,
        is_return: false,
    };
    match ctx.smaregi.create_shipment(creds, &shipment).await {
        Ok(Some(shipment_id)) => settle(OrderImportState::Imported { shipment_id }).await,
        // Smaregi skipped the token: an earlier attempt went through.
        Ok(None) => match find_shipment(ctx, creds, &record.receive_order_id).await? {
            Some(shipment_id) => settle(OrderImportState::Imported { shipment_id }).await,
            None => {
                settle(OrderImportState::Failed {
                    reason: "スマレジが登録済みとして処理しましたが、該当する出荷が見つかりません。スマレジ管理画面で出荷を確認してください".into(),
                })
                .await
            }
        },
        // Final only when Smaregi names the order's own data: a retry would meet
        // the same refusal, and the operator registers the order by hand.
        Err(SmaregiError::Api { code, message }) if names_order_data(&message, &shipment) => {
            settle(OrderImportState::Failed {
                reason: format!("スマレジが出荷登録を受け付けませんでした ({code}): {message}"),
            })
            .await
        }
        // Anything else (a code never seen, the store, a function switched off) is
        // about the setting, not this order: the run stops, `Started` stays, and
        // the order is shipped once the setting is mended.
        Err(SmaregiError::Api { code, message }) => Err(format!(
            "スマレジが出荷登録を受け付けませんでした ({code}): {message}。受注の内容ではなく設定の問題と考えられるため、受注は登録せずに取り込みを止めています。スマレジAPI設定の機能設定「17.出荷情報更新」が「利用する」か、取り込み先スマレジ側店舗IDが正しいかを確認してください"
        )),
        // Unknown outcome or refused credentials: `Started` stays, and the next
        // run looks the shipment up before anything else.
        Err(e) => Err(smaregi_run_error(&e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: &str, no: &str, goods: &str, qty: i64, at: &str) -> NeOrderRow {
        NeOrderRow {
            receive_order_id: id.into(),
            shop_id: "1".into(),
            shop_order_no: format!("S-{id}"),
            order_date: None,
            import_date: parse_api_time("2026-01-01 10:00:00"),
            cancel_type_id: "0".into(),
            order_status_id: "2".into(),
            row_no: no.into(),
            goods_id: goods.into(),
            goods_name: String::new(),
            quantity: qty,
            row_cancelled: false,
            row_deleted: false,
            last_modified_newest: parse_api_time(at),
        }
    }

    #[test]
    fn whitespace_is_removed_from_pasted_values() {
        assert_eq!(clean(" abc\r\n\tdef\u{3000}"), "abcdef");
    }

    #[test]
    fn tokens_are_stable_and_distinct() {
        let t = TenantId("t_a".into());
        assert_eq!(shipment_token(&t, "1"), shipment_token(&t, "1"));
        assert_ne!(shipment_token(&t, "1"), shipment_token(&t, "2"));
        assert_ne!(
            shipment_token(&t, "1"),
            shipment_token(&TenantId("t_b".into()), "1")
        );
        assert_eq!(shipment_token(&t, "1").len(), 32);
    }

    #[test]
    fn rows_group_per_order_and_live_rows_sum_per_goods() {
        let mut cancelled = row("2", "3", "A", 5, "2026-01-01 10:00:00");
        cancelled.row_cancelled = true;
        let mut deleted = row("2", "4", "B", 5, "2026-01-01 10:00:00");
        deleted.row_deleted = true;
        let old = {
            let mut r = row("3", "1", "A", 1, "2026-01-01 10:00:00");
            r.import_date = parse_api_time("2025-12-31 23:59:59");
            r
        };
        let since = parse_api_time("2026-01-01 00:00:00").unwrap();
        let orders = group_orders(
            vec![
                row("10", "1", "A", 1, "2026-01-01 10:00:00"),
                row("2", "1", "A", 1, "2026-01-01 10:00:00"),
                row("2", "2", "A", 2, "2026-01-01 10:00:00"),
                row("2", "2", "A", 2, "2026-01-01 10:00:00"),
                cancelled,
                deleted,
                old,
            ],
            since,
        );
        let ids: Vec<_> = orders.iter().map(|o| o.receive_order_id.as_str()).collect();
        assert_eq!(ids, ["2", "10"]);
        assert_eq!(orders[0].goods_lines(), vec![("A".to_string(), 3)]);
    }

    #[test]
    fn mapping_sums_per_product_and_names_unmapped_codes() {
        let map = ProductMap::for_mode(
            MappingMode::Table,
            [
                ("1".to_string(), "A".to_string()),
                ("2".to_string(), "B".to_string()),
            ],
        );
        assert_eq!(
            shipment_lines(&map, &[("A".into(), 1), ("B".into(), 2)]).unwrap(),
            vec![("1".to_string(), 1), ("2".to_string(), 2)]
        );
        let err = shipment_lines(&map, &[("A".into(), 1), ("X".into(), 1)]).unwrap_err();
        assert!(err.contains('X'), "{err}");
    }
}
