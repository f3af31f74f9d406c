//! `/history`: uploads (with CSV downloads), sent reports, order imports; and
//! 「今すぐ実行」.

use super::session::Session;
use super::views::{BatchRow, CandidateRow, HeldRow, HistoryPage, Layout, OrderRow, ReportRow};
use super::{AdminError, AdminResult, Flash, jst, page, redirect_with, take_flash};
use crate::AdminContext;
use crate::held::HeldDecision;
use crate::resend::rows_to_resend;
use crate::wording;
use axum::Form;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Redirect};
use serde::Deserialize;
use sne_domain::batch_state::BatchState;
use sne_domain::report::QueueOutcome;
use sne_domain::row_application::{FateCounts, RowVerdict};
use sne_domain::upload_csv::csv_file_name;
use sne_ports::{OrderImportState, UploadBatch};
use std::time::Duration;

const BATCHES_SHOWN: usize = 50;
const REPORTS_SHOWN: usize = 30;
const ORDERS_SHOWN: usize = 100;
/// Lines of a held file shown beside its buttons; the CSV has them all.
const HELD_LINES_SHOWN: usize = 20;
/// Presigned links are handed out per click, so they need not live long.
const DOWNLOAD_LINK_TTL: Duration = Duration::from_secs(300);

fn state_label(state: BatchState) -> (&'static str, &'static str) {
    match state {
        BatchState::Building => (wording::BATCH_BUILDING, "muted"),
        BatchState::Built => (wording::BATCH_BUILT, "warn"),
        BatchState::Empty => (wording::BATCH_EMPTY, "muted"),
        BatchState::Uploading => (wording::BATCH_UPLOADING, "warn"),
        BatchState::Uploaded => (wording::BATCH_UPLOADED, "warn"),
        BatchState::Succeeded => (wording::BATCH_SUCCEEDED, "ok"),
        BatchState::Failed => (wording::BATCH_FAILED, "bad"),
        BatchState::NeedsAttention => (wording::BATCH_NEEDS_ATTENTION, "bad"),
    }
}

fn batch_row(batch: &UploadBatch) -> BatchRow {
    let (state, state_class) = state_label(batch.state);
    let (result, row_errors) = match &batch.outcome {
        Some(QueueOutcome::Succeeded) => (wording::QUEUE_SUCCEEDED.to_string(), vec![]),
        Some(QueueOutcome::Failed {
            row_errors,
            raw_message,
            rows,
        }) => {
            let mut lines: Vec<String> = row_errors
                .iter()
                .map(|e| {
                    let mut line = String::new();
                    if let Some(n) = e.line {
                        line.push_str(&wording::row_error_line(n));
                    }
                    if let Some(code) = &e.goods_code {
                        line.push_str(&format!(" [{code}]"));
                    }
                    if !line.is_empty() {
                        line.push_str(": ");
                    }
                    line.push_str(&e.message);
                    line
                })
                .collect();
            if lines.is_empty() && !raw_message.is_empty() {
                lines.push(raw_message.clone());
            }
            (failure_summary(rows), lines)
        }
        Some(QueueOutcome::Overdue { minutes }) => (wording::queue_overdue(minutes), vec![]),
        None => (String::new(), vec![]),
    };
    let resend_rows = rows_to_resend(batch, true);
    let resend_free_stock = resend_rows.len() - rows_to_resend(batch, false).len();
    BatchRow {
        resend: resend_rows
            .iter()
            .take(HELD_LINES_SHOWN)
            .map(|l| format!("{}: {:+}", l.goods_code, l.delta))
            .collect(),
        resend_count: resend_rows.len(),
        resend_free_stock,
        follow_up: batch
            .follow_up
            .as_ref()
            .map(|f| wording::follow_up_uploaded(&f.batch_id, jst(f.at), &f.by)),
        follows: batch.follows.clone(),
        id: batch.batch_id.clone(),
        at: jst(batch.created_at),
        state,
        state_class,
        que_id: batch.que_id.as_deref().unwrap_or("-").to_string(),
        products: batch.lines.len(),
        changes: batch.change_count,
        result,
        row_errors,
        error: batch.last_error.as_ref().map(|e| e.message.clone()),
        has_csv: batch.csv_key.is_some(),
    }
}

