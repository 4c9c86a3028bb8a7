//! SDP offer/answer for MSRP with the RFC 6135 COMEDIA rules.
//!
//! The order of the exchange is a type-level fact:
//!
//! ```text
//! offerer:  create_offer(&cfg) -> PendingOffer --(send pending.offer())-->
//! answerer: SdpOffer::parse(text) -> create_answer(&offer, &cfg) -> Answered { answer, plan }
//! offerer:  SdpAnswer::parse(text) -> pending.accept_answer(&answer) -> ConnectionPlan
//! ```
//!
//! [`PendingOffer::accept_answer`] consumes the pending offer, so an answer can be applied
//! once; an [`SdpAnswer`] cannot be fed where an [`SdpOffer`] is expected.
//!
//! Randomness: the core reads no RNG. [`LocalConfig::session_id`] (the MSRP session id in our
//! `a=path` URI, RFC 4975 §14.1: at least 80 bits of randomness) and
//! [`LocalConfig::sdp_session_id`] (the `o=` session id) come from the caller;
//! [`session_id_from_entropy`] turns random bytes into a valid session id.

use std::fmt;
use std::net::SocketAddr;

use super::media::{AcceptType, MsrpMedia, MsrpTransport, Setup};
use super::plan::{plan, ConnectionPlan, Side, Warning};
use super::{ErrorKind, Line, MediaDescription, SdpError, SessionDescription};
use crate::fingerprint::Fingerprint;
use crate::uri::{Host, MsrpUri};

/// Whether our transport address can receive connections from the peer (RFC 6135 §4.2.2).
///
/// There is deliberately no `Auto`: the STUN layer (RFC 5780 behaviour discovery) resolves
/// that to one of these two before calling the core.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reachability {
    /// Globally reachable: not behind a NAT, or behind a NAT with endpoint-independent mapping
    /// and filtering whose public address we advertise (RFC 6135 §4.2.2).
    Reachable,
    /// Behind a NAT (or otherwise unreachable): we can only open connections.
    BehindNat,
}

/// What we are and what we offer or accept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalConfig {
    /// The host we advertise in `c=` and in our `a=path` URI (our public address when
    /// reachable through a NAT).
    pub host: Host,
    /// The port we listen on (advertised unless we are `active`, then 9).
    pub port: u16,
    /// Whether the peer can connect to `host:port`.
    pub reachability: Reachability,
    /// Use TLS (`TCP/TLS/MSRP`, `msrps:`).
    pub tls: bool,
    /// Our certificate's fingerprint, sent as `a=fingerprint` with TLS (RFC 4975 §14.2,
    /// RFC 6135 §4.3: a UA with a self-signed certificate includes it).
    pub fingerprint: Option<Fingerprint>,
    /// Further fingerprints of the same certificate, sent after [`Self::fingerprint`]
    /// (RFC 8122 §5.1: SHA-256 and the hash function of the certificate's signature).
    pub extra_fingerprints: Vec<Fingerprint>,
    /// The `Use-Path` our relay(s) returned after AUTH, as received: the relay we connect to
    /// first (RFC 4976 §5.1). Empty without relay. Our `a=path` is this list reversed followed
    /// by our own URI; our To-Path is this list followed by the peer's `a=path`.
    pub relay_path: Vec<MsrpUri>,
    /// Media types we accept (RFC 4975 §8.6); must not be empty.
    pub accept_types: Vec<AcceptType>,
    /// Media types we accept only inside containers (RFC 4975 §8.6); may be empty.
    pub accept_wrapped_types: Vec<AcceptType>,
    /// Largest message we want to receive (`a=max-size`, RFC 4975 §8.6).
    pub max_size: Option<u64>,
    /// Offer/accept the CEMA extension (`a=msrp-cema`, RFC 6714).
    pub cema: bool,
    /// The session id of our MSRP URI (random, RFC 4975 §14.1).
    pub session_id: String,
    /// The numeric `o=` session id (random; masked below 2^62, RFC 3264 §5).
    pub sdp_session_id: u64,
}

