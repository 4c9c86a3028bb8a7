//! `msrp offer --reachability auto --stun HOST:PORT` over loopback with a real coturn on
//! 127.0.0.1/127.0.0.2: no NAT, so discovery from the listener's port says reachable, the
//! offer is actpass with the listener's own address (RFC 6135 §4.2.2), the `nat` event
//! carries the verdict and reason, and the session works. Through real NATs:
//! `nat_sessions.rs`.

#[path = "../../msrp/tests/common/coturn.rs"]
mod coturn;
#[path = "common/pair.rs"]
mod pair;

use std::time::Duration;

use coturn::Coturn;
use pair::{of_kind, run_pair, Side};

const LIMIT: Duration = Duration::from_secs(60);

#[test]
fn auto_offerer_on_loopback_offers_actpass_with_its_address_and_the_session_works() {
    let Some(srv) = Coturn::start(true) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let stun = srv.primary.to_string();
    let offer = Side::new("auto").args(&[
        "--stun",
        &stun,
        "--stun-rto-ms",
        "50",
        "--send",
        "hi from auto",
        "--count",
        "1",
    ]);
    let port = offer.port;
    let answer = Side::new("behind-nat").args(&["--send", "hi back", "--count", "1"]);
    let mut p = run_pair(dir.path(), offer, answer, None, None, LIMIT);
    let so = p.offerer.wait(LIMIT);
    let sa = p.answerer.wait(LIMIT);
    assert!(
        so.success() && sa.success(),
        "offerer {so}, answerer {sa}\n{}\n{}\n{}",
        p.offer_sdp,
        p.offerer.stderr(),
        p.answerer.stderr()
    );
    // The offer: actpass at the listener's own address (no NAT on loopback).
    assert!(p.offer_sdp.contains("a=setup:actpass"), "{}", p.offer_sdp);
    assert!(
        p.offer_sdp.contains(&format!("msrp://127.0.0.1:{port}/")),
        "{}",
        p.offer_sdp
    );
    let eo = p.offerer.events();
    let nat = of_kind(&eo, "nat");
    assert_eq!(nat.len(), 1, "{eo:?}");
    let nat = nat[0];
    assert_eq!(
        eo[0]["event"], "nat",
        "the verdict comes before the negotiation"
    );
    assert_eq!(nat["behind_nat"], false, "{nat}");
    assert_eq!(nat["offer_setup"], "actpass", "{nat}");
    assert_eq!(nat["mapped_address"], format!("127.0.0.1:{port}"), "{nat}");
    assert_eq!(nat["advertised"], format!("127.0.0.1:{port}"), "{nat}");
    assert!(
        nat["reason"].as_str().unwrap().contains("not behind a NAT"),
        "{nat}"
    );
    // The answerer (active, it can only connect out) reached the listener that shared its
    // port with the STUN tests.
    let n = of_kind(&eo, "negotiated")[0];
    assert_eq!(n["role"], "passive", "{n}");
    let m = of_kind(&eo, "message");
    assert_eq!(m.len(), 1, "{eo:?}");
    assert_eq!(m[0]["body"], "hi back");
    assert_eq!(
        of_kind(&p.answerer.events(), "message")[0]["body"],
        "hi from auto"
    );
}

#[test]
fn auto_without_stun_is_a_usage_error_and_no_stun_server_fails_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let mut p = pair::Proc::msrp(
        "offer",
        dir.path(),
        &[
            "offer".to_string(),
            "--local-sdp".into(),
            dir.path().join("o.sdp").to_str().unwrap().into(),
            "--remote-sdp".into(),
            dir.path().join("a.sdp").to_str().unwrap().into(),
            "--reachability".into(),
            "auto".into(),
        ],
        std::process::Stdio::null(),
    );
    assert!(!p.wait(LIMIT).success());
    assert!(
        p.stderr()
            .contains("--reachability auto needs --stun HOST:PORT"),
        "{}",
        p.stderr()
    );

    // A STUN server that is not there: the offer is never written, a clear error.
    let dead = format!("127.0.0.1:{}", pair::free_port());
    let mut p = pair::Proc::msrp(
        "offer2",
        dir.path(),
        &[
            "offer".to_string(),
            "--local-sdp".into(),
            dir.path().join("o2.sdp").to_str().unwrap().into(),
            "--remote-sdp".into(),
            dir.path().join("a2.sdp").to_str().unwrap().into(),
            "--reachability".into(),
            "auto".into(),
            "--stun".into(),
            dead.clone(),
            "--stun-rto-ms".into(),
            "20".into(),
            "--send".into(),
            "x".into(),
        ],
        std::process::Stdio::null(),
    );
    assert!(!p.wait(LIMIT).success());
    let err = p.stderr();
    assert!(
        err.contains(&format!("STUN discovery with {dead} failed")),
        "{err}"
    );
    assert!(!dir.path().join("o2.sdp").exists());
}
