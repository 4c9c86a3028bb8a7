//! A two-endpoint harness on fake time, in the style of quinn-proto's `Pair`: two
//! [`Endpoint`]s, an in-memory network between them, and `step()` / `drive()` to move bytes,
//! connections and time. Deterministic: randomness comes from a seeded xorshift.
#![allow(dead_code)]

use std::collections::HashMap;
use std::time::{Duration, Instant};

use msrp_proto::endpoint::{
    ConnectionHandle, Endpoint, EndpointConfig, Event, SessionHandle, SessionParams, SessionRole,
};
use msrp_proto::session::{SessionConfig, SessionEvent};
use msrp_proto::uri::MsrpUri;

/// A deterministic random source.
pub fn seeded_rng(seed: u64) -> msrp_proto::endpoint::Rng {
    let mut x = seed | 1;
    Box::new(move |buf: &mut [u8]| {
        for b in buf {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = (x >> 24) as u8;
        }
    })
}

/// Which endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Who {
    /// The first endpoint (the offerer in role tests).
    A,
    /// The second endpoint.
    B,
}

impl Who {
    pub fn other(self) -> Who {
        match self {
            Who::A => Who::B,
            Who::B => Who::A,
        }
    }
}

/// One endpoint and what it reported.
pub struct Side {
    pub ep: Endpoint,
    /// Every event the endpoint produced, in order (driver events included).
    pub events: Vec<Event>,
    /// Where it listens (`host:port`), if it accepts connections.
    pub listen: Option<String>,
    /// Every byte it wrote, per connection.
    pub sent: HashMap<ConnectionHandle, Vec<u8>>,
}

/// A connection between the two sides, or from a raw test peer to one side.
#[derive(Debug, Clone, Copy)]
pub struct Link {
    pub a: Option<ConnectionHandle>,
    pub b: Option<ConnectionHandle>,
    /// Bytes from this side are dropped (a black hole), to simulate a peer that stops
    /// answering.
    pub drop_from: Option<Who>,
}

/// The harness.
pub struct Pair {
    pub now: Instant,
    pub a: Side,
    pub b: Side,
    pub links: Vec<Link>,
    /// Deliver input in pieces of at most this many bytes (exercises the incremental parser).
    pub piece: usize,
    /// Bytes written to raw connections by the endpoint under test (conn -> bytes).
    pub raw_out: HashMap<ConnectionHandle, Vec<u8>>,
}

impl Pair {
    pub fn new(config: EndpointConfig) -> Self {
        Pair {
            now: Instant::now(),
            a: Side {
                ep: Endpoint::new(config.clone(), seeded_rng(0xA11CE)),
                events: Vec::new(),
                listen: Some("192.0.2.1:2855".into()),
                sent: HashMap::new(),
            },
            b: Side {
                ep: Endpoint::new(config, seeded_rng(0xB0B)),
                events: Vec::new(),
                listen: Some("192.0.2.2:2856".into()),
                sent: HashMap::new(),
            },
            links: Vec::new(),
            piece: 1000,
            raw_out: HashMap::new(),
        }
    }

    pub fn side(&mut self, w: Who) -> &mut Side {
        match w {
            Who::A => &mut self.a,
            Who::B => &mut self.b,
        }
    }

    /// The session URI of a side.
    pub fn uri(w: Who) -> MsrpUri {
        match w {
            Who::A => MsrpUri::parse("msrp://192.0.2.1:2855/alicesess01;tcp").unwrap(),
            Who::B => MsrpUri::parse("msrp://192.0.2.2:2856/bobsession2;tcp").unwrap(),
        }
    }

    /// Session parameters for side `w` with `role`, talking to the other side.
    pub fn params(w: Who, role: SessionRole, config: SessionConfig) -> SessionParams {
        let local = Self::uri(w);
        let remote = Self::uri(w.other());
        SessionParams {
            role,
            connect_to: (role == SessionRole::Active).then(|| remote.clone()),
            send_binding_send: role == SessionRole::Active,
            local_uri: local.clone(),
            local_path: vec![local],
            remote_path: vec![remote.clone()],
            remote_uri: remote,
            match_session_id_only: false,
            config,
        }
    }

