//! Reading Smaregi's `StockHistory` (design.md §3's preferred intake): the tenant's
//! history periods (its 在庫変動履歴 setting), switching reading on and off, and
//! appending history rows to the ledger, each once by its history id.

use crate::Core;
use crate::cursors::{CursorError, LEGACY_STOCK_HISTORY_MODE, STOCK_HISTORY_ID, Update};
use crate::wording;
use chrono::{DateTime, Utc};
use sne_domain::change::ChangeSource;
use sne_domain::history_mode::{HistoryMode, HistorySource};
use sne_domain::tenant::Tenant;
use sne_domain::{StockChange, TenantId};
use sne_ports::StoreError;
use sne_ports::nextengine::NeError;
use sne_ports::smaregi::SmaregiError;

/// Rounds of the tenant's compare-and-set before a switch reports it as contended.
const SWITCH_ROUNDS: usize = 10;

/// The tenant's stock-history periods, from the tenant record as it is now: a
/// run's or a page's copy of the tenant may predate a switch, and building with
/// a mode older than the switch would count a change twice. A failed read is an
/// error, never "off": taking it for "off" would count signal pushes as changes
/// a second time.
pub async fn history_mode(ctx: &Core, tenant: &TenantId) -> Result<HistoryMode, NeError> {
    let current = ctx
        .storage
        .tenant(tenant)
        .await
        .map_err(NeError::Store)?
        .ok_or_else(|| NeError::Store(StoreError::NotFound(format!("tenant {tenant}"))))?;
    mode_of(ctx, &current)
        .await
        .map_err(|e| NeError::Store(e.into()))
}

/// The periods a tenant record holds; a record from before the setting moved
/// into it holds none and reads the legacy cursor (until its next switch).
async fn mode_of(ctx: &Core, tenant: &Tenant) -> Result<HistoryMode, CursorError> {
    if !tenant.stock_history.periods.is_empty() {
        return Ok(tenant.stock_history.clone());
    }
    Ok(LEGACY_STOCK_HISTORY_MODE
        .read(ctx, &tenant.id)
        .await?
        .unwrap_or_default())
}

/// Since when the tenant's changes come from Smaregi's `StockHistory`; `None`
/// when they do not (or the mode cannot be read: the screens then recommend it).
pub async fn history_mode_since(ctx: &Core, tenant: &Tenant) -> Option<DateTime<Utc>> {
    tenant.smaregi_api.as_ref()?;
    history_mode(ctx, &tenant.id).await.ok()?.on_since()
}

#[derive(Debug, thiserror::Error)]
pub enum HistoryModeError {
    #[error("{}", wording::STOCK_HISTORY_NO_CREDENTIALS)]
    NoCredentials,
    #[error("{}", wording::stock_history_not_permitted(.0))]
    Smaregi(#[from] sne_ports::smaregi::SmaregiError),
    #[error("{}", wording::STOCK_HISTORY_NEEDED_BY_ORDER_IMPORT)]
    NeededByOrderImport,
    #[error("{}", wording::STOCK_HISTORY_NEEDED_BY_PLATFORM)]
    NeededByPlatform,
    #[error("{}", wording::STOCK_HISTORY_NO_CURSOR)]
    NoCursor,
    #[error(transparent)]
    Store(#[from] sne_ports::StoreError),
}

impl From<CursorError> for HistoryModeError {
    fn from(e: CursorError) -> Self {
        HistoryModeError::Store(e.into())
    }
}

/// Switches reading Smaregi's `StockHistory` on or off (design.md §3's preferred path).
///
/// Switching on reads the newest history id first and counts every change after
/// it from history; pushes received from this moment on are only signals, pushes
/// received before it are still completed as pushes. Switching off first reads
/// history up to now, since the pushes of those changes were only signals. A
/// change made in the seconds around a switch whose push arrives late could fall
/// on the wrong side, which is why operators switch at a quiet moment (README).
pub async fn set_history_mode(
    ctx: &Core,
    tenant: &Tenant,
    on: bool,
) -> Result<String, HistoryModeError> {
    let tenant = ctx
        .storage
        .tenant(&tenant.id)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("tenant {}", tenant.id)))?;
    let creds = tenant.smaregi_api.as_ref();
    let mode = mode_of(ctx, &tenant).await?;
    if !on {
        // Switching history off from the Platform intake would count pushes
        // again with no boundary; the way back is the intake switch.
        if mode.reader() == Some(HistorySource::Platform) {
            return Err(HistoryModeError::NeededByPlatform);
        }
        if tenant.order_import.enabled && mode.on_since().is_some() {
            return Err(HistoryModeError::NeededByOrderImport);
        }
        if mode.on_since().is_some()
            && let Some(creds) = creds
        {
            collect_history(ctx, &tenant, creds).await?;
        }
        let at = ctx.clock.now();
        save_mode(ctx, &tenant.id, |mode| mode.switched_off(at)).await?;
        return Ok(wording::STOCK_HISTORY_STOPPED.into());
    }
    let creds = creds.ok_or(HistoryModeError::NoCredentials)?;
    if mode.on_since().is_some() {
        return Ok(wording::STOCK_HISTORY_ALREADY_ON.into());
    }
    let since = ctx.clock.now();
    let latest = ctx
        .smaregi
        .latest_stock_history_id(creds)
        .await?
        .unwrap_or(0);
    STOCK_HISTORY_ID
        .update(ctx, &tenant.id, |_| Update::Set(latest))
        .await?;
    save_mode(ctx, &tenant.id, |mode| mode.switched_on(since)).await?;
    Ok(wording::stock_history_started(latest))
}

