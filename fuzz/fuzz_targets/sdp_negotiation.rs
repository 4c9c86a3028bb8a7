//! Offer -> answer -> plan on arbitrary SDP, in both roles: as the answerer of an arbitrary
//! offer (our answer must parse again and the offerer side of the same exchange must accept
//! it), and as the offerer receiving an arbitrary answer. Errors are values, never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use msrp_proto::sdp::{
    create_answer, create_offer, LocalConfig, Reachability, SdpAnswer, SdpOffer,
};

fn config(flags: u8, port: u16, sid: &str) -> LocalConfig {
    let ip = if flags & 1 == 0 {
        "192.0.2.1"
    } else {
        "[2001:db8::1]"
    };
    let mut cfg = LocalConfig::new(format!("{ip}:{port}").parse().unwrap(), sid);
    if flags & 2 != 0 {
        cfg.reachability = Reachability::BehindNat;
    }
    cfg.cema = flags & 4 != 0;
    if flags & 8 != 0 {
        cfg.max_size = Some(1 << 20);
    }
    if flags & 16 != 0 {
        cfg.relay_path = vec!["msrp://198.51.100.7:2855/relay1;tcp".parse().unwrap()];
    }
    cfg
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    // We answer an arbitrary offer.
    if let Ok(offer) = SdpOffer::parse(text) {
        if let Ok(answered) = create_answer(&offer, &config(flags, 2856, "answerer01")) {
            let wire = answered.answer.to_string();
            let answer = SdpAnswer::parse(&wire).expect("our answer parses");
            assert_eq!(answer.media(), answered.answer.media());
            // Both plans name each other's session URIs.
            assert_eq!(answered.plan.remote_uri, *offer.media().session_uri());
        }
    }
    // We offer; the answer is arbitrary.
    if let Ok(pending) = create_offer(&config(flags >> 5, 2855, "offerer001")) {
        let wire = pending.offer().to_string();
        SdpOffer::parse(&wire).expect("our offer parses");
        if let Ok(answer) = SdpAnswer::parse(text) {
            if let Ok(plan) = pending.accept_answer(&answer) {
                assert_eq!(plan.remote_uri, *answer.media().session_uri());
            }
        }
    }
});
