//! Helpers shared by the PS integration tests.
#![allow(dead_code)]

use bytes::Bytes;
use media::AccessUnit;
use media::ps::{DemuxEvent, DemuxStats, PsDemuxer, Quirk, StreamConfig};
use std::path::PathBuf;
use std::process::Command;

/// A file of `media/tests/data` (provenance in the README there).
pub fn testdata(name: &str) -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/")).join(name)
}

/// Everything a demuxer produced.
#[derive(Debug, Default)]
pub struct Demuxed {
    pub aus: Vec<AccessUnit>,
    pub configs: Vec<StreamConfig>,
    pub quirks: Vec<Quirk>,
    pub stats: DemuxStats,
}

impl Demuxed {
    pub fn video(&self) -> impl Iterator<Item = &AccessUnit> {
        self.aus.iter().filter(|a| a.codec.is_video())
    }
    pub fn audio(&self) -> impl Iterator<Item = &AccessUnit> {
        self.aus.iter().filter(|a| a.codec.is_audio())
    }
    /// The video elementary stream: all video access units concatenated.
    pub fn video_es(&self) -> Vec<u8> {
        self.video().flat_map(|a| a.data.iter().copied()).collect()
    }
}

fn drain(d: &mut PsDemuxer, out: &mut Demuxed) {
    while let Some(ev) = d.poll() {
        match ev {
            DemuxEvent::AccessUnit(a) => out.aus.push(a),
            DemuxEvent::StreamConfig(c) => out.configs.push(c),
            DemuxEvent::Quirk(q) => out.quirks.push(q),
            other => panic!("an event these tests do not know: {other:?}"),
        }
    }
}

/// Demuxes `chunks` in order, polling after each, then finishes.
pub fn demux_chunks<I: IntoIterator<Item = Bytes>>(chunks: I) -> Demuxed {
    let mut d = PsDemuxer::new();
    let mut out = Demuxed::default();
    for c in chunks {
        d.push(c);
        drain(&mut d, &mut out);
    }
    d.finish();
    drain(&mut d, &mut out);
    out.stats = d.stats().clone();
    out
}

/// Demuxes a buffer split every `size` bytes.
pub fn demux_split(data: &[u8], size: usize) -> Demuxed {
    let b = Bytes::copy_from_slice(data);
    demux_chunks(
        (0..data.len())
            .step_by(size.max(1))
            .map(|i| b.slice(i..(i + size).min(data.len()))),
    )
}

/// RTP payloads of an RFC 4571 capture, with sequence numbers.
pub fn rfc4571_payloads(data: &[u8]) -> Vec<(u16, Bytes)> {
    let b = Bytes::copy_from_slice(data);
    let mut out = Vec::new();
    let mut at = 0;
    while at + 2 <= data.len() {
        let len = usize::from(u16::from_be_bytes([data[at], data[at + 1]]));
        let pkt = b.slice(at + 2..(at + 2 + len).min(data.len()));
        at += 2 + len;
        let p = media::rtp::RtpPacket::parse(pkt).expect("RTP packet");
        out.push((p.sequence(), p.payload().clone()));
    }
    out
}

/// True when `tool` runs; prints a loud skip message otherwise.
pub fn have(tool: &str) -> bool {
    let ok = Command::new(tool)
        .arg(if tool == "gst-launch-1.0" {
            "--version"
        } else {
            "-version"
        })
        .output()
        .is_ok_and(|o| o.status.success());
    // scripts/test-all installs every tool and sets this: there, a missing tool fails the
    // test instead of skipping it, so that a run cannot pass by skipping the oracles.
    if !ok && std::env::var_os("REQUIRE_TEST_TOOLS").is_some() {
        panic!("`{tool}` is not installed, and REQUIRE_TEST_TOOLS is set");
    }
    if !ok {
        eprintln!(
            "\n!!!!!!!! SKIPPED: `{tool}` is not installed; install ffmpeg and gstreamer1.0-tools/-plugins-bad/-ugly (scripts/test-all does) !!!!!!!!\n"
        );
    }
    ok
}

/// A fresh temporary directory for one test.
pub fn tempdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("media-ps-{}-{}", name, std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("create temp dir");
    d
}

/// Runs a command, panicking with its stderr on failure.
pub fn run(cmd: &mut Command) {
    let out = cmd.output().expect("spawn");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Splits an Annex B elementary stream into access units (H.264 §7.4.1.2.3, H.265 §7.4.2.4.4):
/// a new unit begins at an AUD/parameter set/SEI that follows a slice, or at a slice whose
/// `first_mb_in_slice` is 0 / `first_slice_segment_in_pic_flag` is 1. The units concatenated
/// are exactly `es`. Returns each unit with its key frame flag.
pub fn split_access_units(es: &Bytes, codec: media::Codec) -> Vec<(Bytes, bool)> {
    use media::codec::{h264, h265, nal::find_start_code};
    let mut cuts = vec![0usize];
    let mut keys = vec![false];
    let mut seen_vcl = false;
    let mut pos = 0;
    while let Some((sc, len)) = find_start_code(es, pos) {
        let h = sc + len;
        let Some(&b0) = es.get(h) else { break };
        let b2 = es.get(h + 2).copied().unwrap_or(0);
        let b1 = es.get(h + 1).copied().unwrap_or(0);
        let (vcl, first, prefix, key) = if codec == media::Codec::H265 {
            let t = h265::nal_type(b0);
            (
                t < 32,
                b2 & 0x80 != 0,
                matches!(t, 32..=35 | 39 | 41..=44 | 48..=55),
                h265::is_keyframe_nal(t),
            )
        } else {
            let t = h264::nal_type(b0);
            (
                matches!(t, 1 | 5),
                b1 & 0x80 != 0,
                matches!(t, 6..=9 | 14..=18),
                t == 5,
            )
        };
        if seen_vcl && (prefix || (vcl && first)) {
            cuts.push(sc);
            keys.push(false);
            seen_vcl = false;
        }
        if vcl {
            seen_vcl = true;
            if key {
                *keys.last_mut().unwrap() = true;
            }
        }
        pos = h;
    }
    cuts.push(es.len());
    cuts.windows(2)
        .zip(keys)
        .filter(|(w, _)| w[1] > w[0])
        .map(|(w, k)| (es.slice(w[0]..w[1]), k))
        .collect()
}

/// ADTS frames of an AAC file.
pub fn split_adts(es: &Bytes) -> Vec<Bytes> {
    let mut out = Vec::new();
    let mut at = 0;
    for (_, f) in media::codec::aac::AdtsFrames::new(es) {
        out.push(es.slice(at..at + f.len()));
        at += f.len();
    }
    out
}
