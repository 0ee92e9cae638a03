use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::*;
use crate::sip::{Message, Method, Request, Response};
use crate::transport::{ConnId, Transport};

const REMOTE: &str = "192.0.2.10:5060";

fn remote() -> SocketAddr {
    REMOTE.parse().unwrap()
}

fn request(method: &str, branch: &str, cseq: u32) -> Request {
    let text = format!(
        "{method} sip:34020000001320000001@3402000000 SIP/2.0\r\n\
         Via: SIP/2.0/UDP 192.0.2.1:5060;rport;branch={branch}\r\n\
         From: <sip:34020000002000000001@3402000000>;tag=abc\r\n\
         To: <sip:34020000001320000001@3402000000>\r\n\
         Call-ID: call-{branch}\r\n\
         CSeq: {cseq} {method}\r\n\
         Max-Forwards: 70\r\n\
         Content-Length: 0\r\n\r\n"
    );
    match Message::parse(text.as_bytes()).unwrap() {
        Message::Request(r) => r,
        Message::Response(_) => unreachable!(),
    }
}

fn response_to(req: &Request, status: u16) -> Response {
    let mut r = Response::for_request(req, status);
    if let Ok(mut to) = r.headers.to() {
        to.set_tag("remote");
        r.headers.set(crate::sip::HeaderName::To, to.to_string());
    }
    r
}

/// Drive timers up to `until`, returning every transmit and event produced on the way.
fn run_until(
    layer: &mut TransactionLayer,
    until: Instant,
) -> (Vec<(Instant, Transmit)>, Vec<TxEvent>) {
    let mut sent = Vec::new();
    let mut events = Vec::new();
    while let Some(at) = layer.poll_timeout() {
        if at > until {
            break;
        }
        layer.handle_timeout(at);
        while let Some(t) = layer.poll_transmit() {
            sent.push((at, t));
        }
        while let Some(e) = layer.poll_event() {
            events.push(e);
        }
    }
    (sent, events)
}

fn drain(layer: &mut TransactionLayer) -> (Vec<Transmit>, Vec<TxEvent>) {
    let mut sent = Vec::new();
    let mut events = Vec::new();
    while let Some(t) = layer.poll_transmit() {
        sent.push(t);
    }
    while let Some(e) = layer.poll_event() {
        events.push(e);
    }
    (sent, events)
}

/// The server transaction the last new request created.
fn new_server_key(layer: &mut TransactionLayer) -> TransactionKey {
    match drain(layer).1.pop() {
        Some(TxEvent::Request { key: Some(k), .. }) => k,
        other => panic!("unexpected {other:?}"),
    }
}

fn ms(t0: Instant, t: Instant) -> u128 {
    t.duration_since(t0).as_millis()
}

#[test]
fn non_invite_client_retransmits_per_timer_e_and_times_out_at_f() {
    let t0 = Instant::now();
    let mut layer = TransactionLayer::new(TimerConfig::default());
    let req = request("MESSAGE", "z9hG4bK1", 1);
    layer
        .send_request(t0, req, Transport::Udp, remote())
        .unwrap();
    assert_eq!(drain(&mut layer).0.len(), 1);
    let (sent, events) = run_until(&mut layer, t0 + Duration::from_secs(40));
    let at: Vec<u128> = sent.iter().map(|(t, _)| ms(t0, *t)).collect();
    assert_eq!(
        at,
        vec![
            500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500
        ]
    );
    assert!(matches!(events.as_slice(), [TxEvent::Timeout { .. }]));
    assert!(layer.is_empty());
    assert_eq!(layer.timeout_count(), 1);
}

#[test]
fn invite_client_retransmits_per_timer_a_and_times_out_at_b() {
    let t0 = Instant::now();
    let mut layer = TransactionLayer::new(TimerConfig::default());
    layer
        .send_request(
            t0,
            request("INVITE", "z9hG4bK2", 1),
            Transport::Udp,
            remote(),
        )
        .unwrap();
    drain(&mut layer);
    let (sent, events) = run_until(&mut layer, t0 + Duration::from_secs(40));
    let at: Vec<u128> = sent.iter().map(|(t, _)| ms(t0, *t)).collect();
    assert_eq!(at, vec![500, 1500, 3500, 7500, 15500, 31500]);
    assert!(matches!(events.as_slice(), [TxEvent::Timeout { .. }]));
}

