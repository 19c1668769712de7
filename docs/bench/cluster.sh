#!/usr/bin/env bash
# Three-server clusters side by side: nats-server (Debian's build) and jetlog, each run as a
# full mesh on 127.0.0.1 (server 1 the seed, the others given only its route URL), driven by
# the same load generator (routebench.go, on the official nats.go client). The publisher
# talks to server 1 and the subscriber to server 3, so every message crosses a route; in
# `queue` a queue group has one member on each server.
# Usage: docs/bench/cluster.sh [JETLOG_BINARY] [ROUNDS]   (from the project root)
# Prints msgs/s per mode, the ratio jetlog / nats-server, and the CPU time all three servers
# spent per message (user+system, during the measured phase).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
jetlog=${1:-target/release/jetlog}
rounds=${2:-2}
modes=${MODES:-"route route1k queue reqrep"}
[ -x "$jetlog" ] || { echo "no jetlog binary at $jetlog (cargo build --release first)" >&2; exit 2; }
if ! command -v nats-server >/dev/null || ! command -v go >/dev/null || [ ! -d /usr/share/gocode/src/github.com/nats-io/nats.go ]; then
  echo "installing nats-server, Go and nats.go from Debian's packages..." >&2
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nats-server golang-go golang-github-nats-io-go-nats-dev >/dev/null
fi
work=$(mktemp -d -t jetlog-cluster.XXXXXX)
trap 'for p in "$work"/pid.*; do kill "$(cat "$p")" 2>/dev/null || true; done; rm -rf "$work"' EXIT
mkdir -p "$work/src/routebench" && cp "$here/routebench.go" "$work/src/routebench/main.go"
(cd "$work/src/routebench" && GO111MODULE=off GOPATH=/usr/share/gocode GOCACHE="$work/gocache" go build -o "$work/routebench" .)
client_port() { echo $((14450 + $1)); }
route_port() { echo $((16450 + $1)); }

start_cluster() { # kind
  for i in 1 2 3; do
    local routes=() args
    [ "$i" -gt 1 ] && routes=(--routes "nats-route://127.0.0.1:$(route_port 1)")
    args=(-a 127.0.0.1 -p "$(client_port $i)" -n "s$i" --cluster "nats://127.0.0.1:$(route_port $i)" --cluster_name bench "${routes[@]}")
    if [ "$1" = nats ]; then
      nats-server "${args[@]}" >"$work/server.$i.log" 2>&1 &
    else
      rm -rf "$work/store.$i"
      # Core NATS only, as the nats-server cluster runs: a named jetlog cluster would
      # otherwise run clustered JetStream (its meta group) by default.
      echo 'jetstream: disabled' >"$work/core.conf"
      "$jetlog" server -c "$work/core.conf" "${args[@]}" --store_dir "$work/store.$i" >"$work/server.$i.log" 2>&1 &
    fi
    echo $! >"$work/pid.$i"
    for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/"$(client_port $i)") 2>/dev/null && break; sleep 0.1; done
  done
  # The mesh: every server has a route to each of the other two (nats-server logs the
  # registration only at debug level, so its connections are counted, and a moment allowed
  # for a duplicate to be resolved; routebench itself waits for the interest to arrive).
  local line='Registering remote route'
  [ "$1" = nats ] && line='Route connection created'
  for _ in $(seq 100); do
    local full=1
    for i in 1 2 3; do
      [ "$(grep -c "$line" "$work/server.$i.log" || true)" -ge 2 ] || full=0
    done
    if [ $full = 1 ]; then sleep 1; return 0; fi
    sleep 0.1
  done
  echo "$1 cluster did not form:" >&2; cat "$work"/server.*.log >&2; return 1
}
stop_cluster() {
  for i in 1 2 3; do
    local pid; pid=$(cat "$work/pid.$i")
    kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null || true
  done
}
cpu_ticks() { # user+system clock ticks of the three servers
  local sum=0
  for i in 1 2 3; do
    sum=$(( sum + $(awk '{print $14+$15}' /proc/"$(cat "$work/pid.$i")"/stat 2>/dev/null || echo 0) ))
  done
  echo $sum
}
hz=$(getconf CLK_TCK)
run_mode() { # mode server -> writes "rate cpu_ns_per_msg" to $work/result
  local pub=nats://127.0.0.1:$(client_port 1) sub=nats://127.0.0.1:$(client_port 3) out n t0 t1
  case $1 in route) n=1000000;; route1k) n=500000;; queue) n=1000000;; reqrep) n=20000;; esac
  t0=$(cpu_ticks)
  case $1 in
    route)   out=$("$work/routebench" -pub "$pub" -sub "$sub" -mode route -n $n) ;;
    route1k) out=$("$work/routebench" -pub "$pub" -sub "$sub" -mode route -n $n -size 1024) ;;
    queue)   out=$("$work/routebench" -pub "$pub" -sub "$sub" -mode queue -n $n \
               -subs "nats://127.0.0.1:$(client_port 1),nats://127.0.0.1:$(client_port 2),$sub") ;;
    reqrep)  out=$("$work/routebench" -pub "$pub" -sub "$sub" -mode reqrep -n $n) ;;
  esac
  t1=$(cpu_ticks)
  echo "$2 $out" >>"$work/raw.log"
  echo "$(echo "$out" | sed -n 's/.*rate=\([0-9]*\).*/\1/p') $(( (t1 - t0) * 1000000000 / hz / n ))" >"$work/result"
}

declare -A best cpu
for r in $(seq "$rounds"); do
  for s in nats jetlog; do
    for m in $modes; do
      start_cluster $s
      echo "0 0" >"$work/result"; run_mode "$m" "$s" || echo "0 0" >"$work/result"
      read -r v c <"$work/result"; v=${v:-0}; c=${c:-0}
      stop_cluster
      [ "${best[$s.$m]:-0}" -ge "$v" ] 2>/dev/null || best[$s.$m]=$v
      { [ "${cpu[$s.$m]:-0}" -gt 0 ] && [ "${cpu[$s.$m]}" -le "$c" ]; } || [ "$c" -le 0 ] || cpu[$s.$m]=$c
    done
  done
done
printf '%-8s %14s %14s %8s %12s %12s %9s\n' mode nats-server jetlog ratio nats_cpu_ns jetlog_cpu_ns cpu_ratio
for m in $modes; do
  n=${best[nats.$m]:-0}; j=${best[jetlog.$m]:-0}; nc=${cpu[nats.$m]:-0}; jc=${cpu[jetlog.$m]:-0}
  ratio=$(awk -v a="$j" -v b="$n" 'BEGIN{ if (b>0) printf "%.2f", a/b; else print "-" }')
  cratio=$(awk -v a="$jc" -v b="$nc" 'BEGIN{ if (a>0) printf "%.2f", b/a; else print "-" }')
  printf '%-8s %14s %14s %8s %12s %12s %9s\n' "$m" "$n" "$j" "$ratio" "$nc" "$jc" "$cratio"
done
# Every run's own line (a server that cut the subscriber off as a slow consumer shows recv < n).
echo; echo "runs:"; cat "$work/raw.log"
