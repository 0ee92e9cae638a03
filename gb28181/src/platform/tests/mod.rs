//! Platform core against device cores, on simulated time and an in-memory network.

mod field;
mod net;

use std::time::Duration;

use super::*;
use crate::device::DeviceEvent;
use crate::manscdp::CatalogItem;
use crate::sip::Message;
use net::*;

#[test]
fn device_registers_with_digest_and_catalog_is_collected() {
    let mut net = Net::new(Net::config());
    let i = net.add(device_config(0, "12345678", 5));
    let id = device_id(i);
    let events = net.take_events();
    assert!(events.iter().any(|e| matches!(e, PlatformEvent::Registered { device_id, gb_version, refresh: false, .. } if *device_id == id && gb_version.as_deref() == Some("3.0"))));
    assert!(
        events
            .iter()
            .any(|e| matches!(e, PlatformEvent::Online { device_id, .. } if *device_id == id))
    );
    let info = events.iter().find_map(|e| match e {
        PlatformEvent::DeviceInfo { info, .. } => Some(info.clone()),
        _ => None,
    });
    assert_eq!(info.unwrap().device_name.as_deref(), Some("大门口"));
    let catalog = events.iter().find_map(|e| match e {
        PlatformEvent::Catalog { result, .. } => Some(result.clone()),
        _ => None,
    });
    let catalog = catalog.expect("catalog collected");
    assert!(catalog.complete);
    assert_eq!(catalog.sum_num, 5);
    assert_eq!(catalog.items.len(), 5);
    assert_eq!(catalog.pages, 3);
    assert_eq!(catalog.items[0].name.as_deref(), Some("通道1"));
    assert!(matches!(
        net.device_events[i][0],
        DeviceEvent::Registered { .. }
    ));

    // The 401 carried the realm and qop; the 200 carried a GB Date and echoed X-GB-ver.
    let responses: Vec<&crate::sip::Response> = net
        .sent_by_platform
        .iter()
        .filter_map(|m| match m {
            Message::Response(r) => Some(r),
            _ => None,
        })
        .collect();
    let challenge = responses.iter().find(|r| r.status == 401).unwrap();
    let www = challenge.headers.get(&HeaderName::WwwAuthenticate).unwrap();
    assert!(
        www.contains("realm=\"3402000000\"") && www.contains("qop=\"auth\""),
        "{www}"
    );
    let ok = responses
        .iter()
        .find(|r| r.status == 200 && r.headers.cseq().unwrap().method == Method::Register)
        .unwrap();
    let date = ok.headers.get(&HeaderName::Date).unwrap();
    assert_eq!(date.len(), "2023-11-15T06:13:20.000".len());
    assert_eq!(&date[10..11], "T");
    assert_eq!(
        date, "2023-11-15T06:13:20.000",
        "Beijing time of the wall clock"
    );
    assert_eq!(
        ok.headers.get(&HeaderName::Other("x-gb-ver".into())),
        Some("3.0")
    );
    let dev = net.platform.device(&id).unwrap();
    assert!(dev.online && dev.registered);
    assert_eq!(dev.remote, Some(device_addr(i)));
}

#[test]
fn wrong_password_gets_403() {
    let mut net = Net::new(Net::config());
    let i = net.add(device_config(0, "wrong", 1));
    let events = net.take_events();
    assert!(events.iter().any(|e| matches!(
        e,
        PlatformEvent::AuthFailed {
            reason: AuthFailure::WrongPassword,
            ..
        }
    )));
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, PlatformEvent::Online { .. }))
    );
    assert!(net.device_events[i].contains(&DeviceEvent::RegisterFailed { status: Some(403) }));
    assert!(!net.platform.device(&device_id(i)).is_some_and(|d| d.online));
}

#[test]
fn per_device_password_overrides_global() {
    let mut net = Net::new(Net::config());
    net.platform.provision(
        &device_id(0),
        DeviceSettings {
            password: Some("special".into()),
            ..DeviceSettings::default()
        },
    );
    net.add(device_config(0, "special", 1));
    net.add(device_config(1, "special", 1));
    let events = net.take_events();
    assert!(events.iter().any(
        |e| matches!(e, PlatformEvent::Online { device_id, .. } if *device_id == device_id_of(0))
    ));
    assert!(events.iter().any(|e| matches!(e, PlatformEvent::AuthFailed { device_id, .. } if *device_id == device_id_of(1))));
}

