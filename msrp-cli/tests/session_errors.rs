//! `msrp offer` / `msrp answer` failures: each says what happened and why, and exits with its
//! documented code (3: a wait timed out, 1: bad SDP / failed negotiation). The peer's SDP is
//! produced with `msrp sdp answer` (or written by hand) and no peer process runs.

#[path = "common/pair.rs"]
mod pair;

use std::process::Stdio;
use std::time::Duration;

use pair::{free_port, of_kind, wait_file, write_atomic, Proc};

const LIMIT: Duration = Duration::from_secs(30);

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

#[test]
fn passive_offerer_says_the_peer_should_have_connected() {
    let dir = tempfile::tempdir().unwrap();
    let d = |n: &str| dir.path().join(n).to_str().unwrap().to_string();
    let mut offerer = Proc::msrp(
        "offerer",
        dir.path(),
        &s(&[
            "offer",
            "--json",
            "--local-sdp",
            &d("offer.sdp"),
            "--remote-sdp",
            &d("answer.sdp"),
            "--timeout",
            "2",
            "--send",
            "never delivered",
        ]),
        Stdio::null(),
    );
    wait_file(&dir.path().join("offer.sdp"), LIMIT, &mut [&mut offerer]);
    // An answerer behind a NAT answers a=setup:active ... and then never connects.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_msrp"))
        .args([
            "sdp",
            "answer",
            "--offer",
            &d("offer.sdp"),
            "--reachability",
            "behind-nat",
            "--listen",
            &format!("127.0.0.1:{}", free_port()),
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let answer = String::from_utf8(out.stdout).unwrap();
    assert!(answer.contains("a=setup:active"), "{answer}");
    write_atomic(&dir.path().join("answer.sdp"), &answer);
    let status = offerer.wait(LIMIT);
    assert_eq!(status.code(), Some(3), "{}", offerer.stderr());
    let err = offerer.stderr();
    assert!(
        err.contains(
            "peer did not connect within 2 s; it answered a=setup:active, so it should have"
        ),
        "{err}"
    );
    let ev = offerer.events();
    assert_eq!(of_kind(&ev, "negotiated")[0]["role"], "passive");
    assert!(of_kind(&ev, "connected").is_empty());
    assert_eq!(ev.last().unwrap()["event"], "closed");
}

#[test]
fn active_answerer_names_the_address_it_could_not_reach() {
    let dir = tempfile::tempdir().unwrap();
    let d = |n: &str| dir.path().join(n).to_str().unwrap().to_string();
    // An actpass offer from a port nobody listens on.
    let port = free_port();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_msrp"))
        .args(["sdp", "offer", "--listen", &format!("127.0.0.1:{port}")])
        .output()
        .unwrap();
    assert!(out.status.success());
    write_atomic(
        &dir.path().join("offer.sdp"),
        &String::from_utf8(out.stdout).unwrap(),
    );
    let mut answerer = Proc::msrp(
        "answerer",
        dir.path(),
        &s(&[
            "answer",
            "--local-sdp",
            &d("answer.sdp"),
            "--remote-sdp",
            &d("offer.sdp"),
            "--reachability",
            "behind-nat",
            "--timeout",
            "5",
            "--send",
            "x",
        ]),
        Stdio::null(),
    );
    let status = answerer.wait(LIMIT);
    assert_ne!(status.code(), Some(0));
    let err = answerer.stderr();
    assert!(
        err.contains(&format!("could not connect to msrp://127.0.0.1:{port}/"))
            && err.contains("we are active because it offered a=setup:actpass"),
        "{err}"
    );
}

#[test]
fn missing_peer_sdp_times_out() {
    let dir = tempfile::tempdir().unwrap();
    let d = |n: &str| dir.path().join(n).to_str().unwrap().to_string();
    let mut answerer = Proc::msrp(
        "answerer",
        dir.path(),
        &s(&[
            "answer",
            "--local-sdp",
            &d("answer.sdp"),
            "--remote-sdp",
            &d("never.sdp"),
            "--timeout",
            "1",
        ]),
        Stdio::null(),
    );
    let status = answerer.wait(LIMIT);
    assert_eq!(status.code(), Some(3));
    let err = answerer.stderr();
    assert!(
        err.contains("the peer's offer did not appear in") && err.contains("within 1 s"),
        "{err}"
    );
}

#[test]
fn invalid_peer_sdp_names_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = |n: &str| dir.path().join(n).to_str().unwrap().to_string();
    write_atomic(&dir.path().join("offer.sdp"), "v=0\r\nthis is not sdp\r\n");
    let mut answerer = Proc::msrp(
        "answerer",
        dir.path(),
        &s(&[
            "answer",
            "--local-sdp",
            &d("answer.sdp"),
            "--remote-sdp",
            &d("offer.sdp"),
            "--timeout",
            "2",
        ]),
        Stdio::null(),
    );
    let status = answerer.wait(LIMIT);
    assert_eq!(status.code(), Some(1));
    let err = answerer.stderr();
    assert!(err.contains("offer.sdp: line 2"), "{err}");
    assert!(!dir.path().join("answer.sdp").exists());
}

#[test]
fn sdp_through_stdout_and_stdin_then_chat_lines() {
    // offer: --local-sdp - writes the SDP then an empty line to stdout; answer: --remote-sdp -
    // reads it up to the empty line, and the lines after it are chat messages.
    let dir = tempfile::tempdir().unwrap();
    let d = |n: &str| dir.path().join(n).to_str().unwrap().to_string();
    let mut offerer = Proc::msrp(
        "offerer",
        dir.path(),
        &s(&[
            "offer",
            "--local-sdp",
            "-",
            "--remote-sdp",
            &d("answer.sdp"),
            "--timeout",
            "20",
            "--count",
            "2",
        ]),
        Stdio::null(),
    );
    let start = std::time::Instant::now();
    let offer = loop {
        let out = offerer.stdout();
        if let Some(end) = out.find("\r\n\r\n") {
            break out[..end + 2].to_string();
        }
        assert!(start.elapsed() < LIMIT, "no SDP on stdout: {out}");
        assert!(offerer.try_wait().is_none(), "{}", offerer.stderr());
        std::thread::sleep(Duration::from_millis(20));
    };
    let input = dir.path().join("stdin.txt");
    std::fs::write(&input, format!("{offer}\nfirst line\nsecond line\n")).unwrap();
    let mut answerer = Proc::msrp(
        "answerer",
        dir.path(),
        &s(&[
            "answer",
            "--local-sdp",
            &d("answer.sdp"),
            "--remote-sdp",
            "-",
            "--timeout",
            "20",
        ]),
        Stdio::from(std::fs::File::open(&input).unwrap()),
    );
    let (so, sa) = (offerer.wait(LIMIT), answerer.wait(LIMIT));
    assert!(
        so.success() && sa.success(),
        "{}\n{}",
        offerer.stderr(),
        answerer.stderr()
    );
    // Without --json: the SDP, an empty line, then one received message per line.
    let out = offerer.stdout();
    let after = &out[out.find("\r\n\r\n").unwrap() + 4..];
    assert_eq!(after, "first line\nsecond line\n");
}

/// An answer file left from an earlier run (older than the offer just written) is not taken
/// for the answer: the offerer says so and waits for the new one; here none comes, so it
/// times out (exit 3) saying the file there is stale, without connecting anywhere.
#[test]
fn stale_answer_file_from_an_earlier_run_is_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let d = |n: &str| dir.path().join(n).to_str().unwrap().to_string();
    // A valid answer from "an earlier run", pointing at a port nobody listens on.
    let port = free_port();
    let stale = format!(
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m=message {port} TCP/MSRP *\r\na=accept-types:*\r\n\
         a=path:msrp://127.0.0.1:{port}/old;tcp\r\na=setup:passive\r\n"
    );
    let answer = dir.path().join("answer.sdp");
    std::fs::write(&answer, stale).unwrap();
    let f = std::fs::File::options().write(true).open(&answer).unwrap();
    f.set_modified(std::time::SystemTime::now() - Duration::from_secs(600))
        .unwrap();
    drop(f);
    let mut offerer = Proc::msrp(
        "offerer",
        dir.path(),
        &s(&[
            "offer",
            "--json",
            "--local-sdp",
            &d("offer.sdp"),
            "--remote-sdp",
            &d("answer.sdp"),
            "--timeout",
            "2",
            "--send",
            "never sent",
        ]),
        Stdio::null(),
    );
    let st = offerer.wait(LIMIT);
    let err = offerer.stderr();
    assert_eq!(st.code(), Some(3), "{err}");
    assert!(
        err.contains("ignoring ")
            && err.contains("answer.sdp: it is older than our offer (left from an earlier run?)"),
        "{err}"
    );
    assert!(
        err.contains("the file there is older than our offer: remove it before a new run"),
        "{err}"
    );
    // It never negotiated with the stale answer.
    assert!(of_kind(&offerer.events(), "negotiated").is_empty(), "{err}");
}

