//! The STUN client against a real STUN server: Debian coturn (`turnserver --stun-only`) on
//! 127.0.0.1 and 127.0.0.2. On loopback there is no NAT, so every verdict must be
//! NotBehindNat with the mapped address equal to the local address.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use common::coturn::Coturn;
use msrp::proto::stun::{Attribute, Class, Message, TransactionId};
use msrp::stun::{
    discover, discover_reachability, DiscoveryError, NatBehavior, OfferSetup, StunConfig,
    StunError, Transport, Verdict,
};

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

#[tokio::test]
async fn udp_discovery_on_loopback_is_not_behind_nat() {
    let Some(srv) = Coturn::start(true) else {
        return;
    };
    let r = discover_reachability(srv.primary, sa("127.0.0.1:0"), false)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", srv.log()));
    assert_eq!(r.transport, Transport::Udp);
    assert_ne!(r.local.port(), 0);
    assert_eq!(r.mapped, r.local, "no NAT on loopback");
    assert_eq!(r.verdict, Verdict::NotBehindNat, "{}", r.reason);
    assert_eq!(r.verdict.offer_setup(), OfferSetup::ActPass);
    assert_eq!(r.mapping, NatBehavior::EndpointIndependent);
    // coturn honoured CHANGE-REQUEST(change IP and port): the response came from
    // 127.0.0.2:alt and reached us, so filtering is endpoint-independent.
    assert_eq!(
        r.filtering,
        NatBehavior::EndpointIndependent,
        "{}",
        r.reason
    );
    assert_eq!(r.other_address, Some(srv.alternate));
    assert_eq!(r.response_origin, Some(srv.primary));
}

#[tokio::test]
async fn udp_discovery_from_wildcard_local_address() {
    let Some(srv) = Coturn::start(true) else {
        return;
    };
    // 0.0.0.0 is resolved to the source address routed towards the server (127.0.0.1).
    let r = discover_reachability(srv.primary, sa("0.0.0.0:0"), false)
        .await
        .unwrap();
    assert_eq!(r.local.ip(), sa("127.0.0.1:0").ip());
    assert_eq!(r.mapped, r.local);
    assert_eq!(r.verdict, Verdict::NotBehindNat);
}

#[tokio::test]
async fn tcp_discovery_runs_from_the_msrp_listener_port() {
    let Some(srv) = Coturn::start(true) else {
        return;
    };
    // An MSRP listener created as the module docs ask (SO_REUSEADDR and SO_REUSEPORT).
    let listener = msrp::stun::bind_shared_listener(sa("127.0.0.1:0")).unwrap();
    let listen_addr = listener.local_addr().unwrap();

    let r = discover_reachability(srv.primary, listen_addr, true)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", srv.log()));
    assert_eq!(r.transport, Transport::Tcp);
    assert_eq!(r.local, listen_addr);
    // The STUN connection left from the listener's port: the server saw exactly it.
    assert_eq!(r.mapped, listen_addr);
    assert_eq!(r.verdict, Verdict::NotBehindNat, "{}", r.reason);
    assert_eq!(r.verdict.offer_setup(), OfferSetup::ActPass);
    // RFC 5780 §3.2: no filtering test over TCP.
    assert_eq!(r.filtering, NatBehavior::NotTested);

    // The listener still accepts connections after discovery.
    let accept = tokio::spawn(async move { listener.accept().await.map(|(_, a)| a) });
    let c = tokio::net::TcpStream::connect(listen_addr).await.unwrap();
    let peer = tokio::time::timeout(Duration::from_secs(5), accept)
        .await
        .expect("accept in time")
        .unwrap()
        .unwrap();
    assert_eq!(peer, c.local_addr().unwrap());
}

#[tokio::test]
async fn tcp_without_reuseport_on_listener_is_a_clear_local_error() {
    let Some(srv) = Coturn::start(true) else {
        return;
    };
    // A listener without SO_REUSEPORT blocks the port: we must say so, not hang.
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    match discover_reachability(srv.primary, addr, true).await {
        Err(StunError::Local { local, source }) => {
            assert_eq!(local, addr);
            assert_eq!(source.kind(), std::io::ErrorKind::AddrInUse);
        }
        other => panic!("expected a local bind error, got {other:?}"),
    }
}

#[tokio::test]
async fn server_without_rfc5780_gives_no_behaviour_but_a_verdict() {
    let Some(srv) = Coturn::start(false) else {
        return;
    };
    let r = discover_reachability(srv.primary, sa("127.0.0.1:0"), false)
        .await
        .unwrap();
    assert_eq!(r.other_address, None);
    assert_eq!(r.mapped, r.local);
    assert_eq!(r.verdict, Verdict::NotBehindNat);
    assert_eq!(r.filtering, NatBehavior::NotTested);
    assert!(r.reason.contains("no OTHER-ADDRESS"), "{}", r.reason);
}

