//! The local run requests: 「今すぐ実行」 and stored pushes, as messages to the
//! process's [`crate::dispatch`].

use async_trait::async_trait;
use sne_domain::TenantId;
use sne_ports::RunTrigger;
use tokio::sync::mpsc;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunRequest {
    /// New changes are stored: a run after the debounce.
    Changes(TenantId),
    /// 「今すぐ実行」: a run as soon as the tenant has none in flight.
    Now(TenantId),
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
}
