//! Operator commands against the deployed stack's table, for what has no screen
//! yet: creating the first tenants, reading a tenant's お客様専用コード, asking the
//! uploader for an immediate run. Uses the standard AWS credential chain.

use anyhow::{Context as _, bail};
use clap::{Parser, Subcommand};
use sne_aws::AwsSettings;
use sne_domain::TenantId;
use sne_lambda_common::{Endpoints, context_with};
use sne_service::tenants::{NewTenant, create_tenant};
use std::io::BufRead;

#[derive(Parser)]
#[command(
    name = "sne-aws-admin",
    about = "smaregi-ne on AWS: tenant administration"
)]
struct Cli {
    /// The stack's DynamoDB table (output `TableName`).
    #[arg(long, env = "SNE_TABLE_NAME")]
    table: String,
    /// The stack's event bus (output `EventBusName`), for `run`.
    #[arg(long, env = "SNE_EVENT_BUS_NAME", default_value = "default")]
    event_bus: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    #[command(subcommand)]
    Tenant(TenantCommand),
    /// Asks the uploader for a run of one tenant now (「今すぐ実行」).
    Run {
        #[arg(long)]
        tenant_id: String,
    },
}

#[derive(Subcommand)]
enum TenantCommand {
    /// Creates a tenant. The admin password is read from SNE_ADMIN_PASSWORD or,
    /// when unset, from the first line of standard input (keeps it out of the
    /// shell history and the process list).
    Create {
        #[arg(long)]
        contract_id: String,
        #[arg(long, default_value = "")]
        name: String,
        #[arg(long)]
        admin_email: String,
        /// Report recipient; repeat for several.
        #[arg(long = "notify-email", required = true)]
        notify_emails: Vec<String>,
        /// Smaregi store that counts; repeat for several (default: all stores).
        #[arg(long = "store")]
        stores: Vec<String>,
    },
    /// Lists tenants: id, contract id, name.
    List,
    /// Prints the お客様専用コード to enter in Smaregi's 個別設定 `code`.
    ShowCode {
        #[arg(long)]
        contract_id: String,
    },
}

fn admin_password() -> anyhow::Result<String> {
    if let Ok(password) = std::env::var("SNE_ADMIN_PASSWORD")
        && !password.is_empty()
    {
        return Ok(password);
    }
    eprintln!("admin password (one line on standard input):");
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let sdk = sne_aws::aws_sdk_config().await;
    let settings = AwsSettings {
        table_name: cli.table.clone(),
        // Tenant commands touch neither blobs nor mail.
        bucket_name: String::new(),
        event_bus_name: cli.event_bus.clone(),
        s3_force_path_style: false,
    };
    let endpoints = Endpoints::from_lookup(|name| {
        std::env::var(name).ok().or_else(|| {
            (name == sne_lambda_common::env::MAIL_FROM).then(|| "unused@localhost".to_string())
        })
    })?;
    let ctx = context_with(&sdk, &settings, &endpoints, String::new());

    match cli.command {
        Command::Tenant(TenantCommand::Create {
            contract_id,
            name,
            admin_email,
            notify_emails,
            stores,
        }) => {
            let tenant = create_tenant(
                &ctx,
                NewTenant {
                    name,
                    contract_id,
                    admin_email,
                    admin_password: admin_password()?,
                    notify_emails,
                    counted_stores: (!stores.is_empty()).then_some(stores),
                },
            )
            .await?;
            println!("tenant_id\t{}", tenant.id);
            println!("contract_id\t{}", tenant.contract_id);
            println!("code\t{}", tenant.customer_code);
        }
        Command::Tenant(TenantCommand::List) => {
            for tenant in ctx.storage.list_tenants().await? {
                println!("{}\t{}\t{}", tenant.id, tenant.contract_id, tenant.name);
            }
        }
        Command::Tenant(TenantCommand::ShowCode { contract_id }) => {
            let Some(tenant) = ctx.storage.tenant_by_contract(contract_id.trim()).await? else {
                bail!("no tenant has contract id {contract_id}");
            };
            println!("{}", tenant.customer_code);
        }
        Command::Run { tenant_id } => {
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
        }
    }
    Ok(())
}
