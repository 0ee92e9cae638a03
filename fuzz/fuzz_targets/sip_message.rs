//! SIP datagram parser on arbitrary bytes: must never panic; whatever parses must serialize to
//! a message that parses the same (apart from the Content-Length line the serializer owns),
//! serialization must then be a fixed point, and typed header values must survive Display.
#![no_main]
use bytes::Bytes;
use gb28181::sip::{CSeq, HeaderName, Message, NameAddr, Uri, Via};
use libfuzzer_sys::fuzz_target;

fn without_content_length(mut m: Message) -> Message {
    m.headers_mut().remove(&HeaderName::ContentLength);
    m
}

fn check_typed(m: &Message) {
    let h = m.headers();
    if let Ok(vias) = h.via() {
        for v in vias {
            assert_eq!(v.to_string().parse::<Via>().as_ref(), Ok(&v));
        }
    }
    let mut addrs: Vec<NameAddr> = h.contact().unwrap_or_default();
    addrs.extend(h.from());
    addrs.extend(h.to());
    for a in addrs {
        assert_eq!(a.to_string().parse::<NameAddr>().as_ref(), Ok(&a));
    }
    if let Ok(c) = h.cseq() {
        assert_eq!(c.to_string().parse::<CSeq>().as_ref(), Ok(&c));
    }
    if let Message::Request(r) = m {
        assert_eq!(r.uri.to_string().parse::<Uri>().as_ref(), Ok(&r.uri));
        let _ = r.validate();
    }
    let _ = (
        h.top_via(),
        h.call_id(),
        h.expires(),
        h.max_forwards(),
        h.content_type(),
    );
    let _ = h.values(&HeaderName::Via);
}

fuzz_target!(|data: &[u8]| {
    let Ok(m) = Message::parse(data) else {
        return;
    };
    assert_eq!(
        Message::parse_bytes(&Bytes::copy_from_slice(data)).as_ref(),
        Ok(&m)
    );
    check_typed(&m);
    let bytes = m.to_bytes();
    let again = Message::parse(&bytes).expect("a serialized message parses");
    assert_eq!(
        without_content_length(again.clone()),
        without_content_length(m)
    );
    let fixed = again.to_bytes();
    assert_eq!(
        fixed,
        Message::parse(&fixed).expect("re-serialized").to_bytes()
    );
});
