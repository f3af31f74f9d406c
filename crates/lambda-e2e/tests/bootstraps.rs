//! The built `bootstrap` binaries of the webhook, dispatcher and uploader
//! functions, run as Lambda would run them (a runtime API, environment
//! variables), against moto and both simulators: a Smaregi push through the
//! webhook puts a run message on the run queue (SQS FIFO), the uploader runs it
//! and uploads the push to NextEngine; the schedule's dispatcher puts a message
//! per tenant on the queue, whose run checks the queue and mails the reports.
//!
//! The binaries are built by this test itself (`cargo build --workspace --bins
//! --tests`, a no-op when they are fresh), so `cargo test -p sne-lambda-e2e`
//! never runs stale ones. The whole workspace with its tests, not `-p` the two
//! packages: that resolves the features as `cargo test --workspace` does and
//! reuses its binaries, where a `-p` build would compile the AWS SDK once more.

use serde_json::Value;
use sne_aws::testing::MotoServer;
use sne_aws::{AwsSettings, DynamoStore};
use sne_lambda_common::{Endpoints, admin_context_with};
use sne_lambda_e2e::{FakeRuntime, Outcome};
use sne_service::tenants::{NewTenant, create_tenant};
use sne_simulators::nextengine::{NeConfig, NeSim, SeedGoods};
use sne_simulators::smaregi::{SmaregiConfig, SmaregiSim};
use sne_test_support::tenants::connect_to_nextengine;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;
use tokio::process::{Child, Command};

const TABLE: &str = "smaregi-ne-e2e";
const BUCKET: &str = "smaregi-ne-e2e-csv";
const BUS: &str = "smaregi-ne-e2e";
const MAIL_FROM: &str = "noreply@smaregi-ne.example.com";
const COMPANY: &str = "shop";
const CONTRACT: &str = "c-lambda-e2e";
const GOODS: &str = "8000001";
const INVOKE_TIMEOUT: Duration = Duration::from_secs(120);

/// The recorded Function URL event, with this run's contract and code.
fn push_event(code: &str) -> Value {
    let mut event: Value = serde_json::from_str(include_str!(
        "../../lambdas/webhook/tests/data/function_url_push_wrong_code.json"
    ))
    .unwrap();
    let body = event["body"].as_str().unwrap().to_string();
    let body = body
        .replace(
            "contract_id=c-lambda-fixture",
            &format!("contract_id={CONTRACT}"),
        )
        .replace("code=not-the-code", &format!("code={code}"));
    event["headers"]["content-length"] = body.len().to_string().into();
    event["body"] = body.into();
    event
}

fn scheduled_event() -> Value {
    serde_json::from_str(include_str!(
        "../../lambda-common/tests/data/scheduled_event.json"
    ))
    .unwrap()
}

/// What the run queue holds now, as the event Lambda's SQS event source would
/// deliver (and then delete) it.
async fn take_messages(sqs: &aws_sdk_sqs::Client, queue_url: &str) -> (Value, Vec<Value>) {
    let out = sqs
        .receive_message()
        .queue_url(queue_url)
        .max_number_of_messages(10)
        .wait_time_seconds(1)
        .message_system_attribute_names(aws_sdk_sqs::types::MessageSystemAttributeName::All)
        .send()
        .await
        .expect("receive");
    let mut records = Vec::new();
    let mut bodies = Vec::new();
    for message in out.messages() {
        records.push(sne_lambda_e2e::sqs_record(
            message,
            "arn:aws:sqs:ap-northeast-1:123456789012:smaregi-ne-e2e-runs.fifo",
        ));
        bodies.push(serde_json::from_str(message.body().unwrap_or("null")).expect("JSON body"));
        sqs.delete_message()
            .queue_url(queue_url)
            .receipt_handle(message.receipt_handle().unwrap_or_default())
            .send()
            .await
            .expect("delete");
    }
    (serde_json::json!({ "Records": records }), bodies)
}

/// `target/<profile>/` of this test binary, where cargo puts the bins too.
fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    exe.parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>")
        .to_path_buf()
}

fn build_bootstraps(packages: &[&str]) -> PathBuf {
    let dir = bin_dir();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut command = std::process::Command::new(cargo);
    command.args(["build", "--quiet", "--workspace", "--bins", "--tests"]);
    // Cargo gives a test the variables of its package and its dylib path; build
    // scripts that watch the environment would rerun under them and the AWS SDK
    // would be compiled again (and once more by the next plain build).
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy().into_owned();
        let from_cargo_test = (name.starts_with("CARGO_")
            && !matches!(name.as_str(), "CARGO_HOME" | "CARGO_TARGET_DIR"))
            || name.starts_with("__CARGO")
            || name == "LD_LIBRARY_PATH";
        if from_cargo_test {
            command.env_remove(&name);
        }
    }
    if dir.file_name().is_some_and(|p| p == "release") {
        command.arg("--release");
    }
    let status = command
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .expect("cargo runs");
    assert!(status.success(), "building the workspace's binaries failed");
    for package in packages {
        assert!(dir.join(package).is_file(), "{package} was not built");
    }
    dir
}

