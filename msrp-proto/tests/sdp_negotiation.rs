//! RFC 6135 COMEDIA negotiation: table-driven answers and both sides' connection plans.

use msrp_proto::sdp::{
    create_answer, create_offer, plan, ErrorKind, LocalConfig, Reachability, Role, SdpAnswer,
    SdpOffer, Setup, Side, TlsRole, Warning,
};
use msrp_proto::uri::MsrpUri;

fn uri(s: &str) -> MsrpUri {
    MsrpUri::parse(s).unwrap()
}

/// An offer as a peer (not us) could send it: Alice at 192.0.2.10, `setup` as given (None:
/// no a=setup line). An active offerer uses port 9 (RFC 6135 §4.2.2).
fn peer_offer(setup: Option<&str>) -> SdpOffer {
    let port = if setup == Some("active") { 9 } else { 7394 };
    let setup_line = setup.map(|s| format!("a=setup:{s}\n")).unwrap_or_default();
    SdpOffer::parse(&format!(
        "v=0\no=alice 1 1 IN IP4 192.0.2.10\ns=-\nc=IN IP4 192.0.2.10\nt=0 0\n\
         m=message {port} TCP/MSRP *\na=accept-types:text/plain message/cpim\n\
         a=path:msrp://192.0.2.10:{port}/alice1;tcp\n{setup_line}"
    ))
    .unwrap()
}

const RELAY: &str = "msrp://198.51.100.5:2855/relaysess;tcp";

fn bob(reach: Reachability, relay: bool) -> LocalConfig {
    let mut c = LocalConfig::new("203.0.113.20:8493".parse().unwrap(), "bob1");
    c.reachability = reach;
    if relay {
        c.relay_path = vec![uri(RELAY)];
    }
    c
}

