//! Uploads held as 要確認: the answer of an upload was lost and NextEngine's queue
//! list could not prove which queue (if any) was ours. Later files keep flowing;
//! a person decides this one on the admin screen or with the CLI, and the
//! decision (who, when) is kept on the batch and told in the report with its
//! queue result.

use crate::wording;
use crate::{AdminContext, Core};
use sne_domain::batch_state::BatchState;
use sne_domain::upload_batch::{DecisionAction, OperatorDecision};
use sne_domain::upload_csv::render_upload_csv;
use sne_domain::{QueId, TenantId};
use sne_ports::{StoreError, Transition, UploadBatch};

/// What a person decided for a held upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeldDecision {
    /// 「アップロード済みとして扱う」: NextEngine has the file under `que_id` (one of
    /// the candidates, or an id the operator read on NextEngine's queue screen).
    TreatAsUploaded { que_id: QueId },
    /// 「再アップロードする」: NextEngine never got it; the frozen file goes up again.
    Reupload,
}

#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error("{}", wording::batch_not_found(.0))]
    NotFound(String),
    #[error("{}", wording::held_not_held(.0))]
    NotHeld(String),
    #[error("{}", wording::HELD_QUE_ID_NOT_DIGITS)]
    BadQueId,
    #[error("{}", wording::held_que_id_taken(.0))]
    QueIdTaken(QueId),
    #[error("{}", wording::BATCH_OPERATION_CONFLICT)]
    Conflict,
    #[error("{}", wording::batch_not_saved(.0))]
    Store(StoreError),
}

impl From<StoreError> for ResolveError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(_) => ResolveError::Conflict,
            other => ResolveError::Store(other),
        }
    }
}

/// The tenant's held uploads, oldest first.
pub async fn held_uploads(ctx: &Core, tenant: &TenantId) -> Result<Vec<UploadBatch>, StoreError> {
    ctx.storage
        .batches_in_state(tenant, BatchState::NeedsAttention)
        .await
}

/// The held file exactly as it was (and will be) uploaded.
pub fn held_csv(batch: &UploadBatch) -> Vec<u8> {
    render_upload_csv(&batch.lines)
}

/// Records `by`'s decision on the held batch. Exactly once: the step is planned
/// on the revision read here, so two people deciding at once cannot both act.
pub async fn resolve_held(
    ctx: &AdminContext,
    tenant: &TenantId,
    batch_id: &str,
    decision: HeldDecision,
    by: &str,
) -> Result<UploadBatch, ResolveError> {
    let batch = ctx
        .storage
        .batch(tenant, batch_id)
        .await?
        .ok_or_else(|| ResolveError::NotFound(batch_id.to_string()))?;
    if batch.state != BatchState::NeedsAttention {
        return Err(ResolveError::NotHeld(batch_id.to_string()));
    }
    let now = ctx.clock.now();
    let (to, action, que_id) = match decision {
        HeldDecision::TreatAsUploaded { que_id } => {
            let que_id = QueId::from(que_id.trim());
            if que_id.is_empty() || !que_id.chars().all(|c| c.is_ascii_digit()) {
                return Err(ResolveError::BadQueId);
            }
            // One queue is one file: taking another batch's queue would leave
            // this file unsent with nobody knowing.
            if ctx.storage.known_que_ids(tenant).await?.contains(&que_id) {
                return Err(ResolveError::QueIdTaken(que_id));
            }
            (
                BatchState::Uploaded,
                DecisionAction::TreatAsUploaded,
                Some(que_id),
            )
        }
        HeldDecision::Reupload => (BatchState::Built, DecisionAction::Reupload, None),
    };
    let mut t = Transition::of(&batch, to, now);
    t.que_id = que_id.clone();
    t.decision = Some(OperatorDecision {
        action,
        by: by.to_string(),
        at: now,
        que_id,
    });
    let resolved = ctx.storage.transition(tenant, batch_id, &t).await?;
    tracing::info!(%tenant, batch = %batch_id, ?action, "held upload resolved");
    if action == DecisionAction::Reupload {
        // The sooner the better; the schedule sends it otherwise.
        if let Err(e) = ctx.trigger.request_run(tenant).await {
            tracing::warn!(%tenant, error = %e, "run not requested after a re-upload decision");
        }
    }
    Ok(resolved)
}
