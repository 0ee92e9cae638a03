//! The device role as a sans-IO core: registration with digest authentication, keepalive,
//! and answers to Catalog (paged, Annex M), DeviceInfo and DeviceStatus queries
//! (GB/T 28181-2022 §9.1, §9.3, §9.5). Used by device simulators and load generators, and as
//! the base for cascading to an upper platform.
//!
//! Same shape as [`crate::platform::Platform`]: feed datagrams, stream bytes and timeouts,
//! drain transmits and events.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tracing::{debug, warn};

use crate::digest::{DigestChallenge, DigestCredentials};
use crate::manscdp::{Body, CatalogItem, Charset, DeviceInfo, DeviceStatus, Manscdp, RootKind};
use crate::sip::{HeaderName, Message, MessageStream, Method, NameAddr, Request, Response};
use crate::transaction::{TimerConfig, TransactionKey, TransactionLayer, TxEvent, new_tag};
use crate::transport::{ConnId, Transmit, Transport};
use crate::ua::{self, LocalIdentity};

/// Configuration of a simulated or real device.
#[derive(Debug, Clone)]
pub struct DeviceConfig {
    /// Our 20-digit device ID.
    pub id: String,
    /// The platform's ID.
    pub server_id: String,
    /// The platform's domain (realm).
    pub server_domain: String,
    /// The platform's SIP address.
    pub server: SocketAddr,
    /// Address announced in Via/Contact.
    pub local_host: String,
    /// Port announced in Via/Contact.
    pub local_port: u16,
    /// Registration password.
    pub password: String,
    /// Registration lifetime asked for.
    pub expires: Duration,
    /// Keepalive interval.
    pub keepalive_interval: Duration,
    /// Keepalives that may fail before registering again.
    pub keepalive_max_missed: u32,
    /// Delay before retrying a failed registration (2022: at least 60 s).
    pub register_retry: Duration,
    /// `X-GB-ver` to send (`2.0` for 2016, `3.0` for 2022), if any.
    pub gb_version: Option<String>,
    /// Charset of the bodies we send.
    pub charset: Charset,
    /// DeviceInfo answer.
    pub info: DeviceInfo,
    /// Catalog items (channels and tree nodes).
    pub channels: Vec<CatalogItem>,
    /// Items per catalog Response message.
    pub catalog_page_size: usize,
    /// `User-Agent`.
    pub user_agent: String,
    /// RFC 3261 timers.
    pub timers: TimerConfig,
}

/// Largest message accepted from the platform on a stream.
const MAX_MESSAGE: usize = 1 << 20;

/// Registration state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegState {
    /// Not registered and not trying.
    Idle,
    /// A REGISTER is in flight.
    Registering,
    /// Registered.
    Registered,
    /// Waiting to retry after a failure.
    Backoff,
}

/// Events from a [`Device`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum DeviceEvent {
    /// Registration succeeded; `latency` runs from the first REGISTER to the 200 OK.
    Registered {
        /// Time to register, challenge included.
        latency: Duration,
        /// `Date` header of the 200 OK (time sync).
        date: Option<String>,
    },
    /// Registration failed with this status (`None`: no answer).
    RegisterFailed {
        /// Final status, or `None` on timeout.
        status: Option<u16>,
    },
    /// Unregistered (`Expires: 0` accepted).
    Unregistered,
    /// A keepalive was answered with 200.
    KeepaliveOk {
        /// Round-trip time.
        latency: Duration,
    },
    /// A keepalive failed (`None`: no answer).
    KeepaliveFailed {
        /// Final status, or `None` on timeout.
        status: Option<u16>,
    },
    /// A query was answered.
    QueryAnswered {
        /// The query's CmdType.
        cmd_type: String,
        /// Its SN.
        sn: u32,
    },
    /// A MANSCDP message the core does not answer itself (controls, notifies …).
    Message(Box<Manscdp>),
    /// The ACK of an INVITE we accepted (media may start now).
    Ack(Box<Request>),
    /// A request the core does not handle (INVITE, BYE, INFO …), not answered yet:
    /// answer it with [`Device::respond`], [`Device::accept_invite`] or [`Device::reject`].
    Request {
        /// The server transaction.
        key: TransactionKey,
        /// The request.
        request: Box<Request>,
    },
}

