//! TLS for `msrps:` sessions (`TCP/TLS/MSRP`): identities, peer verification and roles.
//!
//! # Roles
//!
//! RFC 6135 §4.3 and RFC 8122 §6.2 tie the TLS role to the COMEDIA connection role, not to
//! who offered: once `a=setup` is resolved, the **active** side opens the TCP connection and
//! is the TLS **client**; the passive side accepts and is the TLS server
//! ([`TlsRole::from_setup_active`]). Both sides present a certificate (RFC 8122 §6.2): the
//! server always, the client whenever SDP offer/answer is in use.
//!
//! # Pinning by `a=fingerprint`
//!
//! Between two endpoints (RFC 4975 §14.4) each side normally uses a self-signed certificate
//! ([`TlsIdentity::generate`]) and puts its fingerprint in its SDP
//! ([`TlsIdentity::fingerprints`]). The peer's certificate is then accepted only if it
//! matches one of the peer's SDP fingerprints with our most preferred hash function
//! (RFC 8122 §5.1, [`msrp_proto::fingerprint::verify_certificate`]); the host name, the
//! issuer and the validity dates play no part (the SDP vouches for the certificate), but the
//! handshake signatures are still verified with the ring provider, so the peer must hold the
//! private key. Give [`PeerAuth::Fingerprints`] to
//! [`client_config`] or [`server_config`]: the server then requests **and requires** the
//! client certificate (RFC 8122 §6.2).
//!
//! A mismatch refuses the connection: the handshake fails with
//! [`TlsError::FingerprintMismatch`], which names the expected and the received fingerprint,
//! and no application data is exchanged. A client presenting no certificate to a server that
//! requires one is refused with [`TlsError::NoPeerCertificate`]. The refused peer sees
//! [`TlsError::PeerRefused`] (with TLS 1.3 a client whose certificate is refused learns it on
//! its first read, since its side of the handshake completes one flight earlier).
//!
//! When a connection may arrive before the SDP answer carrying the fingerprint (RFC 8122
//! §6.2, an offerer that offered `actpass` or `passive`), accept with
//! [`PeerAuth::FingerprintPending`] and call [`verify_peer_fingerprint`] once the answer is
//! in, before trusting any data.
//!
//! # CA fallback
//!
//! A relay's certificate never appears in SDP (RFC 6135 §4.3). Without a fingerprint the
//! client verifies the server against CA roots and the host name from the MSRP URI
//! ([`PeerAuth::CaRoots`], rustls's WebPKI verifier), with roots from a PEM file
//! ([`load_ca_file`]) and/or the system store ([`native_roots`]).
//!
//! # Example
//!
//! Two endpoints that exchanged fingerprints, over loopback:
//!
//! ```
//! use std::time::Duration;
//! use msrp::tls::{accept_tls, client_config, connect_tls, server_config, PeerAuth, TlsIdentity};
//! use tokio::io::{AsyncReadExt, AsyncWriteExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let (alice, bob) = (TlsIdentity::generate()?, TlsIdentity::generate()?);
//! // each side pins the fingerprints from the other's SDP (a=fingerprint)
//! let bob_cfg = server_config(&bob, PeerAuth::Fingerprints(alice.fingerprints().to_vec()))?;
//! let alice_cfg =
//!     client_config(Some(&alice), PeerAuth::Fingerprints(bob.fingerprints().to_vec()))?;
//!
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let addr = listener.local_addr()?;
//! let passive = tokio::spawn(async move {
//!     let (tcp, _) = listener.accept().await?;
//!     let mut tls = accept_tls(tcp, bob_cfg, Duration::from_secs(5)).await?;
//!     let mut buf = [0u8; 4];
//!     tls.read_exact(&mut buf).await?;
//!     Ok::<_, Box<dyn std::error::Error + Send + Sync>>(buf)
//! });
//! let tcp = tokio::net::TcpStream::connect(addr).await?;
//! let mut tls = connect_tls(tcp, "127.0.0.1", alice_cfg, Duration::from_secs(5)).await?;
//! tls.write_all(b"MSRP").await?;
//! assert_eq!(&passive.await?.map_err(|e| e.to_string())?, b"MSRP");
//! # Ok(())
//! # }
//! ```
//!
//! # From a negotiated session
//!
//! [`PeerAuth::for_plan`] turns a [`ConnectionPlan`] into the right [`PeerAuth`] (pins when
//! the plan can verify the peer's fingerprint, CA roots otherwise as client, no client
//! certificate otherwise as server); [`ConnectionPlan::tls_role`] says whether to call
//! [`connect_tls`] (to [`server_name_for`] the URI connected to) or [`accept_tls`].
//!
//! TLS 1.2 and 1.3 are both enabled; the crypto provider is rustls's ring provider.
//!
//! Known deviation: RFC 8122 §6.2 asks for a `bad_certificate` alert on a mismatch; rustls
//! sends `certificate_unknown` for errors raised by a custom verifier and has no hook to pick
//! the alert while keeping our error. Both are fatal: the connection is never established.

