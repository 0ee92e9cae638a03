//! `gb28181-sim`: simulated GB/T 28181 devices (IPCs or NVRs with channels) against a
//! platform. They register with digest authentication, send keepalives and answer Catalog
//! (paged, GB2312 names), DeviceInfo and DeviceStatus. It doubles as a load generator:
//! `--devices 10000 --rate 500 --duration 60` prints registrations/s, keepalives/s,
//! failures and latency percentiles at the end.
//!
//! Over UDP the devices share one socket per local address (`--ips N` spreads them over N
//! consecutive addresses, as a real network gives each camera its own); over TCP each device
//! has its own connection, as real devices do, and opens a new one after the platform closes
//! it. Each message is taken from the connection's byte stream whatever the reads' sizes.
//!
//! Live view (GB/T 28181-2022 §9.2): with `--video FILE` (an H.264/H.265 Annex B clip) the
//! channels answer `s=Play` INVITEs and, after the ACK, stream the clip in a loop as PS over
//! RTP: over UDP, over TCP connecting to the platform (`a=setup:passive` offer) or over TCP
//! accepting the platform's connection (`a=setup:active` offer), with an optional G.711 tone
//! (`--audio`). BYE stops a stream; a channel may be played by several calls at once.
//! A key-frame request (`IFrameCmd`/`IFameCmd`) makes the channel's streams jump to the
//! clip's next key frame at once (timestamps stay continuous), as a camera encodes one.
//! `--no-media`, `--wrong-ssrc` and `--media-delay-ms` make the cameras misbehave for tests.
//!
//! ```text
//! gb28181-sim --server 127.0.0.1:5060 --kind nvr --channels 4 \
//!     --video examples/tests/data/testsrc2_h264_main_640x360.h264 --audio pcma
//! ```

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use gb28181::device::{Device, DeviceConfig, DeviceEvent};
use gb28181::manscdp::{Body, CatalogItem, Charset, DeviceInfo};
use gb28181::sip::{Message, Method};
use gb28181::transaction::TimerConfig;
use gb28181::transport::{ConnId, Transport};
use gb28181::ua;
use gb28181_examples::sim::calls::{Calls, MediaOptions, StreamEnded};
use gb28181_examples::sim::es::Clip;
use media::Codec;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::mpsc;

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
enum Kind {
    /// A camera with one channel.
    Ipc,
    /// A recorder with `--channels` channels.
    Nvr,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
enum SipTransport {
    Udp,
    Tcp,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
enum VideoCodec {
    H264,
    H265,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
enum Audio {
    /// G.711 A-law (PS stream type 0x90).
    Pcma,
    /// G.711 µ-law (PS stream type 0x91).
    Pcmu,
}

/// Simulated GB/T 28181 devices and load generator.
#[derive(Debug, Parser)]
#[command(name = "gb28181-sim", version)]
struct Args {
    /// Platform SIP address.
    #[arg(long, default_value = "127.0.0.1:5060")]
    server: SocketAddr,
    /// Platform ID.
    #[arg(long, default_value = "34020000002000000001")]
    server_id: String,
    /// Platform domain (realm); first 10 digits of the platform ID by default.
    #[arg(long)]
    domain: Option<String>,
    /// Device password.
    #[arg(long, default_value = "12345678")]
    password: String,
    /// Number of devices.
    #[arg(long, default_value_t = 1)]
    devices: usize,
    /// Device kind.
    #[arg(long, value_enum, default_value_t = Kind::Ipc)]
    kind: Kind,
    /// Channels per NVR.
    #[arg(long, default_value_t = 4)]
    channels: usize,
    /// First device sequence number (IDs are <domain>1180000001.. for NVRs, …1320000001.. for IPCs).
    #[arg(long, default_value_t = 1)]
    first: u32,
    /// Local address to bind and announce.
    #[arg(long, default_value = "127.0.0.1")]
    local_ip: std::net::IpAddr,
    /// Spread the devices over this many consecutive local addresses from `--local-ip`
    /// (round robin), one SIP socket each. 0 (the default): one address per 100 devices
    /// when `--local-ip` is loopback (which has the whole 127/8), as a real network gives
    /// each camera its own; one address otherwise.
    #[arg(long, default_value_t = 0)]
    ips: u32,
    /// SIP transport.
    #[arg(long, value_enum, default_value_t = SipTransport::Udp)]
    transport: SipTransport,
    /// Registrations started per second (0 = all at once).
    #[arg(long, default_value_t = 200.0)]
    rate: f64,
    /// Stop after this many seconds and print the report (0 = run until Ctrl-C).
    #[arg(long, default_value_t = 0)]
    duration: u64,
    /// Keepalive interval in seconds.
    #[arg(long, default_value_t = 60)]
    keepalive: u64,
    /// Registration lifetime in seconds.
    #[arg(long, default_value_t = 3600)]
    expires: u64,
    /// Catalog items per Response message.
    #[arg(long, default_value_t = 4)]
    page_size: usize,
    /// `X-GB-ver` to send: 2.0 (2016) or 3.0 (2022).
    #[arg(long, default_value = "2.0")]
    gb_version: String,
    /// Delay before retrying a failed registration, in seconds.
    #[arg(long, default_value_t = 5)]
    register_retry: u64,
    /// H.264/H.265 Annex B clip to stream on INVITE, looped (without it INVITEs get 488).
    #[arg(long, value_name = "FILE")]
    video: Option<std::path::PathBuf>,
    /// Codec of `--video` (default: from the extension, else sniffed).
    #[arg(long, value_enum)]
    codec: Option<VideoCodec>,
    /// Frame rate the clip is paced at.
    #[arg(long, default_value_t = 25.0)]
    fps: f64,
    /// Add a 440 Hz G.711 tone to the PS, 40 ms per frame.
    #[arg(long, value_enum)]
    audio: Option<Audio>,
    /// Answer INVITEs but never send media.
    #[arg(long)]
    no_media: bool,
    /// Send RTP with another SSRC than the offer's y= (the answer still echoes y=).
    #[arg(long)]
    wrong_ssrc: bool,
    /// Wait this long after the ACK before the first media packet.
    #[arg(long, default_value_t = 0)]
    media_delay_ms: u64,
    /// TCP media connection attempts when the platform listens (1 + retries; the standard
    /// asks for at least 3 retries).
    #[arg(long, default_value_t = 4)]
    connect_attempts: u32,
    /// Pause between TCP media connection attempts, in milliseconds (the standard: ≥ 1 s).
    #[arg(long, default_value_t = 1000)]
    connect_interval_ms: u64,
    /// How long to wait for the platform to connect when it asked to (`a=setup:active`), in
    /// seconds.
    #[arg(long, default_value_t = 20)]
    accept_timeout: u64,
}

fn device_id(domain: &str, kind: Kind, n: u32) -> String {
    let ty = match kind {
        Kind::Ipc => "132",
        Kind::Nvr => "118",
    };
    format!("{domain}{ty}{:07}", n)
}

/// Channel `c` (0-based) of device number `n` (1-based) with `per_device` channels: type 131
/// (camera) and a sequence number unique among all devices of one run.
fn channel_id(domain: &str, n: u32, per_device: usize, c: usize) -> Option<String> {
    let seq = u64::from(n.checked_sub(1)?) * per_device as u64 + c as u64 + 1;
    (seq <= 9_999_999).then(|| format!("{domain}131{seq:07}"))
}

fn catalog(domain: &str, id: &str, n: u32, kind: Kind, channels: usize) -> Vec<CatalogItem> {
    let count = channels_per_device(kind, channels);
    (0..count)
        .filter_map(|c| {
            let ch_id = channel_id(domain, n, count, c)?;
            let mut item = CatalogItem::channel(ch_id, format!("大门口摄像机{}", c + 1), id);
            item.manufacturer = Some("gb28181-rs".into());
            item.model = Some("SIM-CAM".into());
            item.address = Some(format!("一号楼{}层", c + 1));
            Some(item)
        })
        .collect()
}

fn channels_per_device(kind: Kind, channels: usize) -> usize {
    if kind == Kind::Ipc { 1 } else { channels }
}

#[derive(Default)]
struct Report {
    registered: u64,
    register_failures: u64,
    keepalives_ok: u64,
    keepalive_failures: u64,
    queries: u64,
    register_latency: Vec<Duration>,
    keepalive_latency: Vec<Duration>,
}

fn percentile(v: &mut [Duration], p: f64) -> Duration {
    if v.is_empty() {
        return Duration::ZERO;
    }
    v.sort_unstable();
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i.min(v.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

enum Net {
    /// A datagram on socket `.0`.
    Udp(usize, SocketAddr, Bytes),
    /// Bytes on device `.0`'s connection of generation `.1`.
    Tcp(usize, u64, Bytes),
    /// Device `.0`'s connection of generation `.1` closed.
    TcpClosed(usize, u64),
    /// A new connection for device `.0`.
    TcpConnected(usize, TcpStream),
}

use bytes::Bytes;

struct Sim {
    devices: Vec<Device>,
    /// The UDP socket of each device.
    socket_of: Vec<usize>,
    /// Generation of each device's TCP connection (events of older ones are stale).
    generation: Vec<u64>,
    /// Device and channel IDs to the device index.
    by_id: HashMap<String, usize>,
    timers: BinaryHeap<Reverse<(Instant, usize)>>,
    report: Report,
    calls: Calls,
}

impl Sim {
    fn schedule(&mut self, i: usize) {
        if let Some(t) = self.devices[i].poll_timeout() {
            self.timers.push(Reverse((t, i)));
        }
    }

    fn collect(&mut self, i: usize) {
        while let Some(ev) = self.devices[i].poll_event() {
            match ev {
                DeviceEvent::Registered { latency, .. } => {
                    self.report.registered += 1;
                    self.report.register_latency.push(latency);
                }
                DeviceEvent::RegisterFailed { .. } => self.report.register_failures += 1,
                DeviceEvent::KeepaliveOk { latency } => {
                    self.report.keepalives_ok += 1;
                    self.report.keepalive_latency.push(latency);
                }
                DeviceEvent::KeepaliveFailed { .. } => self.report.keepalive_failures += 1,
                DeviceEvent::QueryAnswered { .. } => self.report.queries += 1,
                DeviceEvent::Request { key, request } => {
                    self.calls
                        .on_request(Instant::now(), i, &mut self.devices[i], key, &request);
                }
                DeviceEvent::Ack(request) => self.calls.on_ack(i, &request),
                DeviceEvent::Message(m) => {
                    if let Body::DeviceControl(c) = &m.body
                        && c.iframe_cmd.is_some()
                    {
                        let id = self.devices[i].config().id.clone();
                        let n = self.calls.keyframe_requested(i, &id, &m.device_id);
                        tracing::info!(target_id = %m.device_id, streams = n, "key frame requested (IFrameCmd)");
                    }
                }
                DeviceEvent::Unregistered => {}
                _ => {}
            }
        }
    }

    /// The device a message from the platform is for: the To user of requests (the device or
    /// one of its channels), the From user of responses.
    fn target(&self, msg: &Message) -> Option<usize> {
        let user = match msg {
            Message::Request(r) => r
                .headers
                .to()
                .ok()
                .and_then(|t| ua::uri_user(&t.uri).map(str::to_owned)),
            Message::Response(r) => r
                .headers
                .from()
                .ok()
                .and_then(|f| ua::uri_user(&f.uri).map(str::to_owned)),
        }?;
        self.by_id.get(&user).copied()
    }
}

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        // Logs on stderr; stdout carries the banner and the report.
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let args = Args::parse();
    if !(args.fps.is_finite() && args.fps > 0.0 && args.fps <= 240.0) {
        eprintln!("error: --fps must be in (0, 240]");
        std::process::exit(2);
    }
    if let Err(e) = run(args).await {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

async fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let domain = args.domain.clone().unwrap_or_else(|| {
        args.server_id
            .get(..10)
            .unwrap_or(&args.server_id)
            .to_owned()
    });
    let clip = match &args.video {
        Some(path) => {
            let codec = args.codec.map(|c| match c {
                VideoCodec::H264 => Codec::H264,
                VideoCodec::H265 => Codec::H265,
            });
            let clip = Clip::open(path, codec)?;
            println!(
                "gb28181-sim: {} {} {}x{}, {} frames ({} key), {} bytes per loop at {} fps",
                path.display(),
                clip.codec.name(),
                clip.width.unwrap_or(0),
                clip.height.unwrap_or(0),
                clip.units.len(),
                clip.keyframes(),
                clip.len_bytes(),
                args.fps
            );
            if clip.skipped_leading > 0 || clip.parameter_sets_added > 0 {
                eprintln!(
                    "{}: {} frame(s) before the first key frame dropped, parameter sets added to {} key frame(s)",
                    path.display(),
                    clip.skipped_leading,
                    clip.parameter_sets_added
                );
            }
            Some(Arc::new(clip))
        }
        None => None,
    };
    let (ended_tx, mut ended_rx) = mpsc::unbounded_channel::<StreamEnded>();
    let media = MediaOptions {
        clip,
        fps: args.fps,
        audio: args.audio.map(|a| match a {
            Audio::Pcma => Codec::G711A,
            Audio::Pcmu => Codec::G711U,
        }),
        no_media: args.no_media,
        wrong_ssrc: args.wrong_ssrc,
        media_delay: Duration::from_millis(args.media_delay_ms),
        local_ip: args.local_ip,
        connect_attempts: args.connect_attempts.max(1),
        connect_interval: Duration::from_millis(args.connect_interval_ms),
        accept_timeout: Duration::from_secs(args.accept_timeout.max(1)),
    };
    let ips = match args.ips {
        0 if args.local_ip.is_loopback() => args.devices.div_ceil(100).max(1) as u32,
        0 => 1,
        n => n,
    };
    let mut sockets = Vec::with_capacity(ips as usize);
    let (net_tx, mut net_rx) = mpsc::channel::<Net>(65_536);
    for k in 0..ips {
        let ip = nth_ip(args.local_ip, k)?;
        let udp = Arc::new(bind_sip_udp(SocketAddr::new(ip, 0))?);
        let rx = udp.clone();
        let tx = net_tx.clone();
        let index = sockets.len();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 65_536];
            while let Ok((n, from)) = rx.recv_from(&mut buf).await {
                let data = Bytes::copy_from_slice(&buf[..n]);
                if tx.send(Net::Udp(index, from, data)).await.is_err() {
                    return;
                }
            }
        });
        sockets.push(udp);
    }
    let mut writers: HashMap<usize, mpsc::UnboundedSender<Bytes>> = HashMap::new();

