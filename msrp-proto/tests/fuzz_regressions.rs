//! Inputs the fuzz targets (`fuzz/`) found, replayed with the same invariants the targets
//! assert, so each stays fixed. One directory per target under `tests/vectors/fuzz/`.

use msrp_proto::relay::digest::{AuthenticationInfo, Authorization, Challenge};
use std::path::PathBuf;

fn inputs(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/vectors/fuzz")
        .join(target);
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| {
            let p = e.unwrap().path();
            (p.display().to_string(), std::fs::read(&p).unwrap())
        })
        .collect();
    out.sort();
    assert!(!out.is_empty(), "no inputs in {}", dir.display());
    out
}

/// `fuzz/fuzz_targets/digest_parser.rs`: whatever parses prints to text that parses back to
/// the same value.
#[test]
fn digest_parser_crash_inputs_round_trip() {
    for (name, data) in inputs("digest_parser") {
        let Ok(s) = std::str::from_utf8(&data) else {
            continue;
        };
        if let Ok(c) = Challenge::parse(s) {
            assert_eq!(Challenge::parse(&c.to_string()).as_ref(), Ok(&c), "{name}");
        }
        if let Ok(a) = Authorization::parse(s) {
            assert_eq!(
                Authorization::parse(&a.to_string()).as_ref(),
                Ok(&a),
                "{name}"
            );
        }
        if let Ok(i) = AuthenticationInfo::parse(s) {
            assert_eq!(
                AuthenticationInfo::parse(&i.to_string()).as_ref(),
                Ok(&i),
                "{name}"
            );
        }
    }
}
