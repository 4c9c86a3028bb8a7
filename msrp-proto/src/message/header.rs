//! Header names and typed header values (RFC 4975 §9, RFC 4976 §7).
//!
//! A [`MessageHead`](super::MessageHead) keeps each header's text exactly as received (so
//! writing it back reproduces the bytes) and checks every known header's syntax when it is
//! parsed or added. The typed views here are computed from that checked text on access.

use super::error::MessageError;
use super::range::ByteRange;
use super::status::StatusCode;
use super::Limits;
use crate::uri::{is_token_char, MsrpUri};
use std::fmt;

/// The headers RFC 4975 and RFC 4976 define, plus the two catch-alls.
///
/// Header names compare case-insensitively (RFC 4975 §9: ABNF strings are case-insensitive).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum HeaderKind {
    /// `To-Path` (RFC 4975 §9).
    ToPath,
    /// `From-Path` (RFC 4975 §9).
    FromPath,
    /// `Message-ID` (RFC 4975 §9).
    MessageId,
    /// `Success-Report` (RFC 4975 §9).
    SuccessReport,
    /// `Failure-Report` (RFC 4975 §9).
    FailureReport,
    /// `Byte-Range` (RFC 4975 §9).
    ByteRange,
    /// `Status` (RFC 4975 §9).
    Status,
    /// `Content-Type` (RFC 4975 §9).
    ContentType,
    /// `Content-ID` (RFC 2045, via RFC 4975 §9 `Other-Mime-header`).
    ContentId,
    /// `Content-Description` (RFC 2045).
    ContentDescription,
    /// `Content-Disposition` (RFC 2183).
    ContentDisposition,
    /// Any other `Content-*` header (RFC 2045 `mime-extension-field`).
    OtherMime,
    /// `Use-Path` (RFC 4976 §4.2).
    UsePath,
    /// `WWW-Authenticate` (RFC 4976 §4.3).
    WwwAuthenticate,
    /// `Authorization` (RFC 4976 §4.4).
    Authorization,
    /// `Authentication-Info` (RFC 4976 §4.5).
    AuthenticationInfo,
    /// `Expires` (RFC 4976 §4.6).
    Expires,
    /// `Min-Expires` (RFC 4976 §4.6).
    MinExpires,
    /// `Max-Expires` (RFC 4976 §4.6).
    MaxExpires,
    /// Any other header (RFC 4975 §9 `ext-header`), kept in order.
    Extension,
}

impl HeaderKind {
    /// Classifies a header name (case-insensitively).
    pub fn from_name(name: &[u8]) -> HeaderKind {
        // One comparison for the known names: dispatch on length and first letter.
        let first = name.first().map_or(0, u8::to_ascii_lowercase);
        let kind = match (name.len(), first) {
            (6, b's') => HeaderKind::Status,
            (7, b't') => HeaderKind::ToPath,
            (7, b'e') => HeaderKind::Expires,
            (8, b'u') => HeaderKind::UsePath,
            (9, b'f') => HeaderKind::FromPath,
            (10, b'm') => HeaderKind::MessageId,
            (10, b'b') => HeaderKind::ByteRange,
            (10, b'c') => HeaderKind::ContentId,
            (11, b'm') if name[1].eq_ignore_ascii_case(&b'i') => HeaderKind::MinExpires,
            (11, b'm') => HeaderKind::MaxExpires,
            (12, b'c') => HeaderKind::ContentType,
            (13, b'a') => HeaderKind::Authorization,
            (14, b's') => HeaderKind::SuccessReport,
            (14, b'f') => HeaderKind::FailureReport,
            (16, b'w') => HeaderKind::WwwAuthenticate,
            (19, b'c') if name[9].eq_ignore_ascii_case(&b'e') => HeaderKind::ContentDescription,
            (19, b'c') => HeaderKind::ContentDisposition,
            (19, b'a') => HeaderKind::AuthenticationInfo,
            _ => HeaderKind::Extension,
        };
        if kind != HeaderKind::Extension && eq_name(name, kind) {
            kind
        } else if name.len() > 8 && eq_canon(name, &CONTENT_PREFIX) {
            HeaderKind::OtherMime
        } else {
            HeaderKind::Extension
        }
    }

