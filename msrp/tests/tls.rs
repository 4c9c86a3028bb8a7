//! TLS layer over real loopback sockets: fingerprint pinning both ways, refusals, CA mode,
//! TLS versions, and an independent client (`openssl s_client`).

use std::future::Future;
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use msrp::proto::fingerprint::Fingerprint;
use msrp::proto::sdp::{create_answer, create_offer, LocalConfig, Reachability, Role, TlsRole};
use msrp::rustls::{self, ClientConfig, ProtocolVersion, ServerConfig};
use msrp::tls::{
    accept_tls, client_config, client_config_with_versions, connect_tls, load_ca_file,
    peer_fingerprint, server_config, server_config_with_versions, server_name_for,
    verify_peer_fingerprint, PeerAuth, TlsError, TlsIdentity,
};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// Bound on every await of these tests.
const WAIT: Duration = Duration::from_secs(10);
/// Handshake timeout given to our helpers.
const HANDSHAKE: Duration = Duration::from_secs(5);

async fn bounded<F: Future>(f: F) -> F::Output {
    tokio::time::timeout(WAIT, f)
        .await
        .expect("operation did not finish within the test bound")
}

/// What the server side saw: the line it received, and the client's certificate fingerprint
/// and TLS version.
#[derive(Debug)]
struct Served {
    line: String,
    client_fp: Option<Fingerprint>,
    version: Option<ProtocolVersion>,
    /// The server name indication the client sent.
    sni: Option<String>,
}

/// Listens on loopback, accepts one TLS connection, reads one line and answers
/// `ack:<line>`. Returns the address and the server's outcome.
async fn serve_once(
    config: Arc<ServerConfig>,
) -> (
    std::net::SocketAddr,
    tokio::task::JoinHandle<Result<Served, TlsError>>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    (addr, serve_on(listener, config))
}

/// [`serve_once`] on a given listener.
fn serve_on(
    listener: TcpListener,
    config: Arc<ServerConfig>,
) -> tokio::task::JoinHandle<Result<Served, TlsError>> {
    tokio::spawn(async move {
        let (tcp, _) = bounded(listener.accept()).await.unwrap();
        let tls = accept_tls(tcp, config, HANDSHAKE).await?;
        let client_fp = peer_fingerprint(tls.get_ref().1);
        let version = tls.get_ref().1.protocol_version();
        let sni = tls.get_ref().1.server_name().map(str::to_string);
        let mut reader = BufReader::new(tls);
        let mut line = String::new();
        bounded((&mut reader).take(4096).read_line(&mut line)).await?;
        let mut tls = reader.into_inner();
        bounded(tls.write_all(format!("ack:{line}").as_bytes())).await?;
        bounded(tls.shutdown()).await?;
        Ok(Served {
            line,
            client_fp,
            version,
            sni,
        })
    })
}

/// What the client side saw.
#[derive(Debug)]
struct Client {
    reply: Vec<u8>,
    server_fp: Option<Fingerprint>,
    version: Option<ProtocolVersion>,
}

/// Connects, sends one line, reads the reply to EOF.
async fn client_once(
    addr: std::net::SocketAddr,
    name: &str,
    config: Arc<ClientConfig>,
) -> Result<Client, TlsError> {
    let tcp = bounded(TcpStream::connect(addr)).await.unwrap();
    let mut tls = connect_tls(tcp, name, config, HANDSHAKE).await?;
    let server_fp = peer_fingerprint(tls.get_ref().1);
    let version = tls.get_ref().1.protocol_version();
    bounded(tls.write_all(b"hello over msrps\n")).await?;
    bounded(tls.flush()).await?;
    let mut reply = Vec::new();
    bounded((&mut tls).take(4096).read_to_end(&mut reply)).await?;
    Ok(Client {
        reply,
        server_fp,
        version,
    })
}

fn pinned(id: &TlsIdentity) -> PeerAuth {
    PeerAuth::Fingerprints(id.fingerprints().to_vec())
}

