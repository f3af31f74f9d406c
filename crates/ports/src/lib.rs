//! Ports: one narrow trait per concern. Jobs depend on these traits only; each has
//! an embedded implementation (`sne-embedded`) and an AWS or HTTP one.
//!
//! All storage operations are scoped by [`TenantId`]: an implementation must never
//! return or change data of another tenant, whatever the other arguments say.

pub mod clock;
pub mod error;
pub mod mail;
pub mod nextengine;
pub mod platform;
pub mod rate;
pub mod retry;
pub mod smaregi;
pub mod storage;
pub mod trigger;

#[cfg(feature = "testing")]
pub use clock::FixedClock;
pub use clock::{Clock, SystemClock};
pub use error::{StoreError, StoreResult};
pub use mail::{Attachment, Mail, Mailer};
pub use rate::{ApiRateLimit, RateLimits};
pub use retry::RetryPolicy;
pub use sne_domain::TenantId;
pub use storage::*;
pub use trigger::{RunQueue, RunTrigger};