    /// The canonical spelling (as in the RFCs); `None` for the catch-alls.
    pub fn canonical_name(self) -> Option<&'static str> {
        Some(match self {
            HeaderKind::ToPath => "To-Path",
            HeaderKind::FromPath => "From-Path",
            HeaderKind::MessageId => "Message-ID",
            HeaderKind::SuccessReport => "Success-Report",
            HeaderKind::FailureReport => "Failure-Report",
            HeaderKind::ByteRange => "Byte-Range",
            HeaderKind::Status => "Status",
            HeaderKind::ContentType => "Content-Type",
            HeaderKind::ContentId => "Content-ID",
            HeaderKind::ContentDescription => "Content-Description",
            HeaderKind::ContentDisposition => "Content-Disposition",
            HeaderKind::UsePath => "Use-Path",
            HeaderKind::WwwAuthenticate => "WWW-Authenticate",
            HeaderKind::Authorization => "Authorization",
            HeaderKind::AuthenticationInfo => "Authentication-Info",
            HeaderKind::Expires => "Expires",
            HeaderKind::MinExpires => "Min-Expires",
            HeaderKind::MaxExpires => "Max-Expires",
            HeaderKind::OtherMime | HeaderKind::Extension => return None,
        })
    }

    /// True for MIME headers (`Content-*`), which RFC 4975 §7.1 allows only with a body.
    pub fn is_mime(self) -> bool {
        matches!(
            self,
            HeaderKind::ContentType
                | HeaderKind::ContentId
                | HeaderKind::ContentDescription
                | HeaderKind::ContentDisposition
                | HeaderKind::OtherMime
        )
    }

    /// True for headers that may appear at most once in a message.
    pub fn is_single(self) -> bool {
        !matches!(
            self,
            HeaderKind::WwwAuthenticate
                | HeaderKind::Authorization
                | HeaderKind::AuthenticationInfo
                | HeaderKind::OtherMime
                | HeaderKind::Extension
                | HeaderKind::ContentId
                | HeaderKind::ContentDescription
                | HeaderKind::ContentDisposition
        )
    }

    /// Bit for duplicate tracking.
    pub(crate) const fn bit(self) -> u32 {
        1 << (self as u32)
    }

    /// The bits of the kinds [`is_single`](Self::is_single) is true for.
    pub(crate) const SINGLE: u32 = !(HeaderKind::WwwAuthenticate.bit()
        | HeaderKind::Authorization.bit()
        | HeaderKind::AuthenticationInfo.bit()
        | HeaderKind::OtherMime.bit()
        | HeaderKind::Extension.bit()
        | HeaderKind::ContentId.bit()
        | HeaderKind::ContentDescription.bit()
        | HeaderKind::ContentDisposition.bit());

    /// The bits of the kinds [`is_mime`](Self::is_mime) is true for.
    pub(crate) const MIME: u32 = HeaderKind::ContentType.bit()
        | HeaderKind::ContentId.bit()
        | HeaderKind::ContentDescription.bit()
        | HeaderKind::ContentDisposition.bit()
        | HeaderKind::OtherMime.bit();
}

/// A canonical header name prepared for word-at-a-time comparison: its bytes lowercased and
/// a fold mask with 0x20 at letters and 0 elsewhere (only `-` here), both in little-endian
/// 8-byte words, zero-padded.
///
/// `colon` and `mask` serve the parser's fast path: the name followed by `:` (lowercased,
/// zero-padded) and a mask of its bytes, over `words` words.
struct Canon {
    len: usize,
    lower: [u64; 3],
    fold: [u64; 3],
    colon: [u64; 3],
    mask: [u64; 3],
    words: usize,
}

const fn canon(name: &str) -> Canon {
    let b = name.as_bytes();
    let mut lower = [0u64; 3];
    let mut fold = [0u64; 3];
    let mut mask = [0u64; 3];
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let f: u64 = if c.is_ascii_alphabetic() { 0x20 } else { 0 };
        lower[i / 8] |= ((c as u64) | f) << (8 * (i % 8));
        fold[i / 8] |= f << (8 * (i % 8));
        mask[i / 8] |= 0xff << (8 * (i % 8));
        i += 1;
    }
    let mut colon = lower;
    colon[i / 8] |= (b':' as u64) << (8 * (i % 8));
    mask[i / 8] |= 0xff << (8 * (i % 8));
    Canon {
        len: b.len(),
        lower,
        fold,
        colon,
        mask,
        words: i / 8 + 1,
    }
}

/// Indexed by `HeaderKind as usize`; the catch-alls have length 0 and never match.
static CANON: [Canon; 20] = [
    canon("To-Path"),
    canon("From-Path"),
    canon("Message-ID"),
    canon("Success-Report"),
    canon("Failure-Report"),
    canon("Byte-Range"),
    canon("Status"),
    canon("Content-Type"),
    canon("Content-ID"),
    canon("Content-Description"),
    canon("Content-Disposition"),
    canon(""),
    canon("Use-Path"),
    canon("WWW-Authenticate"),
    canon("Authorization"),
    canon("Authentication-Info"),
    canon("Expires"),
    canon("Min-Expires"),
    canon("Max-Expires"),
    canon(""),
];

static CONTENT_PREFIX: Canon = canon("Content-");

