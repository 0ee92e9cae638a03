//! User-agent helpers shared by the platform and device roles: building requests and
//! responses the way GB/T 28181 peers expect them, RFC 3581 Via stamping, the GB `Date` format.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, SystemTime};

use chrono::{DateTime, FixedOffset, Offset as _, Utc};

use crate::sip::{HeaderName, Host, Method, NameAddr, Param, Request, Response, SipUri, Uri};
use crate::transaction::{new_branch, new_tag};
use crate::transport::Transport;

/// Who we are on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalIdentity {
    /// Our 20-digit ID (platform or device).
    pub id: String,
    /// Our SIP domain (10-digit realm, or `<10 digits>.spvmn.cn`).
    pub domain: String,
    /// The address announced in Via and Contact (configuration, never guessed).
    pub host: String,
    /// The port announced in Via and Contact.
    pub port: u16,
    /// `User-Agent` / `Server` header value.
    pub user_agent: String,
}

impl LocalIdentity {
    /// `sip:<id>@<domain>`, our address of record.
    pub fn aor(&self) -> Uri {
        sip_uri(&self.id, &self.domain, None)
    }

    /// `<sip:<id>@<host>:<port>>`, our contact.
    pub fn contact(&self) -> NameAddr {
        NameAddr {
            display_name: None,
            uri: sip_uri(&self.id, &self.host, Some(self.port)),
            params: Vec::new(),
        }
    }
}

/// A `sip:` URI with a user part.
pub fn sip_uri(user: &str, host: &str, port: Option<u16>) -> Uri {
    Uri::Sip(SipUri {
        secure: false,
        user: Some(user.to_owned()),
        password: None,
        host: host_from(host),
        port,
        params: Vec::new(),
        headers: Vec::new(),
    })
}

/// A host from text: an IP address when it is one, a domain otherwise.
pub fn host_from(s: &str) -> Host {
    match s.trim_matches(|c| c == '[' || c == ']').parse::<IpAddr>() {
        Ok(IpAddr::V4(a)) => Host::Ipv4(a),
        Ok(IpAddr::V6(a)) => Host::Ipv6(a),
        Err(_) => Host::Domain(s.to_owned()),
    }
}

/// The user part of a URI (the GB ID in `sip:<id>@…`).
pub fn uri_user(uri: &Uri) -> Option<&str> {
    match uri {
        Uri::Sip(s) => s.user.as_deref(),
        Uri::Other(_) => None,
    }
}

/// A fresh Call-ID `<random>@<host>`.
pub fn new_call_id(host: &str) -> String {
    format!("{}{}@{host}", new_tag(), new_tag())
}

/// Parameters of a request we originate.
#[derive(Debug, Clone)]
pub struct RequestSpec<'a> {
    /// The method.
    pub method: Method,
    /// The Request-URI.
    pub uri: Uri,
    /// The To header (a tag only inside a dialog).
    pub to: NameAddr,
    /// Our From tag (fresh outside a dialog).
    pub from_tag: &'a str,
    /// Call-ID.
    pub call_id: &'a str,
    /// CSeq number.
    pub cseq: u32,
    /// Transport, for the Via token.
    pub transport: Transport,
}

/// Build a request from `local` (RFC 3261 §8.1.1): Via with `rport` and a fresh branch, From
/// with our tag, To, Call-ID, CSeq, Max-Forwards 70, User-Agent. Body and Content-Type are
/// the caller's.
pub fn new_request(local: &LocalIdentity, spec: RequestSpec<'_>) -> Request {
    let mut req = Request::new(spec.method.clone(), spec.uri);
    let h = &mut req.headers;
    h.push(
        HeaderName::Via,
        format!(
            "SIP/2.0/{} {}:{};rport;branch={}",
            spec.transport.via_token(),
            local.host,
            local.port,
            new_branch()
        ),
    );
    let from = NameAddr {
        display_name: None,
        uri: local.aor(),
        params: vec![Param {
            name: "tag".into(),
            value: Some(spec.from_tag.to_owned()),
        }],
    };
    h.push(HeaderName::From, from.to_string());
    h.push(HeaderName::To, spec.to.to_string());
    h.push(HeaderName::CallId, spec.call_id.to_owned());
    h.push(HeaderName::CSeq, format!("{} {}", spec.cseq, spec.method));
    h.push(HeaderName::MaxForwards, "70");
    h.push(HeaderName::UserAgent, local.user_agent.clone());
    req
}

/// RFC 3581 §4 and RFC 3261 §18.2.1: record where a request really came from in its top Via
/// (`received` when the address differs from sent-by, `rport` filled in when requested).
pub fn stamp_received(req: &mut Request, remote: SocketAddr) {
    let Ok(mut vias) = req.headers.via() else {
        return;
    };
    let Some(top) = vias.first_mut() else {
        return;
    };
    let src_ip = remote.ip().to_string();
    let sent_by_ip = match &top.host {
        Host::Ipv4(a) => Some(IpAddr::V4(*a)),
        Host::Ipv6(a) => Some(IpAddr::V6(*a)),
        Host::Domain(_) => None,
    };
    let mut changed = false;
    if top.rport().is_some() {
        top.set_param("rport", Some(remote.port().to_string()));
        top.set_param("received", Some(src_ip.clone()));
        changed = true;
    } else if sent_by_ip != Some(remote.ip()) {
        top.set_param("received", Some(src_ip));
        changed = true;
    }
    if changed {
        let rest: Vec<String> = vias.iter().map(|v| v.to_string()).collect();
        req.headers.set(HeaderName::Via, rest.join(", "));
    }
}

/// A response to `req` (RFC 3261 §8.2.6) with our To tag when the request had none, and
/// our `User-Agent`.
pub fn response(req: &Request, status: u16, to_tag: &str, local: &LocalIdentity) -> Response {
    let mut resp = Response::for_request(req, status);
    if status > 100
        && let Ok(mut to) = resp.headers.to()
        && to.tag().is_none()
    {
        to.set_tag(to_tag);
        resp.headers.set(HeaderName::To, to.to_string());
    }
    resp.headers
        .push(HeaderName::UserAgent, local.user_agent.clone());
    resp
}

/// The GB/T 28181 `Date` header value (2022 §9.1.2.1): `YYYY-MM-DDTHH:MM:SS.sss` in local
/// time at `utc_offset` (Beijing: +8 h), without zone.
pub fn gb_date(wall: SystemTime, utc_offset: Duration) -> String {
    // At most 14 h, so the offset is always in chrono's range.
    let secs = utc_offset.as_secs().min(14 * 3600) as i32;
    let offset = FixedOffset::east_opt(secs).unwrap_or(Utc.fix());
    let dt: DateTime<Utc> = wall.into();
    dt.with_timezone(&offset)
        .format("%Y-%m-%dT%H:%M:%S%.3f")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gb_date_format() {
        // 2024-03-01T04:05:06.789Z
        let wall = SystemTime::UNIX_EPOCH + Duration::from_millis(1_709_265_906_789);
        assert_eq!(
            gb_date(wall, Duration::from_secs(8 * 3600)),
            "2024-03-01T12:05:06.789"
        );
        assert_eq!(gb_date(wall, Duration::ZERO), "2024-03-01T04:05:06.789");
    }
}
