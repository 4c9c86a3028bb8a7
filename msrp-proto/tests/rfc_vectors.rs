//! Every MSRP message example of RFC 4975 and RFC 4976, stored in `tests/vectors/` with real
//! CRLF line endings (see `tests/vectors/README.md` for how they were extracted and what was
//! repaired). Each must parse, in one piece and split anywhere, and the writer must give back
//! the exact bytes.

mod common;

use common::{encode_all, parse_bytewise, parse_in_pieces};
use msrp_proto::message::{
    parse_messages, Continuation, EventRef, HeaderKind, Limits, Message, MessageError, Method,
    Parser, StatusCode,
};
use std::path::{Path, PathBuf};

fn vector_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors")
}

fn vectors(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "msrp"))
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect();
    v.sort();
    v
}

fn one(name: &str) -> Message {
    let bytes = std::fs::read(vector_dir().join(name)).unwrap();
    let mut m = parse_messages(&bytes, Limits::default()).unwrap();
    assert_eq!(m.len(), 1);
    m.pop().unwrap()
}

#[test]
fn all_rfc_vectors_parse_and_round_trip_byte_for_byte() {
    let vs = vectors(&vector_dir());
    // 14 examples in RFC 4975 (two of them abridged and completed), 21 in RFC 4976.
    assert_eq!(
        vs.len(),
        35,
        "{:?}",
        vs.iter().map(|v| &v.0).collect::<Vec<_>>()
    );
    for (name, bytes) in &vs {
        assert!(
            bytes
                .windows(2)
                .filter(|w| w[1] == b'\n')
                .all(|w| w[0] == b'\r'),
            "{name}: not CRLF"
        );
        let msgs =
            parse_messages(bytes, Limits::default()).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(msgs.len(), 1, "{name}");
        let m = &msgs[0];
        // the file name says the start line
        let kind = name.rsplit('-').next().unwrap().trim_end_matches(".msrp");
        match m.head.method() {
            Some(method) => assert_eq!(method.as_str(), kind, "{name}"),
            None => assert_eq!(m.head.status_code().unwrap().to_string(), kind, "{name}"),
        }
        assert_eq!(encode_all(&msgs), *bytes, "{name}: writer output differs");
        // the fast and general head paths and parse_ref agree
        common::assert_paths_agree(bytes, Limits::default());
        // the borrowed head says what the owned one says
        let mut p = Parser::new(Limits::default());
        match p.parse_ref(bytes).unwrap() {
            (_, Some(EventRef::Head { head: h, .. })) => {
                assert_eq!(h.to_head(), m.head, "{name}");
                assert_eq!(h, m.head.view(), "{name}");
                assert_eq!(h.as_str(), m.head.as_str(), "{name}");
                assert_eq!(h.transaction_id(), m.head.transaction_id(), "{name}");
                assert_eq!(h.start_line(), m.head.start_line(), "{name}");
                assert_eq!(
                    h.headers().collect::<Vec<_>>(),
                    m.head.headers().collect::<Vec<_>>()
                );
                assert_eq!(h.to_path(), m.head.to_path(), "{name}");
                assert_eq!(h.from_path(), m.head.from_path(), "{name}");
                assert_eq!(h.use_path(), m.head.use_path(), "{name}");
                assert_eq!(h.message_id(), m.head.message_id(), "{name}");
                assert_eq!(h.byte_range(), m.head.byte_range(), "{name}");
                assert_eq!(h.content_type(), m.head.content_type(), "{name}");
                assert_eq!(h.status(), m.head.status(), "{name}");
                assert_eq!(h.failure_report(), m.head.failure_report(), "{name}");
                assert_eq!(h.success_report(), m.head.success_report(), "{name}");
                assert_eq!(h.expires(), m.head.expires(), "{name}");
                assert_eq!(h.comment(), m.head.comment(), "{name}");
                assert_eq!(h.get("to-path"), m.head.get("to-path"), "{name}");
            }
            other => panic!("{name}: {other:?}"),
        }
        assert_eq!(
            parse_bytewise(bytes, Limits::default()).unwrap(),
            msgs,
            "{name}: byte-wise"
        );
        for cut in 1..bytes.len() {
            assert_eq!(
                parse_in_pieces(bytes, &[cut], Limits::default()).0.unwrap(),
                msgs,
                "{name}: split at {cut}"
            );
        }
    }
}

