//! Refusals counted per source address and logged as one summary per interval instead of a
//! line per attempt: a flood from the device network must not become a flood in the log.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use tracing::warn;

/// Sources with their own count (more are counted together as `others`).
const SOURCES_KEPT: usize = 1024;

/// One interval's refusals, ready to log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Summary {
    pub count: u64,
    pub sources: usize,
    pub top: Option<(IpAddr, u64)>,
    pub seconds: u64,
}

/// Refusals of one kind (digest failures, requests from the wrong source …).
#[derive(Debug)]
pub(super) struct Tally {
    interval: Duration,
    window_start: Option<Instant>,
    in_window: u64,
    window_sources: HashMap<IpAddr, u64>,
    /// Since start, per source (bounded), for operators.
    totals: HashMap<IpAddr, u64>,
    others: u64,
}

impl Tally {
    pub fn new(interval: Duration) -> Tally {
        Tally {
            interval,
            window_start: None,
            in_window: 0,
            window_sources: HashMap::new(),
            totals: HashMap::new(),
            others: 0,
        }
    }

    /// Count one refusal from `ip`. True when it is the first from `ip` in this interval:
    /// the caller logs that one in detail, the rest go into the summary.
    pub fn record(&mut self, now: Instant, ip: IpAddr) -> bool {
        self.window_start.get_or_insert(now);
        self.in_window += 1;
        let first = bump(&mut self.window_sources, ip).is_some_and(|n| n == 1);
        if bump(&mut self.totals, ip).is_none() {
            self.others += 1;
        }
        first
    }

    /// The interval's summary once it has ended and something was refused in it.
    pub fn summary(&mut self, now: Instant) -> Option<Summary> {
        let start = self.window_start?;
        if now.saturating_duration_since(start) < self.interval {
            return None;
        }
        let top = self
            .window_sources
            .iter()
            .max_by_key(|(ip, n)| (**n, std::cmp::Reverse(**ip)))
            .map(|(ip, n)| (*ip, *n));
        let s = Summary {
            count: self.in_window,
            sources: self.window_sources.len(),
            top,
            seconds: now.saturating_duration_since(start).as_secs(),
        };
        self.window_start = None;
        self.in_window = 0;
        self.window_sources.clear();
        Some(s)
    }

    /// Log the interval's summary (`what` names the refusals) once the interval has ended.
    pub fn log_summary(&mut self, now: Instant, what: &'static str) {
        if let Some(s) = self.summary(now) {
            warn!(
                count = s.count,
                sources = s.sources,
                top = ?s.top,
                seconds = s.seconds,
                "{what}"
            );
        }
    }

    /// Refusals since start per source, most first (the first 1,024 sources; later ones
    /// are counted together in `others`).
    pub fn totals(&self) -> Vec<(IpAddr, u64)> {
        let mut v: Vec<(IpAddr, u64)> = self.totals.iter().map(|(i, n)| (*i, *n)).collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        v
    }
}

/// Count one for `ip` in a table of at most [`SOURCES_KEPT`] sources: the new count, or
/// `None` when the table is full and `ip` is not in it.
fn bump(table: &mut HashMap<IpAddr, u64>, ip: IpAddr) -> Option<u64> {
    let full = table.len() >= SOURCES_KEPT;
    match table.entry(ip) {
        std::collections::hash_map::Entry::Occupied(mut e) => {
            *e.get_mut() += 1;
            Some(*e.get())
        }
        std::collections::hash_map::Entry::Vacant(_) if full => None,
        std::collections::hash_map::Entry::Vacant(e) => Some(*e.insert(1)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_detail_per_source_then_a_summary() {
        let t0 = Instant::now();
        let mut t = Tally::new(Duration::from_secs(60));
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        assert!(t.record(t0, a));
        for _ in 0..99 {
            assert!(!t.record(t0, a));
        }
        assert!(t.record(t0, b));
        assert_eq!(t.summary(t0 + Duration::from_secs(59)), None);
        let s = t.summary(t0 + Duration::from_secs(60)).unwrap();
        assert_eq!((s.count, s.sources, s.top), (101, 2, Some((a, 100))));
        assert_eq!(
            t.summary(t0 + Duration::from_secs(200)),
            None,
            "nothing new"
        );
        assert!(t.record(t0 + Duration::from_secs(200), a), "a new interval");
        assert_eq!(t.totals(), vec![(a, 101), (b, 1)]);
    }
}
