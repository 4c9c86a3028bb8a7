//! Transport faults against a running `MsrpEndpoint`: the peer's connection is reset (TCP RST
//! through `SO_LINGER 0`) in the middle of a message, incoming and outgoing. Each ends with the
//! application told (a failure notice with a status, the session closed with the reason), no
//! hang (every wait is bounded), no panic, and no message reported received or sent that was
//! not.

use std::time::Duration;

use msrp::proto::endpoint::{CloseReason, SessionParams, SessionRole};
use msrp::proto::session::SessionConfig;
use msrp::proto::uri::MsrpUri;
use msrp::{MsrpEndpoint, MsrpSession, Options, Reports, SessionNotice};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

const STEP: Duration = Duration::from_secs(10);
const PEER: &str = "msrp://127.0.0.1:9/rawpeer1;tcp";

/// An endpoint with one passive session whose peer is the raw test client.
async fn endpoint_with_session() -> (MsrpEndpoint, MsrpSession, MsrpUri) {
    let ep = MsrpEndpoint::bind(Options::new("127.0.0.1:0".parse().unwrap()))
        .await
        .unwrap();
    let local: MsrpUri = format!("msrp://{}/faultsess1;tcp", ep.local_addr())
        .parse()
        .unwrap();
    let remote: MsrpUri = PEER.parse().unwrap();
    let s = ep
        .start_session(SessionParams {
            role: SessionRole::Passive,
            connect_to: None,
            send_binding_send: false,
            local_uri: local.clone(),
            local_path: vec![local.clone()],
            remote_path: vec![remote.clone()],
            remote_uri: remote,
            match_session_id_only: false,
            config: SessionConfig::default(),
        })
        .await
        .unwrap();
    (ep, s, local)
}

/// Connects and binds the session with a bodiless SEND; returns the stream after its 200.
async fn bind(ep: &MsrpEndpoint, to: &MsrpUri) -> TcpStream {
    let mut c = TcpStream::connect(ep.local_addr()).await.unwrap();
    c.write_all(
        format!(
            "MSRP bind0001 SEND\r\nTo-Path: {to}\r\nFrom-Path: {PEER}\r\nMessage-ID: bindmsg1\r\n\
             Byte-Range: 1-0/0\r\n-------bind0001$\r\n"
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&got).contains("-------bind0001$") {
        let n = timeout(STEP, c.read(&mut buf)).await.unwrap().unwrap();
        assert!(n > 0, "closed before the binding response");
        got.extend_from_slice(&buf[..n]);
    }
    assert!(String::from_utf8_lossy(&got).starts_with("MSRP bind0001 200"));
    c
}

/// Resets the connection: SO_LINGER 0, then close (the kernel sends RST).
fn reset(c: TcpStream) {
    c.set_zero_linger().unwrap();
    drop(c);
}

/// Notices until the session closes (bounded).
async fn until_closed(s: &mut MsrpSession) -> (Vec<SessionNotice>, CloseReason) {
    let mut seen = Vec::new();
    loop {
        match timeout(STEP, s.next_notice()).await.expect("no hang") {
            Some(SessionNotice::Closed(r)) => return (seen, r),
            Some(SessionNotice::IncomingData { .. }) => {}
            Some(n) => seen.push(n),
            None => panic!("notices ended without Closed"),
        }
    }
}

#[tokio::test]
async fn reset_in_the_middle_of_an_incoming_message_aborts_it_and_closes_the_session() {
    let (ep, mut s, to) = endpoint_with_session().await;
    let mut c = bind(&ep, &to).await;
    assert!(matches!(
        timeout(STEP, s.next_notice()).await.unwrap(),
        Some(SessionNotice::Connected)
    ));
    // Half of a 1 MiB message, then RST.
    let head = format!(
        "MSRP half0001 SEND\r\nTo-Path: {to}\r\nFrom-Path: {PEER}\r\nMessage-ID: halfmessage\r\n\
         Byte-Range: 1-1048576/1048576\r\nContent-Type: application/octet-stream\r\n\r\n"
    );
    c.write_all(head.as_bytes()).await.unwrap();
    c.write_all(&vec![b'h'; 512 * 1024]).await.unwrap();
    // Let the endpoint take some of it before the reset.
    tokio::time::sleep(Duration::from_millis(200)).await;
    reset(c);
    let (seen, reason) = until_closed(&mut s).await;
    // RFC 4975 §5.4: the session fails with its connection.
    assert!(
        matches!(reason, CloseReason::ConnectionLost(_)),
        "{reason:?}"
    );
    assert!(
        seen.iter().any(|n| matches!(n,
            SessionNotice::IncomingStarted { message_id, .. } if message_id == "halfmessage")),
        "{seen:?}"
    );
    assert!(
        seen.iter().any(|n| matches!(n,
            SessionNotice::IncomingAborted { message_id, received, .. }
                if message_id == "halfmessage" && *received < 1048576)),
        "{seen:?}"
    );
    assert!(
        !seen
            .iter()
            .any(|n| matches!(n, SessionNotice::IncomingComplete { .. })),
        "{seen:?}"
    );
    let st = ep.stats().await.unwrap();
    assert_eq!((st.connections, st.sessions), (0, 0), "{st:?}");
}

#[tokio::test]
async fn reset_in_the_middle_of_an_outgoing_message_fails_it_with_a_status() {
    let (ep, mut s, to) = endpoint_with_session().await;
    let mut c = bind(&ep, &to).await;
    assert!(matches!(
        timeout(STEP, s.next_notice()).await.unwrap(),
        Some(SessionNotice::Connected)
    ));
    // 8 MiB to the peer, asking for success reports; the peer reads 200 KiB, answers nothing,
    // and resets.
    let out = s
        .send_bytes(
            "application/octet-stream",
            vec![b'o'; 8 << 20],
            Reports {
                success: true,
                ..Reports::default()
            },
        )
        .await
        .unwrap();
    let mut read = 0usize;
    let mut buf = vec![0u8; 64 * 1024];
    while read < 200 * 1024 {
        let n = timeout(STEP, c.read(&mut buf)).await.unwrap().unwrap();
        assert!(n > 0);
        read += n;
    }
    reset(c);
    let failure = timeout(STEP, out.outcome())
        .await
        .expect("the outcome comes")
        .expect_err("a message cut off by a reset is not sent");
    // Not delivered: the failure carries a status (408: no confirmation before the session
    // ended, RFC 4975 §7.1.1).
    assert_eq!(failure.status.as_u16(), 408, "{failure:?}");
    let (seen, reason) = until_closed(&mut s).await;
    assert!(
        matches!(reason, CloseReason::ConnectionLost(_)),
        "{reason:?}"
    );
    assert!(
        seen.iter().any(|n| matches!(n, SessionNotice::Failed(_))),
        "{seen:?}"
    );
    assert!(
        !seen.iter().any(|n| matches!(
            n,
            SessionNotice::Sent { .. } | SessionNotice::Delivered { .. }
        )),
        "{seen:?}"
    );
}
