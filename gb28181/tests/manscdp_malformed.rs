//! Malformed-input sweep: every real body truncated at every position and with every bit of
//! every byte flipped. Nothing may panic; whatever parses must write and re-read unchanged.

mod manscdp_support;

use std::panic::{AssertUnwindSafe, catch_unwind};

use gb28181::manscdp::{Charset, Manscdp};
use manscdp_support::all_bodies;

/// Parse `input`; if it parses and `round_trip`, its serialization must parse back to the
/// same message. Returns whether it parsed.
fn check(input: &[u8], round_trip: bool) -> bool {
    let Ok(m) = Manscdp::parse(input) else {
        return false;
    };
    if round_trip {
        let wire = m.to_bytes(Charset::Utf8);
        match Manscdp::parse(&wire) {
            Ok(back) => assert_eq!(back, m, "\n{}", String::from_utf8_lossy(&wire)),
            Err(e) => panic!(
                "our own output does not parse: {e}\n{}",
                String::from_utf8_lossy(&wire)
            ),
        }
    }
    true
}

/// Bits flipped in byte `i`: two per byte, rotating, so every bit position (the high bit of
/// GB lead bytes included) is hit across neighbouring bytes while the sweep stays quick in
/// debug builds.
fn bits_for(i: usize) -> [usize; 2] {
    [i % 8, (i + 4) % 8]
}

fn sweep(name: &str, body: &[u8]) -> usize {
    let mut parsed = 0;
    let mut run =
        |input: &[u8], round_trip: bool, what: String| match catch_unwind(AssertUnwindSafe(|| {
            check(input, round_trip)
        })) {
            Ok(true) => parsed += 1,
            Ok(false) => {}
            Err(_) => panic!(
                "{name}: panicked on {what}:\n{}",
                String::from_utf8_lossy(input)
            ),
        };
    for cut in 0..body.len() {
        run(&body[..cut], false, format!("truncation at {cut}"));
    }
    let mut buf = body.to_vec();
    for i in 0..buf.len() {
        for bit in bits_for(i) {
            buf[i] ^= 1 << bit;
            run(&buf, true, format!("bit {bit} of byte {i} flipped"));
            buf[i] ^= 1 << bit;
        }
    }
    parsed
}

#[test]
fn truncation_and_bit_flips_never_panic() {
    let mut bodies = all_bodies();
    assert!(bodies.len() >= 56);
    // Local fixtures copy some shared files, and several baseline queries are identical.
    bodies.sort_by(|a, b| a.bytes.cmp(&b.bytes));
    bodies.dedup_by(|a, b| a.bytes == b.bytes);
    let mut flips = 0;
    let mut parsed = 0;
    for s in &bodies {
        flips += s.bytes.len() * 2;
        parsed += sweep(&s.name, &s.bytes);
    }
    // Most single-bit flips land in text or tag names and leave a message that still parses
    // (and round-trips); truncations before the root's end tag do not parse.
    assert!(
        parsed > flips / 2,
        "only {parsed} of {flips} bit-flipped bodies parsed"
    );
}

#[test]
fn truncated_bodies_are_errors_not_partial_messages() {
    let body = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/manscdp/hikvision_nvr_catalog_gb2312_page1.xml"
    ))
    .unwrap();
    let end = body.windows(11).rposition(|w| w == b"</Response>").unwrap();
    for cut in 0..end {
        assert!(
            Manscdp::parse(&body[..cut]).is_err(),
            "a body cut at {cut} parsed"
        );
    }
    assert!(Manscdp::parse(&body[..end + 11]).is_ok());
}
