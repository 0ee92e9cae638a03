//! RTP parse (RFC 3550 §5.1) on arbitrary bytes: never panics; whatever parses is
//! self-consistent and survives a rebuild.
#![no_main]
use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use media::rtp::{RtpBuilder, RtpPacket};

fuzz_target!(|data: &[u8]| {
    let raw = Bytes::copy_from_slice(data);
    let Ok(p) = RtpPacket::parse(raw.clone()) else {
        return;
    };
    assert!(p.payload().len() + 12 <= raw.len());
    let _ = p.payload_looks_like_ts();
    let csrcs: Vec<u32> = p.csrcs().collect();
    let ext = p.extension().map(|e| (e.profile, &e.data[..]));
    let mut b = RtpBuilder::new(p.payload_type(), p.sequence(), p.timestamp(), p.ssrc())
        .marker(p.marker())
        .csrcs(&csrcs)
        .padding(p.padding_len());
    if let Some((profile, data)) = ext {
        b = b.extension(profile, data);
    }
    let mut out = BytesMut::new();
    b.write(p.payload(), &mut out)
        .expect("a parsed packet rebuilds");
    let q = RtpPacket::parse(out.freeze()).expect("a rebuilt packet parses");
    assert_eq!(q.header(), p.header());
    assert_eq!(q.payload(), p.payload());
});
