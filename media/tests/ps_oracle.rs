//! Independent oracles: PS from our muxer demuxed by ffmpeg gives back the original
//! elementary streams; PS written by GStreamer `mpegpsmux` (PSM at the start only) and by
//! ffmpeg `-f vob` (no PSM) demuxed by us gives the same bytes ffmpeg extracts.
//! Clips are made at run time with libx264/libx265 in a temp dir.

mod ps_common;

use bytes::Bytes;
use media::ps::{PsMuxer, Quirk};
use media::{AccessUnit, Codec};
use ps_common::*;
use std::path::{Path, PathBuf};
use std::process::Command;

fn encode(dir: &Path, name: &str, args: &[&str]) -> PathBuf {
    let path = dir.join(name);
    run(Command::new("ffmpeg")
        .args(["-v", "error", "-y"])
        .args(args)
        .arg(&path));
    path
}

fn h264_clip(dir: &Path) -> PathBuf {
    // 1280x720 at 12 Mbit/s: key frames well over 64 KiB, so PES splitting is exercised.
    encode(
        dir,
        "clip.h264",
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=1280x720:rate=25",
            "-t",
            "2",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-b:v",
            "12M",
            "-g",
            "25",
            "-bsf:v",
            "h264_metadata=aud=insert",
        ],
    )
}

fn mux_es(es: &Bytes, codec: Codec) -> Vec<u8> {
    let mut mux = PsMuxer::new();
    let mut out = Vec::new();
    for (i, (data, key)) in split_access_units(es, codec).into_iter().enumerate() {
        let au = AccessUnit {
            stream_id: 0xE0,
            codec,
            pts: Some(3600 + i as u64 * 3600),
            dts: None,
            keyframe: key,
            data,
        };
        out.extend_from_slice(&mux.mux(&au).expect("mux"));
    }
    out
}

/// ffmpeg's own extraction of the first video stream of a PS file.
fn ffmpeg_extract(ps: &Path, format: &str, out: &Path) -> Vec<u8> {
    run(Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-f", "mpeg", "-i"])
        .arg(ps)
        .args(["-map", "0:v", "-c", "copy", "-f", format])
        .arg(out));
    std::fs::read(out).expect("ffmpeg output")
}

fn assert_same_bytes(ours: &[u8], theirs: &[u8], what: &str) {
    assert_eq!(ours.len(), theirs.len(), "{what}: lengths differ");
    if let Some(i) = (0..ours.len()).find(|&i| ours[i] != theirs[i]) {
        panic!("{what}: first difference at byte {i}");
    }
}

#[test]
fn ffmpeg_reads_our_h264_and_h265() {
    if !have("ffmpeg") {
        return;
    }
    let dir = tempdir("oracle-mux");
    let h265 = encode(
        &dir,
        "clip.h265",
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=1280x720:rate=25",
            "-t",
            "2",
            "-c:v",
            "libx265",
            "-preset",
            "ultrafast",
            "-b:v",
            "8M",
            "-x265-params",
            "log-level=error:keyint=25",
        ],
    );
    for (clip, codec, format) in [
        (h264_clip(&dir), Codec::H264, "h264"),
        (h265, Codec::H265, "hevc"),
        (testdata("srs_bench_avatar.h264"), Codec::H264, "h264"),
        (testdata("srs_bench_avatar.h265"), Codec::H265, "hevc"),
    ] {
        let es = Bytes::from(std::fs::read(&clip).expect("clip"));
        let ps = mux_es(&es, codec);
        let name = clip
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("clip")
            .to_string();
        let ps_path = dir.join(format!("ours_{name}.ps"));
        std::fs::write(&ps_path, &ps).expect("write");
        let back = ffmpeg_extract(&ps_path, format, &dir.join(format!("back_{name}")));
        assert_same_bytes(&back, &es, &format!("ffmpeg demux of our PS of {name}"));
        // And ours agrees.
        let r = demux_split(&ps, 1400);
        assert_same_bytes(
            &r.video_es(),
            &es,
            &format!("our demux of our PS of {name}"),
        );
        assert!(
            r.quirks.is_empty(),
            "our own PS shows quirks: {:?}",
            r.quirks
        );
    }
}