    /// Adds a session on both sides: `a_role` for A, the opposite for B. Passive first, as
    /// after an offer/answer exchange the passive side is ready before the active connects.
    pub fn session(
        &mut self,
        a_role: SessionRole,
        config: SessionConfig,
    ) -> (SessionHandle, SessionHandle) {
        let b_role = match a_role {
            SessionRole::Active => SessionRole::Passive,
            SessionRole::Passive => SessionRole::Active,
        };
        let now = self.now;
        let (pa, pb) = (
            Self::params(Who::A, a_role, config.clone()),
            Self::params(Who::B, b_role, config),
        );
        if a_role == SessionRole::Passive {
            let sa = self.a.ep.add_session(pa, now).unwrap();
            let sb = self.b.ep.add_session(pb, now).unwrap();
            (sa, sb)
        } else {
            let sb = self.b.ep.add_session(pb, now).unwrap();
            let sa = self.a.ep.add_session(pa, now).unwrap();
            (sa, sb)
        }
    }

    fn link_of(&self, w: Who, c: ConnectionHandle) -> Option<usize> {
        self.links.iter().position(|l| match w {
            Who::A => l.a == Some(c),
            Who::B => l.b == Some(c),
        })
    }

    /// Handles driver events of one side; returns true if anything happened.
    fn driver_events(&mut self, w: Who) -> bool {
        let mut progress = false;
        while let Some(ev) = self.side(w).ep.poll_event() {
            progress = true;
            self.side(w).events.push(ev.clone());
            match ev {
                Event::Connect { connection, to } => {
                    let target = to.authority();
                    let other = w.other();
                    let now = self.now;
                    if self.side(other).listen.as_deref() == Some(target.as_str()) {
                        let peer = self.side(other).ep.handle_accepted(now);
                        let (a, b) = match w {
                            Who::A => (connection, peer),
                            Who::B => (peer, connection),
                        };
                        self.links.push(Link {
                            a: Some(a),
                            b: Some(b),
                            drop_from: None,
                        });
                        self.side(w).ep.handle_connected(connection);
                    } else {
                        self.side(w)
                            .ep
                            .handle_connect_failed(connection, "connection refused");
                    }
                }
                Event::CloseConnection { connection, .. } => {
                    if let Some(i) = self.link_of(w, connection) {
                        let l = self.links.remove(i);
                        let peer = match w {
                            Who::A => l.b,
                            Who::B => l.a,
                        };
                        if let Some(p) = peer {
                            self.side(w.other()).ep.handle_closed(p, "closed by peer");
                        }
                    }
                }
                _ => {}
            }
        }
        progress
    }

    fn transmits(&mut self, w: Who) -> bool {
        let mut progress = false;
        let now = self.now;
        while let Some(t) = self.side(w).ep.poll_transmit(now) {
            progress = true;
            self.side(w)
                .sent
                .entry(t.connection)
                .or_default()
                .extend_from_slice(&t.data);
            let Some(i) = self.link_of(w, t.connection) else {
                continue;
            };
            let l = self.links[i];
            if l.drop_from == Some(w) {
                continue;
            }
            let peer = match w {
                Who::A => l.b,
                Who::B => l.a,
            };
            match peer {
                Some(p) => {
                    for piece in t.data.chunks(self.piece.max(1)) {
                        self.side(w.other()).ep.handle_input(p, piece, now);
                    }
                }
                None => self
                    .raw_out
                    .entry(t.connection)
                    .or_default()
                    .extend_from_slice(&t.data),
            }
        }
        progress
    }

    /// One round: driver events and transmits of both sides. True if anything happened.
    pub fn step(&mut self) -> bool {
        let mut p = self.driver_events(Who::A);
        p |= self.driver_events(Who::B);
        p |= self.transmits(Who::A);
        p |= self.transmits(Who::B);
        p
    }

    /// Steps until nothing happens (bounded).
    pub fn drive(&mut self) {
        for _ in 0..100_000 {
            if !self.step() {
                return;
            }
        }
        panic!("Pair::drive did not settle in 100000 steps");
    }

