//! The reporter: every run's report goes into the outbox first and is sent from
//! there, so a report that cannot be sent now goes out with a later run (design.md §5).

use crate::Context;
use sne_domain::report::{QueueOutcome, RenderedReport, RunReport, digest};
use sne_domain::row_application::unapplied_lines;
use sne_domain::tenant::Tenant;
use sne_domain::upload_csv::csv_file_name;
use sne_domain::upload_csv::render_upload_csv;
use sne_ports::{Attachment, Mail, OutboxReport, StoreError, StoredAttachment, UploadBatch};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SendOutcome {
    pub sent: usize,
    pub failed: usize,
    /// Pending reports another run was sending (claimed by it); that run sends them.
    pub skipped: usize,
}

/// Puts the run's report into the outbox (unless there is nothing to say), marking
/// the `finished` batches whose outcomes it tells in the same atomic step.
pub async fn enqueue_report(
    ctx: &Context,
    tenant: &Tenant,
    run_id: &str,
    report: &RunReport,
    uploaded: &[UploadBatch],
    finished: &[UploadBatch],
) -> Result<Option<String>, StoreError> {
    if !report.is_worth_sending() {
        return Ok(None);
    }
    let rendered = report.render();
    let mut attachments = Vec::new();
    for (batch, key) in uploaded
        .iter()
        .filter_map(|b| b.csv_key.as_ref().map(|k| (b, k)))
    {
        attachments.push(StoredAttachment {
            file_name: csv_file_name(batch),
            content_type: "text/csv".into(),
            blob_key: key.clone(),
        });
    }
    for batch in finished {
        if let Some(attachment) = retry_file(ctx, batch).await? {
            attachments.push(attachment);
        }
    }
    let id = format!("{run_id}-{}", tenant.id);
    ctx.storage
        .enqueue_report(&OutboxReport {
            id: id.clone(),
            tenant_id: tenant.id.clone(),
            created_at: ctx.clock.now(),
            to: tenant.notify_emails.clone(),
            subject: rendered.subject,
            body: rendered.body,
            attachments,
            sent_at: None,
            attempts: 0,
            last_error: None,
            reported_batches: finished.iter().map(|b| b.batch_id.clone()).collect(),
            claim: None,
        })
        .await?;
    Ok(Some(id))
}

/// For a failed queue, a file with only the rows NextEngine did not apply (as
/// its stock in/out history showed): re-uploading the whole file would count
/// the applied rows twice. Free-stock refusals are in it (the advice says when
/// to leave them out); rows whose fate is unknown are not.
async fn retry_file(
    ctx: &Context,
    batch: &UploadBatch,
) -> Result<Option<StoredAttachment>, StoreError> {
    let Some(QueueOutcome::Failed { rows, .. }) = &batch.outcome else {
        return Ok(None);
    };
    let lines = unapplied_lines(rows, true);
    let (Some(key), false) = (&batch.csv_key, lines.is_empty()) else {
        return Ok(None);
    };
    let retry_key = key.replace(".csv", "-failed-rows.csv");
    ctx.blobs
        .put_blob(&retry_key, &render_upload_csv(&lines), "text/csv")
        .await?;
    Ok(Some(StoredAttachment {
        file_name: format!(
            "failed_rows_{}.csv",
            batch.que_id.as_deref().unwrap_or(&batch.batch_id)
        ),
        content_type: "text/csv".into(),
        blob_key: retry_key,
    }))
}

/// Most reports one mail gathers: a digest stays well under the mail size
/// limits (SES: 40 MB) with each report's CSVs attached.
pub const MAX_REPORTS_PER_MAIL: usize = 30;

