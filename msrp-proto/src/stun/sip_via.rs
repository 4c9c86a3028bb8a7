//! The SIP-signalling NAT heuristic of RFC 6135 §4.2.2: compare the Via sent-by of our
//! REGISTER with the `received` (RFC 3261 §18.2.1) and `rport` (RFC 3581 §4) parameters the
//! registrar added in its 200 (OK) response.
//!
//! RFC 6135 §4.2.2: "If the IP addresses are not the same, then the UA can determine that
//! there is a NAT in the path." It also warns that the check fails when a proxy sits before
//! the NAT, so the result is a hint, never proof of reachability.

use std::net::IpAddr;

/// Longest Via header value we look at.
pub const MAX_VIA_LEN: usize = 4096;

/// What the Via comparison shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViaCheck {
    /// `Some(true)`: a NAT is in the path; `Some(false)`: none seen; `None`: cannot tell.
    pub behind_nat: Option<bool>,
    /// The sent-by host as written.
    pub sent_by_host: String,
    /// The sent-by port, if written.
    pub sent_by_port: Option<u16>,
    /// The `received` parameter.
    pub received: Option<IpAddr>,
    /// The `rport` parameter's value.
    pub rport: Option<u16>,
    /// Why, in words.
    pub reason: String,
}

/// Why a Via header value could not be checked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ViaError {
    /// Longer than [`MAX_VIA_LEN`].
    #[error("Via header longer than {MAX_VIA_LEN} bytes")]
    TooLong,
    /// Not `SIP/2.0/<transport> <sent-by>`.
    #[error("malformed Via header: {0}")]
    Malformed(&'static str),
    /// A `received` parameter that is not an IP address.
    #[error("Via received parameter {0:?} is not an IP address")]
    BadReceived(String),
    /// An `rport` parameter that is not a port number.
    #[error("Via rport parameter {0:?} is not a port number")]
    BadRport(String),
}

/// Checks the topmost Via of a REGISTER response. `via` is the header value (a leading
/// `Via:` or compact `v:` name is accepted); only its first via-parm is used (RFC 3261
/// §20.42: the topmost Via is the one this UA added).
pub fn check_via(via: &str) -> Result<ViaCheck, ViaError> {
    if via.len() > MAX_VIA_LEN {
        return Err(ViaError::TooLong);
    }
    let mut v = via.trim();
    for name in ["via:", "v:"] {
        if v.get(..name.len())
            .is_some_and(|p| p.eq_ignore_ascii_case(name))
        {
            v = v[name.len()..].trim_start();
            break;
        }
    }
    // First via-parm: up to a comma outside quotes.
    let mut in_quotes = false;
    let end = v
        .char_indices()
        .find(|&(_, c)| {
            if c == '"' {
                in_quotes = !in_quotes;
            }
            c == ',' && !in_quotes
        })
        .map(|(i, _)| i)
        .unwrap_or(v.len());
    let parm = v[..end].trim();

    // sent-protocol LWS sent-by *( SEMI via-params ) (RFC 3261 §25.1)
    let (proto, rest) =
        parm.split_once(|c: char| c.is_ascii_whitespace())
            .ok_or(ViaError::Malformed(
                "expected \"SIP/2.0/<transport> <sent-by>\"",
            ))?;
    let mut proto_parts = proto.split('/').map(str::trim);
    let (name, version, transport) = (proto_parts.next(), proto_parts.next(), proto_parts.next());
    if !name.is_some_and(|n| n.eq_ignore_ascii_case("SIP"))
        || version != Some("2.0")
        || transport.is_none_or(str::is_empty)
    {
        return Err(ViaError::Malformed(
            "sent-protocol is not SIP/2.0/<transport>",
        ));
    }
    let transport = transport.unwrap_or_default();
    let mut fields = rest.split(';');
    let sent_by = fields.next().unwrap_or_default().trim();
    if sent_by.is_empty() {
        return Err(ViaError::Malformed("empty sent-by"));
    }
    let (host, port) = split_host_port(sent_by)?;

    let mut received = None;
    let mut rport = None;
    for p in fields {
        let (k, val) = match p.split_once('=') {
            Some((k, v)) => (k.trim(), Some(v.trim())),
            None => (p.trim(), None),
        };
        if k.eq_ignore_ascii_case("received") {
            let raw = val.unwrap_or_default();
            let ip_text = raw.trim_start_matches('[').trim_end_matches(']');
            received = Some(
                ip_text
                    .parse::<IpAddr>()
                    .map_err(|_| ViaError::BadReceived(raw.to_string()))?,
            );
        } else if k.eq_ignore_ascii_case("rport") {
            // RFC 3581 §4: the server fills in the source port; a bare `rport` means the
            // server did not (it does not support RFC 3581).
            if let Some(val) = val {
                rport = Some(
                    val.parse::<u16>()
                        .map_err(|_| ViaError::BadRport(val.to_string()))?,
                );
            }
        }
    }

    // RFC 3261 §18.1.1/§19.1.2: default ports 5060, or 5061 for TLS.
    let default_port = if transport.eq_ignore_ascii_case("TLS") {
        5061
    } else {
        5060
    };
    let sent_ip = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
        .ok();
    let effective_port = port.unwrap_or(default_port);

    let (behind_nat, reason) = match (sent_ip, received) {
        (Some(ip), Some(r)) if ip != r => (
            Some(true),
            format!("the registrar saw the request from {r}, not from the sent-by address {ip}"),
        ),
        (_, _) if rport.is_some_and(|rp| rp != effective_port) => (
            Some(true),
            format!(
                "the registrar saw source port {}, not the sent-by port {effective_port}",
                rport.unwrap_or_default()
            ),
        ),
        (Some(ip), _) => (
            Some(false),
            // RFC 3261 §18.2.1: `received` is added only when the source differs from
            // sent-by, so its absence (or equality) means the address was not translated.
            format!("the registrar saw the request from the sent-by address {ip}"),
        ),
        (None, Some(r)) => (
            None,
            format!(
                "sent-by is the host name {host:?}; the registrar saw {r}, which cannot be \
                 compared without resolving the name"
            ),
        ),
        (None, None) => (
            None,
            format!("sent-by is the host name {host:?} and the response has no received parameter"),
        ),
    };
    Ok(ViaCheck {
        behind_nat,
        sent_by_host: host.to_string(),
        sent_by_port: port,
        received,
        rport,
        reason,
    })
}

