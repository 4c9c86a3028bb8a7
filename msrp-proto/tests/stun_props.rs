//! Property tests for the STUN codec and the discovery state machine: arbitrary input never
//! panics, `decode(encode(m)) == m`, and discovery always ends within its timer schedule
//! whatever arrives.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

use msrp_proto::stun::message::attr;
use msrp_proto::stun::{
    frame_len, Attribute, Class, Discovery, Message, StunConfig, TransactionId, Transport,
};
use proptest::prelude::*;

fn addr() -> impl Strategy<Value = SocketAddr> {
    prop_oneof![
        (any::<[u8; 4]>(), any::<u16>())
            .prop_map(|(ip, p)| SocketAddr::new(IpAddr::V4(Ipv4Addr::from(ip)), p)),
        (any::<[u8; 16]>(), any::<u16>())
            .prop_map(|(ip, p)| SocketAddr::new(IpAddr::V6(Ipv6Addr::from(ip)), p)),
    ]
}

const KNOWN: [u16; 12] = [
    attr::MAPPED_ADDRESS,
    attr::CHANGE_REQUEST,
    attr::SOURCE_ADDRESS,
    attr::CHANGED_ADDRESS,
    attr::ERROR_CODE,
    attr::UNKNOWN_ATTRIBUTES,
    attr::XOR_MAPPED_ADDRESS,
    attr::SOFTWARE,
    attr::FINGERPRINT,
    attr::RESPONSE_ORIGIN,
    attr::OTHER_ADDRESS,
    attr::MESSAGE_INTEGRITY,
];

fn attribute() -> impl Strategy<Value = Attribute> {
    prop_oneof![
        addr().prop_map(Attribute::MappedAddress),
        addr().prop_map(Attribute::XorMappedAddress),
        addr().prop_map(Attribute::ResponseOrigin),
        addr().prop_map(Attribute::OtherAddress),
        addr().prop_map(Attribute::ChangedAddress),
        addr().prop_map(Attribute::SourceAddress),
        (any::<bool>(), any::<bool>()).prop_map(|(change_ip, change_port)| {
            Attribute::ChangeRequest {
                change_ip,
                change_port,
            }
        }),
        (300u16..700, "\\PC{0,40}")
            .prop_map(|(code, reason)| Attribute::ErrorCode { code, reason }),
        prop::collection::vec(any::<u16>(), 0..8).prop_map(Attribute::UnknownAttributes),
        "\\PC{0,60}".prop_map(Attribute::Software),
        (any::<u16>(), prop::collection::vec(any::<u8>(), 0..40))
            .prop_filter("not a known type", |(t, _)| !KNOWN.contains(t))
            .prop_map(|(typ, value)| Attribute::Unknown { typ, value }),
    ]
}

fn message() -> impl Strategy<Value = Message> {
    (
        prop_oneof![
            Just(Class::Request),
            Just(Class::Indication),
            Just(Class::SuccessResponse),
            Just(Class::ErrorResponse)
        ],
        0u16..0x1000,
        any::<[u8; 12]>(),
        prop::collection::vec(attribute(), 0..10),
    )
        .prop_map(|(class, method, tid, attributes)| Message {
            class,
            method,
            transaction_id: TransactionId(tid),
            attributes,
        })
}

proptest! {
    #[test]
    fn decode_never_panics_on_arbitrary_bytes(b in prop::collection::vec(any::<u8>(), 0..200)) {
        let _ = Message::decode(&b);
        let _ = frame_len(&b);
    }

    #[test]
    fn decode_never_panics_on_plausible_messages(
        tid in any::<[u8; 12]>(),
        attrs in prop::collection::vec((any::<u16>(), prop::collection::vec(any::<u8>(), 0..24)), 0..8),
        fp in any::<bool>(),
    ) {
        // Correct header and attribute framing, arbitrary types and values: reaches every
        // attribute decoder with garbage.
        let mut m = Message::binding_request(TransactionId(tid), vec![]);
        m.class = Class::SuccessResponse;
        m.attributes = attrs
            .into_iter()
            .map(|(typ, value)| Attribute::Unknown { typ, value })
            .collect();
        let bytes = m.encode(fp);
        if let Ok(d) = Message::decode(&bytes) {
            // Whatever decoded re-encodes to something that decodes the same.
            let again = Message::decode(&d.encode(false)).unwrap();
            let strip = |m: &Message| m.attributes.iter().filter(|a| !matches!(a, Attribute::Fingerprint(_))).cloned().collect::<Vec<_>>();
            prop_assert_eq!(strip(&again), strip(&d));
        }
    }

    #[test]
    fn round_trip(m in message(), fp in any::<bool>()) {
        let bytes = m.encode(fp);
        prop_assert_eq!(bytes.len() % 4, 0);
        prop_assert_eq!(frame_len(&bytes), Ok(Some(bytes.len())));
        let d = Message::decode(&bytes).unwrap();
        let mut expect = m.attributes.clone();
        if fp {
            let last = d.attributes.last().cloned();
            prop_assert!(matches!(last, Some(Attribute::Fingerprint(_))));
            expect.push(last.unwrap());
        }
        prop_assert_eq!(d.class, m.class);
        prop_assert_eq!(d.method, m.method);
        prop_assert_eq!(d.transaction_id, m.transaction_id);
        prop_assert_eq!(d.attributes, expect);
    }

    #[test]
    fn discovery_always_terminates(
        tcp in any::<bool>(),
        inputs in prop::collection::vec(
            (0u8..4, prop::collection::vec(attribute(), 0..5), any::<u64>(), addr()),
            0..12,
        ),
    ) {
        // Feed a mix of garbage, stray responses and responses to the request in flight,
        // interleaved with timer expiries: discovery must finish without panicking, within
        // the time of five full transactions.
        let transport = if tcp { Transport::Tcp } else { Transport::Udp };
        let server: SocketAddr = "203.0.113.1:3478".parse().unwrap();
        let local: SocketAddr = "192.0.2.10:5000".parse().unwrap();
        let t0 = Instant::now();
        let mut now = t0;
        let mut n = 0u32;
        let mut d = Discovery::new(server, local, transport, StunConfig::default(), Box::new(move || {
            n += 1;
            let mut id = [0u8; 12];
            id[..4].copy_from_slice(&n.to_be_bytes());
            TransactionId(id)
        }), t0);
        let mut inputs = inputs.into_iter();
        let mut last_tid = None;
        for _ in 0..500 {
            while let Some(tx) = d.poll_transmit() {
                last_tid = Some(Message::decode(&tx.contents).unwrap().transaction_id);
            }
            if d.is_finished() {
                break;
            }
            match inputs.next() {
                Some((kind, attributes, junk, from)) => {
                    let tid = match (kind, last_tid) {
                        (0, _) | (_, None) => TransactionId([7; 12]),
                        (_, Some(t)) => t,
                    };
                    let class = if kind == 3 { Class::ErrorResponse } else { Class::SuccessResponse };
                    let bytes = if kind == 0 {
                        junk.to_be_bytes().to_vec()
                    } else {
                        Message { class, method: 1, transaction_id: tid, attributes }.encode(kind == 2)
                    };
                    let _ = d.handle_input(from, &bytes, now);
                }
                None => {
                    now = d.poll_timeout().expect("an unfinished discovery has a timer");
                    d.handle_timeout(now);
                }
            }
        }
        prop_assert!(d.is_finished());
        prop_assert!(d.poll_result().is_some());
        prop_assert!(now - t0 <= Duration::from_millis(5 * 39_500));
    }
}
