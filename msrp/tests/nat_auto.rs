//! `--reachability auto` glue ([`msrp::nat::resolve_reachability`]) against a real STUN
//! server: Debian coturn on 127.0.0.1/127.0.0.2. Loopback has no NAT, so auto must say
//! reachable and offer actpass with the listener's own address (RFC 6135 §4.2.2). The NAT
//! cases run through real namespaces in `msrp-cli/tests/nat_sessions.rs`.

mod common;

use std::time::Duration;

use common::coturn::Coturn;
use msrp::nat::resolve_reachability;
use msrp::proto::sdp::Reachability;
use msrp::stun::{OfferSetup, StunConfig, Verdict};
use msrp::{MsrpEndpoint, Options};

#[tokio::test]
async fn auto_on_loopback_is_reachable_and_offers_actpass_with_the_listener_address() {
    let Some(srv) = Coturn::start(true) else {
        return;
    };
    let mut opts = Options::new("127.0.0.1:0".parse().unwrap());
    opts.reuse_port = true;
    let ep = MsrpEndpoint::bind(opts).await.unwrap();
    let listen = ep.local_addr();

    // Discovery runs from the live listener's port (TCP) and the same UDP port number.
    let nat = resolve_reachability(
        srv.primary,
        listen,
        StunConfig::default().with_rto(Duration::from_millis(50)),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", srv.log()));
    assert_eq!(
        nat.report.local, listen,
        "TCP tests left from the listener port"
    );
    assert_eq!(nat.report.mapped, listen);
    assert_eq!(
        nat.report.verdict,
        Verdict::NotBehindNat,
        "{}",
        nat.report.reason
    );
    assert_eq!(nat.reachability, Reachability::Reachable);
    assert_eq!(nat.advertised, listen);
    assert_eq!(nat.offer_setup(), OfferSetup::ActPass);
    // The filtering came from UDP, and the reason says it was assumed for TCP.
    assert!(
        nat.report
            .reason
            .contains("assuming the NAT filters TCP as it filters UDP"),
        "{}",
        nat.report.reason
    );

    let mut cfg = ep.local_config();
    cfg.reachability = Reachability::BehindNat; // overwritten by apply
    nat.apply(&mut cfg);
    let offered = ep.create_offer(&cfg).await.unwrap();
    let sdp = offered.offer().to_string();
    assert!(sdp.contains("a=setup:actpass"), "{sdp}");
    assert!(
        sdp.contains(&format!("msrp://127.0.0.1:{}/", listen.port())),
        "{sdp}"
    );
    assert!(
        sdp.contains(&format!("m=message {} TCP/MSRP", listen.port())),
        "{sdp}"
    );

    // The listener still accepts after discovery shared its port.
    let c = tokio::time::timeout(
        Duration::from_secs(5),
        tokio::net::TcpStream::connect(listen),
    )
    .await
    .expect("connect in time");
    assert!(c.is_ok(), "{c:?}");
}

#[tokio::test]
async fn auto_with_an_unanswering_server_fails_within_the_retransmission_budget() {
    // A TCP port nobody listens on: connection refused, a clear error, no hang.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let stun = format!("127.0.0.1:{port}").parse().unwrap();
    let mut opts = Options::new("127.0.0.1:0".parse().unwrap());
    opts.reuse_port = true;
    let ep = MsrpEndpoint::bind(opts).await.unwrap();
    let r = tokio::time::timeout(
        Duration::from_secs(30),
        resolve_reachability(
            stun,
            ep.local_addr(),
            StunConfig::default().with_rto(Duration::from_millis(20)),
        ),
    )
    .await
    .expect("bounded");
    let e = r.unwrap_err();
    assert!(e.to_string().contains(&stun.to_string()), "{e}");
}
