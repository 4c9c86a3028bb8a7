//! STUN message codec (RFC 8489 §5, §14; RFC 5780 §7; RFC 3489 §11.2 fallbacks).
//!
//! [`Message::decode`] validates a complete message and returns every error as a
//! [`DecodeError`] value; [`Message::encode`] writes one, optionally with FINGERPRINT.
//! Unknown attributes are kept as [`Attribute::Unknown`] (their padding skipped) so the client
//! can apply RFC 8489 §7.3 (unknown comprehension-required attributes).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use super::crc32::crc32;

/// The magic cookie, RFC 8489 §5: "MUST contain the fixed value 0x2112A442".
pub const MAGIC_COOKIE: u32 = 0x2112_A442;
/// STUN header length in bytes (RFC 8489 §5).
pub const HEADER_LEN: usize = 20;
/// RFC 8489 §14.7: the FINGERPRINT value is the CRC-32 of the message XOR-ed with this.
pub const FINGERPRINT_XOR: u32 = 0x5354_554e;
/// Largest message we decode or encode. The 16-bit length field bounds a message at
/// 65 555 bytes anyway; this smaller bound keeps memory per message small. RFC 8489 §6.1
/// asks for messages under the path MTU (576 bytes when unknown), so real responses are far
/// below it.
pub const MAX_MESSAGE_LEN: usize = 8 * 1024;
/// RFC 8489 §14.3 (SOFTWARE) and §14.8 (ERROR-CODE reason): fewer than 128 characters, at most
/// 763 bytes.
pub const MAX_TEXT_LEN: usize = 763;

/// Attribute type numbers (RFC 8489 §18.3, RFC 5780 §9.1, RFC 3489 §11.2).
pub mod attr {
    /// MAPPED-ADDRESS (RFC 8489 §14.1).
    pub const MAPPED_ADDRESS: u16 = 0x0001;
    /// RESPONSE-ADDRESS (RFC 3489 §11.2.2, reserved in RFC 8489).
    pub const RESPONSE_ADDRESS: u16 = 0x0002;
    /// CHANGE-REQUEST (RFC 5780 §7.2).
    pub const CHANGE_REQUEST: u16 = 0x0003;
    /// SOURCE-ADDRESS (RFC 3489 §11.2.5; the predecessor of RESPONSE-ORIGIN).
    pub const SOURCE_ADDRESS: u16 = 0x0004;
    /// CHANGED-ADDRESS (RFC 3489 §11.2.3; the predecessor of OTHER-ADDRESS).
    pub const CHANGED_ADDRESS: u16 = 0x0005;
    /// USERNAME (RFC 8489 §14.3).
    pub const USERNAME: u16 = 0x0006;
    /// MESSAGE-INTEGRITY (RFC 8489 §14.5).
    pub const MESSAGE_INTEGRITY: u16 = 0x0008;
    /// ERROR-CODE (RFC 8489 §14.8).
    pub const ERROR_CODE: u16 = 0x0009;
    /// UNKNOWN-ATTRIBUTES (RFC 8489 §14.9).
    pub const UNKNOWN_ATTRIBUTES: u16 = 0x000A;
    /// XOR-MAPPED-ADDRESS (RFC 8489 §14.2).
    pub const XOR_MAPPED_ADDRESS: u16 = 0x0020;
    /// PADDING (RFC 5780 §7.6).
    pub const PADDING: u16 = 0x0026;
    /// RESPONSE-PORT (RFC 5780 §7.5).
    pub const RESPONSE_PORT: u16 = 0x0027;
    /// SOFTWARE (RFC 8489 §14.14).
    pub const SOFTWARE: u16 = 0x8022;
    /// FINGERPRINT (RFC 8489 §14.7).
    pub const FINGERPRINT: u16 = 0x8028;
    /// RESPONSE-ORIGIN (RFC 5780 §7.3).
    pub const RESPONSE_ORIGIN: u16 = 0x802B;
    /// OTHER-ADDRESS (RFC 5780 §7.4).
    pub const OTHER_ADDRESS: u16 = 0x802C;
}