fn device_id_of(i: usize) -> String {
    device_id(i)
}

#[test]
fn unknown_devices_can_be_rejected() {
    let mut config = Net::config();
    config.unknown_devices = UnknownDevicePolicy::Reject;
    let mut net = Net::new(config);
    net.platform
        .provision(&device_id(1), DeviceSettings::default());
    let a = net.add(device_config(0, "12345678", 1));
    let b = net.add(device_config(1, "12345678", 1));
    assert!(net.device_events[a].contains(&DeviceEvent::RegisterFailed { status: Some(403) }));
    assert!(
        net.device_events[b]
            .iter()
            .any(|e| matches!(e, DeviceEvent::Registered { .. }))
    );
}

#[test]
fn missed_keepalives_make_a_device_offline() {
    let mut net = Net::new(Net::config());
    let i = net.add(device_config(0, "12345678", 1));
    net.advance(Duration::from_secs(150));
    assert!(net.platform.device(&device_id(i)).unwrap().online);
    let keepalives = net
        .take_events()
        .iter()
        .filter(|e| matches!(e, PlatformEvent::Keepalive { .. }))
        .count();
    assert_eq!(keepalives, 2, "keepalives at 60 s and 120 s");
    // The device goes silent after its keepalive at 120 s.
    net.muted[i] = true;
    net.advance(Duration::from_secs(149)); // t = 299 s: 179 s since the last keepalive
    assert!(net.platform.device(&device_id(i)).unwrap().online);
    net.advance(Duration::from_secs(2)); // t = 301 s
    let events = net.take_events();
    assert!(events.iter().any(|e| matches!(
        e,
        PlatformEvent::Offline {
            reason: OfflineReason::KeepaliveTimeout,
            ..
        }
    )));
    assert!(!net.platform.device(&device_id(i)).unwrap().online);
    // It comes back: its next keepalive makes it online again (the registration is valid).
    net.muted[i] = false;
    net.advance(Duration::from_secs(60));
    assert!(
        net.take_events()
            .iter()
            .any(|e| matches!(e, PlatformEvent::Online { .. }))
    );
}

#[test]
fn registration_expiry_and_unregister() {
    let mut config = Net::config();
    config.keepalive_interval = Duration::from_secs(10_000);
    let mut net = Net::new(config);
    let mut cfg = device_config(0, "12345678", 1);
    cfg.expires = Duration::from_secs(100);
    cfg.keepalive_interval = Duration::from_secs(10_000);
    let i = net.add(cfg);
    net.take_events();
    // The device refreshes at 80 % of the lifetime: still online after 150 s.
    net.advance(Duration::from_secs(150));
    let events = net.take_events();
    assert!(
        events
            .iter()
            .any(|e| matches!(e, PlatformEvent::Registered { refresh: true, .. }))
    );
    assert!(net.platform.device(&device_id(i)).unwrap().online);
    // Silence: the registration runs out.
    net.muted[i] = true;
    net.advance(Duration::from_secs(101));
    assert!(net.take_events().iter().any(|e| matches!(
        e,
        PlatformEvent::Offline {
            reason: OfflineReason::RegistrationExpired,
            ..
        }
    )));
    // Back, then unregister.
    net.muted[i] = false;
    net.advance(Duration::from_secs(61)); // register retry after failures
    assert!(net.platform.device(&device_id(i)).unwrap().online);
    net.devices[i].unregister(net.now);
    net.pump();
    assert!(net.take_events().iter().any(|e| matches!(
        e,
        PlatformEvent::Offline {
            reason: OfflineReason::Unregistered,
            ..
        }
    )));
    assert!(net.device_events[i].contains(&DeviceEvent::Unregistered));
}

#[test]
fn message_from_unregistered_device_gets_404() {
    let mut net = Net::new(Net::config());
    let msg = format!(
        "MESSAGE sip:{PLATFORM_ID}@3402000000 SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.9:5060;rport;branch=z9hG4bKx1\r\n\
         From: <sip:34020000001320000099@3402000000>;tag=1\r\n\
         To: <sip:{PLATFORM_ID}@3402000000>\r\n\
         Call-ID: k1\r\nCSeq: 1 MESSAGE\r\nContent-Type: Application/MANSCDP+xml\r\n\
         Content-Length: 0\r\n\r\n"
    );
    net.platform
        .handle_datagram(net.now, "127.0.0.9:5060".parse().unwrap(), msg.as_bytes());
    let t = net.platform.poll_transmit().unwrap();
    match Message::parse(&t.payload).unwrap() {
        Message::Response(r) => {
            assert_eq!(r.status, 404);
            let via = r.headers.top_via().unwrap();
            assert_eq!(via.rport(), Some(Some(5060)));
            assert_eq!(via.received(), Some("127.0.0.9"));
        }
        Message::Request(_) => panic!("expected a response"),
    }
}

