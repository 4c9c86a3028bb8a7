//! Free loopback ports for tests that hand a port to a process which binds it later.
//!
//! The kernel's choice for port 0 comes from the ephemeral range
//! (`net.ipv4.ip_local_port_range`, 32768-60999 by default), the range every outgoing
//! connection takes its source port from. With many tests running at once (and thousands of
//! connections in the relay and soak tests), a port picked that way could be taken by an
//! outgoing connection before the process under test binds it ("Address already in use").
//! So we pick below the ephemeral range, from a per-process pseudo-random start, and check
//! that the port binds; only if the ephemeral range starts too low to leave room do we fall
//! back to the kernel's choice.

use std::net::TcpListener;
use std::sync::atomic::{AtomicU32, Ordering};

/// Lowest port we hand out.
const LOWEST: u32 = 10_000;

/// First port of the kernel's ephemeral range (32768 when it cannot be read).
fn ephemeral_start() -> u32 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|p| p.parse().ok()))
        .unwrap_or(32_768)
}

/// A loopback TCP port that was free a moment ago and is outside the ephemeral range.
#[allow(dead_code)]
pub fn free_port() -> u16 {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let start = ephemeral_start();
    if start < LOWEST + 1_000 {
        return kernel_choice();
    }
    let span = start - LOWEST;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let seed = std::process::id().wrapping_mul(2_654_435_761) ^ nanos;
    for _ in 0..span.min(5_000) {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = LOWEST + seed.wrapping_add(n.wrapping_mul(7_919)) % span;
        if TcpListener::bind(("127.0.0.1", port as u16)).is_ok() {
            return port as u16;
        }
    }
    kernel_choice()
}

fn kernel_choice() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind an ephemeral loopback port")
        .port()
}
