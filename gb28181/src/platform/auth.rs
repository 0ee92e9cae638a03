//! Digest authentication state of the registrar (RFC 2617, GB/T 28181-2022 §9.1.2): the
//! nonces we issued and the throttles on failures, with their log summary.
//!
//! - Only nonces this platform issued, to the address that answers, and still valid are
//!   evaluated; an invented or foreign nonce gets a new challenge without evaluation, so the
//!   answer says nothing about the password.
//! - A nonce answered with a wrong response is burnt: one guess per challenge.
//! - Failures lock out, with a growing back-off: one device ID from one address (5 in 60 s),
//!   one address for any IDs (20 in 60 s), one ID from any address (20 in 60 s). The
//!   address a device last registered from (or a trusted one) is exempt from the last two,
//!   so nobody else's failures lock a working device out.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use tracing::{info, warn};

use super::config::AuthThrottling;
use super::tally::Tally;
use crate::digest::{NonceCheck, NonceStore};
use crate::throttle::Throttle;

/// How often failures are summarised in the log.
const SUMMARY_INTERVAL: Duration = Duration::from_secs(60);

/// Nonces remembered at most (the oldest go first).
const NONCES: usize = 200_000;

#[derive(Debug)]
pub(super) struct Auth {
    nonces: NonceStore,
    per_pair: Throttle<(String, IpAddr)>,
    per_source: Throttle<IpAddr>,
    per_device: Throttle<String>,
    failures: Tally,
    throttled: Tally,
}

impl Auth {
    pub fn new(nonce_ttl: Duration, config: AuthThrottling) -> Auth {
        Auth {
            nonces: NonceStore::new(nonce_ttl, NONCES),
            per_pair: Throttle::new(config.per_pair),
            per_source: Throttle::new(config.per_source),
            per_device: Throttle::new(config.per_device),
            failures: Tally::new(SUMMARY_INTERVAL),
            throttled: Tally::new(SUMMARY_INTERVAL),
        }
    }

    /// `Err(retry_after)` when attempts of `device` from `ip` are refused without evaluation.
    /// `home`: `ip` is where the device last registered from, or a trusted address of it.
    pub fn gate(
        &mut self,
        now: Instant,
        device: &str,
        ip: IpAddr,
        home: bool,
    ) -> Result<(), Duration> {
        let mut wait = self.per_pair.check(&(device.to_owned(), ip), now).err();
        if !home {
            for w in [
                self.per_source.check(&ip, now).err(),
                self.per_device.check(&device.to_owned(), now).err(),
            ]
            .into_iter()
            .flatten()
            {
                wait = Some(wait.map_or(w, |v| v.max(w)));
            }
        }
        match wait {
            None => Ok(()),
            Some(w) => {
                if self.throttled.record(now, ip) {
                    info!(%device, %ip, retry_after = w.as_secs(), "REGISTER refused without evaluation: too many failures");
                }
                Err(w)
            }
        }
    }

    /// A new nonce for a challenge sent to `ip`.
    pub fn challenge(&mut self, now: Instant, ip: IpAddr) -> String {
        self.nonces.issue_to(now, ip)
    }

    pub fn check_nonce(&self, nonce: &str, nc: u32, now: Instant, ip: IpAddr) -> NonceCheck {
        self.nonces.check(nonce, nc, now, ip)
    }

    pub fn consume_nonce(&mut self, nonce: &str, nc: u32) {
        self.nonces.consume(nonce, nc);
    }

    /// A response was evaluated and wrong (or the credentials were unusable): burn the nonce
    /// and count the failure. Returns true when a lockout started.
    pub fn failed(&mut self, now: Instant, device: &str, ip: IpAddr, nonce: Option<&str>) -> bool {
        if let Some(n) = nonce {
            self.nonces.burn(n);
        }
        if self.failures.record(now, ip) {
            info!(%device, %ip, "registration failed (further failures from this address are summarised)");
        }
        let mut locked = false;
        if let Some(b) = self.per_pair.fail((device.to_owned(), ip), now) {
            warn!(%device, %ip, backoff = b.as_secs(), "device ID locked out for this address after repeated failures");
            locked = true;
        }
        if let Some(b) = self.per_source.fail(ip, now) {
            warn!(%ip, backoff = b.as_secs(), "address locked out after repeated registration failures");
            locked = true;
        }
        if let Some(b) = self.per_device.fail(device.to_owned(), now) {
            warn!(%device, backoff = b.as_secs(), "device ID locked out for other addresses after repeated failures");
            locked = true;
        }
        locked
    }

    /// `device` registered from `ip`: its failures from there are forgotten.
    pub fn succeeded(&mut self, device: &str, ip: IpAddr) {
        self.per_pair.succeed(&(device.to_owned(), ip));
    }

    /// Forget expired nonces and quiet throttle entries; log the summaries due.
    pub fn sweep(&mut self, now: Instant) {
        self.nonces.expire(now);
        self.per_pair.sweep(now);
        self.per_source.sweep(now);
        self.per_device.sweep(now);
        self.failures.log_summary(now, "registration failures");
        self.throttled
            .log_summary(now, "REGISTERs refused while throttled");
    }

    /// Addresses and device IDs locked out now.
    pub fn lockouts(&self, now: Instant) -> Lockouts {
        Lockouts {
            pairs: self
                .per_pair
                .locked(now)
                .map(|((d, ip), w)| (d.clone(), *ip, w))
                .collect(),
            sources: self
                .per_source
                .locked(now)
                .map(|(ip, w)| (*ip, w))
                .collect(),
            devices: self
                .per_device
                .locked(now)
                .map(|(d, w)| (d.clone(), w))
                .collect(),
        }
    }

    /// Failures since start per source address, most first.
    pub fn failure_sources(&self) -> Vec<(IpAddr, u64)> {
        self.failures.totals()
    }
}

/// What is locked out now, with the time left (see [`super::Platform::auth_lockouts`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Lockouts {
    /// (device ID, address) pairs.
    pub pairs: Vec<(String, IpAddr, Duration)>,
    /// Addresses, for device IDs they did not register before.
    pub sources: Vec<(IpAddr, Duration)>,
    /// Device IDs, from addresses they did not register from before.
    pub devices: Vec<(String, Duration)>,
}
