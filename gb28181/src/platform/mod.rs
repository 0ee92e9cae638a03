//! The platform (server) role as a sans-IO core: registrar with digest authentication,
//! keepalive and offline detection, device queries and multi-message catalog collection
//! (GB/T 28181-2022 §9.1, §9.5, Annex M).
//!
//! Feed it with [`Platform::handle_datagram`], [`Platform::handle_connection_opened`],
//! [`Platform::handle_stream`], [`Platform::handle_connection_closed`] and
//! [`Platform::handle_timeout`]; drain [`Platform::poll_transmit`], [`Platform::poll_close`]
//! and [`Platform::poll_event`]; sleep until [`Platform::poll_timeout`]. Start queries with
//! [`Platform::query_catalog`] and friends. Every call takes `now`, so tests run on simulated
//! time; wall-clock stamps come from the injected [`WallClock`].
//!
//! The device network is untrusted (see `docs/field-signalling.md`):
//! - a registration binds a device ID to its source (the UDP address it registered from, or
//!   its TCP connection); requests and responses that claim a registered device from another
//!   source get 403 and are counted per source ([`Platform::refused_sources`]); only an
//!   authenticated REGISTER moves a device;
//! - nothing but a REGISTER creates a device;
//! - every table input can grow is bounded by [`Limits`], and each bound hit is counted in
//!   [`PlatformStats`].
//!
//! A runnable minimal platform built on this core is `examples/src/bin/minimal-platform.rs`.

mod auth;
mod call;
mod config;
mod conns;
mod device_state;
mod event;
mod query;
mod registrar;
mod stats;
mod tally;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use tracing::{debug, info, warn};

pub use auth::Lockouts;
pub use call::{CallEndReason, InviteParams, SessionId, subject};
pub use config::{
    AuthThrottling, DeviceSettings, Limit, Limits, PlatformConfig, UnknownDevicePolicy,
};
pub use device_state::{CommandError, DeviceState};
pub use event::{AuthFailure, CatalogResult, OfflineReason, PlatformEvent, QueryError, QueryId};
pub use stats::{MethodCounts, PlatformStats};

use crate::clock::WallClock;
use crate::manscdp::Manscdp;
use crate::sip::{HeaderName, Message, Method, ParseErrorKind, Request, Response};
use crate::transaction::{TransactionLayer, TxEvent, TxLimit, new_tag};
use crate::transport::{ConnId, Transmit, Transport};
use crate::ua::{self, LocalIdentity};

use auth::Auth;
use conns::Connections;
use query::Queries;
use tally::Tally;

/// The platform core. See the module documentation.
#[derive(Debug)]
pub struct Platform {
    config: PlatformConfig,
    local: LocalIdentity,
    clock: Box<dyn WallClock>,
    tx: TransactionLayer,
    auth: Auth,
    devices: HashMap<String, DeviceState>,
    queries: Queries,
    calls: call::Calls,
    conns: Connections,
    events: VecDeque<PlatformEvent>,
    closes: VecDeque<ConnId>,
    cseq: u32,
    sn: u32,
    next_sweep: Option<Instant>,
    pending_auto_queries: Vec<String>,
    stats: PlatformStats,
    /// Requests and responses refused for coming from another source than the device's.
    foreign: Tally,
}

/// Offline/expiry sweeps run at most this often.
const SWEEP: Duration = Duration::from_secs(1);

/// How often refusals are summarised in the log.
const SUMMARY_INTERVAL: Duration = Duration::from_secs(60);

/// What a request claiming a device may do, by where it came from.
enum Claim {
    /// From the device's registration source (or a trusted address).
    Device,
    /// The device is not registered.
    Unregistered,
    /// The device is registered elsewhere.
    Foreign,
}