#[tokio::test]
async fn pinned_both_directions_handshake_and_data_flow() {
    let server_id = TlsIdentity::generate().unwrap();
    let client_id = TlsIdentity::generate().unwrap();
    // The MSRP URI host is an IP address or a name that the self-signed certificate
    // (subjectAltName msrp.invalid) does not carry: with pinning, names play no part
    // (RFC 4975 §14.4), and a DNS name is still sent as SNI (RFC 4975 §14.2).
    for (host, sni) in [("127.0.0.1", None), ("peer.test", Some("peer.test"))] {
        let scfg = server_config(&server_id, pinned(&client_id)).unwrap();
        let ccfg = client_config(Some(&client_id), pinned(&server_id)).unwrap();
        let (addr, server) = serve_once(scfg).await;
        let client = client_once(addr, host, ccfg).await.unwrap();
        let served = bounded(server).await.unwrap().unwrap();
        assert_eq!(served.line, "hello over msrps\n");
        assert_eq!(client.reply, b"ack:hello over msrps\n");
        // each side saw exactly the certificate pinned by the other's SDP
        assert_eq!(served.client_fp.as_ref(), Some(client_id.fingerprint()));
        assert_eq!(client.server_fp.as_ref(), Some(server_id.fingerprint()));
        // both TLS versions are enabled: the default is TLS 1.3
        assert_eq!(client.version, Some(ProtocolVersion::TLSv1_3));
        assert_eq!(served.version, Some(ProtocolVersion::TLSv1_3));
        assert_eq!(served.sni.as_deref(), sni);
    }
}

#[tokio::test]
async fn server_certificate_not_matching_fingerprint_is_refused_by_client() {
    let server_id = TlsIdentity::generate().unwrap();
    let client_id = TlsIdentity::generate().unwrap();
    let impostor_expected = TlsIdentity::generate().unwrap(); // what the client's SDP said
    let scfg = server_config(&server_id, pinned(&client_id)).unwrap();
    let ccfg = client_config(Some(&client_id), pinned(&impostor_expected)).unwrap();
    let (addr, server) = serve_once(scfg).await;
    let err = client_once(addr, "127.0.0.1", ccfg).await.unwrap_err();
    match &err {
        TlsError::FingerprintMismatch { expected, received } => {
            assert_eq!(expected, &impostor_expected.fingerprint().to_string());
            assert_eq!(received, &server_id.fingerprint().to_string());
        }
        e => panic!("expected a fingerprint mismatch, got {e:?}"),
    }
    let msg = err.to_string();
    assert!(
        msg.contains(&impostor_expected.fingerprint().hex())
            && msg.contains(&server_id.fingerprint().hex()),
        "error must name both fingerprints: {msg}"
    );
    // the server never got a connection to read from: the client aborted with an alert
    let served = bounded(server).await.unwrap();
    assert!(
        matches!(served, Err(TlsError::PeerRefused { .. })),
        "{served:?}"
    );
}

/// Runs a client whose certificate the server refuses, and checks that no application data
/// passes either way. Returns the server's error.
async fn refused_by_server(
    scfg: Arc<ServerConfig>,
    name: &str,
    ccfg: Arc<ClientConfig>,
) -> TlsError {
    let (addr, server) = serve_once(scfg).await;
    let client = client_once(addr, name, ccfg).await;
    let served = bounded(server).await.unwrap();
    // With TLS 1.3 the client finishes its side of the handshake before the server has
    // checked its certificate, so it may write; it must then read no data, only the refusal.
    match client {
        Err(_) => {}
        Ok(c) => assert!(
            c.reply.is_empty(),
            "refused client received data: {:?}",
            c.reply
        ),
    }
    served.expect_err("server accepted a connection it must refuse")
}

#[tokio::test]
async fn client_certificate_not_matching_fingerprint_is_refused_by_server() {
    let server_id = TlsIdentity::generate().unwrap();
    let client_id = TlsIdentity::generate().unwrap();
    let expected_by_server = TlsIdentity::generate().unwrap();
    let scfg = server_config(&server_id, pinned(&expected_by_server)).unwrap();
    let ccfg = client_config(Some(&client_id), pinned(&server_id)).unwrap();
    match refused_by_server(scfg, "127.0.0.1", ccfg).await {
        TlsError::FingerprintMismatch { expected, received } => {
            assert_eq!(expected, expected_by_server.fingerprint().to_string());
            assert_eq!(received, client_id.fingerprint().to_string());
        }
        e => panic!("expected a fingerprint mismatch, got {e:?}"),
    }
}

