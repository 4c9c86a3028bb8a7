//! The MSRP URI parser on arbitrary text: never panics; `validate` agrees with `parse`;
//! a parsed URI prints to text that parses back to the same URI, equivalent to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use msrp_proto::uri::MsrpUri;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let parsed = MsrpUri::parse(s);
    assert_eq!(MsrpUri::validate(s).err(), parsed.as_ref().err().cloned());
    if let Ok(u) = parsed {
        let printed = u.to_string();
        let again = MsrpUri::parse(&printed).expect("printed URI must parse");
        assert_eq!(again, u);
        assert!(u.equivalent(&again));
    }
});
