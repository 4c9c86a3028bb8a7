//! RFC 4976 AUTH against an independent relay: Kamailio 5.6 (`msrp.so` + `auth.so`), over
//! plain TCP and over TLS, with MD5 and SHA-256 digests computed by our
//! `msrp_proto::relay::digest` module.
//!
//! The AUTH requests are built with our codec writer following the RFC 4976 §5.1 examples
//! (To-Path first, From-Path second: Kamailio 5.6.3 drops frames with another header order)
//! and the responses are read with our push parser.

mod common;

use std::time::Duration;

use common::kamailio::{Kamailio, Options, MAX_EXPIRES, MIN_EXPIRES, PASSWORD, REALM};
use common::msrp_conn::{drive_client, test_rng, Conn, Received, WAIT};
use msrp::proto::message::{Continuation, HeaderKind, Message, MessageHead, Method};
use msrp::proto::relay::client::{
    RelayClient, RelayClientConfig, RelayEvent, RelayFailure, RelaySpec, RelayState,
};
use msrp::proto::relay::digest::{
    cnonce_from_random, Authorization, Challenge, Credentials, DigestClient, DigestError, Retry,
};
use msrp::proto::uri::{MsrpUri, Scheme};
use msrp::tls::{client_config, connect_tls, PeerAuth};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

/// Our endpoint's URI in From-Path (RFC 4976 §5.1: the client's own URI).
fn our_uri(session: &str) -> String {
    format!("msrp://127.0.0.1:9/{session};tcp")
}

/// Sends an AUTH (RFC 4976 §5.1) built with our writer and returns the response. To-Path is
/// written first and From-Path second (Kamailio 5.6.3 drops other orders).
async fn send_auth<S: AsyncRead + AsyncWrite + Unpin>(
    conn: &mut Conn<S>,
    to_path: &str,
    from_path: &str,
    authorization: Option<&Authorization>,
    expires: Option<u32>,
) -> Received {
    let tid = conn.next_tid("a");
    let to = MsrpUri::parse(to_path).unwrap();
    let from = MsrpUri::parse(from_path).unwrap();
    let mut head = MessageHead::request(&tid, Method::Auth).unwrap();
    head.push_to_path(std::slice::from_ref(&to)).unwrap();
    head.push_from_path(std::slice::from_ref(&from)).unwrap();
    if let Some(a) = authorization {
        head.push("Authorization", &a.to_string()).unwrap();
    }
    if let Some(secs) = expires {
        head.push_expires(HeaderKind::Expires, secs).unwrap();
    }
    conn.send(&Message {
        head,
        body: None,
        continuation: Continuation::Complete,
    })
    .await;
    let resp = conn.read_response().await;
    assert_eq!(
        resp.head.transaction_id(),
        tid,
        "response to another transaction: {}",
        resp.raw
    );
    // RFC 4976 §5.1 examples: the response goes back hop by hop, To-Path = our From-Path.
    assert_eq!(resp.head.to_path(), vec![from], "{}", resp.raw);
    assert_eq!(resp.head.from_path(), vec![to], "{}", resp.raw);
    resp
}

fn challenge_of(resp: &Received) -> Challenge {
    assert_eq!(resp.code(), 401, "expected a challenge: {}", resp.raw);
    let v = resp
        .head
        .www_authenticate()
        .next()
        .unwrap_or_else(|| panic!("401 without WWW-Authenticate: {}", resp.raw));
    Challenge::parse(v).unwrap_or_else(|e| panic!("cannot parse {v:?}: {e}"))
}

fn cnonce(n: u8) -> String {
    cnonce_from_random(&[n, 0x5a, 0xa5, n, 1, 2, 3, 4])
}

