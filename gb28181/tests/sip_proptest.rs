//! Property tests: serialization is stable under parsing, and the stream decoder gives the
//! same messages whatever the TCP segmentation and keepalives between messages.

use std::net::{Ipv4Addr, Ipv6Addr};

use bytes::{Bytes, BytesMut};
use gb28181::sip::{
    HeaderName, Headers, Host, Message, Method, Param, Request, Response, SipUri, StreamDecoder,
    Uri,
};
use proptest::prelude::*;
use proptest::sample::Index;

const TOKEN: &str = "[A-Za-z0-9.!%*_+`'~-]{1,12}";

fn method() -> impl Strategy<Value = Method> {
    prop_oneof![
        Just(Method::Register),
        Just(Method::Invite),
        Just(Method::Ack),
        Just(Method::Bye),
        Just(Method::Message),
        Just(Method::Info),
        Just(Method::Subscribe),
        Just(Method::Notify),
        TOKEN.prop_map(|t| t.parse::<Method>().unwrap()),
    ]
}

fn host() -> impl Strategy<Value = Host> {
    prop_oneof![
        "[0-9]{10}".prop_map(Host::Domain),
        "[a-z][a-z0-9-]{0,8}(\\.[a-z][a-z0-9]{0,8}){0,2}".prop_map(Host::Domain),
        any::<[u8; 4]>().prop_map(|a| Host::Ipv4(Ipv4Addr::from(a))),
        any::<[u16; 8]>().prop_map(|a| Host::Ipv6(Ipv6Addr::from(a))),
    ]
}

fn sip_uri() -> impl Strategy<Value = SipUri> {
    (
        any::<bool>(),
        proptest::option::of("[0-9]{20}|[a-zA-Z0-9_.!~*'()&=+$,;?/-]{1,10}"),
        host(),
        proptest::option::of(any::<u16>()),
        proptest::collection::vec(("[a-z]{1,8}", proptest::option::of("[a-z0-9]{1,8}")), 0..3),
    )
        .prop_map(|(secure, user, host, port, params)| {
            let mut u = SipUri::new(user.as_deref(), host, port);
            u.secure = secure;
            u.params = params.into_iter().map(|(n, v)| Param::new(n, v)).collect();
            u
        })
}

/// An optional header (not one `validate` counts, nor Content-Length) with any printable
/// value without surrounding whitespace.
fn extension_header() -> impl Strategy<Value = (HeaderName, String)> {
    let name = prop_oneof![
        Just(HeaderName::UserAgent),
        Just(HeaderName::Subject),
        Just(HeaderName::Expires),
        Just(HeaderName::Contact),
        Just(HeaderName::ContentType),
        Just(HeaderName::Date),
        TOKEN
            .prop_map(|n| HeaderName::from(n.as_str()))
            .prop_filter("an extension name", |n| matches!(n, HeaderName::Other(_))),
    ];
    (name, "|[!-~]|[!-~][ -~]{0,40}[!-~]")
}

fn headers(m: Method) -> impl Strategy<Value = Headers> {
    (
        host(),
        any::<u16>(),
        TOKEN,
        sip_uri(),
        sip_uri(),
        "[a-zA-Z0-9]{1,10}",
        any::<u32>(),
        proptest::collection::vec(extension_header(), 0..6),
    )
        .prop_map(move |(vhost, vport, branch, from, to, tag, seq, extra)| {
            let mut h = Headers::new();
            h.push(
                HeaderName::Via,
                format!("SIP/2.0/TCP {vhost}:{vport};rport;branch=z9hG4bK{branch}"),
            );
            h.push(HeaderName::From, format!("<{from}>;tag={tag}"));
            h.push(HeaderName::To, format!("\"GB \\\"device\\\"\" <{to}>"));
            h.push(HeaderName::CallId, format!("{seq}@{vhost}"));
            h.push(HeaderName::CSeq, format!("{seq} {m}"));
            for (n, v) in extra {
                h.push(n, v);
            }
            h
        })
}

fn message() -> impl Strategy<Value = Message> {
    let body = proptest::collection::vec(any::<u8>(), 0..200).prop_map(Bytes::from);
    let request = (method(), sip_uri(), body.clone()).prop_flat_map(|(m, uri, body)| {
        headers(m.clone()).prop_map(move |headers| {
            Message::Request(Request {
                method: m.clone(),
                uri: Uri::Sip(uri.clone()),
                headers,
                body: body.clone(),
            })
        })
    });
    let response = (100u16..700, "|[!-~]|[!-~][ -~]{0,20}[!-~]", method(), body).prop_flat_map(
        |(status, reason, m, body)| {
            headers(m).prop_map(move |headers| {
                Message::Response(Response {
                    status,
                    reason: reason.clone(),
                    headers,
                    body: body.clone(),
                })
            })
        },
    );
    prop_oneof![request, response]
}

