#!/usr/bin/env bash
# 10,000 simulated agents reporting through a balancer to two workers (and a master), side by
# side: `rampart lb` versus HAProxy in the same place, same managers, same simulator.
# Measures memory per connected agent on the balancer and on the managers, and end-to-end
# durable events per second (1 KiB events, acknowledged only once fsynced on a worker).
#
#   bash bench/agents.sh                          # 10,000 agents, 2 ev/s each, 30 s, 3 runs
#   AGENTS=2000 RATE=5 DURATION=20 RUNS=1 bash bench/agents.sh
#
# One process here may hold 20,000 files, so at most ~9,900 proxied sessions: each balancer
# runs as LB_PROCS processes sharing the port with SO_REUSEPORT (HAProxy does the same by
# default), and memory is summed over them.
set -euo pipefail
cd "$(dirname "$0")/.."
AGENTS=${AGENTS:-10000}
RATE=${RATE:-2}
DURATION=${DURATION:-30}
SIZE=${SIZE:-1024}
RUNS=${RUNS:-3}
LB_PROCS=${LB_PROCS:-2}
BALANCERS=${BALANCERS:-"rampart haproxy"}
command -v haproxy >/dev/null || { echo "needs haproxy (apt-get install -y haproxy)"; exit 1; }

source bench/common.sh agents
rss_kb() { awk '/VmRSS/ {s+=$2} END {print s+0}' $(for p in "$@"; do echo "/proc/$p/status"; done) 2>/dev/null || echo 0; }

MPORT=$(free_port)
declare -A REMOTE AUTH
conf() { # name type
  REMOTE[$1]=$(free_port); AUTH[$1]=$(free_port)
  cat <<XML
<ossec_config>
  <remote><connection>secure</connection><port>${REMOTE[$1]}</port><local_ip>127.0.0.1</local_ip></remote>
  <auth><disabled>no</disabled><port>${AUTH[$1]}</port><local_ip>127.0.0.1</local_ip></auth>
  <cluster>
    <name>bench</name><node_name>$1</node_name><key>c98b62a9b6169ac5f67dae55ae4a9088</key>
    <node_type>$2</node_type><port>$MPORT</port><bind_addr>127.0.0.1</bind_addr>
    <nodes><node>127.0.0.1</node></nodes><disabled>no</disabled>
    <intervals><request_timeout>60s</request_timeout></intervals>
  </cluster>
</ossec_config>
XML
}
declare -A NODEPID
start_node() { # name type
  mkdir -p "$W/$1/etc"; conf "$1" "$2" > "$W/$1/etc/ossec.conf"
  "$BIN" manager --home "$W/$1" 2>"$W/$1/stderr.log" &
  NODEPID[$1]=$!; PIDS+=($!)
  for _ in $(seq 200); do [ -S "$W/$1/queue/cluster/c-internal.sock" ] && return; sleep 0.1; done
  echo "node $1 did not start"; cat "$W/$1/stderr.log"; exit 1
}
start_node master master
start_node worker1 worker
start_node worker2 worker
until [ "$("$BIN" cluster --home "$W/master" nodes | wc -l)" -eq 4 ]; do sleep 0.1; done

echo "== enrolling $AGENTS agents (keys kept in $W/keys)"
t=$(date +%s.%N)
"$BIN" simulate -q --enroll "127.0.0.1:${AUTH[master]}" --server "127.0.0.1:${REMOTE[master]}" \
  --agents "$AGENTS" --events 0 --drain 1s --keys "$W/keys" >/dev/null || true
[ "$(wc -l < "$W/keys/client.keys")" -eq "$AGENTS" ] || { echo "enrollment failed"; exit 1; }
echo "   $(echo "$(date +%s.%N) - $t" | bc | xargs printf '%.1f')s"
# Workers must know every key before the agents arrive.
until [ "$("$BIN" cluster --home "$W/worker2" status | python3 -c 'import json,sys; print(json.load(sys.stdin)["agents"])')" -ge "$AGENTS" ]; do sleep 0.2; done