#[tokio::test]
async fn client_refusal_is_reported_to_the_refused_client() {
    // TLS 1.2: the client's handshake waits for the server's Finished, so connect itself
    // fails with the server's alert.
    let server_id = TlsIdentity::generate().unwrap();
    let client_id = TlsIdentity::generate().unwrap();
    let other = TlsIdentity::generate().unwrap();
    let scfg = server_config(&server_id, pinned(&other)).unwrap();
    let ccfg = client_config_with_versions(
        Some(&client_id),
        pinned(&server_id),
        &[&rustls::version::TLS12],
    )
    .unwrap();
    let (addr, server) = serve_once(scfg).await;
    let client = client_once(addr, "127.0.0.1", ccfg).await;
    assert!(
        matches!(client, Err(TlsError::PeerRefused { .. })),
        "{client:?}"
    );
    let served = bounded(server).await.unwrap();
    assert!(
        matches!(served, Err(TlsError::FingerprintMismatch { .. })),
        "{served:?}"
    );
}

#[tokio::test]
async fn client_without_certificate_is_refused_when_one_is_required() {
    let server_id = TlsIdentity::generate().unwrap();
    let client_id = TlsIdentity::generate().unwrap();
    let scfg = server_config(&server_id, pinned(&client_id)).unwrap();
    let ccfg = client_config(None, pinned(&server_id)).unwrap();
    let err = refused_by_server(scfg, "127.0.0.1", ccfg).await;
    assert!(matches!(err, TlsError::NoPeerCertificate), "{err:?}");
    assert!(err.to_string().contains("no TLS certificate"), "{err}");
}

#[tokio::test]
async fn fingerprint_pending_checks_after_the_answer_arrives() {
    // RFC 8122 §6.2: the connection outraced the answer; the server requires a certificate
    // and checks it once the fingerprint is known.
    let server_id = TlsIdentity::generate().unwrap();
    let client_id = TlsIdentity::generate().unwrap();
    let wrong = TlsIdentity::generate().unwrap();
    let scfg = server_config(&server_id, PeerAuth::FingerprintPending).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (right_fps, wrong_fps) = (
        client_id.fingerprints().to_vec(),
        wrong.fingerprints().to_vec(),
    );
    let server = tokio::spawn(async move {
        let (tcp, _) = bounded(listener.accept()).await.unwrap();
        let tls = accept_tls(tcp, scfg, HANDSHAKE).await?;
        let conn = tls.get_ref().1;
        Ok::<_, TlsError>((
            verify_peer_fingerprint(conn, &wrong_fps),
            verify_peer_fingerprint(conn, &right_fps),
        ))
    });
    let ccfg = client_config(Some(&client_id), pinned(&server_id)).unwrap();
    let tcp = bounded(TcpStream::connect(addr)).await.unwrap();
    let _tls = connect_tls(tcp, "127.0.0.1", ccfg, HANDSHAKE)
        .await
        .unwrap();
    let (wrong_result, right_result) = bounded(server).await.unwrap().unwrap();
    match wrong_result {
        Err(TlsError::FingerprintMismatch { expected, received }) => {
            assert_eq!(expected, wrong.fingerprint().to_string());
            assert_eq!(received, client_id.fingerprint().to_string());
        }
        r => panic!("expected a mismatch, got {r:?}"),
    }
    assert!(right_result.is_ok(), "{right_result:?}");

    // ... and a client without a certificate is refused even before the answer is known.
    let scfg = server_config(&server_id, PeerAuth::FingerprintPending).unwrap();
    let ccfg = client_config(None, pinned(&server_id)).unwrap();
    let err = refused_by_server(scfg, "127.0.0.1", ccfg).await;
    assert!(matches!(err, TlsError::NoPeerCertificate), "{err:?}");
}

