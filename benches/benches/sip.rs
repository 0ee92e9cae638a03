//! SIP codec on real Hikvision messages: datagram parse of a REGISTER and a Keepalive
//! MESSAGE, serialization of the 200 OK a registrar answers with, typed header access, and
//! stream framing of a TCP read holding several messages.
//!
//! `cargo bench -p benches --bench sip`

use bytes::{Bytes, BytesMut};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use gb28181::sip::{HeaderName, Message, Request, Response, StreamDecoder};
use std::hint::black_box;

const REGISTER: &[u8] = include_bytes!("../../gb28181/tests/data/sip/hikvision_ipc_register.sip");
const KEEPALIVE: &[u8] = include_bytes!("../../gb28181/tests/data/sip/hikvision_ipc_keepalive.sip");
const CATALOG: &[u8] =
    include_bytes!("../../gb28181/tests/data/sip/hikvision_nvr_catalog_gb2312_page1.sip");

fn register() -> Request {
    match Message::parse(REGISTER) {
        Ok(Message::Request(r)) => r,
        other => panic!("fixture is a REGISTER: {other:?}"),
    }
}

fn parse(c: &mut Criterion) {
    let mut g = c.benchmark_group("sip_parse");
    for (name, raw) in [
        ("register", REGISTER),
        ("keepalive_message", KEEPALIVE),
        ("catalog_gb2312", CATALOG),
    ] {
        g.throughput(Throughput::Bytes(raw.len() as u64));
        g.bench_function(name, |b| b.iter(|| Message::parse(black_box(raw)).unwrap()));
    }
    let shared = Bytes::from_static(KEEPALIVE);
    g.throughput(Throughput::Bytes(KEEPALIVE.len() as u64));
    g.bench_function("keepalive_message_zero_copy", |b| {
        b.iter(|| Message::parse_bytes(black_box(&shared)).unwrap())
    });
    g.finish();
}

fn typed_headers(c: &mut Criterion) {
    let req = register();
    c.bench_function("sip_register_typed_headers", |b| {
        b.iter(|| {
            let h = &black_box(&req).headers;
            (
                h.top_via().unwrap(),
                h.from().unwrap(),
                h.to().unwrap(),
                h.cseq().unwrap(),
                h.contact().unwrap(),
                h.expires(),
            )
        })
    });
}

fn serialize(c: &mut Criterion) {
    let req = register();
    let mut ok = Response::for_request(&req, 200);
    ok.headers.push(HeaderName::Date, "2026-06-14T12:00:00.000");
    ok.headers.push(HeaderName::Expires, "3600");
    ok.headers.push(
        HeaderName::Contact,
        "<sip:34020000001320000003@192.168.137.11:5060>",
    );
    let mut g = c.benchmark_group("sip_serialize");
    g.throughput(Throughput::Bytes(ok.to_bytes().len() as u64));
    g.bench_function("register_200_ok", |b| b.iter(|| black_box(&ok).to_bytes()));
    g.bench_function("register_200_ok_build_and_serialize", |b| {
        b.iter(|| {
            let mut ok = Response::for_request(black_box(&req), 200);
            ok.headers.push(HeaderName::Expires, "3600");
            ok.to_bytes()
        })
    });
    g.finish();
}

fn stream(c: &mut Criterion) {
    let mut segment = Vec::new();
    for m in [REGISTER, KEEPALIVE, CATALOG, KEEPALIVE] {
        segment.extend_from_slice(m);
        segment.extend_from_slice(b"\r\n\r\n");
    }
    let mut g = c.benchmark_group("sip_stream");
    g.throughput(Throughput::Bytes(segment.len() as u64));
    g.bench_function("four_messages_one_read", |b| {
        b.iter(|| {
            let mut dec = StreamDecoder::new(64 * 1024);
            let mut buf = BytesMut::from(black_box(&segment[..]));
            let mut n = 0;
            while let Some(m) = dec.decode(&mut buf).unwrap() {
                black_box(m);
                n += 1;
            }
            assert_eq!(n, 4);
        })
    });
    g.finish();
}

criterion_group!(benches, parse, typed_headers, serialize, stream);
criterion_main!(benches);
