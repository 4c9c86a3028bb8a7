//! The MSRP media description (RFC 4975 §8) and its attributes: `a=path`, `a=accept-types`,
//! `a=accept-wrapped-types`, `a=max-size` (RFC 4975 §8.2, §8.6), `a=setup`, `a=connection`
//! (RFC 4145 §4, §5), `a=fingerprint` (RFC 8122 §5), `a=msrp-cema` (RFC 6714 §5) and the
//! RFC 5547 §6 file-transfer attributes.
//!
//! [`MsrpMedia::from_sdp`] reads and checks one media description of a parsed
//! [`SessionDescription`]; [`MsrpMedia::to_lines`] writes one.

use std::fmt;

use super::{ConnectionData, ErrorKind, Line, SdpError, SessionDescription};
use crate::fingerprint::Fingerprint;
use crate::uri::{MsrpUri, Scheme};

/// The `a=setup` role (RFC 4145 §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Setup {
    /// `active`: the endpoint will open the connection.
    Active,
    /// `passive`: the endpoint will accept the connection.
    Passive,
    /// `actpass`: either; the answerer chooses.
    ActPass,
    /// `holdconn`: no connection for now. RFC 6135 §4.2.1: an MSRP UA MUST NOT send it and
    /// treats a received one as if there were no `a=setup`.
    HoldConn,
}

impl Setup {
    /// Parses a role (case-insensitively).
    pub fn parse(s: &str) -> Option<Setup> {
        Some(match s.trim().to_ascii_lowercase().as_str() {
            "active" => Setup::Active,
            "passive" => Setup::Passive,
            "actpass" => Setup::ActPass,
            "holdconn" => Setup::HoldConn,
            _ => return None,
        })
    }

    /// The role as written in SDP.
    pub fn as_str(self) -> &'static str {
        match self {
            Setup::Active => "active",
            Setup::Passive => "passive",
            Setup::ActPass => "actpass",
            Setup::HoldConn => "holdconn",
        }
    }
}

impl fmt::Display for Setup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The `a=connection` value (RFC 4145 §5). Parsed so that it can be reported; RFC 6135 §4.4
/// says an MSRP UA ignores it and never sends it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectionAttr {
    /// `new`
    New,
    /// `existing`
    Existing,
    /// Any other value, kept as written.
    Other(String),
}

impl ConnectionAttr {
    fn parse(s: &str) -> ConnectionAttr {
        match s.trim() {
            "new" => ConnectionAttr::New,
            "existing" => ConnectionAttr::Existing,
            o => ConnectionAttr::Other(o.to_string()),
        }
    }

    fn as_str(&self) -> &str {
        match self {
            ConnectionAttr::New => "new",
            ConnectionAttr::Existing => "existing",
            ConnectionAttr::Other(s) => s,
        }
    }
}

/// The direction attribute (RFC 8866 §6.7; RFC 4975 §8.9: it governs SEND requests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// `a=sendrecv`
    SendRecv,
    /// `a=sendonly`
    SendOnly,
    /// `a=recvonly`
    RecvOnly,
    /// `a=inactive`
    Inactive,
}

impl Direction {
    fn parse(s: &str) -> Option<Direction> {
        Some(match s {
            "sendrecv" => Direction::SendRecv,
            "sendonly" => Direction::SendOnly,
            "recvonly" => Direction::RecvOnly,
            "inactive" => Direction::Inactive,
            _ => return None,
        })
    }

    /// The attribute name.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }

    /// The direction an answer uses for an offered direction (RFC 3264 §6.1).
    pub fn answer(self) -> Direction {
        match self {
            Direction::SendOnly => Direction::RecvOnly,
            Direction::RecvOnly => Direction::SendOnly,
            d => d,
        }
    }
}

/// `TCP/MSRP` or `TCP/TLS/MSRP` (RFC 4975 §8.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MsrpTransport {
    /// `TCP/MSRP`, `msrp:` URIs.
    Tcp,
    /// `TCP/TLS/MSRP`, `msrps:` URIs.
    Tls,
}

impl MsrpTransport {
    /// Parses the m-line protocol field (case-insensitively).
    pub fn parse(proto: &str) -> Option<MsrpTransport> {
        if proto.eq_ignore_ascii_case("TCP/MSRP") {
            Some(MsrpTransport::Tcp)
        } else if proto.eq_ignore_ascii_case("TCP/TLS/MSRP") {
            Some(MsrpTransport::Tls)
        } else {
            None
        }
    }

