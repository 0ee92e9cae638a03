//! The WebRTC task: one UDP socket for every viewer and the `media::webrtc::Egress` core
//! (which keeps each stream's current GOP and starts a joining viewer with it).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use media::AccessUnit;
use media::webrtc::{
    Egress, EgressConfig, EgressError, EgressEvent, StreamId, Tracks, TransmitBatch, ViewerId,
    ViewerLocation,
};
use quinn_udp::{RecvMeta, UdpSockRef, UdpSocketState};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, info, warn};

/// Requests the WebRTC task's queue holds at most: about 160 ms of 500 cameras' access units.
pub const EGRESS_QUEUE: usize = 4096;

/// Requests to the WebRTC task.
pub enum EgressCmd {
    /// A WHEP offer for a stream.
    AddViewer {
        tracks: Tracks,
        offer: String,
        location: ViewerLocation,
        reply: oneshot::Sender<Result<(ViewerId, String), EgressError>>,
    },
    /// A viewer left (WHEP DELETE, or the stream ended).
    RemoveViewer(ViewerId),
    /// A stream starts: its units are cached for the viewers to come.
    OpenStream(StreamId),
    /// An access unit of a stream.
    Unit(StreamId, AccessUnit),
    /// The stream ended: its viewers and its cached GOP go.
    EndStream(StreamId),
}

/// What the WebRTC task tells the stream manager.
#[derive(Debug, Clone, Copy)]
pub enum ViewerEvent {
    /// ICE+DTLS up; `cached` says whether a key frame could be sent right away.
    Connected { viewer: ViewerId, cached: bool },
    /// The viewer is gone (disconnected or never connected).
    Gone(ViewerId),
    /// The browser asked for a key frame.
    KeyframeRequest(ViewerId),
}

/// The socket's addresses as browsers see them: the ICE host candidates.
#[derive(Debug, Clone)]
pub struct Candidates {
    /// For every viewer, the first preferred. Never empty.
    pub all: Vec<SocketAddr>,
    /// Also for a browser on this machine (loopback).
    pub this_host: Vec<SocketAddr>,
}

/// Run the WebRTC loop on a thread of its own (a current-thread runtime: one core at most,
/// no task migration, and HTTP and SIP never wait behind a burst of media).
pub fn spawn(
    socket: std::net::UdpSocket,
    candidates: Candidates,
    commands: mpsc::Receiver<EgressCmd>,
    events: mpsc::UnboundedSender<ViewerEvent>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    socket.set_nonblocking(true)?;
    std::thread::Builder::new()
        .name("webrtc".into())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => return warn!(error = %e, "cannot start the WebRTC runtime"),
            };
            rt.block_on(async move {
                match UdpSocket::from_std(socket) {
                    Ok(s) => run(s, candidates, commands, events).await,
                    Err(e) => warn!(error = %e, "cannot register the WebRTC socket"),
                }
            });
        })
}