use std::io::{self, BufReader};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use msrp_proto::fingerprint::{verify_certificate, Fingerprint, FingerprintMismatch, HashFunction};
use msrp_proto::sdp::ConnectionPlan;
use msrp_proto::uri::{Host, MsrpUri};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{
    AlertDescription, CertificateError, ClientConfig, DigitallySignedStruct, DistinguishedName,
    OtherError, RootCertStore, ServerConfig, SignatureScheme, SupportedProtocolVersion,
};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::{TlsAcceptor, TlsConnector};

pub use tokio_rustls::client::TlsStream as ClientTlsStream;
pub use tokio_rustls::server::TlsStream as ServerTlsStream;

/// The subject alternative name of generated certificates when none is given. RFC 4975
/// §14.4: in peer-to-peer mode the subjectAltName plays no part in verification.
pub const DEFAULT_SUBJECT_ALT_NAME: &str = "msrp.invalid";

/// Both TLS versions, the default of [`client_config`] and [`server_config`].
pub static ALL_VERSIONS: &[&SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];

/// Errors of the TLS layer.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The peer's certificate matches none of its SDP fingerprints (RFC 8122 §5.1).
    #[error("peer certificate does not match its a=fingerprint: expected {expected}, received {received}")]
    FingerprintMismatch {
        /// The peer's SDP fingerprint(s) with the hash function used, joined with ", ".
        expected: String,
        /// The fingerprint of the certificate the peer presented, same hash function.
        received: String,
    },
    /// The peer's SDP fingerprints all use hash functions we may not verify with (RFC 8122
    /// §5: never MD2 or MD5).
    #[error(
        "the peer's a=fingerprint uses no usable hash function (only MD2/MD5 or unknown ones)"
    )]
    NoUsableFingerprint,
    /// The peer presented no certificate although one is required (RFC 8122 §6.2).
    #[error("peer presented no TLS certificate, but one is required (its SDP has a=fingerprint, RFC 8122 §6.2)")]
    NoPeerCertificate,
    /// The peer aborted the handshake with a fatal alert, usually because it did not accept
    /// our certificate.
    #[error("peer refused the TLS connection with alert {alert:?} (it probably did not accept our certificate: check the a=fingerprint it received)")]
    PeerRefused {
        /// The alert received.
        alert: AlertDescription,
    },
    /// Any other TLS failure (for example a CA-verified certificate with the wrong name or an
    /// unknown issuer).
    #[error("TLS handshake failed: {0}")]
    Tls(rustls::Error),
    /// The handshake did not complete in time.
    #[error("TLS handshake did not complete within {} s", .0.as_secs_f64())]
    Timeout(Duration),
    /// The host name is neither a DNS name nor an IP address.
    #[error("invalid TLS server name {0:?}")]
    InvalidServerName(String),
    /// A configuration that cannot work (for example a client with nothing to verify with).
    #[error("{0}")]
    Config(String),
    /// A certificate, key or CA file could not be read or used.
    #[error("{path}: {reason}")]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// Certificate generation failed.
    #[error("certificate generation failed: {0}")]
    Generate(#[from] rcgen::Error),
    /// An I/O error on the connection.
    #[error("I/O error on the TLS connection: {0}")]
    Io(io::Error),
}

impl From<rustls::Error> for TlsError {
    /// Maps a rustls error back to our error, recovering a [`FingerprintMismatch`] that one
    /// of our verifiers raised inside the handshake.
    fn from(e: rustls::Error) -> TlsError {
        match &e {
            rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(inner))) => {
                match inner.downcast_ref::<FingerprintMismatch>() {
                    Some(FingerprintMismatch::Mismatch { expected, received }) => {
                        TlsError::FingerprintMismatch {
                            expected: expected.clone(),
                            received: received.clone(),
                        }
                    }
                    Some(FingerprintMismatch::NoUsableFingerprint) => TlsError::NoUsableFingerprint,
                    None => TlsError::Tls(e),
                }
            }
            rustls::Error::NoCertificatesPresented => TlsError::NoPeerCertificate,
            rustls::Error::AlertReceived(alert) => TlsError::PeerRefused { alert: *alert },
            _ => TlsError::Tls(e),
        }
    }
}

impl From<io::Error> for TlsError {
    /// tokio-rustls reports TLS failures as `InvalidData` I/O errors wrapping the
    /// [`rustls::Error`]; this unwraps them (also for errors on reads after the handshake).
    fn from(e: io::Error) -> TlsError {
        if let Some(inner) = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
            return TlsError::from(inner.clone());
        }
        TlsError::Io(e)
    }
}

