//! Media ingest of one live stream: the socket loop (UDP, TCP passive or TCP active) around
//! [`media::receive::Receiver`], which does everything else (source and SSRC checks,
//! reorder, assembly, PS demux, hold-until-key-frame after loss, diagnosis).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use media::arena::Arena;
pub use media::receive::Diagnosis;
use media::receive::{Received, Receiver};
use media::tcp::TcpDeframer;
use media::{AccessUnit, Codec};
use quinn_udp::{RecvMeta, UdpSockRef, UdpSocketState};
use serde::Serialize;
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tracing::{debug, info, warn};

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
    /// Video is held after a loss until a key frame: ask the device for one.
    KeyframeNeeded,
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
    /// Video frames held back after a loss until the next key frame (they depend on a
    /// dropped one: a decoder would have shown them smeared).
    pub held_video_frames: u64,
    /// Times video was held after a loss.
    pub holds: u64,
    /// Losses found to be audio only (the next video frame kept the PTS cadence).
    pub losses_not_video: u64,
    /// Access units the WebRTC task's queue refused (it was full: the gateway is overloaded).
    pub egress_refused_units: u64,
    /// Video units held back after such a refusal, until the next key frame.
    pub egress_held_units: u64,
    pub diagnosis: Diagnosis,
    pub quirks: Vec<String>,
}

/// Shared handle on [`LiveInfo`].
pub type SharedInfo = Arc<Mutex<LiveInfo>>;

/// Where access units go: false when the unit could not be taken (the WebRTC task's queue
/// is full) and was dropped.
pub type UnitSink = Box<dyn Fn(AccessUnit) -> bool + Send + Sync>;

/// Between the ingest and a bounded egress queue: when a video unit could not be queued, the
/// units that depend on it are not queued either until the next key frame, the same rule as
/// after a network loss.
#[derive(Debug, Default)]
pub struct EgressGate {
    holding: bool,
    /// Units the queue refused.
    pub refused: u64,
    /// Video units held back after a refusal.
    pub held: u64,
}

/// What the gate did with a unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gated {
    /// Queued.
    Sent,
    /// Refused by the queue (full). For video, a hold starts: ask for a key frame.
    Refused,
    /// Held back: it depends on a video unit that was refused.
    Held,
}

impl EgressGate {
    /// Offer `au` to `send` unless it must be held.
    pub fn offer(&mut self, au: AccessUnit, send: impl FnOnce(AccessUnit) -> bool) -> Gated {
        let video = au.codec.is_video();
        if video && self.holding && !au.keyframe {
            self.held += 1;
            return Gated::Held;
        }
        let keyframe = video && au.keyframe;
        if send(au) {
            if keyframe {
                self.holding = false;
            }
            return Gated::Sent;
        }
        self.refused += 1;
        if video {
            self.holding = true;
        }
        Gated::Refused
    }
}
/// Where stream events go.
pub type EventSink = Box<dyn Fn(IngestEvent) + Send + Sync>;