/// `n` (1 to 8) bytes of `b` from `i` as a little-endian word, zero-padded. `b` may go on
/// beyond them (then one 8-byte load and a mask).
#[inline]
fn load(b: &[u8], i: usize, n: usize) -> u64 {
    if let Some(w) = b.get(i..i + 8) {
        let mut a = [0u8; 8];
        a.copy_from_slice(w);
        let w = u64::from_le_bytes(a);
        if n >= 8 {
            w
        } else {
            w & ((1u64 << (8 * n)) - 1)
        }
    } else {
        let mut a = [0u8; 8];
        a[..n].copy_from_slice(&b[i..i + n]);
        u64::from_le_bytes(a)
    }
}

/// True when `b[..c.len]` equals the canonical name case-insensitively (`b` may be longer).
/// Exact: a letter position accepts only that letter in either case (`x | 0x20` is the
/// lowercase letter only for the two letters), and any other position only the same byte.
#[inline]
fn eq_canon(b: &[u8], c: &Canon) -> bool {
    if b.len() < c.len || c.len == 0 {
        return false;
    }
    let mut i = 0;
    let mut k = 0;
    while i < c.len {
        let n = (c.len - i).min(8);
        if load(b, i, n) | c.fold[k] != c.lower[k] {
            return false;
        }
        i += 8;
        k += 1;
    }
    true
}

/// True when `name` is exactly the canonical name of `kind`, case-insensitively.
fn eq_name(name: &[u8], kind: HeaderKind) -> bool {
    let c = &CANON[kind as usize];
    name.len() == c.len && eq_canon(name, c)
}

/// Fast path of the parser: if `line` starts with a known header name followed by `:`,
/// its kind and the colon's index. The name is then `ALPHA *token` (RFC 4975 §9 `hname`)
/// and [`HeaderKind::from_name`] of it gives the same kind; `None` means "use the general
/// path", not "invalid".
#[inline(always)]
pub(crate) fn known_header(line: &[u8]) -> Option<(HeaderKind, usize)> {
    use HeaderKind as K;
    if line.len() >= 24 {
        return known_header_long(line);
    }
    let candidates: &[HeaderKind] = match line.first()? | 0x20 {
        b't' => &[K::ToPath],
        b'f' => &[K::FromPath, K::FailureReport],
        b'm' => &[K::MessageId, K::MinExpires, K::MaxExpires],
        b'b' => &[K::ByteRange],
        b'c' => &[
            K::ContentType,
            K::ContentId,
            K::ContentDescription,
            K::ContentDisposition,
        ],
        b's' => &[K::Status, K::SuccessReport],
        b'u' => &[K::UsePath],
        b'w' => &[K::WwwAuthenticate],
        b'a' => &[K::Authorization, K::AuthenticationInfo],
        b'e' => &[K::Expires],
        _ => return None,
    };
    for &k in candidates {
        let c = &CANON[k as usize];
        if line.get(c.len) == Some(&b':') && eq_canon(line, c) {
            return Some((k, c.len));
        }
    }
    None
}

/// [`known_header`] when `line` (which may go on beyond the line) has at least 24 bytes: the
/// name and its colon compared as whole words, no length checks.
#[inline(always)]
fn known_header_long(line: &[u8]) -> Option<(HeaderKind, usize)> {
    use HeaderKind as K;
    // each candidate compared by `expected_name` with a constant kind, so that its words
    // and masks are immediates
    let try_k = |k: HeaderKind| expected_name(line, k).map(|c| (k, c));
    match line[0] | 0x20 {
        b't' => try_k(K::ToPath),
        b'f' => try_k(K::FromPath).or_else(|| try_k(K::FailureReport)),
        b'm' => try_k(K::MessageId)
            .or_else(|| try_k(K::MinExpires))
            .or_else(|| try_k(K::MaxExpires)),
        b'b' => try_k(K::ByteRange),
        b'c' => try_k(K::ContentType)
            .or_else(|| try_k(K::ContentId))
            .or_else(|| try_k(K::ContentDescription))
            .or_else(|| try_k(K::ContentDisposition)),
        b's' => try_k(K::Status).or_else(|| try_k(K::SuccessReport)),
        b'u' => try_k(K::UsePath),
        b'w' => try_k(K::WwwAuthenticate),
        b'a' => try_k(K::Authorization).or_else(|| try_k(K::AuthenticationInfo)),
        b'e' => try_k(K::Expires),
        _ => None,
    }
}

