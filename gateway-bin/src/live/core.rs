//! The live-view core, sans-IO: which streams exist, who watches them, when they start, time
//! out, linger and end. It owns the whole add-viewer sequence — join, INVITE, first video,
//! the egress accepting the offer — so a join that is cancelled at any point (the browser
//! went away during the WHEP POST) cannot strand a stream.
//!
//! Feed it with the `join`/`cancel_join`/`leave` calls of viewers, the results of what it
//! asked for (`started`, `viewer_added`), call events (`call_answered`, `call_failed`,
//! `call_ended`), ingest events (`first_video`, `ingest_status`, `ingest_closed`) and
//! `handle_timeout`; drain [`LiveCore::poll_action`]; sleep until [`LiveCore::poll_timeout`].
//! Every call takes `now`; the core reads no clock and owns no socket or task.
//!
//! Guarantees (tested on simulated time, `core/tests.rs`):
//! - one stream per channel, however many viewers;
//! - a stream with no viewer and no join in progress ends `linger` after the last one left,
//!   whatever state it is in;
//! - INVITE unanswered, no media after the answer, media that stops while playing: the stream
//!   ends, its viewers and waiting joins are told why, and the device gets a BYE;
//! - the history of ended viewers is bounded.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use gb28181::platform::{CallEndReason, InviteParams, SessionId, subject};
use gb28181::sdp::{MediaTransport, PlayAnswer, PlayOffer, SessionDescription};
use media::Codec;
use media::webrtc::{EgressError, StreamId, Tracks, ViewerId, ViewerLocation};
use serde::Serialize;

use super::pools::{PortPool, SsrcPool};
use media::receive::Diagnosis;

/// Settings of the core.
#[derive(Debug, Clone)]
pub struct LiveConfig {
    /// Our platform ID (Subject header, SDP origin).
    pub platform_id: String,
    /// Address devices send media to (`c=` of our offers).
    pub announce_ip: IpAddr,
    /// How long the device has to answer the INVITE.
    pub invite_timeout: Duration,
    /// How long after the answer the first video must arrive.
    pub no_media_timeout: Duration,
    /// How long a playing stream may receive nothing before it is ended.
    pub stall_timeout: Duration,
    /// How long a stream stays after its last viewer left.
    pub linger: Duration,
    /// Minimum time between two key-frame requests to one stream.
    pub keyframe_interval: Duration,
    /// Accept media from the address of the device's SDP answer too (not only from the
    /// address it registered from).
    pub trust_sdp_address: bool,
    /// Ask for a key frame as soon as a stream's video is held after a loss.
    pub keyframe_after_loss: bool,
    /// Ended viewers remembered for their session resource.
    pub max_ended: usize,
}

/// Minimum time between two key-frame requests after losses, to one stream.
pub const LOSS_KEYFRAME_INTERVAL: Duration = Duration::from_millis(400);

/// One viewer's request to watch, identified until it becomes a viewer or fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct JoinId(pub u64);

/// Why a viewer cannot watch, or why its stream ended.
///
/// Equality compares the variant and its text (an [`EgressError`] holds
/// str0m errors, which have no equality of their own).
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
    #[error("{0}")]
    Egress(Arc<EgressError>),
    #[error("the stream manager stopped")]
    Stopped,
}

impl PartialEq for LiveError {
    fn eq(&self, other: &Self) -> bool {
        std::mem::discriminant(self) == std::mem::discriminant(other)
            && self.to_string() == other.to_string()
    }
}

/// A viewer's request to watch a channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinRequest {
    pub device_id: String,
    pub channel_id: String,
    /// How the device sends media, when the join starts the stream.
    pub transport: MediaTransport,
    /// The address the device registered from: media is taken from it only.
    pub device_ip: Option<IpAddr>,
    /// The browser's SDP offer.
    pub offer: String,
    /// Where the browser runs (which ICE candidates it can reach).
    pub location: ViewerLocation,
}

/// What a successful join gives the browser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Watching {
    /// The viewer (its WHEP session).
    pub viewer: ViewerId,
    /// The SDP answer.
    pub answer: String,
}

/// How the ingest of a stream gets its media.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IngestFrom {
    /// The socket bound for the stream (UDP, or the TCP listener the device connects to).
    Bound,
    /// Connect to the device (TCP active).
    Connect(SocketAddr),
}

