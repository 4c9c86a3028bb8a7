//! Faults on the routed path of a [`Topology`](crate::netns::Topology) (issue 9, "Faults"),
//! and one `msrp offer` -> `msrp answer` exchange through it.
//!
//! - [`router_links`], [`shape`]: the router's two links, shaped with `tc tbf` so that a
//!   transfer of a few MiB lasts seconds.
//! - [`Loss`]: random packet loss with iptables `-m statistic --mode random` DROP rules in the
//!   router's FORWARD chain, one per direction, with counting rules in front so the test can
//!   say how many packets crossed and how many were dropped.
//! - [`DelayLine`]: a fixed one-way delay in the router. This kernel has no `sch_netem` (and no
//!   `sch_fq`/`sch_etf` for EDT pacing), so packets are routed through a TUN device (policy
//!   routing: whatever arrives on either router link goes to the TUN device), held for the
//!   delay by two threads of the test process, and written back into the router, which
//!   forwards them on. Order is kept (FIFO), the queue is bounded (tail drop, counted).
//! - [`start_exchange`] / [`finish`]: `msrp answer` inside receives, `msrp offer` outside sends
//!   a file and texts, every wait bounded, the JSON events of both collected.
//!
//! Everything is torn down with the topology (processes killed, namespaces deleted); the
//! delay line's TUN device and threads end when it is dropped.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, RecvTimeoutError, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::netns::{Side, Topology, INSIDE, OUTSIDE};

/// The router's interfaces other than `lo` and a [`DelayLine`]'s TUN device: its inside and
/// outside veth ends, inside first.
pub fn router_links(t: &Topology) -> Vec<String> {
    let out = Command::new("ip")
        .args(["-n", &t.ns(Side::Router), "-o", "link", "show"])
        .output()
        .unwrap();
    let links: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split(": ").nth(1))
        .map(|n| n.split('@').next().unwrap().to_string())
        .filter(|n| n != "lo" && !n.ends_with(DELAY_SUFFIX))
        .collect();
    assert_eq!(links.len(), 2, "router links: {links:?}");
    links
}

fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `ip -n <router> ARGS`.
pub fn ip_rt(t: &Topology, args: &[&str]) {
    run_ok(
        Command::new("ip")
            .args(["-n", &t.ns(Side::Router)])
            .args(args),
    );
}

/// `tc ARGS` in the router.
pub fn tc_rt(t: &Topology, args: &[&str]) {
    run_ok(
        Command::new("ip")
            .args(["netns", "exec", &t.ns(Side::Router), "tc"])
            .args(args),
    );
}

/// `iptables ARGS` in the router; its stdout.
pub fn iptables_rt(t: &Topology, args: &[&str]) -> String {
    run_ok(
        Command::new("ip")
            .args(["netns", "exec", &t.ns(Side::Router), "iptables"])
            .args(args),
    )
}

/// `tc tbf` at `rate` (e.g. "8mbit") on the egress of both router links: a transfer of a few
/// MiB then lasts seconds, and the queue (400 ms at most) drops what exceeds it.
pub fn shape(t: &Topology, rate: &str) {
    for l in router_links(t) {
        tc_rt(
            t,
            &[
                "qdisc", "add", "dev", &l, "root", "tbf", "rate", rate, "burst", "32kb", "latency",
                "400ms",
            ],
        );
    }
}

/// One TCP segment per packet from the inside and outside hosts (`gso_max_segs 1` on their
/// links): a veth passes 64 KiB GSO packets whole, and the router's FORWARD chain would drop
/// such a train of segments at once instead of single packets.
pub fn no_gso(t: &Topology) {
    for side in [Side::Inside, Side::Outside] {
        let ns = t.ns(side);
        let out = run_ok(Command::new("ip").args(["-n", &ns, "-o", "link", "show"]));
        for l in out
            .lines()
            .filter_map(|l| l.split(": ").nth(1))
            .map(|n| n.split('@').next().unwrap())
            .filter(|n| *n != "lo")
        {
            run_ok(Command::new("ip").args([
                "-n",
                &ns,
                "link",
                "set",
                "dev",
                l,
                "gso_max_segs",
                "1",
            ]));
        }
    }
}

/// Random loss in the router's FORWARD chain, per direction (by input link).
pub struct Loss {
    links: Vec<String>,
}

/// Packets seen and dropped in one direction.
#[derive(Debug, Clone, Copy, Default)]
pub struct LossCount {
    /// Packets that entered the router on this link to be forwarded.
    pub seen: u64,
    /// Of those, dropped by the random-loss rules.
    pub dropped: u64,
}

