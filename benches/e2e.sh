#!/usr/bin/env bash
# End-to-end benchmark: redis-benchmark through the Slotway proxy and straight
# at the cluster nodes (--cluster), interleaved in one run so both see the same
# machine, the same cluster and the same data.
#
# It builds the release proxy, starts a 3-master, 3-replica redis-server
# cluster on free loopback ports and the proxy in front of it, then for every
# round, pipeline depth and test runs the proxy and the direct benchmark back
# to back (the order alternates each round). It prints every run, then per
# test and depth the medians over rounds: ops/s, p50/p99 latency, the proxy's
# CPU time (from /proc/PID/stat, utime+stime) per 100k requests and per
# request, and the ratio proxy/direct. Everything it starts is stopped on exit.
#
# Two properties of redis-benchmark shape the method:
# - With --cluster it always runs one thread per master, and a threaded run
#   only ends on a 250 ms tick, so its elapsed time (and ops/s) is rounded up
#   to the next 250 ms. Runs are therefore sized to last about --seconds
#   each (from a short calibration run per test), not a fixed -n, so the
#   rounding stays a few percent; and the proxy runs use as many threads
#   (--threads), so both sides have the same load generator and rounding.
# - It stops at the first error reply, which this script reports as a failure.
#
# Usage: bash benches/e2e.sh [options]
#   --seconds S     target length of one direct run   (default 5; $E2E_SECONDS)
#   -n N            fixed requests per run instead    ($E2E_REQUESTS)
#   -r N            rounds                            (default 3; $E2E_ROUNDS)
#   -c N            parallel clients                  (default 50)
#   -P "1 16"       pipeline depths                   (default "1 16")
#   -t LIST         redis-benchmark tests             (default set,get,incr,lpush,mset)
#   --threads N     redis-benchmark threads against the proxy (default 3, as
#                   --cluster uses with 3 masters; 0 = single-threaded)
#   --keyspace N    redis-benchmark -r                (default 100000)
#   --datasize N    redis-benchmark -d                (default 64)
#   --direct-only   skip the proxy (checks the cluster and benchmark plumbing)
#   --no-build      do not run cargo build (use --bin or the existing build)
#   --bin PATH      the slotway binary (default: cargo build --release's)
#   --keep          keep the work directory (logs, results.tsv) after exit
#   --no-node       skip the last part: one built-in node against one
#                   redis-server (benches/node.sh, SET/GET at P1 and P16)
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=SCRIPTDIR/../.ci/cluster.sh
source "$root/.ci/cluster.sh"

seconds=${E2E_SECONDS:-5}
requests=${E2E_REQUESTS:-}
rounds=${E2E_ROUNDS:-3}
threads=3
clients=50
pipelines="1 16"
tests="set,get,incr,lpush,mset"
keyspace=100000
datasize=64
direct_only=0
build=1
bin=""
keep=0
node_bench=1

usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; }

while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) seconds=$2; shift 2 ;;
    -n) requests=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    -r) rounds=$2; shift 2 ;;
    -c) clients=$2; shift 2 ;;
    -P) pipelines=$2; shift 2 ;;
    -t) tests=$2; shift 2 ;;
    --keyspace) keyspace=$2; shift 2 ;;
    --datasize) datasize=$2; shift 2 ;;
    --direct-only) direct_only=1; shift ;;
    --no-build) build=0; shift ;;
    --bin) bin=$2; shift 2 ;;
    --keep) keep=1; shift ;;
    --no-node) node_bench=0; shift ;;
    -h | --help) usage; exit 0 ;;
    *) echo "unknown option: $1 (see --help)" >&2; exit 64 ;;
  esac
done

for bin_needed in redis-server redis-cli redis-benchmark; do
  if ! command -v "$bin_needed" >/dev/null 2>&1; then
    bash "$root/.ci/install-deps"
    break
  fi
done

work=$(mktemp -d -t slotway-e2e-XXXXXX)
proxy_pid=""