/// The REGISTER a device sent with credentials.
fn authenticated_register(net: &Net) -> crate::sip::Request {
    net.sent_by_devices
        .iter()
        .find_map(|m| match m {
            Message::Request(r) if r.headers.get(&HeaderName::Authorization).is_some() => {
                Some(r.clone())
            }
            _ => None,
        })
        .expect("an authenticated REGISTER")
}

/// The platform's next transmit, which must be a response.
fn next_response(net: &mut Net) -> crate::sip::Response {
    match Message::parse(&net.platform.poll_transmit().expect("a response").payload) {
        Ok(Message::Response(r)) => r,
        other => panic!("expected a response, got {other:?}"),
    }
}

#[test]
fn nonce_replay_and_expiry_get_stale() {
    let mut config = Net::config();
    config.nonce_ttl = Duration::from_secs(30);
    let mut net = Net::new(config);
    net.add(device_config(0, "12345678", 0));
    // Replay the authenticated REGISTER as captured.
    let authed = authenticated_register(&net);
    let replay = |net: &mut Net| {
        net.platform
            .handle_datagram(net.now, device_addr(0), &authed.to_bytes());
        let mut last = None;
        while let Some(t) = net.platform.poll_transmit() {
            if let Ok(Message::Response(r)) = Message::parse(&t.payload) {
                last = Some(r);
            }
        }
        last
    };
    // Same transaction: the layer replays the 200 (a retransmission, not a new request).
    assert_eq!(replay(&mut net).unwrap().status, 200);
    // A new transaction with the used nonce: stale.
    let mut again = authed.clone();
    let via = again
        .headers
        .get(&HeaderName::Via)
        .unwrap()
        .replace("branch=", "branch=z9hG4bKreplay");
    again.headers.set(HeaderName::Via, via);
    net.platform
        .handle_datagram(net.now, device_addr(0), &again.to_bytes());
    let r = next_response(&mut net);
    assert_eq!(r.status, 401);
    assert!(
        r.headers
            .get(&HeaderName::WwwAuthenticate)
            .unwrap()
            .contains("stale=true")
    );
}

fn take_invite(
    net: &mut Net,
    i: usize,
) -> (crate::transaction::TransactionKey, crate::sip::Request) {
    let pos = net.device_events[i]
        .iter()
        .position(|e| matches!(e, DeviceEvent::Request { request, .. } if request.method == Method::Invite))
        .expect("INVITE reached the device");
    match net.device_events[i].remove(pos) {
        DeviceEvent::Request { key, request } => (key, *request),
        _ => unreachable!(),
    }
}

fn invite_params(i: usize) -> InviteParams {
    let channel = format!("{}132{}01", &device_id(i)[..10], &device_id(i)[15..20]);
    let offer = crate::sdp::PlayOffer {
        platform_id: PLATFORM_ID.into(),
        address: "127.0.0.1".into(),
        port: 30000,
        transport: crate::sdp::MediaTransport::Udp,
        ssrc: "0200000001".into(),
        stream_number: Some(0),
    }
    .build();
    InviteParams {
        device_id: device_id(i),
        subject: subject(&channel, "0200000001", PLATFORM_ID),
        channel_id: channel,
        sdp: offer.to_string(),
    }
}