impl LossCount {
    /// Dropped / seen, in percent.
    pub fn percent(&self) -> f64 {
        if self.seen == 0 {
            0.0
        } else {
            self.dropped as f64 * 100.0 / self.seen as f64
        }
    }
}

impl Loss {
    /// Installs a counting rule for each direction (no loss yet).
    pub fn install(t: &Topology) -> Loss {
        let links = router_links(t);
        for l in &links {
            // A rule without a target only counts.
            iptables_rt(t, &["-A", "FORWARD", "-i", l]);
        }
        Loss { links }
    }

    /// Adds a DROP rule with `probability` (0..=1) for packets entering on each link, i.e. in
    /// both directions (rules add up: a second call drops a share of what the first let by).
    pub fn add(&self, t: &Topology, probability: f64) {
        let p = format!("{probability:.4}");
        for l in &self.links {
            iptables_rt(
                t,
                &[
                    "-A",
                    "FORWARD",
                    "-i",
                    l,
                    "-m",
                    "statistic",
                    "--mode",
                    "random",
                    "--probability",
                    &p,
                    "-j",
                    "DROP",
                ],
            );
        }
    }

    /// What each direction saw and dropped so far: `[inside -> outside, outside -> inside]`
    /// (the router's first link is the inside one, created first by `Topology::build`).
    pub fn counts(&self, t: &Topology) -> Vec<(String, LossCount)> {
        let text = iptables_rt(t, &["-L", "FORWARD", "-v", "-x", "-n"]);
        self.links
            .iter()
            .map(|l| {
                let mut c = LossCount::default();
                for line in text.lines() {
                    let w: Vec<&str> = line.split_whitespace().collect();
                    // pkts bytes target prot opt in out source destination [match]
                    let Some(pkts) = w.first().and_then(|p| p.parse::<u64>().ok()) else {
                        continue;
                    };
                    if !w.iter().any(|x| x == l) {
                        continue;
                    }
                    if w.get(2) == Some(&"DROP") && line.contains("statistic") {
                        c.dropped += pkts;
                    } else if !line.contains("DROP") {
                        c.seen += pkts;
                    }
                }
                (l.clone(), c)
            })
            .collect()
    }
}

/// What a [`DelayLine`] did.
#[derive(Debug, Default)]
pub struct DelayStats {
    /// Packets taken into the queue.
    pub held: AtomicU64,
    /// Packets held and forwarded.
    pub forwarded: AtomicU64,
    /// Packets dropped because the queue was full.
    pub dropped: AtomicU64,
}

/// A fixed one-way delay for every packet the router forwards, in both directions (see the
/// module doc). Dropping it stops the threads and deletes the TUN device.
pub struct DelayLine {
    name: String,
    ns: String,
    stop: Arc<AtomicBool>,
    reader: Option<JoinHandle<()>>,
    writer: Option<JoinHandle<()>>,
    /// Counters.
    pub stats: Arc<DelayStats>,
}

/// Most packets held at once (tail drop beyond, like a router queue): 8192 full-size packets
/// are 12 MiB, far more than the shaped links can have in flight.
const DELAY_QUEUE: usize = 8192;

/// The TUN device's name: the router namespace's name and this.
const DELAY_SUFFIX: &str = "dl";

