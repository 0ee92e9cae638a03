//! Helpers for end-to-end tests: start the real gateway binary and real peers.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

pub const PLATFORM_ID: &str = "34020000002000000001";
pub const DOMAIN: &str = "3402000000";
pub const PASSWORD: &str = "12345678";
pub const TOKEN: &str = "test-token-0123456789";

/// A temporary directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!(
            "gbgw-{name}-{}-{}",
            std::process::id(),
            Instant::now().elapsed().as_nanos()
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A running `gb28181-gateway`.
pub struct Gateway {
    child: Option<Child>,
    pub sip: SocketAddr,
    pub http: SocketAddr,
    pub output: mpsc::Receiver<String>,
    /// What it printed up to the end of its start-up banner.
    pub banner: Vec<String>,
}

impl Gateway {
    /// Start the gateway on loopback with free ports and the given data dir and extra args.
    pub fn start(data_dir: &Path, extra: &[&str]) -> Gateway {
        Gateway::start_on(data_dir, "127.0.0.1:0", extra)
    }

    /// Start with a given SIP listen address.
    pub fn start_on(data_dir: &Path, sip_listen: &str, extra: &[&str]) -> Gateway {
        Gateway::spawn(Gateway::command(data_dir, sip_listen, extra, None))
    }

    /// Start with the soft open-file limit lowered to `soft` first (as a shell's `ulimit`).
    pub fn start_with_soft_nofile(data_dir: &Path, soft: u32) -> Gateway {
        Gateway::spawn(Gateway::command(data_dir, "127.0.0.1:0", &[], Some(soft)))
    }