/// The 96-bit transaction id (RFC 8489 §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TransactionId(pub [u8; 12]);

impl fmt::Display for TransactionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// The message class (RFC 8489 §5: bits C1 and C0 of the message type).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Class {
    /// 0b00: request.
    Request,
    /// 0b01: indication.
    Indication,
    /// 0b10: success response.
    SuccessResponse,
    /// 0b11: error response.
    ErrorResponse,
}

/// The Binding method (RFC 8489 §18.2), the only method this client uses.
pub const METHOD_BINDING: u16 = 0x001;

/// One STUN attribute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attribute {
    /// MAPPED-ADDRESS (RFC 8489 §14.1).
    MappedAddress(SocketAddr),
    /// XOR-MAPPED-ADDRESS (RFC 8489 §14.2), stored un-XOR-ed.
    XorMappedAddress(SocketAddr),
    /// ERROR-CODE (RFC 8489 §14.8): code 300..=699 and reason phrase.
    ErrorCode {
        /// The numeric code (class * 100 + number).
        code: u16,
        /// The reason phrase.
        reason: String,
    },
    /// UNKNOWN-ATTRIBUTES (RFC 8489 §14.9).
    UnknownAttributes(Vec<u16>),
    /// SOFTWARE (RFC 8489 §14.14).
    Software(String),
    /// FINGERPRINT (RFC 8489 §14.7). On decode it has already been verified.
    Fingerprint(u32),
    /// CHANGE-REQUEST (RFC 5780 §7.2).
    ChangeRequest {
        /// The "A" flag: respond from the other IP address.
        change_ip: bool,
        /// The "B" flag: respond from the other port.
        change_port: bool,
    },
    /// RESPONSE-ORIGIN (RFC 5780 §7.3).
    ResponseOrigin(SocketAddr),
    /// OTHER-ADDRESS (RFC 5780 §7.4).
    OtherAddress(SocketAddr),
    /// CHANGED-ADDRESS (RFC 3489 §11.2.3), accepted as a fallback for OTHER-ADDRESS.
    ChangedAddress(SocketAddr),
    /// SOURCE-ADDRESS (RFC 3489 §11.2.5), accepted as a fallback for RESPONSE-ORIGIN.
    SourceAddress(SocketAddr),
    /// Any other attribute, kept undecoded (the value without padding).
    Unknown {
        /// The attribute type.
        typ: u16,
        /// The value bytes.
        value: Vec<u8>,
    },
}

impl Attribute {
    /// The attribute type number.
    pub fn typ(&self) -> u16 {
        match self {
            Attribute::MappedAddress(_) => attr::MAPPED_ADDRESS,
            Attribute::XorMappedAddress(_) => attr::XOR_MAPPED_ADDRESS,
            Attribute::ErrorCode { .. } => attr::ERROR_CODE,
            Attribute::UnknownAttributes(_) => attr::UNKNOWN_ATTRIBUTES,
            Attribute::Software(_) => attr::SOFTWARE,
            Attribute::Fingerprint(_) => attr::FINGERPRINT,
            Attribute::ChangeRequest { .. } => attr::CHANGE_REQUEST,
            Attribute::ResponseOrigin(_) => attr::RESPONSE_ORIGIN,
            Attribute::OtherAddress(_) => attr::OTHER_ADDRESS,
            Attribute::ChangedAddress(_) => attr::CHANGED_ADDRESS,
            Attribute::SourceAddress(_) => attr::SOURCE_ADDRESS,
            Attribute::Unknown { typ, .. } => *typ,
        }
    }
}

