//! Function URL events → the webhook route (other paths 404), on the webhook's
//! narrow context: the table and the clock.

use sne_lambda_common::http::webhook_only;
use sne_lambda_common::{init_tracing, webhook_context_from_env};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    init_tracing();
    let ctx = webhook_context_from_env().await?;
    lambda_http::run(webhook_only(sne_service::http::webhook_router(ctx))).await
}
