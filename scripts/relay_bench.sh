#!/usr/bin/env bash
# Relay benchmark (not run in CI): `msrp relay` against Kamailio 5.6 (msrp module) in the same
# run, both on loopback, both driven by `msrp load` with the same flags.
#
#   scripts/relay_bench.sh [--repeat N] [--duration SECS] [--idle N] [--skip-idle]
#
# For each repetition, alternating the two relays:
#   small  1 KiB SENDs (one chunk each), 4 sessions, 32 messages in flight per session
#   large  1 MiB messages in 8 KiB chunks (Kamailio refuses frames of ~11 KiB and more; the
#          same chunk size is used through both relays), 2 sessions, 2 in flight per session
# and reports messages/s (from msrp load's result) and the relay's CPU time per message:
# utime+stime from /proc/PID/stat before and after the run (msrp relay: its one process, all
# threads; Kamailio: every process of its process group).
# Then, with a fresh `msrp relay`, N (default 10000) connections authenticated by
# `msrp load --idle N` and held idle: the relay's resident memory (VmRSS) before and while
# they are held, and the growth per session.
#
# Needs: a release build of msrp (built if missing: cargo build --release -p msrp-cli),
# kamailio (Debian package; /usr/sbin), python3. Everything listens on 127.0.0.1 only; every
# process started is stopped on exit. The machine is shared: figures are noisy, repeat.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
REPEAT=3
DURATION=8
IDLE=10000
SKIP_IDLE=0
while [ $# -gt 0 ]; do
    case "$1" in
        --repeat) REPEAT=$2; shift 2 ;;
        --duration) DURATION=$2; shift 2 ;;
        --idle) IDLE=$2; shift 2 ;;
        --skip-idle) SKIP_IDLE=1; shift ;;
        -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
        *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
done

MSRP=${MSRP:-$ROOT/target/release/msrp}
if [ ! -x "$MSRP" ]; then
    (cd "$ROOT" && cargo build --release -p msrp-cli)
fi
KAM=$(command -v kamailio || true)
[ -n "$KAM" ] || KAM=/usr/sbin/kamailio
[ -x "$KAM" ] || { echo "kamailio is not installed (apt-get install kamailio)" >&2; exit 1; }
CFG=$ROOT/msrp/tests/kamailio/msrp-relay.cfg
REALM=msrp-relay.test   # the cfg's default realm
PASSWORD=msrp-secret    # the cfg accepts this password for any user
HZ=$(getconf CLK_TCK)

# 10,000 connections at the relay and as many in msrp load: raise the descriptor limit.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

