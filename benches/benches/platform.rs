//! The signalling core under a node's load: a keepalive MESSAGE from a registered device
//! through the whole platform core (parse, transaction, source check, MANSCDP, answer),
//! with 1,000 and 20,000 devices registered; and an ACK that matches no transaction with
//! 1,000 and 100,000 live server transactions (found through the index, not a scan: the
//! cost must not grow with the table).
//!
//! `cargo bench -p benches --bench platform`

use std::hint::black_box;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use gb28181::clock::SystemClock;
use gb28181::device::{Device, DeviceConfig};
use gb28181::manscdp::{Charset, DeviceInfo};
use gb28181::platform::{Platform, PlatformConfig};
use gb28181::sip::{HeaderName, Message, Request, Response};
use gb28181::transaction::{TimerConfig, TransactionKey, TransactionLayer, TxLimits};
use gb28181::transport::Transport;

const PLATFORM: &str = "127.0.0.1:5060";

fn addr(i: usize) -> SocketAddr {
    SocketAddr::new(
        std::net::Ipv4Addr::from(0x0a00_0000 + i as u32).into(),
        5060,
    )
}

fn device_id(i: usize) -> String {
    format!("3402000000132{:07}", i + 1)
}

/// A platform with `n` registered devices (registered through the device core).
fn platform_with(n: usize) -> (Platform, Vec<Device>) {
    let mut config = PlatformConfig::new("34020000002000000001", "127.0.0.1", 5060, "12345678");
    config.auto_query = false;
    let mut p = Platform::new(config, SystemClock);
    let now = Instant::now();
    let mut devices = Vec::with_capacity(n);
    for i in 0..n {
        let cfg = DeviceConfig {
            id: device_id(i),
            server_id: "34020000002000000001".into(),
            server_domain: "3402000000".into(),
            server: PLATFORM.parse().unwrap(),
            local_host: addr(i).ip().to_string(),
            local_port: 5060,
            password: "12345678".into(),
            expires: Duration::from_secs(3600),
            keepalive_interval: Duration::from_secs(60),
            keepalive_max_missed: 3,
            register_retry: Duration::from_secs(60),
            gb_version: Some("2.0".into()),
            charset: Charset::Gb2312,
            info: DeviceInfo::default(),
            channels: Vec::new(),
            catalog_page_size: 4,
            user_agent: "bench".into(),
            timers: TimerConfig::default(),
        };
        let mut d = Device::new(cfg, Transport::Udp);
        d.start(now);
        for _ in 0..4 {
            while let Some(t) = d.poll_transmit() {
                p.handle_datagram(now, addr(i), &t.payload);
            }
            while let Some(t) = p.poll_transmit() {
                d.handle_datagram(now, PLATFORM.parse().unwrap(), &t.payload);
            }
        }
        while p.poll_event().is_some() {}
        devices.push(d);
    }
    assert!(p.devices().filter(|d| d.online).count() == n);
    (p, devices)
}

fn keepalive(i: usize, seq: u64) -> Vec<u8> {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"GB2312\"?>\r\n<Notify>\r\n<CmdType>Keepalive</CmdType>\r\n<SN>{seq}</SN>\r\n<DeviceID>{}</DeviceID>\r\n<Status>OK</Status>\r\n</Notify>\r\n",
        device_id(i)
    );
    format!(
        "MESSAGE sip:34020000002000000001@3402000000 SIP/2.0\r\n\
         Via: SIP/2.0/UDP {}:5060;rport;branch=z9hG4bK{seq}x{i}\r\n\
         From: <sip:{}@3402000000>;tag={seq}\r\nTo: <sip:34020000002000000001@3402000000>\r\n\
         Call-ID: {seq}x{i}@bench\r\nCSeq: 20 MESSAGE\r\nContent-Type: Application/MANSCDP+xml\r\n\
         Max-Forwards: 70\r\nUser-Agent: IP Camera\r\nContent-Length: {}\r\n\r\n{body}",
        addr(i).ip(),
        device_id(i),
        body.len()
    )
    .into_bytes()
}

fn keepalives(c: &mut Criterion) {
    let mut g = c.benchmark_group("platform_keepalive");
    g.throughput(Throughput::Elements(1));
    for n in [1_000usize, 20_000] {
        let (mut p, _devices) = platform_with(n);
        // Distinct messages (each a new transaction), prepared outside the timing.
        let msgs: Vec<Vec<u8>> = (0..400_000).map(|k| keepalive(k % n, k as u64)).collect();
        let mut k = 0;
        // Simulated time at 10,000 keepalives a second: transactions end 32 s after their
        // answer, as on a node under that load, and their timers are part of the cost.
        let mut now = Instant::now();
        g.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, &n| {
            b.iter(|| {
                now += Duration::from_micros(100);
                if p.poll_timeout().is_some_and(|t| t <= now) {
                    p.handle_timeout(now);
                }
                let i = k % msgs.len();
                p.handle_datagram(now, addr(i % n), black_box(&msgs[i]));
                let t = p.poll_transmit().expect("an answer");
                while p.poll_transmit().is_some() {}
                while p.poll_event().is_some() {}
                k += 1;
                t
            })
        });
        let (_, servers, _) = p.load();
        assert!(servers <= 330_000, "{servers}");
        assert_eq!(p.stats().responses_out.get(&503), None, "nothing refused");
    }
    g.finish();
}

fn request(text: &str) -> Request {
    match Message::parse(text.as_bytes()) {
        Ok(Message::Request(r)) => r,
        other => panic!("{other:?}"),
    }
}

fn unmatched_ack(c: &mut Criterion) {
    let mut g = c.benchmark_group("transaction_unmatched_ack");
    g.throughput(Throughput::Elements(1));
    for n in [1_000usize, 100_000] {
        let mut layer = TransactionLayer::with_limits(
            TimerConfig::default(),
            TxLimits {
                max_server: 1_000_000,
                max_server_per_source: 1_000_000,
            },
        );
        let now = Instant::now();
        for k in 0..n {
            let invite = request(&format!(
                "INVITE sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP {}:5060;branch=z9hG4bKi{k}\r\n\
                 From: <sip:x@b>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: c{k}\r\nCSeq: 1 INVITE\r\n\
                 Content-Length: 0\r\n\r\n",
                addr(k).ip()
            ));
            let key = TransactionKey::server(&invite).unwrap();
            layer.handle_request(now, invite.clone(), Transport::Udp, addr(k));
            let mut ok = Response::for_request(&invite, 200);
            ok.headers.set(HeaderName::To, "<sip:a@b>;tag=2");
            layer.respond(now, &key, ok).unwrap();
        }
        while layer.poll_event().is_some() {}
        while layer.poll_transmit().is_some() {}
        let ack = request(
            "ACK sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP 10.9.9.9:5060;branch=z9hG4bKstray\r\n\
             From: <sip:x@b>;tag=1\r\nTo: <sip:a@b>;tag=2\r\nCall-ID: nobody\r\nCSeq: 1 ACK\r\n\
             Content-Length: 0\r\n\r\n",
        );
        assert_eq!(layer.len().1, n);
        g.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter(|| {
                layer.handle_request(now, black_box(ack.clone()), Transport::Udp, addr(0));
                layer.poll_event()
            })
        });
    }
    g.finish();
}

criterion_group!(benches, keepalives, unmatched_ack);
criterion_main!(benches);
