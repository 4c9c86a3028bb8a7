//! End-to-end MSRP sessions over TLS (`msrps:`, `TCP/TLS/MSRP`) on loopback: every COMEDIA
//! role combination with the active side as TLS client (RFC 6135 §4.3, RFC 8122 §6.2), the
//! offerer that receives the connection before the answer (RFC 8122 §6.2), wrong
//! fingerprints in either direction, a client without certificate, and `openssl s_client`
//! as an independent TLS client of a passive endpoint.

use std::collections::HashMap;
use std::future::Future;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use msrp::proto::endpoint::{CloseReason, SessionParams};
use msrp::proto::message::{ByteRange, Continuation, Message, MessageHead, Method};
use msrp::proto::sdp::{
    plan, ConnectionPlan, Reachability, Role, SdpAnswer, SdpOffer, Side, TlsRole,
};
use msrp::proto::session::SessionConfig;
use msrp::sink::SequentialWriter;
use msrp::tls::{client_config, connect_tls, PeerAuth, TlsError, TlsIdentity};
use msrp::tls_transport::Refusal;
use msrp::transport::Transport;
use msrp::{MsrpEndpoint, MsrpSession, Options, SessionNotice, TlsTransport};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::sync::broadcast;

const WAIT: Duration = Duration::from_secs(20);

async fn bounded<F: Future>(f: F) -> F::Output {
    tokio::time::timeout(WAIT, f)
        .await
        .expect("operation did not finish within the test bound")
}

struct Ep {
    ep: MsrpEndpoint,
    tls: Arc<TlsTransport>,
}

impl Ep {
    fn fp(&self) -> String {
        self.tls.identity().fingerprint().to_string()
    }
}

async fn endpoint_with(id: TlsIdentity) -> Ep {
    let tls = Arc::new(TlsTransport::new(id, None).with_handshake_timeout(Duration::from_secs(10)));
    let ep = MsrpEndpoint::bind(Options::tls("127.0.0.1:0".parse().unwrap(), tls.clone()))
        .await
        .unwrap();
    Ep { ep, tls }
}

async fn endpoint() -> Ep {
    endpoint_with(TlsIdentity::generate().unwrap()).await
}

/// Offer from `a`, answer from `b`; returns (offered session, offer, answerer session,
/// answer text).
async fn offer_answer(
    a: &Ep,
    b: &Ep,
    ra: Reachability,
    rb: Reachability,
) -> (
    msrp::endpoint::OfferedSession,
    SdpOffer,
    MsrpSession,
    String,
) {
    let mut ca = a.ep.local_config();
    ca.reachability = ra;
    let offered = a.ep.create_offer(&ca).await.unwrap();
    let offer = SdpOffer::parse(&offered.offer().to_string()).unwrap();
    let mut cb = b.ep.local_config();
    cb.reachability = rb;
    let (answer, sb) = b.ep.answer_offer(&offer, &cb).await.unwrap();
    (offered, offer, sb, answer.to_string())
}

async fn receive(s: &mut MsrpSession, count: usize) -> Vec<(String, Vec<u8>)> {
    let mut open: HashMap<String, SequentialWriter<Vec<u8>>> = HashMap::new();
    let mut done = Vec::new();
    while done.len() < count {
        match s.next_notice().await {
            Some(SessionNotice::IncomingStarted { message_id, .. }) => {
                open.insert(message_id, SequentialWriter::new(Vec::new(), 1 << 20));
            }
            Some(SessionNotice::IncomingData {
                message_id,
                offset,
                data,
            }) => open
                .get_mut(&message_id)
                .unwrap()
                .write_at(offset, &data)
                .await
                .unwrap(),
            Some(SessionNotice::IncomingComplete { message_id, .. }) => {
                let w = open.remove(&message_id).unwrap();
                done.push((message_id, w.finish().await.unwrap()));
            }
            Some(SessionNotice::Closed(r)) => panic!("session closed: {r}"),
            Some(_) => {}
            None => panic!("notices ended"),
        }
    }
    done
}