#[test]
fn ffmpeg_reads_our_aac() {
    if !have("ffmpeg") {
        return;
    }
    let dir = tempdir("oracle-audio");
    let aac = Bytes::from(std::fs::read(testdata("srs_bench_avatar.aac")).expect("aac"));
    let mut mux = PsMuxer::new();
    let mut ps = Vec::new();
    for (i, f) in split_adts(&aac).into_iter().enumerate() {
        let au = AccessUnit {
            stream_id: 0xC0,
            codec: Codec::Aac,
            pts: Some(i as u64 * 2090),
            dts: None,
            keyframe: true,
            data: f,
        };
        ps.extend_from_slice(&mux.mux(&au).expect("mux"));
    }
    let path = dir.join("aac.ps");
    std::fs::write(&path, &ps).expect("write");
    let out = dir.join("back.aac");
    run(Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-f", "mpeg", "-i"])
        .arg(&path)
        .args(["-map", "0:a", "-c", "copy", "-f", "adts"])
        .arg(&out));
    assert_same_bytes(
        &std::fs::read(&out).expect("aac out"),
        &aac,
        "ffmpeg demux of our AAC PS",
    );
}

#[test]
fn gstreamer_mpegpsmux_psm_at_start_only() {
    if !have("ffmpeg") || !have("gst-launch-1.0") {
        return;
    }
    let dir = tempdir("oracle-gst");
    let ps = dir.join("gst.ps");
    // 50 frames of 1280x720 noise at 20 Mbit/s from x264enc: frames over 64 KiB.
    run(Command::new("gst-launch-1.0")
        .args(["-q", "videotestsrc", "num-buffers=50", "pattern=snow", "!"])
        .args(["video/x-raw,width=1280,height=720,framerate=25/1", "!"])
        .args([
            "x264enc",
            "bitrate=20000",
            "key-int-max=25",
            "speed-preset=ultrafast",
            "!",
        ])
        .args(["h264parse", "!", "mpegpsmux", "!", "filesink"])
        .arg(format!("location={}", ps.display())));
    let data = std::fs::read(&ps).expect("gst output");
    let theirs = ffmpeg_extract(&ps, "h264", &dir.join("ffmpeg.h264"));
    for chunk in [data.len(), 1400, 188] {
        let r = demux_split(&data, chunk);
        assert_same_bytes(&r.video_es(), &theirs, &format!("mpegpsmux, chunk {chunk}"));
        assert_eq!(r.stats.psms, 1, "mpegpsmux writes the PSM once");
        assert_eq!(r.video().count(), 50);
        assert!(r.video().all(|a| a.codec == Codec::H264 && a.pts.is_some()));
        assert_eq!(r.video().filter(|a| a.keyframe).count(), 2);
        assert!(r.video().any(|a| a.data.len() > 64 * 1024));
        assert_eq!(r.stats.dropped_frames, 0);
    }
}

#[test]
fn ffmpeg_vob_without_psm() {
    if !have("ffmpeg") {
        return;
    }
    let dir = tempdir("oracle-vob");
    let clip = h264_clip(&dir);
    let vob = dir.join("clip.vob");
    run(Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-f", "h264", "-r", "25", "-i"])
        .arg(&clip)
        .args(["-c", "copy", "-f", "vob"])
        .arg(&vob));
    let data = std::fs::read(&vob).expect("vob");
    let theirs = ffmpeg_extract(&vob, "h264", &dir.join("ffmpeg.h264"));
    for chunk in [data.len(), 1400, 2048, 333] {
        let r = demux_split(&data, chunk);
        assert_same_bytes(&r.video_es(), &theirs, &format!("vob, chunk {chunk}"));
        assert_eq!(r.stats.psms, 0);
        assert!(r.quirks.contains(&Quirk::NoPsm));
        assert!(
            r.video().all(|a| a.codec == Codec::H264),
            "sniffed from the NAL headers"
        );
        // Frames span 2 KiB packs; they are reassembled by PTS.
        assert_eq!(r.video().count(), 50);
        assert_eq!(r.video().filter(|a| a.keyframe).count(), 2);
        assert!(r.video().all(|a| a.stream_id == 0xE2 && a.pts.is_some()));
    }
}
