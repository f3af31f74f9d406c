//! Function URL events → the whole router: admin screen, NextEngine callback.

use sne_lambda_common::{admin_context_from_env, init_tracing};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    init_tracing();
    let ctx = admin_context_from_env().await?;
    lambda_http::run(sne_service::http::router(ctx)).await
}
