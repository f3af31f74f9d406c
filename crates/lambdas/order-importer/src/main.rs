//! Scheduled events → the order import of every tenant with the import on.

use lambda_runtime::service_fn;
use sne_lambda_common::{ScheduledJob, handle_scheduled, init_tracing, job_context_from_env};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    init_tracing();
    let ctx = job_context_from_env().await?;
    lambda_runtime::run(service_fn(|event| {
        handle_scheduled(&ctx, ScheduledJob::OrderImporter, event)
    }))
    .await
}
