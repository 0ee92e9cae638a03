//! INVITE sessions the platform starts toward channels (GB/T 28181-2022 §9.2; RFC 3261 §13,
//! §15): INVITE with SDP, ACK of the 200, BYE from either side, CANCEL before the answer.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::time::Instant;

use bytes::Bytes;
use tracing::{debug, info, warn};

use super::{CommandError, Platform, PlatformEvent};
use crate::sip::{HeaderName, Method, NameAddr, Request, Response, Uri};
use crate::transaction::{TransactionKey, new_tag};
use crate::transport::Transport;
use crate::ua;

/// Identifies one INVITE session started with [`Platform::invite`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(pub u64);

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "session#{}", self.0)
    }
}

/// What to invite.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InviteParams {
    /// The registered device that carries the channel.
    pub device_id: String,
    /// The channel (Request-URI and To user).
    pub channel_id: String,
    /// The SDP offer.
    pub sdp: String,
    /// `Subject: <channel>:<ssrc>,<platform>:0` (§9.2.3); built by [`subject`] usually.
    pub subject: String,
}

/// The GB `Subject` header: `<media sender ID>:<sender stream seq>,<receiver ID>:<seq>`.
pub fn subject(channel_id: &str, ssrc: &str, platform_id: &str) -> String {
    format!("{channel_id}:{ssrc},{platform_id}:0")
}

/// Why a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallEndReason {
    /// The device sent BYE.
    ByeFromDevice,
    /// We hung up.
    HungUp,
    /// The device went offline or unregistered.
    DeviceGone,
    /// The device did not acknowledge or answer our BYE in time (ended anyway).
    Timeout,
}

impl CallEndReason {
    /// Stable name.
    pub fn as_str(self) -> &'static str {
        match self {
            CallEndReason::ByeFromDevice => "bye_from_device",
            CallEndReason::HungUp => "hung_up",
            CallEndReason::DeviceGone => "device_gone",
            CallEndReason::Timeout => "timeout",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// INVITE sent, no provisional response yet.
    Calling,
    /// A provisional response arrived (CANCEL is now possible).
    Early,
    /// 200 received and ACKed.
    Confirmed,
}

#[derive(Debug)]
pub(super) struct Call {
    device_id: String,
    call_id: String,
    local_tag: String,
    remote_tag: Option<String>,
    invite: Request,
    invite_key: TransactionKey,
    cseq: u32,
    state: State,
    hangup_requested: bool,
    remote_target: Uri,
    route_set: Vec<String>,
    transport: Transport,
    remote: SocketAddr,
    ack: Option<Bytes>,
}

/// INVITE sessions by id, plus indexes.
#[derive(Debug, Default)]
pub(super) struct Calls {
    next: u64,
    pub calls: HashMap<SessionId, Call>,
    by_tx: HashMap<TransactionKey, SessionId>,
}

impl Calls {
    pub fn session_for_tx(&self, key: &TransactionKey) -> Option<SessionId> {
        self.by_tx.get(key).copied()
    }

    /// The device an INVITE session's transaction belongs to.
    pub fn device_for_tx(&self, key: &TransactionKey) -> Option<&str> {
        let id = self.by_tx.get(key)?;
        self.calls.get(id).map(|c| c.device_id.as_str())
    }

    fn by_call_id(&self, call_id: &str) -> Option<SessionId> {
        self.calls
            .iter()
            .find(|(_, c)| c.call_id == call_id)
            .map(|(id, _)| *id)
    }
}

impl Platform {
    /// Start an INVITE session to a channel of a registered device. The answer arrives as
    /// [`PlatformEvent::CallAnswered`] (already acknowledged) or [`PlatformEvent::CallFailed`].
    pub fn invite(
        &mut self,
        now: Instant,
        params: InviteParams,
    ) -> Result<SessionId, CommandError> {
        let dev = self
            .devices
            .get(&params.device_id)
            .ok_or_else(|| CommandError::UnknownDevice(params.device_id.clone()))?;
        let (Some(remote), true) = (dev.remote, dev.registered) else {
            return Err(CommandError::Offline(params.device_id.clone()));
        };
        let transport = dev.transport;
        let cseq = self.next_cseq();
        let call_id = ua::new_call_id(&self.local.host);
        let local_tag = new_tag();
        let to = NameAddr {
            display_name: None,
            uri: ua::sip_uri(&params.channel_id, &self.local.domain, None),
            params: Vec::new(),
        };
        let target = ua::sip_uri(
            &params.channel_id,
            &remote.ip().to_string(),
            Some(remote.port()),
        );
        let mut req = ua::new_request(
            &self.local,
            ua::RequestSpec {
                method: Method::Invite,
                uri: target.clone(),
                to,
                from_tag: &local_tag,
                call_id: &call_id,
                cseq,
                transport,
            },
        );
        req.headers
            .push(HeaderName::Contact, self.local.contact().to_string());
        req.headers
            .push(HeaderName::Subject, params.subject.clone());
        req.headers.push(HeaderName::ContentType, "application/sdp");
        req.body = Bytes::from(params.sdp.clone().into_bytes());
        let key = self
            .tx
            .send_request(now, req.clone(), transport, remote)
            .map_err(|_| CommandError::Offline(params.device_id.clone()))?;
        self.calls.next += 1;
        let id = SessionId(self.calls.next);
        info!(%id, device_id = %params.device_id, channel_id = %params.channel_id, %call_id, "INVITE sent");
        self.calls.by_tx.insert(key.clone(), id);
        self.calls.calls.insert(
            id,
            Call {
                device_id: params.device_id,
                call_id,
                local_tag,
                remote_tag: None,
                invite: req,
                invite_key: key,
                cseq,
                state: State::Calling,
                hangup_requested: false,
                remote_target: target,
                route_set: Vec::new(),
                transport,
                remote,
                ack: None,
            },
        );
        Ok(id)
    }

