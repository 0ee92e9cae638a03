//! End to end on the REST API of the real binary: authentication, JSON errors, provisioning,
//! metrics, generated credentials and a clean stop on SIGTERM.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

const DEV: &str = "34020000001320000077";

#[test]
fn api_needs_the_token_and_answers_json_errors() {
    let data = TempDir::new("api");
    let gw = Gateway::start(data.path(), &[]);
    let (status, body) = get_anonymous(&gw.url("/api/v1/devices"));
    assert_eq!(status, 401);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["error"], "missing bearer token");
    assert_eq!(get_anonymous(&gw.url("/healthz")).0, 200);
    let (status, v) = get(&gw.url(&format!("/api/v1/devices/{DEV}")));
    assert_eq!(status, 404);
    assert_eq!(v["error"], "device not found");
    assert_eq!(v["detail"]["device_id"], DEV);
    let (status, v) = get(&gw.url("/api/v1/nothing-here"));
    assert_eq!(status, 404);
    assert!(v["error"].is_string());

    // Provisioning: validation, create, update, clear, delete.
    let url = gw.url(&format!("/api/v1/devices/{DEV}"));
    let (status, v) = put_json(&url, "{\"charset\": \"latin1\"}");
    assert_eq!(status, 400, "{v}");
    assert_eq!(v["error"], "unknown charset");
    let (status, v) = put_json(&url, "{not json");
    assert_eq!(status, 400, "{v}");
    assert_eq!(v["error"], "invalid JSON body");
    let (status, v) = put_json(&url, "{\"colour\": \"red\"}");
    assert_eq!(status, 400, "unknown fields are refused: {v}");
    let (status, v) = put_json(&gw.url("/api/v1/devices/123"), "{}");
    assert_eq!(status, 400, "{v}");
    assert_eq!(v["error"], "invalid device ID");
    let (status, v) = put_json(
        &url,
        "{\"password\": \"s3cret\", \"charset\": \"GB18030\", \"name\": \"北门\"}",
    );
    assert_eq!(status, 201, "{v}");
    assert_eq!(v["name"], "北门");
    assert_eq!(v["charset"], "GB18030");
    assert_eq!(v["has_password"], true);
    assert_eq!(v["online"], false);
    let (status, v) = put_json(&url, "{\"password\": \"\"}");
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["has_password"], false);
    assert_eq!(v["name"], "北门");
    let (_, list) = get(&gw.url("/api/v1/devices"));
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(delete(&url), 204);
    assert_eq!(delete(&url), 404);

    // Metrics are open and name what operators graph.
    let (status, text) = get_anonymous(&gw.url("/metrics"));
    assert_eq!(status, 200);
    for m in ["devices_registered", "devices_online", "devices_known"] {
        assert!(text.contains(m), "{m} in /metrics:\n{text}");
    }
    // Garbage on the SIP port does not hurt the process.
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    for junk in [
        &b"\x00\x01garbage"[..],
        b"REGISTER sip:x SIP/2.0\r\nVia: broken\r\n\r\n",
        &[0xff; 1500],
    ] {
        sock.send_to(junk, gw.sip).unwrap();
    }
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(get_anonymous(&gw.url("/healthz")).0, 200);
    let (_, text) = get_anonymous(&gw.url("/metrics"));
    assert!(text.contains("sip_parse_errors_total"), "{text}");
}

/// Start without password/token flags (debug logging on) and collect the printed banner;
/// the rest of the output keeps arriving on the returned channel.
fn start_plain(
    dir: &std::path::Path,
) -> (
    std::process::Child,
    Vec<String>,
    std::sync::mpsc::Receiver<String>,
) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_gb28181-gateway"))
        .args([
            "--data-dir",
            dir.to_str().unwrap(),
            "--sip-listen",
            "127.0.0.1:0",
            "--http-listen",
            "127.0.0.1:0",
            "--webrtc-udp-port",
            "0",
        ])
        .env("RUST_LOG", "debug")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let out = child.stdout.take().unwrap();
    let err = child.stderr.take().unwrap();
    let tx2 = tx.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    std::thread::spawn(move || {
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            let _ = tx2.send(line);
        }
    });
    let mut lines = Vec::new();
    while let Ok(line) = rx.recv_timeout(Duration::from_secs(30)) {
        let end = line.contains("devices known");
        lines.push(line);
        if end {
            break;
        }
    }
    (child, lines, rx)
}

fn value_after(lines: &[String], prefix: &str) -> Option<String> {
    lines
        .iter()
        .find_map(|l| l.trim().strip_prefix(prefix).map(|v| v.trim().to_owned()))
}

#[test]
fn first_start_generates_credentials_and_sigterm_stops_cleanly() {
    let data = TempDir::new("creds");
    let (mut first, lines, rest) = start_plain(data.path());
    let password = value_after(&lines, "generated SIP device password:").expect("password printed");
    let token = value_after(&lines, "generated API token:").expect("token printed");
    assert!(password.len() >= 8 && token.len() >= 16, "{lines:?}");
    let _ = Command::new("kill")
        .args(["-TERM", &first.id().to_string()])
        .status();
    let status = first.wait().unwrap();
    assert!(status.success(), "clean exit on SIGTERM: {status:?}");
    // Printed once, on the banner: no log line carries them.
    let all: Vec<String> = lines.iter().cloned().chain(rest.iter()).collect();
    assert!(all.len() > lines.len(), "debug logging ran: {all:?}");
    for secret in [&password, &token] {
        let carrying: Vec<&String> = all.iter().filter(|l| l.contains(secret.as_str())).collect();
        assert_eq!(carrying.len(), 1, "{carrying:?}");
        assert!(carrying[0].trim().starts_with("generated "), "{carrying:?}");
    }
    // The second start reuses them and does not print them again.
    let (mut second, lines, _rest) = start_plain(data.path());
    assert!(
        value_after(&lines, "generated API token:").is_none(),
        "{lines:?}"
    );
    let http = value_after(&lines, "HTTP  http://")
        .and_then(|v| v.split('/').next().map(str::to_owned))
        .unwrap();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let status = agent
        .get(&format!("http://{http}/api/v1/devices"))
        .header("Authorization", &format!("Bearer {token}"))
        .call()
        .unwrap()
        .status()
        .as_u16();
    assert_eq!(status, 200, "the stored token is accepted");
    let _ = second.kill();
    let _ = second.wait();
}
