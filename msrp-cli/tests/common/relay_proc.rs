//! `msrp relay` processes for the CLI tests: a test CA and the relays' certificate for
//! `localhost`, a users file (HA1 hashes from `msrp relay hash-password`), relays listening on
//! free loopback ports (plain TCP and TLS) with their debug logs captured, killed on drop.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

/// Digest realm of the test relays.
pub const REALM: &str = "relay.test";
/// Users of the test relays, with their passwords.
pub const USERS: [(&str, &str); 3] = [
    ("alice", "alice-pw"),
    ("bob", "bob-pw"),
    ("carol", "carol-pw"),
];

/// A running `msrp relay`, killed (and reaped) on drop.
pub struct RelayProc {
    pub child: Child,
    pub tcp: Option<SocketAddr>,
    pub tls: Option<SocketAddr>,
    stderr: Arc<Mutex<String>>,
    pub name: String,
}

impl Drop for RelayProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl RelayProc {
    /// The relay's plain TCP URI (no session id, RFC 4976 §5.1).
    pub fn tcp_uri(&self) -> String {
        format!("msrp://localhost:{};tcp", self.tcp.unwrap().port())
    }
    /// The relay's TLS URI.
    pub fn tls_uri(&self) -> String {
        format!("msrps://localhost:{};tcp", self.tls.unwrap().port())
    }
    /// Its log (tracing at debug level, without colours).
    pub fn log(&self) -> String {
        strip_ansi(&self.stderr.lock().unwrap())
    }
}

/// Test CA, the relays' certificate for `localhost`, and the users file, in a temp dir.
pub struct Fixture {
    pub dir: tempfile::TempDir,
}

impl Fixture {
    pub fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        p.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        p.distinguished_name
            .push(rcgen::DnType::CommonName, "relay test CA");
        let ca = p.self_signed(&ca_key).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let mut p = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        p.extended_key_usages = vec![
            rcgen::ExtendedKeyUsagePurpose::ServerAuth,
            rcgen::ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let leaf = p.signed_by(&key, &ca, &ca_key).unwrap();
        std::fs::write(dir.path().join("ca.pem"), ca.pem()).unwrap();
        std::fs::write(dir.path().join("relay.pem"), leaf.pem()).unwrap();
        std::fs::write(dir.path().join("relay.key"), key.serialize_pem()).unwrap();
        let mut users = String::new();
        for (u, pw) in USERS {
            users.push_str(&hash_password(u, pw));
        }
        std::fs::write(dir.path().join("users"), users).unwrap();
        Fixture { dir }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The CA file the endpoints and the relays verify relay certificates with.
    pub fn ca(&self) -> String {
        self.path("ca.pem").display().to_string()
    }

    /// Starts a relay with plain TCP and TLS listeners on free loopback ports, as host
    /// `localhost`, verifying `msrps:` next hops against the test CA.
    pub fn start(&self, name: &str, extra: &[&str]) -> RelayProc {
        self.start_as(name, "localhost", extra)
    }

    /// [`start`](Self::start) with another host name in the issued URIs.
    pub fn start_as(&self, name: &str, host: &str, extra: &[&str]) -> RelayProc {
        let mut args: Vec<String> = vec![
            "relay".into(),
            "--json".into(),
            "--listen".into(),
            "127.0.0.1:0".into(),
            "--tls-listen".into(),
            "127.0.0.1:0".into(),
            "--host".into(),
            host.into(),
            "--realm".into(),
            REALM.into(),
        ];
        for (f, n) in [
            ("--cert", "relay.pem"),
            ("--key", "relay.key"),
            ("--users", "users"),
            ("--ca", "ca.pem"),
        ] {
            args.push(f.into());
            args.push(self.path(n).display().to_string());
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        spawn_relay(name, &args)
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

/// Starts `msrp` with `args` (a relay with `--json`) and waits (20 s at most) for its
/// `listening` event.
pub fn spawn_relay(name: &str, args: &[String]) -> RelayProc {
    let mut child = Command::new(env!("CARGO_BIN_EXE_msrp"))
        .args(args)
        .env("RUST_LOG", "msrp=debug")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    let err_text = Arc::new(Mutex::new(String::new()));
    let e2 = err_text.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            e2.lock().unwrap().push_str(&(line + "\n"));
        }
    });
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut proc = RelayProc {
        child,
        tcp: None,
        tls: None,
        stderr: err_text,
        name: name.to_string(),
    };
    let line = rx
        .recv_timeout(Duration::from_secs(20))
        .unwrap_or_else(|_| panic!("{name} did not report listening: {}", proc.log()));
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["event"], "listening", "{line}");
    proc.tcp = v["tcp"].as_str().map(|s| s.parse().unwrap());
    proc.tls = v["tls"].as_str().map(|s| s.parse().unwrap());
    proc
}

/// Removes ANSI colour sequences (in case the logger colours anyway).
pub fn strip_ansi(s: &str) -> String {
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
pub fn field<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(name)?.strip_prefix('='))
}

/// Resident memory of a process in KiB (`VmRSS` in `/proc/PID/status`).
pub fn rss_kib(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}
