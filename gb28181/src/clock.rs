//! Wall-clock time for what a core stamps (the GB `Date` header of a 200 OK to REGISTER,
//! event times), read when the value is made.
//!
//! Cores take monotonic `now: Instant` in every call for their timers; wall time comes from a
//! [`WallClock`] injected at construction. [`SystemClock`] reads the system clock each time,
//! so an NTP step is picked up at once; [`ManualClock`] is set by tests (and by simulations
//! that run on virtual time).
//!
//! ```
//! use std::time::{Duration, SystemTime};
//! use gb28181::clock::{ManualClock, WallClock};
//! let clock = ManualClock::new(SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000));
//! let seen_by_core = clock.clone();
//! clock.advance(Duration::from_secs(5));
//! assert_eq!(seen_by_core.now(), SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_005));
//! clock.set(SystemTime::UNIX_EPOCH); // a step backwards, as NTP may do
//! assert_eq!(seen_by_core.now(), SystemTime::UNIX_EPOCH);
//! ```

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// A source of wall-clock time.
pub trait WallClock: Send + fmt::Debug {
    /// The wall time now.
    fn now(&self) -> SystemTime;
}

/// The system clock, read on every call.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl WallClock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// A clock that moves only when told; clones share the same time.
#[derive(Debug, Clone)]
pub struct ManualClock(Arc<Mutex<SystemTime>>);

impl ManualClock {
    /// A clock reading `at`.
    pub fn new(at: SystemTime) -> ManualClock {
        ManualClock(Arc::new(Mutex::new(at)))
    }

    /// Set the time (backwards too).
    pub fn set(&self, at: SystemTime) {
        if let Ok(mut t) = self.0.lock() {
            *t = at;
        }
    }

    /// Move the time forward.
    pub fn advance(&self, by: Duration) {
        if let Ok(mut t) = self.0.lock() {
            *t += by;
        }
    }
}

impl WallClock for ManualClock {
    fn now(&self) -> SystemTime {
        // A poisoned lock still holds the last time set.
        match self.0.lock() {
            Ok(t) => *t,
            Err(p) => *p.into_inner(),
        }
    }
}
