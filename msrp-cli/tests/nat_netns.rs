//! `msrp nat-check` through a real NAT: each test builds its own network namespaces
//!
//! ```text
//!   [in] 192.0.2.10 --veth-- 192.0.2.1 [rt] 203.0.113.1 --veth-- 203.0.113.2, .3 [out]
//!                                     iptables NAT                coturn (RFC 5780)
//! ```
//!
//! The router does either Linux MASQUERADE (a NAPT: endpoint-independent mapping as Linux
//! keeps the source port, address-and-port-dependent filtering by conntrack) or a one-to-one
//! NAT (SNAT + DNAT of the whole address: endpoint-independent mapping and filtering). The
//! inside UA runs `msrp nat-check` with `ip netns exec`; coturn runs outside on two
//! addresses. Needs root, iproute2, iptables and coturn: under `CI=true` a missing piece is a
//! failure, otherwise the test prints `skipped: ...`. Everything (processes, namespaces and
//! with them the veth pairs and NAT rules) is removed by a Drop guard, even on failure.

#[path = "common/netns.rs"]
mod netns;

use std::net::SocketAddr;
use std::process::Output;
use std::time::Duration;

use netns::{Nat, Side, Topology};

/// Runs `msrp nat-check args` inside, bounded to 60 s.
fn nat_check_inside(t: &mut Topology, args: &[&str]) -> Output {
    let mut v = vec!["nat-check"];
    v.extend_from_slice(args);
    t.run(
        Side::Inside,
        env!("CARGO_BIN_EXE_msrp"),
        &v,
        Duration::from_secs(60),
    )
}

fn prerequisites() -> bool {
    netns::prerequisites(&["turnserver"])
}

fn json(out: &Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "exit {:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("one JSON object")
}

fn mapped(j: &serde_json::Value) -> SocketAddr {
    j["mapped_address"].as_str().unwrap().parse().unwrap()
}

#[test]
fn masquerade_nat_is_detected_over_udp_and_offers_active() {
    if !prerequisites() {
        return;
    }
    let mut t = Topology::build(Nat::Masquerade);
    t.start_coturn();
    let out = nat_check_inside(
        &mut t,
        &[
            "--stun",
            "203.0.113.2:3478",
            "--local",
            "192.0.2.10:40000",
            "--rto-ms",
            "20",
            "--json",
        ],
    );
    let j = json(&out);
    // The server saw the NAT's public address, not the inside one.
    assert_eq!(mapped(&j).ip().to_string(), "203.0.113.1", "{j}");
    assert_eq!(j["behind_nat"], true, "{j}");
    assert_eq!(j["offer_setup"], "active", "{j}");
    // Linux MASQUERADE keeps the source port for every destination (endpoint-independent
    // mapping, RFC 5780 §4.3 test II), while conntrack lets in only replies from the exact
    // address and port contacted (address-and-port-dependent filtering, §4.4 test III).
    assert_eq!(j["mapping"], "endpoint-independent", "{j}");
    assert_eq!(j["filtering"], "address-and-port-dependent", "{j}");
}

#[test]
fn masquerade_nat_mapping_tests_over_tcp() {
    if !prerequisites() {
        return;
    }
    let mut t = Topology::build(Nat::Masquerade);
    t.start_coturn();
    let out = nat_check_inside(
        &mut t,
        &[
            "--stun",
            "203.0.113.2:3478",
            "--tcp",
            "--local",
            "192.0.2.10:40001",
            "--rto-ms",
            "200",
            "--json",
        ],
    );
    let j = json(&out);
    assert_eq!(mapped(&j).ip().to_string(), "203.0.113.1", "{j}");
    assert_eq!(j["behind_nat"], true, "{j}");
    // Mapping tests II/III ran over new TCP connections from the same local port.
    assert_eq!(j["mapping"], "endpoint-independent", "{j}");
    assert_eq!(j["filtering"], "unknown", "{j}");
    assert_eq!(j["offer_setup"], "active", "{j}");
}

#[test]
fn one_to_one_nat_is_endpoint_independent_and_offers_actpass() {
    if !prerequisites() {
        return;
    }
    let mut t = Topology::build(Nat::OneToOne);
    t.start_coturn();
    let out = nat_check_inside(
        &mut t,
        &[
            "--stun",
            "203.0.113.2:3478",
            "--local",
            "192.0.2.10:40002",
            "--rto-ms",
            "20",
            "--json",
        ],
    );
    let j = json(&out);
    assert_eq!(mapped(&j).to_string(), "203.0.113.1:40002", "{j}");
    assert_eq!(j["behind_nat"], true, "{j}");
    assert_eq!(j["mapping"], "endpoint-independent", "{j}");
    assert_eq!(j["filtering"], "endpoint-independent", "{j}");
    // RFC 6135 §4.2.2: reachable at the mapped address, so actpass.
    assert_eq!(j["offer_setup"], "actpass", "{j}");
}

#[test]
fn routed_without_nat_is_not_behind_nat() {
    if !prerequisites() {
        return;
    }
    // Same topology, plain routing: the server sees the inside address itself.
    let mut t = Topology::build(Nat::None);
    t.start_coturn();
    let out = nat_check_inside(
        &mut t,
        &[
            "--stun",
            "203.0.113.2:3478",
            "--local",
            "192.0.2.10:40003",
            "--rto-ms",
            "20",
            "--json",
        ],
    );
    let j = json(&out);
    assert_eq!(mapped(&j).to_string(), "192.0.2.10:40003", "{j}");
    assert_eq!(j["behind_nat"], false, "{j}");
    assert_eq!(j["filtering"], "endpoint-independent", "{j}");
    assert_eq!(j["offer_setup"], "actpass", "{j}");
}

#[test]
fn one_to_one_nat_over_tcp_with_udp_filtering_offers_actpass_with_tcp_mapping() {
    if !prerequisites() {
        return;
    }
    let mut t = Topology::build(Nat::OneToOne);
    t.start_coturn();
    let out = nat_check_inside(
        &mut t,
        &[
            "--stun",
            "203.0.113.2:3478",
            "--tcp",
            "--udp-filtering",
            "--local",
            "192.0.2.10:40004",
            "--rto-ms",
            "20",
            "--json",
        ],
    );
    let j = json(&out);
    // The TCP mapping of the listener port, which is what a=path needs.
    assert_eq!(mapped(&j).to_string(), "203.0.113.1:40004", "{j}");
    assert_eq!(j["mapping"], "endpoint-independent", "{j}");
    assert_eq!(j["filtering"], "endpoint-independent", "{j}");
    assert_eq!(j["offer_setup"], "actpass", "{j}");

    // And the MASQUERADE router gives active on the same path.
    let mut t = Topology::build(Nat::Masquerade);
    t.start_coturn();
    let out = nat_check_inside(
        &mut t,
        &[
            "--stun",
            "203.0.113.2:3478",
            "--tcp",
            "--udp-filtering",
            "--local",
            "192.0.2.10:40005",
            "--rto-ms",
            "20",
            "--json",
        ],
    );
    let j = json(&out);
    assert_eq!(mapped(&j).ip().to_string(), "203.0.113.1", "{j}");
    assert_eq!(j["filtering"], "address-and-port-dependent", "{j}");
    assert_eq!(j["offer_setup"], "active", "{j}");
}