/// The whole authenticated exchange against a relay at `relay_uri` (plain or TLS stream):
/// 401 challenge, 200 with Use-Path and Expires, then the error cases.
async fn auth_scenario<S: AsyncRead + AsyncWrite + Unpin>(
    conn: &mut Conn<S>,
    k: &Kamailio,
    relay_uri: &str,
    algorithm: &str,
    scheme: Scheme,
) {
    let me = our_uri("s1");
    // 1. No credentials: RFC 4976 §5.1, the relay MUST answer 401 with WWW-Authenticate.
    let r = send_auth(conn, relay_uri, &me, None, None).await;
    let ch = challenge_of(&r);
    assert_eq!(ch.realm, REALM);
    assert_eq!(ch.algorithm.as_str(), algorithm, "{}", r.raw);
    assert!(ch.qop.iter().any(|q| q == "auth"));
    assert!(!ch.stale);

    // 2. Answer with our digest. The digest-uri is the rightmost To-Path URI (RFC 4976 §9.1).
    let mut client = DigestClient::new(Credentials::new("alice", PASSWORD).unwrap());
    assert_eq!(client.on_challenge(ch.clone()).unwrap(), Retry::Fresh);
    let auth = client.authorize(relay_uri, &cnonce(1)).unwrap();
    assert_eq!(auth.nc, 1);
    let r = send_auth(conn, relay_uri, &me, Some(&auth), Some(600)).await;
    assert_eq!(
        r.code(),
        200,
        "AUTH with our digest refused: {}\n{}",
        r.raw,
        k.log_tail(20)
    );
    client.on_success(None).unwrap();
    let uris = r
        .head
        .use_path()
        .unwrap_or_else(|| panic!("200 without a valid Use-Path: {}", r.raw));
    let use_path = r.head.get("Use-Path").unwrap();
    assert_eq!(uris.len(), 1, "{use_path}");
    let relay = MsrpUri::parse(relay_uri).unwrap();
    assert_eq!(uris[0].scheme, scheme);
    assert_eq!(uris[0].socket_addr(), relay.socket_addr(), "{use_path}");
    assert!(
        uris[0].session_id().is_some_and(|s| !s.is_empty()),
        "{use_path}"
    );
    assert_eq!(r.head.expires(), Some(600), "{}", r.raw);

    // 3. A refresh on the same nonce with nc=2 is accepted and gives a new URI (RFC 4976 §5.1:
    //    each URI SHOULD be used for one session only).
    let auth2 = client.authorize(relay_uri, &cnonce(2)).unwrap();
    assert_eq!((auth2.nonce.as_str(), auth2.nc), (ch.nonce.as_str(), 2));
    let r2 = send_auth(conn, relay_uri, &me, Some(&auth2), None).await;
    assert_eq!(r2.code(), 200, "{}", r2.raw);
    assert_ne!(r2.head.use_path(), Some(uris));
    // Without Expires the cfg grants its maximum.
    assert_eq!(r2.head.expires(), Some(MAX_EXPIRES));

    // 4. A replay of nc=1 on that nonce is refused with a new challenge (nonce_count).
    //    Kamailio marks it stale=true (its nonce-count check reports a stale nonce), which is
    //    also what our relay side does (`Rejection::Replay` is stale).
    let r = send_auth(conn, relay_uri, &me, Some(&auth), None).await;
    let replayed = challenge_of(&r);
    assert!(replayed.stale, "{}", r.raw);
    assert_ne!(replayed.nonce, ch.nonce);

    // 5. Expires below the minimum: 423 with Min-Expires (RFC 4976 §6.3); above the
    //    maximum: 423 with Max-Expires.
    for (expires, min, max) in [
        (MIN_EXPIRES - 30, Some(MIN_EXPIRES), None),
        (MAX_EXPIRES + 1, None, Some(MAX_EXPIRES)),
    ] {
        let a = client.authorize(relay_uri, &cnonce(3)).unwrap();
        let r = send_auth(conn, relay_uri, &me, Some(&a), Some(expires)).await;
        assert_eq!(r.code(), 423, "Expires {expires}: {}", r.raw);
        assert_eq!(
            (r.head.min_expires(), r.head.max_expires()),
            (min, max),
            "{}",
            r.raw
        );
        assert!(r.head.get("Use-Path").is_none());
    }

    // 6. Wrong password (on a fresh nonce): Kamailio answers 401 with a new, non-stale
    //    challenge; our client concludes the credentials are wrong instead of looping.
    let fresh = challenge_of(&send_auth(conn, relay_uri, &me, None, None).await);
    let mut wrong = DigestClient::new(Credentials::new("mallory", "not-the-password").unwrap());
    wrong.on_challenge(fresh).unwrap();
    let bad = wrong.authorize(relay_uri, &cnonce(4)).unwrap();
    let r = send_auth(conn, relay_uri, &me, Some(&bad), None).await;
    let again = challenge_of(&r);
    assert!(!again.stale, "{}", r.raw);
    assert_eq!(
        wrong.on_challenge(again).unwrap_err(),
        DigestError::CredentialsRejected {
            realm: REALM.to_string()
        }
    );

    // 7. A digest over another uri does not authenticate (the uri is part of A2).
    let fresh = challenge_of(&send_auth(conn, relay_uri, &me, None, None).await);
    let mut other = DigestClient::new(Credentials::new("alice", PASSWORD).unwrap());
    other.on_challenge(fresh).unwrap();
    let mut a = other
        .authorize("msrp://127.0.0.1:1;tcp", &cnonce(5))
        .unwrap();
    a.uri = relay_uri.to_string();
    let r = send_auth(conn, relay_uri, &me, Some(&a), None).await;
    challenge_of(&r);
}

