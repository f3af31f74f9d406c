//! One run for one tenant: check previous queues, upload, report — the order of the
//! report's sections (SPEC §5).

use crate::Context;
use crate::checker::run_check;
use crate::reporter::{SendOutcome, enqueue_report, send_pending};
use crate::uploader::run_upload;
use chrono::Duration as ChronoDuration;
use sne_domain::report::{PreviousSection, RunReport, UploadSection};
use sne_domain::tenant::Tenant;
use sne_domain::time::to_jst;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Jobs {
    Upload,
    CheckQueue,
    All,
}

#[derive(Debug, Clone)]
pub struct TenantRun {
    pub tenant: Tenant,
    pub report: RunReport,
    pub report_id: Option<String>,
    pub mail: SendOutcome,
}

pub fn new_run_id(ctx: &Context) -> String {
    format!(
        "r{}-{}",
        to_jst(ctx.clock.now()).format("%Y%m%d%H%M%S"),
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    )
}

pub async fn run_tenant(ctx: &Context, tenant: &Tenant, jobs: Jobs, run_id: &str) -> TenantRun {
    let check = if matches!(jobs, Jobs::CheckQueue | Jobs::All) {
        Some(run_check(ctx, tenant).await)
    } else {
        None
    };
    let upload = if matches!(jobs, Jobs::Upload | Jobs::All) {
        Some(run_upload(ctx, tenant, run_id).await)
    } else {
        None
    };
    let mut notices = upload
        .as_ref()
        .map(|u| u.notices.clone())
        .unwrap_or_default();
    notices.extend(token_notice(ctx, tenant).await);
    let report = RunReport {
        tenant_name: tenant.name.clone(),
        run_at: ctx.clock.now(),
        upload: upload
            .as_ref()
            .map(|u| u.section.clone())
            .unwrap_or(UploadSection::Nothing { parked: vec![] }),
        previous: check
            .as_ref()
            .map(|c| c.section.clone())
            .unwrap_or(PreviousSection::Nothing),
        orders: None,
        notices,
    };
    let finished = check.map(|c| c.finished).unwrap_or_default();
    let uploaded = upload.and_then(|u| u.uploaded_batch);
    let report_id =
        match enqueue_report(ctx, tenant, run_id, &report, uploaded.as_ref(), &finished).await {
            Ok(id) => id,
            Err(e) => {
                tracing::error!(tenant = %tenant.id, error = %e, "report could not be stored");
                None
            }
        };
    let mail = send_pending(ctx, tenant).await;
    TenantRun {
        tenant: tenant.clone(),
        report,
        report_id,
        mail,
    }
}

/// Warns a day before the refresh token dies: after that only a 再取得 helps.
async fn token_notice(ctx: &Context, tenant: &Tenant) -> Option<String> {
    let tokens = ctx.storage.ne_tokens(&tenant.id).await.ok().flatten()?;
    let now = to_jst(ctx.clock.now());
    let left = tokens.refresh_token_end - now;
    if left < ChronoDuration::zero() {
        Some("ネクストエンジンのトークンの有効期限が切れています。管理画面のトークンの再取得欄で「再取得」をクリックしてください".into())
    } else if left < ChronoDuration::hours(24) {
        Some(format!(
            "ネクストエンジンのトークンの有効期限({})が近づいています。期限までに処理が実行されない場合は管理画面で「再取得」をクリックしてください",
            tokens.refresh_token_end.format("%Y-%m-%d %H:%M")
        ))
    } else {
        None
    }
}

/// Runs the jobs for every tenant, one after another; one tenant's failure never
/// stops the others.
pub async fn run_all(ctx: &Context, jobs: Jobs) -> anyhow::Result<Vec<TenantRun>> {
    let run_id = new_run_id(ctx);
    let tenants = ctx.storage.list_tenants().await?;
    let mut runs = Vec::with_capacity(tenants.len());
    for tenant in tenants {
        runs.push(run_tenant(ctx, &tenant, jobs, &run_id).await);
    }
    Ok(runs)
}
