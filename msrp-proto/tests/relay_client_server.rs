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
    // a stale challenge comes first) gives a new URI.
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
    assert_ne!(again, use_path);
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
