//! Fault: the network path between two `msrp` processes is cut (`ip link set down` on the
//! router of a test network namespace topology) in the middle of a file transfer, and either
//! restored after 2 s or left down. The path is rate-limited (`tc tbf`, 8 Mbit/s) so the
//! transfer lasts seconds and the cut falls in its middle. Loss and delay on the same path:
//! `lossy_link.rs` (helpers shared in `common/path_faults.rs`).
//!
//! Short cut: TCP retransmits, the file arrives whole (same SHA-256), both exit 0.
//! Long cut: the sender is told (a `failed` event with status 408 and exit code 3 or 4) within
//! its --timeout, nothing is reported delivered, and the receiver never reports the file
//! complete. Both bounded in time; every process and namespace removed on drop.
//!
//! Needs root, iproute2 (`ip`, `tc`), iptables and ss; skipped otherwise (fails under CI=true).

#[path = "common/netns.rs"]
mod netns;
#[path = "common/path_faults.rs"]
mod path_faults;

use std::time::{Duration, Instant};

use netns::{Nat, Topology};
use path_faults::{finish, ip_rt, kind, router_links, shape, start_exchange, wait_sending};
use serde_json::Value;

const FILE_BYTES: usize = 4 * 1024 * 1024;

/// What one transfer gave.
struct Transfer {
    /// The sender's exit code.
    code: i32,
    /// The sender's events.
    sev: Vec<Value>,
    /// The receiver's events.
    rev: Vec<Value>,
    /// The receiver's exit code, `None` if it was still running (then killed on drop).
    rcode: Option<i32>,
    /// SHA-256 of the file sent.
    sha: String,
}

/// Runs one transfer with a cut of `cut` seconds (None: never restored) starting 1 s after
/// the sender started sending; `None` when the test is skipped.
fn transfer_with_cut(cut: Option<u64>, timeout: u64) -> Option<Transfer> {
    if !netns::prerequisites(&["tc"]) {
        return None;
    }
    let mut t = Topology::build(Nat::None);
    let links = router_links(&t);
    shape(&t, "8mbit");
    let x = start_exchange(&mut t, FILE_BYTES, &[], timeout);
    // Wait for the sender's `sending` event, then cut 1 s later.
    wait_sending(&mut t, &x, Duration::from_secs(20));
    std::thread::sleep(Duration::from_secs(1));
    for l in &links {
        ip_rt(&t, &["link", "set", l, "down"]);
    }
    if let Some(secs) = cut {
        std::thread::sleep(Duration::from_secs(secs));
        for l in &links {
            ip_rt(&t, &["link", "set", l, "up"]);
        }
    }
    // Bounded: the sender's waits are at most --timeout each; then the receiver gets its own
    // bounded time to finish.
    let o = finish(
        &mut t,
        &x,
        Duration::from_secs(timeout * 3 + 45),
        Duration::from_secs(timeout + 10),
    );
    Some(Transfer {
        code: o.code,
        sev: o.sev,
        rev: o.rev,
        rcode: o.rcode,
        sha: x.file_sha,
    })
}

#[test]
fn short_link_cut_mid_transfer_recovers_and_the_file_arrives_whole() {
    let Some(Transfer {
        code,
        sev,
        rev,
        rcode,
        sha,
    }) = transfer_with_cut(Some(2), 15)
    else {
        return;
    };
    eprintln!("sender exit {code}, receiver {rcode:?}");
    assert_eq!(code, 0, "sender: {sev:?}");
    assert_eq!(rcode, Some(0), "receiver: {rev:?}");
    let got = kind(&rev, "message");
    assert_eq!(got.len(), 1, "{rev:?}");
    assert_eq!(got[0]["sha256"], sha.as_str());
    assert_eq!(got[0]["bytes"], FILE_BYTES as u64);
    assert_eq!(kind(&sev, "delivered").len(), 1, "{sev:?}");
    assert!(kind(&sev, "failed").is_empty(), "{sev:?}");
}

#[test]
fn link_cut_for_good_mid_transfer_fails_the_message_with_a_status_in_bounded_time() {
    let started = Instant::now();
    let Some(Transfer { code, sev, rev, .. }) = transfer_with_cut(None, 3) else {
        return;
    };
    eprintln!(
        "sender exit {code}, failed events: {:?}",
        kind(&sev, "failed")
    );
    assert!(code == 3 || code == 4, "exit {code}: {sev:?}");
    // Told, with a status; never reported delivered.
    let failed = kind(&sev, "failed");
    assert!(!failed.is_empty(), "{sev:?}");
    assert!(
        failed.iter().all(|f| f["status"].as_u64().is_some()),
        "{failed:?}"
    );
    assert!(kind(&sev, "delivered").is_empty(), "{sev:?}");
    // The receiver never got the file whole.
    assert!(kind(&rev, "message").is_empty(), "{rev:?}");
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "{:?}",
        started.elapsed()
    );
}
