//! HTTP Digest authentication for the MSRP AUTH method (RFC 4976 §5.1, §9.1; RFC 7616;
//! RFC 2617).
//!
//! # What MSRP changes in Digest (RFC 4976 §9.1)
//!
//! - Basic is never used; a `Basic` challenge is an error ([`DigestError::Basic`]).
//! - Challenges and credentials always carry `qop`; only `qop=auth` makes sense (TLS gives
//!   integrity), so a challenge that does not offer `auth` is refused ([`DigestError::NoAuthQop`]).
//! - Clients always send `cnonce` and `nc`.
//! - The method in A2 is `AUTH` and the digest-uri ("request-URI") is **the rightmost URI of
//!   the To-Path header** of the AUTH request, i.e. the URI of the relay being authenticated
//!   to (for a chain R1 → R2 the To-Path is `R1-use-path R2` and the uri is R2's URI).
//! - Relays never challenge with `MD5-sess` ([`DigestServer::new`] refuses session variants);
//!   the client still computes them if a relay asks.
//! - Relays put `rspauth`, `cnonce`, `nc` and `qop` in the `Authentication-Info` of every 200 to
//!   an AUTH ([`DigestServer::verify`] always does; [`DigestClient::on_success`] checks them
//!   when present).
//! - The `domain` parameter is ignored.
//!
//! # Shapes
//!
//! - [`Challenge`]: a `WWW-Authenticate` value (parse and print).
//! - [`Authorization`]: an `Authorization` value (parse and print).
//! - [`AuthenticationInfo`]: an `Authentication-Info` value (parse and print).
//! - [`DigestClient`]: the client side for one relay: answers challenges, counts nonces,
//!   retries on a stale nonce, gives up when the credentials are refused, checks `rspauth`,
//!   follows `nextnonce`.
//! - [`DigestServer`]: the relay side: stateless nonces (caller randomness, a timestamp and an
//!   HMAC-SHA-256 tag under a server secret, so forged nonces are rejected and old ones are
//!   detected as stale with the time as an input), verification against a stored HA1, and a
//!   bounded nonce-count replay check.
//!
//! Parsing follows RFC 7235 §2.1 / RFC 7230 §3.2.6: parameter names are case-insensitive,
//! values are a token or a quoted-string (with `\` quoted-pairs), list elements are separated
//! by commas with optional whitespace, and empty list elements are tolerated. Inputs are bounded
//! ([`MAX_HEADER_LEN`], [`MAX_PARAMS`]); every problem is a [`DigestError`] value.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::str::FromStr;

use hmac::{Hmac, Mac};
use md5::Md5;
use sha2::{Digest, Sha256, Sha512_256};

/// Longest `WWW-Authenticate` / `Authorization` / `Authentication-Info` value we parse.
pub const MAX_HEADER_LEN: usize = 4096;
/// Most parameters accepted in one header value.
pub const MAX_PARAMS: usize = 32;
/// Longest username, realm, cnonce or password we accept when building credentials.
pub const MAX_FIELD_LEN: usize = 512;
/// Default lifetime of a server nonce, in seconds (RFC 7616 leaves it to the server).
pub const DEFAULT_NONCE_LIFETIME: u64 = 300;
/// Default number of nonces whose nonce count a [`DigestServer`] remembers.
pub const DEFAULT_TRACKED_NONCES: usize = 16_384;

/// What went wrong while parsing or using Digest values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DigestError {
    /// The header value is longer than [`MAX_HEADER_LEN`].
    #[error("authentication header value longer than {MAX_HEADER_LEN} bytes")]
    TooLong,
    /// RFC 4976 §9.1: clients MUST NOT use Basic, relays MUST NOT request it.
    #[error("Basic authentication is not allowed in MSRP (RFC 4976 §9.1)")]
    Basic,
    /// A scheme other than Digest.
    #[error("authentication scheme {0:?} is not Digest")]
    NotDigest(String),
    /// The parameter list does not follow the grammar.
    #[error("malformed digest parameters at byte {offset}: {what}")]
    Syntax {
        /// Byte offset in the header value.
        offset: usize,
        /// What was expected or found.
        what: &'static str,
    },
    /// More than [`MAX_PARAMS`] parameters.
    #[error("more than {MAX_PARAMS} digest parameters")]
    TooManyParams,
    /// A parameter appears twice (names compared case-insensitively).
    #[error("digest parameter {0} appears more than once")]
    DuplicateParam(String),
    /// A parameter the message must carry is absent.
    #[error("digest parameter {0} is missing")]
    MissingParam(&'static str),
    /// A parameter value is not acceptable.
    #[error("invalid digest parameter {name}: {why}")]
    BadValue {
        /// Parameter name.
        name: &'static str,
        /// What is wrong with it.
        why: &'static str,
    },
    /// The algorithm is not one of MD5, SHA-256, SHA-512-256 and their -sess variants.
    #[error("unsupported digest algorithm {0:?}")]
    UnsupportedAlgorithm(String),
    /// RFC 4976 §9.1: challenges MUST carry qop and only `auth` makes sense for MSRP.
    #[error("challenge does not offer qop=auth (RFC 4976 §9.1)")]
    NoAuthQop,
    /// [`DigestClient::authorize`] was called before any challenge arrived.
    #[error("no digest challenge received yet")]
    NoChallenge,
    /// The server answered our credentials with a new, non-stale challenge: they are wrong
    /// (RFC 7616 §3.3: "the username and/or password are invalid").
    #[error("relay refused the credentials for realm {realm:?}")]
    CredentialsRejected {
        /// Realm of the refused attempt.
        realm: String,
    },
    /// `Authentication-Info` rspauth does not prove knowledge of our password (RFC 7616 §3.5).
    #[error("Authentication-Info rspauth does not match: the relay did not prove it knows the credentials")]
    RspauthMismatch,
    /// `Authentication-Info` names a cnonce or nc other than the ones we sent (RFC 7616 §3.5).
    #[error("Authentication-Info cnonce/nc do not match the request")]
    InfoMismatch,
    /// The nonce count reached its maximum (2^32 - 1 uses of one nonce).
    #[error("nonce count exhausted")]
    NonceCountExhausted,
    /// Relays MUST NOT send challenges indicating a -sess algorithm (RFC 4976 §9.1).
    #[error("relays must not challenge with a session algorithm (RFC 4976 §9.1)")]
    SessionAlgorithm,
}

// ---------------------------------------------------------------------------------------------
// Algorithms and hashing
// ---------------------------------------------------------------------------------------------

/// A Digest algorithm (RFC 7616 §3.3, §6.1 registry).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// `MD5` (the default when no algorithm parameter is present).
    Md5,
    /// `MD5-sess`.
    Md5Sess,
    /// `SHA-256`.
    Sha256,
    /// `SHA-256-sess`.
    Sha256Sess,
    /// `SHA-512-256`.
    Sha512_256,
    /// `SHA-512-256-sess`.
    Sha512_256Sess,
}

impl Algorithm {
    /// All supported algorithms.
    pub const ALL: [Algorithm; 6] = [
        Algorithm::Md5,
        Algorithm::Md5Sess,
        Algorithm::Sha256,
        Algorithm::Sha256Sess,
        Algorithm::Sha512_256,
        Algorithm::Sha512_256Sess,
    ];

    /// Parses an algorithm name, case-insensitively (RFC 7616 §3.3).
    pub fn parse(s: &str) -> Option<Algorithm> {
        Algorithm::ALL
            .into_iter()
            .find(|a| a.as_str().eq_ignore_ascii_case(s))
    }

    /// The name as written on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Md5Sess => "MD5-sess",
            Algorithm::Sha256 => "SHA-256",
            Algorithm::Sha256Sess => "SHA-256-sess",
            Algorithm::Sha512_256 => "SHA-512-256",
            Algorithm::Sha512_256Sess => "SHA-512-256-sess",
        }
    }

    /// True for the `-sess` variants (RFC 7616 §3.4.2).
    pub fn is_session(self) -> bool {
        matches!(
            self,
            Algorithm::Md5Sess | Algorithm::Sha256Sess | Algorithm::Sha512_256Sess
        )
    }

    /// The non-session variant, which names the hash function and the stored HA1.
    pub fn base(self) -> Algorithm {
        match self {
            Algorithm::Md5 | Algorithm::Md5Sess => Algorithm::Md5,
            Algorithm::Sha256 | Algorithm::Sha256Sess => Algorithm::Sha256,
            Algorithm::Sha512_256 | Algorithm::Sha512_256Sess => Algorithm::Sha512_256,
        }
    }

    /// Length of a digest of this algorithm in lowercase hex.
    pub fn hex_len(self) -> usize {
        match self.base() {
            Algorithm::Md5 => 32,
            _ => 64,
        }
    }

    /// `H(p1 ":" p2 ":" ...)` as lowercase hex (RFC 7616 §3.3).
    pub fn hash(self, parts: &[&[u8]]) -> String {
        fn run<D: Digest>(parts: &[&[u8]]) -> String {
            let mut d = D::new();
            for (i, p) in parts.iter().enumerate() {
                if i > 0 {
                    d.update(b":");
                }
                d.update(p);
            }
            to_hex(&d.finalize())
        }
        match self.base() {
            Algorithm::Md5 => run::<Md5>(parts),
            Algorithm::Sha256 => run::<Sha256>(parts),
            _ => run::<Sha512_256>(parts),
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

fn to_hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(HEX[(b >> 4) as usize] as char);
        s.push(HEX[(b & 15) as usize] as char);
    }
    s
}

fn from_hex(s: &str) -> Option<Vec<u8>> {
    let b = s.as_bytes();
    if b.len() % 2 != 0 {
        return None;
    }
    let val = |c: u8| -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            b'A'..=b'F' => Some(c - b'A' + 10),
            _ => None,
        }
    };
    b.chunks(2)
        .map(|p| Some(val(p[0])? << 4 | val(p[1])?))
        .collect()
}

/// Comparison whose time does not depend on where the inputs differ.
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// HA1 = `H(username ":" realm ":" password)` (RFC 7616 §3.4.2), with the hash function of
/// `algorithm` (its session variant uses the same stored HA1).
pub fn ha1(algorithm: Algorithm, username: &str, realm: &str, password: &str) -> String {
    algorithm.hash(&[username.as_bytes(), realm.as_bytes(), password.as_bytes()])
}

