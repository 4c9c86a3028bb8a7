//! SDP for MSRP (RFC 8866 syntax, RFC 4975 §8 media, RFC 6135 COMEDIA negotiation).
//!
//! Four layers, each in its own file:
//!
//! - this module: a lossless SDP *line layer*. [`SessionDescription::parse`] keeps every line
//!   (known or not) in order, so `parse(text).to_string()` reproduces the input, normalised only
//!   to CRLF line ends without trailing white space. Syntax errors name the line number.
//! - [`media`]: the typed MSRP media description ([`MsrpMedia`]): `m=message`, `c=`, `a=path`,
//!   `a=accept-types`, `a=setup`, `a=fingerprint`, `a=msrp-cema`, RFC 5547 file attributes.
//! - [`negotiate`]: offer/answer ([`create_offer`], [`create_answer`]) with the RFC 6135 §4.2
//!   `a=setup` rules; [`SdpOffer`], [`SdpAnswer`] and [`PendingOffer`] make the order a
//!   type-level fact.
//! - [`mod@plan`]: the [`ConnectionPlan`] both sides compute from the same offer and answer: who
//!   connects where, To-Path/From-Path, TLS role, warnings.
//!
//! Everything is sans-IO: no sockets, no clock, no random numbers. Randomness (session ids,
//! the `o=` session id) is an input of [`LocalConfig`]; see [`session_id_from_entropy`].
//!
//! Every error is an [`SdpError`]: an optional line number and an [`ErrorKind`]. A SIP stack
//! answers all of them with 488 Not Acceptable Here ([`SdpError::sip_status`]).

use std::fmt;

pub mod media;
pub mod negotiate;
pub mod plan;

pub use media::{
    AcceptType, ConnectionAttr, Direction, FileDate, FileRange, FileSelector, MsrpMedia,
    MsrpTransport, Setup,
};
pub use negotiate::{
    create_answer, create_offer, session_id_from_entropy, Answered, LocalConfig, PendingOffer,
    Reachability, SdpAnswer, SdpOffer,
};
pub use plan::{plan, ConnectionPlan, Role, Side, TlsRole, Warning};

/// Largest SDP body we parse (a guard against hostile input; real MSRP SDP is < 2 KiB).
pub const MAX_SDP_LEN: usize = 256 * 1024;
/// Most lines we accept in one SDP body.
pub const MAX_SDP_LINES: usize = 4096;

