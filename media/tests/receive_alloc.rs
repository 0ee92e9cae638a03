//! The receive pipeline allocates nothing per packet in steady state, even while its consumer
//! holds every frame of the current GOP (as the gateway's key-frame cache does for viewers
//! who join): frames are copied into reused arena blocks, datagrams too.

use std::alloc::{GlobalAlloc, Layout, System};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use media::arena::Arena;
use media::packetize::RtpPacketizer;
use media::ps::PsMuxer;
use media::receive::{Received, Receiver, ReceiverConfig};
use media::{AccessUnit, Codec};

struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);
static COUNTING: AtomicBool = AtomicBool::new(false);

// SAFETY: forwards every call to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// A 2 Mbit/s-like stream: 25 fps, a key frame every 50 frames (60 KB), P-frames of 9 KB,
/// PCMA audio, as RTP datagrams of 1,400-byte payloads, one Vec per 40 ms.
fn datagrams(frames: usize) -> Vec<Vec<Bytes>> {
    let mut mux = PsMuxer::new();
    let mut rtp = RtpPacketizer::new(7);
    let mut out = Vec::new();
    for i in 0..frames {
        let key = i % 50 == 0;
        let size = if key { 60_000 } else { 9_000 };
        let mut d = Vec::with_capacity(size + 32);
        if key {
            d.extend_from_slice(&[
                0, 0, 0, 1, 0x67, 0x42, 0xc0, 0x1e, 0xda, 0, 0, 0, 1, 0x68, 0xce, 0x3c, 0x80,
            ]);
        }
        d.extend_from_slice(&[0, 0, 0, 1, if key { 0x65 } else { 0x41 }]);
        d.extend((0..size).map(|k| ((k * 31 + i) as u8) | 1));
        let pts = 90_000 + i as u64 * 3600;
        let video = AccessUnit {
            stream_id: 0xE0,
            codec: Codec::H264,
            pts: Some(pts),
            dts: None,
            keyframe: key,
            data: Bytes::from(d),
        };
        let audio = AccessUnit {
            stream_id: 0xC0,
            codec: Codec::G711A,
            pts: Some(pts),
            dts: None,
            keyframe: true,
            data: Bytes::from(vec![0xD5u8; 320]),
        };
        let mut tick = Vec::new();
        for (au, ts) in [(&video, pts as u32), (&audio, pts as u32 + 1)] {
            let ps = mux.mux(au).unwrap();
            let mut buf = BytesMut::new();
            tick.extend(rtp.packetize(ts, &ps, &mut buf));
        }
        out.push(tick);
    }
    out
}

#[test]
fn no_allocation_per_packet_while_a_gop_is_held() {
    let device: SocketAddr = "10.0.0.9:4000".parse().unwrap();
    let stream = datagrams(600);
    let t0 = Instant::now();
    let mut rx = Receiver::new(t0, ReceiverConfig::udp(7, vec![device.ip()]));
    // As the gateway's UDP loop: each datagram copied from the socket's landing buffer into
    // an arena.
    let mut packets = Arena::new(16 * 1024, 8);
    let mut out = Vec::with_capacity(64);
    // The consumer's key-frame cache: the frames since the last key frame.
    let mut gop: Vec<AccessUnit> = Vec::with_capacity(64);
    let mut video = 0;
    let mut counted_packets = 0u64;
    for (k, tick) in stream.iter().enumerate() {
        if k == 300 {
            // Steady state: two GOPs in.
            COUNTING.store(true, Ordering::Relaxed);
        }
        let now = t0 + Duration::from_millis(40 * k as u64);
        for d in tick {
            let copy = packets.copy(&[d]);
            rx.on_packet(now, device, copy, &mut out);
            counted_packets += u64::from(k >= 300);
            for r in out.drain(..) {
                if let Received::Unit(au) = r
                    && au.codec.is_video()
                {
                    video += 1;
                    if au.keyframe {
                        gop.clear();
                    }
                    gop.push(au);
                }
            }
        }
    }
    COUNTING.store(false, Ordering::Relaxed);
    let allocs = ALLOCS.load(Ordering::Relaxed);
    assert!(video >= 598, "{video} video frames");
    assert!(counted_packets > 2_000, "{counted_packets}");
    assert_eq!(
        allocs, 0,
        "{allocs} allocations over {counted_packets} packets in steady state"
    );
}
