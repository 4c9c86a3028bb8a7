#!/bin/sh
# Instructions per message for the send_200b benchmark (docs/performance.md), by
# valgrind --tool=callgrind: deterministic, unlike timings on a shared machine.
# Usage: scripts/count-send200.sh [N]   (default 2000 iterations)
set -eu
cd "$(dirname "$0")/.."
n=${1:-2000}
cargo build --quiet --release -p msrp-proto --example send_200b_count
bin=target/release/examples/send_200b_count
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
count() {
    valgrind --tool=callgrind --callgrind-out-file="$tmp/out" "$bin" "$1" "$2" 2>"$tmp/log"
    sed -n 's/^summary: //p' "$tmp/out"
}
for side in httparse msrp msrp_events msrp_owned; do
    base=$(count "$side" 0)
    full=$(count "$side" "$n")
    echo "$side: $(( (full - base) / n )) instructions per message"
done