impl Platform {
    /// A platform reading wall-clock time (for the `Date` header and event stamps) from
    /// `clock`: [`crate::clock::SystemClock`] in production.
    pub fn new(config: PlatformConfig, clock: impl WallClock + 'static) -> Platform {
        let local = LocalIdentity {
            id: config.id.clone(),
            domain: config.domain.clone(),
            host: config.announce_host.clone(),
            port: config.announce_port,
            user_agent: config.user_agent.clone(),
        };
        Platform {
            tx: TransactionLayer::with_limits(config.timers, config.limits.transactions),
            auth: Auth::new(config.nonce_ttl, config.auth),
            clock: Box::new(clock),
            local,
            config,
            devices: HashMap::new(),
            queries: Queries::default(),
            calls: call::Calls::default(),
            conns: Connections::default(),
            events: VecDeque::new(),
            closes: VecDeque::new(),
            cseq: 1,
            sn: 1,
            next_sweep: None,
            pending_auto_queries: Vec::new(),
            stats: PlatformStats::default(),
            foreign: Tally::new(SUMMARY_INTERVAL),
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
        match self.devices.remove(id) {
            Some(d) => {
                if d.registered
                    && let Transport::Tcp(c) = d.transport
                {
                    self.conns.unbind(now, c, id);
                }
                true
            }
            None => false,
        }
    }

    /// What the core counted so far.
    pub fn stats(&self) -> &PlatformStats {
        &self.stats
    }

    /// Sources refused for claiming a registered device they are not, with counts, most
    /// first (the first 1,024 sources one by one).
    pub fn refused_sources(&self) -> Vec<(IpAddr, u64)> {
        self.foreign.totals()
    }

    /// Sources of digest failures since start, with counts, most first.
    pub fn auth_failure_sources(&self) -> Vec<(IpAddr, u64)> {
        self.auth.failure_sources()
    }

    /// Device IDs and addresses locked out by the digest throttles now.
    pub fn auth_lockouts(&self, now: Instant) -> Lockouts {
        self.auth.lockouts(now)
    }

    /// Live transactions (client, server) and open TCP connections.
    pub fn load(&self) -> (usize, usize, usize) {
        let (c, s) = self.tx.len();
        (c, s, self.conns.len())
    }

    /// Feed one UDP datagram.
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, data: &[u8]) {
        if data.len() > self.config.limits.max_message_size_udp {
            self.stats.hit(Limit::MessageSizeUdp);
            debug!(%from, len = data.len(), "datagram over the size limit dropped");
            return;
        }
        match Message::parse(data) {
            Ok(msg) => self.handle_message(now, msg, Transport::Udp, from),
            Err(e) => {
                self.stats.parse_errors_udp += 1;
                debug!(%from, error = %e, "dropping unparseable SIP datagram");
            }
        }
    }

    /// A TCP connection was accepted. `false`: a bound ([`Limits::max_tcp_connections`],
    /// [`Limits::max_tcp_connections_per_ip`]) refuses it and the shell closes it at once.
    pub fn handle_connection_opened(
        &mut self,
        now: Instant,
        conn: ConnId,
        remote: SocketAddr,
    ) -> bool {
        match self.conns.open(now, conn, remote, &self.config.limits) {
            Ok(()) => true,
            Err(limit) => {
                self.stats.hit(limit);
                debug!(%remote, %conn, limit = limit.as_str(), "TCP connection refused");
                false
            }
        }
    }

    /// Feed bytes read from a TCP connection (any split: a message may arrive in many
    /// reads and several in one).
    /// A connection the shell did not announce is opened here, under the same bounds.
    pub fn handle_stream(&mut self, now: Instant, conn: ConnId, from: SocketAddr, data: &[u8]) {
        if !self.conns.contains(conn) && !self.handle_connection_opened(now, conn, from) {
            self.closes.push_back(conn);
            return;
        }
        self.stats.tcp_reads += 1;
        match self.conns.feed(conn, data) {
            Ok((messages, split)) => {
                if split {
                    self.stats.tcp_split_messages += 1;
                }
                for msg in messages {
                    self.handle_message(now, msg, Transport::Tcp(conn), from);
                }
            }
            Err(e) => {
                self.stats.parse_errors_tcp += 1;
                if matches!(e.kind, ParseErrorKind::MessageTooLarge { .. }) {
                    self.stats.hit(Limit::MessageSizeTcp);
                }
                warn!(%from, %conn, error = %e, "closing TCP connection after a framing error");
                self.closes.push_back(conn);
                self.handle_connection_closed(now, conn);
            }
        }
    }

    /// A TCP connection closed: devices registered over it go offline.
    pub fn handle_connection_closed(&mut self, now: Instant, conn: ConnId) {
        let gone = self.conns.close(conn);
        self.tx.connection_closed(Transport::Tcp(conn));
        self.drain_tx(now);
        for id in gone {
            if self
                .devices
                .get(&id)
                .is_some_and(|d| d.registered && d.transport == Transport::Tcp(conn))
            {
                self.unregister(now, &id, OfflineReason::ConnectionClosed);
            }
        }
    }

