//! Media ingest of one live stream: RTP over UDP, TCP passive or TCP active → reorder →
//! frames → PS demux → access units. The core ([`Ingest`]) is sans-IO and keeps the
//! diagnosis that explains a stream that never starts; [`run`] is its socket loop.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use media::ps::{DemuxEvent, PsDemuxer, Quirk, StreamConfig};
use media::reorder::{FrameAssembler, Reorder, ReorderConfig};
use media::rtp::RtpPacket;
use media::stats::{StatsSnapshot, StreamStats};
use media::tcp::TcpDeframer;
use media::{AccessUnit, Codec};
use serde::Serialize;
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tracing::{debug, info, warn};

/// What to do with RTP whose SSRC is not the negotiated one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SsrcPolicy {
    /// Not our stream: count it for the diagnosis, drop it.
    Strict,
    /// When nothing with the negotiated SSRC arrived for a second and one other SSRC did,
    /// take that one (devices that ignore `y=`), logging it once.
    Latch,
}

/// Why a stream shows no media: counters of what did arrive.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Diagnosis {
    /// Datagrams or TCP frames received.
    pub packets: u64,
    /// Packets accepted as this stream.
    pub accepted: u64,
    /// Packets that were not RTP.
    pub not_rtp: u64,
    /// RTP packets with another SSRC.
    pub wrong_ssrc: u64,
    /// The last other SSRC seen.
    pub last_wrong_ssrc: Option<u32>,
    /// Packets from an address other than the device's: dropped (they could be anyone's).
    pub other_source: u64,
    /// TCP connections refused: from another address than the device's, or while the
    /// device's connection was up.
    pub refused_connections: u64,
    /// The last source address seen.
    pub last_source: Option<String>,
    /// A TCP connection was established.
    pub tcp_connected: bool,
}

impl Diagnosis {
    /// A sentence naming the likely cause of "no media", for the viewer and the log.
    pub fn explain(&self, expected_ssrc: u32, listen: &str) -> String {
        if self.packets == 0 {
            if listen.starts_with("tcp-active") {
                return format!(
                    "no packets: could not connect to or received nothing from the device ({listen}); check that the device listens where its SDP answer says"
                );
            }
            return format!(
                "no packets arrived at {listen}: check media.announce_ip, firewalls and NAT between the device and the gateway"
            );
        }
        if self.wrong_ssrc > 0 && self.accepted == 0 {
            return format!(
                "SSRC mismatch: expected {expected_ssrc:010} (0x{expected_ssrc:08X}), the device sent {} packet(s) with SSRC {} from {}",
                self.wrong_ssrc,
                self.last_wrong_ssrc
                    .map(|s| format!("{s:010} (0x{s:08X})"))
                    .unwrap_or_default(),
                self.last_source.as_deref().unwrap_or("?")
            );
        }
        if self.not_rtp > 0 && self.accepted == 0 {
            return format!(
                "{} packet(s) from {} were not RTP",
                self.not_rtp,
                self.last_source.as_deref().unwrap_or("?")
            );
        }
        if self.other_source > 0 && self.accepted == 0 {
            return format!(
                "packets from {} only, which is not the device's address: they were dropped (a device behind NAT? see media.trust_sdp_address)",
                self.last_source.as_deref().unwrap_or("?")
            );
        }
        format!(
            "{} RTP packet(s) arrived but no decodable video frame (not PS, or no key frame)",
            self.accepted
        )
    }
}

/// What the ingest produced.
#[derive(Debug, Clone, PartialEq)]
pub enum IngestOut {
    /// A stream's configuration (codec, resolution).
    Config(StreamConfig),
    /// An access unit.
    Unit(AccessUnit),
    /// A real-device quirk, first time per stream.
    Quirk(Quirk),
}

/// The sans-IO ingest core.
pub struct Ingest {
    expected_ssrc: u32,
    /// The device's addresses: media from anywhere else is dropped. Empty: any address.
    allowed: Vec<IpAddr>,
    policy: SsrcPolicy,
    reorder: Reorder,
    assembler: FrameAssembler,
    demux: PsDemuxer,
    stats: StreamStats,
    diag: Diagnosis,
    latched: Option<u32>,
    started: Instant,
    warned_source: bool,
}

