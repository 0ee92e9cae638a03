//! The platform (server) role as a sans-IO core: registrar with digest authentication,
//! keepalive and offline detection, device queries and multi-message catalog collection
//! (GB/T 28181-2022 §9.1, §9.5, Annex M).
//!
//! Feed it with [`Platform::handle_datagram`], [`Platform::handle_stream`],
//! [`Platform::handle_connection_closed`] and [`Platform::handle_timeout`]; drain
//! [`Platform::poll_transmit`], [`Platform::poll_close`] and [`Platform::poll_event`]; sleep
//! until [`Platform::poll_timeout`]. Start queries with [`Platform::query_catalog`] and friends.
//! Every call takes `now`, so tests run on simulated time.
//!
//! A runnable minimal platform built on this core is `examples/src/bin/minimal-platform.rs`.

mod call;
mod event;
mod query;
mod registrar;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

use bytes::{Bytes, BytesMut};
use tracing::{debug, info, warn};

pub use call::{CallEndReason, InviteParams, SessionId, subject};
pub use event::{AuthFailure, CatalogResult, OfflineReason, PlatformEvent, QueryError, QueryId};

use crate::digest::NonceStore;
use crate::manscdp::{Charset, Manscdp};
use crate::sip::{HeaderName, Message, Method, Request, StreamDecoder};
use crate::transaction::{TimerConfig, TransactionLayer, TxEvent, new_tag};
use crate::transport::{ConnId, Transmit, Transport};
use crate::ua::{self, LocalIdentity, WallClock};

use query::Queries;

/// What to do with a device that registers without being provisioned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UnknownDevicePolicy {
    /// Accept it with the global password (the default).
    #[default]
    Accept,
    /// Refuse it with 403.
    Reject,
}

/// Configuration of a [`Platform`].
#[derive(Debug, Clone)]
pub struct PlatformConfig {
    /// Our 20-digit platform ID (type 200), e.g. `34020000002000000001`.
    pub id: String,
    /// Our SIP domain / digest realm: the first 10 digits of the ID by default.
    pub domain: String,
    /// Address announced in Via and Contact (`sip.announce_ip`), never guessed.
    pub announce_host: String,
    /// Port announced in Via and Contact.
    pub announce_port: u16,
    /// The global device password.
    pub password: String,
    /// Unknown devices: accept with the global password, or reject.
    pub unknown_devices: UnknownDevicePolicy,
    /// Expected keepalive interval (default 60 s).
    pub keepalive_interval: Duration,
    /// Missed keepalive intervals before a device is offline (default 3).
    pub keepalive_max_missed: u32,
    /// Registration lifetime when the device asks for none (default 3600 s).
    pub default_expires: Duration,
    /// Lifetime of a digest nonce (default 300 s).
    pub nonce_ttl: Duration,
    /// How long a query waits for the device's Response (default 30 s).
    pub query_timeout: Duration,
    /// How long a catalog waits for its next page once pages are arriving (default 10 s).
    pub catalog_page_timeout: Duration,
    /// Query DeviceInfo and Catalog by itself when a device comes online (default true).
    pub auto_query: bool,
    /// UTC offset for the `Date` header (default +8 h, Beijing).
    pub utc_offset: Duration,
    /// Largest SIP message accepted on a TCP stream (default 256 KiB).
    pub max_message_size: usize,
    /// RFC 3261 timer values.
    pub timers: TimerConfig,
    /// `User-Agent` header value.
    pub user_agent: String,
}

impl PlatformConfig {
    /// Defaults for a platform `id` announcing `host:port`.
    pub fn new(id: &str, announce_host: &str, announce_port: u16, password: &str) -> Self {
        PlatformConfig {
            id: id.to_owned(),
            domain: id.get(..10).unwrap_or(id).to_owned(),
            announce_host: announce_host.to_owned(),
            announce_port,
            password: password.to_owned(),
            unknown_devices: UnknownDevicePolicy::Accept,
            keepalive_interval: Duration::from_secs(60),
            keepalive_max_missed: 3,
            default_expires: Duration::from_secs(3600),
            nonce_ttl: Duration::from_secs(300),
            query_timeout: Duration::from_secs(30),
            catalog_page_timeout: Duration::from_secs(10),
            auto_query: true,
            utc_offset: Duration::from_secs(8 * 3600),
            max_message_size: 256 * 1024,
            timers: TimerConfig::default(),
            user_agent: concat!("gb28181-rs/", env!("CARGO_PKG_VERSION")).to_owned(),
        }
    }
}

