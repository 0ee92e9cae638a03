//! Failure throttling with a growing back-off, sans-IO (time is passed in).
//!
//! A [`Throttle`] counts failures per key (a device ID, a source address, a pair of them)
//! inside a sliding window. When a key reaches the configured number of failures it is
//! locked: the caller refuses its attempts without evaluating them until the back-off ends.
//! Each lockout of the same key doubles the back-off, up to a maximum; a key that stays quiet
//! is forgotten. The table is bounded: past its capacity the oldest keys are forgotten first.
//!
//! Used for SIP digest failures (per device ID, per source, per pair) and for the gateway's
//! API token failures (per client address).
//!
//! ```
//! use std::time::{Duration, Instant};
//! use gb28181::throttle::{Throttle, ThrottleConfig};
//! let t0 = Instant::now();
//! let mut t = Throttle::new(ThrottleConfig {
//!     max_failures: 3,
//!     window: Duration::from_secs(60),
//!     initial_backoff: Duration::from_secs(10),
//!     max_backoff: Duration::from_secs(600),
//!     capacity: 1000,
//! });
//! assert!(t.fail("10.0.0.9", t0).is_none());
//! assert!(t.fail("10.0.0.9", t0).is_none());
//! assert_eq!(t.fail("10.0.0.9", t0), Some(Duration::from_secs(10)));
//! assert_eq!(t.check(&"10.0.0.9", t0), Err(Duration::from_secs(10)));
//! assert_eq!(t.check(&"10.0.0.7", t0), Ok(()), "other keys are not affected");
//! assert_eq!(t.check(&"10.0.0.9", t0 + Duration::from_secs(10)), Ok(()));
//! ```

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::time::{Duration, Instant};

/// When a key is locked and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottleConfig {
    /// Failures inside `window` that lock the key.
    pub max_failures: u32,
    /// The window failures are counted in.
    pub window: Duration,
    /// The first lockout's length; each further lockout of the same key doubles it.
    pub initial_backoff: Duration,
    /// The longest lockout.
    pub max_backoff: Duration,
    /// Keys remembered at most (the oldest are forgotten first).
    pub capacity: usize,
}

impl Default for ThrottleConfig {
    /// 5 failures in 60 s lock for 60 s, doubling up to an hour; 100,000 keys.
    fn default() -> Self {
        ThrottleConfig {
            max_failures: 5,
            window: Duration::from_secs(60),
            initial_backoff: Duration::from_secs(60),
            max_backoff: Duration::from_secs(3600),
            capacity: 100_000,
        }
    }
}

#[derive(Debug, Clone)]
struct Entry {
    /// When the key entered the table (for the bounded eviction order).
    inserted: Instant,
    window_start: Instant,
    failures: u32,
    locked_until: Option<Instant>,
    /// Lockouts so far: the next back-off is `initial · 2^lockouts`.
    lockouts: u32,
    last_failure: Instant,
}

/// Failure counts and lockouts per key. See the module documentation.
#[derive(Debug)]
pub struct Throttle<K> {
    config: ThrottleConfig,
    entries: HashMap<K, Entry>,
    /// Keys in insertion order (entries removed since are skipped lazily).
    order: VecDeque<(Instant, K)>,
    evicted: u64,
}

impl<K: Hash + Eq + Clone> Throttle<K> {
    /// An empty throttle.
    pub fn new(config: ThrottleConfig) -> Throttle<K> {
        Throttle {
            config: ThrottleConfig {
                max_failures: config.max_failures.max(1),
                capacity: config.capacity.max(1),
                ..config
            },
            entries: HashMap::new(),
            order: VecDeque::new(),
            evicted: 0,
        }
    }

    /// The configuration.
    pub fn config(&self) -> ThrottleConfig {
        self.config
    }

    /// `Err(retry_after)` while `key` is locked.
    pub fn check(&self, key: &K, now: Instant) -> Result<(), Duration> {
        match self.entries.get(key).and_then(|e| e.locked_until) {
            Some(until) if until > now => Err(until - now),
            _ => Ok(()),
        }
    }

    /// Record a failure of `key`. Returns the back-off when this failure locks the key.
    pub fn fail(&mut self, key: K, now: Instant) -> Option<Duration> {
        if !self.entries.contains_key(&key) {
            self.make_room(now);
            self.order.push_back((now, key.clone()));
        }
        let config = self.config;
        let e = self.entries.entry(key).or_insert(Entry {
            inserted: now,
            window_start: now,
            failures: 0,
            locked_until: None,
            lockouts: 0,
            last_failure: now,
        });
        e.last_failure = now;
        if e.locked_until.is_some_and(|t| t > now) {
            // Failures while locked are the caller's to refuse; they do not extend it.
            return None;
        }
        if now.saturating_duration_since(e.window_start) > config.window || e.locked_until.is_some()
        {
            e.window_start = now;
            e.failures = 0;
            e.locked_until = None;
        }
        e.failures += 1;
        if e.failures < config.max_failures {
            return None;
        }
        let backoff = config
            .initial_backoff
            .saturating_mul(1u32 << e.lockouts.min(20))
            .min(config.max_backoff);
        e.lockouts = e.lockouts.saturating_add(1);
        e.locked_until = Some(now + backoff);
        Some(backoff)
    }

