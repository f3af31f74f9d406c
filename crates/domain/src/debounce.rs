//! When a tenant's run starts, given the requests for it: the debounce of
//! event-driven uploads (design.md §5).
//!
//! A request opens a window of `quiet`; every request inside it joins it, so a
//! burst of pushes becomes one file. Two readings of "quiet window" are
//! supported, as they trade latency for files:
//! - **fixed** (the default): the window ends `quiet` after it opened. A steady
//!   stream goes up a file per window, so no change waits much longer than `quiet`.
//! - **trailing**: every request moves the end to `quiet` after itself, never
//!   past `max_wait` after the window opened. Fewer files, but at ten pushes a
//!   minute per shop most gaps are shorter than 5 s, so the first change of a
//!   stream waits up to `max_wait` (the latency benchmark in README shows both).
//!
//! An urgent request (the schedule, 「今すぐ実行」) ends the window at once. A
//! tenant has at most one run in flight: requests during it open the window of
//! one more run after it.
//!
//! Generic over the instant type so the same rules drive tokio's clock in the
//! service and plain numbers in tests and simulations.

use std::collections::HashMap;
use std::hash::Hash;
use std::ops::Add;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DebouncePolicy {
    /// How long a window gathers requests (from its first, or with `trailing`
    /// from its latest).
    pub quiet: Duration,
    /// With `trailing`: the latest a window ends after its first request.
    pub max_wait: Duration,
    /// Whether every request restarts the quiet window (up to `max_wait`).
    pub trailing: bool,
}

impl Default for DebouncePolicy {
    fn default() -> Self {
        DebouncePolicy {
            quiet: Duration::from_secs(5),
            max_wait: Duration::from_secs(30),
            trailing: false,
        }
    }
}

