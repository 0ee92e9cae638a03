//! RFC 3261 §17 transactions as a sans-IO layer.
//!
//! [`TransactionLayer`] sits between the transport and the transaction user (the platform or
//! device core). Feed it every received message with [`TransactionLayer::handle_request`] /
//! [`TransactionLayer::handle_response`], send through it with
//! [`TransactionLayer::send_request`] / [`TransactionLayer::respond`], call
//! [`TransactionLayer::handle_timeout`] when [`TransactionLayer::poll_timeout`] is due, and drain
//! [`TransactionLayer::poll_transmit`] and [`TransactionLayer::poll_event`].
//!
//! What it does for the user:
//! - retransmits requests over UDP (timers A, E: T1 doubling, capped at T2 for non-INVITE) and
//!   reports a timeout (B, F: 64·T1) as [`TxEvent::Timeout`];
//! - absorbs retransmitted requests and answers them with the last response sent;
//! - acknowledges non-2xx final responses to INVITE itself (§17.1.1.3);
//! - retransmits final responses to INVITE until the ACK (timer G; 2xx per RFC 6026) and
//!   reports a missing ACK (H, L);
//! - keeps completed transactions for the time the RFC requires (D, I, J, K; zero over TCP).

mod client;
mod server;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::sip::{Method, Request, Response};
use crate::transport::{Transmit, Transport};

use client::ClientTx;
use server::ServerTx;

/// The RFC 3261 branch magic cookie (§8.1.1.7).
pub const BRANCH_MAGIC: &str = "z9hG4bK";

/// Timer base values (RFC 3261 §17.1.1.1, table 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimerConfig {
    /// RTT estimate, default 500 ms.
    pub t1: Duration,
    /// Maximum retransmit interval for non-INVITE requests and INVITE responses, default 4 s.
    pub t2: Duration,
    /// Maximum duration a message remains in the network, default 5 s.
    pub t4: Duration,
}

impl Default for TimerConfig {
    fn default() -> Self {
        TimerConfig {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
        }
    }
}

/// Bounds on the server transactions unauthenticated peers can make us hold (each is kept
/// for 64·T1 = 32 s after its final response over UDP, RFC 3261 §17.2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxLimits {
    /// Live server transactions in all.
    pub max_server: usize,
    /// Live server transactions from one source IP address.
    pub max_server_per_source: usize,
}

impl Default for TxLimits {
    /// 500,000 in all (a 100,000-device registration storm peaks near 300,000), 4,000 per
    /// source address (a busy lower platform or a NAT of many devices stays far below).
    fn default() -> Self {
        TxLimits {
            max_server: 500_000,
            max_server_per_source: 4_000,
        }
    }
}

/// Which bound refused a request (see [`TxLimits`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TxLimit {
    /// [`TxLimits::max_server`].
    Total,
    /// [`TxLimits::max_server_per_source`].
    PerSource,
}

/// Which side of a transaction we are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// We sent the request.
    Client,
    /// We received the request.
    Server,
}

/// Identifies a transaction (RFC 3261 §17.1.3 and §17.2.3).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TransactionKey {
    /// Client or server side.
    pub role: Role,
    /// The top Via branch; for RFC 2543 peers without the magic cookie, a key built from
    /// Call-ID, CSeq number, From tag and the Via sent-by. Shared (the layer keeps a key
    /// per transaction and per pending timer; a 100,000-device node holds hundreds of
    /// thousands of them).
    pub branch: Arc<str>,
    /// The top Via sent-by (`host:port`), server side only (§17.2.3 rule 2).
    pub sent_by: Arc<str>,
    /// The method, with ACK folded into INVITE (an ACK for a non-2xx matches its INVITE).
    pub method: Method,
}

impl TransactionKey {
    /// The server-side key of a received request.
    pub fn server(req: &Request) -> Option<TransactionKey> {
        let via = req.headers.top_via().ok()?;
        let sent_by = match via.port {
            Some(p) => format!("{}:{}", via.host, p),
            None => via.host.to_string(),
        };
        let method = match &req.method {
            Method::Ack => Method::Invite,
            m => m.clone(),
        };
        let branch = match via.branch() {
            Some(b) if b.starts_with(BRANCH_MAGIC) => b.to_owned(),
            _ => {
                // RFC 3261 §17.2.3: RFC 2543 matching by dialog identifiers.
                let call_id = req.headers.call_id()?;
                let cseq = req.headers.cseq().ok()?;
                let from_tag = req
                    .headers
                    .from()
                    .ok()
                    .and_then(|f| f.tag().map(str::to_owned))
                    .unwrap_or_default();
                format!("rfc2543;{call_id};{};{from_tag}", cseq.seq)
            }
        };
        Some(TransactionKey {
            role: Role::Server,
            branch: branch.into(),
            sent_by: sent_by.into(),
            method,
        })
    }

