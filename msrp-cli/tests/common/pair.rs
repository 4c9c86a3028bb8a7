//! Harness for tests that run two `msrp offer` / `msrp answer` processes: free loopback
//! ports, SDP files relayed (and optionally edited) between the processes, bounded waits,
//! every child killed on drop, and an optional tshark capture of the traffic.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

// Also loaded by msrp/tests/common/kamailio.rs in the tests that use both.
#[allow(clippy::duplicate_mod)]
#[path = "../../../msrp/tests/common/ports.rs"]
mod ports;

/// A child process killed (and reaped) when dropped, even when the test panics.
pub struct Proc {
    pub name: String,
    pub child: Child,
    pub out: PathBuf,
    pub err: PathBuf,
    status: Option<ExitStatus>,
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.status.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl Proc {
    /// Starts the `msrp` binary with `args`; stdout and stderr go to files in `dir`.
    pub fn msrp(name: &str, dir: &Path, args: &[String], stdin: Stdio) -> Proc {
        let out = dir.join(format!("{name}.out"));
        let err = dir.join(format!("{name}.err"));
        let child = Command::new(env!("CARGO_BIN_EXE_msrp"))
            .args(args)
            .stdin(stdin)
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(std::fs::File::create(&err).unwrap())
            .spawn()
            .expect("spawn msrp");
        Proc {
            name: name.into(),
            child,
            out,
            err,
            status: None,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The exit status if it has exited.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.child.try_wait().unwrap();
        }
        self.status
    }

    /// Waits for the exit, at most `limit` (then panics with the process's stderr).
    pub fn wait(&mut self, limit: Duration) -> ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(s) = self.try_wait() {
                return s;
            }
            assert!(
                start.elapsed() < limit,
                "{} did not exit within {limit:?}; stderr:\n{}",
                self.name,
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn stdout(&self) -> String {
        std::fs::read_to_string(&self.out).unwrap_or_default()
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.err).unwrap_or_default()
    }

    /// The JSON events printed so far (each line must be a JSON object with "event").
    pub fn events(&self) -> Vec<Value> {
        self.stdout()
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                let v: Value = serde_json::from_str(l)
                    .unwrap_or_else(|e| panic!("{}: not JSON ({e}): {l}", self.name));
                assert!(v["event"].is_string(), "{}: no event field: {l}", self.name);
                v
            })
            .collect()
    }
}

/// Events of one kind.
pub fn of_kind<'a>(events: &'a [Value], kind: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["event"] == kind).collect()
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    ports::free_port()
}

