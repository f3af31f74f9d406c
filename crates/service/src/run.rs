//! One run for one tenant: check previous queues, upload, import orders, report —
//! the order of the report's sections (design.md §5).

use crate::Context;
use crate::checker::{MAX_OUTCOMES_PER_REPORT, previous_section, run_check};
use crate::orders::{ImportOptions, import_orders, mark_reported};
use crate::reporter::{SendOutcome, enqueue_report, send_pending};
use crate::sections::UploadError;
use crate::{batcher, stock_history, uploader};
use chrono::Duration as ChronoDuration;
use sne_domain::batch_state::BatchState;
use sne_domain::report::{PreviousSection, RunReport, UploadSection};
use sne_domain::tenant::Tenant;
use sne_domain::time::to_jst;
use sne_domain::upload_csv::csv_file_name;
use sne_ports::StoreError;
use sne_ports::UploadBatch;
use std::collections::HashSet;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Jobs {
    Upload,
    CheckQueue,
    /// Queue check and upload: the stock path without the order import, for the
    /// uploader Lambda (the order importer imports, so it is scheduled once).
    Stock,
    /// NextEngine orders → Smaregi 出荷, for tenants with the import on.
    ImportOrders,
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

/// When a run's report is mailed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mailing {
    /// With every report waiting, as one mail: the schedule, 「今すぐ実行」, `run`.
    Send,
    /// Left in the outbox for the next run that sends: the runs for stored
    /// changes, which may come every few seconds, so a shop gets one mail a
    /// schedule rather than one a file.
    Defer,
}

pub async fn run_tenant(ctx: &Context, tenant: &Tenant, jobs: Jobs, run_id: &str) -> TenantRun {
    run_tenant_with(ctx, tenant, jobs, run_id, Mailing::Send).await
}

pub async fn run_tenant_with(
    ctx: &Context,
    tenant: &Tenant,
    jobs: Jobs,
    run_id: &str,
    mailing: Mailing,
) -> TenantRun {
    let check = if matches!(jobs, Jobs::CheckQueue | Jobs::Stock | Jobs::All) {
        Some(run_check(ctx, tenant).await)
    } else {
        None
    };
    let upload = if matches!(jobs, Jobs::Upload | Jobs::Stock | Jobs::All) {
        Some(run_upload(ctx, tenant, run_id).await)
    } else {
        None
    };
    let orders = if matches!(jobs, Jobs::ImportOrders | Jobs::All) {
        import_orders(ctx, tenant, &ImportOptions::default()).await
    } else {
        None
    };
    let mut notices = upload
        .as_ref()
        .map(|u| u.notices.clone())
        .unwrap_or_default();
    keep_tokens_alive(ctx, tenant).await;
    notices.extend(token_notice(ctx, tenant).await);
    let uploaded = upload
        .as_ref()
        .map(|u| u.uploaded_batches.clone())
        .unwrap_or_default();
    let mut report = RunReport {
        tenant_name: tenant.name.clone(),
        run_at: ctx.clock.now(),
        upload: upload
            .map(|u| u.section)
            .unwrap_or(UploadSection::Nothing { parked: vec![] }),
        previous: PreviousSection::Nothing,
        orders,
        notices: notices.clone(),
        drift: None,
    };
    let mut report_id = None;
    // A concurrent run may tell some outcome first; its report then has it, and
    // this one is composed again without it.
    for attempt in 1..=REPORT_ATTEMPTS {
        let outcomes = match &check {
            Some(_) => ctx
                .storage
                .unreported_outcomes(&tenant.id, MAX_OUTCOMES_PER_REPORT)
                .await
                .unwrap_or_else(|e| {
                    tracing::error!(tenant = %tenant.id, error = %e, "recorded queue results unreadable");
                    vec![]
                }),
            None => vec![],
        };
        report.notices = notices.clone();
        if let Some(check) = &check {
            report.previous = previous_section(check, &outcomes);
            if let (Some(reason), PreviousSection::Results { .. }) =
                (&check.error, &report.previous)
            {
                report
                    .notices
                    .push(crate::wording::queue_results_partly_unchecked(reason));
            }
        }
        match enqueue_report(ctx, tenant, run_id, &report, &uploaded, &outcomes).await {
            Ok(id) => {
                // Only once the report is durably queued: a crash before this
                // repeats the orders in the next report rather than losing them.
                if let (Some(_), Some(section)) = (&id, &report.orders) {
                    mark_reported(ctx, &tenant.id, section).await;
                }
                report_id = id;
                break;
            }
            Err(StoreError::Conflict(e)) if attempt < REPORT_ATTEMPTS => {
                tracing::info!(tenant = %tenant.id, error = %e, "queue results told by another run; composing again");
            }
            Err(e) => {
                tracing::error!(tenant = %tenant.id, error = %e, "report could not be stored");
                break;
            }
        }
    }
    let mail = match mailing {
        Mailing::Send => send_pending(ctx, tenant).await,
        Mailing::Defer => SendOutcome::default(),
    };
    TenantRun {
        tenant: tenant.clone(),
        report,
        report_id,
        mail,
    }
}

