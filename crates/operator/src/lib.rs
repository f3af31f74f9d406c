//! The operator commands, one set for both deployments: `smaregi-ne tenant|held|failed …`
//! runs them on the embedded store, `sne-aws-admin …` on the stack's DynamoDB
//! table (or, with `--storage sqlite`, on a data directory). The same flags, the
//! same JSON or Japanese output, the same checks — so an operator's script works
//! against either.

pub mod local;

use anyhow::{Context as _, bail};
use clap::Subcommand;
use sne_domain::tenant::{NeTokens, Tenant};
use sne_domain::time::parse_api_time;
use sne_service::AdminContext;
use sne_service::orders::{OrderImportForm, configure_order_import};
use sne_service::tenants::{NewTenant, create_tenant, replace_ne_tokens};
use std::io::BufRead;

#[derive(Subcommand)]
pub enum OperatorCommand {
    #[command(subcommand)]
    Tenant(TenantCommand),
    /// Uploads held as 要確認 (their answer was lost and the queue could not prove
    /// which was ours): list them, or decide one.
    #[command(subcommand)]
    Held(HeldCommand),
    /// Files NextEngine's queue failed: what became of each row, or
    /// 「未反映の行を再アップロード」.
    #[command(subcommand)]
    Failed(FailedCommand),
    /// 在庫差異: compare Smaregi's stock with NextEngine's now and print the
    /// check as JSON (every line with its figures, causes and correction);
    /// with `--apply`, 「揃える」: freeze the corrections as one file, once.
    Drift {
        #[arg(long)]
        contract_id: String,
        /// Upload the corrections (the JSON printed without it is the preview).
        #[arg(long)]
        apply: bool,
        /// With `--apply`: the stored check to align (the latest, at most an
        /// hour old) instead of a new one.
        #[arg(long, requires = "apply")]
        check_id: Option<String>,
        /// Who asks; recorded on the file.
        #[arg(long, env = "USER", default_value = "cli")]
        by: String,
    },
    /// 取り込み経路: switch the tenant's stock intake between the old API
    /// (API送信 and StockHistory) and the スマレジ・プラットフォームAPI, at a
    /// history-id boundary; prints the boundary as JSON.
    Intake {
        #[arg(long)]
        contract_id: String,
        #[arg(long, value_enum)]
        to: IntakeChoice,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum IntakeChoice {
    /// API送信 and StockHistory.
    Old,
    /// `pos:stock` webhooks and the backfill.
    Platform,
}

/// Runs one command, printing its result on standard output.
pub async fn execute(ctx: &AdminContext, command: OperatorCommand) -> anyhow::Result<()> {
    match command {
        OperatorCommand::Tenant(command) => tenant(ctx, command).await,
        OperatorCommand::Held(command) => held(ctx, command).await,
        OperatorCommand::Failed(command) => failed(ctx, command).await,
        OperatorCommand::Drift {
            contract_id,
            apply,
            check_id,
            by,
        } => drift(ctx, &contract_id, apply, check_id.as_deref(), &by).await,
        OperatorCommand::Intake { contract_id, to } => intake(ctx, &contract_id, to).await,
    }
}

async fn intake(ctx: &AdminContext, contract_id: &str, to: IntakeChoice) -> anyhow::Result<()> {
    use sne_domain::history_mode::HistorySource;
    let tenant = tenant_by_contract(ctx, contract_id).await?;
    let source = match to {
        IntakeChoice::Old => HistorySource::OldApi,
        IntakeChoice::Platform => HistorySource::Platform,
    };
    let message = sne_service::platform::switch_intake(ctx, &tenant, source).await?;
    let intake = sne_service::platform::migration::intake_state(ctx, &tenant.id).await?;
    println!(
        "{}",
        serde_json::to_string_pretty(&serde_json::json!({
            "message": message,
            "intake": intake,
        }))?
    );
    Ok(())
}

async fn drift(
    ctx: &AdminContext,
    contract_id: &str,
    apply: bool,
    check_id: Option<&str>,
    by: &str,
) -> anyhow::Result<()> {
    use sne_service::drift::{align, check_by_id, check_drift};
    let tenant = tenant_by_contract(ctx, contract_id).await?;
    let check = match check_id {
        Some(id) => check_by_id(ctx, &tenant.id, id.trim())
            .await?
            .with_context(|| format!("在庫差異の確認 {id} が見つかりません"))?,
        None => check_drift(ctx, &tenant).await?,
    };
    let aligned = if apply {
        let batch = align(ctx, &tenant, &check.id, by).await?;
        Some(serde_json::json!({ "batch_id": batch.batch_id, "rows": batch.lines.len() }))
    } else {
        None
    };
    let out = serde_json::json!({
        "check": check,
        "corrections": check.corrections(),
        "aligned": aligned,
    });
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}

#[derive(Subcommand)]
pub enum TenantCommand {
    /// Register a shop; prints its tenant id and お客様専用コード as JSON.
    Create {
        #[arg(long)]
        contract_id: String,
        #[arg(long, default_value = "")]
        name: String,
        #[arg(long)]
        admin_email: String,
        /// Without it, the first line of standard input (keeps the password out of
        /// the shell history and the process list).
        #[arg(long, env = "SNE_ADMIN_PASSWORD", hide_env_values = true)]
        admin_password: Option<String>,
        /// Report recipient; repeat for several.
        #[arg(long, required = true)]
        notify_email: Vec<String>,
        /// Smaregi stores whose changes count; repeat for several (default: all).
        #[arg(long, alias = "store")]
        store_id: Vec<String>,
    },
    /// Store NextEngine tokens an operator already holds.
    SetNextengineTokens {
        #[arg(long)]
        contract_id: String,
        #[arg(long, env = "SNE_NE_ACCESS_TOKEN")]
        access_token: String,
        #[arg(long, env = "SNE_NE_REFRESH_TOKEN")]
        refresh_token: String,
        /// `YYYY-MM-DD HH:MM:SS`, Japan time, as NextEngine gives it.
        #[arg(long)]
        access_token_end: String,
        #[arg(long)]
        refresh_token_end: String,
    },
    /// (β版)ネクストエンジン受注数取り込み: switch it on (checked against Smaregi
    /// first) or off.
    OrderImport {
        #[arg(long)]
        contract_id: String,
        /// 実行する
        #[arg(long, conflicts_with = "off", required_unless_present = "off")]
        on: bool,
        /// 実行しない
        #[arg(long)]
        off: bool,
        /// スマレジ契約ID (default: the tenant's contract id).
        #[arg(long)]
        smaregi_contract_id: Option<String>,
        /// 取り込み先スマレジ側店舗ID
        #[arg(long, required_if_eq("on", "true"))]
        store_id: Option<String>,
        /// スマレジアクセストークン
        #[arg(
            long,
            env = "SNE_SMAREGI_ACCESS_TOKEN",
            hide_env_values = true,
            required_if_eq("on", "true")
        )]
        smaregi_access_token: Option<String>,
    },
    /// Read changes from Smaregi's StockHistory (preferred) or from the pushes alone.
    StockHistory {
        #[arg(long)]
        contract_id: String,
        #[arg(long, conflicts_with = "off", required_unless_present = "off")]
        on: bool,
        #[arg(long)]
        off: bool,
        /// スマレジアクセストークン (API受信; 在庫情報参照 must be enabled). Kept if omitted.
        #[arg(long, env = "SNE_SMAREGI_ACCESS_TOKEN", hide_env_values = true)]
        smaregi_access_token: Option<String>,
    },
    /// List tenants as JSON (no secrets).
    List,
    /// Prints the お客様専用コード to enter in Smaregi's 個別設定 `code`.
    ShowCode {
        #[arg(long)]
        contract_id: String,
    },
}