#[test]
fn table_offer_setup_x_reachability_x_relay() {
    use Reachability::*;
    // (offer setup, our reachability, our relay, expected answer setup, offerer active)
    let table: &[(Option<&str>, Reachability, bool, Setup, bool)] = &[
        (Some("actpass"), Reachable, false, Setup::Passive, true),
        (Some("actpass"), BehindNat, false, Setup::Active, false),
        (Some("actpass"), Reachable, true, Setup::Passive, true),
        (Some("actpass"), BehindNat, true, Setup::Passive, true),
        (Some("active"), Reachable, false, Setup::Passive, true),
        (Some("active"), BehindNat, false, Setup::Passive, true),
        (Some("active"), Reachable, true, Setup::Passive, true),
        (Some("active"), BehindNat, true, Setup::Passive, true),
        (Some("passive"), Reachable, false, Setup::Active, false),
        (Some("passive"), BehindNat, false, Setup::Active, false),
        (Some("passive"), Reachable, true, Setup::Active, false),
        (Some("passive"), BehindNat, true, Setup::Active, false),
        (Some("holdconn"), Reachable, false, Setup::Passive, true),
        (Some("holdconn"), BehindNat, false, Setup::Passive, true),
        (Some("holdconn"), Reachable, true, Setup::Passive, true),
        (Some("holdconn"), BehindNat, true, Setup::Passive, true),
        (None, Reachable, false, Setup::Passive, true),
        (None, BehindNat, false, Setup::Passive, true),
        (None, Reachable, true, Setup::Passive, true),
        (None, BehindNat, true, Setup::Passive, true),
    ];
    assert_eq!(table.len(), 5 * 2 * 2);
    for &(setup, reach, relay, want_setup, offerer_active) in table {
        let case = format!("offer {setup:?}, {reach:?}, relay {relay}");
        let offer = peer_offer(setup);
        let cfg = bob(reach, relay);
        let answered = create_answer(&offer, &cfg).unwrap_or_else(|e| panic!("{case}: {e}"));
        let a = answered.answer.media();
        // RFC 6135 §4.2.1: the answer always has an explicit a=setup, never holdconn/actpass.
        assert_eq!(a.setup, Some(want_setup), "{case}");
        assert_eq!(
            answered.answer.to_string().matches("a=setup:").count(),
            1,
            "{case}"
        );
        // RFC 6135 §4.4: never a=connection.
        assert!(
            !answered.answer.to_string().contains("a=connection"),
            "{case}"
        );
        // Active answerer: port 9 in m= and in the a=path URI (RFC 6135 §4.2.2).
        let own = a.session_uri();
        if want_setup == Setup::Active {
            assert_eq!((a.port, own.port), (9, Some(9)), "{case}");
        } else {
            assert_eq!((a.port, own.port), (8493, Some(8493)), "{case}");
        }
        // With a relay, our path is relay then us (RFC 4976 §5.1).
        assert_eq!(a.path.len(), if relay { 2 } else { 1 }, "{case}");

        let po = plan(&offer, &answered.answer, Side::Offerer).unwrap();
        let pa = plan(&offer, &answered.answer, Side::Answerer).unwrap();
        // create_answer's plan is the answerer plan plus its own warnings.
        assert_eq!(pa.role, answered.plan.role, "{case}");
        assert_eq!(pa.connect_to, answered.plan.connect_to, "{case}");
        // Exactly one active side, the same conclusion from both sides.
        let (ro, ra) = if offerer_active {
            (Role::Active, Role::Passive)
        } else {
            (Role::Passive, Role::Active)
        };
        assert_eq!((po.role, pa.role), (ro, ra), "{case}");
        assert_eq!(po.send_binding_send, offerer_active, "{case}");
        assert_eq!(pa.send_binding_send, !offerer_active, "{case}");

        let alice_uri = uri(&format!(
            "msrp://192.0.2.10:{}/alice1;tcp",
            if setup == Some("active") { 9 } else { 7394 }
        ));
        // Offerer (no relay): connects iff active, to the first URI of Bob's path: Bob's
        // relay when he has one, else Bob himself on his listening port.
        if offerer_active {
            let target = po.connect_to.clone().expect("active offerer connects");
            if relay {
                assert_eq!(target, uri(RELAY), "{case}");
            } else {
                assert_eq!(
                    target.socket_addr(),
                    Some("203.0.113.20:8493".parse().unwrap()),
                    "{case}"
                );
                assert_eq!(pa.connect_to, None, "{case}: passive answerer waits");
            }
        } else {
            assert_eq!(po.connect_to, None, "{case}: passive offerer waits");
        }
        // Answerer: with a relay, always to the relay (RFC 6135 §4.5); otherwise to Alice iff
        // active, and Alice advertised a real port (actpass/passive, RFC 6135 §4.2.2).
        if relay {
            assert_eq!(pa.connect_to, Some(uri(RELAY)), "{case}");
        } else if !offerer_active {
            let t = pa.connect_to.clone().expect("active answerer connects");
            assert_eq!(t, alice_uri, "{case}");
            assert_eq!(t.port, Some(7394), "{case}");
        }
        // To-Path/From-Path (RFC 4975 §8.2, RFC 4976 §5.1).
        assert_eq!(po.local_path, vec![alice_uri.clone()], "{case}");
        assert_eq!(po.remote_path, a.path, "{case}");
        assert_eq!(pa.local_path, vec![own.clone()], "{case}");
        let mut want_to = if relay { vec![uri(RELAY)] } else { vec![] };
        want_to.push(alice_uri.clone());
        assert_eq!(pa.remote_path, want_to, "{case}");
        assert_eq!(pa.expected_session_id, "bob1");
        assert_eq!(po.expected_session_id, "alice1");
        assert_eq!(po.remote_uri, *own);
        assert_eq!(pa.remote_uri, alice_uri);
        assert_eq!((po.tls, po.tls_role, pa.tls_role), (false, None, None));
        // Warnings.
        let nat_warning = setup.is_none() || setup == Some("holdconn");
        assert_eq!(
            answered
                .plan
                .warnings
                .contains(&Warning::NatTraversalNeedsRelay),
            nat_warning && reach == BehindNat && !relay,
            "{case}: RFC 6135 §5 warning"
        );
        assert_eq!(
            pa.warnings
                .contains(&Warning::HoldConnIgnored { in_offer: true }),
            setup == Some("holdconn"),
            "{case}"
        );
        assert_eq!(
            pa.warnings.contains(&Warning::NoSetup { in_offer: true }),
            setup.is_none(),
            "{case}"
        );
    }
}

