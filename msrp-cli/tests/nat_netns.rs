//! `msrp nat-check` through a real NAT: each test builds its own network namespaces
//!
//! ```text
//!   [in] 192.0.2.10 --veth-- 192.0.2.1 [rt] 203.0.113.1 --veth-- 203.0.113.2, .3 [out]
//!                                     iptables NAT                coturn (RFC 5780)
//! ```
//!
//! The router does either Linux MASQUERADE (a NAPT: endpoint-independent mapping as Linux
//! keeps the source port, address-and-port-dependent filtering by conntrack) or a one-to-one
//! NAT (SNAT + DNAT of the whole address: endpoint-independent mapping and filtering). The
//! inside UA runs `msrp nat-check` with `ip netns exec`; coturn runs outside on two
//! addresses. Needs root, iproute2, iptables and coturn: under `CI=true` a missing piece is a
//! failure, otherwise the test prints `skipped: ...`. Everything (processes, namespaces and
//! with them the veth pairs and NAT rules) is removed by a Drop guard, even on failure.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// Namespaces and processes of one test, torn down in `Drop`.
struct Topology {
    prefix: String,
    namespaces: Vec<String>,
    children: Vec<Child>,
    dir: tempfile::TempDir,
}

impl Drop for Topology {
    fn drop(&mut self) {
        for c in &mut self.children {
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

fn have(tool: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|p| p.join(tool).is_file()))
}

/// Root and the tools, or skip (fail under CI=true).
fn prerequisites() -> bool {
    let ci = std::env::var("CI").as_deref() == Ok("true");
    let mut missing: Vec<&str> = ["ip", "iptables", "turnserver", "ss"]
        .into_iter()
        .filter(|t| !have(t))
        .collect();
    let is_root = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false);
    if !is_root {
        missing.push("root privileges");
    }
    if missing.is_empty() {
        return true;
    }
    let msg = format!(
        "network-namespace NAT test needs {} (Debian packages iproute2, iptables, coturn)",
        missing.join(", ")
    );
    if ci {
        panic!("{msg}");
    }
    eprintln!("skipped: {msg}");
    false
}

