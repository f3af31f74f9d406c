//! Scheduled events → the queue check of every tenant.

use lambda_runtime::service_fn;
use sne_lambda_common::{
    FunctionKind, ScheduledJob, context_from_env, handle_scheduled, init_tracing,
};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    init_tracing();
    let ctx = context_from_env(FunctionKind::QueueChecker).await?;
    lambda_runtime::run(service_fn(|event| {
        handle_scheduled(&ctx, ScheduledJob::QueueChecker, event)
    }))
    .await
}