    /// Drive timers: retransmissions, registration expiry, keepalive timeouts, query
    /// timeouts, idle connections.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.tx.handle_timeout(now);
        self.drain_tx(now);
        if self.next_sweep.is_some_and(|t| t <= now) {
            self.next_sweep = None;
            self.sweep(now);
        }
        for conn in self
            .conns
            .idle_expired(now, self.config.limits.tcp_idle_before_register)
        {
            self.stats.hit(Limit::TcpIdleBeforeRegister);
            debug!(%conn, "closing a TCP connection that carries no registration");
            self.closes.push_back(conn);
            self.handle_connection_closed(now, conn);
        }
    }

    /// When to call [`handle_timeout`](Self::handle_timeout) next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        [
            self.tx.poll_timeout(),
            self.next_sweep,
            self.conns
                .next_idle_deadline(self.config.limits.tcp_idle_before_register),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Next datagram or stream write.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        let t = self.tx.poll_transmit()?;
        self.stats.count_out(&t.payload);
        Some(t)
    }

    /// Next TCP connection the shell should close (framing error, idle, bound reached).
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

    /// The wall time now (read when a stamp is made).
    fn wall(&self) -> SystemTime {
        self.clock.now()
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
                self.stats.requests_in.add(&req.method);
                ua::stamp_received(&mut req, from);
                self.tx.handle_request(now, req, transport, from);
            }
            Message::Response(resp) => {
                *self.stats.responses_in.entry(resp.status).or_default() += 1;
                self.tx.handle_response(now, resp, transport, from);
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
                TxEvent::Response { key, response, .. } => self.on_response(now, &key, &response),
                TxEvent::Misdirected {
                    key,
                    response,
                    transport,
                    remote,
                } => self.on_misdirected(now, &key, response, transport, remote),
                TxEvent::StrayResponse { response, remote } => {
                    debug!(%remote, status = response.status, "response matched no transaction");
                }
                TxEvent::Timeout { key } => {
                    self.stats.transaction_timeouts += 1;
                    debug!(method = %key.method, branch = %key.branch, "transaction timed out");
                    match self.calls.session_for_tx(&key) {
                        Some(session) => self.on_call_timeout(now, session, &key),
                        None => self.queries.on_tx_timeout(now, &key, &mut self.events),
                    }
                }
                TxEvent::Refused {
                    request,
                    transport,
                    remote,
                    limit,
                } => {
                    self.stats.hit(match limit {
                        TxLimit::Total => Limit::ServerTransactions,
                        TxLimit::PerSource => Limit::ServerTransactionsPerSource,
                    });
                    // Answered without keeping anything; the sender retries later.
                    let mut resp = ua::response(&request, 503, &new_tag(), &self.local);
                    resp.headers.push(HeaderName::RetryAfter, "5");
                    self.tx.send_stateless(resp.to_bytes(), transport, remote);
                }
            }
        }
        if !self.devices.is_empty() || !self.queries.is_empty() {
            self.arm_sweep(now);
        }
    }

    fn on_response(
        &mut self,
        now: Instant,
        key: &crate::transaction::TransactionKey,
        resp: &Response,
    ) {
        match self.calls.session_for_tx(key) {
            Some(session) => self.on_call_response(now, session, key, resp),
            None => self.queries.on_response(now, key, resp, &mut self.events),
        }
    }

    /// A response from another source than the one its request went to: taken only from an
    /// address trusted for that device.
    fn on_misdirected(
        &mut self,
        now: Instant,
        key: &crate::transaction::TransactionKey,
        response: Response,
        transport: Transport,
        remote: SocketAddr,
    ) {
        let device = self
            .calls
            .device_for_tx(key)
            .or_else(|| self.queries.device_for_tx(key))
            .map(str::to_owned);
        let trusted = device
            .as_deref()
            .and_then(|d| self.devices.get(d))
            .is_some_and(|d| d.settings.trusts(remote.ip()));
        if trusted {
            self.tx.accept_response(now, response, transport, remote);
            self.drain_tx(now);
        } else {
            self.refuse_foreign(now, device.as_deref().unwrap_or("?"), remote, "response");
        }
    }

    /// Count a request or response that claimed a device from another source; log the first
    /// per source and interval, the rest in the summary.
    fn refuse_foreign(&mut self, now: Instant, device_id: &str, remote: SocketAddr, what: &str) {
        self.stats.source_refused += 1;
        if self.foreign.record(now, remote.ip()) {
            warn!(%device_id, %remote, what, "refused: not from the device's registered source (further ones from this address are summarised)");
        }
    }

    /// Whether a request claiming `device_id` comes from that device.
    fn claim(&self, device_id: &str, transport: Transport, remote: SocketAddr) -> Claim {
        match self.devices.get(device_id) {
            Some(d) if d.registered => {
                if d.is_source(transport, remote) {
                    Claim::Device
                } else {
                    Claim::Foreign
                }
            }
            _ => Claim::Unregistered,
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
            Method::Options => 200,
            Method::Message | Method::Notify | Method::Info | Method::Subscribe => {
                self.on_device_request(now, &req, transport, remote)
            }
            Method::Bye => self.on_bye(now, &req, transport, remote),
            Method::Cancel => 481,
            Method::Invite => 488,
            _ => 405,
        };
        let mut resp = ua::response(&req, status, &new_tag(), &self.local);
        match status {
            405 => resp.headers.push(
                HeaderName::Allow,
                "INVITE, ACK, INFO, CANCEL, BYE, OPTIONS, MESSAGE, NOTIFY",
            ),
            200 if req.method == Method::Options => resp.headers.push(
                HeaderName::Allow,
                "INVITE, ACK, INFO, CANCEL, BYE, OPTIONS, MESSAGE, NOTIFY",
            ),
            _ => {}
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

    /// A request a device originates (MESSAGE, NOTIFY, INFO, SUBSCRIBE; §9.3, §9.11): 404
    /// from unregistered devices, 403 from anyone but the device's registration source, then
    /// MESSAGE and NOTIFY alike: 400 for unreadable bodies, otherwise 200 at once and the
    /// body is handled. INFO and SUBSCRIBE from devices are not served (405).
    fn on_device_request(
        &mut self,
        now: Instant,
        req: &Request,
        transport: Transport,
        remote: SocketAddr,
    ) -> u16 {
        let Some(device_id) = from_user(req) else {
            return 400;
        };
        match self.claim(&device_id, transport, remote) {
            Claim::Unregistered => {
                debug!(%device_id, %remote, method = %req.method, "request from an unregistered device: 404");
                return 404;
            }
            Claim::Foreign => {
                self.refuse_foreign(now, &device_id, remote, req.method.as_str());
                return 403;
            }
            Claim::Device => {}
        }
        if !matches!(req.method, Method::Message | Method::Notify) {
            return 405;
        }
        let msg = match Manscdp::parse(&req.body) {
            Ok(m) => m,
            Err(e) => {
                warn!(%device_id, %remote, error = %e, "unreadable MANSCDP body: 400");
                return 400;
            }
        };
        self.on_manscdp(now, &device_id, msg);
        200
    }

    fn on_manscdp(&mut self, now: Instant, device_id: &str, msg: Manscdp) {
        use crate::manscdp::Body;
        match msg.body {
            Body::Keepalive(_) => self.on_keepalive(now, device_id),
            Body::Catalog(_) | Body::DeviceInfo(_) | Body::DeviceStatus(_) => {
                let timeout = self.config.catalog_page_timeout;
                if let Some(unmatched) = self.queries.on_device_response(
                    now,
                    device_id,
                    msg,
                    timeout,
                    &self.config.limits,
                    &mut self.stats,
                    &mut self.events,
                ) {
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
        let at = self.wall();
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
        self.queries.sweep(now, &mut self.stats, &mut self.events);
        self.auth.sweep(now);
        self.foreign.log_summary(
            now,
            "requests refused: not from the claimed device's registered source",
        );
        if self.devices.values().any(|d| d.registered) || !self.queries.is_empty() {
            self.arm_sweep(now);
        }
    }

    fn set_offline(&mut self, now: Instant, id: &str, reason: OfflineReason) {
        self.end_device_calls(now, id);
        let at = self.wall();
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
            if d.registered
                && let Transport::Tcp(c) = d.transport
            {
                self.conns.unbind(now, c, id);
            }
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
        if !self.devices.get(device_id).is_some_and(|d| d.registered) {
            return Err(if self.devices.contains_key(device_id) {
                CommandError::Offline(device_id.to_owned())
            } else {
                CommandError::UnknownDevice(device_id.to_owned())
            });
        }
        // A query of the same kind already open for the device answers this one too.
        if let Some(id) = self.queries.open_query(device_id, kind) {
            return Ok(id);
        }
        if let Err(limit) = self.queries.admit(device_id, kind, &self.config.limits) {
            self.stats.hit(limit);
            return Err(CommandError::Busy(limit));
        }
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
