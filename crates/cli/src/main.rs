//! `smaregi-ne`: the whole service in one process on embedded storage (design.md §8).

mod demo;
mod wiring;

use clap::{Args, Parser, Subcommand};
use sne_service::run::{Jobs, run_all};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;
use wiring::Endpoints;

#[derive(Parser)]
#[command(
    name = "smaregi-ne",
    version,
    about = "スマレジtoネクストエンジン在庫連携"
)]
struct Cli {
    /// Where the database, CSV files and mails live.
    #[arg(long, global = true, env = "SNE_DATA_DIR", default_value = "./data")]
    data_dir: PathBuf,
    #[command(flatten)]
    endpoints: Endpoints,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Webhook, admin screen and the schedules as timers.
    Serve(ServeArgs),
    /// Run the jobs once for every tenant, then exit.
    Run {
        #[arg(value_enum)]
        jobs: RunJobs,
    },
    /// `tenant`, `held`, `failed`: the operator commands `sne-aws-admin` shares.
    #[command(flatten)]
    Operator(sne_operator::OperatorCommand),
    /// The whole service with simulated Smaregi and NextEngine and a demo tenant.
    Demo(demo::DemoArgs),
}

#[derive(Args)]
struct ServeArgs {
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Minutes between scheduled runs (queue check, upload, report).
    #[arg(long, default_value_t = 10)]
    every_minutes: u64,
    #[command(flatten)]
    realtime: wiring::RealtimeArgs,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum RunJobs {
    Upload,
    CheckQueue,
    /// NextEngine orders → Smaregi 出荷 (tenants with the import on).
    ImportOrders,
    All,
    /// 在庫差異: every tenant's drift check, with its report mail.
    Drift,
}

fn print_runs(runs: &[sne_service::run::TenantRun]) -> anyhow::Result<()> {
    let summary: Vec<_> = runs
        .iter()
        .map(|r| {
            let rendered = r.report.render();
            serde_json::json!({
                "tenant_id": r.tenant.id.as_str(),
                "subject": rendered.subject,
                "report_id": r.report_id,
                "mails_sent": r.mail.sent,
                "mails_failed": r.mail.failed,
            })
        })
        .collect();
    println!("{}", serde_json::to_string_pretty(&summary)?);
    Ok(())
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,hyper=warn,reqwest=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(dispatch(cli))
}

async fn dispatch(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => {
            let dispatch = args
                .realtime
                .dispatch(Duration::from_secs(args.every_minutes.max(1) * 60))?;
            let local = wiring::local_context(&cli.data_dir, &cli.endpoints)?;
            wiring::serve(local, args.listen, dispatch, args.realtime.drift_hour()).await
        }
        Command::Run { jobs } => {
            let ctx = wiring::local_context(&cli.data_dir, &cli.endpoints)?.jobs;
            let jobs = match jobs {
                RunJobs::Upload => Jobs::Upload,
                RunJobs::CheckQueue => Jobs::CheckQueue,
                RunJobs::ImportOrders => Jobs::ImportOrders,
                RunJobs::All => Jobs::All,
                RunJobs::Drift => {
                    let runs = sne_service::drift::run_drift_all(&ctx).await?;
                    return print_runs(&runs);
                }
            };
            let runs = run_all(&ctx, jobs).await?;
            print_runs(&runs)
        }
        Command::Operator(command) => {
            let ctx = wiring::local_context(&cli.data_dir, &cli.endpoints)?.admin;
            sne_operator::execute(&ctx, command).await
        }
        Command::Demo(args) => demo::run(&cli.data_dir, args).await,
    }
}