/// What is wrong with an SDP body or with the negotiation it describes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ErrorKind {
    /// The body is larger than [`MAX_SDP_LEN`] or has more than [`MAX_SDP_LINES`] lines.
    #[error("SDP body too large (limits: {MAX_SDP_LEN} bytes, {MAX_SDP_LINES} lines)")]
    TooLarge,
    /// The body is empty.
    #[error("empty SDP body")]
    Empty,
    /// A line that is not `<letter>=<value>` (RFC 8866 §5).
    #[error("expected '<type>=<value>' with a lower-case type letter (RFC 8866 §5)")]
    BadLine,
    /// An empty line before the end of the body.
    #[error("empty line inside the SDP body")]
    EmptyLine,
    /// A control character (NUL, CR inside a line, ...) in a line.
    #[error("control character 0x{0:02x} in line")]
    ControlCharacter(u8),
    /// The body does not start with `v=0`.
    #[error("SDP must start with 'v=0' (RFC 8866 §5.1)")]
    BadVersion,
    /// A mandatory line is missing or out of place.
    #[error("{0}")]
    Structure(&'static str),
    /// A line type that may not appear at this level (e.g. `t=` inside a media description).
    #[error("'{0}=' is not allowed in a media description (RFC 8866 §5)")]
    NotAllowedInMedia(char),
    /// A malformed `o=`, `c=` or `m=` line.
    #[error("malformed '{kind}=' line: {problem}")]
    BadField {
        /// The line type.
        kind: char,
        /// What is wrong.
        problem: String,
    },
    /// No `m=message` media description in the SDP.
    #[error("no MSRP media description (m=message ... TCP/MSRP or TCP/TLS/MSRP)")]
    NoMsrpMedia,
    /// `m=message` with a protocol other than `TCP/MSRP` or `TCP/TLS/MSRP` (RFC 4975 §8.1).
    #[error("unknown MSRP transport '{0}' (expected TCP/MSRP or TCP/TLS/MSRP, RFC 4975 §8.1)")]
    UnknownTransport(String),
    /// The MSRP media description has port 0 (rejected, RFC 3264 §6).
    #[error("the MSRP media description is rejected (port 0, RFC 3264 §6)")]
    MediaRejected,
    /// The MSRP media description has no `a=path` (RFC 4975 §8.2: MUST).
    #[error("MSRP media description has no a=path attribute (RFC 4975 §8.2)")]
    MissingPath,
    /// The MSRP media description has no `a=accept-types` (RFC 4975 §8.6: MUST).
    #[error("MSRP media description has no a=accept-types attribute (RFC 4975 §8.6)")]
    MissingAcceptTypes,
    /// An attribute whose value does not parse.
    #[error("invalid a={name}: {problem}")]
    BadAttribute {
        /// Attribute name.
        name: String,
        /// What is wrong.
        problem: String,
    },
    /// `a=path` and the `m=`/`c=` lines disagree (RFC 4975 §8.1, RFC 6714 §4.3).
    #[error("a=path disagrees with the media description: {0}")]
    PathMismatch(String),
    /// The answer carries `a=setup:actpass` (RFC 4145 §4.1: not a valid answer).
    #[error("a=setup:actpass is not allowed in an answer (RFC 4145 §4.1)")]
    AnswerActPass,
    /// Passive answer (explicit or by default) to a passive offer (RFC 4145 §4.1).
    #[error("passive answer to a passive offer: nobody would connect (RFC 4145 §4.1)")]
    BothPassive,
    /// Active answer to an active offer (RFC 4145 §4.1).
    #[error(
        "active answer to an active offer: nobody would accept the connection (RFC 4145 §4.1)"
    )]
    BothActive,
    /// The answer has fewer media descriptions than the offer (RFC 3264 §6).
    #[error("the answer has {answer} media descriptions, the offer {offer} (RFC 3264 §6)")]
    MediaCountMismatch {
        /// m-lines in the offer.
        offer: usize,
        /// m-lines in the answer.
        answer: usize,
    },
    /// The offer asks for TLS (`TCP/TLS/MSRP`) and we have no TLS configured.
    #[error("the offer requires TLS (TCP/TLS/MSRP) but TLS is not configured")]
    TlsNotConfigured,
    /// No media type acceptable to both sides (RFC 4975 §8.6).
    #[error("no common media type between offer ({offer}) and ours ({ours}) (RFC 4975 §8.6)")]
    NoCommonAcceptTypes {
        /// The offer's accept-types.
        offer: String,
        /// Our accept-types.
        ours: String,
    },
    /// The local configuration cannot produce valid SDP.
    #[error("invalid local configuration: {0}")]
    Config(String),
}

/// An SDP or negotiation error, with the line it concerns when there is one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SdpError {
    /// 1-based line number in the SDP text, when the error concerns one line.
    pub line: Option<usize>,
    /// What is wrong.
    pub kind: ErrorKind,
}

impl SdpError {
    /// An error about line `line` (1-based; 0 means "no line", for generated SDP).
    pub fn at(line: usize, kind: ErrorKind) -> Self {
        SdpError {
            line: (line > 0).then_some(line),
            kind,
        }
    }

    /// An error not tied to a line.
    pub fn new(kind: ErrorKind) -> Self {
        SdpError { line: None, kind }
    }

