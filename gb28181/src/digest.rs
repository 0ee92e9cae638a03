//! HTTP digest authentication with MD5 for SIP (RFC 3261 §22.4, RFC 2617 §3), as GB/T 28181
//! uses it for REGISTER (2022 §9.1.2).
//!
//! - [`DigestChallenge`]: the `WWW-Authenticate` value a registrar sends in a 401.
//! - [`DigestCredentials`]: the `Authorization` value a device sends back, parsed leniently.
//! - [`NonceStore`]: issued nonces with expiry and replay protection (sans-IO: time is passed in).
//!
//! ```
//! use gb28181::digest::{DigestCredentials, response};
//! let ha = response("34020000001320000001", "3402000000", "12345678", "REGISTER",
//!     "sip:34020000002000000001@3402000000", "abc", None);
//! let creds = DigestCredentials::parse(&format!(
//!     "Digest username=\"34020000001320000001\", realm=\"3402000000\", nonce=\"abc\", \
//!      uri=\"sip:34020000002000000001@3402000000\", response=\"{ha}\", algorithm=MD5")).unwrap();
//! assert!(creds.verify("REGISTER", "12345678"));
//! assert!(!creds.verify("REGISTER", "wrong"));
//! ```

use std::collections::{HashMap, VecDeque};
use std::fmt::Write as _;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use md5::{Digest as _, Md5};
use rand::RngCore;

/// Why an `Authorization` header value could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DigestError {
    /// The scheme is not `Digest` (RFC 3261 §22.4 allows only Digest).
    #[error("authorization scheme is not Digest")]
    NotDigest,
    /// A parameter the response needs is absent.
    #[error("digest parameter `{0}` is missing")]
    Missing(&'static str),
    /// The algorithm is not MD5 (GB/T 28181 2016/2022 baseline).
    #[error("digest algorithm `{0}` is not supported (MD5 only)")]
    Algorithm(String),
    /// qop other than `auth`.
    #[error("digest qop `{0}` is not supported (auth only)")]
    Qop(String),
    /// The quoted-string/token syntax is broken at this byte offset of the header value.
    #[error("malformed digest parameters at byte {0}")]
    Syntax(usize),
}

/// `WWW-Authenticate: Digest …` sent in a 401 (RFC 2617 §3.2.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigestChallenge {
    /// The realm: the 10-digit SIP domain of the platform.
    pub realm: String,
    /// A fresh nonce from [`NonceStore::issue`].
    pub nonce: String,
    /// Offer `qop="auth"`; devices that ignore it still answer without qop.
    pub qop_auth: bool,
    /// `stale=true`: the credentials were right but the nonce was not (RFC 2617 §3.2.1).
    pub stale: bool,
    /// Optional opaque value echoed by the client.
    pub opaque: Option<String>,
}

impl DigestChallenge {
    /// The header value, e.g. `Digest realm="3402000000", nonce="…", qop="auth", algorithm=MD5`.
    pub fn to_header_value(&self) -> String {
        let mut s = format!(
            "Digest realm=\"{}\", nonce=\"{}\"",
            escape(&self.realm),
            escape(&self.nonce)
        );
        if let Some(opaque) = &self.opaque {
            let _ = write!(s, ", opaque=\"{}\"", escape(opaque));
        }
        if self.qop_auth {
            s.push_str(", qop=\"auth\"");
        }
        s.push_str(", algorithm=MD5");
        if self.stale {
            s.push_str(", stale=true");
        }
        s
    }

    /// Parse a `WWW-Authenticate` value (used by the device role).
    pub fn parse(value: &str) -> Result<DigestChallenge, DigestError> {
        let params = parse_digest_params(value)?;
        let get = |k: &str| {
            params
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(k))
                .map(|(_, v)| v.clone())
        };
        let qop = get("qop").unwrap_or_default();
        Ok(DigestChallenge {
            realm: get("realm").ok_or(DigestError::Missing("realm"))?,
            nonce: get("nonce").ok_or(DigestError::Missing("nonce"))?,
            qop_auth: qop
                .split(',')
                .any(|q| q.trim().eq_ignore_ascii_case("auth")),
            stale: get("stale").is_some_and(|s| s.eq_ignore_ascii_case("true")),
            opaque: get("opaque"),
        })
    }
}

