//! `msrp offer --tls` and `msrp answer --tls` as two processes over loopback TLS: every role
//! combination of the RFC 6135 negotiation table with the active side as TLS client (RFC 6135
//! §4.3), `--cert/--key` from PEM files, and a fingerprint edited in the SDP file between the
//! processes, in either direction: the connection is refused naming both fingerprints, no
//! message passes, and the passive side keeps listening until its timeout.

#[path = "common/pair.rs"]
mod pair;

use std::time::{Duration, Instant};

use pair::{of_kind, run_pair, Side};
use serde_json::Value;

const LIMIT: Duration = Duration::from_secs(60);

type Edit = Box<dyn Fn(&str) -> String>;

fn negotiated(events: &[Value]) -> &Value {
    let n = of_kind(events, "negotiated");
    assert_eq!(n.len(), 1, "one negotiated event: {events:?}");
    n[0]
}

/// The first `a=fingerprint` value of an SDP ("sha-256 AB:...").
fn sdp_fingerprint(sdp: &str) -> String {
    sdp.lines()
        .find_map(|l| l.strip_prefix("a=fingerprint:"))
        .unwrap_or_else(|| panic!("no a=fingerprint in\n{sdp}"))
        .trim()
        .to_string()
}

/// Replaces the fingerprint's hex value with a different one of the same length.
fn tamper(sdp: &str) -> String {
    let fp = sdp_fingerprint(sdp);
    let (hash, value) = fp.split_once(' ').unwrap();
    let flipped: String = value
        .chars()
        .map(|c| match c {
            ':' => ':',
            '0' => '1',
            _ => '0',
        })
        .collect();
    sdp.replace(&fp, &format!("{hash} {flipped}"))
}

fn received_text(events: &[Value]) -> Vec<String> {
    of_kind(events, "message")
        .iter()
        .map(|m| m["body"].as_str().unwrap_or_default().to_string())
        .collect()
}

fn tls_pair(offer_reach: &'static str, answer_reach: &'static str, offerer_role: &str) {
    let dir = tempfile::tempdir().unwrap();
    // The answerer loads its certificate from PEM files (--cert/--key); the offerer generates.
    let id = msrp::tls::TlsIdentity::generate().unwrap();
    let (cert, key) = (dir.path().join("b.pem"), dir.path().join("b.key"));
    id.write_pem_files(&cert, &key).unwrap();
    let offer = Side::new(offer_reach).args(&["--tls", "--send", "hello offerer", "--count", "1"]);
    let answer = Side::new(answer_reach).args(&[
        "--cert",
        cert.to_str().unwrap(),
        "--key",
        key.to_str().unwrap(),
        "--send",
        "hello answerer",
        "--count",
        "1",
    ]);
    let mut p = run_pair(dir.path(), offer, answer, None, None, LIMIT);
    let (so, sa) = (p.offerer.wait(LIMIT), p.answerer.wait(LIMIT));
    assert!(
        so.success() && sa.success(),
        "offerer {so}, answerer {sa}\noffer:\n{}\nanswer:\n{}\noffer stderr:\n{}\nanswer stderr:\n{}",
        p.offer_sdp,
        p.answer_sdp,
        p.offerer.stderr(),
        p.answerer.stderr()
    );
    for sdp in [&p.offer_sdp, &p.answer_sdp] {
        assert!(
            sdp.contains("TCP/TLS/MSRP") && sdp.contains("a=path:msrps://"),
            "{sdp}"
        );
    }
    assert_eq!(sdp_fingerprint(&p.answer_sdp), id.fingerprint().to_string());
    let (eo, ea) = (p.offerer.events(), p.answerer.events());
    let (no, na) = (negotiated(&eo), negotiated(&ea));
    assert_eq!(no["role"], offerer_role, "{no}");
    for n in [no, na] {
        assert_eq!(n["tls"], true, "{n}");
        // RFC 6135 §4.3: the active side is the TLS client.
        let want = if n["role"] == "active" {
            "client"
        } else {
            "server"
        };
        assert_eq!(n["tls_role"], want, "{n}");
    }
    assert_eq!(no["peer_fingerprint"], sdp_fingerprint(&p.answer_sdp));
    assert_eq!(na["peer_fingerprint"], sdp_fingerprint(&p.offer_sdp));
    assert_eq!(received_text(&eo), vec!["hello answerer".to_string()]);
    assert_eq!(received_text(&ea), vec!["hello offerer".to_string()]);
    assert!(of_kind(&eo, "refused").is_empty() && of_kind(&ea, "refused").is_empty());
}

#[test]
fn tls_reachable_offerer_and_reachable_answerer() {
    tls_pair("reachable", "reachable", "active");
}

#[test]
fn tls_reachable_offerer_and_answerer_behind_nat() {
    // The answerer connects as TLS client, possibly before the offerer read the answer.
    tls_pair("reachable", "behind-nat", "passive");
}

#[test]
fn tls_offerer_behind_nat_and_reachable_answerer() {
    tls_pair("behind-nat", "reachable", "active");
}

