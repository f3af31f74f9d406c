//! `/history`: uploads (with CSV downloads), sent reports, order imports; and
//! 「今すぐ実行」.

use super::session::Session;
use super::views::{BatchRow, CandidateRow, HeldRow, HistoryPage, Layout, OrderRow, ReportRow};
use super::{AdminError, AdminResult, Flash, jst, page, redirect_with, take_flash};
use crate::AdminContext;
use crate::held::HeldDecision;
use crate::resend::rows_to_resend;
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
        BatchState::Building => ("作成中", "muted"),
        BatchState::Built => ("アップロード待ち", "warn"),
        BatchState::Empty => ("対象なし", "muted"),
        BatchState::Uploading => ("アップロード中", "warn"),
        BatchState::Uploaded => ("処理待ち", "warn"),
        BatchState::Succeeded => ("成功", "ok"),
        BatchState::Failed => ("失敗", "bad"),
        BatchState::NeedsAttention => ("要確認", "bad"),
    }
}

fn batch_row(batch: &UploadBatch) -> BatchRow {
    let (state, state_class) = state_label(batch.state);
    let (result, row_errors) = match &batch.outcome {
        Some(QueueOutcome::Succeeded) => ("ネクストエンジンで処理されました".to_string(), vec![]),
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
                        line.push_str(&format!("{n}行目"));
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
        Some(QueueOutcome::Overdue { minutes }) => (
            format!("ネクストエンジンでの処理が {minutes} 分以上終わっていません"),
            vec![],
        ),
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
        follow_up: batch.follow_up.as_ref().map(|f| {
            format!(
                "未反映の行をファイル {} で再アップロードしました ({}、{})",
                f.batch_id,
                jst(f.at),
                f.by
            )
        }),
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
        return "どの行が反映されたかは記録されていません。ネクストエンジンで在庫数を確認してください".into();
    }
    let counts = FateCounts::of(rows);
    let mut parts = vec![
        format!("反映済み {} 行", counts.applied),
        format!("未反映 {} 行", counts.unapplied()),
    ];
    let unknown = counts.unknown;
    if unknown > 0 {
        parts.push(format!(
            "確認できず {unknown} 行 (ネクストエンジンで在庫数を確認してください)"
        ));
    }
    format!("入出庫履歴による確認: {}", parts.join("、"))
}

fn order_row(record: &sne_ports::OrderImportRecord) -> OrderRow {
    let (state, state_class) = match &record.state {
        OrderImportState::Started => ("登録中".to_string(), "warn"),
        OrderImportState::Imported { shipment_id } => {
            (format!("出荷登録済み (出荷ID {shipment_id})"), "ok")
        }
        OrderImportState::Failed { reason } => (format!("失敗: {reason}"), "bad"),
        OrderImportState::CancelledAfterImport { shipment_id } => (
            format!("取り込み後にキャンセル (出荷ID {shipment_id})"),
            "warn",
        ),
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
                    ("", "") => "不明".to_string(),
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
                (Some(at), _) => format!("送信済み {}", jst(at)),
                (None, Some(_)) => format!("送信失敗 ({} 回)。次回の実行で再送します", r.attempts),
                (None, None) => "送信待ち".into(),
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
            title: "履歴",
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
            Flash::ok("実行を受け付けました")
        }
        Err(e) => {
            tracing::error!(tenant = %session.tenant.id, error = %e, "run request failed");
            Flash::error("実行を受け付けられませんでした。時間をおいてもう一度お試しください。")
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
                Flash::error("操作を選んでください"),
            ));
        }
    };
    let tenant = &session.tenant;
    let flash = match crate::held::resolve_held(
        &ctx,
        &tenant.id,
        &batch_id,
        decision,
        &tenant.admin_email,
    )
    .await
    {
        Ok(batch) if batch.state == BatchState::Uploaded => Flash::ok(format!(
            "ファイル {batch_id} をキューID {} でアップロード済みとして扱います。処理結果は次回の通知メールでお知らせします",
            batch.que_id.unwrap_or_default()
        )),
        Ok(_) => Flash::ok(format!(
            "ファイル {batch_id} を再アップロードします。結果は次回の通知メールでお知らせします"
        )),
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
        Ok(resend) => Flash::ok(format!(
            "未反映の {} 行をファイル {} としてアップロードします。結果は次回の通知メールでお知らせします",
            resend.lines.len(),
            resend.batch_id
        )),
        Err(e) => Flash::error(e.to_string()),
    };
    Ok(redirect_with(&ctx, "/history", flash))
}