/// What the core asks its shell to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Bind `port` for `transport` (nothing to bind for TCP active), then send the INVITE;
    /// answer with [`LiveCore::started`] or [`LiveCore::port_unavailable`].
    Start {
        stream: StreamId,
        transport: MediaTransport,
        port: u16,
        invite: InviteParams,
    },
    /// Start receiving media for a stream, accepting it only from `allowed` (the device).
    StartIngest {
        stream: StreamId,
        from: IngestFrom,
        expected_ssrc: u32,
        allowed: Vec<IpAddr>,
    },
    /// Stop a stream's ingest and close its socket.
    StopIngest { stream: StreamId },
    /// Hang up a call (BYE, or CANCEL while it rings).
    Hangup { session: SessionId },
    /// Offer a viewer to the egress; answer with [`LiveCore::viewer_added`].
    AddViewer {
        join: JoinId,
        tracks: Tracks,
        offer: String,
        location: ViewerLocation,
    },
    /// Take a viewer out of the egress.
    RemoveViewer { viewer: ViewerId },
    /// Forget a stream in the egress (its cache, its remaining viewers).
    EndEgress { stream: StreamId },
    /// Ask the device for a key frame.
    RequestKeyframe {
        device_id: String,
        channel_id: String,
    },
    /// The outcome of a join. If nobody waits for it any more and it succeeded, the shell
    /// calls [`LiveCore::leave`] for the viewer.
    JoinResult {
        join: JoinId,
        result: Result<Watching, LiveError>,
    },
}

/// A stream's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamState {
    /// Binding its port and sending the INVITE.
    Starting,
    /// INVITE sent, no answer yet.
    Inviting,
    /// Answered; waiting for the first video frame.
    WaitingMedia,
    /// Video flows.
    Playing,
}

impl StreamState {
    /// Stable name for the API.
    pub fn name(self) -> &'static str {
        match self {
            StreamState::Starting => "starting",
            StreamState::Inviting => "inviting",
            StreamState::WaitingMedia => "waiting_media",
            StreamState::Playing => "playing",
        }
    }
}

/// `GET /api/v1/streams` entries (without the ingest's live counters).
#[derive(Debug, Clone, Serialize)]
pub struct StreamSummary {
    pub stream_id: u64,
    pub device_id: String,
    pub channel_id: String,
    pub state: &'static str,
    pub transport: &'static str,
    pub ssrc: String,
    pub media_port: u16,
    pub viewers: usize,
    pub joining: usize,
    #[serde(skip)]
    pub started_at: SystemTime,
}

/// What a viewer's session resource says.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ViewerView {
    pub viewer_id: u64,
    pub stream_id: u64,
    pub device_id: String,
    pub channel_id: String,
    pub state: &'static str,
    pub ended_reason: Option<String>,
}

/// What the core counted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LiveStats {
    pub streams_started: u64,
    pub keyframe_requests: u64,
    pub joins_cancelled: u64,
    pub streams_stalled: u64,
    /// Media packets dropped because they came from another address than the device's.
    pub rejected_packets: u64,
    /// Media TCP connections refused (another address, or while the device's was up).
    pub rejected_connections: u64,
}

#[derive(Debug)]
struct Stream {
    id: StreamId,
    device_id: String,
    channel_id: String,
    transport: MediaTransport,
    ssrc_text: String,
    ssrc: u32,
    port: u16,
    port_attempts: u32,
    device_ip: Option<IpAddr>,
    session: Option<SessionId>,
    state: StreamState,
    /// Invite timeout, no-media timeout or stall deadline, by state.
    deadline: Option<Instant>,
    linger_until: Option<Instant>,
    joins: Vec<JoinId>,
    viewers: Vec<ViewerId>,
    tracks: Option<Tracks>,
    accepted_packets: u64,
    diagnosis: Diagnosis,
    started_at: SystemTime,
    last_keyframe_request: Option<Instant>,
}

#[derive(Debug)]
struct Join {
    stream: StreamId,
    offer: String,
    location: ViewerLocation,
    /// Offered to the egress, waiting for [`LiveCore::viewer_added`].
    offered: bool,
    /// Nobody waits for it any more.
    cancelled: bool,
}

/// Ports tried for one stream before it fails.
const PORT_ATTEMPTS: u32 = 16;