#[tokio::test]
async fn kamailio_accepts_our_md5_digest_over_tcp() {
    let Some(k) = Kamailio::start(Options::default()) else {
        return;
    };
    let stream = TcpStream::connect(k.tcp).await.unwrap();
    let mut conn = Conn::new(stream);
    auth_scenario(&mut conn, &k, &k.tcp_uri(), "MD5", Scheme::Msrp).await;
}

#[tokio::test]
async fn kamailio_accepts_our_sha256_digest_over_tcp() {
    let Some(k) = Kamailio::start(Options {
        sha256: true,
        ..Options::default()
    }) else {
        return;
    };
    let stream = TcpStream::connect(k.tcp).await.unwrap();
    let mut conn = Conn::new(stream);
    auth_scenario(&mut conn, &k, &k.tcp_uri(), "SHA-256", Scheme::Msrp).await;
}

#[tokio::test]
async fn kamailio_accepts_our_digest_over_tls() {
    let Some(k) = Kamailio::start(Options {
        tls: true,
        sha256: true,
        ..Options::default()
    }) else {
        return;
    };
    let tls_addr = k.tls.unwrap();
    // Pin the certificate generated for this Kamailio run.
    let id = k.identity.as_ref().unwrap();
    let config = client_config(None, PeerAuth::Fingerprints(id.fingerprints().to_vec())).unwrap();
    let tcp = TcpStream::connect(tls_addr).await.unwrap();
    let tls = connect_tls(tcp, "127.0.0.1", config, WAIT)
        .await
        .unwrap_or_else(|e| panic!("TLS to kamailio: {e}\n{}", k.log_tail(20)));
    let mut conn = Conn::new(tls);
    let uri = k.tls_uri().unwrap();
    auth_scenario(&mut conn, &k, &uri, "SHA-256", Scheme::Msrps).await;
}

