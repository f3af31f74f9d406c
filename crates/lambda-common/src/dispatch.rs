//! The dispatchers: a schedule (or 「今すぐ実行」) in, one run message per
//! tenant out (design.md §5). They only enqueue, so they finish in seconds for
//! any number of shops; the uploader (the runner) runs each message, in the
//! tenant's group, so one tenant's slow run delays no other.

use crate::scheduled::{
    EventError, Invocation, ScheduledEvent, classify_dispatch, classify_drift, classify_schedule,
};
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

/// Which schedule a dispatcher serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DispatchKind {
    /// The uploader's schedule (queue check, upload, report) and 「今すぐ実行」.
    Stock,
    /// The order importer's schedule, for the tenants with the import on.
    Orders,
    /// The queue checker's schedule.
    Check,
    /// The daily drift check (tenants with Smaregi API access) and 「差異を確認」.
    Drift,
}

/// A schedule firing becomes a message per tenant, deduplicated by the firing's
/// time, so Lambda's retry of this invocation enqueues nothing twice; a
/// RunRequested (to the stock dispatcher only) becomes one message. Errors
/// (storage, queue, a stray event) fail the invocation, which Lambda retries
/// and finally dead-letters.
pub async fn handle_dispatch(
    ctx: &DispatchContext,
    kind: DispatchKind,
    event: LambdaEvent<ScheduledEvent>,
) -> Result<DispatchSummary, lambda_runtime::Error> {
    // EventBridge stamps every event; the stamp keeps a retry's messages the same.
    let fired_at = event.payload.time.unwrap_or_else(chrono::Utc::now);
    let invocation = match kind {
        DispatchKind::Stock => classify_dispatch(&event.payload)?,
        DispatchKind::Orders | DispatchKind::Check => classify_schedule(&event.payload)?,
        DispatchKind::Drift => classify_drift(&event.payload)?,
    };
    let messages = match invocation {
        Invocation::AllTenants => ctx
            .tenants
            .list_tenants()
            .await?
            .into_iter()
            .filter_map(|t| match kind {
                DispatchKind::Stock => Some(RunMessage::schedule(t.id, fired_at)),
                DispatchKind::Orders => t
                    .order_import
                    .enabled
                    .then(|| RunMessage::orders(t.id, fired_at)),
                DispatchKind::Check => Some(RunMessage::check(t.id, fired_at)),
                DispatchKind::Drift => t
                    .smaregi_api
                    .is_some()
                    .then(|| RunMessage::drift(t.id, fired_at)),
            })
            .collect::<Vec<_>>(),
        Invocation::Tenant(id) => {
            if ctx.tenants.tenant(&id).await?.is_none() {
                return Err(EventError::UnknownTenant(id.0).into());
            }
            vec![match kind {
                DispatchKind::Drift => RunMessage::drift(id, fired_at),
                _ => RunMessage::now(id, fired_at),
            }]
        }
    };
    ctx.queue
        .enqueue(&messages)
        .await
        .map_err(|e| format!("run messages not sent: {e}"))?;
    tracing::info!(
        request_id = %event.context.request_id,
        ?kind,
        messages = messages.len(),
        "runs dispatched"
    );
    Ok(DispatchSummary {
        enqueued: messages.into_iter().map(|m| m.tenant_id.0).collect(),
    })
}
