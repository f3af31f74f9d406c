//! Function URL events → the webhook route of the one router (other paths 404).

use sne_lambda_common::http::webhook_only;
use sne_lambda_common::{FunctionKind, context_from_env, init_tracing};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    init_tracing();
    let ctx = context_from_env(FunctionKind::Webhook).await?;
    lambda_http::run(webhook_only(sne_service::http::router(ctx))).await
}
