//! `msrp sdp offer|answer|plan`, run as the built binary.

use std::path::Path;
use std::process::{Command, Output};

fn msrp(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_msrp"))
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("run msrp")
}

fn ok(args: &[&str]) -> String {
    let out = msrp(args);
    assert!(
        out.status.success(),
        "msrp {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn fails(args: &[&str]) -> String {
    let out = msrp(args);
    assert_eq!(out.status.code(), Some(1), "msrp {args:?} should exit 1");
    assert!(out.stdout.is_empty(), "nothing on stdout on error");
    String::from_utf8(out.stderr).unwrap()
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.to_str().unwrap().to_string()
}

fn json(s: &str) -> serde_json::Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("not JSON ({e}): {s}"))
}

#[test]
fn offer_follows_rfc6135_4_2() {
    // Reachable: actpass with our real port, CRLF everywhere.
    let o = ok(&[
        "sdp",
        "offer",
        "--listen",
        "192.0.2.10:7394",
        "--session-id",
        "s1",
    ]);
    assert!(
        o.ends_with("\r\n") && !o.replace("\r\n", "").contains('\n'),
        "{o:?}"
    );
    assert!(o.starts_with("v=0\r\n"));
    assert!(o.contains("c=IN IP4 192.0.2.10\r\n"));
    assert!(o.contains("m=message 7394 TCP/MSRP *\r\n"));
    assert!(o.contains("a=path:msrp://192.0.2.10:7394/s1;tcp\r\n"));
    assert!(o.contains("a=setup:actpass\r\n"));
    assert!(!o.contains("a=connection"));
    // Behind a NAT: active, port 9 in m= and in the path URI.
    let o = ok(&[
        "sdp",
        "offer",
        "--listen",
        "192.0.2.10:7394",
        "--reachability",
        "behind-nat",
        "--session-id",
        "s1",
    ]);
    assert!(o.contains("m=message 9 TCP/MSRP *\r\n"), "{o}");
    assert!(o.contains("a=path:msrp://192.0.2.10:9/s1;tcp\r\n"), "{o}");
    assert!(o.contains("a=setup:active\r\n"), "{o}");
    // Behind a NAT with a relay: actpass, relay first in the path.
    let o = ok(&[
        "sdp",
        "offer",
        "--listen",
        "192.0.2.10:7394",
        "--reachability",
        "behind-nat",
        "--session-id",
        "s1",
        "--relay-path",
        "msrp://198.51.100.5:2855/r1;tcp",
    ]);
    assert!(o.contains("a=setup:actpass\r\n"), "{o}");
    assert!(
        o.contains("a=path:msrp://198.51.100.5:2855/r1;tcp msrp://192.0.2.10:7394/s1;tcp\r\n"),
        "{o}"
    );
    // Random session ids differ between runs (RFC 4975 §14.1).
    let a = ok(&["sdp", "offer"]);
    let b = ok(&["sdp", "offer"]);
    let path = |s: &str| {
        s.lines()
            .find(|l| l.starts_with("a=path:"))
            .unwrap()
            .to_string()
    };
    assert_ne!(path(&a), path(&b));
}

#[test]
fn tls_offers_carry_a_fingerprint() {
    // Generated throwaway certificate.
    let o = ok(&["sdp", "offer", "--tls", "--session-id", "s1"]);
    assert!(o.contains("m=message 2855 TCP/TLS/MSRP *\r\n"), "{o}");
    assert!(
        o.contains("a=path:msrps://127.0.0.1:2855/s1;tcp\r\n"),
        "{o}"
    );
    let fp = o
        .lines()
        .find(|l| l.starts_with("a=fingerprint:sha-256 "))
        .expect("fingerprint");
    assert_eq!(fp.len(), "a=fingerprint:sha-256 ".len() + 32 * 3 - 1);
    // Given fingerprint (lower-case input, upper-case output).
    let given = format!("sha-256 {}", vec!["ab"; 32].join(":"));
    let o = ok(&["sdp", "offer", "--tls", "--fingerprint", &given]);
    assert!(
        o.contains(&format!(
            "a=fingerprint:sha-256 {}\r\n",
            vec!["AB"; 32].join(":")
        )),
        "{o}"
    );
    let e = fails(&["sdp", "offer", "--tls", "--fingerprint", "sha-256 AB:CD"]);
    assert!(
        e.contains("--fingerprint") && e.contains("expected 32"),
        "{e}"
    );
    // From a PEM certificate: the SHA-256 of its DER.
    let dir = tempfile::tempdir().unwrap();
    let id = msrp::tls::TlsIdentity::generate().unwrap();
    let cert = write(dir.path(), "cert.pem", &id.certificate_pem());
    let want = msrp_proto::fingerprint::Fingerprint::sha256(id.certificate().as_ref());
    let o = ok(&["sdp", "offer", "--tls", "--cert", &cert]);
    assert!(o.contains(&format!("a=fingerprint:{want}\r\n")), "{o}");
    let bad = write(dir.path(), "bad.pem", "not a certificate\n");
    let e = fails(&["sdp", "offer", "--tls", "--cert", &bad]);
    assert!(e.contains("no PEM CERTIFICATE"), "{e}");
}

