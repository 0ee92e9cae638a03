//! The live-view shell: runs [`LiveCore`] in one task and does what it asks — binds media
//! sockets, sends INVITEs and BYEs through the signalling, runs the ingest task of each
//! stream, offers viewers to the WebRTC task. Everything that decides lives in the core.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Instant, SystemTime};

use gb28181::platform::PlatformEvent;
use gb28181::sdp::MediaTransport;
use media::webrtc::{StreamId, ViewerId};
use serde::Serialize;
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tracing::{info, warn};

use super::core::{Action, IngestFrom, JoinId, LiveCore};
pub use super::core::{JoinRequest, LiveConfig, LiveError, ViewerView, Watching};
use super::ingest::{self, IngestEvent, LiveInfo, SharedInfo, Source};
use super::pools::{PortPool, SsrcPool};
use super::webrtc::{EgressCmd, ViewerEvent};
use crate::registry::rfc3339;
use crate::signalling::Signalling;
use media::receive::{Receiver, ReceiverConfig, SsrcPolicy};

/// Settings of the shell and its core.
#[derive(Debug, Clone)]
pub struct HubConfig {
    pub core: LiveConfig,
    pub bind_ip: IpAddr,
    pub ssrc_policy: SsrcPolicy,
    pub hold_video_after_loss: bool,
}

/// `GET /api/v1/streams` entries.
#[derive(Debug, Clone, Serialize)]
pub struct StreamView {
    #[serde(flatten)]
    pub summary: super::core::StreamSummary,
    pub started_at: String,
    pub media: LiveInfo,
}

/// A ticket a join is known by until the core has it.
type Ticket = u64;

enum Msg {
    Join {
        ticket: Ticket,
        req: JoinRequest,
        reply: oneshot::Sender<Result<Watching, LiveError>>,
    },
    Cancel(Ticket),
    Leave(ViewerId),
    List(oneshot::Sender<Vec<StreamView>>),
    Viewer(ViewerId, oneshot::Sender<Option<ViewerView>>),
    Call(PlatformEvent),
    Started {
        stream: StreamId,
        bound: Option<Source>,
        result: Result<gb28181::platform::SessionId, LiveError>,
    },
    PortBusy(StreamId, String),
    ViewerAdded(JoinId, Result<(ViewerId, String), LiveError>),
    Ingest(StreamId, IngestEvent),
    Egress(ViewerEvent),
    Shutdown(oneshot::Sender<()>),
}

/// Handle to the live view.
#[derive(Clone)]
pub struct Hub {
    tx: mpsc::UnboundedSender<Msg>,
    tickets: Arc<AtomicU64>,
}

/// Cancels its join when dropped before the join completed (the HTTP request went away).
struct CancelOnDrop {
    tx: mpsc::UnboundedSender<Msg>,
    ticket: Option<Ticket>,
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if let Some(t) = self.ticket.take() {
            let _ = self.tx.send(Msg::Cancel(t));
        }
    }
}

impl Hub {
    /// Watch a channel: resolves once the viewer is in the egress, with the SDP answer.
    /// Dropping the future cancels the join.
    pub async fn join(&self, req: JoinRequest) -> Result<Watching, LiveError> {
        let ticket = self.tickets.fetch_add(1, Ordering::Relaxed) + 1;
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Msg::Join { ticket, req, reply })
            .map_err(|_| LiveError::Stopped)?;
        let mut guard = CancelOnDrop {
            tx: self.tx.clone(),
            ticket: Some(ticket),
        };
        let r = rx.await.map_err(|_| LiveError::Stopped);
        guard.ticket = None;
        r?
    }

    /// A viewer left.
    pub fn leave(&self, viewer: ViewerId) {
        let _ = self.tx.send(Msg::Leave(viewer));
    }

    /// Live streams.
    pub async fn list(&self) -> Vec<StreamView> {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Msg::List(tx)).is_err() {
            return Vec::new();
        }
        rx.await.unwrap_or_default()
    }

    /// A viewer's state (also after its stream ended, for a while).
    pub async fn viewer(&self, viewer: ViewerId) -> Option<ViewerView> {
        let (tx, rx) = oneshot::channel();
        self.tx.send(Msg::Viewer(viewer, tx)).ok()?;
        rx.await.ok().flatten()
    }

    /// End every stream, each live call with its BYE, and wait until the BYEs are sent.
    pub async fn shutdown(&self) {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Msg::Shutdown(tx)).is_ok() {
            let _ = rx.await;
        }
    }
}

