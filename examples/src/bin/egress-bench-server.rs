//! egress-bench-server: a standalone WHEP server (draft-ietf-wish-whep) that loops an H.264
//! Annex B clip at real time to every viewer through `media::webrtc::Egress`, on one UDP
//! socket and one thread — the shell the gateway will be, minus cameras and SIP.
//!
//! ```text
//! egress-bench-server --clip clip.h264 --http 127.0.0.1:8080 --udp 127.0.0.1:8189 \
//!     [--mode shared|per-viewer] [--send gso|plain] [--token bench] [--max-seconds 600]
//! ```
//!
//! - `POST /whep/{stream}` with `Authorization: Bearer <token>` and an SDP offer →
//!   `201 Created`, `Location: /whep/{stream}/{viewer}`, the answer.
//! - `DELETE /whep/{stream}/{viewer}` ends the session.
//! - `GET /stats` → one `key=value` line: viewers, connected, datagrams, sends, bytes…
//!
//! `--send gso` hands each GSO run of the egress's `TransmitBatch` to `quinn-udp` (one
//! `sendmsg` with `UDP_SEGMENT` per viewer per frame on Linux); `--send plain` makes one
//! `send_to` per datagram. `--mode per-viewer` packetizes per viewer with str0m's frame API.
//! Together they are the baseline of scripts/bench-egress.sh. The process exits by itself
//! after `--max-seconds`.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use clap::{Parser, ValueEnum};
use gb28181_examples::sim::es::Clip;
use media::webrtc::{
    Egress, EgressConfig, EgressEvent, Packetization, StreamId, Tracks, TransmitBatch, ViewerId,
    ViewerLocation,
};
use media::{AccessUnit, Codec};
use quinn_udp::{UdpSockRef, UdpSocketState};
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

const STREAM: StreamId = StreamId(1);

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
enum Mode {
    /// Packetize once per frame, write shared payloads (the egress default).
    Shared,
    /// str0m's frame API: each viewer packetizes (baseline).
    PerViewer,
}

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
enum SendMode {
    /// One `sendmsg` per GSO run (quinn-udp, `UDP_SEGMENT`).
    Gso,
    /// One `send_to` per datagram (baseline).
    Plain,
}

#[derive(Parser, Debug)]
#[command(about = "WHEP egress benchmark server: loops an H.264 clip to WebRTC viewers")]
struct Args {
    /// H.264 Annex B clip, looped at --fps.
    #[arg(long)]
    clip: PathBuf,
    /// HTTP (WHEP) listen address.
    #[arg(long, default_value = "127.0.0.1:8080")]
    http: SocketAddr,
    /// UDP media address, announced as the only ICE candidate.
    #[arg(long, default_value = "127.0.0.1:8189")]
    udp: SocketAddr,
    /// Frames per second of the clip.
    #[arg(long, default_value_t = 25)]
    fps: u32,
    #[arg(long, value_enum, default_value = "shared")]
    mode: Mode,
    #[arg(long = "send", value_enum, default_value = "gso")]
    send_mode: SendMode,
    /// Bearer token the WHEP POST must carry.
    #[arg(long, default_value = "bench")]
    token: String,
    /// Exit after this many seconds.
    #[arg(long, default_value_t = 600)]
    max_seconds: u64,
    /// Refuse viewers beyond this many.
    #[arg(long, default_value_t = 5000)]
    max_viewers: usize,
}

enum Cmd {
    Add {
        offer: String,
        reply: oneshot::Sender<Result<(ViewerId, String), String>>,
    },
    Remove {
        viewer: ViewerId,
        reply: oneshot::Sender<bool>,
    },
    Stats {
        reply: oneshot::Sender<String>,
    },
}

#[derive(Clone)]
struct Http {
    cmds: mpsc::Sender<Cmd>,
    token: Arc<String>,
}

#[derive(Default)]
struct Counters {
    sends: u64,
    bytes: u64,
    send_errors: u64,
    keyframe_requests: u64,
    reaped: u64,
    disconnected: u64,
}

