//! The uploader: a frozen file goes to NextEngine exactly once, and an upload
//! whose answer was lost is resolved from NextEngine's queue (adopted, sent
//! again, or held for a person) before anything else is sent.
//!
//! The order of steps is what makes retries safe:
//! 1. an upload whose outcome is unknown is resolved from NextEngine's queue
//!    before anything else is sent;
//! 2. only frozen files go up (the batcher froze their lines with the stock
//!    mirror they used in one atomic step), so a retry sends the same bytes;
//! 3. `Uploading` is recorded before the call, so a crash during the call is
//!    recognised as "outcome unknown" by the next run.

use crate::Context;
use crate::sections::UploadError;
use crate::wording;
use chrono::Duration as ChronoDuration;
use sne_domain::QueId;
use sne_domain::batch_state::BatchState;
use sne_domain::report::UploadSection;
use sne_domain::tenant::Tenant;
use sne_domain::time::to_jst;
use sne_domain::upload_batch::{BatchError, BatchErrorKind, LostUpload, find_lost_upload};
use sne_domain::upload_csv::{csv_file_name, render_upload_csv};
use sne_ports::nextengine::NeError;
use sne_ports::{OperatorDecision, QueueCandidate, Transition, UploadBatch};
use std::collections::HashSet;

/// Uploads whose outcome is unknown come first: nothing new goes up until
/// NextEngine's queue tells whether they arrived, or a person decides. `Some`
/// when this run's upload ends here (a queue adopted, or too early to tell);
/// held files only add their notice, since deltas commute.
pub async fn settle_unknown_outcomes(
    ctx: &Context,
    tenant: &Tenant,
    notices: &mut Vec<String>,
) -> Result<Option<(UploadSection, Option<UploadBatch>)>, UploadError> {
    let store = &ctx.storage;
    let uploading = store
        .batches_in_state(&tenant.id, BatchState::Uploading)
        .await
        .map_err(UploadError::store(None))?;
    for batch in uploading {
        match resolve_unknown_outcome(ctx, tenant, &batch).await? {
            Resolution::Adopted(adopted) => {
                return Ok(Some((
                    uploaded_section(ctx, &adopted).await,
                    Some(*adopted),
                )));
            }
            Resolution::Wait(section) => return Ok(Some((section, None))),
            // Deltas commute: the held file waits for its person, later files go on.
            Resolution::Held(notice) => notices.push(notice),
            Resolution::SendAgain => {}
        }
    }
    let held = store
        .batches_in_state(&tenant.id, BatchState::NeedsAttention)
        .await
        .map_err(UploadError::store(None))?;
    if !held.is_empty() {
        notices.push(wording::held_uploads_waiting(held.len()));
    }

    Ok(None)
}

/// A frozen file left over from an earlier run, which goes up before any new one.
pub async fn next_frozen(
    ctx: &Context,
    tenant: &Tenant,
) -> Result<Option<UploadBatch>, UploadError> {
    let built = ctx
        .storage
        .batches_in_state(&tenant.id, BatchState::Built)
        .await
        .map_err(UploadError::store(None))?;
    Ok(built.into_iter().next())
}

pub async fn upload_batch(
    ctx: &Context,
    tenant: &Tenant,
    batch: UploadBatch,
) -> Result<(UploadSection, Option<UploadBatch>), UploadError> {
    let store = &ctx.storage;
    let batch_id = batch.batch_id.clone();
    let failed = UploadError::store(Some(&batch_id));
    let csv = render_upload_csv(&batch.lines);
    // The blob is derived from the frozen lines, so writing it again is harmless.
    if let Some(key) = &batch.csv_key {
        store_blob(ctx, key, &csv).await.map_err(&failed)?;
    }
    let uploading = store
        .transition(
            &tenant.id,
            &batch_id,
            &Transition::of(&batch, BatchState::Uploading, ctx.clock.now()),
        )
        .await
        .map_err(&failed)?;
    // Bounded well below the grace, so no attempt is still in flight when another
    // run concludes from the queue list that NextEngine never got the file.
    let sent = tokio::time::timeout(
        ctx.config.upload_deadline(),
        ctx.nextengine.upload_stock_csv(&tenant.id, &csv),
    )
    .await
    .unwrap_or_else(|_| {
        Err(NeError::Transport(
            "no answer within the upload deadline".into(),
        ))
    });
    match sent {
        Ok(que_id) => {
            let uploaded = record_que_id(ctx, tenant, &uploading, &que_id, None)
                .await
                .map_err(&failed)?;
            Ok((uploaded_section(ctx, &uploaded).await, Some(uploaded)))
        }
        Err(e) if e.outcome_unknown() => Ok((
            UploadSection::Unresolved {
                batch_id: batch_id.clone(),
                reason: wording::upload_unanswered(e),
            },
            None,
        )),
        Err(e) => {
            // An error envelope proves nothing was queued: the frozen file waits for
            // the next run.
            let mut back = Transition::of(&uploading, BatchState::Built, ctx.clock.now());
            let kind = match e {
                NeError::Token { .. } => BatchErrorKind::Token,
                _ => BatchErrorKind::Refused,
            };
            back.error = Some(BatchError::new(kind, e.to_string()));
            store
                .transition(&tenant.id, &batch_id, &back)
                .await
                .map_err(&failed)?;
            Err(UploadError::next_engine(&batch_id)(e))
        }
    }
}

