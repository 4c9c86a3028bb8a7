//! `--recv-dir`: a received file is named from the peer's RFC 5547 `a=file-selector` (here
//! hand-added to the offer with a path-traversal attempt, which is stripped to its last
//! component), else from the `Content-Disposition` filename `msrp --send-file` sends
//! (RFC 5547 §8, sanitised the same way), else from its Message-ID; its bytes and SHA-256 match what was sent; an
//! existing file is not overwritten.

#[path = "common/pair.rs"]
mod pair;

use std::time::Duration;

use pair::{of_kind, run_pair, Side};
use sha2::{Digest, Sha256};

const LIMIT: Duration = Duration::from_secs(60);

#[test]
fn file_selector_name_is_sanitized_and_used() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("source.bin");
    let body: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(&src, &body).unwrap();
    let recv = dir.path().join("recv");
    std::fs::create_dir(&recv).unwrap();
    // Already there: must not be overwritten.
    std::fs::write(recv.join("evil.bin"), b"keep me").unwrap();
    let offer = Side::new("reachable").args(&["--send-file", src.to_str().unwrap()]);
    let answer =
        Side::new("reachable").args(&["--recv-dir", recv.to_str().unwrap(), "--count", "1"]);
    let mut p = run_pair(
        dir.path(),
        offer,
        answer,
        Some(Box::new(|s: &str| {
            format!(
                "{s}a=file-selector:name:\"..%2F..%2Fevil.bin\" type:application/octet-stream size:300000\r\n"
            )
        })),
        None,
        LIMIT,
    );
    let (so, sa) = (p.offerer.wait(LIMIT), p.answerer.wait(LIMIT));
    assert!(
        so.success() && sa.success(),
        "{}\n{}",
        p.offerer.stderr(),
        p.answerer.stderr()
    );
    let ev = p.answerer.events();
    let m = of_kind(&ev, "message");
    assert_eq!(m.len(), 1, "{ev:?}");
    assert_eq!(m[0]["bytes"], body.len());
    assert_eq!(m[0]["sha256"], hex::encode(Sha256::digest(&body)));
    let path = std::path::PathBuf::from(m[0]["path"].as_str().unwrap());
    assert_eq!(
        path,
        recv.join("evil.bin.1"),
        "sanitized name, existing file kept"
    );
    assert_eq!(std::fs::read(&path).unwrap(), body);
    assert_eq!(std::fs::read(recv.join("evil.bin")).unwrap(), b"keep me");
    assert!(!dir.path().join("evil.bin").exists());
    let mut names: Vec<_> = std::fs::read_dir(&recv)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["evil.bin", "evil.bin.1"], "no partial file left");
}

#[test]
fn without_file_selector_the_content_disposition_filename_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    // Leading dots are stripped by the receiver (no hidden files), spaces kept.
    let src = dir.path().join("..secret report.bin");
    std::fs::write(&src, vec![0xa5u8; 70_000]).unwrap();
    let recv = dir.path().join("recv");
    let offer = Side::new("behind-nat").args(&[
        "--send-file",
        src.to_str().unwrap(),
        "--file-type",
        "image/png",
    ]);
    let answer =
        Side::new("reachable").args(&["--recv-dir", recv.to_str().unwrap(), "--count", "1"]);
    let mut p = run_pair(dir.path(), offer, answer, None, None, LIMIT);
    let (so, sa) = (p.offerer.wait(LIMIT), p.answerer.wait(LIMIT));
    assert!(
        so.success() && sa.success(),
        "{}\n{}",
        p.offerer.stderr(),
        p.answerer.stderr()
    );
    let ev = p.answerer.events();
    let m = of_kind(&ev, "message");
    assert_eq!(m[0]["content_type"], "image/png");
    let saved = recv.join("secret report.bin");
    assert_eq!(m[0]["path"].as_str().unwrap(), saved.to_str().unwrap());
    assert_eq!(std::fs::read(&saved).unwrap(), vec![0xa5u8; 70_000]);
}
