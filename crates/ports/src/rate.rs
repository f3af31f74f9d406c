//! How fast the API clients may call (issue 13): per tenant, so one shop's
//! backlog never hammers its API contract, and per process, so a burst of shops
//! never exceeds what the service as a whole is configured to send. On AWS each
//! runner is a process: the global rate there is this one times the runner's
//! maximum concurrency (infra/README.md).

use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota};
use std::num::NonZeroU32;

pub const PER_TENANT_ENV: &str = "SNE_API_CALLS_PER_SECOND_PER_TENANT";
pub const PER_PROCESS_ENV: &str = "SNE_API_CALLS_PER_SECOND";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimits {
    /// Calls a second for one tenant — for Smaregi, one contract, which is what
    /// its limit counts (`None`: unbounded).
    pub per_tenant: Option<NonZeroU32>,
    /// Calls a second for the whole process (`None`: unbounded).
    pub per_process: Option<NonZeroU32>,
}

impl RateLimits {
    pub const UNLIMITED: RateLimits = RateLimits {
        per_tenant: None,
        per_process: None,
    };

    /// What the service uses unless told otherwise. NextEngine publishes no
    /// quota (overload answers 003001/003002 govern it); Smaregi counts per
    /// app and contract a second without publishing the figure, and clients
    /// keep to about ten (reference notes §5). Five a tenant keeps a large run
    /// quick (20,000 goods checked in 20 calls: 4 s) and well inside both.
    pub const DEFAULT: RateLimits = RateLimits {
        per_tenant: NonZeroU32::new(5),
        per_process: NonZeroU32::new(20),
    };

    /// Zero means unbounded.
    pub fn new(per_tenant: u32, per_process: u32) -> Self {
        RateLimits {
            per_tenant: NonZeroU32::new(per_tenant),
            per_process: NonZeroU32::new(per_process),
        }
    }
}

/// The limiter of one API client; every call waits for its turn here first.
pub struct ApiRateLimit {
    limits: RateLimits,
    per_tenant: Option<DefaultKeyedRateLimiter<String>>,
    per_process: Option<DefaultDirectRateLimiter>,
}

impl std::fmt::Debug for ApiRateLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiRateLimit")
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl ApiRateLimit {
    /// A burst of one: calls are spread evenly over each second.
    pub fn new(limits: RateLimits) -> Self {
        ApiRateLimit {
            limits,
            per_tenant: limits.per_tenant.map(|n| {
                DefaultKeyedRateLimiter::keyed(Quota::per_second(n).allow_burst(NonZeroU32::MIN))
            }),
            per_process: limits.per_process.map(|n| {
                DefaultDirectRateLimiter::direct(Quota::per_second(n).allow_burst(NonZeroU32::MIN))
            }),
        }
    }

    /// Reads `SNE_API_CALLS_PER_SECOND_PER_TENANT` and `SNE_API_CALLS_PER_SECOND`
    /// through `get` (whole numbers, 0 = unbounded) over [`RateLimits::DEFAULT`].
    pub fn limits_from(get: impl Fn(&str) -> Option<String>) -> Result<RateLimits, String> {
        let read =
            |name: &str, default: Option<NonZeroU32>| -> Result<Option<NonZeroU32>, String> {
                match get(name)
                    .map(|v| v.trim().to_string())
                    .filter(|v| !v.is_empty())
                {
                    None => Ok(default),
                    Some(text) => text.parse::<u32>().map(NonZeroU32::new).map_err(|_| {
                        format!("{name} must be a whole number of calls a second, not {text:?}")
                    }),
                }
            };
        Ok(RateLimits {
            per_tenant: read(PER_TENANT_ENV, RateLimits::DEFAULT.per_tenant)?,
            per_process: read(PER_PROCESS_ENV, RateLimits::DEFAULT.per_process)?,
        })
    }

    pub fn limits(&self) -> RateLimits {
        self.limits
    }

    /// Waits until `tenant` may call: its own turn first, then the process's.
    pub async fn until_ready(&self, tenant: &str) {
        if let Some(limiter) = &self.per_tenant {
            limiter.until_key_ready(&tenant.to_string()).await;
        }
        if let Some(limiter) = &self.per_process {
            limiter.until_ready().await;
        }
    }

    /// Whether `tenant` could call at once; takes the turn if so (tests, and
    /// callers that would rather skip than wait).
    pub fn try_now(&self, tenant: &str) -> bool {
        let tenant_ok = self
            .per_tenant
            .as_ref()
            .is_none_or(|l| l.check_key(&tenant.to_string()).is_ok());
        tenant_ok && self.per_process.as_ref().is_none_or(|l| l.check().is_ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn one_tenants_turn_taken_leaves_the_others_theirs() {
        let limit = ApiRateLimit::new(RateLimits::new(1, 0));
        assert!(limit.try_now("a"));
        assert!(!limit.try_now("a"), "a waits for its next second");
        assert!(limit.try_now("b"), "b is not held up by a");
    }

    #[test]
    fn the_process_limit_holds_every_tenant() {
        let limit = ApiRateLimit::new(RateLimits::new(0, 1));
        assert!(limit.try_now("a"));
        assert!(
            !limit.try_now("b"),
            "one call a second for the whole process"
        );
    }

    #[test]
    fn limits_are_read_with_defaults_and_bad_values_refused() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, v)| v.to_string())
            }
        };
        assert_eq!(ApiRateLimit::limits_from(env(&[])), Ok(RateLimits::DEFAULT));
        assert_eq!(
            ApiRateLimit::limits_from(env(&[(PER_TENANT_ENV, "2"), (PER_PROCESS_ENV, "0")])),
            Ok(RateLimits::new(2, 0))
        );
        let err = ApiRateLimit::limits_from(env(&[(PER_PROCESS_ENV, "fast")])).unwrap_err();
        assert!(err.contains(PER_PROCESS_ENV), "{err}");
    }

    #[test]
    fn unlimited_never_waits() {
        let limit = ApiRateLimit::new(RateLimits::UNLIMITED);
        assert!((0..1_000).all(|_| limit.try_now("a")));
    }

    #[tokio::test]
    async fn calls_beyond_the_rate_wait_for_their_turn() {
        let limit = ApiRateLimit::new(RateLimits::new(20, 0));
        let started = Instant::now();
        for _ in 0..5 {
            limit.until_ready("a").await;
        }
        // Five calls at 20 a second, a burst of one: at least four gaps of 50 ms.
        assert!(
            started.elapsed() >= Duration::from_millis(190),
            "{:?}",
            started.elapsed()
        );
    }
}
