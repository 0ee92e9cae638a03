//! Device side to receive side: packetizer → (RFC 4571 framing →) parse → reorder → frame
//! assembler gives back the frame bytes, for frame sizes around the packet boundary.

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use media::packetize::RtpPacketizer;
use media::reorder::{Frame, FrameAssembler, Reorder, ReorderConfig};
use media::rtp::RtpPacket;
use media::tcp::TcpDeframer;

const SIZES: [usize; 7] = [0, 1, 1399, 1400, 1401, 2801, 200 * 1024];

fn frame(len: usize, salt: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31) ^ salt)
        .collect()
}

fn collect(a: &mut FrameAssembler, out: &mut Vec<Frame>) {
    out.extend(std::iter::from_fn(|| a.poll()));
}

#[test]
fn udp_round_trip_with_reordering() {
    // Sequence numbers start near the wrap so that frames straddle 65535 → 0.
    let mut pk = RtpPacketizer::new(0x1234_5678).with_sequence(65500);
    let mut buf = BytesMut::new();
    let t0 = Instant::now();
    let mut r = Reorder::new(ReorderConfig::udp());
    let mut a = FrameAssembler::new();
    let mut got = Vec::new();
    let mut now = t0;
    for (i, &len) in SIZES.iter().enumerate() {
        let f = frame(len, i as u8);
        let mut pkts: Vec<Bytes> = pk.packetize(3600 * i as u32, &f, &mut buf).collect();
        assert_eq!(pkts.len(), len.div_ceil(1400));
        // Swap neighbours: UDP reordering.
        for w in pkts.chunks_mut(2) {
            w.reverse();
        }
        for p in pkts {
            now += Duration::from_micros(100);
            r.push(now, RtpPacket::parse(p).unwrap());
            while let Some(p) = r.poll(now) {
                a.push(p);
            }
            collect(&mut a, &mut got);
        }
    }
    r.flush();
    while let Some(p) = r.poll(now) {
        a.push(p);
    }
    collect(&mut a, &mut got);
    // An empty frame makes no packet, so no frame comes back for it.
    let want: Vec<(u32, Vec<u8>)> = SIZES
        .iter()
        .enumerate()
        .filter(|(_, l)| **l > 0)
        .map(|(i, &l)| (3600 * i as u32, frame(l, i as u8)))
        .collect();
    let back: Vec<(u32, Vec<u8>)> = got
        .iter()
        .map(|f| {
            assert!(f.complete && f.marker, "frame {} complete", f.timestamp);
            (f.timestamp, f.to_contiguous().to_vec())
        })
        .collect();
    assert_eq!(back.len(), want.len());
    assert!(back == want, "frame bytes differ");
    assert_eq!(r.stats().lost, 0);
}

#[test]
fn tcp_round_trip_in_one_write_per_frame() {
    let mut pk = RtpPacketizer::new(7).with_rfc4571(true);
    let mut buf = BytesMut::new();
    let mut d = TcpDeframer::new();
    let mut a = FrameAssembler::new();
    let mut got = Vec::new();
    for (i, &len) in SIZES.iter().enumerate() {
        let f = frame(len, i as u8);
        let pkts = pk.packetize(90 * i as u32, &f, &mut buf);
        // What a device writes to its socket, cut at odd places on the way.
        for c in pkts.wire().chunks(997) {
            d.push(c);
            while let Some(p) = d.poll() {
                a.push(RtpPacket::parse(p).unwrap());
            }
            collect(&mut a, &mut got);
        }
    }
    // The last frame's final packet is confirmed by its known SSRC at once.
    let lens: Vec<usize> = got.iter().map(Frame::len).collect();
    assert_eq!(lens, vec![1, 1399, 1400, 1401, 2801, 200 * 1024]);
    for f in &got {
        let i = (f.timestamp / 90) as usize;
        assert!(f.complete);
        assert!(f.to_contiguous() == frame(SIZES[i], i as u8));
    }
}

#[test]
fn lost_packet_flags_exactly_its_frame() {
    let mut pk = RtpPacketizer::new(7);
    let mut buf = BytesMut::new();
    let mut a = FrameAssembler::new();
    let mut got = Vec::new();
    for i in 0..3u32 {
        let pkts: Vec<Bytes> = pk.packetize(i * 3600, &frame(4000, 0), &mut buf).collect();
        for (k, p) in pkts.into_iter().enumerate() {
            if i == 1 && k == 1 {
                continue; // lost in the middle of frame 1
            }
            a.push(RtpPacket::parse(p).unwrap());
            collect(&mut a, &mut got);
        }
    }
    let flags: Vec<(u32, bool)> = got.iter().map(|f| (f.timestamp, f.complete)).collect();
    assert_eq!(flags, vec![(0, true), (3600, false), (7200, true)]);
}

#[test]
fn audio_ps_and_raw_g711() {
    // G.711 in PS at 90 kHz goes through the PS packetizer; raw G.711 at 8 kHz, PT 8.
    let mut ps = RtpPacketizer::new(1);
    let mut raw = RtpPacketizer::g711(2, true);
    let mut buf = BytesMut::new();
    let p = RtpPacket::parse(ps.packetize(3600, &[0xd5; 180], &mut buf).next().unwrap()).unwrap();
    assert_eq!(
        (p.payload_type(), p.timestamp(), p.marker()),
        (96, 3600, true)
    );
    let ts = raw.ticks(Duration::from_millis(40));
    let p = RtpPacket::parse(raw.packetize(ts, &[0xd5; 160], &mut buf).next().unwrap()).unwrap();
    assert_eq!(
        (p.payload_type(), p.timestamp(), p.marker()),
        (8, 320, true)
    );
}