/// The request digest (RFC 7616 §3.4.1, qop=auth):
/// `KD(H(A1), nonce ":" nc ":" cnonce ":" qop ":" H(A2))` with `A2 = method ":" uri`.
///
/// `ha1_hex` is the stored (non-session) HA1; for a `-sess` algorithm the session key
/// `H(HA1 ":" nonce ":" cnonce)` is derived here. Pass `method = ""` for the `rspauth` of
/// `Authentication-Info` (RFC 7616 §3.5: `A2 = ":" request-uri`).
#[allow(clippy::too_many_arguments)]
pub fn request_digest(
    algorithm: Algorithm,
    ha1_hex: &str,
    nonce: &str,
    nc: u32,
    cnonce: &str,
    qop: &str,
    method: &str,
    uri: &str,
) -> String {
    let ha1 = if algorithm.is_session() {
        algorithm.hash(&[ha1_hex.as_bytes(), nonce.as_bytes(), cnonce.as_bytes()])
    } else {
        ha1_hex.to_string()
    };
    let ha2 = algorithm.hash(&[method.as_bytes(), uri.as_bytes()]);
    let nc = format_nc(nc);
    algorithm.hash(&[
        ha1.as_bytes(),
        nonce.as_bytes(),
        nc.as_bytes(),
        cnonce.as_bytes(),
        qop.as_bytes(),
        ha2.as_bytes(),
    ])
}

/// `nc` on the wire: exactly 8 lowercase hex digits (RFC 7616 §3.5).
pub fn format_nc(nc: u32) -> String {
    format!("{nc:08x}")
}

/// A cnonce made from caller-supplied random bytes (hex). The core never draws randomness
/// itself; 16 bytes from a CSPRNG are plenty.
pub fn cnonce_from_random(random: &[u8]) -> String {
    to_hex(random)
}

// ---------------------------------------------------------------------------------------------
// Parameter lists
// ---------------------------------------------------------------------------------------------

#[derive(Debug)]
struct Param {
    /// Lower-cased name.
    name: String,
    value: String,
}

fn is_token_char(c: u8) -> bool {
    // RFC 7230 §3.2.6 tchar.
    c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c)
}

/// Unquoted values: a token, leniently extended with the token68 characters `/` and `=` and
/// with `:` and `@`, which some servers leave unquoted in nonces and realms.
fn is_value_char(c: u8) -> bool {
    is_token_char(c) || matches!(c, b'/' | b'=' | b':' | b'@')
}

fn is_ows(c: u8) -> bool {
    c == b' ' || c == b'\t'
}

fn syntax(offset: usize, what: &'static str) -> DigestError {
    DigestError::Syntax { offset, what }
}

/// Checks the overall bounds and that no control characters (other than HTAB) are present.
fn check_value(s: &str) -> Result<(), DigestError> {
    if s.len() > MAX_HEADER_LEN {
        return Err(DigestError::TooLong);
    }
    if let Some(i) = s
        .bytes()
        .position(|c| (c < 0x20 && c != b'\t') || c == 0x7f)
    {
        return Err(syntax(i, "control character"));
    }
    Ok(())
}

/// Refuses a parsed value whose canonical form (what its `Display` prints, the form we send
/// or answer with) would be longer than [`MAX_HEADER_LEN`]: quoting token values and escaping
/// `"` and `\\` can make it longer than the input, and a value that cannot be printed within
/// the limit would be refused by the next parser as [`DigestError::TooLong`] (found by
/// fuzzing `digest_parser`).
fn fits_header(v: &impl fmt::Display) -> Result<(), DigestError> {
    if v.to_string().len() > MAX_HEADER_LEN {
        return Err(DigestError::TooLong);
    }
    Ok(())
}

/// Parses `#auth-param` starting at `start` (RFC 7235 §2.1).
fn parse_params(s: &str, start: usize) -> Result<Vec<Param>, DigestError> {
    let b = s.as_bytes();
    let mut i = start;
    let mut out: Vec<Param> = Vec::new();
    loop {
        // Skip OWS and empty list elements.
        while i < b.len() && (is_ows(b[i]) || b[i] == b',') {
            i += 1;
        }
        if i == b.len() {
            break;
        }
        let name_start = i;
        while i < b.len() && is_token_char(b[i]) {
            i += 1;
        }
        if i == name_start {
            return Err(syntax(i, "expected a parameter name"));
        }
        let name = s[name_start..i].to_ascii_lowercase();
        while i < b.len() && is_ows(b[i]) {
            i += 1;
        }
        if i == b.len() || b[i] != b'=' {
            return Err(syntax(i, "expected '=' after the parameter name"));
        }
        i += 1;
        while i < b.len() && is_ows(b[i]) {
            i += 1;
        }
        let value = if i < b.len() && b[i] == b'"' {
            i += 1;
            let mut v: Vec<u8> = Vec::new();
            loop {
                match b.get(i) {
                    None => return Err(syntax(i, "unterminated quoted-string")),
                    Some(b'"') => {
                        i += 1;
                        break;
                    }
                    Some(b'\\') => {
                        // quoted-pair = "\" ( HTAB / SP / VCHAR / obs-text )
                        match b.get(i + 1) {
                            None => return Err(syntax(i, "unterminated quoted-pair")),
                            Some(&c) => v.push(c),
                        }
                        i += 2;
                    }
                    Some(&c) => {
                        v.push(c);
                        i += 1;
                    }
                }
            }
            String::from_utf8(v).map_err(|_| syntax(i, "quoted-string is not UTF-8"))?
        } else {
            let vs = i;
            while i < b.len() && is_value_char(b[i]) {
                i += 1;
            }
            if i == vs {
                return Err(syntax(i, "expected a token or quoted-string value"));
            }
            s[vs..i].to_string()
        };
        if out.iter().any(|p| p.name == name) {
            return Err(DigestError::DuplicateParam(name));
        }
        if out.len() == MAX_PARAMS {
            return Err(DigestError::TooManyParams);
        }
        out.push(Param { name, value });
        while i < b.len() && is_ows(b[i]) {
            i += 1;
        }
        if i == b.len() {
            break;
        }
        if b[i] != b',' {
            return Err(syntax(i, "expected ',' between parameters"));
        }
    }
    Ok(out)
}

/// Parses `Digest SP #auth-param`, refusing Basic and other schemes.
fn parse_digest_value(s: &str) -> Result<Vec<Param>, DigestError> {
    check_value(s)?;
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() && is_ows(b[i]) {
        i += 1;
    }
    let scheme_start = i;
    while i < b.len() && is_token_char(b[i]) {
        i += 1;
    }
    let scheme = &s[scheme_start..i];
    if scheme.is_empty() {
        return Err(syntax(i, "expected an authentication scheme"));
    }
    if scheme.eq_ignore_ascii_case("Basic") {
        return Err(DigestError::Basic);
    }
    if !scheme.eq_ignore_ascii_case("Digest") {
        return Err(DigestError::NotDigest(scheme.to_string()));
    }
    if i < b.len() && !is_ows(b[i]) {
        return Err(syntax(i, "expected whitespace after Digest"));
    }
    parse_params(s, i)
}

/// Writes `"value"` with `"` and `\` escaped (RFC 7230 §3.2.6). Control characters cannot be
/// carried by a quoted-string and are dropped, so a value can never break the header line.
fn push_quoted(out: &mut String, v: &str) {
    out.push('"');
    for c in v.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 && c != '\t' || c == '\u{7f}' => {}
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Validates a value we are going to quote (username, realm, cnonce, uri...).
fn check_field(name: &'static str, v: &str) -> Result<(), DigestError> {
    if v.len() > MAX_FIELD_LEN {
        return Err(DigestError::BadValue {
            name,
            why: "too long",
        });
    }
    if v.chars().any(|c| c.is_control()) {
        return Err(DigestError::BadValue {
            name,
            why: "contains a control character",
        });
    }
    Ok(())
}

fn parse_hex_digest(name: &'static str, v: &str, len: usize) -> Result<String, DigestError> {
    if v.len() != len || !v.bytes().all(|c| c.is_ascii_hexdigit()) {
        return Err(DigestError::BadValue {
            name,
            why: "not a hex digest of the algorithm's length",
        });
    }
    Ok(v.to_ascii_lowercase())
}

fn parse_nc(v: &str) -> Result<u32, DigestError> {
    // RFC 7616 §3.5: "the nc value MUST be exactly 8 hexadecimal digits".
    if v.len() != 8 || !v.bytes().all(|c| c.is_ascii_hexdigit()) {
        return Err(DigestError::BadValue {
            name: "nc",
            why: "must be exactly 8 hex digits",
        });
    }
    u32::from_str_radix(v, 16).map_err(|_| DigestError::BadValue {
        name: "nc",
        why: "must be exactly 8 hex digits",
    })
}

fn is_true(v: &str) -> bool {
    v.eq_ignore_ascii_case("true")
}

// ---------------------------------------------------------------------------------------------
// WWW-Authenticate
// ---------------------------------------------------------------------------------------------

/// A Digest challenge: the value of a `WWW-Authenticate` header (RFC 4976 §7, RFC 7616 §3.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// Protection space (RFC 4976 §5.1: usually the relay's hostname).
    pub realm: String,
    /// Server nonce, opaque to the client.
    pub nonce: String,
    /// Opaque value to echo back unchanged.
    pub opaque: Option<String>,
    /// `stale=true`: the previous attempt had good credentials but an old nonce.
    pub stale: bool,
    /// Hash algorithm (MD5 when absent).
    pub algorithm: Algorithm,
    /// The qop values offered, in order (lower-cased). Always contains `auth` once parsed.
    pub qop: Vec<String>,
    /// `userhash=true` (RFC 7616 §3.4.4): the client sends `H(username ":" realm)`.
    pub userhash: bool,
    /// `charset=UTF-8` (RFC 7616 §4).
    pub charset_utf8: bool,
}

impl Challenge {
    /// A challenge for `realm` with `nonce`, `qop="auth"` and the given algorithm.
    pub fn new(realm: impl Into<String>, nonce: impl Into<String>, algorithm: Algorithm) -> Self {
        Challenge {
            realm: realm.into(),
            nonce: nonce.into(),
            opaque: None,
            stale: false,
            algorithm,
            qop: vec!["auth".to_string()],
            userhash: false,
            charset_utf8: false,
        }
    }

    /// Parses a `WWW-Authenticate` header value such as
    /// `Digest realm="r", nonce="n", qop="auth", algorithm=SHA-256`.
    ///
    /// Requires realm, nonce and a qop list containing `auth` (RFC 4976 §9.1). `domain` and
    /// unknown parameters are ignored (RFC 4976 §9.1, RFC 7616 §3.3).
    pub fn parse(value: &str) -> Result<Challenge, DigestError> {
        let v = Self::parse_fields(value)?;
        fits_header(&v)?;
        Ok(v)
    }

