//! The daily drift check and 「差異を確認」 → one drift-check message per
//! tenant; the runner compares, in a group beside the tenant's runs.

use lambda_runtime::service_fn;
use sne_lambda_common::{DispatchKind, dispatch_context_from_env, handle_dispatch, init_tracing};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    init_tracing();
    let ctx = dispatch_context_from_env().await?;
    lambda_runtime::run(service_fn(|event| {
        handle_dispatch(&ctx, DispatchKind::Drift, event)
    }))
    .await
}