#[test]
fn offer_answer_plan_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    // Alice behind a NAT offers active; Bob reachable answers passive; Alice connects.
    let offer = ok(&[
        "sdp",
        "offer",
        "--listen",
        "192.0.2.10:7394",
        "--reachability",
        "behind-nat",
        "--session-id",
        "alice1",
    ]);
    let of = write(dir.path(), "offer.sdp", &offer);
    let answer = ok(&[
        "sdp",
        "answer",
        "--offer",
        &of,
        "--listen",
        "203.0.113.20:8493",
        "--session-id",
        "bob1",
    ]);
    assert!(answer.contains("a=setup:passive\r\n"), "{answer}");
    assert!(
        answer.contains("a=path:msrp://203.0.113.20:8493/bob1;tcp\r\n"),
        "{answer}"
    );
    let af = write(dir.path(), "answer.sdp", &answer);
    let po = json(&ok(&[
        "sdp", "plan", "--offer", &of, "--answer", &af, "--side", "offerer",
    ]));
    let pa = json(&ok(&[
        "sdp", "plan", "--offer", &of, "--answer", &af, "--side", "answerer",
    ]));
    let keys: Vec<&String> = po.as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        [
            "connect_to",
            "local_path",
            "remote_path",
            "role",
            "tls_role",
            "warnings"
        ]
    );
    assert_eq!(po["role"], "active");
    assert_eq!(pa["role"], "passive");
    assert_eq!(po["connect_to"], "msrp://203.0.113.20:8493/bob1;tcp");
    assert_eq!(pa["connect_to"], serde_json::Value::Null);
    assert_eq!(
        po["local_path"],
        serde_json::json!(["msrp://192.0.2.10:9/alice1;tcp"])
    );
    assert_eq!(
        po["remote_path"],
        serde_json::json!(["msrp://203.0.113.20:8493/bob1;tcp"])
    );
    assert_eq!(pa["remote_path"], po["local_path"]);
    assert_eq!(po["tls_role"], serde_json::Value::Null);
    assert_eq!(po["warnings"], serde_json::json!([]));

    // Alice reachable offers actpass; Bob behind a NAT answers active and connects, over TLS.
    let offer = ok(&[
        "sdp",
        "offer",
        "--listen",
        "192.0.2.10:7394",
        "--tls",
        "--session-id",
        "alice1",
    ]);
    let of = write(dir.path(), "offer2.sdp", &offer);
    let answer = ok(&[
        "sdp",
        "answer",
        "--offer",
        &of,
        "--listen",
        "203.0.113.20:8493",
        "--reachability",
        "behind-nat",
        "--tls",
    ]);
    assert!(
        answer.contains("a=setup:active\r\n") && answer.contains("m=message 9 TCP/TLS/MSRP *\r\n"),
        "{answer}"
    );
    let af = write(dir.path(), "answer2.sdp", &answer);
    let po = json(&ok(&[
        "sdp", "plan", "--offer", &of, "--answer", &af, "--side", "offerer",
    ]));
    let pa = json(&ok(&[
        "sdp", "plan", "--offer", &of, "--answer", &af, "--side", "answerer",
    ]));
    assert_eq!(
        (po["role"].as_str(), pa["role"].as_str()),
        (Some("passive"), Some("active"))
    );
    assert_eq!(pa["connect_to"], "msrps://192.0.2.10:7394/alice1;tcp");
    assert_eq!(
        (po["tls_role"].as_str(), pa["tls_role"].as_str()),
        (Some("server"), Some("client"))
    );

    // Stdin works for FILE.
    let mut child = Command::new(env!("CARGO_BIN_EXE_msrp"))
        .args(["sdp", "answer", "--offer", "-", "--tls"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(offer.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8(out.stdout)
        .unwrap()
        .contains("a=setup:passive\r\n"));
}

#[test]
fn answer_to_rfc4975_offer_behind_nat_warns() {
    let dir = tempfile::tempdir().unwrap();
    let of = write(
        dir.path(),
        "o.sdp",
        "v=0\no=alice 1 1 IN IP4 alice.example.com\ns= -\nc=IN IP4 alice.example.com\nt=0 0\n\
         m=message 7394 TCP/MSRP *\na=accept-types:text/plain\na=path:msrp://alice.example.com:7394/2s93i9ek2a;tcp\n",
    );
    let out = msrp(&[
        "sdp",
        "answer",
        "--offer",
        &of,
        "--reachability",
        "behind-nat",
    ]);
    assert!(out.status.success());
    let stdout = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stdout.contains("a=setup:passive\r\n"), "{stdout}");
    assert!(stdout.contains("a=accept-types:text/plain\r\n"), "{stdout}");
    assert!(
        stderr.contains("warning:") && stderr.contains("RFC 6135 §5"),
        "{stderr}"
    );
    // With a relay there is no warning.
    let out = msrp(&[
        "sdp",
        "answer",
        "--offer",
        &of,
        "--reachability",
        "behind-nat",
        "--relay-path",
        "msrp://198.51.100.5:2855/r;tcp",
    ]);
    assert!(out.status.success());
    assert!(!String::from_utf8(out.stderr)
        .unwrap()
        .contains("RFC 6135 §5"));
}