/// One line on what became of a failed file's rows.
fn failure_summary(rows: &[RowVerdict]) -> String {
    if rows.is_empty() {
        return wording::ROW_FATES_UNRECORDED.into();
    }
    let counts = FateCounts::of(rows);
    let mut parts = vec![
        wording::rows_applied(counts.applied),
        wording::rows_unapplied(counts.unapplied()),
    ];
    let unknown = counts.unknown;
    if unknown > 0 {
        parts.push(wording::rows_unknown(unknown));
    }
    wording::row_fates(&parts)
}

fn order_row(record: &sne_ports::OrderImportRecord) -> OrderRow {
    let (state, state_class) = match &record.state {
        OrderImportState::Started => (wording::ORDER_REGISTERING.to_string(), "warn"),
        OrderImportState::Imported { shipment_id } => (wording::order_shipped(shipment_id), "ok"),
        OrderImportState::Failed { reason } => (wording::order_failed(reason), "bad"),
        OrderImportState::CancelledAfterImport { shipment_id } => {
            (wording::order_cancelled_after_import(shipment_id), "warn")
        }
    };
    OrderRow {
        at: jst(record.updated_at),
        receive_order_id: record.receive_order_id.clone(),
        shop_order_no: record.shop_order_no.clone(),
        state,
        state_class,
        lines: record
            .lines
            .iter()
            .map(|(code, qty)| format!("{code} × {qty}"))
            .collect::<Vec<_>>()
            .join(", "),
    }
}

fn held_row(batch: &UploadBatch) -> HeldRow {
    HeldRow {
        id: batch.batch_id.clone(),
        at: jst(batch.created_at),
        attempt_at: batch.upload_started_at.map(jst).unwrap_or_default(),
        products: batch.lines.len(),
        lines: batch
            .lines
            .iter()
            .take(HELD_LINES_SHOWN)
            .map(|l| format!("{}: {:+}", l.goods_code, l.delta))
            .collect(),
        more_lines: batch.lines.len().saturating_sub(HELD_LINES_SHOWN),
        candidates: batch
            .candidates
            .iter()
            .map(|c| CandidateRow {
                que_id: c.que_id.to_string(),
                created_at: c.created_at.clone(),
                kind: match (c.upload_name.trim(), c.client_file_name.trim()) {
                    ("", "") => wording::QUEUE_KIND_UNKNOWN.to_string(),
                    (name, "") => name.to_string(),
                    (name, file) => format!("{name} ({file})"),
                },
            })
            .collect(),
    }
}

pub async fn show(
    State(ctx): State<AdminContext>,
    session: Session,
    headers: HeaderMap,
) -> AdminResult {
    let tenant = &session.tenant;
    let held = crate::held::held_uploads(&ctx, &tenant.id)
        .await?
        .iter()
        .map(held_row)
        .collect();
    let batches = ctx
        .storage
        .recent_batches(&tenant.id, BATCHES_SHOWN)
        .await?
        .iter()
        // Empty batches uploaded nothing; they would only bury the real uploads.
        .filter(|b| b.state != BatchState::Empty || !b.parked.is_empty())
        .map(batch_row)
        .collect();
    let reports = ctx
        .storage
        .recent_reports(&tenant.id, REPORTS_SHOWN)
        .await?
        .iter()
        .map(|r| ReportRow {
            at: jst(r.created_at),
            subject: r.subject.clone(),
            sent: match (r.sent_at, &r.last_error) {
                (Some(at), _) => wording::report_sent_at(jst(at)),
                (None, Some(_)) => wording::report_send_failed(r.attempts),
                (None, None) => wording::REPORT_WAITING.into(),
            },
            failed: super::dashboard::subject_failed(&r.subject),
        })
        .collect();
    let orders = ctx
        .storage
        .order_records(&tenant.id, ORDERS_SHOWN)
        .await?
        .iter()
        .map(order_row)
        .collect();
    let (flash, clear) = take_flash(&ctx, &headers);
    let view = HistoryPage {
        layout: Layout {
            title: wording::HISTORY_TITLE,
            active: "history",
            logged_in: true,
            tenant_name: tenant.name.clone(),
            csrf: session.csrf.clone(),
            flash,
        },
        held,
        batches,
        reports,
        orders,
    };
    page(&ctx, &view, clear)
}

