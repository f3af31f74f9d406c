//! 「未反映の行を再アップロード」: what the manual makes operators do by hand after
//! a failed file (register the missing goods, then upload the rows NextEngine
//! did not take), as one button. The rows are those NextEngine's stock in/out
//! history proved unapplied (see `sne_domain::row_application`); they go up as
//! a new frozen file through the same state machine, once per failed file.

use crate::AdminContext;
use crate::wording;
use sne_domain::TenantId;
use sne_domain::batch_state::BatchState;
use sne_domain::report::QueueOutcome;
use sne_domain::row_application::{RowVerdict, unapplied_lines};
use sne_domain::upload_csv::UploadLine;
use sne_domain::upload_csv::csv_key;
use sne_ports::{FollowUpRequest, StoreError, UploadBatch};

#[derive(Debug, thiserror::Error)]
pub enum ResendError {
    #[error("{}", wording::batch_not_found(.0))]
    NotFound(String),
    #[error("{}", wording::resend_not_failed(.0))]
    NotFailed(String),
    #[error("{}", wording::resend_already_done(.batch_id, .follow_up))]
    AlreadyResent { batch_id: String, follow_up: String },
    #[error("{}", wording::resend_nothing_unapplied(.0))]
    NothingToResend(String),
    #[error("{}", wording::BATCH_OPERATION_CONFLICT)]
    Conflict,
    #[error("{}", wording::batch_not_saved(.0))]
    Store(StoreError),
}

impl From<StoreError> for ResendError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(_) => ResendError::Conflict,
            other => ResendError::Store(other),
        }
    }
}

/// What became of each row of a failed file, as recorded when its queue ended.
pub fn row_verdicts(batch: &UploadBatch) -> &[RowVerdict] {
    match &batch.outcome {
        Some(QueueOutcome::Failed { rows, .. }) => rows,
        _ => &[],
    }
}

/// The rows the button would send.
pub fn rows_to_resend(batch: &UploadBatch, include_free_stock: bool) -> Vec<UploadLine> {
    if batch.state != BatchState::Failed || batch.follow_up.is_some() {
        return Vec::new();
    }
    unapplied_lines(row_verdicts(batch), include_free_stock)
}

/// Freezes the failed file's unapplied rows as a new file and asks for a run.
/// Exactly once: the request is planned on the revision read here and the store
/// refuses a second one, whoever sends it.
pub async fn resend_unapplied(
    ctx: &AdminContext,
    tenant: &TenantId,
    batch_id: &str,
    include_free_stock: bool,
    by: &str,
) -> Result<UploadBatch, ResendError> {
    let batch = ctx
        .storage
        .batch(tenant, batch_id)
        .await?
        .ok_or_else(|| ResendError::NotFound(batch_id.to_string()))?;
    if batch.state != BatchState::Failed {
        return Err(ResendError::NotFailed(batch_id.to_string()));
    }
    if let Some(done) = &batch.follow_up {
        return Err(ResendError::AlreadyResent {
            batch_id: batch_id.to_string(),
            follow_up: done.batch_id.clone(),
        });
    }
    let lines = rows_to_resend(&batch, include_free_stock);
    if lines.is_empty() {
        return Err(ResendError::NothingToResend(batch_id.to_string()));
    }
    let now = ctx.clock.now();
    let new_batch_id = format!("b_{}", uuid::Uuid::new_v4().simple());
    let request = FollowUpRequest {
        expected_revision: batch.revision,
        csv_key: Some(csv_key(tenant, &new_batch_id, now)),
        new_batch_id,
        lines,
        by: by.to_string(),
        at: now,
    };
    let resend = match ctx
        .storage
        .start_follow_up(tenant, batch_id, &request)
        .await
    {
        Ok(resend) => resend,
        Err(StoreError::Conflict(_)) => {
            // Lost a race: say what the winner did, if it was a re-send.
            let now_stored = ctx.storage.batch(tenant, batch_id).await?;
            return Err(match now_stored.and_then(|b| b.follow_up) {
                Some(done) => ResendError::AlreadyResent {
                    batch_id: batch_id.to_string(),
                    follow_up: done.batch_id,
                },
                None => ResendError::Conflict,
            });
        }
        Err(e) => return Err(e.into()),
    };
    tracing::info!(%tenant, batch = %batch_id, resend = %resend.batch_id, rows = resend.lines.len(),
        "unapplied rows frozen for re-upload");
    if let Err(e) = ctx.trigger.request_run(tenant).await {
        tracing::warn!(%tenant, error = %e, "run not requested after a re-upload of unapplied rows");
    }
    Ok(resend)
}
