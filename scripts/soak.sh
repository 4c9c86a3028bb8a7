#!/usr/bin/env bash
# Soak test of `msrp relay` (issue 9, item 5; a script, not run in CI).
#
#   scripts/soak.sh [--sessions N] [--duration SECS] [--rate MSGS_PER_S] [--size BYTES]
#                   [--receivers-per-endpoint N] [--processes P] [--sample SECS]
#                   [--warmup SECS] [--capture SECS] [--expires SECS]
#                   [--rss-tolerance PERCENT] [--keep DIR]
#
# Defaults: 10000 sessions for 600 s at 1000 messages/s in total (each session sends one
# 512-byte message every 10 s), 100 receivers per receiving endpoint, 2 load processes.
#
# Topology (this machine allows 20,000 open files per process, and two authenticated ends per
# session would need 20,000 connections at the relay): each session's sender is an
# `MsrpEndpoint` of `msrp load` authenticated at the relay on its own connection with its own
# Use-Path (RFC 4976 §5.1); its receiver is not behind the relay: `--receivers-per-endpoint`
# receivers share one endpoint, which the relay reaches over one outbound connection (reused
# by authority). The relay holds sessions + sessions/N connections (10,100 by default). The
# sessions are split over several `msrp load` processes, since each sender endpoint takes two
# descriptors (its listener and its relay connection).
#
# What it does: a release build of msrp (cargo build --release -p msrp-cli), `msrp relay` on
# 127.0.0.1 (plain TCP, Use-Paths granted for --expires seconds so that every sender refreshes
# its AUTH during the run), the `msrp load` processes through it; every --sample seconds the
# relay's and the load processes' VmRSS and open descriptors go to a CSV; half-way through,
# tshark captures --capture seconds of the relay's traffic (both sides: the senders' port and
# the receiving endpoints' ports) and its MSRP dissector is asked for malformed frames
# (frames it flags only because it displays binary bodies as text are recognised by
# scripts/soak_malformed.py; any other fails the soak).
# At the end: a summary, and exit 1 if any message was lost, duplicated, corrupt or failed,
# any frame flagged without that explanation, or the relay's VmRSS after the warm-up grew by more than
# --rss-tolerance percent (default 10) from its first post-warm-up sample.
#
# Needs: cargo, python3, tshark (Debian package), ss (iproute2). Listens on 127.0.0.1 only;
# stops every process it started and removes its temp dir on exit (--keep DIR copies the CSV,
# logs and capture there first).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
SESSIONS=10000
DURATION=600
RATE=1000
SIZE=512
RPE=100
PROCS=
SAMPLE=10
WARMUP=
CAPTURE=10
EXPIRES=300
TOLERANCE=10
KEEP=
while [ $# -gt 0 ]; do
    case "$1" in
        --sessions) SESSIONS=$2; shift 2 ;;
        --duration) DURATION=$2; shift 2 ;;
        --rate) RATE=$2; shift 2 ;;
        --size) SIZE=$2; shift 2 ;;
        --receivers-per-endpoint) RPE=$2; shift 2 ;;
        --processes) PROCS=$2; shift 2 ;;
        --sample) SAMPLE=$2; shift 2 ;;
        --warmup) WARMUP=$2; shift 2 ;;
        --capture) CAPTURE=$2; shift 2 ;;
        --expires) EXPIRES=$2; shift 2 ;;
        --rss-tolerance) TOLERANCE=$2; shift 2 ;;
        --keep) KEEP=$2; shift 2 ;;
        -h|--help) sed -n '2,35p' "$0"; exit 0 ;;
        *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
done
[ -n "$PROCS" ] || PROCS=$(( (SESSIONS + 4999) / 5000 ))
# Warm-up: the first minute (or a sixth of a short run) is not judged for growth.
[ -n "$WARMUP" ] || WARMUP=$(( DURATION / 6 < 60 ? DURATION / 6 : 60 ))