#[test]
fn invite_answer_ack_and_bye_from_the_platform() {
    let mut net = Net::new(Net::config());
    let i = net.add(device_config(0, "12345678", 1));
    net.take_events();
    let session = net.platform.invite(net.now, invite_params(i)).unwrap();
    net.pump();
    let (key, invite) = take_invite(&mut net, i);
    assert_eq!(
        invite.headers.get(&HeaderName::Subject).unwrap(),
        invite_params(i).subject
    );
    assert!(invite.headers.contact().is_ok());
    let offer = crate::sdp::SessionDescription::parse_bytes(&invite.body).unwrap();
    assert_eq!(offer.ssrc.as_deref(), Some("0200000001"));
    let now = net.now;
    let dialog = net.devices[i].accept_invite(now, &key, &invite, "v=0\r\no=x 0 0 IN IP4 127.0.0.2\r\ns=Play\r\nc=IN IP4 127.0.0.2\r\nt=0 0\r\nm=video 15060 RTP/AVP 96\r\na=sendonly\r\na=rtpmap:96 PS/90000\r\ny=0200000001\r\n");
    net.pump();
    let answered = net.take_events().into_iter().find_map(|e| match e {
        PlatformEvent::CallAnswered { session: s, sdp } if s == session => Some(sdp),
        _ => None,
    });
    let sdp = answered.expect("CallAnswered");
    assert!(std::str::from_utf8(&sdp).unwrap().contains("m=video 15060"));
    assert!(
        net.device_events[i]
            .iter()
            .any(|e| matches!(e, DeviceEvent::Ack(_))),
        "ACK reached the device"
    );
    assert_eq!(net.platform.session_count(), 1);
    // The platform hangs up: the device gets a BYE inside the dialog.
    net.platform.hangup(net.now, session);
    net.pump();
    assert!(net.take_events().contains(&PlatformEvent::CallEnded {
        session,
        reason: CallEndReason::HungUp
    }));
    let bye = net.device_events[i].iter().find_map(|e| match e {
        DeviceEvent::Request { request, key } if request.method == Method::Bye => {
            Some((key.clone(), request.clone()))
        }
        _ => None,
    });
    let (bye_key, bye) = bye.expect("BYE reached the device");
    assert_eq!(bye.headers.call_id(), invite.headers.call_id());
    assert_eq!(
        bye.headers.to().unwrap().tag(),
        Some(dialog.local_tag.as_str())
    );
    let now = net.now;
    net.devices[i].reject(now, &bye_key, &bye, 200);
    net.pump();
    assert_eq!(net.platform.session_count(), 0);
}

#[test]
fn bye_from_the_device_and_failures() {
    let mut net = Net::new(Net::config());
    let i = net.add(device_config(0, "12345678", 1));
    net.take_events();
    // Device hangs up.
    let session = net.platform.invite(net.now, invite_params(i)).unwrap();
    net.pump();
    let (key, invite) = take_invite(&mut net, i);
    let now = net.now;
    let dialog = net.devices[i].accept_invite(
        now,
        &key,
        &invite,
        "v=0\r\nm=video 1 RTP/AVP 96\r\nc=IN IP4 127.0.0.2\r\n",
    );
    net.pump();
    net.devices[i].bye(now, &dialog);
    net.pump();
    assert!(net.take_events().contains(&PlatformEvent::CallEnded {
        session,
        reason: CallEndReason::ByeFromDevice
    }));
    // Busy.
    let session = net.platform.invite(net.now, invite_params(i)).unwrap();
    net.pump();
    let (key, invite) = take_invite(&mut net, i);
    net.devices[i].reject(now, &key, &invite, 486);
    net.pump();
    assert!(net.take_events().iter().any(|e| matches!(e, PlatformEvent::CallFailed { session: s, status: Some(486), .. } if *s == session)));
    // No answer at all: the INVITE times out (timer B, 64*T1).
    net.muted[i] = true;
    let session = net.platform.invite(net.now, invite_params(i)).unwrap();
    net.advance(Duration::from_secs(33));
    assert!(net.take_events().iter().any(
        |e| matches!(e, PlatformEvent::CallFailed { session: s, status: None, .. } if *s == session)
    ));
    assert_eq!(net.platform.session_count(), 0);
}

#[test]
fn device_going_offline_ends_its_sessions() {
    let mut net = Net::new(Net::config());
    let i = net.add(device_config(0, "12345678", 1));
    let session = net.platform.invite(net.now, invite_params(i)).unwrap();
    net.pump();
    let (key, invite) = take_invite(&mut net, i);
    let now = net.now;
    net.devices[i].accept_invite(
        now,
        &key,
        &invite,
        "v=0\r\nm=video 1 RTP/AVP 96\r\nc=IN IP4 127.0.0.2\r\n",
    );
    net.pump();
    net.take_events();
    net.devices[i].unregister(net.now);
    net.pump();
    assert!(net.take_events().contains(&PlatformEvent::CallEnded {
        session,
        reason: CallEndReason::DeviceGone
    }));
}