impl Ingest {
    /// A core expecting `ssrc` from one of `allowed` (any address when empty); `reliable`
    /// for TCP.
    pub fn new(
        now: Instant,
        ssrc: u32,
        allowed: Vec<IpAddr>,
        policy: SsrcPolicy,
        reliable: bool,
    ) -> Ingest {
        Ingest {
            expected_ssrc: ssrc,
            allowed,
            policy,
            reorder: Reorder::new(if reliable {
                ReorderConfig::tcp()
            } else {
                ReorderConfig::udp()
            }),
            assembler: FrameAssembler::new(),
            demux: PsDemuxer::new(),
            stats: StreamStats::new(90_000),
            diag: Diagnosis::default(),
            latched: None,
            started: now,
            warned_source: false,
        }
    }

    /// The diagnosis so far.
    pub fn diagnosis(&self) -> &Diagnosis {
        &self.diag
    }

    /// Whether media (or a TCP connection) from `ip` may be the device's.
    pub fn allows(&self, ip: IpAddr) -> bool {
        self.allowed.is_empty() || self.allowed.contains(&ip)
    }

    /// Packets accepted as this stream so far.
    pub fn accepted(&self) -> u64 {
        self.diag.accepted
    }

    /// Receive statistics.
    pub fn stats(&self, now: Instant) -> StatsSnapshot {
        let mut s = self.stats.clone();
        s.record_reorder(&self.reorder.stats());
        s.snapshot(now)
    }

    /// Demuxer counters.
    pub fn demux_stats(&self) -> &media::ps::DemuxStats {
        self.demux.stats()
    }

    /// One UDP datagram or one RFC 4571 frame.
    pub fn on_packet(
        &mut self,
        now: Instant,
        from: SocketAddr,
        data: Bytes,
        out: &mut Vec<IngestOut>,
    ) {
        self.diag.packets += 1;
        self.diag.last_source = Some(from.to_string());
        if media::rtp::looks_like_rtcp(&data) {
            return;
        }
        let pkt = match RtpPacket::parse(data) {
            Ok(p) => p,
            Err(_) => {
                self.diag.not_rtp += 1;
                return;
            }
        };
        if !self.allows(from.ip()) {
            // Anyone on the network can send to our port with a guessed SSRC: not the device.
            self.diag.other_source += 1;
            if !self.warned_source {
                self.warned_source = true;
                info!(%from, allowed = ?self.allowed, "media from another address than the device's dropped");
            }
            return;
        }
        let ssrc = pkt.ssrc();
        let ours = ssrc == self.expected_ssrc || self.latched == Some(ssrc);
        if !ours {
            self.diag.wrong_ssrc += 1;
            self.diag.last_wrong_ssrc = Some(ssrc);
            let may_latch = self.policy == SsrcPolicy::Latch
                && self.diag.accepted == 0
                && now.duration_since(self.started) >= Duration::from_secs(1);
            if !may_latch {
                return;
            }
            warn!(
                expected = self.expected_ssrc,
                got = ssrc,
                "device ignores y=: latching on its SSRC"
            );
            self.latched = Some(ssrc);
        }
        if pkt.payload_looks_like_ts() {
            self.diag.not_rtp += 1;
            return;
        }
        self.diag.accepted += 1;
        self.stats.on_packet(now, &pkt);
        self.reorder.push(now, pkt);
        self.drain(now, out);
    }

    /// Drive the reorder wait.
    pub fn on_timeout(&mut self, now: Instant, out: &mut Vec<IngestOut>) {
        self.drain(now, out);
    }

    /// When the reorder buffer next gives up waiting.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.reorder.poll_timeout()
    }

    fn drain(&mut self, now: Instant, out: &mut Vec<IngestOut>) {
        while let Some(p) = self.reorder.poll(now) {
            self.assembler.push(p);
        }
        while let Some(frame) = self.assembler.poll() {
            if frame.complete {
                for b in &frame.payloads {
                    self.demux.push(b.clone());
                }
                if frame.marker {
                    // One frame per RTP marker: hand it on now, not at the next pack.
                    self.demux.end_of_frame();
                }
            } else {
                // Never hand on a damaged frame: drop it and resync at the next pack.
                self.demux.discontinuity();
            }
            self.assembler.recycle(frame);
        }
        while let Some(ev) = self.demux.poll() {
            out.push(match ev {
                DemuxEvent::AccessUnit(au) => IngestOut::Unit(au),
                DemuxEvent::StreamConfig(c) => IngestOut::Config(c),
                DemuxEvent::Quirk(q) => IngestOut::Quirk(q),
            });
        }
    }
}