/// The parser's whole-head fast path, where RFC 4975 §9 puts a given header (To-Path
/// first, From-Path second): if `line` (at least 24 bytes, going on beyond the line)
/// starts with `expected`'s name and a colon, the colon's index, as [`known_header`] would
/// give it with that kind; `None` otherwise, and always for a shorter `line`.
#[inline(always)]
pub(crate) fn expected_name(line: &[u8], expected: HeaderKind) -> Option<usize> {
    if line.len() < 24 {
        return None;
    }
    let c = &CANON[expected as usize];
    let word = |i: usize| {
        let mut a = [0u8; 8];
        a.copy_from_slice(&line[i..i + 8]);
        u64::from_le_bytes(a)
    };
    let ok = (word(0) | c.fold[0]) & c.mask[0] == c.colon[0]
        && (c.words < 2 || (word(8) | c.fold[1]) & c.mask[1] == c.colon[1])
        && (c.words < 3 || (word(16) | c.fold[2]) & c.mask[2] == c.colon[2]);
    ok.then_some(c.len)
}

impl fmt::Display for HeaderKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.canonical_name() {
            Some(n) => f.write_str(n),
            None if *self == HeaderKind::OtherMime => f.write_str("MIME extension"),
            None => f.write_str("extension"),
        }
    }
}

/// `Failure-Report` values (RFC 4975 §7.1.1, §9).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailureReport {
    /// `yes`: report failures and send responses (the default).
    Yes,
    /// `no`: no responses, no failure reports.
    No,
    /// `partial`: only negative responses and failure reports.
    Partial,
}

impl FailureReport {
    /// The wire value.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureReport::Yes => "yes",
            FailureReport::No => "no",
            FailureReport::Partial => "partial",
        }
    }
}

/// A `Status` header value (RFC 4975 §9: `namespace SP status-code [SP comment]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatusHeader<'a> {
    /// The namespace; `000` for RFC 4975 codes.
    pub namespace: u16,
    /// The status code.
    pub code: StatusCode,
    /// The optional comment.
    pub comment: Option<&'a str>,
}

/// A `Content-Type` value (RFC 4975 §9 `media-type`), borrowed from the head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContentType<'a> {
    raw: &'a str,
    slash: usize,
    type_end: usize,
}

impl<'a> ContentType<'a> {
    fn new(raw: &'a str) -> Option<Self> {
        let b = raw.as_bytes();
        let slash = b.iter().position(|&c| c == b'/')?;
        let type_end = b.iter().position(|&c| c == b';').unwrap_or(b.len());
        Some(ContentType {
            raw,
            slash,
            type_end,
        })
    }

    /// The whole value as written.
    pub fn as_str(&self) -> &'a str {
        self.raw
    }

    /// `type/subtype` without parameters, as written (compare case-insensitively).
    pub fn media_type(&self) -> &'a str {
        self.raw[..self.type_end].trim_end()
    }

    /// The top-level type (`text` in `text/plain`).
    pub fn type_(&self) -> &'a str {
        &self.raw[..self.slash]
    }

    /// The subtype (`plain` in `text/plain`).
    pub fn subtype(&self) -> &'a str {
        self.raw[self.slash + 1..self.type_end].trim_end()
    }

    /// True when `type/subtype` equals `mt`, case-insensitively.
    pub fn is(&self, mt: &str) -> bool {
        self.media_type().eq_ignore_ascii_case(mt)
    }

    /// Parameters in order as `(name, value)`; a quoted value is returned with its quotes, a
    /// parameter without `=` has an empty value.
    pub fn params(&self) -> impl Iterator<Item = (&'a str, &'a str)> {
        split_params(&self.raw[self.type_end..]).map(|p| {
            let p = p.trim_matches([' ', '\t']);
            match p.split_once('=') {
                Some((n, v)) => (n.trim_end(), v.trim_start()),
                None => (p, ""),
            }
        })
    }

    /// The value of parameter `name` (case-insensitive), surrounding quotes removed.
    pub fn param(&self, name: &str) -> Option<&'a str> {
        self.params()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| {
                v.strip_prefix('"')
                    .and_then(|v| v.strip_suffix('"'))
                    .unwrap_or(v)
            })
    }
}

/// Splits `;p1=v1;p2="a;b"` into the parts between `;` outside quotes (skipping the empty
/// part before the first `;`).
fn split_params(s: &str) -> impl Iterator<Item = &str> {
    let b = s.as_bytes();
    let mut i = 0;
    std::iter::from_fn(move || {
        // skip to after the next ';'
        while i < b.len() && b[i] != b';' {
            i += 1;
        }
        if i >= b.len() {
            return None;
        }
        i += 1;
        let start = i;
        let mut quoted = false;
        while i < b.len() {
            match b[i] {
                b'\\' if quoted => i += 1,
                b'"' => quoted = !quoted,
                b';' if !quoted => break,
                _ => {}
            }
            i += 1;
        }
        let end = i.min(b.len());
        Some(&s[start..end])
    })
}

