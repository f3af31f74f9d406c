//! The drift radar (design.md §9): compare Smaregi's stock with NextEngine's,
//! explain every difference that remains once what is in flight is counted,
//! and align them with one frozen file, once per check (「揃える」).
//!
//! A check reads, in order: the tenant's history rows into the ledger (when it
//! reads history), what is in flight, Smaregi's `Stock`, NextEngine's stock and
//! the web orders the import has not shipped. Any change landing between those
//! reads would look like drift, so the goods that differ are read a second time
//! and only a difference seen twice alike is reported. The check writes nothing
//! but its own record (a blob and the `drift_latest` cursor) and, in history
//! mode, the history rows an upload run would have read anyway: it never holds
//! a tenant's lease, so it never blocks an upload.

use crate::cursors::{Cursor, ORDER_ROWS_MODIFIED};
use crate::run::{Mailing, TenantRun};
use crate::wording;
use crate::{AdminContext, Context, Core};
use chrono::{DateTime, Duration as ChronoDuration, Utc};
use sne_domain::batch::plan_batch;
use sne_domain::batch_state::BatchState;
use sne_domain::complete::{StockKey, complete};
use sne_domain::drift::{
    DriftCheck, DriftLine, Evidence, InFlight, NeFigures, SmaregiStock, WebOrders, compare,
    confirm, drift_csv_file_name, explain, render_drift_csv, smaregi_by_goods,
};
use sne_domain::history_mode::HistoryMode;
use sne_domain::mapping::ProductMap;
use sne_domain::orders::{OrderImportState, group_orders};
use sne_domain::report::{
    DriftSection, ParkReason, PreviousSection, QueueOutcome, RunReport, UploadSection,
};
use sne_domain::row_application::unapplied_lines;
use sne_domain::tenant::{MappingMode, StockMaster, Tenant};
use sne_domain::time::to_jst;
use sne_domain::upload_batch::alignment_batch_id;
use sne_domain::upload_csv::{UploadLine, csv_key};
use sne_domain::{GoodsCode, ProductId, StockChange, StoreId, TenantId};
use sne_ports::nextengine::{NeError, OrderRowQuery, QueueStatus};
use sne_ports::smaregi::SmaregiError;
use sne_ports::{OutboxReport, PairSource, StoreError, StoredAttachment, UploadBatch};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

/// The newest check of a tenant: the only one 「揃える」 may apply.
pub const DRIFT_LATEST: Cursor<String> = Cursor::new("drift_latest");

/// A check older than this is not applied: NextEngine may have moved since.
pub const ALIGN_WITHIN: ChronoDuration = ChronoDuration::hours(1);

/// The order import re-reads rows this far behind its cursor; the check asks
/// for the same rows, so no order between two imports is missed.
const ORDER_ROWS_OVERLAP: ChronoDuration = ChronoDuration::minutes(10);
/// Import records read for orders the import started but has not finished.
const STARTED_ORDERS_READ: usize = 1000;
/// Recent files looked at for failed rows and parked goods.
const RECENT_FILES_READ: usize = 200;
const ORDER_PAGE: usize = 1000;

