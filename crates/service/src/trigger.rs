//! The local 「今すぐ実行」: requests queue up for the in-process scheduler.

use async_trait::async_trait;
use sne_domain::TenantId;
use sne_ports::RunTrigger;
use tokio::sync::mpsc;

pub struct QueuedTrigger(mpsc::UnboundedSender<TenantId>);

pub fn queued_trigger() -> (QueuedTrigger, mpsc::UnboundedReceiver<TenantId>) {
    let (tx, rx) = mpsc::unbounded_channel();
    (QueuedTrigger(tx), rx)
}

#[async_trait]
impl RunTrigger for QueuedTrigger {
    async fn request_run(&self, tenant: &TenantId) -> Result<(), String> {
        self.0
            .send(tenant.clone())
            .map_err(|_| "the scheduler is not running".to_string())
    }
}
