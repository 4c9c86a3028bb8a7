//! The sans-IO endpoint fed arbitrary byte streams and events: connections accepted, bytes
//! (arbitrary, or well-formed SENDs/REPORTs with fuzzed fields), time, closes, application
//! commands, with or without the driver taking the output. Invariants:
//! - no panic;
//! - what the endpoint holds stays within its limits (header block, unread responses);
//! - after `handle_timeout(now)` the next deadline is in the future (no busy loop);
//! - every event refers to a session or connection that existed.
#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use msrp_proto::endpoint::{
    hard_output_limit, ConnectionHandle, Endpoint, EndpointConfig, Event, SessionParams,
    SessionRole,
};
use msrp_proto::message::Limits;
use msrp_proto::session::{MessageSpec, SessionConfig};
use msrp_proto::uri::MsrpUri;

const ME: &str = "msrp://192.0.2.2:2856/bobsession2;tcp";
const PEER: &str = "msrp://192.0.2.1:2855/alicesess01;tcp";
const ME2: &str = "msrp://192.0.2.2:2856/secondsess3;tcp";

fn params(local: &str, remote: &str, role: SessionRole) -> SessionParams {
    let local: MsrpUri = local.parse().unwrap();
    let remote: MsrpUri = remote.parse().unwrap();
    SessionParams {
        role,
        connect_to: (role == SessionRole::Active).then(|| remote.clone()),
        send_binding_send: role == SessionRole::Active,
        local_uri: local.clone(),
        local_path: vec![local],
        remote_path: vec![remote.clone()],
        remote_uri: remote,
        match_session_id_only: false,
        config: SessionConfig {
            max_chunk_size: 64,
            send_window: 256,
            ..SessionConfig::default()
        },
    }
}

/// A well-formed request with fuzzed pieces, so the fuzzer reaches the session logic.
fn request(b: &[u8]) -> Vec<u8> {
    let g = |i: usize| b.get(i).copied().unwrap_or(0);
    let tid = format!("t{:02x}{:02x}", g(0), g(1) & 7);
    let to = if g(2) & 1 == 0 { ME } else { ME2 };
    let from = if g(2) & 2 == 0 {
        PEER
    } else {
        "msrp://203.0.113.9:9/mallory;tcp"
    };
    let method = if g(2) & 4 == 0 { "SEND" } else { "REPORT" };
    let start = u64::from(g(3)) + 1;
    let len = u64::from(g(4) % 40);
    let total = if g(2) & 8 == 0 {
        format!("{}", start + len + u64::from(g(5) % 3))
    } else {
        "*".into()
    };
    let end = if g(2) & 16 == 0 {
        format!("{}", start + len.max(1) - 1)
    } else {
        "*".into()
    };
    let flag = match g(6) % 3 {
        0 => '$',
        1 => '+',
        _ => '#',
    };
    let mut m = format!(
        "MSRP {tid} {method}\r\nTo-Path: {to}\r\nFrom-Path: {from}\r\nMessage-ID: m{:x}\r\nByte-Range: {start}-{end}/{total}\r\n",
        g(7) & 3
    );
    if method == "REPORT" {
        m.push_str(&format!(
            "Status: 000 {}\r\n",
            [200, 413, 481, 999][usize::from(g(5) & 3)]
        ));
        m.push_str(&format!("-------{tid}$\r\n"));
    } else if len > 0 {
        m.push_str("Content-Type: text/plain\r\n\r\n");
        m.push_str(&"x".repeat(len as usize));
        m.push_str(&format!("\r\n-------{tid}{flag}\r\n"));
    } else {
        m.push_str(&format!("-------{tid}{flag}\r\n"));
    }
    m.into_bytes()
}

/// Up to `n` bytes of `data` from `from` (empty past the end).
fn slice(data: &[u8], from: usize, n: usize) -> &[u8] {
    let from = from.min(data.len());
    &data[from..(from + n).min(data.len())]
}