/// The core. See the module documentation.
#[derive(Debug)]
pub struct LiveCore {
    cfg: LiveConfig,
    ports: PortPool,
    ssrcs: SsrcPool,
    streams: HashMap<StreamId, Stream>,
    by_channel: HashMap<(String, String), StreamId>,
    by_session: HashMap<SessionId, StreamId>,
    joins: HashMap<JoinId, Join>,
    viewers: HashMap<ViewerId, StreamId>,
    ended: VecDeque<ViewerView>,
    actions: VecDeque<Action>,
    next_stream: u64,
    next_join: u64,
    stats: LiveStats,
}

impl LiveCore {
    /// A core handing out `ports` and SSRCs of `domain`.
    pub fn new(cfg: LiveConfig, ports: PortPool, ssrcs: SsrcPool) -> LiveCore {
        LiveCore {
            cfg,
            ports,
            ssrcs,
            streams: HashMap::new(),
            by_channel: HashMap::new(),
            by_session: HashMap::new(),
            joins: HashMap::new(),
            viewers: HashMap::new(),
            ended: VecDeque::new(),
            actions: VecDeque::new(),
            next_stream: 0,
            next_join: 0,
            stats: LiveStats::default(),
        }
    }

    /// A viewer wants to watch a channel. The outcome comes as [`Action::JoinResult`]; the
    /// stream is shared with other viewers.
    pub fn join(&mut self, now: Instant, wall: SystemTime, req: JoinRequest) -> JoinId {
        self.next_join += 1;
        let join = JoinId(self.next_join);
        let key = (req.device_id, req.channel_id);
        let stream = match self.by_channel.get(&key).copied() {
            Some(s) => s,
            None => {
                match self.start_stream(now, wall, &key.0, &key.1, req.transport, req.device_ip) {
                    Ok(s) => s,
                    Err(e) => {
                        self.actions.push_back(Action::JoinResult {
                            join,
                            result: Err(e),
                        });
                        return join;
                    }
                }
            }
        };
        self.joins.insert(
            join,
            Join {
                stream,
                offer: req.offer,
                location: req.location,
                offered: false,
                cancelled: false,
            },
        );
        if let Some(s) = self.streams.get_mut(&stream) {
            s.joins.push(join);
            s.linger_until = None;
        }
        self.offer_if_playing(join);
        join
    }

    /// The one who asked for `join` does not wait any more (the HTTP request was dropped).
    pub fn cancel_join(&mut self, now: Instant, join: JoinId) {
        let Some(j) = self.joins.get_mut(&join) else {
            return;
        };
        self.stats.joins_cancelled += 1;
        if j.offered {
            // The egress is answering: let it, then take the viewer out (`viewer_added`).
            j.cancelled = true;
            return;
        }
        let stream = j.stream;
        self.joins.remove(&join);
        if let Some(s) = self.streams.get_mut(&stream) {
            s.joins.retain(|j| *j != join);
        }
        self.maybe_linger(now, stream);
    }

    /// The egress answered a viewer's offer ([`LiveError::Egress`] when it refused it).
    pub fn viewer_added(
        &mut self,
        now: Instant,
        join: JoinId,
        result: Result<(ViewerId, String), LiveError>,
    ) {
        let Some(j) = self.joins.remove(&join) else {
            // The stream ended while the egress answered.
            if let Ok((viewer, _)) = result {
                self.actions.push_back(Action::RemoveViewer { viewer });
            }
            return;
        };
        let stream = j.stream;
        if let Some(s) = self.streams.get_mut(&stream) {
            s.joins.retain(|x| *x != join);
        }
        match result {
            Ok((viewer, answer)) if !j.cancelled && self.streams.contains_key(&stream) => {
                if let Some(s) = self.streams.get_mut(&stream) {
                    s.viewers.push(viewer);
                    s.linger_until = None;
                }
                self.viewers.insert(viewer, stream);
                self.actions.push_back(Action::JoinResult {
                    join,
                    result: Ok(Watching { viewer, answer }),
                });
            }
            Ok((viewer, _)) => {
                self.actions.push_back(Action::RemoveViewer { viewer });
                self.maybe_linger(now, stream);
            }
            Err(e) => {
                if !j.cancelled {
                    self.actions.push_back(Action::JoinResult {
                        join,
                        result: Err(e),
                    });
                }
                self.maybe_linger(now, stream);
            }
        }
    }

