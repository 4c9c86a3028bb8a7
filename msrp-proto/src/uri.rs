//! MSRP URIs (RFC 4975 §6, §9; RFC 4976 §5 for relay URIs).
//!
//! ```text
//! MSRP-URI = msrp-scheme "://" authority ["/" session-id] ";" transport *( ";" URI-parameter)
//! ```
//!
//! [`MsrpUri`] parses and prints that form. Its derived `PartialEq` is structural (useful for
//! round-trip tests and maps); the protocol comparison of RFC 4975 §6.1 is
//! [`MsrpUri::equivalent`].

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;

/// Longest URI text we accept, a guard against hostile input (a URI is typically < 100 bytes).
pub const MAX_URI_LEN: usize = 2048;

/// The URI scheme: `msrp` (TCP) or `msrps` (TLS, RFC 4975 §6: the connection MUST be protected
/// with TLS).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// `msrp:`: plain TCP.
    Msrp,
    /// `msrps:`: TLS.
    Msrps,
}

impl Scheme {
    /// The scheme as written in URIs (lower case).
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Msrp => "msrp",
            Scheme::Msrps => "msrps",
        }
    }

    /// True for `msrps`.
    pub fn is_secure(self) -> bool {
        self == Scheme::Msrps
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The host part of the authority.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Host {
    /// A registered name (DNS name), kept as written.
    Name(String),
    /// An IPv4 literal.
    V4(Ipv4Addr),
    /// An IPv6 literal (written in brackets).
    V6(Ipv6Addr),
}

impl Host {
    /// The IP address, when the host is an IP literal.
    pub fn ip(&self) -> Option<IpAddr> {
        match self {
            Host::Name(_) => None,
            Host::V4(a) => Some(IpAddr::V4(*a)),
            Host::V6(a) => Some(IpAddr::V6(*a)),
        }
    }

    /// The host as a string suitable for DNS resolution or TLS server names (no brackets).
    pub fn to_plain_string(&self) -> String {
        match self {
            Host::Name(n) => n.clone(),
            Host::V4(a) => a.to_string(),
            Host::V6(a) => a.to_string(),
        }
    }

    /// Normalised form for RFC 4975 §6.1 comparison: percent-decoded unreserved characters,
    /// lower case.
    fn normalized_name(name: &str) -> String {
        let b = name.as_bytes();
        let mut out = String::with_capacity(name.len());
        let mut i = 0;
        while i < b.len() {
            if b[i] == b'%' && i + 2 < b.len() {
                if let (Some(h), Some(l)) = (hex_val(b[i + 1]), hex_val(b[i + 2])) {
                    let c = (h << 4 | l) as char;
                    if is_unreserved(c as u8) {
                        out.push(c.to_ascii_lowercase());
                        i += 3;
                        continue;
                    }
                }
            }
            out.push((b[i] as char).to_ascii_lowercase());
            i += 1;
        }
        out
    }
}

impl From<IpAddr> for Host {
    fn from(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(a) => Host::V4(a),
            IpAddr::V6(a) => Host::V6(a),
        }
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Name(n) => f.write_str(n),
            Host::V4(a) => write!(f, "{a}"),
            Host::V6(a) => write!(f, "[{a}]"),
        }
    }
}

/// What is wrong with a URI that failed to parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UriError {
    /// The input is empty.
    #[error("empty MSRP URI")]
    Empty,
    /// The input is longer than [`MAX_URI_LEN`].
    #[error("MSRP URI longer than {MAX_URI_LEN} bytes")]
    TooLong,
    /// A byte outside printable US-ASCII (RFC 4975 §6: URIs are US-ASCII).
    #[error("MSRP URI contains a byte that is not printable US-ASCII at offset {0}")]
    NonAscii(usize),
    /// The scheme is not `msrp` or `msrps`, or `://` is missing.
    #[error("MSRP URI must start with msrp:// or msrps://")]
    BadScheme,
    /// The userinfo part has characters outside RFC 3986 userinfo.
    #[error("invalid userinfo in MSRP URI")]
    BadUserinfo,
    /// RFC 4975 §6: "A userinfo part MUST NOT contain password information."
    #[error("MSRP URI userinfo must not contain a password (RFC 4975 §6)")]
    PasswordInUserinfo,
    /// The host is empty or has invalid characters.
    #[error("invalid host in MSRP URI")]
    BadHost,
    /// A bracketed IPv6 literal that does not parse.
    #[error("invalid IPv6 literal in MSRP URI")]
    BadIpv6,
    /// The port is not a number in 0..=65535.
    #[error("invalid port in MSRP URI")]
    BadPort,
    /// RFC 4975 §6: "If the authority field contains a numeric IP address, it MUST also contain a port."
    #[error("MSRP URI with a numeric IP address must have a port (RFC 4975 §6)")]
    IpWithoutPort,
    /// The session id is empty or has characters outside `unreserved / "+" / "=" / "/"`.
    #[error("invalid session-id in MSRP URI")]
    BadSessionId,
    /// The mandatory `;transport` part is missing.
    #[error("MSRP URI has no transport parameter (for example ;tcp)")]
    MissingTransport,
    /// The transport is not `1*ALPHANUM`.
    #[error("invalid transport in MSRP URI")]
    BadTransport,
    /// A URI parameter is not `token ["=" token]`.
    #[error("invalid URI parameter in MSRP URI")]
    BadParameter,
}