/// RFC 4975 §9 `ident = ALPHANUM 3*31ident-char`.
pub fn is_ident(s: &[u8]) -> bool {
    (4..=32).contains(&s.len())
        && s[0].is_ascii_alphanumeric()
        && s[1..].iter().all(|&c| is_ident_char(c))
}

/// RFC 4975 §9 `ident-char = ALPHANUM / "." / "-" / "+" / "%" / "="`.
pub fn is_ident_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'.' | b'-' | b'+' | b'%' | b'=')
}

static IDENT: [bool; 256] = {
    let mut t = [false; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        t[c] = b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'+' | b'%' | b'=');
        c += 1;
    }
    t
};

/// The end of the run of bytes in `table` from `i` (up to `lim` at most). The runs are
/// short (ids, media types).
#[inline(always)]
fn run(table: &[bool; 256], b: &[u8], mut i: usize, lim: usize) -> usize {
    let b = &b[..lim.min(b.len())];
    // four look-ups per step while all four bytes are in the class, then byte by byte
    while let Some(w) = b.get(i..i + 4) {
        if !(table[w[0] as usize]
            & table[w[1] as usize]
            & table[w[2] as usize]
            & table[w[3] as usize])
        {
            break;
        }
        i += 4;
    }
    while i < b.len() && table[b[i] as usize] {
        i += 1;
    }
    i
}

/// The end of the run of `ident-char`s at `i`, looking at most up to `lim`.
#[inline]
pub(crate) fn ident_run(b: &[u8], i: usize, lim: usize) -> usize {
    run(&IDENT, b, i, lim)
}

const fn token_table() -> [bool; 256] {
    let mut t = [false; 256];
    let mut c = 0;
    while c < 256 {
        t[c] = is_token_char(c as u8);
        c += 1;
    }
    t
}

static TOKEN: [bool; 256] = token_table();

/// RFC 4975 §9 `token` character, by table.
#[inline]
pub(crate) fn is_token_byte(c: u8) -> bool {
    TOKEN[c as usize]
}

/// Checks RFC 4975 §9 `hname = ALPHA *token`.
pub(crate) fn check_name(name: &[u8]) -> Result<(), MessageError> {
    match name.first() {
        Some(c) if c.is_ascii_alphabetic() && name[1..].iter().all(|&c| is_token_char(c)) => Ok(()),
        _ => Err(MessageError::InvalidHeaderName),
    }
}

/// Checks the bytes of `utf8text` other than the UTF-8 encoding itself (checked once for the
/// whole head): HTAB, printable ASCII and bytes >= 0x80; returns the offset of a bad byte.
pub(crate) fn check_text(v: &[u8]) -> Result<(), (usize, MessageError)> {
    for (i, &c) in v.iter().enumerate() {
        if c < 0x20 && c != b'\t' || c == 0x7f {
            let e = if c == 0 {
                MessageError::NulByte
            } else {
                MessageError::ControlCharacter
            };
            return Err((i, e));
        }
    }
    Ok(())
}

/// Checks a space-separated list of MSRP URIs (RFC 4975 §9 To-Path, From-Path; RFC 4976 §7
/// Use-Path): `MSRP-URI *( SP MSRP-URI )`.
fn check_path(kind: HeaderKind, v: &[u8], limits: &Limits) -> Result<(), MessageError> {
    // Fast path: every URI in the common form (see `uri::is_common_form`).
    let mut n = 0;
    let mut pos = 0;
    while let Some(len) = crate::uri::common_form_len(&v[pos..]) {
        n += 1;
        pos += len;
        if n > limits.max_path_uris {
            break;
        }
        if pos == v.len() {
            return Ok(());
        }
        // one SP between URIs; the next URI must not be empty
        if v[pos] != b' ' {
            break;
        }
        pos += 1;
        if pos == v.len() {
            break;
        }
    }
    check_path_slow(kind, v, limits)
}

#[cold]
fn check_path_slow(kind: HeaderKind, v: &[u8], limits: &Limits) -> Result<(), MessageError> {
    let s = std::str::from_utf8(v).map_err(|_| MessageError::InvalidUtf8)?;
    let mut n = 0;
    for uri in s.split(' ') {
        n += 1;
        if n > limits.max_path_uris {
            return Err(MessageError::TooManyUris {
                header: kind,
                limit: limits.max_path_uris,
            });
        }
        MsrpUri::validate(uri).map_err(|error| MessageError::InvalidUri {
            header: kind,
            error,
        })?;
    }
    Ok(())
}

fn parse_u32(v: &[u8]) -> Option<u32> {
    if v.is_empty() || v.len() > 10 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n = v.iter().fold(0u64, |a, &c| a * 10 + u64::from(c - b'0'));
    u32::try_from(n).ok()
}