#[test]
fn reliable_transport_has_no_retransmissions() {
    let t0 = Instant::now();
    let mut layer = TransactionLayer::new(TimerConfig::default());
    let tcp = Transport::Tcp(ConnId(7));
    layer
        .send_request(t0, request("MESSAGE", "z9hG4bK3", 1), tcp, remote())
        .unwrap();
    drain(&mut layer);
    let (sent, events) = run_until(&mut layer, t0 + Duration::from_secs(40));
    assert!(sent.is_empty());
    assert!(matches!(events.as_slice(), [TxEvent::Timeout { .. }]));
}

#[test]
fn final_response_completes_and_absorbs_retransmissions() {
    let t0 = Instant::now();
    let mut layer = TransactionLayer::new(TimerConfig::default());
    let req = request("MESSAGE", "z9hG4bK4", 1);
    layer
        .send_request(t0, req.clone(), Transport::Udp, remote())
        .unwrap();
    drain(&mut layer);
    let ok = response_to(&req, 200);
    layer.handle_response(
        t0 + Duration::from_millis(100),
        ok.clone(),
        Transport::Udp,
        remote(),
    );
    let (_, events) = drain(&mut layer);
    assert!(matches!(&events[..], [TxEvent::Response { response, .. }] if response.status == 200));
    layer.handle_response(
        t0 + Duration::from_millis(200),
        ok,
        Transport::Udp,
        remote(),
    );
    assert!(drain(&mut layer).1.is_empty(), "retransmitted 200 absorbed");
    let (sent, events) = run_until(&mut layer, t0 + Duration::from_secs(60));
    assert!(sent.is_empty() && events.is_empty());
    assert!(layer.is_empty(), "timer K removed the transaction");
}

#[test]
fn unmatched_response_is_stray() {
    let mut layer = TransactionLayer::new(TimerConfig::default());
    let req = request("MESSAGE", "z9hG4bK5", 1);
    layer.handle_response(
        Instant::now(),
        response_to(&req, 200),
        Transport::Udp,
        remote(),
    );
    assert!(matches!(
        drain(&mut layer).1.as_slice(),
        [TxEvent::StrayResponse { .. }]
    ));
}

#[test]
fn invite_failure_is_acked_by_the_layer() {
    let t0 = Instant::now();
    let mut layer = TransactionLayer::new(TimerConfig::default());
    let invite = request("INVITE", "z9hG4bK6", 20);
    layer
        .send_request(t0, invite.clone(), Transport::Udp, remote())
        .unwrap();
    drain(&mut layer);
    layer.handle_response(t0, response_to(&invite, 100), Transport::Udp, remote());
    let busy = response_to(&invite, 486);
    layer.handle_response(t0, busy.clone(), Transport::Udp, remote());
    let (sent, events) = drain(&mut layer);
    assert_eq!(events.len(), 2);
    assert_eq!(sent.len(), 1);
    let ack = match Message::parse(&sent[0].payload).unwrap() {
        Message::Request(r) => r,
        Message::Response(_) => panic!("expected ACK"),
    };
    assert_eq!(ack.method, Method::Ack);
    assert_eq!(ack.headers.cseq().unwrap().seq, 20);
    assert_eq!(ack.headers.cseq().unwrap().method, Method::Ack);
    assert_eq!(ack.headers.top_via().unwrap().branch(), Some("z9hG4bK6"));
    assert_eq!(ack.headers.to().unwrap().tag(), Some("remote"));
    // A retransmitted 486 is answered with the same ACK and not reported again.
    layer.handle_response(t0 + Duration::from_secs(1), busy, Transport::Udp, remote());
    let (sent, events) = drain(&mut layer);
    assert_eq!(sent.len(), 1);
    assert!(events.is_empty());
    // No retransmissions of the INVITE after the provisional response.
    let (sent, _) = run_until(&mut layer, t0 + Duration::from_secs(40));
    assert!(sent.is_empty());
    assert!(layer.is_empty());
}