/// Our own offers and answers, both sides ours: every combination agrees, the active side
/// connects to where the passive side waits.
#[test]
fn our_offer_and_answer_agree_for_every_combination() {
    use Reachability::*;
    let alice_relay = "msrp://198.51.100.7:2855/arelay;tcp";
    for oreach in [Reachable, BehindNat] {
        for orelay in [false, true] {
            for areach in [Reachable, BehindNat] {
                for arelay in [false, true] {
                    let case = format!(
                        "offerer {oreach:?} relay {orelay}, answerer {areach:?} relay {arelay}"
                    );
                    let mut ocfg = LocalConfig::new("192.0.2.10:7394".parse().unwrap(), "alice1");
                    ocfg.reachability = oreach;
                    if orelay {
                        ocfg.relay_path = vec![uri(alice_relay)];
                    }
                    let pending = create_offer(&ocfg).unwrap();
                    let om = pending.offer().media().clone();
                    // RFC 6135 §4.2.2: actpass when reachable or relayed, else active port 9.
                    if oreach == Reachable || orelay {
                        assert_eq!(om.setup, Some(Setup::ActPass), "{case}");
                        assert_eq!(om.port, 7394);
                    } else {
                        assert_eq!(om.setup, Some(Setup::Active), "{case}");
                        assert_eq!((om.port, om.session_uri().port), (9, Some(9)), "{case}");
                    }
                    let offer = SdpOffer::parse(&pending.offer().to_string()).unwrap();
                    let answered = create_answer(&offer, &bob(areach, arelay));
                    let answered = match answered {
                        Ok(a) => a,
                        Err(e) => panic!("{case}: {e}"),
                    };
                    let answer = SdpAnswer::parse(&answered.answer.to_string()).unwrap();
                    let po = pending.accept_answer(&answer);
                    let po = match po {
                        Ok(p) => p,
                        Err(e) => panic!("{case}: {e}"),
                    };
                    let pa = answered.plan;
                    assert_ne!(po.role, pa.role, "{case}");
                    let (active, passive) = if po.role == Role::Active {
                        (&po, &pa)
                    } else {
                        (&pa, &po)
                    };
                    let target = active.connect_to.clone().expect("active side connects");
                    if !active.via_relay && !passive.via_relay {
                        assert_eq!(target, passive.local_uri, "{case}");
                        assert_eq!(passive.connect_to, None, "{case}");
                        assert_ne!(
                            target.port,
                            Some(9),
                            "{case}: never connect to the discard port"
                        );
                    }
                    if passive.via_relay {
                        assert!(passive.connect_to.is_some(), "{case}: RFC 6135 §4.5");
                        assert!(!passive.send_binding_send, "{case}");
                    }
                    // The To-Path ends with the peer's URI; the From-Path is our URI.
                    assert_eq!(po.remote_path.last(), Some(&pa.local_uri));
                    assert_eq!(pa.remote_path.last(), Some(&po.local_uri));
                    if orelay {
                        assert_eq!(po.remote_path[0], uri(alice_relay));
                    }
                    // Both behind NAT without relays: the answerer must answer passive to
                    // the active offer and warns that this is unlikely to work.
                    if oreach == BehindNat && !orelay && areach == BehindNat && !arelay {
                        assert!(pa.warnings.contains(&Warning::UnreachablePassive), "{case}");
                    }
                }
            }
        }
    }
}

