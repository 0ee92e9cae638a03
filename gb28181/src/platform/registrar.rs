//! REGISTER handling (GB/T 28181-2022 §9.1.2, RFC 3261 §10.3, digest per RFC 2617).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tracing::{debug, info};

use super::{
    AuthFailure, DeviceSettings, DeviceState, Limit, OfflineReason, Platform, PlatformEvent,
    UnknownDevicePolicy,
};
use crate::digest::{DigestChallenge, DigestCredentials, NonceCheck};
use crate::sip::{HeaderName, Request, Response, Uri};
use crate::transaction::new_tag;
use crate::transport::Transport;
use crate::ua;

/// Custom GB/T 28181-2022 header carrying the protocol version (2.0 = 2016, 3.0 = 2022).
const X_GB_VER: &str = "X-GB-ver";

impl Platform {
    /// REGISTER: policy, throttles, then digest (RFC 2617) against nonces we issued to this
    /// address. See [`super::auth`] for what is evaluated and what is refused unread.
    pub(super) fn on_register(
        &mut self,
        now: Instant,
        req: &Request,
        transport: Transport,
        remote: SocketAddr,
    ) -> Response {
        let Some(device_id) = super::from_user(req) else {
            debug!(%remote, "REGISTER without a usable From URI: 400");
            return self.plain(req, 400);
        };
        if crate::id::GbId::parse(&device_id).is_none() {
            debug!(%remote, %device_id, "REGISTER from an ID that is not a GB/T 28181 ID: 400");
            return self.plain(req, 400);
        }
        let known = self.devices.get(&device_id);
        if known.is_none() && self.config.unknown_devices == UnknownDevicePolicy::Reject {
            debug!(%device_id, %remote, "unknown device rejected by policy: 403");
            self.auth_failed(&device_id, remote, AuthFailure::UnknownDevice);
            return self.plain(req, 403);
        }
        if known.is_none() && self.devices.len() >= self.config.limits.max_devices {
            self.stats.hit(Limit::Devices);
            debug!(%device_id, %remote, "device table full: 503");
            self.auth_failed(&device_id, remote, AuthFailure::TooManyDevices);
            let mut resp = self.plain(req, 503);
            resp.headers.push(HeaderName::RetryAfter, "60");
            return resp;
        }
        let home = known.is_some_and(|d| d.is_home(remote.ip()));
        let password = known
            .and_then(|d| d.settings.password.clone())
            .unwrap_or_else(|| self.config.password.clone());

        if let Err(wait) = self.auth.gate(now, &device_id, remote.ip(), home) {
            self.stats.register_throttled += 1;
            self.auth_failed(
                &device_id,
                remote,
                AuthFailure::Throttled { retry_after: wait },
            );
            let mut resp = self.plain(req, 403);
            resp.reason = "Too Many Failed Attempts".into();
            resp.headers
                .push(HeaderName::RetryAfter, ceil_secs(wait).to_string());
            return resp;
        }

        let Some(auth) = req.headers.get(&HeaderName::Authorization) else {
            debug!(%device_id, %remote, "REGISTER without credentials: 401");
            return self.challenge(now, req, remote, false);
        };
        let creds = match DigestCredentials::parse(auth) {
            Ok(c) => c,
            Err(e) => {
                let reason = AuthFailure::BadCredentials(e.to_string());
                return self.refuse(now, req, &device_id, remote, None, reason, 400);
            }
        };
        let mismatch = if creds.username != device_id {
            Some(AuthFailure::UsernameMismatch)
        } else if creds.realm != self.config.domain {
            Some(AuthFailure::RealmMismatch)
        } else if !names_us(&creds.uri, &req.uri, &self.local) {
            Some(AuthFailure::UriMismatch)
        } else {
            None
        };
        if let Some(reason) = mismatch {
            let nonce = Some(creds.nonce.as_str());
            return self.refuse(now, req, &device_id, remote, nonce, reason, 403);
        }
        let nc = if creds.qop.is_some() {
            creds.nonce_count()
        } else {
            0
        };
        let check = self.auth.check_nonce(&creds.nonce, nc, now, remote.ip());
        if check == NonceCheck::Unknown {
            // Not a nonce we issued to this address (invented, forgotten, burnt): nothing is
            // evaluated, so the answer says nothing about the password.
            debug!(%device_id, %remote, "unknown nonce: new challenge");
            return self.challenge(now, req, remote, false);
        }
        if !creds.verify("REGISTER", &password) {
            return self.refuse(
                now,
                req,
                &device_id,
                remote,
                Some(&creds.nonce),
                AuthFailure::WrongPassword,
                403,
            );
        }
        if check == NonceCheck::Stale {
            debug!(%device_id, %remote, "stale nonce with good credentials: 401 stale=true");
            return self.challenge(now, req, remote, true);
        }
        self.auth.consume_nonce(&creds.nonce, nc);
        self.auth.succeeded(&device_id, remote.ip());

        let expires = register_expires(req).map_or(self.config.default_expires, |s| {
            Duration::from_secs(u64::from(s))
        });
        if expires.is_zero() {
            if !self
                .devices
                .get(&device_id)
                .is_some_and(|d| d.is_source(transport, remote))
            {
                // An authenticated unregister from elsewhere: the registration moves first
                // (only an authenticated REGISTER may), then ends.
                self.bind_route(now, &device_id, transport, remote);
            }
            info!(%device_id, %remote, "device unregistered");
            self.unregister(now, &device_id, OfflineReason::Unregistered);
            let mut resp = self.ok(req);
            resp.headers.push(HeaderName::Expires, "0");
            return resp;
        }
        self.accept_registration(now, req, &device_id, transport, remote, expires)
    }

