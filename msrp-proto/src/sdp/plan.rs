//! The connection plan: what one side does after an offer/answer exchange.
//!
//! [`plan`] is a pure function of `(offer, answer, side)`, so the offerer and the answerer
//! reach the same conclusions: exactly one side is [`Role::Active`], and the active side's
//! connection goes to where the passive side waits.
//!
//! How the transport layer uses a [`ConnectionPlan`]:
//!
//! 1. If [`ConnectionPlan::connect_to`] is `Some(uri)`, open a TCP (TLS when
//!    [`ConnectionPlan::tls`]) connection to `uri`'s host and port, as TLS client; otherwise
//!    accept a connection on our listening socket, as TLS server ([`ConnectionPlan::tls_role`]).
//! 2. If [`ConnectionPlan::send_binding_send`] (we are active), send a SEND at once on that
//!    connection (RFC 4975 §5.4, RFC 6135 §4.2.2) so the peer can bind the connection to the
//!    session; a passive side that connected to its relay (RFC 6135 §4.5) waits for the
//!    peer's SEND instead.
//! 3. Outgoing requests carry `To-Path:` [`ConnectionPlan::remote_path`] and `From-Path:`
//!    [`ConnectionPlan::local_path`].
//! 4. An incoming request belongs to this session when the last URI of its To-Path is
//!    equivalent to [`ConnectionPlan::local_uri`] (RFC 4975 §6.1), or, with CEMA
//!    ([`ConnectionPlan::match_session_id_only`], RFC 6714 §4), when its session id equals
//!    [`ConnectionPlan::expected_session_id`].
//! 5. With TLS and [`ConnectionPlan::verify_peer_fingerprint`], check the peer certificate
//!    against [`ConnectionPlan::peer_fingerprints`] with
//!    [`crate::fingerprint::verify_certificate`].

use std::fmt;

use super::media::{AcceptType, MsrpMedia, MsrpTransport, Setup};
use super::negotiate::{SdpAnswer, SdpOffer};
use super::{ErrorKind, SdpError};
use crate::fingerprint::Fingerprint;
use crate::uri::{Host, MsrpUri};

/// Which side of the offer/answer exchange we are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    /// We sent the offer.
    Offerer,
    /// We sent the answer.
    Answerer,
}

/// Our COMEDIA role (RFC 4145 §4, RFC 6135 §4.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// We open the connection to the peer (or to our relay) and send the first SEND.
    Active,
    /// The peer opens the connection and sends the first SEND.
    Passive,
}

impl Role {
    /// `active` or `passive`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Active => "active",
            Role::Passive => "passive",
        }
    }
}

/// Our role in the TLS handshake: the side that opens the TCP connection is the TLS client
/// (RFC 6135 §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TlsRole {
    /// We connect and act as TLS client.
    Client,
    /// We accept and act as TLS server.
    Server,
}

impl TlsRole {
    /// The TLS role from the resolved COMEDIA role: the active side (the one that opens the
    /// connection) is the TLS client, whichever side offered (RFC 8122 §6.2: "the client (the
    /// endpoint with the 'setup:active' role)"; RFC 6135 §4.3).
    pub fn from_setup_active(active: bool) -> TlsRole {
        if active {
            TlsRole::Client
        } else {
            TlsRole::Server
        }
    }

    /// `client` or `server`.
    pub fn as_str(self) -> &'static str {
        match self {
            TlsRole::Client => "client",
            TlsRole::Server => "server",
        }
    }
}

