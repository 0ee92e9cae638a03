//! `Net`: one platform core and device cores on an in-memory network with simulated time.
//!
//! Two variants: over UDP every message is one datagram; over TCP each device has its own
//! connection and every message is cut into segments of varying size (a real network's
//! segmentation: a message arrives in several reads, several messages in one read).

use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

use super::super::*;
use crate::clock::ManualClock;
use crate::device::{Device, DeviceConfig, DeviceEvent};
use crate::manscdp::{CatalogItem, Charset, DeviceInfo};
use crate::sip::Message;
use crate::transaction::TimerConfig;

pub const PLATFORM_ID: &str = "34020000002000000001";
pub const PLATFORM_ADDR: &str = "127.0.0.1:5060";

pub fn platform_addr() -> SocketAddr {
    PLATFORM_ADDR.parse().unwrap()
}

pub fn device_addr(i: usize) -> SocketAddr {
    format!("127.0.0.2:{}", 15060 + i).parse().unwrap()
}

pub fn device_id(i: usize) -> String {
    format!("340200000013200{:05}", i + 1)
}

pub fn channels(dev: &str, n: usize) -> Vec<CatalogItem> {
    (0..n)
        .map(|c| {
            let mut item = CatalogItem::new(
                format!("{}{:03}", &dev[..17], c + 1),
                format!("通道{}", c + 1),
            );
            item.parent_id = Some(dev.to_owned());
            item.status = Some("ON".into());
            item
        })
        .collect()
}

pub fn device_config(i: usize, password: &str, n_channels: usize) -> DeviceConfig {
    let id = device_id(i);
    DeviceConfig {
        server_id: PLATFORM_ID.into(),
        server_domain: "3402000000".into(),
        server: platform_addr(),
        local_host: "127.0.0.2".into(),
        local_port: device_addr(i).port(),
        password: password.into(),
        expires: Duration::from_secs(3600),
        keepalive_interval: Duration::from_secs(60),
        keepalive_max_missed: 3,
        register_retry: Duration::from_secs(60),
        gb_version: Some("3.0".into()),
        charset: Charset::Gb2312,
        info: DeviceInfo {
            device_name: Some("大门口".into()),
            manufacturer: Some("Sim".into()),
            model: Some("IPC-1".into()),
            firmware: Some("1.0".into()),
            channel: Some(n_channels as u32),
            ..DeviceInfo::default()
        },
        channels: channels(&id, n_channels),
        catalog_page_size: 2,
        user_agent: "sim".into(),
        timers: TimerConfig::default(),
        id,
    }
}

/// How devices reach the platform.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Link {
    /// One datagram per message.
    Udp,
    /// A connection per device; messages cut into segments of 1..=`max_segment` bytes.
    Tcp {
        /// The largest segment (the MSS of the simulated path).
        max_segment: usize,
    },
}

/// The wall time the simulation starts at (2023-11-14T22:13:20Z).
pub fn start_wall() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000)
}

/// An in-memory network between one platform and some devices, with simulated time.
pub struct Net {
    pub now: Instant,
    pub clock: ManualClock,
    pub link: Link,
    pub platform: Platform,
    pub devices: Vec<Device>,
    pub platform_events: Vec<PlatformEvent>,
    pub device_events: Vec<Vec<DeviceEvent>>,
    /// Devices whose traffic is dropped (gone silent).
    pub muted: Vec<bool>,
    /// Devices whose connection the platform closed (TCP).
    pub closed: Vec<bool>,
    /// Where each device's datagrams come from, as the platform sees them (its NAT's public
    /// address; `device_addr(i)` unless a test moves it).
    pub public: Vec<SocketAddr>,
    /// Every message the platform sent, for inspection.
    pub sent_by_platform: Vec<Message>,
    pub sent_by_devices: Vec<Message>,
    /// Reads delivered over TCP (for tests that check segmentation happened).
    pub tcp_reads: usize,
    /// State of the segment-size sequence (deterministic).
    seed: u64,
}

impl Net {
    pub fn new(config: PlatformConfig) -> Net {
        Net::with_link(config, Link::Udp)
    }

    pub fn with_link(config: PlatformConfig, link: Link) -> Net {
        let clock = ManualClock::new(start_wall());
        Net {
            platform: Platform::new(config, clock.clone()),
            clock,
            link,
            now: Instant::now(),
            devices: Vec::new(),
            platform_events: Vec::new(),
            device_events: Vec::new(),
            muted: Vec::new(),
            closed: Vec::new(),
            public: Vec::new(),
            sent_by_platform: Vec::new(),
            sent_by_devices: Vec::new(),
            tcp_reads: 0,
            seed: 0x9e37_79b9_7f4a_7c15,
        }
    }

    pub fn config() -> PlatformConfig {
        PlatformConfig::new(PLATFORM_ID, "127.0.0.1", 5060, "12345678")
    }

    fn conn(i: usize) -> ConnId {
        ConnId(i as u64 + 1)
    }