    /// The client-side key a response matches (§17.1.3: top Via branch + CSeq method).
    pub fn client_for_response(resp: &Response) -> Option<TransactionKey> {
        let via = resp.headers.top_via().ok()?;
        let cseq = resp.headers.cseq().ok()?;
        Some(TransactionKey {
            role: Role::Client,
            branch: via.branch()?.into(),
            sent_by: Arc::default(),
            method: cseq.method,
        })
    }

    /// The client-side key of a request we send (top Via branch + method).
    pub fn client_for_request(req: &Request) -> Option<TransactionKey> {
        let via = req.headers.top_via().ok()?;
        Some(TransactionKey {
            role: Role::Client,
            branch: via.branch()?.into(),
            sent_by: Arc::default(),
            method: req.method.clone(),
        })
    }
}

/// What the transaction layer tells its user.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum TxEvent {
    /// A new request. `key` is `None` for an ACK that matched no transaction (the ACK of a
    /// 2xx, which belongs to the dialog).
    Request {
        /// The server transaction to answer with [`TransactionLayer::respond`].
        key: Option<TransactionKey>,
        /// The request.
        request: Request,
        /// Where it came from.
        transport: Transport,
        /// The source address.
        remote: SocketAddr,
    },
    /// A response to one of our requests (provisional or final; a retransmitted 2xx to an
    /// INVITE is passed on again so the dialog can re-send its ACK).
    Response {
        /// The client transaction.
        key: TransactionKey,
        /// The response.
        response: Response,
        /// Where it came from.
        remote: SocketAddr,
    },
    /// A response that matched a client transaction but came from another source than the
    /// one its request went to (another address over UDP, another connection or transport).
    /// It was not processed: a forged answer cannot complete the transaction. The user may
    /// still take it with [`TransactionLayer::accept_response`] (a peer it trusts to answer
    /// from several addresses).
    Misdirected {
        /// The client transaction it claims.
        key: TransactionKey,
        /// The response.
        response: Response,
        /// Where it came from.
        transport: Transport,
        /// The source address.
        remote: SocketAddr,
    },
    /// A response that matched no client transaction.
    StrayResponse {
        /// The response.
        response: Response,
        /// Where it came from.
        remote: SocketAddr,
    },
    /// A client transaction got no final response in time (timer B or F), or a server
    /// transaction's final response to an INVITE was never acknowledged (timer H or L).
    Timeout {
        /// The transaction (its `method` says which request it was).
        key: TransactionKey,
    },
    /// A new request was not given a transaction because a [`TxLimits`] bound is reached.
    /// Nothing is kept of it; the user may answer it statelessly (503) with
    /// [`TransactionLayer::send_stateless`].
    Refused {
        /// The request.
        request: Request,
        /// Where it came from.
        transport: Transport,
        /// The source address.
        remote: SocketAddr,
        /// The bound that refused it.
        limit: TxLimit,
    },
}

/// Why a send through the layer was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TxError {
    /// The request has no top Via with a branch parameter.
    #[error("request has no Via branch; cannot key the transaction")]
    NoBranch,
    /// A client transaction with this key already exists.
    #[error("a transaction with branch {0} already exists")]
    Duplicate(String),
    /// No server transaction with this key (already completed or never existed).
    #[error("no server transaction for branch {0}")]
    UnknownTransaction(String),
}

/// The transaction layer: all client and server transactions of one endpoint.
#[derive(Debug)]
pub struct TransactionLayer {
    timers: TimerConfig,
    limits: TxLimits,
    /// Boxed, like the server side: a transaction holds its request and is large.
    clients: HashMap<TransactionKey, Box<ClientTx>>,
    /// Boxed: the table stays small while it grows through a registration storm.
    servers: HashMap<TransactionKey, Box<ServerTx>>,
    /// Live server transactions per source IP (for [`TxLimits::max_server_per_source`]).
    per_source: HashMap<IpAddr, usize>,
    /// Accepted INVITE server transactions by (Call-ID, CSeq number): the dialog's ACK finds
    /// the 2xx it acknowledges without a scan (RFC 6026 §8.5).
    accepted: HashMap<(String, u32), TransactionKey>,
    /// Pending timers; an entry whose transaction has another deadline by now is stale and
    /// skipped when it comes up.
    deadlines: BinaryHeap<Reverse<Timer>>,
    seq: u64,
    transmits: VecDeque<Transmit>,
    events: VecDeque<TxEvent>,
    timeouts: u64,
}