/// Something the user should know about the negotiated session; none stops it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Warning {
    /// A received `a=setup:holdconn` was treated as absent (RFC 6135 §4.2.1).
    HoldConnIgnored {
        /// In the offer (else in the answer).
        in_offer: bool,
    },
    /// The offer or answer has no `a=setup`: the peer follows RFC 4975 (the offerer connects).
    NoSetup {
        /// In the offer (else in the answer).
        in_offer: bool,
    },
    /// A received `a=connection` was ignored (RFC 6135 §4.4).
    ConnectionAttributeIgnored,
    /// We are behind a NAT without a relay and the offerer follows RFC 4975 (no `a=setup`):
    /// it will connect to us, which cannot traverse the NAT (RFC 6135 §5).
    NatTraversalNeedsRelay,
    /// We answered `passive` (the offer was `active`) although we are behind a NAT without a
    /// relay: the peer's connection is unlikely to reach us (RFC 6135 §4.2.2).
    UnreachablePassive,
    /// TLS through relays: the peer's `a=fingerprint` cannot be checked, the certificate seen
    /// is a relay's (RFC 6135 §4.3).
    FingerprintNotVerifiable,
    /// TLS peer-to-peer and the peer sent no `a=fingerprint`: its certificate must be checked
    /// by other means (RFC 4975 §14.2).
    NoPeerFingerprint,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let which = |o: bool| if o { "offer" } else { "answer" };
        match self {
            Warning::HoldConnIgnored { in_offer } => write!(f, "a=setup:holdconn in the {} was treated as if no a=setup were present (RFC 6135 §4.2.1)", which(*in_offer)),
            Warning::NoSetup { in_offer } => write!(f, "the {} has no a=setup: the peer follows RFC 4975, the offerer opens the connection", which(*in_offer)),
            Warning::ConnectionAttributeIgnored => f.write_str("a=connection from the peer was ignored (RFC 6135 §4.4)"),
            Warning::NatTraversalNeedsRelay => f.write_str("we are behind a NAT without an MSRP relay and the offerer follows RFC 4975 (no a=setup), so it must connect to us: NAT traversal cannot work without a relay, ICE-TCP or an SBC (RFC 6135 §5)"),
            Warning::UnreachablePassive => f.write_str("the offer is a=setup:active so we must accept the connection, but we are behind a NAT without a relay: the peer's connection is unlikely to reach us (RFC 6135 §4.2.2)"),
            Warning::FingerprintNotVerifiable => f.write_str("TLS through MSRP relays: the peer's a=fingerprint cannot be verified end to end (RFC 6135 §4.3)"),
            Warning::NoPeerFingerprint => f.write_str("TLS without a=fingerprint from the peer: its certificate must be verified by other means (RFC 4975 §14.2)"),
        }
    }
}