/// The same stale answer file, then the real answerer overwrites it: the session works.
#[test]
fn stale_answer_file_is_replaced_by_the_new_answer_and_the_session_works() {
    let dir = tempfile::tempdir().unwrap();
    let d = |n: &str| dir.path().join(n).to_str().unwrap().to_string();
    let answer = dir.path().join("answer.sdp");
    std::fs::write(&answer, "v=0\r\n").unwrap();
    let f = std::fs::File::options().write(true).open(&answer).unwrap();
    f.set_modified(std::time::SystemTime::now() - Duration::from_secs(600))
        .unwrap();
    drop(f);
    let mut offerer = Proc::msrp(
        "offerer",
        dir.path(),
        &s(&[
            "offer",
            "--json",
            "--local-sdp",
            &d("offer.sdp"),
            "--remote-sdp",
            &d("answer.sdp"),
            "--timeout",
            "20",
            "--send",
            "to the new answerer",
        ]),
        Stdio::null(),
    );
    wait_file(&dir.path().join("offer.sdp"), LIMIT, &mut [&mut offerer]);
    let mut answerer = Proc::msrp(
        "answerer",
        dir.path(),
        &s(&[
            "answer",
            "--json",
            "--local-sdp",
            &d("answer.sdp"),
            "--remote-sdp",
            &d("offer.sdp"),
            "--timeout",
            "20",
            "--count",
            "1",
        ]),
        Stdio::null(),
    );
    let so = offerer.wait(LIMIT);
    let sa = answerer.wait(LIMIT);
    assert!(
        so.success() && sa.success(),
        "{so} {sa}\n{}\n{}",
        offerer.stderr(),
        answerer.stderr()
    );
    assert!(offerer.stderr().contains("it is older than our offer"));
    assert_eq!(
        of_kind(&answerer.events(), "message")[0]["body"],
        "to the new answerer"
    );
}