    fn parse_fields(value: &str) -> Result<Challenge, DigestError> {
        let params = parse_digest_value(value)?;
        let mut realm = None;
        let mut nonce = None;
        let mut opaque = None;
        let mut stale = false;
        let mut algorithm = Algorithm::Md5;
        let mut qop = None;
        let mut userhash = false;
        let mut charset_utf8 = false;
        for p in params {
            match p.name.as_str() {
                "realm" => realm = Some(p.value),
                "nonce" => nonce = Some(p.value),
                "opaque" => opaque = Some(p.value),
                "stale" => stale = is_true(&p.value),
                "algorithm" => {
                    algorithm = Algorithm::parse(&p.value)
                        .ok_or(DigestError::UnsupportedAlgorithm(p.value))?
                }
                "qop" => {
                    let list: Vec<String> = p
                        .value
                        .split(',')
                        .map(|t| t.trim_matches([' ', '\t']).to_ascii_lowercase())
                        .filter(|t| !t.is_empty())
                        .collect();
                    if list.is_empty() || list.iter().any(|t| !t.bytes().all(is_token_char)) {
                        return Err(DigestError::BadValue {
                            name: "qop",
                            why: "must be a list of tokens",
                        });
                    }
                    qop = Some(list);
                }
                "userhash" => userhash = is_true(&p.value),
                "charset" => charset_utf8 = p.value.eq_ignore_ascii_case("UTF-8"),
                // RFC 4976 §9.1: clients MUST ignore domain; RFC 7616 §3.3: unknown ignored.
                _ => {}
            }
        }
        let realm = realm.ok_or(DigestError::MissingParam("realm"))?;
        let nonce = nonce.ok_or(DigestError::MissingParam("nonce"))?;
        if nonce.is_empty() {
            return Err(DigestError::BadValue {
                name: "nonce",
                why: "empty",
            });
        }
        // RFC 4976 §9.1: relays MUST include qop; auth-int makes no sense for MSRP.
        let qop = qop.ok_or(DigestError::MissingParam("qop"))?;
        if !qop.iter().any(|q| q == "auth") {
            return Err(DigestError::NoAuthQop);
        }
        Ok(Challenge {
            realm,
            nonce,
            opaque,
            stale,
            algorithm,
            qop,
            userhash,
            charset_utf8,
        })
    }
}

impl FromStr for Challenge {
    type Err = DigestError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Challenge::parse(s)
    }
}

impl fmt::Display for Challenge {
    /// RFC 7616 §3.3: realm, nonce, opaque and qop quoted; stale and algorithm not.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = String::from("Digest realm=");
        push_quoted(&mut s, &self.realm);
        s.push_str(", nonce=");
        push_quoted(&mut s, &self.nonce);
        s.push_str(", qop=");
        push_quoted(&mut s, &self.qop.join(","));
        s.push_str(", algorithm=");
        s.push_str(self.algorithm.as_str());
        if let Some(o) = &self.opaque {
            s.push_str(", opaque=");
            push_quoted(&mut s, o);
        }
        if self.stale {
            s.push_str(", stale=true");
        }
        if self.charset_utf8 {
            s.push_str(", charset=UTF-8");
        }
        if self.userhash {
            s.push_str(", userhash=true");
        }
        f.write_str(&s)
    }
}

// ---------------------------------------------------------------------------------------------
// Authorization
// ---------------------------------------------------------------------------------------------

/// Digest credentials: the value of an `Authorization` header (RFC 4976 §7, RFC 7616 §3.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorization {
    /// User name, or `H(username ":" realm)` when [`Authorization::userhash`] is set.
    pub username: String,
    /// Realm from the challenge.
    pub realm: String,
    /// Nonce from the challenge (or a later `nextnonce`).
    pub nonce: String,
    /// The digest-uri: for MSRP the rightmost To-Path URI of the AUTH (RFC 4976 §9.1).
    pub uri: String,
    /// Request digest, lowercase hex.
    pub response: String,
    /// Algorithm used.
    pub algorithm: Algorithm,
    /// Client nonce.
    pub cnonce: String,
    /// Nonce count.
    pub nc: u32,
    /// The qop applied; always `auth` once parsed.
    pub qop: String,
    /// Opaque value echoed from the challenge.
    pub opaque: Option<String>,
    /// `userhash=true`.
    pub userhash: bool,
}

impl Authorization {
    /// Parses an `Authorization` header value. Requires username, realm, nonce, uri, response,
    /// qop, cnonce and nc (RFC 4976 §9.1: clients MUST send qop, cnonce and nc).
    pub fn parse(value: &str) -> Result<Authorization, DigestError> {
        let v = Self::parse_fields(value)?;
        fits_header(&v)?;
        Ok(v)
    }

    fn parse_fields(value: &str) -> Result<Authorization, DigestError> {
        let params = parse_digest_value(value)?;
        let mut username = None;
        let mut realm = None;
        let mut nonce = None;
        let mut uri = None;
        let mut response = None;
        let mut algorithm = Algorithm::Md5;
        let mut cnonce = None;
        let mut nc = None;
        let mut qop = None;
        let mut opaque = None;
        let mut userhash = false;
        for p in params {
            match p.name.as_str() {
                "username" => username = Some(p.value),
                "username*" => {
                    // RFC 7616 §3.4: the extended notation is not used by MSRP clients; we
                    // refuse it rather than mis-authenticate.
                    return Err(DigestError::BadValue {
                        name: "username*",
                        why: "extended username notation is not supported",
                    });
                }
                "realm" => realm = Some(p.value),
                "nonce" => nonce = Some(p.value),
                "uri" => uri = Some(p.value),
                "response" => response = Some(p.value),
                "algorithm" => {
                    algorithm = Algorithm::parse(&p.value)
                        .ok_or(DigestError::UnsupportedAlgorithm(p.value))?
                }
                "cnonce" => cnonce = Some(p.value),
                "nc" => nc = Some(parse_nc(&p.value)?),
                "qop" => qop = Some(p.value.to_ascii_lowercase()),
                "opaque" => opaque = Some(p.value),
                "userhash" => userhash = is_true(&p.value),
                _ => {}
            }
        }
        let response = response.ok_or(DigestError::MissingParam("response"))?;
        let response = parse_hex_digest("response", &response, algorithm.hex_len())?;
        let qop = qop.ok_or(DigestError::MissingParam("qop"))?;
        if qop != "auth" {
            return Err(DigestError::NoAuthQop);
        }
        Ok(Authorization {
            username: username.ok_or(DigestError::MissingParam("username"))?,
            realm: realm.ok_or(DigestError::MissingParam("realm"))?,
            nonce: nonce.ok_or(DigestError::MissingParam("nonce"))?,
            uri: uri.ok_or(DigestError::MissingParam("uri"))?,
            response,
            algorithm,
            cnonce: cnonce.ok_or(DigestError::MissingParam("cnonce"))?,
            nc: nc.ok_or(DigestError::MissingParam("nc"))?,
            qop,
            opaque,
            userhash,
        })
    }
}

impl FromStr for Authorization {
    type Err = DigestError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Authorization::parse(s)
    }
}

impl fmt::Display for Authorization {
    /// RFC 7616 §3.4: username, realm, nonce, uri, response, cnonce and opaque quoted;
    /// algorithm, qop and nc not. RFC 4976 §9.1: the uri is in quotes.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = String::from("Digest username=");
        push_quoted(&mut s, &self.username);
        s.push_str(", realm=");
        push_quoted(&mut s, &self.realm);
        s.push_str(", nonce=");
        push_quoted(&mut s, &self.nonce);
        s.push_str(", uri=");
        push_quoted(&mut s, &self.uri);
        s.push_str(", response=");
        push_quoted(&mut s, &self.response);
        s.push_str(", algorithm=");
        s.push_str(self.algorithm.as_str());
        s.push_str(", cnonce=");
        push_quoted(&mut s, &self.cnonce);
        if let Some(o) = &self.opaque {
            s.push_str(", opaque=");
            push_quoted(&mut s, o);
        }
        s.push_str(", qop=");
        s.push_str(&self.qop);
        s.push_str(", nc=");
        s.push_str(&format_nc(self.nc));
        if self.userhash {
            s.push_str(", userhash=true");
        }
        f.write_str(&s)
    }
}

// ---------------------------------------------------------------------------------------------
// Authentication-Info
// ---------------------------------------------------------------------------------------------

/// The value of an `Authentication-Info` header (RFC 4976 §7, RFC 7616 §3.5). It has no
/// scheme name: `nextnonce="..", rspauth="..", cnonce="..", nc=00000001, qop=auth`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AuthenticationInfo {
    /// Nonce to use for the next AUTH.
    pub nextnonce: Option<String>,
    /// qop applied.
    pub qop: Option<String>,
    /// Response digest proving the server knows the credentials.
    pub rspauth: Option<String>,
    /// cnonce of the request this answers.
    pub cnonce: Option<String>,
    /// nc of the request this answers.
    pub nc: Option<u32>,
}

impl AuthenticationInfo {
    /// Parses an `Authentication-Info` value; unknown parameters are ignored.
    pub fn parse(value: &str) -> Result<AuthenticationInfo, DigestError> {
        let v = Self::parse_fields(value)?;
        fits_header(&v)?;
        Ok(v)
    }

    fn parse_fields(value: &str) -> Result<AuthenticationInfo, DigestError> {
        check_value(value)?;
        let mut info = AuthenticationInfo::default();
        for p in parse_params(value, 0)? {
            match p.name.as_str() {
                "nextnonce" => info.nextnonce = Some(p.value),
                "qop" => {
                    // A single token (RFC 7616 §3.5: never quoted when sent).
                    if p.value.is_empty() || !p.value.bytes().all(is_token_char) {
                        return Err(DigestError::BadValue {
                            name: "qop",
                            why: "must be a token",
                        });
                    }
                    info.qop = Some(p.value.to_ascii_lowercase())
                }
                "rspauth" => {
                    if !p.value.bytes().all(|c| c.is_ascii_hexdigit()) {
                        return Err(DigestError::BadValue {
                            name: "rspauth",
                            why: "not hex",
                        });
                    }
                    info.rspauth = Some(p.value.to_ascii_lowercase())
                }
                "cnonce" => info.cnonce = Some(p.value),
                "nc" => info.nc = Some(parse_nc(&p.value)?),
                _ => {}
            }
        }
        Ok(info)
    }
}

