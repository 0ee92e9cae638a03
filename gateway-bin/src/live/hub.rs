//! The live-stream manager: one INVITE per channel however many viewers, media ports and
//! SSRCs, the ingest task of each stream, linger after the last viewer, timeouts with a
//! diagnosis, and the end of streams when devices hang up or go offline.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use gb28181::platform::{CallEndReason, InviteParams, PlatformEvent, SessionId, subject};
use gb28181::sdp::{MediaTransport, PlayAnswer, PlayOffer, SessionDescription};
use media::Codec;
use media::webrtc::{StreamId, ViewerId};
use serde::Serialize;
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tracing::{info, warn};

use super::ingest::{self, Ingest, IngestEvent, LiveInfo, SharedInfo, Source, SsrcPolicy};
use super::pools::{PortPool, SsrcPool};
use super::webrtc::{EgressCmd, ViewerEvent};
use crate::registry::rfc3339;
use crate::signalling::Signalling;

/// Settings of the manager.
#[derive(Debug, Clone)]
pub struct HubConfig {
    pub platform_id: String,
    pub bind_ip: IpAddr,
    pub announce_ip: IpAddr,
    pub invite_timeout: Duration,
    pub no_media_timeout: Duration,
    pub linger: Duration,
    pub ssrc_policy: SsrcPolicy,
    pub keyframe_interval: Duration,
}

/// Why a viewer cannot watch.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LiveError {
    #[error("device {0} is unknown")]
    UnknownDevice(String),
    #[error("device {0} is offline")]
    Offline(String),
    #[error("no free media port in media.ports")]
    NoPort,
    #[error("cannot open a media socket: {0}")]
    Socket(String),
    #[error("the device did not answer the INVITE within {0:?}")]
    InviteTimeout(Duration),
    #[error("the device refused the INVITE: {0}")]
    Refused(String),
    #[error("the device's SDP answer is unusable: {0}")]
    BadAnswer(String),
    #[error("no media from the device within {timeout:?}: {why}")]
    NoMedia { timeout: Duration, why: String },
    #[error("the stream ended: {0}")]
    Ended(String),
    #[error("the stream manager stopped")]
    Stopped,
}

/// A stream ready for viewers.
#[derive(Debug, Clone, Copy)]
pub struct Joined {
    pub stream: StreamId,
    pub video: Codec,
    pub audio: Option<Codec>,
}

/// `GET /api/v1/streams` entries.
#[derive(Debug, Clone, Serialize)]
pub struct StreamView {
    pub stream_id: u64,
    pub device_id: String,
    pub channel_id: String,
    pub state: &'static str,
    pub transport: &'static str,
    pub ssrc: String,
    pub media_port: u16,
    pub viewers: usize,
    pub started_at: String,
    pub media: LiveInfo,
}

/// What a viewer's session resource says.
#[derive(Debug, Clone, Serialize)]
pub struct ViewerView {
    pub viewer_id: u64,
    pub stream_id: u64,
    pub device_id: String,
    pub channel_id: String,
    pub state: &'static str,
    pub ended_reason: Option<String>,
}

enum Msg {
    Join {
        device_id: String,
        channel_id: String,
        transport: MediaTransport,
        reply: oneshot::Sender<Result<Joined, LiveError>>,
    },
    Attach(StreamId, ViewerId),
    Abandon(StreamId),
    Leave(ViewerId),
    List(oneshot::Sender<Vec<StreamView>>),
    Viewer(ViewerId, oneshot::Sender<Option<ViewerView>>),
    Call(PlatformEvent),
    Ingest(StreamId, IngestEvent),
    Egress(ViewerEvent),
}

/// Handle to the manager.
#[derive(Clone)]
pub struct Hub {
    tx: mpsc::UnboundedSender<Msg>,
}