/// Why a byte string is not a valid STUN message. Every decode failure is one of these; the
/// decoder never panics.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Fewer than 20 bytes, or fewer bytes than the header's length field announces.
    #[error("truncated STUN message: need {needed} bytes, have {have}")]
    Truncated {
        /// Bytes the header says the message has.
        needed: usize,
        /// Bytes available.
        have: usize,
    },
    /// More bytes than the header's length field announces (datagram transports).
    #[error("STUN message has {extra} trailing bytes after the announced length")]
    TrailingBytes {
        /// Number of extra bytes.
        extra: usize,
    },
    /// RFC 8489 §5: the two most significant bits of every STUN message are zero.
    #[error("not a STUN message: the first two bits are not zero")]
    NotStun,
    /// RFC 8489 §5: the message length is a multiple of 4.
    #[error("STUN message length {0} is not a multiple of 4")]
    BadLength(usize),
    /// The magic cookie is not 0x2112A442 (an RFC 3489 message or not STUN at all).
    #[error("STUN magic cookie is {0:#010x}, expected 0x2112a442")]
    BadCookie(u32),
    /// The message exceeds [`MAX_MESSAGE_LEN`].
    #[error("STUN message of {0} bytes exceeds the {MAX_MESSAGE_LEN}-byte limit")]
    TooLong(usize),
    /// An attribute header or value runs past the end of the message.
    #[error("STUN attribute {typ:#06x} at offset {offset} runs past the end of the message")]
    AttributeOverrun {
        /// The attribute type.
        typ: u16,
        /// Offset of the attribute header in the message.
        offset: usize,
    },
    /// An attribute's value is malformed (wrong length, bad family, bad UTF-8...).
    #[error("malformed STUN attribute {typ:#06x}: {what}")]
    BadAttribute {
        /// The attribute type.
        typ: u16,
        /// What is wrong.
        what: &'static str,
    },
    /// RFC 8489 §14.7: FINGERPRINT does not match the CRC-32 of the message.
    #[error("STUN FINGERPRINT mismatch: got {got:#010x}, computed {computed:#010x}")]
    FingerprintMismatch {
        /// Value in the message.
        got: u32,
        /// Value computed over the message.
        computed: u32,
    },
    /// RFC 8489 §14.7: "this attribute, if present, MUST be the last attribute".
    #[error("STUN attribute {0:#06x} follows FINGERPRINT, which must be last")]
    AfterFingerprint(u16),
}

/// A decoded (or to-be-encoded) STUN message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The class (request, indication, success or error response).
    pub class: Class,
    /// The 12-bit method number ([`METHOD_BINDING`] for Binding).
    pub method: u16,
    /// The transaction id.
    pub transaction_id: TransactionId,
    /// The attributes in wire order.
    pub attributes: Vec<Attribute>,
}

/// RFC 8489 §5: the 14-bit message type interleaves the method bits M0..M11 with the class
/// bits C0 and C1: `M11..M7 C1 M6..M4 C0 M3..M0`.
fn message_type(class: Class, method: u16) -> u16 {
    let c = match class {
        Class::Request => 0b00,
        Class::Indication => 0b01,
        Class::SuccessResponse => 0b10,
        Class::ErrorResponse => 0b11,
    };
    let m = method & 0x0fff;
    (m & 0x000f) | ((m & 0x0070) << 1) | ((m & 0x0f80) << 2) | ((c & 1) << 4) | ((c & 2) << 7)
}

fn split_message_type(t: u16) -> (Class, u16) {
    let c = ((t >> 4) & 1) | ((t >> 7) & 2);
    let class = match c {
        0 => Class::Request,
        1 => Class::Indication,
        2 => Class::SuccessResponse,
        _ => Class::ErrorResponse,
    };
    let method = (t & 0x000f) | ((t >> 1) & 0x0070) | ((t >> 2) & 0x0f80);
    (class, method)
}

/// How many bytes the next STUN message in `buf` occupies, for stream transports (RFC 8489
/// §6.2.2: STUN over TCP to a STUN server needs no framing; the header's length field
/// delimits messages). `Ok(None)` means fewer than 20 bytes are buffered yet.
pub fn frame_len(buf: &[u8]) -> Result<Option<usize>, DecodeError> {
    if buf.len() < HEADER_LEN {
        return Ok(None);
    }
    if buf[0] & 0xc0 != 0 {
        return Err(DecodeError::NotStun);
    }
    let len = u16::from_be_bytes([buf[2], buf[3]]) as usize;
    if len % 4 != 0 {
        return Err(DecodeError::BadLength(len));
    }
    let total = HEADER_LEN + len;
    if total > MAX_MESSAGE_LEN {
        return Err(DecodeError::TooLong(total));
    }
    Ok(Some(total))
}

