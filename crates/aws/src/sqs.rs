//! The run queue on SQS FIFO: the group is the tenant, so a tenant's runs never
//! overlap while different tenants run side by side, and the deduplication id
//! is the run's ([`RunMessage`]), so SQS drops a message asking for a run it
//! already holds (within its five-minute window).

use async_trait::async_trait;
use aws_sdk_sqs::Client;
use aws_sdk_sqs::error::DisplayErrorContext;
use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
use sne_domain::run_message::RunMessage;
use sne_ports::RunQueue;

/// Entries SQS takes in one `SendMessageBatch`.
pub const SQS_BATCH_LIMIT: usize = 10;

#[derive(Clone, Debug)]
pub struct SqsRunQueue {
    client: Client,
    queue_url: String,
}

impl SqsRunQueue {
    pub fn new(client: Client, queue_url: impl Into<String>) -> Self {
        SqsRunQueue {
            client,
            queue_url: queue_url.into(),
        }
    }
}

#[async_trait]
impl RunQueue for SqsRunQueue {
    async fn enqueue(&self, requests: &[RunMessage]) -> Result<(), String> {
        for chunk in requests.chunks(SQS_BATCH_LIMIT) {
            let entries = chunk
                .iter()
                .enumerate()
                .map(|(n, request)| {
                    SendMessageBatchRequestEntry::builder()
                        .id(n.to_string())
                        .message_body(request.body())
                        .message_group_id(request.group_id())
                        .message_deduplication_id(&request.dedupe_id)
                        .build()
                        .map_err(|e| e.to_string())
                })
                .collect::<Result<Vec<_>, _>>()?;
            let out = self
                .client
                .send_message_batch()
                .queue_url(&self.queue_url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| DisplayErrorContext(e).to_string())?;
            // The batch call answers 200 when single entries were refused.
            if let Some(failed) = out.failed().first() {
                return Err(format!(
                    "SQS refused {} of {} run messages: {} {}",
                    out.failed().len(),
                    chunk.len(),
                    failed.code(),
                    failed.message().unwrap_or("")
                ));
            }
        }
        Ok(())
    }
}