#[tokio::test]
async fn kamailio_stale_nonce_then_new_attempt() {
    let Some(k) = Kamailio::start(Options {
        nonce_expire: Some(1),
        ..Options::default()
    }) else {
        return;
    };
    let stream = TcpStream::connect(k.tcp).await.unwrap();
    let mut conn = Conn::new(stream);
    let relay = k.tcp_uri();
    let me = our_uri("s2");
    let r = send_auth(&mut conn, &relay, &me, None, None).await;
    let mut client = DigestClient::new(Credentials::new("bob", PASSWORD).unwrap());
    client.on_challenge(challenge_of(&r)).unwrap();
    let auth = client.authorize(&relay, &cnonce(9)).unwrap();
    // Let the nonce expire (lifetime 1 s, plus Kamailio's granularity).
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let r = send_auth(&mut conn, &relay, &me, Some(&auth), None).await;
    let ch = challenge_of(&r);
    assert!(ch.stale, "expected stale=true: {}", r.raw);
    assert_ne!(ch.nonce, auth.nonce);
    // Same credentials, new nonce, count restarts at 1.
    assert_eq!(client.on_challenge(ch).unwrap(), Retry::Stale);
    let auth = client.authorize(&relay, &cnonce(10)).unwrap();
    assert_eq!(auth.nc, 1);
    let r = send_auth(&mut conn, &relay, &me, Some(&auth), None).await;
    assert_eq!(r.code(), 200, "{}\n{}", r.raw, k.log_tail(20));
    assert!(r.head.use_path().is_some(), "{}", r.raw);
}

#[tokio::test]
async fn relay_client_state_machine_against_kamailio() {
    let Some(k) = Kamailio::start(Options::default()) else {
        return;
    };
    let relay = MsrpUri::parse(&k.tcp_uri()).unwrap();
    let local = MsrpUri::parse(&our_uri("s3")).unwrap();
    let spec = |password: &str| RelaySpec {
        uri: relay.clone(),
        credentials: Credentials::new("carol", password).unwrap(),
    };
    let mut rng = test_rng();

    // Asking for 30 s: Kamailio answers 423 Min-Expires: 60, the client retries with 60.
    let mut config = RelayClientConfig::new(vec![spec(PASSWORD)], local.clone());
    config.expires = Some(30);
    let mut client = RelayClient::new(config);
    let mut conn = Conn::new(TcpStream::connect(k.tcp).await.unwrap());
    client.start(std::time::Instant::now());
    let events = drive_client(&mut conn, &mut client, &mut rng).await;
    let [RelayEvent::Authenticated { use_path, expires }] = events.as_slice() else {
        panic!(
            "expected one Authenticated event, got {events:?}\n{}",
            k.log_tail(20)
        );
    };
    assert_eq!(*expires, Some(MIN_EXPIRES));
    assert_eq!(use_path.len(), 1);
    assert_eq!(use_path[0].socket_addr(), relay.socket_addr());
    assert_eq!(client.state(), RelayState::Authenticated);
    // RFC 4976 §5.1: SDP path = Use-Path reversed + our URI.
    assert_eq!(
        client.sdp_path().unwrap(),
        vec![use_path[0].clone(), local.clone()]
    );
    // The refresh is scheduled at 3/4 of the 60 s granted.
    let due = client.poll_timeout().expect("a refresh is scheduled");
    client.handle_timeout(due);
    let events = drive_client(&mut conn, &mut client, &mut rng).await;
    assert!(
        matches!(
            events.as_slice(),
            [RelayEvent::Authenticated {
                expires: Some(60),
                ..
            }]
        ),
        "refresh: {events:?}"
    );
    assert_ne!(
        client.use_path().unwrap(),
        &use_path[..],
        "a new AUTH gives a new URI"
    );

    // Wrong password: one challenge, one refused attempt, then a clear failure.
    let mut client = RelayClient::new(RelayClientConfig::new(vec![spec("wrong")], local));
    let mut conn = Conn::new(TcpStream::connect(k.tcp).await.unwrap());
    client.start(std::time::Instant::now());
    let events = drive_client(&mut conn, &mut client, &mut rng).await;
    assert_eq!(
        events,
        vec![RelayEvent::Failed(RelayFailure::CredentialsRejected {
            relay: relay.to_string()
        })]
    );
}
