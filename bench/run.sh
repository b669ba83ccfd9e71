#!/usr/bin/env bash
# rampart lb vs HAProxy, side by side, on one shared configuration file. See bench/README.md.
#
#   bash bench/run.sh [ROUNDS]          # default 5 rounds, ~6 minutes on 2 cores
#   QUICK=1 bash bench/run.sh           # 2 short rounds, ~2 minutes
#
# Environment: ROUNDS, QUICK=1, RAMPART_BIN (use this binary, skip the build),
# PX_PORT / SRV_PORT (127.0.0.1 ports, default 15300 / 15301), IDLE_N (9000), SPLICE=1 (add
# `option splice-auto` to the shared defaults: HAProxy's kernel splicing, off by default),
# RESULTS (markdown output, default bench/results/latest.md).
#
# Every figure alternates rampart and HAProxy (order swapped every round, a fresh proxy
# process per measurement) and reports the median over the rounds. Only 127.0.0.1 is used.
# Every process started here is stopped by its pid on exit; nothing is left listening.
set -euo pipefail
cd "$(dirname "$0")/.."

QUICK=${QUICK:-0}
if [ "$QUICK" = 1 ]; then
  ROUNDS=${ROUNDS:-2} TPUT_S=2 CONN_S=2 LAT_S=2 LAT_WARM=0.5
else
  ROUNDS=${ROUNDS:-5} TPUT_S=4 CONN_S=3 LAT_S=5 LAT_WARM=1
fi
ROUNDS=${1:-$ROUNDS}
PX=${PX_PORT:-15300} SRV=${SRV_PORT:-15301}
IDLE_N=${IDLE_N:-9000} IDLE_SMALL=1000
LAT_RATE=5000 LAT_CONNS=50 SIZE=64
RESULTS=${RESULTS:-bench/results/latest.md}
case $ROUNDS in '' | *[!0-9]* | 0) echo "ROUNDS must be a positive integer" >&2; exit 2 ;; esac

say() { echo "$*" >&2; }

