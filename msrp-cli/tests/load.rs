//! `msrp load`: short runs directly between endpoints and through an `msrp relay` process,
//! checking the counts of the `--json` result (every message received once, none lost), the
//! exit status when messages are lost, `--idle` connections held by the relay, and the
//! refusal of non-test addresses. Every process is killed by a Drop guard; waits are bounded.

#[path = "common/run.rs"]
mod run;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

const REALM: &str = "load.test";

/// Kills the child (and reaps it) on drop.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A running `msrp relay` on loopback with user `u` / password `pw`.
struct Relay {
    proc: Guard,
    addr: String,
    stderr: Arc<Mutex<String>>,
}

impl Relay {
    fn uri(&self) -> String {
        format!("msrp://{};tcp", self.addr)
    }
    fn log(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }
    /// Times `needle` occurs in the log, waiting up to 5 s for it to reach `n`.
    fn count_in_log(&self, needle: &str, n: usize) -> usize {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let c = self.log().matches(needle).count();
            if c >= n || Instant::now() > deadline {
                return c;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn start_relay(dir: &Path, extra: &[&str]) -> Relay {
    let mut h = Command::new(env!("CARGO_BIN_EXE_msrp"))
        .args(["relay", "hash-password", "--user", "u", "--realm", REALM])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    h.stdin.take().unwrap().write_all(b"pw\n").unwrap();
    let users = h.wait_with_output().unwrap();
    assert!(users.status.success());
    std::fs::write(dir.join("users"), users.stdout).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_msrp"))
        .args([
            "relay",
            "--json",
            "--listen",
            "127.0.0.1:0",
            "--realm",
            REALM,
        ])
        .arg("--users")
        .arg(dir.join("users"))
        .args(extra)
        .env("RUST_LOG", "msrp=info")
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    let proc = Guard(child);
    let log = Arc::new(Mutex::new(String::new()));
    let l2 = log.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            l2.lock().unwrap().push_str(&(line + "\n"));
        }
    });
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let line = rx
        .recv_timeout(Duration::from_secs(20))
        .unwrap_or_else(|_| panic!("relay did not report listening: {}", log.lock().unwrap()));
    let v: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["event"], "listening", "{line}");
    Relay {
        proc,
        addr: v["tcp"].as_str().unwrap().to_string(),
        stderr: log,
    }
}