fn run(cmd: &[&str]) {
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

/// What the router does.
#[derive(Clone, Copy, PartialEq)]
enum Nat {
    /// `iptables -t nat -A POSTROUTING -o <out> -j MASQUERADE`.
    Masquerade,
    /// SNAT 192.0.2.10 -> 203.0.113.1 and DNAT 203.0.113.1 -> 192.0.2.10: a full-cone NAT.
    OneToOne,
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

impl Topology {
    fn build(nat: Nat) -> Topology {
        // Interface names are limited to 15 bytes: keep the prefix short and unique.
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let prefix = format!("mn{}x{n}", std::process::id() % 100_000);
        let mut t = Topology {
            namespaces: Vec::new(),
            children: Vec::new(),
            dir: tempfile::tempdir().unwrap(),
            prefix: prefix.clone(),
        };
        let (ns_in, ns_rt, ns_out) = (t.ns("in"), t.ns("rt"), t.ns("out"));
        for ns in [&ns_in, &ns_rt, &ns_out] {
            run(&["ip", "netns", "add", ns]);
            t.namespaces.push(ns.clone());
            run(&["ip", "-n", ns, "link", "set", "lo", "up"]);
        }
        let (a, b, c, d) = (
            format!("{prefix}a"),
            format!("{prefix}b"),
            format!("{prefix}c"),
            format!("{prefix}d"),
        );
        // in <-> rt
        run(&["ip", "link", "add", &a, "type", "veth", "peer", "name", &b]);
        run(&["ip", "link", "set", &a, "netns", &ns_in]);
        run(&["ip", "link", "set", &b, "netns", &ns_rt]);
        // rt <-> out
        run(&["ip", "link", "add", &c, "type", "veth", "peer", "name", &d]);
        run(&["ip", "link", "set", &c, "netns", &ns_rt]);
        run(&["ip", "link", "set", &d, "netns", &ns_out]);

        run(&[
            "ip",
            "-n",
            &ns_in,
            "addr",
            "add",
            "192.0.2.10/24",
            "dev",
            &a,
        ]);
        run(&["ip", "-n", &ns_in, "link", "set", &a, "up"]);
        run(&[
            "ip",
            "-n",
            &ns_in,
            "route",
            "add",
            "default",
            "via",
            "192.0.2.1",
        ]);

        run(&["ip", "-n", &ns_rt, "addr", "add", "192.0.2.1/24", "dev", &b]);
        run(&[
            "ip",
            "-n",
            &ns_rt,
            "addr",
            "add",
            "203.0.113.1/24",
            "dev",
            &c,
        ]);
        run(&["ip", "-n", &ns_rt, "link", "set", &b, "up"]);
        run(&["ip", "-n", &ns_rt, "link", "set", &c, "up"]);
        run(&[
            "ip",
            "netns",
            "exec",
            &ns_rt,
            "sh",
            "-c",
            // /proc/sys/net is per network namespace; no dependency on procps' sysctl.
            "echo 1 > /proc/sys/net/ipv4/ip_forward",
        ]);
        let ipt = |rule: &[&str]| {
            let mut v = vec!["ip", "netns", "exec", &ns_rt, "iptables", "-t", "nat"];
            v.extend_from_slice(rule);
            run(&v);
        };
        match nat {
            Nat::Masquerade => ipt(&["-A", "POSTROUTING", "-o", &c, "-j", "MASQUERADE"]),
            Nat::OneToOne => {
                ipt(&[
                    "-A",
                    "POSTROUTING",
                    "-s",
                    "192.0.2.10",
                    "-o",
                    &c,
                    "-j",
                    "SNAT",
                    "--to-source",
                    "203.0.113.1",
                ]);
                ipt(&[
                    "-A",
                    "PREROUTING",
                    "-d",
                    "203.0.113.1",
                    "-i",
                    &c,
                    "-j",
                    "DNAT",
                    "--to-destination",
                    "192.0.2.10",
                ]);
            }
        }

        // The outside: two addresses for RFC 5780, no route back to 192.0.2.0/24 (only the
        // NAT's public address is reachable, as on the Internet).
        run(&[
            "ip",
            "-n",
            &ns_out,
            "addr",
            "add",
            "203.0.113.2/24",
            "dev",
            &d,
        ]);
        run(&[
            "ip",
            "-n",
            &ns_out,
            "addr",
            "add",
            "203.0.113.3/24",
            "dev",
            &d,
        ]);
        run(&["ip", "-n", &ns_out, "link", "set", &d, "up"]);
        t
    }

    fn ns(&self, role: &str) -> String {
        format!("{}{role}", self.prefix)
    }

    /// Starts coturn in the outside namespace on 203.0.113.2 and .3, ports 3478/3479, and
    /// waits until its UDP and TCP sockets are bound.
    fn start_coturn(&mut self) {
        let log = std::fs::File::create(self.dir.path().join("turnserver.log")).unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", &self.ns("out"), "turnserver"])
            .args(["-n", "--stun-only", "--no-cli", "--no-tls", "--no-dtls"])
            .args(["--log-file", "stdout", "--simple-log"])
            .args(["-L", "203.0.113.2", "-L", "203.0.113.3"])
            .args(["--listening-port", "3478", "--alt-listening-port", "3479"])
            .arg("--pidfile")
            .arg(self.dir.path().join("pid"))
            .arg("--db")
            .arg(self.dir.path().join("turndb"))
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("spawn turnserver");
        // `ip netns exec` execs turnserver, so this pid is turnserver's.
        self.children.push(child);
        let want = [
            "203.0.113.2:3478",
            "203.0.113.2:3479",
            "203.0.113.3:3478",
            "203.0.113.3:3479",
        ];
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let out = Command::new("ip")
                .args(["netns", "exec", &self.ns("out"), "ss", "-lntu"])
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&out.stdout);
            let udp = |a: &str| text.lines().any(|l| l.starts_with("udp") && l.contains(a));
            let tcp = |a: &str| text.lines().any(|l| l.starts_with("tcp") && l.contains(a));
            if want.iter().all(|a| udp(a) && tcp(a)) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "turnserver did not bind in the outside namespace:\n{text}\n{}",
                std::fs::read_to_string(self.dir.path().join("turnserver.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Runs `msrp` in the inside namespace, bounded in time; killed on timeout.
    fn msrp_inside(&mut self, args: &[&str]) -> Output {
        let bin = env!("CARGO_BIN_EXE_msrp");
        assert!(Path::new(bin).exists());
        let child = Command::new("ip")
            .args(["netns", "exec", &self.ns("in"), bin])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        self.children.push(child);
        let idx = self.children.len() - 1;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if self.children[idx].try_wait().unwrap().is_some() {
                let child = self.children.remove(idx);
                return child.wait_with_output().unwrap();
            }
            assert!(Instant::now() < deadline, "msrp {args:?} did not finish");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn json(out: &Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "exit {:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("one JSON object")
}

fn mapped(j: &serde_json::Value) -> SocketAddr {
    j["mapped_address"].as_str().unwrap().parse().unwrap()
}

#[test]
fn masquerade_nat_is_detected_over_udp_and_offers_active() {
    if !prerequisites() {
        return;
    }
    let mut t = Topology::build(Nat::Masquerade);
    t.start_coturn();
    let out = t.msrp_inside(&[
        "nat-check",
        "--stun",
        "203.0.113.2:3478",
        "--local",
        "192.0.2.10:40000",
        "--rto-ms",
        "20",
        "--json",
    ]);
    let j = json(&out);
    // The server saw the NAT's public address, not the inside one.
    assert_eq!(mapped(&j).ip().to_string(), "203.0.113.1", "{j}");
    assert_eq!(j["behind_nat"], true, "{j}");
    assert_eq!(j["offer_setup"], "active", "{j}");
    // Linux MASQUERADE keeps the source port for every destination (endpoint-independent
    // mapping, RFC 5780 §4.3 test II), while conntrack lets in only replies from the exact
    // address and port contacted (address-and-port-dependent filtering, §4.4 test III).
    assert_eq!(j["mapping"], "endpoint-independent", "{j}");
    assert_eq!(j["filtering"], "address-and-port-dependent", "{j}");
}

#[test]
fn masquerade_nat_mapping_tests_over_tcp() {
    if !prerequisites() {
        return;
    }
    let mut t = Topology::build(Nat::Masquerade);
    t.start_coturn();
    let out = t.msrp_inside(&[
        "nat-check",
        "--stun",
        "203.0.113.2:3478",
        "--tcp",
        "--local",
        "192.0.2.10:40001",
        "--rto-ms",
        "200",
        "--json",
    ]);
    let j = json(&out);
    assert_eq!(mapped(&j).ip().to_string(), "203.0.113.1", "{j}");
    assert_eq!(j["behind_nat"], true, "{j}");
    // Mapping tests II/III ran over new TCP connections from the same local port.
    assert_eq!(j["mapping"], "endpoint-independent", "{j}");
    assert_eq!(j["filtering"], "unknown", "{j}");
    assert_eq!(j["offer_setup"], "active", "{j}");
}

#[test]
fn one_to_one_nat_is_endpoint_independent_and_offers_actpass() {
    if !prerequisites() {
        return;
    }
    let mut t = Topology::build(Nat::OneToOne);
    t.start_coturn();
    let out = t.msrp_inside(&[
        "nat-check",
        "--stun",
        "203.0.113.2:3478",
        "--local",
        "192.0.2.10:40002",
        "--rto-ms",
        "20",
        "--json",
    ]);
    let j = json(&out);
    assert_eq!(mapped(&j).to_string(), "203.0.113.1:40002", "{j}");
    assert_eq!(j["behind_nat"], true, "{j}");
    assert_eq!(j["mapping"], "endpoint-independent", "{j}");
    assert_eq!(j["filtering"], "endpoint-independent", "{j}");
    // RFC 6135 §4.2.2: reachable at the mapped address, so actpass.
    assert_eq!(j["offer_setup"], "actpass", "{j}");
}
