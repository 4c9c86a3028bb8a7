//! SDP examples from RFC 4975, RFC 4976 and RFC 5547 (copied into tests/vectors/sdp): they
//! parse, round-trip byte for byte, and negotiate as the RFCs describe.

use msrp_proto::fingerprint::HashFunction;
use msrp_proto::sdp::{
    plan, Direction, MsrpMedia, MsrpTransport, Role, SdpAnswer, SdpOffer, SessionDescription, Side,
    TlsRole, Warning,
};
use msrp_proto::uri::MsrpUri;

macro_rules! vector {
    ($name:literal) => {
        ($name, include_str!(concat!("vectors/sdp/", $name)))
    };
}

const VECTORS: &[(&str, &str)] = &[
    vector!("rfc4975-4-offer.sdp"),
    vector!("rfc4975-4-answer.sdp"),
    vector!("rfc4975-8.2-fig7-offer.sdp"),
    vector!("rfc4975-8.7-fig9-offer.sdp"),
    vector!("rfc4975-8.7-fig10-answer.sdp"),
    vector!("rfc4975-11.1-offer.sdp"),
    vector!("rfc4975-11.1-answer.sdp"),
    vector!("rfc4975-14.4-fig19-fingerprint.sdp"),
    vector!("rfc4976-11-offer.sdp"),
    vector!("rfc4976-11-answer.sdp"),
    vector!("rfc5547-6-fig2.sdp"),
    vector!("rfc5547-9.1-fig8-offer.sdp"),
    vector!("rfc5547-9.1-fig9-answer.sdp"),
];

fn get(name: &str) -> &'static str {
    VECTORS.iter().find(|(n, _)| *n == name).unwrap().1
}

fn uri(s: &str) -> MsrpUri {
    MsrpUri::parse(s).unwrap()
}

#[test]
fn every_vector_parses_and_round_trips() {
    for (name, text) in VECTORS {
        assert!(
            text.ends_with("\r\n") && !text.replace("\r\n", "").contains('\n'),
            "{name}: stored with CRLF"
        );
        let sdp = SessionDescription::parse(text).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(sdp.to_string(), *text, "{name}: round trip");
        let m = MsrpMedia::find(&sdp).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(!m.path.is_empty() && !m.accept_types.is_empty(), "{name}");
        // LF-only input gives the same result.
        let lf = SessionDescription::parse(&text.replace("\r\n", "\n")).unwrap();
        assert_eq!(lf.to_string(), *text, "{name}: LF input");
    }
}

#[test]
fn rfc4975_exchange_offerer_connects() {
    let offer = SdpOffer::parse(get("rfc4975-8.7-fig9-offer.sdp")).unwrap();
    let answer = SdpAnswer::parse(get("rfc4975-8.7-fig10-answer.sdp")).unwrap();
    assert_eq!(
        offer
            .media()
            .accept_types
            .iter()
            .map(|t| t.to_string())
            .collect::<Vec<_>>(),
        ["message/cpim", "text/plain", "text/html"]
    );
    // No a=setup on either side: RFC 4975, the offerer is active (RFC 4145 §4.1 defaults).
    let po = plan(&offer, &answer, Side::Offerer).unwrap();
    let pa = plan(&offer, &answer, Side::Answerer).unwrap();
    assert_eq!((po.role, pa.role), (Role::Active, Role::Passive));
    assert_eq!(
        po.connect_to,
        Some(uri("msrp://bob.example.com:8493/si438dsaodes;tcp"))
    );
    assert_eq!(pa.connect_to, None);
    assert_eq!(
        po.remote_path,
        vec![uri("msrp://bob.example.com:8493/si438dsaodes;tcp")]
    );
    assert_eq!(
        po.local_path,
        vec![uri("msrp://alice.example.com:7394/2s93i93idj;tcp")]
    );

    // RFC 4975 §11.1: same, with the To-Path/From-Path of the first SEND.
    let offer = SdpOffer::parse(get("rfc4975-11.1-offer.sdp")).unwrap();
    let answer = SdpAnswer::parse(get("rfc4975-11.1-answer.sdp")).unwrap();
    let po = plan(&offer, &answer, Side::Offerer).unwrap();
    assert_eq!(
        po.remote_path,
        vec![uri("msrp://bob.example.com:8888/9di4eae923wzd;tcp")]
    );
    assert_eq!(
        po.local_path,
        vec![uri("msrp://alicepc.example.com:7777/iau39soe2843z;tcp")]
    );
    assert!(po.send_binding_send);
}

#[test]
fn rfc4975_fingerprint_example() {
    let offer = SdpOffer::parse(get("rfc4975-14.4-fig19-fingerprint.sdp")).unwrap();
    let m = offer.media();
    assert_eq!(m.transport, MsrpTransport::Tls);
    assert_eq!(m.fingerprints.len(), 1);
    assert_eq!(m.fingerprints[0].hash, HashFunction::Sha1);
    assert_eq!(
        m.fingerprints[0].hex(),
        "4A:AD:B9:B1:3F:82:18:3B:54:02:12:DF:3E:5D:49:6B:19:E5:7C:AB"
    );
}