#[derive(Subcommand)]
pub enum HeldCommand {
    /// The held uploads of a tenant as JSON: lines, candidate queues, CSV path.
    List {
        #[arg(long)]
        contract_id: String,
    },
    /// 「アップロード済みとして扱う」 (--uploaded --que-id …) or 「再アップロードする」 (--reupload).
    Resolve {
        #[arg(long)]
        contract_id: String,
        #[arg(long)]
        batch_id: String,
        #[arg(
            long,
            conflicts_with = "reupload",
            required_unless_present = "reupload",
            requires = "que_id"
        )]
        uploaded: bool,
        #[arg(long)]
        reupload: bool,
        /// The queue id NextEngine gave the file (see NextEngine's アップロードキュー).
        #[arg(long)]
        que_id: Option<String>,
        /// Who decides; recorded and reported.
        #[arg(long, env = "USER", default_value = "cli")]
        by: String,
    },
}

#[derive(Subcommand)]
pub enum FailedCommand {
    /// The tenant's failed files as JSON: each row with its fate (applied,
    /// refused, not_applied, unknown) and the rows a re-upload would send.
    List {
        #[arg(long)]
        contract_id: String,
    },
    /// 「未反映の行を再アップロード」: the rows NextEngine did not apply go up as a
    /// new file, once per failed file.
    Resend {
        #[arg(long)]
        contract_id: String,
        #[arg(long)]
        batch_id: String,
        /// Send free-stock refusals too (only after the allocation was adjusted).
        #[arg(long)]
        include_free_stock: bool,
        /// Who asks; recorded on the file.
        #[arg(long, env = "USER", default_value = "cli")]
        by: String,
    },
}