WORK=$(mktemp -d /tmp/msrp-relay-bench.XXXXXX)
RELAY_PID=
KAM_PID=
LOAD_PID=
cleanup() {
    [ -n "$LOAD_PID" ] && kill "$LOAD_PID" 2>/dev/null || true
    [ -n "$RELAY_PID" ] && kill "$RELAY_PID" 2>/dev/null || true
    if [ -n "$KAM_PID" ]; then
        kill -TERM -- "-$KAM_PID" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$KAM_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL -- "-$KAM_PID" 2>/dev/null || true
    fi
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# utime+stime (clock ticks) of one process (all its threads).
ticks_pid() {
    awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"
}
# utime+stime of every live process in process group $1 (Kamailio forks workers).
ticks_group() {
    local pg=$1 sum=0 f line
    for f in /proc/[0-9]*/stat; do
        line=$(cat "$f" 2>/dev/null) || continue
        line=${line##*) }
        # shellcheck disable=SC2086
        set -- $line
        if [ "$3" = "$pg" ]; then sum=$((sum + ${12} + ${13})); fi
    done
    echo "$sum"
}
rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }

start_msrp_relay() {
    printf '%s\n' "$PASSWORD" | "$MSRP" relay hash-password --user bench --realm "$REALM" > "$WORK/users"
    "$MSRP" relay --listen 127.0.0.1:0 --host 127.0.0.1 --realm "$REALM" \
        --users "$WORK/users" --max-connections-per-address 20000 --json \
        > "$WORK/relay.out" 2> "$WORK/relay.err" &
    RELAY_PID=$!
    for _ in $(seq 100); do
        grep -q '"listening"' "$WORK/relay.out" 2>/dev/null && break
        sleep 0.1
    done
    RELAY_ADDR=$(python3 -c 'import json,sys; print(json.loads(open(sys.argv[1]).readline())["tcp"])' "$WORK/relay.out")
}
stop_msrp_relay() {
    kill "$RELAY_PID" 2>/dev/null || true
    wait "$RELAY_PID" 2>/dev/null || true
    RELAY_PID=
}

start_kamailio() {
    KAM_PORT=$(free_port)
    mkdir -p "$WORK/kam"
    # The test configuration, with TCP write queues large enough for a benchmark: with 32 KiB
    # (Kamailio's default) or the cfg's 1 MiB per connection, msrp_relay() can fail under load
    # and the cfg answers 408.
    sed -e '/^tcp_conn_wq_max=/d' -e '/^tcp_wq_max=/d' \
        -e 's/^tcp_max_connections=.*/tcp_max_connections=20000\
tcp_conn_wq_max=8388608\
tcp_wq_max=268435456/' "$CFG" > "$WORK/kam/bench.cfg"
    grep -q '^tcp_conn_wq_max=8388608' "$WORK/kam/bench.cfg" || { echo "cannot adapt $CFG" >&2; exit 1; }
    # setsid: own process group, so its workers can be counted and stopped together.
    setsid "$KAM" -f "$WORK/kam/bench.cfg" -DD -E -m 128 -M 16 -Y "$WORK/kam" \
        "--substdef=!MSRP_RUNDIR!$WORK/kam!g" -A "MSRP_TCP_PORT=$KAM_PORT" \
        > "$WORK/kam/log" 2>&1 &
    KAM_PID=$!
    for _ in $(seq 200); do
        if grep -q 'io_listen_loop(' "$WORK/kam/log" 2>/dev/null \
            && (exec 3<>"/dev/tcp/127.0.0.1/$KAM_PORT") 2>/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    echo "kamailio did not start:" >&2; tail -20 "$WORK/kam/log" >&2; exit 1
}

relay_ticks() {
    case "$1" in
        msrp) ticks_pid "$RELAY_PID" ;;
        kamailio) ticks_group "$KAM_PID" ;;
    esac
}

RESULTS=$WORK/results.tsv
# run_load RELAY SCENARIO -- msrp load flags...
run_load() {
    local relay=$1 scenario=$2 uri t0 t1 out rc
    shift 3
    case "$relay" in
        msrp) uri="msrp://$RELAY_ADDR;tcp" ;;
        kamailio) uri="msrp://127.0.0.1:$KAM_PORT;tcp" ;;
    esac
    out=$WORK/load-$relay-$scenario.json
    t0=$(relay_ticks "$relay")
    rc=0
    "$MSRP" load --relay "$uri" --relay-user bench --relay-password "$PASSWORD" \
        --json "$@" > "$out" 2> "$WORK/load.err" || rc=$?
    if [ "$rc" != 0 ]; then
        echo "msrp load through $relay ($scenario) exited $rc: $(cat "$WORK/load.err")" >&2
    fi
    t1=$(relay_ticks "$relay")
    python3 - "$out" "$relay" "$scenario" "$((t1 - t0))" "$HZ" >> "$RESULTS" <<'EOF'
import json, sys
path, relay, scenario, ticks, hz = sys.argv[1:]
r = [json.loads(l) for l in open(path) if '"result"' in l][-1]
cpu = int(ticks) / int(hz)
n = r["received"]
print("\t".join(str(x) for x in [relay, scenario, n, r["lost"], r["msgs_per_s"], r["mb_per_s"],
    round(cpu, 2), round(cpu / n * 1e6, 1) if n else "nan",
    r["delivery_latency_ms"]["p50"], r["delivery_latency_ms"]["p99"]]))
EOF
    tail -1 "$RESULTS"
}

