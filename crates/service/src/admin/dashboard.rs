//! `GET /`: what the operator must know or do now.

use super::session::Session;
use super::views::{ActionItem, DashboardPage, Layout, NeStatus, ParkedRow, RunRow};
use super::{AdminResult, jst, page, take_flash};
use crate::AdminContext;
use crate::wording;
use axum::extract::State;
use axum::http::HeaderMap;
use sne_domain::batch_state::BatchState;
use sne_domain::complete::CompletionNote;
use sne_domain::report::{ParkReason, QueueOutcome};
use sne_domain::time::from_jst;
use sne_domain::upload_batch::BatchErrorKind;
use std::collections::HashSet;

const RECENT_BATCHES: usize = 30;
const RECENT_RUNS: usize = 8;
/// Tokens closer than this to their end are flagged before they die.
const EXPIRY_WARNING_HOURS: i64 = 24;

pub fn park_reason(reason: ParkReason) -> &'static str {
    match reason {
        ParkReason::NotRegistered => wording::PARKED_NOT_REGISTERED,
        ParkReason::InvalidCode => wording::PARKED_INVALID_CODE,
        ParkReason::Unmapped => wording::PARKED_UNMAPPED,
    }
}

/// A report subject marks failures with these words (design.md §5).
pub fn subject_failed(subject: &str) -> bool {
    wording::REPORT_SUBJECT_FAILURE_MARKS
        .iter()
        .any(|mark| subject.contains(mark))
}

