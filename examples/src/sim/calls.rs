//! Live-view calls of simulated devices (GB/T 28181-2022 §9.2): INVITE answered with an SDP
//! answer, media started on the ACK, stopped on BYE; a BYE of our own when the media
//! connection fails or the platform closes it. Runs inside the SIP loop and never blocks it:
//! sockets are bound without waiting and each stream is a tokio task.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use gb28181::device::{Device, DeviceDialog};
use gb28181::sdp::MediaTransport;
use gb28181::sip::{Method, Request};
use gb28181::transaction::TransactionKey;
use gb28181::ua;
use media::Codec;
use tokio::sync::{mpsc, oneshot};
use tracing::{info, warn};

use super::es::Clip;
use super::offer::{PlayRequest, answer, format_line};
use super::source::{MediaSource, SourceConfig};
use super::stats::{CallStats, MediaStats};
use super::stream::{self, Plan, StreamEnd, StreamSpec};

/// How long an answered call waits for its ACK (64 × T1, RFC 3261 Timer H).
pub const ACK_TIMEOUT: Duration = Duration::from_secs(32);

/// What the simulated cameras send, and how they misbehave.
#[derive(Debug, Clone)]
pub struct MediaOptions {
    /// The clip to loop; without it INVITEs are refused (488) unless `no_media`.
    pub clip: Option<Arc<Clip>>,
    /// Frame rate.
    pub fps: f64,
    /// G.711 tone in the PS (`G711A` or `G711U`).
    pub audio: Option<Codec>,
    /// Answer INVITEs but never send media.
    pub no_media: bool,
    /// Send with another SSRC than the offer's `y=` (the answer still echoes `y=`).
    pub wrong_ssrc: bool,
    /// Wait this long after the ACK before the first packet.
    pub media_delay: Duration,
    /// Our media address (bound and announced in `c=`/`o=`).
    pub local_ip: IpAddr,
    /// TCP connection attempts when we connect.
    pub connect_attempts: u32,
    /// Pause between them.
    pub connect_interval: Duration,
    /// How long we wait for the platform to connect when we listen.
    pub accept_timeout: Duration,
}

/// A stream that ended by itself (not stopped by BYE), reported back to the SIP loop.
#[derive(Debug)]
pub struct StreamEnded {
    /// The device index.
    pub device: usize,
    /// The call.
    pub call_id: String,
    /// Why.
    pub end: StreamEnd,
}

enum State {
    /// 200 sent, waiting for the ACK.
    Answered { at: Instant, spec: Box<StreamSpec> },
    /// ACKed: the task runs until `stop` fires or is dropped.
    Streaming { _stop: oneshot::Sender<()> },
}

struct Call {
    dialog: DeviceDialog,
    state: State,
    /// The channel streamed.
    channel: String,
    /// Raised for the stream task when a key frame is asked for.
    keyframe: Arc<AtomicBool>,
}

/// The calls of every simulated device.
pub struct Calls {
    opts: MediaOptions,
    stats: Arc<MediaStats>,
    calls: HashMap<(usize, String), Call>,
    ended: mpsc::UnboundedSender<StreamEnded>,
    counters: CallStats,
}

impl Calls {
    /// Calls with `opts`; ended streams are reported on `ended`.
    pub fn new(opts: MediaOptions, ended: mpsc::UnboundedSender<StreamEnded>) -> Calls {
        Calls {
            opts,
            stats: Arc::new(MediaStats::default()),
            calls: HashMap::new(),
            ended,
            counters: CallStats::default(),
        }
    }

    /// Media counters.
    pub fn media_stats(&self) -> &MediaStats {
        &self.stats
    }

    /// Call counters.
    pub fn call_stats(&self) -> CallStats {
        self.counters
    }

    /// Calls answered or streaming.
    pub fn len(&self) -> usize {
        self.calls.len()
    }

    /// No call.
    pub fn is_empty(&self) -> bool {
        self.calls.is_empty()
    }

