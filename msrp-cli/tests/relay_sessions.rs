//! `msrp offer` / `msrp answer` behind an `msrp relay` (RFC 4976, RFC 6135 §4.5): the UA
//! authenticates to its relay before making its SDP, puts the Use-Path in a=path, and runs the
//! session over its connection to the relay whatever a=setup says. Every process is killed by
//! a Drop guard; every wait is bounded.

#[path = "common/pair.rs"]
mod pair;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pair::{of_kind, run_pair, Proc, Side};

const REALM: &str = "relay.test";
const LIMIT: Duration = Duration::from_secs(60);
const FROM_OFFERER: &str = "hello from behind the relay";
const FROM_ANSWERER: &str = "hello to the relayed offerer";

/// A running `msrp relay` (plain TCP, debug logs kept), killed on drop.
struct Relay {
    child: Child,
    port: u16,
    stderr: Arc<Mutex<String>>,
}

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Relay {
    fn uri(&self) -> String {
        format!("msrp://127.0.0.1:{};tcp", self.port)
    }
    fn log(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }
}

fn hash_password(user: &str, pw: &str) -> String {
    let mut child = Command::new(env!("CARGO_BIN_EXE_msrp"))
        .args(["relay", "hash-password", "--user", user, "--realm", REALM])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{pw}\n").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap()
}

fn start_relay(dir: &Path) -> Relay {
    std::fs::write(dir.join("users"), hash_password("alice", "alice-pw")).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_msrp"))
        .args([
            "relay",
            "--json",
            "--listen",
            "127.0.0.1:0",
            "--host",
            "127.0.0.1",
        ])
        .args(["--realm", REALM, "--users"])
        .arg(dir.join("users"))
        .env("RUST_LOG", "msrp=debug")
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    let err = Arc::new(Mutex::new(String::new()));
    let e2 = err.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            e2.lock().unwrap().push_str(&(line + "\n"));
        }
    });
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut relay = Relay {
        child,
        port: 0,
        stderr: err,
    };
    let line = rx
        .recv_timeout(Duration::from_secs(20))
        .unwrap_or_else(|_| panic!("relay did not report listening: {}", relay.log()));
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["event"], "listening", "{line}");
    let addr: std::net::SocketAddr = v["tcp"].as_str().unwrap().parse().unwrap();
    relay.port = addr.port();
    relay
}

