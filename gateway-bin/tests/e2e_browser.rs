//! End to end in headless Chromium: the real gateway, `gb28181-sim` streaming H.264 clips
//! made with ffmpeg/libx264, and the player page driven by playwright-core; on loopback, and
//! across a network namespace with the gateway on its defaults. Frames decoded
//! and the picture size come from the browser's `RTCPeerConnection.getStats()`.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Duration;

use common::*;
use serde_json::Value;

/// Each test's gateway gets its own media port range.
static NEXT_PORTS: AtomicU16 = AtomicU16::new(40000);

fn clip(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/tests/data")
        .join(name)
}

fn browser_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/browser");
    assert!(
        dir.join("node_modules/playwright-core").exists(),
        "playwright-core is not installed in {}: run scripts/test-all (it runs npm install there)",
        dir.display()
    );
    dir
}

struct Env {
    gw: Gateway,
    _data: TempDir,
    sims: Vec<Child>,
}

impl Drop for Env {
    fn drop(&mut self) {
        for s in &mut self.sims {
            let _ = s.kill();
            let _ = s.wait();
        }
    }
}

impl Env {
    fn start(name: &str, config: &str) -> Env {
        let data = TempDir::new(name);
        let first = NEXT_PORTS.fetch_add(100, Ordering::SeqCst);
        let cfg = data.path().join("gw.toml");
        std::fs::write(&cfg, config).unwrap();
        let gw = Gateway::start(
            data.path(),
            &[
                "--config",
                cfg.to_str().unwrap(),
                "--media-ports",
                &format!("{first}-{}", first + 99),
            ],
        );
        Env {
            gw,
            _data: data,
            sims: Vec::new(),
        }
    }

    /// An NVR (`--first n`) with `channels` channels streaming `video`.
    fn sim(&mut self, n: u32, channels: u32, video: &str, extra: &[&str]) -> String {
        let child = Command::new(example_bin("gb28181-sim"))
            .args([
                "--server",
                &self.gw.sip.to_string(),
                "--password",
                PASSWORD,
                "--kind",
                "nvr",
                "--channels",
                &channels.to_string(),
                "--first",
                &n.to_string(),
                "--rate",
                "0",
                "--video",
                clip(video).to_str().unwrap(),
            ])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start gb28181-sim");
        self.sims.push(child);
        let device = format!("340200000011800{:05}", n);
        let url = self.gw.url(&format!("/api/v1/devices/{device}"));
        wait_for(Duration::from_secs(20), || {
            let (s, d) = get(&url);
            (s == 200 && d["online"] == true && d["channel_count"] == channels).then_some(())
        })
        .unwrap_or_else(|| panic!("simulated NVR {device} did not come online"));
        device
    }

    /// The `index`-th channel (1-based, catalog order) of `device`, from the API.
    fn channel(&self, device: &str, index: u32) -> String {
        let (status, list) = get(&self.gw.url(&format!("/api/v1/devices/{device}/channels")));
        assert_eq!(status, 200, "{list}");
        list[index as usize - 1]["channel_id"]
            .as_str()
            .unwrap_or_else(|| panic!("{device} has no channel {index}: {list}"))
            .to_owned()
    }

    /// Run the browser driver and return its sessions.
    fn play(&self, device: &str, channel: &str, args: &[&str]) -> Vec<Value> {
        let out = Command::new("node")
            .current_dir(browser_dir())
            .args([
                "play.mjs",
                "--url",
                &format!("http://{}", self.gw.http),
                "--token",
                TOKEN,
                "--device",
                device,
                "--channel",
                channel,
            ])
            .args(args)
            .output()
            .expect("run node (Debian package nodejs)");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let line = stdout.lines().last().unwrap_or("");
        let v: Value = serde_json::from_str(line).unwrap_or_else(|_| {
            panic!(
                "browser driver failed ({:?}):\n{stdout}\n{}",
                out.status.code(),
                String::from_utf8_lossy(&out.stderr)
            )
        });
        v["sessions"].as_array().cloned().unwrap_or_default()
    }

    /// A Prometheus counter summed over the label sets that contain `labels`.
    fn counter(&self, name: &str, labels: &str) -> f64 {
        let (_, text) = get_anonymous(&self.gw.url("/metrics"));
        text.lines()
            .filter(|l| l.starts_with(name) && l.contains(labels))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }
}

fn assert_played(s: &Value, what: &str) {
    assert_eq!(s["state"], "playing", "{what}: {s}");
    assert!(
        s["framesDecoded"].as_u64().unwrap_or(0) >= 30,
        "{what}: {s}"
    );
    assert_eq!(s["width"], 640, "{what}: {s}");
    assert_eq!(s["height"], 360, "{what}: {s}");
}

