//! End-to-end MSRP sessions over loopback TCP: every COMEDIA role combination negotiated with
//! SDP (RFC 6135), peers that omit a=setup (RFC 4975 behaviour), send holdconn or
//! a=connection:existing, a large streamed transfer checked with SHA-256 while a later small
//! message overtakes it, and a peer that disappears mid-transfer.

use std::collections::HashMap;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use msrp::proto::endpoint::CloseReason;
use msrp::proto::sdp::{Reachability, Role, SdpAnswer, SdpOffer};
use msrp::sink::SequentialWriter;
use msrp::{MsrpEndpoint, MsrpSession, Options, Reports, SessionNotice};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

const LIMIT: Duration = Duration::from_secs(60);

async fn endpoint() -> MsrpEndpoint {
    MsrpEndpoint::bind(Options::new("127.0.0.1:0".parse().unwrap()))
        .await
        .unwrap()
}

/// Offer/answer between two endpoints with optional edits of the SDP text in transit.
/// Returns (offerer session, answerer session).
async fn negotiate(
    a: &MsrpEndpoint,
    b: &MsrpEndpoint,
    a_reach: Reachability,
    b_reach: Reachability,
    edit_offer: impl Fn(String) -> String,
    edit_answer: impl Fn(String) -> String,
) -> (MsrpSession, MsrpSession) {
    let mut ca = a.local_config();
    ca.reachability = a_reach;
    let offered = a.create_offer(&ca).await.unwrap();
    let offer = edit_offer(offered.offer().to_string());
    let mut cb = b.local_config();
    cb.reachability = b_reach;
    let (answer, sb) = b
        .answer_offer(&SdpOffer::parse(&offer).unwrap(), &cb)
        .await
        .unwrap();
    let answer = edit_answer(answer.to_string());
    let sa = a
        .accept_answer(offered, &SdpAnswer::parse(&answer).unwrap())
        .await
        .unwrap();
    (sa, sb)
}

/// Collects complete messages: (message id, content type, body).
async fn receive(s: &mut MsrpSession, count: usize) -> Vec<(String, String, Vec<u8>)> {
    let mut open: HashMap<String, (String, SequentialWriter<Vec<u8>>)> = HashMap::new();
    let mut done = Vec::new();
    while done.len() < count {
        match s.next_notice().await {
            Some(SessionNotice::IncomingStarted {
                message_id,
                content_type,
                ..
            }) => {
                open.insert(
                    message_id,
                    (
                        content_type.unwrap_or_default(),
                        SequentialWriter::new(Vec::new(), 1 << 20),
                    ),
                );
            }
            Some(SessionNotice::IncomingData {
                message_id,
                offset,
                data,
            }) => {
                open.get_mut(&message_id)
                    .unwrap()
                    .1
                    .write_at(offset, &data)
                    .await
                    .unwrap();
            }
            Some(SessionNotice::IncomingComplete { message_id, .. }) => {
                let (ct, w) = open.remove(&message_id).unwrap();
                done.push((message_id, ct, w.finish().await.unwrap()));
            }
            Some(SessionNotice::Closed(r)) => panic!("session closed: {r}"),
            Some(_) => {}
            None => panic!("notices ended"),
        }
    }
    done
}

async fn exchange(sa: &mut MsrpSession, sb: &mut MsrpSession) {
    sa.connected().await.unwrap();
    sb.connected().await.unwrap();
    let ma = sa.send_text("from the offerer").await.unwrap();
    let mb = sb.send_text("from the answerer").await.unwrap();
    let (ra, rb) = tokio::join!(receive(sa, 1), receive(sb, 1));
    assert_eq!(rb[0].0, ma.message_id);
    assert_eq!(rb[0].2, b"from the offerer");
    assert_eq!(ra[0].0, mb.message_id);
    assert_eq!(ra[0].2, b"from the answerer");
    assert_eq!(ma.outcome().await, Ok(msrp::Outcome::Sent));
    assert_eq!(mb.outcome().await, Ok(msrp::Outcome::Sent));
}

#[tokio::test]
async fn local_close_ends_both_sides_with_reasons() {
    tokio::time::timeout(LIMIT, async {
        let (a, b) = (endpoint().await, endpoint().await);
        let (mut sa, mut sb) = negotiate(
            &a,
            &b,
            Reachability::Reachable,
            Reachability::Reachable,
            |s| s,
            |s| s,
        )
        .await;
        sa.connected().await.unwrap();
        sb.connected().await.unwrap();
        let (_, reason) = sa.close_and_wait().await;
        assert_eq!(reason, CloseReason::Local);
        // The peer's session ends when the connection closes, and says so.
        let reason = loop {
            match sb.next_notice().await {
                Some(SessionNotice::Closed(r)) => break r,
                Some(_) => {}
                None => panic!("no close notice"),
            }
        };
        assert!(
            matches!(reason, CloseReason::ConnectionLost(_)),
            "{reason:?}"
        );
        assert!(sb.send_text("too late").await.is_err());
    })
    .await
    .unwrap();
}

