//! The batcher: pending ledger changes → one frozen file. Claim (under a build
//! lease), complete from the stock mirror, map to goods codes, apply the
//! manual's rules, park what NextEngine does not know, and freeze the lines with
//! the mirror updates in one atomic step, so every later attempt sends the same
//! bytes.

use crate::Context;
use crate::sections::UploadError;
use chrono::Duration as ChronoDuration;
use sne_domain::batch::plan_batch;
use sne_domain::complete::{StockKey, complete};
use sne_domain::history_mode::HistoryMode;
use sne_domain::mapping::ProductMap;
use sne_domain::report::{ParkReason, ParkedLine};
use sne_domain::tenant::{MappingMode, Tenant};
use sne_domain::upload_csv::csv_key;
use sne_domain::{GoodsCode, ProductId, StockChange};
use sne_ports::nextengine::NeError;
use sne_ports::{BuiltContent, ClaimRequest, PairSource, UploadBatch};
use std::collections::HashSet;

/// Claims the pending changes (at most a file's row cap), completes them, applies
/// the rules and freezes the file with the mirror it used, in one atomic step.
/// `None` when nothing is pending or another run is building; an `Empty` batch
/// when every change was parked or had no effect.
pub async fn freeze_next(
    ctx: &Context,
    tenant: &Tenant,
    run_id: &str,
    mode: &HistoryMode,
    notices: &mut Vec<String>,
) -> Result<Option<UploadBatch>, UploadError> {
    let store = &ctx.storage;
    let now = ctx.clock.now();
    let claim = ClaimRequest {
        new_batch_id: new_id("b_"),
        owner: run_id.to_string(),
        now,
        lease_until: now
            + ChronoDuration::from_std(ctx.config.build_lease)
                .unwrap_or(ChronoDuration::minutes(5)),
        // Every file row is a goods code of at least one change, so fewer
        // changes than the row cap keep the file within it.
        max_changes: ctx
            .config
            .max_changes_per_batch
            .min(ctx.config.max_rows_per_file)
            .max(1),
    };
    let Some(claimed) = store
        .claim_batch(&tenant.id, &claim)
        .await
        .map_err(UploadError::store(None))?
    else {
        return Ok(None);
    };
    let batch_id = claimed.batch_id.clone();
    // Platform webhooks carry only ids: read the changes first. If Smaregi
    // cannot answer, the claim goes back and the next run tries again.
    let mut resolve_notes = Vec::new();
    let claimed_count = claimed.changes.len();
    let changes = match crate::platform::resolve_unresolved(
        ctx,
        tenant,
        claimed.changes,
        &mut resolve_notes,
        true,
    )
    .await
    {
        Ok(changes) => changes,
        Err(e) => {
            let _ = store
                .release_claim(&tenant.id, &claim, ctx.clock.now())
                .await;
            notices.push(crate::stock_history::platform_notice(e));
            return Ok(None);
        }
    };
    let content = match build_content(
        ctx,
        tenant,
        &batch_id,
        &changes,
        claimed_count,
        resolve_notes,
        mode,
        notices,
    )
    .await
    {
        Ok(content) => content,
        Err(e) => {
            // If the hand-back fails too, the lease runs out and a later run
            // takes the batch over with its changes.
            let _ = store
                .release_claim(&tenant.id, &claim, ctx.clock.now())
                .await;
            return Err(UploadError::next_engine(&batch_id)(e));
        }
    };
    let batch = store
        .finish_build(&tenant.id, &batch_id, run_id, &content)
        .await
        .map_err(UploadError::store(Some(&batch_id)))?;
    Ok(Some(batch))
}

