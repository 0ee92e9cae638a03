//! Shared loading of MANSCDP test bodies for the `manscdp_*` integration tests.
#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};

/// The shared public test data (see its SOURCES.md).
pub const SHARED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/testdata");
/// This crate's own MANSCDP fixtures (see the README there).
pub const LOCAL: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/manscdp");

/// A MANSCDP body and where it came from.
pub struct Sample {
    pub name: String,
    pub bytes: Vec<u8>,
}

fn files(dir: &Path, ext: Option<&str>, out: &mut Vec<PathBuf>) {
    let Ok(rd) = fs::read_dir(dir) else { return };
    let mut entries: Vec<_> = rd.filter_map(Result::ok).map(|e| e.path()).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            files(&p, ext, out);
        } else if ext.is_none_or(|e| p.extension().is_some_and(|x| x == e)) {
            out.push(p);
        }
    }
}

/// The body of a SIP message: everything after the first blank line (a local split; the SIP
/// codec is tested elsewhere).
pub fn sip_body(msg: &[u8]) -> Option<(&[u8], &[u8])> {
    let at = msg.windows(4).position(|w| w == b"\r\n\r\n")?;
    Some((&msg[..at], &msg[at + 4..]))
}

/// Every MANSCDP body of the shared test data: `manscdp/**/*.xml`, and the bodies of the
/// `sip/*.sip`, `sip/srs_utest/*`, `sip/gmv/reference/extracted/*.sip` and
/// `sip/gmv/generated/*.sip` messages whose Content-Type is MANSCDP.
pub fn shared_bodies() -> Vec<Sample> {
    let base = Path::new(SHARED);
    let mut out = Vec::new();
    let mut xml = Vec::new();
    files(&base.join("manscdp"), Some("xml"), &mut xml);
    for p in xml {
        out.push(Sample {
            name: rel(&p),
            bytes: fs::read(&p).unwrap(),
        });
    }
    let mut sips = Vec::new();
    for dir in [
        "sip",
        "sip/srs_utest",
        "sip/gmv/reference/extracted",
        "sip/gmv/generated",
    ] {
        let Ok(rd) = fs::read_dir(base.join(dir)) else {
            continue;
        };
        let mut v: Vec<_> = rd
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.is_file())
            .collect();
        v.sort();
        sips.extend(v);
    }
    for p in sips {
        let msg = fs::read(&p).unwrap();
        let Some((head, body)) = sip_body(&msg) else {
            continue;
        };
        let head = String::from_utf8_lossy(head).to_ascii_lowercase();
        let manscdp = head.lines().any(|l| {
            (l.starts_with("content-type:") || l.starts_with("c:")) && l.contains("manscdp")
        });
        if manscdp && !body.is_empty() {
            out.push(Sample {
                name: rel(&p),
                bytes: body.to_vec(),
            });
        }
    }
    out
}

/// This crate's fixtures in `tests/data/manscdp/*.xml`.
pub fn local_bodies() -> Vec<Sample> {
    let mut v = Vec::new();
    files(Path::new(LOCAL), Some("xml"), &mut v);
    v.into_iter()
        .map(|p| Sample {
            name: rel(&p),
            bytes: fs::read(&p).unwrap(),
        })
        .collect()
}

/// Shared and local bodies together.
pub fn all_bodies() -> Vec<Sample> {
    let mut v = shared_bodies();
    v.extend(local_bodies());
    v
}

/// One shared body by relative path (a `.sip` file yields its body).
pub fn shared(rel_path: &str) -> Vec<u8> {
    let bytes =
        fs::read(Path::new(SHARED).join(rel_path)).unwrap_or_else(|e| panic!("{rel_path}: {e}"));
    if rel_path.ends_with(".sip") {
        sip_body(&bytes)
            .expect("SIP message with a body")
            .1
            .to_vec()
    } else {
        bytes
    }
}

fn rel(p: &Path) -> String {
    let s = p.to_string_lossy();
    match s.find("testdata/") {
        Some(i) => s[i + 9..].to_owned(),
        None => p
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default(),
    }
}
