//! The end-to-end relay scenario shared by the relay interop tests: two `msrp` processes
//! (`msrp offer` / `msrp answer`, each with its own relay arguments) exchange a text message
//! and a chunked file both ways, and every byte is checked on the receiving side through the
//! `--json` events (`message` with `body` or `sha256`) and the saved files.
#![allow(dead_code)]

use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::pair::{of_kind, run_pair, Side};

/// Bound of the whole exchange for each process.
pub const LIMIT: Duration = Duration::from_secs(90);

/// Chunk size: the default `--relay-chunk-size`, which sessions through relays use without
/// any flag (below Kamailio's ~11 KiB frame limit, docs/interop.md), so that a file of
/// [`FILE_BYTES`] travels in several chunks. No `--chunk-size` is passed: the direct default
/// (1 MiB) would send the file in one frame that Kamailio refuses.
pub const CHUNK: usize = msrp::proto::session::DEFAULT_RELAY_CHUNK_SIZE;
/// File size: eight chunks and a partial one.
pub const FILE_BYTES: usize = 8 * CHUNK + 1234;

/// What one side sent and received.
pub struct SideResult {
    pub events: Vec<Value>,
    pub stderr: String,
}

/// The outcome of [`exchange`].
pub struct Exchange {
    pub offerer: SideResult,
    pub answerer: SideResult,
    pub offer_sdp: String,
    pub answer_sdp: String,
}