/// Sends every unsent report of the tenant, oldest first; reports waiting
/// together for the same recipients go as one mail ([`digest`]). Each is
/// claimed before it is sent, so runs that overlap (two processes, two
/// Lambdas) never send the same report twice while a claim runs; one whose
/// sender died goes out with the first run after its lease (`report_send_lease`).
pub async fn send_pending(ctx: &Context, tenant: &Tenant) -> SendOutcome {
    let mut outcome = SendOutcome::default();
    let pending = match ctx.storage.pending_reports(&tenant.id).await {
        Ok(p) => p,
        Err(e) => {
            tracing::error!(tenant = %tenant.id, error = %e, "outbox unreadable");
            return outcome;
        }
    };
    let owner = format!("send-{}", uuid::Uuid::new_v4().simple());
    let lease = chrono::Duration::from_std(ctx.config.report_send_lease)
        .unwrap_or(chrono::Duration::minutes(5));
    let mut claimed: Vec<OutboxReport> = Vec::new();
    for report in pending {
        let now = ctx.clock.now();
        match ctx
            .storage
            .claim_report(&tenant.id, &report.id, &owner, now, now + lease)
            .await
        {
            Ok(true) => claimed.push(report),
            Ok(false) => {
                tracing::info!(tenant = %tenant.id, report = %report.id, "report being sent by another run");
                outcome.skipped += 1;
            }
            Err(e) => {
                // Unclaimed, it stays pending for the next run.
                tracing::warn!(tenant = %tenant.id, report = %report.id, error = %e, "report not claimed");
                outcome.failed += 1;
            }
        }
    }
    for group in mail_groups(claimed) {
        match send_group(ctx, &group).await {
            Ok(()) => {
                for report in &group {
                    match ctx
                        .storage
                        .mark_report_sent(&tenant.id, &report.id, &owner, ctx.clock.now())
                        .await
                    {
                        Ok(true) => {}
                        // The send outlasted the lease and another run took the report
                        // over: it may go out twice, the price of not losing it.
                        Ok(false) => tracing::warn!(
                            tenant = %tenant.id, report = %report.id,
                            "report sent after its claim was taken over"
                        ),
                        // The mail went out; at worst it is sent once more after the lease.
                        Err(e) => {
                            tracing::error!(tenant = %tenant.id, error = %e, "sent report not marked")
                        }
                    }
                }
                outcome.sent += group.len();
            }
            Err(e) => {
                for report in &group {
                    tracing::warn!(tenant = %tenant.id, report = %report.id, error = %e, "report not sent");
                    if let Err(e) = ctx
                        .storage
                        .record_report_failure(&tenant.id, &report.id, &owner, &e)
                        .await
                    {
                        // The claim runs out by itself; the next run after it retries.
                        tracing::warn!(tenant = %tenant.id, error = %e, "report failure not recorded");
                    }
                }
                outcome.failed += group.len();
            }
        }
    }
    outcome
}

/// Consecutive reports for the same recipients, at most
/// [`MAX_REPORTS_PER_MAIL`] a mail, oldest first.
fn mail_groups(reports: Vec<OutboxReport>) -> Vec<Vec<OutboxReport>> {
    let mut groups: Vec<Vec<OutboxReport>> = Vec::new();
    for report in reports {
        match groups.last_mut() {
            Some(group) if group.len() < MAX_REPORTS_PER_MAIL && group[0].to == report.to => {
                group.push(report)
            }
            _ => groups.push(vec![report]),
        }
    }
    groups
}

async fn send_group(ctx: &Context, group: &[OutboxReport]) -> Result<(), String> {
    let rendered: Vec<RenderedReport> = group
        .iter()
        .map(|r| RenderedReport {
            subject: r.subject.clone(),
            body: r.body.clone(),
        })
        .collect();
    let Some(mail) = digest(&rendered) else {
        return Ok(());
    };
    let mut attachments = Vec::new();
    for report in group {
        attachments.extend(report.attachments.iter().cloned());
    }
    send_one(
        ctx,
        &OutboxReport {
            subject: mail.subject,
            body: mail.body,
            attachments,
            ..group[0].clone()
        },
    )
    .await
}

async fn send_one(ctx: &Context, report: &OutboxReport) -> Result<(), String> {
    let mut attachments = Vec::new();
    for stored in &report.attachments {
        let bytes = ctx
            .blobs
            .get_blob(&stored.blob_key)
            .await
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("attachment {} missing", stored.blob_key))?;
        attachments.push(Attachment {
            file_name: stored.file_name.clone(),
            content_type: stored.content_type.clone(),
            bytes,
        });
    }
    let mail = Mail {
        from: ctx.config.mail_from.clone(),
        to: report.to.clone(),
        subject: report.subject.clone(),
        body: report.body.clone(),
        attachments,
    };
    ctx.mailer
        .send(&mail)
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}
