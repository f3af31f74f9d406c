//! Run requests — 「今すぐ実行」 and stored pushes: locally as messages to the
//! process's [`crate::dispatch`], on AWS as messages of the run queue.

use async_trait::async_trait;
use sne_domain::TenantId;
use sne_domain::run_message::RunMessage;
use sne_ports::{Clock, RunQueue, RunTrigger};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunRequest {
    /// New changes are stored: a run after the debounce.
    Changes(TenantId),
    /// 「今すぐ実行」: a run as soon as the tenant has none in flight.
    Now(TenantId),
    /// 「差異を確認」: a drift check beside the tenant's runs.
    Drift(TenantId),
}

pub struct QueuedTrigger(mpsc::UnboundedSender<RunRequest>);

pub fn queued_trigger() -> (QueuedTrigger, mpsc::UnboundedReceiver<RunRequest>) {
    let (tx, rx) = mpsc::unbounded_channel();
    (QueuedTrigger(tx), rx)
}

impl QueuedTrigger {
    fn send(&self, request: RunRequest) -> Result<(), String> {
        self.0
            .send(request)
            .map_err(|_| "the scheduler is not running".to_string())
    }
}

#[async_trait]
impl RunTrigger for QueuedTrigger {
    async fn request_run(&self, tenant: &TenantId) -> Result<(), String> {
        self.send(RunRequest::Now(tenant.clone()))
    }

    async fn changes_stored(&self, tenant: &TenantId) -> Result<(), String> {
        self.send(RunRequest::Changes(tenant.clone()))
    }

    async fn request_drift_check(&self, tenant: &TenantId) -> Result<(), String> {
        self.send(RunRequest::Drift(tenant.clone()))
    }
}

/// Run requests as messages of a [`RunQueue`]: what the webhook and the admin
/// screen send on AWS, where the runner consumes them one tenant at a time.
pub struct QueueTrigger {
    pub queue: Arc<dyn RunQueue>,
    pub clock: Arc<dyn Clock>,
    /// The quiet window: pushes within one are one message (and one run).
    pub quiet: Duration,
}

#[async_trait]
impl RunTrigger for QueueTrigger {
    async fn request_run(&self, tenant: &TenantId) -> Result<(), String> {
        self.queue
            .enqueue(&[RunMessage::now(tenant.clone(), self.clock.now())])
            .await
    }

    async fn request_drift_check(&self, tenant: &TenantId) -> Result<(), String> {
        self.queue
            .enqueue(&[RunMessage::drift(tenant.clone(), self.clock.now())])
            .await
    }

    async fn changes_stored(&self, tenant: &TenantId) -> Result<(), String> {
        self.queue
            .enqueue(&[RunMessage::changes(
                tenant.clone(),
                self.clock.now(),
                self.quiet,
            )])
            .await
    }
}
