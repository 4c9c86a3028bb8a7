//! End to end through `msrp relay` processes (RFC 4976): `msrp offer` and `msrp answer`
//! authenticate to their relays and exchange a text and a chunked file both ways, checked on
//! the receivers (content and SHA-256, `--json` events and saved files), over plain TCP and
//! over TLS (relay certificates checked against a test CA with the URI's host name), through
//! one relay, through a chain of two relays with one UA behind each, and with one UA behind a
//! chain of two relays (AUTH to the second relay through the first, RFC 4976 §5.1).
//!
//! Every process is killed by a Drop guard; every wait is bounded; loopback only.

#[path = "common/pair.rs"]
mod pair;
#[path = "common/relay_proc.rs"]
mod relay_proc;
#[path = "common/relayed.rs"]
mod relayed;

use relay_proc::{field, Fixture, RelayProc};
use relayed::{exchange, exchange_with, relay_args, sdp_path, use_path};

fn logs(relays: &[&RelayProc]) -> String {
    relays
        .iter()
        .map(|r| format!("{} log:\n{}", r.name, r.log()))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Lines of a relay log with `msg` and `key=value`.
fn lines_with<'a>(log: &'a str, msg: &str, key: &str, value: &str) -> Vec<&'a str> {
    log.lines()
        .filter(|l| l.contains(msg) && field(l, key) == Some(value))
        .collect()
}

/// The relay logged a successful AUTH by `user`.
fn assert_authenticated(r: &RelayProc, user: &str) {
    let log = r.log();
    assert!(
        log.lines()
            .any(|l| l.contains("authenticated") && field(l, "user") == Some(user)),
        "{} did not authenticate {user}:\n{log}",
        r.name
    );
}

/// The relay forwarded at least `n` SENDs (2 texts + 2 files of 9 chunks each at least, plus
/// the binding SEND when a side is active behind it).
fn assert_forwarded_sends(r: &RelayProc, n: usize) {
    let log = r.log();
    let sends = lines_with(&log, "forwarded", "method", "SEND").len();
    assert!(
        sends >= n,
        "{} forwarded {sends} SENDs, expected at least {n}:\n{log}",
        r.name
    );
}

/// Messages of each direction: one text, one file of 9 chunks.
const SENDS_PER_DIRECTION: usize = 1 + 9;

fn one_relay(tls: bool) {
    let fx = Fixture::new();
    let r = fx.start("relay", &[]);
    let uri = if tls { r.tls_uri() } else { r.tcp_uri() };
    let side = |user: &str, pw: &str| {
        let mut v = relay_args(std::slice::from_ref(&uri), user, pw);
        if tls {
            v.extend(["--ca".to_string(), fx.ca()]);
        }
        v
    };
    let dir = tempfile::tempdir().unwrap();
    let x = exchange(
        dir.path(),
        &side("alice", "alice-pw"),
        &side("bob", "bob-pw"),
        &|| logs(&[&r]),
    );
    let scheme_port = if tls {
        format!("msrps://localhost:{}/", r.tls.unwrap().port())
    } else {
        format!("msrp://localhost:{}/", r.tcp.unwrap().port())
    };
    for (ev, sdp) in [
        (&x.offerer.events, &x.offer_sdp),
        (&x.answerer.events, &x.answer_sdp),
    ] {
        let up = use_path(ev);
        assert_eq!(up.len(), 1, "{up:?}");
        // RFC 4976 §6.3: an msrps URI on the TLS port for a client that came over TLS.
        assert!(up[0].starts_with(&scheme_port), "{up:?}");
        assert_eq!(sdp_path(sdp)[0], up[0], "{sdp}");
        assert_eq!(
            sdp.contains("TCP/TLS/MSRP"),
            tls,
            "m-line protocol follows --tls: {sdp}"
        );
    }
    assert_authenticated(&r, "alice");
    assert_authenticated(&r, "bob");
    assert_forwarded_sends(&r, 2 * SENDS_PER_DIRECTION);
    // RFC 6135 §4.5, the answerer's side: both are behind the relay, so the offerer offers
    // actpass and the answerer answers passive; the passive answerer still connects to its
    // relay (`connected` names its own Use-Path URI) but sends no SEND first: the first SEND
    // the relay forwards goes to the answerer's connection, from the offerer's.
    assert!(x.offer_sdp.contains("a=setup:actpass"), "{}", x.offer_sdp);
    assert!(x.answer_sdp.contains("a=setup:passive"), "{}", x.answer_sdp);
    let ca = pair::of_kind(&x.answerer.events, "connected")[0];
    assert_eq!(ca["role"], "passive", "{ca}");
    assert_eq!(
        ca["connect_to"],
        use_path(&x.answerer.events)[0].as_str(),
        "{ca}"
    );
    let log = r.log();
    let conn_of = |user: &str| {
        log.lines()
            .find(|l| l.contains("authenticated") && field(l, "user") == Some(user))
            .and_then(|l| field(l, "conn"))
            .unwrap_or_else(|| panic!("{user}:\n{log}"))
    };
    let (alice, bob) = (conn_of("alice"), conn_of("bob"));
    let first = lines_with(&log, "forwarded", "method", "SEND")[0];
    assert_eq!(field(first, "to"), Some(bob), "{log}");
    assert_eq!(field(first, "from"), Some(alice), "{log}");
}