    /// A registration attempt that was evaluated and failed: burn the nonce, count and
    /// throttle the failure, answer `status`.
    #[allow(clippy::too_many_arguments)]
    fn refuse(
        &mut self,
        now: Instant,
        req: &Request,
        device_id: &str,
        remote: SocketAddr,
        nonce: Option<&str>,
        reason: AuthFailure,
        status: u16,
    ) -> Response {
        debug!(%device_id, %remote, reason = reason.as_str(), status, "registration refused");
        self.stats.register_failures += 1;
        if self.auth.failed(now, device_id, remote.ip(), nonce) {
            self.stats.auth_lockouts += 1;
        }
        self.auth_failed(device_id, remote, reason);
        self.plain(req, status)
    }

    /// Record where a device is reached: the transport and address of its authenticated
    /// REGISTER. Moves the TCP connection binding along.
    fn bind_route(
        &mut self,
        now: Instant,
        device_id: &str,
        transport: Transport,
        remote: SocketAddr,
    ) {
        let Some(dev) = self.devices.get_mut(device_id) else {
            return;
        };
        let old = (dev.registered, dev.transport);
        dev.transport = transport;
        dev.remote = Some(remote);
        if old.0
            && let Transport::Tcp(c) = old.1
        {
            self.conns.unbind(now, c, device_id);
        }
        if let Transport::Tcp(c) = transport {
            self.conns.bind(c, device_id);
        }
        if let Some(dev) = self.devices.get_mut(device_id) {
            dev.registered = true;
        }
    }

    fn accept_registration(
        &mut self,
        now: Instant,
        req: &Request,
        device_id: &str,
        transport: Transport,
        remote: SocketAddr,
        expires: Duration,
    ) -> Response {
        let at = self.wall();
        let gb_version = header(req, X_GB_VER);
        let user_agent = req.headers.get(&HeaderName::UserAgent).map(str::to_owned);
        let contact = req
            .headers
            .contact()
            .ok()
            .and_then(|c| c.into_iter().next())
            .map(|c| c.uri.to_string());
        let dev = self
            .devices
            .entry(device_id.to_owned())
            .or_insert_with(|| DeviceState::new(device_id, DeviceSettings::default()));
        let refresh = dev.registered && dev.online;
        let moved = !dev.registered || dev.transport != transport || dev.remote != Some(remote);
        if moved {
            self.bind_route(now, device_id, transport, remote);
        }
        let Some(dev) = self.devices.get_mut(device_id) else {
            return self.plain(req, 500);
        };
        dev.registered = true;
        dev.contact = contact.clone();
        if gb_version.is_some() {
            dev.gb_version = gb_version.clone();
        }
        dev.expires_at = Some(now + expires);
        dev.last_seen = Some(now);
        let came_online = !dev.online;
        dev.online = true;
        info!(%device_id, %remote, transport = transport.name(), expires = expires.as_secs(), refresh, "device registered");
        self.events.push_back(PlatformEvent::Registered {
            device_id: device_id.to_owned(),
            transport,
            remote,
            contact,
            gb_version: gb_version.clone(),
            user_agent,
            expires,
            refresh,
            at,
        });
        if came_online {
            self.events.push_back(PlatformEvent::Online {
                device_id: device_id.to_owned(),
                at,
            });
        }
        let mut resp = self.ok(req);
        resp.headers
            .push(HeaderName::Expires, expires.as_secs().to_string());
        if let Some(contact) = req.headers.get(&HeaderName::Contact) {
            resp.headers.push(HeaderName::Contact, contact.to_owned());
        }
        if let Some(v) = gb_version {
            resp.headers.push(HeaderName::Other(X_GB_VER.into()), v);
        }
        if came_online && self.config.auto_query {
            // Queued after the 200 OK: the answer goes out first.
            self.pending_auto_queries.push(device_id.to_owned());
        }
        resp
    }

