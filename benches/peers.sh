#!/usr/bin/env bash
# Slotway next to other proxies, in front of one Redis node: what one extra
# hop costs on this machine, whatever the proxy.
#
# benches/e2e.sh compares the proxy with redis-benchmark --cluster straight at
# a 3+3 cluster. No other proxy here can front a cluster (haproxy and
# twemproxy do not follow slots), so this script uses one cluster-mode
# redis-server that owns every slot, and puts in front of it:
#   - haproxy in TCP mode: a plain relay that parses nothing, the floor for
#     any proxy that adds a hop (Debian's haproxy package);
#   - twemproxy (nutcracker): a Redis proxy that parses and pipelines
#     requests onto a shared server connection, as Slotway does (Debian's
#     nutcracker package);
#   - the Slotway proxy (release build).
# Each round runs redis-benchmark straight at the node and through each
# proxy back to back (the order rotates every round), then it prints the
# medians: ops/s, the ratio to direct, p50/p99, and each proxy's CPU time per
# request (utime+stime from /proc/PID/stat). Everything it starts is stopped
# on exit. haproxy and nutcracker are installed with apt-get when missing (as
# root); a peer that cannot be installed is left out, with a message.
#
# Usage: bash benches/peers.sh [options]
#   --seconds S     target length of one direct run   (default 3)
#   -r N            rounds                            (default 3)
#   -c N            parallel clients                  (default 50)
#   -P "1 16"       pipeline depths                   (default "1 16")
#   -t LIST         redis-benchmark tests             (default get,set)
#   --no-build      do not run cargo build (use --bin or the existing build)
#   --bin PATH      the slotway binary (default: cargo build --release's)
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=SCRIPTDIR/../.ci/cluster.sh
source "$root/.ci/cluster.sh"

seconds=3
rounds=3
clients=50
pipelines="1 16"
tests="get,set"
build=1
bin=""

usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; }

while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) seconds=$2; shift 2 ;;
    -r) rounds=$2; shift 2 ;;
    -c) clients=$2; shift 2 ;;
    -P) pipelines=$2; shift 2 ;;
    -t) tests=$2; shift 2 ;;
    --no-build) build=0; shift ;;
    --bin) bin=$2; shift 2 ;;
    -h | --help) usage; exit 0 ;;
    *) echo "unknown option: $1 (see --help)" >&2; exit 64 ;;
  esac
done

if ! command -v redis-benchmark >/dev/null 2>&1; then
  bash "$root/.ci/install-deps"
fi
missing=()
command -v haproxy >/dev/null 2>&1 || missing+=(haproxy)
command -v nutcracker >/dev/null 2>&1 || missing+=(nutcracker)
if [ "${#missing[@]}" -gt 0 ] && [ "$(id -u)" = 0 ]; then
  echo "installing ${missing[*]} with apt-get..." >&2
  { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}"; } \
    >/dev/null 2>&1 || echo "apt-get could not install ${missing[*]}" >&2
  # The packages start system services on their default ports; not ours.
  systemctl stop haproxy nutcracker >/dev/null 2>&1 || true
fi

if [ "$build" = 1 ] && [ -z "$bin" ]; then
  echo "building the release proxy..." >&2
  bin=$(cd "$root" && cargo build --release --bin slotway --message-format=json-render-diagnostics |
    sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | tail -n 1)
fi
bin=${bin:-${CARGO_TARGET_DIR:-$root/target}/release/slotway}
[ -x "$bin" ] || { echo "no slotway binary at $bin" >&2; exit 1; }

