//! Malformed-input sweep: every real device message truncated at every position and with
//! every byte flipped or replaced, parsed as a datagram and through the stream decoder.
//! Nothing may panic, the decoder must terminate and what it returns must be consistent.

use std::path::Path;

use bytes::BytesMut;
use gb28181::sip::{HeaderName, Message, StreamDecoder};

const TESTDATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/sip");

fn real_device_messages() -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for dir in ["", "srs_utest"] {
        let mut paths: Vec<_> = std::fs::read_dir(Path::new(TESTDATA).join(dir))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "sip"))
            .collect();
        paths.sort();
        for p in paths {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            out.push((name, std::fs::read(&p).unwrap()));
        }
    }
    assert_eq!(out.len(), 33);
    out
}

fn without_content_length(mut m: Message) -> Message {
    m.headers_mut().remove(&HeaderName::ContentLength);
    m
}

/// Everything a consumer might call on a parsed message; results are not checked, only that
/// nothing panics and that serialization stays parseable.
fn exercise(m: &Message) {
    let h = m.headers();
    let _ = (
        h.via(),
        h.top_via(),
        h.from(),
        h.to(),
        h.contact(),
        h.cseq(),
    );
    let _ = (h.call_id(), h.expires(), h.content_type(), h.max_forwards());
    let _ = h.values(&HeaderName::Via);
    match m {
        Message::Request(r) => {
            let _ = r.validate();
        }
        Message::Response(r) => {
            let _ = r.validate();
        }
    }
    let again = Message::parse(&m.to_bytes()).expect("serialized message must parse");
    assert_eq!(
        without_content_length(again),
        without_content_length(m.clone())
    );
}

/// Parses `input` as a datagram and through the stream decoder (split at `cut`).
fn sweep(input: &[u8], cut: usize) {
    let datagram = Message::parse(input);
    if let Ok(m) = &datagram {
        exercise(m);
    }
    let streamed = stream(input, cut);
    // A message the stream decoder frames is exactly what the datagram parser reads from
    // the same bytes (same head, same Content-Length).
    if let Some(first) = streamed.first() {
        assert_eq!(datagram.as_ref(), Ok(first));
    }
    for m in streamed.iter().skip(1) {
        exercise(m);
    }
}

/// Feeds `input` to a fresh decoder in two chunks split at `cut`, draining after each,
/// checks termination and consistency, and returns the messages.
fn stream(input: &[u8], cut: usize) -> Vec<Message> {
    let cut = cut.min(input.len());
    let mut dec = StreamDecoder::new(4096);
    let mut buf = BytesMut::new();
    let mut consumed = 0;
    let mut out = Vec::new();
    for chunk in [&input[..cut], &input[cut..]] {
        buf.extend_from_slice(chunk);
        // Each message takes at least one byte, so the loop is bounded by the input length.
        for round in 0.. {
            assert!(round <= input.len() + 1, "decoder does not terminate");
            let before = buf.len();
            match dec.decode(&mut buf) {
                Ok(Some(m)) => {
                    assert!(
                        buf.len() < before,
                        "message returned without consuming input"
                    );
                    consumed += before - buf.len();
                    let length = m.headers().get(&HeaderName::ContentLength).unwrap();
                    assert_eq!(length.parse::<usize>().unwrap(), m.body().len());
                    out.push(m);
                }
                Ok(None) => break,
                Err(e) => {
                    // Errors stick, and say where.
                    assert_eq!(dec.decode(&mut buf).unwrap_err(), e);
                    assert!(e.offset <= input.len(), "{e}");
                    return out;
                }
            }
        }
    }
    assert!(consumed + buf.len() <= input.len());
    assert_eq!(dec.position(), (input.len() - buf.len()) as u64);
    out
}

#[test]
fn truncation_at_every_position() {
    for (name, raw) in real_device_messages() {
        for len in 0..=raw.len() {
            sweep(&raw[..len], len / 2);
        }
        // A truncated message never comes out of the stream decoder.
        if name.starts_with("srs_tcp_two") {
            continue;
        }
        for len in 0..raw.len() {
            let mut dec = StreamDecoder::new(4096);
            let mut buf = BytesMut::from(&raw[..len]);
            assert!(
                !matches!(dec.decode(&mut buf), Ok(Some(_))),
                "{name} at {len}"
            );
        }
    }
}

#[test]
fn byte_mutations_at_every_position() {
    let mut inputs = 0;
    for (_, raw) in real_device_messages() {
        for pos in 0..raw.len() {
            let original = raw[pos];
            for replacement in [
                original ^ 0x01,
                original ^ 0x80,
                b'\r',
                b'\n',
                b':',
                b' ',
                0,
            ] {
                let mut input = raw.clone();
                input[pos] = replacement;
                sweep(&input, pos);
                inputs += 1;
            }
        }
    }
    assert!(inputs > 50_000, "{inputs}");
}
