//! STUN client over UDP and TCP: drives the sans-IO [`msrp_proto::stun::Discovery`] with
//! tokio sockets and timers.
//!
//! [`discover_reachability`] answers the RFC 6135 §4.2.2 question "can this UA offer
//! `actpass`?" by running the RFC 5780 tests from the local address the MSRP transport will
//! use.
//!
//! # Running from the MSRP listener's TCP port
//!
//! RFC 6135 §4.2.2 wants STUN "through the local port to be used for the eventual transport
//! connection". Over TCP every test connection is therefore bound to the given local port
//! before connecting, with `SO_REUSEADDR` and `SO_REUSEPORT` set. Linux lets a socket bind to a
//! port that a listening socket already holds only when **both** sockets set `SO_REUSEPORT`
//! (and belong to the same user), so the MSRP listener must also be created with
//! `set_reuseport(true)` (and `set_reuseaddr(true)`, so that the connections this client leaves
//! in TIME_WAIT do not block it).
//!
//! Over TCP only the mapping tests apply (RFC 5780 §3.2: the filtering test "applies only to
//! UDP datagrams"); the report says so and the verdict stays conservative.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use msrp_proto::stun::message::MAX_MESSAGE_LEN;
use msrp_proto::stun::{frame_len, Discovery, TransactionId, Transmit};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream, UdpSocket};
use tokio::time::Instant;

pub use msrp_proto::stun::{
    DiscoveryError, NatBehavior, NatReport, OfferSetup, StunConfig, Transport, Verdict,
};

