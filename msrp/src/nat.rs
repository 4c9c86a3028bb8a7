//! `--reachability auto`: decides what to offer from STUN behaviour discovery run from the
//! MSRP listener's own port (RFC 6135 §4.2.2), for the CLI and for embedders alike.
//!
//! RFC 6135 §4.2.2: a UA may offer `actpass` only when it can provide a globally reachable
//! address: it is not behind a NAT, or STUN "through the local port to be used for the
//! eventual transport connection" shows a NAT with endpoint-independent mapping and
//! filtering (RFC 5780), in which case it advertises the mapped address. Otherwise it offers
//! `active`.
//!
//! [`resolve_reachability`] runs [`discover_tcp_with_udp_filtering`]: the TCP mapping (and
//! mapped address) from the listener's port, and, since RFC 5780 §3.2 cannot test filtering
//! over TCP, the filtering behaviour measured over UDP from the same port number; the
//! report's reason states that assumption. The listener must have been created with
//! `SO_REUSEPORT` ([`bind_shared_listener`](crate::stun::bind_shared_listener), or
//! [`Options::reuse_port`](crate::Options::reuse_port)) for the TCP tests to share its port.
//!
//! ```no_run
//! # async fn f() -> Result<(), Box<dyn std::error::Error>> {
//! let mut opts = msrp::Options::new("0.0.0.0:0".parse()?);
//! opts.reuse_port = true;
//! let ep = msrp::MsrpEndpoint::bind(opts).await?;
//! let stun = msrp::nat::resolve_stun_server("stun.example.net:3478", Some(ep.local_addr())).await?;
//! let nat = msrp::nat::resolve_reachability(stun, ep.local_addr(), Default::default()).await?;
//! let mut cfg = ep.local_config();
//! nat.apply(&mut cfg); // a=setup, c=, m= and a=path follow the verdict
//! let offered = ep.create_offer(&cfg).await?;
//! # Ok(()) }
//! ```

use std::net::SocketAddr;
use std::time::Duration;

use msrp_proto::sdp::{LocalConfig, Reachability};
use msrp_proto::uri::Host;

use crate::stun::{
    discover_tcp_with_udp_filtering, NatReport, OfferSetup, StunConfig, StunError, Verdict,
};

/// The outcome of `--reachability auto`: what to put into the SDP, and the report behind it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NatResolution {
    /// What the SDP layer needs ([`LocalConfig::reachability`]).
    pub reachability: Reachability,
    /// The address to advertise in `c=`, `m=` and `a=path`: the mapped address when
    /// reachable (the local address itself when not NATed), else the local address (the
    /// offer then says `active` and port 9 anyway).
    pub advertised: SocketAddr,
    /// The discovery report (mapping, filtering, verdict and the reason).
    pub report: NatReport,
}

impl NatResolution {
    /// Maps a discovery report to what the SDP layer needs (RFC 6135 §4.2.2). `listen` is
    /// the MSRP listener's address (its port is used when the report's local address is
    /// not concrete, which discovery never returns but a hand-made report may).
    pub fn from_report(report: NatReport, listen: SocketAddr) -> Self {
        let local = if report.local.ip().is_unspecified() || report.local.port() == 0 {
            listen
        } else {
            report.local
        };
        let (reachability, advertised) = match report.verdict {
            // RFC 6135 §4.2.2: "globally reachable" at the mapped address (equal to the
            // local one when there is no NAT).
            Verdict::NotBehindNat | Verdict::EndpointIndependent => {
                (Reachability::Reachable, report.mapped)
            }
            Verdict::BehindNat { .. } | Verdict::Firewalled { .. } => {
                (Reachability::BehindNat, local)
            }
        };
        NatResolution {
            reachability,
            advertised,
            report,
        }
    }

    /// The `a=setup` this resolution makes us offer.
    pub fn offer_setup(&self) -> OfferSetup {
        self.report.verdict.offer_setup()
    }