#[test]
fn relay_chain_paths_follow_rfc4976_5_1() {
    // Use-Path "B C" -> our a=path "C B A"; To-Path "B C" + peer path "D E F".
    let mut cfg = LocalConfig::new("192.0.2.10:7394".parse().unwrap(), "a");
    cfg.relay_path = vec![
        uri("msrp://b.example:1/b;tcp"),
        uri("msrp://c.example:2/c;tcp"),
    ];
    let pending = create_offer(&cfg).unwrap();
    let path: Vec<String> = pending
        .offer()
        .media()
        .path
        .iter()
        .map(|u| u.to_string())
        .collect();
    assert_eq!(
        path,
        [
            "msrp://c.example:2/c;tcp",
            "msrp://b.example:1/b;tcp",
            "msrp://192.0.2.10:7394/a;tcp"
        ]
    );
    let answer = SdpAnswer::parse(
        "v=0\no=- 2 1 IN IP4 f.example\ns=-\nc=IN IP4 f.example\nt=0 0\nm=message 3 TCP/MSRP *\n\
         a=accept-types:*\na=path:msrp://d.example:4/d;tcp msrp://e.example:5/e;tcp msrp://f.example:3/f;tcp\na=setup:active\n",
    )
    .unwrap();
    let p = pending.accept_answer(&answer).unwrap();
    let to: Vec<String> = p.remote_path.iter().map(|u| u.host.to_string()).collect();
    assert_eq!(
        to,
        [
            "b.example",
            "c.example",
            "d.example",
            "e.example",
            "f.example"
        ]
    );
    assert_eq!(p.role, Role::Passive);
    // RFC 6135 §4.5: connect to our relay B even though passive; no binding SEND.
    assert_eq!(p.connect_to, Some(uri("msrp://b.example:1/b;tcp")));
    assert!(!p.send_binding_send);
}

fn answer_text(setup: &str, extra: &str) -> String {
    format!(
        "v=0\no=bob 2 1 IN IP4 203.0.113.20\ns=-\nc=IN IP4 203.0.113.20\nt=0 0\nm=message 8493 TCP/MSRP *\n\
         a=accept-types:text/plain\na=path:msrp://203.0.113.20:8493/bob1;tcp\n{setup}{extra}"
    )
}