    let mut sim = Sim {
        devices: Vec::with_capacity(args.devices),
        socket_of: Vec::with_capacity(args.devices),
        generation: vec![0; args.devices],
        by_id: HashMap::new(),
        timers: BinaryHeap::new(),
        report: Report::default(),
        calls: Calls::new(media, ended_tx),
    };
    for n in 0..args.devices {
        let number = args.first + n as u32;
        let id = device_id(&domain, args.kind, number);
        let socket = n % sockets.len();
        let local = sockets[socket].local_addr()?;
        let cfg = DeviceConfig {
            server_id: args.server_id.clone(),
            server_domain: domain.clone(),
            server: args.server,
            local_host: local.ip().to_string(),
            local_port: local.port(),
            password: args.password.clone(),
            expires: Duration::from_secs(args.expires),
            keepalive_interval: Duration::from_secs(args.keepalive.max(1)),
            keepalive_max_missed: 3,
            register_retry: Duration::from_secs(args.register_retry.max(1)),
            gb_version: Some(args.gb_version.clone()),
            charset: Charset::Gb2312,
            info: DeviceInfo {
                device_name: Some(format!("模拟设备{}", n + 1)),
                result: Some("OK".into()),
                manufacturer: Some("gb28181-rs".into()),
                model: Some(match args.kind {
                    Kind::Ipc => "SIM-IPC".into(),
                    Kind::Nvr => "SIM-NVR".into(),
                }),
                firmware: Some(env!("CARGO_PKG_VERSION").into()),
                channel: Some(channels_per_device(args.kind, args.channels) as u32),
                ..DeviceInfo::default()
            },
            channels: catalog(&domain, &id, number, args.kind, args.channels),
            catalog_page_size: args.page_size.max(1),
            user_agent: "gb28181-sim".into(),
            timers: TimerConfig::default(),
            id: id.clone(),
        };
        if cfg.channels.len() != channels_per_device(args.kind, args.channels) {
            return Err(format!("device number {number}: channel numbers run past 9999999").into());
        }
        let transport = match args.transport {
            SipTransport::Udp => Transport::Udp,
            SipTransport::Tcp => {
                let stream = TcpStream::connect(args.server).await?;
                writers.insert(n, spawn_connection(n, 0, stream, net_tx.clone())?);
                Transport::Tcp(ConnId(n as u64))
            }
        };
        for item in &cfg.channels {
            if sim.by_id.insert(item.device_id.clone(), n).is_some() {
                return Err(format!("channel ID {} is used twice", item.device_id).into());
            }
        }
        if sim.by_id.insert(id.clone(), n).is_some() {
            return Err(format!("device ID {id} is used twice").into());
        }
        sim.devices.push(Device::new(cfg, transport));
        sim.socket_of.push(socket);
    }