/// An MSRP URI (RFC 4975 §6).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MsrpUri {
    /// `msrp` or `msrps`.
    pub scheme: Scheme,
    /// Optional user account (never a password).
    pub userinfo: Option<String>,
    /// Host name or IP literal.
    pub host: Host,
    /// Port; always present in URIs exchanged in SDP, may be absent in relay URIs.
    pub port: Option<u16>,
    /// Session id; absent for URIs that name a device (for example a relay).
    pub session_id: Option<String>,
    /// Transport parameter, as written (`tcp`, `ws`, ...); compared case-insensitively.
    pub transport: String,
    /// Further URI parameters, in order.
    pub params: Vec<(String, Option<String>)>,
}

fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// RFC 3986 unreserved.
fn is_unreserved(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~')
}

/// RFC 3986 sub-delims.
fn is_sub_delim(c: u8) -> bool {
    matches!(
        c,
        b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b';' | b'='
    )
}

/// RFC 4975 §9 token.
pub(crate) const fn is_token_char(c: u8) -> bool {
    matches!(c, 0x21 | 0x23..=0x27 | 0x2A..=0x2B | 0x2D..=0x2E | 0x30..=0x39 | 0x41..=0x5A | 0x5E..=0x7E)
}

/// Checks `*( unreserved / pct-encoded / sub-delims )` plus `extra`.
fn valid_pct_text(s: &str, extra: &[u8]) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == b'%' {
            if i + 2 >= b.len() {
                return false;
            }
            if hex_val(b[i + 1]).is_none() || hex_val(b[i + 2]).is_none() {
                return false;
            }
            i += 3;
            continue;
        }
        if !(is_unreserved(c) || is_sub_delim(c) || extra.contains(&c)) {
            return false;
        }
        i += 1;
    }
    true
}

fn is_session_id_char(c: u8) -> bool {
    is_unreserved(c) || matches!(c, b'+' | b'=' | b'/')
}

impl MsrpUri {
    /// A URI for a session at `host:port` over TCP (`;tcp`).
    pub fn new(scheme: Scheme, host: Host, port: u16, session_id: impl Into<String>) -> Self {
        MsrpUri {
            scheme,
            userinfo: None,
            host,
            port: Some(port),
            session_id: Some(session_id.into()),
            transport: "tcp".to_string(),
            params: Vec::new(),
        }
    }

    /// Parses an MSRP URI.
    pub fn parse(s: &str) -> Result<Self, UriError> {
        let parts = UriParts::parse(s)?;
        let mut params = Vec::new();
        if !parts.params.is_empty() {
            for p in parts.params.split(';') {
                let (name, value) = match p.split_once('=') {
                    Some((n, v)) => (n, Some(v)),
                    None => (p, None),
                };
                params.push((name.to_string(), value.map(str::to_string)));
            }
        }
        Ok(MsrpUri {
            scheme: parts.scheme,
            userinfo: parts.userinfo.map(str::to_string),
            host: match parts.host {
                HostPart::Name(n) => Host::Name(n.to_string()),
                HostPart::Ip(h) => h,
            },
            port: parts.port,
            session_id: parts.session_id.map(str::to_string),
            transport: parts.transport.to_string(),
            params,
        })
    }

