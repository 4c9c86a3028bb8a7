//! Certificate fingerprints for `a=fingerprint` (RFC 8122 §5; RFC 4572 for older peers).
//!
//! ```text
//! fingerprint-attribute = "fingerprint" ":" hash-func SP fingerprint
//! fingerprint           = 2UHEX *(":" 2UHEX)
//! ```
//!
//! The grammar asks for upper-case hex; we accept either case on input (many stacks write lower
//! case) and always write upper case. Hashing a DER certificate is pure computation, so it
//! lives in the sans-IO core; the TLS layer in `msrp` calls [`verify_certificate`].

use std::fmt;

use sha1::Digest as _;

/// A hash function name of the "Hash Function Textual Names" registry (RFC 8122 §5, §8).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum HashFunction {
    /// `sha-1`
    Sha1,
    /// `sha-224`
    Sha224,
    /// `sha-256` (the preferred one, RFC 8122 §5)
    Sha256,
    /// `sha-384`
    Sha384,
    /// `sha-512`
    Sha512,
    /// `md5`: recognised but never used (RFC 8122 §5: MUST NOT).
    Md5,
    /// `md2`: recognised but never used (RFC 8122 §5: MUST NOT).
    Md2,
    /// Any other token, kept as written (lower case).
    Other(String),
}

impl HashFunction {
    /// Parses a hash-func token, case-insensitively.
    pub fn parse(s: &str) -> HashFunction {
        match s.to_ascii_lowercase().as_str() {
            "sha-1" => HashFunction::Sha1,
            "sha-224" => HashFunction::Sha224,
            "sha-256" => HashFunction::Sha256,
            "sha-384" => HashFunction::Sha384,
            "sha-512" => HashFunction::Sha512,
            "md5" => HashFunction::Md5,
            "md2" => HashFunction::Md2,
            other => HashFunction::Other(other.to_string()),
        }
    }

    /// The token as written in SDP.
    pub fn as_str(&self) -> &str {
        match self {
            HashFunction::Sha1 => "sha-1",
            HashFunction::Sha224 => "sha-224",
            HashFunction::Sha256 => "sha-256",
            HashFunction::Sha384 => "sha-384",
            HashFunction::Sha512 => "sha-512",
            HashFunction::Md5 => "md5",
            HashFunction::Md2 => "md2",
            HashFunction::Other(s) => s,
        }
    }

    /// Our preference among usable functions (higher is stronger); `None` for functions we
    /// never use to verify (MD2, MD5: RFC 8122 §5 MUST NOT; unknown tokens).
    pub fn preference(&self) -> Option<u8> {
        match self {
            HashFunction::Sha1 => Some(1),
            HashFunction::Sha224 => Some(2),
            HashFunction::Sha256 => Some(3),
            HashFunction::Sha384 => Some(4),
            HashFunction::Sha512 => Some(5),
            _ => None,
        }
    }

    /// Digest of `data`, for the functions we support.
    pub fn digest(&self, data: &[u8]) -> Option<Vec<u8>> {
        Some(match self {
            HashFunction::Sha1 => sha1::Sha1::digest(data).to_vec(),
            HashFunction::Sha224 => sha2::Sha224::digest(data).to_vec(),
            HashFunction::Sha256 => sha2::Sha256::digest(data).to_vec(),
            HashFunction::Sha384 => sha2::Sha384::digest(data).to_vec(),
            HashFunction::Sha512 => sha2::Sha512::digest(data).to_vec(),
            _ => return None,
        })
    }
}

impl fmt::Display for HashFunction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why an `a=fingerprint` value did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FingerprintError {
    /// No space between the hash function and the hex value.
    #[error("a=fingerprint needs '<hash-func> <hex>', for example 'sha-256 AB:CD:...'")]
    MissingValue,
    /// The hash function token is empty or not a token.
    #[error("invalid hash function in a=fingerprint")]
    BadHashFunction,
    /// The value is not pairs of hex digits separated by colons.
    #[error("invalid hex in a=fingerprint at character {0}")]
    BadHex(usize),
    /// The value's length does not fit the hash function (e.g. 32 bytes for sha-256).
    #[error("a=fingerprint {hash} value has {got} bytes, expected {expected}")]
    WrongLength {
        /// The hash function.
        hash: String,
        /// Bytes found.
        got: usize,
        /// Bytes expected.
        expected: usize,
    },
}

