//! `msrp relay` end to end: relay processes on loopback and clients speaking raw MSRP built
//! with the codec writer and read with the push parser, over TCP and TLS.
//!
//! Every relay process is killed by a Drop guard; every read has a deadline.

#[path = "common/relay_proc.rs"]
mod relay_proc;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use msrp::rustls;
use msrp::tls::{client_config, load_ca_file, PeerAuth};
use msrp_proto::message::{
    write_body_start, write_end_line, write_head, ByteRange, Continuation, Event, Limits, Message,
    MessageHead, Method, Parser, StatusCode,
};
use msrp_proto::relay::digest::{Challenge, Credentials, DigestClient};
use msrp_proto::uri::MsrpUri;
use relay_proc::rss_kib;

const REALM: &str = "relay.test";
const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// A running `msrp relay`, killed on drop.
struct RelayProc {
    child: Child,
    tcp: Option<SocketAddr>,
    tls: Option<SocketAddr>,
    stderr: Arc<std::sync::Mutex<String>>,
}

impl Drop for RelayProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl RelayProc {
    fn tcp_uri(&self) -> String {
        format!("msrp://localhost:{};tcp", self.tcp.unwrap().port())
    }
    fn tls_uri(&self) -> String {
        format!("msrps://localhost:{};tcp", self.tls.unwrap().port())
    }
}

/// Test CA, the relay's certificate for `localhost`, and the users file.
struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        p.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        p.distinguished_name
            .push(rcgen::DnType::CommonName, "relay test CA");
        let ca = p.self_signed(&ca_key).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let mut p = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        p.extended_key_usages = vec![
            rcgen::ExtendedKeyUsagePurpose::ServerAuth,
            rcgen::ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let leaf = p.signed_by(&key, &ca, &ca_key).unwrap();
        std::fs::write(dir.path().join("ca.pem"), ca.pem()).unwrap();
        std::fs::write(dir.path().join("relay.pem"), leaf.pem()).unwrap();
        std::fs::write(dir.path().join("relay.key"), key.serialize_pem()).unwrap();
        let mut users = String::new();
        for (u, pw) in [("alice", "alice-pw"), ("bob", "bob-pw")] {
            users.push_str(&hash_password(u, pw));
        }
        std::fs::write(dir.path().join("users"), users).unwrap();
        Fixture { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn start(&self, extra: &[&str]) -> RelayProc {
        let mut args: Vec<String> = vec![
            "relay".into(),
            "--json".into(),
            "--listen".into(),
            "127.0.0.1:0".into(),
            "--tls-listen".into(),
            "127.0.0.1:0".into(),
            "--host".into(),
            "localhost".into(),
            "--realm".into(),
            REALM.into(),
        ];
        for (f, n) in [
            ("--cert", "relay.pem"),
            ("--key", "relay.key"),
            ("--users", "users"),
            ("--ca", "ca.pem"),
        ] {
            args.push(f.into());
            args.push(self.path(n).display().to_string());
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        spawn_relay(&args)
    }

    fn tls_config(&self) -> Arc<rustls::ClientConfig> {
        let roots = load_ca_file(&self.path("ca.pem")).unwrap();
        client_config(None, PeerAuth::CaRoots(Arc::new(roots))).unwrap()
    }
}

fn hash_password(user: &str, pw: &str) -> String {
    let mut child = Command::new(env!("CARGO_BIN_EXE_msrp"))
        .args(["relay", "hash-password", "--user", user, "--realm", REALM])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{pw}\n").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(text.lines().count(), 3, "{text}");
    assert!(text.starts_with(&format!("{user}:{REALM}:MD5:")), "{text}");
    text
}

fn spawn_relay(args: &[String]) -> RelayProc {
    let mut child = Command::new(env!("CARGO_BIN_EXE_msrp"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    let err_text = Arc::new(std::sync::Mutex::new(String::new()));
    let e2 = err_text.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            e2.lock().unwrap().push_str(&(line + "\n"));
        }
    });
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut proc = RelayProc {
        child,
        tcp: None,
        tls: None,
        stderr: err_text,
    };
    let line = rx
        .recv_timeout(Duration::from_secs(20))
        .unwrap_or_else(|_| {
            panic!(
                "relay did not report listening: {}",
                proc.stderr.lock().unwrap()
            )
        });
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["event"], "listening", "{line}");
    proc.tcp = v["tcp"].as_str().map(|s| s.parse().unwrap());
    proc.tls = v["tls"].as_str().map(|s| s.parse().unwrap());
    proc
}