// The egress loop runs alone on this thread's runtime (one core at most, no task migration);
// HTTP has its own thread and runtime, so that WHEP requests are answered while the loop is
// busy. They talk over a channel, as the gateway's HTTP handlers and media task will.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let clip = Clip::open(&args.clip, Some(media::Codec::H264))?;
    let std_sock = std::net::UdpSocket::bind(args.udp)?;
    std_sock.set_nonblocking(true)?;
    let sock = UdpSocket::from_std(std_sock)?;
    let state = UdpSocketState::new(UdpSockRef::from(&sock))?;
    let _ = state.set_send_buffer_size(UdpSockRef::from(&sock), 8 << 20);
    let _ = state.set_recv_buffer_size(UdpSockRef::from(&sock), 8 << 20);
    let segments = match args.send_mode {
        SendMode::Gso => state.max_gso_segments(),
        SendMode::Plain => 1,
    };
    let mut config = EgressConfig::new(args.udp);
    config.max_gso_segments = segments;
    config.packetization = match args.mode {
        Mode::Shared => Packetization::Shared,
        Mode::PerViewer => Packetization::PerViewer,
    };
    eprintln!(
        "egress-bench-server: {} frames ({} key) at {} fps, {:?}/{:?}, GSO segments {segments}, \
         WHEP http://{}/whep/1, media {}",
        clip.units.len(),
        clip.keyframes(),
        args.fps,
        args.mode,
        args.send_mode,
        args.http,
        args.udp
    );

    let (tx, mut rx) = mpsc::channel::<Cmd>(1024);
    let http = Http {
        cmds: tx,
        token: Arc::new(args.token.clone()),
    };
    let app = Router::new()
        .route("/whep/{stream}", post(whep_post))
        .route("/whep/{stream}/{viewer}", delete(whep_delete))
        .route("/stats", get(stats))
        .with_state(http);
    let listener = std::net::TcpListener::bind(args.http)?;
    listener.set_nonblocking(true)?;
    std::thread::spawn(move || {
        let rt = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => return eprintln!("http runtime: {e}"),
        };
        rt.block_on(async move {
            let served = match tokio::net::TcpListener::from_std(listener) {
                Ok(l) => axum::serve(l, app).await,
                Err(e) => Err(e),
            };
            if let Err(e) = served {
                eprintln!("http: {e}");
            }
        });
    });

    let mut egress = Egress::new(config);
    egress.open_stream(STREAM, Some(Codec::H264));
    let mut batch = TransmitBatch::new(segments);
    let mut counters = Counters::default();
    let mut buf = vec![0u8; 2048];
    let frame_time = Duration::from_secs(1) / args.fps.max(1);
    let start = Instant::now();
    let deadline = start + Duration::from_secs(args.max_seconds);
    let mut next_frame = start;
    let mut frame_no: u64 = 0;

    loop {
        let wake = egress
            .poll_timeout()
            .map(Instant::from_std)
            .unwrap_or(deadline)
            .min(next_frame)
            .min(deadline);
        tokio::select! {
            biased;
            r = sock.readable() => {
                if r.is_ok() {
                    loop {
                        match sock.try_recv_from(&mut buf) {
                            Ok((n, from)) => {
                                let now = std::time::Instant::now();
                                egress.handle_receive(now, from, args.udp, &buf[..n]);
                            }
                            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                            Err(_) => break,
                        }
                    }
                }
            }
            cmd = rx.recv() => match cmd {
                Some(Cmd::Add { offer, reply }) => {
                    let r = if egress.stats().viewers >= args.max_viewers {
                        Err("too many viewers".to_string())
                    } else {
                        let tracks = Tracks::new(STREAM, Some(media::Codec::H264), None);
                        let now = std::time::Instant::now();
                        egress.add_viewer(now, &offer, tracks, ViewerLocation::Elsewhere).map_err(|e| e.to_string())
                    };
                    let _ = reply.send(r);
                }
                Some(Cmd::Remove { viewer, reply }) => {
                    let now = std::time::Instant::now();
                    let _ = reply.send(egress.remove_viewer(now, viewer));
                }
                Some(Cmd::Stats { reply }) => {
                    let s = egress.stats();
                    let _ = reply.send(format!(
                        "uptime_ms={} viewers={} connected={} frames={} packets_written={} \
                         datagrams={} sends={} bytes={} send_errors={} keyframe_requests={} \
                         reaped={} disconnected={} unrouted={}\n",
                        start.elapsed().as_millis(), s.viewers, s.connected, frame_no,
                        s.packets_written, s.datagrams_out, counters.sends, counters.bytes,
                        counters.send_errors, counters.keyframe_requests, counters.reaped,
                        counters.disconnected, s.unrouted,
                    ));
                }
                None => break,
            },
            _ = tokio::time::sleep_until(wake) => {}
        }
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        let std_now = now.into_std();
        if egress.poll_timeout().is_some_and(|t| t <= std_now) {
            egress.handle_timeout(std_now);
        }
        if now >= next_frame {
            let unit = &clip.units[(frame_no % clip.units.len() as u64) as usize];
            let au = AccessUnit {
                pts: Some(frame_no * 90_000 / u64::from(args.fps.max(1))),
                ..unit.clone()
            };
            egress.write_video(std_now, STREAM, &au);
            frame_no += 1;
            next_frame += frame_time;
            if next_frame + Duration::from_secs(1) < now {
                next_frame = now + frame_time;
            }
        }
        while let Some(e) = egress.poll_event() {
            match e {
                EgressEvent::Connected { .. } => {}
                EgressEvent::KeyframeRequest(_) => counters.keyframe_requests += 1,
                EgressEvent::Reaped(_) => counters.reaped += 1,
                EgressEvent::Disconnected(_) => counters.disconnected += 1,
                _ => {}
            }
        }
        egress.drain_transmits(&mut batch);
        send(&sock, &state, &batch, args.send_mode, &mut counters).await;
        batch.clear();
    }
    eprintln!("egress-bench-server: done after {:?}", start.elapsed());
    Ok(())
}