    /// The m-line protocol field.
    pub fn proto(self) -> &'static str {
        match self {
            MsrpTransport::Tcp => "TCP/MSRP",
            MsrpTransport::Tls => "TCP/TLS/MSRP",
        }
    }

    /// The URI scheme that goes with it.
    pub fn scheme(self) -> Scheme {
        match self {
            MsrpTransport::Tcp => Scheme::Msrp,
            MsrpTransport::Tls => Scheme::Msrps,
        }
    }
}

/// One `format-entry` of `a=accept-types` / `a=accept-wrapped-types` (RFC 4975 §8.6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcceptType {
    /// The type; `None` for the `*` entry.
    pub media_type: Option<String>,
    /// The subtype; `None` for `type/*` (and for `*`).
    pub subtype: Option<String>,
    /// Parameters as written, including their leading `;` (empty when none).
    pub params: String,
}

impl AcceptType {
    /// Parses one format entry: `*`, `type/*` or `type/subtype`, each with optional
    /// `;name=value` parameters.
    pub fn parse(s: &str) -> Result<AcceptType, String> {
        if s == "*" {
            return Ok(AcceptType {
                media_type: None,
                subtype: None,
                params: String::new(),
            });
        }
        let (mt, params) = match s.find(';') {
            Some(p) => (&s[..p], &s[p..]),
            None => (s, ""),
        };
        let (t, st) = mt
            .split_once('/')
            .ok_or_else(|| format!("'{s}' is not '*', 'type/*' or 'type/subtype'"))?;
        let tok = |x: &str| !x.is_empty() && x.bytes().all(crate::uri::is_token_char);
        if !tok(t) || !(st == "*" || tok(st)) || t == "*" {
            return Err(format!("'{s}' is not '*', 'type/*' or 'type/subtype'"));
        }
        Ok(AcceptType {
            media_type: Some(t.to_string()),
            subtype: (st != "*").then(|| st.to_string()),
            params: params.to_string(),
        })
    }

    /// Parses a space-separated `format-list`.
    pub fn parse_list(s: &str) -> Result<Vec<AcceptType>, String> {
        let items = split_outside_quotes(s.trim())?;
        if items.is_empty() {
            return Err("empty format list".into());
        }
        items.iter().map(|i| AcceptType::parse(i)).collect()
    }

    /// 0 for `*`, 1 for `type/*`, 2 for `type/subtype`.
    pub fn specificity(&self) -> u8 {
        match (&self.media_type, &self.subtype) {
            (None, _) => 0,
            (Some(_), None) => 1,
            (Some(_), Some(_)) => 2,
        }
    }

    /// Whether the two entries overlap with RFC 4975 §8.6 wildcard rules: `*` matches
    /// everything, `type/*` every subtype of `type`; types compare case-insensitively and
    /// parameters are ignored ("a format-entry with one or more parameters is assumed to match
    /// the same format-entry with no parameters").
    pub fn matches(&self, other: &AcceptType) -> bool {
        let (Some(a), Some(b)) = (&self.media_type, &other.media_type) else {
            return true;
        };
        if !a.eq_ignore_ascii_case(b) {
            return false;
        }
        match (&self.subtype, &other.subtype) {
            (Some(x), Some(y)) => x.eq_ignore_ascii_case(y),
            _ => true,
        }
    }

    /// Whether a message of content type `ct` (`type/subtype`, parameters ignored) may be
    /// sent to a peer that listed this entry.
    pub fn allows(&self, ct: &str) -> bool {
        let ct = ct.split(';').next().unwrap_or("").trim();
        match AcceptType::parse(ct) {
            Ok(t) if t.specificity() == 2 => self.matches(&t),
            _ => false,
        }
    }

    fn same_type(&self, other: &AcceptType) -> bool {
        let eq = |a: &Option<String>, b: &Option<String>| match (a, b) {
            (Some(x), Some(y)) => x.eq_ignore_ascii_case(y),
            (None, None) => true,
            _ => false,
        };
        eq(&self.media_type, &other.media_type) && eq(&self.subtype, &other.subtype)
    }

    /// The intersection of two accept lists with RFC 4975 §8.6 wildcard rules: for every pair
    /// of overlapping entries, the more specific one (ours when equally specific), without
    /// duplicates, in the order of `ours`. `*` against `text/plain message/cpim` gives
    /// `text/plain message/cpim`; `text/*` against `text/plain image/png` gives `text/plain`.
    pub fn intersect(ours: &[AcceptType], theirs: &[AcceptType]) -> Vec<AcceptType> {
        let mut out: Vec<AcceptType> = Vec::new();
        for a in ours {
            for b in theirs {
                if !a.matches(b) {
                    continue;
                }
                let pick = if b.specificity() > a.specificity() {
                    b
                } else {
                    a
                };
                if !out.iter().any(|o| o.same_type(pick)) {
                    out.push(pick.clone());
                }
            }
        }
        out
    }