fn three_digits(v: &[u8]) -> Option<u16> {
    if v.len() == 3 && v.iter().all(u8::is_ascii_digit) {
        Some(v.iter().fold(0u16, |a, &c| a * 10 + u16::from(c - b'0')))
    } else {
        None
    }
}

fn parse_status(v: &[u8]) -> Option<(u16, u16, Option<usize>)> {
    if v.len() < 7 || v[3] != b' ' {
        return None;
    }
    let ns = three_digits(&v[..3])?;
    let code = three_digits(&v[4..7])?;
    match v.len() {
        7 => Some((ns, code, None)),
        _ if v[7] == b' ' => Some((ns, code, Some(8))),
        _ => None,
    }
}

/// The parser's whole-head fast path: a Content-Type value of the plain form `type/subtype`
/// (two tokens, no parameters) at `vs`, followed by CR; the CR's index. `check_content_type`
/// accepts every such value; anything else goes to the general path.
pub(crate) fn plain_media_type_end(buf: &[u8], vs: usize) -> Option<usize> {
    let t = run(&TOKEN, buf, vs, usize::MAX);
    if t == vs || buf.get(t) != Some(&b'/') {
        return None;
    }
    let e = run(&TOKEN, buf, t + 1, usize::MAX);
    (e > t + 1 && buf.get(e) == Some(&b'\r')).then_some(e)
}

/// Checks a `media-type` (RFC 4975 §9), allowing optional whitespace around `;` and `=` as
/// RFC 2045 does.
fn check_content_type(v: &[u8]) -> bool {
    let tok_end = |from: usize| {
        let mut i = from;
        // '/' (0x2F) is not a token character, so this stops at the type/subtype slash
        while i < v.len() && is_token_byte(v[i]) {
            i += 1;
        }
        i
    };
    let t = tok_end(0);
    if t == 0 || t >= v.len() || v[t] != b'/' {
        return false;
    }
    let s = tok_end(t + 1);
    if s == t + 1 {
        return false;
    }
    let mut i = s;
    let skip_ws = |mut i: usize| {
        while i < v.len() && (v[i] == b' ' || v[i] == b'\t') {
            i += 1;
        }
        i
    };
    loop {
        i = skip_ws(i);
        if i == v.len() {
            return true;
        }
        if v[i] != b';' {
            return false;
        }
        i = skip_ws(i + 1);
        let n = tok_end(i);
        if n == i {
            return false;
        }
        i = skip_ws(n);
        if i < v.len() && v[i] == b'=' {
            i = skip_ws(i + 1);
            if i < v.len() && v[i] == b'"' {
                i += 1;
                loop {
                    if i >= v.len() {
                        return false;
                    }
                    match v[i] {
                        b'"' => break,
                        b'\\' if i + 1 < v.len() && matches!(v[i + 1], b'\\' | b'"') => i += 2,
                        b'\\' => return false,
                        _ => i += 1,
                    }
                }
                i += 1;
            } else {
                let e = tok_end(i);
                if e == i {
                    return false;
                }
                i = e;
            }
        }
    }
}

/// Checks a header value of a known kind (RFC 4975 §9, RFC 4976 §7). `v` has already passed
/// [`check_text`].
pub(crate) fn check_value(kind: HeaderKind, v: &[u8], limits: &Limits) -> Result<(), MessageError> {
    match kind {
        HeaderKind::ToPath | HeaderKind::FromPath | HeaderKind::UsePath => {
            check_path(kind, v, limits)
        }
        HeaderKind::MessageId => {
            if is_ident(v) {
                Ok(())
            } else {
                Err(MessageError::InvalidMessageId)
            }
        }
        HeaderKind::SuccessReport => {
            if v.eq_ignore_ascii_case(b"yes") || v.eq_ignore_ascii_case(b"no") {
                Ok(())
            } else {
                Err(MessageError::InvalidReportValue(kind))
            }
        }
        HeaderKind::FailureReport => match parse_failure_report(v) {
            Some(_) => Ok(()),
            None => Err(MessageError::InvalidReportValue(kind)),
        },
        HeaderKind::ByteRange => ByteRange::parse_bytes(v)
            .map(|_| ())
            .map_err(MessageError::InvalidByteRange),
        HeaderKind::Status => match parse_status(v) {
            Some(_) => Ok(()),
            None => Err(MessageError::InvalidStatusHeader),
        },
        HeaderKind::ContentType => {
            if check_content_type(v) {
                Ok(())
            } else {
                Err(MessageError::InvalidContentType)
            }
        }
        HeaderKind::Expires | HeaderKind::MinExpires | HeaderKind::MaxExpires => {
            match parse_u32(v) {
                Some(_) => Ok(()),
                None => Err(MessageError::InvalidExpires(kind)),
            }
        }
        // Kept as checked utf8text: Content-ID, Content-Description, Content-Disposition,
        // other MIME headers, WWW-Authenticate, Authorization, Authentication-Info (digest
        // parsing belongs to the relay module), extension headers.
        _ => Ok(()),
    }
}

