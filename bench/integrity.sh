#!/usr/bin/env bash
# Integrity sync, side by side: a rampart master pushing one tree to 3 workers versus an
# rsync daemon on 127.0.0.1 serving the same tree to 3 destinations (rsync -a), initial and
# after 1% of the files changed. Prints medians of RUNS runs and the ratios.
#
#   bash bench/integrity.sh            # 10,000 files, 200 MB, 5 runs
#   FILES=2000 MB=40 RUNS=3 bash bench/integrity.sh
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-5}
FILES=${FILES:-10000}
MB=${MB:-200}
WORKERS=3
command -v rsync >/dev/null || { echo "needs rsync (apt-get install -y rsync)"; exit 1; }

source bench/common.sh integrity

echo "== generating $FILES files, $MB MB (half text, half random bytes) in $W/master/etc"
python3 - "$W/master/etc" "$FILES" "$MB" <<'PY'
import os, random, sys
root, n, mb = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rnd = random.Random(42)
words = "rule decoder group level description match regex field srcip user program_name alert if_sid frequency timeframe same_source_ip list lookup match_key".split()
text = " ".join(rnd.choice(words) for _ in range(200000)).encode()
# log-uniform sizes, scaled to the total
raw = [10 ** rnd.uniform(2.3, 6.0) for _ in range(n)]
scale = mb * 1e6 / sum(raw)
dirs = ["rules", "decoders", "lists"] + [f"shared/group{g}" for g in range(5)]
for i, r in enumerate(raw):
    size = max(1, int(r * scale))
    d = os.path.join(root, dirs[i % len(dirs)], f"d{i % 23}", f"e{i % 7}")
    os.makedirs(d, exist_ok=True)
    if i % 2:
        data = os.urandom(size)
    else:
        off = rnd.randrange(0, len(text) - 1)
        data = (text * (size // len(text) + 2))[off:off + size]
    with open(os.path.join(d, f"f{i}.xml"), "wb") as f:
        f.write(data)
PY
du -sh "$W/master/etc" | sed 's/^/   /'

MPORT=$(free_port)
conf() { # name type
  cat <<XML
<ossec_config>
  <remote><connection>secure</connection><port>$(free_port)</port><local_ip>127.0.0.1</local_ip></remote>
  <auth><disabled>no</disabled><port>$(free_port)</port><local_ip>127.0.0.1</local_ip></auth>
  <cluster>
    <name>bench</name><node_name>$1</node_name><key>c98b62a9b6169ac5f67dae55ae4a9088</key>
    <node_type>$2</node_type><port>$MPORT</port><bind_addr>127.0.0.1</bind_addr>
    <nodes><node>127.0.0.1</node></nodes><disabled>no</disabled>
    <intervals><integrity>1h</integrity><master_integrity>1h</master_integrity><request_timeout>60s</request_timeout></intervals>
  </cluster>
</ossec_config>
XML
}
start() { # home
  "$BIN" manager --home "$1" 2>"$1/stderr.log" &
  PIDS+=($!)
  for _ in $(seq 200); do [ -S "$1/queue/cluster/c-internal.sock" ] && return; sleep 0.1; done
  echo "node at $1 did not start"; cat "$1/stderr.log"; exit 1
}
mkdir -p "$W/master/etc"
conf master master > "$W/master/etc/ossec.conf"
t0=$(now)
start "$W/master"
# The master hashes the whole tree once at start; later rounds only stat unchanged files.
until grep -q "Calculated metadata" "$W/master/logs/cluster.log" 2>/dev/null; do sleep 0.05; done
echo "== master's first full hash of the tree: $(grep -m1 -o 'Finished in [0-9.]*s' "$W/master/logs/cluster.log")"
for i in $(seq $WORKERS); do
  mkdir -p "$W/w$i/etc"; conf "worker-$i" worker > "$W/w$i/etc/ossec.conf"; start "$W/w$i"
done
until [ "$("$BIN" cluster --home "$W/master" nodes | wc -l)" -eq $((WORKERS + 2)) ]; do sleep 0.1; done

# Let the syncs the workers start on connecting finish (they hold the sync lock).
for i in $(seq $WORKERS); do "$BIN" cluster --home "$W/w$i" sync >/dev/null; done

RPORT=$(free_port)
cat > "$W/rsyncd.conf" <<CONF
use chroot = no
[etc]
path = $W/master/etc
read only = yes
CONF
rsync --daemon --no-detach --config="$W/rsyncd.conf" --port="$RPORT" --address=127.0.0.1 &
PIDS+=($!)
sleep 0.5
SYNCED="rules decoders lists shared"

rampart_round() { # master rescan + all workers in parallel
  local t=$(now)
  "$BIN" cluster --home "$W/master" sync >/dev/null
  local pids=()
  for i in $(seq $WORKERS); do "$BIN" cluster --home "$W/w$i" sync >"$W/w$i/last-sync.json" & pids+=($!); done
  wait "${pids[@]}"
  echo "$(now) - $t" | bc
}
rsync_round() {
  local t=$(now) pids=()
  for i in $(seq $WORKERS); do
    mkdir -p "$W/r$i"
    rsync -a $(for d in $SYNCED; do printf -- '--include=/%s/*** ' "$d"; done) --exclude='*' "rsync://127.0.0.1:$RPORT/etc/" "$W/r$i/" &
    pids+=($!)
  done
  wait "${pids[@]}"
  echo "$(now) - $t" | bc
}
same_tree() { # compare worker 1 and rsync dest 1 with the master by content
  for d in $SYNCED; do diff -rq "$W/master/etc/$d" "$W/w1/etc/$d" >/dev/null || return 1; diff -rq "$W/master/etc/$d" "$W/r1/$d" >/dev/null || return 1; done
}

declare -a RI RR II IR
for r in $(seq "$RUNS"); do
  for i in $(seq $WORKERS); do (cd "$W/w$i/etc" && rm -rf $SYNCED); rm -rf "$W/r$i"; done
  sync
  RI+=("$(rampart_round)")
  RR+=("$(rsync_round)")
  same_tree || { echo "trees differ after the initial sync"; exit 1; }
  echo "   initial run $r: rampart ${RI[-1]}s  rsync ${RR[-1]}s"
done
for r in $(seq "$RUNS"); do
  # 1% of the files get new content (same size) and a new mtime.
  python3 - "$W/master/etc" "$FILES" "$r" <<'PY'
import os, random, sys
root, n, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
files = sorted(os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs if f.endswith(".xml"))
rnd = random.Random(seed)
for p in rnd.sample(files, max(1, n // 100)):
    size = os.path.getsize(p)
    with open(p, "wb") as f:
        f.write(os.urandom(size))
PY
  sleep 1.1 # mtimes move on at least one tick
  II+=("$(rampart_round)")
  IR+=("$(rsync_round)")
  same_tree || { echo "trees differ after the incremental sync"; exit 1; }
  echo "   incremental run $r: rampart ${II[-1]}s  rsync ${IR[-1]}s"
done

mi=$(printf '%s\n' "${RI[@]}" | median); mr=$(printf '%s\n' "${RR[@]}" | median)
ni=$(printf '%s\n' "${II[@]}" | median); nr=$(printf '%s\n' "${IR[@]}" | median)
mkdir -p bench/results
{
  echo "# Integrity sync: $FILES files, $MB MB, master -> $WORKERS workers (median of $RUNS)"
  echo
  echo "| case | rampart (s) | rsync -a, $WORKERS in parallel (s) | rampart / rsync |"
  echo "|---|---|---|---|"
  printf '| initial | %.3f | %.3f | %.2fx |\n' "$mi" "$mr" "$(echo "$mi / $mr" | bc -l)"
  printf '| 1%% changed | %.3f | %.3f | %.2fx |\n' "$ni" "$nr" "$(echo "$ni / $nr" | bc -l)"
} | tee bench/results/integrity.md