/// `Authorization: Digest …` sent by a device (RFC 2617 §3.2.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigestCredentials {
    /// The username: the device ID in GB/T 28181.
    pub username: String,
    /// The realm the device answered for.
    pub realm: String,
    /// The nonce the device used.
    pub nonce: String,
    /// The digest-uri.
    pub uri: String,
    /// The 32-hex-digit response.
    pub response: String,
    /// `auth` when the device used qop; `None` for the RFC 2069 form.
    pub qop: Option<String>,
    /// Nonce count (hex) when qop is used.
    pub nc: Option<String>,
    /// Client nonce when qop is used.
    pub cnonce: Option<String>,
    /// Echoed opaque value.
    pub opaque: Option<String>,
}

impl DigestCredentials {
    /// Parse an `Authorization` header value. Tolerates unquoted values, quoted `algorithm`,
    /// `qop`, `nc`, extra spaces and unknown parameters.
    pub fn parse(value: &str) -> Result<DigestCredentials, DigestError> {
        let params = parse_digest_params(value)?;
        let get = |k: &str| {
            params
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(k))
                .map(|(_, v)| v.clone())
        };
        if let Some(alg) = get("algorithm")
            && !alg.eq_ignore_ascii_case("MD5")
        {
            return Err(DigestError::Algorithm(alg));
        }
        let qop = get("qop").filter(|q| !q.is_empty());
        if let Some(q) = &qop
            && !q.eq_ignore_ascii_case("auth")
        {
            return Err(DigestError::Qop(q.clone()));
        }
        let creds = DigestCredentials {
            username: get("username").ok_or(DigestError::Missing("username"))?,
            realm: get("realm").ok_or(DigestError::Missing("realm"))?,
            nonce: get("nonce").ok_or(DigestError::Missing("nonce"))?,
            uri: get("uri").ok_or(DigestError::Missing("uri"))?,
            response: get("response").ok_or(DigestError::Missing("response"))?,
            nc: get("nc"),
            cnonce: get("cnonce"),
            opaque: get("opaque"),
            qop,
        };
        if creds.qop.is_some() {
            if creds.nc.is_none() {
                return Err(DigestError::Missing("nc"));
            }
            if creds.cnonce.is_none() {
                return Err(DigestError::Missing("cnonce"));
            }
        }
        Ok(creds)
    }

    /// The nonce count as a number (0 when absent or not hex).
    pub fn nonce_count(&self) -> u32 {
        self.nc
            .as_deref()
            .and_then(|nc| u32::from_str_radix(nc.trim(), 16).ok())
            .unwrap_or(0)
    }

    /// True when the response matches `password` for `method` (constant-time comparison).
    pub fn verify(&self, method: &str, password: &str) -> bool {
        let qop = match (&self.qop, &self.nc, &self.cnonce) {
            (Some(_), Some(nc), Some(cnonce)) => Some((nc.as_str(), cnonce.as_str())),
            _ => None,
        };
        let expected = response(
            &self.username,
            &self.realm,
            password,
            method,
            &self.uri,
            &self.nonce,
            qop,
        );
        constant_time_eq(
            expected.as_bytes(),
            self.response.trim().to_ascii_lowercase().as_bytes(),
        )
    }

    /// The header value a client sends (used by the device role).
    pub fn to_header_value(&self) -> String {
        let mut s = format!(
            "Digest username=\"{}\", realm=\"{}\", nonce=\"{}\", uri=\"{}\", response=\"{}\", algorithm=MD5",
            escape(&self.username),
            escape(&self.realm),
            escape(&self.nonce),
            escape(&self.uri),
            escape(&self.response)
        );
        if let (Some(qop), Some(nc), Some(cnonce)) = (&self.qop, &self.nc, &self.cnonce) {
            let _ = write!(s, ", qop={qop}, nc={nc}, cnonce=\"{}\"", escape(cnonce));
        }
        if let Some(opaque) = &self.opaque {
            let _ = write!(s, ", opaque=\"{}\"", escape(opaque));
        }
        s
    }

    /// Answer `challenge` as `username` with `password` (client side). With qop the caller
    /// supplies the nonce count and a client nonce.
    pub fn answer(
        challenge: &DigestChallenge,
        username: &str,
        password: &str,
        method: &str,
        uri: &str,
        nc: u32,
        cnonce: &str,
    ) -> DigestCredentials {
        let nc_hex = format!("{nc:08x}");
        let qop = challenge.qop_auth.then_some((nc_hex.as_str(), cnonce));
        let resp = response(
            username,
            &challenge.realm,
            password,
            method,
            uri,
            &challenge.nonce,
            qop,
        );
        DigestCredentials {
            username: username.to_owned(),
            realm: challenge.realm.clone(),
            nonce: challenge.nonce.clone(),
            uri: uri.to_owned(),
            response: resp,
            qop: challenge.qop_auth.then(|| "auth".to_owned()),
            nc: challenge.qop_auth.then(|| nc_hex.clone()),
            cnonce: challenge.qop_auth.then(|| cnonce.to_owned()),
            opaque: challenge.opaque.clone(),
        }
    }
}

