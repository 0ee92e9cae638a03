//! The streaming task of one answered INVITE: sets up the transport the offer asked for,
//! then sends a [`MediaSource`] paced in real time until told to stop or the platform goes
//! away (GB/T 28181-2022 §9.2, Annex C; RFC 4571 for TCP).
//!
//! - UDP: RTP datagrams from a socket of our own to the offer's address and port.
//! - TCP, the platform listens (`a=setup:passive` offer): we connect to its address and port,
//!   retrying ([`StreamSpec::connect_attempts`], [`StreamSpec::connect_interval`] apart: the
//!   standard asks for at least 3 retries at least 1 s apart).
//! - TCP, the platform connects (`a=setup:active` offer): we accept one connection on the
//!   port we answered.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use gb28181::sdp::MediaTransport;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream, UdpSocket};
use tokio::sync::oneshot;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::source::MediaSource;
use super::stats::{MediaStats, TransportStats};

/// How far behind schedule the sender may fall (a blocked TCP write) before it stops trying
/// to catch up and starts the schedule afresh.
const MAX_LAG: Duration = Duration::from_secs(1);

/// The transport, set up (sockets bound) when the INVITE is answered so that the answer can
/// carry our port.
#[derive(Debug)]
pub enum Plan {
    /// Send datagrams from `socket` to `dest`.
    Udp {
        /// Our socket (its port is in the answer).
        socket: UdpSocket,
        /// The offer's address and port.
        dest: SocketAddr,
    },
    /// Connect from `local` (bound, its port in the answer) to `dest`.
    TcpConnect {
        /// Our bound, unconnected socket.
        socket: TcpSocket,
        /// Its address.
        local: SocketAddr,
        /// The platform's listening address.
        dest: SocketAddr,
    },
    /// Accept one connection on `listener` (its port is in the answer).
    TcpAccept {
        /// Our listener.
        listener: TcpListener,
    },
}

impl Plan {
    /// Binds what the offer needs on `ip`: a UDP socket, a TCP socket to connect from, or a
    /// listener. Returns the plan and the port to answer.
    pub fn bind(
        transport: MediaTransport,
        ip: std::net::IpAddr,
        dest: SocketAddr,
    ) -> io::Result<(Plan, u16)> {
        let any = SocketAddr::new(ip, 0);
        match transport {
            MediaTransport::Udp => {
                let socket = std::net::UdpSocket::bind(any)?;
                socket.set_nonblocking(true)?;
                let port = socket.local_addr()?.port();
                let socket = UdpSocket::from_std(socket)?;
                Ok((Plan::Udp { socket, dest }, port))
            }
            MediaTransport::TcpPassive => {
                let socket = new_tcp_socket(any)?;
                socket.bind(any)?;
                let local = socket.local_addr()?;
                Ok((
                    Plan::TcpConnect {
                        socket,
                        local,
                        dest,
                    },
                    local.port(),
                ))
            }
            MediaTransport::TcpActive => {
                let listener = std::net::TcpListener::bind(any)?;
                listener.set_nonblocking(true)?;
                let port = listener.local_addr()?.port();
                Ok((
                    Plan::TcpAccept {
                        listener: TcpListener::from_std(listener)?,
                    },
                    port,
                ))
            }
        }
    }
}

fn new_tcp_socket(addr: SocketAddr) -> io::Result<TcpSocket> {
    if addr.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
}

/// Everything one streaming task needs.
#[derive(Debug)]
pub struct StreamSpec {
    /// For logs: channel and Call-ID.
    pub label: String,
    /// Transport mode (for the counters).
    pub transport: MediaTransport,
    /// The sockets.
    pub plan: Plan,
    /// What to send; `None` = `--no-media` (answer, never send).
    pub source: Option<MediaSource>,
    /// Wait this long after the ACK (and the connection) before the first packet.
    pub delay: Duration,
    /// Connection attempts when we connect (first try included).
    pub connect_attempts: u32,
    /// Pause between connection attempts.
    pub connect_interval: Duration,
    /// How long to wait for the platform to connect when we listen.
    pub accept_timeout: Duration,
    /// Shared counters.
    pub stats: Arc<MediaStats>,
    /// Set when the platform asks for a key frame (IFrameCmd).
    pub keyframe: Arc<AtomicBool>,
}