impl DebouncePolicy {
    pub fn trailing(self) -> Self {
        DebouncePolicy {
            trailing: true,
            ..self
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Window<T> {
    opened: T,
    ends: T,
    /// Asked for at once: later quiet requests join it without delaying it.
    urgent: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot<T> {
    Waiting(Window<T>),
    Running { next: Option<Window<T>> },
}

/// The debounce state of every tenant with a request or a run.
#[derive(Debug, Clone)]
pub struct Debouncer<K, T> {
    policy: DebouncePolicy,
    slots: HashMap<K, Slot<T>>,
}

impl<K, T> Debouncer<K, T>
where
    K: Eq + Hash + Clone,
    T: Copy + Ord + Add<Duration, Output = T>,
{
    pub fn new(policy: DebouncePolicy) -> Self {
        Debouncer {
            policy,
            slots: HashMap::new(),
        }
    }

    /// New changes are stored: a run within the quiet window, unless more come.
    pub fn request(&mut self, key: &K, now: T) {
        self.join(key, now, false);
    }

    /// A run as soon as the tenant has none in flight.
    pub fn request_now(&mut self, key: &K, now: T) {
        self.join(key, now, true);
    }

    fn join(&mut self, key: &K, now: T, urgent: bool) {
        let policy = self.policy;
        let wanted_end = if urgent { now } else { now + policy.quiet };
        let joined = |window: Option<Window<T>>| match window {
            None => Window {
                opened: now,
                ends: wanted_end,
                urgent,
            },
            // An urgent window stays as near as it is; a trailing one moves
            // to the latest request's quiet end, but never past the max wait.
            Some(w) if w.urgent || urgent => Window {
                ends: w.ends.min(wanted_end),
                urgent: true,
                ..w
            },
            Some(w) if !policy.trailing => w,
            Some(w) => Window {
                ends: wanted_end.min(w.opened + policy.max_wait),
                ..w
            },
        };
        let slot = match self.slots.get(key).copied() {
            None => Slot::Waiting(joined(None)),
            Some(Slot::Waiting(w)) => Slot::Waiting(joined(Some(w))),
            Some(Slot::Running { next }) => Slot::Running {
                next: Some(joined(next)),
            },
        };
        self.slots.insert(key.clone(), slot);
    }

    /// The tenants whose window has ended and that have no run in flight,
    /// the longest-waiting first.
    pub fn due(&self, now: T) -> Vec<K> {
        let mut due: Vec<(T, &K)> = self
            .slots
            .iter()
            .filter_map(|(key, slot)| match slot {
                Slot::Waiting(w) if w.ends <= now => Some((w.opened, key)),
                _ => None,
            })
            .collect();
        due.sort_by_key(|a| a.0);
        due.into_iter().map(|(_, key)| key.clone()).collect()
    }

    /// The run of `key` has started: it covers every request so far. False if
    /// nothing was waiting for it (or a run is already in flight).
    pub fn start(&mut self, key: &K) -> bool {
        match self.slots.get(key) {
            Some(Slot::Waiting(_)) => {
                self.slots.insert(key.clone(), Slot::Running { next: None });
                true
            }
            _ => false,
        }
    }

    /// The run of `key` has ended; requests made during it are waiting now,
    /// their window unchanged (it may have ended already).
    pub fn finish(&mut self, key: &K) {
        match self.slots.get(key).copied() {
            Some(Slot::Running { next: Some(w) }) => {
                self.slots.insert(key.clone(), Slot::Waiting(w));
            }
            Some(Slot::Running { next: None }) => {
                self.slots.remove(key);
            }
            _ => {}
        }
    }

    /// When the next window ends among tenants without a run in flight.
    pub fn next_deadline(&self) -> Option<T> {
        self.slots
            .values()
            .filter_map(|slot| match slot {
                Slot::Waiting(w) => Some(w.ends),
                _ => None,
            })
            .min()
    }

    /// No tenant is waiting for a run or running one.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Milliseconds, as the instant type.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
    struct Ms(u64);

    impl Add<Duration> for Ms {
        type Output = Ms;
        fn add(self, d: Duration) -> Ms {
            Ms(self.0 + d.as_millis() as u64)
        }
    }

    fn policy() -> DebouncePolicy {
        DebouncePolicy::default()
    }

    #[test]
    fn a_fixed_window_gathers_a_burst_and_ends_quiet_after_its_first_request() {
        let mut d = Debouncer::new(policy());
        for t in [0, 1_000, 2_000, 4_900] {
            d.request(&"a", Ms(t));
        }
        assert!(d.due(Ms(4_999)).is_empty());
        assert_eq!(d.due(Ms(5_000)), vec!["a"], "not moved by later requests");
        assert!(d.start(&"a"));
        d.request(&"a", Ms(5_100));
        d.finish(&"a");
        assert!(d.due(Ms(10_099)).is_empty(), "the next window is its own");
        assert_eq!(d.due(Ms(10_100)), vec!["a"]);
    }

    #[test]
    fn a_steady_stream_in_fixed_windows_goes_up_a_run_per_window() {
        let mut d = Debouncer::new(policy());
        let mut starts = vec![];
        for t in (0..30_000).step_by(500) {
            for k in d.due(Ms(t)) {
                assert!(d.start(&k));
                starts.push(t);
                d.finish(&k);
            }
            d.request(&"a", Ms(t));
        }
        assert_eq!(starts, vec![5_000, 10_000, 15_000, 20_000, 25_000]);
    }

    #[test]
    fn a_burst_becomes_one_run_after_the_trailing_quiet_window() {
        let mut d = Debouncer::new(policy().trailing());
        for t in [0, 1_000, 2_000, 3_500] {
            d.request(&"a", Ms(t));
            assert!(d.due(Ms(t)).is_empty());
        }
        assert!(d.due(Ms(8_499)).is_empty(), "quiet for less than 5 s");
        assert_eq!(d.next_deadline(), Some(Ms(8_500)));
        assert_eq!(d.due(Ms(8_500)), vec!["a"]);
        assert!(d.start(&"a"));
        assert!(d.due(Ms(9_000)).is_empty());
        d.finish(&"a");
        assert!(d.is_empty(), "nothing asked during the run: nothing more");
    }

    #[test]
    fn a_steady_stream_in_a_trailing_window_runs_at_the_max_wait() {
        let mut d = Debouncer::new(policy().trailing());
        let mut t = 0;
        while t < 29_000 {
            d.request(&"a", Ms(t));
            assert!(d.due(Ms(t)).is_empty(), "at {t}");
            t += 2_000;
        }
        d.request(&"a", Ms(29_500));
        assert_eq!(d.next_deadline(), Some(Ms(30_000)));
        assert_eq!(d.due(Ms(30_000)), vec!["a"]);
    }

    #[test]
    fn requests_during_a_run_lead_to_exactly_one_more_run() {
        let mut d = Debouncer::new(policy());
        d.request_now(&"a", Ms(0));
        assert!(d.start(&"a"));
        d.request(&"a", Ms(1_000));
        d.request(&"a", Ms(2_000));
        assert!(d.due(Ms(60_000)).is_empty(), "one run in flight");
        assert!(!d.start(&"a"));
        d.finish(&"a");
        assert_eq!(
            d.due(Ms(60_000)),
            vec!["a"],
            "the window ended during the run"
        );
        assert!(d.start(&"a"));
        d.finish(&"a");
        assert!(d.is_empty());
    }

    #[test]
    fn an_urgent_request_ends_a_waiting_window_and_tenants_are_independent() {
        let mut d = Debouncer::new(policy());
        d.request(&"a", Ms(0));
        d.request(&"b", Ms(100));
        d.request_now(&"b", Ms(200));
        assert_eq!(d.due(Ms(200)), vec!["b"]);
        d.request(&"b", Ms(300));
        assert_eq!(
            d.due(Ms(300)),
            vec!["b"],
            "a quiet request joins without delaying"
        );
        assert_eq!(d.next_deadline(), Some(Ms(200)));
        assert_eq!(d.due(Ms(4_999)), vec!["b"], "a keeps its own window");
        assert_eq!(
            d.due(Ms(5_000)),
            vec!["a", "b"],
            "the longest-waiting first"
        );
    }

    proptest! {
        /// Whatever the requests and run lengths: never two runs of a tenant at
        /// once, every request is covered by a run that starts after it, and a
        /// window never lasts beyond its max wait while the tenant is idle.
        #[test]
        fn no_request_is_lost_and_runs_never_overlap(
            trailing in any::<bool>(),
            steps in proptest::collection::vec((0u8..3, 0u64..8_000, any::<bool>(), 0u64..20_000), 1..60)
        ) {
            let p = DebouncePolicy { trailing, ..policy() };
            let mut d = Debouncer::new(p);
            let mut now = 0u64;
            // Per tenant: the oldest request not yet covered by a started run,
            // and the end of the run in flight.
            let mut uncovered: HashMap<u8, u64> = HashMap::new();
            let mut running: HashMap<u8, u64> = HashMap::new();
            let mut idle_since: HashMap<u8, u64> = HashMap::new();
            for (tenant, gap, urgent, run_for) in steps {
                let target = now + gap;
                // Advance in small steps, starting and finishing runs on the way.
                while now < target {
                    now += 50.min(target - now);
                    let finished: Vec<u8> = running.iter().filter(|(_, end)| **end <= now).map(|(k, _)| *k).collect();
                    for k in finished {
                        running.remove(&k);
                        d.finish(&k);
                        idle_since.insert(k, now);
                    }
                    for k in d.due(Ms(now)) {
                        prop_assert!(!running.contains_key(&k), "two runs of {k}");
                        prop_assert!(d.start(&k));
                        uncovered.remove(&k);
                        running.insert(k, now + run_for % 3_000);
                    }
                    for (k, first) in &uncovered {
                        if !running.contains_key(k) {
                            // Idle and waiting: never longer than the max wait
                            // from the later of its first request and the run end.
                            let since = (*first).max(*idle_since.get(k).unwrap_or(&0));
                            prop_assert!(now <= since + p.max_wait.as_millis() as u64 + 50,
                                "{k} waited from {since} to {now}");
                        }
                    }
                }
                if urgent { d.request_now(&tenant, Ms(now)) } else { d.request(&tenant, Ms(now)) }
                uncovered.entry(tenant).or_insert(now);
            }
            // Drain: every request ends up covered.
            for _ in 0..10_000 {
                now += 50;
                let finished: Vec<u8> = running.iter().filter(|(_, end)| **end <= now).map(|(k, _)| *k).collect();
                for k in finished { running.remove(&k); d.finish(&k); }
                for k in d.due(Ms(now)) { prop_assert!(d.start(&k)); uncovered.remove(&k); running.insert(k, now + 100); }
                if uncovered.is_empty() && running.is_empty() { break; }
            }
            prop_assert!(uncovered.is_empty(), "requests never run: {uncovered:?}");
            prop_assert!(d.is_empty());
        }
    }
}
