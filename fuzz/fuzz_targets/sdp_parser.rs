//! SDP text: whatever parses is written back and parses to the same value (and the same
//! text); the MSRP media reader and the offer/answer newtypes never panic and agree on the
//! re-parsed description.
#![no_main]

use libfuzzer_sys::fuzz_target;
use msrp_proto::sdp::{MsrpMedia, SdpAnswer, SdpOffer, SessionDescription};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(sdp) = SessionDescription::parse(text) else {
        return;
    };
    let written = sdp.to_string();
    let again = SessionDescription::parse(&written).expect("our own SDP output parses");
    assert_eq!(again, sdp);
    assert_eq!(again.to_string(), written);
    let a = MsrpMedia::find(&sdp);
    let b = MsrpMedia::find(&again);
    assert_eq!(a.is_ok(), b.is_ok());
    if let Ok(offer) = SdpOffer::from_sdp(sdp.clone()) {
        // Writing the media description back keeps it readable.
        let again = SdpOffer::parse(&offer.to_string()).expect("a valid offer re-parses");
        assert_eq!(again.media(), offer.media());
    }
    let _ = SdpAnswer::from_sdp(sdp);
});