# ---- tools ---------------------------------------------------------------------------------
need=()
command -v haproxy >/dev/null 2>&1 || need+=(haproxy)
command -v iperf3 >/dev/null 2>&1 || need+=(iperf3)
if ((${#need[@]})); then
  say "installing ${need[*]} with apt-get"
  SUDO=; [ "$(id -u)" = 0 ] || SUDO=sudo
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi
command -v cargo >/dev/null 2>&1 || { say "cargo not found: install a Rust toolchain first"; exit 1; }

TARGET_DIR=${CARGO_TARGET_DIR:-target}
say "building rampart and loadgen (release)"
if [ -n "${RAMPART_BIN:-}" ]; then
  cargo build --release -q -p rampart-loadgen
  RAMPART=$RAMPART_BIN
else
  cargo build --release -q -p rampart -p rampart-loadgen
  RAMPART=$TARGET_DIR/release/rampart
fi
LOADGEN=$TARGET_DIR/release/loadgen
CLK_TCK=$(getconf CLK_TCK)

# ---- processes -----------------------------------------------------------------------------
WORK=$(mktemp -d /tmp/rampart-bench.XXXXXX)
LOG=$WORK/log
PIDS=()
alive() { # pid: running, and not a zombie waiting to be reaped
  local st
  st=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1) || return 1
  [ -n "$st" ] && [ "$st" != Z ]
}
stop() { # pid: SIGTERM, up to 5 s, then SIGKILL; always reaped
  local p=$1 i
  kill -TERM "$p" 2>/dev/null || true
  for ((i = 0; i < 50; i++)); do alive "$p" || break; sleep 0.1; done
  alive "$p" && kill -KILL "$p" 2>/dev/null
  wait "$p" 2>/dev/null || true
}
cleanup() {
  local rc=$? p
  trap - EXIT INT TERM
  for p in "${PIDS[@]}"; do stop "$p"; done
  if [ "$rc" != 0 ] && [ -s "$LOG" ]; then
    say "--- last lines of the process log ($LOG kept):"; tail -n 20 "$LOG" >&2
  else
    rm -rf "$WORK"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
start() { # cmd...: runs it in the background, its pid in LAST
  echo "+ $*" >>"$LOG"
  "$@" </dev/null >>"$LOG" 2>&1 &
  LAST=$!
  PIDS+=("$LAST")
}
forget() { # pid: stop it and drop it from PIDS
  local p=$1 q keep=()
  stop "$p"
  for q in "${PIDS[@]}"; do [ "$q" = "$p" ] || keep+=("$q"); done
  PIDS=("${keep[@]}")
}
listening() { # port: a 127.0.0.1 listener exists (read from /proc, no probe connection)
  grep -q ":$(printf '%04X' "$1") 00000000:0000 0A" /proc/net/tcp
}
wait_listen() { # port pid
  local i
  for ((i = 0; i < 200; i++)); do
    listening "$1" && return 0
    alive "$2" || break
    sleep 0.05
  done
  say "error: nothing listening on 127.0.0.1:$1"
  exit 1
}
for port in "$PX" "$SRV"; do
  if listening "$port"; then say "error: 127.0.0.1:$port is already in use"; exit 1; fi
done

# ---- the one configuration file, read by both proxies -----------------------------------
CFG=$WORK/bench.cfg
SPLICE_OPT="    # option splice-auto (SPLICE=1)" PIPES_OPT="    # maxpipes 512 (SPLICE=1)"
if [ "${SPLICE:-0}" = 1 ]; then
  SPLICE_OPT="    option splice-auto"
  # HAProxy reserves 2 descriptors per pipe (default maxconn/4 pipes) and refuses to start
  # when that exceeds the open-file limit: 9000 sessions + 512 pipes fit in 20,000.
  PIPES_OPT="    maxpipes 512"
fi
cat >"$CFG" <<CFG
global
    maxconn 9000
$PIPES_OPT

defaults
    mode tcp
    timeout connect 5s
    timeout client 300s
    timeout server 300s
$SPLICE_OPT

frontend bench
    bind 127.0.0.1:$PX
    default_backend origin

backend origin
    server s1 127.0.0.1:$SRV
CFG
haproxy -c -f "$CFG" >>"$LOG" 2>&1 || { say "haproxy rejects the configuration"; exit 1; }
"$RAMPART" lb -c -f "$CFG" >>"$LOG" 2>&1 || { say "rampart rejects the configuration"; exit 1; }

PROXY=
proxy_up() { # rampart|haproxy: fresh process, its pid in PROXY
  case $1 in
    rampart) start "$RAMPART" lb -f "$CFG" ;;
    haproxy) start haproxy -f "$CFG" ;;
  esac
  PROXY=$LAST
  wait_listen "$PX" "$PROXY"
}
proxy_down() { forget "$PROXY"; PROXY=; }
SERVER=
server_up() { # iperf3|origin on SRV
  [ -z "$SERVER" ] || forget "$SERVER"
  case $1 in
    iperf3) start iperf3 -s -B 127.0.0.1 -p "$SRV" ;;
    origin) start "$LOADGEN" origin --listen "127.0.0.1:$SRV" --mode echo ;;
  esac
  SERVER=$LAST
  wait_listen "$SRV" "$SERVER"
}

# ---- numbers -------------------------------------------------------------------------------
declare -A V # "figure|who" -> values of every round, space separated
add() { V[$1|$2]="${V[$1|$2]:-} $3"; }
jget() { sed -n "s/.*\"$2\":\([-0-9.e+]*\).*/\1/p" <<<"$1"; }
median() { # values... (non-numbers ignored) -> median or n/a
  printf '%s\n' "$@" | { grep -E '^-?[0-9.]+([eE][-+]?[0-9]+)?$' || true; } | sort -g |
    awk '{a[NR] = $1} END { if (!NR) print "n/a"; else if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}
calc() { awk "BEGIN { print $* }"; }
num() { [[ $1 =~ ^-?[0-9.]+([eE][-+]?[0-9]+)?$ ]]; }
rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }
cpu_ticks() { sed 's/.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'; }
NOTES=()
note() { NOTES+=("$*"); }

