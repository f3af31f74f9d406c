//! The queue checker (「前回の処理結果」): one `que_id-in` search per tenant for
//! every uploaded, unfinished batch.

use crate::Context;
use sne_domain::batch_state::BatchState;
use sne_domain::que_message::parse_que_message;
use sne_domain::report::{PreviousSection, QueueOutcome, QueueResult};
use sne_domain::tenant::Tenant;
use sne_ports::nextengine::QueueStatus;
use sne_ports::{Transition, UploadBatch};

#[derive(Debug, Clone)]
pub struct CheckRun {
    pub section: PreviousSection,
    /// Batches that finished in this run (their outcome is in the section).
    pub finished: Vec<UploadBatch>,
}

pub async fn run_check(ctx: &Context, tenant: &Tenant) -> CheckRun {
    let error = |reason: String| CheckRun {
        section: PreviousSection::Error { reason },
        finished: vec![],
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
        return CheckRun {
            section: PreviousSection::Nothing,
            finished: vec![],
        };
    }
    let que_ids: Vec<String> = batches.iter().filter_map(|b| b.que_id.clone()).collect();
    let entries = match ctx.nextengine.queues_by_id(&tenant.id, &que_ids).await {
        Ok(entries) => entries,
        Err(e) => return error(format!("{e}(次回の実行で再確認します)")),
    };
    let now = ctx.clock.now();
    let mut results = Vec::new();
    let mut finished = Vec::new();
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
                let mut t = Transition::new(BatchState::Uploaded, to, now);
                t.outcome = Some(outcome.clone());
                match ctx
                    .storage
                    .transition(&tenant.id, &batch.batch_id, &t)
                    .await
                {
                    Ok(done) => {
                        results.push(QueueResult {
                            que_id,
                            batch_id: batch.batch_id.clone(),
                            outcome,
                        });
                        finished.push(done);
                    }
                    // Another run recorded it first; that run reports it.
                    Err(e) => {
                        tracing::info!(batch = %batch.batch_id, error = %e, "result already recorded")
                    }
                }
            }
            None => {
                let since = batch.upload_started_at.unwrap_or(batch.updated_at);
                let waited = (now - since).to_std().unwrap_or_default();
                if waited >= ctx.config.queue_overdue_after {
                    results.push(QueueResult {
                        que_id,
                        batch_id: batch.batch_id.clone(),
                        outcome: QueueOutcome::Overdue {
                            minutes: (now - since).num_minutes(),
                        },
                    });
                }
            }
        }
    }
    CheckRun {
        section: if results.is_empty() {
            PreviousSection::Nothing
        } else {
            PreviousSection::Results { results }
        },
        finished,
    }
}