impl LocalConfig {
    /// A configuration listening on `listen`, reachable, plain TCP, accepting `*`, with the
    /// given MSRP session id.
    pub fn new(listen: SocketAddr, session_id: impl Into<String>) -> Self {
        LocalConfig {
            host: Host::from(listen.ip()),
            port: listen.port(),
            reachability: Reachability::Reachable,
            tls: false,
            fingerprint: None,
            extra_fingerprints: Vec::new(),
            relay_path: Vec::new(),
            accept_types: vec![AcceptType::parse("*").expect("valid")],
            accept_wrapped_types: Vec::new(),
            max_size: None,
            cema: false,
            session_id: session_id.into(),
            sdp_session_id: 1,
        }
    }

    fn transport(&self) -> MsrpTransport {
        if self.tls {
            MsrpTransport::Tls
        } else {
            MsrpTransport::Tcp
        }
    }

    fn check(&self) -> Result<(), SdpError> {
        let cfg = |s: String| SdpError::new(ErrorKind::Config(s));
        let probe = MsrpUri::new(
            self.transport().scheme(),
            self.host.clone(),
            9,
            self.session_id.clone(),
        );
        if MsrpUri::parse(&probe.to_string()).map(|u| u == probe) != Ok(true) {
            return Err(cfg(format!(
                "session id '{}' or host '{}' cannot form an MSRP URI (RFC 4975 §6)",
                self.session_id, self.host
            )));
        }
        // RFC 4145 §4.1: port 0 only denotes a refused m-line; RFC 6135 §4.2.2: the path
        // must carry an address the peer can use.
        if self.port == 0 {
            return Err(cfg(
                "listen port 0 cannot be advertised (RFC 4145 §4.1)".into()
            ));
        }
        if self.host.ip().is_some_and(|ip| ip.is_unspecified()) {
            return Err(cfg(format!(
                "the unspecified address {} cannot be advertised in c= and a=path: give the address the peer should use",
                self.host
            )));
        }
        if self.accept_types.is_empty() {
            return Err(cfg("accept-types must not be empty (RFC 4975 §8.6)".into()));
        }
        for r in &self.relay_path {
            if r.port.is_none() {
                return Err(cfg(format!(
                    "relay URI '{r}' has no port (RFC 4975 §8.2: URIs in SDP must include explicit ports)"
                )));
            }
            if !r.is_tcp() {
                return Err(cfg(format!(
                    "relay URI '{r}' does not use the tcp transport"
                )));
            }
        }
        Ok(())
    }

    fn own_uri(&self, port: u16) -> MsrpUri {
        MsrpUri::new(
            self.transport().scheme(),
            self.host.clone(),
            port,
            self.session_id.clone(),
        )
    }

    /// Our `a=path`: the Use-Path reversed, then our own URI (RFC 4976 §5.1).
    fn path(&self, own: MsrpUri) -> Vec<MsrpUri> {
        let mut p: Vec<MsrpUri> = self.relay_path.iter().rev().cloned().collect();
        p.push(own);
        p
    }
}

/// Makes an MSRP session id from caller-provided random bytes (base32, lower case, so it fits
/// RFC 4975 `session-id`). Pass at least 10 bytes from an OS RNG: RFC 4975 §14.1 requires 80
/// bits of randomness.
pub fn session_id_from_entropy(entropy: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
    let mut out = String::with_capacity(entropy.len() * 8 / 5 + 1);
    let (mut acc, mut bits) = (0u32, 0u32);
    for &b in entropy {
        acc = (acc << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(ALPHABET[((acc >> bits) & 31) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(ALPHABET[((acc << (5 - bits)) & 31) as usize] as char);
    }
    out
}

/// A received (or generated) SDP offer with a usable MSRP media description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SdpOffer {
    sdp: SessionDescription,
    media: MsrpMedia,
}

/// A received (or generated) SDP answer with a usable MSRP media description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SdpAnswer {
    sdp: SessionDescription,
    media: MsrpMedia,
}

macro_rules! sdp_newtype {
    ($t:ident) => {
        impl $t {
            /// Parses SDP text and checks its MSRP media description
            /// ([`MsrpMedia::find`]); errors name the line.
            pub fn parse(text: &str) -> Result<Self, SdpError> {
                Self::from_sdp(SessionDescription::parse(text)?)
            }

            /// Checks a parsed SDP body's MSRP media description.
            pub fn from_sdp(sdp: SessionDescription) -> Result<Self, SdpError> {
                let media = MsrpMedia::find(&sdp)?;
                Ok($t { sdp, media })
            }

            /// The whole SDP body.
            pub fn sdp(&self) -> &SessionDescription {
                &self.sdp
            }

            /// The MSRP media description.
            pub fn media(&self) -> &MsrpMedia {
                &self.media
            }
        }

        impl fmt::Display for $t {
            /// The SDP text, CRLF line ends.
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.sdp.fmt(f)
            }
        }
    };
}
sdp_newtype!(SdpOffer);
sdp_newtype!(SdpAnswer);