fn without_content_length(mut m: Message) -> Message {
    m.headers_mut().remove(&HeaderName::ContentLength);
    m
}

/// Feeds `input` in chunks cut at `cuts` and collects every decoded message.
fn decode_chunked(input: &[u8], cuts: &[Index]) -> Vec<Message> {
    let mut cuts: Vec<usize> = cuts.iter().map(|i| i.index(input.len() + 1)).collect();
    cuts.push(input.len());
    cuts.sort_unstable();
    let mut dec = StreamDecoder::new(64 * 1024);
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    let mut at = 0;
    for cut in cuts {
        buf.extend_from_slice(&input[at..cut]);
        at = cut;
        while let Some(m) = dec.decode(&mut buf).unwrap() {
            out.push(m);
        }
    }
    assert!(
        buf.is_empty(),
        "left over: {:?}",
        String::from_utf8_lossy(&buf)
    );
    out
}

const FIXTURES: [&[u8]; 7] = [
    include_bytes!("data/sip/hikvision_ipc_register.sip"),
    include_bytes!("data/sip/hikvision_ipc_keepalive.sip"),
    include_bytes!("data/sip/hikvision_ipc_invite_100trying.sip"),
    include_bytes!("data/sip/hikvision_ipc_invite_200ok_sdp.sip"),
    include_bytes!("data/sip/srs_utest/hikvision_ipc_invite_200ok_tcp_active.sip"),
    include_bytes!("data/sip/hikvision_ipc_bye_200ok.sip"),
    include_bytes!("data/sip/hikvision_nvr_catalog_gb2312_page1.sip"),
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn serialize_parse_is_stable(msg in message()) {
        let first = Message::parse(&msg.to_bytes()).unwrap();
        // Parsing gives back what was serialized, plus the computed Content-Length.
        prop_assert_eq!(without_content_length(first.clone()), msg.clone());
        let length = msg.body().len().to_string();
        prop_assert_eq!(first.headers().get(&HeaderName::ContentLength), Some(length.as_str()));
        // parse(to_bytes(parse(x))) == parse(x)
        let second = Message::parse(&first.to_bytes()).unwrap();
        prop_assert_eq!(&second, &first);
        if let Message::Request(r) = &first {
            prop_assert!(r.validate().is_ok(), "{:?}", r.validate());
        }
        let bytes = msg.to_bytes();
        prop_assert_eq!(Message::parse_bytes(&bytes).unwrap(), first);
    }

    #[test]
    fn any_split_of_generated_messages_with_keepalives(
        msgs in proptest::collection::vec((message(), 0usize..3), 1..4),
        cuts in proptest::collection::vec(any::<Index>(), 0..12),
    ) {
        let mut input = Vec::new();
        let mut expected = Vec::new();
        for (m, keepalives) in &msgs {
            input.extend(std::iter::repeat_n(b"\r\n", *keepalives).flatten());
            let bytes = m.to_bytes();
            expected.push(Message::parse(&bytes).unwrap());
            input.extend_from_slice(&bytes);
        }
        input.extend_from_slice(b"\r\n\r\n");
        prop_assert_eq!(decode_chunked(&input, &cuts), expected);
    }

    #[test]
    fn any_split_of_real_device_messages(
        picks in proptest::collection::vec((any::<Index>(), any::<bool>()), 1..5),
        cuts in proptest::collection::vec(any::<Index>(), 0..16),
    ) {
        let mut input = Vec::new();
        let mut expected = Vec::new();
        for (pick, ping) in &picks {
            let raw = FIXTURES[pick.index(FIXTURES.len())];
            if *ping {
                input.extend_from_slice(b"\r\n\r\n");
            }
            expected.push(Message::parse(raw).unwrap());
            input.extend_from_slice(raw);
        }
        prop_assert_eq!(decode_chunked(&input, &cuts), expected);
    }

    #[test]
    fn byte_by_byte_equals_whole(pick in any::<Index>()) {
        let raw = FIXTURES[pick.index(FIXTURES.len())];
        let cuts: Vec<Index> = Vec::new();
        let whole = decode_chunked(raw, &cuts);
        let mut dec = StreamDecoder::new(4096);
        let mut buf = BytesMut::new();
        let mut single = Vec::new();
        for &b in raw {
            buf.extend_from_slice(&[b]);
            if let Some(m) = dec.decode(&mut buf).unwrap() {
                single.push(m);
            }
        }
        prop_assert_eq!(single, whole);
    }
}