pub async fn show(
    State(ctx): State<AdminContext>,
    session: Session,
    headers: HeaderMap,
) -> AdminResult {
    let tenant = &session.tenant;
    let store = &ctx.storage;
    let now = ctx.clock.now();
    let mut actions = Vec::new();
    let reacquire = || {
        Some((
            "/#token".to_string(),
            wording::TO_TOKEN_REACQUIRE.to_string(),
        ))
    };

    let tokens = store.ne_tokens(&tenant.id).await?;
    let ne = match &tokens {
        None => {
            actions.push(ActionItem {
                title: wording::NE_NOT_CONNECTED_TITLE.into(),
                detail: wording::NE_NOT_CONNECTED_DETAIL.into(),
                link: reacquire(),
            });
            NeStatus {
                connected: false,
                access_end: String::new(),
                refresh_end: String::new(),
                label: wording::NE_STATUS_NOT_CONNECTED,
                class: "bad",
            }
        }
        Some(t) => {
            let refresh_end = from_jst(t.refresh_token_end);
            let (label, class) = if refresh_end <= now {
                actions.push(ActionItem {
                    title: wording::NE_TOKEN_EXPIRED_TITLE.into(),
                    detail: wording::NE_TOKEN_EXPIRED_DETAIL.into(),
                    link: reacquire(),
                });
                (wording::NE_STATUS_EXPIRED, "bad")
            } else if refresh_end <= now + chrono::Duration::hours(EXPIRY_WARNING_HOURS) {
                actions.push(ActionItem {
                    title: wording::NE_TOKEN_EXPIRING_TITLE.into(),
                    detail: wording::NE_TOKEN_EXPIRING_DETAIL.into(),
                    link: reacquire(),
                });
                (wording::NE_STATUS_EXPIRING, "warn")
            } else {
                (wording::NE_STATUS_VALID, "ok")
            };
            NeStatus {
                connected: true,
                access_end: t.access_token_end.format("%Y/%m/%d %H:%M").to_string(),
                refresh_end: t.refresh_token_end.format("%Y/%m/%d %H:%M").to_string(),
                label,
                class,
            }
        }
    };

    let batches = store.recent_batches(&tenant.id, RECENT_BATCHES).await?;
    let mut token_error_shown = false;
    for batch in &batches {
        let token_error = batch
            .last_error
            .as_ref()
            .is_some_and(|e| e.kind == BatchErrorKind::Token);
        match batch.state {
            BatchState::Built if token_error && !token_error_shown => {
                token_error_shown = true;
                actions.push(ActionItem {
                    title: wording::UPLOAD_TOKEN_ERROR_TITLE.into(),
                    detail: wording::UPLOAD_TOKEN_ERROR_DETAIL.into(),
                    link: reacquire(),
                });
            }
            BatchState::NeedsAttention => actions.push(ActionItem {
                title: wording::held_upload_title(jst(batch.created_at)),
                detail: wording::HELD_UPLOAD_DETAIL.into(),
                link: Some(("/history#held".into(), wording::TO_HELD_UPLOADS.into())),
            }),
            BatchState::Failed => {
                if let Some(QueueOutcome::Failed { .. }) = &batch.outcome
                    && batch.updated_at + chrono::Duration::days(7) > now
                {
                    actions.push(ActionItem {
                        title: wording::queue_failed_rows_title(
                            batch.que_id.as_deref().unwrap_or("-"),
                        ),
                        detail: wording::QUEUE_FAILED_ROWS_DETAIL.into(),
                        link: Some(("/history".into(), wording::TO_HISTORY_AND_CSV.into())),
                    });
                }
            }
            _ => {}
        }
    }

    // The completion's 要確認 notes are kept with the batch that counted the rows.
    let indistinguishable_changes: usize = batches
        .iter()
        .filter(|b| b.created_at + chrono::Duration::days(7) > now)
        .flat_map(|b| &b.notes)
        .filter_map(|note| CompletionNote::indistinguishable_count(note))
        .sum();
    if indistinguishable_changes > 0 {
        actions.push(ActionItem {
            title: wording::indistinguishable_changes_title(indistinguishable_changes),
            detail: wording::INDISTINGUISHABLE_CHANGES_DETAIL.into(),
            link: Some((
                "/settings#stock-history".into(),
                wording::TO_SETTINGS.into(),
            )),
        });
    }

    let reports = store.recent_reports(&tenant.id, RECENT_RUNS).await?;
    if reports
        .iter()
        .any(|r| r.sent_at.is_none() && r.attempts > 0 && r.last_error.is_some())
    {
        actions.push(ActionItem {
            title: wording::REPORT_NOT_SENT_TITLE.into(),
            detail: wording::REPORT_NOT_SENT_DETAIL.into(),
            link: Some(("/settings".into(), wording::TO_SETTINGS.into())),
        });
    }
    let runs = reports
        .iter()
        .map(|r| RunRow {
            at: jst(r.created_at),
            subject: r.subject.clone(),
            sent: match r.sent_at {
                Some(at) => wording::report_sent_at(jst(at)),
                None => wording::REPORT_UNSENT.into(),
            },
            failed: subject_failed(&r.subject),
        })
        .collect();

    let failed_orders = store
        .order_records(&tenant.id, 200)
        .await?
        .into_iter()
        .filter(|r| matches!(r.state, sne_ports::OrderImportState::Failed { .. }))
        .filter(|r| r.updated_at + chrono::Duration::days(7) > now)
        .count();
    if failed_orders > 0 {
        actions.push(ActionItem {
            title: wording::failed_orders_title(failed_orders),
            detail: wording::FAILED_ORDERS_DETAIL.into(),
            link: Some(("/history#orders".into(), wording::TO_ORDER_HISTORY.into())),
        });
    }
    // design.md §3: without history, absolute pushes without time cannot be ordered.
    if crate::stock_history::history_mode_since(&ctx, tenant)
        .await
        .is_none()
    {
        actions.push(ActionItem {
            title: wording::STOCK_HISTORY_OFF_TITLE.into(),
            detail: wording::STOCK_HISTORY_OFF_DETAIL.into(),
            link: Some((
                "/settings#stock-history".into(),
                wording::TO_SETTINGS.into(),
            )),
        });
    }

    let mut seen = HashSet::new();
    let parked = batches
        .iter()
        .flat_map(|b| b.parked.iter().map(move |p| (b, p)))
        .filter(|(_, p)| seen.insert(p.goods_code.clone()))
        .take(100)
        .map(|(b, p)| ParkedRow {
            goods_code: p.goods_code.clone(),
            delta: p.delta,
            reason: park_reason(p.reason),
            at: jst(b.created_at),
        })
        .collect();

    let pending_changes = store.pending_changes(&tenant.id).await?;
    let oldest_pending = store
        .oldest_pending_change(&tenant.id)
        .await?
        .map(|at| wording::waiting_since(now - at));
    // Newest first: the newest file that went up and knows its oldest change.
    let last_upload_lag = batches.iter().find_map(|b| {
        let (oldest, sent) = (b.oldest_change_at?, b.upload_started_at?);
        Some(wording::upload_lag(sent - oldest, jst(sent)))
    });
    let (flash, clear) = take_flash(&ctx, &headers);
    let view = DashboardPage {
        layout: Layout {
            title: wording::DASHBOARD_TITLE,
            active: "dashboard",
            logged_in: true,
            tenant_name: tenant.name.clone(),
            csrf: session.csrf.clone(),
            flash,
        },
        ne,
        actions,
        runs,
        parked,
        order_import_on: tenant.order_import.enabled,
        pending_changes,
        oldest_pending,
        last_upload_lag,
        indistinguishable_changes,
    };
    page(&ctx, &view, clear)
}