impl Hub {
    /// Join (or start) the stream of a channel; resolves once video flows.
    pub async fn join(
        &self,
        device_id: &str,
        channel_id: &str,
        transport: MediaTransport,
    ) -> Result<Joined, LiveError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Msg::Join {
                device_id: device_id.to_owned(),
                channel_id: channel_id.to_owned(),
                transport,
                reply,
            })
            .map_err(|_| LiveError::Stopped)?;
        rx.await.map_err(|_| LiveError::Stopped)?
    }

    /// A viewer from [`Hub::join`] is now attached in the egress.
    pub fn attach(&self, stream: StreamId, viewer: ViewerId) {
        let _ = self.tx.send(Msg::Attach(stream, viewer));
    }

    /// A [`Hub::join`] did not lead to a viewer (the offer was refused).
    pub fn abandon(&self, stream: StreamId) {
        let _ = self.tx.send(Msg::Abandon(stream));
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
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Inviting,
    WaitingMedia,
    Playing,
}

impl State {
    fn name(self) -> &'static str {
        match self {
            State::Inviting => "inviting",
            State::WaitingMedia => "waiting_media",
            State::Playing => "playing",
        }
    }
}

struct Stream {
    id: StreamId,
    device_id: String,
    channel_id: String,
    transport: MediaTransport,
    ssrc_text: String,
    ssrc: u32,
    port: u16,
    socket: Option<Source>,
    session: Option<SessionId>,
    state: State,
    deadline: Option<Instant>,
    linger_until: Option<Instant>,
    waiters: Vec<oneshot::Sender<Result<Joined, LiveError>>>,
    viewers: Vec<ViewerId>,
    pending: usize,
    joined: Option<Joined>,
    info: SharedInfo,
    ingest: Option<JoinHandle<()>>,
    started_at: SystemTime,
    last_keyframe_request: Option<Instant>,
}

struct Manager {
    cfg: HubConfig,
    signalling: Signalling,
    egress: mpsc::UnboundedSender<EgressCmd>,
    self_tx: mpsc::UnboundedSender<Msg>,
    ports: PortPool,
    ssrcs: SsrcPool,
    streams: HashMap<StreamId, Stream>,
    by_session: HashMap<SessionId, StreamId>,
    viewers: HashMap<ViewerId, StreamId>,
    ended: VecDeque<(ViewerId, ViewerView)>,
    next_id: u64,
}

/// Start the manager task.
pub fn start(
    cfg: HubConfig,
    ports: (u16, u16),
    domain: &str,
    signalling: Signalling,
    egress: mpsc::UnboundedSender<EgressCmd>,
    mut viewer_events: mpsc::UnboundedReceiver<ViewerEvent>,
    mut call_events: mpsc::UnboundedReceiver<PlatformEvent>,
) -> Hub {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let hub = Hub { tx: tx.clone() };
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
    let mut m = Manager {
        cfg,
        signalling,
        egress,
        self_tx: tx,
        ports: PortPool::new(ports.0, ports.1),
        ssrcs: SsrcPool::new(domain),
        streams: HashMap::new(),
        by_session: HashMap::new(),
        viewers: HashMap::new(),
        ended: VecDeque::new(),
        next_id: 0,
    };
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(200));
        loop {
            tokio::select! {
                msg = rx.recv() => match msg {
                    Some(msg) => m.handle(msg).await,
                    None => break,
                },
                _ = tick.tick() => m.tick().await,
            }
        }
    });
    hub
}