    /// 200 with the GB `Date` (time sync), read from the wall clock now.
    fn ok(&self, req: &Request) -> Response {
        let mut resp = ua::response(req, 200, &new_tag(), &self.local);
        resp.headers.push(
            HeaderName::Date,
            ua::gb_date(self.wall(), self.config.utc_offset),
        );
        resp
    }

    fn plain(&self, req: &Request, status: u16) -> Response {
        ua::response(req, status, &new_tag(), &self.local)
    }

    fn challenge(
        &mut self,
        now: Instant,
        req: &Request,
        remote: SocketAddr,
        stale: bool,
    ) -> Response {
        let nonce = self.auth.challenge(now, remote.ip());
        let ch = DigestChallenge {
            realm: self.config.domain.clone(),
            nonce,
            qop_auth: true,
            stale,
            opaque: None,
        };
        let mut resp = self.plain(req, 401);
        resp.headers
            .push(HeaderName::WwwAuthenticate, ch.to_header_value());
        resp
    }

    fn auth_failed(&mut self, device_id: &str, remote: SocketAddr, reason: AuthFailure) {
        self.events.push_back(PlatformEvent::AuthFailed {
            device_id: device_id.to_owned(),
            remote,
            reason,
        });
    }
}

/// The digest URI must name this registrar (RFC 2617 §3.2.2.5): the Request-URI itself, or a
/// SIP URI whose user (if any) is our ID and whose host and port are ours — the Request-URI's
/// host, our domain or our announced address. Tolerated because it is sent: sipp and some
/// devices put the registrar's address (`sip:10.0.0.5:5060`) instead of the Request-URI.
fn names_us(digest_uri: &str, request_uri: &Uri, local: &crate::ua::LocalIdentity) -> bool {
    let digest_uri = digest_uri.trim();
    if digest_uri == request_uri.to_string() {
        return true;
    }
    let (Ok(Uri::Sip(d)), Uri::Sip(r)) = (digest_uri.parse::<Uri>(), request_uri) else {
        return false;
    };
    let user_ok = match d.user.as_deref() {
        None => true,
        Some(u) => u == local.id || Some(u) == r.user.as_deref(),
    };
    let host = d.host.to_string();
    let host_ok = [r.host.to_string(), local.domain.clone(), local.host.clone()]
        .iter()
        .any(|h| h.eq_ignore_ascii_case(&host));
    let port = d.port.unwrap_or(5060);
    let port_ok = port == r.port.unwrap_or(5060) || port == local.port;
    user_ok && host_ok && port_ok
}

/// Whole seconds, rounded up (at least 1): what `Retry-After` says.
fn ceil_secs(d: Duration) -> u64 {
    (d.as_secs() + u64::from(d.subsec_nanos() > 0)).max(1)
}

/// The lifetime a REGISTER asks for: `Expires` header, else the Contact `expires` parameter.
fn register_expires(req: &Request) -> Option<u32> {
    if let Some(e) = req.headers.expires() {
        return Some(e);
    }
    let contacts = req.headers.contact().ok()?;
    let first = contacts.first()?;
    first
        .params
        .iter()
        .find(|p| p.name.eq_ignore_ascii_case("expires"))
        .and_then(|p| p.value.as_deref())
        .and_then(|v| v.trim().parse().ok())
}

fn header(req: &Request, name: &str) -> Option<String> {
    req.headers
        .get(&HeaderName::Other(name.to_owned()))
        .map(|s| s.trim().to_owned())
}
