//! The platform core fed by a hostile device network: the input is cut into datagrams and
//! TCP reads from a few sources (the first byte of each piece picks the source, the next its
//! length), with time moving on. Must never panic, and every table stays within its bound.
#![no_main]
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use gb28181::clock::ManualClock;
use gb28181::platform::{Limits, Platform, PlatformConfig};
use gb28181::transaction::TxLimits;
use gb28181::transport::ConnId;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut config = PlatformConfig::new("34020000002000000001", "127.0.0.1", 5060, "12345678");
    config.limits = Limits {
        transactions: TxLimits {
            max_server: 64,
            max_server_per_source: 16,
        },
        max_devices: 8,
        max_tcp_connections: 4,
        max_tcp_connections_per_ip: 2,
        max_message_size_tcp: 4096,
        catalog_max_items: 32,
        max_open_queries: 8,
        ..Limits::default()
    };
    let limits = config.limits.clone();
    let clock = ManualClock::new(std::time::SystemTime::UNIX_EPOCH);
    let mut p = Platform::new(config, clock.clone());
    let mut now = Instant::now();
    let mut rest = data;
    while let [head, len, tail @ ..] = rest {
        let n = usize::from(*len).min(tail.len());
        let (piece, next) = tail.split_at(n);
        rest = next;
        let source = usize::from(head & 0x07);
        let from: SocketAddr = format!("10.0.0.{}:{}", 1 + source % 3, 5060 + source)
            .parse()
            .unwrap();
        if head & 0x08 == 0 {
            p.handle_datagram(now, from, piece);
        } else {
            let conn = ConnId(source as u64);
            p.handle_connection_opened(now, conn, from);
            p.handle_stream(now, conn, from, piece);
        }
        if head & 0x10 != 0 {
            p.handle_connection_closed(now, ConnId(source as u64));
        }
        let step = Duration::from_millis(u64::from(head >> 5) * 700);
        now += step;
        clock.advance(step);
        if p.poll_timeout().is_some_and(|t| t <= now) {
            p.handle_timeout(now);
        }
        while p.poll_transmit().is_some() {}
        while p.poll_close().is_some() {}
        while p.poll_event().is_some() {}
        let (clients, servers, conns) = p.load();
        assert!(servers <= limits.transactions.max_server);
        assert!(conns <= limits.max_tcp_connections);
        assert!(clients <= 4 * limits.max_open_queries + 64);
        assert!(p.devices().count() <= limits.max_devices);
    }
});
