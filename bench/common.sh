# Shared by the manager and agent benchmarks: `source bench/common.sh NAME` builds rampart,
# makes a work folder $W (removed at exit unless KEEP is set; under BENCH_DIR, default /tmp),
# and kills every pid pushed onto PIDS at exit.
cargo build --release -q -p rampart
BIN=$PWD/target/release/rampart
W=$(mktemp -d "${BENCH_DIR:-/tmp}/rampart-bench-$1.XXXXXX")
KEEP=${KEEP:-}
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  [ -n "$KEEP" ] || rm -rf "$W"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
now() { date +%s.%N; }
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