#[test]
fn plays_h264_main_and_high_over_udp_tcp_passive_and_tcp_active() {
    let mut env = Env::start("play", "");
    let main = env.sim(1, 3, "testsrc2_h264_main_640x360.h264", &[]);
    let high = env.sim(2, 3, "testsrc2_h264_high_640x360_aud.h264", &[]);
    for (i, transport) in ["udp", "tcp-passive", "tcp-active"].into_iter().enumerate() {
        for device in [&main, &high] {
            let ch = env.channel(device, i as u32 + 1);
            let s = env.play(device, &ch, &["--transport", transport, "--frames", "40"]);
            assert_eq!(s.len(), 1);
            assert_played(&s[0], &format!("{transport} {device}"));
            // The stream lingers after the viewer left: it is listed with its transport.
            let (_, streams) = get(&env.gw.url("/api/v1/streams"));
            let listed = streams
                .as_array()
                .unwrap()
                .iter()
                .find(|s| s["channel_id"] == ch.as_str())
                .cloned()
                .unwrap_or_else(|| panic!("{ch} listed: {streams}"));
            assert_eq!(listed["transport"], transport, "{listed}");
            assert_eq!(listed["media"]["codec"], "h264");
            assert_eq!(listed["media"]["width"], 640);
            assert!(listed["media"]["packets"].as_u64().unwrap() > 0);
        }
    }
}

#[test]
fn pcma_audio_reaches_the_browser() {
    let mut env = Env::start("audio", "");
    let dev = env.sim(
        3,
        1,
        "testsrc2_h264_main_640x360.h264",
        &["--audio", "pcma"],
    );
    let s = env.play(
        &dev,
        &env.channel(&dev, 1),
        &["--expect-audio", "--frames", "30"],
    );
    assert_played(&s[0], "with PCMA");
    assert!(s[0]["audioPackets"].as_u64().unwrap_or(0) > 10, "{}", s[0]);
}

#[test]
fn two_viewers_share_one_invite_and_one_bye_follows_the_linger() {
    let mut env = Env::start("share", "[media]\nlinger_secs = 2\n");
    let dev = env.sim(4, 1, "testsrc2_h264_main_640x360.h264", &[]);
    let ch = env.channel(&dev, 1);
    let invites = |env: &Env| env.counter("sip_messages_out_total", "method=\"INVITE\"");
    let byes = |env: &Env| env.counter("sip_messages_out_total", "method=\"BYE\"");
    let s = env.play(
        &dev,
        &ch,
        &["--sessions", "2", "--stagger", "--frames", "30"],
    );
    assert_eq!(s.len(), 2);
    assert_played(&s[0], "first viewer");
    assert_played(&s[1], "second viewer");
    let ttff = s[1]["ttffMs"].as_u64().unwrap_or(u64::MAX);
    eprintln!(
        "time to first frame: first viewer {} ms (INVITE included), joining viewer {ttff} ms",
        s[0]["ttffMs"]
    );
    assert!(ttff < 2000, "joining a running stream took {ttff} ms");
    assert_eq!(invites(&env), 1.0, "one INVITE for two viewers");
    assert_eq!(byes(&env), 0.0, "no BYE before the linger");
    wait_for(Duration::from_secs(10), || {
        (byes(&env) == 1.0).then_some(())
    })
    .expect("one BYE after the linger");
    let (_, streams) = get(&env.gw.url("/api/v1/streams"));
    assert_eq!(streams.as_array().unwrap().len(), 0, "{streams}");
}

#[test]
fn a_silent_device_and_a_wrong_ssrc_give_clear_errors() {
    let mut env = Env::start("errors", "[media]\nno_media_timeout_secs = 3\n");
    let silent = env.sim(5, 1, "testsrc2_h264_main_640x360.h264", &["--no-media"]);
    let wrong = env.sim(6, 1, "testsrc2_h264_main_640x360.h264", &["--wrong-ssrc"]);
    let s = env.play(
        &silent,
        &env.channel(&silent, 1),
        &["--timeout-ms", "15000"],
    );
    let err = s[0]["error"].as_str().unwrap_or("");
    assert!(err.contains("no media from the device"), "{}", s[0]);
    assert!(err.contains("no packets arrived"), "{}", s[0]);
    let s = env.play(&wrong, &env.channel(&wrong, 1), &["--timeout-ms", "15000"]);
    let err = s[0]["error"].as_str().unwrap_or("");
    assert!(err.contains("SSRC mismatch"), "{}", s[0]);
    // The failed sessions were hung up.
    assert_eq!(env.counter("sip_messages_out_total", "method=\"BYE\""), 2.0);
}

