//! RTP receive path benches, reported in packets per second:
//!
//! - `rtp_parse`: `RtpPacket::parse` over the real captures in media/tests/data.
//! - `tcp_deframe`: `TcpDeframer` over RFC 4571 streams, in 64 KiB and 1400-byte reads.
//! - `reorder_assemble`: `Reorder` (UDP settings, every 10th pair swapped) then
//!   `FrameAssembler`, per packet.
//! - `receive_path`: `media::receive::Receiver`, the gateway's whole pipeline (source and
//!   SSRC checks, parse, reorder, frame assembly, PS demux, loss hold), over our
//!   packetizer's output for a PS stream muxed by `PsMuxer` from
//!   media/tests/data/srs_bench_avatar.h264.
//!
//! A counting global allocator prints allocations per packet in steady state for the
//! receive path (goal: 0, and ≥ 2 million packets/s/core).
//!
//! `cargo bench -p benches --bench rtp`

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use media::codec::{h264, nal};
use media::packetize::RtpPacketizer;
use media::ps::PsMuxer;
use media::receive::{Received, ReceiverConfig};
use media::reorder::{FrameAssembler, Reorder, ReorderConfig};
use media::rtp::RtpPacket;
use media::tcp::TcpDeframer;
use media::{AccessUnit, Codec};

/// Counts allocations (and reallocations) made by the bench process.
struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards every call to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// The `media` crate's test data (provenance in the README there).
const TESTDATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../media/tests/data");

fn capture(name: &str) -> Vec<u8> {
    std::fs::read(format!("{TESTDATA}/{name}")).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn split_rfc4571(d: &[u8]) -> Vec<Bytes> {
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(&[a, b]) = d.get(i..i + 2) {
        let n = usize::from(u16::from_be_bytes([a, b]));
        out.push(Bytes::copy_from_slice(&d[i + 2..i + 2 + n]));
        i += 2 + n;
    }
    out
}

fn bench_parse(c: &mut Criterion) {
    let mut pkts = split_rfc4571(&capture("lal_ps_rtp_seq0-8_ssrc0bebc265.rfc4571"));
    pkts.extend(split_rfc4571(&capture(
        "srs_ps_rtp_seq0-13_ssrc0bebdfa1.rfc4571",
    )));
    let mut g = c.benchmark_group("rtp_parse");
    g.throughput(Throughput::Elements(pkts.len() as u64));
    g.bench_function("captures", |b| {
        b.iter(|| {
            for p in &pkts {
                black_box(RtpPacket::parse(black_box(p.clone())).expect("capture parses"));
            }
        })
    });
    g.finish();
}

/// A long RFC 4571 stream from our packetizer: 20 000 packets of 1412 bytes and frame ends.
fn tcp_stream() -> (Vec<u8>, u64) {
    let mut p = RtpPacketizer::new(0x0bebc265).with_rfc4571(true);
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    let mut n = 0;
    for f in 0..2000u32 {
        let pk = p.packetize(f * 3600, &vec![0x5a; 13_000], &mut buf);
        n += pk.len() as u64;
        out.extend_from_slice(pk.wire());
    }
    (out, n)
}

fn bench_tcp(c: &mut Criterion) {
    let (stream, n) = tcp_stream();
    let mut g = c.benchmark_group("tcp_deframe");
    g.throughput(Throughput::Elements(n));
    for read in [64 * 1024, 1400] {
        g.bench_with_input(BenchmarkId::new("read", read), &read, |b, &read| {
            b.iter(|| {
                let mut d = TcpDeframer::new();
                let mut got = 0u64;
                for c in stream.chunks(read) {
                    d.push(c);
                    while let Some(p) = d.poll() {
                        got += p.len() as u64;
                    }
                }
                black_box(got)
            })
        });
    }
    g.finish();
}

/// RTP datagrams of a PS stream, as slices of one buffer; every 10th pair swapped.
fn datagrams(frames: &[Bytes], repeat: usize) -> Vec<Bytes> {
    let mut p = RtpPacketizer::new(SSRC).with_sequence(60_000);
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    let mut ts = 0u32;
    for _ in 0..repeat {
        for f in frames {
            out.extend(p.packetize(ts, f, &mut buf));
            ts = ts.wrapping_add(3600);
        }
    }
    for i in (0..out.len().saturating_sub(1)).step_by(20) {
        out.swap(i, i + 1);
    }
    out
}

/// Access units of an H.264 Annex B stream, cut before each AUD/SPS/SEI or first slice that
/// follows a slice.
fn access_units(es: &Bytes) -> Vec<(Bytes, bool)> {
    let mut cuts = vec![0];
    let mut keys = vec![false];
    let mut seen_slice = false;
    let mut pos = 0;
    while let Some((sc, len)) = nal::find_start_code(es, pos) {
        let Some(&b0) = es.get(sc + len) else { break };
        let t = h264::nal_type(b0);
        let first = es.get(sc + len + 1).is_some_and(|b| b & 0x80 != 0);
        if seen_slice && (matches!(t, 6..=9) || (matches!(t, 1 | 5) && first)) {
            cuts.push(sc);
            keys.push(false);
            seen_slice = false;
        }
        if matches!(t, 1 | 5) {
            seen_slice = true;
            if t == 5
                && let Some(k) = keys.last_mut()
            {
                *k = true;
            }
        }
        pos = sc + len;
    }
    cuts.push(es.len());
    cuts.windows(2)
        .zip(keys)
        .map(|(w, k)| (es.slice(w[0]..w[1]), k))
        .collect()
}

/// PS frames (one per access unit) muxed by `PsMuxer`.
fn ps_frames() -> Vec<Bytes> {
    let es = capture("srs_bench_avatar.h264");
    let units = access_units(&Bytes::from(es));
    let mut mux = PsMuxer::new();
    units
        .iter()
        .enumerate()
        .map(|(n, (data, key))| {
            let au = AccessUnit {
                stream_id: 0xE0,
                codec: Codec::H264,
                pts: Some(n as u64 * 3600),
                dts: None,
                keyframe: *key,
                data: data.clone(),
            };
            mux.mux(&au).expect("valid access unit")
        })
        .collect()
}

/// Where the packets come from (the receiver checks the source).
const DEVICE: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 9)), 4000);