fn parse_failure_report(v: &[u8]) -> Option<FailureReport> {
    if v.eq_ignore_ascii_case(b"yes") {
        Some(FailureReport::Yes)
    } else if v.eq_ignore_ascii_case(b"no") {
        Some(FailureReport::No)
    } else if v.eq_ignore_ascii_case(b"partial") {
        Some(FailureReport::Partial)
    } else {
        None
    }
}

// Typed views over checked values. They never fail on values that passed `check_value`; on
// anything else they return `None`.

pub(crate) fn view_uris(v: &str) -> Vec<MsrpUri> {
    v.split(' ')
        .filter_map(|u| MsrpUri::parse(u).ok())
        .collect()
}

pub(crate) fn view_success(v: &str) -> Option<bool> {
    if v.eq_ignore_ascii_case("yes") {
        Some(true)
    } else if v.eq_ignore_ascii_case("no") {
        Some(false)
    } else {
        None
    }
}

pub(crate) fn view_failure(v: &str) -> Option<FailureReport> {
    parse_failure_report(v.as_bytes())
}

pub(crate) fn view_status(v: &str) -> Option<StatusHeader<'_>> {
    let (namespace, code, comment) = parse_status(v.as_bytes())?;
    Some(StatusHeader {
        namespace,
        code: StatusCode(code),
        comment: comment.map(|i| &v[i..]),
    })
}

pub(crate) fn view_content_type(v: &str) -> Option<ContentType<'_>> {
    ContentType::new(v)
}