impl FromStr for AuthenticationInfo {
    type Err = DigestError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        AuthenticationInfo::parse(s)
    }
}

impl fmt::Display for AuthenticationInfo {
    /// RFC 7616 §3.5: nextnonce, rspauth and cnonce quoted; qop and nc not; comma separated
    /// (RFC 4976 §9.1).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts: Vec<String> = Vec::new();
        let quoted = |name: &str, v: &str| {
            let mut s = format!("{name}=");
            push_quoted(&mut s, v);
            s
        };
        if let Some(v) = &self.nextnonce {
            parts.push(quoted("nextnonce", v));
        }
        if let Some(v) = &self.rspauth {
            parts.push(quoted("rspauth", v));
        }
        if let Some(v) = &self.cnonce {
            parts.push(quoted("cnonce", v));
        }
        if let Some(v) = self.nc {
            parts.push(format!("nc={}", format_nc(v)));
        }
        if let Some(v) = &self.qop {
            parts.push(format!("qop={v}"));
        }
        f.write_str(&parts.join(", "))
    }
}

// ---------------------------------------------------------------------------------------------
// Client
// ---------------------------------------------------------------------------------------------

/// A username and password for one relay. `Debug` never shows the password.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    username: String,
    password: String,
}

impl Credentials {
    /// Checks that neither contains control characters and both fit [`MAX_FIELD_LEN`].
    pub fn new(
        username: impl Into<String>,
        password: impl Into<String>,
    ) -> Result<Self, DigestError> {
        let username = username.into();
        let password = password.into();
        check_field("username", &username)?;
        if username.is_empty() {
            return Err(DigestError::BadValue {
                name: "username",
                why: "empty",
            });
        }
        if password.len() > MAX_FIELD_LEN {
            return Err(DigestError::BadValue {
                name: "password",
                why: "too long",
            });
        }
        Ok(Credentials { username, password })
    }

    /// The user name.
    pub fn username(&self) -> &str {
        &self.username
    }

    /// HA1 for `realm` with the hash function of `algorithm`.
    pub fn ha1(&self, algorithm: Algorithm, realm: &str) -> String {
        ha1(algorithm, &self.username, realm, &self.password)
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// What a challenge means for the next attempt ([`DigestClient::on_challenge`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// First challenge (or one after a success): answer it.
    Fresh,
    /// `stale=true` after our attempt: same credentials, new nonce (RFC 7616 §3.3).
    Stale,
}

/// The Authorization we sent and await a verdict for.
#[derive(Debug, Clone)]
struct Pending {
    nonce: String,
    cnonce: String,
    nc: u32,
    uri: String,
    algorithm: Algorithm,
    realm: String,
}

/// Client side of Digest for one relay (one protection space).
///
/// Feed it every 401's [`Challenge`] with [`DigestClient::on_challenge`], build each AUTH's
/// credentials with [`DigestClient::authorize`] (the caller supplies the digest-uri, the
/// rightmost To-Path URI, and a fresh cnonce from its own randomness), and report a 200 with
/// [`DigestClient::on_success`]. Nonce counts increase per nonce and restart at 1 with a new
/// nonce (a new challenge or an `Authentication-Info` `nextnonce`).
#[derive(Debug, Clone)]
pub struct DigestClient {
    credentials: Credentials,
    challenge: Option<Challenge>,
    /// Last nonce count used with the current nonce.
    nc: u32,
    pending: Option<Pending>,
}

impl DigestClient {
    /// A client that has not seen a challenge yet.
    pub fn new(credentials: Credentials) -> Self {
        DigestClient {
            credentials,
            challenge: None,
            nc: 0,
            pending: None,
        }
    }

    /// The credentials in use.
    pub fn credentials(&self) -> &Credentials {
        &self.credentials
    }

    /// The current challenge, if any.
    pub fn challenge(&self) -> Option<&Challenge> {
        self.challenge.as_ref()
    }

    /// Takes the challenge of a 401.
    ///
    /// If our last AUTH carried credentials and this challenge is not `stale=true`, the relay
    /// refused them: [`DigestError::CredentialsRejected`] (retrying would only repeat the same
    /// wrong answer; RFC 7616 §3.3 says new values MUST be obtained). Otherwise the challenge
    /// replaces the previous one and the nonce count restarts.
    pub fn on_challenge(&mut self, challenge: Challenge) -> Result<Retry, DigestError> {
        let retry = match (&self.pending, challenge.stale) {
            (Some(p), false) => {
                let realm = p.realm.clone();
                self.pending = None;
                return Err(DigestError::CredentialsRejected { realm });
            }
            (Some(_), true) => Retry::Stale,
            (None, _) => Retry::Fresh,
        };
        self.pending = None;
        self.challenge = Some(challenge);
        self.nc = 0;
        Ok(retry)
    }

    /// Builds the `Authorization` for the next AUTH, with method `AUTH`.
    ///
    /// `uri` is the digest-uri: the rightmost To-Path URI of that AUTH (RFC 4976 §9.1).
    /// `cnonce` comes from the caller's randomness (see [`cnonce_from_random`]).
    pub fn authorize(&mut self, uri: &str, cnonce: &str) -> Result<Authorization, DigestError> {
        self.authorize_method("AUTH", uri, cnonce)
    }

    /// [`DigestClient::authorize`] with another method (for HTTP test vectors).
    pub fn authorize_method(
        &mut self,
        method: &str,
        uri: &str,
        cnonce: &str,
    ) -> Result<Authorization, DigestError> {
        let ch = self.challenge.as_ref().ok_or(DigestError::NoChallenge)?;
        check_field("uri", uri)?;
        check_field("cnonce", cnonce)?;
        if cnonce.is_empty() || !cnonce.bytes().all(|c| c.is_ascii_graphic()) {
            return Err(DigestError::BadValue {
                name: "cnonce",
                why: "must be non-empty printable ASCII",
            });
        }
        let nc = self
            .nc
            .checked_add(1)
            .ok_or(DigestError::NonceCountExhausted)?;
        let ha1 = self.credentials.ha1(ch.algorithm, &ch.realm);
        let response = request_digest(
            ch.algorithm,
            &ha1,
            &ch.nonce,
            nc,
            cnonce,
            "auth",
            method,
            uri,
        );
        // RFC 7616 §3.4.4: the username is hashed after every other computation.
        let username = if ch.userhash {
            ch.algorithm
                .hash(&[self.credentials.username.as_bytes(), ch.realm.as_bytes()])
        } else {
            self.credentials.username.clone()
        };
        self.nc = nc;
        self.pending = Some(Pending {
            nonce: ch.nonce.clone(),
            cnonce: cnonce.to_string(),
            nc,
            uri: uri.to_string(),
            algorithm: ch.algorithm,
            realm: ch.realm.clone(),
        });
        Ok(Authorization {
            username,
            realm: ch.realm.clone(),
            nonce: ch.nonce.clone(),
            uri: uri.to_string(),
            response,
            algorithm: ch.algorithm,
            cnonce: cnonce.to_string(),
            nc,
            qop: "auth".to_string(),
            opaque: ch.opaque.clone(),
            userhash: ch.userhash,
        })
    }

    /// Takes the 200 to our last authorized AUTH and its `Authentication-Info`, if any.
    ///
    /// When present, `rspauth` must prove the relay knows our credentials and `cnonce`/`nc`
    /// must be ours (RFC 7616 §3.5); a `nextnonce` becomes the nonce of the next AUTH with the
    /// count restarting at 1. A missing header is accepted: RFC 4976 §9.1 requires relays to
    /// send it, but deployed relays (Kamailio 5.6) do not, and TLS already authenticated the
    /// relay.
    pub fn on_success(&mut self, info: Option<&AuthenticationInfo>) -> Result<(), DigestError> {
        let pending = self.pending.take();
        let Some(info) = info else {
            return Ok(());
        };
        if let Some(p) = &pending {
            if let Some(rspauth) = &info.rspauth {
                let ha1 = self.credentials.ha1(p.algorithm, &p.realm);
                let qop = info.qop.as_deref().unwrap_or("auth");
                let expected = request_digest(
                    p.algorithm,
                    &ha1,
                    &p.nonce,
                    p.nc,
                    &p.cnonce,
                    qop,
                    "",
                    &p.uri,
                );
                if !ct_eq(expected.as_bytes(), rspauth.as_bytes()) {
                    return Err(DigestError::RspauthMismatch);
                }
            }
            if info.cnonce.as_deref().is_some_and(|c| c != p.cnonce)
                || info.nc.is_some_and(|n| n != p.nc)
            {
                return Err(DigestError::InfoMismatch);
            }
        }
        if let (Some(next), Some(ch)) = (&info.nextnonce, self.challenge.as_mut()) {
            if !next.is_empty() {
                ch.nonce = next.clone();
                ch.stale = false;
                self.nc = 0;
            }
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Server
// ---------------------------------------------------------------------------------------------

/// Why a relay refused an `Authorization` ([`DigestServer::verify`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// The realm is not ours.
    #[error("realm {0:?} is not this relay's realm")]
    RealmMismatch(String),
    /// The algorithm is not the one we challenged with.
    #[error("algorithm {0} was not offered")]
    AlgorithmMismatch(Algorithm),
    /// The digest-uri is not the rightmost To-Path URI (RFC 4976 §9.1, RFC 7616 §3.4.6).
    #[error("digest uri {got:?} does not match the request's rightmost To-Path URI {expected:?}")]
    UriMismatch {
        /// The URI the request was addressed to.
        expected: String,
        /// The uri parameter received.
        got: String,
    },
    /// The nonce was not issued by this relay (bad format or integrity tag).
    #[error("nonce was not issued by this relay")]
    ForgedNonce,
    /// No HA1 is stored for this user, realm and algorithm.
    #[error("unknown user {0:?}")]
    UnknownUser(String),
    /// The response digest is wrong: a wrong password.
    #[error("wrong digest response for user {0:?}")]
    WrongResponse(String),
    /// Valid credentials with an expired nonce: challenge again with `stale=true`.
    #[error("stale nonce")]
    Stale,
    /// The nonce count did not increase: a replayed or reordered request (RFC 7616 §3.4).
    #[error("nonce count {0:08x} was already used")]
    Replay(u32),
}

impl Rejection {
    /// True when the new challenge should carry `stale=true` (the credentials were right).
    pub fn is_stale(&self) -> bool {
        matches!(self, Rejection::Stale | Rejection::Replay(_))
    }

    /// The status code for the AUTH response: 400 for a uri mismatch (RFC 7616 §3.4.6), 401
    /// with a new challenge otherwise.
    pub fn status_code(&self) -> u16 {
        match self {
            Rejection::UriMismatch { .. } => 400,
            _ => 401,
        }
    }
}

/// A verified AUTH.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The authenticated user name.
    pub username: String,
    /// The `Authentication-Info` for the 200 (RFC 4976 §9.1: rspauth, cnonce, nc, qop). Set
    /// `nextnonce` on it if you want the client to use a new nonce next time.
    pub authentication_info: AuthenticationInfo,
}

const NONCE_RANDOM_LEN: usize = 16;
const NONCE_TAG_LEN: usize = 16;
const NONCE_BYTES: usize = 8 + NONCE_RANDOM_LEN + NONCE_TAG_LEN;

/// Remembers the highest nonce count seen per nonce, within a fixed capacity.
#[derive(Debug, Clone)]
struct NonceTracker {
    capacity: usize,
    counts: HashMap<[u8; NONCE_TAG_LEN], (u64, u32)>,
    by_age: BTreeSet<(u64, [u8; NONCE_TAG_LEN])>,
    /// Every nonce whose timestamp is at or below this may have been forgotten: if it shows up
    /// untracked, we cannot prove it is not a replay, so it is treated as stale.
    forgotten_upto: Option<u64>,
}

impl NonceTracker {
    fn new(capacity: usize) -> Self {
        NonceTracker {
            capacity: capacity.max(1),
            counts: HashMap::new(),
            by_age: BTreeSet::new(),
            forgotten_upto: None,
        }
    }

