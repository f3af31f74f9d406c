//! `GET /`: what the operator must know or do now.

use super::session::Session;
use super::views::{ActionItem, DashboardPage, Layout, NeStatus, ParkedRow, RunRow};
use super::{AdminResult, jst, page, take_flash};
use crate::AdminContext;
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
        ParkReason::NotRegistered => "ネクストエンジンに未登録",
        ParkReason::InvalidCode => "商品コードに使えない文字がある (半角英数字・-・_、30文字以内)",
        ParkReason::Unmapped => "商品コードの対応がない",
    }
}

/// A report subject marks failures with these words (design.md §5).
pub fn subject_failed(subject: &str) -> bool {
    subject.contains("失敗") || subject.contains("エラー発生")
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
    let reacquire = || Some(("/#token".to_string(), "トークンの再取得へ".to_string()));

    let tokens = store.ne_tokens(&tenant.id).await?;
    let ne = match &tokens {
        None => {
            actions.push(ActionItem {
                title: "ネクストエンジンと接続されていません".into(),
                detail: "「トークンの再取得」欄の「再取得」をクリックし、ネクストエンジンにログインしてください。".into(),
                link: reacquire(),
            });
            NeStatus {
                connected: false,
                access_end: String::new(),
                refresh_end: String::new(),
                label: "未接続",
                class: "bad",
            }
        }
        Some(t) => {
            let refresh_end = from_jst(t.refresh_token_end);
            let (label, class) = if refresh_end <= now {
                actions.push(ActionItem {
                    title: "ネクストエンジンのトークンの有効期限が切れています".into(),
                    detail: "在庫をアップロードできません。「再取得」をクリックしてトークンを更新してください。".into(),
                    link: reacquire(),
                });
                ("期限切れ", "bad")
            } else if refresh_end <= now + chrono::Duration::hours(EXPIRY_WARNING_HOURS) {
                actions.push(ActionItem {
                    title: "ネクストエンジンのトークンの有効期限が近づいています".into(),
                    detail: "期限が切れる前に「再取得」をクリックしてトークンを更新してください。"
                        .into(),
                    link: reacquire(),
                });
                ("期限間近", "warn")
            } else {
                ("有効", "ok")
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
                    title: "ファイルのアップロード中にトークンのエラーが発生しました".into(),
                    detail: "「再取得」をクリックしてトークンを更新してください。保留中のファイルは次回の実行でアップロードされます。".into(),
                    link: reacquire(),
                });
            }
            BatchState::NeedsAttention => actions.push(ActionItem {
                title: format!("{} のアップロードが要確認です", jst(batch.created_at)),
                detail: "ネクストエンジンから応答がなく、どのキューがこのファイルか自動で特定できませんでした。二重に在庫が変わらないよう自動の再送は止めています(それ以降の在庫変動は通常どおり通知しています)。ネクストエンジンのアップロードキューと在庫を確認し、履歴の「要確認のアップロード」で「アップロード済みとして扱う」か「再アップロードする」を選んでください。手動でのアップロードは不要です。".into(),
                link: Some(("/history#held".into(), "要確認のアップロードへ".into())),
            }),
            BatchState::Failed => {
                if let Some(QueueOutcome::Failed { .. }) = &batch.outcome
                    && batch.updated_at + chrono::Duration::days(7) > now
                {
                    actions.push(ActionItem {
                        title: format!(
                            "キューID {} の処理に失敗した行があります",
                            batch.que_id.as_deref().unwrap_or("-")
                        ),
                        detail: "ネクストエンジンに未登録の商品などが含まれていました。履歴でエラーの行を確認し、商品をネクストエンジンに登録したうえで、失敗した行をネクストエンジンに手動でアップロードしてください。".into(),
                        link: Some(("/history".into(), "履歴とCSVへ".into())),
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
            title: format!(
                "再送と区別できない在庫変動を {indistinguishable_changes} 件処理しました (要確認)"
            ),
            detail: "変動日時も履歴IDもない在庫情報は、スマレジの再送と区別できないまま計上しています。二重に計上されていないか、ネクストエンジンの在庫数を確認してください。確実に一度ずつ通知するため、在庫変動履歴の読み取りをおすすめします。".into(),
            link: Some(("/settings#stock-history".into(), "設定へ".into())),
        });
    }

    let reports = store.recent_reports(&tenant.id, RECENT_RUNS).await?;
    if reports
        .iter()
        .any(|r| r.sent_at.is_none() && r.attempts > 0 && r.last_error.is_some())
    {
        actions.push(ActionItem {
            title: "通知メールを送信できていません".into(),
            detail:
                "次回の実行で再送します。通知先メールアドレスが正しいか設定を確認してください。"
                    .into(),
            link: Some(("/settings".into(), "設定へ".into())),
        });
    }
    let runs = reports
        .iter()
        .map(|r| RunRow {
            at: jst(r.created_at),
            subject: r.subject.clone(),
            sent: match r.sent_at {
                Some(at) => format!("送信済み {}", jst(at)),
                None => "未送信".into(),
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
            title: format!("スマレジに登録できなかった受注が {failed_orders} 件あります"),
            detail: "履歴の「受注取込」で商品と数量を確認し、スマレジ管理画面 在庫 > 在庫情報 > 出荷登録 から手動で登録してください。".into(),
            link: Some(("/history#orders".into(), "受注取込の履歴へ".into())),
        });
    }
    // design.md §3: without history, absolute pushes without time cannot be ordered.
    if crate::stock_history::history_mode_since(&ctx, tenant)
        .await
        .is_none()
    {
        actions.push(ActionItem {
            title: "スマレジの在庫変動履歴を読み取っていません".into(),
            detail: "在庫の増減を順序どおり確実に通知するため、在庫変動履歴の読み取りをおすすめします (スマレジAPIの契約ID・アクセストークンを受注数取り込みの画面で登録し、機能設定で「在庫情報参照」も「利用する」にしてから、設定画面で読み取りを開始してください)。".into(),
            link: Some(("/settings#stock-history".into(), "設定へ".into())),
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
    let (flash, clear) = take_flash(&ctx, &headers);
    let view = DashboardPage {
        layout: Layout {
            title: "ダッシュボード",
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
        indistinguishable_changes,
    };
    page(&ctx, &view, clear)
}