/// What the shell holds for a stream.
#[derive(Default)]
struct Io {
    bound: Option<Source>,
    ingest: Option<JoinHandle<()>>,
    info: SharedInfo,
}

struct Shell {
    cfg: HubConfig,
    core: LiveCore,
    signalling: Signalling,
    egress: mpsc::Sender<EgressCmd>,
    self_tx: mpsc::UnboundedSender<Msg>,
    io: HashMap<StreamId, Io>,
    tickets: HashMap<Ticket, JoinId>,
    waiting: HashMap<JoinId, (Ticket, oneshot::Sender<Result<Watching, LiveError>>)>,
}

/// Start the live view. `ports` and the SSRCs begin at random points (`port_start`,
/// `ssrc_start`), so that a restarted gateway does not hand a camera still streaming to it
/// the same port and SSRC for another channel.
#[allow(clippy::too_many_arguments)]
pub fn start(
    cfg: HubConfig,
    ports: PortPool,
    ssrcs: SsrcPool,
    signalling: Signalling,
    egress: mpsc::Sender<EgressCmd>,
    mut viewer_events: mpsc::UnboundedReceiver<ViewerEvent>,
    mut call_events: mpsc::UnboundedReceiver<PlatformEvent>,
) -> Hub {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let hub = Hub {
        tx: tx.clone(),
        tickets: Arc::new(AtomicU64::new(0)),
    };
    let fwd = tx.clone();
    tokio::spawn(async move {
        while let Some(ev) = viewer_events.recv().await {
            if fwd.send(Msg::Egress(ev)).is_err() {
                break;
            }
        }
    });
    let fwd = tx.clone();
    tokio::spawn(async move {
        while let Some(ev) = call_events.recv().await {
            if fwd.send(Msg::Call(ev)).is_err() {
                break;
            }
        }
    });
    let mut shell = Shell {
        core: LiveCore::new(cfg.core.clone(), ports, ssrcs),
        cfg,
        signalling,
        egress,
        self_tx: tx,
        io: HashMap::new(),
        tickets: HashMap::new(),
        waiting: HashMap::new(),
    };
    tokio::spawn(async move {
        loop {
            let wake = shell.core.poll_timeout();
            tokio::select! {
                msg = rx.recv() => match msg {
                    Some(Msg::Shutdown(done)) => {
                        shell.core.shutdown(Instant::now());
                        shell.run_actions(true).await;
                        let _ = done.send(());
                    }
                    Some(msg) => shell.handle(msg),
                    None => break,
                },
                () = async {
                    match wake {
                        Some(t) => tokio::time::sleep_until(t.into()).await,
                        None => std::future::pending().await,
                    }
                } => shell.core.handle_timeout(Instant::now()),
            }
            shell.run_actions(false).await;
            shell.export();
        }
    });
    hub
}

