//! The STUN decoder and the RFC 5780 discovery state machine on arbitrary bytes: decoding never
//! panics; whatever decodes re-encodes to a message that decodes the same; and discovery fed
//! the bytes as a response (transaction id patched in) still ends within its timer schedule.
#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use msrp_proto::stun::{
    frame_len, Attribute, Discovery, Message, StunConfig, TransactionId, Transport,
};

fn without_fingerprint(m: &Message) -> Vec<Attribute> {
    m.attributes
        .iter()
        .filter(|a| !matches!(a, Attribute::Fingerprint(_)))
        .cloned()
        .collect()
}

fuzz_target!(|data: &[u8]| {
    let _ = frame_len(data);
    if let Ok(m) = Message::decode(data) {
        let again = Message::decode(&m.encode(false)).expect("our own encoding decodes");
        assert_eq!(again.class, m.class);
        assert_eq!(again.method, m.method);
        assert_eq!(again.transaction_id, m.transaction_id);
        assert_eq!(without_fingerprint(&again), without_fingerprint(&m));
    }

    // Discovery over UDP or TCP (first byte), the rest as the answer to every request.
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let transport = if mode & 1 == 1 {
        Transport::Tcp
    } else {
        Transport::Udp
    };
    let server = "203.0.113.1:3478".parse().unwrap();
    let local = "192.0.2.10:5000".parse().unwrap();
    let t0 = Instant::now();
    let mut n = 0u8;
    let mut d = Discovery::new(
        server,
        local,
        transport,
        StunConfig::default(),
        Box::new(move || {
            n = n.wrapping_add(1);
            TransactionId([n; 12])
        }),
        t0,
    );
    let mut now = t0;
    for _ in 0..200 {
        while let Some(tx) = d.poll_transmit() {
            let mut answer = rest.to_vec();
            if answer.len() >= 20 {
                answer[8..20].copy_from_slice(&tx.contents[8..20]);
            }
            let _ = d.handle_input(tx.destination, &answer, now);
        }
        if d.is_finished() {
            break;
        }
        now = d.poll_timeout().expect("unfinished discovery has a timer");
        d.handle_timeout(now);
    }
    assert!(d.is_finished());
    assert!(d.poll_result().is_some());
    assert!(now - t0 <= Duration::from_millis(5 * 39_500));
});