    /// Writes a list separated by single spaces.
    pub fn list_to_string(list: &[AcceptType]) -> String {
        list.iter()
            .map(|t| t.to_string())
            .collect::<Vec<_>>()
            .join(" ")
    }
}

impl fmt::Display for AcceptType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.media_type, &self.subtype) {
            (None, _) => f.write_str("*")?,
            (Some(t), None) => write!(f, "{t}/*")?,
            (Some(t), Some(s)) => write!(f, "{t}/{s}")?,
        }
        f.write_str(&self.params)
    }
}

/// Splits on spaces that are not inside double quotes; errors on an unterminated quote.
fn split_outside_quotes(s: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    for c in s.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                cur.push(c);
            }
            ' ' | '\t' if !quoted => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            _ => cur.push(c),
        }
    }
    if quoted {
        return Err("unterminated quoted string".into());
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    Ok(out)
}

fn unquote(s: &str) -> Option<&str> {
    let s = s.strip_prefix('"')?.strip_suffix('"')?;
    (!s.contains('"')).then_some(s)
}

/// `a=file-selector` (RFC 5547 §6): the file's name, size, type and hashes. An empty selector
/// (no value) is a capability indication (RFC 5547 §8.5).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FileSelector {
    /// `name:"..."`, as written (percent-encoding kept).
    pub name: Option<String>,
    /// `size:<octets>`.
    pub size: Option<u64>,
    /// `type:type/subtype;param="value"`, as written.
    pub file_type: Option<String>,
    /// `hash:<algorithm>:<hex>` entries (several allowed, RFC 5547 §6).
    pub hashes: Vec<(String, String)>,
}

impl FileSelector {
    /// Parses the attribute value (may be empty).
    pub fn parse(s: &str) -> Result<FileSelector, String> {
        let mut fs = FileSelector::default();
        for sel in split_outside_quotes(s)? {
            let (k, v) = sel
                .split_once(':')
                .ok_or_else(|| format!("selector '{sel}' has no ':'"))?;
            match k {
                "name" => {
                    let n = unquote(v).ok_or("name must be a quoted string")?;
                    if n.is_empty() {
                        return Err("empty name".into());
                    }
                    fs.name = Some(n.to_string());
                }
                "size" => {
                    fs.size = Some(
                        v.parse::<u64>()
                            .map_err(|_| format!("size '{v}' is not a number"))?,
                    )
                }
                "type" => {
                    let mt = v.split(';').next().unwrap_or("");
                    let t = AcceptType::parse(mt).map_err(|e| format!("type: {e}"))?;
                    if t.specificity() != 2 {
                        return Err(format!("type '{mt}' must be type/subtype"));
                    }
                    fs.file_type = Some(v.to_string());
                }
                "hash" => {
                    let (alg, hex) = v
                        .split_once(':')
                        .ok_or("hash must be 'hash:<algorithm>:<hex>'")?;
                    let ok = !alg.is_empty()
                        && hex
                            .split(':')
                            .all(|p| p.len() == 2 && p.bytes().all(|c| c.is_ascii_hexdigit()));
                    if !ok {
                        return Err(format!("invalid hash selector '{v}'"));
                    }
                    fs.hashes.push((alg.to_string(), hex.to_string()));
                }
                other => return Err(format!("unknown selector '{other}'")),
            }
        }
        Ok(fs)
    }

    /// True when no selector is present (capability indication, RFC 5547 §8.5).
    pub fn is_empty(&self) -> bool {
        self.name.is_none()
            && self.size.is_none()
            && self.file_type.is_none()
            && self.hashes.is_empty()
    }
}

impl fmt::Display for FileSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if let Some(n) = &self.name {
            parts.push(format!("name:\"{n}\""));
        }
        if let Some(t) = &self.file_type {
            parts.push(format!("type:{t}"));
        }
        if let Some(s) = self.size {
            parts.push(format!("size:{s}"));
        }
        for (a, h) in &self.hashes {
            parts.push(format!("hash:{a}:{h}"));
        }
        f.write_str(&parts.join(" "))
    }
}

/// `a=file-date` (RFC 5547 §6): creation, modification and read dates (RFC 5322 date-time,
/// kept as written).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FileDate {
    /// `creation:"..."`
    pub creation: Option<String>,
    /// `modification:"..."`
    pub modification: Option<String>,
    /// `read:"..."`
    pub read: Option<String>,
}

