//! The platform's TCP connections (RFC 3261 §18.3): each one's receive stream, how many
//! registrations it carries, and the bounds on them (in all, per IP address, time allowed
//! before a registration).

use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use super::config::{Limit, Limits};
use crate::sip::{Message, MessageStream, ParseError};
use crate::transport::ConnId;

#[derive(Debug)]
struct Conn {
    remote: SocketAddr,
    stream: MessageStream,
    /// Devices registered over this connection (one, usually; a lower platform may carry
    /// several).
    devices: Vec<String>,
    /// Since when it carries no registration (the idle clock).
    idle_since: Option<Instant>,
}

/// The connection table. See the module documentation.
#[derive(Debug, Default)]
pub(super) struct Connections {
    conns: HashMap<ConnId, Conn>,
    per_ip: HashMap<IpAddr, usize>,
    /// Connections without a registration, by when they became so.
    idle: BTreeSet<(Instant, ConnId)>,
}

impl Connections {
    /// A connection was accepted: refused (`Err`) when a bound is reached.
    pub fn open(
        &mut self,
        now: Instant,
        conn: ConnId,
        remote: SocketAddr,
        limits: &Limits,
    ) -> Result<(), Limit> {
        if self.conns.contains_key(&conn) {
            return Ok(());
        }
        if self.conns.len() >= limits.max_tcp_connections {
            return Err(Limit::TcpConnections);
        }
        if self.per_ip.get(&remote.ip()).copied().unwrap_or(0) >= limits.max_tcp_connections_per_ip
        {
            return Err(Limit::TcpConnectionsPerIp);
        }
        self.insert(now, conn, remote, limits.max_message_size_tcp);
        Ok(())
    }

    fn insert(&mut self, now: Instant, conn: ConnId, remote: SocketAddr, max_message: usize) {
        self.conns.insert(
            conn,
            Conn {
                remote,
                stream: MessageStream::new(max_message),
                devices: Vec::new(),
                idle_since: Some(now),
            },
        );
        *self.per_ip.entry(remote.ip()).or_default() += 1;
        self.idle.insert((now, conn));
    }

    /// Whether `conn` is open (announced, or seen, and not closed).
    pub fn contains(&self, conn: ConnId) -> bool {
        self.conns.contains_key(&conn)
    }

    /// Bytes read from an open `conn`: the messages they complete, and whether the first of
    /// them began in an earlier read (the network split it).
    pub fn feed(&mut self, conn: ConnId, data: &[u8]) -> Result<(Vec<Message>, bool), ParseError> {
        let Some(c) = self.conns.get_mut(&conn) else {
            return Ok((Vec::new(), false));
        };
        let carried = c.stream.buffered() > 0;
        c.stream.extend(data);
        let mut out = Vec::new();
        while let Some(m) = c.stream.next_message()? {
            out.push(m);
        }
        let split = carried && !out.is_empty();
        Ok((out, split))
    }

    /// The connection is gone: the devices that were registered over it.
    pub fn close(&mut self, conn: ConnId) -> Vec<String> {
        let Some(c) = self.conns.remove(&conn) else {
            return Vec::new();
        };
        if let Some(t) = c.idle_since {
            self.idle.remove(&(t, conn));
        }
        let ip = c.remote.ip();
        if let Some(n) = self.per_ip.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                self.per_ip.remove(&ip);
            }
        }
        c.devices
    }

    /// `device` registered over `conn`: the connection is no longer idle.
    pub fn bind(&mut self, conn: ConnId, device: &str) {
        if let Some(c) = self.conns.get_mut(&conn) {
            if !c.devices.iter().any(|d| d == device) {
                c.devices.push(device.to_owned());
            }
            if let Some(t) = c.idle_since.take() {
                self.idle.remove(&(t, conn));
            }
        }
    }

    /// `device`'s registration over `conn` ended (unregister, expiry, moved elsewhere).
    pub fn unbind(&mut self, now: Instant, conn: ConnId, device: &str) {
        if let Some(c) = self.conns.get_mut(&conn) {
            c.devices.retain(|d| d != device);
            if c.devices.is_empty() && c.idle_since.is_none() {
                c.idle_since = Some(now);
                self.idle.insert((now, conn));
            }
        }
    }

    /// Connections that carried no registration for `timeout`: the caller closes them.
    pub fn idle_expired(&mut self, now: Instant, timeout: Duration) -> Vec<ConnId> {
        let mut due = Vec::new();
        while let Some(&(since, conn)) = self.idle.first() {
            if now.saturating_duration_since(since) < timeout {
                break;
            }
            self.idle.pop_first();
            if let Some(c) = self.conns.get_mut(&conn) {
                c.idle_since = None;
            }
            due.push(conn);
        }
        due
    }

    /// When the next idle connection is due.
    pub fn next_idle_deadline(&self, timeout: Duration) -> Option<Instant> {
        self.idle.first().map(|(since, _)| *since + timeout)
    }

    /// Open connections.
    pub fn len(&self) -> usize {
        self.conns.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(ip: &str, port: u16) -> SocketAddr {
        SocketAddr::new(ip.parse().unwrap(), port)
    }

    #[test]
    fn bounds_and_the_idle_clock() {
        let t0 = Instant::now();
        let limits = Limits {
            max_tcp_connections: 3,
            max_tcp_connections_per_ip: 2,
            ..Limits::default()
        };
        let mut c = Connections::default();
        assert_eq!(c.open(t0, ConnId(1), addr("192.0.2.1", 1), &limits), Ok(()));
        assert_eq!(c.open(t0, ConnId(2), addr("192.0.2.1", 2), &limits), Ok(()));
        assert_eq!(
            c.open(t0, ConnId(3), addr("192.0.2.1", 3), &limits),
            Err(Limit::TcpConnectionsPerIp)
        );
        assert_eq!(c.open(t0, ConnId(4), addr("192.0.2.2", 1), &limits), Ok(()));
        assert_eq!(
            c.open(t0, ConnId(5), addr("192.0.2.3", 1), &limits),
            Err(Limit::TcpConnections)
        );
        c.bind(ConnId(2), "d");
        let timeout = Duration::from_secs(30);
        assert_eq!(c.next_idle_deadline(timeout), Some(t0 + timeout));
        assert!(
            c.idle_expired(t0 + Duration::from_secs(29), timeout)
                .is_empty()
        );
        let mut due = c.idle_expired(t0 + timeout, timeout);
        due.sort();
        assert_eq!(due, [ConnId(1), ConnId(4)]);
        for d in due {
            assert!(c.close(d).is_empty());
        }
        // The registration over 2 ends: its idle clock starts then.
        let t1 = t0 + Duration::from_secs(100);
        c.unbind(t1, ConnId(2), "d");
        assert_eq!(c.next_idle_deadline(timeout), Some(t1 + timeout));
        assert_eq!(c.open(t1, ConnId(6), addr("192.0.2.1", 9), &limits), Ok(()));
        assert_eq!(c.len(), 2);
    }
}