    /// A viewer left (WHEP DELETE, disconnected, or its answer found nobody waiting).
    pub fn leave(&mut self, now: Instant, viewer: ViewerId, why: &str) {
        let Some(stream) = self.viewers.remove(&viewer) else {
            return;
        };
        self.actions.push_back(Action::RemoveViewer { viewer });
        if let Some(s) = self.streams.get_mut(&stream) {
            s.viewers.retain(|v| *v != viewer);
            let view = view(viewer, s, "ended", Some(format!("viewer {why}")));
            self.remember(view);
        }
        self.maybe_linger(now, stream);
    }

    /// The shell bound the port and sent the INVITE (or failed to).
    pub fn started(
        &mut self,
        now: Instant,
        stream: StreamId,
        result: Result<SessionId, LiveError>,
    ) {
        let Some(s) = self.streams.get_mut(&stream) else {
            // The stream ended meanwhile: the call it started is not wanted.
            if let Ok(session) = result {
                self.actions.push_back(Action::Hangup { session });
            }
            return;
        };
        match result {
            Ok(session) => {
                s.session = Some(session);
                if s.state == StreamState::Starting {
                    s.state = StreamState::Inviting;
                }
                self.by_session.insert(session, stream);
            }
            Err(e) => self.fail(now, stream, e),
        }
    }

    /// The shell could not bind the port it was given (another process holds it).
    pub fn port_unavailable(&mut self, now: Instant, stream: StreamId, why: &str) {
        let Some(s) = self.streams.get_mut(&stream) else {
            return;
        };
        // The port stays marked used: it is not ours to hand out.
        s.port_attempts += 1;
        let port = if s.port_attempts < PORT_ATTEMPTS {
            self.ports.take()
        } else {
            None
        };
        let Some(port) = port else {
            return self.fail(now, stream, LiveError::Socket(why.to_owned()));
        };
        let Some(s) = self.streams.get_mut(&stream) else {
            return;
        };
        s.port = port;
        self.actions.push_back(Action::Start {
            stream,
            transport: s.transport,
            port,
            invite: invite_params(&self.cfg, s),
        });
    }

    /// Whether a stream is still live (a shell drops what it bound for one that is not).
    pub fn has_stream(&self, stream: StreamId) -> bool {
        self.streams.contains_key(&stream)
    }

    /// The device answered the INVITE with `sdp`.
    pub fn call_answered(&mut self, now: Instant, session: SessionId, sdp: &[u8]) {
        let Some(stream) = self.by_session.get(&session).copied() else {
            return;
        };
        let answer = SessionDescription::parse_bytes(sdp)
            .and_then(|sd| PlayAnswer::from_sdp(&sd))
            .map_err(|e| LiveError::BadAnswer(e.to_string()));
        let answer = match answer {
            Ok(a) => a,
            Err(e) => return self.fail(now, stream, e),
        };
        let trust_sdp = self.cfg.trust_sdp_address;
        let no_media = self.cfg.no_media_timeout;
        let Some(s) = self.streams.get_mut(&stream) else {
            return;
        };
        let answer_ip: Option<IpAddr> = answer.address.parse().ok();
        // A device answering with another `y=` announces what it will send.
        let expected_ssrc = answer.ssrc.unwrap_or(s.ssrc);
        let mut allowed: Vec<IpAddr> = s.device_ip.into_iter().collect();
        if trust_sdp || allowed.is_empty() {
            allowed.extend(answer_ip.filter(|ip| !allowed.contains(ip)));
        }
        let from = match s.transport {
            MediaTransport::TcpActive => match answer_ip {
                // We connect to where it listens; a device behind NAT is reached at the
                // address it registered from.
                Some(ip) => {
                    let ip = if trust_sdp {
                        ip
                    } else {
                        s.device_ip.unwrap_or(ip)
                    };
                    IngestFrom::Connect(SocketAddr::new(ip, answer.port))
                }
                None => {
                    let e = LiveError::BadAnswer(format!("address `{}`", answer.address));
                    return self.fail(now, stream, e);
                }
            },
            _ => IngestFrom::Bound,
        };
        s.state = StreamState::WaitingMedia;
        s.deadline = Some(now + no_media);
        self.actions.push_back(Action::StartIngest {
            stream,
            from,
            expected_ssrc,
            allowed,
        });
    }