/// Which end of the TLS handshake we are (RFC 6135 §4.3, RFC 8122 §6.2): the SDP layer's
/// type, so that a [`ConnectionPlan::tls_role`] can be used as is.
pub use msrp_proto::sdp::TlsRole;

/// The ring crypto provider shared by every config we build.
fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER
        .get_or_init(|| Arc::new(rustls::crypto::ring::default_provider()))
        .clone()
}

/// Our certificate chain and private key, with the fingerprints to put in SDP.
pub struct TlsIdentity {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    fingerprints: Vec<Fingerprint>,
}

impl Clone for TlsIdentity {
    fn clone(&self) -> TlsIdentity {
        TlsIdentity {
            chain: self.chain.clone(),
            key: self.key.clone_key(),
            fingerprints: self.fingerprints.clone(),
        }
    }
}

impl std::fmt::Debug for TlsIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // never the key
        f.debug_struct("TlsIdentity")
            .field("fingerprints", &self.fingerprints)
            .field("chain_len", &self.chain.len())
            .finish_non_exhaustive()
    }
}

impl TlsIdentity {
    /// A fresh self-signed ECDSA P-256 certificate for [`DEFAULT_SUBJECT_ALT_NAME`].
    pub fn generate() -> Result<TlsIdentity, TlsError> {
        TlsIdentity::generate_for(&[DEFAULT_SUBJECT_ALT_NAME.to_string()])
    }

    /// A fresh self-signed ECDSA P-256 (SHA-256) certificate with the given subject
    /// alternative names (DNS names or IP addresses; RFC 4975 §14.4 allows any).
    pub fn generate_for(names: &[String]) -> Result<TlsIdentity, TlsError> {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let mut params = rcgen::CertificateParams::new(names.to_vec())?;
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "msrp self-signed");
        let cert = params.self_signed(&key)?;
        let key_der = PrivateKeyDer::try_from(key.serialize_der())
            .map_err(|e| TlsError::Config(format!("generated key: {e}")))?;
        TlsIdentity::new(vec![cert.der().clone()], key_der)
    }

    /// An identity from a DER chain (end-entity first) and its private key. Checks that the
    /// key is usable with the ring provider and matches the certificate.
    pub fn new(
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> Result<TlsIdentity, TlsError> {
        if chain.is_empty() {
            return Err(TlsError::Config("empty certificate chain".into()));
        }
        rustls::sign::CertifiedKey::from_der(chain.clone(), key.clone_key(), &provider()).map_err(
            |e| TlsError::Config(format!("certificate and key do not go together: {e}")),
        )?;
        let fingerprints = certificate_fingerprints(&chain[0]);
        Ok(TlsIdentity {
            chain,
            key,
            fingerprints,
        })
    }

    /// Loads a PEM certificate chain (end-entity first) and a PEM private key (PKCS#8,
    /// PKCS#1 or SEC1), as given with `--cert FILE --key FILE`.
    pub fn from_pem_files(cert: &Path, key: &Path) -> Result<TlsIdentity, TlsError> {
        let chain = read_pem_certs(cert)?;
        let file_err = |reason: String| TlsError::File {
            path: key.to_path_buf(),
            reason,
        };
        let f = std::fs::File::open(key).map_err(|e| file_err(e.to_string()))?;
        let key_der = rustls_pemfile::private_key(&mut BufReader::new(f))
            .map_err(|e| file_err(format!("not a PEM private key: {e}")))?
            .ok_or_else(|| file_err("no PEM private key in this file".into()))?;
        TlsIdentity::new(chain, key_der).map_err(|e| match e {
            TlsError::Config(reason) => TlsError::File {
                path: cert.to_path_buf(),
                reason: format!("{reason} (key {})", key.display()),
            },
            e => e,
        })
    }

    /// The end-entity certificate (DER).
    pub fn certificate(&self) -> &CertificateDer<'static> {
        &self.chain[0]
    }

    /// The whole chain, end-entity first.
    pub fn chain(&self) -> &[CertificateDer<'static>] {
        &self.chain
    }

    /// The SHA-256 fingerprint of the end-entity certificate (RFC 8122 §5: the preferred
    /// function).
    pub fn fingerprint(&self) -> &Fingerprint {
        &self.fingerprints[0]
    }

    /// Every fingerprint to put in SDP: SHA-256 first, then the hash function of the
    /// certificate's own signature when it differs (RFC 8122 §5.1: "MUST, as a minimum,
    /// calculate a fingerprint using both the 'SHA-256' hash function algorithm and the hash
    /// function used to generate the signature on the certificate").
    pub fn fingerprints(&self) -> &[Fingerprint] {
        &self.fingerprints
    }

    /// The chain as PEM `CERTIFICATE` blocks.
    pub fn certificate_pem(&self) -> String {
        self.chain
            .iter()
            .map(|c| pem_encode("CERTIFICATE", c.as_ref()))
            .collect()
    }

    /// The private key as PEM (`PRIVATE KEY`, `RSA PRIVATE KEY` or `EC PRIVATE KEY`).
    pub fn private_key_pem(&self) -> String {
        let label = match &self.key {
            PrivateKeyDer::Pkcs1(_) => "RSA PRIVATE KEY",
            PrivateKeyDer::Sec1(_) => "EC PRIVATE KEY",
            _ => "PRIVATE KEY",
        };
        pem_encode(label, self.key.secret_der())
    }

    /// Writes the chain and the key as PEM files (the key readable by its owner only on
    /// Unix), so that they can be given back with `--cert` and `--key`.
    pub fn write_pem_files(&self, cert: &Path, key: &Path) -> Result<(), TlsError> {
        let err = |path: &Path, e: io::Error| TlsError::File {
            path: path.to_path_buf(),
            reason: e.to_string(),
        };
        std::fs::write(cert, self.certificate_pem()).map_err(|e| err(cert, e))?;
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        let mut f = opts.open(key).map_err(|e| err(key, e))?;
        io::Write::write_all(&mut f, self.private_key_pem().as_bytes()).map_err(|e| err(key, e))
    }
}