    /// `key` succeeded: forget its failures and lockouts.
    pub fn succeed(&mut self, key: &K) {
        self.entries.remove(key);
    }

    /// Forget keys that are not locked and have been quiet for twice the longest back-off
    /// (their back-off starts again from the first step).
    pub fn sweep(&mut self, now: Instant) {
        let quiet = self
            .config
            .max_backoff
            .saturating_mul(2)
            .max(self.config.window);
        self.entries.retain(|_, e| {
            e.locked_until.is_some_and(|t| t > now)
                || now.saturating_duration_since(e.last_failure) <= quiet
        });
        let entries = &self.entries;
        self.order
            .retain(|(at, k)| entries.get(k).is_some_and(|e| e.inserted == *at));
    }

    /// Keys locked at `now`, with the time left.
    pub fn locked(&self, now: Instant) -> impl Iterator<Item = (&K, Duration)> {
        self.entries.iter().filter_map(move |(k, e)| {
            e.locked_until
                .filter(|t| *t > now)
                .map(|t| (k, t.saturating_duration_since(now)))
        })
    }

    /// Keys remembered.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when no key is remembered.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Keys forgotten because the table was full.
    pub fn evicted(&self) -> u64 {
        self.evicted
    }

    fn make_room(&mut self, now: Instant) {
        if self.entries.len() < self.config.capacity {
            return;
        }
        self.sweep(now);
        while self.entries.len() >= self.config.capacity {
            let Some((at, k)) = self.order.pop_front() else {
                break;
            };
            if self.entries.get(&k).is_some_and(|e| e.inserted == at) {
                self.entries.remove(&k);
                self.evicted += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> ThrottleConfig {
        ThrottleConfig {
            max_failures: 5,
            window: Duration::from_secs(60),
            initial_backoff: Duration::from_secs(60),
            max_backoff: Duration::from_secs(300),
            capacity: 4,
        }
    }

    #[test]
    fn lockout_grows_and_is_capped() {
        let t0 = Instant::now();
        let mut t = Throttle::new(config());
        let mut now = t0;
        let mut backoffs = Vec::new();
        for _ in 0..5 {
            let mut locked = None;
            for _ in 0..5 {
                assert_eq!(t.check(&1, now), Ok(()));
                locked = t.fail(1, now);
            }
            let b = locked.expect("the fifth failure locks");
            assert_eq!(t.check(&1, now), Err(b));
            assert!(t.check(&1, now + b - Duration::from_secs(1)).is_err());
            backoffs.push(b.as_secs());
            now += b;
        }
        assert_eq!(backoffs, [60, 120, 240, 300, 300]);
    }

    #[test]
    fn failures_outside_the_window_do_not_add_up() {
        let t0 = Instant::now();
        let mut t = Throttle::new(config());
        for i in 0..20u64 {
            assert_eq!(t.fail("k", t0 + Duration::from_secs(i * 20)), None);
            if i % 4 == 3 {
                // A window of 60 s holds at most 4 failures 20 s apart.
                assert_eq!(t.check(&"k", t0 + Duration::from_secs(i * 20)), Ok(()));
            }
        }
        let mut t = Throttle::new(config());
        for i in 0..4u64 {
            t.fail("k", t0 + Duration::from_secs(i));
        }
        assert!(t.fail("k", t0 + Duration::from_secs(4)).is_some());
    }

    #[test]
    fn failures_while_locked_do_not_extend_and_success_clears() {
        let t0 = Instant::now();
        let mut t = Throttle::new(config());
        for _ in 0..5 {
            t.fail("k", t0);
        }
        for s in 1..30 {
            assert_eq!(t.fail("k", t0 + Duration::from_secs(s)), None);
        }
        assert_eq!(t.check(&"k", t0 + Duration::from_secs(60)), Ok(()));
        t.succeed(&"k");
        assert!(t.is_empty());
    }

    #[test]
    fn the_table_is_bounded_and_quiet_keys_are_forgotten() {
        let t0 = Instant::now();
        let mut t = Throttle::new(config());
        for k in 0..100 {
            t.fail(k, t0);
        }
        assert_eq!(t.len(), 4);
        assert_eq!(t.evicted(), 96);
        t.sweep(t0 + Duration::from_secs(601));
        assert!(t.is_empty());
    }
}