/// What one side does after an offer/answer exchange. See the module documentation for how
/// the transport layer uses it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionPlan {
    /// Our side of the exchange.
    pub side: Side,
    /// Our COMEDIA role: the active side sends the first SEND (and, without relays, opens the
    /// connection).
    pub role: Role,
    /// Where we open a connection, `None` when we wait for one. Without relays: the peer's
    /// first `a=path` URI (the adjacent hop, RFC 4975 §8.3) when we are active. With our own
    /// relay: always our relay, whatever our role (RFC 6135 §4.5). With CEMA on both sides
    /// and no relay of ours: a URI built from the peer's `c=` address and `m=` port, with no
    /// session id (RFC 6714 §4.2, §4.3).
    pub connect_to: Option<MsrpUri>,
    /// We use a relay (our `a=path` has more than one URI).
    pub via_relay: bool,
    /// Send a SEND as soon as the connection is up, so the peer binds it to the session
    /// (RFC 4975 §5.4, RFC 6135 §4.2.2). True exactly when we are active; a passive side that
    /// connected to its relay does not (RFC 6135 §4.5 note).
    pub send_binding_send: bool,
    /// Our session URI, the last entry of our `a=path`.
    pub local_uri: MsrpUri,
    /// The From-Path of our requests: our session URI (relays add theirs, RFC 4976 §6.4).
    pub local_path: Vec<MsrpUri>,
    /// The To-Path of our requests: our relays' Use-Path (the reverse of our `a=path` without
    /// our URI) followed by the peer's whole `a=path` (RFC 4976 §5.1, RFC 4975 §8.2).
    pub remote_path: Vec<MsrpUri>,
    /// The peer's session URI, the last entry of its `a=path`.
    pub remote_uri: MsrpUri,
    /// The session id of our URI: incoming requests name it in the last To-Path URI.
    pub expected_session_id: String,
    /// CEMA: match incoming requests by session id only, the address part may have been
    /// rewritten by a middlebox (RFC 6714 §4).
    pub match_session_id_only: bool,
    /// Both sides signalled `a=msrp-cema` (RFC 6714).
    pub cema: bool,
    /// TLS on the connection we open or accept: the scheme of [`Self::connect_to`] when we
    /// connect, of our own URI when we accept (RFC 4975 §8.2: the URI gives the protection
    /// level). The two sides may differ: RFC 4976 §11 answers a `TCP/MSRP` offer with
    /// `TCP/TLS/MSRP` through a relay.
    pub tls: bool,
    /// With TLS: client when we open the connection, server when we accept it (RFC 6135 §6:
    /// the active party is the TLS client). `None` without TLS.
    pub tls_role: Option<TlsRole>,
    /// The peer's `a=fingerprint` values (RFC 8122).
    pub peer_fingerprints: Vec<Fingerprint>,
    /// Check the peer certificate against [`Self::peer_fingerprints`]: TLS, no relay on
    /// either side, and the peer sent at least one fingerprint.
    pub verify_peer_fingerprint: bool,
    /// Types we may send (the peer's `a=accept-types`, RFC 4975 §8.6).
    pub peer_accept_types: Vec<AcceptType>,
    /// Types we may send wrapped (the peer's `a=accept-wrapped-types`).
    pub peer_accept_wrapped_types: Vec<AcceptType>,
    /// The peer's `a=max-size`: we SHOULD NOT send larger messages (RFC 4975 §8.6).
    pub peer_max_size: Option<u64>,
    /// Things worth telling the user.
    pub warnings: Vec<Warning>,
}

