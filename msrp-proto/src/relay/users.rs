//! The relay's users file: Digest HA1 hashes, never passwords (RFC 7616 §5.2 / §3.4.2).
//!
//! # Format
//!
//! UTF-8 text, one credential per line:
//!
//! ```text
//! # comment lines start with '#'; blank lines are ignored
//! username:realm:ALGORITHM:ha1-hex
//! alice:relay.example.com:MD5:1c3c5a3a0e1a1dbbd38a4c8bd1bc2c3a
//! alice:relay.example.com:SHA-256:4c8b4a9b6e6b...64 hex digits...
//! ```
//!
//! - `username` must not contain `:` (it would make `username:realm:password` ambiguous).
//! - `realm` is everything between the first `:` and the `:ALGORITHM:` part, so a realm may
//!   contain `:`.
//! - `ALGORITHM` is `MD5`, `SHA-256` or `SHA-512-256` (case-insensitive). The HA1 depends on the
//!   hash function, so a user who may authenticate with several algorithms has one line per
//!   algorithm. The `-sess` variants use the line of their base algorithm.
//! - `ha1-hex` is `H(username ":" realm ":" password)` in hex (32 digits for MD5, 64 for the
//!   others).
//!
//! [`hash_password_lines`] produces the lines for one user (this is what
//! `msrp relay hash-password` prints). A stolen file still lets an attacker authenticate to
//! this realm (HA1 is password-equivalent for Digest) but does not reveal the password, which
//! users may have reused elsewhere.

use std::collections::HashMap;
use std::fmt;

use super::digest::{ha1, Algorithm};

/// Longest line accepted in a users file.
pub const MAX_LINE_LEN: usize = 4096;

/// The algorithms [`hash_password_lines`] writes a line for.
pub const HASH_ALGORITHMS: [Algorithm; 3] =
    [Algorithm::Md5, Algorithm::Sha256, Algorithm::Sha512_256];

/// What is wrong with a users file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("users file line {line}: {kind}")]
pub struct UsersError {
    /// 1-based line number (0 for values given outside a file).
    pub line: usize,
    /// The problem.
    pub kind: UsersErrorKind,
}

/// The problem found on a users file line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UsersErrorKind {
    /// Longer than [`MAX_LINE_LEN`].
    #[error("line longer than {MAX_LINE_LEN} bytes")]
    TooLong,
    /// Not `username:realm:ALGORITHM:ha1-hex`.
    #[error("expected username:realm:ALGORITHM:ha1-hex")]
    Shape,
    /// Empty user name or realm, or a control character or `:` in the user name.
    #[error("invalid {0}")]
    BadField(&'static str),
    /// Unknown algorithm or a session variant.
    #[error("unsupported algorithm {0:?} (use MD5, SHA-256 or SHA-512-256)")]
    Algorithm(String),
    /// The hash is not hex of the algorithm's length.
    #[error("HA1 must be {0} hex digits")]
    Ha1(usize),
    /// The same user, realm and algorithm twice.
    #[error("duplicate entry for {user:?} in realm {realm:?} with {algorithm}")]
    Duplicate {
        /// User name.
        user: String,
        /// Realm.
        realm: String,
        /// Algorithm.
        algorithm: Algorithm,
    },
}

fn err(line: usize, kind: UsersErrorKind) -> UsersError {
    UsersError { line, kind }
}

fn check_username(u: &str) -> Result<(), UsersErrorKind> {
    if u.is_empty() || u.contains(':') || u.chars().any(char::is_control) {
        return Err(UsersErrorKind::BadField("username"));
    }
    Ok(())
}

fn check_realm(r: &str) -> Result<(), UsersErrorKind> {
    if r.is_empty() || r.chars().any(char::is_control) {
        return Err(UsersErrorKind::BadField("realm"));
    }
    Ok(())
}

/// Parsed users file: HA1 by (username, realm, base algorithm).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Users {
    entries: HashMap<(String, String, Algorithm), String>,
}