/// Per-device settings the user provisions (REST API, store).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeviceSettings {
    /// Password for this device; the global one when `None`.
    pub password: Option<String>,
    /// Charset for bodies we send it; by GB version when `None`.
    pub charset: Option<Charset>,
}

/// What the platform knows of one device.
#[derive(Debug, Clone)]
pub struct DeviceState {
    /// Device ID.
    pub id: String,
    /// Provisioned settings.
    pub settings: DeviceSettings,
    /// Registered and alive.
    pub online: bool,
    /// Registered (may be offline after missed keepalives).
    pub registered: bool,
    /// Transport of the registration.
    pub transport: Transport,
    /// Source address of the registration (NAT-safe destination).
    pub remote: Option<SocketAddr>,
    /// Contact URI.
    pub contact: Option<String>,
    /// `X-GB-ver` (2.0 = 2016, 3.0 = 2022).
    pub gb_version: Option<String>,
    /// Registration expiry.
    pub expires_at: Option<Instant>,
    /// Last sign of life (registration or keepalive).
    pub last_seen: Option<Instant>,
}

impl DeviceState {
    fn new(id: &str, settings: DeviceSettings) -> DeviceState {
        DeviceState {
            id: id.to_owned(),
            settings,
            online: false,
            registered: false,
            transport: Transport::Udp,
            remote: None,
            contact: None,
            gb_version: None,
            expires_at: None,
            last_seen: None,
        }
    }

    /// True for a 2022 device (`X-GB-ver: 3.x`).
    pub fn is_gb2022(&self) -> bool {
        self.gb_version
            .as_deref()
            .is_some_and(|v| v.trim().starts_with('3'))
    }

    /// The charset for bodies sent to this device.
    pub fn charset(&self) -> Charset {
        self.settings.charset.unwrap_or(if self.is_gb2022() {
            Charset::Gb18030
        } else {
            Charset::Gb2312
        })
    }
}

/// Why a command could not be started.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    /// No such device.
    #[error("device {0} is unknown")]
    UnknownDevice(String),
    /// The device is not registered and online.
    #[error("device {0} is offline")]
    Offline(String),
}

/// The platform core. See the module documentation.
#[derive(Debug)]
pub struct Platform {
    config: PlatformConfig,
    local: LocalIdentity,
    clock: WallClock,
    tx: TransactionLayer,
    nonces: NonceStore,
    devices: HashMap<String, DeviceState>,
    queries: Queries,
    calls: call::Calls,
    decoders: HashMap<ConnId, StreamDecoder>,
    events: VecDeque<PlatformEvent>,
    closes: VecDeque<ConnId>,
    cseq: u32,
    sn: u32,
    next_sweep: Option<Instant>,
    pending_auto_queries: Vec<String>,
}

/// Offline/expiry sweeps run at most this often.
const SWEEP: Duration = Duration::from_secs(1);

