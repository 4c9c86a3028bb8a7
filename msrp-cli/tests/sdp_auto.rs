//! `msrp sdp offer|answer --reachability auto --stun HOST:PORT` against a real coturn on
//! loopback (no NAT there: reachable, actpass with the local address, RFC 6135 §4.2.2). The
//! NAT cases run in real namespaces (`nat_sessions.rs`).

#[path = "../../msrp/tests/common/coturn.rs"]
mod coturn;
#[path = "common/run.rs"]
mod run;

use coturn::Coturn;
use run::msrp;

#[path = "../../msrp/tests/common/ports.rs"]
mod ports;
use ports::free_port;

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn sdp_offer_auto_on_loopback_is_actpass_with_the_local_address() {
    let Some(srv) = Coturn::start(true) else {
        return;
    };
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let stun = srv.primary.to_string();
    let out = msrp(&[
        "sdp",
        "offer",
        "--listen",
        &listen,
        "--reachability",
        "auto",
        "--stun",
        &stun,
        "--stun-rto-ms",
        "50",
        "--session-id",
        "autotest1",
    ]);
    let (sdp, err) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{err}\n{}", srv.log());
    assert!(sdp.contains("a=setup:actpass"), "{sdp}");
    assert!(
        sdp.contains(&format!("a=path:msrp://{listen}/autotest1;tcp")),
        "{sdp}"
    );
    assert!(sdp.contains(&format!("m=message {port} TCP/MSRP")), "{sdp}");
    // The verdict and its reason are on stderr.
    assert!(err.contains("reachability: actpass"), "{err}");
    assert!(err.contains("not behind a NAT"), "{err}");
}

#[test]
fn sdp_answer_auto_on_loopback_accepts_the_connection_at_the_local_address() {
    let Some(srv) = Coturn::start(true) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let offer = dir.path().join("offer.sdp");
    // An offerer that can only connect out (RFC 6135 §4.2.2 active offer).
    let o = msrp(&[
        "sdp",
        "offer",
        "--listen",
        "127.0.0.1:2855",
        "--reachability",
        "behind-nat",
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    std::fs::write(&offer, &o.stdout).unwrap();
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let stun = srv.primary.to_string();
    let out = msrp(&[
        "sdp",
        "answer",
        "--offer",
        offer.to_str().unwrap(),
        "--listen",
        &listen,
        "--reachability",
        "auto",
        "--stun",
        &stun,
        "--stun-rto-ms",
        "50",
    ]);
    let (sdp, err) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{err}");
    assert!(sdp.contains("a=setup:passive"), "{sdp}");
    assert!(sdp.contains(&format!("a=path:msrp://{listen}/")), "{sdp}");
    // Reachable per STUN: no RFC 6135 §4.2.2 "unreachable passive" warning.
    assert!(!err.contains("warning"), "{err}");
}

#[test]
fn sdp_auto_needs_a_stun_server_and_stun_needs_auto() {
    let out = msrp(&["sdp", "offer", "--reachability", "auto"]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("--reachability auto needs --stun HOST:PORT"),
        "{err}"
    );

    let out = msrp(&["sdp", "offer", "--stun", "127.0.0.1:3478"]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("--stun is only used with --reachability auto"),
        "{err}"
    );

    let out = msrp(&[
        "sdp",
        "offer",
        "--reachability",
        "auto",
        "--stun",
        "nocolon",
    ]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("expected HOST:PORT"), "{err}");
}

#[test]
fn sdp_auto_with_no_stun_server_fails_clearly_and_in_bounded_time() {
    let port = free_port();
    let stun = format!("127.0.0.1:{port}");
    let out = msrp(&[
        "sdp",
        "offer",
        "--listen",
        &format!("127.0.0.1:{}", free_port()),
        "--reachability",
        "auto",
        "--stun",
        &stun,
        "--stun-rto-ms",
        "20",
    ]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("STUN discovery with"), "{err}");
    assert!(err.contains(&stun), "{err}");
}