/// Why a stream ended.
#[derive(Debug)]
pub enum StreamEnd {
    /// Told to stop (BYE from the platform, shutdown).
    Stopped,
    /// We could not connect to the platform.
    ConnectFailed(io::Error),
    /// The platform did not connect to us in time.
    AcceptTimeout,
    /// The platform closed the media connection.
    PeerClosed,
    /// Sending failed.
    SendFailed(io::Error),
}

impl StreamEnd {
    /// True when the platform did not end the call itself: the camera should send BYE.
    pub fn needs_bye(&self) -> bool {
        !matches!(self, StreamEnd::Stopped)
    }
}

/// Runs a stream until `stop` fires (or its sender is dropped) or the transport fails.
pub async fn run(spec: StreamSpec, stop: oneshot::Receiver<()>) -> StreamEnd {
    let stats = spec.stats.clone();
    let counters = stats.of(spec.transport);
    TransportStats::add(&counters.streams, 1);
    TransportStats::add(&counters.live, 1);
    let label = spec.label.clone();
    let end = tokio::select! {
        _ = stop => StreamEnd::Stopped,
        end = serve(spec, counters) => end,
    };
    counters
        .live
        .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    match &end {
        StreamEnd::Stopped => debug!(%label, "stream stopped"),
        StreamEnd::ConnectFailed(_) | StreamEnd::AcceptTimeout => {
            TransportStats::add(&counters.connect_failures, 1);
            warn!(%label, ?end, "media connection not established");
        }
        StreamEnd::PeerClosed | StreamEnd::SendFailed(_) => {
            TransportStats::add(&counters.broken, 1);
            info!(%label, ?end, "stream ended");
        }
    }
    end
}

enum Sink {
    Udp(UdpSocket, SocketAddr),
    Tcp(TcpStream),
    /// `--no-media` with nothing to hold open.
    Idle,
}

async fn serve(spec: StreamSpec, counters: &TransportStats) -> StreamEnd {
    let no_media = spec.source.is_none();
    let sink = match spec.plan {
        Plan::Udp { socket, dest } => Sink::Udp(socket, dest),
        Plan::TcpConnect { .. } if no_media => Sink::Idle,
        Plan::TcpConnect {
            socket,
            local,
            dest,
        } => match connect(
            socket,
            local,
            dest,
            spec.connect_attempts,
            spec.connect_interval,
            &spec.label,
        )
        .await
        {
            Ok(s) => Sink::Tcp(s),
            Err(e) => return StreamEnd::ConnectFailed(e),
        },
        Plan::TcpAccept { listener } => {
            match tokio::time::timeout(spec.accept_timeout, listener.accept()).await {
                Ok(Ok((s, from))) => {
                    debug!(label = %spec.label, %from, "platform connected");
                    let _ = s.set_nodelay(true);
                    Sink::Tcp(s)
                }
                Ok(Err(e)) => return StreamEnd::ConnectFailed(e),
                Err(_) => return StreamEnd::AcceptTimeout,
            }
        }
    };
    let Some(mut source) = spec.source else {
        // Hold the call (and any connection) until BYE; notice the platform hanging up.
        return match sink {
            Sink::Tcp(s) => wait_closed(s).await,
            _ => std::future::pending().await,
        };
    };
    if !spec.delay.is_zero() {
        tokio::time::sleep(spec.delay).await;
    }
    match sink {
        Sink::Udp(socket, dest) => {
            let mut start = Instant::now();
            let mut warned = false;
            loop {
                pace(&mut start, source.next_due()).await;
                forced_keyframe(&spec.keyframe, &mut source, &spec.label);
                let burst = source.next_burst();
                let mut bytes = 0;
                let n = burst.packets.len() as u64;
                for p in burst.packets {
                    bytes += p.len() as u64;
                    if let Err(e) = socket.send_to(&p, dest).await
                        && !std::mem::replace(&mut warned, true)
                    {
                        // ICMP errors and full buffers: a camera keeps sending.
                        warn!(label = %spec.label, %dest, error = %e, "UDP send failed (logged once)");
                    }
                }
                count(counters, burst.video, n, bytes);
            }
        }
        Sink::Tcp(stream) => {
            let (mut rd, mut wr) = stream.into_split();
            let mut start = Instant::now();
            let mut scratch = [0u8; 512];
            loop {
                let due = source.next_due();
                // While waiting, notice the platform closing the connection.
                tokio::select! {
                    () = pace(&mut start, due) => {}
                    r = rd.read(&mut scratch) => match r {
                        Ok(0) => return StreamEnd::PeerClosed,
                        Ok(_) => continue, // RTCP or anything else: ignored
                        Err(e) => return StreamEnd::SendFailed(e),
                    },
                }
                forced_keyframe(&spec.keyframe, &mut source, &spec.label);
                let burst = source.next_burst();
                let wire = burst.packets.wire();
                if let Err(e) = wr.write_all(wire).await {
                    return match e.kind() {
                        io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset => {
                            StreamEnd::PeerClosed
                        }
                        _ => StreamEnd::SendFailed(e),
                    };
                }
                count(
                    counters,
                    burst.video,
                    burst.packets.len() as u64,
                    wire.len() as u64,
                );
            }
        }
        Sink::Idle => std::future::pending().await,
    }
}