/// The fingerprints RFC 8122 §5.1 asks for: SHA-256, plus the signature's hash function if
/// it is another usable one.
fn certificate_fingerprints(der: &[u8]) -> Vec<Fingerprint> {
    let mut out = vec![Fingerprint::sha256(der)];
    if let Some(h) = signature_hash(der) {
        if h != HashFunction::Sha256 {
            if let Some(f) = Fingerprint::of_certificate(h, der) {
                out.push(f);
            }
        }
    }
    out
}

/// The hash function of a DER certificate's `signatureAlgorithm` (RFC 5280 §4.1.1.2), for
/// the usual RSA PKCS#1 v1.5 and ECDSA algorithms; `None` for the others (Ed25519 has no
/// separate hash, RSA-PSS carries it in parameters) and for anything unparsable.
fn signature_hash(der: &[u8]) -> Option<HashFunction> {
    let (tag, cert, _) = der_tlv(der)?;
    if tag != 0x30 {
        return None;
    }
    let (_, _tbs, rest) = der_tlv(cert)?;
    let (tag, alg, _) = der_tlv(rest)?;
    if tag != 0x30 {
        return None;
    }
    let (tag, oid, _) = der_tlv(alg)?;
    if tag != 0x06 {
        return None;
    }
    const RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01]; // 1.2.840.113549.1.1
    const ECDSA: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04]; // 1.2.840.10045.4
    if let Some(last) = oid.strip_prefix(RSA) {
        return match last {
            [0x05] => Some(HashFunction::Sha1),
            [0x0b] => Some(HashFunction::Sha256),
            [0x0c] => Some(HashFunction::Sha384),
            [0x0d] => Some(HashFunction::Sha512),
            [0x0e] => Some(HashFunction::Sha224),
            _ => None,
        };
    }
    if let Some(last) = oid.strip_prefix(ECDSA) {
        return match last {
            [0x01] => Some(HashFunction::Sha1),
            [0x03, 0x01] => Some(HashFunction::Sha224),
            [0x03, 0x02] => Some(HashFunction::Sha256),
            [0x03, 0x03] => Some(HashFunction::Sha384),
            [0x03, 0x04] => Some(HashFunction::Sha512),
            _ => None,
        };
    }
    None
}

/// One DER tag-length-value: (tag, contents, what follows).
fn der_tlv(b: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let tag = *b.first()?;
    let l0 = *b.get(1)?;
    let (len, header) = if l0 < 0x80 {
        (l0 as usize, 2)
    } else {
        let n = (l0 & 0x7f) as usize;
        if n == 0 || n > 4 {
            return None;
        }
        let mut len = 0usize;
        for i in 0..n {
            len = (len << 8) | *b.get(2 + i)? as usize;
        }
        (len, 2 + n)
    };
    let end = header.checked_add(len)?;
    Some((tag, b.get(header..end)?, &b[end..]))
}

fn pem_encode(label: &str, der: &[u8]) -> String {
    const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut b64 = String::with_capacity(der.len().div_ceil(3) * 4);
    for chunk in der.chunks(3) {
        let n = (chunk[0] as u32) << 16
            | (*chunk.get(1).unwrap_or(&0) as u32) << 8
            | *chunk.get(2).unwrap_or(&0) as u32;
        for i in 0..4 {
            if i <= chunk.len() {
                b64.push(B64[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                b64.push('=');
            }
        }
    }
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

fn read_pem_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let file_err = |reason: String| TlsError::File {
        path: path.to_path_buf(),
        reason,
    };
    let f = std::fs::File::open(path).map_err(|e| file_err(e.to_string()))?;
    let certs = rustls_pemfile::certs(&mut BufReader::new(f))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_err(format!("not a PEM certificate file: {e}")))?;
    if certs.is_empty() {
        return Err(file_err("no PEM CERTIFICATE block in this file".into()));
    }
    Ok(certs)
}

/// Loads the CA certificates of a PEM file (`--ca FILE`) as trust anchors.
pub fn load_ca_file(path: &Path) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in read_pem_certs(path)? {
        roots.add(cert).map_err(|e| TlsError::File {
            path: path.to_path_buf(),
            reason: format!("not a usable CA certificate: {e}"),
        })?;
    }
    Ok(roots)
}