async fn exchange(sa: &mut MsrpSession, sb: &mut MsrpSession) {
    bounded(sa.connected()).await.unwrap();
    bounded(sb.connected()).await.unwrap();
    let ma = sa.send_text("from the offerer over TLS").await.unwrap();
    let mb = sb.send_text("from the answerer over TLS").await.unwrap();
    let (ra, rb) = bounded(async { tokio::join!(receive(sa, 1), receive(sb, 1)) }).await;
    assert_eq!(
        rb[0],
        (ma.message_id.clone(), b"from the offerer over TLS".to_vec())
    );
    assert_eq!(
        ra[0],
        (
            mb.message_id.clone(),
            b"from the answerer over TLS".to_vec()
        )
    );
    assert_eq!(bounded(ma.outcome()).await, Ok(msrp::Outcome::Sent));
    assert_eq!(bounded(mb.outcome()).await, Ok(msrp::Outcome::Sent));
}

/// Nothing reaches the session within `d` (no connection bound, no data).
async fn quiet(s: &mut MsrpSession, d: Duration) {
    if let Ok(n) = tokio::time::timeout(d, s.next_notice()).await {
        panic!("expected no notice, got {n:?}");
    }
}

/// The next refusal of a transport.
async fn refusal(rx: &mut broadcast::Receiver<Refusal>) -> Arc<TlsError> {
    bounded(rx.recv()).await.expect("refusal channel").error
}

/// Runs a genuine peer's plan from endpoint `m` (with `m`'s certificate): its transport
/// learns the plan, then the session starts, as that peer would.
async fn run_plan(m: &Ep, plan: &ConnectionPlan) -> MsrpSession {
    Transport::prepare(&m.tls, plan);
    m.ep.start_session(SessionParams::from_plan(plan, SessionConfig::default()))
        .await
        .unwrap()
}

fn fingerprint_value(fp: &str) -> &str {
    fp.split_once(' ').unwrap().1
}

#[tokio::test]
async fn every_role_combination_over_tls_active_side_is_tls_client() {
    use Reachability::*;
    // (offerer reachability, answerer reachability, expected offerer role)
    let table = [
        (Reachable, Reachable, Role::Active), // actpass -> passive answer
        (Reachable, BehindNat, Role::Passive), // actpass -> active answer
        (BehindNat, Reachable, Role::Active), // active offer -> passive answer
        (BehindNat, BehindNat, Role::Active), // active offer -> passive answer (warned)
    ];
    for (ra, rb, expect) in table {
        bounded(async {
            let (a, b) = (endpoint().await, endpoint().await);
            let (offered, offer, mut sb, answer) = offer_answer(&a, &b, ra, rb).await;
            // RFC 4975 §14.2, RFC 8122 §5: TLS media with our fingerprints in both SDPs.
            let offer_text = offer.to_string();
            for (sdp, who) in [(&offer_text, &a), (&answer, &b)] {
                assert!(sdp.contains("TCP/TLS/MSRP"), "{sdp}");
                assert!(sdp.contains("a=path:msrps://127.0.0.1:"), "{sdp}");
                assert!(
                    sdp.contains(&format!("a=fingerprint:{}", who.fp())),
                    "{sdp}"
                );
            }
            let passive_offerer = expect == Role::Passive;
            if passive_offerer {
                // The answerer connects at once; we process the answer late (RFC 8122
                // §6.2): until then its connection is not verified, so its binding SEND
                // is not answered and the session does not connect.
                quiet(&mut sb, Duration::from_millis(400)).await;
            }
            let mut sa =
                a.ep.accept_answer(offered, &SdpAnswer::parse(&answer).unwrap())
                    .await
                    .unwrap();
            let (pa, pb) = (sa.plan().unwrap().clone(), sb.plan().unwrap().clone());
            assert_eq!(pa.role, expect, "{ra:?}/{rb:?}");
            assert_ne!(pa.role, pb.role);
            for p in [&pa, &pb] {
                // RFC 6135 §4.3: the active side is the TLS client, whoever offered.
                let want = if p.role == Role::Active {
                    TlsRole::Client
                } else {
                    TlsRole::Server
                };
                assert_eq!(p.tls_role, Some(want), "{ra:?}/{rb:?} {:?}", p.side);
                assert!(p.verify_peer_fingerprint);
            }
            assert_eq!(pa.peer_fingerprints, b.tls.identity().fingerprints());
            assert_eq!(pb.peer_fingerprints, a.tls.identity().fingerprints());
            exchange(&mut sa, &mut sb).await;
        })
        .await;
    }
}