    /// The INVITE failed (refused, unanswered, device gone, cancelled).
    pub fn call_failed(
        &mut self,
        now: Instant,
        session: SessionId,
        status: Option<u16>,
        reason: &str,
    ) {
        let Some(stream) = self.by_session.remove(&session) else {
            return;
        };
        if let Some(s) = self.streams.get_mut(&stream) {
            s.session = None;
        }
        let why = match status {
            Some(s) => format!("{s} {reason}"),
            None => reason.to_owned(),
        };
        self.fail(now, stream, LiveError::Refused(why));
    }

    /// An answered call ended.
    pub fn call_ended(&mut self, now: Instant, session: SessionId, reason: CallEndReason) {
        let Some(stream) = self.by_session.remove(&session) else {
            return;
        };
        if let Some(s) = self.streams.get_mut(&stream) {
            s.session = None;
        }
        let why = match reason {
            CallEndReason::ByeFromDevice => "the device hung up",
            CallEndReason::DeviceGone => "the device went offline",
            CallEndReason::HungUp => "stopped",
            CallEndReason::Timeout => "signalling timeout",
        };
        self.fail(now, stream, LiveError::Ended(why.into()));
    }

    /// The first video access unit of a stream arrived: viewers can be added.
    pub fn first_video(
        &mut self,
        now: Instant,
        stream: StreamId,
        video: Codec,
        audio: Option<Codec>,
    ) {
        let stall = self.cfg.stall_timeout;
        let Some(s) = self.streams.get_mut(&stream) else {
            return;
        };
        if s.state == StreamState::Playing {
            return;
        }
        s.state = StreamState::Playing;
        s.tracks = Some(Tracks::new(stream, Some(video), audio));
        s.deadline = Some(now + stall);
        let waiting = s.joins.clone();
        for join in waiting {
            self.offer_if_playing(join);
        }
    }

    /// What the ingest saw so far (it reports every half second or so): packets accepted
    /// as the stream, and its diagnosis.
    pub fn ingest_status(
        &mut self,
        now: Instant,
        stream: StreamId,
        accepted: u64,
        diagnosis: Diagnosis,
    ) {
        let stall = self.cfg.stall_timeout;
        let Some(s) = self.streams.get_mut(&stream) else {
            return;
        };
        if accepted > s.accepted_packets && s.state == StreamState::Playing {
            s.deadline = Some(now + stall);
        }
        self.stats.rejected_packets += diagnosis
            .other_source
            .saturating_sub(s.diagnosis.other_source);
        self.stats.rejected_connections += diagnosis
            .refused_connections
            .saturating_sub(s.diagnosis.refused_connections);
        s.accepted_packets = accepted;
        s.diagnosis = diagnosis;
    }

    /// The ingest cannot go on (its TCP connection closed or failed).
    pub fn ingest_closed(&mut self, now: Instant, stream: StreamId, why: &str) {
        self.fail(now, stream, LiveError::Ended(why.to_owned()));
    }

    /// The stream's video is held after a loss until a key frame: ask for one now (unless
    /// configured not to). The receiver asks at most every 500 ms while a hold lasts; this
    /// limit only keeps a burst of asks from becoming a burst of requests. Viewers'
    /// requests keep the configured, longer interval: a freeze ends only with a key frame.
    pub fn keyframe_after_loss(&mut self, now: Instant, stream: StreamId) {
        if self.cfg.keyframe_after_loss {
            self.request_keyframe(now, stream, LOSS_KEYFRAME_INTERVAL);
        }
    }

    /// A viewer (or the egress for it) wants a key frame; rate-limited per stream.
    pub fn keyframe_wanted(&mut self, now: Instant, viewer: ViewerId) {
        if let Some(stream) = self.viewers.get(&viewer).copied() {
            self.keyframe_for(now, stream);
        }
    }

    /// The stream needs a key frame (a frame was lost, a viewer connected with nothing
    /// cached); rate-limited per stream.
    pub fn keyframe_for(&mut self, now: Instant, stream: StreamId) {
        self.request_keyframe(now, stream, self.cfg.keyframe_interval);
    }