#[test]
fn invalid_input_names_the_line_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let good = "v=0\no=- 1 1 IN IP4 192.0.2.10\ns=-\nc=IN IP4 192.0.2.10\nt=0 0\nm=message 7394 TCP/MSRP *\na=accept-types:*\n";
    let cases: &[(&str, &str)] = &[
        ("v=0\nnonsense\n", "line 2: expected '<type>=<value>'"),
        (
            &format!("{good}a=path:msrp://192.0.2.10:7000/a;tcp\n"),
            "line 6: a=path disagrees",
        ),
        (good, "line 6: MSRP media description has no a=path"),
        (
            &format!("{good}a=path:msrp://192.0.2.10:7394/a;tcp\na=setup:maybe\n"),
            "line 9: invalid a=setup",
        ),
        (
            "v=0\no=- 1 1 IN IP4 h\ns=-\nt=0 0\nm=message 1 TCP/WS/MSRP *\n",
            "line 5: unknown MSRP transport",
        ),
    ];
    for (text, needle) in cases {
        let f = write(dir.path(), "bad.sdp", text);
        let e = fails(&["sdp", "answer", "--offer", &f]);
        assert!(e.contains(needle) && e.contains("bad.sdp"), "{text:?}: {e}");
    }
    // Not UTF-8.
    let p = dir.path().join("bin.sdp");
    std::fs::write(&p, b"v=0\no=- 1 1 IN IP4 h\n\xff\n").unwrap();
    let e = fails(&["sdp", "answer", "--offer", p.to_str().unwrap()]);
    assert!(e.contains("line 3: not valid UTF-8"), "{e}");
    // Missing file.
    let e = fails(&["sdp", "answer", "--offer", "/nonexistent/offer.sdp"]);
    assert!(e.contains("/nonexistent/offer.sdp"), "{e}");
    // Answer carrying actpass: the plan is refused.
    let of = write(
        dir.path(),
        "o.sdp",
        &format!("{good}a=path:msrp://192.0.2.10:7394/a;tcp\na=setup:actpass\n"),
    );
    let e = fails(&[
        "sdp", "plan", "--offer", &of, "--answer", &of, "--side", "offerer",
    ]);
    assert!(
        e.contains("line 9: a=setup:actpass is not allowed in an answer"),
        "{e}"
    );
    // Bad flag values.
    let e = fails(&["sdp", "offer", "--relay-path", "http://relay"]);
    assert!(e.contains("--relay-path"), "{e}");
    let e = fails(&["sdp", "offer", "--accept-types", "text"]);
    assert!(e.contains("--accept-types"), "{e}");
    // No common media type: 488.
    let of = write(
        dir.path(),
        "o2.sdp",
        &format!(
            "{}a=path:msrp://192.0.2.10:7394/a;tcp\n",
            good.replace("accept-types:*", "accept-types:text/plain")
        ),
    );
    let e = fails(&[
        "sdp",
        "answer",
        "--offer",
        &of,
        "--accept-types",
        "image/png",
    ]);
    assert!(
        e.contains("SIP 488") && e.contains("no common media type"),
        "{e}"
    );
}

/// `msrp sdp offer | head -0`: the reader is gone before the SDP is written. A closed pipe is
/// not an error worth a panic (exit 101 with a backtrace): exit 0, nothing on stderr.
#[test]
fn sdp_offer_into_a_closed_pipe_exits_0_without_a_panic() {
    for _ in 0..3 {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_msrp"))
            .args(["sdp", "offer"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{err}");
        assert!(!err.contains("panicked"), "{err}");
    }
}
