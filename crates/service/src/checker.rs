//! The queue checker (「前回の処理結果」): one `que_id-in` search per tenant for
//! every uploaded, unfinished batch.
//!
//! Recording an outcome and reporting it are apart on purpose: the checker only
//! records (`Uploaded → Succeeded | Failed`); the report takes every recorded
//! outcome no report has told yet and marks them in the same atomic step that
//! stores it. A crash between the two therefore delays a result, never loses or
//! repeats it.

use crate::Context;
use chrono::Duration as ChronoDuration;
use sne_domain::batch_state::BatchState;
use sne_domain::que_message::parse_que_message;
use sne_domain::report::{PreviousSection, QueueOutcome, QueueResult};
use sne_domain::row_application::{ApplyWindow, judge_rows};
use sne_domain::tenant::Tenant;
use sne_domain::time::to_jst;
use sne_domain::{GoodsCode, QueId};
use sne_ports::nextengine::{NeError, QueueEntry, QueueStatus};
use sne_ports::{Transition, UploadBatch};
use std::collections::HashSet;

/// Most queue outcomes one report tells; more wait for the next report (a DynamoDB
/// transaction marks them together with the report).
pub const MAX_OUTCOMES_PER_REPORT: usize = 40;

#[derive(Debug, Clone, Default)]
pub struct CheckRun {
    /// Queues still running past the overdue limit (told every run until they end).
    pub overdue: Vec<QueueResult>,
    /// The queue list could not be read; checked again next run.
    pub error: Option<String>,
}

pub async fn run_check(ctx: &Context, tenant: &Tenant) -> CheckRun {
    let error = |reason: String| CheckRun {
        overdue: vec![],
        error: Some(reason),
    };
    let batches = match ctx
        .storage
        .batches_in_state(&tenant.id, BatchState::Uploaded)
        .await
    {
        Ok(b) => b,
        Err(e) => return error(e.to_string()),
    };
    if batches.is_empty() {
        return CheckRun::default();
    }
    let que_ids: Vec<QueId> = batches.iter().filter_map(|b| b.que_id.clone()).collect();
    let entries = match ctx.nextengine.queues_by_id(&tenant.id, &que_ids).await {
        Ok(entries) => entries,
        Err(e) => return error(crate::wording::queue_check_failed(e)),
    };
    let now = ctx.clock.now();
    let mut overdue = Vec::new();
    for batch in batches {
        let Some(que_id) = batch.que_id.clone() else {
            continue;
        };
        let entry = entries.iter().find(|e| e.que_id == que_id);
        let outcome = match entry.map(|e| &e.status) {
            Some(QueueStatus::Done) => Some(QueueOutcome::Succeeded),
            Some(QueueStatus::Failed) => match entry {
                Some(entry) => failed_outcome(ctx, tenant, &batch, entry).await,
                None => None,
            },
            // Waiting, running, an unknown status, or not (yet) visible: wait.
            _ => None,
        };
        match outcome {
            Some(outcome) => {
                let to = if outcome == QueueOutcome::Succeeded {
                    BatchState::Succeeded
                } else {
                    BatchState::Failed
                };
                let mut t = Transition::of(&batch, to, now);
                t.outcome = Some(outcome);
                // Another run recording it first is just as good: the report step
                // reads recorded outcomes, whoever recorded them.
                if let Err(e) = ctx
                    .storage
                    .transition(&tenant.id, &batch.batch_id, &t)
                    .await
                {
                    tracing::info!(batch = %batch.batch_id, error = %e, "result not recorded by this run");
                }
            }
            None => {
                let since = batch.upload_started_at.unwrap_or(batch.updated_at);
                let waited = (now - since).to_std().unwrap_or_default();
                if waited >= ctx.config.queue_overdue_after {
                    overdue.push(QueueResult {
                        que_id,
                        batch_id: batch.batch_id.clone(),
                        outcome: QueueOutcome::Overdue {
                            minutes: (now - since).num_minutes(),
                        },
                        decision: batch.decision.clone(),
                    });
                }
            }
        }
    }
    CheckRun {
        overdue,
        error: None,
    }
}

/// A failed queue's row errors, and what NextEngine's stock in/out history says
/// became of each row (see `sne_domain::row_application`). `None` while a
/// passing trouble (overload, no answer, a token to renew) keeps the history
/// unread: the next run looks again, until `queue_overdue_after` has passed
/// since the upload; then, or for a refusal (no permission for the history),
/// the good rows' fate is recorded as unknown.
async fn failed_outcome(
    ctx: &Context,
    tenant: &Tenant,
    batch: &UploadBatch,
    entry: &QueueEntry,
) -> Option<QueueOutcome> {
    let uploaded: Vec<(String, i64)> = batch
        .lines
        .iter()
        .map(|l| (l.goods_code.to_string(), l.delta))
        .collect();
    let row_errors = parse_que_message(&entry.message, &uploaded);
    let started = batch.upload_started_at.unwrap_or(batch.updated_at);
    // NextEngine's own times bound the window; without them our clock does,
    // a minute early for the two clocks' difference.
    let window = ApplyWindow {
        from: entry
            .created_at
            .unwrap_or_else(|| to_jst(started) - ChronoDuration::minutes(1)),
        until: entry.modified_at,
    };
    let refused: HashSet<&str> = row_errors
        .iter()
        .filter_map(|e| e.goods_code.as_deref())
        .collect();
    let good: Vec<GoodsCode> = batch
        .lines
        .iter()
        .filter(|l| !refused.contains(l.goods_code.as_str()))
        .map(|l| l.goods_code.clone())
        .collect();
    let history = if good.is_empty() {
        Some(Vec::new())
    } else {
        match ctx
            .nextengine
            .stock_io_history(&tenant.id, &good, window.from)
            .await
        {
            Ok(history) => Some(history),
            Err(e) => {
                let passing = matches!(
                    e,
                    NeError::Busy { .. }
                        | NeError::Transport(_)
                        | NeError::Store(_)
                        | NeError::Token { .. }
                );
                let waited = (ctx.clock.now() - started).to_std().unwrap_or_default();
                if passing && waited < ctx.config.queue_overdue_after {
                    tracing::info!(tenant = %tenant.id, batch = %batch.batch_id, error = %e,
                        "stock in/out history unreadable for now: the failed queue is judged next run");
                    return None;
                }
                tracing::warn!(tenant = %tenant.id, batch = %batch.batch_id, error = %e,
                    "stock in/out history unreadable: the good rows' fate stays unknown");
                None
            }
        }
    };
    let rows = judge_rows(&batch.lines, &row_errors, history.as_deref(), window);
    Some(QueueOutcome::Failed {
        row_errors,
        raw_message: entry.message.clone(),
        rows,
    })
}

/// 「前回の処理結果」 for a report: the recorded outcomes no report has told yet
/// (which the report then marks) and the overdue queues of this run's check.
pub fn previous_section(check: &CheckRun, outcomes: &[UploadBatch]) -> PreviousSection {
    let mut results: Vec<QueueResult> = outcomes
        .iter()
        .filter_map(|b| {
            Some(QueueResult {
                que_id: b.que_id.clone()?,
                batch_id: b.batch_id.clone(),
                outcome: b.outcome.clone()?,
                decision: b.decision.clone(),
            })
        })
        .collect();
    results.extend(check.overdue.iter().cloned());
    match (&check.error, results.is_empty()) {
        (_, false) => PreviousSection::Results { results },
        (Some(reason), true) => PreviousSection::Error {
            reason: reason.clone(),
        },
        (None, true) => PreviousSection::Nothing,
    }
}