#[test]
fn h265_without_browser_support_is_a_clear_http_error() {
    let mut env = Env::start("h265", "");
    let dev = env.sim(7, 1, "testsrc2_h265_main_640x360.h265", &[]);
    let s = env.play(&dev, &env.channel(&dev, 1), &["--timeout-ms", "15000"]);
    let err = s[0]["error"].as_str().unwrap_or("");
    assert!(err.contains("cannot receive H265"), "{}", s[0]);
}

#[test]
fn viewers_are_told_when_the_device_goes_away() {
    let mut env = Env::start(
        "gone",
        "[sip]\nkeepalive_interval_secs = 1\nkeepalive_max_missed = 2\n",
    );
    let dev = env.sim(
        8,
        1,
        "testsrc2_h264_main_640x360.h264",
        &["--keepalive", "1"],
    );
    let ch = env.channel(&dev, 1);
    let (http, sims) = (env.gw.http, std::mem::take(&mut env.sims));
    let player = std::thread::spawn({
        let dev = dev.clone();
        let ch = ch.clone();
        move || {
            let env = Env {
                gw: Gateway::attach(http),
                _data: TempDir::new("gone-client"),
                sims: Vec::new(),
            };
            env.play(
                &dev,
                &ch,
                &["--frames", "30", "--until-ended", "--timeout-ms", "20000"],
            )
        }
    });
    // Once the viewer plays, the device disappears (killed: no BYE, no unregister).
    wait_for(Duration::from_secs(20), || {
        let (_, s) = get(&env.gw.url("/api/v1/streams"));
        (s[0]["viewers"] == 1 && s[0]["state"] == "playing").then_some(())
    })
    .expect("viewer playing");
    std::thread::sleep(Duration::from_millis(1500));
    for mut s in sims {
        let _ = s.kill();
        let _ = s.wait();
    }
    let sessions = player.join().unwrap();
    assert_played(&sessions[0], "before the device went away");
    let ended = &sessions[0]["ended"];
    assert!(
        ended["error"]
            .as_str()
            .unwrap_or("")
            .contains("the device went offline"),
        "{}",
        sessions[0]
    );
    let (_, streams) = get(&env.gw.url("/api/v1/streams"));
    assert_eq!(streams.as_array().unwrap().len(), 0, "{streams}");
}

/// The defaults on a LAN: the gateway in a network namespace with a veth address and a
/// default route, every bind a wildcard and nothing announced by configuration. It must
/// announce the veth address (not 127.0.0.1) in SIP, in the SDP it sends the camera and in
/// its ICE candidates; a camera in the namespace streams to it and Chromium on this host,
/// outside the namespace, plays it.
#[test]
fn on_a_lan_the_defaults_announce_the_default_route_address_and_a_remote_browser_plays() {
    let ns = Netns::create(0);
    ns.default_route();
    let data = TempDir::new("lan");
    let gw = Gateway::start_in(&ns, data.path(), &[]);
    let ip = ns.ns_ip.to_string();
    let banner = gw.banner.join("\n");
    for (what, expect) in [
        ("SIP", format!("announced as {ip}:{}: ", gw.sip.port())),
        ("MEDIA", format!("announced as {ip}: ")),
        ("WEBRTC", format!("(candidates {ip}:")),
    ] {
        let line = gw
            .banner
            .iter()
            .find(|l| l.trim().starts_with(what))
            .unwrap_or_else(|| panic!("no {what} line:\n{banner}"));
        assert!(line.contains(&expect), "{what}: {line}");
        assert!(
            line.contains("which holds the default route"),
            "{what}: {line}"
        );
    }
    assert!(!banner.contains("WARNING"), "{banner}");
    // A camera on the same LAN (in the namespace, on its address).
    let sim = ns.camera(&gw, 31, &clip("testsrc2_h264_main_640x360.h264"), &[]);
    let device = "34020000001180000031";
    wait_for(Duration::from_secs(20), || {
        let (s, d) = get(&gw.url(&format!("/api/v1/devices/{device}")));
        (s == 200 && d["online"] == true && d["channel_count"] == 1).then_some(())
    })
    .expect("the camera registers over the LAN address");
    let env = Env {
        gw,
        _data: data,
        sims: vec![sim],
    };
    let ch = env.channel(device, 1);
    // Chromium runs on this host, outside the namespace: it reaches the gateway only at
    // the announced address.
    let s = env.play(device, &ch, &["--frames", "30"]);
    assert_played(&s[0], "a browser on another machine");
    let (_, streams) = get(&env.gw.url("/api/v1/streams"));
    let media = &streams[0]["media"];
    assert_eq!(media["diagnosis"]["other_source"], 0, "{media}");
    assert!(media["packets"].as_u64().unwrap_or(0) > 0, "{media}");
}
