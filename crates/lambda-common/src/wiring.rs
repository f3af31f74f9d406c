//! The AWS wiring of [`Context`]: DynamoDB, S3, SES and EventBridge adapters plus the
//! two HTTP clients — the Lambda counterpart of `crates/cli/src/wiring.rs`.

use crate::env::{self, Endpoints, FunctionKind};
use anyhow::Context as _;
use aws_config::SdkConfig;
use sne_aws::{AwsSettings, DynamoStore, EventBridgeTrigger, S3BlobStore, SesMailer};
use sne_nextengine::{NeClient, NeClientConfig};
use sne_ports::SystemClock;
use sne_service::webhook::WebhookContext;
use sne_service::{Context, ServiceConfig, SessionSecret};
use sne_smaregi::SmaregiClient;
use std::sync::Arc;
use std::time::Duration;

/// Everything from the environment; fails the cold start on missing configuration so
/// a broken deploy shows up at once, not at the first run.
pub async fn context_from_env(kind: FunctionKind) -> anyhow::Result<Context> {
    let sdk = sne_aws::aws_sdk_config().await;
    let settings = AwsSettings::from_env()?;
    let endpoints = Endpoints::from_env()?;
    let client_secret = if kind.needs_client_secret() {
        client_secret(&sdk).await?
    } else {
        String::new()
    };
    let mut ctx = context_with(&sdk, &settings, &endpoints, client_secret);
    if kind.needs_session_secret() {
        match session_secret(&sdk).await? {
            Some(secret) => ctx.config.session_secret = secret,
            None => tracing::error!(
                "{} is not set or not stored: admin logins will not survive a change of instance",
                env::SESSION_SECRET_PARAM
            ),
        }
    }
    Ok(ctx)
}

/// The webhook function's context: the table and the clock, nothing else — no
/// API client, bucket, mail or event bus is built, as its role reaches none.
pub async fn webhook_context_from_env() -> anyhow::Result<WebhookContext> {
    let sdk = sne_aws::aws_sdk_config().await;
    let settings = AwsSettings::from_env()?;
    let store = Arc::new(DynamoStore::new(
        aws_sdk_dynamodb::Client::new(&sdk),
        settings.table_name,
    ));
    Ok(WebhookContext {
        tenants: store.clone(),
        ledger: store,
        clock: Arc::new(SystemClock),
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

pub fn context_with(
    sdk: &SdkConfig,
    settings: &AwsSettings,
    endpoints: &Endpoints,
    client_secret: String,
) -> Context {
    let store = Arc::new(DynamoStore::new(
        aws_sdk_dynamodb::Client::new(sdk),
        settings.table_name.clone(),
    ));
    let s3 = settings.s3_client(sdk);
    let mut ne_config = NeClientConfig::new(
        endpoints.nextengine_client_id.clone(),
        client_secret,
        format!("{}/nextengine/callback", endpoints.public_url),
    );
    ne_config.api_base_url = endpoints.nextengine_api_url.clone();
    ne_config.sign_in_base_url = endpoints.nextengine_signin_url.clone();
    let nextengine = NeClient::new(ne_config, store.clone());
    let smaregi = SmaregiClient::new(
        endpoints.smaregi_api_url.clone(),
        sne_smaregi::RetryPolicy::default(),
        Duration::from_secs(60),
    );
    Context {
        storage: store,
        blobs: Arc::new(S3BlobStore::new(s3, settings.bucket_name.clone())),
        mailer: Arc::new(SesMailer::new(aws_sdk_sesv2::Client::new(sdk))),
        clock: Arc::new(SystemClock),
        nextengine: Arc::new(nextengine),
        smaregi: Arc::new(smaregi),
        trigger: Arc::new(EventBridgeTrigger::new(
            aws_sdk_eventbridge::Client::new(sdk),
            settings.event_bus_name.clone(),
        )),
        config: ServiceConfig {
            mail_from: endpoints.mail_from.clone(),
            public_url: endpoints.public_url.clone(),
            ..ServiceConfig::default()
        },
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