#[tokio::test]
async fn passive_side_refuses_wrong_client_certificate_then_binds_the_rightful_peer() {
    bounded(async {
        // A offers active, B answers passive: B is the TLS server.
        let (a, b, m) = (endpoint().await, endpoint().await, endpoint().await);
        let (offered, offer, mut sb, answer) =
            offer_answer(&a, &b, Reachability::BehindNat, Reachability::Reachable).await;
        let answer = SdpAnswer::parse(&answer).unwrap();
        let plan_a = plan(&offer, &answer, Side::Offerer).unwrap();
        let mut refused = b.tls.refusals();
        // M holds another certificate but plays A's part (same paths, same session id).
        let mut sm = run_plan(&m, &plan_a).await;
        let why = bounded(sm.connected()).await.unwrap_err();
        assert!(
            matches!(
                why,
                CloseReason::ConnectionLost(_) | CloseReason::Rejected { .. }
            ),
            "{why}"
        );
        match &*refusal(&mut refused).await {
            TlsError::FingerprintMismatch { expected, received } => {
                assert_eq!(expected, &a.fp());
                assert_eq!(received, &m.fp());
            }
            e => panic!("expected a fingerprint mismatch, got {e}"),
        }
        // Nothing was bound, no data passed.
        quiet(&mut sb, Duration::from_millis(300)).await;
        // B keeps listening: the rightful peer connects and binds.
        let mut sa = a.ep.accept_answer(offered, &answer).await.unwrap();
        exchange(&mut sa, &mut sb).await;
    })
    .await;
}

#[tokio::test]
async fn active_side_refuses_wrong_server_certificate_and_the_passive_side_keeps_listening() {
    bounded(async {
        let (a, b, m) = (endpoint().await, endpoint().await, endpoint().await);
        let (offered, offer, mut sb, answer) =
            offer_answer(&a, &b, Reachability::BehindNat, Reachability::Reachable).await;
        // The answer reaches A with M's fingerprint instead of B's.
        let tampered = answer.replace(fingerprint_value(&b.fp()), fingerprint_value(&m.fp()));
        assert_ne!(tampered, answer);
        let mut a_refused = a.tls.refusals();
        let mut b_refused = b.tls.refusals();
        let mut sa =
            a.ep.accept_answer(offered, &SdpAnswer::parse(&tampered).unwrap())
                .await
                .unwrap();
        // A, the TLS client, refuses B's certificate: the session fails naming both.
        match bounded(sa.connected()).await.unwrap_err() {
            CloseReason::ConnectFailed(msg) => {
                assert!(msg.contains(&format!("expected {}", m.fp())), "{msg}");
                assert!(msg.contains(&format!("received {}", b.fp())), "{msg}");
            }
            r => panic!("expected a connect failure, got {r}"),
        }
        match &*refusal(&mut a_refused).await {
            TlsError::FingerprintMismatch { expected, received } => {
                assert_eq!((expected, received), (&m.fp(), &b.fp()));
            }
            e => panic!("expected a fingerprint mismatch, got {e}"),
        }
        // B saw the handshake aborted by its client.
        let e = refusal(&mut b_refused).await;
        assert!(matches!(&*e, TlsError::PeerRefused { .. }), "{e}");
        quiet(&mut sb, Duration::from_millis(300)).await;
        // The rightful plan (B's real fingerprint) still connects to the listening B.
        let good = plan(&offer, &SdpAnswer::parse(&answer).unwrap(), Side::Offerer).unwrap();
        let mut sa = run_plan(&a, &good).await;
        exchange(&mut sa, &mut sb).await;
    })
    .await;
}

