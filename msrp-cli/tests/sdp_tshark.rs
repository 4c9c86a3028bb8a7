//! SDP written by our stack, wrapped in SIP over UDP, is dissected by Wireshark's SDP
//! dissector (Debian `tshark`) with no malformed packet and no error-level expert item.
//!
//! The capture is written here (pcap, Ethernet/IPv4/UDP, documentation addresses); no packet
//! is sent anywhere. Without tshark the test fails when CI=true and is skipped otherwise.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Kills the child when dropped (even on panic).
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs a command with a time limit; returns (success, stdout, stderr).
fn run(cmd: &mut Command, limit: Duration) -> (bool, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let (out, err) = (dir.path().join("out"), dir.path().join("err"));
    let child = cmd
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .expect("spawn");
    let mut g = Guard(child);
    let start = Instant::now();
    let status = loop {
        if let Some(s) = g.0.try_wait().unwrap() {
            break s;
        }
        assert!(
            start.elapsed() < limit,
            "{cmd:?} did not finish within {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    (
        status.success(),
        std::fs::read_to_string(out).unwrap(),
        std::fs::read_to_string(err).unwrap(),
    )
}

fn tshark_available() -> bool {
    let ok = Command::new("tshark")
        .arg("-v")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !ok {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!(
                "tshark is required for this test (CI=true): install the Debian package 'tshark'"
            );
        }
        println!("skipped: tshark not installed");
    }
    ok
}

fn msrp(args: &[&str]) -> String {
    let (ok, out, err) = run(
        Command::new(env!("CARGO_BIN_EXE_msrp")).args(args),
        Duration::from_secs(30),
    );
    assert!(ok, "msrp {args:?}: {err}");
    out
}

fn checksum(h: &[u8]) -> u16 {
    let mut s: u32 = h
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
        .sum();
    while s >> 16 != 0 {
        s = (s & 0xffff) + (s >> 16);
    }
    !(s as u16)
}

/// One Ethernet/IPv4/UDP frame carrying `payload` from `src` to `dst`, port 5060 both ways.
fn frame(src: [u8; 4], dst: [u8; 4], payload: &[u8]) -> Vec<u8> {
    let mut udp = Vec::new();
    udp.extend(5060u16.to_be_bytes());
    udp.extend(5060u16.to_be_bytes());
    udp.extend(((8 + payload.len()) as u16).to_be_bytes());
    udp.extend(0u16.to_be_bytes()); // no checksum (allowed over IPv4)
    udp.extend(payload);
    let mut ip = vec![0x45, 0];
    ip.extend(((20 + udp.len()) as u16).to_be_bytes());
    ip.extend([0, 1, 0x40, 0, 64, 17, 0, 0]); // id 1, DF, TTL 64, UDP, checksum later
    ip.extend(src);
    ip.extend(dst);
    let c = checksum(&ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    let mut f = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00];
    f.extend(ip);
    f.extend(udp);
    f
}

/// A classic pcap file (microsecond timestamps, Ethernet link type).
fn pcap(frames: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend(0xa1b2c3d4u32.to_le_bytes());
    out.extend(2u16.to_le_bytes());
    out.extend(4u16.to_le_bytes());
    out.extend(0i32.to_le_bytes());
    out.extend(0u32.to_le_bytes());
    out.extend(65535u32.to_le_bytes());
    out.extend(1u32.to_le_bytes());
    for (i, f) in frames.iter().enumerate() {
        out.extend((1_700_000_000u32 + i as u32).to_le_bytes());
        out.extend(0u32.to_le_bytes());
        out.extend((f.len() as u32).to_le_bytes());
        out.extend((f.len() as u32).to_le_bytes());
        out.extend(f);
    }
    out
}

fn invite(n: u32, sdp: &str) -> Vec<u8> {
    format!(
        "INVITE sip:bob@203.0.113.20 SIP/2.0\r\n\
         Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK-msrp-{n}\r\n\
         Max-Forwards: 70\r\n\
         To: <sip:bob@203.0.113.20>\r\n\
         From: <sip:alice@192.0.2.10>;tag=a{n}\r\n\
         Call-ID: call-{n}@192.0.2.10\r\n\
         CSeq: 1 INVITE\r\n\
         Contact: <sip:alice@192.0.2.10>\r\n\
         Content-Type: application/sdp\r\n\
         Content-Length: {}\r\n\r\n{sdp}",
        sdp.len()
    )
    .into_bytes()
}

fn ok_200(n: u32, sdp: &str) -> Vec<u8> {
    format!(
        "SIP/2.0 200 OK\r\n\
         Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK-msrp-{n}\r\n\
         To: <sip:bob@203.0.113.20>;tag=b{n}\r\n\
         From: <sip:alice@192.0.2.10>;tag=a{n}\r\n\
         Call-ID: call-{n}@192.0.2.10\r\n\
         CSeq: 1 INVITE\r\n\
         Contact: <sip:bob@203.0.113.20>\r\n\
         Content-Type: application/sdp\r\n\
         Content-Length: {}\r\n\r\n{sdp}",
        sdp.len()
    )
    .into_bytes()
}