/// The loop: datagrams in, commands in, timers; batched sends out (UDP GSO when the kernel
/// offers it: one `sendmsg` carries a viewer's packets of a frame).
pub async fn run(
    socket: UdpSocket,
    candidates: Candidates,
    mut commands: mpsc::Receiver<EgressCmd>,
    events: mpsc::UnboundedSender<ViewerEvent>,
) {
    let socket = Arc::new(socket);
    let Some(&announce) = candidates.all.first() else {
        return warn!("no WebRTC candidate address");
    };
    let port = announce.port();
    let state = match UdpSocketState::new(UdpSockRef::from(&*socket)) {
        Ok(s) => s,
        Err(e) => return warn!(error = %e, "cannot set up the WebRTC socket"),
    };
    let _ = state.set_send_buffer_size(UdpSockRef::from(&*socket), 8 << 20);
    let _ = state.set_recv_buffer_size(UdpSockRef::from(&*socket), 8 << 20);
    let mut config = EgressConfig::new(announce);
    config.more_candidates = candidates.all[1..].to_vec();
    config.this_host_candidates = candidates.this_host.clone();
    config.max_gso_segments = state.max_gso_segments();
    let mut egress = Egress::new(config);
    let mut batch = TransmitBatch::new(state.max_gso_segments());
    // Room for a GRO batch (quinn-udp turns UDP_GRO on where the kernel has it).
    let mut buf = vec![0u8; 64 * 1024];
    info!(candidates = ?candidates.all, gso_segments = state.max_gso_segments(), "WebRTC egress ready");
    loop {
        let wake = egress.poll_timeout();
        tokio::select! {
            r = socket.readable() => {
                if r.is_ok() {
                    receive(&socket, &state, &mut buf, port, announce, &mut egress);
                }
            }
            cmd = commands.recv() => {
                let Some(cmd) = cmd else { break };
                let now = Instant::now();
                match cmd {
                    EgressCmd::AddViewer { tracks, offer, location, reply } => {
                        let _ = reply.send(egress.add_viewer(now, &offer, tracks, location));
                    }
                    EgressCmd::RemoveViewer(v) => {
                        egress.remove_viewer(now, v);
                    }
                    EgressCmd::Unit(stream, au) => {
                        if au.codec.is_video() {
                            egress.write_video(now, stream, &au);
                        } else {
                            egress.write_audio(now, stream, &au);
                        }
                    }
                    EgressCmd::OpenStream(stream) => egress.open_stream(stream, None),
                    EgressCmd::EndStream(stream) => {
                        egress.end_stream(now, stream);
                    }
                }
            }
            () = async {
                match wake {
                    Some(t) => tokio::time::sleep_until(t.into()).await,
                    None => std::future::pending().await,
                }
            } => {
                egress.handle_timeout(Instant::now());
            }
        }
        while let Some(ev) = egress.poll_event() {
            match ev {
                EgressEvent::Connected { viewer, started } => {
                    debug!(%viewer, cached = started, "viewer connected");
                    let _ = events.send(ViewerEvent::Connected {
                        viewer,
                        cached: started,
                    });
                }
                EgressEvent::Disconnected(v) | EgressEvent::Reaped(v) => {
                    let _ = events.send(ViewerEvent::Gone(v));
                }
                EgressEvent::KeyframeRequest(v) => {
                    let _ = events.send(ViewerEvent::KeyframeRequest(v));
                }
                other => debug!(event = ?other, "egress event not handled"),
            }
        }
        egress.drain_transmits(&mut batch);
        for t in batch.iter() {
            let transmit = quinn_udp::Transmit {
                destination: t.destination,
                ecn: None,
                contents: t.contents,
                segment_size: t.segment_size,
                // From the candidate the browser uses, whatever the route says.
                src_ip: Some(t.source.ip()),
            };
            if let Err(e) = send(&socket, &state, &transmit).await {
                debug!(to = %t.destination, error = %e, "WebRTC send failed");
            }
        }
        batch.clear();
    }
}

/// Read what the socket holds. Each datagram goes to the egress with the address it was sent
/// to (IP_PKTINFO): on a wildcard bind that tells which candidate the browser uses, which
/// ICE must match.
fn receive(
    socket: &UdpSocket,
    state: &UdpSocketState,
    buf: &mut [u8],
    port: u16,
    announce: SocketAddr,
    egress: &mut Egress,
) {
    loop {
        let mut meta = [RecvMeta::default()];
        let n = {
            let mut iov = [std::io::IoSliceMut::new(buf)];
            match socket.try_io(tokio::io::Interest::READABLE, || {
                state.recv(UdpSockRef::from(socket), &mut iov, &mut meta)
            }) {
                Ok(n) => n,
                Err(_) => return,
            }
        };
        let now = Instant::now();
        for m in &meta[..n] {
            let local = m
                .dst_ip
                .map(|ip| SocketAddr::new(ip, port))
                .unwrap_or(announce);
            let stride = m.stride.max(1);
            for datagram in buf[..m.len].chunks(stride) {
                egress.handle_receive(now, m.addr, local, datagram);
            }
        }
    }
}

/// One send, waiting (bounded) while the socket buffer is full.
async fn send(
    socket: &UdpSocket,
    state: &UdpSocketState,
    transmit: &quinn_udp::Transmit<'_>,
) -> std::io::Result<()> {
    for _ in 0..100 {
        match state.try_send(UdpSockRef::from(socket), transmit) {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                let _ = socket.writable().await;
            }
            other => return other,
        }
    }
    Err(std::io::ErrorKind::WouldBlock.into())
}