/// Compositions of one run's report before it gives up on a busy outbox.
const REPORT_ATTEMPTS: usize = 3;

/// NextEngine rotates tokens only on use: once the access token has expired, one
/// cheap call renews both, so a shop without stock changes keeps its connection.
async fn keep_tokens_alive(ctx: &Context, tenant: &Tenant) {
    let Ok(Some(tokens)) = ctx.storage.ne_tokens(&tenant.id).await else {
        return;
    };
    let now = to_jst(ctx.clock.now());
    if tokens.access_token_end <= now
        && tokens.refresh_token_end > now
        && let Err(e) = ctx.nextengine.keep_tokens_alive(&tenant.id).await
    {
        tracing::warn!(tenant = %tenant.id, error = %e, "token keep-alive failed");
    }
}

/// Warns a day before the refresh token dies: after that only a 再取得 helps.
async fn token_notice(ctx: &Context, tenant: &Tenant) -> Option<String> {
    let tokens = ctx.storage.ne_tokens(&tenant.id).await.ok().flatten()?;
    let now = to_jst(ctx.clock.now());
    let left = tokens.refresh_token_end - now;
    if left < ChronoDuration::zero() {
        Some(crate::wording::TOKEN_EXPIRED_NOTICE.into())
    } else if left < ChronoDuration::hours(24) {
        Some(crate::wording::token_expiring_notice(
            tokens.refresh_token_end.format("%Y-%m-%d %H:%M"),
        ))
    } else {
        None
    }
}

impl Jobs {
    /// What one run must do to serve both requests.
    pub fn with(self, other: Jobs) -> Jobs {
        let (check, upload, orders) = self.parts();
        let (c, u, o) = other.parts();
        match (check || c, upload || u, orders || o) {
            (false, true, false) => Jobs::Upload,
            (true, false, false) => Jobs::CheckQueue,
            (true, true, false) => Jobs::Stock,
            (false, false, true) => Jobs::ImportOrders,
            _ => Jobs::All,
        }
    }

    /// (queue check, upload, order import)
    fn parts(self) -> (bool, bool, bool) {
        match self {
            Jobs::Upload => (false, true, false),
            Jobs::CheckQueue => (true, false, false),
            Jobs::Stock => (true, true, false),
            Jobs::ImportOrders => (false, false, true),
            Jobs::All => (true, true, true),
        }
    }

    /// Whether a tenant has anything for these jobs to do: the order import alone
    /// concerns only tenants with the import on.
    pub fn concern(self, tenant: &Tenant) -> bool {
        match self {
            Jobs::ImportOrders => tenant.order_import.enabled,
            _ => true,
        }
    }
}

/// Runs the jobs for every tenant they concern, one after another; one tenant's
/// failure never stops the others.
pub async fn run_all(ctx: &Context, jobs: Jobs) -> anyhow::Result<Vec<TenantRun>> {
    run_all_with(ctx, jobs, Mailing::Send).await
}