fn roles(sa: &MsrpSession, sb: &MsrpSession) -> (Role, Role) {
    (sa.plan().unwrap().role, sb.plan().unwrap().role)
}

#[tokio::test]
async fn every_role_combination_over_tcp() {
    use Reachability::*;
    // (offerer reachability, answerer reachability, expected offerer role)
    let table = [
        (Reachable, Reachable, Role::Active), // actpass -> passive answer
        (Reachable, BehindNat, Role::Passive), // actpass -> active answer
        (BehindNat, Reachable, Role::Active), // active offer -> passive answer
        (BehindNat, BehindNat, Role::Active), // active offer -> passive answer (warned)
    ];
    for (ra, rb, expect) in table {
        tokio::time::timeout(LIMIT, async {
            let (a, b) = (endpoint().await, endpoint().await);
            let (mut sa, mut sb) = negotiate(&a, &b, ra, rb, |s| s, |s| s).await;
            let (oa, ob) = roles(&sa, &sb);
            assert_eq!(oa, expect, "{ra:?}/{rb:?}");
            assert_ne!(oa, ob);
            if (ra, rb) == (BehindNat, BehindNat) {
                // Both behind NATs: the answerer must be passive; on loopback it is reachable
                // anyway, so the session still works.
                assert_eq!(ob, Role::Passive);
            }
            exchange(&mut sa, &mut sb).await;
        })
        .await
        .unwrap_or_else(|_| panic!("{ra:?}/{rb:?} timed out"));
    }
}