impl Shell {
    fn handle(&mut self, msg: Msg) {
        let now = Instant::now();
        match msg {
            Msg::Join { ticket, req, reply } => {
                let join = self.core.join(now, SystemTime::now(), req);
                self.tickets.insert(ticket, join);
                self.waiting.insert(join, (ticket, reply));
            }
            Msg::Cancel(ticket) => {
                if let Some(join) = self.tickets.remove(&ticket) {
                    self.waiting.remove(&join);
                    self.core.cancel_join(now, join);
                }
            }
            Msg::Leave(viewer) => self.core.leave(now, viewer, "left"),
            Msg::List(reply) => {
                let _ = reply.send(self.list());
            }
            Msg::Viewer(viewer, reply) => {
                let _ = reply.send(self.core.viewer(viewer));
            }
            Msg::Call(ev) => match ev {
                PlatformEvent::CallAnswered { session, sdp } => {
                    self.core.call_answered(now, session, &sdp)
                }
                PlatformEvent::CallFailed {
                    session,
                    status,
                    reason,
                } => self.core.call_failed(now, session, status, &reason),
                PlatformEvent::CallEnded { session, reason } => {
                    self.core.call_ended(now, session, reason)
                }
                _ => {}
            },
            Msg::Started {
                stream,
                bound,
                result,
            } => {
                if self.core.has_stream(stream) {
                    self.io.entry(stream).or_default().bound = bound;
                }
                self.core.started(now, stream, result);
            }
            Msg::PortBusy(stream, why) => self.core.port_unavailable(now, stream, &why),
            Msg::ViewerAdded(join, result) => self.core.viewer_added(now, join, result),
            Msg::Ingest(stream, ev) => match ev {
                IngestEvent::FirstVideo { codec, audio } => {
                    info!(stream = stream.0, codec = codec.name(), "media flowing");
                    self.core.first_video(now, stream, codec, audio);
                }
                IngestEvent::Closed(why) => {
                    warn!(stream = stream.0, %why, "media connection ended");
                    self.core.ingest_closed(now, stream, &why);
                }
                IngestEvent::KeyframeNeeded => self.core.keyframe_after_loss(now, stream),
                IngestEvent::Status {
                    accepted,
                    diagnosis,
                } => self.core.ingest_status(now, stream, accepted, diagnosis),
            },
            Msg::Egress(ev) => match ev {
                ViewerEvent::Connected { viewer, cached } => {
                    if !cached {
                        self.core.keyframe_wanted(now, viewer);
                    }
                }
                ViewerEvent::Gone(viewer) => self.core.leave(now, viewer, "disconnected"),
                ViewerEvent::KeyframeRequest(viewer) => self.core.keyframe_wanted(now, viewer),
            },
            Msg::Shutdown(_) => {}
        }
    }

    /// Do what the core asked. At shutdown, BYEs are awaited (the signalling stops next).
    async fn run_actions(&mut self, shutting_down: bool) {
        while let Some(action) = self.core.poll_action() {
            match action {
                Action::Start {
                    stream,
                    transport,
                    port,
                    invite,
                } => {
                    let bind = SocketAddr::new(self.cfg.bind_ip, port);
                    let signalling = self.signalling.clone();
                    let tx = self.self_tx.clone();
                    tokio::spawn(async move {
                        let bound = match transport {
                            MediaTransport::Udp => {
                                UdpSocket::bind(bind).await.map(|s| Some(Source::Udp(s)))
                            }
                            MediaTransport::TcpPassive => TcpListener::bind(bind)
                                .await
                                .map(|l| Some(Source::TcpPassive(l))),
                            MediaTransport::TcpActive => Ok(None),
                        };
                        let msg = match bound {
                            Err(e) => {
                                warn!(port, error = %e, "media port unavailable");
                                Msg::PortBusy(stream, e.to_string())
                            }
                            Ok(bound) => Msg::Started {
                                stream,
                                bound,
                                result: signalling.invite(invite).await,
                            },
                        };
                        let _ = tx.send(msg);
                    });
                }
                Action::StartIngest {
                    stream,
                    from,
                    expected_ssrc,
                    allowed,
                } => {
                    // Before the ingest exists, so that the egress knows the stream (and
                    // caches its GOP) before the first unit; it forgets it at EndStream.
                    let _ = self.egress.send(EgressCmd::OpenStream(stream)).await;
                    self.start_ingest(stream, from, expected_ssrc, allowed)
                }
                Action::StopIngest { stream } => {
                    if let Some(io) = self.io.remove(&stream)
                        && let Some(task) = io.ingest
                    {
                        task.abort();
                    }
                }
                Action::Hangup { session } => {
                    if shutting_down {
                        self.signalling.hangup(session).await;
                    } else {
                        let signalling = self.signalling.clone();
                        tokio::spawn(async move { signalling.hangup(session).await });
                    }
                }
                Action::AddViewer {
                    join,
                    tracks,
                    offer,
                    location,
                } => {
                    let (reply, rx) = oneshot::channel();
                    let sent = self
                        .egress
                        .send(EgressCmd::AddViewer {
                            tracks,
                            offer,
                            location,
                            reply,
                        })
                        .await
                        .map_err(|_| ());
                    let tx = self.self_tx.clone();
                    tokio::spawn(async move {
                        let result = match (sent, rx.await) {
                            (Ok(()), Ok(r)) => r.map_err(|e| LiveError::Egress(Arc::new(e))),
                            _ => Err(LiveError::Stopped),
                        };
                        let _ = tx.send(Msg::ViewerAdded(join, result));
                    });
                }
                Action::RemoveViewer { viewer } => {
                    let _ = self.egress.send(EgressCmd::RemoveViewer(viewer)).await;
                }
                Action::EndEgress { stream } => {
                    let _ = self.egress.send(EgressCmd::EndStream(stream)).await;
                }
                Action::RequestKeyframe {
                    device_id,
                    channel_id,
                } => {
                    let signalling = self.signalling.clone();
                    tokio::spawn(async move {
                        signalling.request_keyframe(device_id, channel_id).await;
                    });
                }
                Action::JoinResult { join, result } => {
                    let Some((ticket, reply)) = self.waiting.remove(&join) else {
                        continue;
                    };
                    self.tickets.remove(&ticket);
                    if let Err(Ok(w)) = reply.send(result) {
                        // Nobody waits for this answer any more: the viewer is not wanted.
                        self.core
                            .leave(Instant::now(), w.viewer, "gone before its answer");
                    }
                }
            }
        }
    }