/// A dialog created by accepting an INVITE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceDialog {
    /// Call-ID.
    pub call_id: String,
    /// Our To tag.
    pub local_tag: String,
    /// The platform's From tag.
    pub remote_tag: Option<String>,
    /// The URI we were invited at (the channel).
    pub local_uri: crate::sip::Uri,
    /// The platform's From URI.
    pub remote_uri: crate::sip::Uri,
    /// Where in-dialog requests go (the platform's Contact).
    pub remote_target: crate::sip::Uri,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pending {
    Register,
    Keepalive(Instant),
    Response,
}

/// The device core.
#[derive(Debug)]
pub struct Device {
    config: DeviceConfig,
    local: LocalIdentity,
    transport: Transport,
    tx: TransactionLayer,
    /// The platform connection's receive side (TCP).
    stream: MessageStream,
    /// Set after a framing error: the shell closes the connection.
    close: Option<ConnId>,
    state: RegState,
    call_id: String,
    from_tag: String,
    cseq: u32,
    sn: u32,
    register_started: Option<Instant>,
    auth_attempts: u32,
    unregistering: bool,
    pending: Vec<(TransactionKey, Pending)>,
    keepalive_at: Option<Instant>,
    refresh_at: Option<Instant>,
    retry_at: Option<Instant>,
    missed: u32,
    /// Catalog pages waiting for the previous page's 200 (sent serially, Annex M).
    outbox: VecDeque<Manscdp>,
    events: VecDeque<DeviceEvent>,
}

impl Device {
    /// A device that will talk over `transport` (UDP, or a TCP connection the shell opened).
    pub fn new(config: DeviceConfig, transport: Transport) -> Device {
        let local = LocalIdentity {
            id: config.id.clone(),
            domain: config.server_domain.clone(),
            host: config.local_host.clone(),
            port: config.local_port,
            user_agent: config.user_agent.clone(),
        };
        Device {
            tx: TransactionLayer::new(config.timers),
            stream: MessageStream::new(MAX_MESSAGE),
            close: None,
            call_id: ua::new_call_id(&config.local_host),
            from_tag: new_tag(),
            local,
            transport,
            config,
            state: RegState::Idle,
            cseq: 0,
            sn: 0,
            register_started: None,
            auth_attempts: 0,
            unregistering: false,
            pending: Vec::new(),
            keepalive_at: None,
            refresh_at: None,
            retry_at: None,
            missed: 0,
            outbox: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &DeviceConfig {
        &self.config
    }

    /// Registration state.
    pub fn state(&self) -> RegState {
        self.state
    }

    /// Switch to another transport (e.g. a new TCP connection after a reconnect).
    pub fn set_transport(&mut self, transport: Transport) {
        self.transport = transport;
    }

    /// Start registering.
    pub fn start(&mut self, now: Instant) {
        self.register_started = Some(now);
        self.auth_attempts = 0;
        self.unregistering = false;
        self.send_register(now, None);
    }

    /// Unregister (`Expires: 0`).
    pub fn unregister(&mut self, now: Instant) {
        self.unregistering = true;
        self.keepalive_at = None;
        self.refresh_at = None;
        self.auth_attempts = 0;
        self.send_register(now, None);
    }

    /// Feed one UDP datagram.
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, data: &[u8]) {
        match Message::parse(data) {
            Ok(m) => self.handle_message(now, m, Transport::Udp, from),
            Err(e) => debug!(%from, error = %e, "dropping unparseable datagram"),
        }
    }

    /// Feed bytes read from the platform connection (any split: a message may arrive in
    /// many reads and several in one). After a framing error the connection is given up
    /// ([`Device::poll_close`]) and registration starts again once the shell reconnects.
    pub fn handle_stream(&mut self, now: Instant, conn: ConnId, from: SocketAddr, data: &[u8]) {
        self.stream.extend(data);
        loop {
            match self.stream.next_message() {
                Ok(Some(m)) => self.handle_message(now, m, Transport::Tcp(conn), from),
                Ok(None) => break,
                Err(e) => {
                    warn!(%from, error = %e, "framing error on the platform connection: closing it");
                    self.close = Some(conn);
                    self.handle_connection_closed(now);
                    break;
                }
            }
        }
    }

    /// The connection the shell should close (after a framing error).
    pub fn poll_close(&mut self) -> Option<ConnId> {
        self.close.take()
    }

    /// Feed an already parsed message (a shell serving many devices on one socket parses once
    /// and dispatches by ID).
    pub fn handle_message(
        &mut self,
        now: Instant,
        msg: Message,
        transport: Transport,
        from: SocketAddr,
    ) {
        match msg {
            Message::Request(mut r) => {
                ua::stamp_received(&mut r, from);
                self.tx.handle_request(now, r, transport, from);
            }
            Message::Response(r) => self.tx.handle_response(now, r, transport, from),
        }
        self.drain(now);
    }

    /// The platform connection closed: registration is lost; retry after the back-off.
    pub fn handle_connection_closed(&mut self, now: Instant) {
        self.tx.connection_closed(self.transport);
        self.drain(now);
        self.stream = MessageStream::new(MAX_MESSAGE);
        self.fail_registration(now);
    }

    /// Drive timers.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.tx.handle_timeout(now);
        self.drain(now);
        if self.retry_at.is_some_and(|t| t <= now) {
            self.retry_at = None;
            self.start(now);
        }
        if self.refresh_at.is_some_and(|t| t <= now) {
            self.refresh_at = None;
            self.register_started = Some(now);
            self.auth_attempts = 0;
            self.send_register(now, None);
        }
        if self.keepalive_at.is_some_and(|t| t <= now) {
            self.keepalive_at = Some(now + self.config.keepalive_interval);
            self.send_keepalive(now);
        }
    }