#[tokio::test]
async fn tls12_only_and_tls13_only_clients_both_work() {
    let server_id = TlsIdentity::generate().unwrap();
    let client_id = TlsIdentity::generate().unwrap();
    for (version, expected) in [
        (&rustls::version::TLS12, ProtocolVersion::TLSv1_2),
        (&rustls::version::TLS13, ProtocolVersion::TLSv1_3),
    ] {
        let scfg = server_config(&server_id, pinned(&client_id)).unwrap();
        let ccfg =
            client_config_with_versions(Some(&client_id), pinned(&server_id), &[version]).unwrap();
        let (addr, server) = serve_once(scfg).await;
        let client = client_once(addr, "127.0.0.1", ccfg).await.unwrap();
        let served = bounded(server).await.unwrap().unwrap();
        assert_eq!(client.version, Some(expected));
        assert_eq!(served.version, Some(expected));
        assert_eq!(client.reply, b"ack:hello over msrps\n");
        assert_eq!(served.client_fp.as_ref(), Some(client_id.fingerprint()));
    }
    // a TLS 1.2-only server also serves our default client (both versions enabled)
    let scfg =
        server_config_with_versions(&server_id, pinned(&client_id), &[&rustls::version::TLS12])
            .unwrap();
    let ccfg = client_config(Some(&client_id), pinned(&server_id)).unwrap();
    let (addr, server) = serve_once(scfg).await;
    let client = client_once(addr, "127.0.0.1", ccfg).await.unwrap();
    bounded(server).await.unwrap().unwrap();
    assert_eq!(client.version, Some(ProtocolVersion::TLSv1_2));
}

/// A tiny CA, and leaf certificates it signs.
struct TestCa {
    cert: rcgen::Certificate,
    key: rcgen::KeyPair,
}

impl TestCa {
    fn new() -> TestCa {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "msrp test CA");
        let cert = params.self_signed(&key).unwrap();
        TestCa { cert, key }
    }

    fn leaf(&self, name: &str) -> TlsIdentity {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec![name.to_string()]).unwrap();
        params.extended_key_usages = vec![
            rcgen::ExtendedKeyUsagePurpose::ServerAuth,
            rcgen::ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let cert = params.signed_by(&key, &self.cert, &self.key).unwrap();
        TlsIdentity::new(
            vec![cert.der().clone()],
            rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der()).unwrap(),
        )
        .unwrap()
    }

    /// The CA certificate written as a PEM file, loaded back as roots (as `--ca FILE`).
    fn roots(&self, dir: &Path) -> PeerAuth {
        let path = dir.join("ca.pem");
        std::fs::write(&path, self.cert.pem()).unwrap();
        PeerAuth::CaRoots(Arc::new(load_ca_file(&path).unwrap()))
    }
}

#[tokio::test]
async fn ca_roots_with_host_name_for_a_relay() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let relay = ca.leaf("relay.test");
    let roots = ca.roots(dir.path());

    // right name: accepted, and no client certificate needed towards a relay (RFC 4976 AUTH)
    let scfg = server_config(&relay, PeerAuth::NoClientCertificate).unwrap();
    let (addr, server) = serve_once(scfg.clone()).await;
    let client = client_once(
        addr,
        "relay.test",
        client_config(None, roots.clone()).unwrap(),
    )
    .await
    .unwrap();
    let served = bounded(server).await.unwrap().unwrap();
    assert_eq!(client.reply, b"ack:hello over msrps\n");
    assert_eq!(served.client_fp, None);
    // RFC 4975 §14.2: server name indication is sent
    assert_eq!(served.sni.as_deref(), Some("relay.test"));

    // wrong name: refused
    let (addr, server) = serve_once(scfg.clone()).await;
    let err = client_once(
        addr,
        "other.test",
        client_config(None, roots.clone()).unwrap(),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(
            err,
            TlsError::Tls(rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidForName
                    | rustls::CertificateError::NotValidForNameContext { .. }
            ))
        ),
        "{err:?}"
    );
    assert!(bounded(server).await.unwrap().is_err());

    // a self-signed server is not trusted in CA mode
    let self_signed = TlsIdentity::generate_for(&["relay.test".to_string()]).unwrap();
    let scfg = server_config(&self_signed, PeerAuth::NoClientCertificate).unwrap();
    let (addr, server) = serve_once(scfg).await;
    let err = client_once(addr, "relay.test", client_config(None, roots).unwrap())
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            TlsError::Tls(rustls::Error::InvalidCertificate(
                rustls::CertificateError::UnknownIssuer
            ))
        ),
        "{err:?}"
    );
    assert!(bounded(server).await.unwrap().is_err());
}

