#!/usr/bin/env bash
# First side-by-side throughput figure: iperf3 through rampart lb and through HAProxy,
# on the same configuration file, alternating A/B, plus iperf3 straight over loopback.
# Prints medians (Gbit/s) and the rampart/HAProxy ratio. Cleans up every process by pid.
#
#   bash bench/throughput.sh [ROUNDS] [SECONDS] [STREAMS]
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-5}; SECS=${2:-5}; STREAMS=${3:-1}
export DEBIAN_FRONTEND=noninteractive
for t in haproxy iperf3; do
  command -v $t >/dev/null || { apt-get update -qq && apt-get install -y -qq haproxy iperf3 >/dev/null; }
done
BIN=${RAMPART_BIN:-target/release/rampart}
[ -n "${RAMPART_BIN:-}" ] || cargo build --release -q -p rampart

work=$(mktemp -d); pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

SRV=15201; PX=15200
cat > "$work/bench.cfg" <<CFG
global
  maxconn 9000
defaults
  mode tcp
  timeout connect 5s
  timeout client 60s
  timeout server 60s
frontend f
  bind 127.0.0.1:$PX
  default_backend b
backend b
  server s1 127.0.0.1:$SRV
CFG
iperf3 -s -p $SRV -D -I "$work/iperf.pid" >/dev/null; sleep 0.5; pids+=("$(cat "$work/iperf.pid")")

gbps() { # port -> Gbit/s (receiver side)
  iperf3 -c 127.0.0.1 -p "$1" -t "$SECS" -P "$STREAMS" -J 2>/dev/null |
    python3 -c 'import json,sys; print(round(json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"]/1e9,2))'
}
run_proxy() { # name cmd... -> figure
  "$@" >/dev/null 2>&1 & local p=$!; pids+=("$p"); sleep 0.7
  gbps $PX; kill "$p"; wait "$p" 2>/dev/null || true
}
median() { python3 -c 'import sys,statistics; print(statistics.median(float(x) for x in sys.argv[1:]))' "$@"; }

ra=(); ha=(); di=()
for i in $(seq "$ROUNDS"); do
  ra+=("$(run_proxy "$BIN" lb -q -f "$work/bench.cfg")")
  ha+=("$(run_proxy haproxy -f "$work/bench.cfg")")
  di+=("$(gbps $SRV)")
done
r=$(median "${ra[@]}"); h=$(median "${ha[@]}"); d=$(median "${di[@]}")
echo "throughput ${STREAMS} stream(s), Gbit/s, median of $ROUNDS x ${SECS}s: rampart $r | haproxy $h | direct $d | rampart/haproxy $(python3 -c "print(round($r/$h,2))") | rampart/direct $(python3 -c "print(round($r/$d,2))")"
echo "  rampart: ${ra[*]}"; echo "  haproxy: ${ha[*]}"; echo "  direct:  ${di[*]}"