impl Manager {
    async fn handle(&mut self, msg: Msg) {
        match msg {
            Msg::Join {
                device_id,
                channel_id,
                transport,
                reply,
            } => self.join(device_id, channel_id, transport, reply).await,
            Msg::Attach(stream, viewer) => {
                if let Some(s) = self.streams.get_mut(&stream) {
                    s.pending = s.pending.saturating_sub(1);
                    s.viewers.push(viewer);
                    s.linger_until = None;
                    self.viewers.insert(viewer, stream);
                    metrics::gauge!("live_viewers").increment(1.0);
                } else {
                    let _ = self.egress.send(EgressCmd::RemoveViewer(viewer));
                }
            }
            Msg::Abandon(stream) => {
                if let Some(s) = self.streams.get_mut(&stream) {
                    s.pending = s.pending.saturating_sub(1);
                }
                self.maybe_linger(stream);
            }
            Msg::Leave(viewer) => self.leave(viewer, "left"),
            Msg::List(reply) => {
                let _ = reply.send(self.list());
            }
            Msg::Viewer(viewer, reply) => {
                let _ = reply.send(self.viewer_view(viewer));
            }
            Msg::Call(ev) => self.on_call(ev).await,
            Msg::Ingest(stream, ev) => self.on_ingest(stream, ev).await,
            Msg::Egress(ev) => match ev {
                ViewerEvent::Connected { viewer, cached } => {
                    if !cached && let Some(stream) = self.viewers.get(&viewer).copied() {
                        self.request_keyframe(stream).await;
                    }
                }
                ViewerEvent::Gone(viewer) => self.leave(viewer, "disconnected"),
                ViewerEvent::KeyframeRequest(viewer) => {
                    if let Some(stream) = self.viewers.get(&viewer).copied() {
                        self.request_keyframe(stream).await;
                    }
                }
            },
        }
    }

    async fn join(
        &mut self,
        device_id: String,
        channel_id: String,
        transport: MediaTransport,
        reply: oneshot::Sender<Result<Joined, LiveError>>,
    ) {
        // One stream per channel, shared by every viewer whatever transport it asked for.
        if let Some(s) = self
            .streams
            .values_mut()
            .find(|s| s.device_id == device_id && s.channel_id == channel_id)
        {
            s.pending += 1;
            s.linger_until = None;
            match s.joined {
                Some(j) => {
                    let _ = reply.send(Ok(j));
                }
                None => s.waiters.push(reply),
            }
            return;
        }
        match self.start_stream(&device_id, &channel_id, transport).await {
            Ok(id) => {
                if let Some(s) = self.streams.get_mut(&id) {
                    s.pending += 1;
                    s.waiters.push(reply);
                }
            }
            Err(e) => {
                let _ = reply.send(Err(e));
            }
        }
    }

    async fn start_stream(
        &mut self,
        device_id: &str,
        channel_id: &str,
        transport: MediaTransport,
    ) -> Result<StreamId, LiveError> {
        let (port, socket) = self.bind_port(transport).await?;
        let Some((ssrc_text, ssrc)) = self.ssrcs.take() else {
            self.ports.release(port);
            return Err(LiveError::NoPort);
        };
        let offer = PlayOffer {
            platform_id: self.cfg.platform_id.clone(),
            address: self.cfg.announce_ip.to_string(),
            port,
            transport,
            ssrc: ssrc_text.clone(),
            stream_number: Some(0),
        }
        .build();
        let params = InviteParams {
            device_id: device_id.to_owned(),
            channel_id: channel_id.to_owned(),
            sdp: offer.to_string(),
            subject: subject(channel_id, &ssrc_text, &self.cfg.platform_id),
        };
        let session = match self.signalling.invite(params).await {
            Ok(s) => s,
            Err(e) => {
                self.ports.release(port);
                self.ssrcs.release(&ssrc_text);
                return Err(e);
            }
        };
        self.next_id += 1;
        let id = StreamId(self.next_id);
        info!(stream = id.0, %device_id, %channel_id, transport = transport.as_str(), port, ssrc = %ssrc_text, "live stream starting");
        metrics::counter!("live_streams_started_total").increment(1);
        self.by_session.insert(session, id);
        self.streams.insert(
            id,
            Stream {
                id,
                device_id: device_id.to_owned(),
                channel_id: channel_id.to_owned(),
                transport,
                ssrc_text,
                ssrc,
                port,
                socket,
                session: Some(session),
                state: State::Inviting,
                deadline: Some(Instant::now() + self.cfg.invite_timeout),
                linger_until: None,
                waiters: Vec::new(),
                viewers: Vec::new(),
                pending: 0,
                joined: None,
                info: Arc::new(Mutex::new(LiveInfo::default())),
                ingest: None,
                started_at: SystemTime::now(),
                last_keyframe_request: None,
            },
        );
        Ok(id)
    }