fn events(o: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

fn result_of(o: &Output) -> Value {
    let ev = events(o);
    let r: Vec<&Value> = ev.iter().filter(|e| e["event"] == "result").collect();
    assert_eq!(r.len(), 1, "one result event: {ev:?}\n{}", stderr(o));
    r[0].clone()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Every message of every session is received exactly once, and the figures are consistent.
fn assert_complete(r: &Value, count: u64, size: u64) {
    assert_eq!(r["sent"], count, "{r}");
    assert_eq!(r["acked"], count, "{r}");
    assert_eq!(r["received"], count, "{r}");
    for zero in ["lost", "duplicated", "corrupt", "failed", "aborted"] {
        assert_eq!(r[zero], 0, "{zero}: {r}");
    }
    assert_eq!(r["delivery_latency_ms"]["samples"], count, "{r}");
    assert_eq!(r["ack_latency_ms"]["samples"], count, "{r}");
    let lat = &r["delivery_latency_ms"];
    let (p50, p99, max) = (
        lat["p50"].as_f64().unwrap(),
        lat["p99"].as_f64().unwrap(),
        lat["max"].as_f64().unwrap(),
    );
    assert!(p50 <= p99 && p99 <= max && max > 0.0, "{r}");
    let secs = r["elapsed_s"].as_f64().unwrap();
    let rate = r["msgs_per_s"].as_f64().unwrap();
    assert!(
        (rate * secs - count as f64).abs() < count as f64 * 0.01 + 1.0,
        "{r}"
    );
    let mb = r["mb_per_s"].as_f64().unwrap();
    assert!(
        (mb * 1e6 * secs - (count * size) as f64).abs() < (count * size) as f64 * 0.01 + 1e3,
        "{r}"
    );
}

#[test]
fn direct_run_delivers_every_message_once_and_reports_figures() {
    let o = run::msrp(&[
        "load",
        "--sessions",
        "3",
        "--count",
        "300",
        "--size",
        "1024",
        "--json",
        "--progress",
        "0.05",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let r = result_of(&o);
    assert_eq!(r["mode"], "direct");
    assert_eq!(r["sessions"], 3);
    // The session default for direct sessions.
    assert_eq!(r["chunk_size"], 1024 * 1024);
    assert_complete(&r, 300, 1024);
    let ev = events(&o);
    assert_eq!(ev[0]["event"], "ready", "{ev:?}");
    assert_eq!(ev.last().unwrap()["event"], "result");

    // Chunked messages (RFC 4975 §7.1): 100 kB bodies in 4 KiB chunks, counted once each.
    let o = run::msrp(&[
        "load",
        "--count",
        "8",
        "--size",
        "100000",
        "--chunk-size",
        "4096",
        "--json",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let r = result_of(&o);
    assert_eq!(r["chunk_size"], 4096);
    assert_complete(&r, 8, 100_000);
}

#[test]
fn rate_limited_run_takes_as_long_as_the_rate_says() {
    // 40 messages at 100/s over two sessions: at least ~0.39 s from the first to the last.
    let o = run::msrp(&[
        "load",
        "--sessions",
        "2",
        "--count",
        "40",
        "--rate",
        "100",
        "--json",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let r = result_of(&o);
    assert_complete(&r, 40, 1024);
    assert!(r["elapsed_s"].as_f64().unwrap() >= 0.37, "{r}");

    // A duration instead of a count: sends for about that long, all received.
    let o = run::msrp(&["load", "--duration", "0.5", "--rate", "200", "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let r = result_of(&o);
    let sent = r["sent"].as_u64().unwrap();
    assert!((80..=110).contains(&sent), "{r}");
    assert_eq!(r["received"], sent, "{r}");
    assert_eq!(r["lost"], 0, "{r}");
}

#[test]
fn through_an_msrp_relay_every_message_crosses_it_once() {
    let dir = tempfile::tempdir().unwrap();
    let relay = start_relay(dir.path(), &[]);
    let uri = relay.uri();
    let o = run::msrp(&[
        "load",
        "--relay",
        &uri,
        "--relay-user",
        "u",
        "--relay-password",
        "pw",
        "--sessions",
        "2",
        "--count",
        "200",
        "--json",
    ]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}\nrelay:\n{}",
        stderr(&o),
        relay.log()
    );
    let r = result_of(&o);
    assert_eq!(r["mode"], "relay");
    // The session default through relays (SessionConfig::relay_chunk_size).
    assert_eq!(r["chunk_size"], 8192);
    assert_eq!(r["relays"][0], uri.as_str());
    assert_complete(&r, 200, 1024);
    // Both ends of both sessions authenticated at the relay (RFC 4976 §5.1).
    assert_eq!(relay.count_in_log("authenticated", 4), 4, "{}", relay.log());

    // 1 MiB-class messages in chunks below Kamailio's frame limit, through the relay.
    let o = run::msrp(&[
        "load",
        "--relay",
        &uri,
        "--relay-user",
        "u",
        "--relay-password",
        "pw",
        "--count",
        "3",
        "--size",
        "300000",
        "--chunk-size",
        "8192",
        "--json",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_complete(&result_of(&o), 3, 300_000);

    // Wrong password: a setup failure (exit 1) naming the AUTH, nothing sent.
    let o = run::msrp(&[
        "load",
        "--relay",
        &uri,
        "--relay-user",
        "u",
        "--relay-password",
        "wrong",
        "--count",
        "10",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("AUTH"), "{}", stderr(&o));
    drop(relay);
}

#[test]
fn relay_killed_mid_run_gives_loss_and_exit_4() {
    let dir = tempfile::tempdir().unwrap();
    let mut relay = start_relay(dir.path(), &[]);
    let child = Command::new(env!("CARGO_BIN_EXE_msrp"))
        .args(["load", "--relay", &relay.uri()])
        .args(["--relay-user", "u", "--relay-password", "pw"])
        .args(["--duration", "3", "--rate", "200", "--drain-timeout", "1"])
        .args(["--timeout", "2", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut load = Guard(child);
    std::thread::sleep(Duration::from_millis(1200));
    let _ = relay.proc.0.kill();
    let _ = relay.proc.0.wait();
    let deadline = Instant::now() + Duration::from_secs(30);
    while load.0.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "msrp load did not finish");
        std::thread::sleep(Duration::from_millis(20));
    }
    let Guard(c) = &mut load;
    let mut out = String::new();
    let mut err = String::new();
    std::io::Read::read_to_string(c.stdout.as_mut().unwrap(), &mut out).unwrap();
    std::io::Read::read_to_string(c.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert_eq!(c.wait().unwrap().code(), Some(4), "{out}\n{err}");
    let r: Value = out
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["event"] == "result")
        .unwrap_or_else(|| panic!("no result: {out}\n{err}"));
    let sent = r["sent"].as_u64().unwrap();
    let received = r["received"].as_u64().unwrap();
    assert!(received > 50, "messages flowed before the kill: {r}");
    let failed = r["failed"].as_u64().unwrap();
    assert!(
        r["lost"].as_u64().unwrap() == sent - received && (sent > received || failed > 0),
        "{r}"
    );
    assert!(err.contains("lost"), "{err}");
}

/// Sockets (TCP connections and listeners) the process `pid` holds now.
fn sockets_of(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| {
            d.filter_map(Result::ok)
                .filter(|e| {
                    std::fs::read_link(e.path())
                        .is_ok_and(|l| l.to_string_lossy().starts_with("socket:"))
                })
                .count()
        })
        .unwrap_or(0)
}

#[test]
fn shared_receivers_halve_the_relay_connections_and_lose_nothing() {
    // 50 sessions, 25 receivers per receiving endpoint: only the 50 senders authenticate
    // (each on its own connection, its own Use-Path); the relay reaches the two receiving
    // endpoints over one outbound connection each (reused by authority, RFC 4976 §6.3), so
    // it holds 52 connections, not the 100 of two authenticated ends per session.
    let dir = tempfile::tempdir().unwrap();
    let relay = start_relay(dir.path(), &["--max-connections-per-address", "1000"]);
    let pid = relay.proc.0.id();
    let base = sockets_of(pid);
    let child = Command::new(env!("CARGO_BIN_EXE_msrp"))
        .args(["load", "--relay", &relay.uri()])
        .args(["--relay-user", "u", "--relay-password", "pw"])
        .args(["--sessions", "50", "--receivers-per-endpoint", "25"])
        .args(["--duration", "2", "--rate", "250", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut load = Guard(child);
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut most = 0;
    while load.0.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "msrp load did not finish");
        most = most.max(sockets_of(pid));
        std::thread::sleep(Duration::from_millis(10));
    }
    let Guard(c) = &mut load;
    let mut out = String::new();
    let mut err = String::new();
    std::io::Read::read_to_string(c.stdout.as_mut().unwrap(), &mut out).unwrap();
    std::io::Read::read_to_string(c.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert_eq!(
        c.wait().unwrap().code(),
        Some(0),
        "{out}\n{err}\nrelay:\n{}",
        relay.log()
    );
    let ev: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert_eq!(ev[0]["event"], "ready", "{ev:?}");
    assert_eq!(ev[0]["receiving_endpoints"], 2, "{ev:?}");
    let r = ev
        .iter()
        .find(|v| v["event"] == "result")
        .unwrap_or_else(|| panic!("no result: {out}\n{err}"));
    let sent = r["sent"].as_u64().unwrap();
    // 250/s for 2 s: every one of the 50 sessions sent (the rate is spread evenly).
    assert!((400..=560).contains(&sent), "{r}");
    assert_complete(r, sent, 1024);
    // Only the senders authenticated (wait for more to show up: none may).
    assert_eq!(
        relay.count_in_log("authenticated", 51),
        50,
        "{}",
        relay.log()
    );
    // 50 sender connections + 2 outbound to the receiving endpoints, over the listener(s).
    assert_eq!(most, base + 52, "relay sockets: {most}, listeners {base}");
    drop(relay);
}

#[test]
fn idle_connections_stay_authenticated_at_the_relay() {
    let dir = tempfile::tempdir().unwrap();
    let relay = start_relay(dir.path(), &["--max-connections-per-address", "1000"]);
    let o = run::msrp(&[
        "load",
        "--idle",
        "200",
        "--relay",
        &relay.uri(),
        "--relay-user",
        "u",
        "--relay-password",
        "pw",
        "--duration",
        "0.5",
        "--json",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let ev = events(&o);
    assert_eq!(ev[0]["event"], "idle_ready", "{ev:?}");
    assert_eq!(ev[0]["authenticated"], 200, "{ev:?}");
    let r = result_of(&o);
    assert_eq!(r["mode"], "idle");
    assert_eq!(r["authenticated"], 200, "{r}");
    assert_eq!(r["still_open"], 200, "{r}");
    assert_eq!(relay.count_in_log("authenticated", 200), 200);

    // The relay's per-address limit (default 32) refuses the rest: reported, exit 4.
    let dir2 = tempfile::tempdir().unwrap();
    let strict = start_relay(dir2.path(), &[]);
    let o = run::msrp(&[
        "load",
        "--idle",
        "40",
        "--relay",
        &strict.uri(),
        "--relay-user",
        "u",
        "--relay-password",
        "pw",
        "--duration",
        "0.2",
        "--timeout",
        "3",
        "--json",
    ]);
    assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
    let r = result_of(&o);
    assert!(r["failed"].as_u64().unwrap() >= 8, "{r}");
}

#[test]
fn non_test_addresses_are_refused_before_any_traffic() {
    for args in [
        &[
            "load",
            "--relay",
            "msrp://10.1.2.3:2855;tcp",
            "--relay-user",
            "u",
            "--relay-password",
            "p",
        ][..],
        &[
            "load",
            "--relay",
            "msrp://relay.example.com:2855;tcp",
            "--relay-user",
            "u",
            "--relay-password",
            "p",
        ][..],
        &["load", "--listen", "10.1.2.3"][..],
    ] {
        let o = run::msrp(args);
        assert_eq!(o.status.code(), Some(1), "{args:?}");
        let e = stderr(&o);
        assert!(e.contains("--allow-non-loopback"), "{args:?}: {e}");
    }
    // Bad values name their flag.
    for (args, flag) in [
        (&["load", "--size", "10"][..], "--size"),
        (&["load", "--count", "0"][..], "--count"),
        (&["load", "--rate=-1"][..], "--rate"),
        (
            &["load", "--relay-user", "u", "--relay-password", "p"][..],
            "--relay",
        ),
        (&["load", "--idle", "5"][..], "--relay"),
    ] {
        let o = run::msrp(args);
        assert_eq!(o.status.code(), Some(1), "{args:?}");
        assert!(stderr(&o).contains(flag), "{args:?}: {}", stderr(&o));
    }
}