/// The system's trust anchors (through `rustls-native-certs`); unusable entries are
/// skipped. Fails if none could be loaded.
pub fn native_roots() -> Result<RootCertStore, TlsError> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    roots.add_parsable_certificates(found.certs);
    if roots.is_empty() {
        let why = found
            .errors
            .iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join("; ");
        return Err(TlsError::Config(format!(
            "no system CA certificates found{}{why}",
            if why.is_empty() { "" } else { ": " }
        )));
    }
    Ok(roots)
}

/// The CA roots for verifying a peer without a fingerprint: the certificates of `ca_file`
/// if given, plus the system's if `system` (or if no file is given).
pub fn ca_roots(ca_file: Option<&Path>, system: bool) -> Result<Arc<RootCertStore>, TlsError> {
    let mut roots = match ca_file {
        Some(path) => load_ca_file(path)?,
        None => RootCertStore::empty(),
    };
    if system || ca_file.is_none() {
        roots.extend(native_roots()?.roots);
    }
    Ok(Arc::new(roots))
}

/// How to authenticate the peer.
#[derive(Debug, Clone)]
pub enum PeerAuth {
    /// Pin the peer's certificate to its SDP `a=fingerprint` values (RFC 8122 §5.1). On the
    /// server side the client certificate is requested and required (RFC 8122 §6.2).
    Fingerprints(Vec<Fingerprint>),
    /// Verify the peer's chain against CA roots: as a client with the host name given to
    /// [`connect_tls`] (a relay, RFC 4976); as a server requiring a client certificate
    /// issued under these roots.
    CaRoots(Arc<RootCertStore>),
    /// Server only: require a client certificate (its handshake signatures are verified) but
    /// check it against the fingerprint later, with [`verify_peer_fingerprint`], because the
    /// SDP answer carrying it has not arrived yet (RFC 8122 §6.2).
    FingerprintPending,
    /// Server only: do not ask for a client certificate (RFC 8122 §6.2 without offer/answer;
    /// RFC 4976 relays authenticate clients with AUTH instead).
    NoClientCertificate,
}

impl PeerAuth {
    /// How to authenticate the peer of a negotiated session: pin its `a=fingerprint` when
    /// the plan says it can be verified (TLS, no relay in the path, the peer sent one);
    /// otherwise, as TLS client, verify against `ca_roots` (a relay, or a peer without
    /// fingerprint), and as TLS server accept without a client certificate (RFC 6135 §4.3:
    /// the session id of the first request then identifies the peer).
    pub fn for_plan(
        plan: &ConnectionPlan,
        ca_roots: Option<Arc<RootCertStore>>,
    ) -> Result<PeerAuth, TlsError> {
        let role = plan
            .tls_role
            .ok_or_else(|| TlsError::Config("the negotiated session does not use TLS".into()))?;
        if plan.verify_peer_fingerprint {
            return Ok(PeerAuth::Fingerprints(plan.peer_fingerprints.clone()));
        }
        match role {
            TlsRole::Server => Ok(PeerAuth::NoClientCertificate),
            TlsRole::Client => {
                let target = plan
                    .connect_to
                    .as_ref()
                    .map(server_name_for)
                    .unwrap_or_default();
                let why = if plan.via_relay {
                    "it is our relay, whose certificate is never in SDP"
                } else if plan.peer_fingerprints.is_empty() {
                    "the peer's SDP has no a=fingerprint"
                } else {
                    "a relay is in the path, so the peer's a=fingerprint cannot be used"
                };
                ca_roots.map(PeerAuth::CaRoots).ok_or_else(|| {
                    TlsError::Config(format!(
                        "cannot verify the TLS certificate of {target}: {why}; CA roots are \
                         needed (--ca FILE or the system roots)"
                    ))
                })
            }
        }
    }
}

/// The TLS server name for connecting to `uri`: its host, a DNS name or an IP address
/// (RFC 4975 §14.2: sent as SNI when it is a name).
pub fn server_name_for(uri: &MsrpUri) -> String {
    match &uri.host {
        Host::Name(n) => n.clone(),
        Host::V4(a) => a.to_string(),
        Host::V6(a) => a.to_string(),
    }
}

