//! Shared loading of MANSCDP test bodies for the `manscdp_*` integration tests.
#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};

/// This crate's test data: `sip/` and `manscdp/`, each with its provenance (SOURCES.md,
/// README.md).
pub const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data");
/// The MANSCDP bodies (see the README there).
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

/// Every MANSCDP body that came from a real device or a public project: `manscdp/**/*.xml`
/// but the `synthetic_*` ones, and the bodies of the `sip/*.sip`, `sip/srs_utest/*`,
/// `sip/gmv/reference/extracted/*.sip` and `sip/gmv/generated/*.sip` messages whose
/// Content-Type is MANSCDP.
pub fn real_bodies() -> Vec<Sample> {
    let base = Path::new(DATA);
    let mut out = Vec::new();
    let mut xml = Vec::new();
    files(&base.join("manscdp"), Some("xml"), &mut xml);
    for p in xml.into_iter().filter(|p| !is_synthetic(p)) {
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

fn is_synthetic(p: &Path) -> bool {
    p.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with("synthetic_"))
}

/// The bodies written for these tests: `tests/data/manscdp/synthetic_*.xml`.
pub fn synthetic_bodies() -> Vec<Sample> {
    let mut v = Vec::new();
    files(Path::new(LOCAL), Some("xml"), &mut v);
    v.into_iter()
        .filter(|p| is_synthetic(p))
        .map(|p| Sample {
            name: rel(&p),
            bytes: fs::read(&p).unwrap(),
        })
        .collect()
}

/// Real and synthetic bodies together.
pub fn all_bodies() -> Vec<Sample> {
    let mut v = real_bodies();
    v.extend(synthetic_bodies());
    v
}

/// One body by its path under `tests/data` (a `.sip` file yields its body).
pub fn data(rel_path: &str) -> Vec<u8> {
    let bytes =
        fs::read(Path::new(DATA).join(rel_path)).unwrap_or_else(|e| panic!("{rel_path}: {e}"));
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
    p.strip_prefix(DATA)
        .unwrap_or(p)
        .to_string_lossy()
        .into_owned()
}