#[test]
fn negotiation_errors_are_488_and_name_the_line() {
    // Answer carrying actpass (RFC 4145 §4.1).
    let offer = peer_offer(Some("actpass"));
    let e = plan(
        &offer,
        &SdpAnswer::parse(&answer_text("a=setup:actpass\n", "")).unwrap(),
        Side::Offerer,
    )
    .unwrap_err();
    assert_eq!(
        (e.kind.clone(), e.line, e.sip_status()),
        (ErrorKind::AnswerActPass, Some(9), 488)
    );
    // Passive answer to a passive offer, explicit and by default.
    let offer = peer_offer(Some("passive"));
    for setup in ["a=setup:passive\n", "", "a=setup:holdconn\n"] {
        let e = plan(
            &offer,
            &SdpAnswer::parse(&answer_text(setup, "")).unwrap(),
            Side::Answerer,
        )
        .unwrap_err();
        assert_eq!(e.kind, ErrorKind::BothPassive, "{setup:?}");
    }
    // Active answer to an active offer.
    let offer = peer_offer(Some("active"));
    let e = plan(
        &offer,
        &SdpAnswer::parse(&answer_text("a=setup:active\n", "")).unwrap(),
        Side::Offerer,
    )
    .unwrap_err();
    assert_eq!(e.kind, ErrorKind::BothActive);

    let base = "v=0\no=- 1 1 IN IP4 192.0.2.10\ns=-\nc=IN IP4 192.0.2.10\nt=0 0\n";
    let cases: &[(&str, usize, &str)] = &[
        // unknown transport
        ("m=message 7394 TCP/WS/MSRP *\na=accept-types:*\na=path:msrp://192.0.2.10:7394/a;tcp\n", 6, "unknown MSRP transport 'TCP/WS/MSRP'"),
        // no MSRP at all
        ("m=audio 4000 RTP/AVP 0\n", 0, "no MSRP media"),
        // rejected
        ("m=message 0 TCP/MSRP *\na=accept-types:*\na=path:msrp://192.0.2.10:7394/a;tcp\n", 6, "rejected"),
        // missing path
        ("m=message 7394 TCP/MSRP *\na=accept-types:*\n", 6, "no a=path"),
        // missing accept-types
        ("m=message 7394 TCP/MSRP *\na=path:msrp://192.0.2.10:7394/a;tcp\n", 6, "no a=accept-types"),
        // port mismatch
        ("m=message 7000 TCP/MSRP *\na=accept-types:*\na=path:msrp://192.0.2.10:7394/a;tcp\n", 6, "m-line port 7000"),
        // port 9 without a=setup:active
        ("m=message 9 TCP/MSRP *\na=accept-types:*\na=path:msrp://192.0.2.10:7394/a;tcp\na=setup:actpass\n", 6, "m-line port 9"),
        // scheme vs proto
        ("m=message 7394 TCP/TLS/MSRP *\na=accept-types:*\na=path:msrp://192.0.2.10:7394/a;tcp\n", 8, "TLS goes with msrps"),
        ("m=message 7394 TCP/MSRP *\na=accept-types:*\na=path:msrps://192.0.2.10:7394/a;tcp\n", 8, "msrps"),
        // path transport
        ("m=message 7394 TCP/MSRP *\na=accept-types:*\na=path:msrp://192.0.2.10:7394/a;ws\n", 8, "transport 'ws'"),
        // c= disagreeing with path (RFC 6714 §4.3)
        ("m=message 7394 TCP/MSRP *\na=accept-types:*\na=path:msrp://192.0.2.99:7394/a;tcp\n", 4, "c= address 192.0.2.10"),
        // bad attribute values
        ("m=message 7394 TCP/MSRP *\na=accept-types:*\na=path:msrp://192.0.2.10:7394/a;tcp\na=setup:sideways\n", 9, "invalid a=setup: 'sideways'"),
        ("m=message 7394 TCP/MSRP *\na=accept-types:*\na=path:msrp://192.0.2.10:7394/a;tcp\na=setup:active\na=setup:passive\n", 10, "more than once"),
        ("m=message 7394 TCP/MSRP *\na=accept-types:text\na=path:msrp://192.0.2.10:7394/a;tcp\n", 7, "invalid a=accept-types"),
        ("m=message 7394 TCP/MSRP *\na=accept-types:*\na=path:msrp://host.example/a;tcp\n", 8, "has no port"),
        ("m=message 7394 TCP/MSRP *\na=accept-types:*\na=path:msrp://192.0.2.10:7394;tcp\n", 8, "no session id"),
        ("m=message 7394 TCP/MSRP *\na=accept-types:*\na=path:http://x\n", 8, "invalid a=path: 'http://x'"),
        ("m=message 7394 TCP/MSRP *\na=accept-types:*\na=path:msrp://192.0.2.10:7394/a;tcp\na=max-size:lots\n", 9, "invalid a=max-size"),
        ("m=message 7394 TCP/TLS/MSRP *\na=accept-types:*\na=path:msrps://192.0.2.10:7394/a;tcp\na=fingerprint:sha-256 AB:CD\n", 9, "invalid a=fingerprint"),
        ("m=message 7394 TCP/MSRP *\na=accept-types:*\na=path:msrp://192.0.2.10:7394/a;tcp\na=file-range:0-10\n", 9, "invalid a=file-range"),
        ("m=message 7394 TCP/MSRP *\na=accept-types:*\na=path:msrp://192.0.2.10:7394/a;tcp\na=file-date:creation:\"x\" creation:\"y\"\n", 9, "more than once"),
        ("m=message 7394 TCP/MSRP *\na=accept-types:*\na=path:msrp://192.0.2.10:7394/a;tcp\na=file-selector:name:\"unterminated\n", 9, "unterminated"),
    ];
    for (media, line, needle) in cases {
        let e = SdpOffer::parse(&format!("{base}{media}")).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains(needle), "{media:?}: {msg}");
        assert_eq!(e.line, (*line > 0).then_some(*line), "{media:?}: {msg}");
        assert_eq!(e.sip_status(), 488);
    }

    // No common accept-types (RFC 4975 §8.6).
    let mut cfg = bob(Reachability::Reachable, false);
    cfg.accept_types = msrp_proto::sdp::AcceptType::parse_list("image/png").unwrap();
    let e = create_answer(&peer_offer(Some("actpass")), &cfg).unwrap_err();
    assert!(
        matches!(e.kind, ErrorKind::NoCommonAcceptTypes { .. }),
        "{e}"
    );
    // TLS offered, not configured.
    let tls_offer = SdpOffer::parse(&format!("{base}m=message 7394 TCP/TLS/MSRP *\na=accept-types:*\na=path:msrps://192.0.2.10:7394/a;tcp\na=setup:actpass\n")).unwrap();
    let e = create_answer(&tls_offer, &bob(Reachability::Reachable, false)).unwrap_err();
    assert_eq!(e.kind, ErrorKind::TlsNotConfigured);
    // Answer with a different number of m-lines (RFC 3264 §6).
    let two = SdpOffer::parse(&format!("{base}m=audio 4000 RTP/AVP 0\nm=message 7394 TCP/MSRP *\na=accept-types:*\na=path:msrp://192.0.2.10:7394/a;tcp\n")).unwrap();
    let e = plan(
        &two,
        &SdpAnswer::parse(&answer_text("a=setup:passive\n", "")).unwrap(),
        Side::Offerer,
    )
    .unwrap_err();
    assert!(
        matches!(
            e.kind,
            ErrorKind::MediaCountMismatch {
                offer: 2,
                answer: 1
            }
        ),
        "{e}"
    );
}