    /// The SIP status a SIP stack should answer the offer with: 488 Not Acceptable Here
    /// (RFC 3261 §21.4.26; RFC 4975 §8.6; RFC 6714 §4.3).
    pub fn sip_status(&self) -> u16 {
        488
    }
}

impl fmt::Display for SdpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(n) => write!(f, "line {n}: {}", self.kind),
            None => write!(f, "{}", self.kind),
        }
    }
}

impl std::error::Error for SdpError {}

/// One SDP line: its type letter and its value (everything after `=`).
///
/// Equality ignores the line number, so parsed and generated lines compare by content.
#[derive(Debug, Clone, Eq)]
pub struct Line {
    /// The type letter (`v`, `o`, `m`, `a`, ...).
    pub kind: char,
    /// The value, without the `<type>=` prefix and without the line end.
    pub value: String,
    number: usize,
}

impl PartialEq for Line {
    fn eq(&self, other: &Self) -> bool {
        self.kind == other.kind && self.value == other.value
    }
}

impl Line {
    /// A new (generated) line.
    pub fn new(kind: char, value: impl Into<String>) -> Self {
        Line {
            kind,
            value: value.into(),
            number: 0,
        }
    }

    /// A new `a=` line: `a=name` or `a=name:value`.
    pub fn attribute(name: &str, value: Option<&str>) -> Self {
        match value {
            Some(v) => Line::new('a', format!("{name}:{v}")),
            None => Line::new('a', name),
        }
    }

    /// The 1-based line number in the parsed text; 0 for generated lines.
    pub fn number(&self) -> usize {
        self.number
    }

    /// For an `a=` line: the attribute name and its value (`None` for property attributes
    /// such as `a=msrp-cema`), RFC 8866 §5.13.
    pub fn as_attribute(&self) -> Option<(&str, Option<&str>)> {
        if self.kind != 'a' {
            return None;
        }
        Some(match self.value.split_once(':') {
            Some((n, v)) => (n, Some(v)),
            None => (self.value.as_str(), None),
        })
    }
}

impl fmt::Display for Line {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", self.kind, self.value)
    }
}

/// The `o=` line (RFC 8866 §5.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// User name (`-` when none).
    pub username: String,
    /// Session id (numeric string).
    pub session_id: String,
    /// Session version (numeric string).
    pub session_version: String,
    /// Network type (`IN`).
    pub net_type: String,
    /// Address type (`IP4`, `IP6`).
    pub addr_type: String,
    /// Unicast address or FQDN.
    pub address: String,
}

impl Origin {
    /// Parses an `o=` value.
    pub fn parse(v: &str) -> Result<Origin, ErrorKind> {
        let f: Vec<&str> = v.split(' ').filter(|s| !s.is_empty()).collect();
        let bad = |p: &str| ErrorKind::BadField {
            kind: 'o',
            problem: p.to_string(),
        };
        if f.len() != 6 {
            return Err(bad(
                "expected '<username> <sess-id> <sess-version> <nettype> <addrtype> <address>'",
            ));
        }
        if !f[1].bytes().all(|c| c.is_ascii_digit()) || !f[2].bytes().all(|c| c.is_ascii_digit()) {
            return Err(bad("sess-id and sess-version must be numbers"));
        }
        Ok(Origin {
            username: f[0].into(),
            session_id: f[1].into(),
            session_version: f[2].into(),
            net_type: f[3].into(),
            addr_type: f[4].into(),
            address: f[5].into(),
        })
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} {} {} {} {}",
            self.username,
            self.session_id,
            self.session_version,
            self.net_type,
            self.addr_type,
            self.address
        )
    }
}

/// The `c=` line (RFC 8866 §5.7).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionData {
    /// Network type (`IN`).
    pub net_type: String,
    /// Address type (`IP4`, `IP6`).
    pub addr_type: String,
    /// The address (IP literal or FQDN), as written.
    pub address: String,
}