    /// A port from the pool with its socket bound (UDP) or listening (TCP passive).
    async fn bind_port(
        &mut self,
        transport: MediaTransport,
    ) -> Result<(u16, Option<Source>), LiveError> {
        let mut last_err = None;
        for _ in 0..16 {
            let port = self.ports.take().ok_or(LiveError::NoPort)?;
            let addr = SocketAddr::new(self.cfg.bind_ip, port);
            let bound = match transport {
                MediaTransport::Udp => UdpSocket::bind(addr).await.map(|s| Some(Source::Udp(s))),
                MediaTransport::TcpPassive => TcpListener::bind(addr)
                    .await
                    .map(|l| Some(Source::TcpPassive(l))),
                MediaTransport::TcpActive => Ok(None),
            };
            match bound {
                Ok(source) => return Ok((port, source)),
                Err(e) => {
                    // Held by another process: leave it marked used and try the next one.
                    warn!(port, error = %e, "media port unavailable");
                    last_err = Some(e.to_string());
                }
            }
        }
        Err(LiveError::Socket(last_err.unwrap_or_default()))
    }

    async fn on_call(&mut self, ev: PlatformEvent) {
        match ev {
            PlatformEvent::CallAnswered { session, sdp } => {
                let Some(id) = self.by_session.get(&session).copied() else {
                    return;
                };
                if let Err(e) = self.on_answer(id, &sdp) {
                    warn!(stream = id.0, error = %e, "unusable answer");
                    self.fail(id, e).await;
                }
            }
            PlatformEvent::CallFailed {
                session,
                status,
                reason,
            } => {
                let Some(id) = self.by_session.remove(&session) else {
                    return;
                };
                let why = match status {
                    Some(s) => format!("{s} {reason}"),
                    None => reason,
                };
                if let Some(s) = self.streams.get_mut(&id) {
                    s.session = None;
                }
                self.fail(id, LiveError::Refused(why)).await;
            }
            PlatformEvent::CallEnded { session, reason } => {
                let Some(id) = self.by_session.remove(&session) else {
                    return;
                };
                if let Some(s) = self.streams.get_mut(&id) {
                    s.session = None;
                }
                let why = match reason {
                    CallEndReason::ByeFromDevice => "the device hung up",
                    CallEndReason::DeviceGone => "the device went offline",
                    CallEndReason::HungUp => "stopped",
                    CallEndReason::Timeout => "signalling timeout",
                };
                info!(stream = id.0, why, "live stream ended");
                self.fail(id, LiveError::Ended(why.into())).await;
            }
            _ => {}
        }
    }