fn sha256_hex(data: &[u8]) -> String {
    hex(&Sha256::digest(data))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Deterministic bytes that differ per `seed` (no two chunks alike).
fn file_bytes(seed: u64, n: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// Runs the offerer with `offer_args` and the answerer with `answer_args` (relay flags,
/// `--tls`, `--ca`...). Each sends one text and one file of [`FILE_BYTES`] (in chunks of
/// [`CHUNK`] through relays, by default) and expects the other's two messages. Asserts that both exit 0, that each
/// received the other's text and file (same SHA-256 in the `message` event and in the saved
/// file, same bytes), that everything sent was acknowledged (`delivered`, no `failed`), and
/// that each side authenticated to its relays first when it has any. `context` is appended
/// to failure messages (relay logs).
pub fn exchange(
    dir: &Path,
    offer_args: &[String],
    answer_args: &[String],
    context: &dyn Fn() -> String,
) -> Exchange {
    exchange_with(
        dir,
        ["reachable", "reachable"],
        offer_args,
        answer_args,
        context,
    )
}

/// [`exchange`] with the `--reachability` of the offerer and the answerer.
pub fn exchange_with(
    dir: &Path,
    reachability: [&'static str; 2],
    offer_args: &[String],
    answer_args: &[String],
    context: &dyn Fn() -> String,
) -> Exchange {
    let files = [
        ("from-offerer.bin", file_bytes(1, FILE_BYTES)),
        ("from-answerer.bin", file_bytes(2, FILE_BYTES)),
    ];
    for (name, data) in &files {
        std::fs::write(dir.join(name), data).unwrap();
    }
    let texts = ["text from the offerer", "text from the answerer"];
    let mut sides = Vec::new();
    for (k, extra) in [offer_args, answer_args].into_iter().enumerate() {
        let recv = dir.join(format!("recv-{k}"));
        std::fs::create_dir_all(&recv).unwrap();
        let send_file = dir.join(files[k].0);
        let mut args: Vec<&str> = vec![
            "--send-file",
            send_file.to_str().unwrap(),
            "--send",
            texts[k],
            "--count",
            "2",
            "--recv-dir",
            recv.to_str().unwrap(),
        ];
        args.extend(extra.iter().map(String::as_str));
        sides.push(Side::new(reachability[k]).args(&args));
    }
    let answer = sides.pop().unwrap();
    let offer = sides.pop().unwrap();
    let mut p = run_pair(dir, offer, answer, None, None, LIMIT);
    let so = p.offerer.wait(LIMIT);
    let sa = p.answerer.wait(LIMIT);
    let dump = |p: &crate::pair::Pair| {
        format!(
            "offer:\n{}\nanswer:\n{}\noffer stdout:\n{}\noffer stderr:\n{}\nanswer stdout:\n{}\nanswer stderr:\n{}\n{}",
            p.offer_sdp,
            p.answer_sdp,
            p.offerer.stdout(),
            p.offerer.stderr(),
            p.answerer.stdout(),
            p.answerer.stderr(),
            context()
        )
    };
    assert!(
        so.success() && sa.success(),
        "offerer {so}, answerer {sa}\n{}",
        dump(&p)
    );
    let results = [p.offerer.events(), p.answerer.events()];
    for (k, ev) in results.iter().enumerate() {
        let who = ["offerer", "answerer"][k];
        let peer = 1 - k;
        let has_relay = [offer_args, answer_args][k].iter().any(|a| a == "--relay");
        if has_relay {
            // RFC 4976 §5.1: AUTH before the SDP.
            assert_eq!(ev[0]["event"], "authenticated", "{who}: {ev:?}");
        }
        let msgs = of_kind(ev, "message");
        assert_eq!(msgs.len(), 2, "{who}: {ev:?}\n{}", dump(&p));
        let text = msgs
            .iter()
            .find(|m| m["content_type"] == "text/plain")
            .unwrap_or_else(|| panic!("{who}: no text: {ev:?}"));
        assert_eq!(text["body"], texts[peer], "{who}");
        let file = msgs
            .iter()
            .find(|m| m["content_type"] == "application/octet-stream")
            .unwrap_or_else(|| panic!("{who}: no file: {ev:?}"));
        let want = sha256_hex(&files[peer].1);
        assert_eq!(file["sha256"], want.as_str(), "{who}: {file}");
        assert_eq!(file["bytes"], FILE_BYTES as u64, "{who}: {file}");
        let saved = std::fs::read(file["path"].as_str().unwrap()).unwrap();
        assert_eq!(sha256_hex(&saved), want, "{who}: saved file");
        assert!(saved == files[peer].1, "{who}: saved file differs");
        // Both messages we sent were acknowledged (`delivered` = every chunk got its 200,
        // which through a relay is the first relay's hop-by-hop response, RFC 4976 §6.4.1;
        // end-to-end delivery is what the peer's checks above prove) and nothing failed.
        assert_eq!(
            of_kind(ev, "delivered").len(),
            2,
            "{who}: {ev:?}\n{}",
            dump(&p)
        );
        assert!(of_kind(ev, "failed").is_empty(), "{who}: {ev:?}");
    }
    let [eo, ea] = results;
    Exchange {
        offerer: SideResult {
            events: eo,
            stderr: p.offerer.stderr(),
        },
        answerer: SideResult {
            events: ea,
            stderr: p.answerer.stderr(),
        },
        offer_sdp: p.offer_sdp.clone(),
        answer_sdp: p.answer_sdp.clone(),
    }
}

/// The `use_path` of a side's `authenticated` event.
pub fn use_path(events: &[Value]) -> Vec<String> {
    of_kind(events, "authenticated")[0]["use_path"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect()
}

/// The URIs of the `a=path` line of an SDP.
pub fn sdp_path(sdp: &str) -> Vec<String> {
    let line = sdp
        .lines()
        .find(|l| l.starts_with("a=path:"))
        .unwrap_or_else(|| panic!("no a=path in {sdp}"));
    line["a=path:".len()..]
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

/// Relay arguments for `msrp offer`/`answer`.
pub fn relay_args(relays: &[String], user: &str, password: &str) -> Vec<String> {
    let mut v = Vec::new();
    for r in relays {
        v.push("--relay".to_string());
        v.push(r.clone());
    }
    v.extend(["--relay-user".into(), user.into()]);
    v.extend(["--relay-password".into(), password.into()]);
    v
}