#[test]
fn two_cli_endpoints_through_one_msrp_relay_over_tcp() {
    one_relay(false);
}

#[test]
fn two_cli_endpoints_through_one_msrp_relay_over_tls() {
    one_relay(true);
}

/// UA A behind relay 1, UA B behind relay 2 (RFC 4976 §3, figure 2): A's To-Path is R1 R2 B,
/// so relay 1 opens a connection to relay 2 (over TLS when relay 2's URI is `msrps:`,
/// verifying its certificate), and B's traffic comes back over that connection.
fn chain_one_ua_behind_each(tls: bool) {
    let fx = Fixture::new();
    let r1 = fx.start("relay 1", &[]);
    let r2 = fx.start("relay 2", &[]);
    let side = |r: &RelayProc, user: &str, pw: &str| {
        let uri = if tls { r.tls_uri() } else { r.tcp_uri() };
        let mut v = relay_args(&[uri], user, pw);
        if tls {
            v.extend(["--ca".to_string(), fx.ca()]);
        }
        v
    };
    let dir = tempfile::tempdir().unwrap();
    let x = exchange(
        dir.path(),
        &side(&r1, "alice", "alice-pw"),
        &side(&r2, "bob", "bob-pw"),
        &|| logs(&[&r1, &r2]),
    );
    let (ua, ub) = (use_path(&x.offerer.events), use_path(&x.answerer.events));
    let port = |r: &RelayProc| if tls { r.tls } else { r.tcp }.unwrap().port();
    assert!(
        ua[0].contains(&format!("localhost:{}/", port(&r1))),
        "{ua:?}"
    );
    assert!(
        ub[0].contains(&format!("localhost:{}/", port(&r2))),
        "{ub:?}"
    );
    assert_authenticated(&r1, "alice");
    assert_authenticated(&r2, "bob");
    // Both relays carried every SEND of both directions.
    for r in [&r1, &r2] {
        assert_forwarded_sends(r, 2 * SENDS_PER_DIRECTION);
    }
    // The relays talk to each other over one connection opened by one of them (RFC 4976
    // §6.4.2: an existing connection to the next hop is used).
    let connects: usize = [&r1, &r2]
        .iter()
        .map(|r| {
            r.log()
                .lines()
                .filter(|l| l.contains("connecting to next hop"))
                .count()
        })
        .sum();
    assert_eq!(connects, 1, "{}", logs(&[&r1, &r2]));
    if tls {
        let opener = [&r1, &r2]
            .into_iter()
            .find(|r| r.log().contains("connecting to next hop"))
            .unwrap();
        let l = opener.log();
        let line = l
            .lines()
            .find(|l| l.contains("connecting to next hop"))
            .unwrap();
        assert_eq!(field(line, "tls"), Some("true"), "{line}");
    }
}

#[test]
fn chain_of_two_msrp_relays_one_ua_behind_each_over_tcp() {
    chain_one_ua_behind_each(false);
}

#[test]
fn chain_of_two_msrp_relays_one_ua_behind_each_over_tls() {
    chain_one_ua_behind_each(true);
}