    let started = Instant::now();
    let stop_at = (args.duration > 0).then(|| started + Duration::from_secs(args.duration));
    let interval = if args.rate > 0.0 {
        Duration::from_secs_f64(1.0 / args.rate)
    } else {
        Duration::ZERO
    };
    let mut next_start = 0usize;
    let mut report_at = started + Duration::from_secs(5);
    println!(
        "gb28181-sim: {} {:?} device(s) over {:?} to {} (platform {})",
        args.devices, args.kind, args.transport, args.server, args.server_id
    );
    let mut terminate = Terminate::new()?;
    loop {
        let now = Instant::now();
        // Start devices at the configured rate.
        while next_start < sim.devices.len() && started + interval * next_start as u32 <= now {
            sim.devices[next_start].start(now);
            flush(&mut sim, next_start, &sockets, &mut writers).await;
            next_start += 1;
        }
        // Fire due timers.
        while let Some(Reverse((t, i))) = sim.timers.peek().copied() {
            if t > now {
                break;
            }
            sim.timers.pop();
            if sim.devices[i].poll_timeout().is_some_and(|d| d <= now) {
                sim.devices[i].handle_timeout(now);
                flush(&mut sim, i, &sockets, &mut writers).await;
            }
        }
        if stop_at.is_some_and(|t| now >= t) {
            break;
        }
        sim.calls.expire(now);
        if now >= report_at {
            report_at = now + Duration::from_secs(5);
            eprintln!(
                "[{:>5.1}s] registered {} / {}, keepalives {}, failures {}, calls {}, streams {}",
                now.duration_since(started).as_secs_f64(),
                sim.report.registered,
                args.devices,
                sim.report.keepalives_ok,
                sim.report.register_failures + sim.report.keepalive_failures,
                sim.calls.len(),
                sim.calls.media_stats().live()
            );
        }
        let mut wake = sim
            .timers
            .peek()
            .map(|Reverse((t, _))| *t)
            .unwrap_or(now + Duration::from_secs(1));
        if next_start < sim.devices.len() {
            wake = wake.min(started + interval * next_start as u32);
        }
        if let Some(s) = stop_at {
            wake = wake.min(s);
        }
        wake = wake.min(report_at);
        tokio::select! {
            Some(ev) = net_rx.recv() => {
                let now = Instant::now();
                match ev {
                    Net::Udp(socket, from, data) => {
                        deliver_datagram(&mut sim, &data, from, &sockets, &mut writers).await;
                        // Take what else is queued without waiting.
                        for _ in 0..256 {
                            match net_rx.try_recv() {
                                Ok(Net::Udp(_, from, data)) => {
                                    deliver_datagram(&mut sim, &data, from, &sockets, &mut writers).await
                                }
                                Ok(other) => {
                                    on_net(&mut sim, other, &args, &sockets, &mut writers, &net_tx).await;
                                    break;
                                }
                                Err(_) => break,
                            }
                        }
                        let _ = socket;
                    }
                    other => {
                        let _ = now;
                        on_net(&mut sim, other, &args, &sockets, &mut writers, &net_tx).await;
                    }
                }
            }
            Some(ended) = ended_rx.recv() => {
                let i = ended.device;
                if i < sim.devices.len()
                    && sim.calls.on_stream_ended(Instant::now(), &mut sim.devices[i], &ended)
                {
                    flush(&mut sim, i, &sockets, &mut writers).await;
                }
            }
            _ = tokio::time::sleep_until(wake.into()) => {}
            () = terminate.recv() => break,
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let r = &mut sim.report;
    println!("--- gb28181-sim report ({elapsed:.1} s) ---");
    println!("devices            {}", args.devices);
    println!(
        "registrations      {} ok, {} failed, {:.1}/s",
        r.registered,
        r.register_failures,
        r.registered as f64 / elapsed
    );
    println!(
        "keepalives         {} ok, {} failed, {:.1}/s",
        r.keepalives_ok,
        r.keepalive_failures,
        r.keepalives_ok as f64 / elapsed
    );
    println!("queries answered   {}", r.queries);
    let c = sim.calls.call_stats();
    println!(
        "invites            {} answered, {} refused, {} acked, {} without ACK",
        c.invites_answered, c.invites_refused, c.acks, c.ack_timeouts
    );
    println!(
        "byes               {} from the platform, {} sent",
        c.byes_received, c.byes_sent
    );
    println!("key-frame requests {}", c.keyframe_requests);
    let m = sim.calls.media_stats();
    for (name, t) in [
        ("media udp", &m.udp),
        ("media tcp-passive", &m.tcp_passive),
        ("media tcp-active", &m.tcp_active),
    ] {
        println!("{name:<18} {t}");
    }
    let mut reg = std::mem::take(&mut r.register_latency);
    let mut ka = std::mem::take(&mut r.keepalive_latency);
    for (name, v) in [
        ("register latency", &mut reg),
        ("keepalive latency", &mut ka),
    ] {
        println!(
            "{name:<18} p50 {}  p90 {}  p99 {}  max {}",
            ms(percentile(v, 0.5)),
            ms(percentile(v, 0.9)),
            ms(percentile(v, 0.99)),
            ms(percentile(v, 1.0))
        );
    }
    Ok(())
}

/// SIGTERM or SIGINT (Unix): stop and print the report. The listeners live as long as the
/// loop: a `ctrl_c()` future made anew each iteration misses a signal that arrives while the
/// loop is busy, and the simulator would never stop.
struct Terminate {
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
}

impl Terminate {
    fn new() -> std::io::Result<Terminate> {
        #[cfg(unix)]
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Terminate {
            #[cfg(unix)]
            term: signal(SignalKind::terminate())?,
            #[cfg(unix)]
            int: signal(SignalKind::interrupt())?,
        })
    }

    async fn recv(&mut self) {
        #[cfg(unix)]
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.int.recv() => {}
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// A TCP event for a device.
async fn on_net(
    sim: &mut Sim,
    ev: Net,
    args: &Args,
    sockets: &[Arc<UdpSocket>],
    writers: &mut HashMap<usize, mpsc::UnboundedSender<Bytes>>,
    net_tx: &mpsc::Sender<Net>,
) {
    let now = Instant::now();
    match ev {
        Net::Udp(_, from, data) => deliver_datagram(sim, &data, from, sockets, writers).await,
        Net::Tcp(i, generation, data) if sim.generation[i] == generation => {
            sim.devices[i].handle_stream(now, ConnId(i as u64), args.server, &data);
            flush(sim, i, sockets, writers).await;
        }
        Net::TcpClosed(i, generation) if sim.generation[i] == generation => {
            eprintln!("device {i}: connection closed by the platform; reconnecting");
            writers.remove(&i);
            sim.devices[i].handle_connection_closed(now);
            flush(sim, i, sockets, writers).await;
            // A real device opens a new connection after its retry delay.
            let (server, delay, tx) = (
                args.server,
                Duration::from_secs(args.register_retry.max(1)),
                net_tx.clone(),
            );
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(delay).await;
                    if let Ok(stream) = TcpStream::connect(server).await {
                        let _ = tx.send(Net::TcpConnected(i, stream)).await;
                        return;
                    }
                }
            });
        }
        Net::TcpConnected(i, stream) => {
            sim.generation[i] += 1;
            match spawn_connection(i, sim.generation[i], stream, net_tx.clone()) {
                Ok(w) => {
                    writers.insert(i, w);
                    sim.devices[i].set_transport(Transport::Tcp(ConnId(i as u64)));
                    sim.devices[i].start(now);
                    flush(sim, i, sockets, writers).await;
                }
                Err(e) => eprintln!("device {i}: {e}"),
            }
        }
        Net::Tcp(..) | Net::TcpClosed(..) => {}
    }
}

/// Reader and writer tasks of device `i`'s platform connection.
fn spawn_connection(
    i: usize,
    generation: u64,
    stream: TcpStream,
    tx: mpsc::Sender<Net>,
) -> std::io::Result<mpsc::UnboundedSender<Bytes>> {
    stream.set_nodelay(true)?;
    let (mut rd, mut wr) = stream.into_split();
    let (wtx, mut wrx) = mpsc::unbounded_channel::<Bytes>();
    tokio::spawn(async move {
        while let Some(b) = wrx.recv().await {
            if wr.write_all(&b).await.is_err() {
                break;
            }
        }
    });
    tokio::spawn(async move {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            match rd.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(k) => {
                    let data = Bytes::copy_from_slice(&buf[..k]);
                    if tx.send(Net::Tcp(i, generation, data)).await.is_err() {
                        return;
                    }
                }
            }
        }
        let _ = tx.send(Net::TcpClosed(i, generation)).await;
    });
    Ok(wtx)
}