/// Sends a batch: GSO runs through quinn-udp, or one `send_to` per datagram.
async fn send(
    sock: &UdpSocket,
    state: &UdpSocketState,
    batch: &TransmitBatch,
    mode: SendMode,
    counters: &mut Counters,
) {
    match mode {
        SendMode::Gso => {
            for t in batch.iter() {
                let transmit = quinn_udp::Transmit {
                    destination: t.destination,
                    ecn: None,
                    contents: t.contents,
                    segment_size: t.segment_size,
                    src_ip: None,
                };
                let r = retry(sock, || state.try_send(UdpSockRef::from(sock), &transmit)).await;
                count(counters, r, t.contents.len());
            }
        }
        SendMode::Plain => {
            for d in batch.datagrams() {
                let r = retry(sock, || {
                    sock.try_send_to(d.contents, d.destination).map(|_| ())
                })
                .await;
                count(counters, r, d.contents.len());
            }
        }
    }
}

fn count(counters: &mut Counters, r: io::Result<()>, bytes: usize) {
    counters.sends += 1;
    match r {
        Ok(()) => counters.bytes += bytes as u64,
        Err(_) => counters.send_errors += 1,
    }
}

/// Retries a non-blocking send while the socket buffer is full (bounded: 100 waits).
async fn retry(sock: &UdpSocket, mut f: impl FnMut() -> io::Result<()>) -> io::Result<()> {
    for _ in 0..100 {
        match f() {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                let _ = sock.writable().await;
            }
            other => return other,
        }
    }
    Err(io::ErrorKind::WouldBlock.into())
}

fn bearer_ok(headers: &HeaderMap, token: &str) -> bool {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|t| t == token)
}

fn error(status: StatusCode, error: &str, detail: &str) -> Response {
    let body = format!("{{\"error\":{:?},\"detail\":{:?}}}", error, detail);
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

async fn whep_post(
    State(http): State<Http>,
    Path(stream): Path<String>,
    headers: HeaderMap,
    offer: String,
) -> Response {
    if !bearer_ok(&headers, &http.token) {
        return error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "bearer token required",
        );
    }
    let (reply, rx) = oneshot::channel();
    if http.cmds.send(Cmd::Add { offer, reply }).await.is_err() {
        return error(StatusCode::SERVICE_UNAVAILABLE, "shutting down", "");
    }
    match rx.await {
        Ok(Ok((viewer, answer))) => (
            StatusCode::CREATED,
            [
                (header::CONTENT_TYPE, "application/sdp".to_string()),
                (header::LOCATION, format!("/whep/{stream}/{}", viewer.0)),
            ],
            answer,
        )
            .into_response(),
        Ok(Err(e)) => error(StatusCode::BAD_REQUEST, "offer refused", &e),
        Err(_) => error(StatusCode::SERVICE_UNAVAILABLE, "shutting down", ""),
    }
}

async fn whep_delete(
    State(http): State<Http>,
    Path((_stream, viewer)): Path<(String, u64)>,
    headers: HeaderMap,
) -> Response {
    if !bearer_ok(&headers, &http.token) {
        return error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "bearer token required",
        );
    }
    let (reply, rx) = oneshot::channel();
    let cmd = Cmd::Remove {
        viewer: ViewerId(viewer),
        reply,
    };
    if http.cmds.send(cmd).await.is_err() {
        return error(StatusCode::SERVICE_UNAVAILABLE, "shutting down", "");
    }
    match rx.await {
        Ok(true) => StatusCode::OK.into_response(),
        _ => error(
            StatusCode::NOT_FOUND,
            "no such session",
            &viewer.to_string(),
        ),
    }
}

async fn stats(State(http): State<Http>) -> Response {
    let (reply, rx) = oneshot::channel();
    if http.cmds.send(Cmd::Stats { reply }).await.is_err() {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    rx.await
        .map(|s| s.into_response())
        .unwrap_or_else(|_| StatusCode::SERVICE_UNAVAILABLE.into_response())
}
