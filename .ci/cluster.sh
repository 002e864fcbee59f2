# shellcheck shell=bash
# A local Redis Cluster of real redis-server processes, for the demo
# (.ci/run-demo) and the benchmarks (benches/e2e.sh, benches/peers.sh).
# Source it, then:
#
#   sw_cluster_start DIR MASTERS REPLICAS [NODE_TIMEOUT_MS]   # sets SW_PORTS, SW_PIDS
#   sw_seeds                                                # 127.0.0.1:p1,127.0.0.1:p2,...
#   sw_cluster_stop                                         # SIGKILL and reap every node
#   sw_cpu_ticks PID                                        # utime+stime of PID, in ticks
#   awk "$SW_AWK_MEDIAN"'{ ... median(list) ... }'          # median of "1 3 2" -> 2
#
# Ports are random free ones in 20000..29999 (their cluster bus ports, +10000,
# free too), never fixed. Every wait is bounded. The Rust tests have their own
# copy of this in tests/common/redis.rs.

SW_PORTS=()
SW_PIDS=()
SW_TAKEN=" "

sw_log() { printf '%s\n' "$*" >&2; }

# True when something accepts connections on 127.0.0.1:$1.
sw_port_busy() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# A random port in 20000..29999 that nothing listens on, nor on its bus port,
# and that this shell has not handed out before.
sw_free_port() {
  local port _
  for _ in $(seq 1 500); do
    port=$((20000 + (RANDOM * 32768 + RANDOM) % 10000))
    case "$SW_TAKEN" in *" $port "*) continue ;; esac
    if ! sw_port_busy "$port" && ! sw_port_busy $((port + 10000)); then
      SW_TAKEN="$SW_TAKEN$port "
      echo "$port"
      return 0
    fi
  done
  sw_log "no free port found after 500 attempts"
  return 1
}

# Waits (bounded) until the node on $1 answers PING; fails early if pid $2 exits.
sw_wait_ping() {
  local port=$1 pid=$2 _
  for _ in $(seq 1 200); do
    kill -0 "$pid" 2>/dev/null || return 1
    [ "$(redis-cli -p "$port" ping 2>/dev/null)" = PONG ] && return 0
    sleep 0.05
  done
  return 1
}

# sw_cluster_start DIR MASTERS REPLICAS [NODE_TIMEOUT_MS]
sw_cluster_start() {
  local dir=$1 masters=$2 replicas=$3 timeout=${4:-5000}
  local total=$((masters * (1 + replicas))) _node _attempt port pid
  for _node in $(seq 1 "$total"); do
    for _attempt in 1 2 3 4 5; do
      port=$(sw_free_port) || return 1
      redis-server --port "$port" --bind 127.0.0.1 --protected-mode no \
        --daemonize no --logfile "" --save "" --appendonly no --dir "$dir" \
        --cluster-enabled yes --cluster-config-file "nodes-$port.conf" \
        --cluster-node-timeout "$timeout" \
        --repl-diskless-sync-delay 0 --repl-ping-replica-period 1 \
        </dev/null >"$dir/redis-$port.log" 2>&1 &
      pid=$!
      if sw_wait_ping "$port" "$pid"; then
        SW_PORTS+=("$port")
        SW_PIDS+=("$pid")
        break
      fi
      kill -9 "$pid" 2>/dev/null || true
      wait "$pid" 2>/dev/null || true
      pid=""
    done
    if [ -z "$pid" ]; then
      sw_log "redis-server would not start; last log:"
      tail -n 20 "$dir/redis-$port.log" >&2 || true
      return 1
    fi
  done
  local addrs=() p
  for p in "${SW_PORTS[@]}"; do addrs+=("127.0.0.1:$p"); done
  if ! timeout 60 redis-cli --cluster create "${addrs[@]}" --cluster-replicas "$replicas" \
    --cluster-yes </dev/null >"$dir/cluster-create.log" 2>&1; then
    sw_log "redis-cli --cluster create failed:"
    tail -n 30 "$dir/cluster-create.log" >&2
    return 1
  fi
  local _ ok
  for _ in $(seq 1 300); do
    ok=1
    for p in "${SW_PORTS[@]}"; do
      if ! redis-cli -p "$p" cluster info 2>/dev/null | grep -q '^cluster_state:ok'; then
        ok=0
        break
      fi
      if redis-cli -p "$p" info replication 2>/dev/null | grep -q '^role:slave' &&
        ! redis-cli -p "$p" info replication 2>/dev/null | grep -q '^master_link_status:up'; then
        ok=0
        break
      fi
    done
    if [ "$ok" = 1 ] && redis-cli --cluster check "127.0.0.1:${SW_PORTS[0]}" 2>/dev/null |
      grep -q 'All nodes agree about slots configuration'; then
      return 0
    fi
    sleep 0.1
  done
  sw_log "the cluster did not converge in 30 s"
  return 1
}

sw_seeds() {
  local p out=""
  for p in "${SW_PORTS[@]}"; do out="$out${out:+,}127.0.0.1:$p"; done
  echo "$out"
}

sw_cluster_stop() {
  local pid
  for pid in "${SW_PIDS[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
  for pid in "${SW_PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  SW_PIDS=()
  SW_PORTS=()
}

# CPU time of process $1 so far (utime+stime), in clock ticks (getconf
# CLK_TCK per second). The command name, field 2 of stat, may hold spaces,
# so fields are counted after its closing paren.
sw_cpu_ticks() {
  local stat rest
  stat=$(cat "/proc/$1/stat")
  rest=${stat##*) }
  # shellcheck disable=SC2086
  set -- $rest
  echo $((${12} + ${13}))
}

# An awk function for the benchmarks' summaries, to put before an awk
# program: median(list) is the median of the numbers in the space-separated
# string list, or "" when it holds none.
# shellcheck disable=SC2034 # used by the scripts that source this file
SW_AWK_MEDIAN='
  function median(list,   n, v, i, j, t) {
    n = split(list, v, " ")
    if (n == 0) return ""
    for (i = 2; i <= n; i++) {
      t = v[i] + 0
      for (j = i - 1; j >= 1 && v[j] + 0 > t; j--) v[j + 1] = v[j]
      v[j + 1] = t
    }
    return (n % 2) ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
  }
'

# The HTTP status of GET $2 on 127.0.0.1:$1 (000 if no answer), without curl.
sw_http_status() {
  local port=$1 path=$2 line
  # shellcheck disable=SC2016 # $1 and $2 expand in the inner shell.
  line=$(timeout 5 bash -c '
    exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
    printf "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n" "$2" >&3
    head -n 1 <&3' _ "$port" "$path" 2>/dev/null) || true
  line=${line#HTTP/* }
  line=${line%% *}
  case "$line" in [0-9][0-9][0-9]) echo "$line" ;; *) echo 000 ;; esac
}