impl ConnectionData {
    /// Parses a `c=` value.
    pub fn parse(v: &str) -> Result<ConnectionData, ErrorKind> {
        let f: Vec<&str> = v.split(' ').filter(|s| !s.is_empty()).collect();
        if f.len() != 3 {
            return Err(ErrorKind::BadField {
                kind: 'c',
                problem: "expected '<nettype> <addrtype> <connection-address>'".into(),
            });
        }
        Ok(ConnectionData {
            net_type: f[0].into(),
            addr_type: f[1].into(),
            address: f[2].into(),
        })
    }

    /// The IP address, when the address is an IP literal (a multicast `/ttl` suffix is
    /// ignored).
    pub fn ip(&self) -> Option<std::net::IpAddr> {
        let a = self.address.split('/').next().unwrap_or("");
        a.parse().ok()
    }
}

impl fmt::Display for ConnectionData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", self.net_type, self.addr_type, self.address)
    }
}

/// The `m=` line (RFC 8866 §5.14).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaLine {
    /// Media type (`message`, `audio`, ...).
    pub media: String,
    /// Port.
    pub port: u16,
    /// Number of ports (`<port>/<number>`), rarely used.
    pub port_count: Option<u16>,
    /// Transport protocol (`TCP/MSRP`, `TCP/TLS/MSRP`, `RTP/AVP`, ...).
    pub proto: String,
    /// Format list (`*` for MSRP).
    pub formats: Vec<String>,
}

impl MediaLine {
    /// Parses an `m=` value.
    pub fn parse(v: &str) -> Result<MediaLine, ErrorKind> {
        let bad = |p: &str| ErrorKind::BadField {
            kind: 'm',
            problem: p.to_string(),
        };
        let f: Vec<&str> = v.split(' ').filter(|s| !s.is_empty()).collect();
        if f.len() < 4 {
            return Err(bad("expected '<media> <port> <proto> <fmt> ...'"));
        }
        let (port, count) = match f[1].split_once('/') {
            Some((p, n)) => (p, Some(n)),
            None => (f[1], None),
        };
        let num = |s: &str| -> Result<u16, ErrorKind> {
            if s.is_empty() || s.len() > 5 || !s.bytes().all(|c| c.is_ascii_digit()) {
                return Err(bad("port must be a number from 0 to 65535"));
            }
            s.parse::<u16>()
                .map_err(|_| bad("port must be a number from 0 to 65535"))
        };
        Ok(MediaLine {
            media: f[0].into(),
            port: num(port)?,
            port_count: count.map(num).transpose()?,
            proto: f[2].into(),
            formats: f[3..].iter().map(|s| s.to_string()).collect(),
        })
    }
}

impl fmt::Display for MediaLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.media, self.port)?;
        if let Some(n) = self.port_count {
            write!(f, "/{n}")?;
        }
        write!(f, " {}", self.proto)?;
        for fmt_ in &self.formats {
            write!(f, " {fmt_}")?;
        }
        Ok(())
    }
}

/// One media description: its `m=` line and the lines that follow it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaDescription {
    /// All lines; the first is the `m=` line.
    pub lines: Vec<Line>,
}

impl MediaDescription {
    /// The parsed `m=` line.
    pub fn media_line(&self) -> Result<MediaLine, SdpError> {
        let m = &self.lines[0];
        MediaLine::parse(&m.value).map_err(|k| SdpError::at(m.number, k))
    }

    /// The `m=` line as a [`Line`] (for its line number).
    pub fn m_line(&self) -> &Line {
        &self.lines[0]
    }

    /// All attribute lines named `name`, with their values.
    pub fn attributes<'a>(
        &'a self,
        name: &'a str,
    ) -> impl Iterator<Item = (&'a Line, Option<&'a str>)> + 'a {
        attributes_in(&self.lines[1..], name)
    }

    /// The media-level `c=` line, if any.
    pub fn connection_line(&self) -> Option<&Line> {
        self.lines[1..].iter().find(|l| l.kind == 'c')
    }
}

