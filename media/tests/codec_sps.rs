//! SPS parsing, NAL splitting and key frame detection checked against ffprobe/ffmpeg on clips
//! made at run time by libx264/libx265 (cropping, interlacing, 4:4:4, VUI timing) and on the
//! SRS avatar clips in tests/data.

mod ps_common;

use bytes::Bytes;
use media::Codec;
use media::codec::nal::{NalUnits, NalUnitsBytes};
use media::codec::{h264, h265, scan_access_unit};
use ps_common::*;
use std::process::Command;

struct Probe {
    width: u32,
    height: u32,
    fps: f64,
    level: i64,
}

fn ffprobe(path: &std::path::Path) -> Probe {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0", "-show_entries"])
        .args([
            "stream=width,height,r_frame_rate,level",
            "-of",
            "default=nw=1",
        ])
        .arg(path)
        .output()
        .expect("ffprobe");
    let text = String::from_utf8_lossy(&out.stdout);
    let get = |k: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{k}=")))
            .unwrap_or_else(|| panic!("{k} missing in {text}"))
            .to_string()
    };
    let fr = get("r_frame_rate");
    let (n, d) = fr.split_once('/').expect("fraction");
    Probe {
        width: get("width").parse().expect("width"),
        height: get("height").parse().expect("height"),
        fps: n.parse::<f64>().expect("num") / d.parse::<f64>().expect("den"),
        level: get("level").parse().expect("level"),
    }
}

fn first_nal(es: &[u8], pred: impl Fn(u8) -> bool) -> Vec<u8> {
    NalUnits::new(es)
        .find(|n| pred(n[0]))
        .expect("NAL present")
        .to_vec()
}

fn check_h264(path: &std::path::Path) {
    let es = std::fs::read(path).expect("clip");
    let sps = h264::Sps::parse(&first_nal(&es, |b| h264::nal_type(b) == h264::NAL_SPS))
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let p = ffprobe(path);
    assert_eq!(
        (sps.width, sps.height),
        (p.width, p.height),
        "{}",
        path.display()
    );
    assert_eq!(i64::from(sps.level_idc), p.level, "{}", path.display());
    let fps = sps.frame_rate.expect("VUI timing");
    assert!(
        (fps - p.fps).abs() < 0.01,
        "{}: {fps} vs {}",
        path.display(),
        p.fps
    );
}

fn check_h265(path: &std::path::Path) {
    let es = std::fs::read(path).expect("clip");
    let sps = h265::Sps::parse(&first_nal(&es, |b| h265::nal_type(b) == h265::NAL_SPS))
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let p = ffprobe(path);
    assert_eq!(
        (sps.width, sps.height),
        (p.width, p.height),
        "{}",
        path.display()
    );
    assert_eq!(i64::from(sps.level_idc), p.level, "{}", path.display());
    if let Some(fps) = sps.frame_rate {
        assert!(
            (fps - p.fps).abs() < 0.01,
            "{}: {fps} vs {}",
            path.display(),
            p.fps
        );
    }
}

#[test]
fn srs_avatar_clips() {
    if !have("ffprobe") {
        return;
    }
    check_h264(&testdata("srs_bench_avatar.h264"));
    check_h265(&testdata("srs_bench_avatar.h265"));
    let es = std::fs::read(testdata("srs_bench_avatar.h264")).expect("clip");
    let sps = h264::Sps::parse(&first_nal(&es, |b| h264::nal_type(b) == 7)).expect("sps");
    assert_eq!((sps.profile_idc, sps.width, sps.height), (100, 768, 320));
}

#[test]
fn generated_clips_match_ffprobe() {
    if !have("ffmpeg") || !have("ffprobe") {
        return;
    }
    let dir = tempdir("codec-sps");
    let cases: &[(&str, &str, &[&str])] = &[
        (
            "h264_640x360_crop.h264",
            "640x360:rate=25",
            &["-c:v", "libx264", "-profile:v", "main"],
        ),
        (
            "h264_1366x768_high.h264",
            "1366x768:rate=30000/1001",
            &["-c:v", "libx264", "-profile:v", "high"],
        ),
        (
            "h264_444.h264",
            "352x288:rate=15",
            &[
                "-c:v",
                "libx264",
                "-pix_fmt",
                "yuv444p",
                "-profile:v",
                "high444",
            ],
        ),
        (
            "h264_interlaced.h264",
            "720x576:rate=25",
            &[
                "-c:v",
                "libx264",
                "-flags",
                "+ildct+ilme",
                "-x264opts",
                "tff=1",
            ],
        ),
        (
            "h264_baseline_1080p.h264",
            "1920x1080:rate=25",
            &["-c:v", "libx264", "-profile:v", "baseline"],
        ),
        (
            "h265_640x360.h265",
            "640x360:rate=25",
            &["-c:v", "libx265", "-x265-params", "log-level=error"],
        ),
        (
            "h265_1920x1080.h265",
            "1920x1080:rate=25",
            &[
                "-c:v",
                "libx265",
                "-x265-params",
                "log-level=error:scaling-list=default",
            ],
        ),
        (
            "h265_main10.h265",
            "424x240:rate=50",
            &[
                "-c:v",
                "libx265",
                "-pix_fmt",
                "yuv420p10le",
                "-x265-params",
                "log-level=error",
            ],
        ),
    ];
    for (name, src, args) in cases {
        let path = dir.join(name);
        run(Command::new("ffmpeg")
            .args(["-v", "error", "-y", "-f", "lavfi", "-i"])
            .arg(format!("testsrc2=size={src}"))
            .args(["-t", "0.4", "-preset", "ultrafast"])
            .args(*args)
            .arg(&path));
        if name.starts_with("h264") {
            check_h264(&path);
        } else {
            check_h265(&path);
        }
    }
}

#[test]
fn nal_split_and_keyframes_match_ffprobe() {
    if !have("ffprobe") {
        return;
    }
    for (file, codec) in [
        ("srs_bench_avatar.h264", Codec::H264),
        ("srs_bench_avatar.h265", Codec::H265),
    ] {
        let path = testdata(file);
        let es = Bytes::from(std::fs::read(&path).expect("clip"));
        // Zero-copy splitting: every NAL is a slice of the file's buffer.
        for n in NalUnitsBytes::new(es.clone()) {
            let off = n.as_ptr() as usize - es.as_ptr() as usize;
            assert!(off >= 3 && es[off - 3..off] == [0, 0, 1]);
        }
        let aus = split_access_units(&es, codec);
        let keys: Vec<bool> = aus
            .iter()
            .map(|(d, _)| scan_access_unit(codec, d).keyframe)
            .collect();
        let out = Command::new("ffprobe")
            .args(["-v", "error", "-select_streams", "v:0", "-show_entries"])
            .args(["packet=flags", "-of", "csv=p=0"])
            .arg(&path)
            .output()
            .expect("ffprobe");
        let flags: Vec<bool> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| l.starts_with('K'))
            .collect();
        assert_eq!(aus.len(), flags.len(), "{file}: access unit count");
        assert_eq!(keys, flags, "{file}: key frames");
    }
}
