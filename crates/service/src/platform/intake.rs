//! Reading a Platform tenant's changes: the backfill (which pairs changed
//! since the watermark, and their changes) and the resolution of webhook ids
//! into rows, both dropping the service's own writes.

use crate::Core;
use crate::cursors::{
    CursorError, PLATFORM_BOUNDARY_ID, PLATFORM_CONTRACT, PLATFORM_MAX_ID, PLATFORM_OWN_WRITES,
    PLATFORM_WATERMARK, Update,
};
use crate::wording;
use chrono::{Duration, NaiveDateTime};
use sne_domain::change::{ChangeKind, ChangeRow, ChangeSource, StockChange};
use sne_domain::tenant::Tenant;
use sne_domain::time::to_jst;
use sne_domain::{ProductId, StoreId};
use sne_ports::StoreError;
use sne_ports::smaregi::SmaregiError;
use std::collections::{BTreeMap, BTreeSet, HashSet};

/// Each backfill asks again for this much before its watermark, and this
/// much past now: Smaregi's stock index may show a change a little late, and
/// its clock is not ours.
pub const BACKFILL_OVERLAP: Duration = Duration::minutes(10);
/// Most pairs one run reads; the rest wait for the next run, oldest first.
pub const MAX_PAIRS_PER_RUN: usize = 2000;
/// How long a webhook's change may stay invisible to `GET /stock/changes`
/// before it is given up as one Smaregi no longer has. Until then the file
/// waits: dropping it would lose it for good, since its ledger key is taken.
pub const RESOLVE_GRACE: Duration = Duration::minutes(10);
/// Own-write ids remembered (the newest).
const OWN_WRITES_KEPT: usize = 5000;

