//! Runs either simulator as a standalone server for local demos.

use std::net::SocketAddr;

use clap::{Parser, Subcommand};
use sne_simulators::nextengine::{NeConfig, NeSim, QueueMode};
use sne_simulators::smaregi::{SmaregiConfig, SmaregiSim};

#[derive(Parser)]
#[command(name = "sne-simulator", about = "NextEngine / Smaregi API simulators")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// NextEngine API + sign-in host.
    Nextengine {
        #[arg(long, default_value = "127.0.0.1:8701")]
        listen: SocketAddr,
        #[arg(long, default_value = "sim-client-id")]
        client_id: String,
        #[arg(long, default_value = "sim-client-secret")]
        client_secret: String,
        /// Company the sign-in page logs in as.
        #[arg(long, default_value = "demo")]
        company: String,
        /// Process upload queues automatically after this many ms (0 = only
        /// via /_sim/queues/step|run).
        #[arg(long, default_value_t = 2000)]
        queue_delay_ms: u64,
        /// Reject the whole file when any row fails (default: apply good rows).
        #[arg(long)]
        no_partial_apply: bool,
        /// Answer an expired refresh token with result "redirect" instead of 002004.
        #[arg(long)]
        refresh_expired_redirect: bool,
    },
    /// Smaregi old API (/access/) + API送信 emitter.
    Smaregi {
        #[arg(long, default_value = "127.0.0.1:8702")]
        listen: SocketAddr,
        /// Contract created at start-up (empty = none).
        #[arg(long, default_value = "demo")]
        contract_id: String,
        #[arg(long, default_value = "demo-token")]
        access_token: String,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    match Cli::parse().cmd {
        Cmd::Nextengine {
            listen,
            client_id,
            client_secret,
            company,
            queue_delay_ms,
            no_partial_apply,
            refresh_expired_redirect,
        } => {
            let config = NeConfig {
                client_id,
                client_secret,
                partial_apply: !no_partial_apply,
                queue_mode: if queue_delay_ms == 0 {
                    QueueMode::Manual
                } else {
                    QueueMode::Auto {
                        delay_ms: queue_delay_ms,
                    }
                },
                auto_login_company: company,
                refresh_expired_redirect,
                ..NeConfig::default()
            };
            let sim = NeSim::start(config, listen).await?;
            println!("NextEngine simulator listening on {}", sim.base_url());
            println!(
                "sign-in: {}/users/sign_in/?client_id=...&redirect_uri=...",
                sim.base_url()
            );
        }
        Cmd::Smaregi {
            listen,
            contract_id,
            access_token,
        } => {
            let sim = SmaregiSim::start(SmaregiConfig::default(), listen).await?;
            if !contract_id.is_empty() {
                sim.add_contract(&contract_id, &access_token);
            }
            println!("Smaregi simulator listening on {}", sim.base_url());
            println!("old API: {}", sim.access_url());
        }
    }
    tokio::signal::ctrl_c().await?;
    Ok(())
}
