//! `msrp demo`: the README's main command runs the whole stack and reports what happened.

use std::process::Command;

use serde_json::Value;

fn demo(args: &[&str]) -> (i32, Vec<Value>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_msrp"))
        .arg("demo")
        .args(args)
        .output()
        .expect("run msrp demo");
    let stdout = String::from_utf8(out.stdout).expect("utf-8 stdout");
    let events = if args.contains(&"--json") {
        stdout
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect()
    } else {
        Vec::new()
    };
    let text = if args.contains(&"--json") {
        String::from_utf8_lossy(&out.stderr).into_owned()
    } else {
        stdout
    };
    (out.status.code().unwrap_or(-1), events, text)
}

fn find<'a>(events: &'a [Value], name: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["event"] == name).collect()
}

/// Checks the negotiation, chat and transfer events common to both variants.
fn check_session(events: &[Value], tls: bool) {
    let sdp = find(events, "sdp");
    assert_eq!(sdp.len(), 2, "{events:?}");
    // RFC 6135 §4.2.2: reachable offerer offers actpass; NATed answerer answers active on port 9.
    assert_eq!(sdp[0]["kind"], "offer");
    assert_eq!(sdp[0]["setup"], "actpass");
    assert!(sdp[0]["sdp"]
        .as_str()
        .unwrap()
        .contains("a=setup:actpass\r\n"));
    assert_eq!(sdp[1]["kind"], "answer");
    assert_eq!(sdp[1]["setup"], "active");
    let answer = sdp[1]["sdp"].as_str().unwrap();
    let proto = if tls { "TCP/TLS/MSRP" } else { "TCP/MSRP" };
    assert!(
        answer.contains(&format!("m=message 9 {proto} *")),
        "{answer}"
    );
    for s in &sdp {
        assert_eq!(
            s["sdp"]
                .as_str()
                .unwrap()
                .contains("a=fingerprint:sha-256 "),
            tls
        );
    }
    let neg = find(events, "negotiated");
    assert_eq!(neg.len(), 1);
    assert_eq!(neg[0]["alice"]["role"], "passive");
    assert_eq!(neg[0]["bob"]["role"], "active");
    assert_eq!(neg[0]["alice"]["connect_to"], Value::Null);
    let path = neg[0]["alice"]["local_uri"].as_str().unwrap();
    assert_eq!(neg[0]["bob"]["connect_to"], path);
    if tls {
        assert_eq!(neg[0]["alice"]["tls_role"], "server");
        assert_eq!(neg[0]["bob"]["tls_role"], "client");
        assert!(path.starts_with("msrps://"));
    } else {
        assert_eq!(neg[0]["bob"]["tls_role"], Value::Null);
    }
    let conn = find(events, "connected");
    assert_eq!(conn[0]["active"], "bob");
    assert_eq!(conn[0]["fingerprints_verified"], tls);
    let msgs = find(events, "message");
    assert_eq!(msgs.len(), 4);
    assert_eq!(msgs[0]["from"], "alice");
    assert_eq!(msgs[1]["from"], "bob");
    assert!(msgs.iter().all(|m| m["content_type"] == "text/plain"));
    let tr = find(events, "transfer");
    assert_eq!(tr.len(), 1);
    assert_eq!(tr[0]["bytes"], 2 << 20);
    assert_eq!(tr[0]["sha256_sent"], tr[0]["sha256_received"]);
    assert_eq!(tr[0]["sha256_sent"].as_str().unwrap().len(), 64);
    let progress = find(events, "progress");
    assert_eq!(progress.last().unwrap()["bytes"], 2 << 20);
    let summary = find(events, "summary");
    assert_eq!(summary.len(), 1);
    assert_eq!(summary[0]["ok"], true);
    assert_eq!(events.last().unwrap()["event"], "summary");
}

#[test]
fn demo_json_negotiates_chats_and_transfers() {
    let (code, events, stderr) = demo(&["--json", "--size", "2"]);
    assert_eq!(code, 0, "stderr: {stderr}");
    check_session(&events, false);
}

#[test]
fn demo_tls_json_pins_fingerprints_and_active_is_tls_client() {
    let (code, events, stderr) = demo(&["--json", "--tls", "--size", "2"]);
    assert_eq!(code, 0, "stderr: {stderr}");
    let tls = find(&events, "tls");
    assert_eq!(tls.len(), 1);
    let offer = find(&events, "sdp")[0]["sdp"].as_str().unwrap().to_string();
    let alice_fp = tls[0]["alice_fingerprint"].as_str().unwrap();
    assert!(
        offer.contains(&format!("a=fingerprint:{alice_fp}")),
        "{offer}"
    );
    check_session(&events, true);
}