impl FileDate {
    /// Parses the attribute value; each parameter at most once (RFC 5547 §6: MUST NOT contain
    /// more than one of each type).
    pub fn parse(s: &str) -> Result<FileDate, String> {
        let mut d = FileDate::default();
        let items = split_outside_quotes(s)?;
        if items.is_empty() {
            return Err("empty file-date".into());
        }
        for p in items {
            let (k, v) = p
                .split_once(':')
                .ok_or_else(|| format!("'{p}' is not 'name:\"date\"'"))?;
            let v = unquote(v).ok_or_else(|| format!("{k} date must be a quoted string"))?;
            let slot = match k {
                "creation" => &mut d.creation,
                "modification" => &mut d.modification,
                "read" => &mut d.read,
                other => return Err(format!("unknown date parameter '{other}'")),
            };
            if slot.replace(v.to_string()).is_some() {
                return Err(format!("'{k}' appears more than once (RFC 5547 §6)"));
            }
        }
        Ok(d)
    }
}

impl fmt::Display for FileDate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        for (k, v) in [
            ("creation", &self.creation),
            ("modification", &self.modification),
            ("read", &self.read),
        ] {
            if let Some(v) = v {
                parts.push(format!("{k}:\"{v}\""));
            }
        }
        f.write_str(&parts.join(" "))
    }
}

/// `a=file-range` (RFC 5547 §6): `start-stop`, 1-based and inclusive; `stop` is `None` for `*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileRange {
    /// First octet (1-based).
    pub start: u64,
    /// Last octet, inclusive; `None` for `*` (unknown size).
    pub stop: Option<u64>,
}

impl FileRange {
    /// Parses `start-stop`.
    pub fn parse(s: &str) -> Result<FileRange, String> {
        let (a, b) = s.split_once('-').ok_or("expected '<start>-<stop>'")?;
        let num = |x: &str| {
            if x.is_empty() || !x.bytes().all(|c| c.is_ascii_digit()) {
                Err(format!("'{x}' is not a number"))
            } else {
                x.parse::<u64>().map_err(|_| format!("'{x}' is too large"))
            }
        };
        let start = num(a)?;
        let stop = if b == "*" { None } else { Some(num(b)?) };
        if start == 0 {
            return Err("the first octet is numbered 1 (RFC 5547 §6)".into());
        }
        if stop.is_some_and(|e| e < start) {
            return Err("stop offset is before start offset".into());
        }
        Ok(FileRange { start, stop })
    }
}

impl fmt::Display for FileRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.stop {
            Some(e) => write!(f, "{}-{e}", self.start),
            None => write!(f, "{}-*", self.start),
        }
    }
}

/// One MSRP media description, typed and checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MsrpMedia {
    /// Index of the media description in the SDP (0-based).
    pub index: usize,
    /// Line number of the `m=` line (0 for generated SDP).
    pub line: usize,
    /// The m-line port (9 for an `active` endpoint, RFC 4145 §4.1).
    pub port: u16,
    /// `TCP/MSRP` or `TCP/TLS/MSRP`.
    pub transport: MsrpTransport,
    /// The effective `c=` line (media level, else session level).
    pub connection: Option<ConnectionData>,
    /// `a=path`: relays first, the endpoint's session URI last (RFC 4975 §8.2, §8.3).
    pub path: Vec<MsrpUri>,
    /// `a=accept-types` (RFC 4975 §8.6).
    pub accept_types: Vec<AcceptType>,
    /// `a=accept-wrapped-types` (RFC 4975 §8.6), empty when absent.
    pub accept_wrapped_types: Vec<AcceptType>,
    /// `a=max-size` in octets (RFC 4975 §8.6).
    pub max_size: Option<u64>,
    /// `a=setup` as received (media level, else session level), RFC 4145 §4.
    pub setup: Option<Setup>,
    /// Line number of the `a=setup` line (0 when absent or generated).
    pub setup_line: usize,
    /// `a=connection` as received (ignored, RFC 6135 §4.4).
    pub connection_attr: Option<ConnectionAttr>,
    /// `a=fingerprint` values (media level, else session level), RFC 8122 §5.
    pub fingerprints: Vec<Fingerprint>,
    /// `a=msrp-cema` present (RFC 6714 §5).
    pub cema: bool,
    /// Direction attribute, if any.
    pub direction: Option<Direction>,
    /// `a=file-selector` (RFC 5547).
    pub file_selector: Option<FileSelector>,
    /// `a=file-transfer-id` (RFC 5547).
    pub file_transfer_id: Option<String>,
    /// `a=file-disposition` (RFC 5547).
    pub file_disposition: Option<String>,
    /// `a=file-date` (RFC 5547).
    pub file_date: Option<FileDate>,
    /// `a=file-range` (RFC 5547).
    pub file_range: Option<FileRange>,
    /// Every other line of the media description (`i=`, `b=`, unknown attributes), in order.
    pub extra: Vec<Line>,
}