/// What a transaction wants after an input or a timer.
#[derive(Debug, Default)]
pub(crate) struct Outcome {
    pub transmit: Option<Bytes>,
    pub event: Option<TxEvent>,
    pub terminated: bool,
}

impl TransactionLayer {
    /// A layer with the given timer values and default [`TxLimits`].
    pub fn new(timers: TimerConfig) -> TransactionLayer {
        TransactionLayer::with_limits(timers, TxLimits::default())
    }

    /// A layer with the given timer values and bounds.
    pub fn with_limits(timers: TimerConfig, limits: TxLimits) -> TransactionLayer {
        TransactionLayer {
            timers,
            limits,
            clients: HashMap::new(),
            servers: HashMap::new(),
            per_source: HashMap::new(),
            accepted: HashMap::new(),
            deadlines: BinaryHeap::new(),
            seq: 0,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            timeouts: 0,
        }
    }

    /// The timer values in use.
    pub fn timers(&self) -> TimerConfig {
        self.timers
    }

    /// Send a request in a new client transaction. The request must carry a top Via with a
    /// unique branch (see [`new_branch`]). ACK is sent without a transaction.
    pub fn send_request(
        &mut self,
        now: Instant,
        request: Request,
        transport: Transport,
        remote: SocketAddr,
    ) -> Result<TransactionKey, TxError> {
        let key = TransactionKey::client_for_request(&request).ok_or(TxError::NoBranch)?;
        let bytes = request.to_bytes();
        self.transmits.push_back(Transmit {
            transport,
            remote,
            payload: bytes.clone(),
        });
        if request.method == Method::Ack {
            return Ok(key);
        }
        if self.clients.contains_key(&key) {
            return Err(TxError::Duplicate(key.branch.to_string()));
        }
        let tx = Box::new(ClientTx::new(
            now,
            request,
            bytes,
            transport,
            remote,
            self.timers,
        ));
        self.schedule(&key, tx.deadline());
        self.clients.insert(key.clone(), tx);
        Ok(key)
    }

    /// Send an ACK or other message outside any transaction.
    pub fn send_stateless(&mut self, payload: Bytes, transport: Transport, remote: SocketAddr) {
        self.transmits.push_back(Transmit {
            transport,
            remote,
            payload,
        });
    }

    /// Feed a received request. New requests become [`TxEvent::Request`]; retransmissions are
    /// answered with the last response and absorbed.
    pub fn handle_request(
        &mut self,
        now: Instant,
        request: Request,
        transport: Transport,
        remote: SocketAddr,
    ) {
        let Some(key) = TransactionKey::server(&request) else {
            self.events.push_back(TxEvent::Request {
                key: None,
                request,
                transport,
                remote,
            });
            return;
        };
        if let Some(tx) = self.servers.get_mut(&key) {
            let out = tx.on_request(now, &request, self.timers);
            let deadline = tx.deadline();
            let (t, r) = (tx.transport, tx.remote);
            self.apply(&key, out, t, r, deadline, Role::Server);
            return;
        }
        if request.method == Method::Ack {
            // ACK of a 2xx (or of a transaction we forgot): the dialog's business. It also
            // ends the retransmission of that 2xx (RFC 6026 §8.5).
            let acked = request
                .headers
                .call_id()
                .zip(request.headers.cseq().ok())
                .and_then(|(call_id, cseq)| self.accepted.get(&(call_id.to_owned(), cseq.seq)))
                .cloned();
            if let Some(k) = acked
                && let Some(tx) = self.servers.get_mut(&k)
                && tx.absorb_dialog_ack(now)
            {
                let deadline = tx.deadline();
                self.schedule(&k, deadline);
            }
            self.events.push_back(TxEvent::Request {
                key: None,
                request,
                transport,
                remote,
            });
            return;
        }
        let from_source = self.per_source.get(&remote.ip()).copied().unwrap_or(0);
        let limit = if self.servers.len() >= self.limits.max_server {
            Some(TxLimit::Total)
        } else if from_source >= self.limits.max_server_per_source {
            Some(TxLimit::PerSource)
        } else {
            None
        };
        if let Some(limit) = limit {
            self.events.push_back(TxEvent::Refused {
                request,
                transport,
                remote,
                limit,
            });
            return;
        }
        let tx = Box::new(ServerTx::new(&request, transport, remote));
        self.servers.insert(key.clone(), tx);
        *self.per_source.entry(remote.ip()).or_default() += 1;
        self.events.push_back(TxEvent::Request {
            key: Some(key),
            request,
            transport,
            remote,
        });
    }