/// An offer we sent and whose answer we wait for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingOffer {
    offer: SdpOffer,
}

impl PendingOffer {
    /// The offer to send.
    pub fn offer(&self) -> &SdpOffer {
        &self.offer
    }

    /// Applies the peer's answer: checks it against the offer (RFC 3264 §6, RFC 4145 §4.1)
    /// and computes our [`ConnectionPlan`] as the offerer.
    pub fn accept_answer(self, answer: &SdpAnswer) -> Result<ConnectionPlan, SdpError> {
        plan(&self.offer, answer, Side::Offerer)
    }
}

/// An answer we generated, with our plan as the answerer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answered {
    /// The answer to send.
    pub answer: SdpAnswer,
    /// Our connection plan; its warnings include those about the answer we chose
    /// (for example RFC 6135 §5).
    pub plan: ConnectionPlan,
}

fn addr_type(host: &Host) -> &'static str {
    match host {
        Host::V6(_) => "IP6",
        _ => "IP4",
    }
}

fn build(
    cfg: &LocalConfig,
    c_host: &Host,
    t_line: &str,
    media: Vec<MediaDescription>,
) -> SessionDescription {
    let at = addr_type(&cfg.host);
    // RFC 3264 §5: o= session id and version representable as a signed 64-bit integer.
    let session = vec![
        Line::new('v', "0"),
        Line::new(
            'o',
            format!(
                "- {} 1 IN {at} {}",
                cfg.sdp_session_id & ((1 << 62) - 1),
                cfg.host.to_plain_string()
            ),
        ),
        // RFC 3264 §5: s= RECOMMENDED to be a single space or a dash.
        Line::new('s', "-"),
        // RFC 4975 §8.1: c= carries the address of the MSRP URI identifying the endpoint
        // (RFC 6714 §4.2/§4.3: the relay's, with CEMA and a relay).
        Line::new(
            'c',
            format!("IN {} {}", addr_type(c_host), c_host.to_plain_string()),
        ),
        Line::new('t', t_line),
    ];
    SessionDescription { session, media }
}

/// Builds our offer (RFC 6135 §4.2, RFC 4975 §8, RFC 4976 §5.1, RFC 6714 §4.2).
///
/// - `a=setup` is always present (RFC 6135 §4.2.1): `actpass` when we are reachable or use
///   a relay, otherwise `active` (RFC 6135 §4.2.2); never `passive` or `holdconn`.
/// - When `active`, the m-line port and the port of our `a=path` URI are 9, the discard port
///   (RFC 4145 §4.1, RFC 6135 §4.2.2); the `c=` line keeps our address (RFC 4975 §8.1).
/// - Never `a=connection` (RFC 6135 §4.4).
/// - With a relay, `a=path` is the reversed Use-Path followed by our URI (RFC 4976 §5.1).
/// - With CEMA and a relay, `c=`/`m=` carry the relay's address (RFC 6714 §4.2).
pub fn create_offer(cfg: &LocalConfig) -> Result<PendingOffer, SdpError> {
    cfg.check()?;
    let relay = !cfg.relay_path.is_empty();
    // RFC 6135 §4.2.2
    let setup = if cfg.reachability == Reachability::Reachable || relay {
        Setup::ActPass
    } else {
        Setup::Active
    };
    let port = if setup == Setup::Active { 9 } else { cfg.port };
    let path = cfg.path(cfg.own_uri(port));
    let mut m = MsrpMedia::new(port, cfg.transport(), path, cfg.accept_types.clone());
    m.accept_wrapped_types = cfg.accept_wrapped_types.clone();
    m.max_size = cfg.max_size;
    m.setup = Some(setup);
    if cfg.tls {
        m.fingerprints.extend(
            cfg.fingerprint
                .iter()
                .chain(&cfg.extra_fingerprints)
                .cloned(),
        );
    }
    m.cema = cfg.cema;
    let mut c_host = cfg.host.clone();
    if cfg.cema && relay {
        // RFC 6714 §4.2 item 3: the relay's address in c=/m=.
        let r = m.first_hop().clone();
        c_host = r.host.clone();
        m.port = r.port.expect("checked");
    }
    let sdp = build(
        cfg,
        &c_host,
        "0 0",
        vec![MediaDescription {
            lines: m.to_lines(),
        }],
    );
    // Re-read what we wrote: our own checks apply to our own output.
    let offer = SdpOffer::parse(&sdp.to_string())?;
    Ok(PendingOffer { offer })
}

