#!/usr/bin/env bash
# Relay benchmark (not run in CI): `msrp relay` against Kamailio 5.6 (msrp module) in the same
# run, both on loopback, both driven by `msrp load` with the same flags.
#
#   scripts/relay_bench.sh [--repeat N] [--duration SECS] [--relay-cpu FRACTION] [--idle N]
#                          [--skip-idle]
#
# --relay-cpu F (e.g. 0.2): equal-budget mode. Whichever relay runs is confined to a cgroup (v1
# cpu controller) allowed F of one core (cpu.cfs_quota_us = F * cpu.cfs_period_us, period
# 5 ms so the throttling is fine-grained); Kamailio with all its forked processes, `msrp relay`
# with all its threads. With F well below what `msrp load` can feed, the relay under test is
# the bottleneck and messages/s is its maximum rate at that budget. The script reports the
# budget used (relay CPU / (F * the time messages flowed), about 1.0 when saturated) and, per scenario, one
# extra run of `msrp relay` with the quota lifted: a higher rate there shows that the load
# generator had headroom. The cgroup is removed at exit. Without --relay-cpu, nothing is
# confined (the relays compete with `msrp load` for the machine's cores).
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
RELAY_CPU=
while [ $# -gt 0 ]; do
    case "$1" in
        --repeat) REPEAT=$2; shift 2 ;;
        --duration) DURATION=$2; shift 2 ;;
        --idle) IDLE=$2; shift 2 ;;
        --skip-idle) SKIP_IDLE=1; shift ;;
        --relay-cpu) RELAY_CPU=$2; shift 2 ;;
        -h|--help) sed -n '2,33p' "$0"; exit 0 ;;
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

# Equal-budget mode: one cgroup per relay under the cgroup v1 cpu controller (the quota) and,
# when mounted separately, cpuacct (nanosecond CPU accounting of every process in it).
CG_CPU=/sys/fs/cgroup/cpu
CG_ACCT=/sys/fs/cgroup/cpuacct
CG_NAME=msrp-relay-bench.$$
CG_PERIOD_US=
CG_QUOTA_US=
if [ -n "$RELAY_CPU" ]; then
    # Period 5 ms (longer only where the quota would fall below the kernel's 1 ms minimum):
    # short periods keep the relay's throttling fine-grained, so its queues never run dry
    # while it waits for the next period.
    read -r CG_PERIOD_US CG_QUOTA_US < <(python3 -c '
import math, sys
f = float(sys.argv[1])
assert 0 < f <= 64
period = max(5000, math.ceil(1000 / f))
print(period, round(f * period))' "$RELAY_CPU") \
        || { echo "--relay-cpu takes a fraction of one core, e.g. 0.2" >&2; exit 2; }
    [ -w "$CG_CPU/cgroup.procs" ] || { echo "--relay-cpu needs a writable cgroup v1 cpu controller at $CG_CPU" >&2; exit 1; }
fi

# 10,000 connections at the relay and as many in msrp load: raise the descriptor limit.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

WORK=$(mktemp -d /tmp/msrp-relay-bench.XXXXXX)
RELAY_PID=
KAM_PID=
LOAD_PID=
remove_cgroups() {
    local d r
    for d in "$CG_CPU" "$CG_ACCT"; do
        [ -d "$d/$CG_NAME" ] || continue
        for r in msrp kamailio; do
            [ -d "$d/$CG_NAME/$r" ] || continue
            for _ in $(seq 50); do rmdir "$d/$CG_NAME/$r" 2>/dev/null && break; sleep 0.1; done
        done
        rmdir "$d/$CG_NAME" 2>/dev/null || echo "could not remove cgroup $d/$CG_NAME" >&2
    done
}
cleanup() {
    [ -n "$LOAD_PID" ] && kill "$LOAD_PID" 2>/dev/null || true
    [ -n "$RELAY_PID" ] && kill "$RELAY_PID" 2>/dev/null || true
    if [ -n "$KAM_PID" ]; then
        kill -TERM -- "-$KAM_PID" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$KAM_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL -- "-$KAM_PID" 2>/dev/null || true
    fi
    wait 2>/dev/null || true
    remove_cgroups
    rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

HAVE_ACCT=0
if [ -n "$RELAY_CPU" ]; then
    for r in msrp kamailio; do
        mkdir -p "$CG_CPU/$CG_NAME/$r"
        echo "$CG_PERIOD_US" > "$CG_CPU/$CG_NAME/$r/cpu.cfs_period_us"
        echo "$CG_QUOTA_US" > "$CG_CPU/$CG_NAME/$r/cpu.cfs_quota_us"
    done
    # cpuacct mounted on its own hierarchy (not co-mounted with cpu): a group there too.
    if [ -w "$CG_ACCT/cgroup.procs" ] && [ "$(readlink -f "$CG_ACCT")" != "$(readlink -f "$CG_CPU")" ] \
        && mkdir -p "$CG_ACCT/$CG_NAME/msrp" "$CG_ACCT/$CG_NAME/kamailio" 2>/dev/null; then
        HAVE_ACCT=1
    fi
fi
# Sets CG_EXEC to a command prefix that moves itself into relay $1's cgroups, then execs the
# rest (the relay inherits them: all Kamailio's children, all `msrp relay`'s threads).
CG_EXEC=()
cg_prefix() {
    CG_EXEC=()
    [ -n "$RELAY_CPU" ] || return 0
    local acct=/dev/null
    [ "$HAVE_ACCT" = 1 ] && acct=$CG_ACCT/$CG_NAME/$1/cgroup.procs
    # shellcheck disable=SC2016
    CG_EXEC=(bash -c 'echo $$ > "$1" && { [ "$2" = /dev/null ] || echo $$ > "$2"; } && shift 2 && exec "$@"'
        cg "$CG_CPU/$CG_NAME/$1/cgroup.procs" "$acct")
}
# Lifts (-1) or restores the quota of relay $1's cgroup.
cg_quota() {
    [ -n "$RELAY_CPU" ] && echo "$2" > "$CG_CPU/$CG_NAME/$1/cpu.cfs_quota_us"
}
# nr_periods and nr_throttled of relay $1's cgroup ("0 0" when not confined).
cg_throttle() {
    if [ -n "$RELAY_CPU" ]; then
        awk '/^nr_periods/ { p = $2 } /^nr_throttled/ { t = $2 } END { print p + 0, t + 0 }' \
            "$CG_CPU/$CG_NAME/$1/cpu.stat"
    else
        echo "0 0"
    fi
}

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
    cg_prefix msrp
    "${CG_EXEC[@]}" "$MSRP" relay --listen 127.0.0.1:0 --host 127.0.0.1 --realm "$REALM" \
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
    # setsid: own process group, so its workers can be counted and stopped together (setsid
    # does not fork here, and the cgroup prefix execs: $! is Kamailio's main process).
    cg_prefix kamailio
    setsid "${CG_EXEC[@]}" "$KAM" -f "$WORK/kam/bench.cfg" -DD -E -m 128 -M 16 -Y "$WORK/kam" \
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

# CPU time of relay $1 so far, in nanoseconds: from its cpuacct group when there is one
# (every process that ever ran in it), else utime+stime from /proc (msrp relay: its one
# process, all threads; Kamailio: every live process of its process group).
relay_cpu_ns() {
    if [ "$HAVE_ACCT" = 1 ]; then
        cat "$CG_ACCT/$CG_NAME/$1/cpuacct.usage"
        return
    fi
    local t
    case "$1" in
        msrp) t=$(ticks_pid "$RELAY_PID") ;;
        kamailio) t=$(ticks_group "$KAM_PID") ;;
    esac
    echo $((t * 1000000000 / HZ))
}

