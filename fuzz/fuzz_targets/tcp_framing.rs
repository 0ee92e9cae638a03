//! RTP-over-TCP de-framing (RFC 4571, `$` interleaved) on arbitrary bytes pushed in chunks of
//! a fuzzed size: never panics, memory stays bounded, every packet yielded is plausible.
//! (Chunking invariance holds for clean streams, `media/tests/rtp_tcp.rs`; on garbage a
//! resync may decide differently with more lookahead.)
#![no_main]
use libfuzzer_sys::fuzz_target;
use media::tcp::TcpDeframer;

fuzz_target!(|data: &[u8]| {
    let Some((&cut, data)) = data.split_first() else {
        return;
    };
    let mut d = TcpDeframer::new();
    for c in data.chunks(usize::from(cut) + 1) {
        d.push(c);
        while let Some(p) = d.poll() {
            assert!(p.len() >= 8 && p[0] >> 6 == 2);
        }
        assert!(d.buffered() <= c.len() + 2 * 65_540);
    }
});