work=$(mktemp -d -t slotway-peers-XXXXXX)
pids=()
cleanup() {
  local pid
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The node: cluster mode (Slotway needs a slot map), every slot its own.
node_port=$(sw_free_port)
redis-server --port "$node_port" --bind 127.0.0.1 --protected-mode no --daemonize no \
  --logfile "" --save "" --appendonly no --dir "$work" --cluster-enabled yes \
  --cluster-config-file "nodes-$node_port.conf" </dev/null >"$work/redis.log" 2>&1 &
pids+=($!)
sw_wait_ping "$node_port" "${pids[0]}" || { echo "redis-server did not start" >&2; exit 1; }
redis-cli -p "$node_port" cluster addslotsrange 0 16383 >/dev/null
for _ in $(seq 1 100); do
  redis-cli -p "$node_port" cluster info | grep -q '^cluster_state:ok' && break
  sleep 0.1
done

declare -A port pid
targets=(direct)
port[direct]=$node_port

if command -v haproxy >/dev/null 2>&1; then
  port[haproxy]=$(sw_free_port)
  cat >"$work/haproxy.cfg" <<EOF
global
  maxconn 4096
defaults
  mode tcp
  timeout connect 5s
  timeout client 1h
  timeout server 1h
frontend clients
  bind 127.0.0.1:${port[haproxy]}
  default_backend node
backend node
  server node 127.0.0.1:$node_port
EOF
  haproxy -f "$work/haproxy.cfg" </dev/null >"$work/haproxy.log" 2>&1 &
  pid[haproxy]=$!
  pids+=("${pid[haproxy]}")
  targets+=(haproxy)
else
  echo "haproxy is not installed: left out" >&2
fi

if command -v nutcracker >/dev/null 2>&1; then
  port[twemproxy]=$(sw_free_port)
  cat >"$work/twemproxy.yml" <<EOF
node:
  listen: 127.0.0.1:${port[twemproxy]}
  redis: true
  hash: fnv1a_64
  distribution: ketama
  servers:
    - 127.0.0.1:$node_port:1
EOF
  nutcracker -c "$work/twemproxy.yml" </dev/null >"$work/twemproxy.log" 2>&1 &
  pid[twemproxy]=$!
  pids+=("${pid[twemproxy]}")
  targets+=(twemproxy)
else
  echo "nutcracker (twemproxy) is not installed: left out" >&2
fi

port[slotway]=$(sw_free_port)
"$bin" proxy --listen "127.0.0.1:${port[slotway]}" --admin-listen "127.0.0.1:$(sw_free_port)" \
  --seeds "127.0.0.1:$node_port" </dev/null >"$work/slotway.log" 2>&1 &
pid[slotway]=$!
pids+=("${pid[slotway]}")
targets+=(slotway)

for target in "${targets[@]}"; do
  ok=0
  for _ in $(seq 1 100); do
    if [ "$(redis-cli -p "${port[$target]}" set peers:probe 1 2>/dev/null)" = OK ]; then
      ok=1
      break
    fi
    sleep 0.1
  done
  [ "$ok" = 1 ] || { echo "$target does not answer SET on ${port[$target]}" >&2; exit 1; }
done
# GET finds values (redis-benchmark's keys, -r 100000 -d 64).
redis-benchmark -p "$node_port" -n 200000 -c 50 -r 100000 -d 64 -P 16 -t set -q >/dev/null 2>&1

clk_tck=$(getconf CLK_TCK)
# One redis-benchmark run; prints rps,p50,p99.
run_benchmark() {
  local p=$1 depth=$2 test=$3 n=$4 out
  out=$(redis-benchmark -p "$p" -n "$n" -c "$clients" -r 100000 -d 64 -P "$depth" \
    -t "$test" --csv 2>"$work/bench.err") || {
    echo "redis-benchmark -p $p -P $depth -t $test failed:" >&2
    tail -n 5 "$work/bench.err" >&2
    exit 1
  }
  printf '%s\n' "$out" | grep '^"' | grep -v '^"test"' | tail -n 1 | tr -d '"' | cut -d, -f2,5,7
}

results="$work/results.tsv"
: >"$results"
IFS=, read -r -a test_list <<<"$tests"
declare -A size
for depth in $pipelines; do
  for test in "${test_list[@]}"; do
    rps=$(run_benchmark "$node_port" "$depth" "$test" $((20000 * depth)) | cut -d, -f1)
    size["$depth:$test"]=$(awk -v rps="$rps" -v s="$seconds" \
      'BEGIN { n = int(rps * s / 10000 + 1) * 10000; print (n < 10000) ? 10000 : n }')
  done
done

echo "redis-benchmark -c $clients -r 100000 -d 64 against one redis-server $(redis-server --version |
  sed 's/.*v=\([^ ]*\).*/\1/'); targets: ${targets[*]}; $rounds rounds" >&2
count=${#targets[@]}
for round in $(seq 1 "$rounds"); do
  for depth in $pipelines; do
    for test in "${test_list[@]}"; do
      n=${size["$depth:$test"]}
      for i in $(seq 0 $((count - 1))); do
        target=${targets[$(((i + round - 1) % count))]}
        before=0 after=0
        if [ -n "${pid[$target]:-}" ]; then before=$(sw_cpu_ticks "${pid[$target]}"); fi
        row=$(run_benchmark "${port[$target]}" "$depth" "$test" "$n")
        if [ -n "${pid[$target]:-}" ]; then after=$(sw_cpu_ticks "${pid[$target]}"); fi
        awk -F, -v r="$round" -v t="$target" -v d="$depth" -v name="$test" -v n="$n" \
          -v cpu=$([ -n "${pid[$target]:-}" ] && echo $((after - before)) || echo -1) -v hz="$clk_tck" '
          { us = (cpu < 0) ? -1 : cpu / hz * 1e6 / n
            printf "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%.3f\n", r, t, d, name, $1, $2, $3, us }' \
          <<<"$row" | tee -a "$results" | awk -F'\t' '{
            printf "round %s  %-9s P%-3s %-5s %10.0f ops/s  p50 %6.3f ms  p99 %6.3f ms%s\n",
              $1, $2, $3, $4, $5, $6, $7, ($8 < 0) ? "" : sprintf("  cpu %.2f us/req", $8) }'
      done
    done
  done
done

echo
echo "medians over $rounds rounds (ratio = ops/s / direct ops/s; cpu = the proxy's CPU time per request)"
awk -F'\t' -v tests="$tests" -v pipelines="$pipelines" -v targets="${targets[*]}" "$SW_AWK_MEDIAN"'
  { k = $3 SUBSEP $4 SUBSEP $2
    rps[k] = rps[k] " " $5; p50[k] = p50[k] " " $6; p99[k] = p99[k] " " $7; cpu[k] = cpu[k] " " $8 }
  END {
    printf "%-5s %-3s %-10s %10s %6s %16s %11s\n", "test", "P", "target", "ops/s", "ratio",
      "p50/p99 ms", "cpu us/req"
    nt = split(tests, tl, ","); np = split(pipelines, pl, " "); nx = split(targets, xl, " ")
    for (i = 1; i <= np; i++) for (j = 1; j <= nt; j++) {
      direct = median(rps[pl[i] SUBSEP tl[j] SUBSEP "direct"])
      for (x = 1; x <= nx; x++) {
        k = pl[i] SUBSEP tl[j] SUBSEP xl[x]; r = median(rps[k]); c = median(cpu[k])
        printf "%-5s %-3s %-10s %10.0f %6.2f %16s %11s\n", toupper(tl[j]), pl[i], xl[x], r,
          r / direct, sprintf("%.3f/%.3f", median(p50[k]), median(p99[k])),
          (c < 0) ? "-" : sprintf("%.2f", c)
      }
    }
  }' "$results"
