//! WebRTC egress cost: one frame of a 2 Mbps H.264 stream written to N connected viewers and
//! drained to datagrams, in process (no sockets), for shared packetization (the default)
//! against the per-viewer baseline (str0m's frame API, one packetization per viewer).
//!
//! The viewers are str0m client peers connected over an in-memory network (ICE, DTLS-SRTP with
//! AES-GCM); only their STUN consent checks keep flowing during the measurement. A frame is a
//! 10,000-byte P slice (2 Mbps at 25 fps): 9 RTP packets of ≤ 1200 payload bytes, 225 packets
//! per second. After criterion's groups a summary prints µs per packet per viewer and the
//! viewers one core serves at 225 packets/s for each mode, measured over 250 frames.
//!
//! `cargo bench -p benches --bench egress`

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput};
use media::webrtc::{
    Egress, EgressConfig, Packetization, StreamId, Tracks, TransmitBatch, ViewerLocation,
};
use media::{AccessUnit, Codec};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use str0m::change::SdpAnswer;
use str0m::media::{Direction, MediaKind};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Input, Output, Rtc};

const CAM: StreamId = StreamId(1);
const FPS: u64 = 25;
const FRAME_BYTES: usize = 10_000;

struct Client {
    rtc: Rtc,
    addr: SocketAddr,
    timeout: Instant,
}

/// An egress with `n` connected viewers of one H.264 stream.
struct Rig {
    egress: Egress,
    clients: Vec<Client>,
    now: Instant,
    batch: TransmitBatch,
    frame: u64,
    p_frame: Bytes,
    packets_per_frame: usize,
    /// Datagrams produced by measured frame writes.
    datagrams: u64,
}

fn frame(key: bool) -> Bytes {
    let mut f = Vec::with_capacity(FRAME_BYTES + 32);
    if key {
        f.extend_from_slice(&[0, 0, 0, 1, 0x67, 0x4d, 0x00, 0x1f, 0x95, 0xa8, 0x14, 0x01]);
        f.extend_from_slice(&[0, 0, 0, 1, 0x68, 0xee, 0x3c, 0x80]);
    }
    f.extend_from_slice(&[0, 0, 0, 1, if key { 0x65 } else { 0x41 }, 0x9a]);
    let mut seed = 0x2545_f491u32;
    while f.len() < FRAME_BYTES {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        f.push((seed as u8) | 0x10);
    }
    Bytes::from(f)
}

impl Rig {
    fn new(n: usize, packetization: Packetization, nack: bool) -> Rig {
        let mut config = EgressConfig::new("127.0.0.1:8189".parse().expect("address"));
        config.packetization = packetization;
        config.max_gso_segments = 16;
        if !nack {
            config.nack_buffer = 0;
        }
        let now = Instant::now();
        let mut rig = Rig {
            egress: Egress::new(config),
            clients: Vec::new(),
            now,
            batch: TransmitBatch::new(16),
            frame: 0,
            p_frame: frame(false),
            packets_per_frame: 0,
            datagrams: 0,
        };
        for i in 0..n {
            let addr: SocketAddr = format!("127.0.0.2:{}", 10_000 + i)
                .parse()
                .expect("address");
            let mut rtc = Rtc::builder().enable_h265(false).build(now);
            rtc.add_local_candidate(Candidate::host(addr, "udp").expect("candidate"));
            let mut change = rtc.sdp_api();
            change.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None);
            let (offer, pending) = change.apply().expect("an offer");
            let tracks = Tracks::new(CAM, Some(Codec::H264), None);
            let (_, answer) = rig
                .egress
                .add_viewer(
                    now,
                    &offer.to_sdp_string(),
                    tracks,
                    ViewerLocation::Elsewhere,
                )
                .expect("viewer added");
            let answer = SdpAnswer::from_sdp_string(&answer).expect("answer parses");
            rtc.sdp_api()
                .accept_answer(pending, answer)
                .expect("answer accepted");
            rig.clients.push(Client {
                rtc,
                addr,
                timeout: now,
            });
        }
        for _ in 0..300 {
            if rig.egress.stats().connected == n {
                break;
            }
            rig.exchange(true, Duration::from_millis(10));
        }
        assert_eq!(rig.egress.stats().connected, n, "viewers connect");
        let key = AccessUnit {
            stream_id: 0xe0,
            codec: Codec::H264,
            pts: Some(0),
            dts: None,
            keyframe: true,
            data: frame(true),
        };
        rig.egress.write_video(rig.now, CAM, &key);
        rig.exchange(true, Duration::ZERO);
        rig.write_frame();
        rig.packets_per_frame = rig.datagrams as usize / n;
        rig.datagrams = 0;
        rig
    }

    /// Advances time by `dt` and moves datagrams both ways until quiet. With `media` false
    /// only STUN/DTLS reach the clients (keep-alive), so their cost stays out of the numbers.
    fn exchange(&mut self, media: bool, dt: Duration) {
        self.now += dt;
        if self.egress.poll_timeout().is_some_and(|t| t <= self.now) {
            self.egress.handle_timeout(self.now);
        }
        for c in &mut self.clients {
            if c.timeout <= self.now {
                c.rtc
                    .handle_input(Input::Timeout(self.now))
                    .expect("client timeout");
            }
        }
        for _ in 0..50 {
            let mut up = Vec::new();
            for c in &mut self.clients {
                loop {
                    match c.rtc.poll_output().expect("client output") {
                        Output::Timeout(t) => {
                            c.timeout = t;
                            break;
                        }
                        Output::Transmit(t) => {
                            up.push((t.source, t.destination, t.contents.to_vec()))
                        }
                        Output::Event(_) => {}
                    }
                }
            }
            self.egress.drain_transmits(&mut self.batch);
            let quiet = up.is_empty() && self.batch.is_empty();
            for d in self.batch.datagrams() {
                // RFC 7983 demultiplexing: 0-3 STUN, 20-63 DTLS, 128-191 RTP/RTCP.
                if !media && d.contents[0] >= 128 {
                    continue;
                }
                if let Some(c) = self.clients.iter_mut().find(|c| c.addr == d.destination) {
                    let r = Receive::new(Protocol::Udp, d.source, d.destination, d.contents)
                        .expect("datagram");
                    c.rtc
                        .handle_input(Input::Receive(self.now, r))
                        .expect("client input");
                }
            }
            self.batch.clear();
            for (src, dst, bytes) in up {
                self.egress.handle_receive(self.now, src, dst, &bytes);
            }
            if quiet {
                return;
            }
        }
    }

    /// The measured work: timers due, one frame to every viewer, datagrams drained.
    fn write_frame(&mut self) {
        self.frame += 1;
        self.now += Duration::from_millis(1000 / FPS);
        if self.egress.poll_timeout().is_some_and(|t| t <= self.now) {
            self.egress.handle_timeout(self.now);
        }
        let au = AccessUnit {
            stream_id: 0xe0,
            codec: Codec::H264,
            pts: Some(self.frame * 90_000 / FPS),
            dts: None,
            keyframe: false,
            data: self.p_frame.clone(),
        };
        self.egress.write_video(self.now, CAM, &au);
        self.egress.drain_transmits(&mut self.batch);
        self.datagrams += self.batch.datagram_count() as u64;
        self.batch.clear();
    }

    /// Measured frame writes, with an unmeasured keep-alive exchange every second. Returns
    /// the wall time and the thread's CPU time spent writing.
    fn run(&mut self, frames: u64) -> (Duration, Duration) {
        let (mut wall, mut cpu) = (Duration::ZERO, Duration::ZERO);
        for _ in 0..frames {
            let (t, c) = (Instant::now(), thread_cpu());
            self.write_frame();
            cpu += thread_cpu().saturating_sub(c);
            wall += t.elapsed();
            if self.frame.is_multiple_of(FPS) {
                self.exchange(false, Duration::ZERO);
            }
        }
        assert_eq!(
            self.egress.stats().connected,
            self.clients.len(),
            "viewers stay"
        );
        (wall, cpu)
    }
}

