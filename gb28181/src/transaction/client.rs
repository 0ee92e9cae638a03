//! Client transactions (RFC 3261 §17.1, with the RFC 6026 Accepted state for INVITE).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::{Outcome, TimerConfig, TransactionKey, TxEvent};
use crate::sip::{HeaderName, Method, Request, Response};
use crate::transport::Transport;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// INVITE sent, nothing heard (§17.1.1.2 Calling) / non-INVITE Trying (§17.1.2.2).
    Calling,
    /// A provisional response arrived.
    Proceeding,
    /// A final non-2xx arrived (INVITE: we sent ACK; timer D) or any final (non-INVITE; K).
    Completed,
    /// A 2xx to INVITE arrived; further 2xx go to the dialog (RFC 6026 timer M).
    Accepted,
}

#[derive(Debug)]
pub(crate) struct ClientTx {
    pub request: Request,
    bytes: Bytes,
    pub transport: Transport,
    pub remote: SocketAddr,
    state: State,
    invite: bool,
    /// Next retransmission (timers A/E), UDP only.
    retransmit_at: Option<Instant>,
    interval: Duration,
    /// Timer B/F: give up waiting for a final response.
    give_up_at: Option<Instant>,
    /// Timer D/K/M: leave the Completed/Accepted state.
    linger_until: Option<Instant>,
    /// The ACK we sent for a non-2xx final (re-sent when the final is retransmitted).
    ack: Option<Bytes>,
}

impl ClientTx {
    pub fn new(
        now: Instant,
        request: Request,
        bytes: Bytes,
        transport: Transport,
        remote: SocketAddr,
        timers: TimerConfig,
    ) -> ClientTx {
        let invite = request.method == Method::Invite;
        let reliable = transport.is_reliable();
        ClientTx {
            request,
            bytes,
            transport,
            remote,
            state: State::Calling,
            invite,
            retransmit_at: (!reliable).then(|| now + timers.t1),
            interval: timers.t1,
            give_up_at: Some(now + timers.t1 * 64),
            linger_until: None,
            ack: None,
        }
    }

    pub fn awaiting_final(&self) -> bool {
        matches!(self.state, State::Calling | State::Proceeding)
    }

    pub fn deadline(&self) -> Option<Instant> {
        [self.retransmit_at, self.give_up_at, self.linger_until]
            .into_iter()
            .flatten()
            .min()
    }

    pub fn on_response(
        &mut self,
        now: Instant,
        response: Response,
        key: &TransactionKey,
        remote: SocketAddr,
        timers: TimerConfig,
    ) -> Outcome {
        let status = response.status;
        let reliable = self.transport.is_reliable();
        let event = |response| TxEvent::Response {
            key: key.clone(),
            response,
            remote,
        };
        match (self.state, status) {
            (State::Calling | State::Proceeding, 100..=199) => {
                self.state = State::Proceeding;
                if self.invite {
                    // Timer A stops once a provisional response arrives (§17.1.1.2).
                    self.retransmit_at = None;
                } else if let Some(at) = self.retransmit_at.as_mut() {
                    // Timer E continues at T2 in Proceeding (§17.1.2.2).
                    self.interval = timers.t2;
                    *at = now + timers.t2;
                }
                Outcome {
                    event: Some(event(response)),
                    ..Outcome::default()
                }
            }
            (State::Calling | State::Proceeding, 200..=299) if self.invite => {
                self.state = State::Accepted;
                self.retransmit_at = None;
                self.give_up_at = None;
                self.linger_until = Some(now + timers.t1 * 64);
                Outcome {
                    event: Some(event(response)),
                    ..Outcome::default()
                }
            }
            (State::Calling | State::Proceeding, 200..) => {
                self.state = State::Completed;
                self.retransmit_at = None;
                self.give_up_at = None;
                let linger = if self.invite {
                    let ack = build_ack(&self.request, &response).to_bytes();
                    self.ack = Some(ack);
                    if reliable {
                        Duration::ZERO
                    } else {
                        Duration::from_secs(32)
                    }
                } else if reliable {
                    Duration::ZERO
                } else {
                    timers.t4
                };
                self.linger_until = Some(now + linger);
                Outcome {
                    transmit: self.ack.clone(),
                    event: Some(event(response)),
                    terminated: linger.is_zero(),
                }
            }
            (State::Accepted, 200..=299) => Outcome {
                // RFC 6026 §8.4: retransmitted 2xx go to the TU, which re-sends its ACK.
                event: Some(event(response)),
                ..Outcome::default()
            },
            (State::Completed, 300..) if self.invite => Outcome {
                transmit: self.ack.clone(),
                ..Outcome::default()
            },
            _ => Outcome::default(),
        }
    }

    pub fn on_timer(&mut self, now: Instant, key: &TransactionKey, timers: TimerConfig) -> Outcome {
        if self.linger_until.is_some_and(|t| t <= now) {
            return Outcome {
                terminated: true,
                ..Outcome::default()
            };
        }
        if self.give_up_at.is_some_and(|t| t <= now) {
            return Outcome {
                event: Some(TxEvent::Timeout { key: key.clone() }),
                terminated: true,
                ..Outcome::default()
            };
        }
        if self.retransmit_at.is_some_and(|t| t <= now) {
            self.interval = if self.invite {
                self.interval * 2
            } else {
                (self.interval * 2).min(timers.t2)
            };
            self.retransmit_at = Some(now + self.interval);
            return Outcome {
                transmit: Some(self.bytes.clone()),
                ..Outcome::default()
            };
        }
        Outcome::default()
    }
}

/// The ACK for a non-2xx final response (RFC 3261 §17.1.1.3): same Request-URI, the top Via
/// of the INVITE only, From, Call-ID and Route of the INVITE, To of the response, CSeq ACK.
pub(crate) fn build_ack(invite: &Request, response: &Response) -> Request {
    let mut ack = Request::new(Method::Ack, invite.uri.clone());
    if let Some(via) = invite.headers.get(&HeaderName::Via) {
        // The first Via header line may hold several values; keep only the first.
        let first = invite
            .headers
            .values(&HeaderName::Via)
            .first()
            .map(|s| s.to_string())
            .unwrap_or_else(|| via.to_owned());
        ack.headers.push(HeaderName::Via, first);
    }
    for name in [HeaderName::From] {
        if let Some(v) = invite.headers.get(&name) {
            ack.headers.push(name, v.to_owned());
        }
    }
    if let Some(to) = response.headers.get(&HeaderName::To) {
        ack.headers.push(HeaderName::To, to.to_owned());
    }
    if let Some(v) = invite.headers.get(&HeaderName::CallId) {
        ack.headers.push(HeaderName::CallId, v.to_owned());
    }
    if let Ok(cseq) = invite.headers.cseq() {
        ack.headers
            .push(HeaderName::CSeq, format!("{} ACK", cseq.seq));
    }
    for route in invite.headers.get_all(&HeaderName::Route) {
        ack.headers.push(HeaderName::Route, route.to_owned());
    }
    ack.headers.push(HeaderName::MaxForwards, "70");
    ack
}
