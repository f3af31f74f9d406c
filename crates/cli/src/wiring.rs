//! The local process: serving the router, and the runs of the schedule, of
//! 「今すぐ実行」 and of stored pushes in-process.

use anyhow::Context as _;
use sne_domain::debounce::DebouncePolicy;
use sne_service::dispatch::{DispatchConfig, spawn_dispatcher};
use std::net::SocketAddr;
use std::time::Duration;

pub use sne_operator::local::{Endpoints, Local, local_context};

/// When the runs of stored pushes start (`serve` and `demo`).
#[derive(clap::Args, Debug, Clone)]
pub struct RealtimeArgs {
    /// A push's run starts this long after the first push it waits for; pushes
    /// in between go up in the same file.
    #[arg(long, default_value_t = 5.0, value_parser = positive_seconds)]
    pub quiet_seconds: f64,
    /// Every push restarts the quiet window (fewer files, longer waits) …
    #[arg(long)]
    pub trailing_quiet: bool,
    /// … but the run starts at the latest this long after the first push.
    #[arg(long, default_value_t = 30.0, value_parser = positive_seconds)]
    pub max_wait_seconds: f64,
    /// Most tenants running at once.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..))]
    pub max_concurrent_runs: u16,
    /// Pushes wait for the schedule, as before event-driven runs.
    #[arg(long)]
    pub schedule_only: bool,
    /// The daily 在庫差異 check runs at this hour, Japan time (0–23).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(0..24))]
    pub drift_hour: u32,
    /// No daily 在庫差異 check (it still runs from the admin screen and `drift`).
    #[arg(long)]
    pub no_drift_check: bool,
}

fn positive_seconds(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(secs) if secs.is_finite() && secs > 0.0 && secs <= 3600.0 => Ok(secs),
        _ => Err(format!(
            "0 より大きく 3600 以下の秒数を指定してください: {text}"
        )),
    }
}

impl RealtimeArgs {
    /// The hour of the daily drift check, if it runs.
    pub fn drift_hour(&self) -> Option<u32> {
        (!self.no_drift_check).then_some(self.drift_hour)
    }

    pub fn dispatch(&self, every: Duration) -> anyhow::Result<DispatchConfig> {
        if self.max_wait_seconds < self.quiet_seconds {
            anyhow::bail!(
                "--max-wait-seconds ({}) は --quiet-seconds ({}) 以上にしてください",
                self.max_wait_seconds,
                self.quiet_seconds
            );
        }
        Ok(DispatchConfig {
            every,
            debounce: (!self.schedule_only).then(|| DebouncePolicy {
                quiet: Duration::from_secs_f64(self.quiet_seconds),
                max_wait: Duration::from_secs_f64(self.max_wait_seconds),
                trailing: self.trailing_quiet,
            }),
            max_concurrent_runs: usize::from(self.max_concurrent_runs),
        })
    }
}

/// Serves the router and dispatches runs until Ctrl-C.
pub async fn serve(
    local: Local,
    listen: SocketAddr,
    dispatch: DispatchConfig,
    drift_hour: Option<u32>,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    tracing::info!(addr = %listener.local_addr()?, "serving");
    let drift =
        drift_hour.map(|hour| sne_service::drift::spawn_daily_drift(local.jobs.clone(), hour));
    let dispatcher = spawn_dispatcher(local.jobs, local.requests, dispatch);
    let app = sne_service::http::router(local.admin);
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await;
    dispatcher.abort();
    if let Some(drift) = drift {
        drift.abort();
    }
    served.context("server failed")
}