# The measuring functions leave their result in OUT (not on stdout: a $(...) subshell would
# lose the processes it starts from PIDS, and the values it records with add).
OUT=
iperf() { # port streams [proxy-pid who]: OUT = Gbit/s; with a pid, also adds its CPU s/GB
  local port=$1 streams=$2 pid=${3:-} who=${4:-} out=$WORK/iperf.json t0=0 t1=0 bytes bps try
  for try in 1 2 3; do
    [ -z "$pid" ] || t0=$(cpu_ticks "$pid")
    if iperf3 -c 127.0.0.1 -p "$port" -t "$TPUT_S" -P "$streams" -J >"$out" 2>>"$LOG"; then break; fi
    echo "iperf3 -p $port -P $streams failed (try $try): $(grep -m1 '"error"' "$out")" >>"$LOG"
    sleep 1
  done
  [ -z "$pid" ] || t1=$(cpu_ticks "$pid")
  bytes=$(awk '/"sum_received":/ { on = 1 } on && $1 == "\"bytes\":" { gsub(/,/, "", $2); print $2; exit }' "$out")
  bps=$(awk '/"sum_received":/ { on = 1 } on && $1 == "\"bits_per_second\":" { gsub(/,/, "", $2); print $2; exit }' "$out")
  OUT=n/a
  if num "${bps:-}" && num "${bytes:-}"; then
    OUT=$(calc "$bps / 1e9")
    [ -z "$pid" ] || add cpu "$who" "$(calc "(($t1 - $t0) / $CLK_TCK) / ($bytes / 1e9)")"
  fi
}
connrate() { # port concurrency who [proxy-pid]: OUT = conn/s; with a pid, adds the cores it used
  local out e t0 t1
  [ -z "${4:-}" ] || t0=$(cpu_ticks "$4")
  out=$("$LOADGEN" connrate --target "127.0.0.1:$1" --concurrency "$2" --seconds "$CONN_S" --size "$SIZE" 2>>"$LOG") || true
  if [ -n "${4:-}" ]; then
    t1=$(cpu_ticks "$4")
    add "cores$2" "$3" "$(calc "int(100 * ($t1 - $t0) / $CLK_TCK / $CONN_S) / 100")"
  fi
  e=$(jget "$out" cpu_s)
  if num "${e:-}"; then add "gen$2" "$3" "$(calc "int(100 * $e / $CONN_S) / 100")"; fi
  e=$(jget "$out" errors)
  if num "${e:-}" && [ "$e" != 0 ]; then note "connrate c=$2 $3: $e failed connections in one round"; fi
  OUT=$(jget "$out" conn_per_s); OUT=${OUT:-n/a}
}
latency() { # port who: adds p50/p99/p999 and the generator's send lag; OUT = summary
  local out e
  out=$("$LOADGEN" latency --target "127.0.0.1:$1" --rate "$LAT_RATE" --seconds "$LAT_S" --warmup "$LAT_WARM" \
    --size "$SIZE" --connections "$LAT_CONNS" 2>>"$LOG") || true
  add p50 "$2" "$(jget "$out" p50_us)"; add p99 "$2" "$(jget "$out" p99_us)"
  add p999 "$2" "$(jget "$out" p999_us)"; add lag "$2" "$(jget "$out" send_lag_p99_us)"
  e=$(jget "$out" errors)
  if num "${e:-}" && [ "$e" != 0 ]; then note "latency $2: $e unanswered requests in one round"; fi
  OUT="p50 $(jget "$out" p50_us) p99 $(jget "$out" p99_us) p99.9 $(jget "$out" p999_us) us"
}
idle_mem() { # n who: fresh proxy; OUT = its RSS growth per established session, bytes
  local n=$1 who=$2 ready=$WORK/idle.ready before after est=0 i client
  OUT=n/a
  proxy_up "$who"
  sleep 0.3
  before=$(rss_kb "$PROXY")
  rm -f "$ready"
  start "$LOADGEN" idle --target "127.0.0.1:$PX" --count "$n" --ready-file "$ready" --hold-seconds 120
  client=$LAST
  for ((i = 0; i < 600; i++)); do
    if [ -s "$ready" ] || ! alive "$client"; then break; fi
    sleep 0.1
  done
  if [ -s "$ready" ] && alive "$PROXY"; then
    sleep 0.5
    after=$(rss_kb "$PROXY")
    est=$(jget "$(cat "$ready")" established)
    if [ "${est:-0}" -gt 0 ]; then OUT=$(calc "int(($after - $before) * 1024 / $est)"); fi
  fi
  [ "${est:-0}" = "$n" ] || note "idle N=$n $who: only ${est:-0} of $n sessions established in one round"
  forget "$client"
  proxy_down
}