    fn on_answer(&mut self, id: StreamId, sdp: &[u8]) -> Result<(), LiveError> {
        let answer = SessionDescription::parse_bytes(sdp)
            .and_then(|sd| PlayAnswer::from_sdp(&sd))
            .map_err(|e| LiveError::BadAnswer(e.to_string()))?;
        let egress = self.egress.clone();
        let tx = self.self_tx.clone();
        let policy = self.cfg.ssrc_policy;
        let no_media = self.cfg.no_media_timeout;
        let Some(s) = self.streams.get_mut(&id) else {
            return Ok(());
        };
        let device_ip: Option<IpAddr> = answer.address.parse().ok();
        let expected = match answer.ssrc {
            Some(theirs) if theirs != s.ssrc => {
                info!(
                    stream = id.0,
                    ours = s.ssrc,
                    theirs,
                    "device changed y= in its answer; expecting its SSRC"
                );
                theirs
            }
            _ => s.ssrc,
        };
        let source = match s.transport {
            MediaTransport::TcpActive => {
                let ip = device_ip
                    .ok_or_else(|| LiveError::BadAnswer(format!("address `{}`", answer.address)))?;
                Source::TcpActive(SocketAddr::new(ip, answer.port))
            }
            _ => s
                .socket
                .take()
                .ok_or_else(|| LiveError::Socket("socket already used".into()))?,
        };
        let core = Ingest::new(
            Instant::now(),
            expected,
            device_ip,
            policy,
            s.transport != MediaTransport::Udp,
        );
        let info = s.info.clone();
        let on_unit = Box::new(move |au| {
            let _ = egress.send(EgressCmd::Unit(id, au));
        });
        let on_event = Box::new(move |ev| {
            let _ = tx.send(Msg::Ingest(id, ev));
        });
        let task = tokio::spawn(ingest::run(source, core, info, on_unit, on_event));
        s.ingest = Some(task);
        s.state = State::WaitingMedia;
        s.deadline = Some(Instant::now() + no_media);
        Ok(())
    }

    async fn on_ingest(&mut self, id: StreamId, ev: IngestEvent) {
        match ev {
            IngestEvent::FirstVideo { codec, audio } => {
                let Some(s) = self.streams.get_mut(&id) else {
                    return;
                };
                let joined = Joined {
                    stream: id,
                    video: codec,
                    audio,
                };
                info!(stream = id.0, codec = codec.name(), "media flowing");
                s.joined = Some(joined);
                s.state = State::Playing;
                s.deadline = None;
                for w in s.waiters.drain(..) {
                    let _ = w.send(Ok(joined));
                }
            }
            IngestEvent::Closed(why) => {
                warn!(stream = id.0, %why, "media connection ended");
                self.fail(id, LiveError::Ended(why)).await;
            }
        }
    }

    /// End a stream: tell waiters and viewers why, BYE if the session is up, free its port
    /// and SSRC.
    async fn fail(&mut self, id: StreamId, err: LiveError) {
        let Some(mut s) = self.streams.remove(&id) else {
            return;
        };
        for w in s.waiters.drain(..) {
            let _ = w.send(Err(err.clone()));
        }
        if let Some(session) = s.session.take() {
            self.by_session.remove(&session);
            self.signalling.hangup(session).await;
        }
        if let Some(t) = s.ingest.take() {
            t.abort();
        }
        let _ = self.egress.send(EgressCmd::EndStream(id));
        let reason = err.to_string();
        for v in std::mem::take(&mut s.viewers) {
            self.viewers.remove(&v);
            metrics::gauge!("live_viewers").decrement(1.0);
            self.remember_ended(v, &s, &reason);
        }
        self.ports.release(s.port);
        self.ssrcs.release(&s.ssrc_text);
    }

    fn remember_ended(&mut self, v: ViewerId, s: &Stream, reason: &str) {
        self.ended.push_back((
            v,
            ViewerView {
                viewer_id: v.0,
                stream_id: s.id.0,
                device_id: s.device_id.clone(),
                channel_id: s.channel_id.clone(),
                state: "ended",
                ended_reason: Some(reason.to_owned()),
            },
        ));
        while self.ended.len() > 1024 {
            self.ended.pop_front();
        }
    }

    fn leave(&mut self, viewer: ViewerId, why: &str) {
        let Some(stream) = self.viewers.remove(&viewer) else {
            return;
        };
        let _ = self.egress.send(EgressCmd::RemoveViewer(viewer));
        metrics::gauge!("live_viewers").decrement(1.0);
        if let Some(s) = self.streams.get_mut(&stream) {
            s.viewers.retain(|v| *v != viewer);
            info!(stream = stream.0, viewer = %viewer, why, remaining = s.viewers.len(), "viewer left");
        }
        if let Some(s) = self.streams.get(&stream) {
            let s_view = ViewerView {
                viewer_id: viewer.0,
                stream_id: stream.0,
                device_id: s.device_id.clone(),
                channel_id: s.channel_id.clone(),
                state: "ended",
                ended_reason: Some(format!("viewer {why}")),
            };
            self.ended.push_back((viewer, s_view));
        }
        self.maybe_linger(stream);
    }