/// Answers an offer (RFC 3264 §6, RFC 4145 §4.1, RFC 6135 §4.2 and §5, RFC 4975 §8.6,
/// RFC 5547 §8.3, RFC 6714 §4.3) and computes our plan as the answerer.
///
/// `a=setup` in the answer is always explicit:
///
/// | offer                 | answer                                                    |
/// |-----------------------|-----------------------------------------------------------|
/// | `actpass`             | `passive` if reachable or relayed, else `active`          |
/// | `active`              | `passive`                                                 |
/// | `passive`             | `active`                                                  |
/// | `holdconn` or absent  | `passive` (RFC 4975: the offerer connects); warning when behind a NAT without relay (RFC 6135 §5) |
///
/// `a=connection` in the offer is ignored (RFC 6135 §4.4). Accept-types are intersected
/// ([`AcceptType::intersect`]); an empty intersection is an error (488, RFC 4975 §8.6).
/// Other media descriptions of the offer are rejected with port 0 (RFC 3264 §6).
pub fn create_answer(offer: &SdpOffer, cfg: &LocalConfig) -> Result<Answered, SdpError> {
    cfg.check()?;
    let o = offer.media();
    let relay = !cfg.relay_path.is_empty();
    if o.transport == MsrpTransport::Tls && !cfg.tls {
        return Err(SdpError::at(o.line, ErrorKind::TlsNotConfigured));
    }
    let transport = o.transport;
    let reachable = cfg.reachability == Reachability::Reachable || relay;
    let mut warnings = Vec::new();
    // RFC 6135 §4.2.1: holdconn is processed as if there were no a=setup.
    let offered = o.setup.filter(|s| *s != Setup::HoldConn);
    let setup = match offered {
        // RFC 6135 §4.2.2: MAY answer active, SHOULD answer passive when not behind a NAT.
        Some(Setup::ActPass) if reachable => Setup::Passive,
        Some(Setup::ActPass) => Setup::Active,
        Some(Setup::Active) => Setup::Passive,
        Some(Setup::Passive) => Setup::Active,
        // RFC 4975 §8.5 peer: the offerer connects. RFC 4145 §4.1 default answer: passive.
        Some(Setup::HoldConn) | None => Setup::Passive,
    };
    if setup == Setup::Passive && !reachable {
        warnings.push(if offered.is_none() {
            Warning::NatTraversalNeedsRelay
        } else {
            Warning::UnreachablePassive
        });
    }

    // RFC 4975 §8.6
    let accept = AcceptType::intersect(&cfg.accept_types, &o.accept_types);
    if accept.is_empty() {
        return Err(SdpError::at(
            o.line,
            ErrorKind::NoCommonAcceptTypes {
                offer: AcceptType::list_to_string(&o.accept_types),
                ours: AcceptType::list_to_string(&cfg.accept_types),
            },
        ));
    }
    let wrapped = AcceptType::intersect(&cfg.accept_wrapped_types, &o.accept_wrapped_types);

    let port = if setup == Setup::Active { 9 } else { cfg.port };
    let mut m = MsrpMedia::new(port, transport, cfg.path(cfg.own_uri(port)), accept);
    m.accept_wrapped_types = wrapped;
    m.max_size = cfg.max_size;
    m.setup = Some(setup);
    if transport == MsrpTransport::Tls {
        m.fingerprints.extend(
            cfg.fingerprint
                .iter()
                .chain(&cfg.extra_fingerprints)
                .cloned(),
        );
    }
    // RFC 3264 §6.1 directions.
    m.direction = o.direction.map(|d| d.answer());
    // RFC 5547 §8.3: the answer repeats the file-selector and file-transfer-id it accepts.
    if o.file_selector.is_some() {
        m.file_selector = o.file_selector.clone();
        m.file_transfer_id = o.file_transfer_id.clone();
        m.file_range = o.file_range;
    }
    // RFC 6714 §4.3: CEMA unless one of the three fallback criteria holds.
    let offer_relay = o.path.len() > 1;
    let offerer_active = setup == Setup::Passive;
    m.cema = cfg.cema
        && o.cema
        && !(offer_relay && relay)
        && !(offer_relay && offerer_active)
        && !(relay && setup == Setup::Active);
    let mut c_host = cfg.host.clone();
    if m.cema && relay {
        // RFC 6714 §4.3 item 3: the relay's address in c=/m= (and we are passive).
        let r = m.first_hop().clone();
        c_host = r.host.clone();
        m.port = r.port.expect("checked");
    }

    // RFC 3264 §6: one m-line per offered m-line, others rejected with port 0.
    let mut media = Vec::new();
    for (i, md) in offer.sdp().media.iter().enumerate() {
        if i == o.index {
            media.push(MediaDescription {
                lines: m.to_lines(),
            });
        } else {
            let mut ml = md.media_line()?;
            ml.port = 0;
            ml.port_count = None;
            media.push(MediaDescription {
                lines: vec![Line::new('m', ml.to_string())],
            });
        }
    }
    // RFC 3264 §6: the answer's t= equals the offer's.
    let t = offer
        .sdp()
        .session
        .iter()
        .find(|l| l.kind == 't')
        .map(|l| l.value.clone())
        .unwrap_or_else(|| "0 0".into());
    let sdp = build(cfg, &c_host, &t, media);
    let answer = SdpAnswer::parse(&sdp.to_string())?;
    let mut plan = plan(offer, &answer, Side::Answerer)?;
    plan.warnings.extend(warnings);
    Ok(Answered { answer, plan })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_ids_from_entropy_are_valid_and_distinct() {
        let a = session_id_from_entropy(&[0u8; 10]);
        let b = session_id_from_entropy(&[0xff, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
        assert_eq!(a.len(), 16); // 80 bits / 5 bits per character
        assert_ne!(a, b);
        for s in [&a, &b] {
            let u = MsrpUri::parse(&format!("msrp://h.example:1/{s};tcp")).unwrap();
            assert_eq!(u.session_id(), Some(s.as_str()));
        }
        assert_eq!(session_id_from_entropy(&[0xf8]), "7a");
    }

    #[test]
    fn config_errors_are_reported() {
        let mut c = LocalConfig::new("192.0.2.1:2855".parse().unwrap(), "bad id");
        assert!(matches!(
            create_offer(&c).unwrap_err().kind,
            ErrorKind::Config(_)
        ));
        c.session_id = "ok".into();
        c.accept_types.clear();
        assert!(matches!(
            create_offer(&c).unwrap_err().kind,
            ErrorKind::Config(_)
        ));
        c.accept_types = AcceptType::parse_list("*").unwrap();
        c.relay_path = vec![MsrpUri::parse("msrps://relay.example;tcp").unwrap()];
        let e = create_offer(&c).unwrap_err();
        assert!(e.to_string().contains("has no port"), "{e}");
        c.relay_path.clear();
        c.port = 0;
        assert!(create_offer(&c).unwrap_err().to_string().contains("port 0"));
        c.port = 2855;
        c.host = Host::from(std::net::IpAddr::from([0, 0, 0, 0]));
        assert!(create_offer(&c)
            .unwrap_err()
            .to_string()
            .contains("unspecified"));
    }

    #[test]
    fn offer_never_has_passive_holdconn_or_connection() {
        for reach in [Reachability::Reachable, Reachability::BehindNat] {
            for cema in [false, true] {
                let mut c = LocalConfig::new("[2001:db8::1]:2855".parse().unwrap(), "s1");
                c.reachability = reach;
                c.cema = cema;
                let text = create_offer(&c).unwrap().offer().to_string();
                assert!(text.contains("c=IN IP6 2001:db8::1\r\n"), "{text}");
                assert_eq!(text.matches("a=setup:").count(), 1, "{text}");
                assert!(!text.contains("a=setup:passive") && !text.contains("holdconn"));
                assert!(!text.contains("a=connection"));
                assert_eq!(text.contains("a=msrp-cema\r\n"), cema);
                if reach == Reachability::BehindNat {
                    assert!(text.contains("m=message 9 TCP/MSRP *\r\n"), "{text}");
                    assert!(
                        text.contains("a=path:msrp://[2001:db8::1]:9/s1;tcp\r\n"),
                        "{text}"
                    );
                    assert!(text.contains("a=setup:active\r\n"), "{text}");
                }
            }
        }
    }
}