#[test]
fn answer_handles_extra_media_connection_attr_and_cema() {
    // Two m-lines: audio rejected with port 0, MSRP answered (RFC 3264 §6); a=connection
    // ignored (RFC 6135 §4.4); sendonly answered recvonly (RFC 3264 §6.1).
    let offer = SdpOffer::parse(
        "v=0\no=- 1 1 IN IP4 192.0.2.10\ns=-\nc=IN IP4 192.0.2.10\nt=0 0\nm=audio 4000 RTP/AVP 0\n\
         m=message 7394 TCP/MSRP *\na=accept-types:*\na=path:msrp://192.0.2.10:7394/a;tcp\n\
         a=setup:actpass\na=connection:new\na=sendonly\n",
    )
    .unwrap();
    let ans = create_answer(&offer, &bob(Reachability::Reachable, false)).unwrap();
    let text = ans.answer.to_string();
    assert!(
        text.contains("\r\nm=audio 0 RTP/AVP 0\r\nm=message 8493 TCP/MSRP *\r\n"),
        "{text}"
    );
    assert!(text.contains("a=recvonly\r\n"), "{text}");
    assert!(!text.contains("a=connection"), "{text}");
    assert!(ans
        .plan
        .warnings
        .contains(&Warning::ConnectionAttributeIgnored));
    assert_eq!(ans.plan.role, Role::Passive);

    // CEMA (RFC 6714): both sides signal it; the active side connects to c=/m=, which a
    // middlebox rewrote (so c=/m= and a=path disagree, allowed with a=msrp-cema).
    let offer = SdpOffer::parse(
        "v=0\no=- 1 1 IN IP4 198.51.100.1\ns=-\nc=IN IP4 198.51.100.1\nt=0 0\n\
         m=message 40000 TCP/MSRP *\na=accept-types:*\na=path:msrp://192.0.2.10:7394/a;tcp\n\
         a=setup:actpass\na=msrp-cema\n",
    )
    .unwrap();
    let mut cfg = bob(Reachability::BehindNat, false);
    cfg.cema = true;
    let ans = create_answer(&offer, &cfg).unwrap();
    assert!(ans.answer.media().cema);
    assert_eq!(ans.plan.role, Role::Active);
    assert_eq!(
        ans.plan.connect_to,
        Some(uri("msrp://198.51.100.1:40000;tcp"))
    );
    assert!(ans.plan.match_session_id_only);
    let po = plan(&offer, &ans.answer, Side::Offerer).unwrap();
    assert_eq!(po.connect_to, None);
    assert!(po.match_session_id_only);
    // Without CEMA on our side: plain RFC 4975 plan, connect to a=path.
    cfg.cema = false;
    let ans = create_answer(&offer, &cfg).unwrap();
    assert!(!ans.answer.media().cema);
    assert_eq!(
        ans.plan.connect_to,
        Some(uri("msrp://192.0.2.10:7394/a;tcp"))
    );
    // Without a=msrp-cema in the offer, the rewritten c= is refused (RFC 6714 §4.3).
    let e = SdpOffer::parse(&offer.to_string().replace("a=msrp-cema\r\n", "")).unwrap_err();
    assert!(matches!(e.kind, ErrorKind::PathMismatch(_)), "{e}");
}