/// A key frame asked for: jump to the clip's next one.
fn forced_keyframe(flag: &AtomicBool, source: &mut MediaSource, label: &str) {
    if flag.swap(false, Ordering::Relaxed) {
        let skipped = source.force_keyframe();
        info!(%label, skipped, "key frame requested: next frame is the clip's next key frame");
    }
}

fn count(c: &TransportStats, video: bool, packets: u64, bytes: u64) {
    TransportStats::add(&c.packets, packets);
    TransportStats::add(&c.bytes, bytes);
    TransportStats::add(
        if video {
            &c.video_frames
        } else {
            &c.audio_frames
        },
        1,
    );
}

/// Sleeps until `start + due`; when more than [`MAX_LAG`] late, moves `start` so that the
/// schedule resumes from now instead of bursting to catch up.
async fn pace(start: &mut Instant, due: Duration) {
    let at = *start + due;
    let now = Instant::now();
    if now > at + MAX_LAG {
        debug!(
            late_ms = (now - at).as_millis() as u64,
            "behind schedule: starting afresh"
        );
        *start = now - due;
        return;
    }
    tokio::time::sleep_until(at).await;
}

async fn wait_closed(mut s: TcpStream) -> StreamEnd {
    let mut buf = [0u8; 512];
    loop {
        match s.read(&mut buf).await {
            Ok(0) => return StreamEnd::PeerClosed,
            Ok(_) => {}
            Err(e) => return StreamEnd::SendFailed(e),
        }
    }
}

/// Connects from `local` to `dest`, `attempts` times at most, `interval` apart. Retries bind
/// the same local port again (the one in our answer) when they can.
async fn connect(
    socket: TcpSocket,
    local: SocketAddr,
    dest: SocketAddr,
    attempts: u32,
    interval: Duration,
    label: &str,
) -> io::Result<TcpStream> {
    let mut socket = Some(socket);
    let mut attempt = 1;
    loop {
        let s = match socket.take() {
            Some(s) => s,
            None => rebind(local)?,
        };
        match s.connect(dest).await {
            Ok(stream) => {
                let _ = stream.set_nodelay(true);
                info!(%label, %dest, attempt, "media connected to the platform");
                return Ok(stream);
            }
            Err(e) if attempt >= attempts.max(1) => return Err(e),
            Err(e) => {
                info!(%label, %dest, attempt, error = %e, "media connect failed; retrying");
                attempt += 1;
                tokio::time::sleep(interval).await;
            }
        }
    }
}

fn rebind(local: SocketAddr) -> io::Result<TcpSocket> {
    let s = new_tcp_socket(local)?;
    s.set_reuseaddr(true)?;
    if s.bind(local).is_ok() {
        return Ok(s);
    }
    // The port was taken meanwhile: any port will do, the platform accepts by address.
    let s = new_tcp_socket(local)?;
    s.bind(SocketAddr::new(local.ip(), 0))?;
    Ok(s)
}
