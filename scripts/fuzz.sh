#!/usr/bin/env bash
# Runs one cargo-fuzz target for a number of seconds on the stable toolchain.
#
#   scripts/fuzz.sh TARGET SECONDS      TARGET: message_parser | message_split | uri_parser |
#                                               stun_decode | digest_parser | sdp_parser |
#                                               sdp_negotiation | endpoint_stream
#
# scripts/fuzz_all.sh SECONDS runs every target in turn.
#
# `-s none` (no sanitizer) is what works on stable Rust; the targets check their own
# invariants with assertions. The corpus grows in fuzz/corpus/TARGET (git-ignored); crashes
# land in fuzz/artifacts/TARGET. The RFC test vectors and fuzz/seeds seed the corpus.
# Prints libFuzzer's final stats (exec count: "stat::number_of_executed_units").
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
target="${1:?usage: scripts/fuzz.sh TARGET SECONDS}"
secs="${2:?usage: scripts/fuzz.sh TARGET SECONDS}"
case "$target" in
  message_parser|message_split|uri_parser|stun_decode|digest_parser|sdp_parser|sdp_negotiation|endpoint_stream) ;;
  *) echo "unknown target $target (message_parser, message_split, uri_parser, stun_decode, digest_parser, sdp_parser, sdp_negotiation, endpoint_stream)" >&2; exit 2 ;;
esac
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz

cd "$root/fuzz"
mkdir -p "corpus/$target" "seeds/$target"
# Seeds for the message targets: the RFC vectors, with the target's prefix bytes.
case "$target" in
  message_parser)
    for f in "$root"/msrp-proto/tests/vectors/*.msrp; do
      { printf '\x00'; cat "$f"; } > "seeds/$target/$(basename "$f")"
    done ;;
  message_split)
    for f in "$root"/msrp-proto/tests/vectors/*.msrp; do
      { printf '\x00\x07\x1f\x02\xff\x40\x00\x03'; cat "$f"; } > "seeds/$target/$(basename "$f")"
    done ;;
  sdp_parser)
    cp "$root"/msrp-proto/tests/vectors/sdp/*.sdp "seeds/$target/" ;;
  sdp_negotiation)
    # First byte: configuration flags (address family, NAT, CEMA, max-size, relay).
    for f in "$root"/msrp-proto/tests/vectors/sdp/*.sdp; do
      for flags in '\x00' '\x02' '\x13'; do
        { printf "$flags"; cat "$f"; } > "seeds/$target/$(basename "$f")-$(printf "$flags" | od -An -tx1 | tr -d ' ')"
      done
    done ;;
  endpoint_stream)
    # accept, a binding SEND from the peer, time, the driver writes, a close.
    printf '\x00\x00\x03\x00\x00\x00\x00\x00\x04\x00\x00\x00\x05\x14\x06\x07\x00' > "seeds/$target/bind_then_close"
    printf '\x00\x01\x03\x00\x01\x02\x03\x04\x05\x06\x07\x05\xff\x05\xff' > "seeds/$target/foreign_then_timeout" ;;
esac
exec cargo fuzz run -s none "$target" "corpus/$target" "seeds/$target" -- \
  -max_total_time="$secs" -print_final_stats=1