# ---- the rounds ------------------------------------------------------------------------------
cpu_busy_pct() { # share of all CPUs busy over one second, from /proc/stat
  local a b
  a=$(awk '/^cpu / { print $2 + $3 + $4 + $7 + $8, $5 + $6 }' /proc/stat); sleep 1
  b=$(awk '/^cpu / { print $2 + $3 + $4 + $7 + $8, $5 + $6 }' /proc/stat)
  awk -v a="$a" -v b="$b" 'BEGIN { split(a, x, " "); split(b, y, " "); busy = y[1] - x[1]; idle = y[2] - x[2]
    print (busy + idle > 0) ? int(100 * busy / (busy + idle)) : 0 }'
}
cpu_jiffies() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 }' /proc/stat; }
children_cpu() { # CHILD_S = user+sys seconds of this shell's reaped children (times builtin;
  # run in this shell, never in $(...): a forked subshell has no such children)
  times >"$WORK/times"
  CHILD_S=$(awk 'NR == 2 { t = 0; for (i = 1; i <= 2; i++) { split($i, a, /[ms]/); t += a[1] * 60 + a[2] } print t }' "$WORK/times")
}
LOAD0=$(cut -d' ' -f1 /proc/loadavg)
BUSY0=$(cpu_busy_pct)
J0=$(cpu_jiffies); children_cpu; C0=$CHILD_S
T0=$SECONDS
order() { if (($1 % 2)); then echo rampart haproxy; else echo haproxy rampart; fi; }

server_up iperf3
for ((r = 1; r <= ROUNDS; r++)); do
  for who in $(order "$r"); do
    proxy_up "$who"
    iperf "$PX" 1 "$PROXY" "$who"; g1=$OUT; add tput1 "$who" "$g1"
    iperf "$PX" 8; g8=$OUT; add tput8 "$who" "$g8"
    proxy_down
    say "round $r/$ROUNDS throughput  $who: 1 stream $g1, 8 streams $g8 Gbit/s"
  done
  iperf "$SRV" 1; g1=$OUT; add tput1 direct "$g1"
  iperf "$SRV" 8; g8=$OUT; add tput8 direct "$g8"
  say "round $r/$ROUNDS throughput  direct: 1 stream $g1, 8 streams $g8 Gbit/s"
done

server_up origin
for ((r = 1; r <= ROUNDS; r++)); do
  for who in $(order "$r"); do
    proxy_up "$who"
    connrate "$PX" 64 "$who" "$PROXY"; c64=$OUT; add conn64 "$who" "$c64"
    connrate "$PX" 512 "$who" "$PROXY"; c512=$OUT; add conn512 "$who" "$c512"
    proxy_down
    proxy_up "$who"
    latency "$PX" "$who"; l=$OUT
    proxy_down
    idle_mem "$IDLE_SMALL" "$who"; m1=$OUT; add mem1 "$who" "$m1"
    idle_mem "$IDLE_N" "$who"; mN=$OUT; add memN "$who" "$mN"
    say "round $r/$ROUNDS connections $who: $c64 conn/s (c=64), $c512 conn/s (c=512), cores busy: proxy ${V[cores64|$who]##* } and ${V[cores512|$who]##* }, loadgen ${V[gen64|$who]##* } and ${V[gen512|$who]##* }; latency $l; idle $m1 B/session (N=$IDLE_SMALL), $mN B/session (N=$IDLE_N)"
  done
  connrate "$SRV" 64 direct; c64=$OUT; add conn64 direct "$c64"
  connrate "$SRV" 512 direct; c512=$OUT; add conn512 direct "$c512"
  latency "$SRV" direct; l=$OUT
  say "round $r/$ROUNDS connections direct: $c64 conn/s (c=64), $c512 conn/s (c=512), loadgen busy ${V[gen64|direct]##* } and ${V[gen512|direct]##* } cores; latency $l"
done
forget "$SERVER"; SERVER=
ELAPSED=$((SECONDS - T0))
# CPU used on the machine during the rounds by anything this script did not start.
J1=$(cpu_jiffies); children_cpu
OTHER=$(calc "int(100 * (($J1 - $J0) / $CLK_TCK - ($CHILD_S - $C0)) / ($ELAPSED * $(nproc)))")

