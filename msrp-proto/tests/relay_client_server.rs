//! Our relay client state machine (`relay::client`) against our sans-IO relay
//! (`relay::server`), wired byte for byte on fake time: the two were written separately, so
//! this checks that the AUTH exchange (digest, rspauth, Use-Path, Expires, 423) agrees.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use msrp_proto::message::{parse_messages, Limits, MessageHead};
use msrp_proto::relay::client::{
    RelayClient, RelayClientConfig, RelayEvent, RelayFailure, RelaySpec, RelayState,
};
use msrp_proto::relay::digest::Credentials;
use msrp_proto::relay::server::{ConnId, Output, Relay, RelayConfig};
use msrp_proto::relay::users::{hash_password_lines, Users};
use msrp_proto::uri::MsrpUri;

const HOST: &str = "relay.example.com";

fn relay(tune: impl FnOnce(&mut RelayConfig)) -> Relay {
    let mut cfg = RelayConfig::new(HOST, HOST);
    cfg.tcp_port = Some(2855);
    tune(&mut cfg);
    let users = Users::parse(&hash_password_lines("alice", HOST, "alice-pw").unwrap()).unwrap();
    let mut n = 7u64;
    Relay::new(
        cfg,
        users,
        Box::new(move |b: &mut [u8]| {
            for x in b {
                n = n
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                *x = (n >> 33) as u8;
            }
        }),
    )
    .unwrap()
}

fn client(password: &str, expires: Option<u32>) -> RelayClient {
    let spec = RelaySpec {
        uri: MsrpUri::parse(&format!("msrp://{HOST}:2855;tcp")).unwrap(),
        credentials: Credentials::new("alice", password).unwrap(),
    };
    // A documentation address: nothing is ever sent to it.
    let me = MsrpUri::parse("msrp://192.0.2.10:5000/a1;tcp").unwrap();
    let mut cfg = RelayClientConfig::new(vec![spec], me);
    cfg.expires = expires;
    RelayClient::new(cfg)
}

/// Test randomness for the client.
type Rng = Box<dyn FnMut(&mut [u8])>;

/// One client connection to the relay, and the clock of both (the relay counts in ms).
struct Wire {
    relay: Relay,
    conn: ConnId,
    t0: Instant,
    rng: Rng,
}

impl Wire {
    fn new(mut relay: Relay) -> Self {
        let peer: SocketAddr = "192.0.2.10:5000".parse().unwrap();
        let conn = relay.accept(peer, false, 0).unwrap();
        let mut n = 1u8;
        Wire {
            relay,
            conn,
            t0: Instant::now(),
            rng: Box::new(move |b: &mut [u8]| {
                for x in b {
                    n = n.wrapping_mul(13).wrapping_add(101);
                    *x = n;
                }
            }),
        }
    }

    /// Sends what the client has, feeds the relay's answers back, until the client is quiet.
    fn drive(&mut self, c: &mut RelayClient, at: Duration) -> Vec<RelayEvent> {
        let now = self.t0 + at;
        let ms = at.as_millis() as u64;
        for _ in 0..10 {
            let Some(msg) = c.poll_transmit(now, &mut *self.rng) else {
                break;
            };
            self.relay.receive(self.conn, &msg.encode().unwrap(), ms);
            for resp in self.responses(ms) {
                assert!(c.handle_response(now, &resp), "{resp:?}");
            }
        }
        std::iter::from_fn(|| c.poll_event()).collect()
    }

    fn responses(&mut self, ms: u64) -> Vec<MessageHead> {
        let mut bytes = Vec::new();
        while let Some(out) = self.relay.poll_output() {
            if let Output::Transmit(c) = out {
                assert_eq!(c, self.conn);
                let pending = self.relay.transmit(c).to_vec();
                self.relay.advance(c, pending.len(), ms);
                bytes.extend_from_slice(&pending);
            }
        }
        parse_messages(&bytes, Limits::default())
            .unwrap()
            .into_iter()
            .map(|m| m.head)
            .collect()
    }
}

#[test]
fn client_authenticates_to_our_relay_and_checks_its_rspauth() {
    let mut w = Wire::new(relay(|_| {}));
    let mut c = client("alice-pw", Some(600));
    c.start(w.t0);
    let ev = w.drive(&mut c, Duration::ZERO);
    let [RelayEvent::Authenticated { use_path, expires }] = ev.as_slice() else {
        panic!("{ev:?}");
    };
    // The relay sends Authentication-Info (RFC 4976 §9.1) and the client verified its
    // rspauth, or it would have failed the round.
    assert_eq!(*expires, Some(600));
    assert_eq!(use_path.len(), 1);
    assert_eq!(use_path[0].authority(), format!("{HOST}:2855"));
    assert!(use_path[0].session_id().is_some());
    assert_eq!(c.state(), RelayState::Authenticated);

    // Refresh at 3/4 of the lifetime: a new round (the relay's nonce has expired by then, so
    // a stale challenge comes first) renews the same URI, which the sessions negotiated with
    // it go on using (RFC 4976 §6.3; the soak found sessions dying at the first expiry when
    // each round gave a new one).
    let due = c.poll_timeout().unwrap();
    assert_eq!(due, w.t0 + Duration::from_secs(450));
    c.handle_timeout(due);
    let ev = w.drive(&mut c, Duration::from_secs(450));
    let [RelayEvent::Authenticated {
        use_path: again, ..
    }] = ev.as_slice()
    else {
        panic!("{ev:?}");
    };
    assert_eq!(again, use_path);
}

