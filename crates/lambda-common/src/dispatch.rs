//! The dispatcher function: the uploader's schedule and 「今すぐ実行」 in, one
//! run message per tenant out (design.md §5). It only enqueues, so it finishes
//! in seconds for any number of shops; the uploader runs each message.

use crate::scheduled::{EventError, Invocation, ScheduledEvent, classify_dispatch};
use lambda_runtime::LambdaEvent;
use serde::{Deserialize, Serialize};
use sne_domain::run_message::RunMessage;
use sne_ports::{RunQueue, TenantStore};
use std::sync::Arc;

/// All the dispatcher reaches: the tenants (read) and the run queue (send).
#[derive(Clone)]
pub struct DispatchContext {
    pub tenants: Arc<dyn TenantStore>,
    pub queue: Arc<dyn RunQueue>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct DispatchSummary {
    /// The tenants a run message was sent for.
    pub enqueued: Vec<String>,
}

/// A schedule firing becomes a message per tenant, deduplicated by the firing's
/// time, so Lambda's retry of this invocation enqueues nothing twice; a
/// RunRequested becomes one message. Errors (storage, queue, a stray event)
/// fail the invocation, which Lambda retries and finally dead-letters.
pub async fn handle_dispatch(
    ctx: &DispatchContext,
    event: LambdaEvent<ScheduledEvent>,
) -> Result<DispatchSummary, lambda_runtime::Error> {
    // EventBridge stamps every event; the stamp keeps a retry's messages the same.
    let fired_at = event.payload.time.unwrap_or_else(chrono::Utc::now);
    let messages = match classify_dispatch(&event.payload)? {
        Invocation::AllTenants => ctx
            .tenants
            .list_tenants()
            .await?
            .into_iter()
            .map(|t| RunMessage::schedule(t.id, fired_at))
            .collect::<Vec<_>>(),
        Invocation::Tenant(id) => {
            if ctx.tenants.tenant(&id).await?.is_none() {
                return Err(EventError::UnknownTenant(id.0).into());
            }
            vec![RunMessage::now(id, fired_at)]
        }
    };
    ctx.queue
        .enqueue(&messages)
        .await
        .map_err(|e| format!("run messages not sent: {e}"))?;
    tracing::info!(
        request_id = %event.context.request_id,
        messages = messages.len(),
        "runs dispatched"
    );
    Ok(DispatchSummary {
        enqueued: messages.into_iter().map(|m| m.tenant_id.0).collect(),
    })
}