#[test]
fn server_absorbs_retransmissions_and_replays_last_response() {
    let t0 = Instant::now();
    let mut layer = TransactionLayer::new(TimerConfig::default());
    let req = request("REGISTER", "z9hG4bK7", 1);
    layer.handle_request(t0, req.clone(), Transport::Udp, remote());
    let (_, events) = drain(&mut layer);
    let key = match &events[..] {
        [TxEvent::Request { key: Some(k), .. }] => k.clone(),
        other => panic!("unexpected {other:?}"),
    };
    // Retransmission before we answered: absorbed silently.
    layer.handle_request(t0, req.clone(), Transport::Udp, remote());
    assert_eq!(drain(&mut layer), (vec![], vec![]));
    layer.respond(t0, &key, response_to(&req, 200)).unwrap();
    let (sent, _) = drain(&mut layer);
    assert_eq!(sent.len(), 1);
    // Retransmission after: the 200 is sent again, no new event.
    layer.handle_request(
        t0 + Duration::from_secs(1),
        req.clone(),
        Transport::Udp,
        remote(),
    );
    let (again, events) = drain(&mut layer);
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].payload, sent[0].payload);
    assert!(events.is_empty());
    // Timer J (64*T1) then forgets the transaction.
    run_until(&mut layer, t0 + Duration::from_secs(33));
    assert!(layer.is_empty());
    assert!(layer.respond(t0, &key, response_to(&req, 200)).is_err());
}

#[test]
fn server_invite_failure_retransmits_until_ack() {
    let t0 = Instant::now();
    let mut layer = TransactionLayer::new(TimerConfig::default());
    let invite = request("INVITE", "z9hG4bK8", 1);
    layer.handle_request(t0, invite.clone(), Transport::Udp, remote());
    let key = new_server_key(&mut layer);
    layer.respond(t0, &key, response_to(&invite, 488)).unwrap();
    drain(&mut layer);
    let (sent, _) = run_until(&mut layer, t0 + Duration::from_millis(3600));
    let at: Vec<u128> = sent.iter().map(|(t, _)| ms(t0, *t)).collect();
    assert_eq!(at, vec![500, 1500, 3500], "timer G doubles");
    let mut ack = request("ACK", "z9hG4bK8", 1);
    ack.headers
        .set(crate::sip::HeaderName::CallId, "call-z9hG4bK8");
    layer.handle_request(t0 + Duration::from_secs(4), ack, Transport::Udp, remote());
    assert_eq!(drain(&mut layer), (vec![], vec![]), "ACK absorbed");
    let (sent, events) = run_until(&mut layer, t0 + Duration::from_secs(40));
    assert!(sent.is_empty() && events.is_empty());
    assert!(layer.is_empty());
}

#[test]
fn server_invite_without_ack_times_out_at_h() {
    let t0 = Instant::now();
    let mut layer = TransactionLayer::new(TimerConfig::default());
    let invite = request("INVITE", "z9hG4bK9", 1);
    layer.handle_request(t0, invite.clone(), Transport::Udp, remote());
    let key = new_server_key(&mut layer);
    layer.respond(t0, &key, response_to(&invite, 200)).unwrap();
    drain(&mut layer);
    let (sent, events) = run_until(&mut layer, t0 + Duration::from_secs(40));
    assert!(sent.len() >= 7, "2xx retransmitted until timer L");
    assert!(matches!(events.as_slice(), [TxEvent::Timeout { .. }]));
}

#[test]
fn dialog_ack_stops_2xx_retransmission() {
    let t0 = Instant::now();
    let mut layer = TransactionLayer::new(TimerConfig::default());
    let invite = request("INVITE", "z9hG4bK10", 5);
    layer.handle_request(t0, invite.clone(), Transport::Udp, remote());
    let key = new_server_key(&mut layer);
    layer.respond(t0, &key, response_to(&invite, 200)).unwrap();
    drain(&mut layer);
    let mut ack = request("ACK", "z9hG4bKnew", 5);
    ack.headers
        .set(crate::sip::HeaderName::CallId, "call-z9hG4bK10");
    layer.handle_request(
        t0 + Duration::from_millis(100),
        ack,
        Transport::Udp,
        remote(),
    );
    let (_, events) = drain(&mut layer);
    assert!(matches!(
        events.as_slice(),
        [TxEvent::Request { key: None, .. }]
    ));
    let (sent, events) = run_until(&mut layer, t0 + Duration::from_secs(40));
    assert!(sent.is_empty() && events.is_empty());
    assert!(layer.is_empty());
}

#[test]
fn closed_connection_fails_pending_clients() {
    let t0 = Instant::now();
    let mut layer = TransactionLayer::new(TimerConfig::default());
    let tcp = Transport::Tcp(ConnId(1));
    layer
        .send_request(t0, request("MESSAGE", "z9hG4bK11", 1), tcp, remote())
        .unwrap();
    drain(&mut layer);
    layer.connection_closed(tcp);
    assert!(matches!(
        drain(&mut layer).1.as_slice(),
        [TxEvent::Timeout { .. }]
    ));
    assert!(layer.is_empty());
}