fn attributes_in<'a>(
    lines: &'a [Line],
    name: &'a str,
) -> impl Iterator<Item = (&'a Line, Option<&'a str>)> + 'a {
    lines.iter().filter_map(move |l| match l.as_attribute() {
        Some((n, v)) if n == name => Some((l, v)),
        _ => None,
    })
}

/// A whole SDP body, line by line (lossless).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionDescription {
    /// The session-level lines, from `v=` up to the first `m=`.
    pub session: Vec<Line>,
    /// The media descriptions, in order.
    pub media: Vec<MediaDescription>,
}

impl SessionDescription {
    /// Parses an SDP body (RFC 8866 §5, §9).
    ///
    /// Accepts LF or CRLF line ends and trailing spaces or tabs (both are dropped), and empty
    /// lines at the end. Unknown line types and attributes are kept as they are. Checks the
    /// structure: `v=0` first, then `o=` and `s=`, at least one `t=`, well-formed `o=`, `c=`
    /// and `m=` lines, and only `i= c= b= k= a=` (or unknown letters) inside media
    /// descriptions.
    pub fn parse(text: &str) -> Result<SessionDescription, SdpError> {
        if text.len() > MAX_SDP_LEN {
            return Err(SdpError::new(ErrorKind::TooLarge));
        }
        let raw: Vec<&str> = text
            .split('\n')
            .map(|l| l.trim_end_matches([' ', '\t', '\r']))
            .collect();
        // Empty lines at the end are allowed (a final line end, blank padding).
        let end = raw
            .iter()
            .rposition(|l| !l.is_empty())
            .map(|p| p + 1)
            .ok_or(SdpError::new(ErrorKind::Empty))?;
        if end > MAX_SDP_LINES {
            return Err(SdpError::new(ErrorKind::TooLarge));
        }
        let mut session = Vec::new();
        let mut media: Vec<MediaDescription> = Vec::new();
        for (i, l) in raw[..end].iter().enumerate() {
            let n = i + 1;
            if l.is_empty() {
                return Err(SdpError::at(n, ErrorKind::EmptyLine));
            }
            let b = l.as_bytes();
            if b.len() < 2 || !b[0].is_ascii_lowercase() || b[1] != b'=' {
                return Err(SdpError::at(n, ErrorKind::BadLine));
            }
            if let Some(c) = b.iter().find(|c| **c < 0x20 && **c != b'\t' || **c == 0x7f) {
                return Err(SdpError::at(n, ErrorKind::ControlCharacter(*c)));
            }
            let mut value = l[2..].to_string();
            // RFC 3264 §5 recommends "s= " (a single space): keep that one trailing space.
            if b[0] == b's' && value.is_empty() && raw[i].as_bytes().get(2) == Some(&b' ') {
                value.push(' ');
            }
            let line = Line {
                kind: b[0] as char,
                value,
                number: n,
            };
            match line.kind {
                'm' => {
                    MediaLine::parse(&line.value).map_err(|k| SdpError::at(n, k))?;
                    media.push(MediaDescription { lines: vec![line] });
                }
                'c' => {
                    ConnectionData::parse(&line.value).map_err(|k| SdpError::at(n, k))?;
                    push(&mut session, &mut media, line);
                }
                'v' | 'o' | 's' | 'u' | 'e' | 'p' | 't' | 'r' | 'z' if !media.is_empty() => {
                    return Err(SdpError::at(n, ErrorKind::NotAllowedInMedia(line.kind)));
                }
                _ => push(&mut session, &mut media, line),
            }
        }
        // RFC 8866 §5: v=, o=, s= in this order, then at least one t=.
        let structure = |line: usize, s: &'static str| SdpError::at(line, ErrorKind::Structure(s));
        if session.first().map(|l| (l.kind, l.value.as_str())) != Some(('v', "0")) {
            return Err(SdpError::at(1, ErrorKind::BadVersion));
        }
        match session.get(1) {
            Some(l) if l.kind == 'o' => {
                Origin::parse(&l.value).map_err(|k| SdpError::at(l.number, k))?;
            }
            _ => return Err(structure(2, "the second line must be 'o=' (RFC 8866 §5.2)")),
        }
        if session.get(2).map(|l| l.kind) != Some('s') {
            return Err(structure(3, "the third line must be 's=' (RFC 8866 §5.3)"));
        }
        for l in &session[1..] {
            if matches!(l.kind, 'v' | 'o' | 's') && l.number > 3 {
                return Err(structure(l.number, "duplicate 'v=', 'o=' or 's=' line"));
            }
        }
        if !session.iter().any(|l| l.kind == 't') {
            let n = media.first().map(|m| m.lines[0].number).unwrap_or(end);
            return Err(structure(
                n,
                "missing 't=' line before the media descriptions (RFC 8866 §5.9)",
            ));
        }
        Ok(SessionDescription { session, media })
    }