    fn maybe_linger(&mut self, stream: StreamId) {
        let linger = self.cfg.linger;
        if let Some(s) = self.streams.get_mut(&stream)
            && s.viewers.is_empty()
            && s.pending == 0
            && s.linger_until.is_none()
            && s.state == State::Playing
        {
            s.linger_until = Some(Instant::now() + linger);
        }
    }

    async fn request_keyframe(&mut self, stream: StreamId) {
        let interval = self.cfg.keyframe_interval;
        let Some(s) = self.streams.get_mut(&stream) else {
            return;
        };
        let now = Instant::now();
        if s.last_keyframe_request
            .is_some_and(|t| now.duration_since(t) < interval)
        {
            return;
        }
        s.last_keyframe_request = Some(now);
        metrics::counter!("live_keyframe_requests_total").increment(1);
        let (d, c) = (s.device_id.clone(), s.channel_id.clone());
        self.signalling.request_keyframe(d, c).await;
    }

    async fn tick(&mut self) {
        metrics::gauge!("live_media_ports_in_use").set(self.ports.in_use() as f64);
        metrics::gauge!("live_streams").set(self.streams.len() as f64);
        let now = Instant::now();
        let mut due = Vec::new();
        for s in self.streams.values() {
            if s.deadline.is_some_and(|d| d <= now) {
                let err = match s.state {
                    State::Inviting => LiveError::InviteTimeout(self.cfg.invite_timeout),
                    _ => {
                        let listen = format!(
                            "{} {}:{}",
                            s.transport.as_str(),
                            self.cfg.announce_ip,
                            s.port
                        );
                        let why = s
                            .info
                            .lock()
                            .map(|i| i.diagnosis.explain(s.ssrc, &listen))
                            .unwrap_or_default();
                        LiveError::NoMedia {
                            timeout: self.cfg.no_media_timeout,
                            why,
                        }
                    }
                };
                due.push((s.id, err));
            } else if s.linger_until.is_some_and(|d| d <= now) {
                due.push((s.id, LiveError::Ended("no viewers left".into())));
            }
        }
        for (id, err) in due {
            warn!(stream = id.0, error = %err, "ending live stream");
            self.fail(id, err).await;
        }
    }

    fn list(&self) -> Vec<StreamView> {
        let mut v: Vec<StreamView> = self
            .streams
            .values()
            .map(|s| StreamView {
                stream_id: s.id.0,
                device_id: s.device_id.clone(),
                channel_id: s.channel_id.clone(),
                state: s.state.name(),
                transport: s.transport.as_str(),
                ssrc: s.ssrc_text.clone(),
                media_port: s.port,
                viewers: s.viewers.len(),
                started_at: rfc3339(s.started_at),
                media: s.info.lock().map(|i| i.clone()).unwrap_or_default(),
            })
            .collect();
        v.sort_by_key(|s| s.stream_id);
        v
    }

    fn viewer_view(&self, viewer: ViewerId) -> Option<ViewerView> {
        if let Some(stream) = self.viewers.get(&viewer)
            && let Some(s) = self.streams.get(stream)
        {
            return Some(ViewerView {
                viewer_id: viewer.0,
                stream_id: stream.0,
                device_id: s.device_id.clone(),
                channel_id: s.channel_id.clone(),
                state: "playing",
                ended_reason: None,
            });
        }
        self.ended
            .iter()
            .rev()
            .find(|(v, _)| *v == viewer)
            .map(|(_, view)| view.clone())
    }
}