pub async fn download_csv(
    State(ctx): State<AdminContext>,
    session: Session,
    Path(batch_id): Path<String>,
) -> AdminResult {
    let tenant = &session.tenant;
    // The store is tenant-scoped: another tenant's batch id finds nothing.
    let batch = ctx
        .storage
        .batch(&tenant.id, &batch_id)
        .await?
        .ok_or(AdminError::NotFound)?;
    let key = batch.csv_key.as_deref().ok_or(AdminError::NotFound)?;
    // Belt and braces: never serve a key outside the tenant's prefix.
    if !key.starts_with(&format!("tenants/{}/", tenant.id)) {
        tracing::error!(tenant = %tenant.id, batch = %batch_id, "CSV key outside the tenant prefix");
        return Err(AdminError::NotFound);
    }
    if let Some(url) = ctx.blobs.download_url(key, DOWNLOAD_LINK_TTL).await? {
        return Ok(Redirect::to(&url).into_response());
    }
    let bytes = ctx.blobs.get_blob(key).await?.ok_or(AdminError::NotFound)?;
    let name = csv_file_name(&batch);
    let disposition = HeaderValue::from_str(&format!("attachment; filename=\"{name}\""))
        .map_err(|e| AdminError::Internal(e.to_string()))?;
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/csv; charset=utf-8"),
            ),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        bytes,
    )
        .into_response())
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct RunNowForm {
    csrf: Option<String>,
    back: String,
}

pub async fn run_now(
    State(ctx): State<AdminContext>,
    session: Session,
    Form(form): Form<RunNowForm>,
) -> AdminResult {
    session.check_csrf(form.csrf.as_deref())?;
    // Only our own pages: never an open redirect.
    let back = if form.back == "/history" {
        "/history"
    } else {
        "/"
    };
    let flash = match ctx.trigger.request_run(&session.tenant.id).await {
        Ok(()) => {
            tracing::info!(tenant = %session.tenant.id, "run requested from the admin screen");
            Flash::ok(wording::RUN_ACCEPTED)
        }
        Err(e) => {
            tracing::error!(tenant = %session.tenant.id, error = %e, "run request failed");
            Flash::error(wording::RUN_REFUSED)
        }
    };
    Ok(redirect_with(&ctx, back, flash))
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct ResolveForm {
    csrf: Option<String>,
    /// `uploaded` (「アップロード済みとして扱う」) or `reupload` (「再アップロードする」).
    action: String,
    que_id: String,
}

pub async fn resolve_held(
    State(ctx): State<AdminContext>,
    session: Session,
    Path(batch_id): Path<String>,
    Form(form): Form<ResolveForm>,
) -> AdminResult {
    session.check_csrf(form.csrf.as_deref())?;
    let decision = match form.action.as_str() {
        "uploaded" => HeldDecision::TreatAsUploaded {
            que_id: form.que_id.into(),
        },
        "reupload" => HeldDecision::Reupload,
        _ => {
            return Ok(redirect_with(
                &ctx,
                "/history",
                Flash::error(wording::HELD_CHOOSE_ACTION),
            ));
        }
    };
    let tenant = &session.tenant;
    let flash =
        match crate::held::resolve_held(&ctx, &tenant.id, &batch_id, decision, &tenant.admin_email)
            .await
        {
            Ok(batch) if batch.state == BatchState::Uploaded => Flash::ok(
                wording::held_treated_as_uploaded(&batch_id, batch.que_id.unwrap_or_default()),
            ),
            Ok(_) => Flash::ok(wording::held_reuploading(&batch_id)),
            Err(e) => Flash::error(e.to_string()),
        };
    Ok(redirect_with(&ctx, "/history", flash))
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct ResendForm {
    csrf: Option<String>,
    /// The checkbox 「フリー在庫不足の行も含める」: present when ticked.
    include_free_stock: Option<String>,
}

/// 「未反映の行を再アップロード」.
pub async fn resend_unapplied(
    State(ctx): State<AdminContext>,
    session: Session,
    Path(batch_id): Path<String>,
    Form(form): Form<ResendForm>,
) -> AdminResult {
    session.check_csrf(form.csrf.as_deref())?;
    let tenant = &session.tenant;
    let flash = match crate::resend::resend_unapplied(
        &ctx,
        &tenant.id,
        &batch_id,
        form.include_free_stock.is_some(),
        &tenant.admin_email,
    )
    .await
    {
        Ok(resend) => Flash::ok(wording::resend_accepted(
            resend.lines.len(),
            &resend.batch_id,
        )),
        Err(e) => Flash::error(e.to_string()),
    };
    Ok(redirect_with(&ctx, "/history", flash))
}
