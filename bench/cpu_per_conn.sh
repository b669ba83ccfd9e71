#!/usr/bin/env bash
# Proxy CPU time per proxied connection (µs), rampart and HAProxy alternated on one
# configuration file: /proc/PID/stat utime+stime across a `loadgen connrate` run,
# divided by the connections completed. Unlike connections/s on a saturated 2-core
# machine, this does not depend on how the CPU is shared with the load generator.
#
#   bash bench/cpu_per_conn.sh [CONCURRENCY] [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
C=${1:-64} ROUNDS=${2:-3} PX=15410 SRV=15411
command -v haproxy >/dev/null || { apt-get update -qq && apt-get install -y -qq haproxy >/dev/null; }
cargo build --release -q -p rampart -p rampart-loadgen
work=$(mktemp -d) pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
cat > "$work/h.cfg" <<CFG
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
target/release/loadgen origin --listen "127.0.0.1:$SRV" >/dev/null 2>&1 & pids+=($!)
sleep 0.3
tck=$(getconf CLK_TCK)
for _ in $(seq "$ROUNDS"); do
  for who in rampart haproxy; do
    if [ "$who" = rampart ]; then target/release/rampart lb -q -f "$work/h.cfg" 2>/dev/null & p=$!
    else haproxy -f "$work/h.cfg" 2>/dev/null & p=$!; fi
    pids+=("$p"); sleep 0.5
    a=$(awk '{print $14+$15}' "/proc/$p/stat")
    out=$(target/release/loadgen connrate --target "127.0.0.1:$PX" --concurrency "$C" --seconds 3 --size 64 2>/dev/null)
    b=$(awk '{print $14+$15}' "/proc/$p/stat")
    python3 - "$who" "$C" "$a" "$b" "$tck" "$out" <<'PY'
import json, sys
who, c, a, b, tck, out = sys.argv[1:]
d = json.loads(out)
us = (float(b) - float(a)) / float(tck) * 1e6 / max(d["completed"], 1)
print(f"{who:8} c={c} conn/s={d['conn_per_s']} cpu_us_per_conn={us:.1f}")
PY
    kill "$p"; wait "$p" 2>/dev/null || true
  done
done