impl Platform {
    /// A platform whose wall clock reads `wall` at `now`.
    pub fn new(config: PlatformConfig, now: Instant, wall: SystemTime) -> Platform {
        let local = LocalIdentity {
            id: config.id.clone(),
            domain: config.domain.clone(),
            host: config.announce_host.clone(),
            port: config.announce_port,
            user_agent: config.user_agent.clone(),
        };
        Platform {
            tx: TransactionLayer::new(config.timers),
            nonces: NonceStore::new(config.nonce_ttl, 100_000),
            clock: WallClock::new(now, wall),
            local,
            config,
            devices: HashMap::new(),
            queries: Queries::default(),
            calls: call::Calls::default(),
            decoders: HashMap::new(),
            events: VecDeque::new(),
            closes: VecDeque::new(),
            cseq: 1,
            sn: 1,
            next_sweep: None,
            pending_auto_queries: Vec::new(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &PlatformConfig {
        &self.config
    }

    /// Change the global password (takes effect for the next registration).
    pub fn set_password(&mut self, password: &str) {
        self.config.password = password.to_owned();
    }

    /// Known devices.
    pub fn devices(&self) -> impl Iterator<Item = &DeviceState> {
        self.devices.values()
    }

    /// One device.
    pub fn device(&self, id: &str) -> Option<&DeviceState> {
        self.devices.get(id)
    }

    /// Provision a device (or update its settings). Provisioned devices are accepted even
    /// when the policy rejects unknown ones.
    pub fn provision(&mut self, id: &str, settings: DeviceSettings) {
        self.devices
            .entry(id.to_owned())
            .and_modify(|d| d.settings = settings.clone())
            .or_insert_with(|| DeviceState::new(id, settings));
    }

    /// Forget a device; an online one is reported offline first.
    pub fn remove_device(&mut self, now: Instant, id: &str) -> bool {
        if self.devices.get(id).is_some_and(|d| d.online) {
            self.set_offline(now, id, OfflineReason::Removed);
        }
        self.end_device_calls(now, id);
        self.queries.fail_device(now, id, &mut self.events);
        self.devices.remove(id).is_some()
    }

    /// Feed one UDP datagram.
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, data: &[u8]) {
        match Message::parse(data) {
            Ok(msg) => self.handle_message(now, msg, Transport::Udp, from),
            Err(e) => {
                metrics::counter!("sip_parse_errors_total", "transport" => "udp").increment(1);
                debug!(%from, error = %e, "dropping unparseable SIP datagram");
            }
        }
    }

    /// Feed bytes read from a TCP connection (any split).
    pub fn handle_stream(&mut self, now: Instant, conn: ConnId, from: SocketAddr, data: &[u8]) {
        let max = self.config.max_message_size;
        let mut decoder = self
            .decoders
            .remove(&conn)
            .unwrap_or_else(|| StreamDecoder::new(max));
        let mut buf = BytesMut::from(data);
        loop {
            match decoder.decode(&mut buf) {
                Ok(Some(msg)) => self.handle_message(now, msg, Transport::Tcp(conn), from),
                Ok(None) => break,
                Err(e) => {
                    metrics::counter!("sip_parse_errors_total", "transport" => "tcp").increment(1);
                    warn!(%from, %conn, error = %e, "closing TCP connection after a framing error");
                    self.closes.push_back(conn);
                    self.handle_connection_closed(now, conn);
                    return;
                }
            }
        }
        self.decoders.insert(conn, decoder);
    }

    /// A TCP connection closed: devices registered over it go offline.
    pub fn handle_connection_closed(&mut self, now: Instant, conn: ConnId) {
        self.decoders.remove(&conn);
        self.tx.connection_closed(Transport::Tcp(conn));
        self.drain_tx(now);
        let gone: Vec<String> = self
            .devices
            .values()
            .filter(|d| d.registered && d.transport == Transport::Tcp(conn))
            .map(|d| d.id.clone())
            .collect();
        for id in gone {
            self.unregister(now, &id, OfflineReason::ConnectionClosed);
        }
    }

    /// Drive timers: retransmissions, registration expiry, keepalive timeouts, query timeouts.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.tx.handle_timeout(now);
        self.drain_tx(now);
        if self.next_sweep.is_some_and(|t| t <= now) {
            self.next_sweep = None;
            self.sweep(now);
        }
    }

    /// When to call [`handle_timeout`](Self::handle_timeout) next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        [self.tx.poll_timeout(), self.next_sweep]
            .into_iter()
            .flatten()
            .min()
    }

