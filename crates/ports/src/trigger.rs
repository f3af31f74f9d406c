use async_trait::async_trait;
use sne_domain::TenantId;

/// Asks for one tenant's run outside the schedule. Locally a message to the
/// in-process dispatcher; on AWS an event or a queue message.
#[async_trait]
pub trait RunTrigger: Send + Sync {
    /// 「今すぐ実行」: as soon as possible.
    async fn request_run(&self, tenant: &TenantId) -> Result<(), String>;

    /// 「差異を確認」: the tenant's drift check, beside its runs (a check may
    /// take minutes for a large shop, longer than a page may wait).
    async fn request_drift_check(&self, tenant: &TenantId) -> Result<(), String>;

    /// A push's changes are stored: a run within seconds, debounced so a burst
    /// becomes one file. Where nothing dispatches runs by event, the changes
    /// wait for the schedule, which is what the default does.
    async fn changes_stored(&self, _tenant: &TenantId) -> Result<(), String> {
        Ok(())
    }
}

/// The run queue of the fan-out on AWS (an SQS FIFO queue, design.md §5): one
/// message per run of one tenant, a tenant's runs one after another.
#[async_trait]
pub trait RunQueue: Send + Sync {
    /// Puts the requests on the queue. One whose dedupe id the queue saw
    /// lately is the same run and is dropped there.
    async fn enqueue(&self, requests: &[sne_domain::run_message::RunMessage])
    -> Result<(), String>;
}
