//! `msrp offer` and `msrp answer` as two processes over loopback TCP, the SDP exchanged
//! through files: every role combination of the RFC 6135 negotiation table, a peer that omits
//! a=setup (RFC 4975 behaviour), holdconn (RFC 6135 §4.2.1) and a received
//! a=connection:existing (RFC 6135 §4.4). Each test checks the negotiated roles and a=setup
//! values in the `negotiated` events, that a text message arrives each way with the right
//! body and SHA-256, is acknowledged (`delivered`), that both exit 0, and that the traffic,
//! captured with tshark on loopback and decoded as MSRP, has no malformed frame.

#[path = "common/pair.rs"]
mod pair;

use std::time::Duration;

use pair::{of_kind, run_pair, Capture, Side};
use serde_json::Value;
use sha2::{Digest, Sha256};

const LIMIT: Duration = Duration::from_secs(60);
const FROM_OFFERER: &str = "hello from the offerer";
const FROM_ANSWERER: &str = "hello from the answerer";

type Edit = Option<Box<dyn Fn(&str) -> String>>;

fn sha(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

fn without_setup(sdp: &str) -> String {
    sdp.split_inclusive('\n')
        .filter(|l| !l.starts_with("a=setup:"))
        .collect()
}

fn edit(f: fn(&str) -> String) -> Edit {
    Some(Box::new(f))
}

struct Expect {
    offerer_role: &'static str,
    /// a=setup values each side sees from the peer (after edits).
    offerer_sees: Option<&'static str>,
    answerer_sees: Option<&'static str>,
    /// A substring expected in some warning of the offerer / answerer.
    offerer_warning: Option<&'static str>,
    answerer_warning: Option<&'static str>,
}

fn negotiated(events: &[Value]) -> &Value {
    let n = of_kind(events, "negotiated");
    assert_eq!(n.len(), 1, "one negotiated event: {events:?}");
    n[0]
}

fn check_side(events: &[Value], sent: &str, expected_body: &str, who: &str) {
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(kinds.first(), Some(&"negotiated"), "{who}: {kinds:?}");
    assert_eq!(kinds.get(1), Some(&"connected"), "{who}: {kinds:?}");
    assert_eq!(kinds.last(), Some(&"closed"), "{who}: {kinds:?}");
    let msgs = of_kind(events, "message");
    assert_eq!(msgs.len(), 1, "{who}: one message: {events:?}");
    let m = msgs[0];
    assert_eq!(m["body"], expected_body, "{who}");
    assert_eq!(m["content_type"], "text/plain", "{who}");
    assert_eq!(m["bytes"], expected_body.len(), "{who}");
    assert_eq!(m["sha256"], sha(expected_body), "{who}");
    assert!(m["message_id"].as_str().is_some_and(|s| !s.is_empty()));
    // What we sent was acknowledged.
    let sending = of_kind(events, "sending");
    assert_eq!(sending.len(), 1, "{who}: {events:?}");
    assert_eq!(sending[0]["bytes"], sent.len());
    let id = &sending[0]["message_id"];
    assert!(
        of_kind(events, "delivered")
            .iter()
            .any(|d| &d["message_id"] == id),
        "{who}: no delivered event for {id}: {events:?}"
    );
    assert!(of_kind(events, "failed").is_empty(), "{who}: {events:?}");
}

fn scenario(
    offer_reach: &'static str,
    answer_reach: &'static str,
    edit_offer: Edit,
    edit_answer: Edit,
    expect: Expect,
) {
    let dir = tempfile::tempdir().unwrap();
    let offer = Side::new(offer_reach).args(&["--send", FROM_OFFERER, "--count", "1"]);
    let answer = Side::new(answer_reach).args(&["--send", FROM_ANSWERER, "--count", "1"]);
    let ports = [offer.port, answer.port];
    let mut cap = pair::tshark_available().then(|| Capture::start(dir.path(), &ports));
    let mut p = run_pair(dir.path(), offer, answer, edit_offer, edit_answer, LIMIT);
    let so = p.offerer.wait(LIMIT);
    let sa = p.answerer.wait(LIMIT);
    assert!(
        so.success() && sa.success(),
        "offerer {so}, answerer {sa}\noffer:\n{}\nanswer:\n{}\noffer stderr:\n{}\nanswer stderr:\n{}",
        p.offer_sdp,
        p.answer_sdp,
        p.offerer.stderr(),
        p.answerer.stderr()
    );
    let (eo, ea) = (p.offerer.events(), p.answerer.events());
    let (no, na) = (negotiated(&eo), negotiated(&ea));
    let answerer_role = if expect.offerer_role == "active" {
        "passive"
    } else {
        "active"
    };
    assert_eq!(no["role"], expect.offerer_role, "offerer: {no}");
    assert_eq!(na["role"], answerer_role, "answerer: {na}");
    assert_eq!(no["side"], "offerer");
    assert_eq!(na["side"], "answerer");
    // The active side connects somewhere, the passive one does not.
    let active = if expect.offerer_role == "active" {
        no
    } else {
        na
    };
    let passive = if expect.offerer_role == "active" {
        na
    } else {
        no
    };
    assert!(active["connect_to"].is_string(), "{active}");
    assert!(passive["connect_to"].is_null(), "{passive}");
    assert_eq!(
        no["remote_setup"],
        expect.offerer_sees.map_or(Value::Null, Value::from),
        "offerer: {no}"
    );
    assert_eq!(
        na["remote_setup"],
        expect.answerer_sees.map_or(Value::Null, Value::from),
        "answerer: {na}"
    );
    for (n, w) in [(no, expect.offerer_warning), (na, expect.answerer_warning)] {
        let warnings = n["warnings"].as_array().unwrap();
        match w {
            Some(w) => assert!(
                warnings.iter().any(|x| x.as_str().unwrap().contains(w)),
                "expected a warning containing {w:?}: {n}"
            ),
            None => assert!(warnings.is_empty(), "{n}"),
        }
    }
    assert!(no["tls_role"].is_null() && no["tls"] == false);
    check_side(&eo, FROM_OFFERER, FROM_ANSWERER, "offerer");
    check_side(&ea, FROM_ANSWERER, FROM_OFFERER, "answerer");
    if let Some(c) = cap.as_mut() {
        c.stop();
        // The two text messages (the active side's first SEND may be one of them).
        c.assert_clean_msrp(2);
        let bodies = c.query("msrp.method == \"SEND\"", &["msrp.messageid"]);
        assert!(bodies.len() >= 2, "{bodies:?}");
    }
}

#[test]
fn reachable_offerer_and_reachable_answerer() {
    // RFC 6135 §4.2.2: actpass offer; a reachable answerer answers passive, the offerer connects.
    scenario(
        "reachable",
        "reachable",
        None,
        None,
        Expect {
            offerer_role: "active",
            offerer_sees: Some("passive"),
            answerer_sees: Some("actpass"),
            offerer_warning: None,
            answerer_warning: None,
        },
    );
}

#[test]
fn reachable_offerer_and_answerer_behind_nat() {
    // An answerer behind a NAT answers active and connects out.
    scenario(
        "reachable",
        "behind-nat",
        None,
        None,
        Expect {
            offerer_role: "passive",
            offerer_sees: Some("active"),
            answerer_sees: Some("actpass"),
            offerer_warning: None,
            answerer_warning: None,
        },
    );
}

#[test]
fn offerer_behind_nat_and_reachable_answerer() {
    // An offerer behind a NAT offers active (port 9); the answerer must be passive.
    scenario(
        "behind-nat",
        "reachable",
        None,
        None,
        Expect {
            offerer_role: "active",
            offerer_sees: Some("passive"),
            answerer_sees: Some("active"),
            offerer_warning: None,
            answerer_warning: None,
        },
    );
}

#[test]
fn both_behind_nat() {
    // Both behind NATs: the offerer is active, the answerer passive with a warning that the
    // connection is unlikely to reach it (on loopback it does).
    scenario(
        "behind-nat",
        "behind-nat",
        None,
        None,
        Expect {
            offerer_role: "active",
            offerer_sees: Some("passive"),
            answerer_sees: Some("active"),
            offerer_warning: None,
            answerer_warning: Some("unlikely to reach us"),
        },
    );
}

#[test]
fn offer_without_setup_follows_rfc4975() {
    // A peer that omits a=setup (RFC 4975 behaviour): the offerer connects. The offer is
    // hand-edited between the processes.
    scenario(
        "reachable",
        "reachable",
        edit(without_setup),
        None,
        Expect {
            offerer_role: "active",
            offerer_sees: Some("passive"),
            answerer_sees: None,
            offerer_warning: None,
            answerer_warning: Some("has no a=setup"),
        },
    );
}

#[test]
fn answer_without_setup_means_passive_answerer() {
    // RFC 4145 §4.1: an answer without a=setup is passive, so the offerer connects.
    scenario(
        "reachable",
        "reachable",
        None,
        edit(without_setup),
        Expect {
            offerer_role: "active",
            offerer_sees: None,
            answerer_sees: Some("actpass"),
            offerer_warning: Some("has no a=setup"),
            answerer_warning: None,
        },
    );
}

#[test]
fn holdconn_offer_is_treated_as_absent() {
    // RFC 6135 §4.2.1: a received holdconn counts as no a=setup: the offerer connects.
    scenario(
        "reachable",
        "reachable",
        edit(|s| s.replace("a=setup:actpass", "a=setup:holdconn")),
        None,
        Expect {
            offerer_role: "active",
            offerer_sees: Some("passive"),
            answerer_sees: Some("holdconn"),
            offerer_warning: None,
            answerer_warning: Some("holdconn"),
        },
    );
}

#[test]
fn received_connection_existing_is_ignored() {
    // RFC 6135 §4.4: a=connection is ignored; the answerer behind a NAT still connects.
    scenario(
        "reachable",
        "behind-nat",
        edit(|s| format!("{s}a=connection:existing\r\n")),
        edit(|s| format!("{s}a=connection:existing\r\n")),
        Expect {
            offerer_role: "passive",
            offerer_sees: Some("active"),
            answerer_sees: Some("actpass"),
            offerer_warning: Some("a=connection"),
            answerer_warning: Some("a=connection"),
        },
    );
}