#[derive(Debug, thiserror::Error)]
pub enum DriftError {
    #[error("{}", wording::DRIFT_NO_SMAREGI_API)]
    NoSmaregiApi,
    #[error("{}", wording::drift_smaregi_failed(.0))]
    Smaregi(#[from] SmaregiError),
    #[error("{}", wording::drift_nextengine_failed(.0))]
    NextEngine(#[from] NeError),
    #[error("{}", wording::drift_store_failed(.0))]
    Store(#[from] StoreError),
    #[error("{}", wording::platform_unread_notice(.0))]
    Platform(String),
}

impl From<crate::cursors::CursorError> for DriftError {
    fn from(e: crate::cursors::CursorError) -> Self {
        DriftError::Store(e.into())
    }
}

/// What one reading saw.
struct Reading {
    rows: Vec<SmaregiStock>,
    smaregi: BTreeMap<GoodsCode, i64>,
    unmapped_products: usize,
    set_goods: HashSet<GoodsCode>,
    lines: Vec<DriftLine>,
}

/// Compares the tenant's stock and stores the check as the tenant's latest.
pub async fn check_drift(core: &Core, tenant: &Tenant) -> Result<DriftCheck, DriftError> {
    let creds = tenant
        .smaregi_api
        .as_ref()
        .ok_or(DriftError::NoSmaregiApi)?;
    let checked_at = core.clock.now();
    let mut notices = Vec::new();
    let mode = crate::stock_history::read_into_ledger(core, tenant, &mut notices).await?;
    let stores = counted_store_ids(core, tenant, creds).await?;
    let first = read_once(core, tenant, creds, &stores, &mode, None).await?;
    let candidates: BTreeSet<GoodsCode> =
        first.lines.iter().map(|l| l.goods_code.clone()).collect();
    let (mut lines, unsettled, second) = if candidates.is_empty() {
        (Vec::new(), Vec::new(), first)
    } else {
        let second = read_once(core, tenant, creds, &stores, &mode, Some(&candidates)).await?;
        let (kept, moved) = confirm(&first.lines, second.lines.clone());
        (kept, moved, second)
    };
    let map = product_map(core, tenant, products(&second.rows)).await?;
    let evidence = evidence(core, tenant, &lines, &second.rows).await?;
    explain(&mut lines, &evidence, &second.rows, &map);
    let check = DriftCheck {
        id: format!(
            "d{}-{}",
            to_jst(checked_at).format("%Y%m%d%H%M%S"),
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        ),
        tenant_id: tenant.id.clone(),
        checked_at,
        master: tenant.stock_master,
        goods_compared: second
            .smaregi
            .keys()
            .filter(|c| !second.set_goods.contains(*c))
            .count(),
        set_goods_skipped: second.set_goods.len(),
        unmapped_products: second.unmapped_products,
        unsettled,
        lines,
    };
    store_check(core, &check).await?;
    tracing::info!(tenant = %tenant.id, check = %check.id, goods = check.goods_compared,
        lines = check.lines.len(), unsettled = check.unsettled.len(), "drift check done");
    Ok(check)
}

/// One reading of every figure; `only` narrows NextEngine's side to those goods
/// (the second reading), Smaregi's is read whole either way.
async fn read_once(
    core: &Core,
    tenant: &Tenant,
    creds: &sne_domain::tenant::SmaregiCredentials,
    stores: &[StoreId],
    mode: &HistoryMode,
    only: Option<&BTreeSet<GoodsCode>>,
) -> Result<Reading, DriftError> {
    let in_flight = in_flight(core, tenant, mode).await?;
    let rows: Vec<SmaregiStock> = core
        .smaregi
        .stock_of_stores(creds, stores)
        .await?
        .into_iter()
        .map(|s| SmaregiStock {
            store_id: s.store_id,
            product_id: s.product_id,
            amount: s.amount,
        })
        .collect();
    let map = product_map(core, tenant, products(&rows)).await?;
    let (mut smaregi, unmapped_products) =
        smaregi_by_goods(tenant.counted_stores.as_deref(), &map, &rows);
    if let Some(only) = only {
        smaregi.retain(|code, _| only.contains(code));
    }
    let codes: Vec<GoodsCode> = smaregi.keys().cloned().collect();
    let set_goods = if codes.is_empty() {
        HashSet::new()
    } else {
        core.nextengine.set_goods(&tenant.id, &codes).await?
    };
    smaregi.retain(|code, _| !set_goods.contains(code));
    let codes: Vec<GoodsCode> = smaregi.keys().cloned().collect();
    let nextengine: HashMap<GoodsCode, NeFigures> = if codes.is_empty() {
        HashMap::new()
    } else {
        core.nextengine
            .goods_stock(&tenant.id, &codes)
            .await?
            .into_iter()
            .map(|g| {
                (
                    g.goods_code,
                    NeFigures {
                        stock: g.stock,
                        allocated: g.allocated,
                        free: g.free,
                    },
                )
            })
            .collect()
    };
    let web_orders = web_orders(core, tenant, &map).await?;
    let lines = compare(
        tenant.stock_master,
        &smaregi,
        &nextengine,
        &in_flight,
        &web_orders,
    );
    Ok(Reading {
        rows,
        smaregi,
        unmapped_products,
        set_goods,
        lines,
    })
}

async fn counted_store_ids(
    core: &Core,
    tenant: &Tenant,
    creds: &sne_domain::tenant::SmaregiCredentials,
) -> Result<Vec<StoreId>, DriftError> {
    Ok(match &tenant.counted_stores {
        Some(stores) => stores.iter().map(|s| StoreId::from(s.as_str())).collect(),
        None => core
            .smaregi
            .stores(creds)
            .await?
            .into_iter()
            .map(|s| StoreId::from(s.store_id))
            .collect(),
    })
}

/// The tenant's mapping over every product of `rows`; in 商品コード mode the
/// codes not cached yet are looked up and cached, as the batcher does.
async fn product_map(
    core: &Core,
    tenant: &Tenant,
    products: BTreeSet<ProductId>,
) -> Result<ProductMap, DriftError> {
    let source = match tenant.mapping_mode {
        MappingMode::ProductId => return Ok(ProductMap::Identity),
        MappingMode::Table => PairSource::Table,
        MappingMode::ProductCode => PairSource::ProductCode,
    };
    let mut pairs = core.storage.product_pairs(&tenant.id, source).await?;
    if let (MappingMode::ProductCode, Some(creds)) = (tenant.mapping_mode, &tenant.smaregi_api) {
        let cached: HashSet<&str> = pairs.iter().map(|p| p.product_id.as_str()).collect();
        let missing: Vec<ProductId> = products
            .into_iter()
            .filter(|p| !cached.contains(p.as_str()))
            .collect();
        if !missing.is_empty() {
            let found = core.smaregi.product_codes(creds, &missing).await?;
            core.storage
                .put_product_pairs(&tenant.id, PairSource::ProductCode, &found, false)
                .await?;
            pairs.extend(found);
        }
    }
    Ok(ProductMap::for_mode(tenant.mapping_mode, pairs))
}

fn products(rows: &[SmaregiStock]) -> BTreeSet<ProductId> {
    rows.iter().map(|r| r.product_id.clone()).collect()
}

/// The deltas on their way: pending changes as the batcher will turn them into
/// lines (the same completion, mapping and rules), the lines of unfinished
/// files, and the files whose outcome is unknown.
async fn in_flight(
    core: &Core,
    tenant: &Tenant,
    mode: &HistoryMode,
) -> Result<InFlight, DriftError> {
    let mut flight = InFlight::default();
    let mut pending: Vec<StockChange> = core.storage.pending_change_list(&tenant.id).await?;
    // A file being built still holds its changes, not its lines.
    for batch in core
        .storage
        .batches_in_state(&tenant.id, BatchState::Building)
        .await?
    {
        pending.extend(
            core.storage
                .changes_of_batch(&tenant.id, &batch.batch_id)
                .await?,
        );
    }
    // Webhook entries carry only ids; what they change is read as the
    // batcher would (a change Smaregi no longer has changes nothing).
    let pending =
        crate::platform::resolve_unresolved(core, tenant, pending, &mut Vec::new(), false)
            .await
            .map_err(|e| DriftError::Platform(e.to_string()))?;
    for (code, delta) in pending_deltas(core, tenant, mode, &pending).await? {
        *flight.pending.entry(code).or_default() += delta;
    }
    let mut uploaded = Vec::new();
    for state in [
        BatchState::Built,
        BatchState::Uploading,
        BatchState::Uploaded,
        BatchState::NeedsAttention,
    ] {
        for batch in core.storage.batches_in_state(&tenant.id, state).await? {
            match state {
                BatchState::Uploaded => uploaded.push(batch),
                // Sent or not, nobody knows yet: no correction of its goods.
                BatchState::Uploading | BatchState::NeedsAttention => add_held(&mut flight, &batch),
                _ => add_file(&mut flight, &batch),
            }
        }
    }
    // An uploaded file whose queue NextEngine finished is in NextEngine's
    // stock already, though the checker has not recorded it yet.
    let que_ids: Vec<_> = uploaded.iter().filter_map(|b| b.que_id.clone()).collect();
    let status: HashMap<_, _> = if que_ids.is_empty() {
        HashMap::new()
    } else {
        core.nextengine
            .queues_by_id(&tenant.id, &que_ids)
            .await?
            .into_iter()
            .map(|q| (q.que_id, q.status))
            .collect()
    };
    for batch in &uploaded {
        match batch.que_id.as_ref().and_then(|q| status.get(q)) {
            Some(QueueStatus::Done) => {}
            // Applied in part or not at all: the checker will tell which rows.
            Some(QueueStatus::Failed) => add_held(&mut flight, batch),
            _ => add_file(&mut flight, batch),
        }
    }
    Ok(flight)
}

fn add_file(flight: &mut InFlight, batch: &UploadBatch) {
    for line in &batch.lines {
        *flight.files.entry(line.goods_code.clone()).or_default() += line.delta;
        flight
            .file_ids
            .entry(line.goods_code.clone())
            .or_default()
            .insert(batch.batch_id.clone());
    }
}

fn add_held(flight: &mut InFlight, batch: &UploadBatch) {
    add_file(flight, batch);
    for line in &batch.lines {
        flight
            .held
            .entry(line.goods_code.clone())
            .or_default()
            .insert(batch.batch_id.clone());
    }
}

async fn pending_deltas(
    core: &Core,
    tenant: &Tenant,
    mode: &HistoryMode,
    changes: &[StockChange],
) -> Result<Vec<(GoodsCode, i64)>, DriftError> {
    let rows: Vec<_> = changes
        .iter()
        .filter(|c| !mode.is_signal(c))
        .map(|c| c.row.clone())
        .collect();
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let keys: Vec<StockKey> = rows
        .iter()
        .map(StockKey::of)
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    let mirror = core.storage.mirror(&tenant.id, &keys).await?;
    let completion = complete(&rows, &mirror);
    let changed = completion
        .changes
        .iter()
        .map(|c| c.product_id.clone())
        .collect();
    let map = product_map(core, tenant, changed).await?;
    let plan = plan_batch(
        tenant.stock_master,
        tenant.counted_stores.as_deref(),
        &map,
        &completion.changes,
    );
    // Parked lines never reach NextEngine, so they are not in flight.
    Ok(plan
        .lines
        .into_iter()
        .map(|l| (l.goods_code, l.delta))
        .collect())
}

/// The web orders NextEngine holds that Smaregi has not been told of.
async fn web_orders(
    core: &Core,
    tenant: &Tenant,
    map: &ProductMap,
) -> Result<WebOrders, DriftError> {
    let settings = &tenant.order_import;
    let Some(enabled_at) = settings.enabled_at.filter(|_| settings.enabled) else {
        return Ok(WebOrders::NotImported);
    };
    let mut by_order: BTreeMap<String, Vec<(String, i64)>> = BTreeMap::new();
    for record in core
        .storage
        .order_records(&tenant.id, STARTED_ORDERS_READ)
        .await?
    {
        if record.state == OrderImportState::Started {
            by_order.insert(record.receive_order_id.clone(), record.lines.clone());
        }
    }
    let since = ORDER_ROWS_MODIFIED
        .read(core, &tenant.id)
        .await?
        .map(|c| c - ORDER_ROWS_OVERLAP);
    let imported_since = to_jst(enabled_at);
    let mut rows = Vec::new();
    loop {
        let query = OrderRowQuery {
            modified_since: since,
            imported_since: Some(imported_since),
            offset: rows.len(),
            limit: ORDER_PAGE,
        };
        let page = core.nextengine.order_rows(&tenant.id, &query).await?;
        let n = page.len();
        rows.extend(page);
        if n < ORDER_PAGE {
            break;
        }
    }
    for order in group_orders(rows, imported_since) {
        if by_order.contains_key(&order.receive_order_id) || !order.is_valid() {
            continue;
        }
        if core
            .storage
            .order_record(&tenant.id, &order.receive_order_id)
            .await?
            .is_none()
        {
            by_order.insert(order.receive_order_id.clone(), order.goods_lines());
        }
    }
    let mut unshipped: BTreeMap<GoodsCode, i64> = BTreeMap::new();
    for (code, quantity) in by_order.into_values().flatten() {
        // Goods the import cannot map never become a Smaregi shipment either.
        if map.product_id(&code).is_some() {
            *unshipped.entry(GoodsCode::from(code)).or_default() += quantity;
        }
    }
    Ok(WebOrders::Unshipped(unshipped))
}

/// What the service's own records say about the goods of `lines`.
async fn evidence(
    core: &Core,
    tenant: &Tenant,
    lines: &[DriftLine],
    rows: &[SmaregiStock],
) -> Result<Evidence, DriftError> {
    let mut evidence = Evidence::default();
    if lines.is_empty() {
        return Ok(evidence);
    }
    let wanted: HashSet<&GoodsCode> = lines.iter().map(|l| &l.goods_code).collect();
    for batch in core
        .storage
        .recent_batches(&tenant.id, RECENT_FILES_READ)
        .await?
    {
        for line in &batch.lines {
            evidence.ever_uploaded.insert(line.goods_code.clone());
        }
        for parked in &batch.parked {
            if parked.reason == ParkReason::NotRegistered {
                evidence
                    .parked_unregistered
                    .insert(GoodsCode::from(parked.goods_code.as_str()));
            }
        }
        if batch.state == BatchState::Failed
            && batch.follow_up.is_none()
            && let Some(QueueOutcome::Failed { rows, .. }) = &batch.outcome
        {
            for line in unapplied_lines(rows, true) {
                evidence
                    .failed_rows
                    .entry(line.goods_code)
                    .or_default()
                    .insert(batch.batch_id.clone());
            }
        }
    }
    let map = product_map(core, tenant, products(rows)).await?;
    let keys: Vec<StockKey> = rows
        .iter()
        .filter(|r| {
            map.goods_code(r.product_id.as_str())
                .is_some_and(|c| wanted.contains(&GoodsCode::from(c)))
        })
        .map(|r| StockKey::new(r.store_id.clone(), r.product_id.clone()))
        .collect();
    for (key, entry) in core.storage.mirror(&tenant.id, &keys).await? {
        evidence
            .mirror
            .insert((key.store_id, key.product_id), entry.stock);
    }
    Ok(evidence)
}

fn check_key(tenant: &TenantId, id: &str) -> String {
    format!("tenants/{tenant}/drift/{id}.json")
}

fn csv_blob_key(tenant: &TenantId, id: &str) -> String {
    format!("tenants/{tenant}/drift/{id}.csv")
}

async fn store_check(core: &Core, check: &DriftCheck) -> Result<(), DriftError> {
    let json = serde_json::to_vec(check).expect("a drift check serialises");
    core.blobs
        .put_blob(
            &check_key(&check.tenant_id, &check.id),
            &json,
            "application/json",
        )
        .await?;
    core.blobs
        .put_blob(
            &csv_blob_key(&check.tenant_id, &check.id),
            &render_drift_csv(check),
            "text/csv",
        )
        .await?;
    DRIFT_LATEST
        .update(core, &check.tenant_id, |_| {
            crate::cursors::Update::Set(check.id.clone())
        })
        .await?;
    Ok(())
}

/// A stored check of the tenant.
pub async fn check_by_id(
    core: &Core,
    tenant: &TenantId,
    id: &str,
) -> Result<Option<DriftCheck>, DriftError> {
    // Ids are ours; anything else never names a blob.
    if !id.starts_with('d') || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        return Ok(None);
    }
    let Some(bytes) = core.blobs.get_blob(&check_key(tenant, id)).await? else {
        return Ok(None);
    };
    let check: DriftCheck = serde_json::from_slice(&bytes)
        .map_err(|e| StoreError::Unavailable(format!("drift check {id} unreadable: {e}")))?;
    Ok((check.tenant_id == *tenant).then_some(check))
}

pub async fn latest_check(
    core: &Core,
    tenant: &TenantId,
) -> Result<Option<DriftCheck>, DriftError> {
    match DRIFT_LATEST.read(core, tenant).await? {
        Some(id) => check_by_id(core, tenant, &id).await,
        None => Ok(None),
    }
}

/// The CSV of a stored check, for the admin screen's download.
pub async fn check_csv(
    core: &Core,
    tenant: &TenantId,
    id: &str,
) -> Result<Option<Vec<u8>>, DriftError> {
    if check_by_id(core, tenant, id).await?.is_none() {
        return Ok(None);
    }
    Ok(core.blobs.get_blob(&csv_blob_key(tenant, id)).await?)
}

/// A drift check as a run: the check, its report with the 「在庫差異」 section
/// and the CSV attached, mailed like any run's report.
pub async fn run_drift(
    ctx: &Context,
    tenant: &Tenant,
    run_id: &str,
    mailing: Mailing,
) -> TenantRun {
    let outcome = check_drift(ctx, tenant).await;
    let (section, attachment) = match &outcome {
        Ok(check) => {
            let file = (!check.lines.is_empty()).then(|| StoredAttachment {
                file_name: drift_csv_file_name(check),
                content_type: "text/csv".into(),
                blob_key: csv_blob_key(&tenant.id, &check.id),
            });
            (
                DriftSection::of(check, file.as_ref().map(|f| f.file_name.clone())),
                file,
            )
        }
        Err(e) => {
            tracing::warn!(tenant = %tenant.id, error = %e, "drift check failed");
            (
                DriftSection::Failed {
                    reason: e.to_string(),
                },
                None,
            )
        }
    };
    let report = RunReport {
        tenant_name: tenant.name.clone(),
        run_at: ctx.clock.now(),
        upload: UploadSection::Nothing { parked: vec![] },
        previous: PreviousSection::Nothing,
        orders: None,
        notices: vec![],
        drift: Some(section),
    };
    let rendered = report.render();
    let id = format!("{run_id}-{}-drift", tenant.id);
    let stored = ctx
        .storage
        .enqueue_report(&OutboxReport {
            id: id.clone(),
            tenant_id: tenant.id.clone(),
            created_at: ctx.clock.now(),
            to: tenant.notify_emails.clone(),
            subject: rendered.subject,
            body: rendered.body,
            attachments: attachment.into_iter().collect(),
            sent_at: None,
            attempts: 0,
            last_error: None,
            reported_batches: vec![],
            claim: None,
        })
        .await;
    let report_id = match stored {
        Ok(_) => Some(id),
        Err(e) => {
            tracing::error!(tenant = %tenant.id, error = %e, "drift report could not be stored");
            None
        }
    };
    let mail = match mailing {
        Mailing::Send => crate::reporter::send_pending(ctx, tenant).await,
        Mailing::Defer => Default::default(),
    };
    TenantRun {
        tenant: tenant.clone(),
        report,
        report_id,
        mail,
    }
}

/// Every tenant's drift check, one after another (the daily schedule).
pub async fn run_drift_all(ctx: &Context) -> anyhow::Result<Vec<TenantRun>> {
    let run_id = crate::run::new_run_id(ctx);
    let mut runs = Vec::new();
    for tenant in ctx.storage.list_tenants().await? {
        if tenant.smaregi_api.is_some() {
            runs.push(run_drift(ctx, &tenant, &run_id, Mailing::Send).await);
        }
    }
    Ok(runs)
}

#[derive(Debug, thiserror::Error)]
pub enum AlignError {
    #[error("{}", wording::drift_check_not_found(.0))]
    NotFound(String),
    #[error("{}", wording::DRIFT_NOT_LATEST)]
    NotLatest,
    #[error("{}", wording::DRIFT_TOO_OLD)]
    TooOld,
    #[error("{}", wording::DRIFT_REPORT_ONLY)]
    ReportOnly,
    #[error("{}", wording::DRIFT_NOTHING_TO_ALIGN)]
    NothingToAlign,
    #[error("{}", wording::drift_already_aligned(.0))]
    AlreadyAligned(String),
    #[error("{}", wording::drift_files_in_flight(.0.join(", ")))]
    FilesInFlight(Vec<String>),
    #[error("{}", wording::drift_store_failed(.0))]
    Store(StoreError),
    #[error("{0}")]
    Check(#[from] DriftError),
}

impl From<StoreError> for AlignError {
    fn from(e: StoreError) -> Self {
        AlignError::Store(e)
    }
}

/// What 「揃える」 would upload for a check, and why it may not.
#[derive(Debug, Clone)]
pub struct AlignPreview {
    pub check: DriftCheck,
    pub corrections: Vec<UploadLine>,
    /// Goods of the corrections with a file not finished now.
    pub in_flight: Vec<String>,
    pub refusal: Option<String>,
}

pub async fn preview_alignment(
    core: &Core,
    tenant: &Tenant,
    drift_id: &str,
) -> Result<AlignPreview, AlignError> {
    let check = check_by_id(core, &tenant.id, drift_id)
        .await?
        .ok_or_else(|| AlignError::NotFound(drift_id.to_string()))?;
    let corrections = check.corrections();
    let in_flight = goods_in_flight(core, &tenant.id, &corrections).await?;
    let refusal = refusal(core, tenant, &check, &corrections, &in_flight)
        .await
        .err()
        .map(|e| e.to_string());
    Ok(AlignPreview {
        check,
        corrections,
        in_flight,
        refusal,
    })
}

async fn refusal(
    core: &Core,
    tenant: &Tenant,
    check: &DriftCheck,
    corrections: &[UploadLine],
    in_flight: &[String],
) -> Result<(), AlignError> {
    if check.master == StockMaster::NextEngine || tenant.stock_master == StockMaster::NextEngine {
        return Err(AlignError::ReportOnly);
    }
    let batch_id = alignment_batch_id(&check.id);
    if core.storage.batch(&tenant.id, &batch_id).await?.is_some() {
        return Err(AlignError::AlreadyAligned(batch_id));
    }
    if DRIFT_LATEST
        .read(core, &tenant.id)
        .await
        .map_err(DriftError::from)?
        .as_deref()
        != Some(check.id.as_str())
    {
        return Err(AlignError::NotLatest);
    }
    if core.clock.now() - check.checked_at > ALIGN_WITHIN {
        return Err(AlignError::TooOld);
    }
    if corrections.is_empty() {
        return Err(AlignError::NothingToAlign);
    }
    if !in_flight.is_empty() {
        return Err(AlignError::FilesInFlight(in_flight.to_vec()));
    }
    Ok(())
}

/// Goods of `lines` that a file not yet finished carries.
async fn goods_in_flight(
    core: &Core,
    tenant: &TenantId,
    lines: &[UploadLine],
) -> Result<Vec<String>, StoreError> {
    let wanted: HashSet<&GoodsCode> = lines.iter().map(|l| &l.goods_code).collect();
    let mut found = BTreeSet::new();
    for state in [
        BatchState::Built,
        BatchState::Uploading,
        BatchState::Uploaded,
        BatchState::NeedsAttention,
    ] {
        for batch in core.storage.batches_in_state(tenant, state).await? {
            for line in batch
                .lines
                .iter()
                .filter(|l| wanted.contains(&l.goods_code))
            {
                found.insert(line.goods_code.to_string());
            }
        }
    }
    Ok(found.into_iter().collect())
}

/// 「揃える」: freezes the check's corrections as one file, which the next run
/// uploads through the same state machine as any other. Exactly once: the
/// batch id is the check's, and the store refuses a second file of that id.
pub async fn align(
    ctx: &AdminContext,
    tenant: &Tenant,
    drift_id: &str,
    by: &str,
) -> Result<UploadBatch, AlignError> {
    let preview = preview_alignment(ctx, tenant, drift_id).await?;
    refusal(
        ctx,
        tenant,
        &preview.check,
        &preview.corrections,
        &preview.in_flight,
    )
    .await?;
    let now = ctx.clock.now();
    let batch_id = alignment_batch_id(drift_id);
    let batch = UploadBatch::alignment(
        tenant.id.clone(),
        drift_id,
        preview.corrections,
        by,
        now,
        csv_key(&tenant.id, &batch_id, now),
    );
    match ctx.storage.freeze_batch(&tenant.id, &batch).await {
        Ok(()) => {}
        Err(StoreError::Conflict(_)) => return Err(AlignError::AlreadyAligned(batch_id)),
        Err(e) => return Err(e.into()),
    }
    tracing::info!(tenant = %tenant.id, check = %drift_id, batch = %batch_id,
        rows = batch.lines.len(), "drift corrections frozen");
    if let Err(e) = ctx.trigger.request_run(&tenant.id).await {
        tracing::warn!(tenant = %tenant.id, error = %e, "run not requested after an alignment");
    }
    Ok(batch)
}

/// The local process's daily check: every tenant's at `hour` o'clock Japan
/// time (on AWS an EventBridge schedule does this).
pub fn spawn_daily_drift(ctx: Context, hour: u32) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let now = ctx.clock.now();
            let wait = (sne_domain::drift::next_daily_at(now, hour) - now)
                .to_std()
                .unwrap_or_default();
            tokio::time::sleep(wait).await;
            match run_drift_all(&ctx).await {
                Ok(runs) => tracing::info!(tenants = runs.len(), "daily drift check done"),
                Err(e) => tracing::error!(error = %e, "daily drift check could not list tenants"),
            }
        }
    })
}

/// When the tenant's last check ran, for the dashboard.
pub async fn last_checked_at(core: &Core, tenant: &TenantId) -> Option<DateTime<Utc>> {
    latest_check(core, tenant)
        .await
        .ok()
        .flatten()
        .map(|c| c.checked_at)
}
