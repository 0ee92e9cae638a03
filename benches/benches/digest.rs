//! Digest authentication cost per REGISTER: parsing the `Authorization` header and verifying
//! the MD5 response, with and without qop.

use criterion::{Criterion, criterion_group, criterion_main};
use gb28181::digest::{DigestChallenge, DigestCredentials};
use std::hint::black_box;

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("digest");
    for qop in [false, true] {
        let challenge = DigestChallenge {
            realm: "3402000000".into(),
            nonce: "9bd055f0c2d1e3a4b5c6d7e8f9a0b1c2".into(),
            qop_auth: qop,
            stale: false,
            opaque: None,
        };
        let header = DigestCredentials::answer(
            &challenge,
            "34020000001320000001",
            "12345678",
            "REGISTER",
            "sip:34020000002000000001@3402000000",
            1,
            "0a4f113b",
        )
        .to_header_value();
        let name = if qop { "qop_auth" } else { "no_qop" };
        g.bench_function(format!("parse_and_verify_{name}"), |b| {
            b.iter(|| {
                let creds = DigestCredentials::parse(black_box(&header)).expect("valid header");
                assert!(creds.verify("REGISTER", black_box("12345678")));
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