#[tokio::test]
async fn peer_without_setup_follows_rfc4975_offerer_connects() {
    tokio::time::timeout(LIMIT, async {
        let (a, b) = (endpoint().await, endpoint().await);
        let strip = |s: String| {
            s.lines()
                .filter(|l| !l.starts_with("a=setup"))
                .map(|l| format!("{l}\r\n"))
                .collect::<String>()
        };
        // An RFC 4975 offerer: no a=setup in its offer; it connects.
        let (mut sa, mut sb) = negotiate(
            &a,
            &b,
            Reachability::Reachable,
            Reachability::Reachable,
            strip,
            |s| s,
        )
        .await;
        assert_eq!(roles(&sa, &sb), (Role::Active, Role::Passive));
        exchange(&mut sa, &mut sb).await;
        // An RFC 4975 answerer: no a=setup in its answer; the offerer connects.
        let (mut sa, mut sb) = negotiate(
            &a,
            &b,
            Reachability::Reachable,
            Reachability::Reachable,
            |s| s,
            strip,
        )
        .await;
        assert_eq!(roles(&sa, &sb), (Role::Active, Role::Passive));
        exchange(&mut sa, &mut sb).await;
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn holdconn_and_connection_existing_are_handled() {
    tokio::time::timeout(LIMIT, async {
        let (a, b) = (endpoint().await, endpoint().await);
        // holdconn is treated as if no a=setup were present (RFC 6135 §4.2.1).
        let holdconn = |s: String| s.replace("a=setup:actpass", "a=setup:holdconn");
        let (mut sa, mut sb) = negotiate(
            &a,
            &b,
            Reachability::Reachable,
            Reachability::Reachable,
            holdconn,
            |s| s,
        )
        .await;
        assert_eq!(roles(&sa, &sb), (Role::Active, Role::Passive));
        exchange(&mut sa, &mut sb).await;
        // a=connection:existing is ignored (RFC 6135 §4.4): a new connection is made.
        let existing = |s: String| {
            s.replace(
                "a=setup:actpass\r\n",
                "a=setup:actpass\r\na=connection:existing\r\n",
            )
        };
        let (mut sa, mut sb) = negotiate(
            &a,
            &b,
            Reachability::Reachable,
            Reachability::BehindNat,
            existing,
            |s| s,
        )
        .await;
        assert_eq!(roles(&sa, &sb), (Role::Passive, Role::Active));
        exchange(&mut sa, &mut sb).await;
    })
    .await
    .unwrap();
}

/// Deterministic pseudo-random bytes, `len` of them.
struct Pattern {
    left: u64,
    x: u64,
}

impl AsyncRead for Pattern {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let n = (buf.remaining() as u64).min(self.left) as usize;
        let mut out = vec![0u8; n];
        for b in out.iter_mut() {
            self.x ^= self.x << 13;
            self.x ^= self.x >> 7;
            self.x ^= self.x << 17;
            *b = (self.x >> 32) as u8;
        }
        self.left -= n as u64;
        buf.put_slice(&out);
        Poll::Ready(Ok(()))
    }
}

/// An AsyncWrite that hashes what it gets.
#[derive(Default)]
struct HashSink(Sha256, u64);

impl AsyncWrite for HashSink {
    fn poll_write(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.0.update(buf);
        self.1 += buf.len() as u64;
        Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// SHA-256 of the same pattern, computed independently of the transfer path.
fn pattern_sha256(len: u64) -> String {
    let mut h = Sha256::new();
    let mut x: u64 = 0x1234_5678_9abc_def1;
    let mut block = Vec::with_capacity(1 << 16);
    for _ in 0..len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        block.push((x >> 32) as u8);
        if block.len() == 1 << 16 {
            h.update(&block);
            block.clear();
        }
    }
    h.update(&block);
    hex::encode(h.finalize())
}

#[tokio::test]
async fn large_stream_arrives_intact_and_small_message_overtakes_it() {
    const LEN: u64 = 64 << 20;
    tokio::time::timeout(Duration::from_secs(600), async {
        let (a, b) = (endpoint().await, endpoint().await);
        let (mut sa, mut sb) = negotiate(
            &a,
            &b,
            Reachability::Reachable,
            Reachability::Reachable,
            |s| s,
            |s| s,
        )
        .await;
        sa.connected().await.unwrap();
        sb.connected().await.unwrap();
        let big = sa
            .send_stream(
                "application/octet-stream",
                Some(LEN),
                Pattern {
                    left: LEN,
                    x: 0x1234_5678_9abc_def1,
                },
                Reports::default(),
            )
            .await
            .unwrap();
        // Wait until a part of the large message arrived, then send a short text.
        let mut sink = SequentialWriter::new(HashSink::default(), 4 << 20);
        let mut small_id = None;
        let mut small_done = false;
        let mut big_done = false;
        let mut small_before_big = false;
        while !(big_done && small_done) {
            match sb.next_notice().await.expect("notices") {
                SessionNotice::IncomingData {
                    message_id,
                    offset,
                    data,
                } if message_id == big.message_id => {
                    sink.write_at(offset, &data).await.unwrap();
                    if small_id.is_none() && sink.written() >= 4 << 20 {
                        small_id = Some(sa.send_text("overtaking").await.unwrap().message_id);
                    }
                }
                SessionNotice::IncomingComplete { message_id, size } => {
                    if message_id == big.message_id {
                        assert_eq!(size, LEN);
                        big_done = true;
                    } else if Some(&message_id) == small_id.as_ref() {
                        small_done = true;
                        small_before_big = !big_done;
                    }
                }
                SessionNotice::Closed(r) => panic!("closed: {r}"),
                _ => {}
            }
        }
        assert!(
            small_before_big,
            "the small message must complete before the large one"
        );
        let hs = sink.finish().await.unwrap();
        assert_eq!(hs.1, LEN);
        assert_eq!(hex::encode(hs.0.finalize()), pattern_sha256(LEN));
        assert_eq!(big.outcome().await, Ok(msrp::Outcome::Sent));
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn peer_vanishing_mid_transfer_fails_the_session() {
    tokio::time::timeout(LIMIT, async {
        let (a, b) = (endpoint().await, endpoint().await);
        let (mut sa, mut sb) = negotiate(
            &a,
            &b,
            Reachability::Reachable,
            Reachability::Reachable,
            |s| s,
            |s| s,
        )
        .await;
        sa.connected().await.unwrap();
        sb.connected().await.unwrap();
        let big = sa
            .send_stream(
                "application/octet-stream",
                Some(1 << 30),
                Pattern {
                    left: 1 << 30,
                    x: 7,
                },
                Reports::default(),
            )
            .await
            .unwrap();
        // Once data flows, the receiving endpoint disappears.
        loop {
            if let Some(SessionNotice::IncomingData { .. }) = sb.next_notice().await {
                break;
            }
        }
        drop(sb);
        drop(b);
        let mut failed = false;
        let reason = loop {
            match sa.next_notice().await {
                Some(SessionNotice::Failed(f)) if f.message_id == big.message_id => failed = true,
                Some(SessionNotice::Closed(r)) => break r,
                Some(_) => {}
                None => panic!("no close notice"),
            }
        };
        assert!(failed, "the message in flight failed");
        assert!(
            matches!(reason, CloseReason::ConnectionLost(_)),
            "{reason:?}"
        );
        assert!(big.outcome().await.is_err());
    })
    .await
    .unwrap();
}

/// An in-memory body many times the send window (`send_bytes`, taken by the core in many
/// steps) arrives byte for byte: every step continues where the previous one stopped.
#[tokio::test]
async fn in_memory_body_larger_than_the_send_window_arrives_intact() {
    tokio::time::timeout(LIMIT, async {
        let (a, b) = (endpoint().await, endpoint().await);
        let (mut sa, mut sb) = negotiate(
            &a,
            &b,
            Reachability::Reachable,
            Reachability::Reachable,
            |s| s,
            |s| s,
        )
        .await;
        sa.connected().await.unwrap();
        sb.connected().await.unwrap();
        // 12 MiB + 7 bytes of a pattern where an offset error shows: byte i is a hash of i.
        let len = (12 << 20) + 7;
        let body: Vec<u8> = (0..len as u64)
            .map(|i| (i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 56) as u8)
            .collect();
        let out = sa
            .send_bytes("application/octet-stream", body.clone(), Reports::default())
            .await
            .unwrap();
        let got = receive(&mut sb, 1).await;
        assert_eq!(got[0].0, out.message_id);
        assert_eq!(got[0].2.len(), body.len());
        assert!(got[0].2 == body, "the body arrived altered");
        assert_eq!(out.outcome().await, Ok(msrp::Outcome::Sent));
    })
    .await
    .unwrap();
}