/// The task: read packets, run the core, hand access units to `units`, report to `events`.
pub async fn run(
    source: Source,
    mut core: Receiver,
    info: SharedInfo,
    units: UnitSink,
    events: EventSink,
) {
    let mut out = Vec::new();
    let mut gate = EgressGate::default();
    let mut first_video = false;
    let mut audio: Option<Codec> = None;
    let mut publish_at = Instant::now();
    let mut handle = |core: &mut Receiver, out: &mut Vec<Received>, now: Instant| {
        for o in out.drain(..) {
            match o {
                Received::Unit(au) => {
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
                    let video = au.codec.is_video();
                    if gate.offer(au, &units) == Gated::Refused && video {
                        events(IngestEvent::KeyframeNeeded);
                    }
                }
                Received::Config(c) => {
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
                Received::Quirk(q) => {
                    info!(quirk = ?q, "device quirk");
                    if let Ok(mut i) = info.lock() {
                        i.quirks.push(format!("{q:?}"));
                    }
                }
                Received::KeyframeNeeded => events(IngestEvent::KeyframeNeeded),
                Received::Notice(n) => info!(notice = %n, "media"),
            }
        }
        if now >= publish_at {
            publish_at = now + Duration::from_millis(500);
            publish(core, &info, now, &events);
            if let Ok(mut i) = info.lock() {
                i.egress_refused_units = gate.refused;
                i.egress_held_units = gate.held;
            }
        }
    };
    match source {
        Source::Udp(sock) => {
            let mut rx = UdpReceiver::new(&sock);
            let mut tick = tokio::time::interval(Duration::from_millis(500));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            // One timer for the reorder wait, re-armed only when its deadline changes (not a
            // new timer per packet).
            let reorder = tokio::time::sleep(Duration::from_secs(3600));
            tokio::pin!(reorder);
            let mut armed: Option<Instant> = None;
            loop {
                let wake = core.poll_timeout();
                if wake != armed {
                    armed = wake;
                    if let Some(t) = wake {
                        reorder.as_mut().reset(t.into());
                    }
                }
                tokio::select! {
                    r = sock.readable() => {
                        if r.is_err() {
                            continue;
                        }
                        let now = Instant::now();
                        rx.drain(&sock, |from, data| core.on_packet(now, from, data, &mut out));
                        handle(&mut core, &mut out, now);
                    }
                    () = &mut reorder, if armed.is_some() => {
                        armed = None;
                        let now = Instant::now();
                        core.on_timeout(now, &mut out);
                        handle(&mut core, &mut out, now);
                    }
                    _ = tick.tick() => publish(&core, &info, Instant::now(), &events),
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
                            core.diagnosis_mut().refused_connections += 1;
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
    core: &mut Receiver,
    info: &SharedInfo,
    events: &EventSink,
    out: &mut Vec<Received>,
    handle: &mut impl FnMut(&mut Receiver, &mut Vec<Received>, Instant),
) {
    let _ = stream.set_nodelay(true);
    core.diagnosis_mut().tcp_connected = true;
    let mut deframer = TcpDeframer::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let read = tokio::select! {
            r = stream.read(&mut buf) => r,
            // A second connection never replaces the working one.
            Ok((_, other)) = accept(listener.as_ref()) => {
                core.diagnosis_mut().refused_connections += 1;
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

/// Reads every datagram a media socket holds: with UDP GRO where the kernel has it (one
/// system call for a burst of a frame's packets), each datagram copied into an arena whose
/// blocks are reused, so that packets cost no allocation of their own.
struct UdpReceiver {
    state: Option<UdpSocketState>,
    arena: Arena,
}

/// Packet arena blocks: about 11 packets of 1,400 bytes each (a packet is dropped once
/// demuxed unless a frame is a slice of it: small blocks keep little memory pinned).
const PACKET_BLOCK: usize = 16 * 1024;
const PACKET_BLOCKS: usize = 8;

thread_local! {
    /// Where the kernel writes, one per runtime thread (not one per stream): room for a GRO
    /// batch or the largest datagram.
    static LANDING: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(vec![0; 64 * 1024]);
}

impl UdpReceiver {
    fn new(sock: &UdpSocket) -> UdpReceiver {
        UdpReceiver {
            state: UdpSocketState::new(UdpSockRef::from(sock)).ok(),
            arena: Arena::new(PACKET_BLOCK, PACKET_BLOCKS),
        }
    }

    /// Every datagram readable now, then returns (at `WouldBlock` or an error).
    fn drain(&mut self, sock: &UdpSocket, each: impl FnMut(SocketAddr, bytes::Bytes)) {
        LANDING.with_borrow_mut(|landing| self.drain_into(landing, sock, each));
    }

    fn drain_into(
        &mut self,
        landing: &mut [u8],
        sock: &UdpSocket,
        mut each: impl FnMut(SocketAddr, bytes::Bytes),
    ) {
        // Bounded: a socket that never runs dry yields after this many reads.
        for _ in 0..256 {
            let mut meta = [RecvMeta::default()];
            let got = match &self.state {
                Some(state) => {
                    let mut iov = [std::io::IoSliceMut::new(landing)];
                    sock.try_io(tokio::io::Interest::READABLE, || {
                        state.recv(UdpSockRef::from(sock), &mut iov, &mut meta)
                    })
                    .map(|n| (n > 0).then(|| (meta[0].addr, meta[0].len, meta[0].stride)))
                }
                None => sock
                    .try_recv_from(landing)
                    .map(|(len, from)| Some((from, len, len))),
            };
            let Ok(Some((from, len, stride))) = got else {
                return;
            };
            for datagram in landing[..len].chunks(stride.max(1)) {
                each(from, self.arena.copy(&[datagram]));
            }
        }
    }
}

/// The next connection on `listener` (never, without one).
async fn accept(listener: Option<&TcpListener>) -> std::io::Result<(TcpStream, SocketAddr)> {
    match listener {
        Some(l) => l.accept().await,
        None => std::future::pending().await,
    }
}

fn publish(core: &Receiver, info: &SharedInfo, now: Instant, events: &EventSink) {
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
        i.dropped_frames = d.dropped_frames + core.counters().incomplete_rtp_frames;
        i.held_video_frames = core.counters().held_video_frames;
        i.holds = core.counters().holds;
        i.losses_not_video = core.counters().losses_not_video;
        i.diagnosis = core.diagnosis().clone();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn au(codec: Codec, keyframe: bool, n: u64) -> AccessUnit {
        AccessUnit {
            stream_id: if codec.is_video() { 0xE0 } else { 0xC0 },
            codec,
            pts: Some(n * 3600),
            dts: None,
            keyframe,
            data: Bytes::from_static(&[0, 0, 0, 1, 0x41]),
        }
    }

    #[test]
    fn after_a_refused_video_unit_nothing_depending_on_it_is_queued() {
        let mut gate = EgressGate::default();
        let mut queued = Vec::new();
        let mut full = false;
        let offer = |gate: &mut EgressGate, full: bool, u: AccessUnit, queued: &mut Vec<u64>| {
            let pts = u.pts.unwrap_or(0) / 3600;
            gate.offer(u, |_| {
                if !full {
                    queued.push(pts);
                }
                !full
            })
        };
        let v = |n, key| au(Codec::H264, key, n);
        assert_eq!(offer(&mut gate, full, v(0, true), &mut queued), Gated::Sent);
        assert_eq!(
            offer(&mut gate, full, v(1, false), &mut queued),
            Gated::Sent
        );
        full = true;
        assert_eq!(
            offer(&mut gate, full, v(2, false), &mut queued),
            Gated::Refused
        );
        full = false;
        // The queue has room again, but frames 3 and 4 reference frame 2.
        assert_eq!(
            offer(&mut gate, full, v(3, false), &mut queued),
            Gated::Held
        );
        assert_eq!(
            offer(&mut gate, full, au(Codec::G711A, true, 3), &mut queued),
            Gated::Sent,
            "audio flows"
        );
        assert_eq!(
            offer(&mut gate, full, v(4, false), &mut queued),
            Gated::Held
        );
        // A refused key frame keeps the hold; the next one ends it.
        full = true;
        assert_eq!(
            offer(&mut gate, full, v(5, true), &mut queued),
            Gated::Refused
        );
        full = false;
        assert_eq!(
            offer(&mut gate, full, v(6, false), &mut queued),
            Gated::Held
        );
        assert_eq!(offer(&mut gate, full, v(7, true), &mut queued), Gated::Sent);
        assert_eq!(
            offer(&mut gate, full, v(8, false), &mut queued),
            Gated::Sent
        );
        assert_eq!(queued, [0, 1, 3, 7, 8]);
        assert_eq!((gate.refused, gate.held), (2, 3));
        // A refused audio unit starts no hold.
        full = true;
        assert_eq!(
            offer(&mut gate, full, au(Codec::G711A, true, 9), &mut queued),
            Gated::Refused
        );
        full = false;
        assert_eq!(
            offer(&mut gate, full, v(9, false), &mut queued),
            Gated::Sent
        );
    }
}