/// The digest response (RFC 2617 §3.2.2.1): `MD5(HA1:nonce:HA2)`, or with qop=auth
/// `MD5(HA1:nonce:nc:cnonce:auth:HA2)`, lower-case hex.
pub fn response(
    username: &str,
    realm: &str,
    password: &str,
    method: &str,
    uri: &str,
    nonce: &str,
    qop: Option<(&str, &str)>,
) -> String {
    let ha1 = md5_hex(&[username, ":", realm, ":", password]);
    let ha2 = md5_hex(&[method, ":", uri]);
    match qop {
        Some((nc, cnonce)) => md5_hex(&[&ha1, ":", nonce, ":", nc, ":", cnonce, ":auth:", &ha2]),
        None => md5_hex(&[&ha1, ":", nonce, ":", &ha2]),
    }
}

fn md5_hex(parts: &[&str]) -> String {
    let mut h = Md5::new();
    for p in parts {
        h.update(p.as_bytes());
    }
    hex::encode(h.finalize())
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

/// Split `Digest k=v, k="v", …` into (name, unquoted value) pairs.
fn parse_digest_params(value: &str) -> Result<Vec<(String, String)>, DigestError> {
    let v = value.trim_start();
    let offset0 = value.len() - v.len();
    let scheme_end = v.find(|c: char| c.is_ascii_whitespace()).unwrap_or(v.len());
    if !v[..scheme_end].eq_ignore_ascii_case("Digest") {
        return Err(DigestError::NotDigest);
    }
    let bytes = v.as_bytes();
    let mut i = scheme_end;
    let mut out = Vec::new();
    loop {
        while i < bytes.len() && (bytes[i].is_ascii_whitespace() || bytes[i] == b',') {
            i += 1;
        }
        if i >= bytes.len() {
            break;
        }
        let name_start = i;
        while i < bytes.len() && bytes[i] != b'=' && bytes[i] != b',' {
            i += 1;
        }
        let name = v[name_start..i].trim().to_owned();
        if i >= bytes.len() || bytes[i] != b'=' || name.is_empty() {
            return Err(DigestError::Syntax(offset0 + i));
        }
        i += 1;
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        let mut val = String::new();
        if i < bytes.len() && bytes[i] == b'"' {
            i += 1;
            let mut closed = false;
            let start = i;
            let mut seg = start;
            while i < bytes.len() {
                match bytes[i] {
                    b'\\' if i + 1 < bytes.len() => {
                        val.push_str(&v[seg..i]);
                        // The escaped character may be multi-byte; copy the whole char.
                        let ch_len = v[i + 1..].chars().next().map_or(1, char::len_utf8);
                        val.push_str(&v[i + 1..i + 1 + ch_len]);
                        i += 1 + ch_len;
                        seg = i;
                    }
                    b'"' => {
                        val.push_str(&v[seg..i]);
                        i += 1;
                        closed = true;
                        break;
                    }
                    _ => i += 1,
                }
            }
            if !closed {
                return Err(DigestError::Syntax(offset0 + start - 1));
            }
        } else {
            let start = i;
            while i < bytes.len() && bytes[i] != b',' {
                i += 1;
            }
            val = v[start..i].trim().to_owned();
        }
        out.push((name, val));
    }
    Ok(out)
}

/// Why a nonce was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NonceCheck {
    /// Issued by us to this address, not expired, not replayed: the response may now be
    /// verified.
    Fresh,
    /// Issued by us to this address but expired or already used with this count: verify the
    /// response, and answer 401 `stale=true` when it is right (RFC 2617 §3.2.1).
    Stale,
    /// Never issued by us, forgotten, burnt after a failure, or issued to another address:
    /// answer a new 401 without evaluating the response (it tells nothing about the password).
    Unknown,
}

