//! RFC 4976 AUTH against an independent relay: Kamailio 5.6 (`msrp.so` + `auth.so`), over
//! plain TCP and over TLS, with MD5 and SHA-256 digests computed by our
//! `msrp_proto::relay::digest` module.
//!
//! The AUTH requests are written by hand following the RFC 4976 §5.1 examples (To-Path first,
//! From-Path second: Kamailio 5.6.3 drops frames with another header order).

mod common;

use std::time::Duration;

use common::kamailio::{Kamailio, Options, MAX_EXPIRES, MIN_EXPIRES, PASSWORD, REALM};
use msrp::proto::relay::digest::{
    cnonce_from_random, Challenge, Credentials, DigestClient, DigestError, Retry,
};
use msrp::proto::uri::{MsrpUri, Scheme};
use msrp::tls::{client_config, connect_tls, PeerAuth};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

/// Bound on every network wait.
const WAIT: Duration = Duration::from_secs(10);
/// Largest response we accept from the relay.
const MAX_FRAME: usize = 64 * 1024;

/// Our endpoint's URI in From-Path (RFC 4976 §5.1: the client's own URI).
fn our_uri(session: &str) -> String {
    format!("msrp://127.0.0.1:9/{session};tcp")
}

/// A response as received: status line fields and headers in order.
#[derive(Debug)]
struct Response {
    tid: String,
    code: u16,
    headers: Vec<(String, String)>,
    raw: String,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Parses one complete response frame from the front of `buf`, if there is one.
fn take_response(buf: &mut Vec<u8>) -> Option<Response> {
    let text = std::str::from_utf8(buf).ok()?;
    let first_end = text.find("\r\n")?;
    let first = &text[..first_end];
    let mut parts = first.splitn(4, ' ');
    assert_eq!(parts.next(), Some("MSRP"), "bad start line {first:?}");
    let tid = parts.next()?.to_string();
    let end_line = format!("\r\n-------{tid}");
    let end_at = text.find(&end_line)?;
    let after = end_at + end_line.len();
    if text.len() < after + 3 {
        return None;
    }
    assert_eq!(
        &text[after + 1..after + 3],
        "\r\n",
        "bad end-line in {text:?}"
    );
    let code: u16 = parts
        .next()
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("not a response: {first:?}"));
    let headers = text[first_end + 2..end_at]
        .split("\r\n")
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (n, v) = l
                .split_once(':')
                .unwrap_or_else(|| panic!("bad header line {l:?}"));
            (n.to_string(), v.trim().to_string())
        })
        .collect();
    let raw = text[..after + 3].to_string();
    buf.drain(..after + 3);
    Some(Response {
        tid,
        code,
        headers,
        raw,
    })
}