async fn record_que_id(
    ctx: &Context,
    tenant: &Tenant,
    batch: &UploadBatch,
    que_id: &QueId,
    decision: Option<OperatorDecision>,
) -> Result<UploadBatch, sne_ports::StoreError> {
    let mut t = Transition::of(batch, BatchState::Uploaded, ctx.clock.now());
    t.que_id = Some(que_id.clone());
    t.decision = decision;
    ctx.storage
        .transition(&tenant.id, &batch.batch_id, &t)
        .await
}

async fn store_blob(ctx: &Context, key: &str, csv: &[u8]) -> Result<(), sne_ports::StoreError> {
    if ctx.blobs.get_blob(key).await?.as_deref() == Some(csv) {
        return Ok(());
    }
    ctx.blobs.put_blob(key, csv, "text/csv").await
}

/// The report's CSV link points at the admin screen's download route, never at
/// the blob store: an S3 link presigned by a Lambda dies with the role's temporary
/// credentials (hours), while the route mints a short-lived link per click after
/// login. The link carries no secret; without a public URL there is no link (the
/// CSV is attached to the mail anyway).
async fn uploaded_section(ctx: &Context, batch: &UploadBatch) -> UploadSection {
    let public_url = ctx.config.public_url.trim_end_matches('/');
    let download_url = (batch.csv_key.is_some() && !public_url.is_empty())
        .then(|| format!("{public_url}/history/batches/{}/csv", batch.batch_id));
    UploadSection::Uploaded {
        batch_id: batch.batch_id.clone(),
        que_id: batch.que_id.clone().unwrap_or_default(),
        products: batch.lines.len(),
        changes: batch.change_count,
        csv_file_name: csv_file_name(batch),
        download_url,
        parked: batch.parked.clone(),
    }
}

/// What became of an upload whose answer never arrived.
enum Resolution {
    /// Found in NextEngine's queue: it is `Uploaded` now.
    Adopted(Box<UploadBatch>),
    /// Too early to tell; nothing else goes up in this run.
    Wait(UploadSection),
    /// Ambiguous: held for a person, with this notice for the report.
    Held(String),
    /// Not in the queue after the grace: back to `Built`, sent again.
    SendAgain,
}

/// An upload call whose answer never arrived: find it in NextEngine's queue.
async fn resolve_unknown_outcome(
    ctx: &Context,
    tenant: &Tenant,
    batch: &UploadBatch,
) -> Result<Resolution, UploadError> {
    let store = &ctx.storage;
    let store_failed = UploadError::store(Some(&batch.batch_id));
    // The latest attempt's start: an earlier attempt's queue would have shown up
    // before that attempt was made.
    let started = batch.upload_started_at.unwrap_or(batch.updated_at);
    // Queue dates have second precision and NextEngine's clock is not ours.
    let since = to_jst(started - ChronoDuration::minutes(2));
    let queues = ctx
        .nextengine
        .goods_upload_queues_since(&tenant.id, since)
        .await
        .map_err(UploadError::next_engine(&batch.batch_id))?;
    let known: HashSet<QueId> = store
        .known_que_ids(&tenant.id)
        .await
        .map_err(&store_failed)?
        .into_iter()
        .collect();
    let candidates: Vec<QueueCandidate> = queues
        .into_iter()
        .filter(|q| !known.contains(&q.que_id))
        .map(|q| QueueCandidate {
            created_at: q
                .created_at
                .map(|t| t.format(sne_domain::time::API_FORMAT).to_string())
                .unwrap_or_default(),
            que_id: q.que_id,
            upload_name: q.upload_name,
            client_file_name: q.client_file_name,
        })
        .collect();
    let waited = (ctx.clock.now() - started).to_std().unwrap_or_default();
    match find_lost_upload(candidates) {
        LostUpload::Adopt(queue) => {
            let adopted = record_que_id(ctx, tenant, batch, &queue.que_id, None)
                .await
                .map_err(&store_failed)?;
            tracing::info!(tenant = %tenant.id, batch = %batch.batch_id, que_id = %queue.que_id,
                "adopted the queue of an upload whose answer was lost");
            Ok(Resolution::Adopted(Box::new(adopted)))
        }
        // A request still in flight could yet be queued, or be the one found.
        _ if waited < ctx.config.unknown_outcome_grace => {
            Ok(Resolution::Wait(UploadSection::Unresolved {
                batch_id: batch.batch_id.clone(),
                reason: wording::UPLOAD_BEING_CHECKED.into(),
            }))
        }
        LostUpload::NotFound => {
            let mut back = Transition::of(batch, BatchState::Built, ctx.clock.now());
            back.error = Some(BatchError::new(
                BatchErrorKind::NotQueued,
                wording::UPLOAD_NOT_QUEUED_SENT_AGAIN,
            ));
            store
                .transition(&tenant.id, &batch.batch_id, &back)
                .await
                .map_err(&store_failed)?;
            Ok(Resolution::SendAgain)
        }
        LostUpload::Ambiguous(candidates) => {
            let ids: Vec<_> = candidates.iter().map(|q| q.que_id.clone()).collect();
            let mut t = Transition::of(batch, BatchState::NeedsAttention, ctx.clock.now());
            t.error = Some(BatchError::new(
                BatchErrorKind::Unproven,
                wording::upload_candidate_queues(ids.join(",")),
            ));
            t.candidates = candidates;
            store
                .transition(&tenant.id, &batch.batch_id, &t)
                .await
                .map_err(&store_failed)?;
            Ok(Resolution::Held(wording::upload_held(
                &batch.batch_id,
                ids.join(","),
            )))
        }
    }
}