fn tshark(file: &Path, args: &[&str]) -> String {
    let (ok, out, err) = run(
        Command::new("tshark").arg("-r").arg(file).args(args),
        Duration::from_secs(120),
    );
    assert!(ok, "tshark {args:?} failed: {err}");
    out
}

#[test]
fn wireshark_dissects_our_sdp_without_errors() {
    if !tshark_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p.to_str().unwrap().to_string()
    };
    let (alice, bob) = ([192, 0, 2, 10], [203, 0, 113, 20]);
    // Exchange 1: reachable offerer (actpass), answerer behind a NAT (active, port 9).
    let o1 = msrp(&[
        "sdp",
        "offer",
        "--listen",
        "192.0.2.10:7394",
        "--accept-types",
        "message/cpim text/plain",
        "--max-size",
        "65536",
    ]);
    let a1 = msrp(&[
        "sdp",
        "answer",
        "--offer",
        &write("o1.sdp", &o1),
        "--listen",
        "203.0.113.20:8493",
        "--reachability",
        "behind-nat",
    ]);
    // Exchange 2: TLS offer with fingerprint, CEMA and a relay; answerer reachable (passive).
    let o2 = msrp(&[
        "sdp",
        "offer",
        "--listen",
        "192.0.2.10:7394",
        "--reachability",
        "behind-nat",
        "--tls",
        "--cema",
        "--relay-path",
        "msrps://198.51.100.5:2855/r1;tcp",
    ]);
    let a2 = msrp(&[
        "sdp",
        "answer",
        "--offer",
        &write("o2.sdp", &o2),
        "--listen",
        "203.0.113.20:8493",
        "--tls",
        "--cema",
    ]);
    // Exchange 3: IPv6 listener, behind a NAT (active offer).
    let o3 = msrp(&[
        "sdp",
        "offer",
        "--listen",
        "[2001:db8::10]:7394",
        "--reachability",
        "behind-nat",
    ]);
    let frames = vec![
        frame(alice, bob, &invite(1, &o1)),
        frame(bob, alice, &ok_200(1, &a1)),
        frame(alice, bob, &invite(2, &o2)),
        frame(bob, alice, &ok_200(2, &a2)),
        frame(alice, bob, &invite(3, &o3)),
    ];
    let capture = dir.path().join("sdp.pcap");
    std::fs::write(&capture, pcap(&frames)).unwrap();

    let v = tshark(&capture, &["-V"]);
    assert_eq!(
        v.matches("Session Description Protocol Version (v): 0")
            .count(),
        5,
        "{v}"
    );
    for want in [
        "Media Description, name and address (m): message 7394 TCP/MSRP *",
        "Media Description, name and address (m): message 9 TCP/MSRP *",
        "Media Description, name and address (m): message 2855 TCP/TLS/MSRP *",
        "Media Description, name and address (m): message 8493 TCP/TLS/MSRP *",
        "Media Attribute (a): setup:actpass",
        "Media Attribute (a): setup:active",
        "Media Attribute (a): setup:passive",
        "Media Attribute (a): path:msrp://192.0.2.10:7394/",
        "Media Attribute (a): path:msrps://198.51.100.5:2855/r1;tcp msrps://192.0.2.10:7394/",
        "Media Attribute (a): accept-types:message/cpim text/plain",
        "Media Attribute (a): max-size:65536",
        "Media Attribute (a): fingerprint:sha-256 ",
        "Media Attribute (a): msrp-cema",
        "Connection Information (c): IN IP4 192.0.2.10",
        "Connection Information (c): IN IP6 2001:db8::10",
        "Request-Line: INVITE sip:bob@203.0.113.20 SIP/2.0",
        "Status-Line: SIP/2.0 200 OK",
    ] {
        assert!(v.contains(want), "tshark -V lacks {want:?}:\n{v}");
    }
    assert!(!v.contains("Malformed"), "{v}");
    let expert = tshark(&capture, &["-q", "-z", "expert"]);
    assert!(
        !expert.contains("Errors (") && !expert.contains("Malformed"),
        "{expert}"
    );
    // PI_ERROR is 0x00800000 = 8388608.
    let sev = tshark(
        &capture,
        &[
            "-T",
            "fields",
            "-e",
            "_ws.expert.severity",
            "-e",
            "_ws.malformed",
        ],
    );
    assert!(
        !sev.contains("8388608") && !sev.contains("_ws.malformed"),
        "{sev}"
    );

    // Negative control: the same detector reports a broken frame (UDP length too large).
    let mut broken = frames[0].clone();
    broken[14 + 20 + 4..14 + 20 + 6].copy_from_slice(&0xffffu16.to_be_bytes());
    let bad = dir.path().join("bad.pcap");
    std::fs::write(&bad, pcap(&[broken])).unwrap();
    let expert = tshark(&bad, &["-q", "-z", "expert"]);
    assert!(
        expert.contains("Errors ("),
        "the detector must see a malformed frame: {expert}"
    );
}