/// RFC 6135 §4.5 end to end: the offerer behind the relay offers actpass, the answerer (behind
/// a NAT) answers active; the offerer still connects to its relay (the `connected` event names
/// it) but, being passive, sends no SEND of its own first: the first SEND the relay forwards
/// comes from the answerer. A text message goes each way and is acknowledged.
#[test]
fn offerer_behind_relay_passive_connects_to_relay_and_waits_for_the_first_send() {
    let dir = tempfile::tempdir().unwrap();
    let relay = start_relay(dir.path());
    let ruri = relay.uri();
    let offer = Side::new("reachable").args(&[
        "--relay",
        &ruri,
        "--relay-user",
        "alice",
        "--relay-password",
        "alice-pw",
        "--send",
        FROM_OFFERER,
        "--count",
        "1",
    ]);
    let answer = Side::new("behind-nat").args(&["--send", FROM_ANSWERER, "--count", "1"]);
    let mut p = run_pair(dir.path(), offer, answer, None, None, LIMIT);
    let so = p.offerer.wait(LIMIT);
    let sa = p.answerer.wait(LIMIT);
    assert!(
        so.success() && sa.success(),
        "offerer {so}, answerer {sa}\noffer:\n{}\nanswer:\n{}\noffer stderr:\n{}\nanswer stderr:\n{}\nrelay:\n{}",
        p.offer_sdp,
        p.answer_sdp,
        p.offerer.stderr(),
        p.answerer.stderr(),
        relay.log()
    );
    let (eo, ea) = (p.offerer.events(), p.answerer.events());
    // Authenticated before the SDP; the Use-Path is the relay's URI on our connection.
    let auth = of_kind(&eo, "authenticated");
    assert_eq!(auth.len(), 1, "{eo:?}");
    assert_eq!(eo[0]["event"], "authenticated", "{eo:?}");
    let use_path: Vec<&str> = auth[0]["use_path"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(use_path.len(), 1, "{use_path:?}");
    assert!(
        use_path[0].starts_with(&format!("msrp://127.0.0.1:{}/", relay.port)),
        "{use_path:?}"
    );
    assert!(auth[0]["expires"].is_u64(), "{}", auth[0]);
    // Our a=path: the Use-Path, then our own URI.
    let path_line = p
        .offer_sdp
        .lines()
        .find(|l| l.starts_with("a=path:"))
        .unwrap();
    let path: Vec<&str> = path_line["a=path:".len()..].split_whitespace().collect();
    assert_eq!(path.len(), 2, "{path_line}");
    assert_eq!(path[0], use_path[0], "{path_line}");
    assert!(p.offer_sdp.contains("a=setup:actpass"), "{}", p.offer_sdp);
    assert!(p.answer_sdp.contains("a=setup:active"), "{}", p.answer_sdp);
    // The offerer is passive yet connected to its relay.
    let no = of_kind(&eo, "negotiated")[0];
    assert_eq!(no["role"], "passive", "{no}");
    let co = of_kind(&eo, "connected")[0];
    assert_eq!(co["role"], "passive", "{co}");
    assert_eq!(co["connect_to"], use_path[0], "{co}");
    let ca = of_kind(&ea, "connected")[0];
    assert_eq!(ca["connect_to"], use_path[0], "{ca}");
    // Messages both ways, acknowledged.
    assert_eq!(of_kind(&eo, "message")[0]["body"], FROM_ANSWERER, "{eo:?}");
    assert_eq!(of_kind(&ea, "message")[0]["body"], FROM_OFFERER, "{ea:?}");
    for (ev, who) in [(&eo, "offerer"), (&ea, "answerer")] {
        assert_eq!(of_kind(ev, "delivered").len(), 1, "{who}: {ev:?}");
        assert!(of_kind(ev, "failed").is_empty(), "{who}: {ev:?}");
    }
    // The relay forwarded the answerer's binding SEND before any SEND from the offerer: the
    // offerer's connection (the one that authenticated as alice) receives the first SEND and
    // has sent none before it.
    let log = strip_ansi(&relay.log());
    let auth_line = log
        .lines()
        .find(|l| l.contains("authenticated") && l.contains("user=alice"))
        .unwrap_or_else(|| panic!("no AUTH in the relay log:\n{log}"));
    let conn = field(auth_line, "conn").unwrap_or_else(|| panic!("{auth_line}"));
    let sends: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("forwarded") && field(l, "method") == Some("SEND"))
        .collect();
    assert!(
        sends.len() >= 3,
        "binding SEND + one message each way:\n{log}"
    );
    assert_eq!(
        field(sends[0], "to"),
        Some(conn),
        "first SEND goes to the offerer:\n{log}"
    );
    assert_ne!(
        field(sends[0], "from"),
        Some(conn),
        "the passive offerer sent first:\n{log}"
    );
    assert!(
        sends.iter().any(|l| field(l, "from") == Some(conn)),
        "the offerer's message went through its relay connection:\n{log}"
    );
}

fn strip_ansi(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The value of `name=value` in a log line.
fn field<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(name)?.strip_prefix('='))
}

/// A wrong relay password is a clear failure before any SDP: non-zero exit, a message naming
/// the relay and its 403 (our relay's answer to wrong credentials), and no offer written.
#[test]
fn wrong_relay_password_fails_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let relay = start_relay(dir.path());
    let creds = dir.path().join("creds");
    std::fs::write(&creds, "alice:not-the-password\n").unwrap();
    let local = dir.path().join("offer.sdp");
    let args: Vec<String> = [
        "offer",
        "--local-sdp",
        local.to_str().unwrap(),
        "--remote-sdp",
        dir.path().join("answer.sdp").to_str().unwrap(),
        "--timeout",
        "10",
        "--relay",
        &relay.uri(),
        "--relay-credentials",
        creds.to_str().unwrap(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut p = Proc::msrp("offerer", dir.path(), &args, Stdio::null());
    let st = p.wait(LIMIT);
    assert!(!st.success(), "{st}");
    let err = p.stderr();
    assert!(
        err.contains("msrp: relay authentication failed")
            && err.contains(&relay.uri())
            && err.contains("403"),
        "{err}"
    );
    assert!(!local.exists(), "no SDP without the relay");
}

/// An unreachable relay is a clear failure, not a hang.
#[test]
fn unreachable_relay_fails_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let port = pair::free_port();
    let args: Vec<String> = [
        "answer",
        "--local-sdp",
        dir.path().join("answer.sdp").to_str().unwrap(),
        "--remote-sdp",
        dir.path().join("offer.sdp").to_str().unwrap(),
        "--timeout",
        "10",
        "--relay",
        &format!("msrp://127.0.0.1:{port};tcp"),
        "--relay-user",
        "alice",
        "--relay-password",
        "x",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut p = Proc::msrp("answerer", dir.path(), &args, Stdio::null());
    let st = p.wait(LIMIT);
    assert!(!st.success(), "{st}");
    let err = p.stderr();
    assert!(err.contains("could not connect"), "{err}");
}
