//! 「今すぐ実行」 on AWS: an EventBridge event that the uploader's rule receives.

use async_trait::async_trait;
use aws_sdk_eventbridge::Client;
use aws_sdk_eventbridge::error::DisplayErrorContext;
use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use sne_domain::TenantId;
use sne_ports::RunTrigger;

pub const EVENT_SOURCE: &str = "smaregi-ne.admin";
pub const RUN_REQUESTED: &str = "RunRequested";
/// 「差異を確認」: the drift checker's own request.
pub const DRIFT_CHECK_REQUESTED: &str = "DriftCheckRequested";

#[derive(Clone, Debug)]
pub struct EventBridgeTrigger {
    client: Client,
    bus: String,
}

impl EventBridgeTrigger {
    pub fn new(client: Client, bus: impl Into<String>) -> Self {
        EventBridgeTrigger {
            client,
            bus: bus.into(),
        }
    }
}

#[async_trait]
impl RunTrigger for EventBridgeTrigger {
    async fn request_run(&self, tenant: &TenantId) -> Result<(), String> {
        self.put(RUN_REQUESTED, tenant).await
    }

    async fn request_drift_check(&self, tenant: &TenantId) -> Result<(), String> {
        self.put(DRIFT_CHECK_REQUESTED, tenant).await
    }
}

impl EventBridgeTrigger {
    async fn put(&self, detail_type: &str, tenant: &TenantId) -> Result<(), String> {
        let detail = serde_json::json!({ "tenant_id": tenant.as_str() }).to_string();
        let out = self
            .client
            .put_events()
            .entries(
                PutEventsRequestEntry::builder()
                    .event_bus_name(&self.bus)
                    .source(EVENT_SOURCE)
                    .detail_type(detail_type)
                    .detail(detail)
                    .build(),
            )
            .send()
            .await
            .map_err(|e| DisplayErrorContext(e).to_string())?;
        // PutEvents answers 200 even when an entry was refused; the entry says so.
        if out.failed_entry_count > 0 {
            let why = out
                .entries()
                .iter()
                .filter_map(|e| e.error_message())
                .collect::<Vec<_>>()
                .join("; ");
            return Err(format!("EventBridge refused the run request: {why}"));
        }
        Ok(())
    }
}
