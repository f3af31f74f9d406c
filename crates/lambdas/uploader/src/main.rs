//! The runner: one run-queue message (SQS) → one tenant's run.

use lambda_runtime::service_fn;
use sne_lambda_common::{handle_run_messages, init_tracing, job_context_from_env};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    init_tracing();
    let ctx = job_context_from_env().await?;
    lambda_runtime::run(service_fn(|event| handle_run_messages(&ctx, event))).await
}
