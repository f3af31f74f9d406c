//! Fan-out benchmark (issue 13): `--tenants` shops, each with one pending stock
//! change, and one scheduled round — the wall time until NextEngine's simulator
//! has every shop's file.
//!
//! - `local`: the `serve` process's dispatcher on the embedded store, one
//!   round with each of `--concurrency` as its maximum of tenants at once.
//! - `moto`: the AWS shape — the dispatcher's handler puts a message per tenant
//!   on an SQS FIFO queue, and `--concurrency` runner workers take a message
//!   each (as Lambda's event source does, at most that many at once) and run
//!   the runner's handler on DynamoDB; all of it on moto. moto serves one
//!   request at a time and copies every table for each transaction, so its
//!   time grows with the square of the tenants: use it up to ~100.
//! - `moto-sqs`: the same dispatcher, queue and runner with the queue on moto
//!   and the tables on the embedded store, for 1,000 tenants and more.
//!
//! `cargo bench -p sne-lambda-e2e --bench fanout --profile dev -- --mode local`
//! (`--mode moto` needs `bash scripts/test-env.sh` once.)

use anyhow::Context as _;
use aws_lambda_events::eventbridge::EventBridgeEvent;
use aws_lambda_events::sqs::SqsEvent;
use lambda_runtime::{Context as LambdaContext, LambdaEvent};
use sne_aws::testing::MotoServer;
use sne_aws::{AwsSettings, DynamoStore, SqsRunQueue};
use sne_domain::TenantId;
use sne_domain::push::parse_stock_send;
use sne_domain::tenant::Tenant;
use sne_lambda_common::{DispatchContext, Endpoints, handle_dispatch, handle_run_messages};
use sne_service::Core;
use sne_service::dispatch::{DispatchConfig, spawn_dispatcher};
use sne_service::trigger::queued_trigger;
use sne_simulators::nextengine::{NeConfig, NeSim, SeedGoods};
use sne_test_support::tenants::{connect_to_nextengine, fixture_tenant};
use sne_test_support::{CLIENT_ID, CLIENT_SECRET, Wiring};
use std::sync::Arc;
use std::time::{Duration, Instant};

const GOODS: &str = "8000001";

struct Args {
    tenants: usize,
    concurrency: Vec<usize>,
    mode: String,
}

fn args() -> anyhow::Result<Args> {
    let mut args = Args {
        tenants: 1_000,
        concurrency: vec![1, 4, 16],
        mode: "local".into(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--tenants" => args.tenants = value()?.parse()?,
            "--concurrency" => {
                args.concurrency = value()?
                    .split(',')
                    .map(str::parse)
                    .collect::<Result<_, _>>()?
            }
            "--mode" => args.mode = value()?,
            // cargo bench passes `--bench`.
            "--bench" => {}
            other => anyhow::bail!("unknown flag {other}"),
        }
    }
    Ok(args)
}

fn main() -> anyhow::Result<()> {
    let args = args()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        for &concurrency in &args.concurrency {
            let (setup, round) = match args.mode.as_str() {
                "local" => local(args.tenants, concurrency).await?,
                "moto" => moto(args.tenants, concurrency, Tables::Dynamo).await?,
                "moto-sqs" => moto(args.tenants, concurrency, Tables::Embedded).await?,
                other => anyhow::bail!("--mode is local, moto or moto-sqs, not {other}"),
            };
            println!(
                "{}: {} tenants, at most {concurrency} at once: one round {:.1} s ({:.1} ms a tenant; set-up {:.0} s)",
                args.mode,
                args.tenants,
                round.as_secs_f64(),
                round.as_secs_f64() * 1000.0 / args.tenants as f64,
                setup.as_secs_f64()
            );
        }
        Ok(())
    })
}

async fn simulator(tenants: usize) -> anyhow::Result<NeSim> {
    let ne = NeSim::start(
        NeConfig {
            client_id: CLIENT_ID.into(),
            client_secret: CLIENT_SECRET.into(),
            ..NeConfig::default()
        },
        "127.0.0.1:0".parse()?,
    )
    .await?;
    for n in 0..tenants {
        ne.add_company(&company(n), "店");
        ne.seed_goods(
            &company(n),
            vec![SeedGoods {
                goods_id: GOODS.into(),
                goods_name: "商品".into(),
                stock_quantity: 100,
                allocation_quantity: 0,
            }],
        );
    }
    Ok(ne)
}