    /// The parsed `o=` line.
    pub fn origin(&self) -> Option<Origin> {
        self.session
            .iter()
            .find(|l| l.kind == 'o')
            .and_then(|l| Origin::parse(&l.value).ok())
    }

    /// The session-level `c=` line, if any.
    pub fn connection_line(&self) -> Option<&Line> {
        self.session.iter().find(|l| l.kind == 'c')
    }

    /// Session-level attribute lines named `name`.
    pub fn attributes<'a>(
        &'a self,
        name: &'a str,
    ) -> impl Iterator<Item = (&'a Line, Option<&'a str>)> + 'a {
        attributes_in(&self.session, name)
    }

    /// All lines in order.
    pub fn lines(&self) -> impl Iterator<Item = &Line> {
        self.session
            .iter()
            .chain(self.media.iter().flat_map(|m| m.lines.iter()))
    }
}

fn push(session: &mut Vec<Line>, media: &mut [MediaDescription], line: Line) {
    match media.last_mut() {
        Some(m) => m.lines.push(line),
        None => session.push(line),
    }
}

impl fmt::Display for SessionDescription {
    /// Writes the body with CRLF after every line (RFC 8866 §5).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for l in self.lines() {
            write!(f, "{l}\r\n")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASIC: &str = "v=0\r\no=alice 2890844526 2890844527 IN IP4 alice.example.com\r\ns= -\r\nc=IN IP4 alice.example.com\r\nt=0 0\r\nm=message 7394 TCP/MSRP *\r\na=accept-types:text/plain\r\na=path:msrp://alice.example.com:7394/2s93i9ek2a;tcp\r\n";

    #[test]
    fn round_trips_losslessly_with_unknown_lines() {
        let text = format!(
            "{BASIC}a=x-unknown:some value with  two spaces\r\nb=AS:64\r\nm=audio 0 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\nx=mystery\r\n"
        );
        let sdp = SessionDescription::parse(&text).unwrap();
        assert_eq!(sdp.to_string(), text);
        assert_eq!(sdp.media.len(), 2);
        assert_eq!(sdp.media[1].lines.len(), 3);
    }

    #[test]
    fn accepts_lf_and_trailing_spaces_and_writes_crlf() {
        let lf = BASIC.replace("\r\n", "  \n");
        let sdp = SessionDescription::parse(&lf).unwrap();
        assert_eq!(sdp.to_string(), BASIC);
        // Trailing blank lines are fine too.
        let sdp2 = SessionDescription::parse(&format!("{BASIC}\r\n\n  \n")).unwrap();
        assert_eq!(sdp2, sdp);
    }