impl fmt::Debug for Users {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // HA1 values are password-equivalent: never print them.
        f.debug_struct("Users")
            .field("entries", &self.entries.len())
            .finish()
    }
}

impl Users {
    /// Parses a users file (see the module documentation for the format).
    pub fn parse(text: &str) -> Result<Users, UsersError> {
        let mut users = Users::default();
        for (i, raw) in text.split('\n').enumerate() {
            let n = i + 1;
            if raw.len() > MAX_LINE_LEN {
                return Err(err(n, UsersErrorKind::TooLong));
            }
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (user, rest) = line.split_once(':').ok_or(err(n, UsersErrorKind::Shape))?;
            let (rest, hash) = rest.rsplit_once(':').ok_or(err(n, UsersErrorKind::Shape))?;
            let (realm, alg) = rest.rsplit_once(':').ok_or(err(n, UsersErrorKind::Shape))?;
            users
                .insert(user, realm, alg, hash)
                .map_err(|k| err(n, k))?;
        }
        Ok(users)
    }

    fn insert(
        &mut self,
        user: &str,
        realm: &str,
        alg: &str,
        hash: &str,
    ) -> Result<(), UsersErrorKind> {
        check_username(user)?;
        check_realm(realm)?;
        let algorithm = Algorithm::parse(alg)
            .filter(|a| !a.is_session())
            .ok_or_else(|| UsersErrorKind::Algorithm(alg.to_string()))?;
        if hash.len() != algorithm.hex_len() || !hash.bytes().all(|c| c.is_ascii_hexdigit()) {
            return Err(UsersErrorKind::Ha1(algorithm.hex_len()));
        }
        let key = (user.to_string(), realm.to_string(), algorithm);
        if self.entries.contains_key(&key) {
            return Err(UsersErrorKind::Duplicate {
                user: user.to_string(),
                realm: realm.to_string(),
                algorithm,
            });
        }
        self.entries.insert(key, hash.to_ascii_lowercase());
        Ok(())
    }

    /// The stored HA1 (lowercase hex) for a user in a realm, for `algorithm`'s hash function.
    pub fn ha1(&self, username: &str, realm: &str, algorithm: Algorithm) -> Option<&str> {
        self.entries
            .get(&(username.to_string(), realm.to_string(), algorithm.base()))
            .map(String::as_str)
    }