    fn request_keyframe(&mut self, now: Instant, stream: StreamId, interval: Duration) {
        let Some(s) = self.streams.get_mut(&stream) else {
            return;
        };
        if s.last_keyframe_request
            .is_some_and(|t| now.saturating_duration_since(t) < interval)
        {
            return;
        }
        s.last_keyframe_request = Some(now);
        self.stats.keyframe_requests += 1;
        self.actions.push_back(Action::RequestKeyframe {
            device_id: s.device_id.clone(),
            channel_id: s.channel_id.clone(),
        });
    }

    /// End every stream (shutdown): each live call gets its BYE.
    pub fn shutdown(&mut self, now: Instant) {
        let ids: Vec<StreamId> = self.streams.keys().copied().collect();
        for id in ids {
            self.fail(now, id, LiveError::Ended("the gateway is stopping".into()));
        }
    }

    /// Drive deadlines: INVITE, first media, stall, linger.
    pub fn handle_timeout(&mut self, now: Instant) {
        let mut due = Vec::new();
        for s in self.streams.values() {
            if s.deadline.is_some_and(|d| d <= now) {
                let err = match s.state {
                    StreamState::Starting | StreamState::Inviting => {
                        LiveError::InviteTimeout(self.cfg.invite_timeout)
                    }
                    StreamState::WaitingMedia => {
                        let listen = format!(
                            "{} {}:{}",
                            s.transport.as_str(),
                            self.cfg.announce_ip,
                            s.port
                        );
                        LiveError::NoMedia {
                            timeout: self.cfg.no_media_timeout,
                            why: s.diagnosis.explain(s.ssrc, &listen),
                        }
                    }
                    StreamState::Playing => {
                        self.stats.streams_stalled += 1;
                        LiveError::Ended(format!(
                            "the device stopped sending (nothing for {} s)",
                            self.cfg.stall_timeout.as_secs()
                        ))
                    }
                };
                due.push((s.id, err));
            } else if s.linger_until.is_some_and(|d| d <= now) {
                due.push((s.id, LiveError::Ended("no viewers left".into())));
            }
        }
        for (id, err) in due {
            self.fail(now, id, err);
        }
    }

