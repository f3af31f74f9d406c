//! The contexts as `smaregi-ne serve` wires them (SQLite, files, `.eml` outbox),
//! with the API clients on short retries so a test of a failure stays fast.

use sne_embedded::{EmlMailer, FsBlobStore, SqliteStore};
use sne_nextengine::{NeClient, NeClientConfig};
use sne_ports::platform::{NoPlatformApp, SmaregiPlatformApi};
use sne_ports::{Clock, SystemClock};
use sne_service::trigger::{RunRequest, queued_trigger};
use sne_service::{AdminContext, Context, Core, ServiceConfig, WebhookSecret};
use sne_simulators::nextengine::NeSim;
use sne_simulators::smaregi::SmaregiSim;
use sne_smaregi::SmaregiClient;
use sne_smaregi::platform::{PlatformAppConfig, PlatformClient};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc::UnboundedReceiver;

/// The NextEngine app the tests' service is; start the simulator with these.
pub const CLIENT_ID: &str = "test-client";
pub const CLIENT_SECRET: &str = "test-secret";

/// The Platform webhook's secret header and value in tests.
pub const PLATFORM_SECRET: (&str, &str) = ("x-sne-secret", "webhook-secret-for-tests");

/// Nothing listens there: a test that reaches an API it did not set up fails loudly.
const UNREACHABLE: &str = "http://127.0.0.1:9";

/// How to wire one Context; every field has a default a test may override.
#[derive(Clone)]
pub struct Wiring {
    pub data_dir: PathBuf,
    pub ne_url: String,
    pub smaregi_url: String,
    /// Where operators reach the admin screen (links in mails, the sign-in callback).
    pub public_url: String,
    /// The service's clock and the Smaregi client's (its history windows).
    pub clock: Arc<dyn Clock>,
    /// `public_url` is overwritten with the field above.
    pub config: ServiceConfig,
    pub ne_attempts: u32,
    /// How fast both API clients may call; unbounded by default, as tests make
    /// many calls in a row and the limiter has tests of its own.
    pub rate: sne_ports::RateLimits,
    /// The Platform app; none unless a test asks ([`Wiring::platform_sim`]).
    pub platform: Arc<dyn SmaregiPlatformApi>,
}

impl Wiring {
    pub fn new(data_dir: &Path) -> Wiring {
        Wiring {
            data_dir: data_dir.to_path_buf(),
            ne_url: UNREACHABLE.into(),
            smaregi_url: UNREACHABLE.into(),
            public_url: "http://127.0.0.1".into(),
            clock: Arc::new(SystemClock),
            config: ServiceConfig::default(),
            ne_attempts: 3,
            rate: sne_ports::RateLimits::UNLIMITED,
            platform: Arc::new(NoPlatformApp),
        }
    }

    /// The Platform app pointed at the simulator's token and API hosts, with
    /// the simulator's app credentials and its default (sandbox) rates, and
    /// the webhook secret header [`PLATFORM_SECRET`] configured.
    pub fn platform_sim(mut self, smaregi: &SmaregiSim) -> Wiring {
        let defaults = sne_simulators::smaregi::platform::PlatformConfig::default();
        let mut config = PlatformAppConfig::new(&defaults.client_id, &defaults.client_secret);
        config.id_url = smaregi.base_url();
        config.api_url = smaregi.platform_api_url();
        config.reads_per_second = defaults.reads_per_sec;
        config.writes_per_second = defaults.writes_per_sec;
        config.retry = sne_ports::RetryPolicy {
            max_attempts: 2,
            base_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(50),
        };
        config.timeout = Duration::from_secs(10);
        self.platform = Arc::new(PlatformClient::new(config).expect("platform client"));
        self.config.platform_webhook_secret = Some(WebhookSecret {
            header: PLATFORM_SECRET.0.into(),
            value: PLATFORM_SECRET.1.into(),
        });
        self
    }

    /// Both API clients pointed at the simulators.
    pub fn simulators(mut self, ne: &NeSim, smaregi: &SmaregiSim) -> Wiring {
        self.ne_url = ne.base_url();
        self.smaregi_url = smaregi.access_url();
        self
    }

    pub fn public_url(mut self, url: &str) -> Wiring {
        self.public_url = url.to_string();
        self
    }

    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Wiring {
        self.clock = clock;
        self
    }

    pub fn config(mut self, config: ServiceConfig) -> Wiring {
        self.config = config;
        self
    }

    pub fn ne_attempts(mut self, attempts: u32) -> Wiring {
        self.ne_attempts = attempts;
        self
    }

    /// The jobs' and the admin screen's contexts over one core, as one local
    /// process has them, and the run requests the admin's trigger receives
    /// (its 今すぐ実行), for a test that wants to see them.
    pub fn contexts(&self) -> Contexts {
        let store = Arc::new(SqliteStore::open(&self.data_dir).expect("embedded store"));
        let mut ne_config = NeClientConfig::for_service(
            CLIENT_ID,
            CLIENT_SECRET,
            &self.public_url,
            &self.ne_url,
            &self.ne_url,
        );
        ne_config.retry = sne_nextengine::RetryPolicy {
            max_attempts: self.ne_attempts,
            base_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(50),
        };
        ne_config.request_timeout = Duration::from_secs(10);
        ne_config.rate = self.rate;
        let smaregi = SmaregiClient::new(
            self.smaregi_url.clone(),
            sne_smaregi::RetryPolicy {
                max_attempts: 2,
                base_delay: Duration::from_millis(10),
                max_delay: Duration::from_millis(50),
            },
            Duration::from_secs(10),
        )
        .with_clock(self.clock.clone())
        .with_rate_limits(self.rate);
        let core = Core {
            storage: store.clone(),
            blobs: Arc::new(FsBlobStore::new(self.data_dir.join("blobs"))),
            clock: self.clock.clone(),
            nextengine: Arc::new(NeClient::new(ne_config, store)),
            smaregi: Arc::new(smaregi),
            platform: self.platform.clone(),
            config: ServiceConfig {
                public_url: self.public_url.clone(),
                ..self.config.clone()
            },
        };
        let (trigger, requests) = queued_trigger();
        Contexts {
            jobs: Context {
                core: core.clone(),
                mailer: Arc::new(EmlMailer::new(self.data_dir.join("outbox"))),
            },
            admin: AdminContext {
                core,
                trigger: Arc::new(trigger),
            },
            requests,
        }
    }

    /// The jobs' context.
    pub fn context(&self) -> Context {
        self.contexts().jobs
    }
}

pub struct Contexts {
    pub jobs: Context,
    pub admin: AdminContext,
    pub requests: UnboundedReceiver<RunRequest>,
}

/// The admin screen over a jobs' context's core (its store, clients and clock),
/// for a test that drives the screen or the webhook beside the jobs; its run
/// requests reach no scheduler.
pub fn admin_of(ctx: &Context) -> AdminContext {
    AdminContext {
        core: ctx.core.clone(),
        trigger: Arc::new(queued_trigger().0),
    }
}
