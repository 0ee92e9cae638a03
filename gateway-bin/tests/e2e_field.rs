//! End to end against the real binary, as an attacker on the device network and a careless
//! client on the operator network would try it: impersonation, digest guessing, floods,
//! idle and oversized connections, stalled HTTP clients at shutdown, a full disk, weak
//! tokens and foreign origins.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use gb28181::digest::{DigestChallenge, DigestCredentials};
use gb28181::sip::{HeaderName, Message, Response};

/// A raw SIP client on its own UDP port.
struct Udp {
    sock: UdpSocket,
    gw: SocketAddr,
    n: std::cell::Cell<u32>,
}

impl Udp {
    fn new(gw: SocketAddr) -> Udp {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        Udp {
            sock,
            gw,
            n: std::cell::Cell::new(0),
        }
    }

    fn port(&self) -> u16 {
        self.sock.local_addr().unwrap().port()
    }

    fn branch(&self) -> String {
        self.n.set(self.n.get() + 1);
        format!("z9hG4bK{}x{}", self.port(), self.n.get())
    }

    /// Send and wait for the answer.
    fn ask(&self, text: &str) -> Option<Response> {
        self.sock.send_to(text.as_bytes(), self.gw).unwrap();
        self.recv()
    }

    fn recv(&self) -> Option<Response> {
        let mut buf = [0u8; 65_536];
        loop {
            let (n, _) = self.sock.recv_from(&mut buf).ok()?;
            if let Ok(Message::Response(r)) = Message::parse(&buf[..n]) {
                return Some(r);
            }
        }
    }

    fn register(&self, device: &str, auth: Option<&str>) -> String {
        let port = self.port();
        let branch = self.branch();
        let auth = auth.map_or(String::new(), |a| format!("Authorization: {a}\r\n"));
        format!(
            "REGISTER sip:{PLATFORM_ID}@{DOMAIN} SIP/2.0\r\n\
             Via: SIP/2.0/UDP 127.0.0.1:{port};rport;branch={branch}\r\n\
             From: <sip:{device}@{DOMAIN}>;tag={port}\r\nTo: <sip:{device}@{DOMAIN}>\r\n\
             Call-ID: reg-{device}-{port}\r\nCSeq: {} REGISTER\r\n\
             Contact: <sip:{device}@127.0.0.1:{port}>\r\nExpires: 3600\r\n{auth}\
             Content-Length: 0\r\n\r\n",
            self.n.get()
        )
    }

    /// REGISTER, answer the challenge with `password`; the final status.
    fn login(&self, device: &str, password: &str) -> Response {
        let challenge = self.ask(&self.register(device, None)).expect("challenge");
        if challenge.status != 401 {
            return challenge;
        }
        let auth = answer(&challenge, device, password);
        self.ask(&self.register(device, Some(&auth)))
            .expect("answer")
    }

    fn request(&self, method: &str, device: &str, body: &str) -> String {
        let port = self.port();
        let branch = self.branch();
        format!(
            "{method} sip:{PLATFORM_ID}@{DOMAIN} SIP/2.0\r\n\
             Via: SIP/2.0/UDP 127.0.0.1:{port};rport;branch={branch}\r\n\
             From: <sip:{device}@{DOMAIN}>;tag={port}\r\nTo: <sip:{PLATFORM_ID}@{DOMAIN}>\r\n\
             Call-ID: {branch}\r\nCSeq: 1 {method}\r\nContent-Type: Application/MANSCDP+xml\r\n\
             Content-Length: {}\r\n\r\n{body}",
            body.len()
        )
    }
}

fn answer(challenge: &Response, device: &str, password: &str) -> String {
    let ch = DigestChallenge::parse(challenge.headers.get(&HeaderName::WwwAuthenticate).unwrap())
        .unwrap();
    let uri = format!("sip:{PLATFORM_ID}@{DOMAIN}");
    DigestCredentials::answer(&ch, device, password, "REGISTER", &uri, 1, "0a4f113b")
        .to_header_value()
}

fn keepalive(device: &str) -> String {
    format!(
        "<?xml version=\"1.0\"?>\n<Notify>\n<CmdType>Keepalive</CmdType>\n<SN>9</SN>\n<DeviceID>{device}</DeviceID>\n<Status>OK</Status>\n</Notify>\n"
    )
}