    #[test]
    fn errors_name_the_line() {
        let cases: &[(&str, usize, &str)] = &[
            ("", 0, "empty SDP body"),
            ("v=1\no=- 1 1 IN IP4 h\ns=-\nt=0 0\n", 1, "v=0"),
            ("v=0\ns=-\nt=0 0\n", 2, "'o='"),
            ("v=0\no=- 1 1 IN IP4\ns=-\nt=0 0\n", 2, "malformed 'o='"),
            ("v=0\no=- x 1 IN IP4 h\ns=-\nt=0 0\n", 2, "numbers"),
            ("v=0\no=- 1 1 IN IP4 h\nt=0 0\n", 3, "'s='"),
            (
                "v=0\no=- 1 1 IN IP4 h\ns=-\nm=message 1 TCP/MSRP *\n",
                4,
                "'t='",
            ),
            (
                "v=0\no=- 1 1 IN IP4 h\ns=-\nt=0 0\nhello\n",
                5,
                "<type>=<value>",
            ),
            (
                "v=0\no=- 1 1 IN IP4 h\ns=-\nt=0 0\nA=x\n",
                5,
                "<type>=<value>",
            ),
            ("v=0\no=- 1 1 IN IP4 h\ns=-\n\nt=0 0\n", 4, "empty line"),
            (
                "v=0\no=- 1 1 IN IP4 h\ns=-\nt=0 0\nc=IN IP4\n",
                5,
                "malformed 'c='",
            ),
            (
                "v=0\no=- 1 1 IN IP4 h\ns=-\nt=0 0\nm=message 70000 TCP/MSRP *\n",
                5,
                "port",
            ),
            (
                "v=0\no=- 1 1 IN IP4 h\ns=-\nt=0 0\nm=message 1 TCP/MSRP\n",
                5,
                "malformed 'm='",
            ),
            (
                "v=0\no=- 1 1 IN IP4 h\ns=-\nt=0 0\nm=message 1 TCP/MSRP *\nt=0 0\n",
                6,
                "not allowed",
            ),
            (
                "v=0\no=- 1 1 IN IP4 h\ns=-\nt=0 0\na=x\0y\n",
                5,
                "control character 0x00",
            ),
            (
                "v=0\no=- 1 1 IN IP4 h\ns=-\nt=0 0\na=x\ry\n",
                5,
                "control character 0x0d",
            ),
            ("v=0\no=- 1 1 IN IP4 h\ns=-\ns=-\nt=0 0\n", 4, "duplicate"),
        ];
        for (text, line, needle) in cases {
            let e = SessionDescription::parse(text).unwrap_err();
            assert_eq!(e.line, (*line > 0).then_some(*line), "{text:?}: {e}");
            assert!(e.to_string().contains(needle), "{text:?}: {e}");
            if *line > 0 {
                assert!(e.to_string().starts_with(&format!("line {line}: ")), "{e}");
            }
            assert_eq!(e.sip_status(), 488);
        }
        let big = format!("{BASIC}{}", "a=x\r\n".repeat(MAX_SDP_LINES));
        assert_eq!(
            SessionDescription::parse(&big).unwrap_err().kind,
            ErrorKind::TooLarge
        );
    }

    #[test]
    fn typed_lines_round_trip() {
        let m = MediaLine::parse("message 9/2 TCP/TLS/MSRP *").unwrap();
        assert_eq!(m.port, 9);
        assert_eq!(m.port_count, Some(2));
        assert_eq!(m.to_string(), "message 9/2 TCP/TLS/MSRP *");
        let c = ConnectionData::parse("IN IP6 2001:db8::1").unwrap();
        assert_eq!(c.ip(), Some("2001:db8::1".parse().unwrap()));
        assert_eq!(c.to_string(), "IN IP6 2001:db8::1");
        let o = Origin::parse("- 1 2 IN IP4 192.0.2.1").unwrap();
        assert_eq!(o.to_string(), "- 1 2 IN IP4 192.0.2.1");
        assert_eq!(
            Line::attribute("setup", Some("active")).as_attribute(),
            Some(("setup", Some("active")))
        );
        assert_eq!(
            Line::attribute("msrp-cema", None).as_attribute(),
            Some(("msrp-cema", None))
        );
    }
}
