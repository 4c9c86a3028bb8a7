//! MSRP over TLS for the driver: [`TlsTransport`], a [`Transport`] for `msrps:` sessions
//! (`TCP/TLS/MSRP`, RFC 4975 §14, RFC 6135 §4.3, RFC 8122).
//!
//! # Roles
//!
//! The COMEDIA role decides the TLS role (RFC 6135 §4.3, RFC 8122 §6.2): the side that
//! `a=setup` made active opens the TCP connection and is the TLS client, whichever side
//! offered; the passive side accepts and is the TLS server.
//!
//! # Verification
//!
//! - Active side: [`Transport::prepare`] records the plan of each session; connecting to its
//!   `connect_to` pins the server's certificate to the peer's `a=fingerprint`
//!   ([`PeerAuth::for_plan`]), or, without a usable fingerprint (a relay, RFC 6135 §4.3),
//!   verifies it against the CA roots with the URI's host name. A mismatch fails the
//!   connection, so the session ends with an error naming the expected and the received
//!   fingerprint.
//! - Passive side: the server always asks for the client certificate when a session waiting
//!   for a connection has a peer fingerprint (RFC 8122 §6.2), and the connection reaches the
//!   driver only once that certificate matches the fingerprints of a session we expect a
//!   connection for. When there is exactly one such session and no offer of ours is waiting
//!   for its answer, the certificate is pinned inside the handshake (a mismatch is a TLS
//!   alert). Otherwise the handshake completes with [`PeerAuth::FingerprintPending`] and the
//!   certificate is checked afterwards with [`verify_peer_fingerprint`], waiting (up to the
//!   handshake timeout) for the answers of our pending offers: a peer that the answer made
//!   active may connect before we processed that answer (RFC 8122 §6.2). No byte of such a
//!   connection is read by the driver before the check passed.
//! - A refused connection is dropped and never bound; the listener keeps accepting, so the
//!   rightful peer can still connect until the session's connect timeout. Refusals are
//!   logged and published ([`TlsTransport::refusals`]).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustls::RootCertStore;
use tokio::net::TcpStream;
use tokio::sync::{broadcast, watch};

use msrp_proto::connection::same_target;
use msrp_proto::fingerprint::Fingerprint;
use msrp_proto::sdp::{ConnectionPlan, LocalConfig, TlsRole};
use msrp_proto::uri::MsrpUri;

use crate::endpoint::Options;
use crate::tls::{
    accept_tls, client_config, connect_tls, server_config, server_name_for,
    verify_peer_fingerprint, PeerAuth, TlsError, TlsIdentity,
};
use crate::transport::{BoxedIo, IoFuture, PlainTcp, Transport};

/// Default bound of a TLS handshake, and of the wait for a pending answer.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);
/// Sessions remembered for verifying incoming connections (the oldest are forgotten).
const MAX_EXPECTED: usize = 1024;

/// A connection the transport refused (or failed to open) because of TLS.
#[derive(Debug, Clone)]
pub struct Refusal {
    /// The peer's address (for an accepted connection).
    pub peer: Option<SocketAddr>,
    /// The target URI (for a connection we opened).
    pub to: Option<String>,
    /// Why.
    pub error: Arc<TlsError>,
}

/// What the peer of a passive session must present.
#[derive(Debug, Clone)]
enum Expect {
    /// A certificate matching these SDP fingerprints (RFC 8122 §5.1).
    Fingerprints(Vec<Fingerprint>),
    /// Nothing in particular: the peer sent no usable fingerprint (RFC 6135 §4.3: the session
    /// id of its first request identifies it).
    Any,
}

#[derive(Default)]
struct Registry {
    /// Passive sessions: (our session id, what their peer must present).
    accepting: Vec<(String, Expect)>,
    /// Our offers waiting for their answer: (our session id, forget after).
    pending: Vec<(String, Instant)>,
    /// Active sessions: (where we connect, how we verify the server).
    connecting: Vec<(MsrpUri, Result<PeerAuth, String>)>,
}