command -v tshark > /dev/null || { echo "tshark is not installed (apt-get install tshark)" >&2; exit 1; }
command -v ss > /dev/null || { echo "ss is not installed (apt-get install iproute2)" >&2; exit 1; }

# Descriptors: the relay needs one per sender, one per receiving endpoint, and a few more;
# each load process two per sender (listener, relay connection) and two per receiving
# endpoint (listener, the relay's connection), and a few more.
PER_PROC=$(( (SESSIONS + PROCS - 1) / PROCS ))
RECV_EPS=$(( (PER_PROC + RPE - 1) / RPE * PROCS ))
NEED_RELAY=$(( SESSIONS + RECV_EPS + 256 ))
NEED_LOAD=$(( 2 * PER_PROC + 2 * RECV_EPS / PROCS + 256 ))
HARD=$(ulimit -Hn)
echo "open files: relay needs ~$NEED_RELAY, each of $PROCS load process(es) ~$NEED_LOAD; hard limit $HARD (soft $(ulimit -Sn))"
if [ "$HARD" != unlimited ] && { [ "$NEED_RELAY" -gt "$HARD" ] || [ "$NEED_LOAD" -gt "$HARD" ]; }; then
    echo "the hard limit of open files ($HARD) is too low: raise it (ulimit -Hn, needs CAP_SYS_RESOURCE)," >&2
    echo "use more --processes, more --receivers-per-endpoint, or fewer --sessions" >&2
    exit 1
fi
ulimit -n "$HARD"

(cd "$ROOT" && cargo build --release -p msrp-cli)
MSRP=$ROOT/target/release/msrp
COMMIT=$(git -C "$ROOT" rev-parse --short HEAD)