fn split_host_port(s: &str) -> Result<(&str, Option<u16>), ViaError> {
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let close = rest
            .find(']')
            .ok_or(ViaError::Malformed("unclosed IPv6 reference in sent-by"))?;
        let host = &s[..close + 2];
        let after = &rest[close + 1..];
        match after.strip_prefix(':') {
            Some(p) => (host, Some(p)),
            None if after.is_empty() => (host, None),
            None => return Err(ViaError::Malformed("junk after IPv6 reference in sent-by")),
        }
    } else {
        match s.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        }
    };
    if host.is_empty() {
        return Err(ViaError::Malformed("empty sent-by host"));
    }
    let port = match port {
        Some(p) => Some(
            p.trim()
                .parse::<u16>()
                .map_err(|_| ViaError::Malformed("sent-by port is not a number"))?,
        ),
        None => None,
    };
    Ok((host, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn via_received_differs_means_nat() {
        let c = check_via(
            "Via: SIP/2.0/UDP 192.168.1.20:5060;branch=z9hG4bK776;received=203.0.113.7;rport=40123",
        )
        .unwrap();
        assert_eq!(c.behind_nat, Some(true));
        assert_eq!(c.received, Some("203.0.113.7".parse().unwrap()));
        assert_eq!(c.rport, Some(40123));
        assert_eq!(c.sent_by_port, Some(5060));
    }

    #[test]
    fn via_without_received_means_no_nat() {
        let c = check_via("SIP/2.0/TCP 198.51.100.4:5060;branch=z9hG4bKx;rport=5060").unwrap();
        assert_eq!(c.behind_nat, Some(false));
        let c = check_via("SIP/2.0/UDP 198.51.100.4;branch=z9hG4bKx").unwrap();
        assert_eq!(c.behind_nat, Some(false));
    }

    #[test]
    fn via_same_ip_other_port_means_nat() {
        // A port-translating NAT in front of a public address: only rport reveals it.
        let c = check_via("v: SIP/2.0/UDP 198.51.100.4:5060;rport=61000;received=198.51.100.4")
            .unwrap();
        assert_eq!(c.behind_nat, Some(true));
        // Default port 5061 for TLS.
        let c = check_via("SIP/2.0/TLS 198.51.100.4;rport=5061").unwrap();
        assert_eq!(c.behind_nat, Some(false));
    }

    #[test]
    fn via_hostname_is_undetermined_and_first_via_only() {
        let c = check_via("SIP/2.0/UDP ua.example.com;received=203.0.113.9, SIP/2.0/UDP 10.0.0.1")
            .unwrap();
        assert_eq!(c.behind_nat, None);
        assert_eq!(c.sent_by_host, "ua.example.com");
        let c = check_via("SIP/2.0/UDP [2001:db8::1]:5070;received=2001:db8::9").unwrap();
        assert_eq!(c.behind_nat, Some(true));
        assert_eq!(c.sent_by_port, Some(5070));
    }

    #[test]
    fn via_errors_are_values() {
        assert!(matches!(check_via(""), Err(ViaError::Malformed(_))));
        assert!(matches!(
            check_via("HTTP/1.1 x"),
            Err(ViaError::Malformed(_))
        ));
        assert!(matches!(
            check_via("SIP/2.0/UDP 1.2.3.4;received=nope"),
            Err(ViaError::BadReceived(_))
        ));
        assert!(matches!(
            check_via("SIP/2.0/UDP 1.2.3.4;rport=99999"),
            Err(ViaError::BadRport(_))
        ));
        assert!(matches!(
            check_via("SIP/2.0/UDP 1.2.3.4:port"),
            Err(ViaError::Malformed(_))
        ));
        assert!(matches!(
            check_via("SIP/2.0/UDP [::1"),
            Err(ViaError::Malformed(_))
        ));
        assert_eq!(check_via(&"x".repeat(5000)), Err(ViaError::TooLong));
    }
}