#[tokio::test]
async fn ca_roots_on_the_server_require_a_client_certificate_under_them() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let server_id = ca.leaf("relay.test");
    let good_client = ca.leaf("alice.test");
    let roots = ca.roots(dir.path());
    let scfg = server_config(&server_id, roots.clone()).unwrap();

    let (addr, server) = serve_once(scfg.clone()).await;
    let ccfg = client_config(Some(&good_client), roots.clone()).unwrap();
    client_once(addr, "relay.test", ccfg).await.unwrap();
    let served = bounded(server).await.unwrap().unwrap();
    assert_eq!(served.client_fp.as_ref(), Some(good_client.fingerprint()));

    let stranger = TlsIdentity::generate().unwrap();
    let ccfg = client_config(Some(&stranger), roots).unwrap();
    let err = refused_by_server(scfg, "relay.test", ccfg).await;
    assert!(
        matches!(
            err,
            TlsError::Tls(rustls::Error::InvalidCertificate(
                rustls::CertificateError::UnknownIssuer
            ))
        ),
        "{err:?}"
    );
}

// ---- an independent TLS client: openssl s_client ----

/// True if openssl can run; with CI=true a missing openssl fails the test.
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

/// Runs `openssl s_client` against `port`, sends one line, and returns its stdout and
/// whether it exited successfully.
async fn s_client(port: u16, cert_key: Option<(&Path, &Path)>, extra: &[&str]) -> (String, bool) {
    let mut cmd = tokio::process::Command::new("openssl");
    cmd.arg("s_client")
        .arg("-connect")
        .arg(format!("127.0.0.1:{port}"))
        .arg("-quiet")
        .args(extra)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    if let Some((cert, key)) = cert_key {
        cmd.arg("-cert").arg(cert).arg("-key").arg(key);
    }
    let mut child = KillOnDrop(cmd.spawn().expect("spawn openssl s_client"));
    let mut stdin = child.0.stdin.take().unwrap();
    // the write may fail if s_client already gave up; that is what the refusals expect
    let _ = bounded(stdin.write_all(b"hello from openssl\n")).await;
    drop(stdin);
    let mut stdout = child.0.stdout.take().unwrap();
    let mut out = Vec::new();
    bounded((&mut stdout).take(64 * 1024).read_to_end(&mut out))
        .await
        .unwrap();
    let status = bounded(child.0.wait()).await.unwrap();
    (String::from_utf8_lossy(&out).into_owned(), status.success())
}

#[tokio::test]
async fn openssl_s_client_with_right_certificate_is_served() {
    if !have_openssl() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let server_id = TlsIdentity::generate().unwrap();
    let client_id = TlsIdentity::generate().unwrap();
    let (cert, key) = (dir.path().join("client.pem"), dir.path().join("client.key"));
    client_id.write_pem_files(&cert, &key).unwrap();
    for extra in [&[][..], &["-tls1_2"][..]] {
        let scfg = server_config(&server_id, pinned(&client_id)).unwrap();
        let (addr, server) = serve_once(scfg).await;
        let (out, ok) = s_client(addr.port(), Some((&cert, &key)), extra).await;
        let served = bounded(server).await.unwrap().unwrap();
        assert_eq!(served.line, "hello from openssl\n", "{extra:?}");
        assert_eq!(served.client_fp.as_ref(), Some(client_id.fingerprint()));
        assert!(out.contains("ack:hello from openssl"), "{extra:?}: {out}");
        assert!(ok, "s_client failed {extra:?}: {out}");
    }
}

