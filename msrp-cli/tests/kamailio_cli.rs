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
#[path = "common/relay_proc.rs"]
mod relay_proc;
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

/// The source `ip:port` of the client whose AUTH carried `local_uri` in From-Path, and the
/// sources of every SEND frame in order, from Kamailio's per-frame debug log (`WITH_DEBUG`:
/// `MSRP [METHOD] from IP:PORT ... fpath=[...]`).
fn auth_source_and_sends(log: &str, local_uri: &str) -> (String, Vec<String>) {
    let from = |l: &str| {
        l.split(" from ")
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .unwrap_or("")
            .to_string()
    };
    let auth = log
        .lines()
        .find(|l| l.contains("MSRP [AUTH]") && l.contains(&format!("fpath=[{local_uri}]")))
        .map(from)
        .unwrap_or_else(|| panic!("no AUTH from {local_uri} in:\n{log}"));
    let sends = log
        .lines()
        .filter(|l| l.contains("MSRP [SEND]"))
        .map(from)
        .collect();
    (auth, sends)
}

#[test]
fn two_cli_endpoints_through_kamailio_over_tcp() {
    let Some(k) = Kamailio::start(Options {
        debug: true,
        ..Options::default()
    }) else {
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
    // RFC 6135 §4.5 through Kamailio: the answerer (behind the relay, so it answers the
    // actpass offer with passive) connected to Kamailio too, but the first SEND Kamailio saw
    // came from the offerer's connection, and the answerer's connection sent SENDs only later
    // (its text and file).
    let local_uri = |ev: &[serde_json::Value]| {
        pair::of_kind(ev, "negotiated")[0]["local_uri"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert!(x.answer_sdp.contains("a=setup:passive"), "{}", x.answer_sdp);
    let log = k.log();
    let (offerer, sends) = auth_source_and_sends(&log, &local_uri(&x.offerer.events));
    let (answerer, _) = auth_source_and_sends(&log, &local_uri(&x.answerer.events));
    assert_ne!(offerer, answerer);
    assert_eq!(sends.first(), Some(&offerer), "{log}");
    let first_of_answerer = sends.iter().position(|s| *s == answerer);
    assert!(
        first_of_answerer.is_some_and(|i| i > 0),
        "the answerer's own SENDs: {sends:?}"
    );
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

/// A chain across implementations (RFC 4976 §3, figure 2): the offerer behind Kamailio, the
/// answerer behind an `msrp relay` process. The offerer's To-Path is Kamailio, our relay, the
/// answerer: Kamailio opens a connection to our relay (plain TCP, by the URI in To-Path), and
/// our relay sends the answerer's traffic back over that same connection (RFC 4976 §6.4.2:
/// an existing connection to the next hop is used) rather than opening one to Kamailio's
/// URI. Text and chunked file both ways, checked on the receivers.
#[test]
fn chain_of_kamailio_and_msrp_relay() {
    let Some(k) = Kamailio::start(Options::default()) else {
        return;
    };
    let fx = relay_proc::Fixture::new();
    // Our relay names itself 127.0.0.1 so that Kamailio needs no name resolution.
    let ours = fx.start_as("msrp relay", "127.0.0.1", &[]);
    let ours_uri = format!("msrp://127.0.0.1:{};tcp", ours.tcp.unwrap().port());
    let dir = tempfile::tempdir().unwrap();
    let x = exchange(
        dir.path(),
        &relay_args(&[k.tcp_uri()], "alice", PASSWORD),
        &relay_args(&[ours_uri], "bob", "bob-pw"),
        &|| {
            format!(
                "kamailio log:\n{}\nmsrp relay log:\n{}",
                k.log_tail(60),
                ours.log()
            )
        },
    );
    let ua = use_path(&x.offerer.events);
    let ub = use_path(&x.answerer.events);
    assert!(ua[0].starts_with(&format!("msrp://{}/", k.tcp)), "{ua:?}");
    assert!(
        ub[0].starts_with(&format!("msrp://127.0.0.1:{}/", ours.tcp.unwrap().port())),
        "{ub:?}"
    );
    // Our relay: the answerer's connection (its AUTH) and one accepted from Kamailio; every
    // SEND of both directions crossed between the two; no outbound connection.
    let log = ours.log();
    let bob = log
        .lines()
        .find(|l| l.contains("authenticated") && relay_proc::field(l, "user") == Some("bob"))
        .and_then(|l| relay_proc::field(l, "conn"))
        .unwrap_or_else(|| panic!("{log}"));
    let accepted: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("accepted connection"))
        .filter_map(|l| relay_proc::field(l, "conn"))
        .collect();
    assert_eq!(accepted.len(), 2, "{log}");
    let kam = *accepted.iter().find(|c| **c != bob).unwrap();
    assert!(!log.contains("connecting to next hop"), "{log}");
    let sends = |from: &str, to: &str| {
        log.lines()
            .filter(|l| {
                l.contains("forwarded")
                    && relay_proc::field(l, "method") == Some("SEND")
                    && relay_proc::field(l, "from") == Some(from)
                    && relay_proc::field(l, "to") == Some(to)
            })
            .count()
    };
    // One text and nine file chunks each way (plus a binding SEND from the active side).
    assert!(sends(kam, bob) >= 10, "{log}");
    assert!(sends(bob, kam) >= 10, "{log}");
}
