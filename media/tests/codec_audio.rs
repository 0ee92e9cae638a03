//! AAC ADTS parsing and G.711 companding checked against ffmpeg/ffprobe.

mod ps_common;

use bytes::Bytes;
use media::codec::aac::{AdtsFrames, AdtsHeader, is_adts_sequence};
use media::codec::g711;
use ps_common::*;
use std::process::Command;

#[test]
fn avatar_aac_frames() {
    let es = std::fs::read(testdata("srs_bench_avatar.aac")).expect("clip");
    let mut frames = AdtsFrames::new(&es);
    let mut n = 0;
    let mut total = 0;
    for (h, f) in frames.by_ref() {
        assert_eq!((h.sample_rate, h.channels, h.object_type), (44_100, 2, 2));
        assert_eq!(h.frame_length, f.len());
        total += f.len();
        n += 1;
    }
    assert!(frames.rest().is_empty());
    assert_eq!(total, es.len());
    assert!(is_adts_sequence(&es));
    if have("ffprobe") {
        let out = Command::new("ffprobe")
            .args([
                "-v",
                "error",
                "-count_packets",
                "-show_entries",
                "stream=nb_read_packets",
            ])
            .args(["-of", "csv=p=0"])
            .arg(testdata("srs_bench_avatar.aac"))
            .output()
            .expect("ffprobe");
        let packets: usize = String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .expect("count");
        assert_eq!(n, packets);
    }
}

#[test]
fn adts_header_fields_match_ffmpeg_encoder() {
    if !have("ffmpeg") {
        return;
    }
    let dir = tempdir("adts");
    for (rate, ch) in [(8000u32, 1u8), (16000, 1), (48000, 2), (32000, 2)] {
        let path = dir.join(format!("a{rate}_{ch}.aac"));
        run(Command::new("ffmpeg")
            .args(["-v", "error", "-y", "-f", "lavfi", "-i"])
            .arg(format!("sine=frequency=440:sample_rate={rate}"))
            .args([
                "-t",
                "0.5",
                "-ac",
                &ch.to_string(),
                "-c:a",
                "aac",
                "-f",
                "adts",
            ])
            .arg(&path));
        let es = std::fs::read(&path).expect("aac");
        let h = AdtsHeader::parse(&es).expect("header");
        assert_eq!((h.sample_rate, h.channels), (rate, ch));
        assert!(is_adts_sequence(&es));
    }
}

#[test]
fn g711_matches_ffmpeg_codecs() {
    if !have("ffmpeg") {
        return;
    }
    let dir = tempdir("g711");
    let pcm_path = dir.join("sine.s16");
    run(Command::new("ffmpeg")
        .args([
            "-v",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=997:sample_rate=8000",
        ])
        .args([
            "-af",
            "volume=8",
            "-t",
            "1",
            "-f",
            "s16le",
            "-c:a",
            "pcm_s16le",
        ])
        .arg(&pcm_path));
    let pcm_bytes = std::fs::read(&pcm_path).expect("pcm");
    let pcm: Vec<i16> = pcm_bytes
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect();
    for (fmt, encode, decode) in [
        (
            "alaw",
            g711::encode_alaw as fn(&[i16], &mut Vec<u8>),
            g711::decode_alaw as fn(&[u8], &mut Vec<i16>),
        ),
        ("mulaw", g711::encode_ulaw, g711::decode_ulaw),
    ] {
        let coded_path = dir.join(format!("sine.{fmt}"));
        run(Command::new("ffmpeg")
            .args([
                "-v", "error", "-y", "-f", "s16le", "-ar", "8000", "-ac", "1", "-i",
            ])
            .arg(&pcm_path)
            .args(["-f", fmt])
            .arg(&coded_path));
        let theirs = std::fs::read(&coded_path).expect("coded");
        let mut ours = Vec::new();
        encode(&pcm, &mut ours);
        // ffmpeg's encoder rounds to the nearest decoder level; G.711 (and the ITU-T G.191
        // reference code) quantise by decision interval, so the two agree or pick the adjacent
        // level. Our decoder output of either code must bracket the input.
        let decode_one = |c: u8| {
            let mut v = Vec::new();
            decode(&[c], &mut v);
            i32::from(v[0])
        };
        let mut same = 0;
        for (i, (&a, &b)) in ours.iter().zip(&theirs).enumerate() {
            if a == b {
                same += 1;
                continue;
            }
            let (x, da, db) = (i32::from(pcm[i]), decode_one(a), decode_one(b));
            assert!(
                (da - db).abs() <= (x.abs() / 8).max(16) && (da <= x) != (db <= x) || da == x,
                "{fmt} encoder at {i}: input {x}, ours {a} ({da}), ffmpeg {b} ({db})"
            );
        }
        assert!(
            same * 10 >= ours.len() * 7,
            "{fmt}: only {same} of {} codes equal ffmpeg's",
            ours.len()
        );
        let decoded_path = dir.join(format!("{fmt}.s16"));
        run(Command::new("ffmpeg")
            .args([
                "-v", "error", "-y", "-f", fmt, "-ar", "8000", "-ac", "1", "-i",
            ])
            .arg(&coded_path)
            .args(["-f", "s16le"])
            .arg(&decoded_path));
        let theirs: Vec<i16> = std::fs::read(&decoded_path)
            .expect("decoded")
            .chunks_exact(2)
            .map(|b| i16::from_le_bytes([b[0], b[1]]))
            .collect();
        let mut ours = Vec::new();
        decode(
            &Bytes::from(std::fs::read(&coded_path).expect("coded")),
            &mut ours,
        );
        let codes = std::fs::read(&coded_path).expect("coded");
        assert_same(&codes, &ours, &theirs, &format!("{fmt} decoder"));
    }
}

/// Compares outputs, reporting only the first difference (the buffers are long).
fn assert_same<I: std::fmt::Debug, T: PartialEq + std::fmt::Debug>(
    input: &[I],
    ours: &[T],
    theirs: &[T],
    what: &str,
) {
    assert_eq!(ours.len(), theirs.len(), "{what}: length");
    if let Some(i) = (0..ours.len()).find(|&i| ours[i] != theirs[i]) {
        panic!(
            "{what} differs from ffmpeg's at {i}: input {:?}, ours {:?}, ffmpeg {:?}",
            input.get(i),
            ours[i],
            theirs[i]
        );
    }
}