#[tokio::test]
async fn openssl_s_client_with_wrong_or_no_certificate_is_refused() {
    if !have_openssl() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let server_id = TlsIdentity::generate().unwrap();
    let expected_client = TlsIdentity::generate().unwrap();
    let wrong_client = TlsIdentity::generate().unwrap();
    let (cert, key) = (dir.path().join("wrong.pem"), dir.path().join("wrong.key"));
    wrong_client.write_pem_files(&cert, &key).unwrap();

    let scfg = server_config(&server_id, pinned(&expected_client)).unwrap();
    let (addr, server) = serve_once(scfg.clone()).await;
    let (out, _) = s_client(addr.port(), Some((&cert, &key)), &[]).await;
    match bounded(server).await.unwrap() {
        Err(TlsError::FingerprintMismatch { expected, received }) => {
            assert_eq!(expected, expected_client.fingerprint().to_string());
            assert_eq!(received, wrong_client.fingerprint().to_string());
        }
        r => panic!("expected a fingerprint mismatch, got {r:?}"),
    }
    assert!(!out.contains("ack:"), "refused client got data: {out}");

    let (addr, server) = serve_once(scfg).await;
    let (out, ok) = s_client(addr.port(), None, &[]).await;
    let served = bounded(server).await.unwrap();
    assert!(
        matches!(served, Err(TlsError::NoPeerCertificate)),
        "{served:?}"
    );
    assert!(!out.contains("ack:"), "refused client got data: {out}");
    assert!(!ok, "s_client should report the refusal");
}

/// Presents one identity's certificate signed with another identity's key: a peer that
/// copied the pinned certificate but does not hold its private key.
#[derive(Debug)]
struct StolenCertificate(Arc<rustls::sign::CertifiedKey>);

impl StolenCertificate {
    fn new(cert_of: &TlsIdentity, key_of: &TlsIdentity) -> Arc<StolenCertificate> {
        let key = rustls::crypto::ring::sign::any_supported_type(
            &rustls::pki_types::PrivateKeyDer::Pkcs8(rustls::pki_types::PrivatePkcs8KeyDer::from(
                pkcs8_of(key_of),
            )),
        )
        .unwrap();
        Arc::new(StolenCertificate(Arc::new(
            rustls::sign::CertifiedKey::new(cert_of.chain().to_vec(), key),
        )))
    }
}

/// The PKCS#8 DER of an identity's key, through its PEM.
fn pkcs8_of(id: &TlsIdentity) -> Vec<u8> {
    let pem = id.private_key_pem();
    match rustls_pemfile::private_key(&mut pem.as_bytes()).unwrap() {
        Some(rustls::pki_types::PrivateKeyDer::Pkcs8(k)) => k.secret_pkcs8_der().to_vec(),
        other => panic!("generated keys are PKCS#8, got {other:?}"),
    }
}