fn company(n: usize) -> String {
    format!("shop{n:05}")
}

/// `tenants` shops connected to NextEngine, each with one pending sale; the
/// password hash is made once (argon2 is slow on purpose).
async fn shops(core: &Core, ne: &NeSim, tenants: usize) -> anyhow::Result<Vec<Tenant>> {
    let first = fixture_tenant(
        core,
        "t_bench00000",
        "c-bench-00000",
        "Code0Bench000000000000000000000000",
    )
    .await;
    let mut all = vec![first.clone()];
    for n in 1..tenants {
        let contract = format!("c-bench-{n:05}");
        let tenant = Tenant {
            id: TenantId(format!("t_bench{n:05}")),
            contract_id: contract.clone(),
            customer_code: format!("Code0Bench{n:024}"),
            admin_email: format!("admin@{contract}.example.com"),
            notify_emails: vec![format!("notify@{contract}.example.com")],
            ..first.clone()
        };
        core.storage.create_tenant(&tenant).await?;
        all.push(tenant);
    }
    let params = format!(
        r#"{{"data":[{{"table_name":"Stock","rows":[{{"id":"1","storeId":"1","productId":"{GOODS}","amount":"-1","stockAmount":"99","stockDivision":"02","updDateTime":"2026-12-01 10:00:00"}}]}}]}}"#
    );
    let push = parse_stock_send("stock_send", &params).map_err(|e| anyhow::anyhow!("{e}"))?;
    for (n, tenant) in all.iter().enumerate() {
        connect_to_nextengine(core, &tenant.id, ne, &company(n)).await;
        core.storage
            .append_changes(&tenant.id, &push.changes(core.clock.now()))
            .await?;
    }
    Ok(all)
}