/// One `a=fingerprint` value.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Fingerprint {
    /// The hash function.
    pub hash: HashFunction,
    /// The digest bytes.
    pub value: Vec<u8>,
}

impl Fingerprint {
    /// Fingerprint of a DER certificate with `hash`; `None` for MD2, MD5 and unknown functions.
    pub fn of_certificate(hash: HashFunction, der: &[u8]) -> Option<Fingerprint> {
        let value = hash.digest(der)?;
        Some(Fingerprint { hash, value })
    }

    /// SHA-256 fingerprint of a DER certificate (RFC 8122 §5: the preferred function).
    pub fn sha256(der: &[u8]) -> Fingerprint {
        Fingerprint {
            hash: HashFunction::Sha256,
            value: sha2::Sha256::digest(der).to_vec(),
        }
    }

    /// Parses the attribute value (`sha-256 AB:CD:...`), accepting hex of either case.
    pub fn parse(s: &str) -> Result<Fingerprint, FingerprintError> {
        let s = s.trim();
        let (h, v) = s
            .split_once([' ', '\t'])
            .ok_or(FingerprintError::MissingValue)?;
        if h.is_empty() || !h.bytes().all(crate::uri::is_token_char) {
            return Err(FingerprintError::BadHashFunction);
        }
        let hash = HashFunction::parse(h);
        let v = v.trim();
        let b = v.as_bytes();
        let mut value = Vec::with_capacity(b.len().div_ceil(3));
        let mut i = 0;
        loop {
            let hi = b.get(i).and_then(|c| (*c as char).to_digit(16));
            let lo = b.get(i + 1).and_then(|c| (*c as char).to_digit(16));
            match (hi, lo) {
                (Some(hi), Some(lo)) => value.push((hi * 16 + lo) as u8),
                (None, _) => return Err(FingerprintError::BadHex(h.len() + 1 + i)),
                (_, None) => return Err(FingerprintError::BadHex(h.len() + 2 + i)),
            }
            i += 2;
            match b.get(i) {
                None => break,
                Some(b':') => i += 1,
                Some(_) => return Err(FingerprintError::BadHex(h.len() + 1 + i)),
            }
        }
        let expected = match hash {
            HashFunction::Sha1 => Some(20),
            HashFunction::Sha224 => Some(28),
            HashFunction::Sha256 => Some(32),
            HashFunction::Sha384 => Some(48),
            HashFunction::Sha512 => Some(64),
            HashFunction::Md5 | HashFunction::Md2 => Some(16),
            HashFunction::Other(_) => None,
        };
        if let Some(expected) = expected {
            if value.len() != expected {
                return Err(FingerprintError::WrongLength {
                    hash: hash.to_string(),
                    got: value.len(),
                    expected,
                });
            }
        }
        Ok(Fingerprint { hash, value })
    }

    /// The hex part, upper case with colons (`AB:CD:...`).
    pub fn hex(&self) -> String {
        let mut out = String::with_capacity(self.value.len() * 3);
        for (i, b) in self.value.iter().enumerate() {
            if i > 0 {
                out.push(':');
            }
            out.push_str(&format!("{b:02X}"));
        }
        out
    }
}

impl fmt::Display for Fingerprint {
    /// The attribute value: `sha-256 AB:CD:...`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.hash, self.hex())
    }
}

/// Why a certificate was not accepted against the peer's `a=fingerprint` attributes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FingerprintMismatch {
    /// None of the offered fingerprints uses a hash function we may verify with.
    #[error("no usable a=fingerprint (only MD2/MD5 or unknown hash functions were offered)")]
    NoUsableFingerprint,
    /// The certificate matches none of the fingerprints of the preferred function.
    #[error("certificate fingerprint mismatch: expected {expected}, received {received}")]
    Mismatch {
        /// The fingerprint(s) from SDP, joined with ", ".
        expected: String,
        /// The presented certificate's fingerprint with the same hash function.
        received: String,
    },
}