impl Message {
    /// A Binding request with the given attributes.
    pub fn binding_request(transaction_id: TransactionId, attributes: Vec<Attribute>) -> Self {
        Message {
            class: Class::Request,
            method: METHOD_BINDING,
            transaction_id,
            attributes,
        }
    }

    /// Decodes exactly one complete message (`buf` must hold the whole message and nothing
    /// else, as a UDP datagram does; use [`frame_len`] to cut a stream first).
    pub fn decode(buf: &[u8]) -> Result<Message, DecodeError> {
        let total = match frame_len(buf)? {
            None => {
                return Err(DecodeError::Truncated {
                    needed: HEADER_LEN,
                    have: buf.len(),
                })
            }
            Some(t) => t,
        };
        if buf.len() < total {
            return Err(DecodeError::Truncated {
                needed: total,
                have: buf.len(),
            });
        }
        if buf.len() > total {
            return Err(DecodeError::TrailingBytes {
                extra: buf.len() - total,
            });
        }
        let cookie = u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]);
        if cookie != MAGIC_COOKIE {
            return Err(DecodeError::BadCookie(cookie));
        }
        let (class, method) = split_message_type(u16::from_be_bytes([buf[0], buf[1]]));
        let mut tid = [0u8; 12];
        tid.copy_from_slice(&buf[8..20]);
        let transaction_id = TransactionId(tid);

        let mut attributes = Vec::new();
        let mut off = HEADER_LEN;
        let mut seen_fingerprint = false;
        while off < total {
            if total - off < 4 {
                return Err(DecodeError::AttributeOverrun {
                    typ: 0,
                    offset: off,
                });
            }
            let typ = u16::from_be_bytes([buf[off], buf[off + 1]]);
            if seen_fingerprint {
                return Err(DecodeError::AfterFingerprint(typ));
            }
            let len = u16::from_be_bytes([buf[off + 2], buf[off + 3]]) as usize;
            let start = off + 4;
            // RFC 8489 §14: values are padded to a multiple of 4 bytes; the padding is not
            // counted in the length and its content is ignored.
            let padded = (len + 3) & !3;
            if start + padded > total {
                return Err(DecodeError::AttributeOverrun { typ, offset: off });
            }
            let value = &buf[start..start + len];
            if typ == attr::FINGERPRINT {
                // RFC 8489 §14.7: CRC-32 over the message up to (not including) this
                // attribute, with the header length already covering it, XOR 0x5354554e.
                let got = be32(value, typ)?;
                let mut hdr = [0u8; HEADER_LEN];
                hdr.copy_from_slice(&buf[..HEADER_LEN]);
                let fp_len = (off + 8 - HEADER_LEN) as u16;
                hdr[2..4].copy_from_slice(&fp_len.to_be_bytes());
                let computed = crc32_parts(&[&hdr, &buf[HEADER_LEN..off]]) ^ FINGERPRINT_XOR;
                if got != computed {
                    return Err(DecodeError::FingerprintMismatch { got, computed });
                }
                seen_fingerprint = true;
            }
            attributes.push(decode_attribute(typ, value, &transaction_id)?);
            off = start + padded;
        }
        Ok(Message {
            class,
            method,
            transaction_id,
            attributes,
        })
    }

    /// Encodes the message. With `fingerprint`, a FINGERPRINT attribute is appended last
    /// (RFC 8489 §14.7); any [`Attribute::Fingerprint`] in `attributes` is skipped.
    pub fn encode(&self, fingerprint: bool) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        out.extend_from_slice(&message_type(self.class, self.method).to_be_bytes());
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(&MAGIC_COOKIE.to_be_bytes());
        out.extend_from_slice(&self.transaction_id.0);
        for a in &self.attributes {
            if matches!(a, Attribute::Fingerprint(_)) {
                continue;
            }
            encode_attribute(a, &self.transaction_id, &mut out);
        }
        if fingerprint {
            let len = (out.len() + 8 - HEADER_LEN) as u16;
            out[2..4].copy_from_slice(&len.to_be_bytes());
            let fp = crc32(&out) ^ FINGERPRINT_XOR;
            out.extend_from_slice(&attr::FINGERPRINT.to_be_bytes());
            out.extend_from_slice(&4u16.to_be_bytes());
            out.extend_from_slice(&fp.to_be_bytes());
        } else {
            let len = (out.len() - HEADER_LEN) as u16;
            out[2..4].copy_from_slice(&len.to_be_bytes());
        }
        out
    }

    /// The first attribute matching `f`.
    pub fn find<T>(&self, f: impl FnMut(&Attribute) -> Option<T>) -> Option<T> {
        self.attributes.iter().find_map(f)
    }

    /// The mapped address: XOR-MAPPED-ADDRESS, or MAPPED-ADDRESS when the server sent only
    /// that (RFC 8489 §14.1: kept for backwards compatibility with RFC 3489 servers).
    pub fn mapped_address(&self) -> Option<SocketAddr> {
        self.find(|a| match a {
            Attribute::XorMappedAddress(s) => Some(*s),
            _ => None,
        })
        .or_else(|| {
            self.find(|a| match a {
                Attribute::MappedAddress(s) => Some(*s),
                _ => None,
            })
        })
    }

    /// OTHER-ADDRESS, or CHANGED-ADDRESS from an RFC 3489-era server.
    pub fn other_address(&self) -> Option<SocketAddr> {
        self.find(|a| match a {
            Attribute::OtherAddress(s) => Some(*s),
            _ => None,
        })
        .or_else(|| {
            self.find(|a| match a {
                Attribute::ChangedAddress(s) => Some(*s),
                _ => None,
            })
        })
    }

    /// RESPONSE-ORIGIN, or SOURCE-ADDRESS from an RFC 3489-era server.
    pub fn response_origin(&self) -> Option<SocketAddr> {
        self.find(|a| match a {
            Attribute::ResponseOrigin(s) => Some(*s),
            _ => None,
        })
        .or_else(|| {
            self.find(|a| match a {
                Attribute::SourceAddress(s) => Some(*s),
                _ => None,
            })
        })
    }

    /// The ERROR-CODE attribute, if any.
    pub fn error_code(&self) -> Option<(u16, &str)> {
        self.attributes.iter().find_map(|a| match a {
            Attribute::ErrorCode { code, reason } => Some((*code, reason.as_str())),
            _ => None,
        })
    }

    /// The SOFTWARE attribute, if any.
    pub fn software(&self) -> Option<&str> {
        self.attributes.iter().find_map(|a| match a {
            Attribute::Software(s) => Some(s.as_str()),
            _ => None,
        })
    }

    /// Types of unknown comprehension-required attributes (0x0000-0x7FFF, RFC 8489 §14):
    /// a success response carrying any is discarded and the transaction fails (§7.3.3).
    pub fn unknown_comprehension_required(&self) -> Vec<u16> {
        self.attributes
            .iter()
            .filter_map(|a| match a {
                Attribute::Unknown { typ, .. } if *typ < 0x8000 => Some(*typ),
                _ => None,
            })
            .collect()
    }
}

