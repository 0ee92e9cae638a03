//! Lost data in a PS stream with nothing to tell (a cut file, a source without RTP sequence
//! numbers): when the start of a frame is missing, the rest of it is dropped and counted,
//! never glued to the frame before, and the next frame comes out whole.

mod ps_common;

use bytes::Bytes;
use media::ps::{DemuxEvent, PsDemuxer, PsMuxer};
use media::{AccessUnit, Codec};
use proptest::prelude::*;

/// H.264 access units of `sizes` bytes of slice data (key frames with SPS/PPS), payload bytes
/// odd so that no start code appears inside.
fn units(sizes: &[usize], seed: u32) -> Vec<AccessUnit> {
    let mut seed = seed;
    sizes
        .iter()
        .enumerate()
        .map(|(i, &n)| {
            let key = i % 10 == 0;
            let mut d = Vec::with_capacity(n + 32);
            if key {
                d.extend_from_slice(&[
                    0, 0, 0, 1, 0x67, 0x42, 0xc0, 0x1e, 0xda, 0, 0, 0, 1, 0x68, 0xce, 0x3c, 0x80,
                ]);
            }
            d.extend_from_slice(&[0, 0, 0, 1, if key { 0x65 } else { 0x41 }]);
            d.extend((0..n).map(|_| {
                seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                ((seed >> 16) as u8) | 1
            }));
            AccessUnit {
                stream_id: 0xE0,
                codec: Codec::H264,
                pts: Some(90_000 + i as u64 * 3600),
                dts: None,
                keyframe: key,
                data: Bytes::from(d),
            }
        })
        .collect()
}

/// One muxed frame cut into its elements (pack header, system header, PSM, each PES).
fn elements(frame: &[u8]) -> Vec<(u8, Bytes)> {
    let b = Bytes::copy_from_slice(frame);
    let mut out = Vec::new();
    let mut i = 0;
    while i + 4 <= frame.len() {
        assert_eq!(&frame[i..i + 3], &[0, 0, 1], "element at {i}");
        let code = frame[i + 3];
        let len = if code == 0xBA {
            14 + usize::from(frame[i + 13] & 7)
        } else {
            6 + usize::from(u16::from_be_bytes([frame[i + 4], frame[i + 5]]))
        };
        out.push((code, b.slice(i..i + len)));
        i += len;
    }
    out
}

/// Every frame's elements, in order, tagged with the frame index.
fn stream(units: &[AccessUnit]) -> Vec<(usize, u8, Bytes)> {
    let mut mux = PsMuxer::new();
    units
        .iter()
        .enumerate()
        .flat_map(|(n, au)| {
            elements(&mux.mux(au).unwrap())
                .into_iter()
                .map(move |(c, e)| (n, c, e))
        })
        .collect()
}

struct Out {
    video: Vec<AccessUnit>,
    lost_starts: u64,
    dropped: u64,
}

fn demux(parts: impl IntoIterator<Item = Bytes>) -> Out {
    let mut d = PsDemuxer::new();
    let mut video = Vec::new();
    let mut take = |d: &mut PsDemuxer| {
        while let Some(ev) = d.poll() {
            if let DemuxEvent::AccessUnit(au) = ev
                && au.codec.is_video()
            {
                video.push(au);
            }
        }
    };
    for p in parts {
        // Chunks as a network delivers them, not aligned with the elements.
        for c in p.chunks(1400) {
            d.push(p.slice_ref(c));
            take(&mut d);
        }
    }
    d.finish();
    take(&mut d);
    Out {
        video,
        lost_starts: d.stats().lost_frame_starts,
        dropped: d.stats().dropped_frames,
    }
}

/// Every access unit that came out is one that went in, byte for byte (key frames may
/// have had the cached parameter sets put in front; these carry theirs).
fn assert_whole(out: &Out, input: &[AccessUnit]) {
    for au in &out.video {
        let src = input
            .iter()
            .find(|a| a.pts == au.pts)
            .unwrap_or_else(|| panic!("an access unit with PTS {:?} nobody sent", au.pts));
        assert!(
            src.data == au.data,
            "PTS {:?}: {} bytes out, {} sent: a damaged frame was passed on as whole",
            au.pts,
            au.data.len(),
            src.data.len()
        );
    }
}

fn pts(out: &Out) -> Vec<u64> {
    out.video.iter().filter_map(|a| a.pts).collect()
}

/// Frames: 0 key 150 KB, 1 P 20 KB, 2 P 140 KB (three PES), 3 P 30 KB, …
fn sample() -> Vec<AccessUnit> {
    units(
        &[150_000, 20_000, 140_000, 30_000, 90_000, 10_000, 10_000],
        3,
    )
}

#[test]
fn without_loss_every_frame_comes_out() {
    let input = sample();
    let out = demux(stream(&input).into_iter().map(|(_, _, e)| e));
    assert_eq!(out.video.len(), input.len());
    assert_whole(&out, &input);
    assert_eq!((out.lost_starts, out.dropped), (0, 0));
}

