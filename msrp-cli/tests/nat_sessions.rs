//! MSRP sessions through a real NAT (RFC 6135 §4.2.2, §5): `msrp offer` and `msrp answer`
//! processes in network namespaces that each test builds for itself,
//!
//! ```text
//!   [in] 192.0.2.10 --veth-- 192.0.2.1 [rt] 203.0.113.1 --veth-- 203.0.113.2, .3 [out]
//!   UA (auto)                         iptables NAT                coturn (RFC 5780), UA
//! ```
//!
//! with the router doing Linux MASQUERADE (endpoint-independent mapping,
//! address-and-port-dependent filtering: a peer's connection cannot get in) or a one-to-one
//! NAT (endpoint-independent mapping and filtering: reachable at the mapped address). The
//! inside UA runs with `--reachability auto --stun 203.0.113.2:3478`, so what it offers or
//! answers comes from STUN run from its listener's port. The SDP travels through files in the
//! test's directory (edited in transit for the RFC 4975 case). For the relayed RFC 4975 case an
//! `msrp relay` runs outside too (203.0.113.2:2855).
//!
//! Needs root, iproute2, iptables and coturn: under `CI=true` a missing piece fails the
//! test, otherwise it prints `skipped: ...`. Processes are killed and namespaces deleted by
//! Drop guards even when a test fails; every wait is bounded.

#[path = "common/netns.rs"]
mod netns;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use netns::{Nat, Side, Topology};
use serde_json::Value;
use sha2::{Digest, Sha256};

const STUN: &str = "203.0.113.2:3478";
/// Bound of every wait for a process or a file.
const LIMIT: Duration = Duration::from_secs(90);

/// An `msrp` process in a namespace, stdout and stderr in files; killed on drop.
struct Ua {
    name: String,
    child: Child,
    out: PathBuf,
    err: PathBuf,
    status: Option<ExitStatus>,
}

impl Drop for Ua {
    fn drop(&mut self) {
        if self.status.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl Ua {
    fn start(t: &Topology, side: Side, name: &str, args: &[String]) -> Ua {
        let dir = t.dir();
        let out = dir.join(format!("{name}.out"));
        let err = dir.join(format!("{name}.err"));
        // `ip netns exec` execs the program: the child's pid is msrp's, so kill() stops it.
        let child = Command::new("ip")
            .args(["netns", "exec", &t.ns(side), env!("CARGO_BIN_EXE_msrp")])
            .args(args)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(std::fs::File::create(&err).unwrap())
            .spawn()
            .expect("spawn msrp in a namespace");
        Ua {
            name: name.into(),
            child,
            out,
            err,
            status: None,
        }
    }

    fn try_wait(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.child.try_wait().unwrap();
        }
        self.status
    }

    /// Waits for the exit, at most `limit`.
    fn wait(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(s) = self.try_wait() {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "{} did not exit within {limit:?}\nstderr:\n{}",
                self.name,
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn stdout(&self) -> String {
        std::fs::read_to_string(&self.out).unwrap_or_default()
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.err).unwrap_or_default()
    }

    fn events(&self) -> Vec<Value> {
        self.stdout()
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                serde_json::from_str(l)
                    .unwrap_or_else(|e| panic!("{}: not JSON ({e}): {l}", self.name))
            })
            .collect()
    }
}

fn of_kind<'a>(events: &'a [Value], kind: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["event"] == kind).collect()
}

fn one<'a>(events: &'a [Value], kind: &str, who: &str) -> &'a Value {
    let v = of_kind(events, kind);
    assert_eq!(v.len(), 1, "{who}: one {kind} event: {events:?}");
    v[0]
}