fn bad_attr(line: &Line, name: &str, problem: impl Into<String>) -> SdpError {
    SdpError::at(
        line.number(),
        ErrorKind::BadAttribute {
            name: name.to_string(),
            problem: problem.into(),
        },
    )
}

impl MsrpMedia {
    /// A media description with the given port, transport and path, accepting `accept_types`,
    /// and nothing else set.
    pub fn new(
        port: u16,
        transport: MsrpTransport,
        path: Vec<MsrpUri>,
        accept_types: Vec<AcceptType>,
    ) -> Self {
        MsrpMedia {
            index: 0,
            line: 0,
            port,
            transport,
            connection: None,
            path,
            accept_types,
            accept_wrapped_types: Vec::new(),
            max_size: None,
            setup: None,
            setup_line: 0,
            connection_attr: None,
            fingerprints: Vec::new(),
            cema: false,
            direction: None,
            file_selector: None,
            file_transfer_id: None,
            file_disposition: None,
            file_date: None,
            file_range: None,
            extra: Vec::new(),
        }
    }

    /// Finds the first usable MSRP media description (`m=message <port> TCP/MSRP` or
    /// `TCP/TLS/MSRP`, port not 0) and reads it with [`MsrpMedia::from_sdp`].
    ///
    /// Errors: [`ErrorKind::UnknownTransport`] when the only `m=message` lines use another
    /// protocol, [`ErrorKind::MediaRejected`] when the MSRP line has port 0,
    /// [`ErrorKind::NoMsrpMedia`] when there is no `m=message` line.
    pub fn find(sdp: &SessionDescription) -> Result<MsrpMedia, SdpError> {
        let mut first_err: Option<SdpError> = None;
        for (i, m) in sdp.media.iter().enumerate() {
            let ml = m.media_line()?;
            if ml.media != "message" {
                continue;
            }
            match MsrpMedia::from_sdp(sdp, i) {
                Ok(media) => return Ok(media),
                Err(e)
                    if matches!(
                        e.kind,
                        ErrorKind::UnknownTransport(_) | ErrorKind::MediaRejected
                    ) =>
                {
                    first_err.get_or_insert(e);
                }
                Err(e) => return Err(e),
            }
        }
        Err(first_err.unwrap_or(SdpError::new(ErrorKind::NoMsrpMedia)))
    }