trait Rw: Read + Write + Send {}
impl<T: Read + Write + Send> Rw for T {}

/// A raw MSRP client.
struct Peer {
    io: Box<dyn Rw>,
    buf: Vec<u8>,
    parser: Parser,
    uri: String,
}

impl Peer {
    fn tcp(addr: SocketAddr, uri: &str) -> Peer {
        let s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        Peer::new(Box::new(s), uri)
    }

    fn tls(addr: SocketAddr, cfg: Arc<rustls::ClientConfig>, uri: &str) -> Peer {
        let s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let conn = rustls::ClientConnection::new(cfg, name).unwrap();
        Peer::new(Box::new(rustls::StreamOwned::new(conn, s)), uri)
    }

    fn new(io: Box<dyn Rw>, uri: &str) -> Peer {
        Peer {
            io,
            buf: Vec::new(),
            parser: Parser::new(Limits::default()),
            uri: uri.to_string(),
        }
    }

    fn send(&mut self, m: &Message) {
        self.io.write_all(&m.encode().unwrap()).unwrap();
        self.io.flush().unwrap();
    }

    /// The next message, or `None` when the connection closed or nothing came in `wait`.
    fn recv_within(&mut self, wait: Duration) -> Option<Message> {
        let deadline = Instant::now() + wait;
        let mut cur: Option<Message> = None;
        loop {
            loop {
                let (n, ev) = self
                    .parser
                    .parse(&self.buf)
                    .expect("relay sends valid MSRP");
                let done = match ev {
                    None => true,
                    Some(Event::Head { head, body }) => {
                        cur = Some(Message {
                            head,
                            body: body.then(Vec::new),
                            continuation: Continuation::Complete,
                        });
                        false
                    }
                    Some(Event::Body(b)) => {
                        if let Some(Message { body: Some(v), .. }) = cur.as_mut() {
                            v.extend_from_slice(b);
                        }
                        false
                    }
                    Some(Event::End(flag)) => {
                        self.buf.drain(..n);
                        let mut m = cur.take().unwrap();
                        m.continuation = flag;
                        return Some(m);
                    }
                };
                self.buf.drain(..n);
                if done {
                    break;
                }
            }
            if Instant::now() > deadline {
                return None;
            }
            let mut tmp = [0u8; 16384];
            match self.io.read(&mut tmp) {
                Ok(0) => return None,
                Ok(n) => self.buf.extend_from_slice(&tmp[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(_) => return None,
            }
        }
    }

    fn recv(&mut self) -> Message {
        self.recv_within(IO_TIMEOUT)
            .expect("a message within the timeout")
    }

    /// True when the relay closed the connection (within the timeout).
    fn closed(&mut self) -> bool {
        let deadline = Instant::now() + IO_TIMEOUT;
        while Instant::now() < deadline {
            let mut tmp = [0u8; 1024];
            match self.io.read(&mut tmp) {
                Ok(0) => return true,
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(_) => return true,
            }
        }
        false
    }

    fn auth_msg(&self, tid: &str, to: &[&str], authorization: Option<String>) -> Message {
        let mut h = MessageHead::request(tid, Method::Auth).unwrap();
        h.push("To-Path", &to.join(" ")).unwrap();
        h.push("From-Path", &self.uri).unwrap();
        if let Some(a) = authorization {
            h.push("Authorization", &a).unwrap();
        }
        Message {
            head: h,
            body: None,
            continuation: Continuation::Complete,
        }
    }

    /// AUTH with a challenge round; returns the final response.
    fn authenticate(&mut self, to: &[&str], user: &str, pw: &str) -> Message {
        let m = self.auth_msg("auth01", to, None);
        self.send(&m);
        let ch = self.recv();
        assert_eq!(
            ch.head.status_code(),
            Some(StatusCode::UNAUTHORIZED),
            "{ch:?}"
        );
        let c = Challenge::parse(ch.head.www_authenticate().next().unwrap()).unwrap();
        assert_eq!(c.realm, REALM);
        let mut dc = DigestClient::new(Credentials::new(user, pw).unwrap());
        dc.on_challenge(c).unwrap();
        let a = dc.authorize(to.last().unwrap(), "1234abcd").unwrap();
        let m = self.auth_msg("auth02", to, Some(a.to_string()));
        self.send(&m);
        self.recv()
    }

    fn use_path(&mut self, to: &[&str], user: &str, pw: &str) -> String {
        let r = self.authenticate(to, user, pw);
        assert_eq!(r.head.status_code(), Some(StatusCode::OK), "{r:?}");
        r.head.get("Use-Path").unwrap().to_string()
    }
}

fn send_msg(tid: &str, to: &str, from: &str, body: &[u8]) -> Message {
    let mut h = MessageHead::request(tid, Method::Send).unwrap();
    h.push("To-Path", to).unwrap();
    h.push("From-Path", from).unwrap();
    h.push_message_id(&format!("msg-{tid}")).unwrap();
    h.push_success_report(true).unwrap();
    let n = body.len() as u64;
    h.push_byte_range(ByteRange::new(1, Some(n), Some(n)).unwrap())
        .unwrap();
    h.push_content_type("text/plain").unwrap();
    Message {
        head: h,
        body: Some(body.to_vec()),
        continuation: Continuation::Complete,
    }
}

fn respond(req: &Message, code: u16) -> Message {
    let mut h = MessageHead::response(req.head.transaction_id(), StatusCode(code), None).unwrap();
    let from = req.head.get("From-Path").unwrap();
    h.push("To-Path", from.split(' ').next().unwrap()).unwrap();
    h.push("From-Path", req.head.get("To-Path").unwrap())
        .unwrap();
    Message {
        head: h,
        body: None,
        continuation: Continuation::Complete,
    }
}

fn paths(m: &Message) -> (String, String) {
    (
        m.head.get("To-Path").unwrap().to_string(),
        m.head.get("From-Path").unwrap().to_string(),
    )
}

const ALICE: &str = "msrp://alice.test:9001/a1;tcp";
const BOB: &str = "msrps://bob.test:9002/b1;tcp";

#[test]
fn auth_with_right_and_wrong_credentials_over_tcp_and_tls() {
    let fx = Fixture::new();
    let r = fx.start(&[]);
    let mut a = Peer::tcp(r.tcp.unwrap(), ALICE);
    let wrong = a.authenticate(&[&r.tcp_uri()], "alice", "not-her-password");
    assert_eq!(wrong.head.status_code(), Some(StatusCode::FORBIDDEN));
    assert!(wrong.head.use_path().is_none());
    let ok = a.authenticate(&[&r.tcp_uri()], "alice", "alice-pw");
    assert_eq!(ok.head.status_code(), Some(StatusCode::OK));
    let up = ok.head.use_path().unwrap();
    assert_eq!(up.len(), 1);
    assert_eq!(
        up[0]
            .to_string()
            .split('/')
            .take(3)
            .collect::<Vec<_>>()
            .join("/"),
        format!("msrp://localhost:{}", r.tcp.unwrap().port())
    );
    assert_eq!(ok.head.expires(), Some(1800));

    let mut b = Peer::tls(r.tls.unwrap(), fx.tls_config(), BOB);
    let ok = b.authenticate(&[&r.tls_uri()], "bob", "bob-pw");
    assert_eq!(ok.head.status_code(), Some(StatusCode::OK));
    let u = &ok.head.use_path().unwrap()[0];
    assert!(u.is_secure(), "a TLS client gets an msrps URI: {u}");
    assert_eq!(u.port, Some(r.tls.unwrap().port()));
    let unknown = b.authenticate(&[&r.tls_uri()], "eve", "x");
    assert_eq!(unknown.head.status_code(), Some(StatusCode::FORBIDDEN));
}

#[test]
fn send_through_one_relay_and_unknown_session_and_unauthenticated_client() {
    let fx = Fixture::new();
    let r = fx.start(&[]);
    let mut a = Peer::tls(r.tls.unwrap(), fx.tls_config(), ALICE);
    let mut b = Peer::tls(r.tls.unwrap(), fx.tls_config(), BOB);
    let ua = a.use_path(&[&r.tls_uri()], "alice", "alice-pw");
    let ub = b.use_path(&[&r.tls_uri()], "bob", "bob-pw");
    a.send(&send_msg(
        "s001",
        &format!("{ua} {ub} {BOB}"),
        ALICE,
        b"Hi Bob",
    ));
    let ok = a.recv();
    assert_eq!(ok.head.status_code(), Some(StatusCode::OK));
    assert_eq!(paths(&ok), (ALICE.to_string(), ua.clone()));
    let got = b.recv();
    // RFC 4976 §6.4.1: To-Path loses, From-Path gains, the relay's URIs.
    assert_eq!(paths(&got), (BOB.to_string(), format!("{ub} {ua} {ALICE}")));
    assert_eq!(got.body.as_deref(), Some(&b"Hi Bob"[..]));
    b.send(&respond(&got, 200));

    // A guessed session id: 481.
    let mut m = Peer::tcp(r.tcp.unwrap(), "msrp://m.test:1/m;tcp");
    let guessed = format!(
        "msrp://localhost:{}/00112233445566778899aabb;tcp",
        r.tcp.unwrap().port()
    );
    m.send(&send_msg(
        "x001",
        &format!("{guessed} {BOB}"),
        &m.uri.clone(),
        b"x",
    ));
    assert_eq!(
        m.recv().head.status_code(),
        Some(StatusCode::SESSION_DOES_NOT_EXIST)
    );
    // Never authenticated: cannot send through the relay (no session: 403; another
    // client's Use-Path toward someone else: 403).
    m.send(&send_msg(
        "x002",
        &format!("{} {BOB}", r.tcp_uri()),
        &m.uri.clone(),
        b"x",
    ));
    assert_eq!(m.recv().head.status_code(), Some(StatusCode::FORBIDDEN));
    m.send(&send_msg(
        "x003",
        &format!("{ua} {BOB}"),
        &m.uri.clone(),
        b"x",
    ));
    assert_eq!(m.recv().head.status_code(), Some(StatusCode::FORBIDDEN));
    assert!(
        b.recv_within(Duration::from_millis(500)).is_none(),
        "nothing reached Bob"
    );
}

#[test]
fn chain_of_two_relay_processes_with_a_chunked_message_and_reports() {
    let fx = Fixture::new();
    let r1 = fx.start(&[]);
    let r2 = fx.start(&[]);
    // Alice uses R1 over TCP; Bob uses R2 over TLS; R1 reaches R2 over TLS (msrps),
    // verifying its certificate against the CA and the name localhost.
    let mut a = Peer::tcp(r1.tcp.unwrap(), ALICE);
    let mut b = Peer::tls(r2.tls.unwrap(), fx.tls_config(), BOB);
    let ua = a.use_path(&[&r1.tcp_uri()], "alice", "alice-pw");
    let ub = b.use_path(&[&r2.tls_uri()], "bob", "bob-pw");
    assert!(ub.starts_with("msrps://"));
    let to = format!("{ua} {ub} {BOB}");

    a.send(&send_msg("s001", &to, ALICE, b"Hi Bob"));
    assert_eq!(a.recv().head.status_code(), Some(StatusCode::OK));
    let got = b.recv();
    // RFC 4976 §3 / §6.4.1: the receiver sees To-Path = itself, From-Path = R2, R1, Alice.
    assert_eq!(paths(&got), (BOB.to_string(), format!("{ub} {ua} {ALICE}")));
    b.send(&respond(&got, 200));

    // A 3-chunk message of 3 x 60 000 bytes, each chunk written in pieces.
    let total: u64 = 180_000;
    let body: Vec<u8> = (0..total).map(|i| b'A' + (i % 23) as u8).collect();
    for (k, part) in body.chunks(60_000).enumerate() {
        let start = k as u64 * 60_000 + 1;
        let end = start + part.len() as u64 - 1;
        let tid = format!("chunk{k}");
        let mut h = MessageHead::request(&tid, Method::Send).unwrap();
        h.push("To-Path", &to).unwrap();
        h.push("From-Path", ALICE).unwrap();
        h.push_message_id("big-1").unwrap();
        h.push_success_report(true).unwrap();
        h.push_byte_range(ByteRange::new(start, Some(end), Some(total)).unwrap())
            .unwrap();
        h.push_content_type("application/octet-stream").unwrap();
        let mut wire = Vec::new();
        write_head(&h, &mut wire);
        write_body_start(&mut wire);
        wire.extend_from_slice(part);
        let flag = if end == total {
            Continuation::Complete
        } else {
            Continuation::More
        };
        write_end_line(&tid, true, flag, &mut wire);
        for piece in wire.chunks(7_000) {
            a.io.write_all(piece).unwrap();
        }
        a.io.flush().unwrap();
    }
    let mut received = Vec::new();
    let mut last = None;
    for _ in 0..3 {
        let m = b.recv();
        assert_eq!(m.head.method(), Some(&Method::Send));
        assert_eq!(m.head.message_id(), Some("big-1"));
        assert_eq!(paths(&m), (BOB.to_string(), format!("{ub} {ua} {ALICE}")));
        received.extend_from_slice(m.body.as_deref().unwrap());
        b.send(&respond(&m, 200));
        last = Some(m);
    }
    assert_eq!(received, body);
    assert_eq!(last.unwrap().continuation, Continuation::Complete);
    for _ in 0..3 {
        assert_eq!(a.recv().head.status_code(), Some(StatusCode::OK));
    }

    // Bob's success REPORT travels back through R2 (which opens a connection to R1) to Alice.
    let mut h = MessageHead::request("rep1", Method::Report).unwrap();
    h.push("To-Path", &format!("{ub} {ua} {ALICE}")).unwrap();
    h.push("From-Path", BOB).unwrap();
    h.push_message_id("big-1").unwrap();
    h.push("Byte-Range", &format!("1-{total}/{total}")).unwrap();
    h.push_status(StatusCode::OK, Some("OK")).unwrap();
    b.send(&Message {
        head: h,
        body: None,
        continuation: Continuation::Complete,
    });
    let rep = a.recv();
    assert_eq!(rep.head.method(), Some(&Method::Report));
    assert_eq!(paths(&rep), (ALICE.to_string(), format!("{ua} {ub} {BOB}")));
    assert_eq!(rep.head.status().unwrap().code, StatusCode::OK);

    // AUTH to R2 through R1 (RFC 4976 §5.1): Use-Path = R1's URI, then R2's new one.
    let r2_plain = format!("msrps://localhost:{};tcp", r2.tls.unwrap().port());
    let ok = a.authenticate(&[&ua, &r2_plain], "alice", "alice-pw");
    assert_eq!(ok.head.status_code(), Some(StatusCode::OK), "{ok:?}");
    let up = ok.head.use_path().unwrap();
    assert_eq!(up.len(), 2);
    assert_eq!(up[0], MsrpUri::parse(&ua).unwrap());
    assert_eq!(up[1].port, r2.tls.map(|a| a.port()));
}

#[test]
fn a_client_that_never_authenticates_is_closed_after_failures() {
    let fx = Fixture::new();
    let r = fx.start(&["--max-failed-requests", "2"]);
    let mut m = Peer::tcp(r.tcp.unwrap(), "msrp://m.test:1/m;tcp");
    for i in 0..3 {
        let w = m.authenticate(&[&r.tcp_uri()], "alice", &format!("guess{i}"));
        assert_eq!(w.head.status_code(), Some(StatusCode::FORBIDDEN));
    }
    // RFC 4976 §6.3: several failed AUTHs close the connection.
    assert!(m.closed());
}

#[test]
fn sigterm_stops_the_relay_with_exit_status_0() {
    let fx = Fixture::new();
    let mut r = fx.start(&[]);
    let mut a = Peer::tcp(r.tcp.unwrap(), ALICE);
    a.use_path(&[&r.tcp_uri()], "alice", "alice-pw");
    let st = Command::new("kill")
        .args(["-TERM", &r.child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = r.child.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "relay still running 10 s after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(0));
    assert!(a.closed(), "the client connection was closed");
    assert!(
        TcpStream::connect(r.tcp.unwrap()).is_err(),
        "no longer listening"
    );
}

#[test]
fn configuration_errors_exit_1_with_a_clear_message() {
    let fx = Fixture::new();
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_msrp"))
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let users = fx.path("users").display().to_string();
    // Port in use.
    let busy = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = busy.local_addr().unwrap().to_string();
    let (code, err) = run(&["relay", "--listen", &addr, "--users", &users]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("cannot listen on") && err.contains(&addr),
        "{err}"
    );
    // Missing certificate file.
    let (code, err) = run(&[
        "relay",
        "--tls-listen",
        "127.0.0.1:0",
        "--cert",
        "/nonexistent/cert.pem",
        "--key",
        "/nonexistent/key.pem",
        "--users",
        &users,
        "--host",
        "localhost",
    ]);
    assert_eq!(code, Some(1));
    assert!(err.contains("/nonexistent/cert.pem"), "{err}");
    // Unknown key in the configuration file.
    let cfg = fx.path("bad.toml");
    std::fs::write(&cfg, "listen = \"127.0.0.1:0\"\nlisen = 1\n").unwrap();
    let (code, err) = run(&["relay", "--config", cfg.to_str().unwrap()]);
    assert_eq!(code, Some(1));
    assert!(err.contains("unknown field `lisen`"), "{err}");
    // No users file.
    let (code, err) = run(&["relay", "--listen", "127.0.0.1:0"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("--users"), "{err}");
}

#[test]
fn config_file_alone_starts_the_relay() {
    let fx = Fixture::new();
    let cfg = fx.path("relay.toml");
    std::fs::write(
        &cfg,
        format!(
            "host = \"localhost\"\nrealm = \"{REALM}\"\nusers = \"{}\"\nlisten = \"127.0.0.1:0\"\nmin_expires = 100\nmax_expires = 900\n[limits]\nmax_connections_per_address = 4\n",
            fx.path("users").display()
        ),
    )
    .unwrap();
    let r = spawn_relay(&[
        "relay".into(),
        "--json".into(),
        "--config".into(),
        cfg.display().to_string(),
    ]);
    let mut a = Peer::tcp(r.tcp.unwrap(), ALICE);
    // Expires below the configured minimum: 423 with Min-Expires.
    let mut h = MessageHead::request("e001", Method::Auth).unwrap();
    h.push("To-Path", &r.tcp_uri()).unwrap();
    h.push("From-Path", ALICE).unwrap();
    a.send(&Message {
        head: h,
        body: None,
        continuation: Continuation::Complete,
    });
    let ch = a.recv();
    let c = Challenge::parse(ch.head.www_authenticate().next().unwrap()).unwrap();
    let mut dc = DigestClient::new(Credentials::new("alice", "alice-pw").unwrap());
    dc.on_challenge(c).unwrap();
    let auth = dc.authorize(&r.tcp_uri(), "99aa").unwrap();
    let mut h = MessageHead::request("e002", Method::Auth).unwrap();
    h.push("To-Path", &r.tcp_uri()).unwrap();
    h.push("From-Path", ALICE).unwrap();
    h.push("Authorization", &auth.to_string()).unwrap();
    h.push("Expires", "10").unwrap();
    a.send(&Message {
        head: h,
        body: None,
        continuation: Continuation::Complete,
    });
    let r423 = a.recv();
    assert_eq!(
        r423.head.status_code(),
        Some(StatusCode::INTERVAL_OUT_OF_BOUNDS)
    );
    assert_eq!(r423.head.min_expires(), Some(100));
    // Above the configured maximum: 423 with Max-Expires (RFC 4976 §4.6, §6.3), no Use-Path.
    let auth = dc.authorize(&r.tcp_uri(), "99ab").unwrap();
    let mut h = MessageHead::request("e003", Method::Auth).unwrap();
    h.push("To-Path", &r.tcp_uri()).unwrap();
    h.push("From-Path", ALICE).unwrap();
    h.push("Authorization", &auth.to_string()).unwrap();
    h.push("Expires", "3600").unwrap();
    a.send(&Message {
        head: h,
        body: None,
        continuation: Continuation::Complete,
    });
    let r423 = a.recv();
    assert_eq!(
        r423.head.status_code(),
        Some(StatusCode::INTERVAL_OUT_OF_BOUNDS)
    );
    assert_eq!(r423.head.max_expires(), Some(900));
    assert!(r423.head.use_path().is_none());
    // The per-address limit from the file: the 5th connection is refused (closed at once).
    let _keep: Vec<TcpStream> = (0..3)
        .map(|_| TcpStream::connect(r.tcp.unwrap()).unwrap())
        .collect();
    let mut fifth = Peer::tcp(r.tcp.unwrap(), ALICE);
    assert!(fifth.closed());
}

/// A receiver that does not read: the relay stops reading the sender (backpressure) instead
/// of buffering the message, and everything arrives once the receiver reads again.
#[test]
fn a_receiver_that_does_not_read_holds_back_the_sender_not_the_relay_memory() {
    let fx = Fixture::new();
    let r = fx.start(&["--max-pending-bytes", "65536"]);
    let pid = r.child.id();
    let s = TcpStream::connect(r.tcp.unwrap()).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut writer = s.try_clone().unwrap();
    let mut a = Peer::new(Box::new(s), ALICE);
    let mut b = Peer::tcp(r.tcp.unwrap(), BOB);
    let ua = a.use_path(&[&r.tcp_uri()], "alice", "alice-pw");
    let ub = b.use_path(&[&r.tcp_uri()], "bob", "bob-pw");
    let before = rss_kib(pid);
    const SIZE: usize = 48 * 1024 * 1024;
    let body = vec![b'x'; SIZE];
    let m = send_msg("huge1", &format!("{ua} {ub} {BOB}"), ALICE, &body);
    let wire = m.encode().unwrap();
    drop(body);
    let (done_tx, done_rx) = mpsc::channel();
    let t = std::thread::spawn(move || {
        let r = writer.write_all(&wire);
        let _ = done_tx.send(r.is_ok());
    });
    // Bob reads nothing for 3 s: Alice cannot finish (socket buffers hold a few MiB, not 48).
    assert!(
        done_rx.recv_timeout(Duration::from_secs(3)).is_err(),
        "the whole message was accepted while the receiver read nothing"
    );
    let during = rss_kib(pid);
    eprintln!("relay RSS: {before} KiB before, {during} KiB with 48 MiB held back");
    assert!(
        during < before + 16 * 1024,
        "relay memory grew from {before} KiB to {during} KiB while the receiver did not read"
    );
    // Bob reads: the message arrives whole, and Alice's write completes.
    let got = b
        .recv_within(Duration::from_secs(120))
        .expect("the message");
    assert_eq!(got.body.as_ref().map(Vec::len), Some(SIZE));
    assert!(got.body.unwrap().iter().all(|&c| c == b'x'));
    assert_eq!(done_rx.recv_timeout(Duration::from_secs(60)), Ok(true));
    t.join().unwrap();
    assert_eq!(a.recv().head.status_code(), Some(StatusCode::OK));
}
