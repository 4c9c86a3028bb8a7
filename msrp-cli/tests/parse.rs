//! `msrp parse`: the JSON line contract, streaming, and errors on malformed input.

use std::io::Write;
use std::process::{Command, Output, Stdio};

fn msrp() -> Command {
    Command::new(env!("CARGO_BIN_EXE_msrp"))
}

fn run_stdin(input: &[u8]) -> Output {
    let mut child = msrp()
        .args(["parse", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let data = input.to_vec();
    // write from another thread so a full stdout pipe cannot deadlock us
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&data);
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    out
}

fn lines(out: &Output) -> Vec<serde_json::Value> {
    String::from_utf8(out.stdout.clone())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect()
}

const REQ: &str = "MSRP abcd1234 SEND\r\nTo-Path: msrp://a.example.com:1/s;tcp\r\nFrom-Path: msrp://b.example.com:1/s;tcp\r\n-------abcd1234$\r\n";

#[test]
fn sample_session_prints_one_object_per_message() {
    let sample = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../samples/rfc4975-session.msrp"
    );
    let out = msrp().args(["parse", sample]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = lines(&out);
    assert_eq!(v.len(), 6);
    let first = v[0].as_object().unwrap();
    let keys: Vec<&str> = first.keys().map(String::as_str).collect();
    let mut want = vec![
        "kind",
        "method",
        "transaction_id",
        "headers",
        "body_len",
        "continuation",
    ];
    let mut got = keys.clone();
    got.sort_unstable();
    want.sort_unstable();
    assert_eq!(got, want);
    assert_eq!(v[0]["kind"], "request");
    assert_eq!(v[0]["method"], "SEND");
    assert_eq!(v[0]["transaction_id"], "d93kswow");
    assert_eq!(v[0]["body_len"], 14);
    assert_eq!(v[0]["continuation"], "$");
    assert_eq!(
        v[0]["headers"][0],
        serde_json::json!(["To-Path", "msrp://bob.example.com:8888/9di4eae923wzd;tcp"])
    );
    assert_eq!(v[0]["headers"].as_array().unwrap().len(), 5);
    assert_eq!(v[1]["kind"], "response");
    assert_eq!(v[1]["status"], 200);
    assert!(v[1].get("method").is_none());
    assert_eq!(v[1]["body_len"], 0);
    assert_eq!(v[5]["method"], "REPORT");
    assert_eq!(
        v[5]["headers"][4],
        serde_json::json!(["Status", "000 200 OK"])
    );
}

#[test]
fn malformed_input_prints_earlier_messages_then_fails_with_offset() {
    let mut input = REQ.repeat(2).into_bytes();
    input.extend_from_slice(b"MSRP abcd1234 send\r\n");
    let out = run_stdin(&input);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(lines(&out).len(), 2);
    let err = String::from_utf8(out.stderr).unwrap();
    let at = 2 * REQ.len() + "MSRP abcd1234 ".len();
    assert!(err.contains("invalid method"), "{err}");
    assert!(err.contains(&format!("byte offset {at}")), "{err}");
}

#[test]
fn truncated_input_is_an_error() {
    let out = run_stdin(&REQ.as_bytes()[..REQ.len() - 3]);
    assert_eq!(out.status.code(), Some(1));
    assert!(lines(&out).is_empty());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("input ended inside a message"), "{err}");
    assert!(
        err.contains(&format!("byte offset {}", REQ.len() - 3)),
        "{err}"
    );
}

#[test]
fn large_bodies_are_streamed() {
    let body_len = 8 * 1024 * 1024 + 7;
    let mut input = b"MSRP bigbody1 SEND\r\nTo-Path: msrp://a.example.com:1/s;tcp\r\nFrom-Path: msrp://b.example.com:1/s;tcp\r\nByte-Range: 1-*/*\r\nContent-Type: application/octet-stream\r\n\r\n".to_vec();
    input.extend((0..body_len).map(|i| {
        if i % 97 == 0 {
            b'\r'
        } else if i % 89 == 0 {
            b'\n'
        } else {
            b'-'
        }
    }));
    input.extend_from_slice(b"\r\n-------bigbody1+\r\n");
    input.extend_from_slice(REQ.as_bytes());
    let out = run_stdin(&input);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = lines(&out);
    assert_eq!(v.len(), 2);
    assert_eq!(v[0]["body_len"], body_len as u64);
    assert_eq!(v[0]["continuation"], "+");
}

#[test]
fn missing_file_is_reported() {
    let out = msrp()
        .args(["parse", "/nonexistent/x.msrp"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot open"));
}