cleanup() {
  if [ -n "$proxy_pid" ]; then
    kill -TERM "$proxy_pid" 2>/dev/null || true
    for _ in $(seq 1 50); do
      kill -0 "$proxy_pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$proxy_pid" 2>/dev/null || true
    wait "$proxy_pid" 2>/dev/null || true
  fi
  sw_cluster_stop
  if [ "$keep" = 1 ]; then
    echo "work directory kept: $work" >&2
  else
    rm -rf "$work"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ "$direct_only" = 0 ]; then
  if [ "$build" = 1 ] && [ -z "$bin" ]; then
    echo "building the release proxy..." >&2
    bin=$(cd "$root" && cargo build --release --bin slotway --message-format=json-render-diagnostics |
      sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | tail -n 1)
  fi
  bin=${bin:-${CARGO_TARGET_DIR:-$root/target}/release/slotway}
  [ -x "$bin" ] || { echo "no slotway binary at $bin" >&2; exit 1; }
fi

echo "starting a 3+3 redis-server cluster in $work..." >&2
sw_cluster_start "$work" 3 1 5000
first=${SW_PORTS[0]}

if [ "$direct_only" = 0 ]; then
  proxy_port=$(sw_free_port)
  admin_port=$(sw_free_port)
  "$bin" proxy --listen "127.0.0.1:$proxy_port" --admin-listen "127.0.0.1:$admin_port" \
    --seeds "$(sw_seeds)" </dev/null >"$work/proxy.log" 2>&1 &
  proxy_pid=$!
  ready=0
  for _ in $(seq 1 300); do
    kill -0 "$proxy_pid" 2>/dev/null || break
    if [ "$(sw_http_status "$admin_port" /readyz)" = 200 ]; then
      ready=1
      break
    fi
    sleep 0.1
  done
  if [ "$ready" = 0 ]; then
    echo "the proxy did not become ready (GET /readyz on 127.0.0.1:$admin_port); its log:" >&2
    tail -n 40 "$work/proxy.log" >&2
    exit 1
  fi
  probe=$(redis-cli -p "$proxy_port" set e2e:probe 1 2>&1)
  if [ "$probe" != OK ]; then
    echo "SET through the proxy answered: $probe" >&2
    exit 1
  fi
fi

clk_tck=$(getconf CLK_TCK)

results="$work/results.tsv"
: >"$results"

# run_benchmark TARGET DEPTH TEST N: one redis-benchmark run; prints its CSV
# row without quotes: TEST,rps,avg,min,p50,p95,p99,max.
run_benchmark() {
  local target=$1 depth=$2 test=$3 n=$4 args out row
  if [ "$target" = proxy ]; then
    args=(-h 127.0.0.1 -p "$proxy_port")
    if [ "$threads" -gt 0 ]; then args+=(--threads "$threads"); fi
  else
    args=(--cluster -h 127.0.0.1 -p "$first")
  fi
  if ! out=$(redis-benchmark "${args[@]}" -n "$n" -c "$clients" -r "$keyspace" \
    -d "$datasize" -P "$depth" -t "$test" --csv 2>"$work/bench.err"); then
    echo "redis-benchmark ${args[*]} -P $depth -t $test failed:" >&2
    grep -v '^WARNING: Master node .* has no slots' "$work/bench.err" | tail -n 5 >&2
    if [ "$target" = proxy ]; then tail -n 20 "$work/proxy.log" >&2; fi
    exit 1
  fi
  row=$(printf '%s\n' "$out" | grep '^"' | grep -v '^"test"' | tail -n 1 | tr -d '"')
  if [ -z "$row" ]; then
    echo "no CSV row from redis-benchmark ${args[*]}: $out" >&2
    exit 1
  fi
  printf '%s\n' "$row"
}

# bench TARGET DEPTH TEST ROUND: one measured run; appends a row to results:
# round target depth test rps p50_ms p99_ms cpu_s_per_100k(-1 direct) requests
bench() {
  local target=$1 depth=$2 test=$3 round=$4 n before=0 after=0 row
  n=${size["$depth:$test"]}
  if [ "$target" = proxy ]; then before=$(sw_cpu_ticks "$proxy_pid"); fi
  row=$(run_benchmark "$target" "$depth" "$test" "$n")
  if [ "$target" = proxy ]; then after=$(sw_cpu_ticks "$proxy_pid"); fi
  awk -F, -v r="$round" -v t="$target" -v d="$depth" -v name="$test" \
    -v ticks=$((after - before)) -v hz="$clk_tck" -v n="$n" '
    { cpu = (t == "proxy") ? ticks / hz * 100000 / n : -1
      printf "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%.4f\t%s\n", r, t, d, name, $2, $5, $7, cpu, n }' \
    <<<"$row" >>"$results"
  tail -n 1 "$results" | awk -F'\t' '{
    cpu = ($8 < 0) ? "" : sprintf("  cpu %.3f s/100k (%.2f us/req)", $8, $8 * 10)
    printf "round %s  %-6s P%-3s %-6s n=%-8s %10.0f ops/s  p50 %6.3f ms  p99 %6.3f ms%s\n",
      $1, $2, $3, $4, $9, $5, $6, $7, cpu }'
}