    /// Reads and checks media description `index` of `sdp`.
    ///
    /// Checks (each error names the line): `m=message` with `TCP/MSRP` or `TCP/TLS/MSRP`
    /// (RFC 4975 §8.1) and a port other than 0; a mandatory `a=path` of MSRP URIs with explicit
    /// ports (RFC 4975 §8.2), the last one with a session id; a mandatory `a=accept-types`
    /// (RFC 4975 §8.6); valid attribute values; and agreement between path and media line:
    /// - the endpoint URI (last) uses `msrps` exactly when the m-line says `TCP/TLS/MSRP`, and
    ///   every URI uses the `tcp` transport (RFC 4975 §8.1, §6);
    /// - the m-line port equals the port of the endpoint URI or of the first (relay) URI
    ///   (RFC 4975 §8.1, RFC 4976 §11, RFC 6714 §4.2), or is 9 with `a=setup:active`
    ///   (RFC 4145 §4.1, RFC 6135 §4.2.2);
    /// - an IP literal in `c=` equals the IP of one of the path URIs when they are IP literals
    ///   (RFC 4975 §8.1; RFC 6714 §4.3: a mismatch without `a=msrp-cema` is a middlebox that
    ///   rewrote c=, reject with 488).
    ///
    /// With `a=msrp-cema` the last two checks are skipped: a CEMA middlebox may rewrite `c=`
    /// and `m=` (RFC 6714 §4).
    pub fn from_sdp(sdp: &SessionDescription, index: usize) -> Result<MsrpMedia, SdpError> {
        let md = sdp
            .media
            .get(index)
            .ok_or(SdpError::new(ErrorKind::NoMsrpMedia))?;
        let mline = md.m_line();
        let ml = md.media_line()?;
        let at_m = |k: ErrorKind| SdpError::at(mline.number(), k);
        if ml.media != "message" {
            return Err(at_m(ErrorKind::NoMsrpMedia));
        }
        // RFC 4975 §8.1
        let transport = MsrpTransport::parse(&ml.proto)
            .ok_or(at_m(ErrorKind::UnknownTransport(ml.proto.clone())))?;
        if ml.port == 0 {
            return Err(at_m(ErrorKind::MediaRejected));
        }
        let mut m = MsrpMedia::new(ml.port, transport, Vec::new(), Vec::new());
        m.index = index;
        m.line = mline.number();

        // Effective c=: media level overrides session level (RFC 8866 §5.7).
        let c_line = md.connection_line().or(sdp.connection_line());
        if let Some(c) = c_line {
            m.connection =
                Some(ConnectionData::parse(&c.value).map_err(|k| SdpError::at(c.number(), k))?);
        }

        let mut path_line: Option<&Line> = None;
        let mut accept_line: Option<&Line> = None;
        let mut seen: Vec<&str> = Vec::new();
        let single = [
            "path",
            "accept-types",
            "accept-wrapped-types",
            "max-size",
            "setup",
            "file-selector",
            "file-transfer-id",
            "file-disposition",
            "file-date",
            "file-range",
        ];
        for line in &md.lines[1..] {
            let Some((name, value)) = line.as_attribute() else {
                if line.kind != 'c' {
                    m.extra.push(line.clone());
                }
                continue;
            };
            if single.contains(&name) {
                if seen.contains(&name) {
                    return Err(bad_attr(line, name, "appears more than once"));
                }
                seen.push(name);
            }
            let need = || {
                value
                    .map(str::trim)
                    .filter(|v| !v.is_empty())
                    .ok_or_else(|| bad_attr(line, name, "missing value"))
            };
            match name {
                "path" => {
                    // RFC 4975 §8.2: path-list = MSRP-URI *(SP MSRP-URI)
                    for u in need()?.split([' ', '\t']).filter(|s| !s.is_empty()) {
                        let uri = MsrpUri::parse(u)
                            .map_err(|e| bad_attr(line, name, format!("'{u}': {e}")))?;
                        // RFC 4975 §8.2: URIs in SDP MUST include explicit port numbers.
                        if uri.port.is_none() {
                            return Err(bad_attr(line, name, format!("'{u}' has no port (RFC 4975 §8.2: URIs in SDP must include explicit ports)")));
                        }
                        m.path.push(uri);
                    }
                    path_line = Some(line);
                }
                "accept-types" => {
                    m.accept_types =
                        AcceptType::parse_list(need()?).map_err(|e| bad_attr(line, name, e))?;
                    accept_line = Some(line);
                }
                "accept-wrapped-types" => {
                    m.accept_wrapped_types =
                        AcceptType::parse_list(need()?).map_err(|e| bad_attr(line, name, e))?;
                }
                "max-size" => {
                    let v = need()?;
                    if !v.bytes().all(|c| c.is_ascii_digit()) {
                        return Err(bad_attr(
                            line,
                            name,
                            format!("'{v}' is not a number of octets"),
                        ));
                    }
                    m.max_size = Some(v.parse().map_err(|_| bad_attr(line, name, "too large"))?);
                }
                "setup" => {
                    let v = need()?;
                    m.setup = Some(Setup::parse(v).ok_or_else(|| {
                        bad_attr(
                            line,
                            name,
                            format!(
                                "'{v}' is not active, passive, actpass or holdconn (RFC 4145 §4)"
                            ),
                        )
                    })?);
                    m.setup_line = line.number();
                }
                "connection" => m.connection_attr = Some(ConnectionAttr::parse(need()?)),
                "fingerprint" => m.fingerprints.push(
                    Fingerprint::parse(need()?).map_err(|e| bad_attr(line, name, e.to_string()))?,
                ),
                "msrp-cema" => m.cema = true,
                "sendrecv" | "sendonly" | "recvonly" | "inactive" if value.is_none() => {
                    m.direction = Direction::parse(name);
                }
                "file-selector" => {
                    m.file_selector = Some(
                        FileSelector::parse(value.unwrap_or(""))
                            .map_err(|e| bad_attr(line, name, e))?,
                    );
                }
                "file-transfer-id" => {
                    let v = need()?;
                    if !v.bytes().all(crate::uri::is_token_char) {
                        return Err(bad_attr(line, name, "must be a token (RFC 5547 §6)"));
                    }
                    m.file_transfer_id = Some(v.to_string());
                }
                "file-disposition" => {
                    let v = need()?;
                    if !v.bytes().all(crate::uri::is_token_char) {
                        return Err(bad_attr(line, name, "must be a token (RFC 5547 §6)"));
                    }
                    m.file_disposition = Some(v.to_string());
                }
                "file-date" => {
                    m.file_date =
                        Some(FileDate::parse(need()?).map_err(|e| bad_attr(line, name, e))?)
                }
                "file-range" => {
                    m.file_range =
                        Some(FileRange::parse(need()?).map_err(|e| bad_attr(line, name, e))?)
                }
                _ => m.extra.push(line.clone()),
            }
        }
        // Session-level a=setup (RFC 4145 §4) and a=fingerprint (RFC 8122 §5) apply when the
        // media description has none.
        if m.setup.is_none() {
            if let Some((line, v)) = sdp.attributes("setup").next() {
                let v = v.unwrap_or("");
                m.setup = Some(Setup::parse(v).ok_or_else(|| {
                    bad_attr(
                        line,
                        "setup",
                        format!("'{v}' is not active, passive, actpass or holdconn (RFC 4145 §4)"),
                    )
                })?);
                m.setup_line = line.number();
            }
        }
        if m.fingerprints.is_empty() {
            for (line, v) in sdp.attributes("fingerprint") {
                m.fingerprints.push(
                    Fingerprint::parse(v.unwrap_or(""))
                        .map_err(|e| bad_attr(line, "fingerprint", e.to_string()))?,
                );
            }
        }

        // RFC 4975 §8.2: mandatory path.
        let Some(pline) = path_line else {
            return Err(at_m(ErrorKind::MissingPath));
        };
        // RFC 4975 §8.6: mandatory accept-types.
        if accept_line.is_none() {
            return Err(at_m(ErrorKind::MissingAcceptTypes));
        }
        let mismatch =
            |line: &Line, s: String| SdpError::at(line.number(), ErrorKind::PathMismatch(s));
        let own = m.path.last().expect("path parsing yields at least one URI");
        // RFC 4975 §8.2: the rightmost URI identifies the endpoint and this session.
        if own.session_id.is_none() {
            return Err(bad_attr(
                pline,
                "path",
                format!("the last URI '{own}' has no session id (RFC 4975 §8.2)"),
            ));
        }
        for u in &m.path {
            if !u.is_tcp() {
                return Err(mismatch(
                    pline,
                    format!(
                        "URI '{u}' uses transport '{}' but the m-line says {} (RFC 4975 §8.1)",
                        u.transport,
                        transport.proto()
                    ),
                ));
            }
        }
        if own.scheme != transport.scheme() {
            return Err(mismatch(pline, format!("the m-line says {} but the session URI '{own}' uses {}: (RFC 4975 §8.1: TLS goes with msrps)", transport.proto(), own.scheme)));
        }
        if !m.cema {
            let first = &m.path[0];
            let port_ok = Some(m.port) == own.port
                || Some(m.port) == first.port
                || (m.port == 9 && m.setup == Some(Setup::Active));
            if !port_ok {
                return Err(at_m(ErrorKind::PathMismatch(format!(
                    "m-line port {} but the a=path URI '{own}' has port {} (RFC 4975 §8.1)",
                    m.port,
                    own.port.unwrap_or(0)
                ))));
            }
            if let Some(ip) = m.connection.as_ref().and_then(|c| c.ip()) {
                let uri_ips: Vec<_> = m.path.iter().filter_map(|u| u.host.ip()).collect();
                if uri_ips.len() == m.path.len() && !uri_ips.contains(&ip) {
                    let cl = c_line.expect("connection came from a line");
                    return Err(mismatch(cl, format!("c= address {ip} is not the address of any a=path URI (RFC 4975 §8.1; RFC 6714 §4.3)")));
                }
            }
        }
        Ok(m)
    }