    fn forget_oldest(&mut self) {
        if let Some((ts, tag)) = self.by_age.pop_first() {
            self.counts.remove(&tag);
            self.forgotten_upto = Some(self.forgotten_upto.map_or(ts, |w| w.max(ts)));
        }
    }

    fn check(
        &mut self,
        tag: [u8; NONCE_TAG_LEN],
        ts: u64,
        nc: u32,
        now: u64,
        lifetime: u64,
    ) -> Result<(), Rejection> {
        // Expired entries are useless; the time check rejects their nonces anyway.
        while let Some(&(old, _)) = self.by_age.first() {
            if old.saturating_add(lifetime) < now {
                self.forget_oldest();
            } else {
                break;
            }
        }
        if let Some(entry) = self.counts.get_mut(&tag) {
            if nc <= entry.1 {
                return Err(Rejection::Replay(nc));
            }
            entry.1 = nc;
            return Ok(());
        }
        if self.forgotten_upto.is_some_and(|w| ts <= w) {
            return Err(Rejection::Stale);
        }
        if nc == 0 {
            return Err(Rejection::Replay(nc));
        }
        while self.counts.len() >= self.capacity {
            self.forget_oldest();
        }
        self.counts.insert(tag, (ts, nc));
        self.by_age.insert((ts, tag));
        Ok(())
    }
}

/// Relay side of Digest for one realm.
///
/// Nonces are stateless: `hex(timestamp(8) ‖ random(16) ‖ tag(16))` where the tag is
/// HMAC-SHA-256 under the server secret over the realm, timestamp and random bytes, truncated
/// to 16 bytes. The caller supplies the random bytes and the time (seconds on any monotonic or
/// wall clock, as long as it is the same clock for issuing and verifying), so a nonce older
/// than the lifetime is recognized as stale and a forged one is refused. Nonce counts are
/// remembered for a bounded number of nonces.
#[derive(Debug, Clone)]
pub struct DigestServer {
    realm: String,
    algorithm: Algorithm,
    secret: [u8; 32],
    nonce_lifetime: u64,
    max_future_drift: u64,
    tracker: NonceTracker,
}

impl DigestServer {
    /// A server for `realm` challenging with `algorithm` (MD5, SHA-256 or SHA-512-256; RFC 4976
    /// §9.1 forbids challenging with a session variant). `secret` should come from a CSPRNG.
    pub fn new(
        realm: impl Into<String>,
        algorithm: Algorithm,
        secret: [u8; 32],
    ) -> Result<Self, DigestError> {
        let realm = realm.into();
        check_field("realm", &realm)?;
        if algorithm.is_session() {
            return Err(DigestError::SessionAlgorithm);
        }
        Ok(DigestServer {
            realm,
            algorithm,
            secret,
            nonce_lifetime: DEFAULT_NONCE_LIFETIME,
            max_future_drift: 3,
            tracker: NonceTracker::new(DEFAULT_TRACKED_NONCES),
        })
    }

    /// Sets how long a nonce stays valid, in seconds.
    pub fn with_nonce_lifetime(mut self, secs: u64) -> Self {
        self.nonce_lifetime = secs;
        self
    }

    /// Sets how many nonces have their counts remembered (memory bound).
    pub fn with_tracked_nonces(mut self, capacity: usize) -> Self {
        self.tracker = NonceTracker::new(capacity);
        self
    }

    /// The realm.
    pub fn realm(&self) -> &str {
        &self.realm
    }

    /// The challenge algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    fn tag(&self, ts: u64, random: &[u8]) -> [u8; NONCE_TAG_LEN] {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.secret)
            .expect("HMAC accepts keys of any length");
        mac.update(b"msrp-digest-nonce\0");
        mac.update(self.realm.as_bytes());
        mac.update(b"\0");
        mac.update(&ts.to_be_bytes());
        mac.update(random);
        let full = mac.finalize().into_bytes();
        let mut tag = [0u8; NONCE_TAG_LEN];
        tag.copy_from_slice(&full[..NONCE_TAG_LEN]);
        tag
    }

    /// A new nonce issued at `now` from 16 caller-supplied random bytes.
    pub fn nonce(&self, now: u64, random: &[u8; NONCE_RANDOM_LEN]) -> String {
        let mut b = Vec::with_capacity(NONCE_BYTES);
        b.extend_from_slice(&now.to_be_bytes());
        b.extend_from_slice(random);
        b.extend_from_slice(&self.tag(now, random));
        to_hex(&b)
    }

    /// The challenge for a 401 (RFC 4976 §5.1): realm, a new nonce, `qop="auth"`, the
    /// algorithm, and `stale=true` when `stale` (after [`Rejection::is_stale`]).
    pub fn challenge(&self, now: u64, random: &[u8; NONCE_RANDOM_LEN], stale: bool) -> Challenge {
        let mut c = Challenge::new(self.realm.clone(), self.nonce(now, random), self.algorithm);
        c.stale = stale;
        c
    }

    /// Decodes one of our nonces: its timestamp and tag, or `None` if we did not issue it.
    fn open_nonce(&self, nonce: &str) -> Option<(u64, [u8; NONCE_TAG_LEN])> {
        if nonce.len() != NONCE_BYTES * 2 {
            return None;
        }
        let b = from_hex(nonce)?;
        let ts = u64::from_be_bytes(b[..8].try_into().ok()?);
        let random = &b[8..8 + NONCE_RANDOM_LEN];
        let tag = self.tag(ts, random);
        ct_eq(&tag, &b[8 + NONCE_RANDOM_LEN..]).then_some((ts, tag))
    }