    /// Puts the verdict into `cfg`: reachability, and the advertised host and port.
    pub fn apply(&self, cfg: &mut LocalConfig) {
        cfg.reachability = self.reachability;
        cfg.host = Host::from(self.advertised.ip());
        cfg.port = self.advertised.port();
    }

    /// One JSON-friendly line for logs and the CLI: the verdict and its reason.
    pub fn summary(&self) -> String {
        format!(
            "{} (mapped {}, {} mapping, {} filtering): {}",
            self.offer_setup().as_str(),
            self.report.mapped,
            self.report.mapping.as_str(),
            self.report.filtering.as_str(),
            self.report.reason
        )
    }
}

/// Runs RFC 5780 discovery against `stun` from the MSRP listener's address `listen` (TCP from
/// its port, UDP filtering from the same port number, see the module docs) and maps the
/// verdict to the [`Reachability`] and advertised address of the offer or answer.
///
/// `listen` may have an unspecified IP (`0.0.0.0:P`): discovery then uses the source address
/// routed towards `stun`, and that address is the one advertised when not NATed. Its port
/// must be the real (non-zero) port of a listener created with `SO_REUSEPORT`, or a free one.
pub async fn resolve_reachability(
    stun: SocketAddr,
    listen: SocketAddr,
    config: StunConfig,
) -> Result<NatResolution, StunError> {
    let report = discover_tcp_with_udp_filtering(stun, listen, config).await?;
    tracing::info!(
        verdict = ?report.verdict,
        mapped = %report.mapped,
        reason = %report.reason,
        "RFC 6135 §4.2.2 reachability from STUN"
    );
    Ok(NatResolution::from_report(report, listen))
}

/// Why a `--stun HOST:PORT` could not be resolved.
#[derive(Debug, thiserror::Error)]
#[error("--stun {text:?}: {why}")]
pub struct ResolveError {
    /// What was given.
    pub text: String,
    /// What is wrong with it.
    pub why: String,
}

