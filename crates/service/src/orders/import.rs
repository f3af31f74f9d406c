//! The import job: NextEngine web orders become Smaregi 出荷, exactly once, one
//! run per tenant at a time.

use super::report::unreported_section;
use crate::Context;
use crate::cursors::{CursorValue, Lease, ORDER_IMPORT_LEASE, ORDER_ROWS_MODIFIED, Update};
use crate::wording;
use chrono::{Duration as ChronoDuration, NaiveDateTime, SubsecRound};
use sne_domain::TenantId;
use sne_domain::mapping::ProductMap;
use sne_domain::orders::{NeOrder, group_orders, shipment_lines, shipment_token};
use sne_domain::report::OrderSection;
use sne_domain::tenant::{MappingMode, SmaregiCredentials, Tenant};
use sne_domain::time::to_jst;
use sne_ports::nextengine::{NeError, NeOrderRow, OrderRowQuery};
use sne_ports::smaregi::{NewShipment, SmaregiError};
use sne_ports::{OrderImportRecord, OrderImportState, PairSource, StoreError};

/// NextEngine's rows are read again from this long before the cursor: a row
/// written with an earlier timestamp than a concurrent read (or shifted between
/// two pages) is still seen. Re-reading is harmless.
const CURSOR_OVERLAP_MINUTES: i64 = 10;
/// 受取先名 (recipientName) is at most 85 characters.
const RECIPIENT_NAME_MAX: usize = 85;
const MEMO_MAX: usize = 1000;

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

pub async fn import_orders(
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
                error: Some(wording::order_import_not_begun(e)),
                ..OrderSection::default()
            });
        }
    };
    let mut lease = lease;
    let error = import_under_lease(ctx, tenant, options, &mut lease)
        .await
        .err();
    lease.release(ctx).await;
    if let Some(e) = &error {
        tracing::warn!(tenant = %tenant.id, error = %e, "order import stopped");
    }
    let mut section = match unreported_section(ctx, &tenant.id).await {
        Ok(section) => section,
        Err(e) => OrderSection {
            error: Some(wording::order_records_unreadable(e)),
            ..OrderSection::default()
        },
    };
    if section.error.is_none() {
        section.error = error.map(|e| e.to_string());
    }
    Some(section)
}

/// Why a run stopped: nothing after it may be attempted, the cursor stays. The
/// texts are the report's (operator Japanese), worded in `crate::wording`.
#[derive(Debug, thiserror::Error)]
enum RunError {
    #[error("{}", wording::order_import_store_failed(.0))]
    Store(#[from] StoreError),
    #[error("{}", wording::ORDER_IMPORT_NO_CREDENTIALS)]
    NoCredentials,
    #[error("{}", wording::ORDER_IMPORT_NO_STORE)]
    NoStore,
    #[error("{}", wording::ORDER_IMPORT_NO_START_DATE)]
    NoStartDate,
    #[error("{}", wording::ORDER_IMPORT_NEEDS_STOCK_HISTORY)]
    HistoryRequired,
    #[error("{}", wording::ORDER_IMPORT_LEASE_LOST)]
    LeaseLost,
    #[error("{}", wording::order_import_nextengine_token(.0))]
    NextEngineToken(NeError),
    #[error("{}", wording::order_import_nextengine_unreachable(.0))]
    NextEngine(NeError),
    #[error("{}", wording::order_import_smaregi_auth(.0))]
    SmaregiAuth(SmaregiError),
    #[error("{}", wording::order_import_smaregi_unreachable(.0))]
    Smaregi(SmaregiError),
    #[error("{}", wording::order_import_shipment_setting(.code, .message))]
    ShipmentSetting { code: String, message: String },
}

impl From<NeError> for RunError {
    fn from(e: NeError) -> Self {
        match e {
            NeError::Token { .. } => RunError::NextEngineToken(e),
            e => RunError::NextEngine(e),
        }
    }
}

impl From<SmaregiError> for RunError {
    fn from(e: SmaregiError) -> Self {
        match e {
            SmaregiError::Auth { .. } => RunError::SmaregiAuth(e),
            e => RunError::Smaregi(e),
        }
    }
}

impl From<crate::cursors::CursorError> for RunError {
    fn from(e: crate::cursors::CursorError) -> Self {
        RunError::Store(e.into())
    }
}

/// One import run per tenant at a time, across processes: a compare-and-set
/// lease in the cursor store, renewed after every order. Only the holder touches
/// `Started` records, so a `Started` record of another owner is always one whose
/// run died (its lease ran out) and is resolved, never a run still in progress.
struct ImportLease {
    tenant: TenantId,
    held: Lease,
}

impl ImportLease {
    fn lease(ctx: &Context, owner: &str) -> Lease {
        Lease {
            owner: owner.to_string(),
            until: ctx.clock.now()
                + ChronoDuration::from_std(ctx.config.order_import_lease)
                    .unwrap_or(ChronoDuration::minutes(15)),
        }
    }

    async fn acquire(
        ctx: &Context,
        tenant: &TenantId,
        owner: &str,
    ) -> Result<Option<ImportLease>, StoreError> {
        let now = ctx.clock.now();
        let mine = Self::lease(ctx, owner);
        // One read for both the check and the swap: a lease taken between two
        // reads would be overwritten while it runs. An unreadable lease holds
        // nobody and is taken over like an expired one.
        let raw = ctx.storage.cursor(tenant, ORDER_IMPORT_LEASE.name).await?;
        let current = raw.as_deref().and_then(Lease::decode);
        if current.as_ref().is_some_and(|l| l.is_live(now)) {
            return Ok(None);
        }
        let won = ctx
            .storage
            .set_cursor(
                tenant,
                ORDER_IMPORT_LEASE.name,
                raw.as_deref(),
                &mine.encode(),
            )
            .await?;
        Ok(won.then(|| ImportLease {
            tenant: tenant.clone(),
            held: mine,
        }))
    }