async fn all_uploaded(ne: &NeSim, tenants: usize) {
    while ne.uploads().len() < tenants {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn local(tenants: usize, concurrency: usize) -> anyhow::Result<(Duration, Duration)> {
    let started = Instant::now();
    let ne = simulator(tenants).await?;
    let dir = tempfile::tempdir()?;
    let mut wiring = Wiring::new(dir.path()).ne_attempts(1);
    wiring.ne_url = ne.base_url();
    // As `serve` runs by default: 5 calls a second a tenant, 20 for the process.
    wiring.rate = sne_ports::RateLimits::DEFAULT;
    let ctx = wiring.context();
    let all = shops(&ctx, &ne, tenants).await?;
    let (trigger, requests) = queued_trigger();
    let dispatcher = spawn_dispatcher(
        ctx,
        requests,
        DispatchConfig {
            every: Duration::from_secs(24 * 3600),
            debounce: None,
            max_concurrent_runs: concurrency,
        },
    );
    let setup = started.elapsed();
    let round = Instant::now();
    // What the schedule's round asks: every tenant at once.
    for tenant in &all {
        sne_ports::RunTrigger::request_run(&trigger, &tenant.id)
            .await
            .map_err(|e| anyhow::anyhow!(e))?;
    }
    all_uploaded(&ne, tenants).await;
    let elapsed = round.elapsed();
    dispatcher.abort();
    Ok((setup, elapsed))
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Tables {
    Dynamo,
    Embedded,
}

async fn moto(
    tenants: usize,
    concurrency: usize,
    tables: Tables,
) -> anyhow::Result<(Duration, Duration)> {
    let started = Instant::now();
    let moto = MotoServer::start().await;
    let sdk = moto.sdk_config().await;
    let table = "smaregi-ne-fanout";
    DynamoStore::create_table(&aws_sdk_dynamodb::Client::new(&sdk), table)
        .await
        .map_err(anyhow::Error::msg)?;
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let queue_url = sqs
        .create_queue()
        .queue_name("smaregi-ne-fanout-runs.fifo")
        .attributes(aws_sdk_sqs::types::QueueAttributeName::FifoQueue, "true")
        .attributes(
            aws_sdk_sqs::types::QueueAttributeName::ContentBasedDeduplication,
            "false",
        )
        .send()
        .await?
        .queue_url
        .context("queue URL")?;
    let ne = simulator(tenants).await?;
    let settings = AwsSettings {
        table_name: table.into(),
        bucket_name: "smaregi-ne-fanout-csv".into(),
        event_bus_name: "default".into(),
        s3_force_path_style: true,
    };
    let s3 = settings.s3_client(&sdk);
    sne_aws::S3BlobStore::create_bucket(&s3, &settings.bucket_name)
        .await
        .map_err(anyhow::Error::msg)?;
    aws_sdk_sesv2::Client::new(&sdk)
        .create_email_identity()
        .email_identity("smaregi-ne.example.com")
        .send()
        .await?;
    let endpoints = Endpoints::from_lookup(|name| match name {
        "SNE_NEXTENGINE_API_URL" | "SNE_NEXTENGINE_SIGNIN_URL" => Some(ne.base_url()),
        "SNE_NEXTENGINE_CLIENT_ID" => Some(CLIENT_ID.into()),
        "SNE_MAIL_FROM" => Some("noreply@smaregi-ne.example.com".into()),
        _ => None,
    })?;
    let dir = tempfile::tempdir()?;
    // One context per runner, as every Lambda instance has its own clients
    // (and so its own rate limiter).
    let make_ctx = || match tables {
        Tables::Dynamo => sne_lambda_common::job_context_with(&sdk, &settings, &endpoints),
        Tables::Embedded => {
            let mut wiring = Wiring::new(dir.path()).ne_attempts(1);
            wiring.ne_url = ne.base_url();
            wiring.rate = endpoints.rate;
            wiring.context()
        }
    };
    let ctx = make_ctx();
    shops(&ctx, &ne, tenants).await?;
    let dispatch = DispatchContext {
        tenants: ctx.storage.clone(),
        queue: Arc::new(SqsRunQueue::new(sqs.clone(), &queue_url)),
    };
    let setup = started.elapsed();

    let round = Instant::now();
    let scheduled: EventBridgeEvent = serde_json::from_str(include_str!(
        "../../lambda-common/tests/data/scheduled_event.json"
    ))?;
    handle_dispatch(
        &dispatch,
        sne_lambda_common::DispatchKind::Stock,
        LambdaEvent {
            payload: scheduled,
            context: LambdaContext::default(),
        },
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let (ctx, sqs, queue_url) = (make_ctx(), sqs.clone(), queue_url.clone());
        workers.spawn(async move { runner(&ctx, &sqs, &queue_url).await });
    }
    all_uploaded(&ne, tenants).await;
    let elapsed = round.elapsed();
    workers.abort_all();
    Ok((setup, elapsed))
}

/// One runner as Lambda's SQS event source drives it: a message, the
/// handler, then delete the message unless the handler gave it back.
async fn runner(ctx: &sne_service::Context, sqs: &aws_sdk_sqs::Client, queue_url: &str) {
    loop {
        let Ok(out) = sqs
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(1)
            .wait_time_seconds(1)
            .message_system_attribute_names(aws_sdk_sqs::types::MessageSystemAttributeName::All)
            .send()
            .await
        else {
            continue;
        };
        for message in out.messages() {
            let record = sne_lambda_e2e::sqs_record(
                message,
                "arn:aws:sqs:ap-northeast-1:123456789012:smaregi-ne-fanout-runs.fifo",
            );
            let Ok(payload) =
                serde_json::from_value::<SqsEvent>(serde_json::json!({ "Records": [record] }))
            else {
                continue;
            };
            let response = handle_run_messages(
                ctx,
                LambdaEvent {
                    payload,
                    context: LambdaContext::default(),
                },
            )
            .await;
            if response.is_ok_and(|r| r.batch_item_failures.is_empty()) {
                let _ = sqs
                    .delete_message()
                    .queue_url(queue_url)
                    .receipt_handle(message.receipt_handle().unwrap_or_default())
                    .send()
                    .await;
            }
        }
    }
}
