//! The simulator's access-unit splitter against ffprobe's on every committed clip
//! (`tests/data/make-clips.sh` writes the reference `.frames.csv`): same frame sizes, same
//! key frames, nothing lost, parameter sets with every key frame.

use std::path::Path;

use bytes::Bytes;
use gb28181_examples::sim::es::Clip;
use media::Codec;
use media::codec::{ParameterSetCache, scan_access_unit};

const CLIPS: [(&str, Codec, usize, (u32, u32)); 4] = [
    (
        "testsrc2_h264_main_320x240_2slices.h264",
        Codec::H264,
        50,
        (320, 240),
    ),
    (
        "testsrc2_h264_main_640x360.h264",
        Codec::H264,
        75,
        (640, 360),
    ),
    (
        "testsrc2_h264_high_640x360_aud.h264",
        Codec::H264,
        75,
        (640, 360),
    ),
    (
        "testsrc2_h265_main_640x360.h265",
        Codec::H265,
        75,
        (640, 360),
    ),
];

fn data(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

#[test]
fn access_units_match_ffprobe() {
    for (name, codec, frames, size) in CLIPS {
        let bytes = std::fs::read(data(name)).unwrap();
        // Codec from the extension.
        let clip = Clip::open(&data(name), None).unwrap();
        assert_eq!(clip.codec, codec, "{name}");
        assert_eq!((clip.width, clip.height), (Some(size.0), Some(size.1)));
        assert_eq!((clip.skipped_leading, clip.parameter_sets_added), (0, 0));
        let csv = std::fs::read_to_string(data(&format!("{name}.frames.csv"))).unwrap();
        let want: Vec<(usize, bool)> = csv
            .lines()
            .map(|l| {
                let (size, flags) = l.split_once(',').unwrap();
                (size.parse().unwrap(), flags.starts_with('K'))
            })
            .collect();
        let got: Vec<(usize, bool)> = clip
            .units
            .iter()
            .map(|u| (u.data.len(), u.keyframe))
            .collect();
        assert_eq!(got.len(), frames, "{name}");
        assert_eq!(
            got.iter().map(|g| g.1).collect::<Vec<_>>(),
            want.iter().map(|w| w.1).collect::<Vec<_>>(),
            "{name}: key frames"
        );
        // Where each access unit starts. Ours start at the `zero_byte` of a 4-byte start code
        // (H.264/H.265 Annex B.1: it belongs to the first NAL unit of an access unit);
        // ffprobe's HEVC parser leaves that zero byte at the end of the previous frame.
        let starts = |sizes: &mut dyn Iterator<Item = usize>| {
            sizes
                .scan(0, |at, n| {
                    let s = *at;
                    *at += n;
                    Some(s)
                })
                .collect::<Vec<_>>()
        };
        let ours = starts(&mut got.iter().map(|g| g.0));
        let theirs = starts(&mut want.iter().map(|w| w.0));
        for (i, (a, b)) in ours.iter().zip(&theirs).enumerate() {
            let zero_byte = *b == a + 1 && bytes[*a..*a + 4] == [0, 0, 0, 1];
            assert!(
                a == b || zero_byte,
                "{name} frame {i}: starts at {a}, ffprobe {b}"
            );
        }
        // The access units are the file, cut: nothing dropped, nothing added.
        let joined: Vec<u8> = clip.units.iter().flat_map(|u| u.data.to_vec()).collect();
        assert_eq!(joined, bytes, "{name}");
        for (i, u) in clip.units.iter().enumerate() {
            let scan = scan_access_unit(codec, &u.data);
            assert!(scan.has_slice, "{name} frame {i}");
            if u.keyframe {
                assert!(
                    ParameterSetCache::scan_has_all(codec, &scan),
                    "{name} key frame {i} without its parameter sets"
                );
            }
        }
        assert_eq!(
            clip.keyframes(),
            frames / 25,
            "{name}: one key frame a second"
        );
    }
}

#[test]
fn sniffs_the_codec_without_an_extension() {
    let dir = std::env::temp_dir().join(format!("sim_clips_{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (name, codec, frames, _) in CLIPS {
        let copy = dir.join(name.replace('.', "_"));
        std::fs::copy(data(name), &copy).unwrap();
        let clip = Clip::open(&copy, None).unwrap();
        assert_eq!((clip.codec, clip.units.len()), (codec, frames), "{name}");
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert!(Clip::open(Path::new("/nonexistent/clip.h264"), None).is_err());
    let junk = Clip::from_bytes(Codec::H264, Bytes::from_static(b"not video at all"));
    assert!(junk.is_none());
}