#[tokio::test]
async fn passive_offerer_verifies_after_the_answer_and_refuses_a_mismatch() {
    bounded(async {
        // A offers actpass, B answers active: B connects to A, possibly before A has
        // processed the answer (RFC 8122 §6.2).
        let (a, b, m) = (endpoint().await, endpoint().await, endpoint().await);
        let (offered, offer, mut sb, answer) =
            offer_answer(&a, &b, Reachability::Reachable, Reachability::BehindNat).await;
        let tampered = answer.replace(fingerprint_value(&b.fp()), fingerprint_value(&m.fp()));
        let mut a_refused = a.tls.refusals();
        // B's connection is up at TLS level but held: its binding SEND is not answered.
        quiet(&mut sb, Duration::from_millis(400)).await;
        let tampered = SdpAnswer::parse(&tampered).unwrap();
        let mut sa = a.ep.accept_answer(offered, &tampered).await.unwrap();
        match &*refusal(&mut a_refused).await {
            TlsError::FingerprintMismatch { expected, received } => {
                assert_eq!((expected, received), (&m.fp(), &b.fp()));
            }
            e => panic!("expected a fingerprint mismatch, got {e}"),
        }
        // B's session fails: its connection was dropped without a byte of MSRP.
        let why = bounded(sb.connected()).await.unwrap_err();
        assert!(matches!(why, CloseReason::ConnectionLost(_)), "{why}");
        // The holder of the fingerprint A was given connects and binds (A kept listening).
        let plan_b = plan(&offer, &tampered, Side::Answerer).unwrap();
        let mut sm = run_plan(&m, &plan_b).await;
        exchange(&mut sa, &mut sm).await;
    })
    .await;
}

#[tokio::test]
async fn client_without_certificate_is_refused_when_one_is_required() {
    bounded(async {
        let (a, b) = (endpoint().await, endpoint().await);
        let (offered, _offer, mut sb, answer) =
            offer_answer(&a, &b, Reachability::BehindNat, Reachability::Reachable).await;
        let mut refused = b.tls.refusals();
        // A TLS client that verifies B but presents no certificate.
        let cfg = client_config(
            None,
            PeerAuth::Fingerprints(b.tls.identity().fingerprints().to_vec()),
        )
        .unwrap();
        let tcp = tokio::net::TcpStream::connect(b.ep.local_addr())
            .await
            .unwrap();
        let mut tls = connect_tls(tcp, "127.0.0.1", cfg, WAIT).await.unwrap();
        let _ = tls.write_all(b"MSRP x SEND\r\n").await;
        let mut buf = [0u8; 64];
        let read = bounded(tls.read(&mut buf)).await;
        assert!(
            matches!(read, Err(_) | Ok(0)),
            "refused client read {read:?}"
        );
        let e = refusal(&mut refused).await;
        assert!(matches!(&*e, TlsError::NoPeerCertificate), "{e}");
        quiet(&mut sb, Duration::from_millis(300)).await;
        let mut sa =
            a.ep.accept_answer(offered, &SdpAnswer::parse(&answer).unwrap())
                .await
                .unwrap();
        exchange(&mut sa, &mut sb).await;
    })
    .await;
}

// ---- an independent TLS client: openssl s_client ----

fn have_openssl() -> bool {
    let ok = std::process::Command::new("openssl")
        .arg("version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !ok {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("openssl is required (CI=true) but `openssl version` failed: install the Debian package openssl");
        }
        println!("skipped: openssl is not installed");
    }
    ok
}

/// Kills the child process when dropped, whatever happened.
struct KillOnDrop(tokio::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.start_kill();
    }
}

/// Runs `openssl s_client` against `port`, writes `send` to it, and returns its stdout up to
/// the first line containing `until` (or to its end).
async fn s_client(
    port: u16,
    cert_key: Option<(&std::path::Path, &std::path::Path)>,
    send: &[u8],
    until: &str,
) -> String {
    let mut cmd = tokio::process::Command::new("openssl");
    cmd.arg("s_client")
        .arg("-connect")
        .arg(format!("127.0.0.1:{port}"))
        .arg("-quiet")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    if let Some((cert, key)) = cert_key {
        cmd.arg("-cert").arg(cert).arg("-key").arg(key);
    }
    let mut child = KillOnDrop(cmd.spawn().expect("spawn openssl s_client"));
    let mut stdin = child.0.stdin.take().unwrap();
    // May fail when s_client already gave up: that is what the refusals expect.
    let _ = bounded(stdin.write_all(send)).await;
    let mut lines = BufReader::new(child.0.stdout.take().unwrap()).lines();
    let mut out = String::new();
    while let Some(line) = bounded(lines.next_line()).await.unwrap_or(None) {
        out.push_str(&line);
        out.push('\n');
        if line.contains(until) || out.len() > 64 * 1024 {
            break;
        }
    }
    drop(stdin);
    out
}