#[tokio::test]
async fn udp_timeout_when_nothing_listens() {
    // A port nobody listens on: bind one, remember it, close it.
    let port = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dead = SocketAddr::from(([127, 0, 0, 1], port));
    let cfg = StunConfig::default().with_rto(Duration::from_millis(10));
    let started = std::time::Instant::now();
    let r = discover(dead, sa("127.0.0.1:0"), Transport::Udp, cfg.clone()).await;
    match r {
        Err(StunError::Discovery(DiscoveryError::Timeout {
            server, requests, ..
        })) => {
            assert_eq!(server, dead);
            assert_eq!(requests, 7, "Rc = 7 requests before giving up");
        }
        other => panic!("expected timeout, got {other:?}"),
    }
    // (2^6 - 1 + 16) x 10 ms = 790 ms: it waited for the whole schedule.
    assert!(started.elapsed() >= cfg.udp_total());
}

#[tokio::test]
async fn tcp_refused_when_nothing_listens() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dead = SocketAddr::from(([127, 0, 0, 1], port));
    match discover_reachability(dead, sa("127.0.0.1:0"), true).await {
        Err(StunError::Discovery(DiscoveryError::Transport { server, why, .. })) => {
            assert_eq!(server, dead);
            assert!(why.contains("refused"), "{why}");
        }
        other => panic!("expected connection refused, got {other:?}"),
    }
}

#[tokio::test]
async fn family_mismatch_is_an_error() {
    let r = discover_reachability(sa("127.0.0.1:3478"), sa("[::1]:0"), false).await;
    assert!(matches!(r, Err(StunError::FamilyMismatch { .. })));
}

/// Cross-checks our codec against coturn's bytes: a request we encode (with FINGERPRINT and
/// CHANGE-REQUEST) is accepted, and coturn's response decodes with the attributes RFC 5780
/// §6.1 requires.
#[test]
fn codec_cross_check_with_coturn() {
    let Some(srv) = Coturn::start(true) else {
        return;
    };
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let me = s.local_addr().unwrap();
    for (change_ip, change_port, expect_from) in [
        (false, false, srv.primary),
        (true, true, srv.alternate),
        (
            false,
            true,
            SocketAddr::new(srv.primary.ip(), srv.alternate.port()),
        ),
        (
            true,
            false,
            SocketAddr::new(srv.alternate.ip(), srv.primary.port()),
        ),
    ] {
        let tid = TransactionId(rand_tid(change_ip, change_port));
        let req = Message::binding_request(
            tid,
            vec![
                Attribute::ChangeRequest {
                    change_ip,
                    change_port,
                },
                Attribute::Software("msrp-rs test".into()),
            ],
        );
        s.send_to(&req.encode(true), srv.primary).unwrap();
        let mut buf = [0u8; 2048];
        let (n, from) = s.recv_from(&mut buf).expect("coturn answers");
        let resp = Message::decode(&buf[..n]).unwrap_or_else(|e| panic!("{e}: {:02x?}", &buf[..n]));
        assert_eq!(resp.class, Class::SuccessResponse);
        assert_eq!(resp.transaction_id, tid);
        // RFC 5780 §6.1, Table 1: the source depends on the flags.
        assert_eq!(from, expect_from, "flags ip={change_ip} port={change_port}");
        // "The server MUST include both MAPPED-ADDRESS and XOR-MAPPED-ADDRESS".
        let xma = resp.find(|a| match a {
            Attribute::XorMappedAddress(x) => Some(*x),
            _ => None,
        });
        let ma = resp.find(|a| match a {
            Attribute::MappedAddress(x) => Some(*x),
            _ => None,
        });
        assert_eq!(xma, Some(me));
        assert_eq!(ma, Some(me));
        // "MUST add a RESPONSE-ORIGIN attribute ... containing the source address and port".
        assert_eq!(resp.response_origin(), Some(from));
        // OTHER-ADDRESS is Ca:Cp whatever the flags.
        assert_eq!(resp.other_address(), Some(srv.alternate));
        // With --fingerprint coturn adds FINGERPRINT, which Message::decode verified against
        // our CRC-32 (coturn quirk: only on responses from the address the request went to).
        let has_fp = matches!(resp.attributes.last(), Some(Attribute::Fingerprint(_)));
        if !change_ip && !change_port {
            assert!(has_fp, "{resp:?}");
        }
    }
}

fn rand_tid(a: bool, b: bool) -> [u8; 12] {
    let mut t = *b"cross-check0";
    t[11] = b'0' + (a as u8) * 2 + b as u8;
    t
}