    /// Verifies an AUTH's credentials.
    ///
    /// - `method`: the request method (`AUTH`).
    /// - `request_uri`: the rightmost To-Path URI of the request (RFC 4976 §9.1); the uri
    ///   parameter must equal it (compared as MSRP URIs, RFC 4975 §6.1, when both parse).
    /// - `now`: the current time in seconds, on the clock used for [`DigestServer::challenge`].
    /// - `lookup`: the stored HA1 (hex) for a username, realm and base algorithm.
    ///
    /// Checks, in order: realm, algorithm, uri, nonce integrity, user, response, nonce age,
    /// nonce count. The response is checked before the age so that `stale` is only reported
    /// for right credentials (RFC 7616 §3.3).
    pub fn verify<F>(
        &mut self,
        auth: &Authorization,
        method: &str,
        request_uri: &str,
        now: u64,
        lookup: F,
    ) -> Result<Verified, Rejection>
    where
        F: FnOnce(&str, &str, Algorithm) -> Option<String>,
    {
        if auth.realm != self.realm {
            return Err(Rejection::RealmMismatch(auth.realm.clone()));
        }
        if auth.algorithm != self.algorithm {
            return Err(Rejection::AlgorithmMismatch(auth.algorithm));
        }
        if !uri_matches(&auth.uri, request_uri) {
            return Err(Rejection::UriMismatch {
                expected: request_uri.to_string(),
                got: auth.uri.clone(),
            });
        }
        let (ts, tag) = self.open_nonce(&auth.nonce).ok_or(Rejection::ForgedNonce)?;
        let ha1 = lookup(&auth.username, &self.realm, self.algorithm.base())
            .ok_or_else(|| Rejection::UnknownUser(auth.username.clone()))?;
        let expected = request_digest(
            auth.algorithm,
            &ha1.to_ascii_lowercase(),
            &auth.nonce,
            auth.nc,
            &auth.cnonce,
            &auth.qop,
            method,
            &auth.uri,
        );
        if !ct_eq(expected.as_bytes(), auth.response.as_bytes()) {
            return Err(Rejection::WrongResponse(auth.username.clone()));
        }
        if ts.saturating_add(self.nonce_lifetime) < now
            || ts > now.saturating_add(self.max_future_drift)
        {
            return Err(Rejection::Stale);
        }
        self.tracker
            .check(tag, ts, auth.nc, now, self.nonce_lifetime)?;
        let rspauth = request_digest(
            auth.algorithm,
            &ha1.to_ascii_lowercase(),
            &auth.nonce,
            auth.nc,
            &auth.cnonce,
            &auth.qop,
            "",
            &auth.uri,
        );
        Ok(Verified {
            username: auth.username.clone(),
            authentication_info: AuthenticationInfo {
                nextnonce: None,
                qop: Some(auth.qop.clone()),
                rspauth: Some(rspauth),
                cnonce: Some(auth.cnonce.clone()),
                nc: Some(auth.nc),
            },
        })
    }
}

fn uri_matches(got: &str, expected: &str) -> bool {
    if got == expected {
        return true;
    }
    match (
        crate::uri::MsrpUri::parse(got),
        crate::uri::MsrpUri::parse(expected),
    ) {
        (Ok(a), Ok(b)) => a.equivalent(&b),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 2617 §3.5.
    const RFC2617_CHALLENGE: &str = "Digest\n realm=\"testrealm@host.com\", qop=\"auth,auth-int\", nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\", opaque=\"5ccc069c403ebaf9f0171e9517f40e41\"";

    #[test]
    fn rfc2617_3_5_worked_example() {
        // The example's line break is a header fold; MSRP has none, so unfold first.
        let ch = Challenge::parse(&RFC2617_CHALLENGE.replace("\n ", " ")).unwrap();
        assert_eq!(ch.realm, "testrealm@host.com");
        assert_eq!(ch.qop, vec!["auth", "auth-int"]);
        assert_eq!(ch.algorithm, Algorithm::Md5);
        let mut c = DigestClient::new(Credentials::new("Mufasa", "Circle Of Life").unwrap());
        assert_eq!(c.on_challenge(ch).unwrap(), Retry::Fresh);
        let a = c
            .authorize_method("GET", "/dir/index.html", "0a4f113b")
            .unwrap();
        assert_eq!(a.response, "6629fae49393a05397450978507c4ef1");
        assert_eq!(a.nc, 1);
        assert_eq!(
            a.opaque.as_deref(),
            Some("5ccc069c403ebaf9f0171e9517f40e41")
        );
        // And it survives printing and parsing.
        let printed = a.to_string();
        assert!(printed.contains("nc=00000001"), "{printed}");
        assert!(printed.contains("qop=auth, nc=00000001"), "{printed}");
        assert_eq!(Authorization::parse(&printed).unwrap(), a);
    }

    #[test]
    fn rfc7616_3_9_1_md5_and_sha256() {
        let base = "Digest realm=\"http-auth@example.org\", qop=\"auth, auth-int\", \
                    algorithm=ALG, nonce=\"7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v\", \
                    opaque=\"FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS\"";
        for (alg, expected) in [
            ("MD5", "8ca523f5e9506fed4657c9700eebdbec"),
            (
                "SHA-256",
                "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1",
            ),
        ] {
            let ch = Challenge::parse(&base.replace("ALG", alg)).unwrap();
            let mut c = DigestClient::new(Credentials::new("Mufasa", "Circle of Life").unwrap());
            c.on_challenge(ch).unwrap();
            let a = c
                .authorize_method(
                    "GET",
                    "/dir/index.html",
                    "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
                )
                .unwrap();
            assert_eq!(a.response, expected, "{alg}");
            assert_eq!(a.algorithm.as_str(), alg);
        }
    }

    #[test]
    fn rfc7616_3_9_2_userhash_hashes_username_with_realm() {
        // RFC 7616 §3.4.4: username = H(unq(username) ":" unq(realm)). We check the rule with
        // SHA-512-256 against an independent computation rather than the printed example
        // values: the published §3.9.2 userhash (488869...) and response (ae66e6...) do not
        // match a direct computation of the formulas (also checked with Python's hashlib).
        let ch = Challenge::parse(
            "Digest realm=\"api@example.org\", qop=\"auth\", algorithm=SHA-512-256, \
             nonce=\"5TsQWLVdgBdmrQ0XsxbDODV+57QdFR34I9HAbC/RVvkK\", charset=UTF-8, userhash=true",
        )
        .unwrap();
        assert!(ch.userhash && ch.charset_utf8);
        let mut c =
            DigestClient::new(Credentials::new("J\u{e4}s\u{f8}n Doe", "Secret, or not?").unwrap());
        c.on_challenge(ch).unwrap();
        let a = c
            .authorize_method(
                "GET",
                "/doe.json",
                "NTg6RKcb9boFIAS3KrFK9BGeh+iDa/sm6jUMp2wds69v",
            )
            .unwrap();
        let mut d = Sha512_256::new();
        d.update("J\u{e4}s\u{f8}n Doe:api@example.org".as_bytes());
        assert_eq!(a.username, to_hex(&d.finalize()));
        assert!(a.userhash);
        assert_eq!(a.response.len(), 64);
        assert!(a.to_string().contains("userhash=true"));
    }

    #[test]
    fn session_algorithms_derive_the_session_key() {
        // RFC 7616 §3.4.2: A1 = H(user:realm:pass) ":" nonce ":" cnonce.
        let ha1 = ha1(
            Algorithm::Md5,
            "Mufasa",
            "testrealm@host.com",
            "Circle Of Life",
        );
        assert_eq!(ha1, "939e7578ed9e3c518a452acee763bce9"); // RFC 2617 §3.5 H(A1)
        let sess = Algorithm::Md5.hash(&[ha1.as_bytes(), b"n", b"c"]);
        let ha2 = Algorithm::Md5.hash(&[b"AUTH", b"msrps://r.example:1/x;tcp"]);
        let want = Algorithm::Md5.hash(&[
            sess.as_bytes(),
            b"n",
            b"00000001",
            b"c",
            b"auth",
            ha2.as_bytes(),
        ]);
        assert_eq!(
            request_digest(
                Algorithm::Md5Sess,
                &ha1,
                "n",
                1,
                "c",
                "auth",
                "AUTH",
                "msrps://r.example:1/x;tcp"
            ),
            want
        );
        assert_ne!(
            request_digest(
                Algorithm::Md5,
                &ha1,
                "n",
                1,
                "c",
                "auth",
                "AUTH",
                "msrps://r.example:1/x;tcp"
            ),
            want
        );
    }

    #[test]
    fn challenge_parsing_rules() {
        // Case-insensitive names and algorithm, quoted-pairs, empty list elements, OWS.
        let ch = Challenge::parse(
            "digest REALM = \"a \\\"q\\\" \\\\ b\" ,, Nonce=abc/def=, QOP=\"Auth-Int ,AUTH\", \
             ALGORITHM=sha-256, stale=TRUE, domain=\"msrp://ignored\", foo=bar",
        )
        .unwrap();
        assert_eq!(ch.realm, "a \"q\" \\ b");
        assert_eq!(ch.nonce, "abc/def=");
        assert_eq!(ch.qop, vec!["auth-int", "auth"]);
        assert_eq!(ch.algorithm, Algorithm::Sha256);
        assert!(ch.stale);
        // Printing then parsing gives the same challenge.
        assert_eq!(Challenge::parse(&ch.to_string()).unwrap(), ch);
        // stale is only true for "true".
        let ch =
            Challenge::parse("Digest realm=\"r\", nonce=\"n\", qop=\"auth\", stale=yes").unwrap();
        assert!(!ch.stale);
        // RFC 4976 §5.1 example.
        let ch = Challenge::parse(
            "Digest realm=\"intra.example.com\", qop=\"auth\", nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\"",
        )
        .unwrap();
        assert_eq!(ch.realm, "intra.example.com");
        assert_eq!(ch.algorithm, Algorithm::Md5);
    }

    #[test]
    fn challenge_errors_are_specific() {
        use DigestError::*;
        let cases: &[(&str, DigestError)] = &[
            ("Basic realm=\"r\"", Basic),
            ("Bearer x=y", NotDigest("Bearer".into())),
            (
                "",
                Syntax {
                    offset: 0,
                    what: "expected an authentication scheme",
                },
            ),
            ("Digest realm=\"r\", qop=\"auth\"", MissingParam("nonce")),
            ("Digest nonce=\"n\", qop=\"auth\"", MissingParam("realm")),
            ("Digest realm=\"r\", nonce=\"n\"", MissingParam("qop")),
            (
                "Digest realm=\"r\", nonce=\"n\", qop=\"auth-int\"",
                NoAuthQop,
            ),
            (
                "Digest realm=\"r\", nonce=\"\", qop=\"auth\"",
                BadValue {
                    name: "nonce",
                    why: "empty",
                },
            ),
            (
                "Digest realm=\"r\", realm=\"s\", nonce=\"n\", qop=\"auth\"",
                DuplicateParam("realm".into()),
            ),
            (
                "Digest realm=\"r\", nonce=\"n\", qop=\"auth\", algorithm=SHA-1",
                UnsupportedAlgorithm("SHA-1".into()),
            ),
            (
                "Digest realm=\"r",
                Syntax {
                    offset: 15,
                    what: "unterminated quoted-string",
                },
            ),
            (
                "Digest realm",
                Syntax {
                    offset: 12,
                    what: "expected '=' after the parameter name",
                },
            ),
            (
                "Digest realm=",
                Syntax {
                    offset: 13,
                    what: "expected a token or quoted-string value",
                },
            ),
            (
                "Digest realm=\"r\" nonce=\"n\"",
                Syntax {
                    offset: 17,
                    what: "expected ',' between parameters",
                },
            ),
            (
                "Digest realm=\"r\r\n\"",
                Syntax {
                    offset: 15,
                    what: "control character",
                },
            ),
            ("Digestrealm=\"r\"", NotDigest("Digestrealm".into())),
        ];
        for (input, want) in cases {
            assert_eq!(
                &Challenge::parse(input).unwrap_err(),
                want,
                "input {input:?}"
            );
        }
        let long = format!("Digest realm=\"{}\"", "x".repeat(MAX_HEADER_LEN));
        assert_eq!(Challenge::parse(&long).unwrap_err(), TooLong);
        let many: String = (0..=MAX_PARAMS).map(|i| format!("p{i}=v, ")).collect();
        assert_eq!(
            Challenge::parse(&format!("Digest {many}")).unwrap_err(),
            TooManyParams
        );
    }

    #[test]
    fn parsing_never_panics_on_prefixes_and_bytes() {
        let full =
            "Digest realm=\"r\\\"x\", nonce=\"n\", qop=\"auth\", algorithm=MD5-sess, opaque=\"o\"";
        for i in 0..=full.len() {
            let _ = Challenge::parse(&full[..i]);
            let _ = Authorization::parse(&full[..i]);
            let _ = AuthenticationInfo::parse(&full[..i]);
        }
        for b in 0u8..=255 {
            let s =
                String::from_utf8_lossy(&[b'D', b'i', b'g', b'e', b's', b't', b' ', b, b'=', b])
                    .into_owned();
            let _ = Challenge::parse(&s);
        }
    }

    fn rfc4976_auth() -> &'static str {
        // RFC 4976 §5.1 (with a uri added, which §9.1 requires quoted).
        "Digest username=\"Alice\", realm=\"intra.example.com\", \
         nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\", qop=auth, nc=00000001, \
         cnonce=\"0a4f113b\", uri=\"msrps://alice@intra.example.com;tcp\", \
         response=\"6629fae49393a05397450978507c4ef1\""
    }

    #[test]
    fn authorization_parsing_rules() {
        let a = Authorization::parse(rfc4976_auth()).unwrap();
        assert_eq!(a.username, "Alice");
        assert_eq!(a.nc, 1);
        assert_eq!(a.qop, "auth");
        assert_eq!(a.algorithm, Algorithm::Md5);
        assert_eq!(Authorization::parse(&a.to_string()).unwrap(), a);
        use DigestError::*;
        let without = |p: &str| {
            rfc4976_auth()
                .split(", ")
                .filter(|x| !x.starts_with(p) && !x.starts_with(&format!("Digest {p}")))
                .collect::<Vec<_>>()
                .join(", ")
        };
        // Tolerate a missing "Digest " if the username was the one removed.
        assert_eq!(
            Authorization::parse(&format!("Digest {}", without("username"))).unwrap_err(),
            MissingParam("username")
        );
        for (p, e) in [
            ("qop", MissingParam("qop")),
            ("nc", MissingParam("nc")),
            ("cnonce", MissingParam("cnonce")),
            ("uri", MissingParam("uri")),
            ("response", MissingParam("response")),
            ("nonce", MissingParam("nonce")),
            ("realm", MissingParam("realm")),
        ] {
            assert_eq!(
                Authorization::parse(&without(p)).unwrap_err(),
                e,
                "without {p}"
            );
        }
        let bad_nc = rfc4976_auth().replace("nc=00000001", "nc=1");
        assert!(matches!(
            Authorization::parse(&bad_nc).unwrap_err(),
            BadValue { name: "nc", .. }
        ));
        let bad_resp = rfc4976_auth().replace("6629fae4", "6629fae");
        assert!(matches!(
            Authorization::parse(&bad_resp).unwrap_err(),
            BadValue {
                name: "response",
                ..
            }
        ));
        let int = rfc4976_auth().replace("qop=auth", "qop=auth-int");
        assert_eq!(Authorization::parse(&int).unwrap_err(), NoAuthQop);
        let star = rfc4976_auth().replace("username=\"Alice\"", "username*=UTF-8''Alice");
        assert!(matches!(
            Authorization::parse(&star).unwrap_err(),
            BadValue {
                name: "username*",
                ..
            }
        ));
        assert_eq!(
            Authorization::parse("Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==").unwrap_err(),
            Basic
        );
    }

    #[test]
    fn authentication_info_round_trip_rfc4976_example() {
        let v = "nextnonce=\"40f2e879449675f288476d772627370a\", \
                 rspauth=\"7327570c586207eca2afae94fc20903d\", cnonce=\"0a4f113b\", nc=00000001, qop=auth";
        let i = AuthenticationInfo::parse(v).unwrap();
        assert_eq!(
            i.nextnonce.as_deref(),
            Some("40f2e879449675f288476d772627370a")
        );
        assert_eq!(i.nc, Some(1));
        assert_eq!(i.qop.as_deref(), Some("auth"));
        assert_eq!(i.to_string(), v);
        // Found by fuzzing: a quoted qop that is not a token cannot be printed unquoted.
        assert!(matches!(
            AuthenticationInfo::parse("qop=\"a/600;0A3\"").unwrap_err(),
            DigestError::BadValue { name: "qop", .. }
        ));
    }

    /// Found by fuzzing (`digest_parser`, crash-57f713e7): token values are printed quoted and
    /// parameters separated by `", "`, so a value that fits [`MAX_HEADER_LEN`] as received could
    /// print to one that does not, and the printed form failed to parse. Such a value is now
    /// refused as `TooLong` when parsed, so whatever parses prints to something that parses.
    #[test]
    fn a_value_whose_printed_form_exceeds_the_limit_is_refused() {
        let build = |nonce_len: usize| {
            format!(
                "Digest username=u,realm=r,nonce={},uri=x,response={},cnonce=c,qop=auth,nc=00000001",
                "n".repeat(nonce_len),
                "0".repeat(32)
            )
        };
        let fixed = build(0).len();
        let at_limit = build(MAX_HEADER_LEN - fixed);
        assert_eq!(at_limit.len(), MAX_HEADER_LEN);
        assert_eq!(
            Authorization::parse(&at_limit).unwrap_err(),
            DigestError::TooLong
        );
        // With room for the quotes and separators it parses, and round-trips.
        let printed_extra = 40;
        let fits = build(MAX_HEADER_LEN - fixed - printed_extra);
        let a = Authorization::parse(&fits).unwrap();
        assert!(a.to_string().len() <= MAX_HEADER_LEN);
        assert_eq!(Authorization::parse(&a.to_string()).unwrap(), a);
        // The same for a challenge and for Authentication-Info.
        let ch = format!(
            "Digest realm=r,qop=auth,nonce={}",
            "n".repeat(MAX_HEADER_LEN - 30)
        );
        assert_eq!(ch.len(), MAX_HEADER_LEN);
        assert_eq!(Challenge::parse(&ch).unwrap_err(), DigestError::TooLong);
        let info = format!("nextnonce={}", "n".repeat(MAX_HEADER_LEN - 10));
        assert_eq!(
            AuthenticationInfo::parse(&info).unwrap_err(),
            DigestError::TooLong
        );
    }

    const RELAY: &str = "msrps://relay.example.com:2856;tcp";
    const SECRET: [u8; 32] = [7; 32];

    fn users(user: &str, realm: &str, alg: Algorithm) -> Option<String> {
        (user == "alice" && realm == "relay.example.com")
            .then(|| ha1(alg, "alice", "relay.example.com", "s3cret"))
    }

    #[test]
    fn client_and_server_round_trip_every_algorithm() {
        for alg in [Algorithm::Md5, Algorithm::Sha256, Algorithm::Sha512_256] {
            let mut server = DigestServer::new("relay.example.com", alg, SECRET).unwrap();
            let ch = server.challenge(1000, &[1; 16], false);
            let wire = ch.to_string();
            let mut client = DigestClient::new(Credentials::new("alice", "s3cret").unwrap());
            client
                .on_challenge(Challenge::parse(&wire).unwrap())
                .unwrap();
            let auth = client.authorize(RELAY, "c1").unwrap();
            let parsed = Authorization::parse(&auth.to_string()).unwrap();
            let ok = server.verify(&parsed, "AUTH", RELAY, 1001, users).unwrap();
            assert_eq!(ok.username, "alice");
            // The client verifies the relay's rspauth from the printed header.
            let info = AuthenticationInfo::parse(&ok.authentication_info.to_string()).unwrap();
            assert!(
                info.rspauth.is_some()
                    && info.cnonce.is_some()
                    && info.nc.is_some()
                    && info.qop.is_some()
            );
            client.on_success(Some(&info)).unwrap();
            // A refresh on the same nonce uses nc=2 and is accepted; a replay of nc=1 is not.
            let auth2 = client.authorize(RELAY, "c2").unwrap();
            assert_eq!(auth2.nc, 2);
            server.verify(&auth2, "AUTH", RELAY, 1002, users).unwrap();
            assert_eq!(
                server
                    .verify(&parsed, "AUTH", RELAY, 1003, users)
                    .unwrap_err(),
                Rejection::Replay(1)
            );
        }
    }

    #[test]
    fn server_refuses_session_algorithms() {
        assert_eq!(
            DigestServer::new("r", Algorithm::Md5Sess, SECRET).unwrap_err(),
            DigestError::SessionAlgorithm
        );
    }

    #[test]
    fn server_rejections() {
        let mut server = DigestServer::new("relay.example.com", Algorithm::Md5, SECRET)
            .unwrap()
            .with_nonce_lifetime(60);
        let ch = server.challenge(1000, &[2; 16], false);
        let answer = |user: &str, pass: &str, uri: &str| {
            let mut c = DigestClient::new(Credentials::new(user, pass).unwrap());
            c.on_challenge(ch.clone()).unwrap();
            c.authorize(uri, "cn").unwrap()
        };
        let good = answer("alice", "s3cret", RELAY);
        // Wrong password, unknown user.
        assert_eq!(
            server
                .verify(&answer("alice", "nope", RELAY), "AUTH", RELAY, 1000, users)
                .unwrap_err(),
            Rejection::WrongResponse("alice".into())
        );
        assert_eq!(
            server
                .verify(&answer("bob", "s3cret", RELAY), "AUTH", RELAY, 1000, users)
                .unwrap_err(),
            Rejection::UnknownUser("bob".into())
        );
        // Digest computed over another uri (RFC 4976 §9.1: rightmost To-Path URI).
        let other = answer("alice", "s3cret", "msrps://other.example.com:2856;tcp");
        let e = server
            .verify(&other, "AUTH", RELAY, 1000, users)
            .unwrap_err();
        assert!(matches!(e, Rejection::UriMismatch { .. }));
        assert_eq!(e.status_code(), 400);
        // Equivalent URI spelling (RFC 4975 §6.1: scheme and host case-insensitive) is fine.
        let upper = answer("alice", "s3cret", "MSRPS://RELAY.example.com:2856;TCP");
        server.verify(&upper, "AUTH", RELAY, 1000, users).unwrap();
        // Method is part of A2.
        assert_eq!(
            server
                .verify(&good, "SEND", RELAY, 1000, users)
                .unwrap_err(),
            Rejection::WrongResponse("alice".into())
        );
        // Forged nonce: same length, flipped tag.
        let mut forged = good.clone();
        let last = if forged.nonce.ends_with('0') {
            "1"
        } else {
            "0"
        };
        forged.nonce.replace_range(forged.nonce.len() - 1.., last);
        assert_eq!(
            server
                .verify(&forged, "AUTH", RELAY, 1000, users)
                .unwrap_err(),
            Rejection::ForgedNonce
        );
        // Nonce from another server secret.
        let other_server = DigestServer::new("relay.example.com", Algorithm::Md5, [9; 32]).unwrap();
        let mut c = DigestClient::new(Credentials::new("alice", "s3cret").unwrap());
        c.on_challenge(other_server.challenge(1000, &[2; 16], false))
            .unwrap();
        assert_eq!(
            server
                .verify(
                    &c.authorize(RELAY, "x").unwrap(),
                    "AUTH",
                    RELAY,
                    1000,
                    users
                )
                .unwrap_err(),
            Rejection::ForgedNonce
        );
        // Realm and algorithm.
        let mut r = good.clone();
        r.realm = "evil".into();
        assert_eq!(
            server.verify(&r, "AUTH", RELAY, 1000, users).unwrap_err(),
            Rejection::RealmMismatch("evil".into())
        );
        let mut a = good.clone();
        a.algorithm = Algorithm::Md5Sess;
        assert_eq!(
            server.verify(&a, "AUTH", RELAY, 1000, users).unwrap_err(),
            Rejection::AlgorithmMismatch(Algorithm::Md5Sess)
        );
        // Stale: right credentials, nonce older than the lifetime, or from the future.
        let e = server
            .verify(&good, "AUTH", RELAY, 1061, users)
            .unwrap_err();
        assert_eq!(e, Rejection::Stale);
        assert!(e.is_stale());
        assert_eq!(
            server.verify(&good, "AUTH", RELAY, 990, users).unwrap_err(),
            Rejection::Stale
        );
        // A wrong password on an old nonce is a wrong password, not stale.
        assert_eq!(
            server
                .verify(&answer("alice", "nope", RELAY), "AUTH", RELAY, 5000, users)
                .unwrap_err(),
            Rejection::WrongResponse("alice".into())
        );
        // Still valid at the edge of the lifetime.
        let mut c = DigestClient::new(Credentials::new("alice", "s3cret").unwrap());
        c.on_challenge(server.challenge(1000, &[3; 16], false))
            .unwrap();
        let edge = c.authorize(RELAY, "e").unwrap();
        server.verify(&edge, "AUTH", RELAY, 1060, users).unwrap();
    }

    #[test]
    fn stale_nonce_leads_to_a_new_attempt_and_success() {
        let mut server = DigestServer::new("relay.example.com", Algorithm::Sha256, SECRET)
            .unwrap()
            .with_nonce_lifetime(30);
        let mut client = DigestClient::new(Credentials::new("alice", "s3cret").unwrap());
        assert_eq!(
            client
                .on_challenge(server.challenge(0, &[3; 16], false))
                .unwrap(),
            Retry::Fresh
        );
        let first = client.authorize(RELAY, "a").unwrap();
        let rej = server
            .verify(&first, "AUTH", RELAY, 100, users)
            .unwrap_err();
        assert!(rej.is_stale());
        let again = server.challenge(100, &[4; 16], rej.is_stale());
        assert!(again.to_string().contains("stale=true"));
        assert_eq!(
            client
                .on_challenge(Challenge::parse(&again.to_string()).unwrap())
                .unwrap(),
            Retry::Stale
        );
        let second = client.authorize(RELAY, "b").unwrap();
        assert_eq!(second.nc, 1, "new nonce restarts the count");
        server.verify(&second, "AUTH", RELAY, 101, users).unwrap();
    }

    #[test]
    fn client_gives_up_when_credentials_are_refused() {
        let server = DigestServer::new("relay.example.com", Algorithm::Md5, SECRET).unwrap();
        let mut client = DigestClient::new(Credentials::new("alice", "wrong").unwrap());
        assert_eq!(
            client.authorize(RELAY, "a").unwrap_err(),
            DigestError::NoChallenge
        );
        client
            .on_challenge(server.challenge(0, &[5; 16], false))
            .unwrap();
        client.authorize(RELAY, "a").unwrap();
        assert_eq!(
            client
                .on_challenge(server.challenge(1, &[6; 16], false))
                .unwrap_err(),
            DigestError::CredentialsRejected {
                realm: "relay.example.com".into()
            }
        );
    }

    #[test]
    fn client_checks_rspauth_and_follows_nextnonce() {
        let mut server = DigestServer::new("relay.example.com", Algorithm::Md5, SECRET).unwrap();
        let mut client = DigestClient::new(Credentials::new("alice", "s3cret").unwrap());
        client
            .on_challenge(server.challenge(0, &[5; 16], false))
            .unwrap();
        let a = client.authorize(RELAY, "a").unwrap();
        let mut ok = server.verify(&a, "AUTH", RELAY, 1, users).unwrap();
        // A relay that does not know the password cannot produce rspauth.
        let mut fake = ok.authentication_info.clone();
        fake.rspauth = Some("0".repeat(32));
        let mut c2 = client.clone();
        assert_eq!(
            c2.on_success(Some(&fake)).unwrap_err(),
            DigestError::RspauthMismatch
        );
        let mut wrong_nc = ok.authentication_info.clone();
        wrong_nc.nc = Some(9);
        let mut c3 = client.clone();
        assert_eq!(
            c3.on_success(Some(&wrong_nc)).unwrap_err(),
            DigestError::InfoMismatch
        );
        // nextnonce: the next AUTH uses it with nc=1.
        let next = server.nonce(2, &[8; 16]);
        ok.authentication_info.nextnonce = Some(next.clone());
        client.on_success(Some(&ok.authentication_info)).unwrap();
        let b = client.authorize(RELAY, "b").unwrap();
        assert_eq!((b.nonce.as_str(), b.nc), (next.as_str(), 1));
        server.verify(&b, "AUTH", RELAY, 3, users).unwrap();
    }

    #[test]
    fn tracker_is_bounded_and_never_accepts_a_forgotten_nonce() {
        let mut server = DigestServer::new("relay.example.com", Algorithm::Md5, SECRET)
            .unwrap()
            .with_tracked_nonces(2);
        let mut auths = Vec::new();
        for i in 0..3u8 {
            let mut c = DigestClient::new(Credentials::new("alice", "s3cret").unwrap());
            c.on_challenge(server.challenge(10 + u64::from(i), &[i; 16], false))
                .unwrap();
            let a = c.authorize(RELAY, "x").unwrap();
            server.verify(&a, "AUTH", RELAY, 20, users).unwrap();
            auths.push(a);
        }
        assert!(server.tracker.counts.len() <= 2);
        // The first nonce was forgotten: its replay is refused (as stale), not accepted.
        assert_eq!(
            server
                .verify(&auths[0], "AUTH", RELAY, 21, users)
                .unwrap_err(),
            Rejection::Stale
        );
        // The tracked ones are replay-checked.
        assert_eq!(
            server
                .verify(&auths[2], "AUTH", RELAY, 21, users)
                .unwrap_err(),
            Rejection::Replay(1)
        );
    }

    #[test]
    fn credentials_debug_hides_password_and_fields_are_checked() {
        let c = Credentials::new("alice", "hunter2").unwrap();
        assert!(!format!("{c:?}").contains("hunter2"));
        assert!(Credentials::new("al\r\nice", "x").is_err());
        assert!(Credentials::new("", "x").is_err());
        let mut client = DigestClient::new(c);
        client
            .on_challenge(Challenge::new("r", "n", Algorithm::Md5))
            .unwrap();
        assert!(client.authorize(RELAY, "").is_err());
        assert!(client.authorize(RELAY, "a\"b c").is_err());
        assert!(client.authorize("msrp://x\r\n", "c").is_err());
        // Quoting escapes quotes and backslashes so printed values parse back.
        let ch = Challenge::new("we\"ird\\realm", "n", Algorithm::Md5);
        assert_eq!(
            Challenge::parse(&ch.to_string()).unwrap().realm,
            "we\"ird\\realm"
        );
    }

    #[test]
    fn cnonce_from_random_is_hex() {
        assert_eq!(cnonce_from_random(&[0xde, 0xad, 0x01]), "dead01");
    }
}

#[cfg(test)]
mod props {
    use super::*;
    use proptest::prelude::*;