impl Registry {
    fn purge(&mut self, now: Instant) {
        self.pending.retain(|(_, until)| *until > now);
        let excess = self.accepting.len().saturating_sub(MAX_EXPECTED);
        self.accepting.drain(..excess);
        let excess = self.connecting.len().saturating_sub(MAX_EXPECTED);
        self.connecting.drain(..excess);
    }
}

/// TLS for the driver's connections, with our identity and optional CA roots.
pub struct TlsTransport {
    identity: TlsIdentity,
    ca_roots: Option<Arc<RootCertStore>>,
    handshake_timeout: Duration,
    registry: Mutex<Registry>,
    changed: watch::Sender<u64>,
    refusals: broadcast::Sender<Refusal>,
}

impl std::fmt::Debug for TlsTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsTransport")
            .field("identity", &self.identity)
            .field("ca_roots", &self.ca_roots.as_ref().map(|r| r.len()))
            .field("handshake_timeout", &self.handshake_timeout)
            .finish_non_exhaustive()
    }
}

impl TlsTransport {
    /// A transport presenting `identity` (its fingerprints go into our SDP) and verifying
    /// peers without a fingerprint against `ca_roots` (none: such peers cannot be verified
    /// as TLS servers and connecting to them fails with a message saying so).
    pub fn new(identity: TlsIdentity, ca_roots: Option<Arc<RootCertStore>>) -> TlsTransport {
        TlsTransport {
            identity,
            ca_roots,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            registry: Mutex::new(Registry::default()),
            changed: watch::channel(0).0,
            refusals: broadcast::channel(32).0,
        }
    }

    /// A transport with a freshly generated self-signed certificate (RFC 4975 §14.4).
    pub fn generated(ca_roots: Option<Arc<RootCertStore>>) -> Result<TlsTransport, TlsError> {
        Ok(TlsTransport::new(TlsIdentity::generate()?, ca_roots))
    }

    /// Bounds each handshake (and the wait for the answer that lets us verify a connection
    /// that came before it). Default [`DEFAULT_HANDSHAKE_TIMEOUT`].
    pub fn with_handshake_timeout(mut self, timeout: Duration) -> TlsTransport {
        self.handshake_timeout = timeout;
        self
    }

    /// Our identity.
    pub fn identity(&self) -> &TlsIdentity {
        &self.identity
    }

