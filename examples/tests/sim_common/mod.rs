//! Test harness for `gb28181-sim` media: a minimal platform (`gb28181::platform::Platform` on
//! `gb28181::net`), the simulator binary as a child process, and a media receiver built from
//! `media` (RTP, RFC 4571 de-framing, reordering, frame assembly, PS demux).

#![allow(dead_code)]

use std::collections::{BTreeSet, HashMap};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use gb28181::net::{Handle, Shell, SipServer};
use gb28181::platform::{
    InviteParams, Platform, PlatformConfig, PlatformEvent, SessionId, subject,
};
use gb28181::sdp::{MediaTransport, PlayAnswer, PlayOffer, SessionDescription};
use media::AccessUnit;
use media::receive::{Received, ReceiverConfig};
use media::rtp::RtpPacket;
use media::tcp::TcpDeframer;
use tokio::io::AsyncReadExt;
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::mpsc;

pub const PLATFORM_ID: &str = "34020000002000000001";
pub const PASSWORD: &str = "12345678";

pub fn clip_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

/// The platform side, in process.
pub struct TestPlatform {
    pub handle: Handle<Platform>,
    pub addr: SocketAddr,
    events: mpsc::UnboundedReceiver<PlatformEvent>,
    backlog: Vec<PlatformEvent>,
}

impl TestPlatform {
    pub async fn start() -> TestPlatform {
        let server = SipServer::bind("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let addr = server.local_addr().unwrap();
        let config = PlatformConfig::new(PLATFORM_ID, "127.0.0.1", addr.port(), PASSWORD);
        let core = Platform::new(config, gb28181::clock::SystemClock);
        let (shell, handle) = Shell::new(server, core);
        let (tx, events) = mpsc::unbounded_channel();
        tokio::spawn(shell.run(move |core: &mut Platform, _| {
            while let Some(ev) = core.poll_event() {
                let _ = tx.send(ev);
            }
        }));
        TestPlatform {
            handle,
            addr,
            events,
            backlog: Vec::new(),
        }
    }

    /// The first event (queued or new) `f` accepts, within `timeout`.
    pub async fn wait<T>(
        &mut self,
        timeout: Duration,
        mut f: impl FnMut(&PlatformEvent) -> Option<T>,
    ) -> Option<T> {
        if let Some(i) = self.backlog.iter().position(|e| f(e).is_some()) {
            let ev = self.backlog.remove(i);
            return f(&ev);
        }
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let ev = tokio::time::timeout_at(deadline, self.events.recv())
                .await
                .ok()??;
            if let Some(t) = f(&ev) {
                return Some(t);
            }
            self.backlog.push(ev);
        }
    }

    /// Waits for `device` to register and for its catalog; returns its channel IDs.
    pub async fn wait_channels(&mut self, device: &str) -> Vec<String> {
        self.wait(Duration::from_secs(15), |e| match e {
            PlatformEvent::Catalog {
                device_id, result, ..
            } if device_id == device => {
                Some(result.items.iter().map(|i| i.device_id.clone()).collect())
            }
            _ => None,
        })
        .await
        .unwrap_or_else(|| panic!("{device} did not register and send its catalog"))
    }

    /// Sends an INVITE with `sdp` to `channel` of `device`.
    pub async fn invite_sdp(&self, device: &str, channel: &str, sdp: String) -> SessionId {
        let params = InviteParams {
            device_id: device.to_owned(),
            channel_id: channel.to_owned(),
            sdp,
            subject: subject(channel, "0200000001", PLATFORM_ID),
        };
        self.handle
            .call(move |p: &mut Platform, now| p.invite(now, params))
            .await
            .unwrap()
            .unwrap()
    }

    /// Sends a live-view offer.
    pub async fn invite(
        &self,
        device: &str,
        channel: &str,
        transport: MediaTransport,
        port: u16,
        ssrc: &str,
    ) -> SessionId {
        let offer = PlayOffer {
            platform_id: PLATFORM_ID.into(),
            address: "127.0.0.1".into(),
            port,
            transport,
            ssrc: ssrc.into(),
            stream_number: Some(0),
        }
        .build();
        self.invite_sdp(device, channel, offer.to_string()).await
    }

    /// The answer SDP of `session`, or the failure status.
    pub async fn answer(&mut self, session: SessionId) -> Result<SessionDescription, Option<u16>> {
        self.wait(Duration::from_secs(10), |e| match e {
            PlatformEvent::CallAnswered { session: s, sdp } if *s == session => Some(Ok(
                SessionDescription::parse_bytes(sdp).expect("answer SDP parses"),
            )),
            PlatformEvent::CallFailed {
                session: s, status, ..
            } if *s == session => Some(Err(*status)),
            _ => None,
        })
        .await
        .expect("no answer to the INVITE")
    }