WORK=$(mktemp -d /tmp/msrp-soak.XXXXXX)
RELAY_PID=
LOAD_PIDS=()
SAMPLER_PID=
TSHARK_PID=
cleanup() {
    local rc=$?
    for p in "${LOAD_PIDS[@]}" $RELAY_PID $SAMPLER_PID $TSHARK_PID; do
        kill "$p" 2>/dev/null || true
    done
    wait 2>/dev/null || true
    if [ -n "$KEEP" ]; then
        mkdir -p "$KEEP"
        cp -r "$WORK"/. "$KEEP"/ 2>/dev/null || true
        echo "kept the CSV, logs and capture in $KEEP"
    fi
    rm -rf "$WORK"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

REALM=soak.test
PASSWORD=soak-secret
printf '%s\n' "$PASSWORD" | "$MSRP" relay hash-password --user soak --realm "$REALM" > "$WORK/users"
RUST_LOG=msrp=info NO_COLOR=1 "$MSRP" relay --listen 127.0.0.1:0 --host 127.0.0.1 \
    --realm "$REALM" --users "$WORK/users" --max-connections-per-address "$((SESSIONS + 1000))" \
    --default-expires "$EXPIRES" --min-expires 60 --json \
    > "$WORK/relay.out" 2> "$WORK/relay.log" &
RELAY_PID=$!
for _ in $(seq 100); do
    grep -q '"listening"' "$WORK/relay.out" 2>/dev/null && break
    sleep 0.1
done
RELAY_ADDR=$(python3 -c 'import json,sys; print(json.loads(open(sys.argv[1]).readline())["tcp"])' "$WORK/relay.out")
RELAY_PORT=${RELAY_ADDR##*:}
rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }
fds() { ls "/proc/$1/fd" 2>/dev/null | wc -l; }
RSS_IDLE=$(rss_kib "$RELAY_PID")
START=$(date -u +%Y-%m-%dT%H:%M:%SZ)
echo "$START: msrp relay pid $RELAY_PID on $RELAY_ADDR (commit $COMMIT), VmRSS $RSS_IDLE KiB idle;" \
    "load $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores"

# The load processes: sessions and rate split evenly.
for i in $(seq 0 $((PROCS - 1))); do
    n=$(( SESSIONS / PROCS + (i < SESSIONS % PROCS ? 1 : 0) ))
    r=$(python3 -c "print($RATE * $n / $SESSIONS)")
    "$MSRP" load --relay "msrp://$RELAY_ADDR;tcp" --relay-user soak --relay-password "$PASSWORD" \
        --sessions "$n" --receivers-per-endpoint "$RPE" --rate "$r" --size "$SIZE" \
        --duration "$DURATION" --timeout 30 --drain-timeout 30 --progress "$SAMPLE" --json \
        > "$WORK/load$i.out" 2> "$WORK/load$i.err" &
    LOAD_PIDS+=($!)
done
echo "started ${#LOAD_PIDS[@]} msrp load process(es): ${LOAD_PIDS[*]}; setting up $SESSIONS sessions"

# Sampler: time since start, relay VmRSS and descriptors, each load process's VmRSS, the
# messages received so far (the latest progress events).
CSV=$WORK/rss.csv
(
    hdr="t_s,relay_rss_kib,relay_fds"
    for i in $(seq 0 $((PROCS - 1))); do hdr="$hdr,load${i}_rss_kib"; done
    echo "$hdr,received,ready" > "$CSV"
    t0=$(date +%s)
    while kill -0 "$RELAY_PID" 2>/dev/null; do
        line="$(( $(date +%s) - t0 )),$(rss_kib "$RELAY_PID"),$(fds "$RELAY_PID")"
        rx=0 ready=0
        for i in $(seq 0 $((PROCS - 1))); do
            line="$line,$(rss_kib "${LOAD_PIDS[$i]}")"
            grep -q '"event":"ready"' "$WORK/load$i.out" 2>/dev/null && ready=$((ready + 1))
            last=$(grep '"event":"progress"' "$WORK/load$i.out" 2>/dev/null | tail -1 || true)
            if [ -n "$last" ]; then
                rx=$((rx + $(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["received"])' "$last")))
            fi
        done
        echo "$line,$rx,$ready" >> "$CSV"
        sleep "$SAMPLE"
    done
) &
SAMPLER_PID=$!

# Wait for every load process to be ready (bounded: 30 min), then half the run.
for i in $(seq 0 $((PROCS - 1))); do
    for _ in $(seq 18000); do
        grep -q '"event":"ready"' "$WORK/load$i.out" 2>/dev/null && break
        kill -0 "${LOAD_PIDS[$i]}" 2>/dev/null || { echo "msrp load $i exited during setup:" >&2; tail -5 "$WORK/load$i.err" >&2; exit 1; }
        sleep 0.1
    done
done
READY_AT=$(date +%s)
echo "$(date -u +%H:%M:%S): all sessions ready ($(grep -h '"event":"ready"' "$WORK"/load*.out | python3 -c 'import json,sys; print(", ".join("%d sessions in %.1f s" % (e["sessions"], e["setup_s"]) for e in map(json.loads, sys.stdin)))')); relay VmRSS $(rss_kib "$RELAY_PID") KiB, $(fds "$RELAY_PID") descriptors"

sleep $(( DURATION / 2 ))
# The receiving endpoints' ports: the peers of the relay's outbound connections.
# (`ss ... state established` prints Recv-Q Send-Q Local Peer Process.)
PORTS=$(ss -Htnp state established 2>/dev/null | awk -v pid="pid=$RELAY_PID," -v rp="$RELAY_PORT" \
    'index($0, pid) { n = split($3, l, ":"); m = split($4, a, ":"); if (l[n] != rp) print a[m] }' | sort -un)
FILTER="tcp port $RELAY_PORT"
DECODE=(-d "tcp.port==$RELAY_PORT,msrp")
for p in $PORTS; do FILTER="$FILTER or tcp port $p"; DECODE+=(-d "tcp.port==$p,msrp"); done
echo "$(date -u +%H:%M:%S): capturing ${CAPTURE} s of the relay's traffic (port $RELAY_PORT and $(echo "$PORTS" | wc -w) receiving endpoints)"
tshark -i lo -q -f "$FILTER" -a "duration:$CAPTURE" -w "$WORK/sample.pcapng" > "$WORK/tshark.log" 2>&1 &
TSHARK_PID=$!
wait "$TSHARK_PID" || true
TSHARK_PID=

for i in $(seq 0 $((PROCS - 1))); do
    wait "${LOAD_PIDS[$i]}" && echo "msrp load $i: exit 0" || echo "msrp load $i: exit $?"
done
LOAD_PIDS=()
sleep 1
RSS_END=$(rss_kib "$RELAY_PID")
FDS_END=$(fds "$RELAY_PID")
kill "$SAMPLER_PID" 2>/dev/null || true
wait "$SAMPLER_PID" 2>/dev/null || true
SAMPLER_PID=
echo "$(date -u +%H:%M:%S): load finished; relay VmRSS $RSS_END KiB, $FDS_END descriptors after the sessions closed"

# The dissector's verdict on the sample (both directions, every connection in the capture).
FRAMES=$(tshark -r "$WORK/sample.pcapng" "${DECODE[@]}" -Y 'tcp.len > 0' 2>/dev/null | wc -l)
MSRP_FRAMES=$(tshark -r "$WORK/sample.pcapng" "${DECODE[@]}" -Y msrp 2>/dev/null | wc -l)
MSRP_SENDS=$(tshark -r "$WORK/sample.pcapng" "${DECODE[@]}" -T fields -e msrp.method -Y 'msrp.method' 2>/dev/null | tr ',' '\n' | grep -c SEND || true)
MSRP_200=$(tshark -r "$WORK/sample.pcapng" "${DECODE[@]}" -T fields -e msrp.status.code -Y 'msrp.status.code' 2>/dev/null | tr ',' '\n' | grep -c '^200$' || true)
# Frames flagged malformed (or with an error-level expert item), and which of them are the
# dissector's known trouble with binary bodies (scripts/soak_malformed.py explains how).
python3 "$ROOT/scripts/soak_malformed.py" "$WORK/sample.pcapng" "$RELAY_PORT" $PORTS > "$WORK/malformed.json"
tshark -r "$WORK/sample.pcapng" "${DECODE[@]}" -q -z expert 2> /dev/null > "$WORK/expert.txt" || true

python3 - "$CSV" "$WORK" "$PROCS" "$SESSIONS" "$READY_AT" "$WARMUP" "$TOLERANCE" \
    "$FRAMES" "$MSRP_FRAMES" "$MSRP_SENDS" "$MSRP_200" "$WORK/malformed.json" \
    "$RSS_IDLE" "$RSS_END" <<'EOF'
import csv, json, re, sys, os, time
(path, work, procs, sessions, ready_at, warmup, tol, frames, msrp_frames, sends, oks,
 malformed_json, rss_idle, rss_end) = sys.argv[1:]
procs, sessions, warmup, tol = int(procs), int(sessions), int(warmup), float(tol)
mal = json.load(open(malformed_json))
rows = list(csv.DictReader(open(path)))
results = []
for i in range(procs):
    ev = [json.loads(l) for l in open(os.path.join(work, f"load{i}.out")) if l.startswith("{")]
    r = [e for e in ev if e.get("event") == "result"]
    results.append(r[-1] if r else None)
missing = [i for i, r in enumerate(results) if r is None]
tot = {k: sum(r[k] for r in results if r) for k in
       ("sessions", "sent", "acked", "received", "lost", "duplicated", "corrupt", "failed", "aborted")}
log = open(os.path.join(work, "relay.log"), errors="replace").read()
auth_conns = set(re.findall(r"authenticated conn=(\S+)", log))
auths = len(re.findall(r"\bauthenticated\b", log))
auth_failed = log.count("AUTH failed")
# 401 stale=true for an Authorization with an expired nonce (RFC 2617 §3.2.1): the client
# retries with the new nonce; a refresh after the nonce lifetime (300 s) always gets one.
auth_stale = len(re.findall(r"AUTH failed .*reason=stale nonce", log))
rejected = len(re.findall(r"\brejected\b", log))
fail_reports = log.count("failure REPORT sent")
panics = log.count("panicked")
# RSS after the warm-up (samples taken once every load process was ready + warmup seconds,
# while the load ran: the sampler's ready column counts ready processes).
t_ready = None
for row in rows:
    if int(row["ready"]) == procs:
        t_ready = int(row["t_s"]); break
run = [r for r in rows if t_ready is not None and int(r["t_s"]) >= t_ready + warmup
       and int(r["relay_fds"]) > sessions // 2]
rss = [int(r["relay_rss_kib"]) for r in run]
ok = True
print("\n==== soak summary ====")
print(f"sessions: {tot['sessions']} in {procs} load process(es) ({'missing results from ' + str(missing) if missing else 'all reported'});"
      f" relay AUTHs {auths} on {len(auth_conns)} connections (refreshes included), AUTH failures"
      f" {auth_failed - auth_stale} (plus {auth_stale} 401 stale nonce, retried)")
print(f"messages: sent {tot['sent']}, acked {tot['acked']}, received {tot['received']}, lost {tot['lost']},"
      f" duplicated {tot['duplicated']}, corrupt {tot['corrupt']}, failed {tot['failed']}, aborted {tot['aborted']}")
lat = [r["delivery_latency_ms"] for r in results if r]
if lat:
    print("delivery latency ms (per process): " + "; ".join(
        f"p50 {l['p50']} p99 {l['p99']} max {l['max']}" for l in lat))
print(f"relay log: rejected {rejected}, failure REPORTs {fail_reports}, panics {panics}")
if missing or tot["lost"] or tot["duplicated"] or tot["corrupt"] or tot["failed"] or tot["aborted"] \
        or tot["sent"] == 0 or tot["sessions"] != sessions or panics or rejected \
        or auth_failed > auth_stale:
    ok = False
if rss:
    first, lo, hi, last = rss[0], min(rss), max(rss), rss[-1]
    n = len(rss)
    ts = [int(r["t_s"]) for r in run]
    mt, mr = sum(ts) / n, sum(rss) / n
    var = sum((t - mt) ** 2 for t in ts)
    slope = sum((t - mt) * (v - mr) for t, v in zip(ts, rss)) / var * 60 if var else 0.0
    growth = (hi - first) / first * 100
    print(f"relay VmRSS KiB: idle {rss_idle}; after {warmup} s warm-up ({n} samples every"
          f" {rows[1]['t_s'] if len(rows) > 1 else '?'} s): first {first}, min {lo}, max {hi}, last {last};"
          f" growth last-first {last - first:+d} KiB ({(last - first) / first * 100:+.2f} %), max-first"
          f" {growth:+.2f} % (tolerance {tol} %); trend {slope:+.1f} KiB/min; after the sessions closed {rss_end}")
    for i in range(procs):
        lr = [int(r[f"load{i}_rss_kib"]) for r in run]
        print(f"msrp load {i} VmRSS KiB: first {lr[0]}, min {min(lr)}, max {max(lr)}, last {lr[-1]}")
    if growth > tol:
        ok = False
else:
    print("relay VmRSS: no samples after the warm-up"); ok = False
print(f"capture: {frames} TCP segments with payload, {msrp_frames} dissected as MSRP"
      f" ({sends} SEND and {oks} 200 messages); flagged malformed {mal['flagged']}: explained"
      f" (dissector vs binary body, see scripts/soak_malformed.py) {mal['explained']},"
      f" unexplained {mal['unexplained_count']} {mal['unexplained'][:10]}")
if mal["unexplained_count"] or int(msrp_frames) == 0:
    ok = False
print("verdict:", "PASS" if ok else "FAIL")
sys.exit(0 if ok else 1)
EOF
