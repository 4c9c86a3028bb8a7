//! Property tests for the SDP line layer and the MSRP media reader: arbitrary input never
//! panics, and whatever parses is written back and re-parsed to the same value.

use msrp_proto::sdp::{MsrpMedia, SdpOffer, SessionDescription};
use proptest::prelude::*;

fn sdp_like() -> impl Strategy<Value = String> {
    let line = prop_oneof![
        Just("v=0".to_string()),
        Just("o=- 1 1 IN IP4 192.0.2.1".to_string()),
        Just("s=-".to_string()),
        Just("t=0 0".to_string()),
        Just("c=IN IP4 192.0.2.1".to_string()),
        Just("m=message 2855 TCP/MSRP *".to_string()),
        Just("m=message 9 TCP/TLS/MSRP *".to_string()),
        Just("a=path:msrp://192.0.2.1:2855/s;tcp".to_string()),
        Just("a=accept-types:text/plain *".to_string()),
        Just("a=setup:actpass".to_string()),
        Just("a=setup:active".to_string()),
        Just("a=msrp-cema".to_string()),
        "[a-z]=[ -~]{0,20}",
        "[ -~]{0,12}",
    ];
    (
        prop::collection::vec(line, 0..14),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(lines, crlf, spaces)| {
            let end = if crlf { "\r\n" } else { "\n" };
            let pad = if spaces { "  " } else { "" };
            lines.iter().map(|l| format!("{l}{pad}{end}")).collect()
        })
}

proptest! {
    #[test]
    fn parse_never_panics_and_round_trips(text in sdp_like()) {
        if let Ok(sdp) = SessionDescription::parse(&text) {
            let written = sdp.to_string();
            let again = SessionDescription::parse(&written).expect("our output parses");
            prop_assert_eq!(&again, &sdp);
            prop_assert_eq!(again.to_string(), written);
            // The media reader never panics either, and agrees on re-parsed input.
            let a = MsrpMedia::find(&sdp).map(|m| m.path);
            let b = MsrpMedia::find(&again).map(|m| m.path);
            prop_assert_eq!(a.is_ok(), b.is_ok());
            let _ = SdpOffer::from_sdp(sdp);
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(text in "\\PC{0,300}") {
        let _ = SdpOffer::parse(&text);
    }
}