    /// When to call [`handle_timeout`](Self::handle_timeout).
    pub fn poll_timeout(&self) -> Option<Instant> {
        [
            self.tx.poll_timeout(),
            self.keepalive_at,
            self.refresh_at,
            self.retry_at,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Next message to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.tx.poll_transmit()
    }

    /// Next event.
    pub fn poll_event(&mut self) -> Option<DeviceEvent> {
        self.events.pop_front()
    }

    /// Answer a request reported as [`DeviceEvent::Request`].
    pub fn respond(&mut self, now: Instant, key: &TransactionKey, resp: Response) {
        if let Err(e) = self.tx.respond(now, key, resp) {
            debug!(error = %e, "response not sent");
        }
    }

    /// Accept an INVITE (RFC 3261 §13.3.1.4): 200 with our Contact, a To tag and the SDP
    /// answer. Returns the dialog, for a later [`Device::bye`].
    pub fn accept_invite(
        &mut self,
        now: Instant,
        key: &TransactionKey,
        invite: &Request,
        sdp: &str,
    ) -> DeviceDialog {
        let tag = new_tag();
        let mut resp = ua::response(invite, 200, &tag, &self.local);
        resp.headers
            .push(HeaderName::Contact, self.local.contact().to_string());
        resp.headers
            .push(HeaderName::ContentType, "application/sdp");
        resp.body = bytes::Bytes::from(sdp.to_owned().into_bytes());
        self.respond(now, key, resp);
        let from = invite.headers.from().ok();
        let remote_target = invite
            .headers
            .contact()
            .ok()
            .and_then(|c| c.into_iter().next())
            .map(|c| c.uri)
            .or_else(|| from.as_ref().map(|f| f.uri.clone()))
            .unwrap_or_else(|| invite.uri.clone());
        DeviceDialog {
            call_id: invite.headers.call_id().unwrap_or_default().to_owned(),
            local_tag: tag,
            remote_tag: from.as_ref().and_then(|f| f.tag().map(str::to_owned)),
            local_uri: invite
                .headers
                .to()
                .map(|t| t.uri)
                .unwrap_or_else(|_| self.local.aor()),
            remote_uri: from.map(|f| f.uri).unwrap_or_else(|| invite.uri.clone()),
            remote_target,
        }
    }

    /// Refuse a request with `status` (486 busy, 488 unacceptable SDP …).
    pub fn reject(&mut self, now: Instant, key: &TransactionKey, request: &Request, status: u16) {
        let resp = ua::response(request, status, &new_tag(), &self.local);
        self.respond(now, key, resp);
    }

    /// Hang up a dialog we accepted (BYE, RFC 3261 §15.1.1).
    pub fn bye(&mut self, now: Instant, dialog: &DeviceDialog) {
        let cseq = self.next_cseq();
        let to = NameAddr {
            display_name: None,
            uri: dialog.remote_uri.clone(),
            params: dialog
                .remote_tag
                .as_ref()
                .map(|t| {
                    vec![crate::sip::Param {
                        name: "tag".into(),
                        value: Some(t.clone()),
                    }]
                })
                .unwrap_or_default(),
        };
        let mut req = ua::new_request(
            &self.local,
            ua::RequestSpec {
                method: Method::Bye,
                uri: dialog.remote_target.clone(),
                to,
                from_tag: &dialog.local_tag,
                call_id: &dialog.call_id,
                cseq,
                transport: self.transport,
            },
        );
        // Our From is the channel the platform invited, not the device.
        let from = NameAddr {
            display_name: None,
            uri: dialog.local_uri.clone(),
            params: vec![crate::sip::Param {
                name: "tag".into(),
                value: Some(dialog.local_tag.clone()),
            }],
        };
        req.headers.set(HeaderName::From, from.to_string());
        self.send(now, req, Pending::Response);
    }

    /// Our identity (for building requests and responses outside the core).
    pub fn local(&self) -> &LocalIdentity {
        &self.local
    }

    /// Send a MANSCDP MESSAGE to the platform (alarms, media status …).
    pub fn send_manscdp(&mut self, now: Instant, body: &Manscdp) {
        self.send_message(now, body, Pending::Response);
    }

    /// Next SN for messages we originate.
    pub fn next_sn(&mut self) -> u32 {
        self.sn = self.sn.wrapping_add(1).max(1);
        self.sn
    }

    fn next_cseq(&mut self) -> u32 {
        self.cseq = self.cseq.wrapping_add(1).max(1);
        self.cseq
    }

    fn server_to(&self) -> NameAddr {
        NameAddr {
            display_name: None,
            uri: ua::sip_uri(&self.config.server_id, &self.config.server_domain, None),
            params: Vec::new(),
        }
    }

    fn send_register(&mut self, now: Instant, auth: Option<String>) {
        let cseq = self.next_cseq();
        let uri = ua::sip_uri(&self.config.server_id, &self.config.server_domain, None);
        // REGISTER: To = From = our address of record (RFC 3261 §10.2).
        let to = NameAddr {
            display_name: None,
            uri: self.local.aor(),
            params: Vec::new(),
        };
        let (call_id, from_tag) = (self.call_id.clone(), self.from_tag.clone());
        let mut req = ua::new_request(
            &self.local,
            ua::RequestSpec {
                method: Method::Register,
                uri,
                to,
                from_tag: &from_tag,
                call_id: &call_id,
                cseq,
                transport: self.transport,
            },
        );
        req.headers
            .push(HeaderName::Contact, self.local.contact().to_string());
        let expires = if self.unregistering {
            0
        } else {
            self.config.expires.as_secs()
        };
        req.headers.push(HeaderName::Expires, expires.to_string());
        if let Some(v) = &self.config.gb_version {
            req.headers
                .push(HeaderName::Other("X-GB-ver".into()), v.clone());
        }
        if let Some(a) = auth {
            req.headers.push(HeaderName::Authorization, a);
        }
        self.state = RegState::Registering;
        self.send(now, req, Pending::Register);
    }

    fn send(&mut self, now: Instant, req: Request, what: Pending) {
        match self
            .tx
            .send_request(now, req, self.transport, self.config.server)
        {
            Ok(key) => self.pending.push((key, what)),
            Err(e) => warn!(error = %e, "request not sent"),
        }
    }

    fn send_message(&mut self, now: Instant, body: &Manscdp, what: Pending) {
        let cseq = self.next_cseq();
        let uri = ua::sip_uri(&self.config.server_id, &self.config.server_domain, None);
        let to = self.server_to();
        let call_id = ua::new_call_id(&self.local.host);
        let from_tag = new_tag();
        let mut req = ua::new_request(
            &self.local,
            ua::RequestSpec {
                method: Method::Message,
                uri,
                to,
                from_tag: &from_tag,
                call_id: &call_id,
                cseq,
                transport: self.transport,
            },
        );
        req.headers
            .push(HeaderName::ContentType, "Application/MANSCDP+xml");
        req.body = body.to_bytes(self.config.charset);
        self.send(now, req, what);
    }

    fn send_keepalive(&mut self, now: Instant) {
        let sn = self.next_sn();
        let body = Manscdp::keepalive(sn, &self.config.id);
        self.send_message(now, &body, Pending::Keepalive(now));
    }

    fn drain(&mut self, now: Instant) {
        while let Some(ev) = self.tx.poll_event() {
            match ev {
                TxEvent::Request {
                    key: Some(key),
                    request,
                    ..
                } => self.on_request(now, key, request),
                TxEvent::Request {
                    key: None, request, ..
                } if request.method == Method::Ack => {
                    self.events.push_back(DeviceEvent::Ack(Box::new(request)));
                }
                TxEvent::Misdirected {
                    response,
                    transport,
                    remote,
                    ..
                } => {
                    // A platform may answer from another of its addresses (a wildcard bind on
                    // a multi-homed host): the device role trusts its platform's answers.
                    debug!(%remote, "platform answered from another address");
                    self.tx.accept_response(now, response, transport, remote);
                }
                TxEvent::Request { key: None, .. }
                | TxEvent::StrayResponse { .. }
                | TxEvent::Refused { .. } => {}
                TxEvent::Response { key, response, .. } => self.on_response(now, &key, &response),
                TxEvent::Timeout { key, .. } => self.on_timeout(now, &key),
            }
        }
    }

    fn take_pending(&mut self, key: &TransactionKey) -> Option<Pending> {
        let i = self.pending.iter().position(|(k, _)| k == key)?;
        Some(self.pending.swap_remove(i).1)
    }

    fn on_response(&mut self, now: Instant, key: &TransactionKey, resp: &Response) {
        if resp.status < 200 {
            return;
        }
        let Some(what) = self.take_pending(key) else {
            return;
        };
        match what {
            Pending::Register => self.on_register_response(now, resp),
            Pending::Keepalive(sent) => {
                if resp.status < 300 {
                    self.missed = 0;
                    self.events.push_back(DeviceEvent::KeepaliveOk {
                        latency: now.saturating_duration_since(sent),
                    });
                } else {
                    self.events.push_back(DeviceEvent::KeepaliveFailed {
                        status: Some(resp.status),
                    });
                    self.missed += 1;
                    if resp.status == 404 || self.missed >= self.config.keepalive_max_missed {
                        // The platform forgot us (restart, expiry: 404), or keeps refusing
                        // our keepalives (a 403 after our NAT mapping changed): register
                        // again, from where we are now.
                        self.missed = 0;
                        self.keepalive_at = None;
                        self.start(now);
                    }
                }
            }
            Pending::Response => self.send_next_page(now),
        }
    }

    fn on_register_response(&mut self, now: Instant, resp: &Response) {
        match resp.status {
            200..=299 => {
                if self.unregistering {
                    self.state = RegState::Idle;
                    self.events.push_back(DeviceEvent::Unregistered);
                    return;
                }
                self.state = RegState::Registered;
                self.missed = 0;
                let expires = resp
                    .headers
                    .expires()
                    .map_or(self.config.expires, |s| Duration::from_secs(u64::from(s)));
                // Refresh well before expiry.
                self.refresh_at = Some(now + expires.mul_f64(0.8).max(Duration::from_secs(1)));
                if self.keepalive_at.is_none() {
                    self.keepalive_at = Some(now + self.config.keepalive_interval);
                }
                let latency = self
                    .register_started
                    .map_or(Duration::ZERO, |t| now.saturating_duration_since(t));
                self.events.push_back(DeviceEvent::Registered {
                    latency,
                    date: resp.headers.get(&HeaderName::Date).map(str::to_owned),
                });
            }
            401 | 407 if self.auth_attempts < 2 => {
                let name = if resp.status == 401 {
                    HeaderName::WwwAuthenticate
                } else {
                    HeaderName::ProxyAuthenticate
                };
                let Some(ch) = resp
                    .headers
                    .get(&name)
                    .and_then(|v| DigestChallenge::parse(v).ok())
                else {
                    warn!(
                        status = resp.status,
                        "challenge without usable WWW-Authenticate"
                    );
                    self.fail_registration(now);
                    return;
                };
                if !ch.stale {
                    self.auth_attempts += 1;
                }
                let uri = ua::sip_uri(&self.config.server_id, &self.config.server_domain, None)
                    .to_string();
                let creds = DigestCredentials::answer(
                    &ch,
                    &self.config.id,
                    &self.config.password,
                    "REGISTER",
                    &uri,
                    1,
                    &new_tag(),
                );
                self.send_register(now, Some(creds.to_header_value()));
            }
            status => {
                self.events.push_back(DeviceEvent::RegisterFailed {
                    status: Some(status),
                });
                self.fail_registration(now);
            }
        }
    }

    fn fail_registration(&mut self, now: Instant) {
        self.state = RegState::Backoff;
        self.keepalive_at = None;
        self.refresh_at = None;
        self.retry_at = Some(now + self.config.register_retry);
    }

    fn on_timeout(&mut self, now: Instant, key: &TransactionKey) {
        match self.take_pending(key) {
            Some(Pending::Register) => {
                self.events
                    .push_back(DeviceEvent::RegisterFailed { status: None });
                self.fail_registration(now);
            }
            Some(Pending::Keepalive(_)) => {
                self.missed += 1;
                self.events
                    .push_back(DeviceEvent::KeepaliveFailed { status: None });
                if self.missed >= self.config.keepalive_max_missed {
                    self.missed = 0;
                    self.keepalive_at = None;
                    self.start(now);
                }
            }
            Some(Pending::Response) => self.send_next_page(now),
            None => {}
        }
    }

    fn on_request(&mut self, now: Instant, key: TransactionKey, req: Request) {
        if req.method != Method::Message {
            self.events.push_back(DeviceEvent::Request {
                key,
                request: Box::new(req),
            });
            return;
        }
        let msg = match Manscdp::parse(&req.body) {
            Ok(m) => m,
            Err(e) => {
                warn!(error = %e, "unreadable MANSCDP from the platform: 400");
                let resp = ua::response(&req, 400, &new_tag(), &self.local);
                self.respond(now, &key, resp);
                return;
            }
        };
        let resp = ua::response(&req, 200, &new_tag(), &self.local);
        self.respond(now, &key, resp);
        if msg.root != RootKind::Query {
            self.events.push_back(DeviceEvent::Message(Box::new(msg)));
            return;
        }
        let sn = msg.sn;
        let answers: Vec<Manscdp> = match &msg.body {
            Body::CatalogQuery(_) => crate::manscdp::catalog_pages(
                sn,
                &self.config.id,
                &self.config.channels,
                self.config.catalog_page_size.max(1),
            ),
            Body::DeviceInfoQuery => {
                vec![Manscdp::device_info_response(
                    sn,
                    &self.config.id,
                    self.config.info.clone(),
                )]
            }
            Body::DeviceStatusQuery => vec![Manscdp::device_status_response(
                sn,
                &self.config.id,
                DeviceStatus::online_ok(),
            )],
            _ => {
                self.events.push_back(DeviceEvent::Message(Box::new(msg)));
                return;
            }
        };
        self.events.push_back(DeviceEvent::QueryAnswered {
            cmd_type: msg.cmd_type.to_string(),
            sn,
        });
        let idle =
            self.outbox.is_empty() && !self.pending.iter().any(|(_, p)| *p == Pending::Response);
        self.outbox.extend(answers);
        if idle {
            self.send_next_page(now);
        }
    }

    /// Responses go out one at a time, each after the previous one's 200 (Annex M).
    fn send_next_page(&mut self, now: Instant) {
        if let Some(next) = self.outbox.pop_front() {
            self.send_message(now, &next, Pending::Response);
        }
    }
}
