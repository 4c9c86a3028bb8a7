//! Fault: the `msrp relay` process between two endpoints dies in the middle of a session and
//! is restarted on the same port. Both sessions end with the application told
//! (`Closed(ConnectionLost)`, the in-flight message failed with a status, or confirmed only if
//! it really arrived), nothing hangs (every wait is bounded), and after the restart the
//! endpoints authenticate again and a new session carries messages.

#[path = "common/relay_proc.rs"]
mod relay_proc;

use std::collections::HashMap;
use std::time::Duration;

use msrp::proto::endpoint::CloseReason;
use msrp::proto::relay::client::{RelayClientConfig, RelaySpec};
use msrp::proto::relay::digest::Credentials;
use msrp::proto::sdp::{SdpAnswer, SdpOffer};
use msrp::proto::uri::{MsrpUri, Scheme};
use msrp::{MsrpEndpoint, MsrpSession, Options, Outcome, Reports, SessionNotice};
use relay_proc::{spawn_relay, Fixture, RelayProc, REALM};
use tokio::time::timeout;

const STEP: Duration = Duration::from_secs(15);

fn relay_on(fx: &Fixture, listen: &str) -> RelayProc {
    let args: Vec<String> = [
        "relay",
        "--json",
        "--listen",
        listen,
        "--host",
        "127.0.0.1",
        "--realm",
        REALM,
        "--users",
        &fx.path("users").display().to_string(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    spawn_relay("relay", &args)
}

async fn endpoint() -> MsrpEndpoint {
    MsrpEndpoint::bind(Options::new("127.0.0.1:0".parse().unwrap()))
        .await
        .unwrap()
}

/// Authenticates `ep` to the relay as `user`; returns a local config whose a=path starts with
/// the Use-Path.
async fn auth(
    relay: &MsrpUri,
    ep: &MsrpEndpoint,
    user: &str,
    pw: &str,
) -> msrp::proto::sdp::LocalConfig {
    let mut cfg = ep.local_config();
    let local = MsrpUri::new(
        Scheme::Msrp,
        cfg.host.clone(),
        cfg.port,
        cfg.session_id.clone(),
    );
    let rc = RelayClientConfig::new(
        vec![RelaySpec {
            uri: relay.clone(),
            credentials: Credentials::new(user, pw).unwrap(),
        }],
        local,
    );
    let binding = timeout(STEP, ep.authenticate_relays(rc))
        .await
        .expect("AUTH in time")
        .expect("AUTH accepted");
    cfg.relay_path = binding.use_path;
    cfg
}

/// Authenticates both endpoints to the relay and negotiates a session between `a` and `b`
/// through it (a offers, b answers); returns both sessions once connected.
async fn session_through(
    relay: &MsrpUri,
    a: &MsrpEndpoint,
    b: &MsrpEndpoint,
) -> (MsrpSession, MsrpSession) {
    let ca = auth(relay, a, "alice", "alice-pw").await;
    let cb = auth(relay, b, "bob", "bob-pw").await;
    let offered = a.create_offer(&ca).await.unwrap();
    let (answer, mut sb) = b
        .answer_offer(&SdpOffer::parse(&offered.offer().to_string()).unwrap(), &cb)
        .await
        .unwrap();
    let mut sa = a
        .accept_answer(offered, &SdpAnswer::parse(&answer.to_string()).unwrap())
        .await
        .unwrap();
    timeout(STEP, sa.connected()).await.unwrap().unwrap();
    timeout(STEP, sb.connected()).await.unwrap().unwrap();
    (sa, sb)
}

async fn next_text(s: &mut MsrpSession) -> String {
    let mut bodies: HashMap<String, Vec<u8>> = HashMap::new();
    loop {
        match timeout(STEP, s.next_notice()).await.expect("no hang") {
            Some(SessionNotice::IncomingData {
                message_id, data, ..
            }) => bodies
                .entry(message_id)
                .or_default()
                .extend_from_slice(&data),
            Some(SessionNotice::IncomingComplete { message_id, .. }) => {
                return String::from_utf8(bodies.remove(&message_id).unwrap_or_default()).unwrap()
            }
            Some(SessionNotice::Closed(r)) => panic!("closed: {r}"),
            Some(_) => {}
            None => panic!("gone"),
        }
    }
}

/// Notices until Closed: (complete incoming message ids, other notices, reason).
async fn until_closed(s: &mut MsrpSession) -> (Vec<String>, Vec<SessionNotice>, CloseReason) {
    let mut complete = Vec::new();
    let mut other = Vec::new();
    loop {
        match timeout(STEP, s.next_notice()).await.expect("no hang") {
            Some(SessionNotice::Closed(r)) => return (complete, other, r),
            Some(SessionNotice::IncomingComplete { message_id, .. }) => complete.push(message_id),
            Some(SessionNotice::IncomingData { .. }) => {}
            Some(n) => other.push(n),
            None => panic!("notices ended without Closed"),
        }
    }
}

#[tokio::test]
async fn relay_killed_mid_session_then_restarted_on_the_same_port() {
    let fx = Fixture::new();
    let mut relay = relay_on(&fx, "127.0.0.1:0");
    let addr = relay.tcp.unwrap();
    let relay_uri: MsrpUri = format!("msrp://{addr};tcp").parse().unwrap();
    let (a, b) = (endpoint().await, endpoint().await);
    let (sa, mut sb) = session_through(&relay_uri, &a, &b).await;
    let mut sa = sa;
    sa.send_text("before the crash").await.unwrap();
    assert_eq!(next_text(&mut sb).await, "before the crash");

    // A 2 MiB message asking for delivery confirmation is on its way when the relay dies.
    let big = sa
        .send_bytes(
            "application/octet-stream",
            vec![b'r'; 2 << 20],
            Reports {
                success: true,
                ..Reports::default()
            },
        )
        .await
        .unwrap();
    let big_id = big.message_id.clone();
    tokio::time::sleep(Duration::from_millis(50)).await;
    relay.child.kill().unwrap();
    relay.child.wait().unwrap();

    let outcome = timeout(STEP, big.outcome()).await.expect("no hang");
    eprintln!("in-flight message when the relay died: {outcome:?}");
    let (a_complete, a_other, a_reason) = until_closed(&mut sa).await;
    let (b_complete, _b_other, b_reason) = until_closed(&mut sb).await;
    // RFC 4975 §5.4: sessions fail with their connection.
    assert!(
        matches!(a_reason, CloseReason::ConnectionLost(_)),
        "{a_reason:?}"
    );
    assert!(
        matches!(b_reason, CloseReason::ConnectionLost(_)),
        "{b_reason:?}"
    );
    assert!(a_complete.is_empty());
    match outcome {
        // Confirmed only if bob really got all of it.
        Ok(Outcome::Delivered) => assert!(
            b_complete.contains(&big_id),
            "reported delivered, never arrived"
        ),
        Ok(Outcome::Sent) => panic!("a success-report message resolved as merely sent"),
        Err(f) => {
            assert_eq!(f.message_id, big_id);
            assert_eq!(f.status.as_u16(), 408, "{f:?}");
            // Bob may have it all even so: its success REPORT died with the relay, and the
            // sender cannot know (RFC 4975 §7.1.1: not confirmed when the session ended).
            // The other way round (confirmed, never arrived) is what must not happen.
            assert!(
                a_other
                    .iter()
                    .any(|n| matches!(n, SessionNotice::Failed(x) if x.message_id == big_id)),
                "{a_other:?}"
            );
        }
    }
    // Sending on a closed session is refused, not queued forever.
    assert!(sa.send_text("into the void").await.is_err());

    // The relay comes back on the same port: authenticate again, new session, messages flow.
    let _relay2 = relay_on(&fx, &addr.to_string());
    let (mut sa2, mut sb2) = session_through(&relay_uri, &a, &b).await;
    sa2.send_text("after the restart").await.unwrap();
    assert_eq!(next_text(&mut sb2).await, "after the restart");
    sb2.send_text("and back").await.unwrap();
    assert_eq!(next_text(&mut sa2).await, "and back");
}