    /// Start inside a network namespace on its default settings: every bind a wildcard and
    /// nothing announced by configuration. `sip` and `http` are the namespace's address with
    /// the bound ports.
    pub fn start_in(ns: &Netns, data_dir: &Path, extra: &[&str]) -> Gateway {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &ns.name]);
        Gateway::args(&mut cmd, data_dir, "0.0.0.0:0", "0.0.0.0:0", extra);
        let mut gw = Gateway::spawn(cmd);
        gw.sip = SocketAddr::new(ns.ns_ip.into(), gw.sip.port());
        gw.http = SocketAddr::new(ns.ns_ip.into(), gw.http.port());
        gw
    }

    fn command(data_dir: &Path, sip_listen: &str, extra: &[&str], soft: Option<u32>) -> Command {
        let bin = env!("CARGO_BIN_EXE_gb28181-gateway");
        let mut cmd = match soft {
            Some(n) => {
                let mut c = Command::new("sh");
                c.args(["-c", &format!("ulimit -Sn {n} && exec \"$0\" \"$@\""), bin]);
                c
            }
            None => Command::new(bin),
        };
        Gateway::args(&mut cmd, data_dir, sip_listen, "127.0.0.1:0", extra);
        cmd
    }

    /// The gateway binary (unless `cmd` runs it already) and its arguments.
    fn args(
        cmd: &mut Command,
        data_dir: &Path,
        sip_listen: &str,
        http_listen: &str,
        extra: &[&str],
    ) {
        if cmd.get_program() == "ip" {
            cmd.arg(env!("CARGO_BIN_EXE_gb28181-gateway"));
        }
        cmd.args([
            "--data-dir",
            data_dir.to_str().unwrap(),
            "--sip-listen",
            sip_listen,
            "--http-listen",
            http_listen,
            "--sip-id",
            PLATFORM_ID,
            "--sip-password",
            PASSWORD,
            "--api-token",
            TOKEN,
            "--webrtc-udp-port",
            "0",
        ])
        .args(extra)
        .env(
            "RUST_LOG",
            std::env::var("GW_LOG").unwrap_or_else(|_| "info".into()),
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    }

    fn spawn(mut cmd: Command) -> Gateway {
        let mut child = cmd.spawn().expect("start gb28181-gateway");
        let (tx, rx) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take().unwrap();
        let tx2 = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if std::env::var("GW_LOG").is_ok() {
                    eprintln!("gw: {line}");
                }
                let _ = tx2.send(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        let (mut sip, mut http, mut end) = (None, None, false);
        let mut seen = Vec::new();
        // The banner ends with the data directory.
        while sip.is_none() || http.is_none() || !end {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = rx
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("gateway did not start; output:\n{}", seen.join("\n")));
            if let Some(rest) = line.trim().strip_prefix("SIP   udp+tcp ") {
                sip = rest.split_whitespace().next().and_then(|a| a.parse().ok());
            }
            if let Some(rest) = line.trim().strip_prefix("HTTP  http://") {
                http = rest.split('/').next().and_then(|a| a.parse().ok());
            }
            end |= line.trim().starts_with("data  ");
            seen.push(line);
        }
        Gateway {
            child: Some(child),
            sip: sip.unwrap(),
            http: http.unwrap(),
            output: rx,
            banner: seen,
        }
    }

    /// A handle on a gateway started elsewhere (HTTP only; dropping it stops nothing).
    pub fn attach(http: SocketAddr) -> Gateway {
        let (_, rx) = mpsc::channel();
        Gateway {
            child: None,
            sip: http,
            http,
            output: rx,
            banner: Vec::new(),
        }
    }

    /// The process ID (a gateway this test started).
    pub fn pid(&self) -> u32 {
        self.child
            .as_ref()
            .expect("a gateway this test started")
            .id()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.http, path)
    }

    /// Stop with SIGKILL (an unclean stop).
    pub fn kill(mut self) {
        if let Some(c) = self.child.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Stop with SIGTERM and wait for a clean exit.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let child = self.child.as_mut().expect("a gateway this test started");
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Ok(Some(s)) = child.try_wait() {
                return s;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("gateway did not stop on SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if let Some(c) = self.child.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into()
}

/// GET with the API token; returns (status, JSON body).
pub fn get(url: &str) -> (u16, Value) {
    let mut resp = agent()
        .get(url)
        .header("Authorization", &format!("Bearer {TOKEN}"))
        .call()
        .expect("HTTP GET");
    let status = resp.status().as_u16();
    let body = resp.body_mut().read_json().unwrap_or(Value::Null);
    (status, body)
}

/// GET without a token.
pub fn get_anonymous(url: &str) -> (u16, String) {
    let mut resp = agent().get(url).call().expect("HTTP GET");
    let status = resp.status().as_u16();
    (status, resp.body_mut().read_to_string().unwrap_or_default())
}

/// POST with the API token and an empty body.
pub fn post(url: &str) -> (u16, Value) {
    let mut resp = agent()
        .post(url)
        .header("Authorization", &format!("Bearer {TOKEN}"))
        .send_empty()
        .expect("HTTP POST");
    let status = resp.status().as_u16();
    (status, resp.body_mut().read_json().unwrap_or(Value::Null))
}

/// POST an SDP offer with the API token (a WHEP join); returns (status, JSON body or the
/// answer as a string).
pub fn post_sdp(url: &str, sdp: &str) -> (u16, Value) {
    let mut resp = agent()
        .post(url)
        .header("Authorization", &format!("Bearer {TOKEN}"))
        .header("Content-Type", "application/sdp")
        .send(sdp)
        .expect("HTTP POST");
    let status = resp.status().as_u16();
    let text = resp.body_mut().read_to_string().unwrap_or_default();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// PUT a JSON body with the API token.
pub fn put_json(url: &str, body: &str) -> (u16, Value) {
    let mut resp = agent()
        .put(url)
        .header("Authorization", &format!("Bearer {TOKEN}"))
        .header("Content-Type", "application/json")
        .send(body)
        .expect("HTTP PUT");
    let status = resp.status().as_u16();
    (status, resp.body_mut().read_json().unwrap_or(Value::Null))
}

/// DELETE with the API token.
pub fn delete(url: &str) -> u16 {
    agent()
        .delete(url)
        .header("Authorization", &format!("Bearer {TOKEN}"))
        .call()
        .expect("HTTP DELETE")
        .status()
        .as_u16()
}

/// Poll `f` every 100 ms until it returns Some or `timeout` passes.
pub fn wait_for<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Path of a binary of the examples package (built by `cargo build -p gb28181-examples`).
pub fn example_bin(name: &str) -> PathBuf {
    let exe = PathBuf::from(env!("CARGO_BIN_EXE_gb28181-gateway"));
    let dir = exe.parent().unwrap();
    let p = dir.join(name);
    assert!(
        p.exists(),
        "{} is missing: build it first with `cargo build -p gb28181-examples` (the test script does)",
        p.display()
    );
    p
}

/// `sipp` on PATH, or a clear failure.
pub fn sipp() -> PathBuf {
    for dir in std::env::var("PATH").unwrap_or_default().split(':') {
        let p = Path::new(dir).join("sipp");
        if p.exists() {
            return p;
        }
    }
    panic!("sipp is not installed (Debian package sip-tester); scripts/test-all installs it");
}

/// Run a command, panicking with its output when it fails.
pub fn sh(program: &str, args: &[&str]) {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {}: {}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A network namespace joined to this host by a veth pair with MTU 1500 and every
/// segmentation offload off, so that TCP crosses it in real 1448-byte segments (loopback's
/// 64 KiB MTU never splits a SIP message). Removed on drop. Needs root (CAP_NET_ADMIN),
/// iproute2 and ethtool; `scripts/test-all` installs them.
pub struct Netns {
    pub name: String,
    host_if: String,
    /// This host's address on the link.
    pub host_ip: std::net::Ipv4Addr,
    /// The namespace's address on the link.
    pub ns_ip: std::net::Ipv4Addr,
}

impl Netns {
    /// A namespace for one test; `tag` (0–9) keeps tests of one binary apart.
    pub fn create(tag: u8) -> Netns {
        let id = std::process::id() % 10_000;
        let name = format!("gbt{id}n{tag}");
        let host_if = format!("gbh{id}n{tag}");
        let ns_if = format!("gbn{id}n{tag}");
        let subnet = (id % 250) as u8;
        let host_ip = std::net::Ipv4Addr::new(10, 210 + tag, subnet, 1);
        let ns_ip = std::net::Ipv4Addr::new(10, 210 + tag, subnet, 2);
        let _ = Command::new("ip").args(["netns", "del", &name]).output();
        let _ = Command::new("ip").args(["link", "del", &host_if]).output();
        let add = Command::new("ip")
            .args(["netns", "add", &name])
            .output()
            .expect("ip (iproute2) is needed for the network tests");
        assert!(
            add.status.success(),
            "cannot create a network namespace (run as root, with CAP_NET_ADMIN): {}",
            String::from_utf8_lossy(&add.stderr)
        );
        let ns = Netns {
            name: name.clone(),
            host_if: host_if.clone(),
            host_ip,
            ns_ip,
        };
        sh(
            "ip",
            &[
                "link", "add", &host_if, "mtu", "1500", "type", "veth", "peer", "name", &ns_if,
                "mtu", "1500",
            ],
        );
        sh("ip", &["link", "set", &ns_if, "netns", &name]);
        sh(
            "ip",
            &["addr", "add", &format!("{host_ip}/24"), "dev", &host_if],
        );
        sh("ip", &["link", "set", &host_if, "up"]);
        sh(
            "ip",
            &[
                "-n",
                &name,
                "addr",
                "add",
                &format!("{ns_ip}/24"),
                "dev",
                &ns_if,
            ],
        );
        sh("ip", &["-n", &name, "link", "set", &ns_if, "up"]);
        sh("ip", &["-n", &name, "link", "set", "lo", "up"]);
        // No TSO/GSO/GRO: segments on the wire are what a 1500-byte network carries.
        for (netns, dev) in [(None, &host_if), (Some(&name), &ns_if)] {
            let mut args: Vec<&str> = Vec::new();
            if let Some(n) = netns {
                args.extend(["netns", "exec", n.as_str(), "ethtool"]);
            }
            args.extend(["-K", dev.as_str(), "tso", "off", "gso", "off", "gro", "off"]);
            let (program, args) = if netns.is_some() {
                ("ip", args)
            } else {
                ("ethtool", args)
            };
            sh(program, &args);
        }
        ns
    }

    /// A default route through this host, as a LAN's router would give.
    pub fn default_route(&self) {
        sh(
            "ip",
            &[
                "-n",
                &self.name,
                "route",
                "add",
                "default",
                "via",
                &self.host_ip.to_string(),
            ],
        );
    }

    /// A simulated one-channel NVR (`--first first`) in the namespace, on its address,
    /// streaming `video` to `gw` (plus `extra` arguments); its output is discarded.
    pub fn camera(&self, gw: &Gateway, first: u32, video: &Path, extra: &[&str]) -> Child {
        self.command(&example_bin("gb28181-sim"))
            .args(["--server", &gw.sip.to_string(), "--password", PASSWORD])
            .args(["--local-ip", &self.ns_ip.to_string(), "--kind", "nvr"])
            .args([
                "--channels",
                "1",
                "--first",
                &first.to_string(),
                "--rate",
                "0",
            ])
            .arg("--video")
            .arg(video)
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start gb28181-sim in the namespace")
    }

    /// A command that runs `program` inside the namespace.
    pub fn command(&self, program: &Path) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name]).arg(program);
        c
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["link", "del", &self.host_if])
            .output();
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

/// A Prometheus counter from `/metrics`, summed over the label sets that contain `labels`.
pub fn counter(gw: &Gateway, name: &str, labels: &str) -> f64 {
    let (_, text) = get_anonymous(&gw.url("/metrics"));
    text.lines()
        .filter(|l| l.split(['{', ' ']).next() == Some(name) && l.contains(labels))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// A running `gb28181-sim` against a gateway, killed on drop.
pub struct Sim(pub Child);

impl Sim {
    pub fn start(gw: &Gateway, args: &[&str]) -> Sim {
        let child = Command::new(example_bin("gb28181-sim"))
            .args(["--server", &gw.sip.to_string(), "--password", PASSWORD])
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start gb28181-sim");
        Sim(child)
    }
}

impl Sim {
    /// Like [`Sim::start`], keeping its standard output for [`Sim::stop`].
    pub fn start_piped(gw: &Gateway, args: &[&str]) -> Sim {
        let child = Command::new(example_bin("gb28181-sim"))
            .args(["--server", &gw.sip.to_string(), "--password", PASSWORD])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start gb28181-sim");
        Sim(child)
    }

    /// Stop with SIGTERM and return its report (started with [`Sim::start_piped`]).
    pub fn stop(mut self) -> String {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let mut out = String::new();
        if let Some(mut o) = self.0.stdout.take() {
            let _ = std::io::Read::read_to_string(&mut o, &mut out);
        }
        out
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Start a gateway with a TOML configuration (written into its data directory).
pub fn start_with_config(data_dir: &Path, toml: &str, extra: &[&str]) -> Gateway {
    let config = data_dir.join("gateway-test.toml");
    std::fs::write(&config, toml).unwrap();
    let mut args = vec!["--config", config.to_str().unwrap()];
    args.extend_from_slice(extra);
    Gateway::start(data_dir, &args)
}