/// CPU time of this thread (Linux `schedstat`, nanoseconds), so that a busy shared machine
/// inflates the figures less than wall time would; zero elsewhere.
fn thread_cpu() -> Duration {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .map_or(Duration::ZERO, Duration::from_nanos)
}

fn bench(c: &mut Criterion, sizes: &[usize]) {
    let mut g = c.benchmark_group("egress_2mbps_frame");
    g.sample_size(20);
    g.measurement_time(Duration::from_secs(4));
    for &n in sizes {
        for (name, mode) in [
            ("shared", Packetization::Shared),
            ("per_viewer", Packetization::PerViewer),
        ] {
            let mut rig = Rig::new(n, mode, true);
            g.throughput(Throughput::Elements((n * rig.packets_per_frame) as u64));
            g.bench_function(BenchmarkId::new(name, n), |b| {
                b.iter_custom(|iters| rig.run(iters).0)
            });
        }
    }
    g.finish();
}

fn summary(n: usize) {
    println!("\nsummary: {n} viewers, 250 frames of a 2 Mbps H.264 stream, thread CPU time");
    let mut per_packet = Vec::new();
    for (name, mode, nack) in [
        ("shared", Packetization::Shared, true),
        ("shared, no NACK cache", Packetization::Shared, false),
        ("per_viewer", Packetization::PerViewer, true),
    ] {
        let mut rig = Rig::new(n, mode, nack);
        rig.run(25);
        rig.datagrams = 0;
        let (_, cpu) = rig.run(250);
        let us = cpu.as_secs_f64() * 1e6 / rig.datagrams as f64;
        let pps = (rig.packets_per_frame as u64 * FPS) as f64;
        println!(
            "  {name:>22}: {us:.3} us/packet/viewer, {pps} packets/s per viewer -> {:.0} viewers/core",
            1e6 / (us * pps)
        );
        per_packet.push(us);
    }
    println!(
        "  per_viewer / shared cost ratio: {:.2}",
        per_packet[2] / per_packet[0]
    );
}

fn main() {
    // EGRESS_PROFILE=shared:300 (or per_viewer:N): only the measured loop, for `perf record`.
    if let Ok(spec) = std::env::var("EGRESS_PROFILE") {
        let (mode, n) = spec.split_once(':').unwrap_or((&spec, "300"));
        let mode = match mode {
            "per_viewer" => Packetization::PerViewer,
            _ => Packetization::Shared,
        };
        let mut rig = Rig::new(n.parse().unwrap_or(300), mode, true);
        let (_, cpu) = rig.run(1000);
        let us = cpu.as_secs_f64() * 1e6 / rig.datagrams as f64;
        println!("{us:.3} us/datagram/viewer (CPU)");
        return;
    }
    let bench_mode = std::env::args().any(|a| a == "--bench");
    let mut c = Criterion::default().configure_from_args();
    if bench_mode {
        bench(&mut c, &[10, 100, 300]);
        c.final_summary();
        summary(300);
    } else {
        // `cargo test --benches`: run each once, small.
        bench(&mut c, &[2]);
    }
}
