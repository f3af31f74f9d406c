//! The local process: serving the router, and the schedule as a timer.

use anyhow::Context as _;
use sne_domain::TenantId;
use sne_service::Context;
use sne_service::run::{Jobs, new_run_id, run_all, run_tenant};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::sync::mpsc;

pub use sne_operator::local::{Endpoints, Local, local_context};

/// Serves the router and runs every job on a timer until Ctrl-C.
pub async fn serve(local: Local, listen: SocketAddr, every_minutes: u64) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    tracing::info!(addr = %listener.local_addr()?, "serving");
    let scheduler = spawn_scheduler(
        local.jobs,
        local.requests,
        Duration::from_secs(every_minutes.max(1) * 60),
    );
    let app = sne_service::http::router(local.admin);
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await;
    scheduler.abort();
    served.context("server failed")
}

/// Runs every tenant on the schedule, and one tenant whenever 「今すぐ実行」 asks.
pub fn spawn_scheduler(
    ctx: Context,
    mut requests: mpsc::UnboundedReceiver<TenantId>,
    every: Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tokio::select! {
                _ = tick.tick() => match run_all(&ctx, Jobs::All).await {
                    Ok(runs) => tracing::info!(tenants = runs.len(), "scheduled run finished"),
                    Err(e) => tracing::error!(error = %e, "scheduled run failed"),
                },
                Some(tenant_id) = requests.recv() => {
                    match ctx.storage.tenant(&tenant_id).await {
                        Ok(Some(tenant)) => {
                            let run_id = new_run_id(&ctx);
                            run_tenant(&ctx, &tenant, Jobs::All, &run_id).await;
                            tracing::info!(tenant = %tenant_id, "requested run finished");
                        }
                        Ok(None) => tracing::warn!(tenant = %tenant_id, "run requested for unknown tenant"),
                        Err(e) => tracing::error!(error = %e, "requested run failed"),
                    }
                }
            }
        }
    })
}