fn catalog(device: &str, item: &str, name: &str) -> String {
    format!(
        "<?xml version=\"1.0\"?>\n<Response>\n<CmdType>Catalog</CmdType>\n<SN>4242</SN>\n<DeviceID>{device}</DeviceID>\n<SumNum>1</SumNum>\n<DeviceList Num=\"1\">\n<Item><DeviceID>{item}</DeviceID><Name>{name}</Name><ParentID>{device}</ParentID><Status>ON</Status></Item>\n</DeviceList>\n</Response>\n"
    )
}

fn status_of(r: Option<Response>) -> u16 {
    r.map_or(0, |r| r.status)
}

#[test]
fn impersonation_is_refused_and_changes_nothing() {
    let data = TempDir::new("spoof");
    let gw = Gateway::start(data.path(), &[]);
    let _sim = Sim::start(&gw, &["--kind", "nvr", "--channels", "2", "--rate", "0"]);
    let device = "34020000001180000001";
    let url = gw.url(&format!("/api/v1/devices/{device}"));
    let before = wait_for(Duration::from_secs(20), || {
        let (s, d) = get(&url);
        (s == 200 && d["online"] == true && d["channel_count"] == 2).then_some(d)
    })
    .expect("the simulated NVR registers");
    let (_, channels_before) = get(&gw.url(&format!("/api/v1/devices/{device}/channels")));

    // Another host speaks for the NVR: keepalive, catalog MESSAGE and NOTIFY, all 403.
    let forger = Udp::new(gw.sip);
    let forged_catalog = catalog(device, "34020000001310000999", "假通道");
    for (method, body) in [
        ("MESSAGE", keepalive(device)),
        ("MESSAGE", forged_catalog.clone()),
        ("NOTIFY", forged_catalog.clone()),
    ] {
        let r = forger.ask(&forger.request(method, device, &body));
        assert_eq!(status_of(r), 403, "{method}");
    }
    // A NOTIFY for a device that never registered: 404, and no device appears.
    let stranger = "34020000001320000666";
    let r = forger.ask(&forger.request(
        "NOTIFY",
        stranger,
        &catalog(stranger, "34020000001310000998", "假"),
    ));
    assert_eq!(status_of(r), 404);
    assert_eq!(get(&gw.url(&format!("/api/v1/devices/{stranger}"))).0, 404);

    let (_, after) = get(&url);
    assert_eq!(
        after["remote_addr"], before["remote_addr"],
        "the route did not move"
    );
    let (_, channels_after) = get(&gw.url(&format!("/api/v1/devices/{device}/channels")));
    assert_eq!(
        channels_after, channels_before,
        "the catalog did not change"
    );
    assert_eq!(counter(&gw, "sip_source_refused_total", ""), 3.0);
    let (_, sec) = get(&gw.url("/api/v1/security"));
    assert_eq!(sec["refused_sources"][0]["address"], "127.0.0.1", "{sec}");
    assert_eq!(sec["refused_sources"][0]["count"], 3, "{sec}");

    // After a restart with unknown devices rejected, only the NVR is known.
    drop(_sim);
    let http = gw.http;
    gw.terminate();
    let gw = start_with_config(data.path(), "[sip]\nunknown_devices = \"reject\"\n", &[]);
    let (_, list) = get(&gw.url("/api/v1/devices"));
    let ids: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["device_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [device], "{list}");
    let _ = http;
}

#[test]
fn digest_is_no_oracle_and_guessing_is_throttled() {
    let data = TempDir::new("digest");
    let gw = Gateway::start(data.path(), &[]);
    let device = "34020000001320000031";
    let c = Udp::new(gw.sip);
    // An invented nonce: the right and the wrong password get the same plain challenge.
    let invented = {
        let mut r = Response::for_request(
            &match Message::parse(c.register(device, None).as_bytes()).unwrap() {
                Message::Request(r) => r,
                _ => unreachable!(),
            },
            401,
        );
        r.headers.push(
            HeaderName::WwwAuthenticate,
            "Digest realm=\"3402000000\", nonce=\"00112233445566778899aabbccddeeff\", qop=\"auth\", algorithm=MD5",
        );
        r
    };
    for password in [PASSWORD, "guess"] {
        let r = c
            .ask(&c.register(device, Some(&answer(&invented, device, password))))
            .unwrap();
        assert_eq!(r.status, 401);
        let www = r.headers.get(&HeaderName::WwwAuthenticate).unwrap();
        assert!(!www.contains("stale"), "{password}: {www}");
    }
    // Five wrong guesses, each on its own challenge: 403, then the address is refused for
    // this device without evaluation, even with the right password.
    for k in 0..5 {
        assert_eq!(c.login(device, &format!("guess{k}")).status, 403);
    }
    let r = c.login(device, PASSWORD);
    assert_eq!(r.status, 403);
    assert_eq!(r.headers.get(&HeaderName::RetryAfter), Some("60"));
    // Another device from the same address is not locked out.
    let other = Udp::new(gw.sip);
    assert_eq!(other.login("34020000001320000032", PASSWORD).status, 200);
    assert_eq!(counter(&gw, "sip_register_throttled_total", ""), 1.0);
    assert_eq!(counter(&gw, "sip_register_failures_total", ""), 5.0);
    let (_, sec) = get(&gw.url("/api/v1/security"));
    assert_eq!(
        sec["lockouts"]["device_from_address"][0]["device_id"], device,
        "{sec}"
    );
}

#[test]
fn connections_messages_and_transactions_are_bounded() {
    let data = TempDir::new("bounds");
    let gw = start_with_config(
        data.path(),
        "[limits]\nmax_tcp_connections_per_ip = 3\ntcp_idle_before_register_secs = 2\n\
         max_message_size_udp = 2000\nmax_transactions_per_source = 50\n",
        &[],
    );
    // The 4th connection from one address is closed at once; the others after 2 s idle.
    let mut conns: Vec<TcpStream> = (0..4)
        .map(|_| TcpStream::connect(gw.sip).unwrap())
        .collect();
    let closed_at = |s: &mut TcpStream| {
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let t0 = Instant::now();
        let mut b = [0u8; 16];
        match s.read(&mut b) {
            Ok(0) | Err(_) => Some(t0.elapsed()),
            Ok(_) => None,
        }
    };
    let fourth = closed_at(&mut conns[3]).expect("closed");
    assert!(fourth < Duration::from_millis(500), "{fourth:?}");
    let first = closed_at(&mut conns[0]).expect("closed when idle");
    assert!(first > Duration::from_millis(1000), "{first:?}");
    assert_eq!(
        counter(
            &gw,
            "sip_limit_hits_total",
            "limit=\"tcp_connections_per_ip\""
        ),
        1.0
    );

    // A datagram over the size limit is dropped.
    let c = Udp::new(gw.sip);
    let big = c.request("OPTIONS", "34020000001320000040", &"x".repeat(3000));
    assert_eq!(status_of(c.ask(&big)), 0);
    assert_eq!(
        counter(&gw, "sip_limit_hits_total", "limit=\"message_size_udp\""),
        1.0
    );

    // Unknown methods share the label `other`.
    let r = c
        .ask(&c.request("XYZZY", "34020000001320000041", ""))
        .unwrap();
    assert_eq!(r.status, 405);
    let (_, text) = get_anonymous(&gw.url("/metrics"));
    assert!(text.contains("method=\"other\""), "{text}");
    assert!(!text.contains("XYZZY"));

    // A flood from one address: 50 transactions held at once (one is the XYZZY above), the
    // rest answered 503 without being kept.
    let mut statuses = std::collections::BTreeMap::new();
    for _ in 0..80 {
        *statuses
            .entry(status_of(c.ask(&c.request(
                "OPTIONS",
                "34020000001320000040",
                "",
            ))))
            .or_insert(0) += 1;
    }
    assert_eq!(statuses.get(&200), Some(&49), "{statuses:?}");
    assert_eq!(statuses.get(&503), Some(&31), "{statuses:?}");
    assert_eq!(
        counter(
            &gw,
            "sip_limit_hits_total",
            "limit=\"server_transactions_per_source\""
        ),
        31.0
    );
}

#[test]
fn a_stalled_http_client_neither_holds_a_slot_nor_delays_shutdown() {
    let data = TempDir::new("http");
    let gw = start_with_config(
        data.path(),
        "[http]\nheader_read_timeout_secs = 1\nshutdown_grace_secs = 1\n",
        &[],
    );
    let _sim = Sim::start(&gw, &["--rate", "0"]);
    let device = "34020000001320000001";
    let url = gw.url(&format!("/api/v1/devices/{device}"));
    wait_for(Duration::from_secs(20), || {
        (get(&url).1["online"] == true).then_some(())
    })
    .expect("online");
    // Half a request: dropped after the header timeout.
    let mut slow = TcpStream::connect(gw.http).unwrap();
    slow.write_all(b"GET /api/v1/devices HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let t0 = Instant::now();
    let mut b = [0u8; 512];
    let _ = slow.read(&mut b);
    assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
    // A client stalled in the middle of a request body at SIGTERM: the stop still ends
    // promptly, and the devices are recorded offline.
    let mut stalled = TcpStream::connect(gw.http).unwrap();
    stalled
        .write_all(
            format!(
                "PUT /api/v1/devices/{device} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{"
            )
            .as_bytes(),
        )
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let t0 = Instant::now();
    let status = gw.terminate();
    assert!(status.success(), "{status:?}");
    assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
    drop(stalled);
    let gw = Gateway::start(data.path(), &[]);
    let (_, events) = get(&gw.url(&format!("/api/v1/devices/{device}/events")));
    assert_eq!(events[0]["event"], "offline", "{events}");
    assert_eq!(events[0]["reason"], "gateway_shutdown", "{events}");
}

#[test]
fn a_full_disk_fails_writes_with_the_cause_and_loses_nothing() {
    let data = TempDir::new("full");
    let gw = start_with_config(data.path(), "[store]\nmax_size_mb = 1\n", &[]);
    let name = "某某县城关镇第一村村委会大门东侧治安监控点".repeat(6);
    let mut created = Vec::new();
    let mut refusal = None;
    for k in 0..20_000u32 {
        let id = format!("3402000000132{k:07}");
        let (status, body) = put_json(
            &gw.url(&format!("/api/v1/devices/{id}")),
            &format!("{{\"name\": \"{name}\"}}"),
        );
        match status {
            201 => created.push(id),
            503 => {
                refusal = Some(body);
                break;
            }
            s => panic!("unexpected {s}: {body}"),
        }
    }
    let refusal = refusal.expect("the database filled up");
    assert!(
        refusal["detail"]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("full")),
        "{refusal}"
    );
    assert!(created.len() > 100, "{}", created.len());
    // Reads are served; what was committed is all there, now and after a restart.
    let (status, list) = get(&gw.url("/api/v1/devices"));
    assert_eq!(status, 200);
    assert_eq!(list.as_array().unwrap().len(), created.len());
    gw.terminate();
    let gw = start_with_config(data.path(), "[store]\nmax_size_mb = 1\n", &[]);
    let (_, list) = get(&gw.url("/api/v1/devices"));
    assert_eq!(list.as_array().unwrap().len(), created.len());
}

#[cfg(target_os = "linux")]
#[test]
fn the_open_file_limit_is_raised_to_the_hard_limit() {
    let data = TempDir::new("nofile");
    let gw = Gateway::start_with_soft_nofile(data.path(), 256);
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", gw.pid())).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    let v: Vec<&str> = line.split_whitespace().collect();
    // "Max open files <soft> <hard> files": started with a soft limit of 256.
    assert_eq!(v[3], v[4], "{line}");
    assert_ne!(v[3], "256", "{line}");
}

#[cfg(unix)]
#[test]
fn the_data_directory_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let data = TempDir::new("perm");
    std::fs::set_permissions(data.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let gw = Gateway::start(data.path(), &[]);
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(data.path()), 0o700);
    for f in ["gateway.db", "gateway.db-wal", "gateway.db-shm"] {
        let p = data.path().join(f);
        if p.exists() {
            assert_eq!(mode(&p), 0o600, "{f}");
        }
    }
    drop(gw);
}

