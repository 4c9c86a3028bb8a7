//! SEND through Kamailio 5.6 (RFC 4976 §6.4) between two clients that authenticated with our
//! relay client state machine, and the Kamailio quirks the relay tests must live with: header
//! order, frame size limits, hop-by-hop responses. Messages are built with our codec writer
//! except the deliberately malformed ones.

mod common;

use std::time::Duration;

use common::kamailio::{Kamailio, Options, PASSWORD};
use common::msrp_conn::{drive_client, test_rng, Conn, ReadOutcome, Received};
use msrp::proto::message::{ByteRange, Continuation, Message, MessageHead, Method, StatusCode};
use msrp::proto::relay::client::{RelayClient, RelayClientConfig, RelayEvent, RelaySpec};
use msrp::proto::relay::digest::Credentials;
use msrp::proto::uri::{Host, MsrpUri, Scheme};
use tokio::net::TcpStream;

/// How long "nothing arrives" is watched for.
const QUIET: Duration = Duration::from_millis(800);

/// A client connected to Kamailio and authenticated through our relay client.
struct Client {
    conn: Conn<TcpStream>,
    relay: RelayClient,
    me: MsrpUri,
}

async fn authenticated(k: &Kamailio, user: &str, session: &str) -> Client {
    let relay_uri = MsrpUri::parse(&k.tcp_uri()).unwrap();
    // Our own URI: where a peer would reach us directly (never dialled here).
    let me = MsrpUri::new(Scheme::Msrp, Host::V4([127, 0, 0, 1].into()), 9, session);
    let spec = RelaySpec {
        uri: relay_uri,
        credentials: Credentials::new(user, PASSWORD).unwrap(),
    };
    let mut relay = RelayClient::new(RelayClientConfig::new(vec![spec], me.clone()));
    let mut conn = Conn::new(TcpStream::connect(k.tcp).await.unwrap());
    relay.start(std::time::Instant::now());
    let mut rng = test_rng();
    let events = drive_client(&mut conn, &mut relay, &mut rng).await;
    assert!(
        matches!(events.as_slice(), [RelayEvent::Authenticated { .. }]),
        "{user}: {events:?}\n{}",
        k.log_tail(20)
    );
    Client { conn, relay, me }
}

fn send_message(tid: &str, to: &[MsrpUri], from: &[MsrpUri], id: &str, body: &[u8]) -> Message {
    let mut head = MessageHead::request(tid, Method::Send).unwrap();
    head.push_to_path(to).unwrap();
    head.push_from_path(from).unwrap();
    head.push_message_id(id).unwrap();
    head.push_byte_range(ByteRange::whole(body.len() as u64))
        .unwrap();
    head.push_content_type("text/plain").unwrap();
    Message {
        head,
        body: Some(body.to_vec()),
        continuation: Continuation::Complete,
    }
}

/// The same SEND as raw bytes with From-Path before To-Path (our writer refuses that order).
fn send_wrong_order(tid: &str, to: &[MsrpUri], from: &[MsrpUri], body: &str) -> Vec<u8> {
    let join = |p: &[MsrpUri]| {
        p.iter()
            .map(|u| u.to_string())
            .collect::<Vec<_>>()
            .join(" ")
    };
    format!(
        "MSRP {tid} SEND\r\nFrom-Path: {}\r\nTo-Path: {}\r\nMessage-ID: w{tid}\r\n\
         Byte-Range: 1-{n}/{n}\r\nContent-Type: text/plain\r\n\r\n{body}\r\n-------{tid}$\r\n",
        join(from),
        join(to),
        n = body.len()
    )
    .into_bytes()
}

async fn expect_nothing(conn: &mut Conn<TcpStream>, what: &str) {
    match conn.read_within(QUIET).await {
        ReadOutcome::Nothing => {}
        ReadOutcome::Message(m) => panic!("{what}: unexpected message {}", m.raw),
        ReadOutcome::Closed => panic!("{what}: connection closed"),
    }
}

/// Checks a SEND that arrived at its last hop: relays rewrote To-Path and From-Path
/// (RFC 4976 §6.4.1) and the body is intact.
fn check_delivered(got: &Received, to_me: &MsrpUri, from_path: &[MsrpUri], id: &str, body: &[u8]) {
    assert_eq!(got.head.method(), Some(&Method::Send), "{}", got.raw);
    assert_eq!(got.head.to_path(), vec![to_me.clone()], "{}", got.raw);
    assert_eq!(got.head.from_path(), from_path, "{}", got.raw);
    assert_eq!(got.head.message_id(), Some(id));
    assert_eq!(got.body.as_deref(), Some(body));
}

