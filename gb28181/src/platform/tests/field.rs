//! Field conditions on simulated time: TCP segmentation, requests that claim a device from
//! another source, a hostile digest client, and every bound on what input can grow.

use std::net::SocketAddr;
use std::time::Duration;

use super::net::*;
use super::{authenticated_register, catalog_page, next_response};
use crate::device::DeviceEvent;
use crate::digest::DigestChallenge;
use crate::sip::{HeaderName, Message, Method, Request, Response};
use crate::transport::{ConnId, Transport};

use super::super::*;

fn attacker() -> SocketAddr {
    "192.0.2.66:5060".parse().unwrap()
}

/// A MESSAGE or NOTIFY claiming device `i`, with `body`, as sent from `via_host`.
fn device_request(method: &str, i: usize, branch: &str, body: &str) -> Vec<u8> {
    let dev = device_id(i);
    format!(
        "{method} sip:{PLATFORM_ID}@3402000000 SIP/2.0\r\n\
         Via: SIP/2.0/UDP 192.0.2.66:5060;rport;branch={branch}\r\n\
         From: <sip:{dev}@3402000000>;tag=t{branch}\r\n\
         To: <sip:{PLATFORM_ID}@3402000000>\r\n\
         Call-ID: {branch}\r\nCSeq: 1 {method}\r\nContent-Type: Application/MANSCDP+xml\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn keepalive(i: usize, sn: u32) -> String {
    format!(
        "<?xml version=\"1.0\"?><Notify><CmdType>Keepalive</CmdType><SN>{sn}</SN><DeviceID>{}</DeviceID><Status>OK</Status></Notify>",
        device_id(i)
    )
}

/// Every response the platform sends now.
fn responses(net: &mut Net) -> Vec<Response> {
    let mut out = Vec::new();
    while let Some(t) = net.platform.poll_transmit() {
        if let Ok(Message::Response(r)) = Message::parse(&t.payload) {
            out.push(r);
        }
    }
    out
}

// ------------------------------------------------------------------ TCP segmentation

#[test]
fn over_tcp_every_segmentation_registers_and_collects_catalogs() {
    for max_segment in [1, 3, 61, 536, 1460] {
        let mut net = Net::with_link(Net::config(), Link::Tcp { max_segment });
        let mut messages = 0;
        for i in 0..3 {
            // Pages of 40 channels: several kilobytes each, many segments.
            let mut cfg = device_config(i, "12345678", 120);
            cfg.catalog_page_size = 40;
            net.add(cfg);
        }
        net.advance(Duration::from_secs(130));
        messages += net.sent_by_devices.len() + net.sent_by_platform.len();
        let events = net.take_events();
        for i in 0..3 {
            let id = device_id(i);
            let catalog = events.iter().find_map(|e| match e {
                PlatformEvent::Catalog {
                    device_id, result, ..
                } if *device_id == id => Some(result),
                _ => None,
            });
            let catalog = catalog.unwrap_or_else(|| panic!("catalog of {id} at mss {max_segment}"));
            assert!(catalog.complete && catalog.items.len() == 120 && catalog.pages == 3);
            assert!(net.platform.device(&id).unwrap().online);
            let keepalives = events
                .iter()
                .filter(
                    |e| matches!(e, PlatformEvent::Keepalive { device_id, .. } if *device_id == id),
                )
                .count();
            assert_eq!(keepalives, 2, "keepalives over TCP at mss {max_segment}");
            assert!(matches!(
                net.platform.device(&id).unwrap().transport,
                Transport::Tcp(_)
            ));
        }
        assert!(
            net.tcp_reads > messages,
            "messages were split at mss {max_segment}"
        );
        assert_eq!(net.platform.stats().parse_errors_tcp, 0);
    }
}

#[test]
fn a_connection_without_registration_is_closed_after_the_idle_time() {
    let mut config = Net::config();
    config.limits.tcp_idle_before_register = Duration::from_secs(30);
    let mut net = Net::with_link(config, Link::Tcp { max_segment: 1460 });
    let i = net.add(device_config(0, "12345678", 1));
    // An idle connection from elsewhere: nothing but the TCP handshake.
    assert!(
        net.platform
            .handle_connection_opened(net.now, ConnId(99), attacker())
    );
    net.advance(Duration::from_secs(29));
    assert_eq!(net.platform.load().2, 2);
    net.advance(Duration::from_secs(2));
    assert_eq!(net.platform.load().2, 1, "the idle one is closed");
    assert_eq!(net.platform.stats().hits(Limit::TcpIdleBeforeRegister), 1);
    // The registered device's connection stays; after it unregisters, its clock starts.
    net.advance(Duration::from_secs(120));
    assert!(!net.closed[i]);
    net.devices[i].unregister(net.now);
    net.pump();
    net.advance(Duration::from_secs(31));
    assert!(net.closed[i], "closed 30 s after the registration ended");
}

#[test]
fn tcp_connections_are_bounded_in_all_and_per_address() {
    let mut config = Net::config();
    config.limits.max_tcp_connections = 4;
    config.limits.max_tcp_connections_per_ip = 2;
    let mut net = Net::with_link(config, Link::Tcp { max_segment: 1460 });
    let a: SocketAddr = "192.0.2.1:1".parse().unwrap();
    let b: SocketAddr = "192.0.2.2:1".parse().unwrap();
    let c: SocketAddr = "192.0.2.3:1".parse().unwrap();
    let p = &mut net.platform;
    assert!(p.handle_connection_opened(net.now, ConnId(10), a));
    assert!(p.handle_connection_opened(net.now, ConnId(11), a));
    assert!(!p.handle_connection_opened(net.now, ConnId(12), a));
    assert!(p.handle_connection_opened(net.now, ConnId(13), b));
    assert!(p.handle_connection_opened(net.now, ConnId(14), b));
    assert!(!p.handle_connection_opened(net.now, ConnId(15), c));
    assert_eq!(p.stats().hits(Limit::TcpConnectionsPerIp), 1);
    assert_eq!(p.stats().hits(Limit::TcpConnections), 1);
    p.handle_connection_closed(net.now, ConnId(10));
    assert!(p.handle_connection_opened(net.now, ConnId(16), c));
}

#[test]
fn message_size_is_bounded_on_udp_and_tcp() {
    let mut config = Net::config();
    config.limits.max_message_size_udp = 2000;
    config.limits.max_message_size_tcp = 4000;
    let mut net = Net::with_link(config, Link::Tcp { max_segment: 1460 });
    net.add(device_config(0, "12345678", 1));
    let big = "x".repeat(3000);
    let msg = device_request("OPTIONS", 0, "z9hG4bKbig", &big);
    net.platform.handle_datagram(net.now, attacker(), &msg);
    assert!(
        responses(&mut net).is_empty(),
        "an oversized datagram is dropped"
    );
    assert_eq!(net.platform.stats().hits(Limit::MessageSizeUdp), 1);
    // Over TCP the same message fits; one of 5000 bytes closes the connection.
    let conn = ConnId(50);
    assert!(
        net.platform
            .handle_connection_opened(net.now, conn, attacker())
    );
    net.platform.handle_stream(net.now, conn, attacker(), &msg);
    assert_eq!(responses(&mut net).len(), 1);
    let huge = device_request("OPTIONS", 0, "z9hG4bKhuge", &"x".repeat(5000));
    net.platform
        .handle_stream(net.now, conn, attacker(), &huge[..1000]);
    assert_eq!(net.platform.poll_close(), Some(conn));
    assert_eq!(net.platform.stats().hits(Limit::MessageSizeTcp), 1);
    // A header section that never ends is refused once it passes the limit.
    let conn = ConnId(51);
    net.platform
        .handle_connection_opened(net.now, conn, attacker());
    net.platform
        .handle_stream(net.now, conn, attacker(), b"OPTIONS sip:x SIP/2.0\r\n");
    for _ in 0..10 {
        net.platform
            .handle_stream(net.now, conn, attacker(), &[b'X'; 500]);
    }
    assert_eq!(net.platform.poll_close(), Some(conn));
    assert_eq!(net.platform.stats().hits(Limit::MessageSizeTcp), 2);
}

// ------------------------------------------------------------------ who a device is

#[test]
fn a_message_claiming_a_device_from_elsewhere_is_refused_and_moves_nothing() {
    let mut net = Net::new(Net::config());
    let i = net.add(device_config(0, "12345678", 2));
    net.take_events();
    let home = net.platform.device(&device_id(i)).unwrap().remote;
    net.platform.handle_datagram(
        net.now,
        attacker(),
        &device_request("MESSAGE", i, "z9hG4bKspoof1", &keepalive(i, 7)),
    );
    let r = responses(&mut net);
    assert_eq!(r[0].status, 403);
    let dev = net.platform.device(&device_id(i)).unwrap();
    assert_eq!(dev.remote, home, "the route did not move");
    assert_eq!(net.platform.stats().source_refused, 1);
    assert_eq!(net.platform.refused_sources(), [(attacker().ip(), 1)]);
    assert!(net.take_events_now().is_empty(), "no keepalive reported");
    // The next query still goes to the device itself.
    net.platform
        .query_device_info(net.now, &device_id(i))
        .unwrap();
    net.pump();
    assert!(
        net.take_events()
            .iter()
            .any(|e| matches!(e, PlatformEvent::DeviceInfo { .. }))
    );
}

#[test]
fn notify_is_handled_like_message() {
    let mut config = Net::config();
    config.auto_query = false;
    let mut net = Net::new(config);
    let i = net.add(device_config(0, "12345678", 0));
    net.take_events();
    // A catalog NOTIFY from another host for a registered device: 403, nothing stored.
    let page = catalog_page(i, 900, 1, &[1], "z9hG4bKn1");
    let notify = String::from_utf8(page)
        .unwrap()
        .replace("MESSAGE sip:", "NOTIFY sip:")
        .replace("CSeq: 1 MESSAGE", "CSeq: 1 NOTIFY");
    net.platform
        .handle_datagram(net.now, attacker(), notify.as_bytes());
    assert_eq!(responses(&mut net)[0].status, 403);
    // From a device that never registered: 404, and no device is created.
    let stranger = device_request("NOTIFY", 7, "z9hG4bKn2", &keepalive(7, 1));
    net.platform.handle_datagram(net.now, attacker(), &stranger);
    assert_eq!(responses(&mut net)[0].status, 404);
    assert!(net.platform.device(&device_id(7)).is_none());
    net.advance(Duration::from_secs(20));
    assert!(!net.take_events().iter().any(|e| matches!(
        e,
        PlatformEvent::Catalog { .. } | PlatformEvent::Online { .. }
    )),);
    // From the device itself the same NOTIFY is taken.
    net.platform.handle_datagram(
        net.now,
        device_addr(i),
        notify.replace("z9hG4bKn1", "z9hG4bKn3").as_bytes(),
    );
    assert_eq!(responses(&mut net)[0].status, 200);
    assert!(
        net.take_events_now()
            .iter()
            .any(|e| matches!(e, PlatformEvent::Catalog { .. }))
    );
}

#[test]
fn over_tcp_a_claim_must_come_on_the_device_connection() {
    let mut net = Net::with_link(Net::config(), Link::Tcp { max_segment: 1460 });
    let a = net.add(device_config(0, "12345678", 1));
    let b = net.add(device_config(1, "12345678", 1));
    net.take_events();
    // Device b's connection carries a keepalive claiming a.
    let Transport::Tcp(conn_b) = net.platform.device(&device_id(b)).unwrap().transport else {
        panic!("b registered over TCP");
    };
    let forged = device_request("MESSAGE", a, "z9hG4bKtcp1", &keepalive(a, 3));
    net.platform
        .handle_stream(net.now, conn_b, device_addr(b), &forged);
    assert_eq!(responses(&mut net)[0].status, 403);
    assert_eq!(net.platform.stats().source_refused, 1);
}

#[test]
fn a_device_that_changes_port_is_followed_only_after_it_registers_again() {
    let mut net = Net::new(Net::config());
    let i = net.add(device_config(0, "12345678", 1));
    let new_port: SocketAddr = "127.0.0.2:40000".parse().unwrap();
    net.platform.handle_datagram(
        net.now,
        new_port,
        &device_request("MESSAGE", i, "z9hG4bKnat1", &keepalive(i, 9)),
    );
    assert_eq!(responses(&mut net)[0].status, 403);
    // It registers again from the new port (the REGISTER as the device sent it, replayed with
    // a fresh challenge's answer from the new address).
    let mut register = authenticated_register(&net);
    register.headers.remove(&HeaderName::Authorization);
    set_branch(&mut register, "z9hG4bKnat2");
    net.platform
        .handle_datagram(net.now, new_port, &register.to_bytes());
    let challenge = next_response(&mut net);
    assert_eq!(challenge.status, 401);
    let authed = answer(&register, &challenge, "12345678", "z9hG4bKnat3");
    net.platform
        .handle_datagram(net.now, new_port, &authed.to_bytes());
    assert_eq!(next_response(&mut net).status, 200);
    assert_eq!(
        net.platform.device(&device_id(i)).unwrap().remote,
        Some(new_port)
    );
    net.platform.handle_datagram(
        net.now,
        new_port,
        &device_request("MESSAGE", i, "z9hG4bKnat4", &keepalive(i, 10)),
    );
    assert_eq!(responses(&mut net)[0].status, 200);
    net.platform.handle_datagram(
        net.now,
        device_addr(i),
        &device_request("MESSAGE", i, "z9hG4bKnat5", &keepalive(i, 11)),
    );
    assert_eq!(
        responses(&mut net)[0].status,
        403,
        "the old port is no longer the device"
    );
}

#[test]
fn a_device_whose_nat_mapping_changes_registers_again_and_is_followed() {
    let mut net = Net::new(Net::config());
    let i = net.add(device_config(0, "12345678", 0));
    net.advance(Duration::from_secs(30));
    let new_port: SocketAddr = "127.0.0.2:47000".parse().unwrap();
    net.public[i] = new_port;
    // Its keepalives now come from a port the registration does not know: 403, three times,
    // and then the device registers again from there.
    net.advance(Duration::from_secs(200));
    let refused = net
        .sent_by_platform
        .iter()
        .filter(|m| matches!(m, Message::Response(r) if r.status == 403))
        .count();
    assert_eq!(refused, 3);
    let dev = net.platform.device(&device_id(i)).unwrap();
    assert_eq!(dev.remote, Some(new_port));
    assert!(dev.online);
    net.take_events();
    net.advance(Duration::from_secs(120));
    assert!(
        net.take_events()
            .iter()
            .filter(|e| matches!(e, PlatformEvent::Keepalive { .. }))
            .count()
            >= 2,
        "keepalives accepted from the new port"
    );
}

#[test]
fn trusted_sources_may_speak_for_a_device() {
    let mut net = Net::new(Net::config());
    net.platform.provision(
        &device_id(0),
        DeviceSettings {
            trusted_sources: vec!["192.0.2.0/24".parse().unwrap()],
            ..DeviceSettings::default()
        },
    );
    let i = net.add(device_config(0, "12345678", 1));
    net.platform.handle_datagram(
        net.now,
        attacker(),
        &device_request("MESSAGE", i, "z9hG4bKlb1", &keepalive(i, 5)),
    );
    assert_eq!(responses(&mut net)[0].status, 200);
    assert_eq!(net.platform.stats().source_refused, 0);
}

#[test]
fn a_forged_answer_to_a_query_is_not_taken() {
    let mut config = Net::config();
    config.auto_query = false;
    let mut net = Net::new(config);
    let i = net.add(device_config(0, "12345678", 1));
    net.muted[i] = true;
    let q = net
        .platform
        .query_device_info(net.now, &device_id(i))
        .unwrap();
    let sent = net.platform.poll_transmit().unwrap();
    let Ok(Message::Request(query)) = Message::parse(&sent.payload) else {
        panic!("the query");
    };
    // An answer to the MESSAGE from another address: not processed, the query retransmits.
    let forged = Response::for_request(&query, 488);
    net.platform
        .handle_datagram(net.now, attacker(), &forged.to_bytes());
    assert_eq!(net.platform.stats().source_refused, 1);
    net.advance(Duration::from_secs(1));
    assert!(
        net.sent_by_platform
            .iter()
            .any(|m| matches!(m, Message::Request(r) if r.method == Method::Message)),
        "retransmitted"
    );
    assert!(!net.take_events().contains(&PlatformEvent::QueryFailed {
        query: q,
        device_id: device_id(i),
        error: QueryError::Rejected(488),
    }));
}

#[test]
fn a_bye_from_elsewhere_does_not_end_the_call() {
    let mut net = Net::new(Net::config());
    let i = net.add(device_config(0, "12345678", 1));
    let session = net
        .platform
        .invite(net.now, super::invite_params(i))
        .unwrap();
    net.pump();
    let (key, invite) = super::take_invite(&mut net, i);
    let now = net.now;
    net.devices[i].accept_invite(now, &key, &invite, "v=0\r\nm=video 1 RTP/AVP 96\r\n");
    net.pump();
    net.take_events();
    let call_id = invite.headers.call_id().unwrap().to_owned();
    let bye = format!(
        "BYE sip:{PLATFORM_ID}@127.0.0.1:5060 SIP/2.0\r\n\
         Via: SIP/2.0/UDP 192.0.2.66:5060;branch=z9hG4bKbye1\r\n\
         From: <sip:{}@3402000000>;tag=x\r\nTo: <sip:{PLATFORM_ID}@3402000000>;tag=y\r\n\
         Call-ID: {call_id}\r\nCSeq: 9 BYE\r\nContent-Length: 0\r\n\r\n",
        device_id(i)
    );
    net.platform
        .handle_datagram(net.now, attacker(), bye.as_bytes());
    assert_eq!(responses(&mut net)[0].status, 403);
    assert!(
        !net.take_events_now()
            .iter()
            .any(|e| matches!(e, PlatformEvent::CallEnded { .. }))
    );
    assert_eq!(net.platform.session_count(), 1);
    let _ = session;
}

// ------------------------------------------------------------------ digest

fn set_branch(req: &mut Request, branch: &str) {
    let via = req.headers.get(&HeaderName::Via).unwrap().to_owned();
    let start = via.find("branch=").unwrap() + 7;
    let end = via[start..].find(';').map_or(via.len(), |e| start + e);
    let mut v = via.clone();
    v.replace_range(start..end, branch);
    req.headers.set(HeaderName::Via, v);
}

/// `register` answered for `challenge` with `password`, in a new transaction.
fn answer(register: &Request, challenge: &Response, password: &str, branch: &str) -> Request {
    let ch = DigestChallenge::parse(challenge.headers.get(&HeaderName::WwwAuthenticate).unwrap())
        .unwrap();
    let user = crate::ua::uri_user(&register.headers.from().unwrap().uri)
        .unwrap()
        .to_owned();
    let creds = crate::digest::DigestCredentials::answer(
        &ch,
        &user,
        password,
        "REGISTER",
        &register.uri.to_string(),
        1,
        "cn",
    );
    let mut r = register.clone();
    r.headers.remove(&HeaderName::Authorization);
    r.headers
        .push(HeaderName::Authorization, creds.to_header_value());
    set_branch(&mut r, branch);
    r
}

/// A fresh REGISTER for device `i` (no credentials), as its first one.
fn plain_register(net: &Net, i: usize, branch: &str) -> Request {
    let mut r = net
        .sent_by_devices
        .iter()
        .find_map(|m| match m {
            Message::Request(r)
                if r.method == Method::Register
                    && r.headers.get(&HeaderName::Authorization).is_none()
                    && r.headers
                        .from()
                        .unwrap()
                        .uri
                        .to_string()
                        .contains(&device_id(i)) =>
            {
                Some(r.clone())
            }
            _ => None,
        })
        .expect("the device's first REGISTER");
    set_branch(&mut r, branch);
    r
}

/// Send device `i`'s first REGISTER again (a new transaction) from `from`.
fn ask_plain(net: &mut Net, from: SocketAddr, i: usize, branch: &str) -> Response {
    let r = plain_register(net, i, branch);
    ask(net, from, &r)
}

/// Send `req` from `from` and return the platform's answer.
fn ask(net: &mut Net, from: SocketAddr, req: &Request) -> Response {
    net.platform.handle_datagram(net.now, from, &req.to_bytes());
    next_response(net)
}

#[test]
fn an_invented_nonce_is_never_evaluated() {
    let mut net = Net::new(Net::config());
    net.add(device_config(0, "12345678", 0));
    let register = plain_register(&net, 0, "z9hG4bKinv0");
    let invented = Response::for_request(&register, 401);
    let mut invented = invented;
    invented.headers.push(
        HeaderName::WwwAuthenticate,
        "Digest realm=\"3402000000\", nonce=\"0123456789abcdef0123456789abcdef\", qop=\"auth\", algorithm=MD5",
    );
    // Right and wrong password get the same plain challenge: no oracle.
    let right = ask(
        &mut net,
        attacker(),
        &answer(&register, &invented, "12345678", "z9hG4bKinv1"),
    );
    let wrong = ask(
        &mut net,
        attacker(),
        &answer(&register, &invented, "guess", "z9hG4bKinv2"),
    );
    for r in [&right, &wrong] {
        assert_eq!(r.status, 401);
        assert!(
            !r.headers
                .get(&HeaderName::WwwAuthenticate)
                .unwrap()
                .contains("stale")
        );
    }
    assert_eq!(
        net.platform.stats().register_failures,
        0,
        "nothing was evaluated"
    );
    // A real nonce issued to another address is not evaluated from here either.
    let challenge = ask_plain(&mut net, device_addr(0), 0, "z9hG4bKinv3");
    let stolen = ask(
        &mut net,
        attacker(),
        &answer(&register, &challenge, "12345678", "z9hG4bKinv4"),
    );
    assert_eq!(stolen.status, 401);
}

#[test]
fn realm_and_uri_are_checked() {
    let mut net = Net::new(Net::config());
    net.add(device_config(0, "12345678", 0));
    let register = plain_register(&net, 0, "z9hG4bKr0");
    let challenge = ask(&mut net, device_addr(0), &register);
    let mut other_realm = challenge.clone();
    let www = challenge
        .headers
        .get(&HeaderName::WwwAuthenticate)
        .unwrap()
        .replace("realm=\"3402000000\"", "realm=\"4401000000\"");
    other_realm.headers.set(HeaderName::WwwAuthenticate, www);
    let r = ask(
        &mut net,
        device_addr(0),
        &answer(&register, &other_realm, "12345678", "z9hG4bKr1"),
    );
    assert_eq!(r.status, 403);
    let challenge = ask_plain(&mut net, device_addr(0), 0, "z9hG4bKr2");
    let mut other_uri = register.clone();
    other_uri.uri = "sip:34020000002000000099@3402000000".parse().unwrap();
    let mut authed = answer(&other_uri, &challenge, "12345678", "z9hG4bKr3");
    authed.uri = register.uri.clone();
    assert_eq!(ask(&mut net, device_addr(0), &authed).status, 403);
    assert!(net.take_events_now().iter().any(|e| matches!(
        e,
        PlatformEvent::AuthFailed {
            reason: AuthFailure::RealmMismatch,
            ..
        }
    )));
    assert_eq!(net.platform.stats().register_failures, 2);
}

/// Five wrong guesses from the attacker, each on its own challenge.
fn guess(net: &mut Net, from: SocketAddr, i: usize, n: usize, tag: &str) -> Vec<u16> {
    (0..n)
        .map(|k| {
            let register = plain_register(net, i, &format!("z9hG4bK{tag}c{k}"));
            let challenge = ask(net, from, &register);
            if challenge.status != 401 {
                return challenge.status;
            }
            let guess = answer(
                &register,
                &challenge,
                &format!("guess{k}"),
                &format!("z9hG4bK{tag}g{k}"),
            );
            ask(net, from, &guess).status
        })
        .collect()
}

#[test]
fn failures_are_throttled_with_a_growing_backoff() {
    let mut net = Net::new(Net::config());
    net.add(device_config(0, "12345678", 0));
    net.add(device_config(1, "12345678", 0));
    assert_eq!(guess(&mut net, attacker(), 0, 5, "a"), [403; 5]);
    // Locked: the right password from the attacker's address is refused unread.
    let register = plain_register(&net, 0, "z9hG4bKlock1");
    let r = ask(&mut net, attacker(), &register);
    assert_eq!(r.status, 403);
    assert_eq!(r.headers.get(&HeaderName::RetryAfter), Some("60"));
    assert_eq!(net.platform.stats().register_throttled, 1);
    // The device itself, and another device from the attacker's address, are not locked.
    let home = ask_plain(&mut net, device_addr(0), 0, "z9hG4bKlock2");
    assert_eq!(home.status, 401);
    let other = ask_plain(&mut net, attacker(), 1, "z9hG4bKlock3");
    assert_eq!(other.status, 401);
    // After the back-off the pair is evaluated again; five more failures lock it for 120 s.
    net.advance(Duration::from_secs(60));
    assert_eq!(guess(&mut net, attacker(), 0, 5, "b"), [403; 5]);
    let r = ask_plain(&mut net, attacker(), 0, "z9hG4bKlock4");
    assert_eq!(r.headers.get(&HeaderName::RetryAfter), Some("120"));
    assert_eq!(net.platform.stats().auth_lockouts, 2);
    let lockouts = net.platform.auth_lockouts(net.now);
    assert_eq!(lockouts.pairs.len(), 1);
}

#[test]
fn a_distributed_guess_does_not_lock_the_device_out() {
    let mut net = Net::new(Net::config());
    let i = net.add(device_config(0, "12345678", 0));
    // 25 failures for the device from 25 addresses: the device ID is locked for strangers.
    for k in 0..25u8 {
        let from: SocketAddr = format!("198.51.100.{k}:5060").parse().unwrap();
        guess(&mut net, from, i, 1, &format!("d{k}"));
    }
    let stranger: SocketAddr = "198.51.100.200:5060".parse().unwrap();
    let r = ask_plain(&mut net, stranger, i, "z9hG4bKdist1");
    assert_eq!(
        r.status, 403,
        "locked for an address that never registered it"
    );
    // Its own address still registers.
    let register = plain_register(&net, i, "z9hG4bKdist2");
    let challenge = ask(&mut net, device_addr(i), &register);
    assert_eq!(challenge.status, 401);
    let ok = ask(
        &mut net,
        device_addr(i),
        &answer(&register, &challenge, "12345678", "z9hG4bKdist3"),
    );
    assert_eq!(ok.status, 200);
}

// ------------------------------------------------------------------ bounds

#[test]
fn a_flood_of_requests_holds_a_bounded_number_of_transactions() {
    let mut config = Net::config();
    config.limits.transactions.max_server_per_source = 100;
    config.limits.transactions.max_server = 150;
    let mut net = Net::new(config);
    net.add(device_config(0, "12345678", 0));
    let base = net.platform.load().1;
    // OPTIONS with 60 KB bodies: what is kept of each is its small response.
    let body = "x".repeat(60_000);
    let flood = |net: &mut Net, from: SocketAddr, n: usize, tag: &str| {
        let mut statuses = std::collections::BTreeMap::new();
        for k in 0..n {
            net.platform.handle_datagram(
                net.now,
                from,
                &device_request("OPTIONS", 9, &format!("z9hG4bK{tag}{k}"), &body),
            );
            for r in responses(net) {
                *statuses.entry(r.status).or_insert(0) += 1;
            }
        }
        (
            statuses.get(&200).copied().unwrap_or(0),
            statuses.get(&503).copied().unwrap_or(0),
        )
    };
    // One source: 100 served, the rest refused statelessly.
    assert_eq!(flood(&mut net, attacker(), 150, "a"), (100, 50));
    assert_eq!(
        net.platform
            .stats()
            .hits(Limit::ServerTransactionsPerSource),
        50
    );
    // Another source: served up to the total, then refused.
    let other: SocketAddr = "192.0.2.77:5060".parse().unwrap();
    let room = 150 - 100 - base;
    assert_eq!(flood(&mut net, other, 100, "b"), (room, 100 - room));
    assert_eq!(
        net.platform.stats().hits(Limit::ServerTransactions),
        (100 - room) as u64
    );
    assert_eq!(net.platform.load().1, 150);
    // They end 64·T1 after their response; then requests are served again.
    net.advance(Duration::from_secs(33));
    assert!(net.platform.load().1 < 5);
    assert_eq!(flood(&mut net, attacker(), 1, "c"), (1, 0));
}

#[test]
fn catalogs_are_bounded() {
    let mut config = Net::config();
    config.auto_query = false;
    config.limits.catalog_max_items = 50;
    config.limits.catalog_max_open_per_device = 2;
    let mut net = Net::new(config);
    let i = net.add(device_config(0, "12345678", 0));
    // A page announcing a million items, then pages of 30 new items each.
    for page in 0..5u32 {
        let ids: Vec<u32> = (page * 30..page * 30 + 30).collect();
        let msg = catalog_page(i, 77, 1_000_000, &ids, &format!("z9hG4bKbig{page}"));
        net.platform.handle_datagram(net.now, device_addr(i), &msg);
    }
    let events = net.take_events_now();
    let result = events
        .iter()
        .find_map(|e| match e {
            PlatformEvent::Catalog { result, .. } => Some(result),
            _ => None,
        })
        .expect("ended at the bound");
    assert_eq!(result.items.len(), 50);
    assert!(!result.complete);
    assert!(net.platform.stats().hits(Limit::CatalogItems) >= 1);
    // Unsolicited catalogs with new SNs: at most two open at once for the device.
    for sn in 100..110u32 {
        let msg = catalog_page(i, sn, 10, &[sn], &format!("z9hG4bKsn{sn}"));
        net.platform.handle_datagram(net.now, device_addr(i), &msg);
    }
    assert_eq!(net.platform.stats().hits(Limit::CatalogOpenPerDevice), 8);
    net.advance(Duration::from_secs(11));
    let incomplete = net
        .take_events()
        .iter()
        .filter(|e| matches!(e, PlatformEvent::Catalog { result, .. } if !result.complete))
        .count();
    assert_eq!(incomplete, 2);
}

#[test]
fn catalog_items_held_in_all_are_bounded() {
    let mut config = Net::config();
    config.auto_query = false;
    config.limits.catalog_max_items_in_flight = 60;
    let mut net = Net::new(config);
    let a = net.add(device_config(0, "12345678", 0));
    let b = net.add(device_config(1, "12345678", 0));
    // Two devices start catalogs of 50 announced items each, 40 arrive for each: the second
    // one only gets room for 20.
    let ids: Vec<u32> = (0..40).collect();
    net.platform.handle_datagram(
        net.now,
        device_addr(a),
        &catalog_page(a, 5, 50, &ids, "z9hG4bKif1"),
    );
    net.platform.handle_datagram(
        net.now,
        device_addr(b),
        &catalog_page(b, 6, 50, &ids, "z9hG4bKif2"),
    );
    let events = net.take_events_now();
    let cut = events
        .iter()
        .find_map(|e| match e {
            PlatformEvent::Catalog { result, .. } => Some(result),
            _ => None,
        })
        .expect("the cut catalog ends at once");
    assert_eq!(cut.items.len(), 20);
    assert!(!cut.complete);
    assert_eq!(net.platform.stats().hits(Limit::CatalogItemsInFlight), 1);
    // Once the first ends (timeout, incomplete), its items are released.
    net.advance(Duration::from_secs(11));
    let ids: Vec<u32> = (0..50).collect();
    net.platform.handle_datagram(
        net.now,
        device_addr(b),
        &catalog_page(b, 7, 50, &ids, "z9hG4bKif3"),
    );
    let events = net.take_events_now();
    assert!(events.iter().any(
        |e| matches!(e, PlatformEvent::Catalog { result, .. } if result.complete && result.items.len() == 50)
    ));
}

#[test]
fn queries_of_a_kind_join_and_open_queries_are_bounded() {
    let mut config = Net::config();
    config.auto_query = false;
    config.limits.max_open_queries = 3;
    let mut net = Net::new(config);
    for i in 0..3 {
        net.add(device_config(i, "12345678", 1));
        net.muted[i] = true;
    }
    let p = &mut net.platform;
    let a = p.query_catalog(net.now, &device_id(0)).unwrap();
    assert_eq!(p.query_catalog(net.now, &device_id(0)), Ok(a), "joined");
    p.query_catalog(net.now, &device_id(1)).unwrap();
    p.query_device_info(net.now, &device_id(1)).unwrap();
    assert_eq!(
        p.query_catalog(net.now, &device_id(2)),
        Err(CommandError::Busy(Limit::OpenQueries))
    );
    assert_eq!(p.stats().hits(Limit::OpenQueries), 1);
}

#[test]
fn the_device_table_is_bounded() {
    let mut config = Net::config();
    config.limits.max_devices = 2;
    let mut net = Net::new(config);
    let a = net.add(device_config(0, "12345678", 0));
    let b = net.add(device_config(1, "12345678", 0));
    let c = net.add(device_config(2, "12345678", 0));
    for i in [a, b] {
        assert!(net.platform.device(&device_id(i)).unwrap().online);
    }
    assert!(net.device_events[c].contains(&DeviceEvent::RegisterFailed { status: Some(503) }));
    assert!(net.platform.device(&device_id(c)).is_none());
    assert_eq!(net.platform.stats().hits(Limit::Devices), 1);
}

// ------------------------------------------------------------------ time

#[test]
fn date_and_event_times_follow_the_wall_clock_when_it_steps() {
    let mut net = Net::new(Net::config());
    let i = net.add(device_config(0, "12345678", 0));
    net.take_events();
    // NTP steps the clock back a whole day while the process runs.
    let stepped = start_wall() - Duration::from_secs(86_400);
    net.clock.set(stepped);
    net.advance(Duration::from_secs(60));
    let at = net
        .take_events()
        .into_iter()
        .find_map(|e| match e {
            PlatformEvent::Keepalive { at, .. } => Some(at),
            _ => None,
        })
        .unwrap();
    assert_eq!(at, stepped + Duration::from_secs(60));
    // The next registration's Date reads the stepped clock too.
    net.devices[i].unregister(net.now);
    net.pump();
    let before = net.sent_by_platform.len();
    net.devices[i].start(net.now);
    net.pump();
    let date = net.sent_by_platform[before..]
        .iter()
        .find_map(|m| match m {
            Message::Response(r) if r.status == 200 => {
                r.headers.get(&HeaderName::Date).map(str::to_owned)
            }
            _ => None,
        })
        .unwrap();
    let expected = crate::ua::gb_date(
        stepped + Duration::from_secs(60),
        Duration::from_secs(8 * 3600),
    );
    assert_eq!(date, expected);
}
