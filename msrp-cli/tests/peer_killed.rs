//! A peer killed in the middle of a file transfer: the other `msrp` process reports the
//! failure (a `failed` event, then `closed`, and a message on stderr saying what was lost) and
//! exits non-zero (4: the session failed) within its --timeout. RFC 4975 §5.4: a failed
//! connection fails its sessions.

#[path = "common/pair.rs"]
mod pair;

use std::path::Path;
use std::time::{Duration, Instant};

use pair::{of_kind, run_pair, Proc, Side};

const LIMIT: Duration = Duration::from_secs(60);
/// The --timeout the harness gives both processes: the survivor must exit within it.
const TIMEOUT_SECS: u64 = 20;

/// A sparse file of `len` bytes (reads as zeros, created instantly).
fn sparse_file(path: &Path, len: u64) {
    let f = std::fs::File::create(path).unwrap();
    f.set_len(len).unwrap();
}

/// Waits (bounded) until the receiver's partial file in `dir` holds at least `min` bytes.
fn wait_partial(dir: &Path, min: u64, procs: &mut [&mut Proc]) {
    let start = Instant::now();
    loop {
        let biggest = std::fs::read_dir(dir)
            .unwrap()
            .filter_map(|e| e.ok()?.metadata().ok())
            .map(|m| m.len())
            .max()
            .unwrap_or(0);
        if biggest >= min {
            return;
        }
        for p in procs.iter_mut() {
            if let Some(s) = p.try_wait() {
                panic!(
                    "{} exited ({s}) before the transfer was under way:\n{}",
                    p.name,
                    p.stderr()
                );
            }
        }
        assert!(
            start.elapsed() < LIMIT,
            "the transfer did not start within {LIMIT:?}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn kill9(p: &mut Proc) {
    p.child.kill().unwrap();
    p.child.wait().unwrap();
}

/// Starts a 1 GiB transfer from the offerer to the answerer and returns once part of it
/// arrived.
fn start_transfer(dir: &Path) -> pair::Pair {
    let file = dir.join("big.bin");
    sparse_file(&file, 1 << 30);
    let recv = dir.join("recv");
    std::fs::create_dir(&recv).unwrap();
    let offer = Side::new("reachable").args(&["--send-file", file.to_str().unwrap()]);
    let answer =
        Side::new("behind-nat").args(&["--recv-dir", recv.to_str().unwrap(), "--count", "1"]);
    let mut p = run_pair(dir, offer, answer, None, None, LIMIT);
    wait_partial(&recv, 1 << 20, &mut [&mut p.offerer, &mut p.answerer]);
    p
}

fn assert_reports_failure(survivor: &mut Proc, expect_in_stderr: &str) {
    let start = Instant::now();
    let status = survivor.wait(Duration::from_secs(TIMEOUT_SECS));
    let took = start.elapsed();
    assert_eq!(
        status.code(),
        Some(4),
        "{} should exit 4 (session failed); stderr:\n{}",
        survivor.name,
        survivor.stderr()
    );
    let err = survivor.stderr();
    assert!(
        err.contains(expect_in_stderr) && err.contains("connection lost"),
        "{}: the error should say what happened: {err}",
        survivor.name
    );
    let ev = survivor.events();
    assert!(!of_kind(&ev, "failed").is_empty(), "{ev:?}");
    assert_eq!(ev.last().unwrap()["event"], "closed", "{ev:?}");
    assert!(
        of_kind(&ev, "message").is_empty(),
        "nothing complete arrived"
    );
    println!("{} reported the failure after {took:?}", survivor.name);
}

#[test]
fn receiver_killed_mid_transfer_sender_fails() {
    let dir = tempfile::tempdir().unwrap();
    let mut p = start_transfer(dir.path());
    kill9(&mut p.answerer);
    assert_reports_failure(&mut p.offerer, "big.bin");
}

#[test]
fn sender_killed_mid_transfer_receiver_fails() {
    let dir = tempfile::tempdir().unwrap();
    let mut p = start_transfer(dir.path());
    kill9(&mut p.offerer);
    assert_reports_failure(&mut p.answerer, "incomplete");
    // The partial file is removed, nothing half-written is left under its final name.
    let left: Vec<_> = std::fs::read_dir(dir.path().join("recv"))
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name())
        .collect();
    assert!(left.is_empty(), "{left:?}");
}