impl DelayLine {
    /// Creates the TUN device (in this process's namespace, then moved into the router: its
    /// file descriptor stays ours), routes everything arriving on the router's links through
    /// it, and starts the threads that hold each packet `one_way` before writing it back.
    /// `None` (after printing why, or a panic under `CI=true`) when no TUN device can be made.
    pub fn install(t: &Topology, one_way: Duration) -> Option<DelayLine> {
        let ns = t.ns(Side::Router);
        // Interface names have at most 15 bytes; the router namespace's name is unique.
        let name = format!("{ns}{DELAY_SUFFIX}");
        assert!(name.len() <= 15, "{name}");
        let dev = match tun_rs::DeviceBuilder::new().name(&name).build_sync() {
            Ok(d) => Arc::new(d),
            Err(e) => {
                let msg = format!("cannot create the TUN device for the delay line: {e}");
                if std::env::var("CI").as_deref() == Ok("true") {
                    panic!("{msg}");
                }
                eprintln!("skipped: {msg}");
                return None;
            }
        };
        run_ok(Command::new("ip").args(["link", "set", &name, "netns", &ns]));
        let mut line = DelayLine {
            name: name.clone(),
            ns: ns.clone(),
            stop: Arc::new(AtomicBool::new(false)),
            reader: None,
            writer: None,
            stats: Arc::new(DelayStats::default()),
        };
        ip_rt(t, &["link", "set", &name, "up"]);
        // Packets written back come in on the TUN device with the original source address:
        // no reverse-path filter (the effective value is the maximum of `all` and the device).
        run_ok(Command::new("ip").args([
            "netns",
            "exec",
            &ns,
            "sh",
            "-c",
            "for f in /proc/sys/net/ipv4/conf/*/rp_filter; do echo 0 > $f; done",
        ]));
        ip_rt(
            t,
            &["route", "add", "default", "dev", &name, "table", "100"],
        );
        for l in router_links(t) {
            ip_rt(
                t,
                &["rule", "add", "iif", &l, "lookup", "100", "pref", "100"],
            );
        }

        let (tx, rx) = sync_channel::<(Instant, Vec<u8>)>(DELAY_QUEUE);
        let (rdev, rstop, rstats) = (dev.clone(), line.stop.clone(), line.stats.clone());
        line.reader = Some(std::thread::spawn(move || {
            let mut buf = vec![0u8; 65536];
            while !rstop.load(Ordering::Relaxed) {
                // Blocks; ends with an error when the device is deleted (see Drop).
                let Ok(n) = rdev.recv(&mut buf) else { break };
                match tx.try_send((Instant::now() + one_way, buf[..n].to_vec())) {
                    Ok(()) => {
                        rstats.held.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(TrySendError::Full(_)) => {
                        rstats.dropped.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(TrySendError::Disconnected(_)) => break,
                }
            }
        }));
        let (wstop, wstats) = (line.stop.clone(), line.stats.clone());
        line.writer = Some(std::thread::spawn(move || loop {
            match rx.recv_timeout(Duration::from_millis(100)) {
                Ok((due, packet)) => {
                    let now = Instant::now();
                    if due > now {
                        std::thread::sleep(due - now);
                    }
                    if dev.send(&packet).is_ok() {
                        wstats.forwarded.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    if wstop.load(Ordering::Relaxed) {
                        break;
                    }
                }
                Err(RecvTimeoutError::Disconnected) => break,
            }
        }));
        Some(line)
    }
}

impl Drop for DelayLine {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Deleting the device wakes the reader blocked in read(2) with an error.
        let _ = Command::new("ip")
            .args(["-n", &self.ns, "link", "del", &self.name])
            .output();
        if let Some(w) = self.writer.take() {
            let _ = w.join();
        }
        if let Some(r) = self.reader.take() {
            // Bounded: a reader that does not wake is left behind (it holds no process).
            let end = Instant::now() + Duration::from_secs(2);
            while !r.is_finished() && Instant::now() < end {
                std::thread::sleep(Duration::from_millis(10));
            }
            if r.is_finished() {
                let _ = r.join();
            }
        }
    }
}

/// Round-trip times measured by `ping` in ms.
#[derive(Debug, Clone, Copy)]
pub struct Rtt {
    /// Smallest.
    pub min: f64,
    /// Mean.
    pub avg: f64,
    /// Largest.
    pub max: f64,
    /// Replies received.
    pub received: u32,
}

/// `ping -c count` from `from` to `to` (bounded); panics if no reply came.
pub fn ping(t: &mut Topology, from: Side, to: &str, count: u32) -> Rtt {
    let c = count.to_string();
    let out = t.run(
        from,
        "ping",
        &["-n", "-q", "-c", &c, "-i", "0.2", "-W", "3", to],
        Duration::from_secs(u64::from(count) + 10),
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let received = text
        .lines()
        .find(|l| l.contains("received"))
        .and_then(|l| l.split(", ").nth(1))
        .and_then(|s| s.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    // rtt min/avg/max/mdev = 100.123/101.456/103.789/1.234 ms
    let v: Vec<f64> = text
        .lines()
        .find(|l| l.contains("min/avg/max"))
        .and_then(|l| l.split(" = ").nth(1))
        .map(|s| {
            s.split_whitespace()
                .next()
                .unwrap_or("")
                .split('/')
                .filter_map(|x| x.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    assert!(v.len() >= 3 && received > 0, "ping {to}: {text}");
    Rtt {
        min: v[0],
        avg: v[1],
        max: v[2],
        received,
    }
}

/// The JSON events of a log (lines with an `"event"` field).
pub fn events(log: &str) -> Vec<Value> {
    log.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v.get("event").is_some())
        .collect()
}

/// The events of one kind.
pub fn kind<'a>(ev: &'a [Value], k: &str) -> Vec<&'a Value> {
    ev.iter().filter(|e| e["event"] == k).collect()
}

/// Lowercase hex.
pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// SHA-256 of a file, lowercase hex.
pub fn sha256_file(p: &std::path::Path) -> String {
    hex(&Sha256::digest(std::fs::read(p).unwrap()))
}

/// One exchange under way: `msrp answer` inside, `msrp offer` outside.
pub struct Exchange {
    /// Index of the sender (`msrp offer`, outside; log "offer").
    pub sender: usize,
    /// Index of the receiver (`msrp answer`, inside; log "answer").
    pub receiver: usize,
    /// SHA-256 of the file sent (lowercase hex); empty without a file.
    pub file_sha: String,
    /// The file's size.
    pub file_bytes: usize,
    /// The texts sent, in order.
    pub texts: Vec<String>,
    /// Where the receiver saves the file.
    pub recv_dir: PathBuf,
    /// When the processes were started.
    pub started: Instant,
}

/// Starts the receiver (`--count` = everything sent) and the sender of `file_bytes` (none if
/// 0) and `texts`, both with `--timeout timeout`.
pub fn start_exchange(
    t: &mut Topology,
    file_bytes: usize,
    texts: &[String],
    timeout: u64,
) -> Exchange {
    let dir = t.dir().to_path_buf();
    let file = dir.join("payload.bin");
    // Not a short period: a misplaced or repeated segment would change the SHA-256.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let data: Vec<u8> = (0..file_bytes)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    std::fs::write(&file, &data).unwrap();
    let file_sha = if file_bytes > 0 {
        hex(&Sha256::digest(&data))
    } else {
        String::new()
    };
    let recv_dir = dir.join("recv");
    std::fs::create_dir_all(&recv_dir).unwrap();
    let msrp = env!("CARGO_BIN_EXE_msrp");
    let (offer_sdp, answer_sdp) = (dir.join("offer.sdp"), dir.join("answer.sdp"));
    let to = timeout.to_string();
    let count = (texts.len() + usize::from(file_bytes > 0)).to_string();
    let listen_out = format!("{OUTSIDE}:0");
    let listen_in = format!("{INSIDE}:0");
    let receiver = t.spawn(
        Side::Inside,
        "answer",
        msrp,
        &[
            "answer",
            "--json",
            "--listen",
            &listen_in,
            "--local-sdp",
            answer_sdp.to_str().unwrap(),
            "--remote-sdp",
            offer_sdp.to_str().unwrap(),
            "--recv-dir",
            recv_dir.to_str().unwrap(),
            "--count",
            &count,
            "--timeout",
            &to,
        ],
    );
    let mut args: Vec<String> = [
        "offer",
        "--json",
        "--listen",
        &listen_out,
        "--local-sdp",
        offer_sdp.to_str().unwrap(),
        "--remote-sdp",
        answer_sdp.to_str().unwrap(),
        "--timeout",
        &to,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    if file_bytes > 0 {
        args.push("--send-file".into());
        args.push(file.to_str().unwrap().into());
    }
    for tx in texts {
        args.push("--send".into());
        args.push(tx.clone());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let sender = t.spawn(Side::Outside, "offer", msrp, &args);
    Exchange {
        sender,
        receiver,
        file_sha,
        file_bytes,
        texts: texts.to_vec(),
        recv_dir,
        started: Instant::now(),
    }
}

/// Waits (at most `limit`) until the sender has printed a `sending` event; panics with both
/// logs if it ends first or the limit passes.
pub fn wait_sending(t: &mut Topology, x: &Exchange, limit: Duration) {
    wait_sender_event(t, x, "sending", limit);
}

/// Waits (at most `limit`) until the sender has printed an event of kind `k`; panics with
/// both logs if it ends first or the limit passes.
pub fn wait_sender_event(t: &mut Topology, x: &Exchange, k: &str, limit: Duration) {
    let start = Instant::now();
    while kind(&events(&t.log("offer")), k).is_empty() {
        assert!(
            start.elapsed() < limit,
            "no {k} event:\n{}\n{}",
            t.log("offer"),
            t.log("answer")
        );
        assert!(
            t.child(x.sender).try_wait().unwrap().is_none(),
            "sender ended early:\n{}\n{}",
            t.log("offer"),
            t.log("answer")
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// How an exchange ended.
pub struct Outcome {
    /// The sender's exit code.
    pub code: i32,
    /// The receiver's exit code, `None` if it was still running (then killed on drop).
    pub rcode: Option<i32>,
    /// The sender's events.
    pub sev: Vec<Value>,
    /// The receiver's events.
    pub rev: Vec<Value>,
    /// From the start to the sender's exit.
    pub sender_time: Duration,
}

/// Waits for the sender to exit (panics with its log beyond `limit`: a hang), then up to
/// `receiver_grace` more for the receiver.
pub fn finish(
    t: &mut Topology,
    x: &Exchange,
    limit: Duration,
    receiver_grace: Duration,
) -> Outcome {
    let end = x.started + limit;
    let code = loop {
        if let Some(st) = t.child(x.sender).try_wait().unwrap() {
            break st.code().unwrap_or(-1);
        }
        assert!(
            Instant::now() < end,
            "sender still running after {limit:?} (hang):\n{}\n{}",
            t.log("offer"),
            t.log("answer")
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let sender_time = x.started.elapsed();
    let end = Instant::now() + receiver_grace;
    let rcode = loop {
        if let Some(st) = t.child(x.receiver).try_wait().unwrap() {
            break Some(st.code().unwrap_or(-1));
        }
        if Instant::now() > end {
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    Outcome {
        code,
        rcode,
        sev: events(&t.log("offer")),
        rev: events(&t.log("answer")),
        sender_time,
    }
}

/// Waits up to `limit` for process `idx` to exit: its exit code, `None` if still running.
pub fn wait_exit(t: &mut Topology, idx: usize, limit: Duration) -> Option<i32> {
    let end = Instant::now() + limit;
    loop {
        if let Some(st) = t.child(idx).try_wait().unwrap() {
            return Some(st.code().unwrap_or(-1));
        }
        if Instant::now() > end {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The full success check: every message sent was reported `delivered` exactly once, nothing
/// `failed`, the receiver got every message exactly once with the same Message-ID, the texts
/// byte for byte, the file with the same SHA-256 (the event's and the saved file's), and both
/// exited 0.
pub fn assert_all_delivered_once(x: &Exchange, o: &Outcome) {
    let (sev, rev) = (&o.sev, &o.rev);
    assert_eq!(o.code, 0, "sender: {sev:?}");
    assert_eq!(o.rcode, Some(0), "receiver: {rev:?}");
    assert!(kind(sev, "failed").is_empty(), "{sev:?}");
    assert!(kind(rev, "failed").is_empty(), "{rev:?}");
    let sent: Vec<&str> = kind(sev, "sending")
        .iter()
        .map(|e| e["message_id"].as_str().unwrap())
        .collect();
    let expected = x.texts.len() + usize::from(x.file_bytes > 0);
    assert_eq!(sent.len(), expected, "{sev:?}");
    let delivered: Vec<&str> = kind(sev, "delivered")
        .iter()
        .map(|e| e["message_id"].as_str().unwrap())
        .collect();
    assert_eq!(delivered.len(), expected, "{sev:?}");
    for id in &sent {
        assert_eq!(
            delivered.iter().filter(|d| *d == id).count(),
            1,
            "{id}: {sev:?}"
        );
    }
    let got = kind(rev, "message");
    assert_eq!(got.len(), expected, "{rev:?}");
    for id in &sent {
        assert_eq!(
            got.iter().filter(|m| m["message_id"] == *id).count(),
            1,
            "{id} received once: {rev:?}"
        );
    }
    let mut texts: Vec<&str> = got
        .iter()
        .filter(|m| m["content_type"] == "text/plain")
        .map(|m| m["body"].as_str().unwrap())
        .collect();
    let mut want: Vec<&str> = x.texts.iter().map(String::as_str).collect();
    texts.sort_unstable();
    want.sort_unstable();
    assert_eq!(texts, want);
    if x.file_bytes > 0 {
        let f: Vec<_> = got
            .iter()
            .filter(|m| m["content_type"] != "text/plain")
            .collect();
        assert_eq!(f.len(), 1, "{rev:?}");
        assert_eq!(f[0]["bytes"], x.file_bytes as u64);
        assert_eq!(f[0]["sha256"], x.file_sha.as_str());
        let saved = PathBuf::from(f[0]["path"].as_str().expect("saved path"));
        assert!(saved.starts_with(&x.recv_dir), "{saved:?}");
        assert_eq!(sha256_file(&saved), x.file_sha, "the saved file");
    }
}
