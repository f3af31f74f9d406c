//! The uploader function as the runner of the run queue: one SQS message, one
//! tenant's run (design.md §5). The queue's FIFO group keeps a tenant's runs
//! one after another; the event source's maximum concurrency bounds how many
//! tenants run at once, and so the calls against both APIs.

use crate::scheduled::TenantSummary;
use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use lambda_runtime::LambdaEvent;
use sne_domain::run_message::{RunMessage, RunReason};
use sne_service::Context;
use sne_service::run::{Jobs, Mailing, new_run_id, run_tenant_with};
use std::collections::HashSet;

/// What a message's run does, and whether it mails its report.
/// `None` for a drift check, which is no job of a run (see `run_drift`).
pub fn plan(reason: RunReason) -> Option<(Jobs, Mailing)> {
    Some(match reason {
        // A push's upload; its report goes out with the next scheduled run.
        RunReason::Changes => (Jobs::Upload, Mailing::Defer),
        // The stock path: queue check, upload, report (the order importer
        // has its own schedule, so two imports never race).
        RunReason::Schedule | RunReason::Now => (Jobs::Stock, Mailing::Send),
        // The order import's own schedule, in the tenant's group like its
        // uploads, so no two imports of a tenant ever overlap.
        RunReason::Orders => (Jobs::ImportOrders, Mailing::Send),
        RunReason::Check => (Jobs::CheckQueue, Mailing::Send),
        RunReason::Drift => return None,
    })
}

/// Runs each message's tenant. A tenant's failed run is in its report and is
/// not a failure of the message; a message whose run could not start (bad
/// body, unknown tenant, storage down) is, and SQS gives it back — after the
/// queue's receive limit it lands in the dead-letter queue, whose alarm tells
/// the operator. Later messages of a failed message's tenant fail with it, as
/// FIFO order requires.
pub async fn handle_run_messages(
    ctx: &Context,
    event: LambdaEvent<SqsEvent>,
) -> Result<SqsBatchResponse, lambda_runtime::Error> {
    let mut failures = Vec::new();
    let mut failed_groups = HashSet::new();
    for record in &event.payload.records {
        let id = record.message_id.clone().unwrap_or_default();
        let group = record.attributes.get("MessageGroupId").cloned();
        if group.as_ref().is_some_and(|g| failed_groups.contains(g)) {
            failures.push(id);
            continue;
        }
        if let Err(e) = run_message(ctx, record).await {
            tracing::error!(message = %id, error = %e, "run message failed; SQS gives it back");
            failures.push(id);
            failed_groups.extend(group);
        }
    }
    let mut response = SqsBatchResponse::default();
    response.set_failures(failures);
    Ok(response)
}

async fn run_message(ctx: &Context, record: &SqsMessage) -> Result<(), String> {
    let message = RunMessage::parse(record.body.as_deref().unwrap_or(""))?;
    let tenant = ctx
        .storage
        .tenant(&message.tenant_id)
        .await
        .map_err(|e| format!("tenant unreadable: {e}"))?
        .ok_or_else(|| format!("run message for unknown tenant {}", message.tenant_id))?;
    let run_id = new_run_id(ctx);
    let run = match plan(message.reason) {
        Some((jobs, mailing)) => run_tenant_with(ctx, &tenant, jobs, &run_id, mailing).await,
        None => sne_service::drift::run_drift(ctx, &tenant, &run_id, Mailing::Send).await,
    };
    let summary = TenantSummary::from(&run);
    if summary.mails_failed > 0 {
        // Kept in the outbox and retried by the next sending run.
        tracing::error!(tenant = %summary.tenant_id, failed = summary.mails_failed, "report mail not sent");
    }
    tracing::info!(
        tenant = %summary.tenant_id,
        reason = ?message.reason,
        upload = %summary.upload,
        "run finished"
    );
    Ok(())
}
