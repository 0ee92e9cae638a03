//! Server transactions (RFC 3261 §17.2, with the RFC 6026 Accepted state for INVITE).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::{Outcome, TimerConfig, TransactionKey, TxEvent};
use crate::sip::{Method, Request, Response};
use crate::transport::Transport;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Request received, no response yet (§17.2.2 Trying; INVITE starts in Proceeding).
    Trying,
    /// A provisional response was sent.
    Proceeding,
    /// A final response was sent (INVITE: non-2xx, waiting for ACK; non-INVITE: timer J).
    Completed,
    /// INVITE: ACK received for a non-2xx final (timer I).
    Confirmed,
    /// INVITE: a 2xx was sent; it is retransmitted until the dialog's ACK (RFC 6026).
    Accepted,
}

/// A server transaction keeps what matching and retransmission need (the last response, and
/// for INVITE the Call-ID and CSeq number a dialog ACK carries), never the request itself:
/// a flood of large requests costs no more than a flood of small ones.
#[derive(Debug)]
pub(crate) struct ServerTx {
    /// INVITE only: (Call-ID, CSeq number), what the ACK of a 2xx matches (RFC 6026 §8.5).
    dialog: Option<(String, u32)>,
    pub transport: Transport,
    pub remote: SocketAddr,
    state: State,
    invite: bool,
    last_response: Option<Bytes>,
    /// Timer G (final response retransmission), UDP only.
    retransmit_at: Option<Instant>,
    interval: Duration,
    /// Timer H/L: give up waiting for the ACK.
    give_up_at: Option<Instant>,
    /// Timer I/J: leave Confirmed/Completed.
    linger_until: Option<Instant>,
}

impl ServerTx {
    pub fn new(request: &Request, transport: Transport, remote: SocketAddr) -> ServerTx {
        let invite = request.method == Method::Invite;
        let dialog = invite
            .then(|| {
                let call_id = request.headers.call_id()?.to_owned();
                let seq = request.headers.cseq().ok()?.seq;
                Some((call_id, seq))
            })
            .flatten();
        ServerTx {
            dialog,
            transport,
            remote,
            state: if invite {
                State::Proceeding
            } else {
                State::Trying
            },
            invite,
            last_response: None,
            retransmit_at: None,
            interval: Duration::ZERO,
            give_up_at: None,
            linger_until: None,
        }
    }

    pub fn deadline(&self) -> Option<Instant> {
        [self.retransmit_at, self.give_up_at, self.linger_until]
            .into_iter()
            .flatten()
            .min()
    }

    /// A request matching this transaction: a retransmission, or the ACK of our non-2xx.
    pub fn on_request(&mut self, now: Instant, request: &Request, timers: TimerConfig) -> Outcome {
        if request.method == Method::Ack {
            if self.invite && self.state == State::Completed {
                self.state = State::Confirmed;
                self.retransmit_at = None;
                self.give_up_at = None;
                let linger = if self.transport.is_reliable() {
                    Duration::ZERO
                } else {
                    timers.t4
                };
                self.linger_until = Some(now + linger);
                return Outcome {
                    terminated: linger.is_zero(),
                    ..Outcome::default()
                };
            }
            if self.invite && self.state == State::Accepted {
                // An ACK for our 2xx that reused the INVITE branch (RFC 2543 peers): stop
                // retransmitting and let the dialog see it.
                self.retransmit_at = None;
                self.give_up_at = None;
                self.linger_until = Some(now);
                return Outcome {
                    event: Some(TxEvent::Request {
                        key: None,
                        request: request.clone(),
                        transport: self.transport,
                        remote: self.remote,
                    }),
                    ..Outcome::default()
                };
            }
            return Outcome::default();
        }
        // A retransmitted request: re-send the last response (§17.2.1, §17.2.2).
        Outcome {
            transmit: self.last_response.clone(),
            ..Outcome::default()
        }
    }

    /// (Call-ID, CSeq number) of an INVITE transaction, for the ACK index.
    pub fn dialog(&self) -> Option<&(String, u32)> {
        self.dialog.as_ref()
    }

    /// True while a 2xx to INVITE is retransmitted and waits for the dialog's ACK.
    pub fn is_accepted(&self) -> bool {
        self.invite && self.state == State::Accepted
    }

    /// The dialog's ACK (a new branch, same Call-ID and CSeq number) arrived: stop
    /// retransmitting our 2xx (RFC 6026 §8.5). Returns true when it was awaited.
    pub fn absorb_dialog_ack(&mut self, now: Instant) -> bool {
        if !self.is_accepted() {
            return false;
        }
        self.retransmit_at = None;
        self.give_up_at = None;
        self.linger_until = Some(now);
        true
    }

    pub fn on_respond(
        &mut self,
        now: Instant,
        response: &Response,
        timers: TimerConfig,
    ) -> Outcome {
        if matches!(
            self.state,
            State::Completed | State::Confirmed | State::Accepted
        ) {
            // The transaction already has its final response; ignore a second one.
            return Outcome::default();
        }
        let bytes = response.to_bytes();
        self.last_response = Some(bytes.clone());
        let reliable = self.transport.is_reliable();
        match response.status {
            100..=199 => {
                self.state = State::Proceeding;
            }
            200..=299 if self.invite => {
                self.state = State::Accepted;
                // RFC 6026 §8.5: the 2xx is retransmitted until the ACK or timer L.
                self.interval = timers.t1;
                self.retransmit_at = (!reliable).then(|| now + timers.t1);
                self.give_up_at = Some(now + timers.t1 * 64);
            }
            _ if self.invite => {
                self.state = State::Completed;
                self.interval = timers.t1;
                self.retransmit_at = (!reliable).then(|| now + timers.t1);
                self.give_up_at = Some(now + timers.t1 * 64);
            }
            _ => {
                self.state = State::Completed;
                let linger = if reliable {
                    Duration::ZERO
                } else {
                    timers.t1 * 64
                };
                self.linger_until = Some(now + linger);
                return Outcome {
                    transmit: Some(bytes),
                    terminated: linger.is_zero(),
                    ..Outcome::default()
                };
            }
        }
        Outcome {
            transmit: Some(bytes),
            ..Outcome::default()
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
            // Timer H (no ACK for a non-2xx) or L (no ACK for a 2xx).
            let event = (self.state == State::Completed || self.state == State::Accepted)
                .then(|| TxEvent::Timeout { key: key.clone() });
            return Outcome {
                event,
                terminated: true,
                ..Outcome::default()
            };
        }
        if self.retransmit_at.is_some_and(|t| t <= now) {
            self.interval = (self.interval * 2).min(timers.t2);
            self.retransmit_at = Some(now + self.interval);
            return Outcome {
                transmit: self.last_response.clone(),
                ..Outcome::default()
            };
        }
        Outcome::default()
    }
}