# ---- the table -------------------------------------------------------------------------------
ROWS=()
fmt() { # value decimals
  if num "$1"; then awk -v v="$1" -v d="$2" 'BEGIN { printf "%.*f", d, v }'; else echo n/a; fi
}
ratio() { # a b
  if num "$1" && num "$2" && awk -v a="$1" -v b="$2" 'BEGIN { exit !(a >= 0 && b > 0) }'; then fmt "$(calc "$1 / $2")" 2; else echo n/a; fi
}
row() { # name key decimals has-direct
  local r h d
  r=$(median ${V[$2|rampart]:-}); h=$(median ${V[$2|haproxy]:-})
  d=-; [ "$4" = 1 ] && d=$(fmt "$(median ${V[$2|direct]:-})" "$3")
  ROWS+=("$1|$(fmt "$r" "$3")|$(fmt "$h" "$3")|$(ratio "$r" "$h")|$d")
}
lat_row() { # name key
  local r h d ra ha
  r=$(median ${V[$2|rampart]:-}); h=$(median ${V[$2|haproxy]:-}); d=$(median ${V[$2|direct]:-})
  if num "$r" && num "$h" && num "$d"; then
    ra=$(calc "$r - $d"); ha=$(calc "$h - $d")
    ROWS+=("$1|$(fmt "$ra" 0) (raw $(fmt "$r" 0))|$(fmt "$ha" 0) (raw $(fmt "$h" 0))|$(ratio "$ra" "$ha")|$(fmt "$d" 0)")
  else
    ROWS+=("$1|n/a|n/a|n/a|n/a")
  fi
}
row "throughput 1 stream, Gbit/s (higher is better)" tput1 2 1
row "throughput 8 streams, Gbit/s (higher is better)" tput8 2 1
row "new connections/s, concurrency 64 (higher is better)" conn64 0 1
row "new connections/s, concurrency 512 (higher is better)" conn512 0 1
row "idle memory, bytes/session, N=$IDLE_SMALL (lower is better)" mem1 0 0
row "idle memory, bytes/session, N=$IDLE_N (lower is better)" memN 0 0
lat_row "added latency p50, us (lower is better)" p50
lat_row "added latency p99, us (lower is better)" p99
lat_row "added latency p99.9, us (lower is better)" p999
row "proxy CPU s per GB, 1 stream (lower is better)" cpu 2 0

# Is the load generator, rather than the proxy, the limit?
for k in conn64 conn512; do
  d=$(median ${V[$k|direct]:-}); r=$(median ${V[$k|rampart]:-}); h=$(median ${V[$k|haproxy]:-})
  if num "$d" && num "$r" && num "$h" && awk -v d="$d" -v r="$r" -v h="$h" 'BEGIN { exit !(d < 1.3 * (r > h ? r : h)) }'; then
    note "${k#conn}-concurrency connection rate: direct ($d/s) is less than 1.3x the best proxied rate, so loadgen and origin (on the same 2 cores) may be what limits it"
  fi
done
for k in tput1 tput8; do
  d=$(median ${V[$k|direct]:-}); r=$(median ${V[$k|rampart]:-}); h=$(median ${V[$k|haproxy]:-})
  if num "$d" && num "$r" && num "$h" && awk -v d="$d" -v r="$r" -v h="$h" 'BEGIN { exit !((r > h ? r : h) > 0.8 * d) }'; then
    note "throughput ($k): a proxied run reaches over 80% of direct loopback, so iperf3 itself may be the limit"
  fi
done
lag=$(median ${V[lag|rampart]:-} ${V[lag|haproxy]:-} ${V[lag|direct]:-})
if num "$lag" && awk -v l="$lag" 'BEGIN { exit !(l > 200) }'; then
  note "latency: the generator's own send lag p99 is ${lag} us (median), so the p99 figures carry that much generator noise"
fi
HARD=$(ulimit -Hn)
note "idle memory uses N=$IDLE_N, not 50,000: the open-file hard limit here is $HARD per process, and a proxied session takes 2 descriptors, so one proxy process holds at most ~$(((HARD - 100) / 2)) sessions (HAProxy refuses a maxconn above that; the config says maxconn 9000)"
busy=$(median ${V[cores512|rampart]:-} ${V[cores512|haproxy]:-})
gen=$(median ${V[gen512|rampart]:-} ${V[gen512|haproxy]:-})
if num "$busy" && awk -v b="$busy" -v n="$(nproc)" 'BEGIN { exit !(b < 0.75 * n) }'; then
  note "connection rate: the proxy kept only ~$busy of $(nproc) cores busy (median, c=512) while the loadgen client alone took ~$gen; with the origin and the kernel's loopback work the machine is saturated, so these rates are each proxy's share of a saturated machine (both face the same competition), not its ceiling"