    /// The endpoint's own session URI: the last `a=path` entry (RFC 4975 §8.2).
    pub fn session_uri(&self) -> &MsrpUri {
        self.path.last().expect("an MsrpMedia always has a path")
    }

    /// The URI to connect to for this endpoint: the first `a=path` entry, the adjacent hop
    /// (RFC 4975 §8.3).
    pub fn first_hop(&self) -> &MsrpUri {
        &self.path[0]
    }

    /// The media description's lines: `m=`, then the attributes. No `c=` line (callers put
    /// one at session level).
    pub fn to_lines(&self) -> Vec<Line> {
        let mut l = vec![Line::new(
            'm',
            format!("message {} {} *", self.port, self.transport.proto()),
        )];
        let a = |n: &str, v: String| Line::attribute(n, Some(&v));
        l.push(a(
            "accept-types",
            AcceptType::list_to_string(&self.accept_types),
        ));
        if !self.accept_wrapped_types.is_empty() {
            l.push(a(
                "accept-wrapped-types",
                AcceptType::list_to_string(&self.accept_wrapped_types),
            ));
        }
        if let Some(s) = self.max_size {
            l.push(a("max-size", s.to_string()));
        }
        let path: Vec<String> = self.path.iter().map(|u| u.to_string()).collect();
        l.push(a("path", path.join(" ")));
        if let Some(s) = self.setup {
            l.push(a("setup", s.to_string()));
        }
        if let Some(c) = &self.connection_attr {
            l.push(a("connection", c.as_str().to_string()));
        }
        for f in &self.fingerprints {
            l.push(a("fingerprint", f.to_string()));
        }
        if self.cema {
            l.push(Line::attribute("msrp-cema", None));
        }
        if let Some(d) = self.direction {
            l.push(Line::attribute(d.as_str(), None));
        }
        if let Some(fs) = &self.file_selector {
            if fs.is_empty() {
                l.push(Line::attribute("file-selector", None));
            } else {
                l.push(a("file-selector", fs.to_string()));
            }
        }
        if let Some(v) = &self.file_transfer_id {
            l.push(a("file-transfer-id", v.clone()));
        }
        if let Some(v) = &self.file_disposition {
            l.push(a("file-disposition", v.clone()));
        }
        if let Some(v) = &self.file_date {
            l.push(a("file-date", v.to_string()));
        }
        if let Some(v) = &self.file_range {
            l.push(a("file-range", v.to_string()));
        }
        l.extend(self.extra.iter().cloned());
        l
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(s: &str) -> Vec<AcceptType> {
        AcceptType::parse_list(s).unwrap()
    }

    #[test]
    fn accept_types_intersect_with_wildcards_rfc4975_8_6() {
        let cases: &[(&str, &str, &str)] = &[
            ("*", "text/plain message/cpim", "text/plain message/cpim"),
            ("text/plain message/cpim", "*", "text/plain message/cpim"),
            ("*", "*", "*"),
            ("text/*", "text/plain image/png", "text/plain"),
            ("text/plain text/html", "text/*", "text/plain text/html"),
            ("TEXT/Plain", "text/plain", "TEXT/Plain"),
            // parameters: an entry with parameters matches the same entry without.
            (
                "text/plain;charset=utf-8",
                "text/plain",
                "text/plain;charset=utf-8",
            ),
            ("image/png", "text/plain message/cpim", ""),
            (
                "message/cpim text/*",
                "text/html message/*",
                "message/cpim text/html",
            ),
        ];
        for (ours, theirs, want) in cases {
            let got = AcceptType::intersect(&list(ours), &list(theirs));
            assert_eq!(AcceptType::list_to_string(&got), *want, "{ours} x {theirs}");
        }
        assert!(AcceptType::parse("text/plain")
            .unwrap()
            .allows("text/plain; charset=utf-8"));
        assert!(AcceptType::parse("text/*").unwrap().allows("text/html"));
        assert!(!AcceptType::parse("text/*").unwrap().allows("image/png"));
        assert!(AcceptType::parse("*").unwrap().allows("image/png"));
        for bad in ["text", "*/plain", "te xt/plain", "text/"] {
            assert!(AcceptType::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            AcceptType::parse_list("text/plain;q=\"a b\" *")
                .unwrap()
                .len(),
            2
        );
    }

    #[test]
    fn attribute_values_parse_and_print() {
        assert_eq!(Setup::parse("ACTPASS"), Some(Setup::ActPass));
        assert_eq!(Setup::parse("both"), None);
        let fs = FileSelector::parse("name:\"a b.txt\" type:text/plain;charset=\"utf-8\" size:10 hash:sha-1:AB:CD hash:sha-256:01").unwrap();
        assert_eq!(fs.hashes.len(), 2);
        assert_eq!(fs.to_string(), "name:\"a b.txt\" type:text/plain;charset=\"utf-8\" size:10 hash:sha-1:AB:CD hash:sha-256:01");
        assert!(FileSelector::parse("").unwrap().is_empty());
        for bad in [
            "name:x",
            "size:ten",
            "type:text",
            "hash:sha-1",
            "hash:sha-1:XYZ",
            "color:red",
            "name:\"\"",
        ] {
            assert!(FileSelector::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(FileRange::parse("5-*").unwrap().to_string(), "5-*");
        for bad in ["0-5", "5-4", "a-5", "5", "-5"] {
            assert!(FileRange::parse(bad).is_err(), "{bad}");
        }
        let d = FileDate::parse("modification:\"x y\" read:\"z\"").unwrap();
        assert_eq!(d.to_string(), "modification:\"x y\" read:\"z\"");
        assert!(FileDate::parse("born:\"x\"").is_err());
        assert_eq!(Direction::SendOnly.answer(), Direction::RecvOnly);
        assert_eq!(Direction::RecvOnly.answer(), Direction::SendOnly);
        assert_eq!(Direction::Inactive.answer(), Direction::Inactive);
    }
}