/// Completes, maps and checks the claimed changes; returns what gets frozen.
#[allow(clippy::too_many_arguments)]
async fn build_content(
    ctx: &Context,
    tenant: &Tenant,
    batch_id: &str,
    changes: &[StockChange],
    claimed_count: usize,
    resolve_notes: Vec<String>,
    mode: &HistoryMode,
    notices: &mut Vec<String>,
) -> Result<BuiltContent, NeError> {
    let store_err = NeError::Store;
    // Pushes received while history was read are only signals: the history rows
    // carry every change exactly once.
    let rows: Vec<_> = changes
        .iter()
        .filter(|c| !mode.is_signal(c))
        .map(|c| c.row.clone())
        .collect();
    let keys: Vec<StockKey> = rows
        .iter()
        .map(StockKey::of)
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    let mirror = ctx
        .storage
        .mirror(&tenant.id, &keys)
        .await
        .map_err(store_err)?;
    let completion = complete(&rows, &mirror);
    let map = product_map(ctx, tenant, &completion.changes).await?;
    let mut plan = plan_batch(
        tenant.stock_master,
        tenant.counted_stores.as_deref(),
        &map,
        &completion.changes,
    );
    let codes: Vec<GoodsCode> = plan.lines.iter().map(|l| l.goods_code.clone()).collect();
    let known = if codes.is_empty() {
        HashSet::new()
    } else {
        ctx.nextengine.existing_goods(&tenant.id, &codes).await?
    };
    let (lines, unknown): (Vec<_>, Vec<_>) = plan
        .lines
        .into_iter()
        .partition(|l| known.contains(&l.goods_code));
    plan.parked.extend(unknown.into_iter().map(|l| ParkedLine {
        goods_code: l.goods_code.into(),
        delta: l.delta,
        reason: ParkReason::NotRegistered,
    }));
    let mut notes = resolve_notes;
    notes.extend(completion.notes.iter().map(|n| n.describe()));
    if plan.changes_of_other_stores > 0 {
        notes.push(crate::wording::other_stores_not_notified(
            plan.changes_of_other_stores,
        ));
    }
    notices.extend(notes.iter().cloned());
    Ok(BuiltContent {
        csv_key: (!lines.is_empty()).then(|| csv_key(&tenant.id, batch_id, ctx.clock.now())),
        lines,
        parked: plan.parked,
        notes,
        change_count: claimed_count,
        mirror_updates: completion.mirror_updates,
        at: ctx.clock.now(),
        oldest_change_at: changes.iter().map(|c| c.received_at).min(),
    })
}

async fn product_map(
    ctx: &Context,
    tenant: &Tenant,
    changes: &[sne_domain::change::CompletedChange],
) -> Result<ProductMap, NeError> {
    let store_err = NeError::Store;
    match tenant.mapping_mode {
        MappingMode::ProductId => Ok(ProductMap::Identity),
        MappingMode::Table => {
            let pairs = ctx
                .storage
                .product_pairs(&tenant.id, PairSource::Table)
                .await
                .map_err(store_err)?;
            Ok(ProductMap::for_mode(MappingMode::Table, pairs))
        }
        MappingMode::ProductCode => {
            let mut pairs = ctx
                .storage
                .product_pairs(&tenant.id, PairSource::ProductCode)
                .await
                .map_err(store_err)?;
            let cached: HashSet<&str> = pairs.iter().map(|p| p.product_id.as_str()).collect();
            let missing: Vec<ProductId> = changes
                .iter()
                .map(|c| c.product_id.clone())
                .filter(|p| !cached.contains(p.as_str()))
                .collect::<HashSet<_>>()
                .into_iter()
                .collect();
            if let (false, Some(creds)) = (missing.is_empty(), &tenant.smaregi_api) {
                match ctx.smaregi.product_codes(creds, &missing).await {
                    Ok(found) => {
                        ctx.storage
                            .put_product_pairs(&tenant.id, PairSource::ProductCode, &found, false)
                            .await
                            .map_err(store_err)?;
                        pairs.extend(found);
                    }
                    // Unmapped products are parked and reported; the rest still goes up.
                    Err(e) => tracing::warn!(tenant = %tenant.id, error = %e, "product_ref failed"),
                }
            }
            Ok(ProductMap::for_mode(MappingMode::ProductCode, pairs))
        }
    }
}

fn new_id(prefix: &str) -> String {
    format!("{prefix}{}", uuid::Uuid::new_v4().simple())
}