fuzz_target!(|data: &[u8]| {
    let limits = Limits {
        max_head_bytes: 2048,
        max_body_bytes: 4096,
        ..Limits::default()
    };
    let cfg = EndpointConfig {
        limits,
        bind_timeout: Duration::from_secs(5),
        connect_timeout: Duration::from_secs(7),
        max_connections_per_address: 3,
        max_pending_output: 1024,
    };
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let rng = Box::new(move |buf: &mut [u8]| {
        for b in buf {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = x as u8;
        }
    });
    let mut ep = Endpoint::new(cfg.clone(), rng);
    let t0 = Instant::now();
    let mut now = t0;
    let mut conns: Vec<ConnectionHandle> = Vec::new();
    let mut sessions = Vec::new();
    sessions.push(
        ep.add_session(params(ME, PEER, SessionRole::Passive), now)
            .unwrap(),
    );
    let mut i = 0;
    let mut steps = 0;
    while i < data.len() && steps < 256 {
        steps += 1;
        let op = data[i];
        i += 1;
        let arg = data.get(i).copied().unwrap_or(0);
        let pick = |v: &Vec<ConnectionHandle>| v.get(usize::from(arg) % v.len().max(1)).copied();
        match op % 12 {
            0 => {
                let ip = std::net::IpAddr::from([192, 0, 2, arg % 4]);
                if let Ok(c) = ep.handle_accepted_from(ip, now) {
                    conns.push(c);
                }
                i += 1;
            }
            1 | 2 => {
                // Raw bytes: a length byte then the bytes.
                let bytes = slice(data, i + 1, usize::from(arg));
                if let Some(c) = pick(&conns) {
                    ep.handle_input(c, bytes, now);
                }
                i += 1 + bytes.len();
            }
            3 | 4 => {
                let fields = slice(data, i + 1, 8);
                let n = fields.len();
                if let Some(c) = pick(&conns) {
                    let req = request(fields);
                    // Delivered in two pieces, cut anywhere.
                    let cut = usize::from(arg) % (req.len() + 1);
                    ep.handle_input(c, &req[..cut], now);
                    ep.handle_input(c, &req[cut..], now);
                }
                i += 1 + n;
            }
            5 => {
                now += Duration::from_millis(u64::from(arg) * 50);
                ep.handle_timeout(now);
                while ep.poll_event().is_some() {}
                if let Some(d) = ep.poll_timeout() {
                    assert!(
                        d > now,
                        "deadline {:?} not after now {:?}",
                        d - t0,
                        now - t0
                    );
                }
                i += 1;
            }
            6 => {
                // The driver writes everything.
                while ep.poll_transmit(now).is_some() {}
            }
            7 => {
                if let Some(c) = pick(&conns) {
                    ep.handle_closed(c, "closed by peer");
                }
                i += 1;
            }
            8 => {
                if let Some(&s) = sessions.get(usize::from(arg) % sessions.len().max(1)) {
                    if let Ok(id) = ep.send_message(s, MessageSpec::new("text/plain", Some(100))) {
                        let _ = ep.write(s, &id, &[b'a'; 100]);
                    }
                }
                i += 1;
            }
            9 => {
                if let Some(&s) = sessions.get(usize::from(arg) % sessions.len().max(1)) {
                    let _ = ep.close_session(s);
                }
                i += 1;
            }
            10 => {
                let (local, role) = if arg & 1 == 0 {
                    (ME2, SessionRole::Passive)
                } else {
                    (ME2, SessionRole::Active)
                };
                if let Ok(s) = ep.add_session(params(local, PEER, role), now) {
                    sessions.push(s);
                }
                i += 1;
            }
            _ => {
                // Driver events: answer Connect requests (up or failed), and drain the rest.
                while let Some(ev) = ep.poll_event() {
                    if let Event::Connect { connection, .. } = ev {
                        if arg & 1 == 0 {
                            ep.handle_connected(connection);
                            conns.push(connection);
                        } else {
                            ep.handle_connect_failed(connection, "refused");
                        }
                    }
                }
                i += 1;
            }
        }
        // Memory bound: per connection, a header block and the hard unread-output limit
        // (plus one input's worth of responses).
        let bound = ep.connections().count().max(1)
            * (2048 + 64 + hard_output_limit(cfg.max_pending_output) + 64 * 1024);
        assert!(
            ep.buffered_bytes() <= bound,
            "{} > {bound}",
            ep.buffered_bytes()
        );
        conns.retain(|c| ep.connection(*c).is_some());
    }
});
