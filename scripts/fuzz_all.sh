#!/usr/bin/env bash
# Runs every fuzz target in turn for SECONDS each (scripts/fuzz.sh), one at a time (each
# takes a core), and prints a summary line per target: exec count and whether it crashed.
#
#   scripts/fuzz_all.sh SECONDS
#
# Crash inputs land in fuzz/artifacts/TARGET; the campaign for issue #9 is 1800 s per target.
set -uo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
secs="${1:?usage: scripts/fuzz_all.sh SECONDS}"
targets="message_parser message_split uri_parser stun_decode digest_parser sdp_parser sdp_negotiation endpoint_stream"
summary=""
status=0
for t in $targets; do
  log="$(mktemp)"
  if "$root/scripts/fuzz.sh" "$t" "$secs" >"$log" 2>&1; then
    result="ok"
  else
    result="FAILED (see fuzz/artifacts/$t)"
    status=1
  fi
  execs="$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)"
  summary+="$t: ${execs:-?} execs in ${secs} s, $result"$'\n'
  tail -n 30 "$log" | grep -E 'panicked|ERROR|SUMMARY|Test unit written' || true
  rm -f "$log"
done
printf '%s' "$summary"
exit $status
