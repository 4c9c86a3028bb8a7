//! Network-namespace NAT topologies for tests (root only).
//!
//! ```text
//!   [in] 192.0.2.10 --veth-- 192.0.2.1 [rt] 203.0.113.1 --veth-- 203.0.113.2, .3 [out]
//!                                     iptables NAT
//! ```
//!
//! [`Topology::build`] creates three namespaces with unique names, the two veth pairs, the
//! addresses and routes, and the router's NAT rules ([`Nat`]). The outside has no route to
//! 192.0.2.0/24 when there is a NAT (only the NAT's public address 203.0.113.1 is reachable,
//! as on the Internet). Processes started with [`Topology::spawn`] (or [`Topology::run`],
//! bounded in time) run in a namespace via `ip netns exec`; they are killed, and the
//! namespaces deleted (taking the veth pairs and NAT rules with them), when the `Topology` is
//! dropped, including when the test panics.
//!
//! Meant for the NAT tests of `msrp nat-check` and for MSRP session scenarios through a NAT
//! (start `msrp` UAs inside and outside, coturn or an `msrp relay` outside).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// The inside host's address.
pub const INSIDE: &str = "192.0.2.10";
/// The router's inside address (the inside default gateway).
pub const ROUTER_INSIDE: &str = "192.0.2.1";
/// The router's outside address: the NAT's public address.
pub const NAT_PUBLIC: &str = "203.0.113.1";
/// The outside host's first address (coturn primary, peers, relays).
pub const OUTSIDE: &str = "203.0.113.2";
/// The outside host's second address (coturn's RFC 5780 alternate address).
pub const OUTSIDE_ALT: &str = "203.0.113.3";

/// What the router does between inside and outside.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nat {
    /// Plain routing, no NAT (the outside gets a route back to 192.0.2.0/24).
    None,
    /// `iptables -t nat -A POSTROUTING -o <out> -j MASQUERADE`: Linux NAPT. Measured:
    /// endpoint-independent mapping, address-and-port-dependent filtering.
    Masquerade,
    /// SNAT 192.0.2.10 -> 203.0.113.1 and DNAT 203.0.113.1 -> 192.0.2.10: a one-to-one
    /// ("full cone") NAT, endpoint-independent mapping and filtering.
    OneToOne,
}

/// Which namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The inside host (192.0.2.10).
    Inside,
    /// The router.
    Router,
    /// The outside host (203.0.113.2 and .3).
    Outside,
}

/// Root, `ip`, `iptables`, `ss` and the `extra` tools, or `false` after printing
/// `skipped: ...`; under `CI=true` a missing piece panics with the reason.
pub fn prerequisites(extra: &[&str]) -> bool {
    let ci = std::env::var("CI").as_deref() == Ok("true");
    let mut missing: Vec<String> = ["ip", "iptables", "ss"]
        .iter()
        .chain(extra)
        .filter(|t| which(t).is_none())
        .map(|t| t.to_string())
        .collect();
    let is_root = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false);
    if !is_root {
        missing.push("root privileges".to_string());
    }
    if missing.is_empty() {
        return true;
    }
    let msg = format!(
        "network-namespace test needs {} (Debian packages iproute2, iptables and the tools)",
        missing.join(", ")
    );
    if ci {
        panic!("{msg}");
    }
    eprintln!("skipped: {msg}");
    false
}

/// Finds a tool on PATH.
pub fn which(tool: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(tool))
            .find(|p| p.is_file())
    })
}