/// Waits (bounded) until `path` exists and is non-empty; fails early if a UA exited.
fn wait_file(path: &Path, uas: &mut [&mut Ua]) -> String {
    let deadline = Instant::now() + LIMIT;
    loop {
        if let Ok(s) = std::fs::read_to_string(path) {
            if !s.is_empty() {
                return s;
            }
        }
        for u in uas.iter_mut() {
            if let Some(st) = u.try_wait() {
                panic!(
                    "{} exited ({st}) before {} appeared\nstderr:\n{}",
                    u.name,
                    path.display(),
                    u.stderr()
                );
            }
        }
        assert!(
            Instant::now() < deadline,
            "{} never appeared",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn write_atomic(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// Arguments of `msrp offer|answer` for one UA.
fn ua_args(
    cmd: &str,
    local_sdp: &Path,
    remote_sdp: &Path,
    listen: &str,
    reachability: &[&str],
    extra: &[&str],
) -> Vec<String> {
    let mut v: Vec<String> = vec![
        cmd.into(),
        "--json".into(),
        "--local-sdp".into(),
        local_sdp.to_str().unwrap().into(),
        "--remote-sdp".into(),
        remote_sdp.to_str().unwrap().into(),
        "--listen".into(),
        listen.into(),
    ];
    if !extra.contains(&"--timeout") {
        v.extend(["--timeout".to_string(), "20".to_string()]);
    }
    v.extend(reachability.iter().map(|s| s.to_string()));
    v.extend(extra.iter().map(|s| s.to_string()));
    v
}

/// `--reachability auto` against the outside coturn, with short STUN timers.
const AUTO: &[&str] = &[
    "--reachability",
    "auto",
    "--stun",
    STUN,
    "--stun-rto-ms",
    "20",
];

fn setup_of(sdp: &str) -> Option<&str> {
    sdp.lines()
        .find_map(|l| l.trim_end().strip_prefix("a=setup:"))
}

fn prerequisites() -> bool {
    netns::prerequisites(&["turnserver"])
}

fn topology(nat: Nat) -> Topology {
    let mut t = Topology::build(nat);
    t.start_coturn();
    t
}

fn check_exit(a: &mut Ua, b: &mut Ua, offer: &str, answer: &str) {
    let sa = a.wait(LIMIT);
    let sb = b.wait(LIMIT);
    assert!(
        sa.success() && sb.success(),
        "{} {sa}, {} {sb}\noffer:\n{offer}\nanswer:\n{answer}\n{} stderr:\n{}\n{} stderr:\n{}",
        a.name,
        b.name,
        a.name,
        a.stderr(),
        b.name,
        b.stderr()
    );
}

/// The nat event of an inside UA behind MASQUERADE: a NAT that filters, so active.
fn assert_masquerade_verdict(events: &[Value], who: &str) {
    let nat = one(events, "nat", who);
    assert_eq!(nat["behind_nat"], true, "{who}: {nat}");
    assert_eq!(nat["offer_setup"], "active", "{who}: {nat}");
    assert_eq!(
        nat["filtering"], "address-and-port-dependent",
        "{who}: {nat}"
    );
    assert!(
        nat["mapped_address"]
            .as_str()
            .unwrap()
            .starts_with("203.0.113.1:"),
        "{who}: {nat}"
    );
    assert!(
        nat["reason"].as_str().unwrap().contains("offer active"),
        "{who}: {nat}"
    );
}

fn message_bodies(events: &[Value]) -> Vec<String> {
    of_kind(events, "message")
        .iter()
        .filter_map(|m| m["body"].as_str().map(str::to_string))
        .collect()
}

/// Scenario 1: the inside UA with auto detects the MASQUERADE NAT, offers active, connects out
/// through the NAT, and chats and sends a file with a UA outside.
#[test]
fn inside_auto_offerer_behind_masquerade_offers_active_and_chats_and_sends_a_file() {
    if !prerequisites() {
        return;
    }
    let t = topology(Nat::Masquerade);
    let d = t.dir().to_path_buf();
    let (offer, answer) = (d.join("offer.sdp"), d.join("answer.sdp"));
    // 3 MiB of non-repeating bytes, sent in chunks.
    let file = d.join("payload.bin");
    let mut bytes = Vec::with_capacity(3 << 20);
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    while bytes.len() < 3 << 20 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        bytes.extend_from_slice(&x.to_le_bytes());
    }
    std::fs::write(&file, &bytes).unwrap();
    let want_sha = hex::encode(Sha256::digest(&bytes));
    let recv = d.join("recv");

    let mut inside = Ua::start(
        &t,
        Side::Inside,
        "inside",
        &ua_args(
            "offer",
            &offer,
            &answer,
            "192.0.2.10:0",
            AUTO,
            &[
                "--send",
                "hello from inside the NAT",
                "--send-file",
                file.to_str().unwrap(),
                "--count",
                "1",
            ],
        ),
    );
    let mut outside = Ua::start(
        &t,
        Side::Outside,
        "outside",
        &ua_args(
            "answer",
            &answer,
            &offer,
            "203.0.113.2:0",
            &["--reachability", "reachable"],
            &[
                "--send",
                "hello from outside",
                "--count",
                "2",
                "--recv-dir",
                recv.to_str().unwrap(),
            ],
        ),
    );
    let offer_sdp = wait_file(&offer, &mut [&mut inside, &mut outside]);
    let answer_sdp = wait_file(&answer, &mut [&mut inside, &mut outside]);
    check_exit(&mut inside, &mut outside, &offer_sdp, &answer_sdp);

    // RFC 6135 §4.2.2: behind a NAT that filters, the offer is active (port 9).
    assert_eq!(setup_of(&offer_sdp), Some("active"), "{offer_sdp}");
    assert!(offer_sdp.contains("m=message 9 TCP/MSRP"), "{offer_sdp}");
    let ei = inside.events();
    assert_eq!(ei[0]["event"], "nat", "{ei:?}");
    assert_masquerade_verdict(&ei, "inside");
    let ni = one(&ei, "negotiated", "inside");
    assert_eq!(ni["role"], "active", "{ni}");
    assert!(
        ni["connect_to"].as_str().unwrap().contains("203.0.113.2:"),
        "{ni}"
    );
    assert_eq!(message_bodies(&ei), ["hello from outside"], "{ei:?}");

    let eo = outside.events();
    assert_eq!(one(&eo, "negotiated", "outside")["role"], "passive");
    assert_eq!(message_bodies(&eo), ["hello from inside the NAT"], "{eo:?}");
    let file_msg = of_kind(&eo, "message")
        .into_iter()
        .find(|m| m["bytes"] == bytes.len())
        .unwrap_or_else(|| panic!("no {}-byte message: {eo:?}", bytes.len()));
    assert_eq!(file_msg["sha256"], want_sha.as_str(), "{file_msg}");
    // And it was saved whole.
    let saved: Vec<_> = std::fs::read_dir(&recv).unwrap().flatten().collect();
    assert_eq!(saved.len(), 1, "{saved:?}");
    let got = std::fs::read(saved[0].path()).unwrap();
    assert_eq!(hex::encode(Sha256::digest(&got)), want_sha);
    // The sender saw both of its messages acknowledged.
    assert_eq!(of_kind(&ei, "delivered").len(), 2, "{ei:?}");
}

/// Scenario 2: a UA outside offers actpass; the inside UA (auto, behind MASQUERADE) answers
/// active and connects out; the session works.
#[test]
fn outside_actpass_offer_is_answered_active_by_the_inside_auto_ua() {
    if !prerequisites() {
        return;
    }
    let t = topology(Nat::Masquerade);
    let d = t.dir().to_path_buf();
    let (offer, answer) = (d.join("offer.sdp"), d.join("answer.sdp"));
    let mut outside = Ua::start(
        &t,
        Side::Outside,
        "outside",
        &ua_args(
            "offer",
            &offer,
            &answer,
            "203.0.113.2:0",
            &["--reachability", "reachable"],
            &["--send", "offer from outside", "--count", "1"],
        ),
    );
    let offer_sdp = wait_file(&offer, &mut [&mut outside]);
    let mut inside = Ua::start(
        &t,
        Side::Inside,
        "inside",
        &ua_args(
            "answer",
            &answer,
            &offer,
            "192.0.2.10:0",
            AUTO,
            &["--send", "answer from inside", "--count", "1"],
        ),
    );
    let answer_sdp = wait_file(&answer, &mut [&mut inside, &mut outside]);
    check_exit(&mut outside, &mut inside, &offer_sdp, &answer_sdp);

    assert_eq!(setup_of(&offer_sdp), Some("actpass"), "{offer_sdp}");
    assert_eq!(setup_of(&answer_sdp), Some("active"), "{answer_sdp}");
    let ei = inside.events();
    assert_masquerade_verdict(&ei, "inside");
    let ni = one(&ei, "negotiated", "inside");
    assert_eq!(ni["role"], "active", "{ni}");
    assert!(ni["warnings"].as_array().unwrap().is_empty(), "{ni}");
    assert_eq!(message_bodies(&ei), ["offer from outside"], "{ei:?}");
    let eo = outside.events();
    assert_eq!(one(&eo, "negotiated", "outside")["role"], "passive");
    assert_eq!(message_bodies(&eo), ["answer from inside"], "{eo:?}");
}

/// Scenario 3 (first half): the outside UA follows RFC 4975 (its offer has no a=setup, so the
/// offerer connects and the answerer must accept). Behind MASQUERADE the inside answerer
/// cannot be reached: it warns, then fails saying traversal needs a relay (RFC 6135 §5).
#[test]
fn rfc4975_offer_to_an_inside_ua_fails_and_says_a_relay_is_needed() {
    if !prerequisites() {
        return;
    }
    let t = topology(Nat::Masquerade);
    let d = t.dir().to_path_buf();
    let (raw, offer, answer) = (
        d.join("offer.raw.sdp"),
        d.join("offer.sdp"),
        d.join("answer.sdp"),
    );
    let timeout = ["--timeout", "5"];
    let mut outside = Ua::start(
        &t,
        Side::Outside,
        "outside",
        &ua_args(
            "offer",
            &raw,
            &answer,
            "203.0.113.2:0",
            &["--reachability", "reachable"],
            &[&["--send", "rfc 4975 offer", "--count", "1"][..], &timeout].concat(),
        ),
    );
    let raw_sdp = wait_file(&raw, &mut [&mut outside]);
    // An RFC 4975 UA: no a=setup at all.
    let offer_sdp: String = raw_sdp
        .split_inclusive('\n')
        .filter(|l| !l.starts_with("a=setup:"))
        .collect();
    assert!(setup_of(&offer_sdp).is_none());
    write_atomic(&offer, &offer_sdp);
    let mut inside = Ua::start(
        &t,
        Side::Inside,
        "inside",
        &ua_args(
            "answer",
            &answer,
            &offer,
            "192.0.2.10:0",
            AUTO,
            &[&["--send", "never sent", "--count", "1"][..], &timeout].concat(),
        ),
    );
    let answer_sdp = wait_file(&answer, &mut [&mut inside]);
    let si = inside.wait(LIMIT);
    let so = outside.wait(LIMIT);
    let err = inside.stderr();
    // Shown with --nocapture: what a user sees.
    eprintln!("inside UA stderr:\n{err}");
    assert!(!si.success(), "inside must fail\n{err}");
    assert!(!so.success(), "outside must fail\n{}", outside.stderr());
    // The inside UA says clearly why: a relay is needed.
    assert!(
        err.contains("NAT traversal needs an MSRP relay"),
        "inside stderr:\n{err}\nanswer:\n{answer_sdp}"
    );
    assert!(err.contains("RFC 6135 §5"), "{err}");
    // ... and what to do about it: the flags that make the relayed variant below work.
    assert!(
        err.contains("--relay URI")
            && err.contains("--relay-user")
            && err.contains("--relay-password"),
        "{err}"
    );
    let ei = inside.events();
    assert_masquerade_verdict(&ei, "inside");
    let ni = one(&ei, "negotiated", "inside");
    assert_eq!(ni["role"], "passive", "{ni}");
    assert!(ni["remote_setup"].is_null(), "{ni}");
    assert!(
        ni["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w.as_str().unwrap().contains("RFC 6135 §5")),
        "{ni}"
    );
    assert!(of_kind(&ei, "connected").is_empty(), "{ei:?}");
    // The outside offerer could not reach the inside address it was given.
    assert!(of_kind(&outside.events(), "connected").is_empty());
}

/// Scenario 3 (second half): the same RFC 4975 offer from outside (no a=setup: the offerer
/// connects), but the inside UA (auto, behind the same MASQUERADE NAT) uses an `msrp relay`
/// running outside (RFC 4976, RFC 6135 §4.5). It authenticates to the relay through the NAT
/// before answering, its a=path starts with the relay's Use-Path, so the outside offerer
/// connects to the relay, and the relay forwards over the connection the inside UA opened:
/// chat both ways and a file arrive whole.
#[test]
fn rfc4975_offer_to_an_inside_ua_behind_an_msrp_relay_succeeds() {
    if !prerequisites() {
        return;
    }
    let mut t = topology(Nat::Masquerade);
    let d = t.dir().to_path_buf();
    let relay_addr = format!("{}:2855", netns::OUTSIDE);
    let relay_uri = format!("msrp://{relay_addr};tcp");
    let users = d.join("users");
    std::fs::write(
        &users,
        hash_password("inside-user", "inside-pw", "relay.test"),
    )
    .unwrap();
    t.spawn(
        Side::Outside,
        "relay",
        env!("CARGO_BIN_EXE_msrp"),
        &[
            "relay",
            "--listen",
            &relay_addr,
            "--realm",
            "relay.test",
            "--users",
            users.to_str().unwrap(),
        ],
    );
    t.wait_listening(
        Side::Outside,
        &[&relay_addr],
        false,
        true,
        Duration::from_secs(20),
    );

    let file = d.join("photo.bin");
    let bytes: Vec<u8> = (0..300_000u32).map(|i| (i * 7 + i / 251) as u8).collect();
    std::fs::write(&file, &bytes).unwrap();
    let want_sha = hex::encode(Sha256::digest(&bytes));
    let (raw, offer, answer) = (
        d.join("offer.raw.sdp"),
        d.join("offer.sdp"),
        d.join("answer.sdp"),
    );
    let mut outside = Ua::start(
        &t,
        Side::Outside,
        "outside",
        &ua_args(
            "offer",
            &raw,
            &answer,
            "203.0.113.2:0",
            &["--reachability", "reachable"],
            &[
                "--send",
                "rfc 4975 offer from outside",
                "--send-file",
                file.to_str().unwrap(),
                "--count",
                "1",
            ],
        ),
    );
    let raw_sdp = wait_file(&raw, &mut [&mut outside]);
    let offer_sdp: String = raw_sdp
        .split_inclusive('\n')
        .filter(|l| !l.starts_with("a=setup:"))
        .collect();
    assert!(setup_of(&offer_sdp).is_none());
    write_atomic(&offer, &offer_sdp);
    let recv = d.join("recv");
    let mut inside = Ua::start(
        &t,
        Side::Inside,
        "inside",
        &ua_args(
            "answer",
            &answer,
            &offer,
            "192.0.2.10:0",
            AUTO,
            &[
                "--relay",
                &relay_uri,
                "--relay-user",
                "inside-user",
                "--relay-password",
                "inside-pw",
                "--send",
                "answer from inside via the relay",
                "--count",
                "2",
                "--recv-dir",
                recv.to_str().unwrap(),
            ],
        ),
    );
    let answer_sdp = wait_file(&answer, &mut [&mut inside, &mut outside]);
    let (si, so) = (inside.wait(LIMIT), outside.wait(LIMIT));
    assert!(
        si.success() && so.success(),
        "inside {si}, outside {so}\noffer:\n{offer_sdp}\nanswer:\n{answer_sdp}\ninside stderr:\n{}\noutside stderr:\n{}\nrelay:\n{}",
        inside.stderr(),
        outside.stderr(),
        t.log("relay")
    );

    let ei = inside.events();
    assert_masquerade_verdict(&ei, "inside");
    // RFC 4976 §5.1: authenticated through the NAT; the Use-Path names the relay and opens
    // the answer's a=path, followed by the inside UA's own URI.
    let auth = one(&ei, "authenticated", "inside");
    let use_path: Vec<&str> = auth["use_path"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(use_path.len(), 1, "{auth}");
    assert!(
        use_path[0].starts_with(&format!("msrp://{relay_addr}/")),
        "{auth}"
    );
    let path_line = answer_sdp
        .lines()
        .find(|l| l.starts_with("a=path:"))
        .unwrap_or_else(|| panic!("{answer_sdp}"));
    let path: Vec<&str> = path_line["a=path:".len()..].split_whitespace().collect();
    assert_eq!(path.len(), 2, "{path_line}");
    assert_eq!(path[0], use_path[0], "{path_line}");
    // The RFC 4975 roles stand: the inside answerer is passive, yet it is connected (to its
    // relay) and the outside offerer connected to the relay, not to the NAT.
    let ni = one(&ei, "negotiated", "inside");
    assert_eq!(ni["role"], "passive", "{ni}");
    assert!(ni["remote_setup"].is_null(), "{ni}");
    // With a relay the RFC 6135 §5 warning (no traversal) does not apply.
    assert!(
        !ni["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w.as_str().unwrap().contains("RFC 6135 §5")),
        "{ni}"
    );
    let ci = one(&ei, "connected", "inside");
    assert_eq!(ci["connect_to"], use_path[0], "{ci}");
    let eo = outside.events();
    let no = one(&eo, "negotiated", "outside");
    assert_eq!(no["role"], "active", "{no}");
    assert_eq!(no["connect_to"], use_path[0], "{no}");
    // Chat both ways and the file, whole.
    assert!(
        message_bodies(&ei).contains(&"rfc 4975 offer from outside".to_string()),
        "{ei:?}"
    );
    assert_eq!(
        message_bodies(&eo),
        ["answer from inside via the relay"],
        "{eo:?}"
    );
    let file_msg = of_kind(&ei, "message")
        .into_iter()
        .find(|m| m["bytes"] == bytes.len())
        .unwrap_or_else(|| panic!("no {}-byte message: {ei:?}", bytes.len()));
    assert_eq!(file_msg["sha256"], want_sha.as_str(), "{file_msg}");
    let saved: Vec<_> = std::fs::read_dir(&recv).unwrap().flatten().collect();
    assert_eq!(saved.len(), 1, "{saved:?}");
    assert_eq!(
        hex::encode(Sha256::digest(std::fs::read(saved[0].path()).unwrap())),
        want_sha
    );
    assert_eq!(of_kind(&eo, "delivered").len(), 2, "{eo:?}");
    assert_eq!(of_kind(&ei, "delivered").len(), 1, "{ei:?}");
}

/// `msrp relay hash-password` output (the users-file lines) for `user` in `realm`.
fn hash_password(user: &str, pw: &str, realm: &str) -> String {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_msrp"))
        .args(["relay", "hash-password", "--user", user, "--realm", realm])
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
    assert!(out.status.success(), "hash-password {:?}", out.status);
    String::from_utf8(out.stdout).unwrap()
}

/// Scenario 4: a one-to-one NAT (endpoint-independent mapping and filtering): the inside UA
/// offers actpass with its mapped address, and the outside UA (which only connects out, so it
/// answers active) connects to that address through the NAT.
#[test]
fn one_to_one_nat_inside_offers_actpass_with_mapped_address_and_is_reached() {
    if !prerequisites() {
        return;
    }
    let t = topology(Nat::OneToOne);
    let d = t.dir().to_path_buf();
    let (offer, answer) = (d.join("offer.sdp"), d.join("answer.sdp"));
    let mut inside = Ua::start(
        &t,
        Side::Inside,
        "inside",
        &ua_args(
            "offer",
            &offer,
            &answer,
            "192.0.2.10:0",
            AUTO,
            &["--send", "reached through the NAT", "--count", "1"],
        ),
    );
    let mut outside = Ua::start(
        &t,
        Side::Outside,
        "outside",
        &ua_args(
            "answer",
            &answer,
            &offer,
            "203.0.113.2:0",
            &["--reachability", "behind-nat"],
            &["--send", "connected in from outside", "--count", "1"],
        ),
    );
    let offer_sdp = wait_file(&offer, &mut [&mut inside, &mut outside]);
    let answer_sdp = wait_file(&answer, &mut [&mut inside, &mut outside]);
    check_exit(&mut inside, &mut outside, &offer_sdp, &answer_sdp);

    let ei = inside.events();
    let nat = one(&ei, "nat", "inside");
    assert_eq!(nat["behind_nat"], true, "{nat}");
    assert_eq!(nat["mapping"], "endpoint-independent", "{nat}");
    assert_eq!(nat["filtering"], "endpoint-independent", "{nat}");
    assert_eq!(nat["offer_setup"], "actpass", "{nat}");
    let mapped = nat["mapped_address"].as_str().unwrap().to_string();
    assert!(mapped.starts_with("203.0.113.1:"), "{nat}");
    assert_eq!(nat["advertised"], mapped.as_str(), "{nat}");
    // RFC 6135 §4.2.2: actpass, and the mapped address in c=, m= and a=path.
    let port = mapped.rsplit_once(':').unwrap().1;
    assert_eq!(setup_of(&offer_sdp), Some("actpass"), "{offer_sdp}");
    assert!(offer_sdp.contains("c=IN IP4 203.0.113.1"), "{offer_sdp}");
    assert!(
        offer_sdp.contains(&format!("m=message {port} TCP/MSRP")),
        "{offer_sdp}"
    );
    assert!(
        offer_sdp.contains(&format!("a=path:msrp://{mapped}/")),
        "{offer_sdp}"
    );
    assert!(!offer_sdp.contains("192.0.2.10"), "{offer_sdp}");

    assert_eq!(setup_of(&answer_sdp), Some("active"), "{answer_sdp}");
    let ni = one(&ei, "negotiated", "inside");
    assert_eq!(ni["role"], "passive", "{ni}");
    let eo = outside.events();
    let no = one(&eo, "negotiated", "outside");
    assert_eq!(no["role"], "active", "{no}");
    assert!(
        no["connect_to"]
            .as_str()
            .unwrap()
            .starts_with(&format!("msrp://{mapped}/")),
        "{no}"
    );
    // The outside UA's connection reached the inside listener: messages both ways.
    assert_eq!(message_bodies(&ei), ["connected in from outside"], "{ei:?}");
    assert_eq!(message_bodies(&eo), ["reached through the NAT"], "{eo:?}");
}