    /// Checks that `s` is a valid MSRP URI without allocating: `validate(s).is_ok()` exactly
    /// when `parse(s).is_ok()`, with the same error. The message parser uses it to check
    /// To-Path, From-Path and Use-Path values cheaply (RFC 4975 §9).
    pub fn validate(s: &str) -> Result<(), UriError> {
        if is_common_form(s.as_bytes()) {
            return Ok(());
        }
        UriParts::parse(s).map(|_| ())
    }
}

/// Fast acceptance of the URI shape found in nearly every path header:
/// `msrp[s]://host.name[:port][/session-id];transport` with a DNS-style host (letters, digits,
/// `-`, `.`; not all digits and dots) and no userinfo, IP literal, percent-encoding or
/// parameters. It accepts only URIs the full parser accepts (the `uri_parser` fuzz target
/// checks that `validate` and `parse` agree); anything else goes to the full parser.
pub(crate) fn is_common_form(b: &[u8]) -> bool {
    common_form_len(b) == Some(b.len())
}

/// Length of the common-form URI at the start of `b`, which must end there, at a space (as
/// in a path header) or at a CR (the end of a header line, for the message parser's
/// whole-head fast path); `None` if it is not in the common form. One pass, no search.
#[inline]
pub(crate) fn common_form_len(b: &[u8]) -> Option<usize> {
    const CASE: u64 = 0x2020_2020_2020_2020;
    if b.len() < 8 {
        return None;
    }
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[..8]);
    // "msrp://" or "msrps://", case-insensitively (`| 0x20` folds the letters; ':' and '/'
    // are unaffected, and a byte that folds onto them is rejected by the exact checks below)
    let w = u64::from_le_bytes(w) | CASE;
    let mut i = if w == u64::from_le_bytes(*b"msrps://") && b[5..8] == *b"://" {
        8
    } else if w & 0x00FF_FFFF_FFFF_FFFF == u64::from_le_bytes(*b"msrp://\0") & 0x00FF_FFFF_FFFF_FFFF
        && b[4..7] == *b"://"
    {
        7
    } else {
        return None;
    };
    // host
    let host = i;
    i = class_run(b, i, HOST);
    // not all digits and dots (that could be an IPv4 literal: full parser); looking from the
    // end, where a name's last label usually has a letter at once
    if i == host
        || !b[host..i]
            .iter()
            .rev()
            .any(|&c| URI_CLASS[c as usize] & NOT_V4 != 0)
    {
        return None;
    }
    // port: 1 to 5 digits, at most 65535
    if b.get(i) == Some(&b':') {
        i += 1 + port_len(b, i + 1)?;
    }
    // session id
    if b.get(i) == Some(&b'/') {
        let start = i + 1;
        i = class_run(b, start, SESSION);
        if i == start {
            return None;
        }
    }
    // transport, and nothing after it but the end or a space
    if b.get(i) != Some(&b';') {
        return None;
    }
    i += 1;
    let t = i;
    // "tcp" (RFC 4975 §9 `transport`, case-insensitive) followed by SP or CR, as one word;
    // `| 0x20` folds only T, C and P onto t, c and p: the same as the run below
    let tcp = b.get(i..i + 4).is_some_and(|w| {
        let w = u32::from_le_bytes([w[0], w[1], w[2], w[3]]) | 0x0020_2020;
        w == u32::from_le_bytes(*b"tcp\r") || w == u32::from_le_bytes(*b"tcp ")
    });
    if tcp {
        i += 3;
    } else {
        while i < b.len() && URI_CLASS[b[i] as usize] & ALNUM != 0 {
            i += 1;
        }
    }
    if i == t || i > MAX_URI_LEN || (i < b.len() && b[i] != b' ' && b[i] != b'\r') {
        return None;
    }
    Some(i)
}

const HOST: u8 = 1;
const NOT_V4: u8 = 2;
const SESSION: u8 = 4;
const ALNUM: u8 = 8;