#[derive(Debug, thiserror::Error)]
pub enum PlatformError {
    #[error("{}", wording::PLATFORM_CONTRACT_SUSPENDED)]
    Suspended,
    #[error("{}", wording::PLATFORM_NO_WATERMARK)]
    NoWatermark,
    /// A webhook's change Smaregi does not show yet: it may become visible a
    /// moment later, so the file waits rather than drop it.
    #[error("{}", wording::platform_change_not_yet_visible(.0))]
    NotYetVisible(u64),
    #[error(transparent)]
    Smaregi(#[from] SmaregiError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<CursorError> for PlatformError {
    fn from(e: CursorError) -> Self {
        PlatformError::Store(e.into())
    }
}

/// The ledger key of a history id, shared by both intakes.
pub fn history_key(id: u64) -> String {
    format!("h:{id}")
}

/// A `pos:stock` entry as the webhook stores it.
pub fn unresolved_change(
    id: u64,
    product: ProductId,
    store: StoreId,
    received_at: chrono::DateTime<chrono::Utc>,
) -> StockChange {
    StockChange {
        dedupe_key: history_key(id),
        source: ChangeSource::Platform,
        row: ChangeRow {
            store_id: store,
            product_id: product,
            kind: ChangeKind::Unresolved,
            division: None,
            amount: None,
            after: None,
            changed_at: None,
            history_id: Some(id),
            from_store_id: None,
            to_store_id: None,
            layaway_stock_amount: None,
        },
        received_at,
    }
}

pub async fn contract_suspended(core: &Core, tenant: &Tenant) -> Result<bool, CursorError> {
    Ok(PLATFORM_CONTRACT
        .read(core, &tenant.id)
        .await?
        .is_some_and(|s| s.starts_with("suspended")))
}

pub async fn own_writes(core: &Core, tenant: &Tenant) -> Result<HashSet<u64>, CursorError> {
    Ok(PLATFORM_OWN_WRITES
        .read(core, &tenant.id)
        .await?
        .unwrap_or_default()
        .split(',')
        .filter_map(|id| id.trim().parse().ok())
        .collect())
}

/// Asks which pairs changed since the watermark (less the overlap) and reads
/// their changes above the boundary into the ledger, then moves the
/// watermark. Returns how many changes were new to the ledger.
pub async fn backfill(core: &Core, tenant: &Tenant) -> Result<usize, PlatformError> {
    if contract_suspended(core, tenant).await? {
        return Err(PlatformError::Suspended);
    }
    let Some(watermark) = PLATFORM_WATERMARK.read(core, &tenant.id).await? else {
        return Err(PlatformError::NoWatermark);
    };
    let contract = tenant.contract_id.as_str();
    let now = to_jst(core.clock.now());
    let from = watermark - BACKFILL_OVERLAP;
    // Asked past our "now" too, for a Smaregi clock ahead of ours; the
    // watermark only moves to our now.
    let to = now + BACKFILL_OVERLAP;
    let mut pairs = core.platform.changed_pairs(contract, from, to).await?;
    pairs.sort_by_key(|p| p.updated_at);
    let next_watermark = if pairs.len() > MAX_PAIRS_PER_RUN {
        pairs.truncate(MAX_PAIRS_PER_RUN);
        // The next run starts at the last pair read, and reads it again.
        pairs
            .last()
            .and_then(|p| p.updated_at)
            .unwrap_or(watermark)
            .max(watermark)
    } else {
        now
    };
    let boundary = PLATFORM_BOUNDARY_ID
        .read(core, &tenant.id)
        .await?
        .unwrap_or(0);
    let own = own_writes(core, tenant).await?;
    let received_at = core.clock.now();
    let mut changes = Vec::new();
    for pair in &pairs {
        let rows = core
            .platform
            .pair_changes(contract, &pair.product_id, &pair.store_id, boundary, from)
            .await?;
        changes.extend(
            rows.into_iter()
                .filter(|r| r.history_id.is_some_and(|id| !own.contains(&id)))
                .map(|row| StockChange {
                    dedupe_key: history_key(row.history_id.unwrap_or_default()),
                    source: ChangeSource::Platform,
                    row,
                    received_at,
                }),
        );
    }
    let appended = store_changes(core, tenant, &changes).await?;
    PLATFORM_WATERMARK
        .update(core, &tenant.id, |current| match current {
            Some(current) if *current >= next_watermark => Update::Keep,
            _ => Update::Set(next_watermark),
        })
        .await?;
    Ok(appended)
}

/// Appends Platform changes and remembers the newest id among them.
pub async fn store_changes(
    core: &Core,
    tenant: &Tenant,
    changes: &[StockChange],
) -> Result<usize, PlatformError> {
    if changes.is_empty() {
        return Ok(0);
    }
    let outcome = core.storage.append_changes(&tenant.id, changes).await?;
    if let Some(max) = changes.iter().filter_map(|c| c.row.history_id).max() {
        PLATFORM_MAX_ID
            .update(core, &tenant.id, |current| match current {
                Some(current) if *current >= max => Update::Keep,
                _ => Update::Set(max),
            })
            .await?;
    }
    Ok(outcome.appended)
}

/// The changes with every unresolved webhook entry read from Smaregi (same
/// ledger key, now with amount, stock after and division). An entry Smaregi
/// no longer has, and every change that is the service's own write, are left
/// out: the first with a note for the report, since it can no longer be counted.
///
/// `wait_for_recent`: a change received less than [`RESOLVE_GRACE`] ago that
/// Smaregi does not show is an error (the batcher hands its claim back and
/// tries again) instead of a note; the drift radar, which only looks, passes
/// `false`.
pub async fn resolve_unresolved(
    core: &Core,
    tenant: &Tenant,
    changes: Vec<StockChange>,
    notes: &mut Vec<String>,
    wait_for_recent: bool,
) -> Result<Vec<StockChange>, PlatformError> {
    let wanted: Wanted = changes
        .iter()
        .filter(|c| c.row.kind == ChangeKind::Unresolved)
        .fold(BTreeMap::new(), |mut m, c| {
            if let Some(id) = c.row.history_id {
                m.entry((c.row.product_id.clone(), c.row.store_id.clone()))
                    .or_default()
                    .insert(id);
            }
            m
        });
    let own = own_writes(core, tenant).await?;
    // An own write comes back through every path that carries its id: the
    // webhook, the backfill, a history-shaped push, StockHistory.
    let is_own = |c: &StockChange| c.row.history_id.is_some_and(|id| own.contains(&id));
    if wanted.is_empty() {
        return Ok(changes.into_iter().filter(|c| !is_own(c)).collect());
    }
    let rows = match read_through_platform(core, tenant, &wanted).await {
        Ok(rows) => rows,
        // A contract that ended leaves its last webhooks in the ledger; the
        // old API reads the same history ids, so they still resolve there.
        Err(PlatformError::Suspended | PlatformError::Smaregi(SmaregiError::Auth { .. }))
            if tenant.smaregi_api.is_some() =>
        {
            read_through_old_api(core, tenant, &wanted).await?
        }
        Err(e) => return Err(e),
    };
    let mut out = Vec::with_capacity(changes.len());
    for mut change in changes {
        let Some(id) = change.row.history_id else {
            out.push(change);
            continue;
        };
        if own.contains(&id) {
            continue;
        }
        if change.row.kind != ChangeKind::Unresolved {
            out.push(change);
            continue;
        }
        match rows.get(&id) {
            Some(row) => {
                change.row = row.clone();
                out.push(change);
            }
            None if wait_for_recent && core.clock.now() - change.received_at < RESOLVE_GRACE => {
                return Err(PlatformError::NotYetVisible(id));
            }
            None => notes.push(wording::platform_change_not_found(
                id,
                &change.row.product_id,
                &change.row.store_id,
            )),
        }
    }
    Ok(out)
}

type Wanted = BTreeMap<(ProductId, StoreId), BTreeSet<u64>>;

async fn read_through_platform(
    core: &Core,
    tenant: &Tenant,
    wanted: &Wanted,
) -> Result<BTreeMap<u64, ChangeRow>, PlatformError> {
    if contract_suspended(core, tenant).await? {
        return Err(PlatformError::Suspended);
    }
    let contract = tenant.contract_id.as_str();
    let mut rows = BTreeMap::new();
    for ((product, store), ids) in wanted {
        let mut each = ids.iter().copied();
        match (each.next(), each.next()) {
            (Some(only), None) => {
                if let Some(row) = core.platform.change(contract, product, store, only).await? {
                    rows.insert(only, row);
                }
            }
            (Some(lowest), Some(_)) => {
                let all = core
                    .platform
                    .pair_changes(
                        contract,
                        product,
                        store,
                        lowest.saturating_sub(1),
                        NaiveDateTime::MIN,
                    )
                    .await?;
                for row in all {
                    if let Some(id) = row.history_id.filter(|id| ids.contains(id)) {
                        rows.insert(id, row);
                    }
                }
            }
            _ => {}
        }
    }
    Ok(rows)
}

/// The same ids from the old API's `StockHistory`: each the first row above
/// its predecessor id.
async fn read_through_old_api(
    core: &Core,
    tenant: &Tenant,
    wanted: &Wanted,
) -> Result<BTreeMap<u64, ChangeRow>, PlatformError> {
    let Some(creds) = &tenant.smaregi_api else {
        return Ok(BTreeMap::new());
    };
    let mut rows = BTreeMap::new();
    for ids in wanted.values() {
        for &id in ids {
            let found = core
                .smaregi
                .stock_history_after(creds, id.saturating_sub(1), 1)
                .await?;
            if let Some(row) = found.into_iter().find(|r| r.history_id == Some(id)) {
                rows.insert(id, row);
            }
        }
    }
    Ok(rows)
}

/// Writes a relative stock change through the Platform API and remembers the
/// history id it recorded, so its `pos:stock` echo is never counted. A crash
/// between the write and the remembering would let the echo through once.
pub async fn write_stock(
    core: &Core,
    tenant: &Tenant,
    product: &ProductId,
    store: &StoreId,
    delta: i64,
    memo: &str,
) -> Result<u64, PlatformError> {
    let id = core
        .platform
        .add_stock(&tenant.contract_id, product, store, delta, memo)
        .await?;
    PLATFORM_OWN_WRITES
        .update(core, &tenant.id, |current| {
            let mut ids: Vec<&str> = current
                .map(|c| c.split(',').filter(|s| !s.is_empty()).collect())
                .unwrap_or_default();
            let text = id.to_string();
            ids.push(&text);
            let skip = ids.len().saturating_sub(OWN_WRITES_KEPT);
            Update::Set(ids[skip..].join(","))
        })
        .await?;
    Ok(id)
}
