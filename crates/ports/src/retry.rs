//! Bounded exponential backoff with jitter, shared by the HTTP clients.

use std::time::Duration;

/// Bounded exponential backoff with jitter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Total attempts, the first one included (at least 1).
    pub max_attempts: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    /// Hamee's own NextEngine code waits about 10 s between overload retries;
    /// five attempts spread over roughly a minute stay inside one scheduled run
    /// and ride out a restarting proxy on either API.
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 5,
            base_delay: Duration::from_secs(2),
            max_delay: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    pub fn attempts(&self) -> u32 {
        self.max_attempts.max(1)
    }

    /// Delay before retry number `retry` (1-based). The upper half is jittered
    /// so that tenants throttled at the same moment do not return in lockstep.
    pub fn delay(&self, retry: u32) -> Duration {
        use rand::Rng;
        let factor = 2u32.saturating_pow(retry.saturating_sub(1).min(20));
        let full = self.base_delay.saturating_mul(factor).min(self.max_delay);
        let half = full / 2;
        let jitter_ms = half.as_millis().min(u64::MAX as u128) as u64;
        let extra = if jitter_ms == 0 {
            0
        } else {
            rand::rng().random_range(0..=jitter_ms)
        };
        half + Duration::from_millis(extra)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_and_stay_bounded() {
        let p = RetryPolicy {
            max_attempts: 10,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(1000),
        };
        for retry in 1..12 {
            let d = p.delay(retry);
            assert!(d <= Duration::from_millis(1000), "{d:?}");
        }
        let first = p.delay(1);
        assert!(first >= Duration::from_millis(50) && first <= Duration::from_millis(100));
        assert!(p.delay(8) >= Duration::from_millis(500));
    }

    #[test]
    fn zero_attempts_means_one() {
        let p = RetryPolicy {
            max_attempts: 0,
            ..RetryPolicy::default()
        };
        assert_eq!(p.attempts(), 1);
    }
}