fi
if awk -v b="$BUSY0" -v o="$OTHER" 'BEGIN { exit !(b > 15 || o > 10) }'; then
  note "other processes kept the CPUs ${BUSY0}% busy just before the rounds and took ~${OTHER}% of all CPU time during them: figures are noisier than on an idle machine"
fi

HDR="figure|rampart median|haproxy median|ratio rampart/haproxy|direct (loopback, no proxy)"
{
  echo "rampart vs HAProxy: median of $ROUNDS rounds$([ "$QUICK" = 1 ] && echo " (QUICK)")$([ "${SPLICE:-0}" = 1 ] && echo ", option splice-auto"), ${ELAPSED}s"
  echo "${HDR//|/ | }"
  for x in "${ROWS[@]}"; do echo "${x//|/ | }"; done
  for x in "${NOTES[@]}"; do echo "note: $x"; done
} | tee "$WORK/table.txt"

# ---- markdown --------------------------------------------------------------------------------
mkdir -p "$(dirname "$RESULTS")"
{
  echo "# rampart lb vs HAProxy: benchmark results"
  echo
  echo "Produced by \`$([ "$QUICK" = 1 ] && echo "QUICK=1 ")bash bench/run.sh\` on $(date -u '+%Y-%m-%d %H:%M UTC'): median of $ROUNDS rounds, rampart and HAProxy alternated, fresh proxy process per measurement, everything on 127.0.0.1. See bench/README.md for what each figure means."
  echo
  echo "| machine | |"
  echo "|---|---|"
  echo "| cores (nproc) | $(nproc) |"
  echo "| kernel | $(uname -sr) |"
  echo "| haproxy | $(haproxy -v 2>/dev/null | head -n1) |"
  echo "| rustc | $(rustc -V 2>/dev/null) |"
  echo "| iperf3 | $(iperf3 --version 2>/dev/null | head -n1) |"
  echo "| open-file hard limit | $HARD |"
  echo "| load average at start | $LOAD0 (CPUs ${BUSY0}% busy in the second before the rounds) |"
  echo "| CPU taken by other processes during the rounds | ~${OTHER}% |"
  echo
  echo "Parameters: config $([ "${SPLICE:-0}" = 1 ] && echo "with" || echo "without") \`option splice-auto\`; throughput ${TPUT_S}s per run; connection rate ${CONN_S}s per run, ${SIZE}-byte exchange; latency ${LAT_RATE} req/s over ${LAT_CONNS} connections, ${SIZE} bytes, ${LAT_S}s measured after ${LAT_WARM}s warm-up; idle N=$IDLE_SMALL and N=$IDLE_N."
  echo
  echo "| ${HDR//|/ | } |"
  echo "|---|---:|---:|---:|---:|"
  for x in "${ROWS[@]}"; do echo "| ${x//|/ | } |"; done
  echo
  for x in "${NOTES[@]}"; do echo "- $x"; done
  echo
  echo "The configuration file both proxies ran:"
  echo
  echo '```'
  cat "$CFG"
  echo '```'
  echo
  echo "Every round, in order. tput: Gbit/s; cpu: proxy CPU s/GB; conn: conn/s; cores: CPU cores the proxy kept busy during that connection-rate run (of $(nproc)); gen: the same for the loadgen client; mem: bytes/session; p50/p99/p999: raw latency, us; lag: the generator's own send lag p99, us."
  echo
  echo '```'
  for k in tput1 tput8 cpu conn64 cores64 gen64 conn512 cores512 gen512 mem1 memN p50 p99 p999 lag; do
    for who in rampart haproxy direct; do
      if [ -n "${V[$k|$who]:-}" ]; then printf '%-8s %-8s%s\n' "$k" "$who" "${V[$k|$who]}"; fi
    done
  done
  echo '```'
} >"$RESULTS"
say "results written to $RESULTS"
