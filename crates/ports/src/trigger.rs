use async_trait::async_trait;
use sne_domain::TenantId;

/// 「今すぐ実行」: asks for one tenant's run as soon as possible, outside the schedule.
/// Locally a message to the in-process scheduler; on AWS an EventBridge event.
#[async_trait]
pub trait RunTrigger: Send + Sync {
    async fn request_run(&self, tenant: &TenantId) -> Result<(), String>;
}
