//! The HTTP Digest parsers of RFC 4976 AUTH on arbitrary text: never panic; whatever parses
//! prints to text that parses back to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use msrp_proto::relay::digest::{AuthenticationInfo, Authorization, Challenge};

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(c) = Challenge::parse(s) {
        let again = Challenge::parse(&c.to_string()).expect("printed challenge must parse");
        assert_eq!(again, c);
    }
    if let Ok(a) = Authorization::parse(s) {
        let again = Authorization::parse(&a.to_string()).expect("printed credentials must parse");
        assert_eq!(again, a);
    }
    if let Ok(i) = AuthenticationInfo::parse(s) {
        let again = AuthenticationInfo::parse(&i.to_string()).expect("printed info must parse");
        assert_eq!(again, i);
    }
});