/// Waits (bounded) until `path` exists and is not empty, then returns its content.
pub fn wait_file(path: &Path, limit: Duration, procs: &mut [&mut Proc]) -> String {
    let start = Instant::now();
    loop {
        if let Ok(s) = std::fs::read_to_string(path) {
            if !s.is_empty() {
                return s;
            }
        }
        for p in procs.iter_mut() {
            if let Some(st) = p.try_wait() {
                panic!(
                    "{} exited ({st}) before {} appeared; stderr:\n{}",
                    p.name,
                    path.display(),
                    p.stderr()
                );
            }
        }
        assert!(
            start.elapsed() < limit,
            "{} did not appear within {limit:?}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Writes a file atomically (temporary file + rename), as `msrp` itself does.
pub fn write_atomic(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp-edit");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// What to run on each side.
pub struct Side {
    pub reachability: &'static str,
    pub port: u16,
    pub extra: Vec<String>,
}

impl Side {
    pub fn new(reachability: &'static str) -> Side {
        Side {
            reachability,
            port: free_port(),
            extra: Vec::new(),
        }
    }

    pub fn args(mut self, a: &[&str]) -> Side {
        self.extra.extend(a.iter().map(|s| s.to_string()));
        self
    }
}

type Edit = Box<dyn Fn(&str) -> String>;

/// Two processes negotiating through SDP files in `dir`, with optional edits of the SDP in
/// transit (the edited copy is what the peer reads).
pub struct Pair {
    pub offerer: Proc,
    pub answerer: Proc,
    pub offer_sdp: String,
    pub answer_sdp: String,
}

pub fn run_pair(
    dir: &Path,
    offer: Side,
    answer: Side,
    edit_offer: Option<Edit>,
    edit_answer: Option<Edit>,
    limit: Duration,
) -> Pair {
    let p = |n: &str| dir.join(n).to_str().unwrap().to_string();
    let (offer_out, offer_in) = if edit_offer.is_some() {
        (p("offer.raw.sdp"), p("offer.sdp"))
    } else {
        (p("offer.sdp"), p("offer.sdp"))
    };
    let (answer_out, answer_in) = if edit_answer.is_some() {
        (p("answer.raw.sdp"), p("answer.sdp"))
    } else {
        (p("answer.sdp"), p("answer.sdp"))
    };
    let common = |side: &Side, local: &str, remote: &str| {
        let mut v: Vec<String> = vec![
            "--json".into(),
            "--local-sdp".into(),
            local.into(),
            "--remote-sdp".into(),
            remote.into(),
            "--listen".into(),
            format!("127.0.0.1:{}", side.port),
            "--reachability".into(),
            side.reachability.into(),
            "--timeout".into(),
            "20".into(),
        ];
        v.extend(side.extra.iter().cloned());
        v
    };
    let mut oargs = vec!["offer".to_string()];
    oargs.extend(common(&offer, &offer_out, &answer_in));
    let mut aargs = vec!["answer".to_string()];
    aargs.extend(common(&answer, &answer_out, &offer_in));
    let mut offerer = Proc::msrp("offerer", dir, &oargs, Stdio::null());
    let mut answerer = Proc::msrp("answerer", dir, &aargs, Stdio::null());
    let offer_sdp = wait_file(
        Path::new(&offer_out),
        limit,
        &mut [&mut offerer, &mut answerer],
    );
    let offer_sdp = match &edit_offer {
        Some(f) => {
            let e = f(&offer_sdp);
            write_atomic(Path::new(&offer_in), &e);
            e
        }
        None => offer_sdp,
    };
    let answer_sdp = wait_file(
        Path::new(&answer_out),
        limit,
        &mut [&mut offerer, &mut answerer],
    );
    let answer_sdp = match &edit_answer {
        Some(f) => {
            let e = f(&answer_sdp);
            write_atomic(Path::new(&answer_in), &e);
            e
        }
        None => answer_sdp,
    };
    Pair {
        offerer,
        answerer,
        offer_sdp,
        answer_sdp,
    }
}

/// Whether tshark can be used: fails the test when CI=true and it is missing.
pub fn tshark_available() -> bool {
    let ok = Command::new("tshark")
        .arg("-v")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !ok {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!(
                "tshark is required for this test (CI=true): install the Debian package 'tshark'"
            );
        }
        println!("skipped: tshark not installed (the capture part of this test)");
    }
    ok
}

/// A tshark capture on the loopback interface, limited to some TCP ports.
pub struct Capture {
    proc: Option<Child>,
    pub file: PathBuf,
    ports: Vec<u16>,
}

impl Drop for Capture {
    fn drop(&mut self) {
        if let Some(mut c) = self.proc.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Capture {
    /// Starts tshark and waits until it says "Capturing on" (at most 30 s).
    pub fn start(dir: &Path, ports: &[u16]) -> Capture {
        let file = dir.join("capture.pcapng");
        let filter = ports
            .iter()
            .map(|p| format!("tcp port {p}"))
            .collect::<Vec<_>>()
            .join(" or ");
        let mut child = Command::new("tshark")
            .args(["-i", "lo", "-q", "-f", &filter, "-w"])
            .arg(&file)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn tshark");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut seen = String::new();
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                seen.push_str(&line);
                seen.push('\n');
                if line.contains("Capturing on") {
                    let _ = tx.send(Ok(()));
                }
            }
            let _ = tx.send(Err(seen));
        });
        let mut cap = Capture {
            proc: Some(child),
            file,
            ports: ports.to_vec(),
        };
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(Ok(())) => {}
            Ok(Err(seen)) => panic!("tshark stopped before capturing:\n{seen}"),
            Err(_) => panic!("tshark did not start capturing within 30 s"),
        }
        // dumpcap has opened the interface; give the filter a moment to be installed.
        std::thread::sleep(Duration::from_millis(300));
        let _ = &mut cap;
        cap
    }

    /// Stops the capture (SIGINT, so the file is complete), bounded.
    pub fn stop(&mut self) {
        // Let the last segments reach the capture buffer.
        std::thread::sleep(Duration::from_millis(500));
        if let Some(mut c) = self.proc.take() {
            let _ = Command::new("kill")
                .args(["-INT", &c.id().to_string()])
                .status();
            let start = Instant::now();
            while c.try_wait().unwrap().is_none() {
                if start.elapsed() > Duration::from_secs(20) {
                    let _ = c.kill();
                    let _ = c.wait();
                    panic!("tshark did not stop within 20 s");
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    /// Runs tshark on the capture with MSRP decoding on our ports and a display filter;
    /// returns one line per matching frame with the given fields.
    pub fn query(&self, filter: &str, fields: &[&str]) -> Vec<String> {
        let mut cmd = Command::new("tshark");
        cmd.arg("-r").arg(&self.file);
        for p in &self.ports {
            cmd.args(["-d", &format!("tcp.port=={p},msrp")]);
        }
        cmd.args(["-Y", filter, "-T", "fields"]);
        for f in fields {
            cmd.args(["-e", f]);
        }
        let out = cmd.stdin(Stdio::null()).output().expect("run tshark -r");
        assert!(
            out.status.success(),
            "tshark -r failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| l.to_string())
            .collect()
    }

    /// Asserts the capture decodes as MSRP with no malformed frame and carries at least
    /// `min_sends` SEND requests and as many 200 responses.
    pub fn assert_clean_msrp(&self, min_sends: usize) {
        let malformed = self.query(
            "_ws.malformed || _ws.expert.severity == error",
            &["frame.number", "_ws.col.Info"],
        );
        assert!(
            malformed.is_empty(),
            "malformed or erroneous frames in {}: {malformed:?}",
            self.file.display()
        );
        let sends = self.query("msrp.method == \"SEND\"", &["msrp.transaction.id"]);
        let oks = self.query("msrp.status.code == 200", &["msrp.transaction.id"]);
        assert!(
            sends.len() >= min_sends && oks.len() >= min_sends,
            "expected at least {min_sends} SEND and 200 frames decoded as MSRP, got {} and {}",
            sends.len(),
            oks.len()
        );
    }
}