RESULTS=$WORK/results.tsv
# run_load RELAY SCENARIO LABEL -- msrp load flags...
run_load() {
    local relay=$1 scenario=$2 label=$3 uri c0 c1 w0 w1 th0 th1 out rc
    shift 4
    case "$relay" in
        msrp) uri="msrp://$RELAY_ADDR;tcp" ;;
        kamailio) uri="msrp://127.0.0.1:$KAM_PORT;tcp" ;;
    esac
    out=$WORK/load-$label-$scenario.json
    th0=$(cg_throttle "$relay")
    c0=$(relay_cpu_ns "$relay")
    w0=$(date +%s.%N)
    rc=0
    "$MSRP" load --relay "$uri" --relay-user bench --relay-password "$PASSWORD" \
        --json "$@" > "$out" 2> "$WORK/load.err" || rc=$?
    if [ "$rc" != 0 ]; then
        echo "msrp load through $relay ($scenario) exited $rc: $(cat "$WORK/load.err")" >&2
    fi
    w1=$(date +%s.%N)
    c1=$(relay_cpu_ns "$relay")
    th1=$(cg_throttle "$relay")
    python3 - "$out" "$label" "$scenario" "$((c1 - c0))" "$w0" "$w1" "${RELAY_CPU:-0}" \
        "$th0" "$th1" >> "$RESULTS" <<'EOF'
import json, sys
path, label, scenario, ns, w0, w1, budget, th0, th1 = sys.argv[1:]
r = [json.loads(l) for l in open(path) if '"result"' in l][-1]
cpu = int(ns) / 1e9
wall = float(w1) - float(w0)
n = r["received"]
budget = float(budget)
p0, t0 = map(int, th0.split())
p1, t1 = map(int, th1.split())
# Budget used while messages flowed (msrp load's elapsed_s: first send to last message
# complete; the relay's CPU includes the sessions' set-up, a few AUTHs).
el = float(r.get("elapsed_s") or wall)
use = round(cpu / (budget * el), 2) if budget > 0 and label != "msrp-free" else "-"
thr = round((t1 - t0) / (p1 - p0), 2) if p1 > p0 else "-"
print("\t".join(str(x) for x in [label, scenario, n, r["lost"], r["msgs_per_s"], r["mb_per_s"],
    round(cpu, 3), round(cpu / n * 1e6, 1) if n else "nan",
    r["delivery_latency_ms"]["p50"], r["delivery_latency_ms"]["p99"], round(wall, 2), use, thr]))