impl rustls::client::ResolvesClientCert for StolenCertificate {
    fn resolve(
        &self,
        _hints: &[&[u8]],
        _schemes: &[rustls::SignatureScheme],
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        Some(self.0.clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

impl rustls::server::ResolvesServerCert for StolenCertificate {
    fn resolve(
        &self,
        _hello: rustls::server::ClientHello<'_>,
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        Some(self.0.clone())
    }
}

#[tokio::test]
async fn pinned_certificate_without_its_private_key_is_refused() {
    // The fingerprint matches, but the handshake signature is made with another key: the
    // signature check (not only the fingerprint) must refuse it, in both directions.
    let server_id = TlsIdentity::generate().unwrap();
    let client_id = TlsIdentity::generate().unwrap();
    let thief = TlsIdentity::generate().unwrap();

    // a client impersonating client_id
    let scfg = server_config(&server_id, pinned(&client_id)).unwrap();
    let mut ccfg = (*client_config(Some(&thief), pinned(&server_id)).unwrap()).clone();
    ccfg.client_auth_cert_resolver = StolenCertificate::new(&client_id, &thief);
    let err = refused_by_server(scfg, "127.0.0.1", Arc::new(ccfg)).await;
    assert!(
        matches!(
            err,
            TlsError::Tls(rustls::Error::InvalidCertificate(
                rustls::CertificateError::BadSignature
            ))
        ),
        "{err:?}"
    );

    // a server impersonating server_id
    let mut scfg = (*server_config(&thief, pinned(&client_id)).unwrap()).clone();
    scfg.cert_resolver = StolenCertificate::new(&server_id, &thief);
    let (addr, server) = serve_once(Arc::new(scfg)).await;
    let ccfg = client_config(Some(&client_id), pinned(&server_id)).unwrap();
    let err = client_once(addr, "127.0.0.1", ccfg).await.unwrap_err();
    assert!(
        matches!(
            err,
            TlsError::Tls(rustls::Error::InvalidCertificate(
                rustls::CertificateError::BadSignature
            ))
        ),
        "{err:?}"
    );
    assert!(bounded(server).await.unwrap().is_err());
}

#[tokio::test]
async fn negotiated_plan_decides_roles_and_pins() {
    // The offerer offers actpass; a reachable answerer becomes passive (the offerer is TLS
    // client), an answerer behind a NAT becomes active (the answerer is TLS client): the
    // TLS role follows a=setup, not who offered (RFC 6135 §4.3, RFC 8122 §6.2).
    for (answerer, answerer_is_client) in [
        (Reachability::Reachable, false),
        (Reachability::BehindNat, true),
    ] {
        let off_id = TlsIdentity::generate().unwrap();
        let ans_id = TlsIdentity::generate().unwrap();
        let off_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let ans_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut off_cfg = LocalConfig::new(off_listener.local_addr().unwrap(), "offer4tls0001");
        off_cfg.tls = true;
        off_cfg.fingerprint = Some(off_id.fingerprint().clone());
        let mut ans_cfg = LocalConfig::new(ans_listener.local_addr().unwrap(), "answer4tls001");
        ans_cfg.tls = true;
        ans_cfg.fingerprint = Some(ans_id.fingerprint().clone());
        ans_cfg.reachability = answerer;
        let pending = create_offer(&off_cfg).unwrap();
        let answered = create_answer(pending.offer(), &ans_cfg).unwrap();
        let off_plan = pending.accept_answer(&answered.answer).unwrap();
        let ans_plan = answered.plan;
        for plan in [&off_plan, &ans_plan] {
            assert_eq!(
                plan.tls_role,
                Some(TlsRole::from_setup_active(plan.role == Role::Active))
            );
        }
        let (client, server) = if answerer_is_client {
            ((&ans_plan, &ans_id), (&off_plan, &off_id, off_listener))
        } else {
            ((&off_plan, &off_id), (&ans_plan, &ans_id, ans_listener))
        };
        assert_eq!(client.0.tls_role, Some(TlsRole::Client));
        assert_eq!(server.0.tls_role, Some(TlsRole::Server));

        let scfg = server_config(server.1, PeerAuth::for_plan(server.0, None).unwrap()).unwrap();
        let task = serve_on(server.2, scfg);
        let uri = client
            .0
            .connect_to
            .clone()
            .expect("the TLS client connects");
        let addr = format!("{}:{}", server_name_for(&uri), uri.port.unwrap())
            .parse()
            .unwrap();
        let ccfg =
            client_config(Some(client.1), PeerAuth::for_plan(client.0, None).unwrap()).unwrap();
        let reply = client_once(addr, &server_name_for(&uri), ccfg)
            .await
            .unwrap();
        let served = bounded(task).await.unwrap().unwrap();
        assert_eq!(reply.reply, b"ack:hello over msrps\n");
        assert_eq!(served.client_fp.as_ref(), Some(client.1.fingerprint()));
        assert_eq!(reply.server_fp.as_ref(), Some(server.1.fingerprint()));
    }

    // Without a fingerprint in the peer's SDP the client needs CA roots, and says so.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut off_cfg = LocalConfig::new(listener.local_addr().unwrap(), "offer4tls0002");
    off_cfg.tls = true;
    let mut ans_cfg = LocalConfig::new("127.0.0.1:9".parse().unwrap(), "answer4tls002");
    ans_cfg.tls = true;
    ans_cfg.reachability = Reachability::BehindNat;
    let pending = create_offer(&off_cfg).unwrap();
    let answered = create_answer(pending.offer(), &ans_cfg).unwrap();
    let err = PeerAuth::for_plan(&answered.plan, None)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("no a=fingerprint") && err.contains("--ca"),
        "{err}"
    );
    let roots = Arc::new({
        let dir = tempfile::tempdir().unwrap();
        match TestCa::new().roots(dir.path()) {
            PeerAuth::CaRoots(r) => (*r).clone(),
            _ => unreachable!(),
        }
    });
    assert!(matches!(
        PeerAuth::for_plan(&answered.plan, Some(roots)),
        Ok(PeerAuth::CaRoots(_))
    ));
    // the passive offerer accepts such a peer without a client certificate
    let plan = pending.accept_answer(&answered.answer).unwrap();
    assert!(matches!(
        PeerAuth::for_plan(&plan, None),
        Ok(PeerAuth::NoClientCertificate)
    ));
}