LBPORT=$(free_port)
lb_cfg() { # maxconn per process
  cat <<CFG
global
    maxconn $1
defaults
    mode tcp
    timeout connect 5s
    timeout client 10m
    timeout server 10m
    retries 3
    option redispatch
frontend wazuh_reporting_front
    bind 127.0.0.1:$LBPORT
    default_backend wazuh_reporting
backend wazuh_reporting
    balance leastconn
    server worker1 127.0.0.1:${REMOTE[worker1]} check inter 2s
    server worker2 127.0.0.1:${REMOTE[worker2]} check inter 2s
CFG
}
# Per process: half the agents and room to spare, within 20,000 files.
PER=$(( AGENTS / LB_PROCS + 1000 ))
lb_cfg "$PER" > "$W/haproxy.cfg"
start_lb() { # kind -> pids in LBPIDS
  LBPIDS=()
  for _ in $(seq "$LB_PROCS"); do
    case $1 in
      rampart) "$BIN" lb -q -f "$W/haproxy.cfg" 2>>"$W/lb.log" & ;;
      haproxy) haproxy -q -db -f "$W/haproxy.cfg" 2>>"$W/lb.log" & ;;
    esac
    LBPIDS+=($!); PIDS+=($!)
  done
  for _ in $(seq 100); do (echo > /dev/tcp/127.0.0.1/$LBPORT) 2>/dev/null && break; sleep 0.1; done
  sleep 2.5 # first health checks
}
stop_lb() { kill "${LBPIDS[@]}" 2>/dev/null || true; wait "${LBPIDS[@]}" 2>/dev/null || true; }

restart_workers() {
  for n in worker1 worker2; do
    kill "${NODEPID[$n]}"; wait "${NODEPID[$n]}" 2>/dev/null || true
    "$BIN" manager --home "$W/$n" 2>>"$W/$n/stderr.log" &
    NODEPID[$n]=$!; PIDS+=($!)
  done
  for n in worker1 worker2; do
    for _ in $(seq 200); do
      "$BIN" cluster --home "$W/$n" status 2>/dev/null | grep -q '"connected_to_master": *true' && break
      sleep 0.1
    done
  done
}

declare -A EPS LBMEM MGRMEM LOST CONN
for kind in $BALANCERS; do
  for r in $(seq "$RUNS"); do
    # Fresh workers each run: memory a previous run left in their allocator would hide the cost.
    restart_workers
    start_lb "$kind"
    lb0=$(rss_kb "${LBPIDS[@]}"); m0=$(rss_kb "${NODEPID[worker1]}" "${NODEPID[worker2]}")
    out="$W/sim-$kind-$r.txt"
    "$BIN" simulate -q --json --server "127.0.0.1:$LBPORT" --agents "$AGENTS" --rate "$RATE" \
      --duration "${DURATION}s" --size "$SIZE" --keys "$W/keys" --drain 180s > "$out" &
    sim=$!
    lbmax=0; mmax=0
    while kill -0 "$sim" 2>/dev/null; do
      l=$(rss_kb "${LBPIDS[@]}"); m=$(rss_kb "${NODEPID[worker1]}" "${NODEPID[worker2]}")
      [ "$l" -gt "$lbmax" ] && lbmax=$l; [ "$m" -gt "$mmax" ] && mmax=$m
      sleep 1
    done
    wait "$sim" || true
    stop_lb
    json=$(tail -1 "$out")
    read -r peak eps lost < <(python3 -c 'import json,sys; s=json.loads(sys.argv[1]); print(s["peak_connected"], round(s["durable_eps"]), s["lost"])' "$json")
    lbper=$(echo "($lbmax - $lb0) * 1024 / $peak" | bc); mper=$(echo "($mmax - $m0) * 1024 / $peak" | bc)
    EPS[$kind]+="$eps "; LBMEM[$kind]+="$lbper "; MGRMEM[$kind]+="$mper "; LOST[$kind]+="$lost "; CONN[$kind]+="$peak "
    echo "   $kind run $r: connected $peak/$AGENTS, durable $eps ev/s, lost $lost, balancer $lbper B/agent, managers $mper B/agent"
  done
done

med() { printf '%s\n' $1 | median; }
mkdir -p bench/results
{
  echo "# $AGENTS agents, $RATE ev/s each, ${SIZE} B events, ${DURATION}s, through the balancer to 2 workers (median of $RUNS)"
  echo
  echo "| balancer | connected | durable events/s | lost | balancer memory / agent | managers memory / agent |"
  echo "|---|---|---|---|---|---|"
  for kind in $BALANCERS; do
    printf '| %s | %s | %s | %s | %s B | %s B |\n' "$kind" "$(med "${CONN[$kind]}")" "$(med "${EPS[$kind]}")" \
      "$(med "${LOST[$kind]}")" "$(med "${LBMEM[$kind]}")" "$(med "${MGRMEM[$kind]}")"
  done
  if [[ $BALANCERS == *rampart* && $BALANCERS == *haproxy* ]]; then
    echo
    printf 'rampart / HAProxy: durable events/s %.2fx, balancer memory per agent %.2fx\n' \
      "$(echo "$(med "${EPS[rampart]}") / $(med "${EPS[haproxy]}")" | bc -l)" \
      "$(echo "$(med "${LBMEM[rampart]}") / $(med "${LBMEM[haproxy]}")" | bc -l)"
  fi
} | tee bench/results/agents.md
