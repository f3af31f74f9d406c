//! The AWS wiring of each function kind's context — DynamoDB, S3, SES and
//! EventBridge adapters plus the two HTTP clients, each built only for the
//! functions whose role reaches it (the Lambda counterpart of
//! `crates/operator/src/local.rs`).

use crate::dispatch::DispatchContext;
use crate::env::{self, Endpoints};
use anyhow::Context as _;
use aws_config::SdkConfig;
use sne_aws::{AwsSettings, DynamoStore, EventBridgeTrigger, S3BlobStore, SesMailer, SqsRunQueue};
use sne_nextengine::{NeClient, NeClientConfig};
use sne_ports::SystemClock;
use sne_ports::platform::{NoPlatformApp, SmaregiPlatformApi};
use sne_service::trigger::QueueTrigger;
use sne_service::webhook::WebhookContext;
use sne_service::{AdminContext, Context, Core, ServiceConfig, SessionSecret, WebhookSecret};
use sne_smaregi::SmaregiClient;
use sne_smaregi::platform::{PlatformAppConfig, PlatformClient};
use std::sync::Arc;

/// The scheduled functions' context from the environment; fails the cold start
/// on missing configuration so a broken deploy shows up at once, not at the
/// first run.
pub async fn job_context_from_env() -> anyhow::Result<Context> {
    let sdk = sne_aws::aws_sdk_config().await;
    let settings = AwsSettings::from_env()?;
    let endpoints = Endpoints::from_env()?;
    let mut ctx = job_context_with(&sdk, &settings, &endpoints);
    ctx.platform = platform_from_env(&sdk).await?;
    Ok(ctx)
}

/// The Platform app's client when a client id is configured, with its secret
/// from SSM; the refusing port otherwise.
pub async fn platform_from_env(sdk: &SdkConfig) -> anyhow::Result<Arc<dyn SmaregiPlatformApi>> {
    let Some(client_id) = var(env::SMAREGI_PLATFORM_CLIENT_ID) else {
        return Ok(Arc::new(NoPlatformApp));
    };
    let secret = match (
        var(env::SMAREGI_PLATFORM_CLIENT_SECRET),
        var(env::SMAREGI_PLATFORM_CLIENT_SECRET_PARAM),
    ) {
        (Some(secret), _) => secret,
        (None, Some(name)) => secret_from_ssm(&aws_sdk_ssm::Client::new(sdk), &name).await?,
        (None, None) => String::new(),
    };
    let mut config = PlatformAppConfig::new(&client_id, &secret);
    if let Some(url) = var(env::SMAREGI_PLATFORM_ID_URL) {
        config.id_url = url;
    }
    if let Some(url) = var(env::SMAREGI_PLATFORM_API_URL) {
        config.api_url = url;
    }
    Ok(Arc::new(PlatformClient::new(config)?))
}

/// The Platform webhook's secret header, its value from SSM; `None` when
/// no value is configured (the endpoint then refuses every request).
pub async fn platform_webhook_secret(sdk: &SdkConfig) -> anyhow::Result<Option<WebhookSecret>> {
    let value = match (
        var(env::SMAREGI_PLATFORM_WEBHOOK_SECRET),
        var(env::SMAREGI_PLATFORM_WEBHOOK_SECRET_PARAM),
    ) {
        (Some(value), _) => value,
        (None, Some(name)) => secret_from_ssm(&aws_sdk_ssm::Client::new(sdk), &name).await?,
        (None, None) => String::new(),
    };
    Ok((!value.is_empty()).then(|| WebhookSecret {
        header: var(env::SMAREGI_PLATFORM_WEBHOOK_HEADER)
            .unwrap_or_else(|| "x-smaregi-ne-secret".into())
            .to_ascii_lowercase(),
        value,
    }))
}

/// The admin function's context from the environment, with the NextEngine
/// client secret and the session key from SSM.
pub async fn admin_context_from_env() -> anyhow::Result<AdminContext> {
    let sdk = sne_aws::aws_sdk_config().await;
    let settings = AwsSettings::from_env()?;
    let endpoints = Endpoints::from_env()?;
    let mut ctx = admin_context_with(&sdk, &settings, &endpoints, client_secret(&sdk).await?);
    ctx.platform = platform_from_env(&sdk).await?;
    match session_secret(&sdk).await? {
        Some(secret) => ctx.config.session_secret = secret,
        None => tracing::error!(
            "{} is not set or not stored: admin logins will not survive a change of instance",
            env::SESSION_SECRET_PARAM
        ),
    }
    Ok(ctx)
}

/// The webhook function's context: the table, the clock, the run queue and
/// the Platform webhook's secret, nothing else — no API client, bucket, mail
/// or event bus is built, as its role reaches none.
pub async fn webhook_context_from_env() -> anyhow::Result<WebhookContext> {
    let sdk = sne_aws::aws_sdk_config().await;
    let settings = AwsSettings::from_env()?;
    let store = Arc::new(DynamoStore::new(
        aws_sdk_dynamodb::Client::new(&sdk),
        settings.table_name,
    ));
    let (queue_url, quiet) = env::run_queue()?;
    let clock = Arc::new(SystemClock);
    Ok(WebhookContext {
        tenants: store.clone(),
        ledger: store,
        clock: clock.clone(),
        runs: Arc::new(QueueTrigger {
            queue: Arc::new(SqsRunQueue::new(aws_sdk_sqs::Client::new(&sdk), queue_url)),
            clock,
            quiet,
        }),
        platform_secret: platform_webhook_secret(&sdk).await?,
    })
}