    fn owner(&self) -> &str {
        &self.held.owner
    }

    /// False when the lease was lost (another run took it over after it ran out).
    async fn renew(&mut self, ctx: &Context) -> Result<(), RunError> {
        let next = Self::lease(ctx, &self.held.owner);
        match ORDER_IMPORT_LEASE
            .swap(ctx, &self.tenant, Some(&self.held), Some(&next))
            .await
        {
            Ok(true) => {
                self.held = next;
                Ok(())
            }
            Ok(false) => Err(RunError::LeaseLost),
            Err(e) => Err(e.into()),
        }
    }

    async fn release(self, ctx: &Context) {
        if let Err(e) = ORDER_IMPORT_LEASE
            .swap(ctx, &self.tenant, Some(&self.held), None)
            .await
        {
            tracing::warn!(tenant = %self.tenant, error = %e, "order import lease not released; it runs out");
        }
    }
}

async fn import_under_lease(
    ctx: &Context,
    tenant: &Tenant,
    options: &ImportOptions,
    lease: &mut ImportLease,
) -> Result<(), RunError> {
    let Some(creds) = tenant.smaregi_api.clone() else {
        return Err(RunError::NoCredentials);
    };
    let Some(store_id) = tenant.order_import.store_id.clone() else {
        return Err(RunError::NoStore);
    };
    let Some(enabled_at) = tenant.order_import.enabled_at else {
        return Err(RunError::NoStartDate);
    };
    let imported_since = to_jst(enabled_at).trunc_subsecs(0);

    let cursor = ORDER_ROWS_MODIFIED.read(ctx, &tenant.id).await?;
    let modified_since = cursor.map(|t| t - ChronoDuration::minutes(CURSOR_OVERLAP_MINUTES));

    // Reading changes from StockHistory is what keeps our own 出荷 out of
    // NextEngine whatever the push shape (README-orders.md): without it a push
    // carrying only the stock after would upload the shipment as a sale.
    let history_on = crate::stock_history::history_mode(ctx, &tenant.id)
        .await
        .map_err(|e| RunError::Store(StoreError::Unavailable(e.to_string())))?
        .on_since()
        .is_some();
    if !history_on {
        return Err(RunError::HistoryRequired);
    }
    let rows = fetch_rows(ctx, tenant, modified_since, imported_since, options).await?;
    let newest = rows.iter().filter_map(|r| r.last_modified_newest).max();
    let orders = group_orders(rows, imported_since);
    let map = product_map(ctx, tenant).await?;
    for order in orders {
        process_order(ctx, tenant, &creds, &store_id, &map, &order, lease.owner()).await?;
        lease.renew(ctx).await?;
    }
    // Only now: every order read in this run is settled.
    // Never backwards: a slower run that read less leaves a newer cursor alone.
    if let Some(newest) = newest {
        ORDER_ROWS_MODIFIED
            .update(ctx, &tenant.id, |current| match current {
                Some(current) if *current >= newest => Update::Keep,
                _ => Update::Set(newest),
            })
            .await?;
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
        let page = ctx.nextengine.order_rows(&tenant.id, &query).await?;
        let n = page.len();
        rows.extend(page);
        if n < limit {
            return Ok(rows);
        }
    }
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
    let existing = ctx
        .storage
        .order_record(&tenant.id, &order.receive_order_id)
        .await?;
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
                Err(e) => return Err(e.into()),
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
        Err(e) => Err(e.into()),
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
        .await?
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
        Err(e) => Err(e.into()),
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

async fn find_shipment(
    ctx: &Context,
    creds: &SmaregiCredentials,
    receive_order_id: &str,
) -> Result<Option<String>, RunError> {
    let found = ctx
        .smaregi
        .shipments_by_identification(creds, receive_order_id)
        .await?;
    Ok(found
        .into_iter()
        .find(|s| s.division.trim() == "0" && !s.shipment_id.is_empty())
        .map(|s| s.shipment_id))
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
            match ctx
                .storage
                .put_order_record(&record, Some(OrderImportState::Started.tag()))
                .await
            {
                Ok(()) | Err(StoreError::Conflict(_)) => Ok(()),
                Err(e) => Err(e.into()),
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
                reason: wording::ORDER_NOTHING_TO_SHIP.into(),
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
        memo: wording::shipment_memo(&record.receive_order_id, &record.shop_order_no)
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
                    reason: wording::ORDER_SHIPMENT_SKIPPED_BUT_MISSING.into(),
                })
                .await
            }
        },
        // Final only when Smaregi names the order's own data: a retry would meet
        // the same refusal, and the operator registers the order by hand.
        Err(SmaregiError::Api { code, message }) if names_order_data(&message, &shipment) => {
            settle(OrderImportState::Failed {
                reason: wording::order_shipment_refused(code, message),
            })
            .await
        }
        // Anything else (a code never seen, the store, a function switched off) is
        // about the setting, not this order: the run stops, `Started` stays, and
        // the order is shipped once the setting is mended.
        Err(SmaregiError::Api { code, message }) => {
            Err(RunError::ShipmentSetting { code, message })
        }
        // Unknown outcome or refused credentials: `Started` stays, and the next
        // run looks the shipment up before anything else.
        Err(e) => Err(e.into()),
    }
}