/// The `k`-th address after `base` (IPv4 and IPv6).
fn nth_ip(base: std::net::IpAddr, k: u32) -> std::io::Result<std::net::IpAddr> {
    use std::net::IpAddr;
    let bad = || std::io::Error::other(format!("--ips runs past the address space from {base}"));
    Ok(match base {
        IpAddr::V4(a) => IpAddr::V4(u32::from(a).checked_add(k).ok_or_else(bad)?.into()),
        IpAddr::V6(a) => IpAddr::V6(
            u128::from(a)
                .checked_add(u128::from(k))
                .ok_or_else(bad)?
                .into(),
        ),
    })
}

async fn deliver_datagram(
    sim: &mut Sim,
    data: &[u8],
    from: SocketAddr,
    sockets: &[Arc<UdpSocket>],
    writers: &mut HashMap<usize, mpsc::UnboundedSender<Bytes>>,
) {
    let Ok(msg) = Message::parse(data) else {
        return;
    };
    // An INVITE for an ID none of us has still deserves an answer (404): the first device
    // gives it.
    let unknown_invite = matches!(&msg, Message::Request(r) if r.method == Method::Invite);
    let Some(i) = sim
        .target(&msg)
        .or((unknown_invite && !sim.devices.is_empty()).then_some(0))
    else {
        return;
    };
    sim.devices[i].handle_message(Instant::now(), msg, Transport::Udp, from);
    flush(sim, i, sockets, writers).await;
}