    /// End a session: BYE once answered, CANCEL while ringing (or as soon as the device
    /// answers provisionally). [`PlatformEvent::CallEnded`] follows at once for an answered
    /// session; an unanswered one ends with [`PlatformEvent::CallFailed`] (487).
    pub fn hangup(&mut self, now: Instant, session: SessionId) {
        let Some(call) = self.calls.calls.get_mut(&session) else {
            return;
        };
        match call.state {
            State::Confirmed => {
                let bye = self.in_dialog_request(session, Method::Bye);
                if let Some((req, transport, remote)) = bye {
                    let _ = self.tx.send_request(now, req, transport, remote);
                }
                self.end_call(now, session, CallEndReason::HungUp);
            }
            State::Early => {
                call.hangup_requested = true;
                self.send_cancel(now, session);
            }
            State::Calling => {
                // RFC 3261 §9.1: CANCEL only after a provisional response.
                call.hangup_requested = true;
            }
        }
    }

    /// Ask a channel for a key frame (`IFameCmd` for 2016 devices, `IFrameCmd` for 2022).
    pub fn request_keyframe(
        &mut self,
        now: Instant,
        device_id: &str,
        channel_id: &str,
    ) -> Result<(), CommandError> {
        let gb2022 = self
            .devices
            .get(device_id)
            .ok_or_else(|| CommandError::UnknownDevice(device_id.to_owned()))?
            .is_gb2022();
        let sn = self.next_sn();
        let body = crate::manscdp::Manscdp::keyframe_request(sn, channel_id, gb2022);
        self.send_manscdp_to(now, device_id, channel_id, &body)
            .map(|_| ())
    }

    /// The number of live INVITE sessions.
    pub fn session_count(&self) -> usize {
        self.calls.calls.len()
    }

    fn send_cancel(&mut self, now: Instant, session: SessionId) {
        let Some(call) = self.calls.calls.get(&session) else {
            return;
        };
        // §9.1: same Request-URI, Call-ID, From, To, CSeq number and top Via as the INVITE.
        let inv = &call.invite;
        let mut cancel = Request::new(Method::Cancel, inv.uri.clone());
        for name in [
            HeaderName::Via,
            HeaderName::From,
            HeaderName::To,
            HeaderName::CallId,
        ] {
            if let Some(v) = inv.headers.get(&name) {
                cancel.headers.push(name, v.to_owned());
            }
        }
        cancel
            .headers
            .push(HeaderName::CSeq, format!("{} CANCEL", call.cseq));
        cancel.headers.push(HeaderName::MaxForwards, "70");
        let (transport, remote) = (call.transport, call.remote);
        if let Err(e) = self.tx.send_request(now, cancel, transport, remote) {
            debug!(error = %e, "CANCEL not sent");
        }
    }

    /// A request inside an answered dialog (RFC 3261 §12.2.1.1).
    fn in_dialog_request(
        &mut self,
        session: SessionId,
        method: Method,
    ) -> Option<(Request, Transport, SocketAddr)> {
        let cseq = self.next_cseq();
        let call = self.calls.calls.get(&session)?;
        let mut to = call.invite.headers.to().ok()?;
        if let Some(tag) = &call.remote_tag {
            to.set_tag(tag);
        }
        let mut req = ua::new_request(
            &self.local,
            ua::RequestSpec {
                method,
                uri: call.remote_target.clone(),
                to,
                from_tag: &call.local_tag,
                call_id: &call.call_id,
                cseq,
                transport: call.transport,
            },
        );
        for r in &call.route_set {
            req.headers.push(HeaderName::Route, r.clone());
        }
        Some((req, call.transport, call.remote))
    }