    /// Number of entries (lines).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when there are no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// The users file lines for one user: one per algorithm of [`HASH_ALGORITHMS`], each ending in
/// `\n`.
pub fn hash_password_lines(
    username: &str,
    realm: &str,
    password: &str,
) -> Result<String, UsersError> {
    check_username(username).map_err(|k| err(0, k))?;
    check_realm(realm).map_err(|k| err(0, k))?;
    let mut out = String::new();
    for alg in HASH_ALGORITHMS {
        out.push_str(&hash_password_line(username, realm, password, alg)?);
        out.push('\n');
    }
    Ok(out)
}

/// One users file line (without the newline) for `algorithm`'s hash function.
pub fn hash_password_line(
    username: &str,
    realm: &str,
    password: &str,
    algorithm: Algorithm,
) -> Result<String, UsersError> {
    check_username(username).map_err(|k| err(0, k))?;
    check_realm(realm).map_err(|k| err(0, k))?;
    let alg = algorithm.base();
    Ok(format!(
        "{username}:{realm}:{}:{}",
        alg.as_str(),
        ha1(alg, username, realm, password)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::relay::digest::{Challenge, Credentials, DigestClient, DigestServer};

    #[test]
    fn lines_round_trip_and_match_rfc2617_ha1() {
        let text = hash_password_lines("Mufasa", "testrealm@host.com", "Circle Of Life").unwrap();
        assert_eq!(text.lines().count(), 3);
        // RFC 2617 §3.5: H(A1) = 939e7578ed9e3c518a452acee763bce9.
        assert!(
            text.starts_with("Mufasa:testrealm@host.com:MD5:939e7578ed9e3c518a452acee763bce9\n")
        );
        let users = Users::parse(&format!("# users\n\n{text}")).unwrap();
        assert_eq!(users.len(), 3);
        assert_eq!(
            users.ha1("Mufasa", "testrealm@host.com", Algorithm::Md5Sess),
            Some("939e7578ed9e3c518a452acee763bce9")
        );
        assert_eq!(
            users
                .ha1("Mufasa", "testrealm@host.com", Algorithm::Sha256)
                .map(str::len),
            Some(64)
        );
        assert_eq!(users.ha1("Mufasa", "other", Algorithm::Md5), None);
        assert!(!format!("{users:?}").contains("939e"));
    }

    #[test]
    fn realm_may_contain_colons_and_crlf_is_tolerated() {
        let line =
            hash_password_line("bob", "relay.example:2855", "pw", Algorithm::Sha256).unwrap();
        let users = Users::parse(&format!("{line}\r\n")).unwrap();
        assert!(users
            .ha1("bob", "relay.example:2855", Algorithm::Sha256)
            .is_some());
    }

    #[test]
    fn errors_name_the_line_and_problem() {
        let md5 = "0".repeat(32);
        let cases = [
            ("alice".to_string(), UsersErrorKind::Shape),
            ("alice:realm".to_string(), UsersErrorKind::Shape),
            (
                format!(":realm:MD5:{md5}"),
                UsersErrorKind::BadField("username"),
            ),
            (
                format!("alice::MD5:{md5}"),
                UsersErrorKind::BadField("realm"),
            ),
            (
                format!("alice:r:SHA-1:{md5}"),
                UsersErrorKind::Algorithm("SHA-1".into()),
            ),
            (
                format!("alice:r:MD5-sess:{md5}"),
                UsersErrorKind::Algorithm("MD5-sess".into()),
            ),
            ("alice:r:MD5:abc".to_string(), UsersErrorKind::Ha1(32)),
            (format!("alice:r:SHA-256:{md5}"), UsersErrorKind::Ha1(64)),
            (
                format!("alice:r:MD5:{}", "g".repeat(32)),
                UsersErrorKind::Ha1(32),
            ),
        ];
        for (line, kind) in cases {
            assert_eq!(
                Users::parse(&format!("# c\n{line}\n")).unwrap_err(),
                UsersError { line: 2, kind },
                "{line}"
            );
        }
        let dup = format!("a:r:MD5:{md5}\na:r:md5:{md5}\n");
        assert!(matches!(
            Users::parse(&dup).unwrap_err(),
            UsersError {
                line: 2,
                kind: UsersErrorKind::Duplicate { .. }
            }
        ));
        assert_eq!(
            Users::parse(&"x".repeat(MAX_LINE_LEN + 1))
                .unwrap_err()
                .kind,
            UsersErrorKind::TooLong
        );
        assert!(hash_password_lines("a:b", "r", "p").is_err());
        assert!(hash_password_lines("a", "", "p").is_err());
    }

    #[test]
    fn server_verifies_against_the_users_file() {
        let users =
            Users::parse(&hash_password_lines("alice", "relay.test", "pw").unwrap()).unwrap();
        for alg in HASH_ALGORITHMS {
            let mut server = DigestServer::new("relay.test", alg, [1; 32]).unwrap();
            let mut client = DigestClient::new(Credentials::new("alice", "pw").unwrap());
            client
                .on_challenge(
                    Challenge::parse(&server.challenge(5, &[0; 16], false).to_string()).unwrap(),
                )
                .unwrap();
            let uri = "msrp://127.0.0.1:2855;tcp";
            let auth = client.authorize(uri, "abc").unwrap();
            let ok = server
                .verify(&auth, "AUTH", uri, 6, |u, r, a| {
                    users.ha1(u, r, a).map(str::to_string)
                })
                .unwrap();
            assert_eq!(ok.username, "alice");
        }
    }
}
