//! The embedded wiring: SQLite, files and `.eml` mail plus the HTTP clients, as
//! `smaregi-ne` runs it and as `sne-aws-admin --storage sqlite` opens it.

use anyhow::Context as _;
use clap::Args;
use sne_embedded::{EmlMailer, FsBlobStore, SqliteStore};
use sne_nextengine::{NeClient, NeClientConfig};
use sne_ports::SystemClock;
use sne_ports::platform::{NoPlatformApp, SmaregiPlatformApi};
use sne_service::trigger::{RunRequest, queued_trigger};
use sne_service::{AdminContext, Context, Core, ServiceConfig, WebhookSecret};
use sne_smaregi::SmaregiClient;
use sne_smaregi::platform::{PlatformAppConfig, PlatformClient};
use std::path::Path;
use std::sync::Arc;
use tokio::sync::mpsc;

/// External endpoints; the real services are the defaults.
#[derive(Args, Clone, Debug)]
pub struct Endpoints {
    #[arg(long, global = true, env = "SNE_NEXTENGINE_API_URL", default_value = sne_nextengine::DEFAULT_API_BASE_URL)]
    pub nextengine_api_url: String,
    #[arg(long, global = true, env = "SNE_NEXTENGINE_SIGNIN_URL", default_value = sne_nextengine::DEFAULT_SIGN_IN_BASE_URL)]
    pub nextengine_signin_url: String,
    #[arg(
        long,
        global = true,
        env = "SNE_NEXTENGINE_CLIENT_ID",
        default_value = ""
    )]
    pub nextengine_client_id: String,
    #[arg(
        long,
        global = true,
        env = "SNE_NEXTENGINE_CLIENT_SECRET",
        default_value = "",
        hide_env_values = true
    )]
    pub nextengine_client_secret: String,
    #[arg(long, global = true, env = "SNE_SMAREGI_API_URL", default_value = sne_smaregi::DEFAULT_API_URL)]
    pub smaregi_api_url: String,
    /// The スマレジ・プラットフォームAPI app's client id (empty: no Platform intake).
    #[arg(
        long,
        global = true,
        env = "SNE_SMAREGI_PLATFORM_CLIENT_ID",
        default_value = ""
    )]
    pub smaregi_platform_client_id: String,
    #[arg(
        long,
        global = true,
        env = "SNE_SMAREGI_PLATFORM_CLIENT_SECRET",
        default_value = "",
        hide_env_values = true
    )]
    pub smaregi_platform_client_secret: String,
    /// Token host (sandbox: https://id.smaregi.dev).
    #[arg(long, global = true, env = "SNE_SMAREGI_PLATFORM_ID_URL", default_value = sne_smaregi::platform::DEFAULT_ID_URL)]
    pub smaregi_platform_id_url: String,
    /// API host (sandbox: https://api.smaregi.dev).
    #[arg(long, global = true, env = "SNE_SMAREGI_PLATFORM_API_URL", default_value = sne_smaregi::platform::DEFAULT_API_URL)]
    pub smaregi_platform_api_url: String,
    /// The header the app's webhook settings add, and its value (empty: the
    /// Platform webhook refuses everything).
    #[arg(
        long,
        global = true,
        env = "SNE_SMAREGI_PLATFORM_WEBHOOK_HEADER",
        default_value = "x-smaregi-ne-secret"
    )]
    pub smaregi_platform_webhook_header: String,
    #[arg(
        long,
        global = true,
        env = "SNE_SMAREGI_PLATFORM_WEBHOOK_SECRET",
        default_value = "",
        hide_env_values = true
    )]
    pub smaregi_platform_webhook_secret: String,
    /// Base URL of this service as browsers reach it (NextEngine redirect URI base).
    #[arg(
        long,
        global = true,
        env = "SNE_PUBLIC_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    pub public_url: String,
    #[arg(
        long,
        global = true,
        env = "SNE_MAIL_FROM",
        default_value = "smaregi-ne@localhost"
    )]
    pub mail_from: String,
    /// Most calls a second to either API for one tenant (0: unbounded).
    #[arg(
        long,
        global = true,
        env = "SNE_API_CALLS_PER_SECOND_PER_TENANT",
        default_value_t = 5
    )]
    pub api_calls_per_second_per_tenant: u32,
    /// Most calls a second to either API for the whole process (0: unbounded).
    #[arg(
        long,
        global = true,
        env = "SNE_API_CALLS_PER_SECOND",
        default_value_t = 20
    )]
    pub api_calls_per_second: u32,
}