#[test]
fn rfc2543_requests_without_magic_cookie_still_match() {
    let t0 = Instant::now();
    let mut layer = TransactionLayer::new(TimerConfig::default());
    let req = request("MESSAGE", "oldstyle1", 3);
    layer.handle_request(t0, req.clone(), Transport::Udp, remote());
    assert_eq!(drain(&mut layer).1.len(), 1);
    layer.handle_request(t0, req, Transport::Udp, remote());
    assert!(drain(&mut layer).1.is_empty());
}

#[test]
fn duplicate_client_branch_is_refused() {
    let t0 = Instant::now();
    let mut layer = TransactionLayer::new(TimerConfig::default());
    let req = request("MESSAGE", "z9hG4bK12", 1);
    layer
        .send_request(t0, req.clone(), Transport::Udp, remote())
        .unwrap();
    assert!(matches!(
        layer.send_request(t0, req, Transport::Udp, remote()),
        Err(TxError::Duplicate(_))
    ));
}

#[test]
fn server_transactions_are_bounded_in_all_and_per_source() {
    let t0 = Instant::now();
    let limits = TxLimits {
        max_server: 5,
        max_server_per_source: 3,
    };
    let mut layer = TransactionLayer::with_limits(TimerConfig::default(), limits);
    let other: SocketAddr = "192.0.2.11:5060".parse().unwrap();
    let mut refused = Vec::new();
    for i in 0..4 {
        layer.handle_request(
            t0,
            request("OPTIONS", &format!("z9hG4bKa{i}"), 1),
            Transport::Udp,
            remote(),
        );
    }
    for i in 0..3 {
        layer.handle_request(
            t0,
            request("OPTIONS", &format!("z9hG4bKb{i}"), 1),
            Transport::Udp,
            other,
        );
    }
    for e in drain(&mut layer).1 {
        if let TxEvent::Refused { limit, remote, .. } = e {
            refused.push((limit, remote));
        }
    }
    assert_eq!(
        refused,
        [(TxLimit::PerSource, remote()), (TxLimit::Total, other)],
        "the 4th from one source, then the 6th in all"
    );
    assert_eq!(layer.len().1, 5);
    assert_eq!(layer.server_count_from(remote().ip()), 3);
    // Once they end, the counts come down.
    let (_, _) = run_until(&mut layer, t0 + Duration::from_secs(1));
    for i in 0..3 {
        let key = TransactionKey::server(&request("OPTIONS", &format!("z9hG4bKa{i}"), 1)).unwrap();
        let resp = response_to(&request("OPTIONS", &format!("z9hG4bKa{i}"), 1), 200);
        layer.respond(t0, &key, resp).unwrap();
    }
    run_until(&mut layer, t0 + Duration::from_secs(40));
    assert_eq!(layer.server_count_from(remote().ip()), 0);
    layer.handle_request(
        t0 + Duration::from_secs(40),
        request("OPTIONS", "z9hG4bKc", 1),
        Transport::Udp,
        remote(),
    );
    assert!(matches!(
        drain(&mut layer).1.as_slice(),
        [TxEvent::Request { key: Some(_), .. }]
    ));
}

#[test]
fn a_response_from_elsewhere_is_not_processed() {
    let t0 = Instant::now();
    let mut layer = TransactionLayer::new(TimerConfig::default());
    let req = request("MESSAGE", "z9hG4bK20", 1);
    layer
        .send_request(t0, req.clone(), Transport::Udp, remote())
        .unwrap();
    drain(&mut layer);
    let forger: SocketAddr = "192.0.2.66:5060".parse().unwrap();
    layer.handle_response(t0, response_to(&req, 200), Transport::Udp, forger);
    layer.handle_response(
        t0,
        response_to(&req, 200),
        Transport::Tcp(ConnId(3)),
        remote(),
    );
    let (_, events) = drain(&mut layer);
    assert!(
        events
            .iter()
            .all(|e| matches!(e, TxEvent::Misdirected { .. })),
        "{events:?}"
    );
    assert_eq!(events.len(), 2);
    // The transaction still waits and retransmits; the real answer completes it.
    let (sent, _) = run_until(&mut layer, t0 + Duration::from_millis(600));
    assert_eq!(sent.len(), 1);
    layer.handle_response(t0, response_to(&req, 200), Transport::Udp, remote());
    assert!(matches!(
        drain(&mut layer).1.as_slice(),
        [TxEvent::Response { .. }]
    ));
}