    /// Text a quoted-string can carry: anything but control characters (quotes and
    /// backslashes included, they get escaped), non-ASCII included.
    fn quotable() -> impl Strategy<Value = String> {
        "[^\\p{Cc}]{0,40}"
    }

    fn algorithm() -> impl Strategy<Value = Algorithm> {
        prop::sample::select(Algorithm::ALL.to_vec())
    }

    proptest! {
        #[test]
        fn challenge_print_parse_round_trip(
            realm in quotable(),
            nonce in "[^\\p{Cc}]{1,40}",
            opaque in proptest::option::of(quotable()),
            stale: bool,
            userhash: bool,
            alg in algorithm(),
        ) {
            let mut c = Challenge::new(realm, nonce, alg);
            c.opaque = opaque;
            c.stale = stale;
            c.userhash = userhash;
            prop_assert_eq!(Challenge::parse(&c.to_string()).unwrap(), c);
        }

        #[test]
        fn authorization_print_parse_round_trip(
            username in quotable(),
            realm in quotable(),
            nonce in quotable(),
            uri in quotable(),
            cnonce in quotable(),
            nc: u32,
            opaque in proptest::option::of(quotable()),
            alg in algorithm(),
            digest in prop::collection::vec(any::<u8>(), 32),
        ) {
            let response = to_hex(&digest)[..alg.hex_len()].to_string();
            let a = Authorization {
                username, realm, nonce, uri, response, algorithm: alg, cnonce, nc,
                qop: "auth".into(), opaque, userhash: false,
            };
            prop_assert_eq!(Authorization::parse(&a.to_string()).unwrap(), a);
        }

        #[test]
        fn parsers_never_panic(s in "\\PC{0,200}", raw in prop::collection::vec(any::<u8>(), 0..200)) {
            let _ = Challenge::parse(&s);
            let _ = Authorization::parse(&s);
            let _ = AuthenticationInfo::parse(&s);
            let lossy = String::from_utf8_lossy(&raw);
            let _ = Challenge::parse(&format!("Digest {lossy}"));
            let _ = Authorization::parse(&format!("Digest {lossy}"));
            let _ = AuthenticationInfo::parse(&lossy);
        }

        #[test]
        fn client_and_server_agree_for_any_credentials(
            username in "[^\\p{Cc}]{1,30}",
            password in "[^\\p{Cc}]{0,30}",
            alg in prop::sample::select(vec![Algorithm::Md5, Algorithm::Sha256, Algorithm::Sha512_256]),
            random: [u8; 16],
            now in 0u64..1_000_000,
        ) {
            let realm = "relay.example.com";
            let uri = "msrps://relay.example.com:2856;tcp";
            let mut server = DigestServer::new(realm, alg, [5; 32]).unwrap();
            let mut client = DigestClient::new(Credentials::new(username.clone(), password.clone()).unwrap());
            client.on_challenge(Challenge::parse(&server.challenge(now, &random, false).to_string()).unwrap()).unwrap();
            let auth = Authorization::parse(&client.authorize(uri, "c0ffee").unwrap().to_string()).unwrap();
            let ha1_stored = ha1(alg, &username, realm, &password);
            let ok = server.verify(&auth, "AUTH", uri, now, |u, r, a| {
                (u == username && r == realm && a == alg).then(|| ha1_stored.clone())
            });
            prop_assert!(ok.is_ok(), "{:?}", ok);
            // And a different password never verifies.
            let mut wrong = DigestClient::new(Credentials::new(username.clone(), format!("{password}x")).unwrap());
            wrong.on_challenge(server.challenge(now, &random, false)).unwrap();
            let bad = wrong.authorize(uri, "c0ffee").unwrap();
            prop_assert!(server.verify(&bad, "AUTH", uri, now, |_, _, _| Some(ha1_stored.clone())).is_err());
        }
    }
}
