//! The 1 GiB transfer between two `msrp` processes repeated over TLS (`--tls`, generated
//! certificates pinned by a=fingerprint both ways): the file arrives with the same SHA-256
//! while both processes stay under 64 MiB resident memory (peak RSS, VmHWM from /proc).
//!
//! Needs the release binary: ignored in the debug test run. CI runs it with
//! `cargo test --release -p msrp-cli --test big_file_tls -- --ignored --nocapture`.

#[path = "common/pair.rs"]
mod pair;

use std::io::{Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use pair::{of_kind, run_pair, Proc, Side};
use sha2::{Digest, Sha256};

const SIZE: u64 = 1 << 30;
const RSS_LIMIT_KIB: u64 = 64 * 1024;
const LIMIT: Duration = Duration::from_secs(900);

/// `len` bytes from an xorshift generator, written in 1 MiB blocks; returns their SHA-256.
fn make_file(path: &Path, len: u64) -> String {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut hash = Sha256::new();
    let mut block = vec![0u8; 1 << 20];
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut left = len;
    while left > 0 {
        for w in block.chunks_exact_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            w.copy_from_slice(&x.to_le_bytes());
        }
        let n = left.min(block.len() as u64) as usize;
        hash.update(&block[..n]);
        out.write_all(&block[..n]).unwrap();
        left -= n as u64;
    }
    out.flush().unwrap();
    hex::encode(hash.finalize())
}

fn file_sha256(path: &Path) -> String {
    let mut f = std::fs::File::open(path).unwrap();
    let mut hash = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        match f.read(&mut buf).unwrap() {
            0 => return hex::encode(hash.finalize()),
            n => hash.update(&buf[..n]),
        }
    }
}

/// Peak RSS (VmHWM, KiB) of a live process.
fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Waits for both processes (bounded), sampling their peak RSS; returns the highest seen.
fn wait_sampling(a: &mut Proc, b: &mut Proc) -> (u64, u64) {
    let start = Instant::now();
    let mut peak = (0, 0);
    loop {
        let (da, db) = (a.try_wait().is_some(), b.try_wait().is_some());
        if !da {
            peak.0 = peak.0.max(peak_rss_kib(a.pid()).unwrap_or(0));
        }
        if !db {
            peak.1 = peak.1.max(peak_rss_kib(b.pid()).unwrap_or(0));
        }
        if da && db {
            return peak;
        }
        assert!(
            start.elapsed() < LIMIT,
            "not finished within {LIMIT:?}\noffer stderr:\n{}\nanswer stderr:\n{}",
            a.stderr(),
            b.stderr()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
#[ignore = "1 GiB over TLS: run with the release binary (cargo test --release -p msrp-cli --test big_file_tls -- --ignored)"]
fn one_gib_file_over_tls_same_sha256_bounded_memory() {
    if cfg!(debug_assertions) {
        panic!("run this test with --release: it measures the release binary");
    }
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("big.bin");
    let expected = make_file(&src, SIZE);
    let recv = dir.path().join("recv");
    std::fs::create_dir(&recv).unwrap();
    // The offerer (actpass) sends; the answerer behind a NAT answers active, so it is the
    // TLS client and the offerer the TLS server (RFC 6135 §4.3).
    let offer = Side::new("reachable").args(&["--tls", "--send-file", src.to_str().unwrap()]);
    let answer = Side::new("behind-nat").args(&[
        "--tls",
        "--recv-dir",
        recv.to_str().unwrap(),
        "--count",
        "1",
    ]);
    let start = Instant::now();
    let mut p = run_pair(
        dir.path(),
        offer,
        answer,
        None,
        None,
        Duration::from_secs(60),
    );
    let (rss_offer, rss_answer) = wait_sampling(&mut p.offerer, &mut p.answerer);
    let took = start.elapsed();
    let (so, sa) = (p.offerer.wait(LIMIT), p.answerer.wait(LIMIT));
    assert!(
        so.success() && sa.success(),
        "offerer {so}, answerer {sa}\n{}\n{}",
        p.offerer.stderr(),
        p.answerer.stderr()
    );
    println!(
        "1 GiB over TLS in {took:?} ({:.0} MiB/s); peak RSS: sender (offerer, TLS server) {rss_offer} KiB, receiver (answerer, TLS client) {rss_answer} KiB",
        1024.0 / took.as_secs_f64()
    );
    let (eo, ea) = (p.offerer.events(), p.answerer.events());
    assert_eq!(of_kind(&eo, "negotiated")[0]["tls_role"], "server");
    assert_eq!(of_kind(&ea, "negotiated")[0]["tls_role"], "client");
    let msgs = of_kind(&ea, "message");
    assert_eq!(msgs.len(), 1, "{ea:?}");
    assert_eq!(msgs[0]["bytes"], SIZE);
    assert_eq!(msgs[0]["sha256"], expected);
    let saved = Path::new(msgs[0]["path"].as_str().expect("saved path"));
    assert_eq!(std::fs::metadata(saved).unwrap().len(), SIZE);
    assert_eq!(file_sha256(saved), expected);
    assert!(rss_offer > 0 && rss_answer > 0, "RSS was measured");
    assert!(rss_offer < RSS_LIMIT_KIB, "sender peak RSS {rss_offer} KiB");
    assert!(
        rss_answer < RSS_LIMIT_KIB,
        "receiver peak RSS {rss_answer} KiB"
    );
}