fn sh(cmd: &[&str]) {
    let out = Command::new(cmd[0])
        .args(&cmd[1..])
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// Namespaces and processes of one test, torn down in `Drop`.
pub struct Topology {
    prefix: String,
    namespaces: Vec<String>,
    children: Vec<(String, Child)>,
    dir: tempfile::TempDir,
}

impl Drop for Topology {
    fn drop(&mut self) {
        for (_, c) in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        for ns in &self.namespaces {
            let _ = Command::new("ip")
                .args(["netns", "del", ns])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

impl Topology {
    /// Builds the three namespaces with `nat` on the router. Call [`prerequisites`] first.
    pub fn build(nat: Nat) -> Topology {
        // Interface names are limited to 15 bytes: keep the prefix short and unique per
        // process and test.
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let prefix = format!("mn{}x{n}", std::process::id() % 100_000);
        let mut t = Topology {
            namespaces: Vec::new(),
            children: Vec::new(),
            dir: tempfile::tempdir().expect("tempdir"),
            prefix: prefix.clone(),
        };
        let (ns_in, ns_rt, ns_out) = (t.ns(Side::Inside), t.ns(Side::Router), t.ns(Side::Outside));
        for ns in [&ns_in, &ns_rt, &ns_out] {
            sh(&["ip", "netns", "add", ns]);
            t.namespaces.push(ns.clone());
            sh(&["ip", "-n", ns, "link", "set", "lo", "up"]);
        }
        let (a, b, c, d) = (
            format!("{prefix}a"),
            format!("{prefix}b"),
            format!("{prefix}c"),
            format!("{prefix}d"),
        );
        // in <-> rt, rt <-> out
        sh(&["ip", "link", "add", &a, "type", "veth", "peer", "name", &b]);
        sh(&["ip", "link", "set", &a, "netns", &ns_in]);
        sh(&["ip", "link", "set", &b, "netns", &ns_rt]);
        sh(&["ip", "link", "add", &c, "type", "veth", "peer", "name", &d]);
        sh(&["ip", "link", "set", &c, "netns", &ns_rt]);
        sh(&["ip", "link", "set", &d, "netns", &ns_out]);

        sh(&[
            "ip",
            "-n",
            &ns_in,
            "addr",
            "add",
            &format!("{INSIDE}/24"),
            "dev",
            &a,
        ]);
        sh(&["ip", "-n", &ns_in, "link", "set", &a, "up"]);
        sh(&[
            "ip",
            "-n",
            &ns_in,
            "route",
            "add",
            "default",
            "via",
            ROUTER_INSIDE,
        ]);

        sh(&[
            "ip",
            "-n",
            &ns_rt,
            "addr",
            "add",
            &format!("{ROUTER_INSIDE}/24"),
            "dev",
            &b,
        ]);
        sh(&[
            "ip",
            "-n",
            &ns_rt,
            "addr",
            "add",
            &format!("{NAT_PUBLIC}/24"),
            "dev",
            &c,
        ]);
        sh(&["ip", "-n", &ns_rt, "link", "set", &b, "up"]);
        sh(&["ip", "-n", &ns_rt, "link", "set", &c, "up"]);
        // /proc/sys/net is per network namespace; no dependency on procps' sysctl.
        sh(&[
            "ip",
            "netns",
            "exec",
            &ns_rt,
            "sh",
            "-c",
            "echo 1 > /proc/sys/net/ipv4/ip_forward",
        ]);
        let ipt = |rule: &[&str]| {
            let mut v = vec!["ip", "netns", "exec", &ns_rt, "iptables", "-t", "nat"];
            v.extend_from_slice(rule);
            sh(&v);
        };
        match nat {
            Nat::None => {}
            Nat::Masquerade => ipt(&["-A", "POSTROUTING", "-o", &c, "-j", "MASQUERADE"]),
            Nat::OneToOne => {
                ipt(&[
                    "-A",
                    "POSTROUTING",
                    "-s",
                    INSIDE,
                    "-o",
                    &c,
                    "-j",
                    "SNAT",
                    "--to-source",
                    NAT_PUBLIC,
                ]);
                ipt(&[
                    "-A",
                    "PREROUTING",
                    "-d",
                    NAT_PUBLIC,
                    "-i",
                    &c,
                    "-j",
                    "DNAT",
                    "--to-destination",
                    INSIDE,
                ]);
            }
        }

        sh(&[
            "ip",
            "-n",
            &ns_out,
            "addr",
            "add",
            &format!("{OUTSIDE}/24"),
            "dev",
            &d,
        ]);
        sh(&[
            "ip",
            "-n",
            &ns_out,
            "addr",
            "add",
            &format!("{OUTSIDE_ALT}/24"),
            "dev",
            &d,
        ]);
        sh(&["ip", "-n", &ns_out, "link", "set", &d, "up"]);
        if nat == Nat::None {
            sh(&[
                "ip",
                "-n",
                &ns_out,
                "route",
                "add",
                "192.0.2.0/24",
                "via",
                NAT_PUBLIC,
            ]);
        }
        t
    }

    /// The namespace name of `side`.
    pub fn ns(&self, side: Side) -> String {
        let role = match side {
            Side::Inside => "in",
            Side::Router => "rt",
            Side::Outside => "out",
        };
        format!("{}{role}", self.prefix)
    }

    /// A per-test temporary directory (logs, files to send...).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Starts `program args` in `side`'s namespace, stdout and stderr to `<dir>/<name>.log`.
    /// The process is killed when the topology is dropped. Returns its index for
    /// [`wait_output`](Self::wait_output)-free use with [`child`](Self::child).
    pub fn spawn(&mut self, side: Side, name: &str, program: &str, args: &[&str]) -> usize {
        let log = std::fs::File::create(self.dir.path().join(format!("{name}.log"))).unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", &self.ns(side), program])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {program} in {side:?}: {e}"));
        // `ip netns exec` execs the program, so this pid is the program's.
        self.children.push((name.to_string(), child));
        self.children.len() - 1
    }

    /// A spawned process.
    pub fn child(&mut self, idx: usize) -> &mut Child {
        &mut self.children[idx].1
    }

    /// The log of a process started with [`spawn`](Self::spawn).
    pub fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("{name}.log"))).unwrap_or_default()
    }

    /// Runs `program args` in `side`'s namespace to completion, bounded by `limit` (killed
    /// and the test failed beyond it), capturing stdout and stderr.
    pub fn run(&mut self, side: Side, program: &str, args: &[&str], limit: Duration) -> Output {
        let child = Command::new("ip")
            .args(["netns", "exec", &self.ns(side), program])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {program} in {side:?}: {e}"));
        self.children.push((program.to_string(), child));
        let idx = self.children.len() - 1;
        let deadline = Instant::now() + limit;
        loop {
            if self.children[idx].1.try_wait().unwrap().is_some() {
                let (_, child) = self.children.remove(idx);
                return child.wait_with_output().unwrap();
            }
            assert!(
                Instant::now() < deadline,
                "{program} {args:?} in {side:?} did not finish within {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until `ss -lntu` in `side` shows every `addrs` entry ("ip:port") bound for
    /// `udp` and/or `tcp`, up to `limit`.
    pub fn wait_listening(
        &self,
        side: Side,
        addrs: &[&str],
        udp: bool,
        tcp: bool,
        limit: Duration,
    ) {
        let deadline = Instant::now() + limit;
        loop {
            let out = Command::new("ip")
                .args(["netns", "exec", &self.ns(side), "ss", "-lntu"])
                .output()
                .expect("ss");
            let text = String::from_utf8_lossy(&out.stdout);
            let has = |proto: &str, a: &str| {
                text.lines()
                    .any(|l| l.starts_with(proto) && l.split_whitespace().any(|w| w == a))
            };
            if addrs
                .iter()
                .all(|a| (!udp || has("udp", a)) && (!tcp || has("tcp", a)))
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{addrs:?} not listening in {side:?} after {limit:?}:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Starts coturn (`turnserver --stun-only`) outside on 203.0.113.2 and .3, ports 3478 and
    /// 3479 (RFC 5780 OTHER-ADDRESS), and waits until its UDP and TCP sockets are bound.
    pub fn start_coturn(&mut self) {
        let pid = self.dir.path().join("turnserver.pid");
        let db = self.dir.path().join("turndb");
        let (pid, db) = (pid.to_str().unwrap(), db.to_str().unwrap());
        self.spawn(
            Side::Outside,
            "turnserver",
            "turnserver",
            &[
                "-n",
                "--stun-only",
                "--no-cli",
                "--no-tls",
                "--no-dtls",
                "--log-file",
                "stdout",
                "--simple-log",
                "-L",
                OUTSIDE,
                "-L",
                OUTSIDE_ALT,
                "--listening-port",
                "3478",
                "--alt-listening-port",
                "3479",
                "--pidfile",
                pid,
                "--db",
                db,
            ],
        );
        let want = [
            format!("{OUTSIDE}:3478"),
            format!("{OUTSIDE}:3479"),
            format!("{OUTSIDE_ALT}:3478"),
            format!("{OUTSIDE_ALT}:3479"),
        ];
        let want: Vec<&str> = want.iter().map(String::as_str).collect();
        let deadline = Instant::now() + Duration::from_secs(15);
        // Check the process is alive while waiting, for a clear message if it died.
        while Instant::now() < deadline {
            if let Some((_, c)) = self.children.iter_mut().find(|(n, _)| n == "turnserver") {
                if let Ok(Some(status)) = c.try_wait() {
                    panic!(
                        "turnserver exited with {status}:\n{}",
                        self.log("turnserver")
                    );
                }
            }
            let out = Command::new("ip")
                .args(["netns", "exec", &self.ns(Side::Outside), "ss", "-lntu"])
                .output()
                .expect("ss");
            let text = String::from_utf8_lossy(&out.stdout);
            let ok = want.iter().all(|a| {
                ["udp", "tcp"].iter().all(|p| {
                    text.lines()
                        .any(|l| l.starts_with(p) && l.split_whitespace().any(|w| w == *a))
                })
            });
            if ok {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "turnserver did not bind in the outside namespace:\n{}",
            self.log("turnserver")
        );
    }
}