targets_for_round() {
  if [ "$direct_only" = 1 ]; then
    echo direct
  elif [ $(($1 % 2)) = 1 ]; then
    echo proxy direct
  else
    echo direct proxy
  fi
}

IFS=, read -r -a test_list <<<"$tests"
declare -A size
for depth in $pipelines; do
  for test in "${test_list[@]}"; do
    if [ -n "$requests" ]; then
      size["$depth:$test"]=$requests
    else
      # Calibrate straight at the cluster: enough requests for ~$seconds s.
      calib=$((20000 * depth))
      rps=$(run_benchmark direct "$depth" "$test" "$calib" | cut -d, -f2)
      size["$depth:$test"]=$(awk -v rps="$rps" -v s="$seconds" \
        'BEGIN { n = int(rps * s / 10000 + 1) * 10000; print (n < 10000) ? 10000 : n }')
    fi
  done
done

echo "redis-benchmark -c $clients -r $keyspace -d $datasize; proxy runs with" \
  "--threads $threads; $rounds rounds; requests per run:" \
  "$(for k in "${!size[@]}"; do printf '%s=%s ' "$k" "${size[$k]}"; done)" >&2
for round in $(seq 1 "$rounds"); do
  for depth in $pipelines; do
    for test in "${test_list[@]}"; do
      for target in $(targets_for_round "$round"); do
        bench "$target" "$depth" "$test" "$round"
      done
    done
  done
done

echo
echo "medians over $rounds rounds (ratio = proxy ops/s / direct ops/s; cpu = proxy CPU time)"
awk -F'\t' -v tests="$tests" -v pipelines="$pipelines" "$SW_AWK_MEDIAN"'
  { key = $3 SUBSEP $4 SUBSEP $2
    rps[key] = rps[key] " " $5; p50[key] = p50[key] " " $6; p99[key] = p99[key] " " $7
    if ($8 >= 0) cpu[key] = cpu[key] " " $8 }
  END {
    printf "%-6s %-4s %12s %12s %7s %17s %17s %13s %8s\n", "test", "P", "proxy ops/s",
      "direct ops/s", "ratio", "proxy p50/p99 ms", "direct p50/p99 ms", "cpu s/100k", "us/req"
    nt = split(tests, tl, ","); np = split(pipelines, pl, " ")
    for (i = 1; i <= np; i++) for (j = 1; j <= nt; j++) {
      d = pl[i]; t = toupper(tl[j])
      kp = d SUBSEP tl[j] SUBSEP "proxy"; kd = d SUBSEP tl[j] SUBSEP "direct"
      dr = median(rps[kd]); pr = median(rps[kp])
      ratio = (pr != "" && dr > 0) ? sprintf("%.2f", pr / dr) : "-"
      c = median(cpu[kp])
      printf "%-6s %-4s %12s %12.0f %7s %17s %17s %13s %8s\n", t, d,
        (pr == "") ? "-" : sprintf("%.0f", pr), dr, ratio,
        (pr == "") ? "-" : sprintf("%.3f/%.3f", median(p50[kp]), median(p99[kp])),
        sprintf("%.3f/%.3f", median(p50[kd]), median(p99[kd])),
        (c == "") ? "-" : sprintf("%.3f", c), (c == "") ? "-" : sprintf("%.2f", c * 10)
    }
  }' "$results"

if [ "$node_bench" = 1 ] && [ "$direct_only" = 0 ]; then
  echo
  echo "built-in node against redis-server (benches/node.sh):"
  bash "$root/benches/node.sh" --bin "$bin" -r "$rounds"
fi
