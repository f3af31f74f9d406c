use sne_ports::nextengine::NextEngineApi;
use sne_ports::platform::SmaregiPlatformApi;
use sne_ports::smaregi::SmaregiApi;
use sne_ports::{BlobStore, Clock, Mailer, RunTrigger, Storage};
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct ServiceConfig {
    /// Sender of the run reports.
    pub mail_from: String,
    /// Base URL operators reach the admin screen at (links in reports).
    pub public_url: String,
    /// How long a run may hold a batch it is building.
    pub build_lease: Duration,
    /// How long after an upload call with unknown outcome we keep waiting for its
    /// queue to appear before concluding NextEngine never received it.
    pub unknown_outcome_grace: Duration,
    /// Longest an upload call (with the client's retries) may take; capped at half
    /// the grace by [`ServiceConfig::upload_deadline`].
    pub upload_deadline: Duration,
    /// A queue not finished after this long is reported as 遅延.
    pub queue_overdue_after: Duration,
    pub max_changes_per_batch: usize,
    /// Most rows in one uploaded file; a larger backlog becomes several files.
    pub max_rows_per_file: usize,
    /// Most files one run uploads before leaving the rest to the next run.
    pub max_files_per_run: usize,
    /// How long one order-import run holds a tenant (renewed after every order).
    pub order_import_lease: Duration,
    /// Most history rows read from Smaregi per run.
    pub max_history_rows: usize,
    /// Key of the admin screen's signed cookies. The default is random per process,
    /// which is right for one local process but not for Lambda: every instance would
    /// sign with its own key and sessions would break across instances, so the
    /// admin function must configure it (32+ random bytes from a secret store).
    pub session_secret: SessionSecret,
    /// How long an admin login lasts.
    pub admin_session_ttl: Duration,
    /// How long a run holds a report it is sending before another run may send it
    /// (after a crash mid-send). Longer than one SMTP/SES send with its retries,
    /// or a slow send would be sent a second time by an overlapping run.
    pub report_send_lease: Duration,
    /// How Platform webhooks prove they come from Smaregi: the header the app's
    /// settings add and its value. `None`: the Platform endpoints refuse all.
    pub platform_webhook_secret: Option<WebhookSecret>,
}

/// A developer-defined webhook header and its value; `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookSecret {
    pub header: String,
    pub value: String,
}

impl std::fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "WebhookSecret({}: <redacted>)", self.header)
    }
}

impl ServiceConfig {
    /// The upload call's time limit: never more than half the unknown-outcome
    /// grace, so a run that concludes "NextEngine never got it" cannot overlap an
    /// attempt still in flight.
    pub fn upload_deadline(&self) -> Duration {
        self.upload_deadline.min(self.unknown_outcome_grace / 2)
    }
}

/// Secret bytes whose `Debug` never shows them (the config may end up in logs).
#[derive(Clone, PartialEq, Eq)]
pub struct SessionSecret(pub Vec<u8>);

impl SessionSecret {
    pub fn random() -> Self {
        SessionSecret(rand::random::<[u8; 32]>().to_vec())
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl From<Vec<u8>> for SessionSecret {
    fn from(bytes: Vec<u8>) -> Self {
        SessionSecret(bytes)
    }
}

impl std::fmt::Debug for SessionSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionSecret(<redacted>)")
    }
}

impl Default for ServiceConfig {
    fn default() -> Self {
        ServiceConfig {
            mail_from: "smaregi-ne@localhost".into(),
            public_url: "http://127.0.0.1:8080".into(),
            build_lease: Duration::from_secs(300),
            unknown_outcome_grace: Duration::from_secs(600),
            upload_deadline: Duration::from_secs(240),
            queue_overdue_after: Duration::from_secs(3600),
            max_changes_per_batch: 200_000,
            max_rows_per_file: 10_000,
            max_files_per_run: 20,
            max_history_rows: 100_000,
            order_import_lease: Duration::from_secs(900),
            session_secret: SessionSecret::random(),
            admin_session_ttl: Duration::from_secs(8 * 3600),
            report_send_lease: Duration::from_secs(300),
            platform_webhook_secret: None,
        }
    }
}

/// What every part of the service but the webhook reaches: the table, the
/// bucket, the clock, both API clients and the configuration. Each function
/// kind's context adds only what its role allows on top (design.md §8):
/// [`Context`] the mailer, [`AdminContext`] the run trigger.
#[derive(Clone)]
pub struct Core {
    pub storage: Arc<dyn Storage>,
    pub blobs: Arc<dyn BlobStore>,
    pub clock: Arc<dyn Clock>,
    pub nextengine: Arc<dyn NextEngineApi>,
    pub smaregi: Arc<dyn SmaregiApi>,
    /// The スマレジ・プラットフォームAPI app ([`sne_ports::platform::NoPlatformApp`]
    /// when none is configured).
    pub platform: Arc<dyn SmaregiPlatformApi>,
    pub config: ServiceConfig,
}

/// The scheduled jobs' context — the runner, the queue checker and the order
/// importer, whose roles are the same: the core and the mailer that sends the
/// run reports. It has no run trigger, so no job can request another.
#[derive(Clone)]
pub struct Context {
    pub core: Core,
    pub mailer: Arc<dyn Mailer>,
}

/// The admin screen's and the operator commands' context: the core and the
/// trigger of 「今すぐ実行」. It has no mailer: reports are only ever sent by a
/// run, so the admin function's role needs no SES.
#[derive(Clone)]
pub struct AdminContext {
    pub core: Core,
    pub trigger: Arc<dyn RunTrigger>,
}

// Both contexts *are* a core plus one port; reading `ctx.storage` through them
// keeps every job and page free of `.core.` noise.
impl std::ops::Deref for Context {
    type Target = Core;
    fn deref(&self) -> &Core {
        &self.core
    }
}

impl std::ops::Deref for AdminContext {
    type Target = Core;
    fn deref(&self) -> &Core {
        &self.core
    }
}

impl std::ops::DerefMut for Context {
    fn deref_mut(&mut self) -> &mut Core {
        &mut self.core
    }
}

impl std::ops::DerefMut for AdminContext {
    fn deref_mut(&mut self) -> &mut Core {
        &mut self.core
    }
}