    /// A response on an INVITE (or CANCEL/BYE) client transaction of a session.
    pub(super) fn on_call_response(
        &mut self,
        now: Instant,
        session: SessionId,
        key: &TransactionKey,
        resp: &Response,
    ) {
        let Some(call) = self.calls.calls.get_mut(&session) else {
            return;
        };
        if key != &call.invite_key {
            // Responses to CANCEL/BYE need no action.
            return;
        }
        match resp.status {
            100 => {}
            101..=199 => {
                if call.state == State::Calling {
                    call.state = State::Early;
                    if call.hangup_requested {
                        self.send_cancel(now, session);
                    }
                }
                self.events.push_back(PlatformEvent::CallProgress {
                    session,
                    status: resp.status,
                });
            }
            200..=299 => {
                if call.state == State::Confirmed {
                    // A retransmitted 2xx: our ACK was lost (§13.2.2.4).
                    if let Some(ack) = call.ack.clone() {
                        self.tx.send_stateless(ack, call.transport, call.remote);
                    }
                    return;
                }
                call.state = State::Confirmed;
                call.remote_tag = resp
                    .headers
                    .to()
                    .ok()
                    .and_then(|t| t.tag().map(str::to_owned));
                if let Some(c) = resp
                    .headers
                    .contact()
                    .ok()
                    .and_then(|c| c.into_iter().next())
                {
                    call.remote_target = c.uri;
                }
                let mut routes: Vec<String> = resp
                    .headers
                    .values(&HeaderName::RecordRoute)
                    .into_iter()
                    .map(str::to_owned)
                    .collect();
                routes.reverse();
                call.route_set = routes;
                let cseq = call.cseq;
                if let Some((mut ack, transport, remote)) =
                    self.in_dialog_request(session, Method::Ack)
                {
                    ack.headers.set(HeaderName::CSeq, format!("{cseq} ACK"));
                    let bytes = ack.to_bytes();
                    self.tx.send_stateless(bytes.clone(), transport, remote);
                    if let Some(call) = self.calls.calls.get_mut(&session) {
                        call.ack = Some(bytes);
                    }
                }
                let hangup = self
                    .calls
                    .calls
                    .get(&session)
                    .is_some_and(|c| c.hangup_requested);
                if hangup {
                    // Answered after we gave up: acknowledge, then end it (§15).
                    info!(%session, "answer arrived after hang-up: sending BYE");
                    self.hangup(now, session);
                    return;
                }
                self.events.push_back(PlatformEvent::CallAnswered {
                    session,
                    sdp: resp.body.clone(),
                });
            }
            status => {
                let reason = resp.reason.clone();
                warn!(%session, status, %reason, "INVITE failed");
                self.remove_call(session);
                self.events.push_back(PlatformEvent::CallFailed {
                    session,
                    status: Some(status),
                    reason,
                });
            }
        }
    }

    /// The INVITE (or the session's BYE) got no answer at all.
    pub(super) fn on_call_timeout(
        &mut self,
        now: Instant,
        session: SessionId,
        key: &TransactionKey,
    ) {
        let Some(call) = self.calls.calls.get(&session) else {
            return;
        };
        if key != &call.invite_key {
            return;
        }
        if call.state == State::Confirmed {
            // RFC 6026: no further 2xx; nothing to do.
            return;
        }
        warn!(%session, device_id = %call.device_id, "INVITE timed out");
        let _ = now;
        self.remove_call(session);
        self.events.push_back(PlatformEvent::CallFailed {
            session,
            status: None,
            reason: "the device did not answer the INVITE".into(),
        });
    }

    /// BYE from the device: 200 and end; 481 when no such dialog (§15.1.2); 403 when it
    /// does not come from the device the dialog is with.
    pub(super) fn on_bye(
        &mut self,
        now: Instant,
        req: &Request,
        transport: Transport,
        remote: SocketAddr,
    ) -> u16 {
        let Some(call_id) = req.headers.call_id() else {
            return 400;
        };
        let Some(session) = self.calls.by_call_id(call_id) else {
            return 481;
        };
        let device_id = self
            .calls
            .calls
            .get(&session)
            .map(|c| c.device_id.clone())
            .unwrap_or_default();
        let from_device = self
            .devices
            .get(&device_id)
            .is_some_and(|d| d.is_source(transport, remote));
        if !from_device {
            self.refuse_foreign(now, &device_id, remote, "BYE");
            return 403;
        }
        info!(%session, "BYE from the device");
        self.end_call(now, session, CallEndReason::ByeFromDevice);
        200
    }

    /// End every session of a device (it went offline).
    pub(super) fn end_device_calls(&mut self, now: Instant, device_id: &str) {
        let ids: Vec<SessionId> = self
            .calls
            .calls
            .iter()
            .filter(|(_, c)| c.device_id == device_id)
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            let confirmed = self
                .calls
                .calls
                .get(&id)
                .is_some_and(|c| c.state == State::Confirmed);
            if confirmed {
                self.end_call(now, id, CallEndReason::DeviceGone);
            } else {
                self.remove_call(id);
                self.events.push_back(PlatformEvent::CallFailed {
                    session: id,
                    status: None,
                    reason: "the device went offline".into(),
                });
            }
        }
    }

    fn end_call(&mut self, _now: Instant, session: SessionId, reason: CallEndReason) {
        if self.remove_call(session) {
            self.events
                .push_back(PlatformEvent::CallEnded { session, reason });
        }
    }

    fn remove_call(&mut self, session: SessionId) -> bool {
        match self.calls.calls.remove(&session) {
            Some(c) => {
                self.calls.by_tx.remove(&c.invite_key);
                true
            }
            None => false,
        }
    }
}