/// How the ingest gets its packets.
pub enum Source {
    /// A bound UDP socket.
    Udp(UdpSocket),
    /// A listener the device connects to (TCP passive).
    TcpPassive(TcpListener),
    /// The device's address to connect to (TCP active).
    TcpActive(SocketAddr),
}

/// What the ingest task reports to the stream manager.
#[derive(Debug)]
pub enum IngestEvent {
    /// The first video access unit: the stream is playable.
    FirstVideo {
        /// Video codec.
        codec: Codec,
        /// Audio codec seen so far.
        audio: Option<Codec>,
    },
    /// The connection (TCP) closed or failed; the stream cannot continue.
    Closed(String),
    /// Progress, every half second: packets accepted so far, and the diagnosis.
    Status {
        /// Packets accepted as the stream.
        accepted: u64,
        /// What arrived and why it may not be playable.
        diagnosis: Diagnosis,
    },
}

/// Live counters the API shows.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LiveInfo {
    pub codec: Option<&'static str>,
    pub audio_codec: Option<&'static str>,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub fps: f64,
    pub bitrate_bps: f64,
    pub packets: u64,
    pub packets_lost: u64,
    pub jitter_ms: f64,
    pub video_frames: u64,
    pub keyframes: u64,
    pub dropped_frames: u64,
    pub diagnosis: Diagnosis,
    pub quirks: Vec<String>,
}

/// Shared handle on [`LiveInfo`].
pub type SharedInfo = Arc<Mutex<LiveInfo>>;

/// Where access units go.
pub type UnitSink = Box<dyn Fn(AccessUnit) + Send + Sync>;
/// Where stream events go.
pub type EventSink = Box<dyn Fn(IngestEvent) + Send + Sync>;