/// Resolves a STUN server given as `HOST:PORT` (an IP literal or a name, looked up within
/// 10 s), preferring the IP version of `local` when given.
pub async fn resolve_stun_server(
    text: &str,
    local: Option<SocketAddr>,
) -> Result<SocketAddr, ResolveError> {
    let err = |why: String| ResolveError {
        text: text.to_string(),
        why,
    };
    if let Ok(a) = text.parse::<SocketAddr>() {
        return Ok(a);
    }
    let Some((host, port)) = text.rsplit_once(':') else {
        return Err(err("expected HOST:PORT (for example 127.0.0.1:3478)".into()));
    };
    if host.is_empty() {
        return Err(err("the host is empty".into()));
    }
    if port.parse::<u16>().is_err() {
        return Err(err(format!("{port:?} is not a port number (0-65535)")));
    }
    let addrs: Vec<SocketAddr> =
        match tokio::time::timeout(Duration::from_secs(10), tokio::net::lookup_host(text)).await {
            Err(_) => return Err(err("name resolution timed out".into())),
            Ok(Err(e)) => return Err(err(format!("cannot resolve the host name: {e}"))),
            Ok(Ok(a)) => a.collect(),
        };
    let pick = match local {
        Some(l) => addrs.iter().find(|a| a.is_ipv4() == l.is_ipv4()),
        None => addrs.iter().find(|a| a.is_ipv4()).or(addrs.first()),
    };
    pick.copied()
        .ok_or_else(|| err("the name has no address of the local address's IP version".into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stun::{NatBehavior, Transport};
    use msrp_proto::sdp::create_offer;

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn report(local: &str, mapped: &str, verdict: Verdict) -> NatReport {
        NatReport {
            transport: Transport::Tcp,
            server: sa("203.0.113.2:3478"),
            local: sa(local),
            mapped: sa(mapped),
            other_address: Some(sa("203.0.113.3:3479")),
            response_origin: Some(sa("203.0.113.2:3478")),
            software: None,
            mapping: NatBehavior::EndpointIndependent,
            filtering: NatBehavior::EndpointIndependent,
            verdict,
            reason: "test".into(),
            observations: Vec::new(),
        }
    }

    fn offer_for(r: &NatResolution, listen: SocketAddr) -> String {
        let mut cfg = LocalConfig::new(listen, "sess1234");
        r.apply(&mut cfg);
        create_offer(&cfg).unwrap().offer().to_string()
    }

    #[test]
    fn endpoint_independent_nat_offers_actpass_with_the_mapped_address() {
        let listen = sa("192.0.2.10:40000");
        let r = NatResolution::from_report(
            report(
                "192.0.2.10:40000",
                "203.0.113.1:41000",
                Verdict::EndpointIndependent,
            ),
            listen,
        );
        assert_eq!(r.reachability, Reachability::Reachable);
        assert_eq!(r.advertised, sa("203.0.113.1:41000"));
        assert_eq!(r.offer_setup(), OfferSetup::ActPass);
        let sdp = offer_for(&r, listen);
        // RFC 6135 §4.2.2: the mapped address in c=, m= and a=path; never the inside one.
        assert!(sdp.contains("a=setup:actpass"), "{sdp}");
        assert!(sdp.contains("c=IN IP4 203.0.113.1"), "{sdp}");
        assert!(sdp.contains("m=message 41000 TCP/MSRP"), "{sdp}");
        assert!(
            sdp.contains("msrp://203.0.113.1:41000/sess1234;tcp"),
            "{sdp}"
        );
        assert!(!sdp.contains("192.0.2.10"), "{sdp}");
    }

    #[test]
    fn other_nats_offer_active() {
        let listen = sa("192.0.2.10:40000");
        for verdict in [
            Verdict::BehindNat {
                mapping: NatBehavior::EndpointIndependent,
                filtering: NatBehavior::AddressAndPortDependent,
            },
            Verdict::BehindNat {
                mapping: NatBehavior::AddressDependent,
                filtering: NatBehavior::NotTested,
            },
            Verdict::Firewalled {
                filtering: NatBehavior::AddressDependent,
            },
        ] {
            let r = NatResolution::from_report(
                report("192.0.2.10:40000", "203.0.113.1:41000", verdict),
                listen,
            );
            assert_eq!(r.reachability, Reachability::BehindNat, "{verdict:?}");
            assert_eq!(r.offer_setup(), OfferSetup::Active);
            let sdp = offer_for(&r, listen);
            assert!(sdp.contains("a=setup:active"), "{sdp}");
            // The mapped address of a NAT that filters is useless to the peer: not advertised.
            assert!(!sdp.contains("203.0.113.1"), "{sdp}");
        }
    }

    #[test]
    fn not_behind_nat_offers_actpass_with_the_local_address() {
        let listen = sa("0.0.0.0:40000");
        let r = NatResolution::from_report(
            report(
                "198.51.100.7:40000",
                "198.51.100.7:40000",
                Verdict::NotBehindNat,
            ),
            listen,
        );
        assert_eq!(r.reachability, Reachability::Reachable);
        // The concrete routed address, not 0.0.0.0.
        assert_eq!(r.advertised, sa("198.51.100.7:40000"));
        let sdp = offer_for(&r, listen);
        assert!(sdp.contains("a=setup:actpass"), "{sdp}");
        assert!(sdp.contains("msrp://198.51.100.7:40000/"), "{sdp}");
    }

    #[tokio::test]
    async fn bad_stun_server_strings_are_clear_errors() {
        for (text, want) in [
            ("nocolon", "expected HOST:PORT"),
            (":3478", "the host is empty"),
            ("host:99999", "not a port number"),
        ] {
            let e = resolve_stun_server(text, None).await.unwrap_err();
            assert!(e.to_string().contains(want), "{text}: {e}");
        }
        assert_eq!(
            resolve_stun_server("127.0.0.1:3478", None).await.unwrap(),
            sa("127.0.0.1:3478")
        );
    }
}