struct Function {
    runtime: FakeRuntime,
    child: Child,
}

impl Function {
    async fn start(binary: PathBuf, name: &str, env: &[(String, String)]) -> Function {
        let (runtime, api) = FakeRuntime::start().await.expect("fake runtime API");
        let child = Command::new(&binary)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("AWS_LAMBDA_RUNTIME_API", api)
            .env("AWS_LAMBDA_FUNCTION_NAME", name)
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "512")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("RUST_LOG", "info")
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(Stdio::inherit())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        Function { runtime, child }
    }

    /// One invocation; a binary that dies instead of answering fails the test
    /// at once rather than at the timeout.
    async fn invoke(&mut self, event: Value) -> Outcome {
        tokio::select! {
            outcome = self.runtime.invoke(event, INVOKE_TIMEOUT) => outcome.expect("invocation"),
            status = self.child.wait() => panic!("the function exited: {status:?}"),
        }
    }
}

fn ok(outcome: Outcome) -> Value {
    match outcome {
        Outcome::Response(value) => value,
        Outcome::Error(e) => panic!("the handler failed: {e}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_through_the_webhook_bootstrap_is_run_from_the_queue_by_the_uploader_bootstrap() {
    let bins = build_bootstraps(&[
        "sne-lambda-webhook",
        "sne-lambda-dispatcher",
        "sne-lambda-uploader",
    ]);

    // AWS, as moto.
    let moto = MotoServer::start().await;
    let sdk = moto.sdk_config().await;
    DynamoStore::create_table(&aws_sdk_dynamodb::Client::new(&sdk), TABLE)
        .await
        .expect("table");
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&sdk)
            .force_path_style(true)
            .build(),
    );
    s3.create_bucket()
        .bucket(BUCKET)
        .create_bucket_configuration(
            aws_sdk_s3::types::CreateBucketConfiguration::builder()
                .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::ApNortheast1)
                .build(),
        )
        .send()
        .await
        .expect("bucket");
    aws_sdk_eventbridge::Client::new(&sdk)
        .create_event_bus()
        .name(BUS)
        .send()
        .await
        .expect("bus");
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let queue_url = sqs
        .create_queue()
        .queue_name("smaregi-ne-e2e-runs.fifo")
        .attributes(aws_sdk_sqs::types::QueueAttributeName::FifoQueue, "true")
        .attributes(
            aws_sdk_sqs::types::QueueAttributeName::ContentBasedDeduplication,
            "false",
        )
        .send()
        .await
        .expect("run queue")
        .queue_url
        .expect("queue URL");
    aws_sdk_sesv2::Client::new(&sdk)
        .create_email_identity()
        .email_identity("smaregi-ne.example.com")
        .send()
        .await
        .expect("SES identity");

    // Both external APIs, as simulators.
    let ne = NeSim::start(
        NeConfig {
            auto_login_company: COMPANY.into(),
            ..NeConfig::default()
        },
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .expect("NextEngine simulator");
    ne.add_company(COMPANY, "テスト商店");
    ne.seed_goods(
        COMPANY,
        vec![SeedGoods {
            goods_id: GOODS.into(),
            goods_name: "商品".into(),
            stock_quantity: 10,
            allocation_quantity: 0,
        }],
    );
    let smaregi = SmaregiSim::start(SmaregiConfig::default(), "127.0.0.1:0".parse().unwrap())
        .await
        .expect("Smaregi simulator");

    let env: Vec<(String, String)> = [
        ("AWS_ENDPOINT_URL", moto.endpoint().to_string()),
        ("AWS_ACCESS_KEY_ID", "testing".to_string()),
        ("AWS_SECRET_ACCESS_KEY", "testing".to_string()),
        ("AWS_REGION", "ap-northeast-1".to_string()),
        ("SNE_TABLE_NAME", TABLE.to_string()),
        ("SNE_BUCKET_NAME", BUCKET.to_string()),
        ("SNE_EVENT_BUS_NAME", BUS.to_string()),
        ("SNE_S3_FORCE_PATH_STYLE", "true".to_string()),
        ("SNE_NEXTENGINE_API_URL", ne.base_url()),
        ("SNE_NEXTENGINE_SIGNIN_URL", ne.base_url()),
        ("SNE_NEXTENGINE_CLIENT_ID", ne.config().client_id),
        ("SNE_SMAREGI_API_URL", smaregi.base_url()),
        (
            "SNE_PUBLIC_URL",
            "https://admin.smaregi-ne.example.com".into(),
        ),
        ("SNE_MAIL_FROM", MAIL_FROM.to_string()),
        ("SNE_RUN_QUEUE_URL", queue_url.clone()),
        ("SNE_RUN_QUIET_SECONDS", "5".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();

    // The operator's setup, through the same wiring the functions use.
    let settings = AwsSettings {
        table_name: TABLE.into(),
        bucket_name: BUCKET.into(),
        event_bus_name: BUS.into(),
        s3_force_path_style: true,
    };
    let endpoints = Endpoints::from_lookup(|k| {
        env.iter()
            .find(|(name, _)| name == k)
            .map(|(_, v)| v.clone())
    })
    .unwrap();
    let ctx = admin_context_with(&sdk, &settings, &endpoints, String::new());
    let tenant = create_tenant(
        &ctx,
        NewTenant {
            name: "テスト商店".into(),
            contract_id: CONTRACT.into(),
            admin_email: "admin@shop.example.com".into(),
            admin_password: "admin-password".into(),
            notify_emails: vec!["notify@shop.example.com".into()],
            counted_stores: None,
        },
    )
    .await
    .expect("tenant");
    connect_to_nextengine(&ctx, &tenant.id, &ne, COMPANY).await;

    // Smaregi pushes +3 for the product through the webhook's Function URL.
    let mut webhook = Function::start(bins.join("sne-lambda-webhook"), "webhook", &env).await;
    let refused = ok(webhook.invoke(push_event("wrong-code")).await);
    assert_eq!(refused["statusCode"], 400, "{refused}");
    assert_eq!(refused["body"], "code_mismatch");
    let accepted = ok(webhook.invoke(push_event(&tenant.customer_code)).await);
    assert_eq!(accepted["statusCode"], 200, "{accepted}");
    assert_eq!(ctx.storage.pending_changes(&tenant.id).await.unwrap(), 1);

    // The stored push asked for its tenant's run: one message, in the tenant's group.
    let (event, bodies) = take_messages(&sqs, &queue_url).await;
    assert_eq!(
        bodies,
        [serde_json::json!({ "tenant_id": tenant.id.0, "reason": "changes" })]
    );
    assert_eq!(
        event["Records"][0]["attributes"]["MessageGroupId"],
        tenant.id.0.as_str()
    );
    // A resend of the same push stores nothing new and asks for nothing.
    let resent = ok(webhook.invoke(push_event(&tenant.customer_code)).await);
    assert_eq!(resent["statusCode"], 200, "{resent}");
    assert!(take_messages(&sqs, &queue_url).await.1.is_empty());

    // The uploader runs the message: the push goes up to NextEngine, and its
    // report waits in the outbox for the next scheduled run.
    let mut uploader = Function::start(bins.join("sne-lambda-uploader"), "uploader", &env).await;
    let response = ok(uploader.invoke(event).await);
    assert_eq!(
        response["batchItemFailures"],
        serde_json::json!([]),
        "{response}"
    );
    assert_eq!(ne.uploads().len(), 1);
    assert!(
        moto.sent_emails().await.is_empty(),
        "no mail per pushed file"
    );

    ne.run_queues();
    assert_eq!(ne.stock(COMPANY, GOODS), Some(13));

    // The CSV that was sent is kept in S3.
    let listed = s3
        .list_objects_v2()
        .bucket(BUCKET)
        .send()
        .await
        .expect("list");
    assert!(
        listed
            .contents()
            .iter()
            .any(|o| o.key().is_some_and(|k| k.ends_with(".csv"))),
        "no CSV in the bucket: {listed:?}"
    );

    // The schedule fires the dispatcher: a message per tenant, and its retry
    // (same firing) adds none.
    let mut dispatcher =
        Function::start(bins.join("sne-lambda-dispatcher"), "dispatcher", &env).await;
    let summary = ok(dispatcher.invoke(scheduled_event()).await);
    assert_eq!(
        summary["enqueued"],
        serde_json::json!([tenant.id.0]),
        "{summary}"
    );
    ok(dispatcher.invoke(scheduled_event()).await);
    let (event, bodies) = take_messages(&sqs, &queue_url).await;
    assert_eq!(
        bodies,
        [serde_json::json!({ "tenant_id": tenant.id.0, "reason": "schedule" })]
    );

    // Its run checks the finished queue and mails the waiting reports by SES.
    let response = ok(uploader.invoke(event).await);
    assert_eq!(
        response["batchItemFailures"],
        serde_json::json!([]),
        "{response}"
    );
    assert_eq!(ne.uploads().len(), 1, "nothing more to upload");
    let mails = moto.sent_emails().await;
    assert_eq!(mails.len(), 1, "the waiting reports, as one mail");
}