/// Why STUN discovery failed.
#[derive(Debug, thiserror::Error)]
pub enum StunError {
    /// A local socket could not be set up (bind, address in use...).
    #[error("cannot use local address {local}: {source}")]
    Local {
        /// The local address.
        local: SocketAddr,
        /// The IO error.
        #[source]
        source: io::Error,
    },
    /// The local and server addresses are of different families.
    #[error("local address {local} and STUN server {server} are not the same IP version")]
    FamilyMismatch {
        /// Local address.
        local: SocketAddr,
        /// Server address.
        server: SocketAddr,
    },
    /// The discovery itself failed (server unreachable, error response...).
    #[error(transparent)]
    Discovery(#[from] DiscoveryError),
}

/// Runs RFC 5780 NAT behaviour discovery against `stun` from `local` with the default
/// RFC 8489 timers and returns the report whose [`verdict`](NatReport::verdict) says which
/// `a=setup` to offer. With `tcp`, the tests run over TCP from `local`'s port (see the module
/// docs about `SO_REUSEPORT`); otherwise over UDP from the same port number.
///
/// A `local` with an unspecified IP (`0.0.0.0:5000`) is resolved to the source address the
/// kernel routes towards `stun` (no packet is sent for that); port 0 picks a free port.
pub async fn discover_reachability(
    stun: SocketAddr,
    local: SocketAddr,
    tcp: bool,
) -> Result<NatReport, StunError> {
    let transport = if tcp { Transport::Tcp } else { Transport::Udp };
    discover(stun, local, transport, StunConfig::default()).await
}

/// What an MSRP UA listening on TCP at `local` needs for RFC 6135 §4.2.2: the mapped TCP
/// address and TCP mapping behaviour from discovery over TCP from the listener's port (see
/// the module docs about `SO_REUSEPORT`), and the filtering behaviour from a UDP discovery
/// from the same port number, combined by
/// [`combine_tcp_with_udp_filtering`](msrp_proto::stun::combine_tcp_with_udp_filtering)
/// (which states its assumption in the reason). Fails only if the TCP discovery fails; a
/// failed UDP run leaves filtering unknown.
pub async fn discover_tcp_with_udp_filtering(
    stun: SocketAddr,
    local: SocketAddr,
    config: StunConfig,
) -> Result<NatReport, StunError> {
    let tcp = discover(stun, local, Transport::Tcp, config.clone()).await?;
    let udp_local = SocketAddr::new(tcp.local.ip(), tcp.local.port());
    let udp = match discover(stun, udp_local, Transport::Udp, config).await {
        Ok(r) => Ok(r),
        Err(StunError::Discovery(e)) => Err(e),
        Err(other) => Err(DiscoveryError::Transport {
            server: stun,
            transport: Transport::Udp,
            why: other.to_string(),
        }),
    };
    Ok(msrp_proto::stun::combine_tcp_with_udp_filtering(tcp, udp))
}

/// [`discover_reachability`] with an explicit transport and timer configuration.
pub async fn discover(
    stun: SocketAddr,
    local: SocketAddr,
    transport: Transport,
    config: StunConfig,
) -> Result<NatReport, StunError> {
    if stun.is_ipv4() != local.is_ipv4() {
        return Err(StunError::FamilyMismatch {
            local,
            server: stun,
        });
    }
    let ip = if local.ip().is_unspecified() {
        route_source(stun)
            .await
            .map_err(|source| StunError::Local { local, source })?
    } else {
        local.ip()
    };
    match transport {
        Transport::Udp => run_udp(stun, SocketAddr::new(ip, local.port()), config).await,
        Transport::Tcp => run_tcp(stun, SocketAddr::new(ip, local.port()), config).await,
    }
}

/// The source IP the kernel would use towards `dest`: connecting a UDP socket only looks up
/// the route, it sends nothing.
async fn route_source(dest: SocketAddr) -> io::Result<IpAddr> {
    let any: SocketAddr = if dest.is_ipv4() {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let s = UdpSocket::bind(any).await?;
    s.connect(dest).await?;
    Ok(s.local_addr()?.ip())
}

/// RFC 8489 §5: "The transaction ID MUST be uniformly and randomly chosen from the interval
/// 0 .. 2**96-1, and MUST be cryptographically random." `rand`'s thread RNG is a CSPRNG.
fn random_ids() -> Box<dyn FnMut() -> TransactionId + Send> {
    Box::new(|| TransactionId(rand::random::<[u8; 12]>()))
}

fn std_now() -> std::time::Instant {
    std::time::Instant::now()
}

async fn run_udp(
    server: SocketAddr,
    local: SocketAddr,
    config: StunConfig,
) -> Result<NatReport, StunError> {
    let sock = UdpSocket::bind(local)
        .await
        .map_err(|source| StunError::Local { local, source })?;
    let local = sock
        .local_addr()
        .map_err(|source| StunError::Local { local, source })?;
    tracing::debug!(%server, %local, "STUN discovery over UDP");
    let mut d = Discovery::new(
        server,
        local,
        Transport::Udp,
        config,
        random_ids(),
        std_now(),
    );
    let mut buf = vec![0u8; MAX_MESSAGE_LEN];
    loop {
        while let Some(tx) = d.poll_transmit() {
            tracing::trace!(dest = %tx.destination, len = tx.contents.len(), "STUN send");
            if let Err(e) = sock.send_to(&tx.contents, tx.destination).await {
                // RFC 8489 §6.2.1: a hard ICMP error fails the transaction.
                d.handle_transport_failure(tx.destination, &e.to_string(), std_now());
            }
        }
        if let Some(r) = d.poll_result() {
            return r.map_err(StunError::from);
        }
        let Some(deadline) = d.poll_timeout() else {
            // Finished without a result cannot happen; treat as a timeout defensively.
            return Err(StunError::Discovery(DiscoveryError::Timeout {
                server,
                transport: Transport::Udp,
                requests: 0,
                after_ms: 0,
            }));
        };
        tokio::select! {
            _ = tokio::time::sleep_until(Instant::from_std(deadline)) => {
                d.handle_timeout(std_now());
            }
            r = sock.recv_from(&mut buf) => match r {
                Ok((n, from)) => {
                    if let Err(e) = d.handle_input(from, &buf[..n], std_now()) {
                        tracing::debug!(%from, error = %e, "ignoring non-STUN datagram");
                    }
                }
                Err(e) => {
                    // An ICMP error reported on the socket (Linux reports them on connected
                    // sockets only, so this is rare); the retransmission timers go on.
                    tracing::debug!(error = %e, "UDP receive error");
                }
            },
        }
    }
}

/// Binds and listens on `addr` with `SO_REUSEADDR` and `SO_REUSEPORT`: the way an MSRP
/// listener must be created for [`discover_reachability`] over TCP to run from its port
/// (see the module docs).
pub fn bind_shared_listener(addr: SocketAddr) -> io::Result<tokio::net::TcpListener> {
    bound_tcp_socket(addr)?.listen(1024)
}

/// A TCP socket bound to `local` with `SO_REUSEADDR` and `SO_REUSEPORT`, so several test
/// connections and the MSRP listener can share the port.
fn bound_tcp_socket(local: SocketAddr) -> io::Result<TcpSocket> {
    let s = if local.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    s.set_reuseaddr(true)?;
    #[cfg(all(unix, not(target_os = "solaris"), not(target_os = "illumos")))]
    s.set_reuseport(true)?;
    s.bind(local)?;
    Ok(s)
}

/// One test connection and its receive buffer.
struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
}

async fn run_tcp(
    server: SocketAddr,
    mut local: SocketAddr,
    config: StunConfig,
) -> Result<NatReport, StunError> {
    if local.port() == 0 {
        // Pick the port once; every test connection then binds to it.
        let probe = bound_tcp_socket(local).map_err(|source| StunError::Local { local, source })?;
        local = probe
            .local_addr()
            .map_err(|source| StunError::Local { local, source })?;
        drop(probe);
    }
    tracing::debug!(%server, %local, "STUN discovery over TCP");
    let mut d = Discovery::new(
        server,
        local,
        Transport::Tcp,
        config,
        random_ids(),
        std_now(),
    );
    let mut conns: HashMap<SocketAddr, Conn> = HashMap::new();
    let mut current: Option<SocketAddr> = None;
    loop {
        while let Some(tx) = d.poll_transmit() {
            current = Some(tx.destination);
            if let Err(why) = tcp_send(&mut conns, local, &tx, d.poll_timeout()).await {
                if let TcpSendError::Local(source) = why {
                    return Err(StunError::Local { local, source });
                }
                let msg = why.to_string();
                tracing::debug!(dest = %tx.destination, error = %msg, "STUN over TCP failed");
                conns.remove(&tx.destination);
                d.handle_transport_failure(tx.destination, &msg, std_now());
            }
        }
        if let Some(r) = d.poll_result() {
            return r.map_err(StunError::from);
        }
        let Some(deadline) = d.poll_timeout() else {
            return Err(StunError::Discovery(DiscoveryError::Timeout {
                server,
                transport: Transport::Tcp,
                requests: 0,
                after_ms: 0,
            }));
        };
        let conn = current.and_then(|c| conns.get_mut(&c));
        let Some(conn) = conn else {
            // No connection to read from: just wait for the timer.
            tokio::time::sleep_until(Instant::from_std(deadline)).await;
            d.handle_timeout(std_now());
            continue;
        };
        let dest = current.unwrap_or(server);
        let mut chunk = [0u8; 2048];
        tokio::select! {
            _ = tokio::time::sleep_until(Instant::from_std(deadline)) => {
                d.handle_timeout(std_now());
            }
            r = conn.stream.read(&mut chunk) => match r {
                Ok(0) => {
                    conns.remove(&dest);
                    d.handle_transport_failure(dest, "connection closed by the server", std_now());
                }
                Ok(n) => {
                    conn.buf.extend_from_slice(&chunk[..n]);
                    // RFC 8489 §6.2.2: on a STUN-only connection the header length delimits
                    // messages. Bounded: frame_len rejects anything over MAX_MESSAGE_LEN.
                    loop {
                        match frame_len(&conn.buf) {
                            Ok(Some(len)) if conn.buf.len() >= len => {
                                let msg: Vec<u8> = conn.buf.drain(..len).collect();
                                if let Err(e) = d.handle_input(dest, &msg, std_now()) {
                                    tracing::debug!(error = %e, "ignoring bad STUN message");
                                }
                            }
                            Ok(_) => break,
                            Err(e) => {
                                conns.remove(&dest);
                                d.handle_transport_failure(
                                    dest,
                                    &format!("server sent a bad STUN stream: {e}"),
                                    std_now(),
                                );
                                break;
                            }
                        }
                    }
                }
                Err(e) => {
                    conns.remove(&dest);
                    d.handle_transport_failure(dest, &e.to_string(), std_now());
                }
            },
        }
    }
}

#[derive(Debug, thiserror::Error)]
enum TcpSendError {
    /// Binding the local port failed: a local problem, not the server's.
    #[error("{0}")]
    Local(io::Error),
    #[error("cannot connect to {dest}: {source}")]
    Connect { dest: SocketAddr, source: io::Error },
    #[error("connecting to {dest} timed out")]
    ConnectTimeout { dest: SocketAddr },
    #[error("cannot send to {dest}: {source}")]
    Write { dest: SocketAddr, source: io::Error },
}

async fn tcp_send(
    conns: &mut HashMap<SocketAddr, Conn>,
    local: SocketAddr,
    tx: &Transmit,
    deadline: Option<std::time::Instant>,
) -> Result<(), TcpSendError> {
    let dest = tx.destination;
    let conn = match conns.entry(dest) {
        std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
        std::collections::hash_map::Entry::Vacant(e) => {
            let sock = bound_tcp_socket(local).map_err(TcpSendError::Local)?;
            // The connect attempt is bounded by the transaction's Ti deadline.
            let limit = deadline
                .map(Instant::from_std)
                .unwrap_or_else(|| Instant::now() + Duration::from_secs(40));
            let stream = match tokio::time::timeout_at(limit, sock.connect(dest)).await {
                Ok(Ok(s)) => s,
                Ok(Err(source)) => return Err(TcpSendError::Connect { dest, source }),
                Err(_) => return Err(TcpSendError::ConnectTimeout { dest }),
            };
            let _ = stream.set_nodelay(true);
            e.insert(Conn {
                stream,
                buf: Vec::new(),
            })
        }
    };
    conn.stream
        .write_all(&tx.contents)
        .await
        .map_err(|source| TcpSendError::Write { dest, source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transaction_ids_are_random() {
        // 1000 draws of 96 bits: any repeat (or a constant generator) fails.
        let mut next = random_ids();
        let ids: std::collections::HashSet<[u8; 12]> = (0..1000).map(|_| next().0).collect();
        assert_eq!(ids.len(), 1000);
        // Every byte position varies (not a counter in the low bytes).
        let all: Vec<[u8; 12]> = ids.into_iter().collect();
        for pos in 0..12 {
            assert!(
                all.iter().any(|id| id[pos] != all[0][pos]),
                "byte {pos} constant"
            );
        }
    }
}