pub(crate) fn view_u32(v: &str) -> Option<u32> {
    parse_u32(v.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_names_case_insensitively() {
        assert_eq!(HeaderKind::from_name(b"to-path"), HeaderKind::ToPath);
        assert_eq!(HeaderKind::from_name(b"MESSAGE-ID"), HeaderKind::MessageId);
        assert_eq!(HeaderKind::from_name(b"Content-Foo"), HeaderKind::OtherMime);
        assert_eq!(HeaderKind::from_name(b"Content-"), HeaderKind::Extension);
        assert_eq!(HeaderKind::from_name(b"X-Thing"), HeaderKind::Extension);
        assert_eq!(
            HeaderKind::from_name(b"www-authenticate"),
            HeaderKind::WwwAuthenticate
        );
        for k in [
            HeaderKind::ToPath,
            HeaderKind::FromPath,
            HeaderKind::MessageId,
            HeaderKind::SuccessReport,
            HeaderKind::FailureReport,
            HeaderKind::ByteRange,
            HeaderKind::Status,
            HeaderKind::ContentType,
            HeaderKind::ContentId,
            HeaderKind::ContentDescription,
            HeaderKind::ContentDisposition,
            HeaderKind::UsePath,
            HeaderKind::WwwAuthenticate,
            HeaderKind::Authorization,
            HeaderKind::AuthenticationInfo,
            HeaderKind::Expires,
            HeaderKind::MinExpires,
            HeaderKind::MaxExpires,
        ] {
            let n = k.canonical_name().unwrap();
            assert_eq!(HeaderKind::from_name(n.as_bytes()), k);
        }
    }

    /// The parser's word-at-a-time fast path must agree with the general path (token scan
    /// to the colon, then `from_name`) on every line, known name or not.
    #[test]
    fn known_header_agrees_with_the_general_path() {
        let general = |line: &[u8]| {
            let colon = line.iter().position(|&c| !is_token_byte(c))?;
            (line[colon] == b':' && line[0].is_ascii_alphabetic())
                .then(|| (HeaderKind::from_name(&line[..colon]), colon))
        };
        let mut lines: Vec<Vec<u8>> = Vec::new();
        for k in (0..20).map(|i| CANON_KINDS[i]) {
            let Some(n) = k.canonical_name() else {
                continue;
            };
            for v in [n.to_string(), n.to_lowercase(), n.to_uppercase()] {
                lines.push(format!("{v}: x").into_bytes());
                lines.push(format!("{v}:").into_bytes());
                lines.push(format!("{v}x: y").into_bytes());
                lines.push(format!("{v} : y").into_bytes());
                lines.push(v.clone().into_bytes());
                lines.push(v.as_bytes()[..v.len() - 1].to_vec());
                // every single-byte change of the name, including the bytes that fold
                // onto '-' or a letter under `| 0x20` (CR, 0x0e, '@', '[' ...)
                for i in 0..v.len() {
                    for b in [0x0d, 0x0e, b'@', b'[', b'`', b'{', b'_', b'.', b'0'] {
                        let mut l = format!("{v}: x").into_bytes();
                        l[i] = b;
                        lines.push(l);
                    }
                }
            }
        }
        lines.push(b"Content-Foo: x".to_vec());
        lines.push(b"X-Thing: x".to_vec());
        lines.push(b": x".to_vec());
        lines.push(b"".to_vec());
        for l in &lines {
            // The parser's buffer goes on after the line: the long form must agree.
            let mut long = l.clone();
            long.extend_from_slice(b"\r\nTo-Path: msrp://a.example.com:1/x;tcp\r\n");
            assert!(long.len() >= 24);
            assert_eq!(
                known_header(&long),
                known_header(l),
                "{:?}",
                String::from_utf8_lossy(l)
            );
            for k in CANON_KINDS
                .into_iter()
                .filter(|k| k.canonical_name().is_some())
            {
                let want = known_header(l).filter(|f| f.0 == k).map(|f| f.1);
                assert_eq!(expected_name(&long, k), want, "{k:?}");
                if l.len() < 24 {
                    assert_eq!(expected_name(l, k), None);
                }
            }
            if let Some(fast) = known_header(l) {
                assert_eq!(Some(fast), general(l), "{:?}", String::from_utf8_lossy(l));
                assert!(fast.0.canonical_name().is_some());
            } else if let Some((k, _)) = general(l) {
                assert!(
                    k.canonical_name().is_none(),
                    "fast path missed {:?}",
                    String::from_utf8_lossy(l)
                );
            }
        }
    }

    const CANON_KINDS: [HeaderKind; 20] = [
        HeaderKind::ToPath,
        HeaderKind::FromPath,
        HeaderKind::MessageId,
        HeaderKind::SuccessReport,
        HeaderKind::FailureReport,
        HeaderKind::ByteRange,
        HeaderKind::Status,
        HeaderKind::ContentType,
        HeaderKind::ContentId,
        HeaderKind::ContentDescription,
        HeaderKind::ContentDisposition,
        HeaderKind::OtherMime,
        HeaderKind::UsePath,
        HeaderKind::WwwAuthenticate,
        HeaderKind::Authorization,
        HeaderKind::AuthenticationInfo,
        HeaderKind::Expires,
        HeaderKind::MinExpires,
        HeaderKind::MaxExpires,
        HeaderKind::Extension,
    ];

    /// `CANON` is indexed by `HeaderKind as usize`, and the kind masks agree with the
    /// predicates.
    #[test]
    fn canon_table_matches_the_enum() {
        for k in CANON_KINDS {
            assert_eq!(HeaderKind::SINGLE & k.bit() != 0, k.is_single(), "{k:?}");
            assert_eq!(HeaderKind::MIME & k.bit() != 0, k.is_mime(), "{k:?}");
        }
        for (i, k) in CANON_KINDS.iter().enumerate() {
            assert_eq!(*k as usize, i);
            assert_eq!(CANON[i].len, k.canonical_name().map_or(0, str::len));
        }
    }

    #[test]
    fn content_type_syntax_and_view() {
        for ok in [
            "text/plain",
            "message/cpim",
            "text/plain; charset=utf-8",
            "text/plain;charset=\"utf-8\";x",
            "multipart/mixed; boundary=\"a;b\\\"c\"",
            "application/im-iscomposing+xml",
        ] {
            assert!(check_content_type(ok.as_bytes()), "{ok}");
        }
        for bad in [
            "",
            "text",
            "text/",
            "/plain",
            "te xt/plain",
            "text/plain;",
            "text/plain; =x",
            "text/plain; a=\"open",
            "text/plain x",
        ] {
            assert!(!check_content_type(bad.as_bytes()), "{bad}");
        }
        let ct = ContentType::new("Text/Plain; charset=\"utf-8\"; format=flowed").unwrap();
        assert_eq!(ct.media_type(), "Text/Plain");
        assert!(ct.is("text/plain"));
        assert_eq!(ct.type_(), "Text");
        assert_eq!(ct.subtype(), "Plain");
        assert_eq!(ct.param("CHARSET"), Some("utf-8"));
        assert_eq!(ct.param("format"), Some("flowed"));
        assert_eq!(ct.params().count(), 2);
    }

    #[test]
    fn ident_rule() {
        assert!(is_ident(b"a786hjs2"));
        assert!(is_ident(b"abcd"));
        assert!(!is_ident(b"abc"));
        assert!(!is_ident(b"-abc"));
        assert!(is_ident(&[b'a'; 32]));
        assert!(!is_ident(&[b'a'; 33]));
        assert!(!is_ident(b"ab cd"));
    }
}