#[derive(Debug)]
struct NonceEntry {
    issued: Instant,
    /// The address the challenge went to: only it may answer with this nonce.
    to: Option<IpAddr>,
    /// Highest nonce count accepted so far; 0 = unused.
    last_nc: u32,
}

/// Nonces issued in 401 challenges, with a lifetime, replay protection (RFC 2617 §4.5) and
/// the address each was issued to.
///
/// Without qop a nonce is good for one request; with qop each request must carry a higher
/// nonce count than the last. A nonce answered with a wrong response is burnt. The store is
/// bounded: the oldest nonces are forgotten first.
///
/// ```
/// use std::time::{Duration, Instant};
/// use gb28181::digest::{NonceCheck, NonceStore};
/// let now = Instant::now();
/// let mut store = NonceStore::new(Duration::from_secs(300), 1000);
/// let device = "192.0.2.7".parse().unwrap();
/// let nonce = store.issue_to(now, device);
/// assert_eq!(store.check(&nonce, 0, now, device), NonceCheck::Fresh);
/// assert_eq!(store.check(&nonce, 0, now, "192.0.2.8".parse().unwrap()), NonceCheck::Unknown);
/// assert_eq!(store.check("0123456789abcdef0123456789abcdef", 0, now, device), NonceCheck::Unknown);
/// store.burn(&nonce);
/// assert_eq!(store.check(&nonce, 0, now, device), NonceCheck::Unknown);
/// ```
#[derive(Debug)]
pub struct NonceStore {
    ttl: Duration,
    capacity: usize,
    entries: HashMap<u128, NonceEntry>,
    order: VecDeque<(Instant, u128)>,
}

/// Our nonces are 32 lower-case hex digits (128 random bits); anything else is not ours.
fn nonce_key(nonce: &str) -> Option<u128> {
    if nonce.len() != 32 || !nonce.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u128::from_str_radix(nonce, 16).ok()
}