#[tokio::test]
async fn openssl_s_client_to_a_passive_endpoint_wrong_or_missing_certificate_refused_right_one_binds(
) {
    if !have_openssl() {
        return;
    }
    bounded(async {
        let dir = tempfile::tempdir().unwrap();
        let client_id = TlsIdentity::generate().unwrap();
        let wrong_id = TlsIdentity::generate().unwrap();
        let (cert, key) = (dir.path().join("client.pem"), dir.path().join("client.key"));
        let (wcert, wkey) = (dir.path().join("wrong.pem"), dir.path().join("wrong.key"));
        client_id.write_pem_files(&cert, &key).unwrap();
        wrong_id.write_pem_files(&wcert, &wkey).unwrap();

        // The s_client side's offer: active, TLS, with the client certificate's fingerprint.
        let mut cfg =
            msrp::proto::sdp::LocalConfig::new("127.0.0.1:9".parse().unwrap(), "sclient1sess");
        cfg.reachability = Reachability::BehindNat;
        cfg.tls = true;
        cfg.fingerprint = Some(client_id.fingerprint().clone());
        let pending = msrp::proto::sdp::create_offer(&cfg).unwrap();
        let offer = pending.offer().clone();
        let b = endpoint().await;
        let (answer, mut sb) =
            b.ep.answer_offer(&offer, &b.ep.local_config())
                .await
                .unwrap();
        assert_eq!(sb.plan().unwrap().tls_role, Some(TlsRole::Server));

        // A SEND built with the codec writer.
        let to = answer.media().session_uri().clone();
        let from = offer.media().session_uri().clone();
        let body = b"hello from openssl s_client".to_vec();
        let mut head = MessageHead::request("tls1tx", Method::Send).unwrap();
        head.push_to_path(&[to])
            .unwrap()
            .push_from_path(&[from])
            .unwrap()
            .push_message_id("sclientmsg1")
            .unwrap()
            .push_byte_range(ByteRange {
                start: 1,
                end: Some(body.len() as u64),
                total: Some(body.len() as u64),
            })
            .unwrap()
            .push_content_type("text/plain")
            .unwrap();
        let send = Message {
            head,
            body: Some(body.clone()),
            continuation: Continuation::Complete,
        }
        .encode()
        .unwrap();
        let port = b.ep.local_addr().port();
        let mut refused = b.tls.refusals();

        // Wrong certificate: refused, naming both fingerprints; no response.
        let out = s_client(port, Some((&wcert, &wkey)), &send, "MSRP tls1tx").await;
        assert!(
            !out.contains("MSRP tls1tx"),
            "refused client got a response: {out}"
        );
        match &*refusal(&mut refused).await {
            TlsError::FingerprintMismatch { expected, received } => {
                assert_eq!(expected, &client_id.fingerprint().to_string());
                assert_eq!(received, &wrong_id.fingerprint().to_string());
            }
            e => panic!("expected a fingerprint mismatch, got {e}"),
        }
        // No certificate: refused.
        let out = s_client(port, None, &send, "MSRP tls1tx").await;
        assert!(
            !out.contains("MSRP tls1tx"),
            "refused client got a response: {out}"
        );
        let e = refusal(&mut refused).await;
        assert!(matches!(&*e, TlsError::NoPeerCertificate), "{e}");
        quiet(&mut sb, Duration::from_millis(200)).await;

        // The right certificate: the SEND binds the connection and gets its 200.
        let out = s_client(port, Some((&cert, &key)), &send, "MSRP tls1tx").await;
        assert!(out.contains("MSRP tls1tx 200 OK"), "{out}");
        bounded(sb.connected()).await.unwrap();
        let got = bounded(receive(&mut sb, 1)).await;
        assert_eq!(got[0], ("sclientmsg1".to_string(), body));
    })
    .await;
}
