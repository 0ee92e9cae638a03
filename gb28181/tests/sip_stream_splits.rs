//! A TCP connection delivers a message in as many reads as the network cut it into:
//! `MessageStream` must give the same messages whatever the cut. Every real message of
//! `tests/data/sip` and a 51 KB GB2312 catalog page, split at every point into two reads,
//! into three reads (every pair of points for short messages, a grid for long ones),
//! dribbled one byte at a time, and streamed in reads smaller than the message.

use std::path::{Path, PathBuf};

use gb28181::manscdp::{CatalogItem, Charset, Manscdp};
use gb28181::sip::{Message, MessageStream, ParseErrorKind, StreamDecoder};

const LIMIT: usize = 256 * 1024;

fn sip_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir).unwrap().flatten().collect();
    entries.sort_by_key(|e| e.path());
    for e in entries {
        let p = e.path();
        if p.is_dir() {
            sip_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "sip") {
            out.push(p);
        }
    }
}

/// A real message as a stream: its own bytes when they frame (Content-Length present and
/// right), else its canonical serialization.
fn as_stream(raw: &[u8]) -> Option<Vec<u8>> {
    let mut s = MessageStream::new(LIMIT);
    s.extend(raw);
    let mut n = 0;
    while let Ok(Some(_)) = s.next_message() {
        n += 1;
    }
    if n > 0 && s.buffered() == 0 {
        return Some(raw.to_vec());
    }
    Message::parse(raw).ok().map(|m| m.to_bytes().to_vec())
}

/// A 51 KB GB2312 catalog page (120 items) as a large NVR sends it, as a MESSAGE.
fn big_catalog_page() -> Vec<u8> {
    let device = "34020000001180000001";
    let items: Vec<CatalogItem> = (0..120)
        .map(|k| {
            let mut item = CatalogItem::channel(
                format!("3402000000131{k:07}"),
                format!("城关镇第{k}村村委会门口治安监控点（东向西）"),
                device,
            );
            item.manufacturer = Some("海康威视".into());
            item.model = Some("DS-2CD3T46WDV3-I3".into());
            item.address = Some(format!("某某县城关镇第{k}村村委会大门东侧电线杆"));
            item
        })
        .collect();
    let page = Manscdp::catalog_response(7, device, items.len() as u32, items);
    let body = page.to_bytes(Charset::Gb2312);
    let mut msg = format!(
        "MESSAGE sip:34020000002000000001@3402000000 SIP/2.0\r\n\
         Via: SIP/2.0/TCP 10.0.0.9:5060;rport;branch=z9hG4bK40kpage\r\n\
         From: <sip:{device}@3402000000>;tag=1\r\n\
         To: <sip:34020000002000000001@3402000000>\r\n\
         Call-ID: 40k@10.0.0.9\r\nCSeq: 20 MESSAGE\r\nContent-Type: Application/MANSCDP+xml\r\n\
         Content-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    msg.extend_from_slice(&body);
    assert!(msg.len() > 40_000, "{} bytes", msg.len());
    assert!(
        std::str::from_utf8(&body).is_err(),
        "the body is GB2312, not UTF-8"
    );
    msg
}

fn streams() -> Vec<(String, Vec<u8>)> {
    let mut files = Vec::new();
    sip_files(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/sip"),
        &mut files,
    );
    let mut out: Vec<(String, Vec<u8>)> = files
        .iter()
        .filter_map(|p| {
            let raw = std::fs::read(p).unwrap();
            as_stream(&raw).map(|s| (p.display().to_string(), s))
        })
        .collect();
    assert!(out.len() >= 170, "every real message: {}", out.len());
    out.push(("51 KB GB2312 catalog page".into(), big_catalog_page()));
    out
}

/// The messages of `stream` read in the pieces `cuts` makes, serialized.
fn read_in(stream: &[u8], cuts: &[usize]) -> (Vec<Vec<u8>>, usize) {
    let mut s = MessageStream::new(LIMIT);
    let mut got = Vec::new();
    let mut from = 0;
    for &to in cuts.iter().chain(std::iter::once(&stream.len())) {
        s.extend(&stream[from..to]);
        from = to;
        while let Some(m) = s.next_message().unwrap() {
            got.push(m.to_bytes().to_vec());
        }
    }
    (got, s.buffered())
}

#[test]
fn every_split_into_two_and_three_reads() {
    for (name, stream) in streams() {
        let (whole, left) = read_in(&stream, &[]);
        assert!(!whole.is_empty() && left == 0, "{name}");
        let n = stream.len();
        for i in 1..n {
            assert_eq!(read_in(&stream, &[i]), (whole.clone(), 0), "{name} at {i}");
        }
        // Three reads: every pair for short messages, a grid of about 4,000 pairs (every
        // header line boundary region crossed many times) for long ones.
        let step = (n * n / 2 / 4_000).max(1);
        let step = (step as f64).sqrt().ceil() as usize;
        for i in (1..n).step_by(step) {
            for j in (i + 1..n).step_by(step) {
                assert_eq!(
                    read_in(&stream, &[i, j]),
                    (whole.clone(), 0),
                    "{name} at {i}, {j}"
                );
            }
        }
    }
}

#[test]
fn a_byte_at_a_time_and_in_reads_smaller_than_the_message() {
    let all = streams();
    let mut joined = Vec::new();
    let mut expected = Vec::new();
    for (_, s) in &all {
        joined.extend_from_slice(s);
        joined.extend_from_slice(b"\r\n\r\n"); // keepalive CRLFs between messages
        expected.extend(read_in(s, &[]).0);
    }
    let dribble: Vec<usize> = (1..joined.len()).collect();
    assert_eq!(read_in(&joined, &dribble), (expected.clone(), 0));
    // Reads of the shell's 16 KB buffer, and of an MTU-sized segment: the 51 KB page spans
    // several reads.
    for size in [16 * 1024, 1448, 536] {
        let cuts: Vec<usize> = (size..joined.len()).step_by(size).collect();
        assert_eq!(
            read_in(&joined, &cuts),
            (expected.clone(), 0),
            "reads of {size}"
        );
    }
}

#[test]
fn a_header_section_that_never_ends_is_refused_at_the_limit() {
    let limit = 8 * 1024;
    let mut s = MessageStream::new(limit);
    s.extend(b"REGISTER sip:34020000002000000001@3402000000 SIP/2.0\r\n");
    let mut refused = None;
    for k in 0..1000 {
        s.extend(format!("X-Filler-{k}: {}\r\n", "a".repeat(100)).as_bytes());
        match s.next_message() {
            Ok(None) => assert!(s.buffered() <= limit + 200, "bounded"),
            Ok(Some(_)) => panic!("no message can complete"),
            Err(e) => {
                refused = Some(e);
                break;
            }
        }
    }
    let e = refused.expect("refused once past the limit");
    assert_eq!(e.kind, ParseErrorKind::MessageTooLarge { limit });
    // The stream stays refused: the connection is to be closed.
    s.extend(b"\r\n");
    assert!(s.next_message().is_err());
    // A StreamDecoder given a fresh buffer for every read (the old way) cannot do this.
    let page = big_catalog_page();
    let mut dec = StreamDecoder::new(LIMIT);
    let mut got = 0;
    for chunk in page.chunks(1448) {
        let mut buf = bytes::BytesMut::from(chunk);
        if let Ok(Some(_)) = dec.decode(&mut buf) {
            got += 1;
        }
    }
    assert_eq!(
        got, 0,
        "without the buffer kept between reads the page is lost"
    );
}
