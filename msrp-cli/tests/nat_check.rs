//! `msrp nat-check` end to end: the binary against a real coturn on loopback.

#[path = "../../msrp/tests/common/coturn.rs"]
mod coturn;
#[path = "common/run.rs"]
mod run;

use std::net::{SocketAddr, UdpSocket};
use std::process::Output;
use std::time::{Duration, Instant};

use coturn::Coturn;
use run::msrp;

fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn json(out: &Output) -> serde_json::Map<String, serde_json::Value> {
    assert!(
        out.status.success(),
        "exit {:?}, stderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout.clone()).unwrap();
    assert_eq!(text.lines().count(), 1, "one JSON object: {text}");
    match serde_json::from_str(&text).unwrap() {
        serde_json::Value::Object(m) => m,
        other => panic!("not an object: {other}"),
    }
}

/// The contract keys, sorted.
const KEYS: [&str; 6] = [
    "behind_nat",
    "filtering",
    "mapped_address",
    "mapping",
    "offer_setup",
    "reason",
];

#[test]
fn nat_check_json_udp_on_loopback() {
    let Some(srv) = Coturn::start(true) else {
        return;
    };
    let local = format!("127.0.0.1:{}", free_udp_port());
    let out = msrp(&[
        "nat-check",
        "--stun",
        &srv.primary.to_string(),
        "--local",
        &local,
        "--json",
    ]);
    let j = json(&out);
    let mut keys: Vec<&str> = j.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, KEYS, "exactly the contract keys");
    assert_eq!(j["mapped_address"], local.as_str());
    assert_eq!(j["mapping"], "endpoint-independent");
    assert_eq!(j["filtering"], "endpoint-independent");
    assert_eq!(j["behind_nat"], false);
    assert_eq!(j["offer_setup"], "actpass");
    assert!(j["reason"].as_str().unwrap().contains("not behind a NAT"));
}

#[test]
fn nat_check_json_tcp_on_loopback() {
    let Some(srv) = Coturn::start(true) else {
        return;
    };
    let out = msrp(&[
        "nat-check",
        "--stun",
        &srv.primary.to_string(),
        "--tcp",
        "--local",
        "127.0.0.1:0",
        "--json",
    ]);
    let j = json(&out);
    let mut keys: Vec<&str> = j.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, KEYS, "exactly the contract keys");
    let mapped: SocketAddr = j["mapped_address"].as_str().unwrap().parse().unwrap();
    assert_eq!(mapped.ip().to_string(), "127.0.0.1");
    assert_ne!(mapped.port(), 0);
    assert_eq!(j["mapping"], "endpoint-independent");
    // RFC 5780 §3.2: filtering is not testable over TCP; said honestly.
    assert_eq!(j["filtering"], "unknown");
    assert_eq!(j["behind_nat"], false);
    assert_eq!(j["offer_setup"], "actpass");
    assert!(j["reason"].as_str().unwrap().contains("TCP"));
}

#[test]
fn nat_check_human_output() {
    let Some(srv) = Coturn::start(true) else {
        return;
    };
    let out = msrp(&["nat-check", "--stun", &srv.primary.to_string()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("mapped address: 127.0.0.1:"), "{text}");
    assert!(
        text.contains(&format!("other address {}", srv.alternate)),
        "{text}"
    );
    assert!(
        text.contains("mapping:        endpoint-independent"),
        "{text}"
    );
    assert!(
        text.contains("filtering:      endpoint-independent"),
        "{text}"
    );
    assert!(text.contains("behind NAT:     no"), "{text}");
    assert!(text.contains("offer a=setup:  actpass"), "{text}");
}

#[test]
fn nat_check_timeout_when_nothing_listens() {
    let dead = format!("127.0.0.1:{}", free_udp_port());
    let started = Instant::now();
    let out = msrp(&["nat-check", "--stun", &dead, "--rto-ms", "10", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty(), "no JSON on failure");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no response from STUN server"), "{err}");
    assert!(err.contains("7 request(s)"), "{err}");
    // The whole (2^6 - 1 + 16) x 10 ms schedule ran.
    assert!(started.elapsed() >= Duration::from_millis(790));
}

#[test]
fn nat_check_tcp_refused_and_bad_addresses() {
    let dead = format!("127.0.0.1:{}", free_udp_port());
    let out = msrp(&["nat-check", "--stun", &dead, "--tcp"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("refused"));

    for (bad, what) in [
        ("127.0.0.1", "expected HOST:PORT"),
        ("127.0.0.1:99999", "not a port number"),
        (":3478", "host is empty"),
    ] {
        let out = msrp(&["nat-check", "--stun", bad]);
        assert_eq!(out.status.code(), Some(1), "{bad}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(what), "{bad}: {err}");
    }
    // --local is parsed by clap: usage error, exit 2.
    let out = msrp(&[
        "nat-check",
        "--stun",
        "127.0.0.1:3478",
        "--local",
        "nowhere",
    ]);
    assert_eq!(out.status.code(), Some(2));
    // Family mismatch between --local and --stun.
    let out = msrp(&[
        "nat-check",
        "--stun",
        "127.0.0.1:3478",
        "--local",
        "[::1]:0",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("IP version"));
}

#[test]
fn nat_check_tcp_with_udp_filtering_on_loopback() {
    let Some(srv) = Coturn::start(true) else {
        return;
    };
    let out = msrp(&[
        "nat-check",
        "--stun",
        &srv.primary.to_string(),
        "--tcp",
        "--udp-filtering",
        "--local",
        "127.0.0.1:0",
        "--json",
    ]);
    let j = json(&out);
    assert_eq!(j["mapping"], "endpoint-independent");
    // Filtering now measured over UDP from the same port number.
    assert_eq!(j["filtering"], "endpoint-independent");
    assert_eq!(j["behind_nat"], false);
    assert_eq!(j["offer_setup"], "actpass");
    // --udp-filtering without --tcp is a usage error.
    let out = msrp(&["nat-check", "--stun", "127.0.0.1:3478", "--udp-filtering"]);
    assert_eq!(out.status.code(), Some(2));
}