#[test]
fn tls_both_behind_nat() {
    tls_pair("behind-nat", "behind-nat", "active");
}

/// One side's fingerprint is edited in transit (`tamper_offer`: the offer's, else the
/// answer's). Asserts the refusal, that no message passed, and
/// that the passive side listened until its timeout.
fn wrong_fingerprint(offer_reach: &'static str, answer_reach: &'static str, tamper_offer: bool) {
    let dir = tempfile::tempdir().unwrap();
    // The harness gives both processes --timeout 20.
    const TIMEOUT: u64 = 20;
    let offer = Side::new(offer_reach).args(&["--tls", "--send", "secret offerer"]);
    let answer = Side::new(answer_reach).args(&["--tls", "--send", "secret answerer"]);
    let start = Instant::now();
    let edit: Option<Edit> = Some(Box::new(tamper));
    let (eo, ea) = if tamper_offer {
        (edit, None)
    } else {
        (None, edit)
    };
    let mut p = run_pair(dir.path(), offer, answer, eo, ea, LIMIT);
    let (so, sa) = (p.offerer.wait(LIMIT), p.answerer.wait(LIMIT));
    let elapsed = start.elapsed();
    let (eo, ea) = (p.offerer.events(), p.answerer.events());
    let (no, na) = (negotiated(&eo), negotiated(&ea));
    let offerer_passive = no["role"] == "passive";
    assert_ne!(no["role"], na["role"]);
    for n in [no, na] {
        assert_eq!(
            n["tls_role"],
            if n["role"] == "active" {
                "client"
            } else {
                "server"
            }
        );
    }
    let passive = if offerer_passive {
        &p.offerer
    } else {
        &p.answerer
    };
    assert!(!so.success() && !sa.success(), "both must fail: {so} {sa}");
    // No message passed either way, nobody connected.
    for ev in [&eo, &ea] {
        assert!(of_kind(ev, "message").is_empty(), "{ev:?}");
        assert!(of_kind(ev, "connected").is_empty(), "{ev:?}");
    }
    // The refusing side names expected and received fingerprints.
    let (tampered_sdp, real_sdp_of_peer) = if tamper_offer {
        (
            &p.offer_sdp,
            std::fs::read_to_string(dir.path().join("offer.raw.sdp")).unwrap(),
        )
    } else {
        (
            &p.answer_sdp,
            std::fs::read_to_string(dir.path().join("answer.raw.sdp")).unwrap(),
        )
    };
    let expected = sdp_fingerprint(tampered_sdp);
    let received = sdp_fingerprint(&real_sdp_of_peer);
    assert_ne!(expected, received);
    // Who verifies the tampered fingerprint: the side that read the tampered SDP.
    let verifier_ev = if tamper_offer { &ea } else { &eo };
    // A passive verifier reports a `refused` event and keeps listening; an active one's
    // session ends (`closed`) with the same error.
    let reasons: Vec<&str> = verifier_ev
        .iter()
        .filter(|e| e["event"] == "refused" || e["event"] == "closed")
        .filter_map(|e| e["reason"].as_str())
        .collect();
    assert!(
        reasons
            .iter()
            .any(|r| r.contains(&format!("expected {expected}"))
                && r.contains(&format!("received {received}"))),
        "no refusal naming {expected} and {received}: {verifier_ev:?}"
    );
    if verifier_is_passive(offerer_passive, tamper_offer) {
        assert!(
            !of_kind(verifier_ev, "refused").is_empty(),
            "{verifier_ev:?}"
        );
    }
    // The passive side kept listening for the rightful peer until its timeout.
    assert!(
        elapsed >= Duration::from_secs(TIMEOUT - 1),
        "passive side gave up after {elapsed:?}"
    );
    let err = passive.stderr();
    assert!(err.contains("did not connect within"), "{err}");
}

/// The side that read the tampered SDP is the passive one.
fn verifier_is_passive(offerer_passive: bool, tamper_offer: bool) -> bool {
    // tampered offer: the answerer verifies; tampered answer: the offerer verifies
    offerer_passive != tamper_offer
}

#[test]
fn tls_wrong_fingerprint_in_the_offer_is_refused_by_the_passive_answerer() {
    // Offerer active (behind a NAT), answerer passive: the answerer (TLS server) pins the
    // edited offer fingerprint and refuses the offerer's certificate.
    wrong_fingerprint("behind-nat", "reachable", true);
}

#[test]
fn tls_wrong_fingerprint_in_the_answer_is_refused_by_the_active_offerer() {
    // Offerer active, answerer passive: the offerer (TLS client) refuses the server's
    // certificate; the answerer keeps listening until its timeout.
    wrong_fingerprint("behind-nat", "reachable", false);
}

#[test]
fn tls_wrong_fingerprint_in_the_answer_is_refused_by_the_passive_offerer() {
    // Offerer passive (actpass answered active): the answerer connects, the offerer checks
    // its certificate against the edited answer and refuses it, then keeps listening.
    wrong_fingerprint("reachable", "behind-nat", false);
}