#[test]
fn all_vectors_as_one_stream() {
    let mut stream = Vec::new();
    let vs = vectors(&vector_dir());
    for (_, b) in &vs {
        stream.extend_from_slice(b);
    }
    let msgs = parse_messages(&stream, Limits::default()).unwrap();
    assert_eq!(msgs.len(), vs.len());
    assert_eq!(encode_all(&msgs), stream);
    let cuts: Vec<usize> = (0..stream.len()).step_by(7).collect();
    assert_eq!(
        parse_in_pieces(&stream, &cuts, Limits::default())
            .0
            .unwrap(),
        msgs
    );
}

#[test]
fn abridged_rfc_examples_are_rejected_for_the_missing_paths() {
    // RFC 4975 Figure 3 leaves out To-Path and From-Path; as written it is not a valid
    // message (RFC 4975 §9: headers = To-Path CRLF From-Path CRLF ...).
    let vs = vectors(&vector_dir().join("abridged"));
    assert_eq!(vs.len(), 2);
    for (name, bytes) in &vs {
        let e = parse_messages(bytes, Limits::default()).unwrap_err();
        assert_eq!(e.kind(), &MessageError::ToPathNotFirst, "{name}");
        assert_eq!(e.offset(), b"MSRP dkei38sd SEND\r\n".len() as u64, "{name}");
    }
}

#[test]
fn typed_view_of_rfc4975_examples() {
    let m = one("rfc4975-03-dkei38sd-SEND.msrp");
    assert_eq!(m.continuation, Continuation::More);
    let r = m.head.byte_range().unwrap();
    assert_eq!((r.start, r.end, r.total), (1, None, Some(8)));
    assert_eq!(m.body.as_deref(), Some(&b"abcd"[..]));

    let m = one("rfc4975-10-d93kswow-SEND.msrp");
    assert!(m.head.content_type().unwrap().is("message/cpim"));
    assert_eq!(m.body.as_ref().unwrap().len(), 137);
    assert_eq!(m.continuation, Continuation::More);

    let m = one("rfc4975-12-d93kswow-SEND.msrp");
    assert_eq!(m.head.success_report(), Some(false));
    assert_eq!(
        m.head.failure_report(),
        Some(msrp_proto::message::FailureReport::No)
    );

    let m = one("rfc4975-14-dkei38sd-REPORT.msrp");
    assert_eq!(m.head.method(), Some(&Method::Report));
    let s = m.head.status().unwrap();
    assert_eq!(
        (s.namespace, s.code, s.comment),
        (0, StatusCode::OK, Some("OK"))
    );
    assert_eq!(m.body, None);
}

#[test]
fn typed_view_of_rfc4976_examples() {
    let m = one("rfc4976-01-6aef-SEND.msrp");
    let to = m.head.to_path();
    assert_eq!(to.len(), 3);
    assert!(to.iter().all(|u| u.is_secure()));
    assert_eq!(to[2].session_id(), Some("foo"));

    let m = one("rfc4976-11-49fh-401.msrp");
    assert_eq!(m.head.status_code(), Some(StatusCode::UNAUTHORIZED));
    assert_eq!(m.head.comment(), Some("Unauthorized"));
    let ch: Vec<_> = m.head.www_authenticate().collect();
    assert_eq!(ch.len(), 1);
    assert!(ch[0].starts_with("Digest realm=\"intra.example.com\""));

    let m = one("rfc4976-12-49fi-AUTH.msrp");
    assert_eq!(m.head.method(), Some(&Method::Auth));
    assert!(m
        .head
        .authorization()
        .next()
        .unwrap()
        .contains("response=\"6629fae49393a05397450978507c4ef1\""));

    let m = one("rfc4976-13-49fi-200.msrp");
    assert_eq!(m.head.expires(), Some(900));
    assert_eq!(
        m.head.use_path().unwrap()[0].to_string(),
        "msrps://intra.example.com:9000/jui787s2f;tcp"
    );
    assert!(m
        .head
        .authentication_info()
        .unwrap()
        .starts_with("nextnonce="));
    assert_eq!(
        m.head.headers().map(|h| h.kind).collect::<Vec<_>>(),
        [
            HeaderKind::ToPath,
            HeaderKind::FromPath,
            HeaderKind::UsePath,
            HeaderKind::AuthenticationInfo,
            HeaderKind::Expires
        ]
    );
}
