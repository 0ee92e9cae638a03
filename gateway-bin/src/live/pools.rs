//! Media ports and SSRCs handed out to live sessions and taken back at teardown.

use std::collections::HashSet;

/// Ports of `media.ports`, handed out round-robin so that a port just released is not reused
/// at once (a device may still be sending to it).
#[derive(Debug)]
pub struct PortPool {
    first: u16,
    last: u16,
    next: u16,
    in_use: HashSet<u16>,
}

impl PortPool {
    /// Ports `first..=last`.
    pub fn new(first: u16, last: u16) -> PortPool {
        PortPool {
            first,
            last,
            next: first,
            in_use: HashSet::new(),
        }
    }

    /// The same pool with its round-robin starting `offset` ports into the range (the
    /// gateway picks it at random, so that a restart does not hand out the ports, and the
    /// SSRCs, of the sessions before it while devices may still send to them).
    pub fn starting_at(mut self, offset: u32) -> PortPool {
        let size = u32::from(self.last - self.first) + 1;
        self.next = self.first + (offset % size) as u16;
        self
    }

    /// A port not in use, or `None` when the range is exhausted. The caller binds it and
    /// calls [`release`](Self::release) if binding fails (another process holds it).
    pub fn take(&mut self) -> Option<u16> {
        let size = u32::from(self.last - self.first) + 1;
        for _ in 0..size {
            let p = self.next;
            self.next = if p >= self.last { self.first } else { p + 1 };
            if self.in_use.insert(p) {
                return Some(p);
            }
        }
        None
    }

    /// Give a port back.
    pub fn release(&mut self, port: u16) {
        self.in_use.remove(&port);
    }

    /// Ports in use.
    pub fn in_use(&self) -> usize {
        self.in_use.len()
    }
}

/// SSRCs per GB/T 28181-2022 §9.2.3 (PROTOCOL-NOTES §5): 10 decimal digits = `0` (real time)
/// or `1` (history) + digits 4–8 of the domain ID + a 4-digit sequence, unique among live
/// sessions.
#[derive(Debug)]
pub struct SsrcPool {
    domain_digits: String,
    next: u16,
    in_use: HashSet<u16>,
}

impl SsrcPool {
    /// A pool for the 10-digit `domain` (e.g. `3402000000` → `0` + `20000` + `0001`).
    pub fn new(domain: &str) -> SsrcPool {
        let digits: String = domain.chars().filter(|c| c.is_ascii_digit()).collect();
        let domain_digits = digits
            .get(3..8)
            .map(str::to_owned)
            .unwrap_or_else(|| "00000".into());
        SsrcPool {
            domain_digits,
            next: 1,
            in_use: HashSet::new(),
        }
    }

    /// The same pool with its sequence starting `offset` places in (see
    /// [`PortPool::starting_at`]).
    pub fn starting_at(mut self, offset: u32) -> SsrcPool {
        self.next = 1 + (offset % 9999) as u16;
        self
    }

    /// A fresh live SSRC as text (`y=`) and as the RTP SSRC value.
    pub fn take(&mut self) -> Option<(String, u32)> {
        for _ in 0..9999 {
            let seq = self.next;
            self.next = if self.next >= 9999 { 1 } else { self.next + 1 };
            if self.in_use.insert(seq) {
                let text = format!("0{}{:04}", self.domain_digits, seq);
                let value = text.parse().unwrap_or(0);
                return Some((text, value));
            }
        }
        None
    }

    /// Give an SSRC back.
    pub fn release(&mut self, text: &str) {
        if let Some(seq) = text.get(6..10).and_then(|s| s.parse().ok()) {
            self.in_use.remove(&seq);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ssrc_follows_the_standard_and_is_unique() {
        let mut pool = SsrcPool::new("3402000000");
        let (a, va) = pool.take().unwrap();
        assert_eq!(a, "0200000001");
        assert_eq!(va, 200_000_001);
        assert_eq!(va, 0x0BEB_C201);
        let (b, _) = pool.take().unwrap();
        assert_eq!(b, "0200000002");
        pool.release(&a);
        let mut seen = HashSet::new();
        for _ in 0..9998 {
            let (s, _) = pool.take().unwrap();
            assert!(seen.insert(s));
        }
        assert!(pool.take().is_none(), "all 9999 in use");
        pool.release("0200000005");
        assert_eq!(pool.take().unwrap().0, "0200000005");
    }

    #[test]
    fn ports_round_robin_and_exhaust() {
        let mut p = PortPool::new(30000, 30002);
        assert_eq!(p.take(), Some(30000));
        assert_eq!(p.take(), Some(30001));
        p.release(30000);
        assert_eq!(p.take(), Some(30002));
        assert_eq!(p.take(), Some(30000));
        assert_eq!(p.take(), None);
        assert_eq!(p.in_use(), 3);
    }

    #[test]
    fn a_starting_point_shifts_the_sequence_and_wraps() {
        let mut p = PortPool::new(30000, 30009).starting_at(27);
        assert_eq!(p.take(), Some(30007));
        assert_eq!(p.take(), Some(30008));
        assert_eq!(p.take(), Some(30009));
        assert_eq!(p.take(), Some(30000));
        let mut p = PortPool::new(40000, 40000).starting_at(u32::MAX);
        assert_eq!(p.take(), Some(40000));
        assert_eq!(p.take(), None);

        let mut s = SsrcPool::new("3402000000").starting_at(9998);
        assert_eq!(s.take().unwrap().0, "0200009999");
        assert_eq!(s.take().unwrap().0, "0200000001");
        let mut s = SsrcPool::new("3402000000").starting_at(9999);
        assert_eq!(s.take().unwrap().0, "0200000001");
    }
}
