//! Switching a tenant between the old intake (API送信 and `StockHistory`) and
//! the Platform intake at a history-id boundary.
//!
//! To the Platform API: the old intake reads history up to now first; the
//! newest id it read is the boundary, and the Platform intake reads only ids
//! above it. Back: the Platform intake reads up to now first, and the old
//! intake resumes at its cursor (or, for a tenant that began on the Platform
//! API, at the newest id the Platform intake read). Pushes stay signals across
//! the switch (the history periods meet), and a change read by both intakes is
//! one ledger key, so nothing is counted twice and nothing falls between.
//!
//! A tenant whose old intake counts pushes without history ids has no id to
//! draw the boundary at: it switches on stock-history reading first.

use super::intake::{PlatformError, backfill};
use crate::Core;
use crate::cursors::{
    PLATFORM_BOUNDARY_ID, PLATFORM_MAX_ID, PLATFORM_WATERMARK, STOCK_HISTORY_ID, Update,
};
use crate::stock_history::{HistoryModeError, collect_history, history_mode, save_mode};
use crate::wording;
use sne_domain::history_mode::HistorySource;
use sne_domain::tenant::Tenant;
use sne_domain::time::to_jst;
use sne_ports::StoreError;
use sne_ports::smaregi::SmaregiError;

#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    #[error("{}", wording::platform_contract_unusable(.0))]
    NoPlatformContract(SmaregiError),
    #[error("{}", wording::INTAKE_NEEDS_HISTORY_IDS)]
    NeedsHistoryIds,
    #[error("{}", wording::INTAKE_NEEDS_OLD_CREDENTIALS)]
    NoOldCredentials,
    #[error("{}", wording::intake_platform_unread(.0))]
    Platform(PlatformError),
    #[error(transparent)]
    History(#[from] HistoryModeError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<crate::cursors::CursorError> for IntakeError {
    fn from(e: crate::cursors::CursorError) -> Self {
        IntakeError::Store(e.into())
    }
}

pub async fn switch_intake(
    core: &Core,
    tenant: &Tenant,
    to: HistorySource,
) -> Result<String, IntakeError> {
    let tenant = core
        .storage
        .tenant(&tenant.id)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("tenant {}", tenant.id)))?;
    let mode = history_mode(core, &tenant.id)
        .await
        .map_err(|e| StoreError::Unavailable(e.to_string()))?;
    match to {
        HistorySource::Platform => to_platform(core, &tenant, mode.reader()).await,
        HistorySource::OldApi => to_old_api(core, &tenant, mode.reader()).await,
    }
}

async fn to_platform(
    core: &Core,
    tenant: &Tenant,
    reader: Option<HistorySource>,
) -> Result<String, IntakeError> {
    if reader == Some(HistorySource::Platform) {
        return Ok(wording::INTAKE_ALREADY_PLATFORM.into());
    }
    // Pushes without ids were counted; only a tenant that never had any
    // change may start on the Platform API without a boundary.
    if reader.is_none() && !is_new(core, tenant).await? {
        return Err(IntakeError::NeedsHistoryIds);
    }
    core.platform
        .check_contract(&tenant.contract_id)
        .await
        .map_err(IntakeError::NoPlatformContract)?;
    let boundary = match reader {
        Some(_) => {
            let creds = tenant
                .smaregi_api
                .as_ref()
                .ok_or(IntakeError::NoOldCredentials)?;
            collect_history(core, tenant, creds).await?;
            STOCK_HISTORY_ID.read(core, &tenant.id).await?.unwrap_or(0)
        }
        None => 0,
    };
    let now = core.clock.now();
    PLATFORM_BOUNDARY_ID
        .update(core, &tenant.id, |_| Update::Set(boundary))
        .await?;
    PLATFORM_WATERMARK
        .update(core, &tenant.id, |_| Update::Set(to_jst(now)))
        .await?;
    save_mode(core, &tenant.id, |mode| {
        mode.switched_on_via(HistorySource::Platform, now)
    })
    .await?;
    Ok(wording::intake_platform_started(boundary))
}

async fn to_old_api(
    core: &Core,
    tenant: &Tenant,
    reader: Option<HistorySource>,
) -> Result<String, IntakeError> {
    if reader != Some(HistorySource::Platform) {
        return Ok(wording::INTAKE_ALREADY_OLD_API.into());
    }
    let creds = tenant
        .smaregi_api
        .as_ref()
        .ok_or(IntakeError::NoOldCredentials)?;
    // The old API must answer before the Platform intake stops.
    core.smaregi
        .latest_stock_history_id(creds)
        .await
        .map_err(|e| IntakeError::History(HistoryModeError::Smaregi(e)))?;
    match backfill(core, tenant).await {
        // A contract that ended cannot be read; the old intake's resume
        // point below still covers its changes.
        Ok(_) | Err(PlatformError::Suspended) => {}
        Err(e) => return Err(IntakeError::Platform(e)),
    }
    let resume = match STOCK_HISTORY_ID.read(core, &tenant.id).await? {
        Some(cursor) => cursor,
        None => match PLATFORM_MAX_ID.read(core, &tenant.id).await? {
            Some(max) => max,
            None => PLATFORM_BOUNDARY_ID
                .read(core, &tenant.id)
                .await?
                .unwrap_or(0),
        },
    };
    STOCK_HISTORY_ID
        .update(core, &tenant.id, |_| Update::Set(resume))
        .await?;
    let now = core.clock.now();
    save_mode(core, &tenant.id, |mode| {
        mode.switched_on_via(HistorySource::OldApi, now)
    })
    .await?;
    Ok(wording::intake_old_api_started(resume))
}

async fn is_new(core: &Core, tenant: &Tenant) -> Result<bool, StoreError> {
    Ok(core.storage.pending_changes(&tenant.id).await? == 0
        && core.storage.recent_batches(&tenant.id, 1).await?.is_empty())
}

/// Where a tenant's changes come from now, for the CLI and the admin screen.
#[derive(Debug, Clone, serde::Serialize, PartialEq, Eq)]
pub struct IntakeState {
    /// `old_api` (API送信, and StockHistory when read) or `platform`.
    pub intake: &'static str,
    /// Whether history is read at all (pushes are then only signals).
    pub history: bool,
    /// Platform: ids up to this one came through the old intake.
    pub boundary_id: Option<u64>,
    /// Platform: the backfill has read changes up to this time (JST).
    pub watermark: Option<String>,
    /// Old API: the newest `StockHistory` id read.
    pub old_api_cursor: Option<u64>,
    /// The app's contract as the last confirmed notification left it.
    pub platform_contract: Option<String>,
}

pub async fn intake_state(
    core: &Core,
    tenant: &sne_domain::TenantId,
) -> Result<IntakeState, IntakeError> {
    let mode = history_mode(core, tenant)
        .await
        .map_err(|e| StoreError::Unavailable(e.to_string()))?;
    let platform = mode.reader() == Some(HistorySource::Platform);
    Ok(IntakeState {
        intake: if platform { "platform" } else { "old_api" },
        history: mode.reader().is_some(),
        boundary_id: PLATFORM_BOUNDARY_ID.read(core, tenant).await?,
        watermark: PLATFORM_WATERMARK
            .read(core, tenant)
            .await?
            .map(|t| t.format(sne_domain::time::API_FORMAT).to_string()),
        old_api_cursor: STOCK_HISTORY_ID.read(core, tenant).await?,
        platform_contract: crate::cursors::PLATFORM_CONTRACT.read(core, tenant).await?,
    })
}