    pub async fn hangup(&self, session: SessionId) {
        self.handle
            .call(move |p: &mut Platform, now| p.hangup(now, session))
            .await;
    }
}

/// `gb28181-sim` as a child process; its output is collected.
pub struct Sim {
    child: Child,
    stdout: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<Vec<String>>>,
}

fn collect(r: impl std::io::Read + Send + 'static) -> Arc<Mutex<Vec<String>>> {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let out = lines.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(r).lines().map_while(Result::ok) {
            out.lock().unwrap().push(line);
        }
    });
    lines
}

impl Sim {
    pub fn start(platform: SocketAddr, args: &[&str]) -> Sim {
        let mut child = Command::new(env!("CARGO_BIN_EXE_gb28181-sim"))
            .args(["--server", &platform.to_string(), "--password", PASSWORD])
            .args(["--rate", "0", "--keepalive", "30"])
            .args(args)
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start gb28181-sim");
        let stdout = collect(child.stdout.take().unwrap());
        let stderr = collect(child.stderr.take().unwrap());
        Sim {
            child,
            stdout,
            stderr,
        }
    }

    /// Waits up to `timeout` for a log line containing `needle`.
    pub fn wait_log(&self, needle: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self
                .stderr
                .lock()
                .unwrap()
                .iter()
                .any(|l| l.contains(needle))
            {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Everything it wrote to stderr so far (logs), for failure messages.
    pub fn logs(&self) -> String {
        self.stderr.lock().unwrap().join("\n")
    }

    /// Stops it with SIGINT and returns its report (stdout).
    pub fn stop(mut self) -> String {
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // Let the reader threads take the last lines.
        std::thread::sleep(Duration::from_millis(100));
        self.stdout.lock().unwrap().join("\n")
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Where media comes in.
pub enum Socket {
    Udp(UdpSocket),
    Tcp(TcpStream),
}

/// A media receiver: the gateway's pipeline ([`media::receive::Receiver`], taking the first
/// SSRC it hears), with what a test checks.
pub struct Receiver {
    socket: Socket,
    deframer: TcpDeframer,
    rx: Option<media::receive::Receiver>,
    out: Vec<Received>,
    pub ssrcs: BTreeSet<u32>,
    pub payload_types: BTreeSet<u8>,
    pub packets: u64,
    pub bytes: u64,
    pub max_payload: usize,
    pub first_packet: Option<Instant>,
    /// Video access units and when the first packet of each arrived.
    pub video: Vec<(AccessUnit, Instant)>,
    /// First arrival of each RTP timestamp.
    arrivals: HashMap<u32, Instant>,
    pub audio: Vec<AccessUnit>,
    /// The TCP connection was closed by the sender.
    pub closed: bool,
}

impl Receiver {
    pub fn new(socket: Socket) -> Receiver {
        Receiver {
            socket,
            deframer: TcpDeframer::new(),
            rx: None,
            out: Vec::new(),
            ssrcs: BTreeSet::new(),
            payload_types: BTreeSet::new(),
            packets: 0,
            bytes: 0,
            max_payload: 0,
            first_packet: None,
            video: Vec::new(),
            arrivals: HashMap::new(),
            audio: Vec::new(),
            closed: false,
        }
    }

    /// RTP frames (one timestamp) that ended without the marker bit.
    pub fn frames_without_marker(&self) -> u64 {
        self.rx
            .as_ref()
            .map_or(0, |r| r.counters().frames_without_marker)
    }

    /// RTP frames with a sequence gap.
    pub fn incomplete_frames(&self) -> u64 {
        self.rx
            .as_ref()
            .map_or(0, |r| r.counters().incomplete_rtp_frames)
    }

    /// Receives until `done` or `timeout`; true when `done` held.
    pub async fn run_until(&mut self, timeout: Duration, done: impl Fn(&Receiver) -> bool) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut buf = vec![0u8; 65_536];
        while !done(self) {
            if self.closed {
                return false;
            }
            let wait = self
                .rx
                .as_ref()
                .and_then(|r| r.poll_timeout())
                .map(tokio::time::Instant::from_std)
                .map_or(deadline, |t| t.min(deadline));
            let got = match &mut self.socket {
                Socket::Udp(s) => tokio::time::timeout_at(wait, s.recv(&mut buf)).await,
                Socket::Tcp(s) => tokio::time::timeout_at(wait, s.read(&mut buf)).await,
            };
            let now = Instant::now();
            match got {
                Ok(Ok(n)) => self.input(now, &buf[..n]),
                Ok(Err(_)) => self.closed = true,
                Err(_) if tokio::time::Instant::now() >= deadline => return done(self),
                Err(_) => {
                    if let Some(rx) = &mut self.rx {
                        rx.on_timeout(now, &mut self.out);
                    }
                    self.drain(now);
                }
            }
        }
        true
    }

    fn input(&mut self, now: Instant, data: &[u8]) {
        match self.socket {
            Socket::Udp(_) => self.packet(now, Bytes::copy_from_slice(data)),
            Socket::Tcp(_) => {
                if data.is_empty() {
                    // EOF. (The de-framer keeps the very last packet until a successor would
                    // confirm it; the checks never need that one.)
                    self.closed = true;
                    return;
                }
                self.deframer.push(data);
                while let Some(p) = self.deframer.poll() {
                    self.packet(now, p);
                }
            }
        }
        self.drain(now);
    }

    fn packet(&mut self, now: Instant, raw: Bytes) {
        let Ok(p) = RtpPacket::parse(raw.clone()) else {
            return;
        };
        self.first_packet.get_or_insert(now);
        self.packets += 1;
        self.bytes += p.raw().len() as u64;
        self.max_payload = self.max_payload.max(p.payload().len());
        self.ssrcs.insert(p.ssrc());
        self.payload_types.insert(p.payload_type());
        self.arrivals.entry(p.timestamp()).or_insert(now);
        let tcp = matches!(self.socket, Socket::Tcp(_));
        let rx = self.rx.get_or_insert_with(|| {
            // Any source; the SSRC the sender uses is the test's to check (`ssrcs`).
            let cfg = if tcp {
                ReceiverConfig::tcp(p.ssrc(), Vec::new())
            } else {
                ReceiverConfig::udp(p.ssrc(), Vec::new())
            };
            media::receive::Receiver::new(now, cfg)
        });
        rx.on_packet(now, SocketAddr::from(([0, 0, 0, 0], 0)), raw, &mut self.out);
    }

    fn drain(&mut self, now: Instant) {
        for r in self.out.drain(..) {
            let Received::Unit(au) = r else { continue };
            if au.codec.is_video() {
                // PS and RTP share the 90 kHz clock: the RTP timestamp is the PTS.
                let at = au
                    .pts
                    .and_then(|p| self.arrivals.get(&(p as u32)).copied())
                    .unwrap_or(now);
                self.video.push((au, at));
            } else {
                self.audio.push(au);
            }
        }
    }

    /// Packets arriving within `window` (after draining what is in flight for `grace`).
    pub async fn packets_after(&mut self, grace: Duration, window: Duration) -> u64 {
        self.run_until(grace, |_| false).await;
        let before = self.packets;
        self.run_until(window, |_| false).await;
        self.packets - before
    }
}

/// The device answer reduced, with checks every answer must pass.
pub fn check_answer(sd: &SessionDescription, transport: MediaTransport, ssrc: &str) -> PlayAnswer {
    let a = PlayAnswer::from_sdp(sd).expect("usable answer");
    assert_eq!(sd.session_name, "Play");
    assert_eq!(sd.ssrc.as_deref(), Some(ssrc), "y= echoes the offer");
    assert_eq!(a.payload, Some((96, "PS".into())));
    assert_eq!(
        sd.media[0].direction,
        Some(gb28181::sdp::Direction::SendOnly)
    );
    assert_eq!(a.tcp, transport != MediaTransport::Udp);
    let want_setup = match transport {
        MediaTransport::Udp => None,
        MediaTransport::TcpPassive => Some(gb28181::sdp::Setup::Active),
        MediaTransport::TcpActive => Some(gb28181::sdp::Setup::Passive),
    };
    assert_eq!(a.setup, want_setup);
    assert!(
        sd.format.as_deref().is_some_and(|f| f.starts_with("v/")),
        "f= line: {:?}",
        sd.format
    );
    a
}

/// Zero crossings per sample of G.711 A-law audio.
pub fn alaw_crossing_rate(units: &[AccessUnit]) -> f64 {
    let mut pcm = Vec::new();
    for u in units {
        media::codec::g711::decode_alaw(&u.data, &mut pcm);
    }
    let crossings = pcm.windows(2).filter(|w| (w[0] < 0) != (w[1] < 0)).count();
    crossings as f64 / pcm.len().max(1) as f64
}

/// The device ID `gb28181-sim` gives its `n`th IPC.
pub fn ipc_id(n: u32) -> String {
    format!("3402000000132{n:07}")
}

/// Each line with its runs of spaces made one (report columns are padded).
pub fn squash(report: &str) -> String {
    report
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect::<Vec<_>>()
        .join("\n")
}