#[test]
fn keyframe_request_uses_the_spelling_of_the_device_version() {
    let mut net = Net::new(Net::config());
    let mut cfg = device_config(0, "12345678", 1);
    cfg.gb_version = Some("2.0".into());
    let i = net.add(cfg);
    net.platform
        .request_keyframe(net.now, &device_id(i), "34020000001320000101")
        .unwrap();
    net.pump();
    let body = net.sent_by_platform.iter().rev().find_map(|m| match m {
        Message::Request(r) if r.method == Method::Message => {
            Some(String::from_utf8_lossy(&r.body).into_owned())
        }
        _ => None,
    });
    let body = body.unwrap();
    assert!(body.contains("<IFameCmd>Send</IFameCmd>"), "{body}");
    assert!(
        body.contains("<DeviceID>34020000001320000101</DeviceID>"),
        "{body}"
    );
}

#[test]
fn expired_nonce_gets_stale_then_a_new_challenge() {
    let mut config = Net::config();
    config.nonce_ttl = Duration::from_secs(30);
    let mut net = Net::new(config);
    net.add(device_config(0, "12345678", 0));
    let authed = authenticated_register(&net);
    // 40 s later the nonce has expired; the same credentials in a new transaction are stale.
    net.now += Duration::from_secs(40);
    let mut late = authed.clone();
    let via = late
        .headers
        .get(&HeaderName::Via)
        .unwrap()
        .replace("branch=", "branch=z9hG4bKlate");
    late.headers.set(HeaderName::Via, via);
    net.platform
        .handle_datagram(net.now, device_addr(0), &late.to_bytes());
    let r = next_response(&mut net);
    assert_eq!(r.status, 401);
    let www = r.headers.get(&HeaderName::WwwAuthenticate).unwrap();
    assert!(www.contains("stale=true"), "{www}");
    // A wrong response with that nonce is a failure: 403, and the nonce is burnt.
    let mut forged = late.clone();
    let auth = forged
        .headers
        .get(&HeaderName::Authorization)
        .unwrap()
        .to_owned();
    let start = auth.find("response=\"").unwrap() + 10;
    let mut bad = auth.clone();
    bad.replace_range(start..start + 32, "00000000000000000000000000000000");
    forged.headers.set(HeaderName::Authorization, bad);
    let via = forged
        .headers
        .get(&HeaderName::Via)
        .unwrap()
        .replace("z9hG4bKlate", "z9hG4bKforged");
    forged.headers.set(HeaderName::Via, via);
    net.platform
        .handle_datagram(net.now, device_addr(0), &forged.to_bytes());
    assert_eq!(next_response(&mut net).status, 403);
    // Burnt: even the right response with it is no longer evaluated (a plain challenge).
    let via = late
        .headers
        .get(&HeaderName::Via)
        .unwrap()
        .replace("z9hG4bKlate", "z9hG4bKagain");
    late.headers.set(HeaderName::Via, via);
    net.platform
        .handle_datagram(net.now, device_addr(0), &late.to_bytes());
    let r = next_response(&mut net);
    assert_eq!(r.status, 401);
    assert!(
        !r.headers
            .get(&HeaderName::WwwAuthenticate)
            .unwrap()
            .contains("stale")
    );
}

/// A Response/Catalog page as the device at `i` would send it.
fn catalog_page(i: usize, sn: u32, sum: u32, ids: &[u32], branch: &str) -> Vec<u8> {
    let dev = device_id(i);
    let items: String = ids
        .iter()
        .map(|n| {
            format!(
                "<Item><DeviceID>{}{:03}</DeviceID><Name>通道{n}</Name><ParentID>{dev}</ParentID><Status>ON</Status></Item>",
                &dev[..17],
                n
            )
        })
        .collect();
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><CmdType>Catalog</CmdType><SN>{sn}</SN><DeviceID>{dev}</DeviceID><SumNum>{sum}</SumNum><DeviceList Num=\"{}\">{items}</DeviceList></Response>",
        ids.len()
    );
    format!(
        "MESSAGE sip:{PLATFORM_ID}@3402000000 SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.2:{port};rport;branch={branch}\r\n\
         From: <sip:{dev}@3402000000>;tag=p{branch}\r\n\
         To: <sip:{PLATFORM_ID}@3402000000>\r\n\
         Call-ID: {branch}\r\nCSeq: 1 MESSAGE\r\nContent-Type: Application/MANSCDP+xml\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len(),
        port = device_addr(i).port()
    )
    .into_bytes()
}