/// RFC 8122 §5.1: select the fingerprints that use our most preferred hash function among
/// those the peer offered, and accept the certificate only if it matches one of them.
pub fn verify_certificate(
    fingerprints: &[Fingerprint],
    der: &[u8],
) -> Result<(), FingerprintMismatch> {
    let best = fingerprints
        .iter()
        .filter_map(|f| f.hash.preference())
        .max()
        .ok_or(FingerprintMismatch::NoUsableFingerprint)?;
    let set: Vec<&Fingerprint> = fingerprints
        .iter()
        .filter(|f| f.hash.preference() == Some(best))
        .collect();
    let hash = set[0].hash.clone();
    let received = Fingerprint::of_certificate(hash, der).expect("preferred hash is computable");
    if set.iter().any(|f| f.value == received.value) {
        Ok(())
    } else {
        Err(FingerprintMismatch::Mismatch {
            expected: set
                .iter()
                .map(|f| f.to_string())
                .collect::<Vec<_>>()
                .join(", "),
            received: received.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rfc_example_and_round_trips() {
        // RFC 4975 §8.5-style example value (sha-1, 20 bytes)
        let s = "sha-1 4A:AD:B9:B1:3F:82:18:3B:54:02:12:DF:3E:5D:49:6B:19:E5:7C:AB";
        let f = Fingerprint::parse(s).unwrap();
        assert_eq!(f.hash, HashFunction::Sha1);
        assert_eq!(f.value.len(), 20);
        assert_eq!(f.to_string(), s);
    }

    #[test]
    fn hex_is_case_insensitive_and_written_upper() {
        let f =
            Fingerprint::parse("SHA-1 4a:ad:b9:b1:3f:82:18:3b:54:02:12:df:3e:5d:49:6b:19:e5:7c:ab")
                .unwrap();
        assert_eq!(f.hash, HashFunction::Sha1);
        assert!(f.to_string().starts_with("sha-1 4A:AD"));
    }

    #[test]
    fn parse_errors() {
        assert_eq!(
            Fingerprint::parse("sha-256"),
            Err(FingerprintError::MissingValue)
        );
        assert!(matches!(
            Fingerprint::parse("sha-256 AB:CD"),
            Err(FingerprintError::WrongLength {
                got: 2,
                expected: 32,
                ..
            })
        ));
        assert!(matches!(
            Fingerprint::parse("sha-1 AB:C"),
            Err(FingerprintError::BadHex(_))
        ));
        assert!(matches!(
            Fingerprint::parse("sha-1 AB;CD"),
            Err(FingerprintError::BadHex(_))
        ));
        assert!(matches!(
            Fingerprint::parse("sha-1 ZZ"),
            Err(FingerprintError::BadHex(_))
        ));
        assert_eq!(
            Fingerprint::parse("sh\"a x"),
            Err(FingerprintError::BadHashFunction)
        );
        // unknown functions parse (any length) but are never used to verify
        let f = Fingerprint::parse("foo-9 AB").unwrap();
        assert_eq!(f.hash, HashFunction::Other("foo-9".into()));
    }

    #[test]
    fn verification_uses_most_preferred_function() {
        let der = b"not really a certificate, but bytes to hash";
        let good256 = Fingerprint::sha256(der);
        let good1 = Fingerprint::of_certificate(HashFunction::Sha1, der).unwrap();
        let bad256 = Fingerprint::sha256(b"other certificate");
        assert_eq!(
            verify_certificate(std::slice::from_ref(&good256), der),
            Ok(())
        );
        // sha-256 preferred over sha-1: a wrong sha-256 fails even if sha-1 matches
        assert!(matches!(
            verify_certificate(&[good1.clone(), bad256.clone()], der),
            Err(FingerprintMismatch::Mismatch { .. })
        ));
        // one of several fingerprints with the preferred function suffices
        assert_eq!(
            verify_certificate(&[bad256.clone(), good256.clone()], der),
            Ok(())
        );
        // MD5 is never used (RFC 8122 §5)
        let md5 =
            Fingerprint::parse("md5 00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF").unwrap();
        assert_eq!(
            verify_certificate(&[md5], der),
            Err(FingerprintMismatch::NoUsableFingerprint)
        );
        let err = verify_certificate(std::slice::from_ref(&bad256), der)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(&bad256.hex()) && err.contains(&good256.hex()),
            "{err}"
        );
    }
}