    /// Next datagram or stream write.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        let t = self.tx.poll_transmit()?;
        count_out(&t.payload);
        Some(t)
    }

    /// Next TCP connection the shell should close (after a framing error).
    pub fn poll_close(&mut self) -> Option<ConnId> {
        self.closes.pop_front()
    }

    /// Next event.
    pub fn poll_event(&mut self) -> Option<PlatformEvent> {
        self.events.pop_front()
    }

    /// Transactions that timed out so far.
    pub fn transaction_timeouts(&self) -> u64 {
        self.tx.timeout_count()
    }

    fn wall(&self, now: Instant) -> SystemTime {
        self.clock.at(now)
    }

    fn arm_sweep(&mut self, now: Instant) {
        if self.next_sweep.is_none() {
            self.next_sweep = Some(now + SWEEP);
        }
    }

    fn handle_message(
        &mut self,
        now: Instant,
        msg: Message,
        transport: Transport,
        from: SocketAddr,
    ) {
        match msg {
            Message::Request(mut req) => {
                metrics::counter!("sip_messages_in_total", "kind" => "request", "method" => req.method.to_string()).increment(1);
                ua::stamp_received(&mut req, from);
                self.tx.handle_request(now, req, transport, from);
            }
            Message::Response(resp) => {
                metrics::counter!("sip_messages_in_total", "kind" => "response", "status" => resp.status.to_string()).increment(1);
                self.tx.handle_response(now, resp, from);
            }
        }
        self.drain_tx(now);
    }

    fn drain_tx(&mut self, now: Instant) {
        while let Some(ev) = self.tx.poll_event() {
            match ev {
                TxEvent::Request {
                    key: Some(key),
                    request,
                    transport,
                    remote,
                } => self.on_request(now, key, request, transport, remote),
                TxEvent::Request { key: None, .. } => {}
                TxEvent::Response { key, response, .. } => match self.calls.session_for_tx(&key) {
                    Some(session) => self.on_call_response(now, session, &key, &response),
                    None => self
                        .queries
                        .on_response(now, &key, &response, &mut self.events),
                },
                TxEvent::StrayResponse { response, remote } => {
                    debug!(%remote, status = response.status, "response matched no transaction");
                }
                TxEvent::Timeout { key, request } => {
                    metrics::counter!("sip_transaction_timeouts_total").increment(1);
                    debug!(method = %request.method, branch = %key.branch, "transaction timed out");
                    match self.calls.session_for_tx(&key) {
                        Some(session) => self.on_call_timeout(now, session, &key),
                        None => self.queries.on_tx_timeout(now, &key, &mut self.events),
                    }
                }
            }
        }
        if !self.devices.is_empty() || !self.queries.is_empty() {
            self.arm_sweep(now);
        }
    }

    fn on_request(
        &mut self,
        now: Instant,
        key: crate::transaction::TransactionKey,
        req: Request,
        transport: Transport,
        remote: SocketAddr,
    ) {
        let status = match req.method {
            Method::Register => {
                let resp = self.on_register(now, &req, transport, remote);
                self.respond(now, &key, resp);
                self.run_auto_queries(now);
                return;
            }
            Method::Message => self.on_message(now, &req, transport, remote),
            Method::Options => 200,
            Method::Notify => {
                // Catalog/alarm subscriptions are answered; their content is reported.
                self.report_body(now, &req);
                200
            }
            Method::Bye => self.on_bye(now, &req),
            Method::Cancel => 481,
            Method::Invite => 488,
            _ => 405,
        };
        let mut resp = ua::response(&req, status, &new_tag(), &self.local);
        if status == 405 || req.method == Method::Options {
            resp.headers.push(
                HeaderName::Allow,
                "INVITE, ACK, INFO, CANCEL, BYE, OPTIONS, MESSAGE, NOTIFY",
            );
        }
        self.respond(now, &key, resp);
    }

    /// DeviceInfo then Catalog for devices that just came online.
    fn run_auto_queries(&mut self, now: Instant) {
        for device_id in std::mem::take(&mut self.pending_auto_queries) {
            for result in [
                self.query_device_info(now, &device_id),
                self.query_catalog(now, &device_id),
            ] {
                if let Err(e) = result {
                    debug!(%device_id, error = %e, "automatic query not sent");
                }
            }
        }
    }

    fn respond(
        &mut self,
        now: Instant,
        key: &crate::transaction::TransactionKey,
        resp: crate::sip::Response,
    ) {
        if let Err(e) = self.tx.respond(now, key, resp) {
            debug!(error = %e, "could not send response");
        }
    }

    /// MESSAGE (§9.3): 404 from unregistered devices, 400 for unreadable bodies, otherwise
    /// 200 at once and the body is handled.
    fn on_message(
        &mut self,
        now: Instant,
        req: &Request,
        transport: Transport,
        remote: SocketAddr,
    ) -> u16 {
        let Some(device_id) = from_user(req) else {
            return 400;
        };
        let registered = self.devices.get(&device_id).is_some_and(|d| d.registered);
        if !registered {
            debug!(%device_id, %remote, "MESSAGE from an unregistered device: 404");
            return 404;
        }
        let msg = match Manscdp::parse(&req.body) {
            Ok(m) => m,
            Err(e) => {
                warn!(%device_id, %remote, error = %e, "unreadable MANSCDP body: 400");
                return 400;
            }
        };
        if let Some(dev) = self.devices.get_mut(&device_id)
            && transport == Transport::Udp
            && dev.transport == Transport::Udp
        {
            // A UDP device behind NAT may change its public port: follow it.
            dev.remote = Some(remote);
        }
        self.on_manscdp(now, &device_id, msg);
        200
    }

    fn report_body(&mut self, now: Instant, req: &Request) {
        let Some(device_id) = from_user(req) else {
            return;
        };
        if let Ok(msg) = Manscdp::parse(&req.body) {
            self.on_manscdp(now, &device_id, msg);
        }
    }

    fn on_manscdp(&mut self, now: Instant, device_id: &str, msg: Manscdp) {
        use crate::manscdp::Body;
        match msg.body {
            Body::Keepalive(_) => self.on_keepalive(now, device_id),
            Body::Catalog(_) | Body::DeviceInfo(_) | Body::DeviceStatus(_) => {
                let timeout = self.config.catalog_page_timeout;
                if let Some(unmatched) =
                    self.queries
                        .on_device_response(now, device_id, msg, timeout, &mut self.events)
                {
                    self.events.push_back(PlatformEvent::Message {
                        device_id: device_id.to_owned(),
                        message: Box::new(unmatched),
                    });
                }
            }
            _ => self.events.push_back(PlatformEvent::Message {
                device_id: device_id.to_owned(),
                message: Box::new(msg),
            }),
        }
    }

    fn on_keepalive(&mut self, now: Instant, device_id: &str) {
        let at = self.wall(now);
        let Some(dev) = self.devices.get_mut(device_id) else {
            return;
        };
        dev.last_seen = Some(now);
        let came_back = !dev.online;
        dev.online = true;
        self.events.push_back(PlatformEvent::Keepalive {
            device_id: device_id.to_owned(),
            at,
        });
        if came_back {
            info!(%device_id, "device back online (keepalive)");
            self.events.push_back(PlatformEvent::Online {
                device_id: device_id.to_owned(),
                at,
            });
        }
    }

    fn sweep(&mut self, now: Instant) {
        let limit = self.config.keepalive_interval * self.config.keepalive_max_missed;
        let mut expired = Vec::new();
        let mut silent = Vec::new();
        for d in self.devices.values() {
            if !d.registered {
                continue;
            }
            if d.expires_at.is_some_and(|t| t <= now) {
                expired.push(d.id.clone());
            } else if d.online && d.last_seen.is_some_and(|t| now.duration_since(t) >= limit) {
                silent.push(d.id.clone());
            }
        }
        for id in expired {
            info!(device_id = %id, "registration expired");
            self.unregister(now, &id, OfflineReason::RegistrationExpired);
        }
        for id in silent {
            info!(device_id = %id, "no keepalive for {} intervals: offline", self.config.keepalive_max_missed);
            self.set_offline(now, &id, OfflineReason::KeepaliveTimeout);
        }
        self.queries.sweep(now, &mut self.events);
        self.nonces.expire(now);
        if self.devices.values().any(|d| d.registered) || !self.queries.is_empty() {
            self.arm_sweep(now);
        }
    }

    fn set_offline(&mut self, now: Instant, id: &str, reason: OfflineReason) {
        self.end_device_calls(now, id);
        let at = self.wall(now);
        if let Some(d) = self.devices.get_mut(id)
            && d.online
        {
            d.online = false;
            self.events.push_back(PlatformEvent::Offline {
                device_id: id.to_owned(),
                reason,
                at,
            });
        }
    }

    fn unregister(&mut self, now: Instant, id: &str, reason: OfflineReason) {
        self.set_offline(now, id, reason);
        if let Some(d) = self.devices.get_mut(id) {
            d.registered = false;
            d.expires_at = None;
        }
        self.queries.fail_device(now, id, &mut self.events);
    }

    fn next_cseq(&mut self) -> u32 {
        self.cseq = self.cseq.wrapping_add(1).max(1);
        self.cseq
    }

    fn next_sn(&mut self) -> u32 {
        self.sn = self.sn.wrapping_add(1).max(1);
        self.sn
    }

    /// Send a MANSCDP MESSAGE to a registered device in a new transaction.
    /// Returns the client transaction key.
    pub fn send_manscdp(
        &mut self,
        now: Instant,
        device_id: &str,
        body: &Manscdp,
    ) -> Result<crate::transaction::TransactionKey, CommandError> {
        self.send_manscdp_to(now, device_id, device_id, body)
    }

    /// Send a MANSCDP MESSAGE addressed to `target_id` (the device or one of its channels)
    /// through the registered device `device_id`.
    pub fn send_manscdp_to(
        &mut self,
        now: Instant,
        device_id: &str,
        target_id: &str,
        body: &Manscdp,
    ) -> Result<crate::transaction::TransactionKey, CommandError> {
        let dev = self
            .devices
            .get(device_id)
            .ok_or_else(|| CommandError::UnknownDevice(device_id.to_owned()))?;
        let (Some(remote), true) = (dev.remote, dev.registered) else {
            return Err(CommandError::Offline(device_id.to_owned()));
        };
        let transport = dev.transport;
        let charset = dev.charset();
        let payload: Bytes = body.to_bytes(charset);
        let cseq = self.next_cseq();
        let call_id = ua::new_call_id(&self.local.host);
        let from_tag = new_tag();
        let to = crate::sip::NameAddr {
            display_name: None,
            uri: ua::sip_uri(target_id, &self.local.domain, None),
            params: Vec::new(),
        };
        let target = ua::sip_uri(target_id, &remote.ip().to_string(), Some(remote.port()));
        let mut req = ua::new_request(
            &self.local,
            ua::RequestSpec {
                method: Method::Message,
                uri: target,
                to,
                from_tag: &from_tag,
                call_id: &call_id,
                cseq,
                transport,
            },
        );
        req.headers
            .push(HeaderName::ContentType, "Application/MANSCDP+xml");
        req.body = payload;
        self.tx
            .send_request(now, req, transport, remote)
            .map_err(|_| CommandError::Offline(device_id.to_owned()))
    }

    /// Query the catalog of a device (Annex M). The result arrives as
    /// [`PlatformEvent::Catalog`] or [`PlatformEvent::QueryFailed`].
    pub fn query_catalog(
        &mut self,
        now: Instant,
        device_id: &str,
    ) -> Result<QueryId, CommandError> {
        self.start_query(now, device_id, query::Kind::Catalog)
    }

    /// Query DeviceInfo; answered by [`PlatformEvent::DeviceInfo`].
    pub fn query_device_info(
        &mut self,
        now: Instant,
        device_id: &str,
    ) -> Result<QueryId, CommandError> {
        self.start_query(now, device_id, query::Kind::DeviceInfo)
    }

    /// Query DeviceStatus; answered by [`PlatformEvent::DeviceStatus`].
    pub fn query_device_status(
        &mut self,
        now: Instant,
        device_id: &str,
    ) -> Result<QueryId, CommandError> {
        self.start_query(now, device_id, query::Kind::DeviceStatus)
    }

    fn start_query(
        &mut self,
        now: Instant,
        device_id: &str,
        kind: query::Kind,
    ) -> Result<QueryId, CommandError> {
        let sn = self.next_sn();
        let body = match kind {
            query::Kind::Catalog => Manscdp::catalog_query(sn, device_id),
            query::Kind::DeviceInfo => Manscdp::device_info_query(sn, device_id),
            query::Kind::DeviceStatus => Manscdp::device_status_query(sn, device_id),
        };
        let key = self.send_manscdp(now, device_id, &body)?;
        let id = self
            .queries
            .start(now, device_id, kind, sn, key, self.config.query_timeout);
        self.arm_sweep(now);
        Ok(id)
    }
}

/// The user part of the From URI: the sender's GB ID.
fn from_user(req: &Request) -> Option<String> {
    let from = req.headers.from().ok()?;
    ua::uri_user(&from.uri).map(str::to_owned)
}

fn count_out(payload: &[u8]) {
    // The first line tells request from response without a full parse.
    let line_end = payload
        .iter()
        .position(|&b| b == b'\r')
        .unwrap_or(payload.len())
        .min(64);
    let line = &payload[..line_end];
    if let Some(rest) = line.strip_prefix(b"SIP/2.0 ") {
        let status = String::from_utf8_lossy(rest.get(..3).unwrap_or(rest)).into_owned();
        metrics::counter!("sip_messages_out_total", "kind" => "response", "status" => status)
            .increment(1);
    } else {
        let method_end = line.iter().position(|&b| b == b' ').unwrap_or(line.len());
        let method = String::from_utf8_lossy(&line[..method_end]).into_owned();
        metrics::counter!("sip_messages_out_total", "kind" => "request", "method" => method)
            .increment(1);
    }
}
