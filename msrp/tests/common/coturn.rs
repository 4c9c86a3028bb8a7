//! Starts a Debian `coturn` (`turnserver --stun-only`) on loopback for tests and stops it in
//! `Drop`.
//!
//! It listens on 127.0.0.1 and 127.0.0.2 (Linux routes all of 127/8 to `lo`), on a primary and
//! an alternate port (`--alt-listening-port`), which is what RFC 5780 needs for OTHER-ADDRESS
//! and CHANGE-REQUEST. Shared by the `msrp` and `msrp-cli` test suites.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running turnserver. Killed (and reaped) on drop, even when the test panics.
pub struct Coturn {
    child: Child,
    dir: tempfile::TempDir,
    /// Primary address (127.0.0.1, primary port).
    pub primary: SocketAddr,
    /// The RFC 5780 alternate address (127.0.0.2, alternate port).
    pub alternate: SocketAddr,
}

impl Drop for Coturn {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Finds `turnserver`. Missing: a clear failure under `CI=true`, else `None` (skip).
pub fn turnserver_path() -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("turnserver"))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("turnserver (Debian package coturn) is required for this test under CI=true");
        }
        eprintln!("skipped: turnserver (Debian package coturn) is not installed");
    }
    found
}

/// True if `port` is free for UDP and TCP on both loopback addresses.
fn port_free(port: u16) -> bool {
    ["127.0.0.1", "127.0.0.2"].iter().all(|ip| {
        let a: SocketAddr = format!("{ip}:{port}").parse().unwrap();
        UdpSocket::bind(a).is_ok() && TcpListener::bind(a).is_ok()
    })
}

/// Two distinct free ports (the kernel's choice for the first, bounded search for the
/// second).
fn free_ports() -> (u16, u16) {
    for _ in 0..50 {
        let p = UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let a = UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if p != a && port_free(p) && port_free(a) {
            return (p, a);
        }
    }
    panic!("no free port pair found for turnserver");
}

/// A minimal Binding request (our codec is what is under test elsewhere; this one is built by
/// hand so readiness does not depend on it).
fn probe_request() -> [u8; 20] {
    let mut r = [0u8; 20];
    r[1] = 0x01;
    r[4..8].copy_from_slice(&0x2112_A442u32.to_be_bytes());
    r[8..20].copy_from_slice(b"readinessprb");
    r
}

fn udp_ready(addr: SocketAddr) -> bool {
    let Ok(s) = UdpSocket::bind("127.0.0.1:0") else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(100)));
    if s.send_to(&probe_request(), addr).is_err() {
        return false;
    }
    let mut buf = [0u8; 1024];
    matches!(s.recv_from(&mut buf), Ok((n, _)) if n >= 20 && buf[0..2] == [0x01, 0x01])
}

fn tcp_ready(addr: SocketAddr) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(300)));
    if s.write_all(&probe_request()).is_err() {
        return false;
    }
    let mut buf = [0u8; 20];
    s.read_exact(&mut buf).is_ok() && buf[0..2] == [0x01, 0x01]
}

impl Coturn {
    /// Starts turnserver with RFC 5780 support (or without it when `rfc5780` is false:
    /// `--no-rfc5780`), waits until UDP and TCP answer on the primary and alternate
    /// addresses, or returns `None` when the tool is missing outside CI.
    pub fn start(rfc5780: bool) -> Option<Coturn> {
        let bin = turnserver_path()?;
        let mut last_log = String::new();
        // Bounded retries: a port may be taken between the check and turnserver's bind.
        for _attempt in 0..3 {
            let (port, alt) = free_ports();
            let dir = tempfile::tempdir().expect("tempdir");
            let log = std::fs::File::create(dir.path().join("turnserver.log")).expect("log file");
            let mut cmd = Command::new(&bin);
            cmd.args([
                "-n",
                "--stun-only",
                "--no-cli",
                "--no-tls",
                "--no-dtls",
                "--fingerprint",
            ])
            .args(["--log-file", "stdout", "--simple-log"])
            .args(["-L", "127.0.0.1", "-L", "127.0.0.2"])
            .args(["--listening-port", &port.to_string()])
            .args(["--alt-listening-port", &alt.to_string()])
            .arg("--pidfile")
            .arg(dir.path().join("turnserver.pid"))
            .arg("--db")
            .arg(dir.path().join("turndb"))
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone().expect("log fd")))
            .stderr(Stdio::from(log));
            if !rfc5780 {
                cmd.arg("--no-rfc5780");
            }
            let child = cmd.spawn().expect("spawn turnserver");
            let server = Coturn {
                child,
                dir,
                primary: format!("127.0.0.1:{port}").parse().unwrap(),
                alternate: format!("127.0.0.2:{alt}").parse().unwrap(),
            };
            let deadline = Instant::now() + Duration::from_secs(15);
            let mut ready = false;
            while Instant::now() < deadline {
                // Without RFC 5780 there is no alternate listener to wait for.
                ready = udp_ready(server.primary)
                    && tcp_ready(server.primary)
                    && (!rfc5780 || (udp_ready(server.alternate) && tcp_ready(server.alternate)));
                if ready {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            if ready {
                return Some(server);
            }
            last_log = server.log();
            drop(server);
        }
        panic!("turnserver did not become ready; last log:\n{last_log}");
    }

    /// The server's log so far (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("turnserver.log")).unwrap_or_default()
    }
}