    /// Advances fake time by `d`, firing timeouts that fall due, and drives.
    pub fn advance(&mut self, d: Duration) {
        let end = self.now + d;
        for _ in 0..10_000 {
            let next = [self.a.ep.poll_timeout(), self.b.ep.poll_timeout()]
                .into_iter()
                .flatten()
                .filter(|t| *t <= end)
                .min();
            match next {
                Some(t) => {
                    self.now = t.max(self.now);
                    let now = self.now;
                    self.a.ep.handle_timeout(now);
                    self.b.ep.handle_timeout(now);
                    self.drive();
                }
                None => break,
            }
        }
        self.now = end;
        self.drive();
    }

    /// Opens a raw connection from a scripted peer to side `w`; returns `w`'s handle for it.
    pub fn raw_connect(&mut self, w: Who) -> ConnectionHandle {
        let now = self.now;
        let c = self.side(w).ep.handle_accepted(now);
        let (a, b) = match w {
            Who::A => (Some(c), None),
            Who::B => (None, Some(c)),
        };
        self.links.push(Link {
            a,
            b,
            drop_from: None,
        });
        c
    }

    /// Feeds scripted bytes to side `w` on connection `c`, then drives.
    pub fn raw_send(&mut self, w: Who, c: ConnectionHandle, bytes: &[u8]) {
        let now = self.now;
        for piece in bytes.chunks(self.piece.max(1)) {
            self.side(w).ep.handle_input(c, piece, now);
        }
        self.drive();
    }

    /// Takes what side `w` wrote on a raw connection.
    pub fn raw_take(&mut self, c: ConnectionHandle) -> Vec<u8> {
        self.raw_out.remove(&c).unwrap_or_default()
    }

    /// Session events of a side, for one session, in order.
    pub fn session_events(&self, w: Who, s: SessionHandle) -> Vec<SessionEvent> {
        let side = match w {
            Who::A => &self.a,
            Who::B => &self.b,
        };
        side.events
            .iter()
            .filter_map(|e| match e {
                Event::Session { session, event } if *session == s => Some(event.clone()),
                _ => None,
            })
            .collect()
    }

    /// Whether side `w` reported an event matching `f`.
    pub fn saw(&self, w: Who, f: impl Fn(&Event) -> bool) -> bool {
        let side = match w {
            Who::A => &self.a,
            Who::B => &self.b,
        };
        side.events.iter().any(f)
    }

    /// Reassembles the body of an incoming message from its `IncomingData` events.
    pub fn received_body(&self, w: Who, s: SessionHandle, message_id: &str) -> Vec<u8> {
        let mut buf = Vec::new();
        for e in self.session_events(w, s) {
            if let SessionEvent::IncomingData {
                message_id: m,
                offset,
                data,
            } = e
            {
                if m == message_id {
                    let end = offset as usize + data.len();
                    if buf.len() < end {
                        buf.resize(end, 0);
                    }
                    buf[offset as usize..end].copy_from_slice(&data);
                }
            }
        }
        buf
    }

    /// Sends a whole message from side `w` (known size, written as room allows while
    /// driving). Returns its Message-ID.
    pub fn send_bytes(
        &mut self,
        w: Who,
        s: SessionHandle,
        ct: &str,
        body: &[u8],
        spec_fn: impl FnOnce(msrp_proto::session::MessageSpec) -> msrp_proto::session::MessageSpec,
    ) -> String {
        let spec = spec_fn(msrp_proto::session::MessageSpec::new(
            ct,
            Some(body.len() as u64),
        ));
        let id = self.side(w).ep.send_message(s, spec).unwrap();
        let mut off = 0;
        for _ in 0..1_000_000 {
            if off == body.len() {
                break;
            }
            // The message may fail while it is being written (a 413, for example).
            let Ok(n) = self.side(w).ep.write(s, &id, &body[off..]) else {
                break;
            };
            off += n;
            if !self.step() && n == 0 {
                panic!("no progress sending {id}");
            }
        }
        id
    }
}