/// One MSRP connection to the relay.
struct Conn<S> {
    stream: S,
    buf: Vec<u8>,
    next_tid: u32,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Conn<S> {
    fn new(stream: S) -> Self {
        Conn {
            stream,
            buf: Vec::new(),
            next_tid: 1,
        }
    }

    /// Sends an AUTH (RFC 4976 §5.1) with the given extra headers and returns the response.
    async fn auth(&mut self, to_path: &str, from_path: &str, extra: &[(&str, String)]) -> Response {
        let tid = format!("a{}x{}", self.next_tid, std::process::id());
        self.next_tid += 1;
        let mut req =
            format!("MSRP {tid} AUTH\r\nTo-Path: {to_path}\r\nFrom-Path: {from_path}\r\n");
        for (n, v) in extra {
            req.push_str(&format!("{n}: {v}\r\n"));
        }
        req.push_str(&format!("-------{tid}$\r\n"));
        self.stream.write_all(req.as_bytes()).await.unwrap();
        let resp = self.read_response().await;
        assert_eq!(
            resp.tid, tid,
            "response to another transaction: {}",
            resp.raw
        );
        // RFC 4976 §5.1 examples: the response goes back hop by hop, To-Path = our From-Path.
        assert_eq!(resp.header("To-Path"), Some(from_path), "{}", resp.raw);
        assert_eq!(resp.header("From-Path"), Some(to_path), "{}", resp.raw);
        resp
    }

    async fn read_response(&mut self) -> Response {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if let Some(r) = take_response(&mut self.buf) {
                return r;
            }
            assert!(
                self.buf.len() < MAX_FRAME,
                "response larger than {MAX_FRAME}"
            );
            let mut chunk = [0u8; 4096];
            let n = tokio::time::timeout_at(deadline, self.stream.read(&mut chunk))
                .await
                .expect("no complete response from kamailio in time")
                .expect("read from kamailio");
            assert!(
                n > 0,
                "kamailio closed the connection; received so far: {:?}",
                String::from_utf8_lossy(&self.buf)
            );
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}

fn challenge_of(resp: &Response) -> Challenge {
    assert_eq!(resp.code, 401, "expected a challenge: {}", resp.raw);
    let v = resp
        .header("WWW-Authenticate")
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
    let r = conn.auth(relay_uri, &me, &[]).await;
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
    let r = conn
        .auth(
            relay_uri,
            &me,
            &[
                ("Authorization", auth.to_string()),
                ("Expires", "600".to_string()),
            ],
        )
        .await;
    assert_eq!(
        r.code,
        200,
        "AUTH with our digest refused: {}\n{}",
        r.raw,
        k.log_tail(20)
    );
    client.on_success(None).unwrap();
    let use_path = r
        .header("Use-Path")
        .unwrap_or_else(|| panic!("200 without Use-Path: {}", r.raw));
    let uris: Vec<MsrpUri> = use_path
        .split(' ')
        .map(|u| MsrpUri::parse(u).unwrap_or_else(|e| panic!("Use-Path {u:?}: {e}")))
        .collect();
    assert_eq!(uris.len(), 1, "{use_path}");
    let relay = MsrpUri::parse(relay_uri).unwrap();
    assert_eq!(uris[0].scheme, scheme);
    assert_eq!(uris[0].socket_addr(), relay.socket_addr(), "{use_path}");
    assert!(
        uris[0].session_id().is_some_and(|s| !s.is_empty()),
        "{use_path}"
    );
    assert_eq!(r.header("Expires"), Some("600"), "{}", r.raw);

    // 3. A refresh on the same nonce with nc=2 is accepted and gives a new URI (RFC 4976 §5.1:
    //    each URI SHOULD be used for one session only).
    let auth2 = client.authorize(relay_uri, &cnonce(2)).unwrap();
    assert_eq!((auth2.nonce.as_str(), auth2.nc), (ch.nonce.as_str(), 2));
    let r2 = conn
        .auth(relay_uri, &me, &[("Authorization", auth2.to_string())])
        .await;
    assert_eq!(r2.code, 200, "{}", r2.raw);
    assert_ne!(r2.header("Use-Path"), Some(use_path));
    // Without Expires the cfg grants its maximum.
    assert_eq!(r2.header("Expires"), Some(MAX_EXPIRES.to_string().as_str()));

    // 4. A replay of nc=1 on that nonce is refused with a new challenge (nonce_count).
    //    Kamailio marks it stale=true (its nonce-count check reports a stale nonce), which is
    //    also what our relay side does (`Rejection::Replay` is stale).
    let r = conn
        .auth(relay_uri, &me, &[("Authorization", auth.to_string())])
        .await;
    let replayed = challenge_of(&r);
    assert!(replayed.stale, "{}", r.raw);
    assert_ne!(replayed.nonce, ch.nonce);

    // 5. Expires below the minimum: 423 with Min-Expires (RFC 4976 §6.3); above the
    //    maximum: 423 with Max-Expires.
    for (expires, header, limit) in [
        (MIN_EXPIRES - 30, "Min-Expires", MIN_EXPIRES),
        (MAX_EXPIRES + 1, "Max-Expires", MAX_EXPIRES),
    ] {
        let a = client.authorize(relay_uri, &cnonce(3)).unwrap();
        let r = conn
            .auth(
                relay_uri,
                &me,
                &[
                    ("Authorization", a.to_string()),
                    ("Expires", expires.to_string()),
                ],
            )
            .await;
        assert_eq!(r.code, 423, "Expires {expires}: {}", r.raw);
        assert_eq!(
            r.header(header),
            Some(limit.to_string().as_str()),
            "{}",
            r.raw
        );
        assert!(r.header("Use-Path").is_none());
    }

    // 6. Wrong password (on a fresh nonce): Kamailio answers 401 with a new, non-stale
    //    challenge; our client concludes the credentials are wrong instead of looping.
    let fresh = challenge_of(&conn.auth(relay_uri, &me, &[]).await);
    let mut wrong = DigestClient::new(Credentials::new("mallory", "not-the-password").unwrap());
    wrong.on_challenge(fresh).unwrap();
    let bad = wrong.authorize(relay_uri, &cnonce(4)).unwrap();
    let r = conn
        .auth(relay_uri, &me, &[("Authorization", bad.to_string())])
        .await;
    let again = challenge_of(&r);
    assert!(!again.stale, "{}", r.raw);
    assert_eq!(
        wrong.on_challenge(again).unwrap_err(),
        DigestError::CredentialsRejected {
            realm: REALM.to_string()
        }
    );

    // 7. A digest over another uri does not authenticate (the uri is part of A2).
    let fresh = challenge_of(&conn.auth(relay_uri, &me, &[]).await);
    let mut other = DigestClient::new(Credentials::new("alice", PASSWORD).unwrap());
    other.on_challenge(fresh).unwrap();
    let mut a = other
        .authorize("msrp://127.0.0.1:1;tcp", &cnonce(5))
        .unwrap();
    a.uri = relay_uri.to_string();
    let r = conn
        .auth(relay_uri, &me, &[("Authorization", a.to_string())])
        .await;
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
    let r = conn.auth(&relay, &me, &[]).await;
    let mut client = DigestClient::new(Credentials::new("bob", PASSWORD).unwrap());
    client.on_challenge(challenge_of(&r)).unwrap();
    let auth = client.authorize(&relay, &cnonce(9)).unwrap();
    // Let the nonce expire (lifetime 1 s, plus Kamailio's granularity).
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let r = conn
        .auth(&relay, &me, &[("Authorization", auth.to_string())])
        .await;
    let ch = challenge_of(&r);
    assert!(ch.stale, "expected stale=true: {}", r.raw);
    assert_ne!(ch.nonce, auth.nonce);
    // Same credentials, new nonce, count restarts at 1.
    assert_eq!(client.on_challenge(ch).unwrap(), Retry::Stale);
    let auth = client.authorize(&relay, &cnonce(10)).unwrap();
    assert_eq!(auth.nc, 1);
    let r = conn
        .auth(&relay, &me, &[("Authorization", auth.to_string())])
        .await;
    assert_eq!(r.code, 200, "{}\n{}", r.raw, k.log_tail(20));
    assert!(r.header("Use-Path").is_some());
}