    pub fn add(&mut self, cfg: DeviceConfig) -> usize {
        let i = self.devices.len();
        let transport = match self.link {
            Link::Udp => Transport::Udp,
            Link::Tcp { .. } => {
                assert!(
                    self.platform
                        .handle_connection_opened(self.now, Net::conn(i), device_addr(i)),
                    "connection refused"
                );
                Transport::Tcp(Net::conn(i))
            }
        };
        let mut d = Device::new(cfg, transport);
        d.start(self.now);
        self.devices.push(d);
        self.device_events.push(Vec::new());
        self.muted.push(false);
        self.closed.push(false);
        self.public.push(device_addr(i));
        self.pump();
        i
    }

    /// The next segment length in 1..=max (a fixed pseudo-random sequence).
    fn segment(&mut self, max: usize) -> usize {
        self.seed ^= self.seed << 13;
        self.seed ^= self.seed >> 7;
        self.seed ^= self.seed << 17;
        1 + (self.seed % max as u64) as usize
    }

    /// Cut `payload` into segments (TCP) or keep it whole (UDP).
    fn segments(&mut self, payload: &[u8]) -> Vec<Vec<u8>> {
        match self.link {
            Link::Udp => vec![payload.to_vec()],
            Link::Tcp { max_segment } => {
                let mut out = Vec::new();
                let mut rest = payload;
                while !rest.is_empty() {
                    let n = self.segment(max_segment).min(rest.len());
                    out.push(rest[..n].to_vec());
                    rest = &rest[n..];
                }
                out
            }
        }
    }

    pub fn pump(&mut self) {
        for _ in 0..100_000 {
            let mut moved = false;
            while let Some(t) = self.platform.poll_transmit() {
                moved = true;
                self.sent_by_platform
                    .push(Message::parse(&t.payload).unwrap());
                let target = match t.transport {
                    Transport::Udp => (0..self.devices.len()).find(|&i| self.public[i] == t.remote),
                    Transport::Tcp(c) => (0..self.devices.len()).find(|&i| Net::conn(i) == c),
                };
                let Some(i) = target else { continue };
                if self.muted[i] || self.closed[i] {
                    continue;
                }
                for seg in self.segments(&t.payload) {
                    match t.transport {
                        Transport::Udp => {
                            self.devices[i].handle_datagram(self.now, platform_addr(), &seg)
                        }
                        Transport::Tcp(c) => {
                            self.tcp_reads += 1;
                            self.devices[i].handle_stream(self.now, c, platform_addr(), &seg)
                        }
                    }
                }
            }
            while let Some(c) = self.platform.poll_close() {
                if let Some(i) = (0..self.devices.len()).find(|&i| Net::conn(i) == c) {
                    self.closed[i] = true;
                    self.devices[i].handle_connection_closed(self.now);
                }
            }
            for i in 0..self.devices.len() {
                while let Some(t) = self.devices[i].poll_transmit() {
                    moved = true;
                    assert_eq!(t.remote, platform_addr());
                    self.sent_by_devices
                        .push(Message::parse(&t.payload).unwrap());
                    if self.muted[i] || self.closed[i] {
                        continue;
                    }
                    for seg in self.segments(&t.payload) {
                        match t.transport {
                            Transport::Udp => {
                                self.platform
                                    .handle_datagram(self.now, self.public[i], &seg)
                            }
                            Transport::Tcp(c) => {
                                self.tcp_reads += 1;
                                self.platform
                                    .handle_stream(self.now, c, device_addr(i), &seg)
                            }
                        }
                    }
                }
                while let Some(e) = self.devices[i].poll_event() {
                    self.device_events[i].push(e);
                }
            }
            while let Some(e) = self.platform.poll_event() {
                self.platform_events.push(e);
            }
            if !moved {
                return;
            }
        }
        panic!("network did not settle");
    }

    /// Advance simulated time (and the wall clock with it) to `now + d`, firing every timer
    /// on the way.
    pub fn advance(&mut self, d: Duration) {
        let until = self.now + d;
        loop {
            let next = std::iter::once(self.platform.poll_timeout())
                .chain(self.devices.iter().map(|d| d.poll_timeout()))
                .flatten()
                .min();
            match next {
                Some(t) if t <= until => {
                    self.set_now(self.now.max(t));
                    self.platform.handle_timeout(self.now);
                    for d in &mut self.devices {
                        d.handle_timeout(self.now);
                    }
                    self.pump();
                }
                _ => break,
            }
        }
        self.set_now(until);
    }

    fn set_now(&mut self, t: Instant) {
        self.clock.advance(t.saturating_duration_since(self.now));
        self.now = t;
    }

    pub fn take_events(&mut self) -> Vec<PlatformEvent> {
        std::mem::take(&mut self.platform_events)
    }

    /// Events produced by direct calls on the platform, after moving its transmits.
    pub fn take_events_now(&mut self) -> Vec<PlatformEvent> {
        self.pump();
        self.take_events()
    }
}