/// Builds the client configuration for connecting as the active side. `identity` is our
/// certificate (required by a pinning server; optional towards a relay).
pub fn client_config(
    identity: Option<&TlsIdentity>,
    peer: PeerAuth,
) -> Result<Arc<ClientConfig>, TlsError> {
    client_config_with_versions(identity, peer, ALL_VERSIONS)
}

/// [`client_config`] restricted to some TLS versions (for example
/// `&[&rustls::version::TLS12]`).
pub fn client_config_with_versions(
    identity: Option<&TlsIdentity>,
    peer: PeerAuth,
    versions: &[&'static SupportedProtocolVersion],
) -> Result<Arc<ClientConfig>, TlsError> {
    let provider = provider();
    let verifier: Arc<dyn ServerCertVerifier> = match peer {
        PeerAuth::Fingerprints(fps) => Arc::new(FingerprintVerifier::new(Some(fps), &provider)?),
        PeerAuth::CaRoots(roots) => {
            WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
                .build()
                .map_err(|e| TlsError::Config(format!("cannot verify with these CA roots: {e}")))?
        }
        PeerAuth::FingerprintPending | PeerAuth::NoClientCertificate => {
            return Err(TlsError::Config(
                "a TLS client must verify the server: give its a=fingerprint or CA roots".into(),
            ))
        }
    };
    let builder = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .map_err(|e| TlsError::Config(format!("TLS versions: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let config = match identity {
        Some(id) => builder
            .with_client_auth_cert(id.chain.clone(), id.key.clone_key())
            .map_err(|e| TlsError::Config(format!("our certificate: {e}")))?,
        None => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// Builds the server configuration for accepting as the passive side. A TLS server always
/// presents its certificate (RFC 8122 §6.2).
pub fn server_config(
    identity: &TlsIdentity,
    peer: PeerAuth,
) -> Result<Arc<ServerConfig>, TlsError> {
    server_config_with_versions(identity, peer, ALL_VERSIONS)
}

/// [`server_config`] restricted to some TLS versions.
pub fn server_config_with_versions(
    identity: &TlsIdentity,
    peer: PeerAuth,
    versions: &[&'static SupportedProtocolVersion],
) -> Result<Arc<ServerConfig>, TlsError> {
    let provider = provider();
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions)
        .map_err(|e| TlsError::Config(format!("TLS versions: {e}")))?;
    let builder = match peer {
        PeerAuth::Fingerprints(fps) => builder
            .with_client_cert_verifier(Arc::new(FingerprintVerifier::new(Some(fps), &provider)?)),
        PeerAuth::FingerprintPending => {
            builder.with_client_cert_verifier(Arc::new(FingerprintVerifier::new(None, &provider)?))
        }
        PeerAuth::CaRoots(roots) => builder.with_client_cert_verifier(
            WebPkiClientVerifier::builder_with_provider(roots, provider.clone())
                .build()
                .map_err(|e| TlsError::Config(format!("cannot verify with these CA roots: {e}")))?,
        ),
        PeerAuth::NoClientCertificate => builder.with_no_client_auth(),
    };
    let config = builder
        .with_single_cert(identity.chain.clone(), identity.key.clone_key())
        .map_err(|e| TlsError::Config(format!("our certificate: {e}")))?;
    Ok(Arc::new(config))
}

/// Connects as TLS client over an established transport (the COMEDIA active side).
/// `server_name` is the host of the peer's MSRP URI (a DNS name or an IP address, IPv6 with
/// or without brackets); it is sent as SNI (RFC 4975 §14.2) and checked only in CA mode.
pub async fn connect_tls<IO>(
    io: IO,
    server_name: &str,
    config: Arc<ClientConfig>,
    timeout: Duration,
) -> Result<ClientTlsStream<IO>, TlsError>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let host = server_name
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(server_name);
    let name = ServerName::try_from(host.to_string())
        .map_err(|_| TlsError::InvalidServerName(server_name.to_string()))?;
    let connect = TlsConnector::from(config).connect(name, io);
    match tokio::time::timeout(timeout, connect).await {
        Err(_) => Err(TlsError::Timeout(timeout)),
        Ok(r) => r.map_err(TlsError::from),
    }
}

/// Accepts as TLS server over an accepted transport (the COMEDIA passive side). A peer
/// whose certificate does not pass is refused and its connection dropped.
pub async fn accept_tls<IO>(
    io: IO,
    config: Arc<ServerConfig>,
    timeout: Duration,
) -> Result<ServerTlsStream<IO>, TlsError>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let accept = TlsAcceptor::from(config).accept(io);
    match tokio::time::timeout(timeout, accept).await {
        Err(_) => Err(TlsError::Timeout(timeout)),
        Ok(r) => r.map_err(TlsError::from),
    }
}

/// The SHA-256 fingerprint of the certificate the peer presented, if any (for logs and the
/// CLI's events).
pub fn peer_fingerprint(conn: &rustls::CommonState) -> Option<Fingerprint> {
    conn.peer_certificates()
        .and_then(|c| c.first())
        .map(|c| Fingerprint::sha256(c))
}

/// Checks the peer's certificate against its SDP fingerprints after the handshake: for a
/// connection accepted with [`PeerAuth::FingerprintPending`] once the answer has arrived
/// (RFC 8122 §6.2: data on it is not valid until then). On error the caller must close the
/// connection.
pub fn verify_peer_fingerprint(
    conn: &rustls::CommonState,
    fingerprints: &[Fingerprint],
) -> Result<(), TlsError> {
    let cert = conn
        .peer_certificates()
        .and_then(|c| c.first())
        .ok_or(TlsError::NoPeerCertificate)?;
    verify_certificate(fingerprints, cert).map_err(mismatch_error)
}

fn mismatch_error(m: FingerprintMismatch) -> TlsError {
    match m {
        FingerprintMismatch::Mismatch { expected, received } => {
            TlsError::FingerprintMismatch { expected, received }
        }
        FingerprintMismatch::NoUsableFingerprint => TlsError::NoUsableFingerprint,
    }
}

/// Pins the peer's end-entity certificate by SDP fingerprint (RFC 8122 §5.1) and verifies
/// the handshake signatures with the ring provider's algorithms. Used both as server
/// verifier (by the client) and client verifier (by the server). `None`: any certificate,
/// to be checked later ([`PeerAuth::FingerprintPending`]).
#[derive(Debug)]
struct FingerprintVerifier {
    expected: Option<Vec<Fingerprint>>,
    algorithms: rustls::crypto::WebPkiSupportedAlgorithms,
}

impl FingerprintVerifier {
    fn new(
        expected: Option<Vec<Fingerprint>>,
        provider: &CryptoProvider,
    ) -> Result<FingerprintVerifier, TlsError> {
        if let Some(fps) = &expected {
            // RFC 8122 §5: MD2/MD5 (and unknown functions) are never used to verify.
            if !fps.iter().any(|f| f.hash.preference().is_some()) {
                return Err(TlsError::NoUsableFingerprint);
            }
        }
        Ok(FingerprintVerifier {
            expected,
            algorithms: provider.signature_verification_algorithms,
        })
    }

    fn check(&self, end_entity: &CertificateDer<'_>) -> Result<(), rustls::Error> {
        let Some(expected) = &self.expected else {
            return Ok(());
        };
        // RFC 8122 §5.1: "If a certificate does not match any such fingerprint, the endpoint
        // MUST NOT establish the TLS connection." The error travels inside rustls's error
        // and is recovered by `TlsError::from`.
        verify_certificate(expected, end_entity).map_err(|m| {
            rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(m))))
        })
    }
}