    fn start_ingest(
        &mut self,
        stream: StreamId,
        from: IngestFrom,
        expected_ssrc: u32,
        allowed: Vec<IpAddr>,
    ) {
        let io = self.io.entry(stream).or_default();
        let source = match from {
            IngestFrom::Connect(addr) => Source::TcpActive(addr),
            IngestFrom::Bound => match io.bound.take() {
                Some(s) => s,
                None => {
                    // Cannot happen: the core starts ingest only after `started`.
                    self.core
                        .ingest_closed(Instant::now(), stream, "no media socket");
                    return;
                }
            },
        };
        let cfg = ReceiverConfig {
            policy: self.cfg.ssrc_policy,
            hold_after_loss: self.cfg.hold_video_after_loss,
            ..if matches!(source, Source::Udp(_)) {
                ReceiverConfig::udp(expected_ssrc, allowed)
            } else {
                ReceiverConfig::tcp(expected_ssrc, allowed)
            }
        };
        let core = Receiver::new(Instant::now(), cfg);
        let egress = self.egress.clone();
        let tx = self.self_tx.clone();
        let on_unit = Box::new(move |au| egress.try_send(EgressCmd::Unit(stream, au)).is_ok());
        let on_event = Box::new(move |ev| {
            let _ = tx.send(Msg::Ingest(stream, ev));
        });
        io.ingest = Some(tokio::spawn(ingest::run(
            source,
            core,
            io.info.clone(),
            on_unit,
            on_event,
        )));
    }

    fn list(&self) -> Vec<StreamView> {
        self.core
            .streams()
            .into_iter()
            .map(|summary| {
                let media = self
                    .io
                    .get(&StreamId(summary.stream_id))
                    .and_then(|io| io.info.lock().ok().map(|i| i.clone()))
                    .unwrap_or_default();
                StreamView {
                    started_at: rfc3339(summary.started_at),
                    summary,
                    media,
                }
            })
            .collect()
    }

    fn export(&self) {
        let s = self.core.stats();
        metrics::gauge!("live_viewers").set(self.core.viewer_count() as f64);
        metrics::gauge!("live_streams").set(self.core.stream_count() as f64);
        metrics::gauge!("live_media_ports_in_use").set(self.core.ports_in_use() as f64);
        metrics::counter!("live_streams_started_total").absolute(s.streams_started);
        metrics::counter!("live_keyframe_requests_total").absolute(s.keyframe_requests);
        metrics::counter!("live_joins_cancelled_total").absolute(s.joins_cancelled);
        metrics::counter!("live_streams_stalled_total").absolute(s.streams_stalled);
        metrics::counter!("live_media_rejected_packets_total").absolute(s.rejected_packets);
        metrics::counter!("live_media_rejected_connections_total").absolute(s.rejected_connections);
    }
}