fn catalog_sn(net: &Net) -> u32 {
    net.sent_by_platform
        .iter()
        .rev()
        .find_map(|m| match m {
            Message::Request(r)
                if String::from_utf8_lossy(&r.body).contains("<CmdType>Catalog") =>
            {
                let b = String::from_utf8_lossy(&r.body).into_owned();
                let s = b.find("<SN>")? + 4;
                b[s..s + b[s..].find('<')?].parse().ok()
            }
            _ => None,
        })
        .unwrap()
}

#[test]
fn catalog_pages_out_of_order_with_duplicates_complete_once() {
    let mut config = Net::config();
    config.auto_query = false;
    let mut net = Net::new(config);
    let i = net.add(device_config(0, "12345678", 0));
    net.muted[i] = true; // the test plays the device's part for the catalog
    net.take_events();
    let q = net.platform.query_catalog(net.now, &device_id(i)).unwrap();
    net.pump();
    let sn = catalog_sn(&net);
    // Out of order, one page twice, and a late copy of a page after completion.
    for (k, page) in [&[5u32, 6][..], &[1, 2], &[3, 4], &[1, 2], &[7], &[3, 4]]
        .iter()
        .enumerate()
    {
        let msg = catalog_page(i, sn, 7, page, &format!("z9hG4bKpage{k}"));
        net.platform.handle_datagram(net.now, device_addr(i), &msg);
    }
    let events = net.take_events_now();
    let done: Vec<&CatalogResult> = events
        .iter()
        .filter_map(|e| match e {
            PlatformEvent::Catalog {
                query: Some(id),
                result,
                ..
            } if *id == q => Some(result),
            _ => None,
        })
        .collect();
    assert_eq!(done.len(), 1, "completed exactly once");
    assert!(done[0].complete);
    assert_eq!(done[0].items.len(), 7);
    assert_eq!(done[0].pages, 5, "the duplicate counts as a page");
    // The late copy after completion starts no new (unsolicited) catalog.
    net.advance(Duration::from_secs(30));
    assert!(
        !net.take_events()
            .iter()
            .any(|e| matches!(e, PlatformEvent::Catalog { .. })),
        "late page ignored"
    );
}

#[test]
fn catalog_times_out_incomplete_with_what_arrived() {
    let mut config = Net::config();
    config.auto_query = false;
    let mut net = Net::new(config);
    let i = net.add(device_config(0, "12345678", 0));
    net.muted[i] = true;
    let q = net.platform.query_catalog(net.now, &device_id(i)).unwrap();
    net.pump();
    let sn = catalog_sn(&net);
    let msg = catalog_page(i, sn, 10, &[1, 2, 3], "z9hG4bKonly");
    net.platform.handle_datagram(net.now, device_addr(i), &msg);
    net.take_events_now();
    net.advance(Duration::from_secs(12));
    let result = net.take_events().into_iter().find_map(|e| match e {
        PlatformEvent::Catalog {
            query: Some(id),
            result,
            ..
        } if id == q => Some(result),
        _ => None,
    });
    let result = result.expect("incomplete catalog reported at the page timeout");
    assert!(!result.complete);
    assert_eq!((result.sum_num, result.items.len()), (10, 3));
}

#[test]
fn ten_thousand_channels_are_collected() {
    let mut net = Net::new(Net::config());
    let mut cfg = device_config(0, "12345678", 0);
    let dev = cfg.id.clone();
    cfg.channels = (0..10_000)
        .map(|c| {
            let mut item =
                CatalogItem::new(format!("{}132{:07}", &dev[..10], c), format!("通道{c}"));
            item.parent_id = Some(dev.clone());
            item
        })
        .collect();
    cfg.catalog_page_size = 20;
    net.add(cfg);
    let result = net.take_events().into_iter().find_map(|e| match e {
        PlatformEvent::Catalog { result, .. } => Some(result),
        _ => None,
    });
    let result = result.expect("catalog of 10,000 items");
    assert!(result.complete);
    assert_eq!(result.items.len(), 10_000);
    assert_eq!(result.pages, 500);
    assert_eq!(result.items[9_999].name.as_deref(), Some("通道9999"));
}