/// One UA behind a chain of two relays (RFC 4976 §5.1): the offerer connects to relay 1,
/// AUTHs to it, then AUTHs to relay 2 through relay 1 (To-Path R1 R2); relay 2's Use-Path is
/// R1 R2, the offerer's a=path is R2 R1 A, and the answerer (no relay, reachable) reaches
/// the offerer through relay 2 then relay 1. The offerer reaches relay 1 over plain TCP,
/// relay 1 reaches relay 2 over TLS (`msrps:` relay 2, certificate checked against the CA),
/// and the answerer (`--tls`, as the offer is TCP/TLS/MSRP) connects to relay 2 over TLS: it
/// is behind a NAT, so it answers active (RFC 6135 §4.2.2). (A passive answerer would need
/// relay 2 to connect to it over TLS and verify its certificate, which a self-signed UA
/// certificate announced only by a=fingerprint cannot pass.)
#[test]
fn one_ua_behind_a_chain_of_two_msrp_relays() {
    let fx = Fixture::new();
    let r1 = fx.start("relay 1", &[]);
    let r2 = fx.start("relay 2", &[]);
    let mut offer = relay_args(&[r1.tcp_uri(), r2.tls_uri()], "carol", "carol-pw");
    offer.extend(["--ca".to_string(), fx.ca()]);
    let answer = ["--ca".to_string(), fx.ca()];
    let dir = tempfile::tempdir().unwrap();
    let x = exchange_with(
        dir.path(),
        ["reachable", "behind-nat"],
        &offer,
        &answer,
        &|| logs(&[&r1, &r2]),
    );
    let up = use_path(&x.offerer.events);
    assert_eq!(up.len(), 2, "{up:?}");
    // RFC 4976 §5.1: relay 2's Use-Path is relay 1's URI (the From-Path of the AUTH it
    // received, without our own URI) followed by its own.
    assert!(
        up[0].starts_with(&format!("msrp://localhost:{}/", r1.tcp.unwrap().port())),
        "{up:?}"
    );
    assert!(
        up[1].starts_with(&format!("msrps://localhost:{}/", r2.tls.unwrap().port())),
        "{up:?}"
    );
    let path = sdp_path(&x.offer_sdp);
    assert_eq!(path.len(), 3, "{}", x.offer_sdp);
    assert_eq!(path[..2], [up[1].clone(), up[0].clone()], "{}", x.offer_sdp);
    assert_authenticated(&r1, "carol");
    assert_authenticated(&r2, "carol");
    // The answerer has no relay: its SDP path is its own URI only.
    assert_eq!(sdp_path(&x.answer_sdp).len(), 1, "{}", x.answer_sdp);
    for r in [&r1, &r2] {
        assert_forwarded_sends(r, 2 * SENDS_PER_DIRECTION);
    }
}

