//! Ctrl-C (SIGINT) in `msrp offer` / `msrp answer`: the session is closed cleanly (the peer
//! sees the connection end, a `closed` event is the last one), stderr says it was interrupted
//! and what was pending, and the exit status is 130. Every process is killed by a Drop guard;
//! every wait is bounded.

#[path = "common/pair.rs"]
mod pair;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use pair::{of_kind, Proc};
use serde_json::Value;

const LIMIT: Duration = Duration::from_secs(60);

fn args(cmd: &str, local: &Path, remote: &Path) -> Vec<String> {
    [
        cmd,
        "--json",
        "--local-sdp",
        local.to_str().unwrap(),
        "--remote-sdp",
        remote.to_str().unwrap(),
        "--timeout",
        "30",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn sigint(p: &Proc) {
    let st = Command::new("kill")
        .args(["-INT", &p.pid().to_string()])
        .status()
        .expect("run kill");
    assert!(st.success(), "kill -INT {}", p.pid());
}

/// Waits (bounded) until `p` printed an event satisfying `f`; fails early if it exited.
fn wait_event(p: &mut Proc, what: &str, f: impl Fn(&Value) -> bool) -> Value {
    let start = Instant::now();
    loop {
        if let Some(e) = p.events().into_iter().find(|e| f(e)) {
            return e;
        }
        if let Some(st) = p.try_wait() {
            panic!("{} exited ({st}) before {what}:\n{}", p.name, p.stderr());
        }
        assert!(
            start.elapsed() < LIMIT,
            "{}: no {what} within {LIMIT:?}:\n{}",
            p.name,
            p.stdout()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Ctrl-C during an interactive chat: the offerer closes its session and exits 130, its last
/// event is `closed` naming the interrupt; the answerer sees the connection closed by its peer
/// (a clean close, not a hang until its timeout).
#[test]
fn ctrl_c_closes_the_session_cleanly_and_exits_130() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (offer, answer) = (d.join("offer.sdp"), d.join("answer.sdp"));
    let mut o = Proc::msrp(
        "offerer",
        d,
        &args("offer", &offer, &answer),
        Stdio::piped(),
    );
    let mut a = Proc::msrp(
        "answerer",
        d,
        &args("answer", &answer, &offer),
        Stdio::piped(),
    );
    let mut o_in = o.child.stdin.take().unwrap();
    let _a_in = a.child.stdin.take().unwrap();
    wait_event(&mut o, "connected", |e| e["event"] == "connected");
    wait_event(&mut a, "connected", |e| e["event"] == "connected");
    writeln!(o_in, "before ctrl-c").unwrap();
    o_in.flush().unwrap();
    wait_event(&mut a, "the message", |e| {
        e["event"] == "message" && e["body"] == "before ctrl-c"
    });
    wait_event(&mut o, "its delivery", |e| e["event"] == "delivered");

    sigint(&o);
    let st = o.wait(LIMIT);
    assert_eq!(st.code(), Some(130), "{st}\n{}", o.stderr());
    let eo = o.events();
    let last = eo.last().unwrap();
    assert_eq!(last["event"], "closed", "{eo:?}");
    let reason = last["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("interrupted (Ctrl-C): session closed"),
        "{reason}"
    );
    assert!(reason.contains("received 0 message(s)"), "{reason}");
    assert!(
        o.stderr()
            .contains("msrp: interrupted (Ctrl-C): session closed"),
        "{}",
        o.stderr()
    );
    // The offerer still holds its stdin open: it ended because of the signal, not EOF.
    drop(o_in);
    // The peer is told: its connection was closed (long before its 30 s timeout).
    let closed = wait_event(&mut a, "closed", |e| e["event"] == "closed");
    assert!(
        closed["reason"]
            .as_str()
            .unwrap()
            .contains("closed by peer"),
        "{closed}"
    );
    a.wait(LIMIT);
    assert_eq!(of_kind(&a.events(), "message").len(), 1);
}

/// Ctrl-C while waiting for the peer's SDP: exit 130 with a message saying nothing was sent.
#[test]
fn ctrl_c_before_the_session_exits_130_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (offer, answer) = (d.join("offer.sdp"), d.join("answer.sdp"));
    let mut o = Proc::msrp(
        "offerer",
        d,
        &args("offer", &offer, &answer),
        Stdio::piped(),
    );
    let _o_in = o.child.stdin.take().unwrap();
    // The offer is written: it now waits for the answer that never comes.
    pair::wait_file(&offer, LIMIT, &mut [&mut o]);
    sigint(&o);
    let st = o.wait(LIMIT);
    assert_eq!(st.code(), Some(130), "{st}\n{}", o.stderr());
    assert!(
        o.stderr()
            .contains("msrp: interrupted (Ctrl-C) before the session started; nothing was sent"),
        "{}",
        o.stderr()
    );
}