#[test]
fn weak_tokens_foreign_origins_and_guessing_clients_are_refused() {
    // A short token stops the start with the reason.
    let data = TempDir::new("token");
    let out = Command::new(env!("CARGO_BIN_EXE_gb28181-gateway"))
        .args([
            "--data-dir",
            data.path().to_str().unwrap(),
            "--sip-listen",
            "127.0.0.1:0",
            "--http-listen",
            "127.0.0.1:0",
            "--api-token",
            "secret",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("http.api_token") && err.contains("16"),
        "{err}"
    );

    let gw = Gateway::start(data.path(), &[]);
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    // No CORS unless origins are configured.
    let resp = agent
        .options(&gw.url("/api/v1/devices"))
        .header("Origin", "https://evil.example")
        .header("Access-Control-Request-Method", "GET")
        .call()
        .unwrap();
    assert!(resp.headers().get("access-control-allow-origin").is_none());
    // Ten wrong tokens from one address, then that address is refused (429) for a while,
    // the right token included.
    let try_token = |t: &str| {
        agent
            .get(&gw.url("/api/v1/devices"))
            .header("Authorization", &format!("Bearer {t}"))
            .call()
            .unwrap()
    };
    for k in 0..9 {
        assert_eq!(
            try_token(&format!("guess-{k}-0123456789"))
                .status()
                .as_u16(),
            401
        );
    }
    let locked = try_token("guess-9-0123456789");
    assert_eq!(locked.status().as_u16(), 429);
    assert!(locked.headers().get("retry-after").is_some());
    assert_eq!(try_token(TOKEN).status().as_u16(), 429);
    drop(gw);

    // With an origin configured, that origin (only) gets CORS.
    let data = TempDir::new("cors");
    let gw = start_with_config(
        data.path(),
        "[http]\ncors_origins = [\"https://console.example\"]\n",
        &[],
    );
    let allowed = agent
        .options(&gw.url("/api/v1/devices"))
        .header("Origin", "https://console.example")
        .header("Access-Control-Request-Method", "GET")
        .call()
        .unwrap();
    assert_eq!(
        allowed
            .headers()
            .get("access-control-allow-origin")
            .and_then(|v| v.to_str().ok()),
        Some("https://console.example")
    );
    let other = agent
        .options(&gw.url("/api/v1/devices"))
        .header("Origin", "https://evil.example")
        .header("Access-Control-Request-Method", "GET")
        .call()
        .unwrap();
    assert!(other.headers().get("access-control-allow-origin").is_none());
}

#[test]
fn http_connections_are_bounded_and_idle_ones_time_out() {
    let data = TempDir::new("httpcap");
    let gw = start_with_config(
        data.path(),
        "[http]\nmax_connections = 2\nheader_read_timeout_secs = 2\n",
        &[],
    );
    // Two clients that connect and say nothing take both slots...
    let idle: Vec<TcpStream> = (0..2)
        .map(|_| TcpStream::connect(gw.http).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    // ...so a third waits until the header timeout frees one.
    let t0 = Instant::now();
    let (status, _) = get(&gw.url("/api/v1/devices"));
    let waited = t0.elapsed();
    assert_eq!(status, 200);
    assert!(waited > Duration::from_millis(1500), "{waited:?}");
    assert!(waited < Duration::from_secs(6), "{waited:?}");
    drop(idle);
    assert!(counter(&gw, "http_connection_limit_hits_total", "") >= 1.0);
    assert!(counter(&gw, "http_header_timeouts_total", "") >= 2.0);
}

#[test]
fn a_catalog_whose_items_name_many_parents_is_answered_small() {
    let data = TempDir::new("tree");
    let gw = Gateway::start(data.path(), &[]);
    let device = "34020000001180000036";
    let c = Udp::new(gw.sip);
    assert_eq!(c.login(device, PASSWORD).status, 200);
    // 36 items, each naming every earlier one as a parent (the old tree put item k under
    // all of them: 2^35 nodes, cut only by the depth).
    let ids: Vec<String> = (0..36).map(|k| format!("3402000000131{k:07}")).collect();
    let items: String = (0..36)
        .map(|k| {
            format!(
                "<Item><DeviceID>{}</DeviceID><Name>n{k}</Name><ParentID>{}</ParentID><Status>ON</Status></Item>\n",
                ids[k],
                ids[..k].join("/")
            )
        })
        .collect();
    let body = format!(
        "<?xml version=\"1.0\"?>\n<Response>\n<CmdType>Catalog</CmdType>\n<SN>777</SN>\n<DeviceID>{device}</DeviceID>\n<SumNum>36</SumNum>\n<DeviceList Num=\"36\">\n{items}</DeviceList>\n</Response>\n"
    );
    c.sock
        .send_to(c.request("MESSAGE", device, &body).as_bytes(), gw.sip)
        .unwrap();
    let url = gw.url(&format!("/api/v1/devices/{device}/catalog"));
    let tree = wait_for(Duration::from_secs(10), || {
        let (_, t) = get(&url);
        (t["item_count"] == 36).then_some(t)
    })
    .expect("the catalog is stored");
    let text = tree.to_string();
    assert!(text.len() < 20_000, "{} bytes", text.len());
    for id in &ids {
        assert_eq!(
            text.matches(&format!("\"id\":\"{id}\"")).count(),
            1,
            "{id} once"
        );
    }
    assert_eq!(tree["truncated"], false);
}
