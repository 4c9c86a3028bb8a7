//! Interop with an independent relay through the CLI: Debian's Kamailio 5.6 as the MSRP relay
//! (RFC 4976) of both `msrp offer` and `msrp answer`, over plain TCP and over TLS. Each
//! process authenticates to Kamailio (HTTP Digest, RFC 4976 §5.1), and they exchange a text
//! and a file in chunks below Kamailio's frame limit both ways; content and SHA-256 are
//! checked on the receivers through the `--json` events.
//!
//! Kamailio is started and stopped (whole process group, in Drop) by the harness of the
//! library tests, `msrp/tests/common/kamailio.rs`; without Kamailio the tests print
//! "skipped" unless CI=true. Everything runs on loopback with bounded waits.

#[path = "../../msrp/tests/common/kamailio.rs"]
mod kamailio;
#[path = "common/pair.rs"]
mod pair;
#[path = "common/relayed.rs"]
mod relayed;

use kamailio::{Kamailio, Options, PASSWORD};
use relayed::{exchange, relay_args, sdp_path, use_path};

/// Checks what the relay gave each side and what went into the SDP: one Use-Path URI each,
/// on Kamailio's listener (`scheme://127.0.0.1:port/...`), and a=path = Use-Path + own URI.
fn check_paths(x: &relayed::Exchange, relay_prefix: &str) {
    for (ev, sdp, who) in [
        (&x.offerer.events, &x.offer_sdp, "offerer"),
        (&x.answerer.events, &x.answer_sdp, "answerer"),
    ] {
        let up = use_path(ev);
        assert_eq!(up.len(), 1, "{who}: {up:?}");
        assert!(up[0].starts_with(relay_prefix), "{who}: {up:?}");
        let path = sdp_path(sdp);
        assert_eq!(path.len(), 2, "{who}: {sdp}");
        assert_eq!(path[0], up[0], "{who}: {sdp}");
    }
}

#[test]
fn two_cli_endpoints_through_kamailio_over_tcp() {
    let Some(k) = Kamailio::start(Options::default()) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let relay = [k.tcp_uri()];
    let x = exchange(
        dir.path(),
        &relay_args(&relay, "alice", PASSWORD),
        &relay_args(&relay, "bob", PASSWORD),
        &|| format!("kamailio log:\n{}", k.log_tail(60)),
    );
    check_paths(&x, &format!("msrp://{}/", k.tcp));
    assert!(x.offer_sdp.contains("TCP/MSRP"), "{}", x.offer_sdp);
}

#[test]
fn two_cli_endpoints_through_kamailio_over_tls() {
    let Some(k) = Kamailio::start(Options {
        tls: true,
        ..Options::default()
    }) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // Kamailio's certificate (self-signed, for 127.0.0.1) is the CA the endpoints verify the
    // relay against (RFC 4976 §6.3: the client checks the relay's certificate, whose name is
    // the host of the relay URI).
    let ca = dir.path().join("kamailio-ca.pem");
    std::fs::write(&ca, k.identity.as_ref().unwrap().certificate_pem()).unwrap();
    let relay = [k.tls_uri().unwrap()];
    let tls = |user: &str| {
        let mut v = relay_args(&relay, user, PASSWORD);
        v.extend(["--tls".into(), "--ca".into(), ca.display().to_string()]);
        v
    };
    let x = exchange(dir.path(), &tls("alice"), &tls("bob"), &|| {
        format!("kamailio log:\n{}", k.log_tail(60))
    });
    check_paths(&x, &format!("msrps://{}/", k.tls.unwrap()));
    assert!(x.offer_sdp.contains("TCP/TLS/MSRP"), "{}", x.offer_sdp);
}