/// The number of digits of the port at `i` if there are 1 to 5 and their value is at most
/// 65535 (`port = *DIGIT`, RFC 3986 §3.2.3; the common form takes 1 to 5). Eight bytes at
/// once when the buffer has them: the digits by a word-wide range test, the value by
/// comparing five digits with "65535" as a big-endian number (same length: same order).
#[inline(always)]
fn port_len(b: &[u8], i: usize) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    if let Some(w) = b.get(i..i + 8) {
        let w = u64::from_le_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]]);
        // high bit of each byte in '0'..='9': v + (0x80 - '0') reaches 0x80 from '0' on,
        // v + (0x7f - '9') from ':' on; no carry crosses a byte (v < 0x80), and `& !w`
        // drops the bytes >= 0x80
        let v = w & !HIGH;
        let digit = (v + ONES * 0x50) & !(v + ONES * 0x46) & !w & HIGH;
        let n = ((!digit & HIGH).trailing_zeros() / 8) as usize;
        let big = n == 5
            && w.swap_bytes() >> 24 > u64::from_be_bytes([0, 0, 0, b'6', b'5', b'5', b'3', b'5']);
        return ((1..=5).contains(&n) && !big).then_some(n);
    }
    let mut port: u32 = 0;
    let mut n = 0;
    while let Some(d) = b
        .get(i + n)
        .map(|c| c.wrapping_sub(b'0'))
        .filter(|&d| d <= 9)
    {
        port = port * 10 + u32::from(d);
        n += 1;
        if n > 5 {
            return None;
        }
    }
    (n > 0 && port <= 65535).then_some(n)
}

/// The end of the run of bytes of `class` starting at `i`: four table look-ups ANDed
/// together per step; in the step that fails, the first byte out of the class; byte by
/// byte at the end of the buffer.
#[inline]
fn class_run(b: &[u8], mut i: usize, class: u8) -> usize {
    while let Some(w) = b.get(i..i + 4) {
        let t = [
            URI_CLASS[w[0] as usize],
            URI_CLASS[w[1] as usize],
            URI_CLASS[w[2] as usize],
            URI_CLASS[w[3] as usize],
        ];
        if t[0] & t[1] & t[2] & t[3] & class == 0 {
            return i + if t[0] & class == 0 {
                0
            } else if t[1] & class == 0 {
                1
            } else if t[2] & class == 0 {
                2
            } else {
                3
            };
        }
        i += 4;
    }
    while i < b.len() && URI_CLASS[b[i] as usize] & class != 0 {
        i += 1;
    }
    i
}

/// Character classes for [`is_common_form`]: HOST = letters, digits, `-`, `.`; NOT_V4 = HOST
/// characters other than digits and `.`; SESSION = `unreserved / "+" / "=" / "/"`; ALNUM = letters and digits.
static URI_CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        let alnum = b.is_ascii_alphanumeric();
        if alnum || b == b'-' || b == b'.' {
            t[c] |= HOST;
            if !(b.is_ascii_digit() || b == b'.') {
                t[c] |= NOT_V4;
            }
        }
        if alnum || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'=' | b'/') {
            t[c] |= SESSION;
        }
        if alnum {
            t[c] |= ALNUM;
        }
        c += 1;
    }
    t
};

/// Host as borrowed from the URI text.
enum HostPart<'a> {
    Name(&'a str),
    Ip(Host),
}

/// A syntactically valid URI, borrowed from its text (no allocation).
struct UriParts<'a> {
    scheme: Scheme,
    userinfo: Option<&'a str>,
    host: HostPart<'a>,
    port: Option<u16>,
    session_id: Option<&'a str>,
    transport: &'a str,
    /// Everything after the transport's `;` (validated), or empty.
    params: &'a str,
}