    /// A request the device core left to us ([`gb28181::device::DeviceEvent::Request`]).
    pub fn on_request(
        &mut self,
        now: Instant,
        index: usize,
        device: &mut Device,
        key: TransactionKey,
        req: &Request,
    ) {
        let call_id = req.headers.call_id().unwrap_or_default().to_owned();
        match req.method {
            Method::Invite => self.on_invite(now, index, device, &key, req, call_id),
            Method::Bye => {
                let status = match self.calls.remove(&(index, call_id.clone())) {
                    Some(_) => {
                        // Dropping the call drops its stop sender: the task ends.
                        self.counters.byes_received += 1;
                        info!(%call_id, "BYE from the platform: stream stopped");
                        200
                    }
                    None => 481,
                };
                reply(now, device, &key, req, status);
            }
            Method::Info | Method::Options => {
                let known = self.calls.contains_key(&(index, call_id));
                let status = if known || req.method == Method::Options {
                    200
                } else {
                    481
                };
                reply(now, device, &key, req, status);
            }
            Method::Cancel => reply(now, device, &key, req, 481),
            _ => reply(now, device, &key, req, 405),
        }
    }

    fn on_invite(
        &mut self,
        now: Instant,
        index: usize,
        device: &mut Device,
        key: &TransactionKey,
        req: &Request,
        call_id: String,
    ) {
        let channel = req
            .headers
            .to()
            .ok()
            .and_then(|t| ua::uri_user(&t.uri).map(str::to_owned))
            .or_else(|| ua::uri_user(&req.uri).map(str::to_owned))
            .unwrap_or_default();
        let cfg = device.config();
        let known = cfg.id == channel || cfg.channels.iter().any(|c| c.device_id == channel);
        if !known {
            warn!(%channel, device = %cfg.id, "INVITE for a channel we do not have: 404");
            return self.refuse(now, device, key, req, 404);
        }
        if self.calls.contains_key(&(index, call_id.clone())) {
            warn!(%call_id, "INVITE inside a live call (re-INVITE) not simulated: 488");
            return self.refuse(now, device, key, req, 488);
        }
        let play = match PlayRequest::parse(&req.body) {
            Ok(p) => p,
            Err(e) => {
                warn!(%channel, %call_id, error = %e, "unusable INVITE offer: 488");
                return self.refuse(now, device, key, req, 488);
            }
        };
        let clip = match (&self.opts.clip, self.opts.no_media) {
            (Some(c), _) => Some(c.clone()),
            (None, true) => None,
            (None, false) => {
                warn!(%channel, "INVITE but no --video to stream: 488");
                return self.refuse(now, device, key, req, 488);
            }
        };
        let (plan, port) = match Plan::bind(play.transport, self.opts.local_ip, play.remote) {
            Ok(p) => p,
            Err(e) => {
                warn!(%channel, error = %e, "cannot bind a media socket: 500");
                return self.refuse(now, device, key, req, 500);
            }
        };
        let format = match &clip {
            Some(c) => {
                let secs = c.units.len() as f64 / self.opts.fps.max(1.0);
                let kbps = (c.len_bytes() as f64 * 8.0 / 1000.0 / secs.max(0.001)).round();
                format_line(
                    c.codec == Codec::H265,
                    c.width.zip(c.height),
                    self.opts.fps,
                    Some(kbps as u32),
                    self.opts.audio.is_some(),
                )
            }
            None => format_line(false, None, self.opts.fps, None, self.opts.audio.is_some()),
        };
        let sdp = answer(&play, &channel, self.opts.local_ip, port, Some(format));
        let ssrc = if self.opts.wrong_ssrc {
            play.ssrc ^ 0x5a5a_5a5a
        } else {
            play.ssrc
        };
        let source = clip.filter(|_| !self.opts.no_media).map(|clip| {
            MediaSource::new(
                clip,
                SourceConfig {
                    fps: self.opts.fps,
                    audio: self.opts.audio,
                    ssrc,
                    payload_type: play.payload_type,
                    rfc4571: play.transport != MediaTransport::Udp,
                    first_sequence: rand::random(),
                    first_pts: u64::from(rand::random::<u32>()),
                    ..SourceConfig::default()
                },
            )
        });
        let dialog = device.accept_invite(now, key, req, &sdp.to_string());
        self.counters.invites_answered += 1;
        info!(
            %channel, %call_id, transport = play.transport.as_str(), remote = %play.remote,
            port, ssrc = play.ssrc, sent_ssrc = ssrc, "INVITE answered"
        );
        let keyframe = Arc::new(AtomicBool::new(false));
        let spec = StreamSpec {
            label: format!("{channel} {call_id}"),
            transport: play.transport,
            plan,
            source,
            delay: self.opts.media_delay,
            connect_attempts: self.opts.connect_attempts,
            connect_interval: self.opts.connect_interval,
            accept_timeout: self.opts.accept_timeout,
            stats: self.stats.clone(),
            keyframe: keyframe.clone(),
        };
        self.calls.insert(
            (index, call_id),
            Call {
                dialog,
                channel,
                keyframe,
                state: State::Answered {
                    at: now,
                    spec: Box::new(spec),
                },
            },
        );
    }