/// The dispatcher function's context: the table (for the tenants) and the run
/// queue, nothing else.
pub async fn dispatch_context_from_env() -> anyhow::Result<DispatchContext> {
    let sdk = sne_aws::aws_sdk_config().await;
    let settings = AwsSettings::from_env()?;
    let (queue_url, _) = env::run_queue()?;
    Ok(DispatchContext {
        tenants: Arc::new(DynamoStore::new(
            aws_sdk_dynamodb::Client::new(&sdk),
            settings.table_name,
        )),
        queue: Arc::new(SqsRunQueue::new(aws_sdk_sqs::Client::new(&sdk), queue_url)),
    })
}

/// The admin screen's cookie key; at least 32 bytes, since a short HMAC key would
/// make session cookies guessable.
pub async fn session_secret(sdk: &SdkConfig) -> anyhow::Result<Option<SessionSecret>> {
    let value = match var(env::SESSION_SECRET) {
        Some(value) => value,
        None => match var(env::SESSION_SECRET_PARAM) {
            Some(name) => secret_from_ssm(&aws_sdk_ssm::Client::new(sdk), &name).await?,
            None => String::new(),
        },
    };
    if value.is_empty() {
        return Ok(None);
    }
    if value.len() < 32 {
        anyhow::bail!("the admin session secret must be at least 32 characters long");
    }
    Ok(Some(SessionSecret(value.into_bytes())))
}

fn var(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

/// What the admin function and the jobs share: the table, the bucket and both
/// API clients. The scheduled functions pass an empty client secret: token
/// refresh needs none, and their roles cannot read the parameter.
pub fn core_with(
    sdk: &SdkConfig,
    settings: &AwsSettings,
    endpoints: &Endpoints,
    client_secret: String,
) -> Core {
    let store = Arc::new(DynamoStore::new(
        aws_sdk_dynamodb::Client::new(sdk),
        settings.table_name.clone(),
    ));
    let mut ne_config = NeClientConfig::for_service(
        endpoints.nextengine_client_id.clone(),
        client_secret,
        &endpoints.public_url,
        &endpoints.nextengine_api_url,
        &endpoints.nextengine_signin_url,
    );
    ne_config.rate = endpoints.rate;
    Core {
        storage: store.clone(),
        blobs: Arc::new(S3BlobStore::new(
            settings.s3_client(sdk),
            settings.bucket_name.clone(),
        )),
        clock: Arc::new(SystemClock),
        nextengine: Arc::new(NeClient::new(ne_config, store)),
        smaregi: Arc::new(
            SmaregiClient::with_defaults(&endpoints.smaregi_api_url)
                .with_rate_limits(endpoints.rate),
        ),
        // Set by the wirings whose role may read the app's secret.
        platform: Arc::new(NoPlatformApp),
        config: ServiceConfig {
            mail_from: endpoints.mail_from.clone(),
            public_url: endpoints.public_url.clone(),
            ..ServiceConfig::default()
        },
    }
}

/// The jobs' context: the core and SES.
pub fn job_context_with(sdk: &SdkConfig, settings: &AwsSettings, endpoints: &Endpoints) -> Context {
    Context {
        core: core_with(sdk, settings, endpoints, String::new()),
        mailer: Arc::new(SesMailer::new(aws_sdk_sesv2::Client::new(sdk))),
    }
}

/// The admin screen's and the operator commands' context: the core and the
/// event bus that carries 「今すぐ実行」 to the runner.
pub fn admin_context_with(
    sdk: &SdkConfig,
    settings: &AwsSettings,
    endpoints: &Endpoints,
    client_secret: String,
) -> AdminContext {
    AdminContext {
        core: core_with(sdk, settings, endpoints, client_secret),
        trigger: Arc::new(EventBridgeTrigger::new(
            aws_sdk_eventbridge::Client::new(sdk),
            settings.event_bus_name.clone(),
        )),
    }
}

/// The NextEngine client secret: from SSM Parameter Store (SecureString, decrypted
/// with the parameter's KMS key), or from a plain variable for local runs and tests.
pub async fn client_secret(sdk: &SdkConfig) -> anyhow::Result<String> {
    if let Some(secret) = var(env::NEXTENGINE_CLIENT_SECRET) {
        return Ok(secret);
    }
    let Some(name) = var(env::NEXTENGINE_CLIENT_SECRET_PARAM) else {
        tracing::warn!(
            "{} is not set: NextEngine sign-in will fail until it is",
            env::NEXTENGINE_CLIENT_SECRET_PARAM
        );
        return Ok(String::new());
    };
    secret_from_ssm(&aws_sdk_ssm::Client::new(sdk), &name).await
}

pub async fn secret_from_ssm(ssm: &aws_sdk_ssm::Client, name: &str) -> anyhow::Result<String> {
    match ssm
        .get_parameter()
        .name(name)
        .with_decryption(true)
        .send()
        .await
    {
        Ok(out) => out
            .parameter
            .and_then(|p| p.value)
            .with_context(|| format!("SSM parameter {name} has no value")),
        // Before the NextEngine app is registered there is no secret yet; the admin
        // screen must still come up so the operator can finish the setup. Callers
        // treat the empty value as "not configured".
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_parameter_not_found()) =>
        {
            tracing::warn!(
                parameter = name,
                "SSM parameter not found: NextEngine sign-in will fail until it is stored"
            );
            Ok(String::new())
        }
        Err(e) => Err(anyhow::anyhow!(
            "cannot read SSM parameter {name}: {}",
            aws_sdk_ssm::error::DisplayErrorContext(e)
        )),
    }
}