/// The task: read packets, run the core, hand access units to `units`, report to `events`.
pub async fn run(
    source: Source,
    mut core: Ingest,
    info: SharedInfo,
    units: UnitSink,
    events: EventSink,
) {
    let mut out = Vec::new();
    let mut first_video = false;
    let mut audio: Option<Codec> = None;
    let mut publish_at = Instant::now();
    let mut handle = |core: &mut Ingest, out: &mut Vec<IngestOut>, now: Instant| {
        for o in out.drain(..) {
            match o {
                IngestOut::Unit(au) => {
                    if au.codec.is_audio() {
                        audio.get_or_insert(au.codec);
                    }
                    if au.codec.is_video() && !first_video {
                        first_video = true;
                        events(IngestEvent::FirstVideo {
                            codec: au.codec,
                            audio,
                        });
                    }
                    units(au);
                }
                IngestOut::Config(c) => {
                    debug!(?c.codec, c.width, c.height, "stream configuration");
                    if let Ok(mut i) = info.lock() {
                        if c.codec.is_some_and(Codec::is_video) {
                            i.codec = c.codec.map(Codec::name);
                            i.width = c.width.or(i.width);
                            i.height = c.height.or(i.height);
                        } else if let Some(a) = c.codec.filter(|c| c.is_audio()) {
                            i.audio_codec = Some(a.name());
                            audio.get_or_insert(a);
                        }
                    }
                }
                IngestOut::Quirk(q) => {
                    info!(quirk = ?q, "device quirk");
                    if let Ok(mut i) = info.lock() {
                        i.quirks.push(format!("{q:?}"));
                    }
                }
            }
        }
        if now >= publish_at {
            publish_at = now + Duration::from_millis(500);
            publish(core, &info, now, &events);
        }
    };
    match source {
        Source::Udp(sock) => {
            let mut buf = BytesMut::with_capacity(64 * 1024);
            loop {
                buf.reserve(2048);
                let wake = core.poll_timeout();
                tokio::select! {
                    r = sock.recv_buf_from(&mut buf) => {
                        let Ok((_, from)) = r else { continue };
                        let now = Instant::now();
                        let data = buf.split().freeze();
                        core.on_packet(now, from, data, &mut out);
                        handle(&mut core, &mut out, now);
                    }
                    () = sleep_until(wake) => {
                        let now = Instant::now();
                        core.on_timeout(now, &mut out);
                        handle(&mut core, &mut out, now);
                    }
                    () = tokio::time::sleep(Duration::from_millis(500)) => {
                        publish(&core, &info, Instant::now(), &events);
                    }
                }
            }
        }
        Source::TcpPassive(listener) => {
            // Only the device may connect, and while its connection is up nobody else can
            // take the stream over: others are closed at once and counted.
            let (stream, from) = loop {
                tokio::select! {
                    r = listener.accept() => match r {
                        Ok((s, from)) if core.allows(from.ip()) => break (s, from),
                        Ok((_, from)) => {
                            core.diag.refused_connections += 1;
                            warn!(%from, "media connection from another address than the device's refused");
                        }
                        Err(e) => {
                            events(IngestEvent::Closed(format!("accept failed: {e}")));
                            return;
                        }
                    },
                    () = tokio::time::sleep(Duration::from_millis(500)) => {
                        publish(&core, &info, Instant::now(), &events);
                    }
                }
            };
            info!(%from, "device connected for media (TCP passive)");
            tcp_loop(
                stream,
                from,
                Some(listener),
                &mut core,
                &info,
                &events,
                &mut out,
                &mut handle,
            )
            .await;
        }
        Source::TcpActive(addr) => {
            // The standard asks for at least 3 attempts, 1 s apart.
            let mut stream = None;
            for attempt in 1..=5 {
                match TcpStream::connect(addr).await {
                    Ok(s) => {
                        stream = Some(s);
                        break;
                    }
                    Err(e) => {
                        debug!(%addr, attempt, error = %e, "media connect failed");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            }
            let Some(stream) = stream else {
                events(IngestEvent::Closed(format!(
                    "could not connect to the device at {addr} (TCP active)"
                )));
                return;
            };
            info!(%addr, "connected to the device for media (TCP active)");
            tcp_loop(
                stream,
                addr,
                None,
                &mut core,
                &info,
                &events,
                &mut out,
                &mut handle,
            )
            .await;
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn tcp_loop(
    mut stream: TcpStream,
    from: SocketAddr,
    listener: Option<TcpListener>,
    core: &mut Ingest,
    info: &SharedInfo,
    events: &EventSink,
    out: &mut Vec<IngestOut>,
    handle: &mut impl FnMut(&mut Ingest, &mut Vec<IngestOut>, Instant),
) {
    let _ = stream.set_nodelay(true);
    core.diag.tcp_connected = true;
    let mut deframer = TcpDeframer::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let read = tokio::select! {
            r = stream.read(&mut buf) => r,
            // A second connection never replaces the working one.
            Ok((_, other)) = accept(listener.as_ref()) => {
                core.diag.refused_connections += 1;
                warn!(%other, "second media connection refused: the device's is up");
                continue;
            }
        };
        let n = match read {
            Ok(0) => {
                events(IngestEvent::Closed(
                    "the device closed the media connection".into(),
                ));
                break;
            }
            Ok(n) => n,
            Err(e) => {
                events(IngestEvent::Closed(format!("media connection error: {e}")));
                break;
            }
        };
        let now = Instant::now();
        deframer.push(&buf[..n]);
        while let Some(pkt) = deframer.poll() {
            core.on_packet(now, from, pkt, out);
        }
        handle(core, out, now);
    }
    publish(core, info, Instant::now(), events);
}

/// The next connection on `listener` (never, without one).
async fn accept(listener: Option<&TcpListener>) -> std::io::Result<(TcpStream, SocketAddr)> {
    match listener {
        Some(l) => l.accept().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(t: Option<Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t.into()).await,
        None => std::future::pending().await,
    }
}

fn publish(core: &Ingest, info: &SharedInfo, now: Instant, events: &EventSink) {
    events(IngestEvent::Status {
        accepted: core.accepted(),
        diagnosis: core.diagnosis().clone(),
    });
    let s = core.stats(now);
    let d = core.demux_stats();
    if let Ok(mut i) = info.lock() {
        i.fps = s.fps;
        i.bitrate_bps = s.bitrate_bps;
        i.packets = s.packets;
        i.packets_lost = s.lost;
        i.jitter_ms = s.jitter_ms;
        i.video_frames = d.video_frames;
        i.keyframes = d.keyframes;
        i.dropped_frames = d.dropped_frames;
        i.diagnosis = core.diagnosis().clone();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use media::packetize::RtpPacketizer;
    use media::ps::PsMuxer;

    fn frames(ssrc: u32) -> Vec<Bytes> {
        let au = AccessUnit {
            stream_id: 0xE0,
            codec: Codec::H264,
            pts: Some(3600),
            dts: None,
            keyframe: true,
            data: Bytes::from_static(&[
                0, 0, 0, 1, 0x67, 0x42, 0, 0x1e, 0, 0, 0, 1, 0x68, 0xce, 0x3c, 0x80, 0, 0, 0, 1,
                0x65, 0x88, 0x84,
            ]),
        };
        let mut mux = PsMuxer::new();
        let mut pk = RtpPacketizer::new(ssrc);
        let mut out = Vec::new();
        for i in 0..3u32 {
            let mut a = au.clone();
            a.pts = Some(3600 * u64::from(i + 1));
            let ps = mux.mux(&a).unwrap();
            let mut buf = BytesMut::new();
            let pkts = pk.packetize(3600 * (i + 1), &ps, &mut buf);
            out.extend(pkts);
        }
        out
    }

    #[test]
    fn strict_policy_explains_a_wrong_ssrc() {
        let now = Instant::now();
        let from: SocketAddr = "127.0.0.5:4000".parse().unwrap();
        let mut core = Ingest::new(now, 200_000_001, vec![from.ip()], SsrcPolicy::Strict, false);
        let mut out = Vec::new();
        for p in frames(12345) {
            core.on_packet(now + Duration::from_secs(2), from, p, &mut out);
        }
        assert!(out.is_empty());
        let why = core.diagnosis().explain(200_000_001, "udp 127.0.0.1:30000");
        assert!(
            why.starts_with("SSRC mismatch: expected 0200000001"),
            "{why}"
        );
        assert!(why.contains("0000012345"), "{why}");
    }

    #[test]
    fn good_stream_yields_access_units_and_latch_accepts_foreign_ssrc() {
        let now = Instant::now();
        let from: SocketAddr = "127.0.0.5:4000".parse().unwrap();
        for (policy, ssrc) in [(SsrcPolicy::Strict, 7u32), (SsrcPolicy::Latch, 99u32)] {
            let mut core = Ingest::new(now, 7, vec![from.ip()], policy, true);
            let mut out = Vec::new();
            for p in frames(ssrc) {
                core.on_packet(now + Duration::from_secs(2), from, p, &mut out);
            }
            let units = out
                .iter()
                .filter(|o| matches!(o, IngestOut::Unit(_)))
                .count();
            assert!(units >= 2, "{policy:?}: {out:?}");
        }
        let mut core = Ingest::new(now, 7, Vec::new(), SsrcPolicy::Strict, false);
        assert!(
            core.diagnosis()
                .explain(7, "udp 1.2.3.4:5")
                .starts_with("no packets arrived at udp 1.2.3.4:5")
        );
        core.on_packet(now, from, Bytes::from_static(b"hello"), &mut Vec::new());
        assert!(core.diagnosis().explain(7, "x").contains("were not RTP"));
    }

    #[test]
    fn media_from_another_address_than_the_devices_is_dropped() {
        let now = Instant::now();
        let device: SocketAddr = "10.0.0.9:4000".parse().unwrap();
        let intruder: SocketAddr = "10.0.0.66:4000".parse().unwrap();
        let mut core = Ingest::new(now, 7, vec![device.ip()], SsrcPolicy::Strict, false);
        let mut out = Vec::new();
        let sent = frames(7).len() as u64;
        // The right SSRC, the right port, from the wrong host: nothing comes out.
        for p in frames(7) {
            core.on_packet(now, intruder, p, &mut out);
        }
        assert!(out.is_empty(), "{out:?}");
        assert_eq!(core.diagnosis().other_source, sent);
        assert_eq!(core.accepted(), 0);
        let why = core.diagnosis().explain(7, "udp 10.0.0.5:30000");
        assert!(why.contains("not the device's address"), "{why}");
        assert!(!core.allows(intruder.ip()) && core.allows(device.ip()));
        // The device itself is heard.
        for p in frames(7) {
            core.on_packet(now, device, p, &mut out);
        }
        core.on_timeout(now + Duration::from_secs(1), &mut out);
        assert!(out.iter().any(|o| matches!(o, IngestOut::Unit(_))));
        assert_eq!(core.accepted(), sent);
    }
}