impl<'a> UriParts<'a> {
    fn parse(s: &'a str) -> Result<Self, UriError> {
        if s.is_empty() {
            return Err(UriError::Empty);
        }
        if s.len() > MAX_URI_LEN {
            return Err(UriError::TooLong);
        }
        if let Some(pos) = s.bytes().position(|c| !(0x21..=0x7e).contains(&c)) {
            return Err(UriError::NonAscii(pos));
        }
        let (scheme, rest) = if s.len() >= 8 && s[..8].eq_ignore_ascii_case("msrps://") {
            (Scheme::Msrps, &s[8..])
        } else if s.len() >= 7 && s[..7].eq_ignore_ascii_case("msrp://") {
            (Scheme::Msrp, &s[7..])
        } else {
            return Err(UriError::BadScheme);
        };

        // authority ends at the first '/' (session id) or ';' (transport).
        let auth_end = rest.find(['/', ';']).unwrap_or(rest.len());
        let authority = &rest[..auth_end];
        let mut rest = &rest[auth_end..];

        let (userinfo, hostport) = match authority.rfind('@') {
            Some(at) => {
                let ui = &authority[..at];
                if ui.contains(':') {
                    return Err(UriError::PasswordInUserinfo);
                }
                if ui.is_empty() || !valid_pct_text(ui, b"") {
                    return Err(UriError::BadUserinfo);
                }
                (Some(ui), &authority[at + 1..])
            }
            None => (None, authority),
        };

        let (host, port_str) = if let Some(stripped) = hostport.strip_prefix('[') {
            let close = stripped.find(']').ok_or(UriError::BadIpv6)?;
            let addr: Ipv6Addr = stripped[..close].parse().map_err(|_| UriError::BadIpv6)?;
            let after = &stripped[close + 1..];
            let port = if after.is_empty() {
                None
            } else {
                Some(after.strip_prefix(':').ok_or(UriError::BadHost)?)
            };
            (HostPart::Ip(Host::V6(addr)), port)
        } else {
            let (h, p) = match hostport.rfind(':') {
                Some(c) => (&hostport[..c], Some(&hostport[c + 1..])),
                None => (hostport, None),
            };
            if h.is_empty() || !valid_pct_text(h, b"") {
                return Err(UriError::BadHost);
            }
            let host = match h.parse::<Ipv4Addr>() {
                Ok(a) => HostPart::Ip(Host::V4(a)),
                Err(_) => HostPart::Name(h),
            };
            (host, p)
        };
        let port = match port_str {
            None => None,
            Some(p) => {
                if p.is_empty() || p.len() > 5 || !p.bytes().all(|c| c.is_ascii_digit()) {
                    return Err(UriError::BadPort);
                }
                Some(p.parse::<u16>().map_err(|_| UriError::BadPort)?)
            }
        };
        if port.is_none() && matches!(host, HostPart::Ip(_)) {
            return Err(UriError::IpWithoutPort);
        }

        let session_id = if let Some(r) = rest.strip_prefix('/') {
            let end = r.find(';').unwrap_or(r.len());
            let sid = &r[..end];
            if sid.is_empty() || !sid.bytes().all(is_session_id_char) {
                return Err(UriError::BadSessionId);
            }
            rest = &r[end..];
            Some(sid)
        } else {
            None
        };

        let r = rest.strip_prefix(';').ok_or(UriError::MissingTransport)?;
        let (transport, params) = r.split_once(';').unwrap_or((r, ""));
        if transport.is_empty() || !transport.bytes().all(|c| c.is_ascii_alphanumeric()) {
            return Err(UriError::BadTransport);
        }
        if r.len() > transport.len() && params.is_empty() {
            return Err(UriError::BadParameter);
        }
        for p in params.split(';').filter(|_| !params.is_empty()) {
            let (name, value) = match p.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (p, None),
            };
            if name.is_empty() || !name.bytes().all(is_token_char) {
                return Err(UriError::BadParameter);
            }
            if let Some(v) = value {
                if v.is_empty() || !v.bytes().all(is_token_char) {
                    return Err(UriError::BadParameter);
                }
            }
        }

        Ok(UriParts {
            scheme,
            userinfo,
            host,
            port,
            session_id,
            transport,
            params,
        })
    }
}

impl MsrpUri {
    /// True for `msrps:` URIs (the connection MUST use TLS, RFC 4975 §6).
    pub fn is_secure(&self) -> bool {
        self.scheme.is_secure()
    }

    /// The session id, if any.
    pub fn session_id(&self) -> Option<&str> {
        self.session_id.as_deref()
    }

    /// `host:port` (brackets around IPv6), the part that identifies the device to connect to.
    pub fn authority(&self) -> String {
        match self.port {
            Some(p) => format!("{}:{p}", self.host),
            None => self.host.to_string(),
        }
    }

    /// The socket address, when the host is an IP literal and the port is present.
    pub fn socket_addr(&self) -> Option<SocketAddr> {
        Some(SocketAddr::new(self.host.ip()?, self.port?))
    }

    /// Whether the transport parameter is `tcp` (case-insensitive).
    pub fn is_tcp(&self) -> bool {
        self.transport.eq_ignore_ascii_case("tcp")
    }