#[test]
fn short_expires_gets_423_then_min_expires() {
    let mut w = Wire::new(relay(|cfg| cfg.min_expires = 90));
    let mut c = client("alice-pw", Some(30));
    c.start(w.t0);
    let ev = w.drive(&mut c, Duration::ZERO);
    assert!(
        matches!(
            ev.as_slice(),
            [RelayEvent::Authenticated {
                expires: Some(90),
                ..
            }]
        ),
        "{ev:?}"
    );
}

/// RFC 4976 §6.3: a requested Expires above the relay's maximum gets 423 with Max-Expires
/// (not a shorter grant); the client retries once with that value and gets it.
#[test]
fn long_expires_gets_423_then_max_expires() {
    let mut w = Wire::new(relay(|cfg| cfg.max_expires = 900));
    let mut c = client("alice-pw", Some(7200));
    c.start(w.t0);
    let ev = w.drive(&mut c, Duration::ZERO);
    assert!(
        matches!(
            ev.as_slice(),
            [RelayEvent::Authenticated {
                expires: Some(900),
                ..
            }]
        ),
        "{ev:?}"
    );
    // The refresh is planned from the granted lifetime.
    assert_eq!(c.poll_timeout(), Some(w.t0 + Duration::from_secs(675)));
}

#[test]
fn wrong_password_is_forbidden() {
    let mut w = Wire::new(relay(|_| {}));
    let mut c = client("not-alice-pw", None);
    c.start(w.t0);
    let ev = w.drive(&mut c, Duration::ZERO);
    assert_eq!(
        ev,
        vec![RelayEvent::Failed(RelayFailure::Forbidden {
            relay: format!("msrp://{HOST}:2855;tcp")
        })]
    );
}

/// RFC 4976 §5.1 and RFC 6135 §4.5 in the sans-IO endpoint: `authenticate_relays` opens the
/// connection to the relay and AUTHs on it; a passive session behind that relay reuses the
/// same connection (no second Connect) and sends nothing first (no binding SEND).
#[test]
fn relay_auth_then_passive_session_reuses_the_relay_connection() {
    use msrp_proto::endpoint::{Endpoint, EndpointConfig, Event, SessionParams, SessionRole};
    use msrp_proto::session::SessionConfig;

    let mut relay = relay(|_| {});
    let peer: SocketAddr = "192.0.2.10:5000".parse().unwrap();
    let rc = relay.accept(peer, false, 0).unwrap();
    let mut n = 3u8;
    let mut ep = Endpoint::new(
        EndpointConfig::default(),
        Box::new(move |b: &mut [u8]| {
            for x in b {
                n = n.wrapping_mul(13).wrapping_add(101);
                *x = n;
            }
        }),
    );
    let spec = RelaySpec {
        uri: MsrpUri::parse(&format!("msrp://{HOST}:2855;tcp")).unwrap(),
        credentials: Credentials::new("alice", "alice-pw").unwrap(),
    };
    let me = MsrpUri::parse("msrp://192.0.2.10:5000/a1;tcp").unwrap();
    let c = ep
        .authenticate_relays(RelayClientConfig::new(vec![spec.clone()], me.clone()))
        .unwrap();
    match ep.poll_event() {
        Some(Event::Connect { connection, to }) => {
            assert_eq!(connection, c);
            assert_eq!(to, spec.uri);
        }
        other => panic!("{other:?}"),
    }
    ep.handle_connected(c);
    let now = Instant::now();
    let mut use_path = None;
    for _ in 0..10 {
        while let Some(bytes) = ep.poll_transmit_on(c, now) {
            relay.receive(rc, &bytes, 0);
        }
        while let Some(out) = relay.poll_output() {
            if let Output::Transmit(x) = out {
                let pending = relay.transmit(x).to_vec();
                relay.advance(x, pending.len(), 0);
                ep.handle_input(c, &pending, now);
            }
        }
        while let Some(ev) = ep.poll_event() {
            match ev {
                Event::Relay {
                    connection,
                    event: RelayEvent::Authenticated { use_path: u, .. },
                } => {
                    assert_eq!(connection, c);
                    use_path = Some(u);
                }
                other => panic!("{other:?}"),
            }
        }
        if use_path.is_some() {
            break;
        }
    }
    let use_path = use_path.expect("authenticated");
    assert_eq!(use_path.len(), 1);
    assert_eq!(use_path[0].host.to_string(), HOST);
    // The peer's path; our From-Path is our own URI; To-Path is Use-Path + peer.
    let remote = MsrpUri::parse("msrp://198.51.100.7:7000/b2;tcp").unwrap();
    let mut to_path = use_path.clone();
    to_path.push(remote.clone());
    let s = ep
        .add_session(
            SessionParams {
                role: SessionRole::Passive,
                connect_to: Some(use_path[0].clone()),
                send_binding_send: false,
                local_uri: me.clone(),
                local_path: vec![me],
                remote_path: to_path,
                remote_uri: remote,
                match_session_id_only: false,
                config: SessionConfig::default(),
            },
            now,
        )
        .unwrap();
    assert_eq!(
        ep.session_connection(s),
        Some(c),
        "reuses the relay connection"
    );
    // Through a relay the session cuts chunks at the relay chunk size (Kamailio refuses
    // frames of about 11 KiB and more), not at the direct default.
    assert_eq!(
        ep.session_chunk_size(s),
        Some(msrp_proto::session::DEFAULT_RELAY_CHUNK_SIZE)
    );
    while let Some(ev) = ep.poll_event() {
        assert!(
            !matches!(ev, Event::Connect { .. }),
            "no second connection: {ev:?}"
        );
    }
    assert_eq!(
        ep.poll_transmit_on(c, now),
        None,
        "the passive side sends no SEND first"
    );
}
