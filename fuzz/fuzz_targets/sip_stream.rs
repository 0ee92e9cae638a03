//! SIP stream decoder on arbitrary bytes: the first two bytes pick a chunk size and a maximum
//! message size, the rest is the TCP stream. Must never panic or spin; decoding in chunks must
//! give exactly what decoding the whole input at once gives (messages, error, leftover), with
//! the decoder and with `MessageStream` (the per-connection object the cores use).
#![no_main]
use bytes::BytesMut;
use gb28181::sip::{HeaderName, Message, MessageStream, ParseError, StreamDecoder};
use libfuzzer_sys::fuzz_target;

fn without_content_length(mut m: Message) -> Message {
    m.headers_mut().remove(&HeaderName::ContentLength);
    m
}

struct Outcome {
    messages: Vec<Message>,
    error: Option<ParseError>,
    leftover: Vec<u8>,
}

fn decode(input: &[u8], chunk: usize, max: usize) -> Outcome {
    let mut dec = StreamDecoder::new(max);
    let mut buf = BytesMut::new();
    let mut messages = Vec::new();
    for piece in input.chunks(chunk) {
        buf.extend_from_slice(piece);
        loop {
            let before = buf.len();
            let start = dec.position() as usize;
            match dec.decode(&mut buf) {
                Ok(Some(m)) => {
                    assert!(buf.len() < before, "a message must consume input");
                    let length = m.headers().get(&HeaderName::ContentLength).unwrap();
                    assert_eq!(length.parse::<usize>().ok(), Some(m.body().len()));
                    assert!(m.body().len() <= max);
                    // A framed message is what the datagram parser reads from its bytes,
                    // and it survives serialization (up to the Content-Length lines).
                    let consumed = &input[start..dec.position() as usize];
                    assert_eq!(Message::parse(consumed).as_ref(), Ok(&m));
                    let again = Message::parse(&m.to_bytes()).expect("serialized message parses");
                    assert_eq!(
                        without_content_length(again),
                        without_content_length(m.clone())
                    );
                    messages.push(m);
                }
                Ok(None) => break,
                Err(e) => {
                    assert_eq!(dec.decode(&mut buf), Err(e));
                    return Outcome {
                        messages,
                        error: Some(e),
                        leftover: Vec::new(),
                    };
                }
            }
        }
    }
    Outcome {
        messages,
        error: None,
        leftover: buf.to_vec(),
    }
}

/// The same through `MessageStream`, one `extend` per chunk.
fn stream(input: &[u8], chunk: usize, max: usize) -> (Vec<Message>, Option<ParseError>, usize) {
    let mut s = MessageStream::new(max);
    let mut messages = Vec::new();
    for piece in input.chunks(chunk) {
        s.extend(piece);
        loop {
            match s.next_message() {
                Ok(Some(m)) => messages.push(m),
                Ok(None) => break,
                Err(e) => return (messages, Some(e), 0),
            }
        }
        assert!(s.buffered() <= max + chunk, "bounded buffer");
    }
    let left = s.buffered();
    (messages, None, left)
}

fuzz_target!(|data: &[u8]| {
    let [chunk, max, input @ ..] = data else {
        return;
    };
    let chunk = usize::from(*chunk).max(1);
    let max = 64 + usize::from(*max) * 16;
    let whole = decode(input, input.len().max(1), max);
    let chunked = decode(input, chunk, max);
    assert_eq!(chunked.messages, whole.messages);
    assert_eq!(chunked.error, whole.error);
    assert_eq!(chunked.leftover, whole.leftover);
    let (messages, error, left) = stream(input, chunk, max);
    assert_eq!(messages, whole.messages);
    assert_eq!(error, whole.error);
    assert_eq!(left, whole.leftover.len());
});