fn crc32_parts(parts: &[&[u8]]) -> u32 {
    let mut c = super::crc32::Crc32::new();
    for p in parts {
        c.update(p);
    }
    c.finish()
}

fn be32(v: &[u8], typ: u16) -> Result<u32, DecodeError> {
    if v.len() != 4 {
        return Err(DecodeError::BadAttribute {
            typ,
            what: "value must be 4 bytes",
        });
    }
    Ok(u32::from_be_bytes([v[0], v[1], v[2], v[3]]))
}

/// RFC 8489 §14.1 address encoding: 0x00, family (0x01 IPv4, 0x02 IPv6), port, address.
fn decode_address(typ: u16, v: &[u8]) -> Result<SocketAddr, DecodeError> {
    if v.len() < 4 {
        return Err(DecodeError::BadAttribute {
            typ,
            what: "address value shorter than 4 bytes",
        });
    }
    let port = u16::from_be_bytes([v[2], v[3]]);
    match (v[1], v.len()) {
        (0x01, 8) => Ok(SocketAddr::new(
            IpAddr::V4(Ipv4Addr::new(v[4], v[5], v[6], v[7])),
            port,
        )),
        (0x02, 20) => {
            let mut a = [0u8; 16];
            a.copy_from_slice(&v[4..20]);
            Ok(SocketAddr::new(IpAddr::V6(Ipv6Addr::from(a)), port))
        }
        (0x01, _) | (0x02, _) => Err(DecodeError::BadAttribute {
            typ,
            what: "address length does not match its family",
        }),
        _ => Err(DecodeError::BadAttribute {
            typ,
            what: "unknown address family",
        }),
    }
}