    /// URI comparison exactly as RFC 4975 §6.1:
    /// 1. schemes match, case-insensitively;
    /// 2. IP hosts compare by address, names case-insensitively after percent-decoding of
    ///    unreserved characters; userinfo is ignored;
    /// 3. an explicit port must match exactly, and an explicit port never equals none;
    /// 4. the session id compares case-sensitively, and a missing one never equals a present one;
    /// 5. transports compare case-insensitively.
    ///
    /// URI parameters other than the transport are not part of the comparison.
    pub fn equivalent(&self, other: &MsrpUri) -> bool {
        // RFC 4975 §6.1 rule 1
        if self.scheme != other.scheme {
            return false;
        }
        // rule 2
        let hosts_match = match (&self.host, &other.host) {
            (Host::Name(a), Host::Name(b)) => Host::normalized_name(a) == Host::normalized_name(b),
            (a, b) => a.ip().is_some() && a.ip() == b.ip(),
        };
        // rules 3, 4, 5
        hosts_match
            && self.port == other.port
            && self.session_id == other.session_id
            && self.transport.eq_ignore_ascii_case(&other.transport)
    }
}

impl FromStr for MsrpUri {
    type Err = UriError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        MsrpUri::parse(s)
    }
}

impl fmt::Display for MsrpUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://", self.scheme)?;
        if let Some(ui) = &self.userinfo {
            write!(f, "{ui}@")?;
        }
        write!(f, "{}", self.host)?;
        if let Some(p) = self.port {
            write!(f, ":{p}")?;
        }
        if let Some(s) = &self.session_id {
            write!(f, "/{s}")?;
        }
        write!(f, ";{}", self.transport)?;
        for (n, v) in &self.params {
            match v {
                Some(v) => write!(f, ";{n}={v}")?,
                None => write!(f, ";{n}")?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> MsrpUri {
        MsrpUri::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn parses_rfc_examples() {
        let u = p("msrp://host.example.com:8493/asfd34;tcp");
        assert_eq!(u.scheme, Scheme::Msrp);
        assert_eq!(u.host, Host::Name("host.example.com".into()));
        assert_eq!(u.port, Some(8493));
        assert_eq!(u.session_id(), Some("asfd34"));
        assert_eq!(u.transport, "tcp");
        let r = p("msrps://bob@relay.example.com;tcp");
        assert_eq!(r.userinfo.as_deref(), Some("bob"));
        assert_eq!(r.port, None);
        assert_eq!(r.session_id, None);
        let v6 = p("msrp://[2001:db8::1]:2855/abc+/=x;tcp;foo=bar;baz");
        assert_eq!(v6.host, Host::V6("2001:db8::1".parse().unwrap()));
        assert_eq!(v6.session_id(), Some("abc+/=x"));
        assert_eq!(
            v6.params,
            vec![("foo".into(), Some("bar".into())), ("baz".into(), None)]
        );
        assert_eq!(
            v6.socket_addr(),
            Some("[2001:db8::1]:2855".parse().unwrap())
        );
    }

    #[test]
    fn display_round_trips() {
        for s in [
            "msrp://host.example.com:8493/asfd34;tcp",
            "msrps://bob@relay.example.com;tcp",
            "msrp://[2001:db8::1]:2855/abc;tcp;foo=bar;baz",
            "msrp://192.0.2.1:9/s1;ws",
            "msrps://a%41b.example:1/x;tcp",
        ] {
            assert_eq!(p(s).to_string(), s);
        }
    }

    #[test]
    fn errors_are_specific() {
        let cases: &[(&str, UriError)] = &[
            ("", UriError::Empty),
            ("sip:alice@example.com", UriError::BadScheme),
            ("msrp:/host:1/a;tcp", UriError::BadScheme),
            (
                "msrp://alice:secret@host:1/a;tcp",
                UriError::PasswordInUserinfo,
            ),
            ("msrp://@host:1/a;tcp", UriError::BadUserinfo),
            ("msrp://:1/a;tcp", UriError::BadHost),
            ("msrp://ho st:1/a;tcp", UriError::NonAscii(9)),
            ("msrp://[::g]:1/a;tcp", UriError::BadIpv6),
            ("msrp://[::1/a;tcp", UriError::BadIpv6),
            ("msrp://host:99999/a;tcp", UriError::BadPort),
            ("msrp://host:/a;tcp", UriError::BadPort),
            ("msrp://host:1x/a;tcp", UriError::BadPort),
            ("msrp://192.0.2.1/a;tcp", UriError::IpWithoutPort),
            ("msrp://[::1]/a;tcp", UriError::IpWithoutPort),
            ("msrp://host:1/;tcp", UriError::BadSessionId),
            ("msrp://host:1/a*b;tcp", UriError::BadSessionId),
            ("msrp://host:1/abc", UriError::MissingTransport),
            ("msrp://host:1/abc;", UriError::BadTransport),
            ("msrp://host:1/abc;t-c", UriError::BadTransport),
            ("msrp://host:1/abc;tcp;", UriError::BadParameter),
            ("msrp://host:1/abc;tcp;a=", UriError::BadParameter),
            ("msrp://host:1/abc;tcp;a\"b", UriError::BadParameter),
            ("msrp://h%zz:1/abc;tcp", UriError::BadHost),
            ("msrp://h%4:1/abc;tcp", UriError::BadHost),
        ];
        for (s, e) in cases {
            assert_eq!(MsrpUri::parse(s).as_ref().err(), Some(e), "{s}");
        }
        assert_eq!(
            MsrpUri::parse(&format!("msrp://{}:1/a;tcp", "h".repeat(MAX_URI_LEN))),
            Err(UriError::TooLong)
        );
        assert!(MsrpUri::parse("msrp://hé:1/a;tcp").is_err());
    }

    /// The port check (word-wide digits, value by comparison) agrees with a byte loop, with
    /// and without eight bytes in the buffer.
    #[test]
    fn port_len_agrees_with_a_byte_loop() {
        let slow = |b: &[u8]| {
            let n = b.iter().take_while(|c| c.is_ascii_digit()).count();
            let v = b[..n]
                .iter()
                .fold(0u64, |a, &c| a * 10 + u64::from(c - b'0'));
            ((1..=5).contains(&n) && v <= 65535).then_some(n)
        };
        let mut cases: Vec<Vec<u8>> = Vec::new();
        for digits in [
            "",
            "0",
            "7",
            "12",
            "655",
            "6553",
            "65535",
            "65536",
            "65540",
            "66000",
            "70000",
            "99999",
            "00080",
            "09999",
            "123456",
            "1234567",
            "12345678",
            "123456789",
        ] {
            for tail in [
                "",
                "/",
                ";tcp/abcdefgh",
                "\u{b0}abcdefghij",
                ":xxxxxxxx",
                "9",
            ] {
                cases.push(format!("{digits}{tail}").into_bytes());
            }
        }
        for c in 0..=255u8 {
            for k in 0..8 {
                let mut b = b"65535/abcdef".to_vec();
                b[k] = c;
                cases.push(b.clone());
                b.truncate(6);
                cases.push(b);
            }
        }
        for b in &cases {
            assert_eq!(port_len(b, 0), slow(b), "{:?}", String::from_utf8_lossy(b));
        }
    }

    /// The run of a class ends where a byte-by-byte scan ends, wherever the first byte out
    /// of the class is.
    #[test]
    fn class_run_agrees_with_a_byte_loop() {
        for class in [HOST, SESSION, ALNUM] {
            for len in 0..12 {
                for stop in 0..=255u8 {
                    let mut b = vec![b'a'; len];
                    b.push(stop);
                    b.extend_from_slice(b"bcdefg");
                    for end in [len, len + 1, b.len()] {
                        let s = &b[..end];
                        let want = s
                            .iter()
                            .position(|&c| URI_CLASS[c as usize] & class == 0)
                            .unwrap_or(s.len());
                        assert_eq!(class_run(s, 0, class), want, "{class} {s:?}");
                    }
                }
            }
        }
    }

    /// The one-word "tcp" check ends the transport where the alnum run does.
    #[test]
    fn transport_word_check_agrees_with_the_run() {
        for t in [
            "tcp", "TCP", "tCp", "tcp1", "tcpx", "tc", "t", "", "tls", "tcp;", "Tcp_", "tcq",
        ] {
            for end in [
                "",
                " ",
                "\r",
                "\r\n",
                " msrp://x.example.com;tcp",
                ";",
                "\n",
                "\0",
                "é",
            ] {
                let s = format!("msrp://h.example.com:1/s;{t}{end}");
                let b = s.as_bytes();
                let t0 = b.iter().position(|&c| c == b';').unwrap() + 1;
                let mut i = t0;
                while i < b.len() && b[i].is_ascii_alphanumeric() {
                    i += 1;
                }
                let want = (i > t0 && (i == b.len() || b[i] == b' ' || b[i] == b'\r')).then_some(i);
                assert_eq!(common_form_len(b), want, "{s:?}");
            }
        }
    }

    #[test]
    fn fast_validation_agrees_with_full_parser() {
        for s in [
            "msrp://host.example.com:8493/asfd34;tcp",
            "MSRPS://h-1.example:65535/a+b=c/d;TCP",
            "msrp://h:65536/a;tcp",
            "msrp://h:000001/a;tcp",
            "msrp://192.0.2.1/a;tcp",
            "msrp://192.0.2.1:1/a;tcp",
            "msrp://1.2/a;tcp",
            "msrp://h/;tcp",
            "msrp://h/a;",
            "msrp://h/a;tcp;",
            "msrp://h/a;tcp;x=1",
            "msrp://h:/a;tcp",
            "msrp://h/a*;tcp",
            "msrp://h;tcp",
            "msrp://;tcp",
            "msrp:///a;tcp",
            "msrp://biloxi.example.com:12763/kjhd37s2s20w2a;tcp",
            "msrp://biloxi.example.com:127634/kjhd37s2s20w2a;tcp",
            "msrp://biloxi.example.com:99999/kjhd37s2s20w2a;tcp",
            "msrp://biloxi.example.com:/kjhd37s2s20w2a;tcp",
            "msrp://biloxi.exa_mple.com:1/kjhd37s2s20w2a;tcp",
            "msrp://biloxi.example.com:1/kjhd37s2s2,0w2a;tcp",
            "msrp://biloxi.example.com:1/kjhd37s~_=+/.-0w2a;tcpabcdefgh123",
            "msrp://biloxi.example.com:1/kjhd37s~_=+/.-0w2a;tcp_abcdefgh123",
            "msrp://123.456.789.012.345.678.9/kjhd37s2s20w2a;tcp",
            "msrp://123.456.789.012.345.678.9a/kjhd37s2s20w2a;tcp",
            "msrp://h.example.com:1/s;TcP",
            "msrp://h.example.com:1/s;tcp1",
            "msrp://h.example.com:1/s;tc",
            "msrp://h.example.com:1/s;tcp;",
            "msrp://h.example.com:1/s;tcp ",
            "msrp://h.example.com:1/s;tcp\r",
        ] {
            assert_eq!(
                MsrpUri::validate(s).is_ok(),
                MsrpUri::parse(s).is_ok(),
                "{s}"
            );
            if is_common_form(s.as_bytes()) {
                assert!(MsrpUri::parse(s).is_ok(), "{s}");
            }
        }
        assert!(is_common_form(b"msrp://host.example.com:8493/asfd34;tcp"));
    }

    #[test]
    fn comparison_follows_rfc4975_6_1() {
        let eq = |a: &str, b: &str| p(a).equivalent(&p(b));
        // rule 1: scheme case-insensitive, must match
        assert!(eq("MSRP://h.example:1/s;tcp", "msrp://h.example:1/s;tcp"));
        assert!(!eq("msrps://h.example:1/s;tcp", "msrp://h.example:1/s;tcp"));
        // rule 2: host name case-insensitive; percent-decoding; userinfo ignored; IP equivalence
        assert!(eq("msrp://H.Example:1/s;tcp", "msrp://h.example:1/s;tcp"));
        assert!(eq("msrp://%48.example:1/s;tcp", "msrp://h.example:1/s;tcp"));
        assert!(eq(
            "msrp://alice@h.example:1/s;tcp",
            "msrp://bob@h.example:1/s;tcp"
        ));
        assert!(eq(
            "msrp://[2001:db8:0::1]:1/s;tcp",
            "msrp://[2001:DB8::1]:1/s;tcp"
        ));
        assert!(!eq("msrp://192.0.2.1:1/s;tcp", "msrp://192.0.2.2:1/s;tcp"));
        // rule 3: explicit port must match; explicit never equals absent
        assert!(!eq("msrp://h.example:1/s;tcp", "msrp://h.example:2/s;tcp"));
        assert!(!eq("msrp://h.example:2855/s;tcp", "msrp://h.example/s;tcp"));
        // rule 4: session id case-sensitive; absent never equals present
        assert!(!eq("msrp://h.example:1/S;tcp", "msrp://h.example:1/s;tcp"));
        assert!(!eq("msrp://h.example:1;tcp", "msrp://h.example:1/s;tcp"));
        // rule 5: transport case-insensitive, different never match
        assert!(eq("msrp://h.example:1/s;TCP", "msrp://h.example:1/s;tcp"));
        assert!(!eq("msrp://h.example:1/s;ws", "msrp://h.example:1/s;tcp"));
        // other parameters are not compared
        assert!(eq(
            "msrp://h.example:1/s;tcp;x=1",
            "msrp://h.example:1/s;tcp"
        ));
    }
}