impl Endpoints {
    /// The Platform app's client, or the refusing port when none is configured.
    pub fn platform(&self) -> anyhow::Result<Arc<dyn SmaregiPlatformApi>> {
        if self.smaregi_platform_client_id.trim().is_empty() {
            return Ok(Arc::new(NoPlatformApp));
        }
        let mut config = PlatformAppConfig::new(
            self.smaregi_platform_client_id.trim(),
            &self.smaregi_platform_client_secret,
        );
        config.id_url = self.smaregi_platform_id_url.clone();
        config.api_url = self.smaregi_platform_api_url.clone();
        Ok(Arc::new(PlatformClient::new(config)?))
    }

    pub fn platform_webhook_secret(&self) -> Option<WebhookSecret> {
        (!self.smaregi_platform_webhook_secret.is_empty()).then(|| WebhookSecret {
            header: self
                .smaregi_platform_webhook_header
                .trim()
                .to_ascii_lowercase(),
            value: self.smaregi_platform_webhook_secret.clone(),
        })
    }

    pub fn rate_limits(&self) -> sne_ports::RateLimits {
        sne_ports::RateLimits::new(
            self.api_calls_per_second_per_tenant,
            self.api_calls_per_second,
        )
    }
}

/// The local context and the receiving end of its 「今すぐ実行」 requests.
/// One local process: the jobs and the admin screen over one core (one store,
/// one NextEngine client, so its per-tenant serialisation holds across both),
/// and the run requests of 「今すぐ実行」 for the process's scheduler.
pub struct Local {
    pub jobs: Context,
    pub admin: AdminContext,
    pub requests: mpsc::UnboundedReceiver<RunRequest>,
}

pub fn local_context(data_dir: &Path, endpoints: &Endpoints) -> anyhow::Result<Local> {
    let store = Arc::new(
        SqliteStore::open(data_dir)
            .with_context(|| format!("cannot open the database in {}", data_dir.display()))?,
    );
    let public_url = endpoints.public_url.trim_end_matches('/').to_string();
    let mut ne_config = NeClientConfig::for_service(
        endpoints.nextengine_client_id.clone(),
        endpoints.nextengine_client_secret.clone(),
        &public_url,
        &endpoints.nextengine_api_url,
        &endpoints.nextengine_signin_url,
    );
    ne_config.rate = endpoints.rate_limits();
    let core = Core {
        storage: store.clone(),
        blobs: Arc::new(FsBlobStore::new(data_dir.join("blobs"))),
        clock: Arc::new(SystemClock),
        nextengine: Arc::new(NeClient::new(ne_config, store)),
        smaregi: Arc::new(
            SmaregiClient::with_defaults(&endpoints.smaregi_api_url)
                .with_rate_limits(endpoints.rate_limits()),
        ),
        platform: endpoints.platform()?,
        config: ServiceConfig {
            mail_from: endpoints.mail_from.clone(),
            public_url,
            platform_webhook_secret: endpoints.platform_webhook_secret(),
            ..ServiceConfig::default()
        },
    };
    let (trigger, requests) = queued_trigger();
    Ok(Local {
        jobs: Context {
            core: core.clone(),
            mailer: Arc::new(EmlMailer::new(data_dir.join("outbox"))),
        },
        admin: AdminContext {
            core,
            trigger: Arc::new(trigger),
        },
        requests,
    })
}