/// RFC 8489 §14.2: X-Port is the port XOR the top 16 bits of the cookie; an IPv4 X-Address is
/// XOR the cookie; an IPv6 X-Address is XOR the cookie followed by the transaction id. The
/// operation is its own inverse, so one function serves both directions.
fn xor_address(addr: SocketAddr, tid: &TransactionId) -> SocketAddr {
    let cookie = MAGIC_COOKIE.to_be_bytes();
    let port = addr.port() ^ (MAGIC_COOKIE >> 16) as u16;
    match addr.ip() {
        IpAddr::V4(ip) => {
            let o = ip.octets();
            let x = [
                o[0] ^ cookie[0],
                o[1] ^ cookie[1],
                o[2] ^ cookie[2],
                o[3] ^ cookie[3],
            ];
            SocketAddr::new(IpAddr::V4(Ipv4Addr::from(x)), port)
        }
        IpAddr::V6(ip) => {
            let mut o = ip.octets();
            let mut key = [0u8; 16];
            key[..4].copy_from_slice(&cookie);
            key[4..].copy_from_slice(&tid.0);
            for (b, k) in o.iter_mut().zip(key) {
                *b ^= k;
            }
            SocketAddr::new(IpAddr::V6(Ipv6Addr::from(o)), port)
        }
    }
}

fn decode_text(typ: u16, v: &[u8]) -> Result<String, DecodeError> {
    if v.len() > MAX_TEXT_LEN {
        return Err(DecodeError::BadAttribute {
            typ,
            what: "text longer than 763 bytes",
        });
    }
    String::from_utf8(v.to_vec()).map_err(|_| DecodeError::BadAttribute {
        typ,
        what: "text is not UTF-8",
    })
}

fn decode_attribute(typ: u16, v: &[u8], tid: &TransactionId) -> Result<Attribute, DecodeError> {
    Ok(match typ {
        attr::MAPPED_ADDRESS => Attribute::MappedAddress(decode_address(typ, v)?),
        attr::XOR_MAPPED_ADDRESS => {
            Attribute::XorMappedAddress(xor_address(decode_address(typ, v)?, tid))
        }
        attr::RESPONSE_ORIGIN => Attribute::ResponseOrigin(decode_address(typ, v)?),
        attr::OTHER_ADDRESS => Attribute::OtherAddress(decode_address(typ, v)?),
        attr::CHANGED_ADDRESS => Attribute::ChangedAddress(decode_address(typ, v)?),
        attr::SOURCE_ADDRESS => Attribute::SourceAddress(decode_address(typ, v)?),
        attr::ERROR_CODE => {
            // RFC 8489 §14.8: 21 reserved bits, Class (3 bits, 3..=6), Number (0..=99).
            if v.len() < 4 {
                return Err(DecodeError::BadAttribute {
                    typ,
                    what: "ERROR-CODE shorter than 4 bytes",
                });
            }
            let class = (v[2] & 0x07) as u16;
            let number = v[3] as u16;
            if !(3..=6).contains(&class) || number > 99 {
                return Err(DecodeError::BadAttribute {
                    typ,
                    what: "ERROR-CODE class must be 3..6 and number 0..99",
                });
            }
            Attribute::ErrorCode {
                code: class * 100 + number,
                reason: decode_text(typ, &v[4..])?,
            }
        }
        attr::UNKNOWN_ATTRIBUTES => {
            if v.len() % 2 != 0 {
                return Err(DecodeError::BadAttribute {
                    typ,
                    what: "UNKNOWN-ATTRIBUTES length is odd",
                });
            }
            Attribute::UnknownAttributes(
                v.chunks_exact(2)
                    .map(|c| u16::from_be_bytes([c[0], c[1]]))
                    .collect(),
            )
        }
        attr::SOFTWARE => Attribute::Software(decode_text(typ, v)?),
        attr::FINGERPRINT => Attribute::Fingerprint(be32(v, typ)?),
        attr::CHANGE_REQUEST => {
            let flags = be32(v, typ)?;
            Attribute::ChangeRequest {
                change_ip: flags & 0x4 != 0,
                change_port: flags & 0x2 != 0,
            }
        }
        _ => Attribute::Unknown {
            typ,
            value: v.to_vec(),
        },
    })
}