echo "msrp relay vs Kamailio, $REPEAT repetition(s) of ${DURATION}s per scenario; load $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores"
printf 'relay\tscenario\tmessages\tlost\tmsgs_per_s\tMB_per_s\tcpu_s\tcpu_us_per_msg\tp50_ms\tp99_ms\n' | tee "$RESULTS"
start_msrp_relay
start_kamailio
SMALL=(--size 1024 --chunk-size 8192 --sessions 4 --window 32 --duration "$DURATION")
LARGE=(--size 1048576 --chunk-size 8192 --sessions 2 --window 2 --duration "$DURATION" --drain-timeout 30)
for i in $(seq "$REPEAT"); do
    if [ $((i % 2)) -eq 1 ]; then order="msrp kamailio"; else order="kamailio msrp"; fi
    for relay in $order; do run_load "$relay" small -- "${SMALL[@]}"; done
    for relay in $order; do run_load "$relay" large -- "${LARGE[@]}"; done
done

python3 - "$RESULTS" <<'EOF'
import sys, statistics as st
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1])][1:]
print("\nsummary (min .. median .. max over repetitions)")
for sc in ("small", "large"):
    got = {}
    for relay in ("msrp", "kamailio"):
        rs = [r for r in rows if r[0] == relay and r[1] == sc]
        rate = sorted(float(r[4]) for r in rs)
        cpu = sorted(float(r[7]) for r in rs if r[7] != "nan")
        lost = sum(int(r[3]) for r in rs)
        got[relay] = (rate, cpu)
        if rate:
            print(f"  {sc:5} {relay:8} msgs/s {rate[0]:.1f} .. {st.median(rate):.1f} .. {rate[-1]:.1f}"
                  f"   relay CPU us/msg {cpu[0]:.1f} .. {st.median(cpu):.1f} .. {cpu[-1]:.1f}   lost {lost}")
    m, k = got.get("msrp"), got.get("kamailio")
    if m and k and m[0] and k[0]:
        ratios = sorted(a / b for a, b in zip(
            [float(r[4]) for r in rows if r[0] == "msrp" and r[1] == sc],
            [float(r[4]) for r in rows if r[0] == "kamailio" and r[1] == sc]) if b > 0)
        cpur = sorted(b / a for a, b in zip(
            [float(r[7]) for r in rows if r[0] == "msrp" and r[1] == sc],
            [float(r[7]) for r in rows if r[0] == "kamailio" and r[1] == sc]) if a > 0)
        if ratios:
            print(f"  {sc:5} msrp/kamailio msgs/s ratio per repetition: {', '.join(f'{x:.2f}' for x in ratios)}")
        if cpur:
            print(f"  {sc:5} kamailio/msrp CPU per message ratio:      {', '.join(f'{x:.2f}' for x in cpur)}")
EOF

if [ "$SKIP_IDLE" = 1 ]; then exit 0; fi
# Idle sessions: a fresh msrp relay, its RSS before and with IDLE authenticated connections.
stop_msrp_relay
start_msrp_relay
sleep 0.5
RSS0=$(rss_kib "$RELAY_PID")
"$MSRP" load --idle "$IDLE" --relay "msrp://$RELAY_ADDR;tcp" --relay-user bench \
    --relay-password "$PASSWORD" --timeout 30 --json > "$WORK/idle.out" 2> "$WORK/idle.err" &
LOAD_PID=$!
for _ in $(seq 1200); do
    grep -q idle_ready "$WORK/idle.out" 2>/dev/null && break
    kill -0 "$LOAD_PID" 2>/dev/null || break
    sleep 0.1
done
sleep 1
RSS1=$(rss_kib "$RELAY_PID")
FDS=$(ls "/proc/$RELAY_PID/fd" | wc -l)
kill -TERM "$LOAD_PID" 2>/dev/null || true
wait "$LOAD_PID" 2>/dev/null || true
LOAD_PID=
echo
cat "$WORK/idle.out"
python3 - "$RSS0" "$RSS1" "$IDLE" "$FDS" "$WORK/idle.out" <<'EOF'
import json, sys
rss0, rss1, n, fds, path = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
ready = [json.loads(l) for l in open(path) if "idle_ready" in l]
auth = ready[0]["authenticated"] if ready else 0
print(f"idle: {auth} of {n} connections authenticated; relay open fds {fds}; "
      f"VmRSS {rss0} KiB -> {rss1} KiB: {(rss1 - rss0) / max(auth, 1):.2f} KiB per session")
EOF
