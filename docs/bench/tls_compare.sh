#!/usr/bin/env bash
# TLS side by side: nats-server (Debian's 2.9.10) and jetlog, both with TLS on the client port
# and the same certificates (made here with openssl), driven by the same load generator
# (`jetlog bench` on async-nats, with --tlsca), alternating rounds. Prints msgs/s and each
# server's CPU time per message (user+system, all threads, during the measured run).
# Usage, from the repository root after `cargo build --release`:
#   bash docs/bench/tls_compare.sh [JETLOG_BINARY] [ROUNDS]
set -euo pipefail
jetlog=${1:-target/release/jetlog}
rounds=${2:-3}
command -v nats-server >/dev/null || { apt-get update -qq && apt-get install -y -qq nats-server >/dev/null; }
work=$(mktemp -d -t jetlog-tls.XXXXXX)
trap 'kill $(cat "$work"/pid 2>/dev/null) 2>/dev/null || true; rm -rf "$work"' EXIT
cd "$work"
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=bench CA" \
  -keyout ca-key.pem -out ca.pem 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" -keyout key.pem -out req.pem 2>/dev/null
printf "subjectAltName=IP:127.0.0.1,DNS:localhost\n" >ext.cnf
openssl x509 -req -in req.pem -CA ca.pem -CAkey ca-key.pem -CAcreateserial -days 2 \
  -extfile ext.cnf -out cert.pem 2>/dev/null
cd - >/dev/null
port=14444
hz=$(getconf CLK_TCK)
start_server() { # name
  rm -rf "$work/store" && mkdir -p "$work/store"
  local tls=(--tls --tlscert "$work/cert.pem" --tlskey "$work/key.pem")
  if [ "$1" = nats ]; then
    nats-server -a 127.0.0.1 -p $port -js -sd "$work/store" "${tls[@]}" >"$work/server.log" 2>&1 &
  else
    "$jetlog" server -a 127.0.0.1 -p $port --store_dir "$work/store" "${tls[@]}" >"$work/server.log" 2>&1 &
  fi
  echo $! >"$work/pid"
  for _ in $(seq 100); do grep -q "Server is ready" "$work/server.log" 2>/dev/null && return 0; sleep 0.1; done
  echo "$1 did not start" >&2; cat "$work/server.log" >&2; return 1
}
stop_server() { local pid; pid=$(cat "$work/pid"); kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null || true; }
ticks() { awk '{print $14+$15}' /proc/"$(cat "$work/pid")"/stat; }
run_mode() { # mode -> prints "rate cpu_ns_per_msg"
  local args n t0 t1 out rate
  case $1 in
    core) n=500000; args=(bench bench.tls --pub 1 --sub 1 --msgs $n) ;;
    jspub) n=200000; args=(bench bench.tls --js --stream TLSB --msgs $n) ;;
  esac
  t0=$(ticks)
  out=$("$jetlog" "${args[@]}" -s nats://127.0.0.1:$port --tlsca "$work/ca.pem" 2>&1)
  t1=$(ticks)
  rate=$(echo "$out" | grep -o 'msgs_per_s=[0-9.]*' | head -1 | cut -d= -f2)
  [ -n "$rate" ] || rate=$(echo "$out" | grep -oE '[0-9]+ msgs/s' | head -1 | cut -d' ' -f1)
  echo "${rate:-0} $(( (t1 - t0) * 1000000000 / hz / n ))"
}
declare -A best_rate best_cpu
for round in $(seq "$rounds"); do
  for server in nats jetlog; do
    for mode in core jspub; do
      start_server $server
      read -r rate cpu < <(run_mode $mode)
      stop_server
      echo "round $round $server $mode rate=$rate cpu_ns=$cpu" >&2
      key="$server.$mode"
      if [ "${best_rate[$key]:-0}" = 0 ] || awk "BEGIN{exit !($rate > ${best_rate[$key]})}"; then best_rate[$key]=$rate; fi
      if [ -z "${best_cpu[$key]:-}" ] || [ "$cpu" -lt "${best_cpu[$key]}" ]; then best_cpu[$key]=$cpu; fi
    done
  done
done
printf "%-8s %12s %12s %7s %10s %12s %9s\n" mode nats-server jetlog ratio nats_cpu_ns jetlog_cpu_ns cpu_ratio
for mode in core jspub; do
  n=${best_rate[nats.$mode]}; j=${best_rate[jetlog.$mode]}
  nc=${best_cpu[nats.$mode]}; jc=${best_cpu[jetlog.$mode]}
  printf "%-8s %12.0f %12.0f %7.2f %10s %12s %9.2f\n" $mode "$n" "$j" "$(awk "BEGIN{print $j/$n}")" "$nc" "$jc" "$(awk "BEGIN{print ($jc>0)?$nc/$jc:0}")"
done
echo "(best of $rounds alternating rounds; TLS on both servers with the same RSA-2048 certificate; load generator: jetlog bench over async-nats)"
