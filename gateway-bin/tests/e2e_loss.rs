//! Loss never corrupts, end to end. The simulated camera streams from a network namespace
//! through a relay that adds jitter and reordering (`udp-impair`) and an nftables rule that
//! drops a random share of its media datagrams (`numgen random mod 100 < N drop`: this
//! kernel has no netem). Headless Chromium on this host watches through the gateway and
//! reads every encoded frame before its decoder. Checked:
//!
//! - every frame the browser got is byte-identical (its slice NAL units' digests) to a frame
//!   of the clip the camera sent;
//! - no P-frame follows a gap: between a dropped frame and the next key frame nothing is
//!   passed on (a P-frame's predecessor, one frame period before it, always came too);
//! - the browser keeps decoding: every frame it got was decoded.
//!
//! The freeze figures (gaps in the frames the browser got) are printed for the record, with
//! and without the gateway's key-frame request; `cargo test --test e2e_loss -- --nocapture`.
//! A last run with the hold switched off shows the check can fail: P-frames after gaps.

mod common;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;
use serde_json::Value;

const CLIP: &str = "testsrc2_h264_main_640x360.h264";
/// 25 fps at 90 kHz.
const FRAME_TICKS: u32 = 3600;

fn clip() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/tests/data")
        .join(CLIP)
}

fn browser_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/browser");
    assert!(
        dir.join("node_modules/playwright-core").exists(),
        "playwright-core is not installed in {}: run scripts/test-all",
        dir.display()
    );
    dir
}

