//! Malformed-input sweep over the real captures: every truncation and every single-bit flip,
//! through the RTP parser, the TCP de-framer and the whole receive path. No panic, and memory
//! stays bounded (buffers never exceed their caps).

mod rtp_common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use media::reorder::{FrameAssembler, Reorder, ReorderConfig};
use media::rtp::RtpPacket;
use media::stats::StreamStats;
use media::tcp::TcpDeframer;
use rtp_common::*;

/// Runs bytes of an RFC 4571 stream through everything; returns packets that parsed.
fn receive(stream: &[u8], chunk: usize) -> usize {
    let t0 = Instant::now();
    let mut d = TcpDeframer::new();
    let mut r = Reorder::new(ReorderConfig::udp());
    let mut a = FrameAssembler::new();
    let mut st = StreamStats::new(90_000);
    let mut parsed = 0;
    for (i, c) in stream.chunks(chunk).enumerate() {
        let now = t0 + Duration::from_millis(i as u64);
        d.push(c);
        assert!(
            d.buffered() <= c.len() + 65_540,
            "de-framer holds at most one frame more"
        );
        while let Some(p) = d.poll() {
            let Ok(p) = RtpPacket::parse(p) else { continue };
            parsed += 1;
            st.on_packet(now, &p);
            r.push(now, p);
            assert!(r.len() <= r.config().capacity + 1);
            while let Some(p) = r.poll(now) {
                a.push(p);
            }
            while let Some(f) = a.poll() {
                let _ = f.to_contiguous();
                a.recycle(f);
            }
        }
    }
    r.flush();
    while let Some(p) = r.poll(t0) {
        a.push(p);
    }
    a.flush();
    while a.poll().is_some() {}
    st.record_reorder(&r.stats());
    let _ = st.snapshot(t0 + Duration::from_secs(1));
    parsed
}

#[test]
fn truncated_and_bit_flipped_single_packets() {
    for name in ALL {
        for pkt in packets(name) {
            for n in 0..=pkt.len() {
                let _ = RtpPacket::parse(pkt.slice(..n));
            }
            for i in 0..pkt.len() {
                for bit in 0..8 {
                    let mut v = pkt.to_vec();
                    v[i] ^= 1 << bit;
                    if let Ok(p) = RtpPacket::parse(Bytes::from(v)) {
                        assert!(p.payload().len() + 12 <= pkt.len());
                    }
                }
            }
        }
    }
}

#[test]
fn truncated_streams() {
    for name in [LAL_SEQ0_8, SRS_SEQ0_13] {
        let s = load(name);
        for n in (0..=s.len()).step_by(7) {
            receive(&s[..n], 1500);
        }
        // Cut from the front too: the stream starts mid-frame.
        for n in (0..s.len()).step_by(13) {
            receive(&s[n..], 1500);
        }
    }
}

#[test]
fn bit_flipped_streams() {
    for name in [LAL_SEQ0_8, SRS_SEQ0_13] {
        let s = load(name);
        let clean = receive(&s, 4096);
        let mut worst = 0;
        // Every byte, one bit each (rotating), plus every bit of the first two frames'
        // headers, where framing and header fields live.
        let header_bits = (0..30).flat_map(|i| (0..8).map(move |b| (i, b)));
        let tail_bits = (0..s.len()).map(|i| (i, i % 8));
        for (i, bit) in header_bits.chain(tail_bits) {
            let mut v = s.clone();
            v[i] ^= 1 << bit;
            let n = receive(&v, 4096);
            worst = worst.max(clean.saturating_sub(n));
        }
        eprintln!("{name}: worst loss {worst} of {clean}");
        assert!(worst <= 3, "{name}: one flipped bit cost {worst} packets");
    }
}