/// Writes `switch` of the current periods into the tenant record, reading again
/// after a concurrent settings write; then retires the legacy cursor, which the
/// record's periods now supersede.
pub(crate) async fn save_mode(
    ctx: &Core,
    tenant: &TenantId,
    switch: impl Fn(HistoryMode) -> HistoryMode,
) -> Result<(), HistoryModeError> {
    for _ in 0..SWITCH_ROUNDS {
        let mut current = ctx
            .storage
            .tenant(tenant)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("tenant {tenant}")))?;
        current.stock_history = switch(mode_of(ctx, &current).await?);
        match ctx.storage.update_tenant(&current).await {
            Ok(_) => {
                if let Err(e) = LEGACY_STOCK_HISTORY_MODE
                    .update(ctx, tenant, |_| Update::Clear)
                    .await
                {
                    tracing::warn!(%tenant, error = %e, "legacy history-mode cursor not cleared (the tenant record wins)");
                }
                return Ok(());
            }
            Err(StoreError::Conflict(_)) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(StoreError::Conflict(format!("tenant {tenant} kept changing")).into())
}

/// Reads Smaregi's `StockHistory` into the ledger when the tenant chose to, and
/// returns the tenant's history periods, which decide which pushes are only
/// signals. A history that cannot be read is a notice for the report (the
/// changes wait for the next run); a mode that cannot be read is an error, and
/// nothing may be built without it.
pub async fn read_into_ledger(
    ctx: &Core,
    tenant: &Tenant,
    notices: &mut Vec<String>,
) -> Result<HistoryMode, NeError> {
    let mode = history_mode(ctx, &tenant.id).await?;
    if mode.reader() == Some(HistorySource::Platform) {
        if let Err(e) = crate::platform::backfill(ctx, tenant).await {
            notices.push(platform_notice(e));
        }
        return Ok(mode);
    }
    if let (Some(_), Some(creds)) = (mode.on_since(), &tenant.smaregi_api)
        && let Err(e) = collect_history(ctx, tenant, creds).await
    {
        notices.push(match e {
            // Refused credentials or a function switched off: retrying alone never
            // helps, the operator has to look (reference: smaregi-api.md, Update
            // "Error codes" — only code 14 is attested).
            HistoryModeError::Smaregi(SmaregiError::Auth { .. }) => {
                wording::stock_history_refused_notice(e)
            }
            e => wording::stock_history_unread_notice(e),
        });
    }
    Ok(mode)
}

/// A Platform intake that could not be read, for the report: refusals need
/// the operator, the rest are retried by the next run.
pub fn platform_notice(e: crate::platform::intake::PlatformError) -> String {
    use crate::platform::intake::PlatformError;
    match e {
        PlatformError::Smaregi(SmaregiError::Auth { .. }) => wording::platform_refused_notice(e),
        PlatformError::Suspended | PlatformError::NoWatermark | PlatformError::NotYetVisible(_) => {
            e.to_string()
        }
        e => wording::platform_unread_notice(e),
    }
}

/// Appends Smaregi `StockHistory` rows newer than the cursor to the ledger. The
/// dedupe key is the history id, so reading a row twice changes nothing and the
/// cursor may lag safely behind the ledger.
pub(crate) async fn collect_history(
    ctx: &Core,
    tenant: &Tenant,
    creds: &sne_domain::tenant::SmaregiCredentials,
) -> Result<(), HistoryModeError> {
    let Ok(Some(after_id)) = STOCK_HISTORY_ID.read(ctx, &tenant.id).await else {
        return Err(HistoryModeError::NoCursor);
    };
    let rows = ctx
        .smaregi
        .stock_history_after(creds, after_id, ctx.config.max_history_rows)
        .await?;
    let Some(max_id) = rows.iter().filter_map(|r| r.history_id).max() else {
        return Ok(());
    };
    let received_at = ctx.clock.now();
    // The service's own Platform-API writes come back in history too.
    let own = crate::platform::intake::own_writes(ctx, tenant).await?;
    let changes: Vec<StockChange> = rows
        .into_iter()
        .filter(|row| row.history_id.is_none_or(|id| !own.contains(&id)))
        .map(|row| StockChange {
            dedupe_key: format!("h:{}", row.history_id.unwrap_or_default()),
            source: ChangeSource::History,
            row,
            received_at,
        })
        .collect();
    ctx.storage.append_changes(&tenant.id, &changes).await?;
    // Never backwards: a reader that lost the race only reads some rows again.
    STOCK_HISTORY_ID
        .update(ctx, &tenant.id, |current| match current {
            Some(current) if *current >= max_id => Update::Keep,
            _ => Update::Set(max_id),
        })
        .await?;
    Ok(())
}