/// The bench's packetizer SSRC.
const SSRC: u32 = 0x0beb_c265;

/// A receive path, kept across calls so that buffers are warm: the components
/// (`reorder_assemble`), or the whole of `media::receive::Receiver` as the gateway runs it.
enum Path {
    Components {
        reorder: Box<Reorder>,
        frames: Box<FrameAssembler>,
    },
    Whole {
        rx: Box<media::receive::Receiver>,
        out: Vec<Received>,
    },
}

struct Bench {
    path: Path,
    now: Instant,
    units: u64,
}

impl Bench {
    fn new(whole: bool) -> Self {
        let now = Instant::now();
        let path = if whole {
            Path::Whole {
                rx: Box::new(media::receive::Receiver::new(
                    now,
                    ReceiverConfig::udp(SSRC, vec![DEVICE.ip()]),
                )),
                out: Vec::with_capacity(64),
            }
        } else {
            Path::Components {
                reorder: Box::new(Reorder::new(ReorderConfig::udp())),
                frames: Box::new(FrameAssembler::new()),
            }
        };
        Bench {
            path,
            now,
            units: 0,
        }
    }

    fn datagram(&mut self, d: &Bytes) {
        self.now += Duration::from_micros(200);
        match &mut self.path {
            Path::Whole { rx, out } => {
                rx.on_packet(self.now, DEVICE, d.clone(), out);
                for r in out.drain(..) {
                    if let Received::Unit(au) = r {
                        self.units += 1;
                        black_box(au);
                    }
                }
            }
            Path::Components { reorder, frames } => {
                let Ok(p) = RtpPacket::parse(d.clone()) else {
                    return;
                };
                reorder.push(self.now, p);
                while let Some(p) = reorder.poll(self.now) {
                    frames.push(p);
                }
                while let Some(f) = frames.poll() {
                    self.units += u64::from(f.complete);
                    black_box(&f);
                    frames.recycle(f);
                }
            }
        }
    }
}

fn allocs_per_packet(pkts: &[Bytes], with_demux: bool) -> f64 {
    let mut r = Bench::new(with_demux);
    let half = pkts.len() / 2;
    for d in &pkts[..half] {
        r.datagram(d);
    }
    let before = ALLOCS.load(Ordering::Relaxed);
    for d in &pkts[half..] {
        r.datagram(d);
    }
    let n = ALLOCS.load(Ordering::Relaxed) - before;
    n as f64 / (pkts.len() - half) as f64
}

fn bench_receive(c: &mut Criterion) {
    let frames = ps_frames();
    let pkts = datagrams(&frames, 20);
    eprintln!(
        "receive path input: {} PS frames x 20 = {} RTP packets, {} bytes",
        frames.len(),
        pkts.len(),
        pkts.iter().map(Bytes::len).sum::<usize>()
    );
    for (name, demux) in [("reorder_assemble", false), ("receive_path", true)] {
        eprintln!(
            "{name}: {:.3} allocations per packet in steady state",
            allocs_per_packet(&pkts, demux)
        );
        let mut g = c.benchmark_group(name);
        g.throughput(Throughput::Elements(pkts.len() as u64));
        g.bench_function("avatar_h264_ps", |b| {
            b.iter(|| {
                let mut r = Bench::new(demux);
                for d in &pkts {
                    r.datagram(d);
                }
                black_box(r.units)
            })
        });
        g.finish();
    }
}

criterion_group!(benches, bench_parse, bench_tcp, bench_receive);
criterion_main!(benches);