/// FNV-1a, as `tests/browser/frames.mjs` computes it.
fn fnv(d: &[u8]) -> String {
    let mut h: u32 = 0x811c_9dc5;
    for &b in d {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    format!("{h:08x}")
}

/// Digests of the slice NAL units (types 1 and 5) of an Annex B stream, trailing zeros
/// stripped: what the camera can have sent.
fn slice_digests(es: &[u8]) -> HashSet<String> {
    let mut starts = Vec::new();
    let mut i = 0;
    while i + 2 < es.len() {
        if es[i] == 0 && es[i + 1] == 0 && es[i + 2] == 1 {
            starts.push(i + 3);
            i += 3;
        } else {
            i += 1;
        }
    }
    let mut out = HashSet::new();
    for (k, &s) in starts.iter().enumerate() {
        let mut e = starts.get(k + 1).map_or(es.len(), |n| n - 3);
        while e > s && es[e - 1] == 0 {
            e -= 1;
        }
        if e > s && matches!(es[s] & 0x1f, 1 | 5) {
            out.insert(fnv(&es[s..e]));
        }
    }
    out
}

/// One run's setting.
struct Case {
    name: &'static str,
    drop_pct: u32,
    jitter_ms: u32,
    /// `[media]` settings added to the gateway's configuration.
    media: &'static str,
}

/// What one run measured.
#[derive(Debug)]
struct Seen {
    frames: usize,
    keyframes: usize,
    foreign: usize,
    /// P-frames whose predecessor the browser never got.
    p_after_gap: usize,
    decoded: u64,
    /// Gaps between frames longer than 3 frame periods: (count, total ms, longest ms).
    freezes: (usize, u64, u64),
    freezes_p50_ms: u64,
    browser_freezes: (u64, f64),
    media: Value,
    /// The relay's counters.
    relay: String,
}

const MEDIA_PORTS: u16 = 41_000;
const RELAY_IN: u16 = 21_000;
const RELAY_OUT: u16 = 20_000;
const PORTS: u16 = 10;

/// The impairment inside the namespace: the camera's media to the gateway goes to the
/// relay instead; the relay's output loses `drop_pct` % of its datagrams.
fn impair(ns: &Netns, gw_ip: &str, drop_pct: u32) {
    let mut rules = String::from(
        "table ip impair {\n chain nat_out {\n  type nat hook output priority -100; policy accept;\n",
    );
    for i in 0..PORTS {
        rules += &format!(
            "  ip daddr {gw_ip} udp dport {} udp sport != {}-{} redirect to :{}\n",
            MEDIA_PORTS + i,
            RELAY_OUT,
            RELAY_OUT + PORTS - 1,
            RELAY_IN + i
        );
    }
    rules += " }\n chain filter_out {\n  type filter hook output priority 0; policy accept;\n";
    if drop_pct > 0 {
        rules += &format!(
            "  udp sport {}-{} numgen random mod 100 < {drop_pct} counter drop\n",
            RELAY_OUT,
            RELAY_OUT + PORTS - 1
        );
    }
    rules += " }\n}\n";
    let mut nft = Command::new("ip")
        .args(["netns", "exec", &ns.name, "nft", "-f", "-"])
        .stdin(Stdio::piped())
        .spawn()
        .expect("nft (Debian package nftables) is needed for the loss tests");
    use std::io::Write;
    nft.stdin
        .take()
        .unwrap()
        .write_all(rules.as_bytes())
        .unwrap();
    assert!(nft.wait().unwrap().success(), "nft rules:\n{rules}");
}

struct Kill(Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn run(case: &Case, tag: u8, seconds: u32) -> Seen {
    let ns = Netns::create(tag);
    let host = ns.host_ip.to_string();
    let data = TempDir::new(&format!("loss{tag}"));
    let cfg = data.path().join("gw.toml");
    std::fs::write(&cfg, format!("[media]\n{}\n", case.media)).unwrap();
    let gw = Gateway::start_on(
        data.path(),
        &format!("{host}:0"),
        &[
            "--config",
            cfg.to_str().unwrap(),
            "--media-ports",
            &format!("{MEDIA_PORTS}-{}", MEDIA_PORTS + PORTS - 1),
        ],
    );
    impair(&ns, &host, case.drop_pct);
    let ns_ip = ns.ns_ip.to_string();
    let mut relay = Kill(
        ns.command(&example_bin("udp-impair"))
            .args([
                "--listen",
                &format!("0.0.0.0:{RELAY_IN}"),
                "--to",
                &format!("{host}:{MEDIA_PORTS}"),
                "--from",
                &format!("{ns_ip}:{RELAY_OUT}"),
                "--ports",
                &PORTS.to_string(),
                "--jitter-ms",
                &case.jitter_ms.to_string(),
                "--seed",
                &u64::from(tag).to_string(),
            ])
            .stdout(Stdio::piped())
            .spawn()
            .expect("start udp-impair"),
    );
    let _sim = Kill(ns.camera(&gw, 60 + u32::from(tag), &clip(), &["--audio", "pcma"]));
    let device = format!("340200000011800{:05}", 60 + u32::from(tag));
    let ch = wait_for(Duration::from_secs(20), || {
        let (s, list) = get(&gw.url(&format!("/api/v1/devices/{device}/channels")));
        (s == 200)
            .then(|| list[0]["channel_id"].as_str().map(str::to_owned))
            .flatten()
    })
    .expect("the camera registers with its channel");
    let out = Command::new("node")
        .current_dir(browser_dir())
        .args([
            "frames.mjs",
            "--url",
            &format!("http://{}", gw.http),
            "--token",
            TOKEN,
            "--device",
            &device,
            "--channel",
            &ch,
            "--seconds",
            &seconds.to_string(),
        ])
        .output()
        .expect("run node (Debian package nodejs)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let v: Value = serde_json::from_str(stdout.lines().last().unwrap_or("")).unwrap_or_else(|_| {
        panic!(
            "{}: browser driver failed:\n{stdout}\n{}",
            case.name,
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert_eq!(v["state"], "done", "{}: {v}", case.name);
    let (_, streams) = get(&gw.url("/api/v1/streams"));
    let media = streams[0]["media"].clone();
    let _ = Command::new("kill")
        .args(["-TERM", &relay.0.id().to_string()])
        .status();
    let mut said = String::new();
    if let Some(mut o) = relay.0.stdout.take() {
        let _ = std::io::Read::read_to_string(&mut o, &mut said);
    }
    let mut seen = measure(&v, media);
    seen.relay = said.lines().last().unwrap_or("").to_owned();
    seen
}

fn measure(v: &Value, media: Value) -> Seen {
    let sent = slice_digests(&std::fs::read(clip()).unwrap());
    let frames = v["frames"].as_array().unwrap();
    let mut foreign = 0;
    let mut p_after_gap = 0;
    let mut keyframes = 0;
    let mut gaps = Vec::new();
    let mut prev: Option<(u32, u64)> = None;
    for f in frames {
        let ts = f["ts"].as_u64().unwrap() as u32;
        let at = f["at"].as_u64().unwrap();
        let key = f["key"].as_bool().unwrap();
        keyframes += usize::from(key);
        let slices = f["slices"].as_array().unwrap();
        if slices.is_empty()
            || slices
                .iter()
                .any(|s| !sent.contains(s.as_str().unwrap_or("")))
        {
            foreign += 1;
        }
        if let Some((pts, pat)) = prev {
            if !key && ts.wrapping_sub(pts) != FRAME_TICKS {
                p_after_gap += 1;
            }
            let gap = at.saturating_sub(pat);
            if gap > 3 * 40 {
                gaps.push(gap);
            }
        }
        prev = Some((ts, at));
    }
    gaps.sort_unstable();
    let last = v["samples"].as_array().and_then(|s| s.last()).cloned();
    let last = last.unwrap_or(Value::Null);
    Seen {
        frames: frames.len(),
        keyframes,
        foreign,
        p_after_gap,
        decoded: last["framesDecoded"].as_u64().unwrap_or(0),
        freezes: (
            gaps.len(),
            gaps.iter().sum(),
            gaps.last().copied().unwrap_or(0),
        ),
        freezes_p50_ms: gaps.get(gaps.len() / 2).copied().unwrap_or(0),
        browser_freezes: (
            last["freezeCount"].as_u64().unwrap_or(0),
            last["totalFreezesDuration"].as_f64().unwrap_or(0.0),
        ),
        media,
        relay: String::new(),
    }
}

fn report(case: &Case, s: &Seen, seconds: u32) {
    println!(
        "{:<34} drop {}% jitter {} ms: {} frames in {seconds} s ({} key), {} decoded; \
         freezes {} totalling {} ms (p50 {} ms, longest {} ms); Chromium: {} freezes, {:.2} s; \
         gateway: packets_lost {}, dropped_frames {}, held_video_frames {}, holds {}, \
         losses_not_video {}; \
         foreign frames {}, P-frames after a gap {}; relay: {}",
        case.name,
        case.drop_pct,
        case.jitter_ms,
        s.frames,
        s.keyframes,
        s.decoded,
        s.freezes.0,
        s.freezes.1,
        s.freezes_p50_ms,
        s.freezes.2,
        s.browser_freezes.0,
        s.browser_freezes.1,
        s.media["packets_lost"],
        s.media["dropped_frames"],
        s.media["held_video_frames"],
        s.media["holds"],
        s.media["losses_not_video"],
        s.foreign,
        s.p_after_gap,
        s.relay,
    );
}

fn assert_clean(case: &Case, s: &Seen, seconds: u32) {
    // The viewer keeps getting pictures: at least one frame a second on average, and a
    // third of the key frames (one a second). How many more depends on where the random
    // drops fall: at 5 % without the key-frame request a run gave from 35 to 83 frames.
    assert!(
        s.frames >= seconds as usize && s.keyframes >= (seconds / 3) as usize,
        "{}: too few frames: {s:?}",
        case.name
    );
    assert_eq!(
        s.foreign, 0,
        "{}: frames the camera never sent: {s:?}",
        case.name
    );
    assert_eq!(
        s.p_after_gap, 0,
        "{}: P-frames after a gap: {s:?}",
        case.name
    );
    // Every frame handed to the decoder is decoded (a few may still be in flight).
    assert!(
        s.decoded + 5 >= s.frames as u64,
        "{}: the browser stopped decoding: {s:?}",
        case.name
    );
}

#[test]
fn under_loss_and_reordering_the_browser_gets_only_whole_decodable_frames() {
    let seconds = 15;
    let cases = [
        Case {
            name: "1% loss, key-frame request",
            drop_pct: 1,
            jitter_ms: 20,
            media: "",
        },
        Case {
            name: "5% loss, key-frame request",
            drop_pct: 5,
            jitter_ms: 20,
            media: "",
        },
        Case {
            name: "5% loss, no key-frame request",
            drop_pct: 5,
            jitter_ms: 20,
            media: "keyframe_after_loss = false",
        },
    ];
    for (i, case) in cases.iter().enumerate() {
        let s = run(case, 3 + i as u8, seconds);
        report(case, &s, seconds);
        assert_clean(case, &s, seconds);
        assert!(
            s.relay.starts_with("relayed") && !s.relay.contains("reordered 0 "),
            "{}: the relay reordered nothing: {}",
            case.name,
            s.relay
        );
        if case.drop_pct > 0 {
            assert!(
                s.media["packets_lost"].as_u64().unwrap_or(0) > 0
                    && s.media["holds"].as_u64().unwrap_or(0) > 0,
                "{}: the rule dropped nothing? {:?}",
                case.name,
                s.media
            );
        }
    }
    // Without the hold, the same network passes P-frames whose reference was lost: what
    // the checks above exist to catch.
    let case = Case {
        name: "5% loss, hold off (the old way)",
        drop_pct: 5,
        jitter_ms: 20,
        media: "hold_video_after_loss = false\nkeyframe_after_loss = false",
    };
    let s = run(&case, 6, seconds);
    report(&case, &s, seconds);
    assert_eq!(s.foreign, 0, "{s:?}");
    assert!(s.p_after_gap > 0, "the hold-off run shows no damage: {s:?}");
}