#[test]
fn tls_plan_roles_and_fingerprints() {
    let fp = msrp_proto::fingerprint::Fingerprint::sha256(b"alice cert");
    let mut acfg = LocalConfig::new("192.0.2.10:7394".parse().unwrap(), "alice1");
    acfg.tls = true;
    acfg.fingerprint = Some(fp.clone());
    let pending = create_offer(&acfg).unwrap();
    let text = pending.offer().to_string();
    assert!(text.contains("m=message 7394 TCP/TLS/MSRP *\r\n"), "{text}");
    assert!(text.contains(&format!("a=fingerprint:{fp}\r\n")), "{text}");
    assert!(
        text.contains("a=path:msrps://192.0.2.10:7394/alice1;tcp\r\n"),
        "{text}"
    );
    let mut bcfg = bob(Reachability::BehindNat, false);
    bcfg.tls = true;
    bcfg.fingerprint = Some(msrp_proto::fingerprint::Fingerprint::sha256(b"bob cert"));
    let ans = create_answer(pending.offer(), &bcfg).unwrap();
    let pa = ans.plan;
    let po = pending.accept_answer(&ans.answer).unwrap();
    // Bob behind NAT answers active: he is the TLS client (RFC 6135 §6).
    assert_eq!(
        (pa.role, pa.tls_role),
        (Role::Active, Some(TlsRole::Client))
    );
    assert_eq!(
        (po.role, po.tls_role),
        (Role::Passive, Some(TlsRole::Server))
    );
    assert_eq!(pa.peer_fingerprints, vec![fp]);
    assert!(pa.verify_peer_fingerprint && po.verify_peer_fingerprint);
}

#[test]
fn session_level_setup_and_fingerprint_apply_rfc4145_4() {
    // RFC 4145 §4: a=setup may be session-level; RFC 8122 §5: so may a=fingerprint.
    let fp = msrp_proto::fingerprint::Fingerprint::sha256(b"x");
    let offer = SdpOffer::parse(&format!(
        "v=0\no=- 1 1 IN IP4 192.0.2.10\ns=-\nc=IN IP4 192.0.2.10\nt=0 0\na=setup:active\na=fingerprint:{fp}\n\
         m=message 9 TCP/TLS/MSRP *\na=accept-types:*\na=path:msrps://192.0.2.10:9/a;tcp\n"
    ))
    .unwrap();
    assert_eq!(offer.media().setup, Some(Setup::Active));
    assert_eq!(offer.media().setup_line, 6);
    assert_eq!(offer.media().fingerprints, vec![fp]);
    // Media level wins over session level.
    let offer = SdpOffer::parse(
        "v=0\no=- 1 1 IN IP4 192.0.2.10\ns=-\nc=IN IP4 192.0.2.10\nt=0 0\na=setup:active\n\
         m=message 7394 TCP/MSRP *\na=accept-types:*\na=path:msrp://192.0.2.10:7394/a;tcp\na=setup:actpass\n",
    )
    .unwrap();
    assert_eq!(offer.media().setup, Some(Setup::ActPass));
}

