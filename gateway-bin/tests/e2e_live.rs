//! The live-view session lifecycle against the real binary, with `gb28181-sim` as the camera
//! and `whep-load` (a str0m WebRTC client) as the viewer: a viewer that gives up during its
//! join leaves no stream behind, media from anyone but the device is dropped and counted,
//! a TCP media connection cannot be taken over, and every call gets its BYE at shutdown.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

fn clip() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/tests/data/testsrc2_h264_main_640x360.h264")
}

/// An NVR (`--first n`) with `channels` channels; returns it and its device ID.
fn nvr(gw: &Gateway, n: u32, channels: u32, extra: &[&str]) -> (Sim, String) {
    let mut args = vec![
        "--kind".to_owned(),
        "nvr".into(),
        "--channels".into(),
        channels.to_string(),
        "--first".into(),
        n.to_string(),
        "--rate".into(),
        "0".into(),
        "--video".into(),
        clip().to_string_lossy().into_owned(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let sim = Sim::start_piped(gw, &args);
    let device = format!("340200000011800{n:05}");
    let url = gw.url(&format!("/api/v1/devices/{device}"));
    wait_for(Duration::from_secs(20), || {
        let (s, d) = get(&url);
        (s == 200 && d["online"] == true && d["channel_count"] == channels).then_some(())
    })
    .unwrap_or_else(|| panic!("simulated NVR {device} did not come online"));
    (sim, device)
}

fn channels(gw: &Gateway, device: &str) -> Vec<String> {
    let (_, list) = get(&gw.url(&format!("/api/v1/devices/{device}/channels")));
    list.as_array()
        .unwrap()
        .iter()
        .map(|c| c["channel_id"].as_str().unwrap().to_owned())
        .collect()
}

fn streams(gw: &Gateway) -> Vec<Value> {
    get(&gw.url("/api/v1/streams"))
        .1
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// The one stream, once it is in `state`.
fn stream_in(gw: &Gateway, state: &str) -> Value {
    wait_for(Duration::from_secs(15), || {
        streams(gw).into_iter().find(|s| s["state"] == state)
    })
    .unwrap_or_else(|| panic!("no stream {state}: {:?}", streams(gw)))
}

/// A WebRTC viewer for `seconds` (runs in the background).
fn viewer(gw: &Gateway, device: &str, channel: &str, transport: &str, seconds: u32) -> Child {
    Command::new(example_bin("whep-load"))
        .args([
            "--url",
            &gw.url(&format!(
                "/api/v1/whep/{device}/{channel}?transport={transport}"
            )),
            "--token",
            TOKEN,
            "--peers",
            "1",
            "--seconds",
            &seconds.to_string(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start whep-load")
}

/// An RTP packet with a PS pack header as payload.
fn rtp(ssrc: u32, seq: u16) -> Vec<u8> {
    let mut p = vec![0x80, 96];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&(u32::from(seq) * 3600).to_be_bytes());
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend_from_slice(&[0, 0, 1, 0xBA, 0x44, 0, 4, 0, 4, 1, 0, 0, 3, 0xF8]);
    p
}

#[test]
fn a_viewer_that_gives_up_during_its_join_leaves_no_stream() {
    let data = TempDir::new("live-cancel");
    let gw = start_with_config(
        data.path(),
        "[media]\nlinger_secs = 1\nno_media_timeout_secs = 60\n",
        &[],
    );
    // The camera answers the INVITE and never sends: the join waits for media.
    let (_sim, device) = nvr(&gw, 21, 1, &["--no-media"]);
    let ch = &channels(&gw, &device)[0];
    let mut conn = TcpStream::connect(gw.http).unwrap();
    let offer = "v=0\r\n";
    write!(
        conn,
        "POST /api/v1/whep/{device}/{ch} HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {TOKEN}\r\n\
         Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{offer}",
        offer.len()
    )
    .unwrap();
    let s = stream_in(&gw, "waiting_media");
    assert_eq!(s["joining"], 1, "{s}");
    // The browser goes away (tab closed, network gone) before the answer.
    drop(conn);
    let gone = Instant::now();
    wait_for(Duration::from_secs(10), || {
        streams(&gw).is_empty().then_some(())
    })
    .unwrap_or_else(|| panic!("the stream outlived its cancelled join: {:?}", streams(&gw)));
    let took = gone.elapsed();
    eprintln!("stream ended {took:?} after its only viewer gave up (linger 1 s)");
    assert!(took < Duration::from_secs(5), "{took:?}");
    assert_eq!(counter(&gw, "live_joins_cancelled_total", ""), 1.0);
    wait_for(Duration::from_secs(5), || {
        (counter(&gw, "sip_messages_out_total", "method=\"BYE\"") == 1.0).then_some(())
    })
    .expect("one BYE to the camera");
}

#[test]
fn udp_media_from_another_address_is_dropped_counted_and_explained() {
    let data = TempDir::new("live-inject");
    let gw = start_with_config(data.path(), "[media]\nno_media_timeout_secs = 4\n", &[]);
    let (_sim, device) = nvr(&gw, 22, 1, &["--no-media"]);
    let ch = channels(&gw, &device)[0].clone();
    let url = gw.url(&format!("/api/v1/whep/{device}/{ch}"));
    let join = std::thread::spawn(move || post_sdp(&url, "v=0\r\n"));
    let s = stream_in(&gw, "waiting_media");
    let ssrc: u32 = s["ssrc"].as_str().unwrap().parse().unwrap();
    let port = s["media_port"].as_u64().unwrap() as u16;
    // Someone else on the network (127.0.0.2; the camera registered from 127.0.0.1) sends
    // RTP with the right SSRC to the right port.
    let intruder = UdpSocket::bind("127.0.0.2:0").unwrap();
    for seq in 0..200u16 {
        intruder
            .send_to(&rtp(ssrc, seq), SocketAddr::from(([127, 0, 0, 1], port)))
            .unwrap();
    }
    let s = wait_for(Duration::from_secs(3), || {
        streams(&gw)
            .into_iter()
            .find(|s| s["media"]["diagnosis"]["other_source"] == 200)
    })
    .unwrap_or_else(|| panic!("packets not counted: {:?}", streams(&gw)));
    assert_eq!(s["state"], "waiting_media", "{s}");
    assert_eq!(s["media"]["diagnosis"]["accepted"], 0, "{s}");
    let (status, body) = join.join().unwrap();
    assert_eq!(status, 504, "{body}");
    let reason = body["detail"]["reason"].as_str().unwrap_or("");
    assert!(
        reason.contains("not the device's address") && reason.contains("127.0.0.2"),
        "{body}"
    );
    assert_eq!(counter(&gw, "live_media_rejected_packets_total", ""), 200.0);
}

#[test]
fn a_tcp_media_connection_is_the_devices_and_cannot_be_taken_over() {
    let data = TempDir::new("live-tcp");
    let gw = start_with_config(data.path(), "", &[]);
    let (_sim, device) = nvr(&gw, 23, 1, &[]);
    let ch = channels(&gw, &device)[0].clone();
    let mut v = viewer(&gw, &device, &ch, "tcp-passive", 20);
    let s = stream_in(&gw, "playing");
    let port = s["media_port"].as_u64().unwrap() as u16;
    // Another host, then another connection from the device's own address: both closed at
    // once, the device's connection goes on.
    let refused = |from: [u8; 4]| {
        let mut sock = connect_from(from, port).expect("the kernel accepts; the gateway closes");
        sock.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        let _ = sock.write_all(&[0, 12]);
        let mut b = [0u8; 1];
        matches!(sock.read(&mut b), Ok(0) | Err(_))
    };
    assert!(
        refused([127, 0, 0, 2]),
        "a connection from another host is closed"
    );
    assert!(refused([127, 0, 0, 1]), "a second connection is closed");
    let packets = |gw: &Gateway| streams(gw)[0]["media"]["packets"].as_u64().unwrap_or(0);
    let before = packets(&gw);
    let s = wait_for(Duration::from_secs(5), || {
        streams(&gw)
            .into_iter()
            .find(|s| s["media"]["diagnosis"]["refused_connections"] == 2)
    })
    .unwrap_or_else(|| panic!("refusals not counted: {:?}", streams(&gw)));
    assert_eq!(s["state"], "playing", "{s}");
    wait_for(Duration::from_secs(5), || {
        (packets(&gw) > before).then_some(())
    })
    .expect("the device's media keeps flowing");
    assert_eq!(
        counter(&gw, "live_media_rejected_connections_total", ""),
        2.0
    );
    let _ = v.kill();
    let _ = v.wait();
}

/// A TCP connection from the loopback address `from` to the gateway's media `port`: the
/// gateway binds media on the wildcard, and on loopback the kernel picks the destination as
/// the source, so connecting to 127.0.0.2 comes from 127.0.0.2.
fn connect_from(from: [u8; 4], port: u16) -> std::io::Result<TcpStream> {
    TcpStream::connect_timeout(&SocketAddr::from((from, port)), Duration::from_secs(3))
}

#[test]
fn every_live_call_gets_its_bye_at_shutdown() {
    let data = TempDir::new("live-shutdown");
    let gw = start_with_config(data.path(), "", &[]);
    let (sim, device) = nvr(&gw, 24, 2, &[]);
    let chs = channels(&gw, &device);
    let mut viewers: Vec<Child> = chs
        .iter()
        .map(|ch| viewer(&gw, &device, ch, "udp", 30))
        .collect();
    wait_for(Duration::from_secs(15), || {
        (streams(&gw)
            .iter()
            .filter(|s| s["state"] == "playing")
            .count()
            == 2)
            .then_some(())
    })
    .unwrap_or_else(|| panic!("two streams playing: {:?}", streams(&gw)));
    let status = gw.terminate();
    assert!(status.success(), "{status:?}");
    let report = sim.stop();
    let byes = report
        .lines()
        .find(|l| l.starts_with("byes"))
        .unwrap_or_else(|| panic!("no report: {report}"));
    assert!(byes.contains(" 2 from the platform"), "{report}");
    for v in &mut viewers {
        let _ = v.kill();
        let _ = v.wait();
    }
}