    /// Connections refused or failed because of TLS, as they happen (a bounded channel:
    /// a slow receiver misses the oldest).
    pub fn refusals(&self) -> broadcast::Receiver<Refusal> {
        self.refusals.subscribe()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Registry> {
        self.registry.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn bump(&self) {
        self.changed.send_modify(|v| *v = v.wrapping_add(1));
    }

    fn refuse(&self, peer: Option<SocketAddr>, to: Option<String>, error: TlsError) -> TlsError {
        let error = Arc::new(error);
        match (&peer, &to) {
            (Some(p), _) => tracing::warn!(peer = %p, "refused TLS connection: {error}"),
            (_, Some(t)) => tracing::warn!(to = %t, "TLS connection failed: {error}"),
            _ => tracing::warn!("TLS connection refused: {error}"),
        }
        let _ = self.refusals.send(Refusal {
            peer,
            to,
            error: error.clone(),
        });
        Arc::try_unwrap(error).unwrap_or_else(|e| TlsError::Config(e.to_string()))
    }

    /// How the server side authenticates the next client, from what we expect now.
    fn server_auth(&self) -> PeerAuth {
        let mut reg = self.lock();
        reg.purge(Instant::now());
        let pinned: Vec<&Vec<Fingerprint>> = reg
            .accepting
            .iter()
            .filter_map(|(_, e)| match e {
                Expect::Fingerprints(f) => Some(f),
                Expect::Any => None,
            })
            .collect();
        let any = reg.accepting.iter().any(|(_, e)| matches!(e, Expect::Any));
        if reg.pending.is_empty() && !any && pinned.len() == 1 {
            PeerAuth::Fingerprints(pinned[0].clone())
        } else if reg.pending.is_empty() && pinned.is_empty() {
            // RFC 6135 §4.3: no fingerprint to check, the session id identifies the peer.
            PeerAuth::NoClientCertificate
        } else {
            // RFC 8122 §6.2: request the certificate, check it once we know what to expect.
            PeerAuth::FingerprintPending
        }
    }

    /// After a [`PeerAuth::FingerprintPending`] handshake: the certificate must match one
    /// of the sessions we expect a connection for; waits for pending answers.
    async fn verify_after_handshake(&self, conn: &rustls::CommonState) -> Result<(), TlsError> {
        let deadline = tokio::time::Instant::now() + self.handshake_timeout;
        let mut changed = self.changed.subscribe();
        loop {
            let (expected, any, pending) = {
                let mut reg = self.lock();
                reg.purge(Instant::now());
                let expected: Vec<Vec<Fingerprint>> = reg
                    .accepting
                    .iter()
                    .filter_map(|(_, e)| match e {
                        Expect::Fingerprints(f) => Some(f.clone()),
                        Expect::Any => None,
                    })
                    .collect();
                let any = reg.accepting.iter().any(|(_, e)| matches!(e, Expect::Any));
                (expected, any, !reg.pending.is_empty())
            };
            let mut mismatches = Vec::new();
            for fps in &expected {
                match verify_peer_fingerprint(conn, fps) {
                    Ok(()) => return Ok(()),
                    Err(e) => mismatches.push(e),
                }
            }
            if any {
                return Ok(());
            }
            if pending {
                // RFC 8122 §6.2: the answer carrying the fingerprint may still be on its way.
                changed.borrow_and_update();
                tokio::select! {
                    r = changed.changed() => if r.is_err() { return Err(TlsError::Config("transport dropped".into())) },
                    () = tokio::time::sleep_until(deadline) => {
                        return Err(TlsError::Config(format!(
                            "the answer that would let us verify this peer's certificate did \
                             not arrive within {} s",
                            self.handshake_timeout.as_secs_f64()
                        )));
                    }
                }
                continue;
            }
            return Err(combine(mismatches));
        }
    }

    async fn accept_inner(self: Arc<Self>, tcp: TcpStream) -> Result<BoxedIo, TlsError> {
        let peer = tcp.peer_addr().ok();
        tcp.set_nodelay(true).map_err(TlsError::Io)?;
        let auth = self.server_auth();
        let pinned_in_handshake = !matches!(auth, PeerAuth::FingerprintPending);
        let config = server_config(&self.identity, auth)?;
        let tls = match accept_tls(tcp, config, self.handshake_timeout).await {
            Ok(t) => t,
            Err(e) => return Err(self.refuse(peer, None, e)),
        };
        if !pinned_in_handshake {
            if let Err(e) = self.verify_after_handshake(tls.get_ref().1).await {
                // Never handed to the driver: nothing is read from it, nothing bound.
                return Err(self.refuse(peer, None, e));
            }
        }
        Ok(Box::new(tls) as BoxedIo)
    }

    async fn connect_inner(self: Arc<Self>, to: MsrpUri) -> Result<BoxedIo, TlsError> {
        let auth = {
            let reg = self.lock();
            reg.connecting
                .iter()
                .rev()
                .find(|(t, _)| same_target(t, &to))
                .map(|(_, a)| a.clone())
        };
        let auth = match auth {
            Some(Ok(a)) => a,
            Some(Err(why)) => return Err(TlsError::Config(why)),
            // A session started without SDP: only CA verification is possible.
            None => match &self.ca_roots {
                Some(r) => PeerAuth::CaRoots(r.clone()),
                None => {
                    return Err(TlsError::Config(format!(
                        "cannot verify the TLS certificate of {to}: no a=fingerprint from \
                         SDP and no CA roots"
                    )))
                }
            },
        };
        let config = client_config(Some(&self.identity), auth)?;
        let port = to
            .port
            .ok_or_else(|| TlsError::Config(format!("{to} has no port")))?;
        let host = to.host.to_plain_string();
        let tcp = TcpStream::connect((host.as_str(), port))
            .await
            .map_err(TlsError::Io)?;
        tcp.set_nodelay(true).map_err(TlsError::Io)?;
        // RFC 6135 §4.3 / RFC 8122 §6.2: the active side is the TLS client.
        let tls = connect_tls(tcp, &server_name_for(&to), config, self.handshake_timeout).await?;
        Ok(Box::new(tls) as BoxedIo)
    }
}

/// One error for a certificate that matched none of several sessions.
fn combine(mismatches: Vec<TlsError>) -> TlsError {
    let mut expected = Vec::new();
    let mut received = None;
    for m in mismatches {
        match m {
            TlsError::FingerprintMismatch {
                expected: e,
                received: r,
            } => {
                expected.push(e);
                received.get_or_insert(r);
            }
            other => return other,
        }
    }
    match received {
        Some(received) => TlsError::FingerprintMismatch {
            expected: expected.join(" or "),
            received,
        },
        None => TlsError::Config(
            "no session is waiting for a TLS connection, so this peer's certificate cannot be \
             verified"
                .into(),
        ),
    }
}

fn to_io(e: TlsError) -> std::io::Error {
    let kind = match &e {
        TlsError::Io(io) => io.kind(),
        TlsError::Timeout(_) => std::io::ErrorKind::TimedOut,
        _ => std::io::ErrorKind::PermissionDenied,
    };
    std::io::Error::new(kind, e.to_string())
}

impl Transport for Arc<TlsTransport> {
    fn connect(&self, to: &MsrpUri) -> IoFuture {
        if !to.is_secure() {
            // RFC 4975 §8.2: the URI gives the protection level; `msrp:` is plain TCP.
            return PlainTcp.connect(to);
        }
        let this = self.clone();
        let to = to.clone();
        Box::pin(async move {
            let target = to.to_string();
            match this.clone().connect_inner(to).await {
                Ok(io) => Ok(io),
                Err(e) => Err(to_io(this.refuse(None, Some(target), e))),
            }
        })
    }

    fn accept(&self, tcp: TcpStream) -> IoFuture {
        let this = self.clone();
        Box::pin(async move { this.accept_inner(tcp).await.map_err(to_io) })
    }

    fn prepare(&self, plan: &ConnectionPlan) {
        {
            let mut reg = self.lock();
            reg.pending
                .retain(|(id, _)| *id != plan.expected_session_id);
            match plan.tls_role {
                Some(TlsRole::Server) => {
                    let expect = if plan.verify_peer_fingerprint {
                        Expect::Fingerprints(plan.peer_fingerprints.clone())
                    } else {
                        Expect::Any
                    };
                    reg.accepting
                        .retain(|(id, _)| *id != plan.expected_session_id);
                    reg.accepting
                        .push((plan.expected_session_id.clone(), expect));
                }
                Some(TlsRole::Client) => {
                    if let Some(to) = &plan.connect_to {
                        let auth = PeerAuth::for_plan(plan, self.ca_roots.clone())
                            .map_err(|e| e.to_string());
                        reg.connecting.push((to.clone(), auth));
                    }
                }
                None => {}
            }
            reg.purge(Instant::now());
        }
        self.bump();
    }

    fn offer_created(&self, local_uri: &MsrpUri) {
        if let Some(id) = &local_uri.session_id {
            let until = Instant::now() + self.handshake_timeout.max(Duration::from_secs(1)) * 4;
            self.lock().pending.push((id.clone(), until));
        }
    }

    fn configure_local(&self, cfg: &mut LocalConfig) {
        // RFC 4975 §14.2 / RFC 8122 §5: TCP/TLS/MSRP with our certificate's fingerprints.
        cfg.tls = true;
        let mut fps = self.identity.fingerprints().iter().cloned();
        cfg.fingerprint = fps.next();
        cfg.extra_fingerprints = fps.collect();
    }
}

impl Options {
    /// TLS on `listen` with `transport`'s identity, default settings otherwise
    /// (`msrps:` URIs and `a=fingerprint` in our SDP).
    pub fn tls(listen: SocketAddr, transport: Arc<TlsTransport>) -> Options {
        let mut o = Options::new(listen);
        o.transport = Arc::new(transport);
        o
    }
}