#[test]
fn rfc4976_relay_example() {
    let offer = SdpOffer::parse(get("rfc4976-11-offer.sdp")).unwrap();
    let answer = SdpAnswer::parse(get("rfc4976-11-answer.sdp")).unwrap();
    assert_eq!(answer.media().path.len(), 2);
    let po = plan(&offer, &answer, Side::Offerer).unwrap();
    let pa = plan(&offer, &answer, Side::Answerer).unwrap();
    // Alice (offerer, RFC 4975 model) connects to the first hop of Bob's path, his relay,
    // over TLS because that URI is msrps (RFC 4975 §8.2).
    assert_eq!(po.role, Role::Active);
    assert_eq!(
        po.connect_to,
        Some(uri("msrps://relay.example.com:9000/hjdhfha;tcp"))
    );
    assert_eq!((po.tls, po.tls_role), (true, Some(TlsRole::Client)));
    // RFC 6135 §4.3: relays do not see the SDP, the fingerprint cannot be checked end to end.
    assert!(po.warnings.contains(&Warning::FingerprintNotVerifiable));
    assert!(!po.verify_peer_fingerprint);
    assert_eq!(po.remote_path, answer.media().path);
    // Bob is passive but connects to his relay (RFC 6135 §4.5), sends no binding SEND, and
    // addresses Alice through the relay's Use-Path.
    assert_eq!(pa.role, Role::Passive);
    assert_eq!(
        pa.connect_to,
        Some(uri("msrps://relay.example.com:9000/hjdhfha;tcp"))
    );
    assert!(pa.via_relay && !pa.send_binding_send);
    assert_eq!(
        pa.remote_path,
        vec![
            uri("msrps://relay.example.com:9000/hjdhfha;tcp"),
            uri("msrp://a.example.com:1234/agic456;tcp")
        ]
    );
    assert_eq!(
        pa.local_path,
        vec![uri("msrps://bob.example.com:1234/fuige;tcp")]
    );
}

#[test]
fn rfc5547_file_transfer_attributes() {
    let offer = SdpOffer::parse(get("rfc5547-9.1-fig8-offer.sdp")).unwrap();
    let m = offer.media();
    let fs = m.file_selector.as_ref().unwrap();
    assert_eq!(fs.name.as_deref(), Some("My cool picture.jpg"));
    assert_eq!(fs.size, Some(4092));
    assert_eq!(fs.file_type.as_deref(), Some("image/jpeg"));
    assert_eq!(
        fs.hashes,
        vec![(
            "sha-1".to_string(),
            "72:24:5F:E8:65:3D:DA:F3:71:36:2F:86:D4:71:91:3E:E4:A2:CE:2E".to_string()
        )]
    );
    assert_eq!(
        m.file_transfer_id.as_deref(),
        Some("Q6LMoGymJdh0IKIgD6wD0jkcfgva4xvE")
    );
    assert_eq!(m.file_disposition.as_deref(), Some("render"));
    assert_eq!(
        m.file_date.as_ref().unwrap().creation.as_deref(),
        Some("Mon, 15 May 2006 15:01:31 +0300")
    );
    assert_eq!(m.direction, Some(Direction::SendOnly));
    let fig2 = SdpOffer::parse(get("rfc5547-6-fig2.sdp")).unwrap();
    let r = fig2.media().file_range.unwrap();
    assert_eq!((r.start, r.stop), (1, Some(32349)));
    // Unknown attributes (a=file-icon) and i= stay with the media description.
    assert!(fig2
        .media()
        .extra
        .iter()
        .any(|l| l.value.starts_with("file-icon:")));
    let answer = SdpAnswer::parse(get("rfc5547-9.1-fig9-answer.sdp")).unwrap();
    assert_eq!(answer.media().direction, Some(Direction::RecvOnly));
    let po = plan(&offer, &answer, Side::Offerer).unwrap();
    assert_eq!(
        po.connect_to,
        Some(uri("msrp://bobpc.example.com:8888/9di4ea;tcp"))
    );

    // Writing the typed media description gives back the same attributes.
    let lines: Vec<String> = fig2
        .media()
        .to_lines()
        .iter()
        .map(|l| l.to_string())
        .collect();
    for want in [
        "a=file-selector:name:\"My cool picture.jpg\" type:image/jpeg size:32349 hash:sha-1:72:24:5F:E8:65:3D:DA:F3:71:36:2F:86:D4:71:91:3E:E4:A2:CE:2E",
        "a=file-transfer-id:vBnG916bdberum2fFEABR1FR3ExZMUrd",
        "a=file-disposition:attachment",
        "a=file-date:creation:\"Mon, 15 May 2006 15:01:31 +0300\"",
        "a=file-range:1-32349",
        "a=accept-wrapped-types:*",
        "a=sendonly",
        "a=file-icon:cid:id2@alicepc.example.com",
    ] {
        assert!(lines.iter().any(|l| l == want), "missing {want}: {lines:?}");
    }
}