#[tokio::test]
async fn send_both_ways_through_kamailio() {
    let Some(k) = Kamailio::start(Options::default()) else {
        return;
    };
    let mut a = authenticated(&k, "alice", "a1").await;
    let mut b = authenticated(&k, "bob", "b1").await;
    let ua = a.relay.use_path().unwrap().to_vec();
    let ub = b.relay.use_path().unwrap().to_vec();

    // RFC 4976 §5.1: To-Path = our Use-Path + the peer's SDP path (its Use-Path reversed + its
    // URI): UA UB B.
    let to = a.relay.to_path(&b.relay.sdp_path().unwrap()).unwrap();
    assert_eq!(to, [ua.clone(), ub.clone(), vec![b.me.clone()]].concat());
    let tid = a.conn.next_tid("s");
    let body = b"Hi Bob, through Kamailio";
    a.conn
        .send(&send_message(&tid, &to, &[a.me.clone()], "mid-m1", body))
        .await;
    // Hop by hop: the relay answers for itself, From-Path = its URI for us.
    let r = a.conn.read_response().await;
    assert_eq!(
        (r.code(), r.head.transaction_id()),
        (200, tid.as_str()),
        "{}",
        r.raw
    );
    assert_eq!(r.head.to_path(), vec![a.me.clone()]);
    assert_eq!(r.head.from_path(), ua);
    // B receives it with the relays prepended to From-Path: UB UA A.
    let got = b.conn.read_message().await;
    check_delivered(
        &got,
        &b.me,
        &[ub.clone(), ua.clone(), vec![a.me.clone()]].concat(),
        "mid-m1",
        body,
    );
    // B's transaction response to its previous hop (RFC 4975 §7.2); Kamailio cannot forward a
    // response whose To-Path has one URI and drops it: A sees nothing more.
    let mut resp =
        MessageHead::response(got.head.transaction_id(), StatusCode::OK, Some("OK")).unwrap();
    resp.push_to_path(&got.head.from_path()[..1]).unwrap();
    resp.push_from_path(std::slice::from_ref(&b.me)).unwrap();
    b.conn
        .send(&Message {
            head: resp,
            body: None,
            continuation: Continuation::Complete,
        })
        .await;
    expect_nothing(&mut a.conn, "A after B's hop-by-hop 200").await;

    // And back: UB UA A.
    let to = b.relay.to_path(&a.relay.sdp_path().unwrap()).unwrap();
    let tid = b.conn.next_tid("s");
    let body = b"Hi Alice";
    b.conn
        .send(&send_message(&tid, &to, &[b.me.clone()], "mid-m2", body))
        .await;
    let r = b.conn.read_response().await;
    assert_eq!(r.code(), 200, "{}", r.raw);
    let got = a.conn.read_message().await;
    check_delivered(
        &got,
        &a.me,
        &[ua, ub, vec![b.me.clone()]].concat(),
        "mid-m2",
        body,
    );
}

#[tokio::test]
async fn kamailio_quirks_unknown_session_header_order_and_frame_size() {
    let Some(k) = Kamailio::start(Options::default()) else {
        return;
    };
    let mut a = authenticated(&k, "alice", "a2").await;
    let mut b = authenticated(&k, "bob", "b2").await;
    let ub = b.relay.use_path().unwrap().to_vec();
    let to_b = [ub.clone(), vec![b.me.clone()]].concat();
    let from_a = vec![a.me.clone()];

    // Unknown session id in the relay's URI: 481.
    let mut unknown = ub[0].clone();
    unknown.session_id = Some("no-such-session".into());
    let tid = a.conn.next_tid("u");
    a.conn
        .send(&send_message(
            &tid,
            &[unknown, b.me.clone()],
            &from_a,
            "mid-u1",
            b"x",
        ))
        .await;
    let r = a.conn.read_response().await;
    assert_eq!(r.code(), 481, "{}", r.raw);

    // 10000-byte body: relayed.
    let big_ok = vec![b'a'; 10_000];
    let tid = a.conn.next_tid("k");
    a.conn
        .send(&send_message(&tid, &to_b, &from_a, "mid-k1", &big_ok))
        .await;
    assert_eq!(a.conn.read_response().await.code(), 200);
    let got = b.conn.read_message().await;
    check_delivered(
        &got,
        &b.me,
        &[ub.clone(), from_a.clone()].concat(),
        "mid-k1",
        &big_ok,
    );

    // An 11300-byte body (frame > 11239 bytes): the module builds no SIP message for it, the
    // cfg answers 413; nothing reaches B.
    let too_big = vec![b'b'; 11_300];
    let tid = a.conn.next_tid("k");
    let msg = send_message(&tid, &to_b, &from_a, "mid-k2", &too_big);
    a.conn.send(&msg).await;
    let r = a.conn.read_response().await;
    assert_eq!(r.code(), 413, "{}", r.raw);
    expect_nothing(&mut b.conn, "B after a 413").await;

    // A frame over 16 KiB: Kamailio's TCP read buffer overruns and it closes the connection.
    let mut c = Conn::new(TcpStream::connect(k.tcp).await.unwrap());
    let tid = c.next_tid("h");
    c.send(&send_message(
        &tid,
        &to_b,
        &from_a,
        "mid-h1",
        &vec![b'c'; 17_000],
    ))
    .await;
    match c.read_within(common::msrp_conn::WAIT).await {
        ReadOutcome::Closed => {}
        other => panic!("expected kamailio to close the connection, got {other:?}"),
    }
    expect_nothing(&mut b.conn, "B after the oversized frame").await;

    // From-Path before To-Path: no response; Kamailio drops the frame and closes the
    // connection.
    let mut d = Conn::new(TcpStream::connect(k.tcp).await.unwrap());
    let tid = d.next_tid("w");
    d.send_raw(&send_wrong_order(&tid, &to_b, &from_a, "wrong order"))
        .await;
    match d.read_within(common::msrp_conn::WAIT).await {
        ReadOutcome::Closed => {}
        other => panic!("expected kamailio to close the connection, got {other:?}"),
    }
    expect_nothing(&mut b.conn, "B after the header-order tests").await;

    // The original connection still works.
    let tid = a.conn.next_tid("k");
    a.conn
        .send(&send_message(&tid, &to_b, &from_a, "mid-k3", b"still fine"))
        .await;
    assert_eq!(a.conn.read_response().await.code(), 200);
    let got = b.conn.read_message().await;
    check_delivered(&got, &b.me, &[ub, from_a].concat(), "mid-k3", b"still fine");
}
