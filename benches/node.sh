#!/usr/bin/env bash
# Built-in node against redis-server: redis-benchmark SET and GET at -P 1 and
# -P 16 against one `slotway node` (owning every slot) and one redis-server
# in cluster mode (owning every slot), interleaved over rounds in one run,
# so both see the same machine. Prints every run, then per test and depth the
# median ops/s of each and the ratio built-in/redis-server.
#
# Usage: bash benches/node.sh [options]
#   -n N          requests per run            (default 200000; $NODE_BENCH_REQUESTS)
#   -r N          rounds                      (default 3; $NODE_BENCH_ROUNDS)
#   -c N          parallel clients            (default 50)
#   -P "1 16"     pipeline depths             (default "1 16")
#   -t LIST       tests                       (default set,get)
#   --bin PATH    the slotway binary (default: cargo build --release's)
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=SCRIPTDIR/../.ci/cluster.sh
source "$root/.ci/cluster.sh"

requests=${NODE_BENCH_REQUESTS:-200000}
rounds=${NODE_BENCH_ROUNDS:-3}
clients=50
pipelines="1 16"
tests="set,get"
bin=""

usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; }

while [ $# -gt 0 ]; do
  case "$1" in
    -n) requests=$2; shift 2 ;;
    -r) rounds=$2; shift 2 ;;
    -c) clients=$2; shift 2 ;;
    -P) pipelines=$2; shift 2 ;;
    -t) tests=$2; shift 2 ;;
    --bin) bin=$2; shift 2 ;;
    -h | --help) usage; exit 0 ;;
    *) echo "unknown option: $1 (see --help)" >&2; exit 64 ;;
  esac
done

for needed in redis-server redis-cli redis-benchmark; do
  if ! command -v "$needed" >/dev/null 2>&1; then
    bash "$root/.ci/install-deps"
    break
  fi
done

if [ -z "$bin" ]; then
  echo "building the release binary..." >&2
  bin=$(cd "$root" && cargo build --release --bin slotway --message-format=json-render-diagnostics |
    sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | tail -n 1)
fi
[ -x "$bin" ] || { echo "no slotway binary at $bin" >&2; exit 1; }

work=$(mktemp -d -t slotway-node-bench-XXXXXX)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

wait_ping() {
  for _ in $(seq 1 100); do
    [ "$(redis-cli -p "$1" ping 2>/dev/null)" = PONG ] && return 0
    sleep 0.1
  done
  echo "nothing answers PING on port $1" >&2
  return 1
}

redis_port=$(sw_free_port)
node_port=$(sw_free_port)
mkdir -p "$work/redis" "$work/node"
redis-server --port "$redis_port" --bind 127.0.0.1 --cluster-enabled yes \
  --save '' --appendonly no --dir "$work/redis" --logfile "" </dev/null >"$work/redis.log" 2>&1 &
pids+=($!)
"$bin" node --port "$node_port" --bind 127.0.0.1 --dir "$work/node" --log-level warn \
  </dev/null >"$work/node.log" 2>&1 &
pids+=($!)
wait_ping "$redis_port"
wait_ping "$node_port"
for port in "$redis_port" "$node_port"; do
  out=$(redis-cli -p "$port" cluster addslotsrange 0 16383)
  [ "$out" = OK ] || { echo "ADDSLOTSRANGE on $port: $out" >&2; exit 1; }
done
# A one-node cluster is ok once its state settles.
for port in "$redis_port" "$node_port"; do
  for _ in $(seq 1 100); do
    redis-cli -p "$port" cluster info | grep -q 'cluster_state:ok' && break
    sleep 0.1
  done
done

results="$work/results.tsv"
: >"$results"
run() { # target port pipeline test round
  local out rps
  out=$(redis-benchmark -p "$2" -c "$clients" -n "$requests" -P "$3" -t "$4" -r 100000 -d 64 --csv 2>&1)
  # The data line starts with the test's name in capitals ("SET",...);
  # warnings and the CSV header do not.
  rps=$(printf '%s\n' "$out" | awk -F'"' -v t="${4^^}" '$2 == t {print $4; exit}')
  [ -n "$rps" ] || { echo "redis-benchmark against $1 failed: $out" >&2; exit 1; }
  printf '%s\t%s\t%s\t%s\t%s\n' "$1" "$3" "$4" "$5" "$rps" >>"$results"
  printf 'round %s  %-12s P%-3s %-4s %12s ops/s\n' "$5" "$1" "$3" "$4" "$rps"
}

for round in $(seq 1 "$rounds"); do
  for p in $pipelines; do
    for t in ${tests//,/ }; do
      # Alternate the order each round so neither always runs second.
      if [ $((round % 2)) = 1 ]; then
        run redis-server "$redis_port" "$p" "$t" "$round"
        run builtin "$node_port" "$p" "$t" "$round"
      else
        run builtin "$node_port" "$p" "$t" "$round"
        run redis-server "$redis_port" "$p" "$t" "$round"
      fi
    done
  done
done

median() { awk "$SW_AWK_MEDIAN"'{ list = list " " $1 } END { print median(list) }'; }
echo
printf '%-4s %-5s %14s %14s %8s\n' test P redis-server builtin ratio
for p in $pipelines; do
  for t in ${tests//,/ }; do
    r=$(awk -F'\t' -v p="$p" -v t="$t" '$1=="redis-server" && $2==p && $3==t {print $5}' "$results" | median)
    b=$(awk -F'\t' -v p="$p" -v t="$t" '$1=="builtin" && $2==p && $3==t {print $5}' "$results" | median)
    printf '%-4s %-5s %14.0f %14.0f %8.2f\n' "$t" "P$p" "$r" "$b" "$(awk -v b="$b" -v r="$r" 'BEGIN {print b/r}')"
  done
done
