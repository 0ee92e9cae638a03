//! REGISTER handling (GB/T 28181-2022 §9.1.2, RFC 3261 §10.3, digest per RFC 2617).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tracing::{debug, info, warn};

use super::{
    AuthFailure, DeviceSettings, DeviceState, OfflineReason, Platform, PlatformEvent,
    UnknownDevicePolicy,
};
use crate::digest::{DigestChallenge, DigestCredentials, NonceCheck};
use crate::sip::{HeaderName, Request, Response};
use crate::transaction::new_tag;
use crate::transport::Transport;
use crate::ua;

/// Custom GB/T 28181-2022 header carrying the protocol version (2.0 = 2016, 3.0 = 2022).
const X_GB_VER: &str = "X-GB-ver";

impl Platform {
    pub(super) fn on_register(
        &mut self,
        now: Instant,
        req: &Request,
        transport: Transport,
        remote: SocketAddr,
    ) -> Response {
        let Some(device_id) = super::from_user(req) else {
            warn!(%remote, "REGISTER without a usable From URI: 400");
            return self.plain(req, 400);
        };
        if crate::id::GbId::parse(&device_id).is_none() {
            warn!(%remote, %device_id, "REGISTER from an ID that is not a GB/T 28181 ID: 400");
            return self.plain(req, 400);
        }
        let known = self.devices.get(&device_id).map(|d| d.settings.clone());
        if known.is_none() && self.config.unknown_devices == UnknownDevicePolicy::Reject {
            info!(%device_id, %remote, "unknown device rejected by policy: 403");
            self.auth_failed(&device_id, remote, AuthFailure::UnknownDevice);
            return self.plain(req, 403);
        }
        let password = known
            .as_ref()
            .and_then(|s| s.password.clone())
            .unwrap_or_else(|| self.config.password.clone());

        let Some(auth) = req.headers.get(&HeaderName::Authorization) else {
            debug!(%device_id, %remote, "REGISTER without credentials: 401");
            return self.challenge(now, req, false);
        };
        let creds = match DigestCredentials::parse(auth) {
            Ok(c) => c,
            Err(e) => {
                warn!(%device_id, %remote, error = %e, "unusable Authorization header: new challenge");
                self.auth_failed(
                    &device_id,
                    remote,
                    AuthFailure::BadCredentials(e.to_string()),
                );
                return self.challenge(now, req, false);
            }
        };
        if creds.username != device_id {
            warn!(%device_id, username = %creds.username, %remote, "digest username is not the device ID: 403");
            self.auth_failed(&device_id, remote, AuthFailure::UsernameMismatch);
            return self.plain(req, 403);
        }
        let nc = if creds.qop.is_some() {
            creds.nonce_count()
        } else {
            0
        };
        let verified = creds.verify("REGISTER", &password);
        match self.nonces.check(&creds.nonce, nc, now) {
            NonceCheck::Fresh if verified => {
                self.nonces.consume(&creds.nonce, nc);
            }
            NonceCheck::Fresh => {
                warn!(%device_id, %remote, "wrong password: 403");
                self.auth_failed(&device_id, remote, AuthFailure::WrongPassword);
                return self.plain(req, 403);
            }
            NonceCheck::Stale | NonceCheck::Unknown if verified => {
                debug!(%device_id, %remote, "stale nonce with good credentials: 401 stale=true");
                return self.challenge(now, req, true);
            }
            NonceCheck::Stale | NonceCheck::Unknown => {
                debug!(%device_id, %remote, "unknown nonce: new challenge");
                return self.challenge(now, req, false);
            }
        }

        let expires = register_expires(req).map_or(self.config.default_expires, |s| {
            Duration::from_secs(u64::from(s))
        });
        if expires.is_zero() {
            info!(%device_id, %remote, "device unregistered");
            self.unregister(now, &device_id, OfflineReason::Unregistered);
            let mut resp = self.ok(now, req);
            resp.headers.push(HeaderName::Expires, "0");
            return resp;
        }
        self.accept_registration(now, req, &device_id, transport, remote, expires)
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
        let at = self.wall(now);
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
        dev.registered = true;
        dev.transport = transport;
        dev.remote = Some(remote);
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
        let mut resp = self.ok(now, req);
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

    fn ok(&self, now: Instant, req: &Request) -> Response {
        let mut resp = ua::response(req, 200, &new_tag(), &self.local);
        resp.headers.push(
            HeaderName::Date,
            ua::gb_date(self.wall(now), self.config.utc_offset),
        );
        resp
    }

    fn plain(&self, req: &Request, status: u16) -> Response {
        ua::response(req, status, &new_tag(), &self.local)
    }

    fn challenge(&mut self, now: Instant, req: &Request, stale: bool) -> Response {
        let nonce = self.nonces.issue(now);
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
        metrics::counter!("sip_register_failures_total").increment(1);
        self.events.push_back(PlatformEvent::AuthFailed {
            device_id: device_id.to_owned(),
            remote,
            reason,
        });
    }
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