#[test]
fn cema_relay_address_and_fallback_criteria_rfc6714() {
    // RFC 6714 §4.2 item 3: a CEMA offerer with a relay puts the relay's address in c=/m=
    // and offers actpass.
    let mut a = LocalConfig::new("192.0.2.10:7394".parse().unwrap(), "alice1");
    a.reachability = Reachability::BehindNat;
    a.cema = true;
    a.relay_path = vec![uri("msrp://198.51.100.7:2900/ar;tcp")];
    let pending = create_offer(&a).unwrap();
    let text = pending.offer().to_string();
    assert!(text.contains("c=IN IP4 198.51.100.7\r\n"), "{text}");
    assert!(text.contains("m=message 2900 TCP/MSRP *\r\n"), "{text}");
    assert!(
        text.contains("a=setup:actpass\r\n") && text.contains("a=msrp-cema\r\n"),
        "{text}"
    );

    // RFC 6714 §4.3 criterion 1: both use relays -> no a=msrp-cema in the answer.
    let mut b = bob(Reachability::Reachable, true);
    b.cema = true;
    let ans = create_answer(pending.offer(), &b).unwrap();
    assert!(!ans.answer.media().cema);
    // Criterion 2: the offerer uses a relay and becomes active (we answer passive).
    let b2 = {
        let mut c = bob(Reachability::Reachable, false);
        c.cema = true;
        c
    };
    let ans = create_answer(pending.offer(), &b2).unwrap();
    assert_eq!(ans.answer.media().setup, Some(Setup::Passive));
    assert!(!ans.answer.media().cema);
    // Criterion 3: we use a relay and cannot be passive (passive offer).
    let passive_cema = SdpOffer::parse(
        "v=0\no=- 1 1 IN IP4 192.0.2.10\ns=-\nc=IN IP4 192.0.2.10\nt=0 0\nm=message 7394 TCP/MSRP *\n\
         a=accept-types:*\na=path:msrp://192.0.2.10:7394/a;tcp\na=setup:passive\na=msrp-cema\n",
    )
    .unwrap();
    let ans = create_answer(&passive_cema, &b).unwrap();
    assert_eq!(ans.answer.media().setup, Some(Setup::Active));
    assert!(!ans.answer.media().cema);
    // Otherwise a CEMA answerer with a relay is passive and puts the relay in c=/m=
    // (RFC 6714 §4.3 item 3).
    let actpass_cema = SdpOffer::parse(
        &passive_cema
            .to_string()
            .replace("a=setup:passive", "a=setup:actpass"),
    )
    .unwrap();
    let ans = create_answer(&actpass_cema, &b).unwrap();
    let text = ans.answer.to_string();
    assert!(ans.answer.media().cema, "{text}");
    assert!(
        text.contains("c=IN IP4 198.51.100.5\r\nt=0 0\r\nm=message 2855 TCP/MSRP *\r\n"),
        "{text}"
    );
    assert!(text.contains("a=setup:passive\r\n"), "{text}");
    // Both plans: the offerer (active, CEMA, no relay) connects to the c=/m= address, which
    // is Bob's relay; Bob connects to his relay too (RFC 6135 §4.5).
    let po = plan(&actpass_cema, &ans.answer, Side::Offerer).unwrap();
    assert_eq!(po.role, Role::Active);
    assert_eq!(po.connect_to, Some(uri("msrp://198.51.100.5:2855;tcp")));
    assert_eq!(ans.plan.connect_to, Some(uri(RELAY)));
}