    /// When [`LiveCore::handle_timeout`] is due next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.streams
            .values()
            .flat_map(|s| [s.deadline, s.linger_until])
            .flatten()
            .min()
    }

    /// The next thing to do.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// Live streams, oldest first.
    pub fn streams(&self) -> Vec<StreamSummary> {
        let mut v: Vec<StreamSummary> = self
            .streams
            .values()
            .map(|s| StreamSummary {
                stream_id: s.id.0,
                device_id: s.device_id.clone(),
                channel_id: s.channel_id.clone(),
                state: s.state.name(),
                transport: s.transport.as_str(),
                ssrc: s.ssrc_text.clone(),
                media_port: s.port,
                viewers: s.viewers.len(),
                joining: s.joins.len(),
                started_at: s.started_at,
            })
            .collect();
        v.sort_by_key(|s| s.stream_id);
        v
    }

    /// A viewer's state (also after its stream ended, while remembered).
    pub fn viewer(&self, viewer: ViewerId) -> Option<ViewerView> {
        if let Some(stream) = self.viewers.get(&viewer)
            && let Some(s) = self.streams.get(stream)
        {
            return Some(view(viewer, s, "playing", None));
        }
        self.ended
            .iter()
            .rev()
            .find(|v| v.viewer_id == viewer.0)
            .cloned()
    }

    /// Live streams.
    pub fn stream_count(&self) -> usize {
        self.streams.len()
    }

    /// Viewers watching now.
    pub fn viewer_count(&self) -> usize {
        self.viewers.len()
    }

    /// Media ports in use.
    pub fn ports_in_use(&self) -> usize {
        self.ports.in_use()
    }

    /// Ended viewers remembered.
    #[cfg(test)]
    pub fn ended_count(&self) -> usize {
        self.ended.len()
    }

    /// What the core counted.
    pub fn stats(&self) -> &LiveStats {
        &self.stats
    }

    fn start_stream(
        &mut self,
        now: Instant,
        wall: SystemTime,
        device_id: &str,
        channel_id: &str,
        transport: MediaTransport,
        device_ip: Option<IpAddr>,
    ) -> Result<StreamId, LiveError> {
        let port = self.ports.take().ok_or(LiveError::NoPort)?;
        let Some((ssrc_text, ssrc)) = self.ssrcs.take() else {
            self.ports.release(port);
            return Err(LiveError::NoPort);
        };
        self.next_stream += 1;
        let id = StreamId(self.next_stream);
        self.stats.streams_started += 1;
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
                port_attempts: 0,
                device_ip,
                session: None,
                state: StreamState::Starting,
                deadline: Some(now + self.cfg.invite_timeout),
                linger_until: None,
                joins: Vec::new(),
                viewers: Vec::new(),
                tracks: None,
                accepted_packets: 0,
                diagnosis: Diagnosis::default(),
                started_at: wall,
                last_keyframe_request: None,
            },
        );
        self.by_channel
            .insert((device_id.to_owned(), channel_id.to_owned()), id);
        if let Some(s) = self.streams.get(&id) {
            self.actions.push_back(Action::Start {
                stream: id,
                transport,
                port,
                invite: invite_params(&self.cfg, s),
            });
        }
        Ok(id)
    }

    /// Offer a waiting join to the egress once its stream plays.
    fn offer_if_playing(&mut self, join: JoinId) {
        let Some(j) = self.joins.get_mut(&join) else {
            return;
        };
        let Some(tracks) = self.streams.get(&j.stream).and_then(|s| s.tracks) else {
            return;
        };
        if j.offered {
            return;
        }
        j.offered = true;
        self.actions.push_back(Action::AddViewer {
            join,
            tracks,
            offer: std::mem::take(&mut j.offer),
            location: j.location,
        });
    }

    fn maybe_linger(&mut self, now: Instant, stream: StreamId) {
        let linger = self.cfg.linger;
        if let Some(s) = self.streams.get_mut(&stream)
            && s.viewers.is_empty()
            && s.joins.is_empty()
            && s.linger_until.is_none()
        {
            s.linger_until = Some(now + linger);
        }
    }

    fn remember(&mut self, view: ViewerView) {
        self.ended.push_back(view);
        while self.ended.len() > self.cfg.max_ended {
            self.ended.pop_front();
        }
    }

    /// End a stream: waiting joins and viewers are told why, the call gets its BYE, the
    /// ingest and the egress forget it, its port and SSRC go back.
    fn fail(&mut self, _now: Instant, id: StreamId, err: LiveError) {
        let Some(mut s) = self.streams.remove(&id) else {
            return;
        };
        self.by_channel
            .remove(&(s.device_id.clone(), s.channel_id.clone()));
        for join in std::mem::take(&mut s.joins) {
            if let Some(j) = self.joins.remove(&join)
                && !j.cancelled
            {
                self.actions.push_back(Action::JoinResult {
                    join,
                    result: Err(err.clone()),
                });
            }
        }
        if let Some(session) = s.session.take() {
            self.by_session.remove(&session);
            self.actions.push_back(Action::Hangup { session });
        }
        self.actions.push_back(Action::StopIngest { stream: id });
        self.actions.push_back(Action::EndEgress { stream: id });
        let reason = err.to_string();
        for v in std::mem::take(&mut s.viewers) {
            self.viewers.remove(&v);
            let view = view(v, &s, "ended", Some(reason.clone()));
            self.remember(view);
        }
        self.ports.release(s.port);
        self.ssrcs.release(&s.ssrc_text);
    }
}

/// The INVITE that starts a stream: our offer (GB/T 28181-2022 §9.2) and the Subject.
fn invite_params(cfg: &LiveConfig, s: &Stream) -> InviteParams {
    let offer = PlayOffer {
        platform_id: cfg.platform_id.clone(),
        address: cfg.announce_ip.to_string(),
        port: s.port,
        transport: s.transport,
        ssrc: s.ssrc_text.clone(),
        stream_number: Some(0),
    }
    .build();
    InviteParams {
        device_id: s.device_id.clone(),
        channel_id: s.channel_id.clone(),
        sdp: offer.to_string(),
        subject: subject(&s.channel_id, &s.ssrc_text, &cfg.platform_id),
    }
}

fn view(viewer: ViewerId, s: &Stream, state: &'static str, reason: Option<String>) -> ViewerView {
    ViewerView {
        viewer_id: viewer.0,
        stream_id: s.id.0,
        device_id: s.device_id.clone(),
        channel_id: s.channel_id.clone(),
        state,
        ended_reason: reason,
    }
}

#[cfg(test)]
mod tests;