    /// Feed a received response. It is processed only when it comes from where its request
    /// went (the same TCP connection, or the same UDP address); otherwise it is reported as
    /// [`TxEvent::Misdirected`].
    pub fn handle_response(
        &mut self,
        now: Instant,
        response: Response,
        transport: Transport,
        remote: SocketAddr,
    ) {
        if let Some(key) = TransactionKey::client_for_response(&response)
            && let Some(tx) = self.clients.get(&key)
        {
            let same = match tx.transport {
                Transport::Udp => transport == Transport::Udp && remote == tx.remote,
                t @ Transport::Tcp(_) => transport == t,
            };
            if !same {
                self.events.push_back(TxEvent::Misdirected {
                    key,
                    response,
                    transport,
                    remote,
                });
                return;
            }
        }
        self.accept_response(now, response, transport, remote);
    }

    /// Feed a received response without checking its source (see
    /// [`TxEvent::Misdirected`]).
    pub fn accept_response(
        &mut self,
        now: Instant,
        response: Response,
        _transport: Transport,
        remote: SocketAddr,
    ) {
        let key = TransactionKey::client_for_response(&response);
        let Some((key, tx)) = key.and_then(|k| self.clients.get_mut(&k).map(|tx| (k, tx))) else {
            self.events
                .push_back(TxEvent::StrayResponse { response, remote });
            return;
        };
        let out = tx.on_response(now, response, &key, remote, self.timers);
        let deadline = tx.deadline();
        let (t, r) = (tx.transport, tx.remote);
        self.apply(&key, out, t, r, deadline, Role::Client);
    }

    /// Answer a server transaction. Provisional responses keep it open; final ones complete it.
    pub fn respond(
        &mut self,
        now: Instant,
        key: &TransactionKey,
        response: Response,
    ) -> Result<(), TxError> {
        let tx = self
            .servers
            .get_mut(key)
            .ok_or_else(|| TxError::UnknownTransaction(key.branch.to_string()))?;
        let out = tx.on_respond(now, &response, self.timers);
        let deadline = tx.deadline();
        let (t, r) = (tx.transport, tx.remote);
        if tx.is_accepted()
            && let Some(dialog) = tx.dialog()
        {
            self.accepted.insert(dialog.clone(), key.clone());
        }
        self.apply(key, out, t, r, deadline, Role::Server);
        Ok(())
    }

    /// The INVITE server transaction a received CANCEL refers to (§9.2), if still open.
    pub fn invite_for_cancel(&self, cancel: &Request) -> Option<TransactionKey> {
        let mut key = TransactionKey::server(cancel)?;
        key.method = Method::Invite;
        self.servers.contains_key(&key).then_some(key)
    }