EOF
    tail -1 "$RESULTS"
}

LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
if [ -n "$RELAY_CPU" ]; then
    MODE="equal budget: each relay confined to $RELAY_CPU of one core (cgroup cpu quota ${CG_QUOTA_US} us per ${CG_PERIOD_US} us)"
else
    MODE="unconfined"
fi
echo "msrp relay vs Kamailio, $REPEAT repetition(s) of ${DURATION}s per scenario, $MODE"
echo "load average $LOAD_START on $(nproc) cores; $("$MSRP" --version 2>/dev/null || echo msrp); $("$KAM" -v 2>/dev/null | head -1)"
printf 'relay\tscenario\tmessages\tlost\tmsgs_per_s\tMB_per_s\tcpu_s\tcpu_us_per_msg\tp50_ms\tp99_ms\twall_s\tbudget_use\tthrottled\n' | tee "$RESULTS"
start_msrp_relay
start_kamailio
SMALL=(--size 1024 --chunk-size 8192 --sessions 4 --window 32 --duration "$DURATION")
LARGE=(--size 1048576 --chunk-size 8192 --sessions 2 --window 2 --duration "$DURATION" --drain-timeout 30)
for i in $(seq "$REPEAT"); do
    if [ $((i % 2)) -eq 1 ]; then order="msrp kamailio"; else order="kamailio msrp"; fi
    for relay in $order; do run_load "$relay" small "$relay" -- "${SMALL[@]}"; done
    for relay in $order; do run_load "$relay" large "$relay" -- "${LARGE[@]}"; done
done
if [ -n "$RELAY_CPU" ]; then
    # Headroom of the load generator: the same runs with `msrp relay`'s quota lifted.
    cg_quota msrp -1
    run_load msrp small msrp-free -- "${SMALL[@]}"
    run_load msrp large msrp-free -- "${LARGE[@]}"
    cg_quota msrp "$CG_QUOTA_US"
fi
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)

python3 - "$RESULTS" "$MODE" "$LOAD_START" "$LOAD_END" <<'EOF'
import sys, statistics as st
path, mode, l0, l1 = sys.argv[1:]
rows = [l.rstrip("\n").split("\t") for l in open(path)][1:]
def col(relay, sc, i):
    return [float(r[i]) for r in rows if r[0] == relay and r[1] == sc and r[i] not in ("nan", "-")]
def rng(xs, fmt="{:.1f}"):
    if not xs:
        return "-"
    xs = sorted(xs)
    return " .. ".join(fmt.format(x) for x in (xs[0], st.median(xs), xs[-1]))
print(f"\nSUMMARY ({mode}; load average {l0} at start, {l1} at end)")
print("min .. median .. max over repetitions\n")
print(f"{'scenario':8} {'relay':10} {'msgs/s':>26} {'relay CPU us/msg':>22} {'budget use':>18} {'lost':>5}")
for sc in ("small", "large"):
    for relay in ("msrp", "kamailio", "msrp-free"):
        rate = col(relay, sc, 4)
        if not rate:
            continue
        lost = sum(int(r[3]) for r in rows if r[0] == relay and r[1] == sc)
        use = col(relay, sc, 11)
        print(f"{sc:8} {relay:10} {rng(rate):>26} {rng(col(relay, sc, 7)):>22} "
              f"{rng(use, '{:.2f}'):>18} {lost:>5}")
print()
for sc in ("small", "large"):
    m, k = col("msrp", sc, 4), col("kamailio", sc, 4)
    mc, kc = col("msrp", sc, 7), col("kamailio", sc, 7)
    ratios = sorted(a / b for a, b in zip(m, k) if b > 0)
    cpur = sorted(b / a for a, b in zip(mc, kc) if a > 0)
    if ratios:
        print(f"{sc:8} msrp/kamailio msgs/s per repetition:        "
              f"{', '.join(f'{x:.2f}' for x in ratios)}   (median {st.median(ratios):.2f})")
    if cpur:
        print(f"{sc:8} kamailio/msrp CPU per message per repetition: "
              f"{', '.join(f'{x:.2f}' for x in cpur)}   (median {st.median(cpur):.2f})")
    free = col("msrp-free", sc, 4)
    if free and m:
        print(f"{sc:8} headroom: msrp load reached {free[0]:.1f} msgs/s with msrp relay unconfined, "
              f"{free[0] / st.median(m):.2f}x its confined median")
EOF

if [ "$SKIP_IDLE" = 1 ]; then exit 0; fi
# Idle sessions: a fresh msrp relay, its RSS before and with IDLE authenticated connections
# (not confined: this measures memory).
stop_msrp_relay
cg_quota msrp -1
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