    fn refuse(
        &mut self,
        now: Instant,
        device: &mut Device,
        key: &TransactionKey,
        req: &Request,
        status: u16,
    ) {
        self.counters.invites_refused += 1;
        device.reject(now, key, req, status);
    }

    /// A key-frame request (IFrameCmd) for `target` (a channel, or the device for all its
    /// channels) of device `index`: its streams send their next frame as a key frame.
    /// Returns the streams told.
    pub fn keyframe_requested(&mut self, index: usize, device_id: &str, target: &str) -> usize {
        let mut n = 0;
        for ((i, _), call) in &self.calls {
            if *i == index && (call.channel == target || device_id == target) {
                call.keyframe.store(true, Ordering::Relaxed);
                n += 1;
            }
        }
        self.counters.keyframe_requests += 1;
        n
    }

    /// The ACK of a 200 ([`gb28181::device::DeviceEvent::Ack`]): start the stream.
    pub fn on_ack(&mut self, index: usize, req: &Request) {
        let Some(call_id) = req.headers.call_id() else {
            return;
        };
        let Some(call) = self.calls.get_mut(&(index, call_id.to_owned())) else {
            return;
        };
        if !matches!(call.state, State::Answered { .. }) {
            return; // a retransmitted ACK
        }
        let (stop_tx, stop_rx) = oneshot::channel();
        let State::Answered { spec, .. } =
            std::mem::replace(&mut call.state, State::Streaming { _stop: stop_tx })
        else {
            return;
        };
        self.counters.acks += 1;
        let ended = self.ended.clone();
        let call_id = call_id.to_owned();
        tokio::spawn(async move {
            let end = stream::run(*spec, stop_rx).await;
            if end.needs_bye() {
                let _ = ended.send(StreamEnded {
                    device: index,
                    call_id,
                    end,
                });
            }
        });
    }

    /// A stream ended by itself: hang up with BYE if the call is still up. Returns true when a
    /// BYE was sent (the caller flushes the device).
    pub fn on_stream_ended(
        &mut self,
        now: Instant,
        device: &mut Device,
        ended: &StreamEnded,
    ) -> bool {
        let Some(call) = self.calls.remove(&(ended.device, ended.call_id.clone())) else {
            return false;
        };
        info!(call_id = %ended.call_id, end = ?ended.end, "media ended: sending BYE");
        device.bye(now, &call.dialog);
        self.counters.byes_sent += 1;
        true
    }

    /// Drops answered calls whose ACK never came ([`ACK_TIMEOUT`]).
    pub fn expire(&mut self, now: Instant) {
        let before = self.calls.len();
        self.calls.retain(|(_, call_id), c| match c.state {
            State::Answered { at, .. } if now.saturating_duration_since(at) >= ACK_TIMEOUT => {
                warn!(%call_id, "no ACK for our 200: call dropped");
                false
            }
            _ => true,
        });
        self.counters.ack_timeouts += (before - self.calls.len()) as u64;
    }
}

fn reply(now: Instant, device: &mut Device, key: &TransactionKey, req: &Request, status: u16) {
    let local = device.local().clone();
    let resp = ua::response(req, status, &gb28181::transaction::new_tag(), &local);
    device.respond(now, key, resp);
}
