//! A 1 GiB file sent between two `msrp` processes over loopback arrives with the same SHA-256
//! while both processes stay under 64 MiB resident memory (peak RSS, VmHWM, polled from
//! /proc), and a short text message queued after the file started overtakes it (RFC 4975
//! §7.1: chunks of different messages interleave), as the `--json` event order shows on both
//! sides.
//!
//! Needs the release binary: ignored in the debug test run. CI runs it with
//! `cargo test --release -p msrp-cli --test big_file -- --ignored`.

#[path = "common/pair.rs"]
mod pair;

use std::io::{Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use pair::{of_kind, run_pair, Proc, Side};
use sha2::{Digest, Sha256};

const SIZE: u64 = 1 << 30;
const RSS_LIMIT_KIB: u64 = 64 * 1024;
const LIMIT: Duration = Duration::from_secs(600);
const TEXT: &str = "a short message sent after the file started";

/// Writes `len` pseudo-random bytes (every 8-byte word different) in 1 MiB blocks; returns
/// their SHA-256.
fn write_file(path: &Path, len: u64) -> String {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut h = Sha256::new();
    let mut block = vec![0u8; 1 << 20];
    let mut word: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut left = len;
    while left > 0 {
        for c in block.chunks_exact_mut(8) {
            word ^= word << 13;
            word ^= word >> 7;
            word ^= word << 17;
            c.copy_from_slice(&word.to_le_bytes());
        }
        let n = left.min(block.len() as u64) as usize;
        h.update(&block[..n]);
        f.write_all(&block[..n]).unwrap();
        left -= n as u64;
    }
    f.flush().unwrap();
    hex::encode(h.finalize())
}

fn sha256_file(path: &Path) -> String {
    let mut f = std::fs::File::open(path).unwrap();
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).unwrap();
        if n == 0 {
            return hex::encode(h.finalize());
        }
        h.update(&buf[..n]);
    }
}

/// Peak resident set size (VmHWM) in KiB, while the process lives.
fn vm_hwm_kib(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Waits for both processes, polling their peak RSS every 20 ms; returns the highest values
/// seen.
fn wait_both_measuring(a: &mut Proc, b: &mut Proc) -> (u64, u64) {
    let start = Instant::now();
    let (mut ha, mut hb) = (0, 0);
    loop {
        if a.try_wait().is_none() {
            ha = ha.max(vm_hwm_kib(a.pid()).unwrap_or(0));
        }
        if b.try_wait().is_none() {
            hb = hb.max(vm_hwm_kib(b.pid()).unwrap_or(0));
        }
        if a.try_wait().is_some() && b.try_wait().is_some() {
            return (ha, hb);
        }
        assert!(
            start.elapsed() < LIMIT,
            "the transfer did not finish within {LIMIT:?}\noffer stderr:\n{}\nanswer stderr:\n{}",
            a.stderr(),
            b.stderr()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn position(events: &[serde_json::Value], kind: &str, id: &str) -> usize {
    events
        .iter()
        .position(|e| e["event"] == kind && e["message_id"] == id)
        .unwrap_or_else(|| panic!("no {kind} event for {id}: {events:?}"))
}

#[test]
#[ignore = "1 GiB transfer: run with the release binary (cargo test --release -p msrp-cli --test big_file -- --ignored)"]
fn one_gib_file_same_sha256_bounded_memory_and_overtaken_by_text() {
    if cfg!(debug_assertions) {
        panic!("run this test with --release: it measures the release binary");
    }
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("big.bin");
    let t = Instant::now();
    let expected = write_file(&src, SIZE);
    println!("generated 1 GiB in {:?}", t.elapsed());
    let recv = dir.path().join("recv");
    std::fs::create_dir(&recv).unwrap();
    let offer =
        Side::new("reachable").args(&["--send-file", src.to_str().unwrap(), "--send", TEXT]);
    let answer =
        Side::new("behind-nat").args(&["--recv-dir", recv.to_str().unwrap(), "--count", "2"]);
    let t = Instant::now();
    let mut p = run_pair(
        dir.path(),
        offer,
        answer,
        None,
        None,
        Duration::from_secs(60),
    );
    let (rss_offer, rss_answer) = wait_both_measuring(&mut p.offerer, &mut p.answerer);
    let took = t.elapsed();
    let (so, sa) = (p.offerer.wait(LIMIT), p.answerer.wait(LIMIT));
    assert!(
        so.success() && sa.success(),
        "offerer {so}, answerer {sa}\n{}\n{}",
        p.offerer.stderr(),
        p.answerer.stderr()
    );
    println!(
        "1 GiB transferred in {took:?} ({:.0} MiB/s); peak RSS: sender (offerer) {} KiB, receiver (answerer) {} KiB",
        1024.0 / took.as_secs_f64(),
        rss_offer,
        rss_answer
    );
    let (eo, ea) = (p.offerer.events(), p.answerer.events());
    // The received file: same SHA-256, reported and on disk.
    let msgs = of_kind(&ea, "message");
    assert_eq!(msgs.len(), 2, "{ea:?}");
    let file_msg = msgs
        .iter()
        .find(|m| m["content_type"] == "application/octet-stream")
        .expect("file message");
    assert_eq!(file_msg["bytes"], SIZE);
    assert_eq!(file_msg["sha256"], expected);
    let saved = Path::new(file_msg["path"].as_str().expect("saved path"));
    assert_eq!(std::fs::metadata(saved).unwrap().len(), SIZE);
    assert_eq!(sha256_file(saved), expected);
    // The text was queued after the file and overtook it: on the sender, sending(file) <
    // sending(text) < delivered(text) < delivered(file); on the receiver, the text's message
    // event comes first.
    let sending = of_kind(&eo, "sending");
    assert_eq!(sending.len(), 2, "{eo:?}");
    let file_id = sending[0]["message_id"].as_str().unwrap();
    let text_id = sending[1]["message_id"].as_str().unwrap();
    assert_eq!(sending[0]["bytes"], SIZE, "the file is queued first");
    assert!(position(&eo, "sending", text_id) > position(&eo, "sending", file_id));
    assert!(
        position(&eo, "delivered", text_id) < position(&eo, "delivered", file_id),
        "the text must be acknowledged before the file: {eo:?}"
    );
    assert_eq!(file_msg["message_id"], file_id);
    assert!(
        position(&ea, "message", text_id) < position(&ea, "message", file_id),
        "the text must arrive before the file completes: {ea:?}"
    );
    assert_eq!(msgs[0]["body"], TEXT);
    // Memory bounded on both sides.
    assert!(rss_offer > 0 && rss_answer > 0, "RSS was measured");
    assert!(
        rss_offer < RSS_LIMIT_KIB,
        "sender peak RSS {rss_offer} KiB >= 64 MiB"
    );
    assert!(
        rss_answer < RSS_LIMIT_KIB,
        "receiver peak RSS {rss_answer} KiB >= 64 MiB"
    );
}