    /// Drive timers.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.compact();
        while let Some(Reverse(t)) = self.deadlines.peek() {
            if t.at > now {
                break;
            }
            let Some(Reverse(Timer { at, key, .. })) = self.deadlines.pop() else {
                break;
            };
            match key.role {
                Role::Client => {
                    let Some(tx) = self.clients.get_mut(&key) else {
                        continue;
                    };
                    if tx.deadline() != Some(at) {
                        continue;
                    }
                    let out = tx.on_timer(now, &key, self.timers);
                    let deadline = tx.deadline();
                    let (t, r) = (tx.transport, tx.remote);
                    self.apply(&key, out, t, r, deadline, Role::Client);
                }
                Role::Server => {
                    let Some(tx) = self.servers.get_mut(&key) else {
                        continue;
                    };
                    if tx.deadline() != Some(at) {
                        continue;
                    }
                    let out = tx.on_timer(now, &key, self.timers);
                    let deadline = tx.deadline();
                    let (t, r) = (tx.transport, tx.remote);
                    self.apply(&key, out, t, r, deadline, Role::Server);
                }
            }
        }
    }

    /// Give back the memory of tables a storm grew: a table used to a quarter of its
    /// capacity is shrunk (a node holds 300,000 transactions while 100,000 devices register,
    /// a few tens of thousands afterwards).
    fn compact(&mut self) {
        fn shrink<K: std::hash::Hash + Eq, V>(m: &mut HashMap<K, V>) {
            if m.capacity() > 4096 && m.len() * 4 < m.capacity() {
                m.shrink_to(m.len() * 2);
            }
        }
        shrink(&mut self.clients);
        shrink(&mut self.servers);
        shrink(&mut self.per_source);
        shrink(&mut self.accepted);
        if self.deadlines.capacity() > 4096 && self.deadlines.len() * 4 < self.deadlines.capacity()
        {
            self.deadlines.shrink_to(self.deadlines.len() * 2);
        }
    }

    /// The next instant [`handle_timeout`](Self::handle_timeout) should be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.deadlines.peek().map(|Reverse(t)| t.at)
    }

    /// Next message to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// Next event for the transaction user.
    pub fn poll_event(&mut self) -> Option<TxEvent> {
        self.events.pop_front()
    }

    /// Forget every transaction bound to a TCP connection that closed; client transactions
    /// on it time out at once (RFC 3261 §17.1.4 transport error).
    pub fn connection_closed(&mut self, transport: Transport) {
        let dead: Vec<TransactionKey> = self
            .clients
            .iter()
            .filter(|(_, tx)| tx.transport == transport)
            .map(|(k, _)| k.clone())
            .collect();
        for key in dead {
            if let Some(tx) = self.clients.remove(&key)
                && tx.awaiting_final()
            {
                self.timeouts += 1;
                self.events.push_back(TxEvent::Timeout { key });
            }
        }
        let dead: Vec<TransactionKey> = self
            .servers
            .iter()
            .filter(|(_, tx)| tx.transport == transport)
            .map(|(k, _)| k.clone())
            .collect();
        for key in dead {
            self.remove_server(&key);
        }
    }

    /// Live server transactions from one source IP address.
    pub fn server_count_from(&self, ip: IpAddr) -> usize {
        self.per_source.get(&ip).copied().unwrap_or(0)
    }

    /// The bounds in force.
    pub fn limits(&self) -> TxLimits {
        self.limits
    }

    fn remove_server(&mut self, key: &TransactionKey) {
        let Some(tx) = self.servers.remove(key) else {
            return;
        };
        if let Some(dialog) = tx.dialog()
            && self.accepted.get(dialog) == Some(key)
        {
            self.accepted.remove(dialog);
        }
        let ip = tx.remote.ip();
        if let Some(n) = self.per_source.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                self.per_source.remove(&ip);
            }
        }
    }

    /// Number of live transactions (client, server).
    pub fn len(&self) -> (usize, usize) {
        (self.clients.len(), self.servers.len())
    }

    /// True when no transaction is live.
    pub fn is_empty(&self) -> bool {
        self.clients.is_empty() && self.servers.is_empty()
    }

    /// Transactions that ended in a timeout so far.
    pub fn timeout_count(&self) -> u64 {
        self.timeouts
    }

    fn schedule(&mut self, key: &TransactionKey, deadline: Option<Instant>) {
        if let Some(at) = deadline {
            self.seq += 1;
            self.deadlines.push(Reverse(Timer {
                at,
                seq: self.seq,
                key: key.clone(),
            }));
        }
    }

    fn apply(
        &mut self,
        key: &TransactionKey,
        out: Outcome,
        transport: Transport,
        remote: SocketAddr,
        deadline: Option<Instant>,
        role: Role,
    ) {
        if let Some(payload) = out.transmit {
            self.transmits.push_back(Transmit {
                transport,
                remote,
                payload,
            });
        }
        if let Some(ev) = out.event {
            if matches!(ev, TxEvent::Timeout { .. }) {
                self.timeouts += 1;
            }
            self.events.push_back(ev);
        }
        if out.terminated {
            match role {
                Role::Client => {
                    self.clients.remove(key);
                }
                Role::Server => self.remove_server(key),
            }
        } else {
            self.schedule(key, deadline);
        }
    }
}

/// A pending timer: ordered by time, then by when it was set.
#[derive(Debug)]
struct Timer {
    at: Instant,
    seq: u64,
    key: TransactionKey,
}

impl PartialEq for Timer {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}

impl Eq for Timer {}

impl PartialOrd for Timer {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Timer {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

/// A fresh RFC 3261 branch: the magic cookie plus 16 random hex digits.
pub fn new_branch() -> String {
    use rand::RngCore;
    let mut raw = [0u8; 8];
    rand::rng().fill_bytes(&mut raw);
    format!("{BRANCH_MAGIC}{}", hex::encode(raw))
}

/// A fresh tag for From/To (RFC 3261 §19.3).
pub fn new_tag() -> String {
    use rand::RngCore;
    let mut raw = [0u8; 6];
    rand::rng().fill_bytes(&mut raw);
    hex::encode(raw)
}

#[cfg(test)]
mod tests;