async fn tenant_by_contract(ctx: &AdminContext, contract_id: &str) -> anyhow::Result<Tenant> {
    match ctx.storage.tenant_by_contract(contract_id.trim()).await? {
        Some(tenant) => Ok(tenant),
        None => bail!("契約ID {contract_id} のテナントがありません"),
    }
}

fn password_from_stdin() -> anyhow::Result<String> {
    eprintln!("管理者パスワードを1行で入力してください:");
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

async fn held(ctx: &AdminContext, command: HeldCommand) -> anyhow::Result<()> {
    use sne_service::held::{HeldDecision, held_csv, held_uploads, resolve_held};
    let contract_id = match &command {
        HeldCommand::List { contract_id } | HeldCommand::Resolve { contract_id, .. } => contract_id,
    };
    let tenant = tenant_by_contract(ctx, contract_id).await?;
    match command {
        HeldCommand::List { .. } => {
            let list: Vec<_> = held_uploads(ctx, &tenant.id)
                .await?
                .iter()
                .map(|b| {
                    serde_json::json!({
                        "batch_id": b.batch_id,
                        "created_at": b.created_at,
                        "upload_started_at": b.upload_started_at,
                        "csv": String::from_utf8_lossy(&held_csv(b)),
                        "csv_key": b.csv_key,
                        "candidates": b.candidates.iter().map(|c| serde_json::json!({
                            "que_id": c.que_id,
                            "created_at": c.created_at,
                            "upload_name": c.upload_name,
                            "client_file_name": c.client_file_name,
                        })).collect::<Vec<_>>(),
                    })
                })
                .collect();
            println!("{}", serde_json::to_string_pretty(&list)?);
        }
        HeldCommand::Resolve {
            batch_id,
            uploaded,
            que_id,
            by,
            ..
        } => {
            let decision = if uploaded {
                HeldDecision::TreatAsUploaded {
                    que_id: que_id.unwrap_or_default().into(),
                }
            } else {
                HeldDecision::Reupload
            };
            let batch = resolve_held(ctx, &tenant.id, batch_id.trim(), decision, &by).await?;
            match batch.que_id {
                Some(que_id) if uploaded => println!(
                    "ファイル {batch_id} をキューID {que_id} でアップロード済みとして扱います"
                ),
                _ => println!("ファイル {batch_id} を次回の実行で再アップロードします"),
            }
        }
    }
    Ok(())
}

async fn failed(ctx: &AdminContext, command: FailedCommand) -> anyhow::Result<()> {
    use sne_domain::batch_state::BatchState;
    use sne_service::resend::{resend_unapplied, row_verdicts, rows_to_resend};
    let contract_id = match &command {
        FailedCommand::List { contract_id } | FailedCommand::Resend { contract_id, .. } => {
            contract_id
        }
    };
    let tenant = tenant_by_contract(ctx, contract_id).await?;
    match command {
        FailedCommand::List { .. } => {
            let list: Vec<_> = ctx
                .storage
                .batches_in_state(&tenant.id, BatchState::Failed)
                .await?
                .iter()
                .map(|b| {
                    let resend = |free: bool| {
                        rows_to_resend(b, free)
                            .iter()
                            .map(|l| serde_json::json!({"goods_code": l.goods_code, "delta": l.delta}))
                            .collect::<Vec<_>>()
                    };
                    serde_json::json!({
                        "batch_id": b.batch_id,
                        "que_id": b.que_id,
                        "created_at": b.created_at,
                        "rows": row_verdicts(b),
                        "resend": resend(false),
                        "resend_with_free_stock": resend(true),
                        "follow_up": b.follow_up,
                    })
                })
                .collect();
            println!("{}", serde_json::to_string_pretty(&list)?);
        }
        FailedCommand::Resend {
            batch_id,
            include_free_stock,
            by,
            ..
        } => {
            let resend =
                resend_unapplied(ctx, &tenant.id, batch_id.trim(), include_free_stock, &by).await?;
            println!(
                "未反映の {} 行をファイル {} として次回の実行でアップロードします",
                resend.lines.len(),
                resend.batch_id
            );
        }
    }
    Ok(())
}

async fn tenant(ctx: &AdminContext, command: TenantCommand) -> anyhow::Result<()> {
    match command {
        TenantCommand::Create {
            contract_id,
            name,
            admin_email,
            admin_password,
            notify_email,
            store_id,
        } => {
            let admin_password = match admin_password {
                Some(password) => password,
                None => password_from_stdin()?,
            };
            let tenant = create_tenant(
                ctx,
                NewTenant {
                    name,
                    contract_id,
                    admin_email,
                    admin_password,
                    notify_emails: notify_email,
                    counted_stores: (!store_id.is_empty()).then_some(store_id),
                },
            )
            .await?;
            println!(
                "{}",
                serde_json::to_string_pretty(&serde_json::json!({
                    "tenant_id": tenant.id.as_str(),
                    "contract_id": tenant.contract_id,
                    "customer_code": tenant.customer_code,
                }))?
            );
        }
        TenantCommand::SetNextengineTokens {
            contract_id,
            access_token,
            refresh_token,
            access_token_end,
            refresh_token_end,
        } => {
            let tenant = tenant_by_contract(ctx, &contract_id).await?;
            let parse = |text: &str| {
                parse_api_time(text).with_context(|| {
                    format!("日時は YYYY-MM-DD HH:MM:SS で指定してください: {text:?}")
                })
            };
            let tokens = NeTokens {
                access_token: access_token.trim().to_string(),
                refresh_token: refresh_token.trim().to_string(),
                access_token_end: parse(&access_token_end)?,
                refresh_token_end: parse(&refresh_token_end)?,
            };
            if tokens.access_token.is_empty() || tokens.refresh_token.is_empty() {
                bail!("トークンが空です");
            }
            replace_ne_tokens(ctx, &tenant.id, &tokens).await?;
            println!("トークンを更新しました");
        }
        TenantCommand::StockHistory {
            contract_id,
            on,
            off: _,
            smaregi_access_token,
        } => {
            let mut tenant = tenant_by_contract(ctx, &contract_id).await?;
            if let Some(token) = smaregi_access_token {
                let token: String = token.chars().filter(|c| !c.is_whitespace()).collect();
                tenant.smaregi_api = Some(sne_domain::tenant::SmaregiCredentials {
                    contract_id: tenant.contract_id.clone(),
                    access_token: token,
                });
                tenant = ctx.storage.update_tenant(&tenant).await?;
            }
            let message = sne_service::stock_history::set_history_mode(ctx, &tenant, on).await?;
            println!("{message}");
        }
        TenantCommand::OrderImport {
            contract_id,
            on,
            off: _,
            smaregi_contract_id,
            store_id,
            smaregi_access_token,
        } => {
            let tenant = tenant_by_contract(ctx, &contract_id).await?;
            let saved = configure_order_import(
                ctx,
                &tenant.id,
                OrderImportForm {
                    enabled: on,
                    contract_id: smaregi_contract_id.unwrap_or_else(|| tenant.contract_id.clone()),
                    store_id: store_id.unwrap_or_default(),
                    access_token: smaregi_access_token.unwrap_or_default(),
                },
            )
            .await?;
            for warning in &saved.warnings {
                eprintln!("注意: {warning}");
            }
            println!("{}", saved.message);
        }
        TenantCommand::List => {
            let tenants = ctx.storage.list_tenants().await?;
            let list: Vec<_> = tenants
                .iter()
                .map(|t| {
                    serde_json::json!({
                        "tenant_id": t.id.as_str(),
                        "name": t.name,
                        "contract_id": t.contract_id,
                        "notify_emails": t.notify_emails,
                        "order_import": {
                            "enabled": t.order_import.enabled,
                            "store_id": t.order_import.store_id,
                            "enabled_at": t.order_import.enabled_at,
                        },
                    })
                })
                .collect();
            println!("{}", serde_json::to_string_pretty(&list)?);
        }
        TenantCommand::ShowCode { contract_id } => {
            let tenant = tenant_by_contract(ctx, &contract_id).await?;
            println!("{}", tenant.customer_code);
        }
    }
    Ok(())
}
