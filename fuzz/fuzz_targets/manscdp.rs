//! MANSCDP parse + write round trip: any input either fails to parse with an error, or parses
//! to a message whose serialization in every charset parses back to the same message.
#![no_main]

use gb28181::manscdp::{Charset, Manscdp, decode_body};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let decoded = decode_body(data);
    let Ok(msg) = Manscdp::parse_decoded(&decoded) else {
        return;
    };
    for charset in [
        Charset::Gb2312,
        Charset::Gbk,
        Charset::Gb18030,
        Charset::Utf8,
    ] {
        let wire = msg.to_bytes(charset);
        match Manscdp::parse(&wire) {
            Ok(back) => assert_eq!(back, msg, "{charset}: {}", String::from_utf8_lossy(&wire)),
            Err(e) => panic!(
                "own {charset} output does not parse: {e}: {}",
                String::from_utf8_lossy(&wire)
            ),
        }
    }
});
