//! The queue checker (「前回の処理結果」): one `que_id-in` search per tenant for
//! every uploaded, unfinished batch.
//!
//! Recording an outcome and reporting it are apart on purpose: the checker only
//! records (`Uploaded → Succeeded | Failed`); the report takes every recorded
//! outcome no report has told yet and marks them in the same atomic step that
//! stores it. A crash between the two therefore delays a result, never loses or
//! repeats it.

use crate::Context;
use sne_domain::batch_state::BatchState;
use sne_domain::que_message::parse_que_message;
use sne_domain::report::{PreviousSection, QueueOutcome, QueueResult};
use sne_domain::tenant::Tenant;
use sne_ports::nextengine::QueueStatus;
use sne_ports::{Transition, UploadBatch};

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
    let que_ids: Vec<String> = batches.iter().filter_map(|b| b.que_id.clone()).collect();
    let entries = match ctx.nextengine.queues_by_id(&tenant.id, &que_ids).await {
        Ok(entries) => entries,
        Err(e) => return error(format!("{e}(次回の実行で再確認します)")),
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
            Some(QueueStatus::Failed) => {
                let message = entry.map(|e| e.message.clone()).unwrap_or_default();
                let uploaded: Vec<(String, i64)> = batch
                    .lines
                    .iter()
                    .map(|l| (l.goods_code.clone(), l.delta))
                    .collect();
                Some(QueueOutcome::Failed {
                    row_errors: parse_que_message(&message, &uploaded),
                    raw_message: message,
                    good_rows_applied: ctx.config.good_rows_applied_on_failure,
                })
            }
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