#[test]
fn demo_transcript_shows_sdp_roles_chat_and_summary() {
    let (code, _, out) = demo(&["--size", "1"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("a=setup:actpass   <== RFC 6135 COMEDIA role"),
        "{out}"
    );
    assert!(
        out.contains("a=setup:active   <== RFC 6135 COMEDIA role"),
        "{out}"
    );
    assert!(out.contains("Bob   active: opens the connection to msrp://127.0.0.1:"));
    assert!(out.contains("Bob -> Alice Go ahead."));
    let last = out.lines().last().unwrap();
    assert!(
        last.starts_with("OK: 1.0 MiB (1048576 bytes) Alice -> Bob, sha256 match"),
        "{last}"
    );
}

#[test]
fn demo_step_timeout_fails_with_a_clear_message() {
    // Some step (the connection or a message round trip) cannot complete within zero
    // seconds: the demo says which step failed and what to do.
    let (code, _, stderr) = demo(&["--json", "--timeout", "0"]);
    assert_eq!(code, 1);
    assert!(
        stderr.lines().any(|l| l.starts_with("msrp: ")
            && l.contains("did not finish within 0 s (raise --timeout on a slow machine)")),
        "{stderr}"
    );
}

/// The first URI of an SDP's a=path.
fn first_path_uri(sdp: &str) -> String {
    sdp.lines()
        .find_map(|l| l.strip_prefix("a=path:"))
        .and_then(|p| p.split_whitespace().next())
        .unwrap_or_else(|| panic!("no a=path: {sdp}"))
        .to_string()
}

/// `--relay`: an in-process `msrp relay` on loopback; both endpoints authenticate to it (RFC
/// 4976 §5.1, their Use-Path opens their a=path), both connect to it (RFC 6135 §4.5), and the
/// chat and the file go through it whole.
#[test]
fn demo_relay_json_authenticates_both_and_relays_chat_and_file() {
    check_relay(false);
}

/// `--relay --tls`: the same with the relay reached over TLS (`msrps:`), its generated
/// certificate verified by both endpoints.
#[test]
fn demo_relay_tls_json_authenticates_over_msrps() {
    check_relay(true);
}

fn check_relay(tls: bool) {
    let mut args = vec!["--json", "--relay", "--size", "2"];
    if tls {
        args.push("--tls");
    }
    let (code, events, stderr) = demo(&args);
    assert_eq!(code, 0, "stderr: {stderr}");
    let relay = find(&events, "relay");
    assert_eq!(relay.len(), 1, "{events:?}");
    let scheme = if tls { "msrps" } else { "msrp" };
    let relay_uri = relay[0]["uri"].as_str().unwrap();
    let base = format!("{scheme}://127.0.0.1:");
    assert!(relay_uri.starts_with(&base), "{relay_uri}");
    assert_eq!(relay[0]["fingerprint"].is_string(), tls, "{}", relay[0]);
    let relay_port = relay_uri[base.len()..]
        .trim_end_matches(";tcp")
        .parse::<u16>()
        .unwrap();
    assert_ne!(relay_port, 0);
    let relay_prefix = format!("{base}{relay_port}/");
    // Our own URIs follow the transport too.
    let proto = if tls { "TCP/TLS/MSRP" } else { "TCP/MSRP" };

    // Both authenticated, each with its own Use-Path at the relay.
    let auth = find(&events, "authenticated");
    assert_eq!(auth.len(), 2, "{events:?}");
    let mut use_paths = Vec::new();
    for (a, who) in auth.iter().zip(["alice", "bob"]) {
        assert_eq!(a["who"], who, "{a}");
        assert_eq!(a["user"], who, "{a}");
        assert_eq!(a["relay"], relay_uri, "{a}");
        let up = a["use_path"].as_array().unwrap();
        assert_eq!(up.len(), 1, "{a}");
        let up = up[0].as_str().unwrap().to_string();
        assert!(up.starts_with(&relay_prefix), "{a}");
        assert!(a["expires"].as_u64().unwrap() > 0, "{a}");
        use_paths.push(up);
    }
    assert_ne!(use_paths[0], use_paths[1]);

    // RFC 4976 §5.1: each SDP's a=path starts with its sender's Use-Path.
    let sdp = find(&events, "sdp");
    assert_eq!(sdp.len(), 2, "{events:?}");
    assert_eq!(
        first_path_uri(sdp[0]["sdp"].as_str().unwrap()),
        use_paths[0]
    );
    assert_eq!(
        first_path_uri(sdp[1]["sdp"].as_str().unwrap()),
        use_paths[1]
    );
    for s in &sdp {
        assert!(s["sdp"].as_str().unwrap().contains(proto), "{s}");
    }
    // Relayed means reachable (RFC 6135 §4.2.2): actpass, and the relayed answerer passive.
    assert_eq!(sdp[0]["setup"], "actpass");
    assert_eq!(sdp[1]["setup"], "passive");

    // RFC 6135 §4.5: both connect, each to its relay; Alice (active) sends the first SEND.
    let neg = find(&events, "negotiated");
    assert_eq!(neg[0]["alice"]["role"], "active");
    assert_eq!(neg[0]["bob"]["role"], "passive");
    assert_eq!(neg[0]["alice"]["connect_to"], use_paths[0].as_str());
    assert_eq!(neg[0]["bob"]["connect_to"], use_paths[1].as_str());
    let conn = find(&events, "connected");
    assert_eq!(conn.len(), 1);
    assert_eq!(conn[0]["relay"], relay_uri);
    assert_eq!(conn[0]["active"], "alice");
    assert_eq!(conn[0]["tls"], tls);
    let conns = conn[0]["connections"].as_array().unwrap();
    assert_eq!(conns.len(), 2, "{}", conn[0]);
    for (c, (who, up)) in conns
        .iter()
        .zip([("alice", &use_paths[0]), ("bob", &use_paths[1])])
    {
        assert_eq!(c["from"], who, "{c}");
        assert_eq!(c["to"], up.as_str(), "{c}");
        assert_eq!(c["via_relay"], true, "{c}");
    }

    // The chat and the file went through the relay.
    let msgs = find(&events, "message");
    assert_eq!(msgs.len(), 4, "{events:?}");
    assert_eq!(msgs[0]["from"], "alice");
    assert_eq!(msgs[1]["from"], "bob");
    let tr = find(&events, "transfer");
    assert_eq!(tr.len(), 1);
    assert_eq!(tr[0]["bytes"], 2 << 20);
    assert_eq!(tr[0]["sha256_sent"], tr[0]["sha256_received"]);
    assert_eq!(find(&events, "progress").last().unwrap()["bytes"], 2 << 20);
    let summary = find(&events, "summary");
    assert_eq!(summary[0]["ok"], true);
    assert_eq!(summary[0]["relay"], relay_uri);
    assert_eq!(events.last().unwrap()["event"], "summary");
}

#[test]
fn demo_relay_transcript_shows_authentication_roles_and_transfer() {
    let (code, _, out) = demo(&["--relay", "--size", "1"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("== MSRP relay (RFC 4976) listening on msrp://127.0.0.1:"));
    for who in [
        "Alice AUTH msrp://127.0.0.1:",
        "Bob   AUTH msrp://127.0.0.1:",
    ] {
        let line = out
            .lines()
            .find(|l| l.trim_start().starts_with(who.trim_start()))
            .unwrap_or_else(|| panic!("no {who:?} line:\n{out}"));
        assert!(
            line.contains("200 OK, Use-Path msrp://127.0.0.1:"),
            "{line}"
        );
    }
    assert!(
        out.contains("a=setup:actpass   <== RFC 6135 COMEDIA role"),
        "{out}"
    );
    assert!(
        out.contains("a=setup:passive   <== RFC 6135 COMEDIA role"),
        "{out}"
    );
    assert!(
        out.contains("Alice active: opens its connection to its relay msrp://127.0.0.1:"),
        "{out}"
    );
    assert!(
        out.contains("Bob   passive: opens its connection to its relay msrp://127.0.0.1:"),
        "{out}"
    );
    assert!(out.contains("connected: Alice -> relay ("), "{out}");
    assert!(out.contains("Bob -> Alice Go ahead."), "{out}");
    assert!(out.contains("received 1.0 MiB of 1.0 MiB"), "{out}");
    let last = out.lines().last().unwrap();
    assert!(
        last.starts_with("OK: 1.0 MiB (1048576 bytes) Alice -> Bob, sha256 match")
            && last.contains("authenticated to the relay msrp://127.0.0.1:")
            && last.contains("both connected to it"),
        "{last}"
    );
}
