//! Counters the platform core keeps of its own work. Plain numbers, no global recorder: the
//! shell reads [`super::Platform::stats`] and exports them (the gateway as Prometheus
//! counters). Every label set is bounded: methods outside RFC 3261 and its extensions count
//! as `other`, status codes are the 100–699 the parser admits.

use std::collections::BTreeMap;

use super::config::Limit;
use crate::sip::Method;

/// Requests by method: the methods of RFC 3261 and its extensions, then `other`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MethodCounts([u64; MethodCounts::NAMES.len()]);

impl MethodCounts {
    /// The labels, in slot order.
    pub const NAMES: [&'static str; 15] = [
        "REGISTER",
        "INVITE",
        "ACK",
        "BYE",
        "CANCEL",
        "OPTIONS",
        "MESSAGE",
        "INFO",
        "SUBSCRIBE",
        "NOTIFY",
        "UPDATE",
        "PRACK",
        "REFER",
        "PUBLISH",
        "other",
    ];

    /// Count one request of `method`.
    pub fn add(&mut self, method: &Method) {
        let i = match method {
            Method::Register => 0,
            Method::Invite => 1,
            Method::Ack => 2,
            Method::Bye => 3,
            Method::Cancel => 4,
            Method::Options => 5,
            Method::Message => 6,
            Method::Info => 7,
            Method::Subscribe => 8,
            Method::Notify => 9,
            Method::Update => 10,
            Method::Prack => 11,
            Method::Refer => 12,
            Method::Publish => 13,
            Method::Extension(_) => 14,
        };
        self.0[i] += 1;
    }

    /// Count one request whose method is `name` on the wire (unknown names count as `other`).
    pub fn add_name(&mut self, name: &[u8]) {
        let i = Self::NAMES
            .iter()
            .position(|n| n.as_bytes() == name)
            .unwrap_or(Self::NAMES.len() - 1);
        self.0[i] += 1;
    }

    /// (label, count) for every slot.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        Self::NAMES.iter().copied().zip(self.0.iter().copied())
    }

    /// The count of one label.
    pub fn get(&self, name: &str) -> u64 {
        Self::NAMES
            .iter()
            .position(|n| *n == name)
            .map_or(0, |i| self.0[i])
    }
}

/// What the platform core counted since it started.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PlatformStats {
    /// Requests received, by method.
    pub requests_in: MethodCounts,
    /// Responses received, by status code.
    pub responses_in: BTreeMap<u16, u64>,
    /// Requests sent (retransmissions included), by method.
    pub requests_out: MethodCounts,
    /// Responses sent (retransmissions included), by status code.
    pub responses_out: BTreeMap<u16, u64>,
    /// Datagrams that did not parse.
    pub parse_errors_udp: u64,
    /// TCP connections closed on a framing error.
    pub parse_errors_tcp: u64,
    /// Reads from TCP connections.
    pub tcp_reads: u64,
    /// Messages that arrived over TCP in more than one read (the network split them).
    pub tcp_split_messages: u64,
    /// Transactions that timed out.
    pub transaction_timeouts: u64,
    /// Registrations refused after evaluation (wrong password, wrong user, realm or URI).
    pub register_failures: u64,
    /// REGISTERs refused without evaluation while a throttle held their device or source.
    pub register_throttled: u64,
    /// Throttle lockouts started.
    pub auth_lockouts: u64,
    /// Requests and responses refused because they claimed a registered device from
    /// another source than its registration.
    pub source_refused: u64,
    /// Times each bound was hit, in the order of [`Limit::ALL`].
    pub limit_hits: [u64; Limit::ALL.len()],
    /// Catalog items collected.
    pub catalog_items: u64,
}

impl PlatformStats {
    /// Count a hit of `limit`.
    pub fn hit(&mut self, limit: Limit) {
        self.limit_hits[limit.index()] += 1;
    }

    /// Hits of `limit` so far.
    pub fn hits(&self, limit: Limit) -> u64 {
        self.limit_hits[limit.index()]
    }

    /// Count an outgoing message from its first line (a request method or a status code).
    pub(super) fn count_out(&mut self, payload: &[u8]) {
        let line = payload
            .get(..payload.len().min(64))
            .unwrap_or_default()
            .split(|&b| b == b'\r' || b == b'\n')
            .next()
            .unwrap_or_default();
        if let Some(rest) = line.strip_prefix(b"SIP/2.0 ") {
            let status = std::str::from_utf8(rest.get(..3).unwrap_or_default())
                .ok()
                .and_then(|s| s.parse::<u16>().ok())
                .unwrap_or(0);
            *self.responses_out.entry(status).or_default() += 1;
        } else {
            let end = line.iter().position(|&b| b == b' ').unwrap_or(line.len());
            self.requests_out.add_name(&line[..end]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_methods_share_one_label() {
        let mut s = PlatformStats::default();
        for i in 0..1000 {
            s.requests_in.add(&Method::Extension(format!("X{i}")));
            s.count_out(format!("FOO{i} sip:a SIP/2.0\r\n").as_bytes());
        }
        s.count_out(b"SIP/2.0 200 OK\r\n");
        s.count_out(b"BYE sip:a SIP/2.0\r\n");
        assert_eq!(s.requests_in.get("other"), 1000);
        assert_eq!(s.requests_out.get("other"), 1000);
        assert_eq!(s.requests_out.get("BYE"), 1);
        assert_eq!(s.responses_out.get(&200), Some(&1));
        assert_eq!(s.requests_in.iter().count(), 15);
    }
}