impl NonceStore {
    /// A store whose nonces live `ttl` and which remembers at most `capacity` of them.
    pub fn new(ttl: Duration, capacity: usize) -> NonceStore {
        NonceStore {
            ttl,
            capacity: capacity.max(1),
            entries: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    /// Issue a new random nonce at `now`, good from any address.
    pub fn issue(&mut self, now: Instant) -> String {
        self.insert(now, None)
    }

    /// Issue a new random nonce at `now` for a challenge sent to `to`: only a response from
    /// that address is evaluated.
    pub fn issue_to(&mut self, now: Instant, to: IpAddr) -> String {
        self.insert(now, Some(to))
    }

    fn insert(&mut self, now: Instant, to: Option<IpAddr>) -> String {
        self.expire(now);
        while self.entries.len() >= self.capacity {
            match self.order.pop_front() {
                Some((_, old)) => {
                    self.entries.remove(&old);
                }
                None => break,
            }
        }
        let mut raw = [0u8; 16];
        rand::rng().fill_bytes(&mut raw);
        let key = u128::from_be_bytes(raw);
        self.entries.insert(
            key,
            NonceEntry {
                issued: now,
                to,
                last_nc: 0,
            },
        );
        self.order.push_back((now, key));
        format!("{key:032x}")
    }

    /// Check a nonce answered from `from` before verifying the response (does not consume it).
    pub fn check(&self, nonce: &str, nc: u32, now: Instant, from: IpAddr) -> NonceCheck {
        let Some(e) = nonce_key(nonce).and_then(|k| self.entries.get(&k)) else {
            return NonceCheck::Unknown;
        };
        if e.to.is_some_and(|to| to != from) {
            return NonceCheck::Unknown;
        }
        if now.saturating_duration_since(e.issued) > self.ttl || (e.last_nc > 0 && nc <= e.last_nc)
        {
            return NonceCheck::Stale;
        }
        NonceCheck::Fresh
    }

    /// Record that a request with this nonce and count was accepted (replay protection).
    /// Without qop pass `nc = 0`: the nonce is then used up.
    pub fn consume(&mut self, nonce: &str, nc: u32) {
        if let Some(e) = nonce_key(nonce).and_then(|k| self.entries.get_mut(&k)) {
            e.last_nc = if nc == 0 { u32::MAX } else { nc };
        }
    }

    /// Forget a nonce that was answered with a wrong response: one guess per challenge.
    pub fn burn(&mut self, nonce: &str) {
        if let Some(k) = nonce_key(nonce) {
            self.entries.remove(&k);
        }
    }

    /// Forget nonces older than twice the lifetime (between one and two lifetimes a nonce is
    /// still recognised, so the client is told `stale=true` rather than challenged afresh).
    pub fn expire(&mut self, now: Instant) {
        while let Some((issued, _)) = self.order.front() {
            if now.saturating_duration_since(*issued) <= self.ttl * 2 {
                break;
            }
            if let Some((_, n)) = self.order.pop_front() {
                self.entries.remove(&n);
            }
        }
    }

    /// Number of nonces remembered.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when no nonce is remembered.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc2617_example() {
        // RFC 2617 §3.5 worked example.
        let r = response(
            "Mufasa",
            "testrealm@host.com",
            "Circle Of Life",
            "GET",
            "/dir/index.html",
            "dcd98b7102dd2f0e8b11d0f600bfb0c093",
            Some(("00000001", "0a4f113b")),
        );
        assert_eq!(r, "6629fae49393a05397450978507c4ef1");
    }

    #[test]
    fn parses_device_authorization_variants() {
        let v = "Digest username=\"34020000001320000001\",realm=\"3402000000\",nonce=\"44010b73623249f6916a6acf7c316b8e\",uri=\"sip:34020000002000000001@3402000000\",response=\"9625d92d1bddea7a911926e0db054968\",algorithm=MD5";
        let c = DigestCredentials::parse(v).unwrap();
        assert_eq!(c.username, "34020000001320000001");
        assert_eq!(c.qop, None);
        let v = "digest username=34020000001320000001, realm=\"3402000000\", nonce=\"n\", uri=\"sip:x\", response=\"r\", algorithm=\"MD5\", qop=\"auth\", nc=00000002, cnonce=\"c\"";
        let c = DigestCredentials::parse(v).unwrap();
        assert_eq!(c.qop.as_deref(), Some("auth"));
        assert_eq!(c.nonce_count(), 2);
        assert_eq!(
            DigestCredentials::parse("Basic abc"),
            Err(DigestError::NotDigest)
        );
        assert!(matches!(
            DigestCredentials::parse("Digest username=\"unterminated"),
            Err(DigestError::Syntax(_))
        ));
        assert_eq!(
            DigestCredentials::parse(
                "Digest username=a, realm=b, nonce=c, uri=d, response=e, algorithm=SHA-256"
            ),
            Err(DigestError::Algorithm("SHA-256".into()))
        );
    }

    #[test]
    fn answer_then_verify_with_and_without_qop() {
        for qop in [false, true] {
            let ch = DigestChallenge {
                realm: "3402000000".into(),
                nonce: "abcdef".into(),
                qop_auth: qop,
                stale: false,
                opaque: None,
            };
            let parsed = DigestChallenge::parse(&ch.to_header_value()).unwrap();
            assert_eq!(parsed, ch);
            let c = DigestCredentials::answer(&ch, "dev", "pw", "REGISTER", "sip:x", 1, "cn");
            let c2 = DigestCredentials::parse(&c.to_header_value()).unwrap();
            assert_eq!(c, c2);
            assert!(c2.verify("REGISTER", "pw"));
            assert!(!c2.verify("REGISTER", "pw2"));
            assert!(!c2.verify("INVITE", "pw"));
        }
    }

    const IP: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 7));

    #[test]
    fn nonce_expiry_and_replay() {
        let t0 = Instant::now();
        let mut store = NonceStore::new(Duration::from_secs(60), 100);
        let n = store.issue(t0);
        assert_eq!(store.check(&n, 0, t0, IP), NonceCheck::Fresh);
        store.consume(&n, 0);
        assert_eq!(store.check(&n, 0, t0, IP), NonceCheck::Stale, "replay");
        let q = store.issue(t0);
        store.consume(&q, 1);
        assert_eq!(store.check(&q, 1, t0, IP), NonceCheck::Stale, "same nc");
        assert_eq!(store.check(&q, 2, t0, IP), NonceCheck::Fresh);
        let late = t0 + Duration::from_secs(61);
        assert_eq!(store.check(&q, 2, late, IP), NonceCheck::Stale, "expired");
        store.expire(late);
        assert_eq!(
            store.check(&q, 2, late, IP),
            NonceCheck::Stale,
            "still recognised"
        );
        let later = t0 + Duration::from_secs(121);
        store.expire(later);
        assert_eq!(store.check(&q, 2, later, IP), NonceCheck::Unknown);
        assert_eq!(store.check("nope", 0, t0, IP), NonceCheck::Unknown);
    }

    #[test]
    fn nonces_are_bound_to_their_address_and_burnt() {
        let t0 = Instant::now();
        let mut store = NonceStore::new(Duration::from_secs(60), 100);
        let other: IpAddr = "192.0.2.99".parse().unwrap();
        let n = store.issue_to(t0, IP);
        assert_eq!(store.check(&n, 0, t0, other), NonceCheck::Unknown);
        assert_eq!(store.check(&n, 0, t0, IP), NonceCheck::Fresh);
        store.burn(&n);
        assert_eq!(store.check(&n, 0, t0, IP), NonceCheck::Unknown);
        let unbound = store.issue(t0);
        assert_eq!(store.check(&unbound, 0, t0, other), NonceCheck::Fresh);
    }

    #[test]
    fn nonce_store_is_bounded() {
        let t0 = Instant::now();
        let mut store = NonceStore::new(Duration::from_secs(60), 3);
        let first = store.issue(t0);
        for _ in 0..10 {
            store.issue(t0);
        }
        assert_eq!(store.len(), 3);
        assert_eq!(store.check(&first, 0, t0, IP), NonceCheck::Unknown);
    }
}