impl ServerCertVerifier for FingerprintVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        // RFC 4975 §14.4: in peer-to-peer mode the names in the certificate do not matter;
        // the fingerprint binds it to the SDP.
        self.check(end_entity)?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

impl ClientCertVerifier for FingerprintVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    /// RFC 8122 §6.2: "The server MUST request a certificate; if the client does not
    /// provide one, ... the server endpoint MUST terminate the media connection".
    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.check(end_entity)?;
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_follows_setup_not_offer() {
        assert_eq!(TlsRole::from_setup_active(true), TlsRole::Client);
        assert_eq!(TlsRole::from_setup_active(false), TlsRole::Server);
        assert_eq!(TlsRole::Client.as_str(), "client");
        assert_eq!(TlsRole::Server.as_str(), "server");
    }

    #[test]
    fn generated_identity_has_sha256_fingerprint_of_its_der() {
        let id = TlsIdentity::generate().unwrap();
        assert_eq!(id.fingerprint(), &Fingerprint::sha256(id.certificate()));
        // ECDSA with SHA-256: the signature hash is SHA-256, so one fingerprint suffices
        assert_eq!(signature_hash(id.certificate()), Some(HashFunction::Sha256));
        assert_eq!(id.fingerprints().len(), 1);
        // two identities differ
        let other = TlsIdentity::generate().unwrap();
        assert_ne!(id.fingerprint(), other.fingerprint());
    }

    #[test]
    fn signature_hash_fingerprint_is_added_when_it_differs() {
        // RFC 8122 §5.1: a certificate signed with ECDSA/SHA-384 gets sha-256 and sha-384
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
        let cert = rcgen::CertificateParams::new(vec!["a.test".to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let id = TlsIdentity::new(
            vec![cert.der().clone()],
            PrivateKeyDer::try_from(key.serialize_der()).unwrap(),
        )
        .unwrap();
        let hashes: Vec<_> = id.fingerprints().iter().map(|f| f.hash.clone()).collect();
        assert_eq!(hashes, vec![HashFunction::Sha256, HashFunction::Sha384]);
        assert_eq!(
            id.fingerprints()[1],
            Fingerprint::of_certificate(HashFunction::Sha384, cert.der()).unwrap()
        );
        // Ed25519 has no separate hash function
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
        let cert = rcgen::CertificateParams::new(vec!["a.test".to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        assert_eq!(signature_hash(cert.der()), None);
        // garbage does not panic
        assert_eq!(signature_hash(b"\x30\x84\xff\xff\xff\xff"), None);
        assert_eq!(signature_hash(b""), None);
    }

    #[test]
    fn mismatched_key_is_refused() {
        let a = TlsIdentity::generate().unwrap();
        let b = TlsIdentity::generate().unwrap();
        let err = TlsIdentity::new(a.chain().to_vec(), b.key.clone_key()).unwrap_err();
        assert!(
            matches!(err, TlsError::Config(ref m) if m.contains("do not go together")),
            "{err}"
        );
    }

    #[test]
    fn pem_round_trip_through_files() {
        let dir = tempfile::tempdir().unwrap();
        let id = TlsIdentity::generate().unwrap();
        let (c, k) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
        id.write_pem_files(&c, &k).unwrap();
        let back = TlsIdentity::from_pem_files(&c, &k).unwrap();
        assert_eq!(back.fingerprint(), id.fingerprint());
        assert_eq!(back.key.secret_der(), id.key.secret_der());
        // missing and wrong files name the path
        let missing = dir.path().join("nope.pem");
        let err = TlsIdentity::from_pem_files(&missing, &k)
            .unwrap_err()
            .to_string();
        assert!(err.contains("nope.pem"), "{err}");
        let err = TlsIdentity::from_pem_files(&k, &k).unwrap_err().to_string();
        assert!(
            err.contains("k.pem") && err.contains("no PEM CERTIFICATE"),
            "{err}"
        );
        let err = TlsIdentity::from_pem_files(&c, &c).unwrap_err().to_string();
        assert!(
            err.contains("c.pem") && err.contains("no PEM private key"),
            "{err}"
        );
        // a CA file with no certificate
        let err = load_ca_file(&k).unwrap_err().to_string();
        assert!(err.contains("no PEM CERTIFICATE"), "{err}");
    }

    #[test]
    fn pem_encoding_matches_rcgen() {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["x.test".to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let norm = |s: &str| s.replace("\r\n", "\n");
        assert_eq!(
            norm(&pem_encode("CERTIFICATE", cert.der())),
            norm(&cert.pem())
        );
        assert_eq!(
            norm(&pem_encode("PRIVATE KEY", &key.serialize_der())),
            norm(&key.serialize_pem())
        );
    }

    #[test]
    fn configs_refuse_what_cannot_work() {
        let id = TlsIdentity::generate().unwrap();
        for peer in [PeerAuth::FingerprintPending, PeerAuth::NoClientCertificate] {
            let err = client_config(Some(&id), peer).unwrap_err();
            assert!(matches!(err, TlsError::Config(_)), "{err}");
        }
        let md5 =
            Fingerprint::parse("md5 00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF").unwrap();
        assert!(matches!(
            client_config(Some(&id), PeerAuth::Fingerprints(vec![md5.clone()])),
            Err(TlsError::NoUsableFingerprint)
        ));
        assert!(matches!(
            server_config(&id, PeerAuth::Fingerprints(vec![md5])),
            Err(TlsError::NoUsableFingerprint)
        ));
        let empty = Arc::new(RootCertStore::empty());
        assert!(matches!(
            client_config(None, PeerAuth::CaRoots(empty)),
            Err(TlsError::Config(_))
        ));
    }

    #[test]
    fn io_errors_unwrap_to_our_errors() {
        let m = FingerprintMismatch::Mismatch {
            expected: "sha-256 AA".into(),
            received: "sha-256 BB".into(),
        };
        let rustls_err =
            rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(m))));
        let io_err = io::Error::new(io::ErrorKind::InvalidData, rustls_err);
        match TlsError::from(io_err) {
            TlsError::FingerprintMismatch { expected, received } => {
                assert_eq!(
                    (expected.as_str(), received.as_str()),
                    ("sha-256 AA", "sha-256 BB")
                );
            }
            e => panic!("{e:?}"),
        }
        let io_err = io::Error::new(
            io::ErrorKind::InvalidData,
            rustls::Error::AlertReceived(AlertDescription::BadCertificate),
        );
        assert!(matches!(
            TlsError::from(io_err),
            TlsError::PeerRefused {
                alert: AlertDescription::BadCertificate
            }
        ));
        assert!(matches!(
            TlsError::from(io::Error::from(io::ErrorKind::UnexpectedEof)),
            TlsError::Io(_)
        ));
    }
}
