//! `/drift`: the latest drift check, 「差異を確認」, its CSV, and 「揃える」
//! (a preview page, then the confirmation that freezes the corrections).

use super::session::Session;
use super::views::{AlignPage, AlignRow, DriftPage, DriftRow, Layout};
use super::{AdminError, AdminResult, Flash, jst, page, redirect_with, take_flash};
use crate::AdminContext;
use crate::drift::{
    AlignError, DriftError, align, check_by_id, check_csv, latest_check, preview_alignment,
};
use crate::wording;
use axum::Form;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::IntoResponse;
use serde::Deserialize;
use sne_domain::drift::{DriftLine, drift_csv_file_name};
use sne_domain::tenant::StockMaster;

fn layout(session: &Session, title: &'static str, flash: Option<Flash>) -> Layout {
    Layout {
        title,
        active: "drift",
        logged_in: true,
        tenant_name: session.tenant.name.clone(),
        csrf: session.csrf.clone(),
        flash,
    }
}

fn row(line: &DriftLine) -> DriftRow {
    let ne = |f: fn(&sne_domain::drift::NeFigures) -> i64| {
        line.nextengine
            .as_ref()
            .map(|n| f(n).to_string())
            .unwrap_or_else(|| "-".into())
    };
    DriftRow {
        goods_code: line.goods_code.to_string(),
        smaregi: line.smaregi,
        ne_stock: ne(|n| n.stock),
        ne_allocated: ne(|n| n.allocated),
        ne_free: ne(|n| n.free),
        pending: line.pending,
        in_files: line.in_files,
        web_orders: line.web_orders,
        expected_free: line.expected_free,
        difference: format!("{:+}", line.difference),
        correction: match (line.correction, line.why_not_corrected()) {
            (Some(c), _) => format!("{c:+}"),
            (None, Some(why)) => why.to_string(),
            (None, None) => "-".into(),
        },
        cause: line.cause_text(),
    }
}

impl From<DriftError> for AdminError {
    fn from(e: DriftError) -> Self {
        AdminError::Internal(e.to_string())
    }
}

pub async fn show(
    State(ctx): State<AdminContext>,
    session: Session,
    headers: HeaderMap,
) -> AdminResult {
    let (flash, clear) = take_flash(&ctx, &headers);
    let latest = latest_check(&ctx, &session.tenant.id).await?;
    let view = match latest {
        None => DriftPage {
            layout: layout(&session, wording::DRIFT_TITLE, flash),
            check_id: None,
            checked_at: String::new(),
            goods_compared: 0,
            unsettled: 0,
            unmapped_products: 0,
            set_goods_skipped: 0,
            report_only: session.tenant.stock_master == StockMaster::NextEngine,
            corrections: 0,
            rows: vec![],
        },
        Some(check) => DriftPage {
            layout: layout(&session, wording::DRIFT_TITLE, flash),
            checked_at: jst(check.checked_at),
            goods_compared: check.goods_compared,
            unsettled: check.unsettled.len(),
            unmapped_products: check.unmapped_products,
            set_goods_skipped: check.set_goods_skipped,
            report_only: check.master == StockMaster::NextEngine,
            corrections: check.corrections().len(),
            rows: check.lines.iter().map(row).collect(),
            check_id: Some(check.id),
        },
    };
    page(&ctx, &view, clear)
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct CsrfForm {
    csrf: Option<String>,
}

/// 「差異を確認」: asks for the check, which runs beside the tenant's runs (a
/// large shop's takes longer than a page may wait) and mails its result; the
/// page shows it once it is done.
pub async fn check_now(
    State(ctx): State<AdminContext>,
    session: Session,
    Form(form): Form<CsrfForm>,
) -> AdminResult {
    session.check_csrf(form.csrf.as_deref())?;
    let flash = if session.tenant.smaregi_api.is_none() {
        Flash::error(wording::DRIFT_NO_SMAREGI_API)
    } else {
        match ctx.trigger.request_drift_check(&session.tenant.id).await {
            Ok(()) => Flash::ok(wording::DRIFT_CHECK_ACCEPTED),
            Err(e) => {
                tracing::error!(tenant = %session.tenant.id, error = %e, "drift check request failed");
                Flash::error(wording::RUN_REFUSED)
            }
        }
    };
    Ok(redirect_with(&ctx, "/drift", flash))
}

pub async fn download_csv(
    State(ctx): State<AdminContext>,
    session: Session,
    Path(id): Path<String>,
) -> AdminResult {
    let tenant = &session.tenant.id;
    let check = check_by_id(&ctx, tenant, &id)
        .await?
        .ok_or(AdminError::NotFound)?;
    let bytes = check_csv(&ctx, tenant, &id)
        .await?
        .ok_or(AdminError::NotFound)?;
    let disposition = HeaderValue::from_str(&format!(
        "attachment; filename=\"{}\"",
        drift_csv_file_name(&check)
    ))
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

/// The preview of 「揃える」: what would be uploaded, or why not now.
pub async fn preview(
    State(ctx): State<AdminContext>,
    session: Session,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> AdminResult {
    let (flash, clear) = take_flash(&ctx, &headers);
    let preview = match preview_alignment(&ctx, &session.tenant, &id).await {
        Ok(p) => p,
        Err(AlignError::NotFound(_)) => return Err(AdminError::NotFound),
        Err(e) => return Err(AdminError::Internal(e.to_string())),
    };
    let view = AlignPage {
        layout: layout(&session, wording::ALIGN_TITLE, flash),
        checked_at: jst(preview.check.checked_at),
        check_id: preview.check.id.clone(),
        rows: preview
            .corrections
            .iter()
            .map(|l| AlignRow {
                goods_code: l.goods_code.to_string(),
                delta: format!("{:+}", l.delta),
            })
            .collect(),
        refusal: preview.refusal,
    };
    page(&ctx, &view, clear)
}

pub async fn confirm(
    State(ctx): State<AdminContext>,
    session: Session,
    Path(id): Path<String>,
    Form(form): Form<CsrfForm>,
) -> AdminResult {
    session.check_csrf(form.csrf.as_deref())?;
    let flash = match align(&ctx, &session.tenant, &id, &session.tenant.admin_email).await {
        Ok(batch) => Flash::ok(wording::drift_aligned(&batch.batch_id, batch.lines.len())),
        Err(AlignError::NotFound(_)) => return Err(AdminError::NotFound),
        Err(e) => Flash::error(e.to_string()),
    };
    Ok(redirect_with(&ctx, "/drift", flash))
}