async fn flush(
    sim: &mut Sim,
    i: usize,
    sockets: &[Arc<UdpSocket>],
    writers: &mut HashMap<usize, mpsc::UnboundedSender<Bytes>>,
) {
    send_all(sim, i, sockets, writers).await;
    sim.collect(i);
    // Responses produced while collecting events.
    send_all(sim, i, sockets, writers).await;
    if sim.devices[i].poll_close().is_some() {
        // Dropping the writer closes the connection; the reader then reports it closed.
        writers.remove(&i);
    }
    sim.schedule(i);
}

async fn send_all(
    sim: &mut Sim,
    i: usize,
    sockets: &[Arc<UdpSocket>],
    writers: &HashMap<usize, mpsc::UnboundedSender<Bytes>>,
) {
    let udp = &sockets[sim.socket_of[i]];
    while let Some(t) = sim.devices[i].poll_transmit() {
        match t.transport {
            Transport::Udp => {
                let _ = udp.send_to(&t.payload, t.remote).await;
            }
            Transport::Tcp(_) => {
                if let Some(w) = writers.get(&i) {
                    let _ = w.send(t.payload);
                }
            }
        }
    }
}

/// The devices' shared SIP socket, with a receive buffer large enough for the platform's
/// bursts of answers and queries to thousands of devices (capped by `net.core.rmem_max`).
fn bind_sip_udp(addr: SocketAddr) -> std::io::Result<UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    let _ = socket.set_recv_buffer_size(8 << 20);
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    UdpSocket::from_std(socket.into())
}