#[test]
fn a_lost_pack_header_and_first_pes_drop_that_frame_only() {
    let input = sample();
    // Frame 2's pack header and first PES are lost: its second PES follows frame 1's only
    // (short) PES, in frame 1's pack.
    let s = stream(&input);
    let first_pes = s
        .iter()
        .position(|(n, c, _)| *n == 2 && *c == 0xE0)
        .unwrap();
    let kept = s
        .iter()
        .enumerate()
        .filter(|(i, (n, c, _))| !(*n == 2 && (*c == 0xBA || *i == first_pes)))
        .map(|(_, (_, _, e))| e.clone());
    let out = demux(kept);
    assert_whole(&out, &input);
    let t = |i: u64| 90_000 + i * 3600;
    assert_eq!(
        pts(&out),
        [t(0), t(1), t(3), t(4), t(5), t(6)],
        "frame 1 whole, frame 2 gone, frame 3 clean"
    );
    assert_eq!(out.lost_starts, 1);
    assert!(out.dropped >= 1);
}

#[test]
fn a_lost_first_pes_after_a_pack_header_drops_that_frame_only() {
    let input = sample();
    // Frame 1 is one short PES, frames 2 and 4 are several.
    for frame in [1usize, 2, 4] {
        let s = stream(&input);
        let target = s
            .iter()
            .position(|(n, c, _)| *n == frame && *c == 0xE0)
            .unwrap();
        let out = demux(
            s.iter()
                .enumerate()
                .filter(|(i, _)| *i != target)
                .map(|(_, (_, _, e))| e.clone()),
        );
        assert_whole(&out, &input);
        let expect: Vec<u64> = (0..input.len() as u64)
            .filter(|i| *i != frame as u64)
            .map(|i| 90_000 + i * 3600)
            .collect();
        assert_eq!(pts(&out), expect, "frame {frame}");
        // A lost single-PES frame leaves nothing behind to drop.
        let expect_lost = u64::from(frame != 1);
        assert_eq!(out.lost_starts, expect_lost, "frame {frame}");
    }
}

#[test]
fn a_key_frame_whose_first_pes_is_lost_after_its_psm_is_dropped() {
    // Key frames carry a system header and a PSM between the pack header and the first PES;
    // they end the frame before, and the continuation must not become a frame of its own.
    let input = units(
        &[
            150_000, 20_000, 30_000, 10_000, 1_000, 1_000, 1_000, 1_000, 1_000, 1_000, 150_000,
            2_000,
        ],
        9,
    );
    let s = stream(&input);
    let target = s
        .iter()
        .position(|(n, c, _)| *n == 10 && *c == 0xE0)
        .unwrap();
    let out = demux(
        s.iter()
            .enumerate()
            .filter(|(i, _)| *i != target)
            .map(|(_, (_, _, e))| e.clone()),
    );
    assert_whole(&out, &input);
    assert!(!pts(&out).contains(&(90_000 + 10 * 3600)));
    assert!(
        pts(&out).contains(&(90_000 + 11 * 3600)),
        "the next frame is clean"
    );
    assert_eq!(out.lost_starts, 1);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    /// A stream that opens with a key frame over 64 KiB (so the muxer's split size is known),
    /// then frames of any size; a run of elements lost that begins with some frame's first
    /// PES (with or without its pack header): whatever comes out is exactly what was sent.
    #[test]
    fn what_comes_out_after_a_lost_frame_start_is_never_damaged(
        first in 65_500usize..200_000,
        rest in prop::collection::vec(prop_oneof![1usize..3_000, 3_000usize..70_000, 60_000usize..250_000], 2..13),
        seed in any::<u32>(),
        victim in any::<prop::sample::Index>(),
        with_pack in any::<bool>(),
        extra in 0usize..3,
    ) {
        let sizes: Vec<usize> = std::iter::once(first).chain(rest).collect();
        let input = units(&sizes, seed);
        let s = stream(&input);
        let frame = 1 + victim.index(input.len() - 1);
        let first = s.iter().position(|(n, c, _)| *n == frame && *c == 0xE0).unwrap();
        // Lose the first PES and up to `extra` more PES of the frame, and maybe its pack
        // header (with the system header and PSM of a key frame).
        let mut lost: Vec<usize> = s.iter().enumerate()
            .filter(|(i, (n, c, _))| *n == frame && *c == 0xE0 && *i >= first)
            .map(|(i, _)| i)
            .take(1 + extra)
            .collect();
        if with_pack {
            lost.extend((0..first).filter(|i| s[*i].0 == frame));
        }
        let out = demux(s.iter().enumerate().filter(|(i, _)| !lost.contains(i)).map(|(_, (_, _, e))| e.clone()));
        assert_whole(&out, &input);
        let lost_pts = 90_000 + frame as u64 * 3600;
        prop_assert!(!pts(&out).contains(&lost_pts));
        // Frames after the lost one are all there.
        for i in frame + 1..input.len() {
            prop_assert!(pts(&out).contains(&(90_000 + i as u64 * 3600)), "frame {} of {:?}", i, sizes);
        }
    }
}