/// RFC 4976 §6.4.1: the relay answers each chunk with 200 at once; when the next hop then
/// fails (here the answerer's address refuses connections) it sends a REPORT 408 back to the
/// sender, which must treat the session as failed (RFC 4975 §7.3.2) even though the chunk
/// already counted as sent. The offerer (active: its binding SEND is the first to fail)
/// exits non-zero with a `closed` event naming the 408 REPORT, at once rather than after its
/// timeout, and says that its text was not sent.
#[test]
fn a_failure_beyond_the_relay_reaches_the_sender() {
    let fx = Fixture::new();
    let r = fx.start("relay", &[]);
    let dir = tempfile::tempdir().unwrap();
    let offer = dir.path().join("offer.sdp");
    let answer = dir.path().join("answer.sdp");
    let mut args: Vec<String> = [
        "offer",
        "--json",
        "--local-sdp",
        offer.to_str().unwrap(),
        "--remote-sdp",
        answer.to_str().unwrap(),
        "--timeout",
        "30",
        "--send",
        "into the void",
        "--count",
        "1",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(relay_args(&[r.tcp_uri()], "alice", "alice-pw"));
    let mut p = pair::Proc::msrp("offerer", dir.path(), &args, std::process::Stdio::null());
    pair::wait_file(&offer, relayed::LIMIT, &mut [&mut p]);
    // A passive answerer at a loopback port where nobody listens.
    let dead = pair::free_port();
    pair::write_atomic(
        &answer,
        &format!(
            "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
             m=message {dead} TCP/MSRP *\r\na=accept-types:*\r\n\
             a=path:msrp://127.0.0.1:{dead}/deadbeef01;tcp\r\na=setup:passive\r\n"
        ),
    );
    let start = std::time::Instant::now();
    let st = p.wait(relayed::LIMIT);
    let ev = p.events();
    assert!(!st.success(), "{ev:?}");
    assert!(
        start.elapsed() < std::time::Duration::from_secs(20),
        "the failure came only with the timeout: {ev:?}"
    );
    // Depending on timing the REPORT for the binding SEND ends the session before the text
    // goes out (then the closed event names the REPORT and the text is listed as not sent),
    // or after (then the failed event names it).
    let failed_408 = pair::of_kind(&ev, "failed")
        .iter()
        .any(|f| f["status"] == 408 && f["reason"].as_str().unwrap().contains("REPORT"));
    let closed = pair::of_kind(&ev, "closed");
    assert_eq!(closed.len(), 1, "{ev:?}");
    let reason = closed[0]["reason"].as_str().unwrap();
    let closed_on_report = reason.contains("REPORT") && reason.contains("408");
    assert!(
        failed_408 || closed_on_report,
        "{ev:?}\n{}\n{}",
        p.stderr(),
        r.log()
    );
    if closed_on_report {
        assert!(p.stderr().contains("1 text(s) not sent"), "{}", p.stderr());
    }
    // (A `delivered` event may come first: the relay's hop-by-hop 200 for the text can
    // precede the REPORT; the failure must follow it, which the checks above ensure.)
    // The relay did send the REPORT.
    assert!(
        r.log()
            .lines()
            .any(|l| l.contains("failure REPORT sent") && field(l, "status") == Some("408")),
        "{}",
        r.log()
    );
}

/// RFC 4976 §9.2: the relay's certificate MUST match the host of the relay URI and be signed
/// by an acceptable CA. The relays' certificate is for `localhost` under the test CA: naming
/// the relay by its IP address fails, and so does `localhost` without the test CA (system
/// roots only, or another CA); each fails before any SDP with a message naming the relay.
/// A plain TCP relay works but is warned about (RFC 4976 §9.4 wants TLS to a relay).
#[test]
fn relay_certificate_must_match_the_uri_host_and_a_trusted_ca() {
    let fx = Fixture::new();
    let r = fx.start("relay", &[]);
    let other_ca = Fixture::new();
    let port = r.tls.unwrap().port();
    let by_ip = format!("msrps://127.0.0.1:{port};tcp");
    let cases: [(&str, String, Option<String>); 3] = [
        (
            "IP address instead of the certificate's name",
            by_ip,
            Some(fx.ca()),
        ),
        ("no CA for the test certificate", r.tls_uri(), None),
        ("another CA", r.tls_uri(), Some(other_ca.ca())),
    ];
    for (what, uri, ca) in cases {
        let dir = tempfile::tempdir().unwrap();
        let local = dir.path().join("offer.sdp");
        let mut args: Vec<String> = [
            "offer",
            "--local-sdp",
            local.to_str().unwrap(),
            "--remote-sdp",
            dir.path().join("answer.sdp").to_str().unwrap(),
            "--timeout",
            "10",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend(relay_args(std::slice::from_ref(&uri), "alice", "alice-pw"));
        if let Some(ca) = ca {
            args.extend(["--ca".to_string(), ca]);
        }
        let mut p = pair::Proc::msrp("offerer", dir.path(), &args, std::process::Stdio::null());
        let st = p.wait(relayed::LIMIT);
        let err = p.stderr();
        assert!(!st.success(), "{what}: {err}");
        assert!(
            err.contains("relay authentication failed: could not connect to relay")
                && err.contains(&uri),
            "{what}: {err}"
        );
        assert!(
            err.contains("certificate") || err.contains("Certificate"),
            "{what}: {err}"
        );
        assert!(!local.exists(), "{what}: no SDP without the relay");
        assert!(!err.contains("plain TCP"), "{what}: {err}");
    }
    // No AUTH reached the relay.
    assert!(!r.log().contains("authenticated"), "{}", r.log());

    // Plain TCP: works (the scenario tests), with a warning.
    let dir = tempfile::tempdir().unwrap();
    let mut args: Vec<String> = [
        "offer",
        "--local-sdp",
        dir.path().join("offer.sdp").to_str().unwrap(),
        "--remote-sdp",
        dir.path().join("answer.sdp").to_str().unwrap(),
        "--timeout",
        "1",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(relay_args(&[r.tcp_uri()], "alice", "alice-pw"));
    let mut p = pair::Proc::msrp("offerer", dir.path(), &args, std::process::Stdio::null());
    p.wait(relayed::LIMIT);
    assert!(
        p.stderr()
            .contains(&format!("warning: relay {} is plain TCP", r.tcp_uri())),
        "{}",
        p.stderr()
    );
    assert!(dir.path().join("offer.sdp").exists(), "{}", p.stderr());
}

/// RFC 4976 §4.2: the URIs a relay hands out carry a fully qualified domain name. A relay
/// whose URIs would carry an IP address (no --host and a specific listen address, or --host
/// given as an address) says so on stderr at start; one with a name does not.
#[test]
fn relay_warns_when_its_uris_carry_an_ip_address() {
    let fx = Fixture::new();
    let by_name = fx.start("named relay", &[]);
    let users = fx.path("users").display().to_string();
    let by_ip = relay_proc::spawn_relay(
        "relay by IP",
        &[
            "relay".into(),
            "--json".into(),
            "--listen".into(),
            "127.0.0.1:0".into(),
            "--realm".into(),
            relay_proc::REALM.into(),
            "--users".into(),
            users,
        ],
    );
    let warning = "RFC 4976 §4.2 wants a fully qualified domain name";
    // The warning is printed before the listening event the spawn waited for; its reader
    // thread may lag a little.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while !by_ip.log().contains(warning) && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(
        by_ip
            .log()
            .contains("the relay's URIs will carry the IP address 127.0.0.1")
            && by_ip.log().contains(warning),
        "{}",
        by_ip.log()
    );
    assert!(!by_name.log().contains(warning), "{}", by_name.log());
}