/// [`run_all`], with the reports mailed or left for the next sending run.
pub async fn run_all_with(
    ctx: &Context,
    jobs: Jobs,
    mailing: Mailing,
) -> anyhow::Result<Vec<TenantRun>> {
    let run_id = new_run_id(ctx);
    let tenants = ctx.storage.list_tenants().await?;
    let mut runs = Vec::with_capacity(tenants.len());
    for tenant in tenants.into_iter().filter(|t| jobs.concern(t)) {
        runs.push(run_tenant_with(ctx, &tenant, jobs, &run_id, mailing).await);
    }
    Ok(runs)
}

/// What one upload run did, for the report.
#[derive(Debug, Clone)]
pub struct UploadRun {
    /// The first file's section (the report's 「アップロード」).
    pub section: UploadSection,
    /// The batches uploaded in this run, oldest first; their CSVs go with the report.
    pub uploaded_batches: Vec<UploadBatch>,
    pub notices: Vec<String>,
}

/// Uploads what is waiting. Files hold at most `max_rows_per_file` rows, so a
/// backlog becomes several frozen files, each its own batch through the same
/// state machine; after a file went up the run takes the next, up to
/// `max_files_per_run`, and the report names every one.
pub async fn run_upload(ctx: &Context, tenant: &Tenant, run_id: &str) -> UploadRun {
    let mut notices = Vec::new();
    let mut first = None;
    let mut uploaded_batches = Vec::new();
    for _ in 0..ctx.config.max_files_per_run.max(1) {
        let (section, uploaded) = match upload_steps(ctx, tenant, run_id, &mut notices).await {
            Ok(done) => done,
            Err(stopped) => (stopped.section(), None),
        };
        let went_up = matches!(section, UploadSection::Uploaded { .. });
        match (&first, &section, &uploaded) {
            (None, _, _) => first = Some(section),
            (
                Some(_),
                UploadSection::Uploaded {
                    que_id, products, ..
                },
                Some(batch),
            ) => notices.push(crate::wording::next_file_uploaded(
                csv_file_name(batch),
                que_id,
                products,
            )),
            // A later file that did not go up waits for the next run, which
            // reports it; this run's section stays the first file's.
            (Some(_), _, _) => {}
        }
        uploaded_batches.extend(uploaded);
        let more = went_up
            && ctx
                .storage
                .pending_changes(&tenant.id)
                .await
                .is_ok_and(|n| n > 0);
        if !more {
            break;
        }
    }
    // Each file's steps repeat the reminders (held uploads, say): tell them once.
    let mut seen = HashSet::new();
    notices.retain(|n| seen.insert(n.clone()));
    UploadRun {
        section: first.unwrap_or(UploadSection::Nothing { parked: vec![] }),
        uploaded_batches,
        notices,
    }
}

/// One file's worth of the stock path, rooms in order: unknown outcomes first,
/// then a frozen file left over, then history into the ledger and a new file.
async fn upload_steps(
    ctx: &Context,
    tenant: &Tenant,
    run_id: &str,
    notices: &mut Vec<String>,
) -> Result<(UploadSection, Option<UploadBatch>), UploadError> {
    if let Some(done) = uploader::settle_unknown_outcomes(ctx, tenant, notices).await? {
        return Ok(done);
    }
    if let Some(batch) = uploader::next_frozen(ctx, tenant).await? {
        return uploader::upload_batch(ctx, tenant, batch).await;
    }
    let mode = stock_history::read_into_ledger(ctx, tenant, notices)
        .await
        .map_err(UploadError::HistoryMode)?;
    match batcher::freeze_next(ctx, tenant, run_id, &mode, notices).await? {
        None => Ok((UploadSection::Nothing { parked: vec![] }, None)),
        Some(batch) if batch.state == BatchState::Empty => Ok((
            UploadSection::Nothing {
                parked: batch.parked,
            },
            None,
        )),
        Some(batch) => uploader::upload_batch(ctx, tenant, batch).await,
    }
}