/// Computes `side`'s plan from an offer and its answer.
///
/// Errors (all 488 for a SIP stack): the answer has fewer m-lines than the offer or its MSRP
/// media is elsewhere (RFC 3264 §6); `a=setup:actpass`
/// in the answer, passive answer to a passive offer, active answer to an active offer
/// (RFC 4145 §4.1). Defaults for absent `a=setup` are RFC 4145 §4.1's: `active` in the
/// offer, `passive` in the answer; `holdconn` counts as absent (RFC 6135 §4.2.1).
pub fn plan(offer: &SdpOffer, answer: &SdpAnswer, side: Side) -> Result<ConnectionPlan, SdpError> {
    let o = offer.media();
    let a = answer.media();
    let (no, na) = (offer.sdp().media.len(), answer.sdp().media.len());
    if na != no {
        return Err(SdpError::new(ErrorKind::MediaCountMismatch {
            offer: no,
            answer: na,
        }));
    }
    if a.index != o.index {
        return Err(SdpError::at(
            a.line,
            ErrorKind::Structure(
                "the answer's MSRP media description is not at the offer's position (RFC 3264 §6)",
            ),
        ));
    }
    let mut warnings = Vec::new();
    // RFC 6135 §4.2.1: holdconn is treated as absent.
    let eff = |m: &MsrpMedia, in_offer: bool, w: &mut Vec<Warning>| match m.setup {
        Some(Setup::HoldConn) => {
            w.push(Warning::HoldConnIgnored { in_offer });
            None
        }
        None => {
            w.push(Warning::NoSetup { in_offer });
            None
        }
        s => s,
    };
    // RFC 4145 §4.1 defaults: offer active, answer passive.
    let os = eff(o, true, &mut warnings).unwrap_or(Setup::Active);
    let as_ = eff(a, false, &mut warnings).unwrap_or(Setup::Passive);
    let bad = |k: ErrorKind| {
        SdpError::at(
            if a.setup_line > 0 {
                a.setup_line
            } else {
                a.line
            },
            k,
        )
    };
    let offerer_active = match (os, as_) {
        (_, Setup::ActPass) => return Err(bad(ErrorKind::AnswerActPass)),
        (Setup::Active, Setup::Active) => return Err(bad(ErrorKind::BothActive)),
        (Setup::Passive, Setup::Passive) => return Err(bad(ErrorKind::BothPassive)),
        (_, Setup::Passive) => true,
        (_, Setup::Active) => false,
        (_, Setup::HoldConn) => unreachable!("holdconn filtered above"),
    };
    let (local, remote) = match side {
        Side::Offerer => (o, a),
        Side::Answerer => (a, o),
    };
    let role = if offerer_active == (side == Side::Offerer) {
        Role::Active
    } else {
        Role::Passive
    };
    if remote.connection_attr.is_some() {
        warnings.push(Warning::ConnectionAttributeIgnored);
    }
    // RFC 4976 §5.1: our a=path = reverse(Use-Path) + own URI, so Use-Path = reverse of the
    // relay part; the relay we connect to is Use-Path[0].
    let use_path: Vec<MsrpUri> = local.path[..local.path.len() - 1]
        .iter()
        .rev()
        .cloned()
        .collect();
    let via_relay = !use_path.is_empty();
    let cema = o.cema && a.cema;
    let connect_to = if let Some(relay) = use_path.first() {
        // RFC 6135 §4.5: a UA behind a relay always connects to the relay.
        Some(relay.clone())
    } else if role == Role::Active {
        if cema {
            // RFC 6714 §4.2/§4.3: the active CEMA endpoint connects to the c=/m= address.
            let c = remote.connection.as_ref().ok_or(SdpError::at(
                remote.line,
                ErrorKind::BadField {
                    kind: 'c',
                    problem: "missing c= line: CEMA connects to the c=/m= address (RFC 6714 §4)"
                        .into(),
                },
            ))?;
            let host = match c.ip() {
                Some(ip) => Host::from(ip),
                None => Host::Name(c.address.clone()),
            };
            Some(MsrpUri {
                scheme: remote.transport.scheme(),
                userinfo: None,
                host,
                port: Some(remote.port),
                session_id: None,
                transport: "tcp".into(),
                params: Vec::new(),
            })
        } else {
            // RFC 4975 §8.3: only the first URI is relevant for connecting.
            Some(remote.first_hop().clone())
        }
    } else {
        None
    };
    // RFC 4975 §8.2: the URI we connect to decides TLS ("protection level when connecting");
    // when we accept, our own URI does (RFC 4976 §11 shows a TCP offer answered over TLS).
    let tls = match &connect_to {
        Some(u) => u.is_secure(),
        None => local.transport == MsrpTransport::Tls,
    };
    let remote_relay = remote.path.len() > 1;
    if tls && (via_relay || remote_relay) {
        warnings.push(Warning::FingerprintNotVerifiable);
    } else if tls && remote.fingerprints.is_empty() {
        warnings.push(Warning::NoPeerFingerprint);
    }
    let local_uri = local.session_uri().clone();
    let mut remote_path = use_path;
    remote_path.extend(remote.path.iter().cloned());
    Ok(ConnectionPlan {
        side,
        role,
        via_relay,
        send_binding_send: role == Role::Active,
        tls_role: tls.then_some(if connect_to.is_some() {
            TlsRole::Client
        } else {
            TlsRole::Server
        }),
        connect_to,
        local_path: vec![local_uri.clone()],
        expected_session_id: local_uri.session_id.clone().unwrap_or_default(),
        local_uri,
        remote_path,
        remote_uri: remote.session_uri().clone(),
        match_session_id_only: cema,
        cema,
        tls,
        peer_fingerprints: remote.fingerprints.clone(),
        verify_peer_fingerprint: tls
            && !via_relay
            && !remote_relay
            && !remote.fingerprints.is_empty(),
        peer_accept_types: remote.accept_types.clone(),
        peer_accept_wrapped_types: remote.accept_wrapped_types.clone(),
        peer_max_size: remote.max_size,
        warnings,
    })
}
