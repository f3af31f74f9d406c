//! The operator commands against the deployed stack: the same `tenant`, `held`
//! and `failed` commands (flags and output) as `smaregi-ne`, on the stack's
//! DynamoDB table by default or on a local data directory with `--storage
//! sqlite`; and `run`, which asks the uploader for an immediate run. Uses the
//! standard AWS credential chain.

use anyhow::{Context as _, bail};
use clap::{Parser, Subcommand, ValueEnum};
use sne_aws::AwsSettings;
use sne_domain::TenantId;
use sne_lambda_common::{Endpoints, admin_context_with};
use sne_operator::OperatorCommand;
use sne_service::AdminContext;
use std::path::PathBuf;

#[derive(Parser)]
#[command(name = "sne-aws-admin", about = "smaregi-ne on AWS: operator commands")]
struct Cli {
    /// Where the tenants live.
    #[arg(long, value_enum, env = "SNE_STORAGE", default_value = "dynamodb")]
    storage: Storage,
    /// The stack's DynamoDB table (output `TableName`); required with `--storage dynamodb`.
    #[arg(long, env = "SNE_TABLE_NAME")]
    table: Option<String>,
    /// The data directory of `--storage sqlite`.
    #[arg(long, env = "SNE_DATA_DIR", default_value = "./data")]
    data_dir: PathBuf,
    /// The stack's event bus (output `EventBusName`), for `run`.
    #[arg(long, env = "SNE_EVENT_BUS_NAME", default_value = "default")]
    event_bus: String,
    /// The API endpoints of `--storage sqlite` (as `smaregi-ne` takes them).
    #[command(flatten)]
    local: sne_operator::local::Endpoints,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum Storage {
    Dynamodb,
    Sqlite,
}

#[derive(Subcommand)]
enum Command {
    #[command(flatten)]
    Operator(OperatorCommand),
    /// Asks the uploader for a run of one tenant now (「今すぐ実行」).
    Run {
        #[arg(long)]
        tenant_id: String,
    },
}

async fn aws_context(cli: &Cli) -> anyhow::Result<AdminContext> {
    let Some(table_name) = cli.table.clone().filter(|t| !t.trim().is_empty()) else {
        bail!("--storage dynamodb には --table (または SNE_TABLE_NAME) が必要です");
    };
    let sdk = sne_aws::aws_sdk_config().await;
    let settings = AwsSettings {
        table_name,
        // Operator commands write neither blobs nor mail.
        bucket_name: String::new(),
        event_bus_name: cli.event_bus.clone(),
        s3_force_path_style: false,
    };
    let endpoints = Endpoints::from_lookup(|name| {
        std::env::var(name).ok().or_else(|| {
            (name == sne_lambda_common::env::MAIL_FROM).then(|| "unused@localhost".to_string())
        })
    })?;
    let mut ctx = admin_context_with(&sdk, &settings, &endpoints, String::new());
    // `intake` checks the contract with the Platform app (SNE_SMAREGI_PLATFORM_*).
    ctx.platform = sne_lambda_common::wiring::platform_from_env(&sdk).await?;
    Ok(ctx)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let ctx = match cli.storage {
        Storage::Dynamodb => aws_context(&cli).await?,
        Storage::Sqlite => sne_operator::local::local_context(&cli.data_dir, &cli.local)?.admin,
    };
    match cli.command {
        Command::Operator(command) => sne_operator::execute(&ctx, command).await,
        Command::Run { tenant_id } => {
            if matches!(cli.storage, Storage::Sqlite) {
                bail!("run: ローカルでは smaregi-ne run all を使ってください");
            }
            let id = TenantId(tenant_id);
            ctx.storage
                .tenant(&id)
                .await?
                .with_context(|| format!("no tenant {id}"))?;
            ctx.trigger
                .request_run(&id)
                .await
                .map_err(anyhow::Error::msg)?;
            println!("run requested for {id}");
            Ok(())
        }
    }
}