fn put_address(out: &mut Vec<u8>, addr: SocketAddr) {
    match addr.ip() {
        IpAddr::V4(ip) => {
            out.extend_from_slice(&[0, 0x01]);
            out.extend_from_slice(&addr.port().to_be_bytes());
            out.extend_from_slice(&ip.octets());
        }
        IpAddr::V6(ip) => {
            out.extend_from_slice(&[0, 0x02]);
            out.extend_from_slice(&addr.port().to_be_bytes());
            out.extend_from_slice(&ip.octets());
        }
    }
}

fn encode_attribute(a: &Attribute, tid: &TransactionId, out: &mut Vec<u8>) {
    let mut v = Vec::new();
    match a {
        Attribute::MappedAddress(s)
        | Attribute::ResponseOrigin(s)
        | Attribute::OtherAddress(s)
        | Attribute::ChangedAddress(s)
        | Attribute::SourceAddress(s) => put_address(&mut v, *s),
        Attribute::XorMappedAddress(s) => put_address(&mut v, xor_address(*s, tid)),
        Attribute::ErrorCode { code, reason } => {
            let code = (*code).clamp(300, 699);
            v.extend_from_slice(&[0, 0, (code / 100) as u8, (code % 100) as u8]);
            v.extend_from_slice(truncate_text(reason).as_bytes());
        }
        Attribute::UnknownAttributes(types) => {
            for t in types.iter().take(MAX_MESSAGE_LEN / 4) {
                v.extend_from_slice(&t.to_be_bytes());
            }
        }
        Attribute::Software(s) => v.extend_from_slice(truncate_text(s).as_bytes()),
        Attribute::Fingerprint(f) => v.extend_from_slice(&f.to_be_bytes()),
        Attribute::ChangeRequest {
            change_ip,
            change_port,
        } => {
            let flags = (u32::from(*change_ip) << 2) | (u32::from(*change_port) << 1);
            v.extend_from_slice(&flags.to_be_bytes());
        }
        Attribute::Unknown { value, .. } => {
            v.extend_from_slice(&value[..value.len().min(MAX_MESSAGE_LEN)])
        }
    }
    out.extend_from_slice(&a.typ().to_be_bytes());
    out.extend_from_slice(&(v.len() as u16).to_be_bytes());
    out.extend_from_slice(&v);
    // RFC 8489 §14: pad to a 4-byte boundary (RFC 8489 says the padding bits MUST be ignored
    // by the receiver and we send zeros).
    while out.len() % 4 != 0 {
        out.push(0);
    }
}

/// Cuts text to at most [`MAX_TEXT_LEN`] bytes on a character boundary.
fn truncate_text(s: &str) -> &str {
    if s.len() <= MAX_TEXT_LEN {
        return s;
    }
    let mut end = MAX_TEXT_LEN;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}
